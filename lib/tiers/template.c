/* template.c - rendering tier templates into a tenant's Kubernetes objects.
 *
 * A tier template is not YAML until its placeholders are replaced
 * (`name: {TENANT_ID}-basic` reads as a flow mapping), so rendering works on
 * text in four passes, each producing a new buffer:
 *
 *  1. substitute: {TENANT_ID}, {TIER}, {ENVIRONMENT_ID} and {RELEASE_VERSION}
 *     (with an optional ".x" that the version expression replaces) become
 *     their values; the byte ranges they land in are recorded.  Values must
 *     look like labels or versions ([A-Za-z0-9._-], starting alphanumeric) so
 *     no value can change the YAML structure around it.
 *  2. quote: the text is parsed; every plain scalar touching a substituted
 *     range that a YAML 1.1 or 1.2 reader would not take as a string
 *     (ll_yaml_plain_is_ambiguous) is replaced by the same text double-quoted.
 *  3. merge: the chart value overrides are merged into spec.values of each
 *     HelmRelease document by text edits at libyaml's node positions
 *     (yamltext.h), so every untouched line keeps its bytes and comments.
 *  4. check: the result is parsed once more; every document must be a
 *     mapping with apiVersion, kind and metadata.name.
 *
 * ll_yaml_load_json() reads YAML into jansson values for callers and tests
 * that need the data rather than the text.
 *
 * Tier templates are code that Flux runs with cluster-wide power, so
 * ll_template_check_policy() holds them to a policy (kinds, namespaces,
 * core YAML), and ll_template_locked_values() reads off which chart values
 * the template derives from the tenant's identity and placement, so that
 * ll_template_check_values() can keep a tenant's values away from them.
 * Both work on the template with sample values substituted (pass 1 only):
 * the recorded ranges say exactly which scalars hold which placeholder.
 *
 * Everything is reentrant; the thread-local last error carries the reason of
 * a failure.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "base/yamltext.h"

#define WHAT "rendered template"

/* Longest value a placeholder may take. */
#define VALUE_MAX 253

/* Alias expansions ll_yaml_load_json allows beyond the nodes of a document. */
#define ALIAS_BUDGET 100000

/* Which placeholder a substituted range came from. */
#define PH_RELEASE 1
#define PH_TENANT  2
#define PH_TIER    4
#define PH_ENV     8
/* The placeholders that stand for who and where the tenant is. */
#define PH_IDENTITY (PH_TENANT | PH_TIER | PH_ENV)

typedef struct range {
    size_t start;
    size_t end;
    int ph; /* PH_* */
} range;

typedef struct ranges {
    range *v;
    size_t n;
    size_t alloc;
} ranges;

static int ranges_add(ranges *r, size_t start, size_t end, int ph)
{
    range *v;
    size_t n;

    if (r->n == r->alloc) {
        n = r->alloc ? r->alloc * 2 : 16;
        v = realloc(r->v, n * sizeof(*v));
        if (!v)
            return ll_error_set(LL_ERROR, "out of memory");
        r->v = v;
        r->alloc = n;
    }
    r->v[r->n].start = start;
    r->v[r->n].end = end;
    r->v[r->n].ph = ph;
    r->n++;
    return 0;
}

/* The index of the first range of r (sorted, disjoint) ending after start
 * (r->n: none). */
static size_t ranges_first_after(const ranges *r, size_t start)
{
    size_t lo = 0, hi = r->n, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (r->v[mid].end <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* 1 when [start, end) shares a byte with a range of r. */
static int ranges_touch(const ranges *r, size_t start, size_t end)
{
    size_t lo = ranges_first_after(r, start);
    return lo < r->n && r->v[lo].start < end;
}

/* The PH_* bits of the ranges of r that share a byte with [start, end). */
static int ranges_mask(const ranges *r, size_t start, size_t end)
{
    size_t lo = ranges_first_after(r, start);
    int mask = 0;

    for (; lo < r->n && r->v[lo].start < end; lo++)
        mask |= r->v[lo].ph;
    return mask;
}

/* ---- ambiguity of plain scalars ---------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int eq_nocase(const char *s, const char *word)
{
    return strcasecmp(s, word) == 0;
}

/* 0x.., 0o.., 0b.. (after the sign): digits of the base, '_' and, for hex
 * floats as Go reads them, '.', 'p' and an exponent sign. */
static int is_prefixed_number(const char *s)
{
    char base;
    int digits = 0;

    if (s[0] != '0' || !s[1])
        return 0;
    base = s[1];
    if (base != 'x' && base != 'X' && base != 'o' && base != 'O' && base != 'b' && base != 'B')
        return 0;
    for (s += 2; *s; s++) {
        if (is_hex(*s))
            digits++;
        else if (*s != '_' && *s != '.' && *s != 'p' && *s != 'P' && *s != '+' && *s != '-')
            return 0;
    }
    return digits > 0;
}

/* Decimal integers and floats in any reader's taste, generously: digits with
 * '_', ',' (Ruby) and ':' (YAML 1.1 base 60), an optional fraction, an
 * optional exponent.  "1", "0777", "1_000", "1:20", "1.5", ".5", "5.",
 * "1e3", "1E-3", "6.02e+23". */
static int is_decimal_number(const char *s)
{
    int digits = 0;

    while (is_digit(*s) || *s == '_' || *s == ',' || *s == ':')
        digits += is_digit(*s++);
    if (*s == '.') {
        s++;
        while (is_digit(*s) || *s == '_')
            digits += is_digit(*s++);
    }
    if (!digits)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!is_digit(*s))
            return 0;
        while (is_digit(*s))
            s++;
    }
    return *s == '\0';
}

/* YYYY-M-D at the start, then the end or a time part. */
static int is_timestamp(const char *s)
{
    int i, n;

    for (i = 0; i < 4; i++)
        if (!is_digit(s[i]))
            return 0;
    s += 4;
    for (i = 0; i < 2; i++) {
        if (*s++ != '-')
            return 0;
        for (n = 0; is_digit(*s) && n < 2; n++)
            s++;
        if (!n)
            return 0;
    }
    return *s == '\0' || *s == 'T' || *s == 't' || *s == ' ' || *s == '\t';
}

int ll_yaml_plain_is_ambiguous(const char *s)
{
    /* Booleans of YAML 1.1, 1.2 and go-yaml (any case), null, YAML 1.1's
     * merge and value keys, and floats spelled as words. */
    static const char *const words[] = {"y",    "n",   "yes",       "no",       "true", "false",
                                        "on",   "off", "null",      "~",        "<<",   "=",
                                        ".inf", "inf", ".infinity", "infinity", ".nan", "nan"};
    const char *num = s;
    size_t i;

    if (!s || !*s)
        return 1;
    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (eq_nocase(s, words[i]))
            return 1;
    if (*num == '+' || *num == '-') {
        num++;
        if (eq_nocase(num, ".inf") || eq_nocase(num, "inf") || eq_nocase(num, ".infinity") ||
            eq_nocase(num, "infinity"))
            return 1;
    }
    if (is_prefixed_number(num) || is_decimal_number(num))
        return 1;
    return is_timestamp(s);
}

/* ---- pass 1: substitution ---------------------------------------------- */

/* Values that cannot change the YAML around them. */
static int check_value(const char *placeholder, const char *value)
{
    size_t i, n = strlen(value);
    char c;

    if (n == 0 || n > VALUE_MAX)
        return ll_error_set(LL_EINVALID, "template value for %s must have 1 to %d characters",
                            placeholder, VALUE_MAX);
    for (i = 0; i < n; i++) {
        c = value[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && (c == '-' || c == '.' || c == '_'))))
            return ll_error_set(LL_EINVALID,
                                "template value for %s may only hold letters, digits, '-', '.' "
                                "and '_', starting with a letter or digit",
                                placeholder);
    }
    return 0;
}

static int substitute(ll_buf *out, ranges *subs, const char *tmpl, size_t len,
                      const ll_render_input *in)
{
    struct {
        const char *name;
        const char *value;
    } ph[] = {
        {"{RELEASE_VERSION}.x", NULL},
        {"{RELEASE_VERSION}", NULL},
        {"{TENANT_ID}", in ? in->tenant_id : NULL},
        {"{TIER}", in ? in->tier : NULL},
        {"{ENVIRONMENT_ID}", in ? in->environment_id : NULL},
    };
    const size_t nph = sizeof(ph) / sizeof(ph[0]);
    char expr[128];
    const char *p = tmpl, *end = tmpl + len, *brace;
    size_t i, n, at;
    int error, have_expr = 0;

    while (p < end) {
        brace = memchr(p, '{', (size_t)(end - p));
        if (!brace)
            break;
        if ((error = ll_buf_add(out, p, (size_t)(brace - p))) < 0)
            return error;
        p = brace;
        for (i = 0; i < nph; i++) {
            n = strlen(ph[i].name);
            if ((size_t)(end - p) >= n && memcmp(p, ph[i].name, n) == 0)
                break;
        }
        if (i == nph) {
            if ((error = ll_buf_add(out, p, 1)) < 0)
                return error;
            p++;
            continue;
        }
        if (i < 2) {
            if (!in || !in->release)
                return ll_error_set(LL_EINVALID,
                                    "template uses {RELEASE_VERSION} but no release was given");
            if (!have_expr) {
                if ((error = ll_release_expr(expr, sizeof(expr), in->release)) < 0)
                    return error;
                if ((error = check_value("{RELEASE_VERSION}", expr)) < 0)
                    return error;
                have_expr = 1;
            }
            ph[i].value = expr;
        } else {
            if (!ph[i].value)
                return ll_error_set(LL_EINVALID, "template uses %s but no value was given for it",
                                    ph[i].name);
            if ((error = check_value(ph[i].name, ph[i].value)) < 0)
                return error;
        }
        at = out->len;
        if ((error = ll_buf_adds(out, ph[i].value)) < 0)
            return error;
        if ((error = ranges_add(subs, at, out->len, i < 2 ? PH_RELEASE : 1 << (i - 1))) < 0)
            return error;
        p += n;
    }
    return ll_buf_add(out, p, (size_t)(end - p));
}

/* ---- pass 2: quoting ----------------------------------------------------- */

static int quote_ambiguous(char **out, size_t *out_len, const char *text, size_t len,
                           const ranges *subs)
{
    ll_ytext y = {0};
    ll_yedits edits;
    yaml_document_t *doc;
    yaml_node_t *n;
    size_t d, s, e, vlen;
    char *q = NULL;
    size_t qlen;
    int error;

    ll_yedits_init(&edits);
    if ((error = ll_ytext_load(&y, text, len, WHAT)) < 0)
        goto done;
    for (d = 0; d < y.ndocs; d++) {
        doc = &y.docs[d];
        for (n = doc->nodes.start; n < doc->nodes.top; n++) {
            if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                continue;
            s = ll_ytext_start(&y, n);
            e = ll_ytext_end(&y, n);
            if (s >= e || !ranges_touch(subs, s, e))
                continue;
            if (!ll_yaml_plain_is_ambiguous((const char *)n->data.scalar.value))
                continue;
            /* Quote the scalar's own text, not a tag or anchor before it. */
            vlen = n->data.scalar.length;
            if (e - s >= vlen && memcmp(text + e - vlen, n->data.scalar.value, vlen) == 0)
                s = e - vlen;
            if ((error = ll_yaml_quote(&q, &qlen, (const char *)n->data.scalar.value, vlen)) < 0)
                goto done;
            error = ll_yedits_add(&edits, s, e, 0, q, qlen);
            free(q);
            q = NULL;
            if (error < 0)
                goto done;
        }
    }
    error = ll_yedits_apply(out, out_len, text, len, &edits);

done:
    ll_yedits_free(&edits);
    ll_ytext_free(&y);
    return error;
}

/* ---- pass 3: merging chart values ---------------------------------------- */

typedef struct merge_ctx {
    ll_ytext *y;
    yaml_document_t *doc;
    ll_yedits *edits;
    size_t docno;
} merge_ctx;

/* At most how many characters key takes as a YAML double-quoted scalar. */
static size_t quoted_chars_max(const char *key)
{
    const unsigned char *p;
    size_t n = 2;

    for (p = (const unsigned char *)key; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            n += 6;
        else if (*p >= 0x80)
            n += 3; /* an escaped U+0080..U+FFFF takes 6 for its 2 or 3 bytes */
        else if (*p == '"' || *p == '\\')
            n += 2;
        else
            n += 1;
    }
    return n;
}

/* Keys must stay short enough for an implicit YAML key. */
static int check_keys(const json_t *v, int depth)
{
    const char *key;
    json_t *child;
    size_t i;
    int error;

    if (depth > LL_YAML_DEPTH_MAX)
        return ll_error_set(LL_EINVALID, "chart values are nested more than %d levels deep",
                            LL_YAML_DEPTH_MAX);
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            if (quoted_chars_max(key) > LL_YAML_KEY_MAX)
                return ll_error_set(LL_EINVALID,
                                    "chart value key is too long for yaml (over %d characters "
                                    "quoted)",
                                    LL_YAML_KEY_MAX);
            if ((error = check_keys(child, depth + 1)) < 0)
                return error;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if ((error = check_keys(child, depth + 1)) < 0)
                return error;
        }
    }
    return 0;
}

/* Replaces the message of an LL_EINVALID from yamltext with one that names
 * the document; the original goes to the detail. */
static void restate(int error, size_t docno, const char *action, size_t line)
{
    char was[LL_ERROR_MSG_MAX];

    if (error != LL_EINVALID)
        return;
    snprintf(was, sizeof(was), "%s", ll_error_last()->message);
    ll_error_set(LL_EINVALID, WHAT ": document %zu: cannot %s the chart value at line %zu", docno,
                 action, line);
    ll_error_detail("%s", was);
}

static int replace_value(merge_ctx *c, yaml_node_t *map, yaml_node_pair_t *pair, const json_t *v)
{
    yaml_node_t *key;
    char *flow = NULL;
    size_t flow_len = 0;
    int error;

    if ((error = ll_yaml_flow(&flow, &flow_len, v)) < 0)
        return error;
    error = ll_ytext_replace_value(c->edits, c->y, c->doc, map, pair, flow, flow_len);
    free(flow);
    key = ll_ytext_node(c->doc, pair->key);
    restate(error, c->docno, "replace", (key ? key : map)->start_mark.line + 1);
    return error;
}

static int insert_value(merge_ctx *c, yaml_node_t *map, const char *key, const json_t *v, int depth)
{
    char *flow = NULL, *qkey = NULL;
    size_t flow_len = 0, qkey_len = 0;
    int error;

    if ((error = ll_yaml_quote(&qkey, &qkey_len, key, strlen(key))) < 0)
        goto done;
    if ((error = ll_yaml_flow(&flow, &flow_len, v)) < 0)
        goto done;
    error =
        ll_ytext_insert_pair(c->edits, c->y, c->doc, map, qkey, qkey_len, flow, flow_len, -depth);
    restate(error, c->docno, "add", map->start_mark.line + 1);

done:
    free(flow);
    free(qkey);
    return error;
}

/* A mapping with at least one pair: values merge into it key by key.  An
 * empty one ({}) is replaced whole, as several insertions into it could not
 * tell which comes first. */
static int has_pairs(const yaml_node_t *n)
{
    return n && n->type == YAML_MAPPING_NODE &&
           n->data.mapping.pairs.top > n->data.mapping.pairs.start;
}

static int merge_object(merge_ctx *c, yaml_node_t *map, const json_t *obj, int depth)
{
    yaml_node_pair_t *pair;
    yaml_node_t *value;
    const char *key;
    json_t *v;
    int error;

    if (depth > LL_YAML_DEPTH_MAX)
        return ll_error_set(LL_EINVALID, "chart values are nested more than %d levels deep",
                            LL_YAML_DEPTH_MAX);
    json_object_foreach((json_t *)obj, key, v)
    {
        pair = ll_ytext_map_pair(c->doc, map, key, strlen(key));
        if (!pair) {
            error = insert_value(c, map, key, v, depth);
        } else {
            value = ll_ytext_node(c->doc, pair->value);
            if (!value)
                return ll_error_set(LL_ERROR, "yaml document has a dangling node");
            if (json_is_object(v) && has_pairs(value))
                error = merge_object(c, value, v, depth + 1);
            else
                error = replace_value(c, map, pair, v);
        }
        if (error < 0)
            return error;
    }
    return 0;
}

static int merge_values(char **out, size_t *out_len, const char *text, size_t len,
                        const json_t *values)
{
    ll_ytext y = {0};
    ll_yedits edits;
    merge_ctx c;
    yaml_node_t *root, *spec, *value;
    yaml_node_pair_t *pair;
    size_t d;
    int error;

    ll_yedits_init(&edits);
    if ((error = ll_ytext_load(&y, text, len, WHAT)) < 0)
        goto done;
    c.y = &y;
    c.edits = &edits;
    for (d = 0; d < y.ndocs; d++) {
        c.doc = &y.docs[d];
        c.docno = d + 1;
        root = ll_ytext_root(c.doc);
        if (!root || root->type != YAML_MAPPING_NODE ||
            !ll_ytext_scalar_eq(ll_ytext_map_get(c.doc, root, "kind"), "HelmRelease", 11))
            continue;
        if (ll_ytext_has_aliases(c.doc)) {
            error = ll_error_set(LL_EINVALID,
                                 WHAT ": document %zu uses yaml aliases; chart values cannot be "
                                      "merged into it",
                                 c.docno);
            goto done;
        }
        spec = ll_ytext_map_get(c.doc, root, "spec");
        if (!spec || spec->type != YAML_MAPPING_NODE) {
            error = ll_error_set(LL_EINVALID,
                                 WHAT ": document %zu has no spec mapping for the chart values",
                                 c.docno);
            goto done;
        }
        pair = ll_ytext_map_pair(c.doc, spec, "values", 6);
        if (!pair) {
            error = insert_value(&c, spec, "values", values, 1);
        } else {
            value = ll_ytext_node(c.doc, pair->value);
            if (has_pairs(value))
                error = merge_object(&c, value, values, 2);
            else
                error = replace_value(&c, spec, pair, values);
        }
        if (error < 0)
            goto done;
    }
    error = ll_yedits_apply(out, out_len, text, len, &edits);

done:
    ll_yedits_free(&edits);
    ll_ytext_free(&y);
    return error;
}

/* ---- pass 4: checking ---------------------------------------------------- */

/* A scalar with text that does not read as null. */
static int is_name(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length > 0 && !ll_ytext_is_null(n);
}

static int check_objects(const char *text, size_t len, const char *what)
{
    ll_ytext y = {0};
    yaml_document_t *doc;
    yaml_node_t *root, *meta;
    size_t d, objects = 0, line;
    int error;

    if ((error = ll_ytext_load(&y, text, len, what)) < 0)
        goto done;
    error = LL_EINVALID;
    for (d = 0; d < y.ndocs; d++) {
        doc = &y.docs[d];
        root = ll_ytext_root(doc);
        if (!root)
            continue;
        line = root->start_mark.line + 1;
        if (root->type != YAML_MAPPING_NODE) {
            ll_error_set(LL_EINVALID, "%s: document %zu at line %zu is not a mapping", what, d + 1,
                         line);
            goto done;
        }
        switch (ll_ytext_dup_key(&line, doc)) {
        case 0:
            break;
        case 1:
            ll_error_set(LL_EINVALID, "%s: document %zu has a duplicate key at line %zu", what,
                         d + 1, line);
            goto done;
        default:
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        line = root->start_mark.line + 1;
        if (!is_name(ll_ytext_map_get(doc, root, "apiVersion"))) {
            ll_error_set(LL_EINVALID, "%s: document %zu at line %zu has no apiVersion", what, d + 1,
                         line);
            goto done;
        }
        if (!is_name(ll_ytext_map_get(doc, root, "kind"))) {
            ll_error_set(LL_EINVALID, "%s: document %zu at line %zu has no kind", what, d + 1,
                         line);
            goto done;
        }
        meta = ll_ytext_map_get(doc, root, "metadata");
        if (!meta || meta->type != YAML_MAPPING_NODE ||
            !is_name(ll_ytext_map_get(doc, meta, "name"))) {
            ll_error_set(LL_EINVALID, "%s: document %zu at line %zu has no metadata.name", what,
                         d + 1, line);
            goto done;
        }
        objects++;
    }
    if (!objects) {
        ll_error_set(LL_EINVALID, "%s: no kubernetes objects in the text", what);
        goto done;
    }
    error = 0;

done:
    ll_ytext_free(&y);
    return error;
}

int ll_template_check_objects(const char *text, size_t len)
{
    return check_objects(text, len, WHAT);
}

/* ---- rendering ------------------------------------------------------------ */

int ll_template_render(char **out, size_t *out_len, const char *tmpl, size_t tmpl_len,
                       const ll_render_input *in)
{
    ll_buf sub;
    ranges subs = {0};
    char *quoted = NULL, *merged = NULL;
    size_t quoted_len = 0, merged_len = 0;
    const json_t *values = in ? in->values : NULL;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    ll_buf_init(&sub, LL_YAML_TEXT_MAX);
    if (!tmpl)
        return ll_error_set(LL_EINVALID, "no template text");
    if (values && !json_is_object(values))
        return ll_error_set(LL_EINVALID, "chart values must be a json object");
    if (values && (error = check_keys(values, 0)) < 0)
        return error;
    if (tmpl_len > LL_YAML_TEXT_MAX)
        return ll_error_set(LL_EINVALID, "template is larger than %zu bytes", LL_YAML_TEXT_MAX);

    if ((error = substitute(&sub, &subs, tmpl, tmpl_len, in)) < 0)
        goto done;
    if ((error = quote_ambiguous(&quoted, &quoted_len, sub.data ? sub.data : "", sub.len, &subs)) <
        0)
        goto done;
    if (values && json_object_size(values) > 0) {
        if ((error = merge_values(&merged, &merged_len, quoted, quoted_len, values)) < 0)
            goto done;
        free(quoted);
        quoted = merged;
        quoted_len = merged_len;
        merged = NULL;
    }
    if ((error = check_objects(quoted, quoted_len, WHAT)) < 0)
        goto done;
    *out = quoted;
    quoted = NULL;
    if (out_len)
        *out_len = quoted_len;
    error = 0;

done:
    ll_buf_free(&sub);
    free(subs.v);
    free(quoted);
    free(merged);
    return error;
}

/* ---- chart versions in place ---------------------------------------------- */

int ll_template_set_chart_version(char **out, size_t *out_len, int *changed, const char *text,
                                  size_t len, const char *version)
{
    ll_ytext y = {0};
    ll_yedits edits;
    char *quoted = NULL;
    size_t quoted_len = 0;
    int error;

    *out = NULL;
    *out_len = 0;
    *changed = 0;
    ll_yedits_init(&edits);
    if ((error = check_value("the chart version", version)) < 0)
        goto done;
    if ((error = ll_yaml_quote(&quoted, &quoted_len, version, strlen(version))) < 0)
        goto done;
    if ((error = ll_ytext_load(&y, text, len, "chart version")) < 0)
        goto done;
    for (size_t d = 0; d < y.ndocs; d++) {
        yaml_document_t *doc = &y.docs[d];
        yaml_node_t *root = ll_ytext_root(doc), *spec = NULL, *chart = NULL, *cspec = NULL;
        yaml_node_pair_t *pair;
        if (!root || root->type != YAML_MAPPING_NODE ||
            !ll_ytext_scalar_eq(ll_ytext_map_get(doc, root, "kind"), "HelmRelease", 11))
            continue;
        spec = ll_ytext_map_get(doc, root, "spec");
        chart =
            spec && spec->type == YAML_MAPPING_NODE ? ll_ytext_map_get(doc, spec, "chart") : NULL;
        cspec =
            chart && chart->type == YAML_MAPPING_NODE ? ll_ytext_map_get(doc, chart, "spec") : NULL;
        if (!cspec || cspec->type != YAML_MAPPING_NODE ||
            !(pair = ll_ytext_map_pair(doc, cspec, "version", 7)))
            continue;
        yaml_node_t *value = ll_ytext_node(doc, pair->value);
        if (value && ll_ytext_scalar_eq(value, version, strlen(version)))
            continue;
        if (ll_ytext_has_aliases(doc)) {
            error = ll_error_set(LL_EINVALID,
                                 "chart version: document %zu uses yaml aliases; its version "
                                 "cannot be edited in place",
                                 d + 1);
            goto done;
        }
        if ((error = ll_ytext_replace_value(&edits, &y, doc, cspec, pair, quoted, quoted_len)) < 0)
            goto done;
        (*changed)++;
    }
    error = ll_yedits_apply(out, out_len, text, len, &edits);

done:
    ll_yedits_free(&edits);
    ll_ytext_free(&y);
    free(quoted);
    return error;
}

/* ---- YAML as JSON ------------------------------------------------------- */

typedef struct load_ctx {
    yaml_document_t *doc;
    size_t budget; /* nodes still allowed to be converted */
} load_ctx;

static int is_decimal_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (s[0] == '0')
        return s[1] == '\0';
    if (!is_digit(*s))
        return 0;
    while (is_digit(*s))
        s++;
    return *s == '\0';
}

static json_t *scalar_json(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    long long ll;
    char *end;

    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            return json_true();
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            return json_false();
        if (ll_ytext_is_null(n))
            return json_null();
        if (is_decimal_int(s)) {
            errno = 0;
            ll = strtoll(s, &end, 10);
            if (errno == 0 && *end == '\0')
                return json_integer((json_int_t)ll);
        }
    }
    return json_stringn(s, n->data.scalar.length);
}

static int node_json(json_t **out, load_ctx *c, yaml_node_t *n, int depth)
{
    json_t *v = NULL, *child = NULL;
    yaml_node_item_t *item;
    yaml_node_pair_t *pair;
    yaml_node_t *key, *value;
    int error = LL_EINVALID;

    *out = NULL;
    if (depth > LL_YAML_DEPTH_MAX) {
        ll_error_set(LL_EINVALID, "yaml nested more than %d levels deep at line %zu",
                     LL_YAML_DEPTH_MAX, n->start_mark.line + 1);
        goto done;
    }
    if (c->budget == 0) {
        ll_error_set(LL_EINVALID, "yaml aliases expand to too many nodes");
        goto done;
    }
    c->budget--;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (!(v = scalar_json(n))) {
            ll_error_set(LL_EINVALID, "yaml scalar at line %zu is not valid utf-8",
                         n->start_mark.line + 1);
            goto done;
        }
        break;
    case YAML_SEQUENCE_NODE:
        if (!(v = json_array()))
            goto oom;
        for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
            if (!(value = ll_ytext_node(c->doc, *item)))
                goto dangling;
            if ((error = node_json(&child, c, value, depth + 1)) < 0)
                goto done;
            if (json_array_append_new(v, child) < 0) {
                child = NULL;
                goto oom;
            }
            child = NULL;
        }
        break;
    case YAML_MAPPING_NODE:
        if (!(v = json_object()))
            goto oom;
        for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
            key = ll_ytext_node(c->doc, pair->key);
            value = ll_ytext_node(c->doc, pair->value);
            if (!key || !value)
                goto dangling;
            if (key->type != YAML_SCALAR_NODE ||
                strlen((const char *)key->data.scalar.value) != key->data.scalar.length) {
                error = ll_error_set(LL_EINVALID, "yaml mapping key at line %zu is not a string",
                                     key->start_mark.line + 1);
                goto done;
            }
            if (json_object_get(v, (const char *)key->data.scalar.value)) {
                error = ll_error_set(LL_EINVALID, "yaml mapping has a duplicate key at line %zu",
                                     key->start_mark.line + 1);
                goto done;
            }
            if ((error = node_json(&child, c, value, depth + 1)) < 0)
                goto done;
            if (json_object_set_new(v, (const char *)key->data.scalar.value, child) < 0) {
                child = NULL;
                error = ll_error_set(LL_EINVALID, "yaml mapping key at line %zu is not valid utf-8",
                                     key->start_mark.line + 1);
                goto done;
            }
            child = NULL;
        }
        break;
    default:
        goto dangling;
    }
    *out = v;
    v = NULL;
    error = 0;
    goto done;

oom:
    error = ll_error_set(LL_ERROR, "out of memory");
    goto done;
dangling:
    error = ll_error_set(LL_ERROR, "yaml document has a dangling node");

done:
    json_decref(child);
    json_decref(v);
    return error;
}

int ll_yaml_load_json(json_t **out, const char *text, size_t len)
{
    ll_ytext y = {0};
    json_t *docs = NULL, *v = NULL;
    load_ctx c;
    yaml_node_t *root;
    size_t d, nodes;
    int error;

    *out = NULL;
    if ((error = ll_ytext_load(&y, text, len, "yaml")) < 0)
        goto done;
    if (!(docs = json_array())) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    for (d = 0; d < y.ndocs; d++) {
        c.doc = &y.docs[d];
        nodes = (size_t)(c.doc->nodes.top - c.doc->nodes.start);
        c.budget = nodes + ALIAS_BUDGET;
        root = yaml_document_get_root_node(c.doc);
        if ((error = node_json(&v, &c, root, 0)) < 0)
            goto done;
        if (json_array_append_new(docs, v) < 0) {
            v = NULL;
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        v = NULL;
    }
    *out = docs;
    docs = NULL;
    error = 0;

done:
    json_decref(docs);
    ll_ytext_free(&y);
    return error;
}

/* ---- the tier policy ------------------------------------------------------- */

/* The policy and the locked values look at the template with every
 * placeholder replaced by a sample value.  The samples are letters, digits
 * and '-', so the YAML structure is the template's own, and the ranges say
 * where each placeholder landed. */
#define SAMPLE_TENANT "sample-tenant"

static const ll_render_input sample_input = {SAMPLE_TENANT, "sample-tier", "0.0", "sample-env",
                                             NULL};

typedef struct sample {
    ll_buf text;
    ranges subs;
    ll_ytext y;
} sample;

static int sample_load(sample *s, const char *tmpl, size_t len)
{
    int error;

    ll_buf_init(&s->text, LL_YAML_TEXT_MAX);
    memset(&s->subs, 0, sizeof(s->subs));
    memset(&s->y, 0, sizeof(s->y));
    if (!tmpl)
        return ll_error_set(LL_EINVALID, "no template text");
    if (len > LL_YAML_TEXT_MAX)
        return ll_error_set(LL_EINVALID, "template is larger than %zu bytes", LL_YAML_TEXT_MAX);
    if ((error = substitute(&s->text, &s->subs, tmpl, len, &sample_input)) < 0)
        return error;
    return ll_ytext_load(&s->y, s->text.data ? s->text.data : "", s->text.len, "tier template");
}

static void sample_free(sample *s)
{
    ll_ytext_free(&s->y);
    ll_buf_free(&s->text);
    free(s->subs.v);
}

/* The PH_* bits of the placeholders n's text (with its tag or anchor) holds. */
static int node_mask(const sample *s, const yaml_node_t *n)
{
    return n ? ranges_mask(&s->subs, ll_ytext_start(&s->y, n), ll_ytext_end(&s->y, n)) : 0;
}

/* The text of a scalar without NUL bytes inside, else NULL. */
static const char *scalar_of(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE ||
        strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return NULL;
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    return map && map->type == YAML_MAPPING_NODE ? ll_ytext_map_get(doc, map, key) : NULL;
}

/* s for a message: at most 63 bytes of printable ASCII (others become '?'). */
static void shown(char out[64], const char *s)
{
    size_t i;
    for (i = 0; s && s[i] && i < 63; i++)
        out[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    out[i] = '\0';
}

typedef struct policy_ctx {
    sample *s;
    yaml_document_t *doc;
    size_t docno;
    const char *kinds, *flux_ns;
    const json_t *pools;
    int has_namespace; /* the template declares the tenant's Namespace */
    const char **rule;
    char what[200]; /* "document 2 (ClusterRoleBinding evil) at line 12" */
} policy_ctx;

static int violation(policy_ctx *c, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int violation(policy_ctx *c, const char *rule, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "template breaks the tier policy (%s): %s", rule, msg);
    ll_error_kind("tier-policy");
    if (c->rule)
        *c->rule = rule;
    return LL_EINVALID;
}

static int is_core_tag(const char *tag)
{
    static const char *const core[] = {YAML_STR_TAG,  YAML_INT_TAG, YAML_FLOAT_TAG, YAML_BOOL_TAG,
                                       YAML_NULL_TAG, YAML_SEQ_TAG, YAML_MAP_TAG};
    for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
        if (strcmp(tag, core[i]) == 0)
            return 1;
    return 0;
}

/* Core YAML only: no tags beyond the core schema's, no merge keys, and no
 * placeholder in a mapping key.  Every node is looked at once, aliases or
 * not. */
static int check_yaml(policy_ctx *c)
{
    yaml_node_t *n, *key;
    yaml_node_pair_t *pair;
    size_t line;
    char tag[64];

    for (n = c->doc->nodes.start; n < c->doc->nodes.top; n++) {
        line = n->start_mark.line + 1;
        if (!n->tag || !is_core_tag((const char *)n->tag)) {
            shown(tag, (const char *)n->tag);
            return violation(c, "yaml-tag",
                             "document %zu at line %zu carries the tag %s; a template uses the "
                             "YAML core schema only (str, int, float, bool, null, map, seq)",
                             c->docno, line, tag);
        }
        if (n->type != YAML_MAPPING_NODE)
            continue;
        for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
            if (!(key = ll_ytext_node(c->doc, pair->key)))
                continue;
            line = key->start_mark.line + 1;
            if (key->type == YAML_SCALAR_NODE &&
                key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                ll_ytext_scalar_eq(key, "<<", 2))
                return violation(c, "yaml-merge-key",
                                 "document %zu at line %zu uses a merge key (<<), which is not "
                                 "core YAML and would hide what the object holds",
                                 c->docno, line);
            if (node_mask(c->s, key))
                return violation(c, "placeholder-in-key",
                                 "document %zu at line %zu has a placeholder in a mapping key; "
                                 "placeholders may only stand in scalar values",
                                 c->docno, line);
        }
    }
    return 0;
}

/* 1 when kind of group (glen bytes) is on the list: "Kind" for the core
 * group, "Kind.group" for the others, separated by commas. */
static int kind_listed(const char *list, const char *kind, const char *group, size_t glen)
{
    const char *p = list, *e, *end, *dot;
    size_t n, klen = strlen(kind);

    while (*p) {
        n = strcspn(p, ",");
        e = p;
        end = p + n;
        while (e < end && (*e == ' ' || *e == '\t'))
            e++;
        while (end > e && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        dot = memchr(e, '.', (size_t)(end - e));
        if ((size_t)((dot ? dot : end) - e) == klen && memcmp(e, kind, klen) == 0 &&
            (dot ? (size_t)(end - dot - 1) == glen && memcmp(dot + 1, group, glen) == 0
                 : glen == 0))
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* n is exactly {TENANT_ID}: the name of the tenant's own namespace. */
static int is_tenant_id(const policy_ctx *c, const yaml_node_t *n)
{
    const char *v = scalar_of(n);
    return v && strcmp(v, SAMPLE_TENANT) == 0 && (node_mask(c->s, n) & PH_TENANT);
}

/* A namespace a HelmRelease may install into or keep its release in: the
 * tenant's own (declared by the template) or a pool environment. */
static int helm_namespace_ok(const policy_ctx *c, const yaml_node_t *n)
{
    const char *v = scalar_of(n);
    size_t i;
    json_t *p;

    if (c->has_namespace && is_tenant_id(c, n))
        return 1;
    json_array_foreach(c->pools, i, p)
    {
        if (v && json_is_string(p) && strcmp(json_string_value(p), v) == 0 &&
            !(node_mask(c->s, n) & PH_IDENTITY))
            return 1;
    }
    return 0;
}

static int check_helm_release(policy_ctx *c, yaml_node_t *root, const char *ns)
{
    yaml_document_t *doc = c->doc;
    yaml_node_t *spec = get(doc, root, "spec"), *target, *storage, *from, *item;
    yaml_node_item_t *it;
    char v[64];

    if (get(doc, spec, "kubeConfig"))
        return violation(c, "helm-kubeconfig",
                         "%s sets spec.kubeConfig: a template may not deploy to another cluster",
                         c->what);
    if (get(doc, spec, "postRenderers"))
        return violation(c, "helm-post-renderers",
                         "%s sets spec.postRenderers: a template may not rewrite what its chart "
                         "renders (it could move the chart's objects to any namespace)",
                         c->what);
    if (get(doc, spec, "serviceAccountName") && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "helm-service-account",
                         "%s sets spec.serviceAccountName in %s: it would install as an account "
                         "of Flux's own namespace",
                         c->what, c->flux_ns);
    target = get(doc, spec, "targetNamespace");
    storage = get(doc, spec, "storageNamespace");
    if (!target && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "helm-target-namespace",
                         "%s sets no spec.targetNamespace: its chart would be installed in %s",
                         c->what, c->flux_ns);
    if (target && !helm_namespace_ok(c, target)) {
        shown(v, scalar_of(target));
        return violation(c, "helm-target-namespace",
                         "%s installs its chart in '%s'; a HelmRelease may only target the "
                         "tenant's namespace ({TENANT_ID}, declared by the template) or a pool "
                         "environment",
                         c->what, v);
    }
    if (storage && !helm_namespace_ok(c, storage)) {
        shown(v, scalar_of(storage));
        return violation(c, "helm-target-namespace",
                         "%s keeps its release in '%s'; a HelmRelease may only use the tenant's "
                         "namespace ({TENANT_ID}, declared by the template) or a pool environment",
                         c->what, v);
    }
    from = get(doc, spec, "valuesFrom");
    if (from && from->type == YAML_SEQUENCE_NODE && strcmp(ns, c->flux_ns) == 0) {
        for (it = from->data.sequence.items.start; it < from->data.sequence.items.top; it++) {
            item = ll_ytext_node(doc, *it);
            if (ll_ytext_scalar_eq(get(doc, item, "kind"), "Secret", 6))
                return violation(c, "flux-namespace-secret",
                                 "%s takes values from a Secret in %s, where Flux keeps its "
                                 "credentials",
                                 c->what, c->flux_ns);
        }
    }
    return 0;
}

#define FLUX_SOURCES "source.toolkit.fluxcd.io"

/* The rules no list of kinds can lift: no cluster-scoped RBAC, no Flux
 * source or Kustomization, no Secret in Flux's namespace.  api is the
 * object's apiVersion, whose group is its first glen bytes. */
static int fixed_rules(policy_ctx *c, const char *kind, const char *api, size_t glen,
                       const char *ns)
{
    static const char *const flux_sources[] = {"GitRepository", "OCIRepository", "HelmRepository",
                                               "Bucket", "HelmChart"};
    int flux_source = glen == strlen(FLUX_SOURCES) && memcmp(api, FLUX_SOURCES, glen) == 0;

    for (size_t i = 0; i < sizeof(flux_sources) / sizeof(flux_sources[0]); i++)
        flux_source |= strcmp(kind, flux_sources[i]) == 0;
    if (strcmp(kind, "ClusterRole") == 0 || strcmp(kind, "ClusterRoleBinding") == 0)
        return violation(c, "cluster-rbac",
                         "%s is cluster-scoped RBAC; a template may only declare Roles and "
                         "RoleBindings in the tenant's namespace",
                         c->what);
    if (flux_source)
        return violation(c, "flux-source",
                         "%s is a Flux source; a template may not make Flux fetch from "
                         "anywhere else",
                         c->what);
    if (strcmp(kind, "Kustomization") == 0)
        return violation(c, "flux-kustomization",
                         "%s is a Kustomization; a template may not make Flux apply other paths "
                         "or repositories",
                         c->what);
    if (strcmp(kind, "Secret") == 0 && ns && strcmp(ns, c->flux_ns) == 0)
        return violation(c, "flux-namespace-secret",
                         "%s is a Secret in %s, where Flux keeps its credentials", c->what,
                         c->flux_ns);
    return 0;
}

/* Where a namespaced object may be: the tenant's own namespace, or Flux's
 * for a HelmRelease or ConfigMap whose name holds {TENANT_ID}.  nsn and
 * name are its metadata.namespace and metadata.name. */
static int check_placement(policy_ctx *c, const char *kind, yaml_node_t *nsn, yaml_node_t *name)
{
    const char *ns = scalar_of(nsn);
    char v[64];

    if (!ns)
        return violation(c, "object-namespace",
                         "%s names no metadata.namespace; a template puts objects in the "
                         "tenant's namespace or in %s",
                         c->what, c->flux_ns);
    if (c->has_namespace && is_tenant_id(c, nsn))
        return 0; /* the tenant's own */
    if (strcmp(ns, c->flux_ns) != 0 || (node_mask(c->s, nsn) & PH_IDENTITY)) {
        shown(v, ns);
        return violation(c, "object-namespace",
                         "%s is in namespace '%s'; a template puts objects only in the tenant's "
                         "namespace ({TENANT_ID}, declared by the template) or in %s",
                         c->what, v, c->flux_ns);
    }
    if (strcmp(kind, "HelmRelease") != 0 && strcmp(kind, "ConfigMap") != 0)
        return violation(c, "object-namespace",
                         "%s is in %s, where a template may only put HelmReleases and "
                         "ConfigMaps",
                         c->what, c->flux_ns);
    if (!(node_mask(c->s, name) & PH_TENANT))
        return violation(c, "object-name",
                         "%s is in %s but its name does not hold {TENANT_ID}: it could take "
                         "over an object that is not the tenant's",
                         c->what, c->flux_ns);
    return 0;
}

/* A RoleBinding binds a Role of its own namespace, never a ClusterRole. */
static int check_role_binding(policy_ctx *c, yaml_node_t *root)
{
    yaml_node_t *ref = get(c->doc, root, "roleRef");
    char v[64];

    if (ll_ytext_scalar_eq(get(c->doc, ref, "kind"), "Role", 4))
        return 0;
    shown(v, scalar_of(get(c->doc, ref, "kind")));
    return violation(c, "rolebinding-cluster-role",
                     "%s binds a %s; a RoleBinding may only bind a Role of its own "
                     "namespace (ClusterRoles such as cluster-admin are refused)",
                     c->what, v[0] ? v : "role of no kind");
}

/* The rules for one object (a mapping with kind and apiVersion). */
static int check_object(policy_ctx *c, yaml_node_t *root)
{
    yaml_document_t *doc = c->doc;
    const char *kind = scalar_of(get(doc, root, "kind"));
    const char *api = scalar_of(get(doc, root, "apiVersion"));
    const char *slash = strchr(api, '/');
    yaml_node_t *meta = get(doc, root, "metadata"), *name = get(doc, meta, "name");
    yaml_node_t *nsn = get(doc, meta, "namespace");
    size_t glen = slash ? (size_t)(slash - api) : 0;
    char k[64], nm[64], v[64];
    int error;

    shown(k, kind);
    shown(nm, scalar_of(name));
    snprintf(c->what, sizeof(c->what), "document %zu (%s %s) at line %zu", c->docno, k, nm,
             root->start_mark.line + 1);
    if ((error = fixed_rules(c, kind, api, glen, scalar_of(nsn))) < 0)
        return error;
    if (!kind_listed(c->kinds, kind, api, glen)) {
        shown(v, api);
        return violation(c, "kind-not-allowed", "%s: kind %s of %s is not on the tier-kinds list",
                         c->what, k, v);
    }
    if (strcmp(kind, "Namespace") == 0 && glen == 0) {
        if (!is_tenant_id(c, name))
            return violation(c, "foreign-namespace",
                             "%s: a template may only declare the tenant's own namespace, "
                             "named exactly {TENANT_ID}",
                             c->what);
        return 0;
    }
    /* Every other kind is namespaced. */
    if ((error = check_placement(c, kind, nsn, name)) < 0)
        return error;
    if (strcmp(kind, "HelmRelease") == 0)
        return check_helm_release(c, root, scalar_of(nsn));
    if (strcmp(kind, "RoleBinding") == 0)
        return check_role_binding(c, root);
    return 0;
}

/* The first look at a document (root): core YAML, no placeholder in its
 * type, a kind and an apiVersion; notes whether it is the tenant's
 * Namespace. */
static int check_document(policy_ctx *c, yaml_node_t *root)
{
    size_t line = root->start_mark.line + 1;
    yaml_node_t *kind = get(c->doc, root, "kind"), *api = get(c->doc, root, "apiVersion");
    int error;

    if ((error = check_yaml(c)) < 0)
        return error;
    if (node_mask(c->s, kind) || node_mask(c->s, api))
        return violation(c, "placeholder-in-type",
                         "document %zu at line %zu has a placeholder in its kind or "
                         "apiVersion; placeholders may only stand in scalar values",
                         c->docno, line);
    if (!scalar_of(kind) || !scalar_of(api))
        return ll_error_set(LL_EINVALID,
                            "tier template: document %zu at line %zu has no kind or apiVersion",
                            c->docno, line);
    if (strcmp(scalar_of(kind), "Namespace") == 0 && !strchr(scalar_of(api), '/'))
        c->has_namespace = 1;
    return 0;
}

int ll_template_check_policy(const char **out_rule, const char *tmpl, size_t len,
                             const ll_tier_policy *policy)
{
    sample s;
    policy_ctx c;
    yaml_node_t *root;
    size_t d;
    int error;

    memset(&c, 0, sizeof(c));
    if (out_rule)
        *out_rule = NULL;
    c.rule = out_rule;
    c.s = &s;
    c.kinds = policy && policy->kinds && policy->kinds[0] ? policy->kinds : LL_TIER_KINDS_DEFAULT;
    c.flux_ns = policy && policy->flux_namespace && policy->flux_namespace[0]
                    ? policy->flux_namespace
                    : "flux-system";
    c.pools = policy ? policy->pools : NULL;
    if ((error = sample_load(&s, tmpl, len)) < 0)
        goto done;
    /* First the YAML itself, the types, and whether the tenant gets a
     * namespace of its own. */
    for (d = 0; d < s.y.ndocs; d++) {
        c.doc = &s.y.docs[d];
        c.docno = d + 1;
        if ((root = ll_ytext_root(c.doc)) && (error = check_document(&c, root)) < 0)
            goto done;
    }
    for (d = 0; d < s.y.ndocs; d++) {
        c.doc = &s.y.docs[d];
        c.docno = d + 1;
        if ((root = ll_ytext_root(c.doc)) && (error = check_object(&c, root)) < 0)
            goto done;
    }
    error = 0;

done:
    sample_free(&s);
    return error;
}

/* ---- values derived from the tenant's identity --------------------------- */

/* Extra locked paths a HelmRelease of a tier names, comma-separated. */
#define LOCKED_ANNOTATION "landlord.dev/locked-values"
#define POINTER_MAX       512

typedef struct lock_ctx {
    sample *s;
    yaml_document_t *doc;
    json_t *names;  /* object: the names that place the tenant (namespaces, release names) */
    json_t *locked; /* object: pointer -> true */
    size_t budget;  /* nodes still allowed to be visited (aliases) */
} lock_ctx;

static int lock(lock_ctx *c, const char *pointer)
{
    return json_object_set_new(c->locked, pointer, json_true()) < 0
               ? ll_error_set(LL_ERROR, "out of memory")
               : 0;
}

/* prefix + "/" + key, with '~' and '/' escaped (RFC 6901): a new string. */
static char *pointer_child(const char *prefix, const char *key)
{
    size_t n = strlen(prefix), k = strlen(key), i, o;
    char *out = malloc(n + 2 * k + 2);

    if (!out)
        return NULL;
    memcpy(out, prefix, n);
    o = n;
    out[o++] = '/';
    for (i = 0; i < k; i++) {
        if (key[i] == '~' || key[i] == '/') {
            out[o++] = '~';
            out[o++] = key[i] == '~' ? '0' : '1';
        } else {
            out[o++] = key[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* A scalar holding {TENANT_ID}, {TIER} or {ENVIRONMENT_ID}, or naming where
 * the tenant is placed. */
static int derived(lock_ctx *c, const yaml_node_t *n)
{
    const char *v = scalar_of(n);
    if (node_mask(c->s, n) & PH_IDENTITY)
        return 1;
    return v && *v && json_object_get(c->names, v) != NULL;
}

static int visit(lock_ctx *c, int depth)
{
    if (depth > LL_YAML_DEPTH_MAX)
        return ll_error_set(LL_EINVALID, "tier template: values nested more than %d levels deep",
                            LL_YAML_DEPTH_MAX);
    if (c->budget == 0)
        return ll_error_set(LL_EINVALID, "tier template: yaml aliases expand to too many nodes");
    c->budget--;
    return 0;
}

/* 1 when a scalar under n is derived, 0 when none is, or an error. */
static int any_derived(lock_ctx *c, yaml_node_t *n, int depth)
{
    yaml_node_item_t *it;
    yaml_node_pair_t *pair;
    int error, found = 0;

    if ((error = visit(c, depth)) < 0)
        return error;
    if (n->type == YAML_SCALAR_NODE)
        return derived(c, n);
    if (n->type == YAML_SEQUENCE_NODE) {
        for (it = n->data.sequence.items.start; !found && it < n->data.sequence.items.top; it++) {
            yaml_node_t *item = ll_ytext_node(c->doc, *it);
            if (item && (found = any_derived(c, item, depth + 1)) < 0)
                return found;
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        for (pair = n->data.mapping.pairs.start; !found && pair < n->data.mapping.pairs.top;
             pair++) {
            yaml_node_t *value = ll_ytext_node(c->doc, pair->value);
            if (value && (found = any_derived(c, value, depth + 1)) < 0)
                return found;
        }
    }
    return found;
}

/* Locks the derived values under mapping map (at pointer path).  *direct
 * gets the keys of map whose own values were locked (a new object). */
static int walk(json_t **direct, lock_ctx *c, yaml_node_t *map, const char *path, int depth)
{
    json_t *mine = json_object(), *below = json_object(), *all = json_object(), *sub = NULL, *v;
    yaml_node_pair_t *pair;
    const char *k, *leaf;
    char *child = NULL, *grand = NULL;
    int error = 0, hit;

    *direct = NULL;
    if (!mine || !below || !all) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = visit(c, depth)) < 0)
        goto done;
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = ll_ytext_node(c->doc, pair->key);
        yaml_node_t *value = ll_ytext_node(c->doc, pair->value);
        if (!(k = scalar_of(key)) || !value)
            continue;
        if (!(child = pointer_child(path, k))) {
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        if (value->type == YAML_MAPPING_NODE) {
            if ((error = walk(&sub, c, value, child, depth + 1)) < 0)
                goto done;
            json_object_set_new(below, k, sub);
            sub = NULL;
        } else {
            /* A scalar, or a sequence (which a tenant's values replace
             * whole) holding a derived scalar. */
            if ((hit = any_derived(c, value, depth + 1)) < 0) {
                error = hit;
                goto done;
            }
            if (hit && (error = lock(c, child)) < 0)
                goto done;
            if (hit && json_object_set_new(mine, k, json_true()) < 0) {
                error = ll_error_set(LL_ERROR, "out of memory");
                goto done;
            }
        }
        free(child);
        child = NULL;
    }
    /* A key that places one of several sibling mappings (apps.producer.envId)
     * places every one of them (apps.consumer.envId). */
    json_object_foreach(below, k, sub)
    {
        json_object_foreach(sub, leaf, v) json_object_set(all, leaf, json_true());
    }
    sub = NULL;
    json_object_foreach(below, k, v)
    {
        json_t *unused;
        json_object_foreach(all, leaf, unused)
        {
            free(child);
            free(grand);
            grand = NULL;
            if (!(child = pointer_child(path, k)) || !(grand = pointer_child(child, leaf))) {
                error = ll_error_set(LL_ERROR, "out of memory");
                goto done;
            }
            if ((error = lock(c, grand)) < 0)
                goto done;
        }
    }
    *direct = mine;
    mine = NULL;

done:
    free(child);
    free(grand);
    json_decref(sub);
    json_decref(mine);
    json_decref(below);
    json_decref(all);
    return error;
}

/* Checks a JSON pointer's syntax: "/" then segments, "~" only as ~0 or ~1. */
static int pointer_ok(const char *p, size_t n)
{
    if (n == 0 || n > POINTER_MAX || p[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] < 0x21 || p[i] == ',')
            return 0;
        if (p[i] == '~' && (i + 1 == n || (p[i + 1] != '0' && p[i + 1] != '1')))
            return 0;
    }
    return 1;
}

/* The paths the annotation of a HelmRelease names. */
static int lock_annotated(lock_ctx *c, yaml_node_t *root, size_t docno)
{
    yaml_node_t *meta = get(c->doc, root, "metadata");
    const char *list = scalar_of(get(c->doc, get(c->doc, meta, "annotations"), LOCKED_ANNOTATION));
    char one[POINTER_MAX + 1], bad[64];
    size_t n;
    int error;

    while (list && *list) {
        list += strspn(list, " \t\r\n,");
        n = strcspn(list, " \t\r\n,");
        if (!n)
            break;
        if (!pointer_ok(list, n)) {
            memcpy(bad, list, n < 63 ? n : 63);
            bad[n < 63 ? n : 63] = '\0';
            shown(bad, bad);
            ll_error_set(LL_EINVALID,
                         "tier template: document %zu: annotation %s holds '%s', not a JSON "
                         "pointer into the values (like /apps/producer/enabled)",
                         docno, LOCKED_ANNOTATION, bad);
            return LL_EINVALID;
        }
        memcpy(one, list, n);
        one[n] = '\0';
        if ((error = lock(c, one)) < 0)
            return error;
        list += n;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Where the template places the tenant, into c->names: the pool
 * environments, its namespaces, the namespaces and names of its
 * HelmReleases. */
static void collect_names(lock_ctx *c, const json_t *pools)
{
    static const char *const places[] = {"targetNamespace", "storageNamespace", "releaseName"};
    const char *v;
    yaml_node_t *root, *spec;
    json_t *p;
    size_t d, i;

    json_array_foreach(pools, i, p)
    {
        if (json_is_string(p))
            json_object_set(c->names, json_string_value(p), json_true());
    }
    for (d = 0; d < c->s->y.ndocs; d++) {
        yaml_document_t *doc = &c->s->y.docs[d];
        if (!(root = ll_ytext_root(doc)) || root->type != YAML_MAPPING_NODE)
            continue;
        if (ll_ytext_scalar_eq(get(doc, root, "kind"), "Namespace", 9) &&
            (v = scalar_of(get(doc, get(doc, root, "metadata"), "name"))) && *v)
            json_object_set(c->names, v, json_true());
        if (!ll_ytext_scalar_eq(get(doc, root, "kind"), "HelmRelease", 11))
            continue;
        spec = get(doc, root, "spec");
        for (i = 0; i < sizeof(places) / sizeof(places[0]); i++)
            if ((v = scalar_of(get(doc, spec, places[i]))) && *v)
                json_object_set(c->names, v, json_true());
    }
}

/* Locks, in every HelmRelease, the paths its annotation names and the
 * values derived from the tenant's identity or placement. */
static int lock_releases(lock_ctx *c)
{
    yaml_node_t *root, *values;
    json_t *direct = NULL;
    int error;

    for (size_t d = 0; d < c->s->y.ndocs; d++) {
        c->doc = &c->s->y.docs[d];
        c->budget = (size_t)(c->doc->nodes.top - c->doc->nodes.start) + ALIAS_BUDGET;
        if (!(root = ll_ytext_root(c->doc)) || root->type != YAML_MAPPING_NODE ||
            !ll_ytext_scalar_eq(get(c->doc, root, "kind"), "HelmRelease", 11))
            continue;
        if ((error = lock_annotated(c, root, d + 1)) < 0)
            return error;
        values = get(c->doc, get(c->doc, root, "spec"), "values");
        if (!values || values->type != YAML_MAPPING_NODE)
            continue;
        if ((error = walk(&direct, c, values, "", 1)) < 0)
            return error;
        json_decref(direct);
        direct = NULL;
    }
    return 0;
}

/* The keys of object obj, sorted, as a new array. */
static int sorted_keys(json_t **out, const json_t *obj)
{
    size_t i = 0, n = json_object_size(obj);
    const char **keys = calloc(n ? n : 1, sizeof(*keys)), *key;
    json_t *v;

    if (!keys || !(*out = json_array())) {
        free(keys);
        return ll_error_set(LL_ERROR, "out of memory");
    }
    json_object_foreach((json_t *)obj, key, v) keys[i++] = key;
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; i < n; i++)
        json_array_append_new(*out, json_string(keys[i]));
    free(keys);
    return 0;
}

int ll_template_locked_values(json_t **out, const char *tmpl, size_t len, const json_t *pools)
{
    sample s;
    lock_ctx c = {0};
    int error;

    *out = NULL;
    c.s = &s;
    c.names = json_object();
    c.locked = json_object();
    if (!c.names || !c.locked) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto early;
    }
    if ((error = sample_load(&s, tmpl, len)) < 0)
        goto done;
    collect_names(&c, pools);
    if ((error = lock_releases(&c)) < 0)
        goto done;
    error = sorted_keys(out, c.locked);

done:
    sample_free(&s);
early:
    json_decref(c.names);
    json_decref(c.locked);
    return error;
}

/* The next segment of a JSON pointer at *p (past its '/'), unescaped into
 * seg (cap bytes); *p moves to the next '/' or the end. */
static void next_segment(char *seg, size_t cap, const char **p)
{
    const char *s = *p + 1;
    size_t o = 0;

    for (; *s && *s != '/'; s++) {
        char ch = *s;
        if (ch == '~' && (s[1] == '0' || s[1] == '1'))
            ch = *++s == '0' ? '~' : '/';
        if (o + 1 < cap)
            seg[o++] = ch;
    }
    seg[o] = '\0';
    *p = s;
}

int ll_template_check_values(const json_t *locked, const json_t *values)
{
    const char *pointer, *p;
    const json_t *v, *child;
    char *seg = NULL;
    size_t i;
    json_t *entry;
    int error = 0;

    if (!json_is_object(values))
        return 0;
    json_array_foreach(locked, i, entry)
    {
        if (!(pointer = json_string_value(entry)) || pointer[0] != '/')
            continue;
        free(seg);
        if (!(seg = malloc(strlen(pointer) + 1)))
            return ll_error_set(LL_ERROR, "out of memory");
        v = values;
        for (p = pointer; *p == '/';) {
            next_segment(seg, strlen(pointer) + 1, &p);
            if (!(child = json_object_get(v, seg)))
                break;
            if (!*p) {
                error = ll_error_set(LL_EINVALID,
                                     "values may not set %s: the tier derives it from the "
                                     "tenant's identity or placement",
                                     pointer);
                ll_error_field("values");
                ll_error_hint("leave it out: landlord fills it from the tenant's id, tier and "
                              "pool");
                goto done;
            }
            if (!json_is_object(child)) {
                error = ll_error_set(LL_EINVALID,
                                     "values may not replace %.*s with a %s: the tier derives "
                                     "%s under it from the tenant's identity or placement",
                                     (int)(p - pointer), pointer,
                                     json_is_array(child)    ? "list"
                                     : json_is_string(child) ? "string"
                                     : json_is_null(child)   ? "null"
                                                             : "scalar",
                                     pointer);
                ll_error_field("values");
                ll_error_hint("send a mapping there, without %s", pointer);
                goto done;
            }
            v = child;
        }
    }

done:
    free(seg);
    return error;
}

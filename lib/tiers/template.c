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
 *     (ll_yaml_plain_is_ambiguous, yamlread.c) is replaced by the same text
 *     double-quoted.
 *  3. merge: the chart value overrides are merged into spec.values of each
 *     HelmRelease document by text edits at libyaml's node positions
 *     (yamltext.h), so every untouched line keeps its bytes and comments.
 *  4. check: the result is parsed once more; every document must be a
 *     mapping with apiVersion, kind and metadata.name.
 *
 * ll_template_set_chart_version() edits a rendered file's chart version in
 * place.  The same pass 1 with sample values gives the template that the
 * tier policy (template_policy.c) and the locked values
 * (template_locked.c) read: the recorded ranges say exactly which scalars
 * hold which placeholder (template_int.h).
 *
 * Everything is reentrant; the thread-local last error carries the reason of
 * a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "base/yamltext.h"
#include "template_int.h"

#define WHAT "rendered template"

/* Longest value a placeholder may take. */
#define VALUE_MAX 253

static int ranges_add(ll_tpl_ranges *r, size_t start, size_t end, int ph)
{
    if (ll_grow((void **)&r->v, &r->alloc, r->n, sizeof(*r->v)) < 0)
        return LL_ERROR;
    r->v[r->n].start = start;
    r->v[r->n].end = end;
    r->v[r->n].ph = ph;
    r->n++;
    return 0;
}

/* The index of the first range of r (sorted, disjoint) ending after start
 * (r->n: none). */
static size_t ranges_first_after(const ll_tpl_ranges *r, size_t start)
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
static int ranges_touch(const ll_tpl_ranges *r, size_t start, size_t end)
{
    size_t lo = ranges_first_after(r, start);
    return lo < r->n && r->v[lo].start < end;
}

/* The PH_* bits of the ll_tpl_ranges of r that share a byte with [start, end). */
static int ranges_mask(const ll_tpl_ranges *r, size_t start, size_t end)
{
    size_t lo = ranges_first_after(r, start);
    int mask = 0;

    for (; lo < r->n && r->v[lo].start < end; lo++)
        mask |= r->v[lo].ph;
    return mask;
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
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && (c == '-' || c == '.' || c == '_'))))
            return ll_error_set(LL_EINVALID,
                                "template value for %s may only hold letters, digits, '-', '.' "
                                "and '_', starting with a letter or digit",
                                placeholder);
    }
    return 0;
}

/* A placeholder and the value it takes. */
typedef struct ph_slot {
    const char *name;
    const char *value;
} ph_slot;

/* Sets and checks ph's value.  For {RELEASE_VERSION} (release) it is the
 * release's version expression, worked out at the first use into expr
 * (cap bytes, "" until then); the others have theirs from the input. */
static int placeholder_value(ph_slot *ph, int release, const ll_render_input *in, char *expr,
                             size_t cap)
{
    int error;

    if (!release) {
        if (!ph->value)
            return ll_error_set(LL_EINVALID, "template uses %s but no value was given for it",
                                ph->name);
        return check_value(ph->name, ph->value);
    }
    if (!in || !in->release)
        return ll_error_set(LL_EINVALID,
                            "template uses {RELEASE_VERSION} but no release was given");
    if (!expr[0]) {
        if ((error = ll_release_expr(expr, cap, in->release)) < 0)
            return error;
        if ((error = check_value("{RELEASE_VERSION}", expr)) < 0)
            return error;
    }
    ph->value = expr;
    return 0;
}

/* Pass 1: tmpl[0..len) with every placeholder replaced by its value into
 * out; subs records where each one landed. */
static int substitute(ll_buf *out, ll_tpl_ranges *subs, const char *tmpl, size_t len,
                      const ll_render_input *in)
{
    ph_slot ph[] = {
        {"{RELEASE_VERSION}.x", NULL},
        {"{RELEASE_VERSION}", NULL},
        {"{TENANT_ID}", in ? in->tenant_id : NULL},
        {"{TIER}", in ? in->tier : NULL},
        {"{ENVIRONMENT_ID}", in ? in->environment_id : NULL},
    };
    const size_t nph = sizeof(ph) / sizeof(ph[0]);
    char expr[128] = "";
    const char *p = tmpl, *end = tmpl + len, *brace;
    size_t i, n, at;
    int error;

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
        if ((error = placeholder_value(&ph[i], i < 2, in, expr, sizeof(expr))) < 0)
            return error;
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
                           const ll_tpl_ranges *subs)
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
    ll_tpl_ranges subs = {0};
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

/* ---- the template with sample values ------------------------------------ */

/* The policy (template_policy.c) and the locked values (template_locked.c)
 * look at the template with every placeholder replaced by a sample value.
 * The samples are letters, digits and '-', so the YAML structure is the
 * template's own, and the ranges say where each placeholder landed. */
static const ll_render_input sample_input = {SAMPLE_TENANT, "sample-tier", "0.0", "sample-env",
                                             NULL};

int ll_tpl_sample_load(ll_tpl_sample *s, const char *tmpl, size_t len)
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

void ll_tpl_sample_free(ll_tpl_sample *s)
{
    ll_ytext_free(&s->y);
    ll_buf_free(&s->text);
    free(s->subs.v);
}

int ll_tpl_mask(const ll_tpl_sample *s, const yaml_node_t *n)
{
    return n ? ranges_mask(&s->subs, ll_ytext_start(&s->y, n), ll_ytext_end(&s->y, n)) : 0;
}

const char *ll_tpl_scalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE ||
        strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return NULL;
    return (const char *)n->data.scalar.value;
}

yaml_node_t *ll_tpl_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    return map && map->type == YAML_MAPPING_NODE ? ll_ytext_map_get(doc, map, key) : NULL;
}

void ll_tpl_shown(char out[64], const char *s)
{
    size_t i;
    for (i = 0; s && s[i] && i < 63; i++)
        out[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    out[i] = '\0';
}

/* kustomize.c - editing the `resources` list of kustomization.yaml files.
 *
 * The tier kustomizations of a GitOps repository are written by people, by
 * the reference's shell scripts (which leave no final newline) and by
 * landlord, so they are edited as text: the file is parsed with libyaml
 * (yamltext.h) and only the lines of `resources` entries change.
 *
 * - A block sequence (indented or not) gets a new "- entry" line after its
 *   last entry, at the column of the existing dashes; removed entries lose
 *   their whole line.  A file without final newline still has none after.
 * - A missing or empty `resources` gets a block sequence indented two
 *   spaces more than its key.
 * - An empty flow sequence (`resources: []`) gets its first entry as a block
 *   list on the next line.
 * - Anything else (a flow sequence, `null`, a block sequence whose dashes
 *   are not on their entries' lines) is rewritten as a JSON flow list.
 *
 * Every edit is checked by parsing the result again and comparing its
 * resources with the list intended; a difference is an internal error (-1).
 * Entries are written plain when no YAML reader could misread them, else as
 * double-quoted strings.  Reentrant; no global state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "base/yamltext.h"

#define WHAT "kustomization"

/* Longest entry accepted. */
#define ENTRY_MAX 4096

typedef struct kz {
    ll_ytext y;
    yaml_document_t *doc;
    yaml_node_t *root;
    yaml_node_pair_t *pair; /* the resources pair, or NULL */
    yaml_node_t *res;       /* its value, or NULL */
    json_t *entries;        /* the entries as strings */
} kz;

static void kz_free(kz *k)
{
    json_decref(k->entries);
    k->entries = NULL;
    ll_ytext_free(&k->y);
}

/* k->entries (a new array): the strings of the resources sequence, none
 * when it is absent or null. */
static int load_entries(kz *k)
{
    yaml_node_item_t *item;
    yaml_node_t *node;

    if (!(k->entries = json_array()))
        return ll_error_set(LL_ERROR, "out of memory");
    if (!k->res || ll_ytext_is_null(k->res))
        return 0;
    if (k->res->type != YAML_SEQUENCE_NODE)
        return ll_error_set(LL_EINVALID, WHAT ": resources at line %zu is not a sequence",
                            (size_t)k->res->start_mark.line + 1);
    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        node = ll_ytext_node(k->doc, *item);
        if (!node || node->type != YAML_SCALAR_NODE)
            return ll_error_set(LL_EINVALID, WHAT ": resources entry at line %zu is not a string",
                                node ? (size_t)node->start_mark.line + 1 : 0);
        if (json_array_append_new(k->entries, json_stringn((const char *)node->data.scalar.value,
                                                           node->data.scalar.length)) < 0)
            return ll_error_set(LL_EINVALID,
                                WHAT ": resources entry at line %zu is not valid utf-8",
                                (size_t)node->start_mark.line + 1);
    }
    return 0;
}

static int kz_load(kz *k, const char *text, size_t len)
{
    yaml_node_pair_t *pair;
    yaml_node_t *root;
    size_t d, seen = 0;
    int error;

    memset(k, 0, sizeof(*k));
    if ((error = ll_ytext_load(&k->y, text, len, WHAT)) < 0)
        return error;
    for (d = 0; d < k->y.ndocs; d++) {
        if (!(root = ll_ytext_root(&k->y.docs[d])))
            continue;
        if (k->root)
            return ll_error_set(LL_EINVALID, WHAT ": more than one yaml document");
        k->doc = &k->y.docs[d];
        k->root = root;
    }
    if (!k->root || k->root->type != YAML_MAPPING_NODE)
        return ll_error_set(LL_EINVALID, WHAT ": not a yaml mapping");
    for (pair = k->root->data.mapping.pairs.start; pair < k->root->data.mapping.pairs.top; pair++)
        if (ll_ytext_scalar_eq(ll_ytext_node(k->doc, pair->key), "resources", 9))
            seen++;
    if (seen > 1)
        return ll_error_set(LL_EINVALID, WHAT ": resources is listed more than once");
    k->pair = ll_ytext_map_pair(k->doc, k->root, "resources", 9);
    k->res = k->pair ? ll_ytext_node(k->doc, k->pair->value) : NULL;
    return load_entries(k);
}

static int check_entry(const char *entry)
{
    const unsigned char *p;
    json_t *s;

    if (!entry || !*entry)
        return ll_error_set(LL_EINVALID, WHAT ": empty resources entry");
    if (strlen(entry) > ENTRY_MAX)
        return ll_error_set(LL_EINVALID, WHAT ": resources entry longer than %d bytes", ENTRY_MAX);
    for (p = (const unsigned char *)entry; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return ll_error_set(LL_EINVALID, WHAT ": resources entry holds a control character");
    if (!(s = json_string(entry)))
        return ll_error_set(LL_EINVALID, WHAT ": resources entry is not valid utf-8");
    json_decref(s);
    return 0;
}

/* 1 when entry can be written as a plain scalar that every reader takes for
 * this string. */
static int plain_safe(const char *entry)
{
    const char *p;
    size_t n = strlen(entry);

    if (n == 0 || ll_yaml_plain_is_ambiguous(entry) || entry[n - 1] == ':')
        return 0;
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/", entry[0]))
        return 0;
    for (p = entry; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:@=+~-", *p))
            return 0;
    return 1;
}

/* entry as YAML text (new string). */
static int format_entry(char **out, size_t *out_len, const char *entry)
{
    if (plain_safe(entry)) {
        *out_len = strlen(entry);
        if (!(*out = strdup(entry)))
            return ll_error_set(LL_ERROR, "out of memory");
        return 0;
    }
    return ll_yaml_quote(out, out_len, entry, strlen(entry));
}

static size_t count_of(const json_t *entries, const char *entry)
{
    size_t i, n = 0;
    json_t *v;

    json_array_foreach(entries, i, v)
    {
        if (!strcmp(json_string_value(v), entry))
            n++;
    }
    return n;
}

static int copy_text(char **out, size_t *out_len, const char *text, size_t len)
{
    if (!(*out = malloc(len + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    if (len)
        memcpy(*out, text, len);
    (*out)[len] = '\0';
    if (out_len)
        *out_len = len;
    return 0;
}

/* A string of n spaces (new). */
static char *spaces(size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        memset(s, ' ', n);
        s[n] = '\0';
    }
    return s;
}

/* The offset of the '-' of a block sequence entry, which must be on the
 * entry's line after nothing but spaces; else 0 with *ok cleared. */
static size_t dash_of(const ll_ytext *y, const yaml_node_t *item, int *ok)
{
    size_t p = ll_ytext_start(y, item), ls, i;

    while (p > 0 && (y->text[p - 1] == ' ' || y->text[p - 1] == '\t'))
        p--;
    if (p == 0 || y->text[p - 1] != '-') {
        *ok = 0;
        return 0;
    }
    p--;
    ls = ll_ytext_line_start(y, p);
    for (i = ls; i < p; i++) {
        if (y->text[i] != ' ') {
            *ok = 0;
            return 0;
        }
    }
    return p;
}

/* Checks that every entry of the block sequence has its dash on its own
 * line; *out_dash is the last one's offset.  1 when they do not (the
 * caller rewrites the list), 0 when they do, or an error. */
static int block_layout(size_t *out_dash, kz *k)
{
    yaml_node_item_t *item;
    yaml_node_t *node;
    int ok = 1;

    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        if (!(node = ll_ytext_node(k->doc, *item)))
            return ll_error_set(LL_ERROR, "yaml document has a dangling node");
        *out_dash = dash_of(&k->y, node, &ok);
        if (!ok)
            return 1;
    }
    return 0;
}

/* Appends "- entry" lines for the entries of append after the sequence's
 * last entry, at the column of its dash (at offset dash). */
static int append_lines(ll_yedits *e, kz *k, const json_t *append, size_t dash)
{
    const ll_ytext *y = &k->y;
    const char *nl = ll_ytext_newline(y);
    char *pad = NULL, *fmt = NULL;
    size_t fmt_len = 0, i, pos;
    json_t *v;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if ((error = ll_ytext_after_node(&pos, y, k->doc, k->res)) < 0)
        goto done;
    if (!(pad = spaces(dash - ll_ytext_line_start(y, dash)))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    int no_final_newline = pos == y->len && (y->len == 0 || y->text[y->len - 1] != '\n');
    json_array_foreach(append, i, v)
    {
        free(fmt);
        fmt = NULL;
        if ((error = format_entry(&fmt, &fmt_len, json_string_value(v))) < 0)
            goto done;
        if (no_final_newline)
            error = ll_buf_printf(&line, "%s%s- %s", nl, pad, fmt);
        else
            error = ll_buf_printf(&line, "%s- %s%s", pad, fmt, nl);
        if (error < 0)
            goto done;
    }
    error = ll_yedits_add(e, pos, pos, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    free(fmt);
    return error;
}

/* Appends "- entry" after the sequence's last entry, at the column of its
 * dash (at offset dash). */
static int block_append(ll_yedits *e, kz *k, const char *entry, size_t dash)
{
    json_t *one = json_pack("[s]", entry);
    int error = one ? append_lines(e, k, one, dash) : ll_error_set(LL_ERROR, "out of memory");
    json_decref(one);
    return error;
}

/* The whole lines of one sequence entry: from its line's start to past the
 * line break after its content. */
static int entry_lines(size_t *out_start, size_t *out_end, const kz *k, yaml_node_t *node)
{
    const ll_ytext *y = &k->y;
    size_t end;
    int ok = 1, error;

    *out_start = ll_ytext_line_start(y, dash_of(y, node, &ok));
    if ((error = ll_ytext_content_end(&end, y, k->doc, node)) < 0)
        return error;
    end = ll_ytext_line_end(y, end);
    if (end < y->len)
        end += y->text[end] == '\r' ? 2 : 1;
    *out_end = end;
    return 0;
}

/* When the last range ends the text without a line break, it takes the
 * line break before it instead. */
static void take_break_before(size_t (*ranges)[2], size_t nrange, const ll_ytext *y)
{
    if (!nrange || ranges[nrange - 1][1] != y->len || y->len == 0 || y->text[y->len - 1] == '\n')
        return;
    size_t start = ranges[nrange - 1][0];
    if (start > 0 && y->text[start - 1] == '\n')
        start--;
    if (start > 0 && y->text[start - 1] == '\r')
        start--;
    ranges[nrange - 1][0] = start;
    if (nrange > 1 && ranges[nrange - 2][1] > start)
        ranges[nrange - 2][1] = start;
}

/* Removes the whole lines of entry: every copy, or (adding) every copy
 * after the first. */
static int block_remove(ll_yedits *e, kz *k, const char *entry, int adding)
{
    const ll_ytext *y = &k->y;
    size_t n = (size_t)(k->res->data.sequence.items.top - k->res->data.sequence.items.start);
    size_t(*ranges)[2] = NULL;
    size_t start, end, seen = 0, nrange = 0, i;
    yaml_node_item_t *item;
    int error = 0;

    if (!(ranges = calloc(n ? n : 1, sizeof(*ranges))))
        return ll_error_set(LL_ERROR, "out of memory");
    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        yaml_node_t *node = ll_ytext_node(k->doc, *item);
        if (!ll_ytext_scalar_eq(node, entry, strlen(entry)))
            continue;
        if (adding && seen++ == 0)
            continue;
        if ((error = entry_lines(&start, &end, k, node)) < 0)
            goto done;
        if (nrange && ranges[nrange - 1][1] >= start) {
            ranges[nrange - 1][1] = end;
        } else {
            ranges[nrange][0] = start;
            ranges[nrange][1] = end;
            nrange++;
        }
    }
    take_break_before(ranges, nrange, y);
    for (i = 0; i < nrange; i++)
        if (ranges[i][1] > ranges[i][0] &&
            (error = ll_yedits_add(e, ranges[i][0], ranges[i][1], 0, "", 0)) < 0)
            goto done;
done:
    free(ranges);
    return error;
}

/* Line edits on a block sequence.  Returns 1 when the sequence is not laid
 * out one entry per line (the caller rewrites it), 0 when the edits are
 * added, or an error. */
static int block_edits(ll_yedits *e, kz *k, const char *entry, int adding)
{
    size_t n = (size_t)(k->res->data.sequence.items.top - k->res->data.sequence.items.start);
    size_t dash = 0;
    int error;

    if ((error = block_layout(&dash, k)) != 0)
        return error;
    if (!adding && count_of(k->entries, entry) == n)
        return 1; /* nothing left: the caller writes [] */
    if (adding && count_of(k->entries, entry) == 0)
        return block_append(e, k, entry, dash);
    return block_remove(e, k, entry, adding);
}

/* No resources key in a block mapping: a new key after the mapping's last
 * line, with the entry (fmt) in a block list. */
static int add_key_block(ll_yedits *e, kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    const char *nl = ll_ytext_newline(y);
    size_t pos, indent = ll_ytext_map_indent(k->doc, k->root);
    char *pad = NULL;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if ((error = ll_ytext_after_node(&pos, y, k->doc, k->root)) < 0)
        goto done;
    if (!(pad = spaces(indent))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if (pos == y->len && (y->len == 0 || y->text[y->len - 1] != '\n'))
        error = ll_buf_printf(&line, "%s%sresources:%s%s  - %s", nl, pad, nl, pad, fmt);
    else
        error = ll_buf_printf(&line, "%sresources:%s%s  - %s%s", pad, nl, pad, fmt, nl);
    if (error == 0)
        error = ll_yedits_add(e, pos, pos, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    return error;
}

/* Replaces [start, end) with the entry (fmt) as a block list item on a
 * line of its own, indented two spaces more than the resources key. */
static int entry_line(ll_yedits *e, kz *k, size_t start, size_t end, const char *fmt)
{
    const ll_ytext *y = &k->y;
    yaml_node_t *key = ll_ytext_node(k->doc, k->pair->key);
    char *pad = NULL;
    ll_buf line;
    int error;

    ll_buf_init(&line, LL_YAML_TEXT_MAX);
    if (!(pad = spaces(key->start_mark.column + 2))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = ll_buf_printf(&line, "%s%s- %s", ll_ytext_newline(y), pad, fmt)) == 0)
        error = ll_yedits_add(e, start, end, 0, line.data, line.len);
done:
    ll_buf_free(&line);
    free(pad);
    return error;
}

/* `resources:` with nothing after it: the entry (fmt) on the next line. */
static int fill_empty_key(ll_yedits *e, kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    yaml_node_t *key = ll_ytext_node(k->doc, k->pair->key);
    size_t pos;
    int error;

    if ((error = ll_ytext_colon_after(&pos, y, ll_ytext_end(y, key))) < 0)
        return error;
    pos = ll_ytext_line_end(y, pos);
    return entry_line(e, k, pos, pos, fmt);
}

/* `resources: []` (how landlord seeds an empty tier) becomes a block list
 * holding the entry (fmt), as people write kustomizations. */
static int fill_empty_flow(ll_yedits *e, kz *k, const char *fmt)
{
    const ll_ytext *y = &k->y;
    size_t start = ll_ytext_start(y, k->res), end = ll_ytext_end(y, k->res);

    while (start > 0 && y->text[start - 1] == ' ')
        start--;
    return entry_line(e, k, start, end, fmt);
}

/* Edits that turn k's resources into want. */
static int plan_edits(ll_yedits *e, kz *k, const json_t *want, const char *entry, int adding)
{
    const ll_ytext *y = &k->y;
    char *flow = NULL, *fmt = NULL;
    size_t flow_len = 0, fmt_len = 0;
    int block_root = k->root->data.mapping.style != YAML_FLOW_MAPPING_STYLE;
    int error;

    if (ll_ytext_has_aliases(k->doc)) {
        error = ll_error_set(LL_EINVALID, WHAT ": files with yaml aliases cannot be edited");
        goto done;
    }
    if (k->res && ll_ytext_is_block_collection(k->res) &&
        (error = block_edits(e, k, entry, adding)) <= 0)
        goto done;
    if ((error = ll_yaml_flow(&flow, &flow_len, want)) < 0)
        goto done;
    if ((error = format_entry(&fmt, &fmt_len, entry)) < 0)
        goto done;
    if (!k->pair && block_root)
        error = add_key_block(e, k, fmt);
    else if (!k->pair)
        error = ll_ytext_insert_pair(e, y, k->doc, k->root, "\"resources\"", 11, flow, flow_len, 0);
    else if (block_root && ll_ytext_is_empty(k->res) && adding)
        error = fill_empty_key(e, k, fmt);
    else if (block_root && adding && k->res->type == YAML_SEQUENCE_NODE &&
             k->res->data.sequence.items.top == k->res->data.sequence.items.start)
        error = fill_empty_flow(e, k, fmt);
    else
        error = ll_ytext_replace_value(e, y, k->doc, k->root, k->pair, flow, flow_len);
done:
    free(flow);
    free(fmt);
    return error;
}

/* Applies the edits, then checks that the result lists want. */
static int finish(char **out, size_t *out_len, const char *text, size_t len, ll_yedits *e,
                  const json_t *want)
{
    char *res = NULL, why[LL_ERROR_MSG_MAX];
    size_t res_len = 0;
    kz check;
    int error;

    if ((error = ll_yedits_apply(&res, &res_len, text, len, e)) < 0)
        return error;
    error = kz_load(&check, res, res_len);
    if (error == 0 && !json_equal(check.entries, (json_t *)want)) {
        error = ll_error_set(LL_ERROR, WHAT ": edit did not give the resources intended");
    } else if (error < 0) {
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        error = ll_error_set(LL_ERROR, WHAT ": edit broke the file");
        ll_error_detail("%s", why);
    }
    kz_free(&check);
    if (error < 0) {
        free(res);
        return error;
    }
    *out = res;
    if (out_len)
        *out_len = res_len;
    return 0;
}

int ll_kustomize_resources(json_t **out, const char *text, size_t len)
{
    kz k;
    int error;

    *out = NULL;
    if ((error = kz_load(&k, text, len)) == 0) {
        *out = k.entries;
        k.entries = NULL;
    }
    kz_free(&k);
    return error;
}

/* What the list must become (a new array): entries without entry
 * (removing), or with entry once, at its first place or appended (adding);
 * count is how often entries holds it. */
static int want_of(json_t **out, const json_t *entries, const char *entry, int adding, size_t count)
{
    json_t *want = json_array(), *v;
    size_t i, seen = 0;

    if (!want)
        return ll_error_set(LL_ERROR, "out of memory");
    json_array_foreach(entries, i, v)
    {
        if (!strcmp(json_string_value(v), entry) && (!adding || seen++ > 0))
            continue;
        if (json_array_append(want, v) < 0)
            goto done;
    }
    if (adding && count == 0 && json_array_append_new(want, json_string(entry)) < 0)
        goto done;
    *out = want;
    return 0;
done:
    json_decref(want);
    return ll_error_set(LL_ERROR, "out of memory");
}

/* Shared body of add and remove. */
static int edit(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                const char *entry, int adding)
{
    ll_yedits edits;
    json_t *want = NULL;
    size_t count;
    kz k;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (changed)
        *changed = 0;
    ll_yedits_init(&edits);
    memset(&k, 0, sizeof(k));
    if ((error = check_entry(entry)) < 0)
        goto done;
    if ((error = kz_load(&k, text, len)) < 0)
        goto done;
    count = count_of(k.entries, entry);
    if ((adding && count == 1) || (!adding && count == 0)) {
        error = copy_text(out, out_len, text, len);
        goto done;
    }
    if ((error = want_of(&want, k.entries, entry, adding, count)) < 0)
        goto done;
    if ((error = plan_edits(&edits, &k, want, entry, adding)) < 0)
        goto done;
    if ((error = finish(out, out_len, text, len, &edits, want)) < 0)
        goto done;
    if (changed)
        *changed = 1;

done:
    ll_yedits_free(&edits);
    json_decref(want);
    kz_free(&k);
    return error;
}

int ll_kustomize_add(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                     const char *entry)
{
    return edit(out, out_len, changed, text, len, entry, 1);
}

int ll_kustomize_remove(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                        const char *entry)
{
    return edit(out, out_len, changed, text, len, entry, 0);
}

int ll_kustomize_new(char **out, size_t *out_len, const char *const *entries, size_t n)
{
    ll_buf b;
    json_t *seen = NULL, *want = NULL;
    char *fmt = NULL;
    size_t fmt_len = 0, i;
    kz check;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    memset(&check, 0, sizeof(check));
    ll_buf_init(&b, LL_YAML_TEXT_MAX);
    if (n && !entries) {
        error = ll_error_set(LL_EINVALID, WHAT ": no entries given");
        goto done;
    }
    if (!(seen = json_object()) || !(want = json_array())) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((error = ll_buf_adds(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\n"
                                 "kind: Kustomization\n")) < 0)
        goto done;
    if ((error = ll_buf_adds(&b, n ? "resources:\n" : "resources: []\n")) < 0)
        goto done;
    for (i = 0; i < n; i++) {
        if ((error = check_entry(entries[i])) < 0)
            goto done;
        if (json_object_get(seen, entries[i]))
            continue;
        if (json_object_set_new(seen, entries[i], json_true()) < 0 ||
            json_array_append_new(want, json_string(entries[i])) < 0) {
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        if ((error = format_entry(&fmt, &fmt_len, entries[i])) < 0)
            goto done;
        error = ll_buf_printf(&b, "  - %s\n", fmt);
        free(fmt);
        fmt = NULL;
        if (error < 0)
            goto done;
    }
    if ((error = kz_load(&check, b.data, b.len)) < 0)
        goto done;
    if (!json_equal(check.entries, want)) {
        error = ll_error_set(LL_ERROR, WHAT ": new file does not list the resources intended");
        goto done;
    }
    if (!(*out = ll_buf_steal(&b, out_len))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    error = 0;

done:
    kz_free(&check);
    ll_buf_free(&b);
    json_decref(seen);
    json_decref(want);
    free(fmt);
    return error;
}

/* One line-based edit of a block sequence for many entries: every copy of a
 * removed entry and every extra copy of a kept one goes, the new entries are
 * appended after the last line.  1 when the layout does not allow it. */
static int block_multi(ll_yedits *e, kz *k, const json_t *remove, const json_t *append)
{
    const ll_ytext *y = &k->y;
    yaml_node_item_t *item;
    yaml_node_t *node;
    json_t *seen = json_object();
    size_t dash = 0, start, end, kept = 0;
    int ok = 1, error = 0, last_goes = 0;

    for (item = k->res->data.sequence.items.start; item < k->res->data.sequence.items.top; item++) {
        char key[ENTRY_MAX + 1];
        node = ll_ytext_node(k->doc, *item);
        dash = dash_of(y, node, &ok);
        if (!ok) {
            error = 1;
            goto done;
        }
        snprintf(key, sizeof(key), "%.*s", (int)node->data.scalar.length,
                 (const char *)node->data.scalar.value);
        if (!json_object_get(remove, key) && !json_object_get(seen, key)) {
            json_object_set_new(seen, key, json_true());
            kept++;
            last_goes = 0;
            continue;
        }
        start = ll_ytext_line_start(y, dash);
        if ((error = ll_ytext_content_end(&end, y, k->doc, node)) < 0)
            goto done;
        end = ll_ytext_line_end(y, end);
        if (end < y->len)
            end += y->text[end] == '\r' ? 2 : 1;
        else {
            error = 1; /* the last line goes and has no line break: rewrite */
            goto done;
        }
        if ((error = ll_yedits_add(e, start, end, 0, "", 0)) < 0)
            goto done;
        last_goes = 1;
    }
    if (kept + json_array_size(append) == 0 || (last_goes && json_array_size(append))) {
        error = 1; /* empty result, or appending where the last line goes: rewrite */
        goto done;
    }
    if (json_array_size(append))
        error = append_lines(e, k, append, dash);
done:
    json_decref(seen);
    return error;
}

/* The edits of ll_kustomize_edit made one entry at a time (removals, then
 * the additions not also removed), for layouts block_multi cannot edit.
 * *out is new. */
static int edit_each(char **out, size_t *out_len, const char *text, size_t len, const json_t *add,
                     const json_t *remove, const json_t *drop)
{
    char *cur = NULL, *next = NULL;
    size_t cur_len = 0, next_len = 0, i;
    json_t *v;
    int ch, error;

    if ((error = copy_text(&cur, &cur_len, text, len)) < 0)
        return error;
    json_array_foreach(remove, i, v)
    {
        if ((error = ll_kustomize_remove(&next, &next_len, &ch, cur, cur_len,
                                         json_string_value(v))) < 0) {
            free(cur);
            return error;
        }
        free(cur);
        cur = next, cur_len = next_len;
    }
    json_array_foreach(add, i, v)
    {
        if (json_object_get(drop, json_string_value(v)))
            continue;
        if ((error = ll_kustomize_add(&next, &next_len, &ch, cur, cur_len, json_string_value(v))) <
            0) {
            free(cur);
            return error;
        }
        free(cur);
        cur = next, cur_len = next_len;
    }
    *out = cur;
    if (out_len)
        *out_len = cur_len;
    return 0;
}

int ll_kustomize_edit(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                      const json_t *add, const json_t *remove)
{
    ll_yedits edits;
    json_t *want = json_array(), *present = json_object(), *append = json_array(),
           *drop = json_object(), *v;
    size_t i;
    kz k;
    int error;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    *changed = 0;
    ll_yedits_init(&edits);
    memset(&k, 0, sizeof(k));
    json_array_foreach(add, i, v) if ((error = check_entry(json_string_value(v))) < 0) goto done;
    json_array_foreach(remove, i, v)
    {
        if ((error = check_entry(json_string_value(v))) < 0)
            goto done;
        json_object_set_new(drop, json_string_value(v), json_true());
    }
    if ((error = kz_load(&k, text, len)) < 0)
        goto done;
    /* What the list must become: kept entries once each, in order, then the
     * new ones. */
    json_array_foreach(k.entries, i, v)
    {
        const char *s = json_string_value(v);
        if (json_object_get(drop, s))
            continue;
        if (json_object_get(present, s))
            continue;
        json_object_set_new(present, s, json_true());
        json_array_append(want, v);
    }
    json_array_foreach(add, i, v)
    {
        const char *s = json_string_value(v);
        if (json_object_get(present, s) || json_object_get(drop, s))
            continue;
        json_object_set_new(present, s, json_true());
        json_array_append(want, v);
        json_array_append(append, v);
    }
    if (json_equal(want, k.entries)) {
        error = copy_text(out, out_len, text, len);
        goto done;
    }
    error = 1;
    if (k.res && ll_ytext_is_block_collection(k.res) && !ll_ytext_has_aliases(k.doc) &&
        (error = block_multi(&edits, &k, drop, append)) < 0)
        goto done;
    if (error == 1) {
        /* Any other layout: one entry at a time through the general path. */
        ll_yedits_free(&edits);
        if ((error = edit_each(out, out_len, text, len, add, remove, drop)) < 0)
            goto done;
        *changed = 1;
        goto done;
    }
    if ((error = finish(out, out_len, text, len, &edits, want)) < 0)
        goto done;
    *changed = 1;
done:
    ll_yedits_free(&edits);
    json_decref(want);
    json_decref(present);
    json_decref(append);
    json_decref(drop);
    kz_free(&k);
    return error;
}

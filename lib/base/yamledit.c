/* yamledit.c - edits of YAML text at the positions yamltext.c finds, and
 * YAML for new values.
 *
 * Edits are byte ranges of the original text with replacement text (an
 * ll_yedits list); they are sorted and applied in one pass into a new
 * buffer, so earlier edits never shift the positions of later ones.  On top
 * of them, ll_ytext_replace_value and ll_ytext_insert_pair change one
 * mapping entry in the style of the text around it (indentation, line
 * breaks).  New values are written as flow YAML (ll_yaml_flow) or
 * double-quoted scalars (ll_yaml_quote), escaping what a reader must not
 * see raw.
 *
 * Nothing here keeps global state; an ll_yedits belongs to the thread that
 * made it, and the ll_ytext it reads is borrowed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/util.h"
#include "yamltext.h"

/* Length of the code point at s that YAML must not see raw, else 0; *cp is
 * set to it. */
static size_t unsafe_char(const unsigned char *s, size_t left, unsigned *cp)
{
    if (s[0] == 0x7F) {
        *cp = 0x7F;
        return 1;
    }
    if (left >= 2 && s[0] == 0xC2 && s[1] >= 0x80 && s[1] <= 0x9F) {
        *cp = s[1];
        return 2;
    }
    if (left >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9)) {
        *cp = 0x2000u + (s[2] - 0x80u);
        return 3;
    }
    if (left >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) {
        *cp = 0xFEFF;
        return 3;
    }
    if (left >= 3 && s[0] == 0xEF && s[1] == 0xBF && (s[2] == 0xBE || s[2] == 0xBF)) {
        *cp = 0xFF00u + (s[2] - 0x80u + 0xC0u);
        return 3;
    }
    return 0;
}

int ll_yaml_flow(char **out, size_t *out_len, const json_t *v)
{
    char *json = NULL, *res = NULL;
    size_t len, need, i, w, k;
    unsigned cp;
    int error = -1;

    *out = NULL;
    json = json_dumps(v, JSON_ENCODE_ANY);
    if (!json) {
        ll_error_set(LL_ERROR, "cannot encode a value as json");
        goto done;
    }
    len = strlen(json);
    need = len;
    for (i = 0; i < len; i += w ? w : 1)
        if ((w = unsafe_char((unsigned char *)json + i, len - i, &cp)))
            need += 6 - w;
    if (need > LL_YAML_TEXT_MAX) {
        error = ll_error_set(LL_EINVALID, "value is larger than %zu bytes", LL_YAML_TEXT_MAX);
        goto done;
    }
    if (!(res = malloc(need + 1))) {
        ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    for (i = 0, k = 0; i < len; i += w ? w : 1) {
        if ((w = unsafe_char((unsigned char *)json + i, len - i, &cp))) {
            snprintf(res + k, 7, "\\u%04X", cp);
            k += 6;
        } else {
            res[k++] = json[i];
        }
    }
    res[k] = '\0';
    *out = res;
    res = NULL;
    if (out_len)
        *out_len = k;
    error = 0;

done:
    free(json);
    free(res);
    return error;
}

int ll_yaml_quote(char **out, size_t *out_len, const char *s, size_t len)
{
    json_t *str = json_stringn(s, len);
    int error;

    *out = NULL;
    if (!str)
        return ll_error_set(LL_EINVALID, "text is not valid utf-8");
    error = ll_yaml_flow(out, out_len, str);
    json_decref(str);
    return error;
}

void ll_yedits_init(ll_yedits *e)
{
    e->v = NULL;
    e->n = 0;
    e->alloc = 0;
}

int ll_yedits_add(ll_yedits *e, size_t start, size_t end, int order, const char *text,
                  size_t text_len)
{
    char *copy;

    if (start > end)
        return ll_error_set(LL_ERROR, "bad yaml edit range");
    if (ll_grow((void **)&e->v, &e->alloc, e->n, sizeof(*e->v)) < 0)
        return LL_ERROR;
    if (!(copy = malloc(text_len + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    if (text_len)
        memcpy(copy, text, text_len);
    copy[text_len] = '\0';
    e->v[e->n].start = start;
    e->v[e->n].end = end;
    e->v[e->n].order = order;
    e->v[e->n].seq = e->n;
    e->v[e->n].text = copy;
    e->v[e->n].text_len = text_len;
    e->n++;
    return 0;
}

static int cmp_edit(const void *a, const void *b)
{
    const ll_yedit *x = a, *y = b;

    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int ll_yedits_apply(char **out, size_t *out_len, const char *text, size_t len, ll_yedits *e)
{
    size_t total = len, i, k = 0, cursor = 0;
    char *res = NULL;
    int error = -1;

    *out = NULL;
    if (e->n)
        qsort(e->v, e->n, sizeof(*e->v), cmp_edit);
    for (i = 0; i < e->n; i++) {
        if (e->v[i].end > len || (i + 1 < e->n && e->v[i].end > e->v[i + 1].start)) {
            ll_error_set(LL_ERROR, "overlapping yaml edits at byte %zu", e->v[i].start);
            goto done;
        }
        total -= e->v[i].end - e->v[i].start;
        if (e->v[i].text_len > LL_YAML_TEXT_MAX || total > LL_YAML_TEXT_MAX - e->v[i].text_len) {
            error = ll_error_set(LL_EINVALID, "edited yaml would be larger than %zu bytes",
                                 LL_YAML_TEXT_MAX);
            goto done;
        }
        total += e->v[i].text_len;
    }
    if (total > LL_YAML_TEXT_MAX) {
        error = ll_error_set(LL_EINVALID, "edited yaml would be larger than %zu bytes",
                             LL_YAML_TEXT_MAX);
        goto done;
    }
    if (!(res = malloc(total + 1))) {
        ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    for (i = 0; i < e->n; i++) {
        memcpy(res + k, text + cursor, e->v[i].start - cursor);
        k += e->v[i].start - cursor;
        memcpy(res + k, e->v[i].text, e->v[i].text_len);
        k += e->v[i].text_len;
        cursor = e->v[i].end;
    }
    memcpy(res + k, text + cursor, len - cursor);
    k += len - cursor;
    res[k] = '\0';
    *out = res;
    res = NULL;
    if (out_len)
        *out_len = k;
    error = 0;

done:
    free(res);
    ll_yedits_free(e);
    return error;
}

void ll_yedits_free(ll_yedits *e)
{
    size_t i;

    if (!e)
        return;
    for (i = 0; i < e->n; i++)
        free(e->v[i].text);
    free(e->v);
    ll_yedits_init(e);
}

/* One piece of an edit's text. */
typedef struct piece {
    const char *s;
    size_t n;
} piece;

/* Adds an edit whose text is the pieces one after the other. */
static int add_pieces(ll_yedits *e, size_t start, size_t end, int order, const piece *p, size_t np)
{
    char *s;
    size_t n = 0, i, k = 0;
    int error;

    for (i = 0; i < np; i++) {
        if (p[i].n > LL_YAML_TEXT_MAX - n)
            return ll_error_set(LL_EINVALID, "yaml edit is larger than %zu bytes",
                                LL_YAML_TEXT_MAX);
        n += p[i].n;
    }
    if (!(s = malloc(n + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    for (i = 0; i < np; i++) {
        memcpy(s + k, p[i].s, p[i].n);
        k += p[i].n;
    }
    s[n] = '\0';
    error = ll_yedits_add(e, start, end, order, s, n);
    free(s);
    return error;
}

int ll_ytext_replace_value(ll_yedits *e, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *map,
                           yaml_node_pair_t *pair, const char *flow, size_t flow_len)
{
    yaml_node_t *key = ll_ytext_node(doc, pair->key), *value = ll_ytext_node(doc, pair->value);
    size_t colon, end, key_end;
    int error;

    if (!key || !value)
        return ll_error_set(LL_ERROR, "yaml document has a dangling node");
    key_end = ll_ytext_end(y, key);
    if (ll_ytext_is_block_collection(value) || ll_ytext_is_block_scalar(value)) {
        if ((error = ll_ytext_colon_after(&colon, y, key_end)) < 0)
            return error;
        if ((error = ll_ytext_content_end(&end, y, doc, value)) < 0)
            return error;
        end = ll_ytext_line_end(y, end);
        if (end < colon)
            return ll_error_set(LL_ERROR, "yaml value at line %zu ends before its key",
                                ll_ytext_line(y, colon));
        return add_pieces(e, colon, end, LL_YEDIT_ORDER_REPLACE,
                          (piece[]){{" ", 1}, {flow, flow_len}}, 2);
    }
    if (ll_ytext_is_empty(value)) {
        if (ll_ytext_colon_after(&colon, y, key_end) == 0)
            return add_pieces(e, colon, colon, LL_YEDIT_ORDER_REPLACE,
                              (piece[]){{" ", 1}, {flow, flow_len}}, 2);
        if (map->data.mapping.style != YAML_FLOW_MAPPING_STYLE)
            return LL_EINVALID; /* the message is set */
        return add_pieces(e, key_end, key_end, LL_YEDIT_ORDER_REPLACE,
                          (piece[]){{": ", 2}, {flow, flow_len}}, 2);
    }
    return ll_yedits_add(e, ll_ytext_start(y, value), ll_ytext_end(y, value),
                         LL_YEDIT_ORDER_REPLACE, flow, flow_len);
}

int ll_ytext_insert_pair(ll_yedits *e, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *map,
                         const char *key, size_t key_len, const char *flow, size_t flow_len,
                         int order)
{
    yaml_node_t *last;
    const char *nl = ll_ytext_newline(y);
    size_t pos, indent, nl_len = strlen(nl);
    char *pad = NULL;
    int error;

    if (map->type != YAML_MAPPING_NODE)
        return ll_error_set(LL_ERROR, "yaml insertion into a node that is not a mapping");
    if (map->data.mapping.style == YAML_FLOW_MAPPING_STYLE) {
        if (map->data.mapping.pairs.top == map->data.mapping.pairs.start) {
            pos = ll_ytext_end(y, map);
            if (pos == 0 || y->text[pos - 1] != '}')
                return ll_error_set(LL_EINVALID, "flow mapping at line %zu does not end in '}'",
                                    ll_ytext_line(y, pos));
            return add_pieces(e, pos - 1, pos - 1, order,
                              (piece[]){{key, key_len}, {": ", 2}, {flow, flow_len}}, 3);
        }
        last = ll_ytext_node(doc, map->data.mapping.pairs.top[-1].value);
        if (!last)
            return ll_error_set(LL_ERROR, "yaml document has a dangling node");
        if ((error = ll_ytext_content_end(&pos, y, doc, last)) < 0)
            return error;
        return add_pieces(e, pos, pos, order,
                          (piece[]){{", ", 2}, {key, key_len}, {": ", 2}, {flow, flow_len}}, 4);
    }
    if ((error = ll_ytext_after_node(&pos, y, doc, map)) < 0)
        return error;
    indent = ll_ytext_map_indent(doc, map);
    if (indent > 4096)
        return ll_error_set(LL_EINVALID, "yaml mapping at line %zu is indented too deep",
                            ll_ytext_line(y, pos));
    if (!(pad = malloc(indent + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    memset(pad, ' ', indent);
    pad[indent] = '\0';
    if (pos == y->len && (y->len == 0 || y->text[y->len - 1] != '\n'))
        /* The last line has no line break: start a new line, end without. */
        error = add_pieces(
            e, pos, pos, order,
            (piece[]){{nl, nl_len}, {pad, indent}, {key, key_len}, {": ", 2}, {flow, flow_len}}, 5);
    else
        error = add_pieces(
            e, pos, pos, order,
            (piece[]){{pad, indent}, {key, key_len}, {": ", 2}, {flow, flow_len}, {nl, nl_len}}, 5);
    free(pad);
    return error;
}

/* yamltext.c - YAML text with node positions (edits at them: yamledit.c).
 *
 * template.c and kustomize.c change YAML files that people and other tools
 * (Flux image automation) also write, so they edit the text instead of
 * emitting it again: everything they do not touch, comments included, keeps
 * its bytes.  ll_ytext_load() parses every document with libyaml's document
 * API (yaml_parser_load), which records a start and an end mark per node.
 *
 * libyaml 0.2.5 counts mark.index in characters, not bytes (checked with
 * non-ASCII text: "é" and "€" each advance it by one).  For text with any
 * byte >= 0x80 a table of the byte offset of every 64th character turns a
 * mark into a byte offset in at most 63 steps; pure ASCII text needs none.
 * The parser is told the input is UTF-8, so UTF-16 input is refused; a
 * leading UTF-8 byte order mark is not given to the parser at all (libyaml
 * would count it as a column and misjudge the first line's indentation) and
 * positions are offset by its 3 bytes.
 *
 * End marks of block collections point at the next token (often the next
 * line's key), so positions after a node come from its last descendant
 * (ll_ytext_content_end).  Walkers that follow node links stop at
 * LL_YAML_DEPTH_MAX: an alias may make a node its own descendant.
 *
 * Edits at these positions live in yamledit.c.
 *
 * Nothing here keeps global state; an ll_ytext belongs to the thread that
 * made it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/util.h"
#include "yamltext.h"

#define CKPT_STEP 64

static int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Builds the character → byte table when the text is not plain ASCII. */
static int build_ckpt(ll_ytext *y)
{
    size_t i, c = 0, nchars = 0;
    int ascii = 1;

    for (i = y->base; i < y->len; i++) {
        if ((unsigned char)y->text[i] >= 0x80)
            ascii = 0;
        if (!is_cont((unsigned char)y->text[i]))
            nchars++;
    }
    y->nchars = nchars;
    if (ascii)
        return 0;
    y->ckpt = malloc((nchars / CKPT_STEP + 1) * sizeof(*y->ckpt));
    if (!y->ckpt)
        return ll_error_set(LL_ERROR, "out of memory");
    for (i = y->base; i < y->len; i++) {
        if (is_cont((unsigned char)y->text[i]))
            continue;
        if (c % CKPT_STEP == 0)
            y->ckpt[c / CKPT_STEP] = i;
        c++;
    }
    return 0;
}

/* 1-based line and column of a byte offset (for reader errors, which libyaml
 * reports as a byte offset). */
static void line_col(size_t *line, size_t *col, const char *text, size_t len, size_t off)
{
    size_t i;

    *line = 1;
    *col = 1;
    if (off > len)
        off = len;
    for (i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (!is_cont((unsigned char)text[i])) {
            (*col)++;
        }
    }
}

static int parse_error(const yaml_parser_t *p, const char *text, size_t len, const char *what)
{
    size_t line, col;

    if (p->error == YAML_MEMORY_ERROR)
        return ll_error_set(LL_ERROR, "%s: out of memory while parsing yaml", what);
    if (p->error == YAML_READER_ERROR) {
        line_col(&line, &col, text, len, p->problem_offset);
    } else {
        line = p->problem_mark.line + 1;
        col = p->problem_mark.column + 1;
    }
    ll_error_set(LL_EINVALID, "%s: yaml error at line %zu column %zu: %s", what, line, col,
                 p->problem ? p->problem : "unknown problem");
    if (p->context)
        ll_error_detail("%s at line %zu", p->context, p->context_mark.line + 1);
    return LL_EINVALID;
}

int ll_ytext_load(ll_ytext *y, const char *text, size_t len, const char *what)
{
    int error = -1, parser_ready = 0;
    yaml_parser_t parser;

    memset(y, 0, sizeof(*y));
    y->text = text;
    y->len = len;
    if (!text) {
        error = ll_error_set(LL_EINVALID, "%s: no yaml text", what);
        goto done;
    }
    if (len > LL_YAML_TEXT_MAX) {
        error = ll_error_set(LL_EINVALID, "%s: yaml text is larger than %zu bytes", what,
                             LL_YAML_TEXT_MAX);
        goto done;
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        y->base = 3;
    if ((error = build_ckpt(y)) < 0)
        goto done;
    if (!yaml_parser_initialize(&parser)) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    parser_ready = 1;
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text + y->base, len - y->base);
    for (;;) {
        if (ll_grow((void **)&y->docs, &y->docs_alloc, y->ndocs, sizeof(*y->docs)) < 0) {
            error = LL_ERROR;
            goto done;
        }
        if (!yaml_parser_load(&parser, &y->docs[y->ndocs])) {
            error = parse_error(&parser, text + y->base, len - y->base, what);
            goto done;
        }
        if (!yaml_document_get_root_node(&y->docs[y->ndocs])) {
            yaml_document_delete(&y->docs[y->ndocs]);
            break;
        }
        y->ndocs++;
    }
    error = 0;

done:
    if (parser_ready)
        yaml_parser_delete(&parser);
    if (error < 0) {
        ll_ytext_free(y);
        y->text = text;
        y->len = len;
    }
    return error;
}

void ll_ytext_free(ll_ytext *y)
{
    size_t i;

    if (!y)
        return;
    for (i = 0; i < y->ndocs; i++)
        yaml_document_delete(&y->docs[i]);
    free(y->docs);
    free(y->ckpt);
    memset(y, 0, sizeof(*y));
}

size_t ll_ytext_pos(const ll_ytext *y, const yaml_mark_t *mark)
{
    size_t idx = mark->index, pos, k;

    if (!y->ckpt)
        return idx < y->len - y->base ? y->base + idx : y->len;
    if (idx >= y->nchars)
        return y->len;
    pos = y->ckpt[idx / CKPT_STEP];
    for (k = idx % CKPT_STEP; k > 0; k--) {
        pos++;
        while (pos < y->len && is_cont((unsigned char)y->text[pos]))
            pos++;
    }
    return pos;
}

size_t ll_ytext_start(const ll_ytext *y, const yaml_node_t *n)
{
    return ll_ytext_pos(y, &n->start_mark);
}

size_t ll_ytext_end(const ll_ytext *y, const yaml_node_t *n)
{
    return ll_ytext_pos(y, &n->end_mark);
}

yaml_node_t *ll_ytext_node(yaml_document_t *doc, yaml_node_item_t id)
{
    return yaml_document_get_node(doc, id);
}

yaml_node_t *ll_ytext_root(yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (!root || ll_ytext_is_empty(root))
        return NULL;
    return root;
}

int ll_ytext_scalar_eq(const yaml_node_t *n, const char *s, size_t s_len)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == s_len &&
           memcmp(n->data.scalar.value, s, s_len) == 0;
}

int ll_ytext_is_empty(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           n->data.scalar.length == 0 && n->start_mark.index == n->end_mark.index;
}

int ll_ytext_is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    size_t i;

    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (ll_ytext_scalar_eq(n, nulls[i], strlen(nulls[i])))
            return 1;
    return 0;
}

int ll_ytext_is_block_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE &&
           (n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
            n->data.scalar.style == YAML_FOLDED_SCALAR_STYLE);
}

int ll_ytext_is_block_collection(const yaml_node_t *n)
{
    return n &&
           ((n->type == YAML_MAPPING_NODE && n->data.mapping.style != YAML_FLOW_MAPPING_STYLE) ||
            (n->type == YAML_SEQUENCE_NODE && n->data.sequence.style != YAML_FLOW_SEQUENCE_STYLE));
}

yaml_node_pair_t *ll_ytext_map_pair(yaml_document_t *doc, yaml_node_t *map, const char *key,
                                    size_t key_len)
{
    yaml_node_pair_t *pair;

    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++)
        if (ll_ytext_scalar_eq(ll_ytext_node(doc, pair->key), key, key_len))
            return pair;
    return NULL;
}

yaml_node_t *ll_ytext_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *pair = ll_ytext_map_pair(doc, map, key, strlen(key));

    return pair ? ll_ytext_node(doc, pair->value) : NULL;
}

int ll_ytext_has_aliases(yaml_document_t *doc)
{
    size_t n = (size_t)(doc->nodes.top - doc->nodes.start), i;
    unsigned char *refs;
    yaml_node_t *node;
    yaml_node_item_t *item;
    yaml_node_pair_t *pair;
    int found = 0;

    if (n == 0)
        return 0;
    refs = calloc(n + 1, 1);
    if (!refs)
        return 1; /* cannot tell: assume the worst */
    for (i = 0; i < n && !found; i++) {
        node = doc->nodes.start + i;
        if (node->type == YAML_SEQUENCE_NODE) {
            for (item = node->data.sequence.items.start; item < node->data.sequence.items.top;
                 item++)
                if (*item >= 1 && (size_t)*item <= n && refs[*item]++)
                    found = 1;
        } else if (node->type == YAML_MAPPING_NODE) {
            for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top;
                 pair++) {
                if (pair->key >= 1 && (size_t)pair->key <= n && refs[pair->key]++)
                    found = 1;
                if (pair->value >= 1 && (size_t)pair->value <= n && refs[pair->value]++)
                    found = 1;
            }
        }
    }
    /* The root (node 1) is nobody's child unless an alias points at it. */
    if (refs[1])
        found = 1;
    free(refs);
    return found;
}

static int cmp_key(const void *a, const void *b)
{
    const yaml_node_t *x = *(const yaml_node_t *const *)a, *y = *(const yaml_node_t *const *)b;
    size_t n = x->data.scalar.length < y->data.scalar.length ? x->data.scalar.length
                                                             : y->data.scalar.length;
    int c = memcmp(x->data.scalar.value, y->data.scalar.value, n);

    if (c)
        return c;
    if (x->data.scalar.length != y->data.scalar.length)
        return x->data.scalar.length < y->data.scalar.length ? -1 : 1;
    return x->start_mark.index < y->start_mark.index ? -1
                                                     : x->start_mark.index > y->start_mark.index;
}

int ll_ytext_dup_key(size_t *line, yaml_document_t *doc)
{
    yaml_node_t *node, *key, **keys = NULL;
    yaml_node_pair_t *pair;
    size_t n, i, k;
    int found = 0;

    for (node = doc->nodes.start; node < doc->nodes.top && !found; node++) {
        if (node->type != YAML_MAPPING_NODE)
            continue;
        n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
        if (n < 2)
            continue;
        keys = malloc(n * sizeof(*keys));
        if (!keys)
            return -1;
        k = 0;
        for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top; pair++) {
            key = ll_ytext_node(doc, pair->key);
            if (key && key->type == YAML_SCALAR_NODE)
                keys[k++] = key;
        }
        qsort(keys, k, sizeof(*keys), cmp_key);
        for (i = 1; i < k; i++) {
            if (keys[i]->data.scalar.length == keys[i - 1]->data.scalar.length &&
                memcmp(keys[i]->data.scalar.value, keys[i - 1]->data.scalar.value,
                       keys[i]->data.scalar.length) == 0) {
                *line = keys[i]->start_mark.line + 1;
                found = 1;
                break;
            }
        }
        free(keys);
        keys = NULL;
    }
    return found;
}

/* The deepest last entry of n: where the text of n ends. */
static int last_node(yaml_node_t **out, yaml_document_t *doc, yaml_node_t *n)
{
    yaml_node_t *next;
    int depth;

    for (depth = 0; depth <= LL_YAML_DEPTH_MAX; depth++) {
        next = NULL;
        if (n->type == YAML_SEQUENCE_NODE && n->data.sequence.style != YAML_FLOW_SEQUENCE_STYLE &&
            n->data.sequence.items.top > n->data.sequence.items.start)
            next = ll_ytext_node(doc, n->data.sequence.items.top[-1]);
        else if (n->type == YAML_MAPPING_NODE && n->data.mapping.style != YAML_FLOW_MAPPING_STYLE &&
                 n->data.mapping.pairs.top > n->data.mapping.pairs.start)
            next = ll_ytext_node(doc, n->data.mapping.pairs.top[-1].value);
        if (!next) {
            *out = n;
            return 0;
        }
        n = next;
    }
    return ll_error_set(LL_EINVALID, "yaml nested more than %d levels deep at line %zu",
                        LL_YAML_DEPTH_MAX, n->start_mark.line + 1);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* End of a node's own text: block scalars lose their trailing line breaks. */
static size_t own_end(const ll_ytext *y, const yaml_node_t *n)
{
    size_t s = ll_ytext_start(y, n), e = ll_ytext_end(y, n);

    if (ll_ytext_is_block_scalar(n))
        while (e > s + 1 && is_space(y->text[e - 1]))
            e--;
    return e;
}

int ll_ytext_content_end(size_t *out, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *n)
{
    yaml_node_t *last;
    int error;

    if ((error = last_node(&last, doc, n)) < 0)
        return error;
    *out = own_end(y, last);
    return 0;
}

/* 1 when a block scalar keeps its trailing line breaks ("|+", ">-" is not). */
static int keeps_breaks(const ll_ytext *y, const yaml_node_t *n)
{
    size_t p = ll_ytext_start(y, n), e = ll_ytext_line_end(y, p), k;

    for (; p < e; p++) {
        if ((y->text[p] == '|' || y->text[p] == '>') &&
            (p == ll_ytext_start(y, n) || y->text[p - 1] == ' ' || y->text[p - 1] == '\t')) {
            for (k = p + 1; k < e && k <= p + 2; k++)
                if (y->text[k] == '+')
                    return 1;
            return 0;
        }
    }
    return 0;
}

int ll_ytext_after_node(size_t *out, const ll_ytext *y, yaml_document_t *doc, yaml_node_t *n)
{
    yaml_node_t *last;
    const char *nl;
    size_t e;
    int error;

    if ((error = last_node(&last, doc, n)) < 0)
        return error;
    if (ll_ytext_is_block_scalar(last) && keeps_breaks(y, last)) {
        e = ll_ytext_end(y, last);
        if (e == y->len || (e > 0 && y->text[e - 1] == '\n')) {
            *out = e;
            return 0;
        }
    }
    e = own_end(y, last);
    nl = memchr(y->text + e, '\n', y->len - e);
    *out = nl ? (size_t)(nl - y->text) + 1 : y->len;
    return 0;
}

size_t ll_ytext_line_end(const ll_ytext *y, size_t pos)
{
    const char *nl;
    size_t q;

    if (pos >= y->len)
        return y->len;
    nl = memchr(y->text + pos, '\n', y->len - pos);
    if (!nl)
        return y->len;
    q = (size_t)(nl - y->text);
    if (q > pos && y->text[q - 1] == '\r')
        q--;
    return q;
}

size_t ll_ytext_line_start(const ll_ytext *y, size_t pos)
{
    if (pos > y->len)
        pos = y->len;
    while (pos > 0 && y->text[pos - 1] != '\n')
        pos--;
    return pos;
}

int ll_ytext_colon_after(size_t *out, const ll_ytext *y, size_t key_end)
{
    size_t p = key_end, line, col;

    while (p < y->len && (y->text[p] == ' ' || y->text[p] == '\t'))
        p++;
    if (p < y->len && y->text[p] == ':') {
        *out = p + 1;
        return 0;
    }
    line_col(&line, &col, y->text, y->len, key_end);
    return ll_error_set(LL_EINVALID,
                        "yaml key ending at line %zu column %zu has no ':' on its line", line, col);
}

size_t ll_ytext_map_indent(yaml_document_t *doc, yaml_node_t *map)
{
    yaml_node_t *key;

    if (map->type == YAML_MAPPING_NODE &&
        map->data.mapping.pairs.top > map->data.mapping.pairs.start) {
        key = ll_ytext_node(doc, map->data.mapping.pairs.start[0].key);
        if (key)
            return key->start_mark.column;
    }
    return map->start_mark.column;
}

const char *ll_ytext_newline(const ll_ytext *y)
{
    const char *nl = y->len ? memchr(y->text, '\n', y->len) : NULL;

    return nl && nl > y->text && nl[-1] == '\r' ? "\r\n" : "\n";
}

size_t ll_ytext_line(const ll_ytext *y, size_t pos)
{
    size_t line, col;

    line_col(&line, &col, y->text, y->len, pos);
    return line;
}

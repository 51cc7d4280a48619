/* yamlread.c - YAML as a reader takes it: which plain scalars are not
 * plainly strings, and YAML read into jansson values.
 *
 * ll_yaml_plain_is_ambiguous() says whether a YAML 1.1 or 1.2 reader could
 * take a plain scalar for something else than a string (booleans of
 * either version, nulls, numbers in any base, timestamps...): rendering
 * (template.c) and the kustomization editor quote such values.
 * ll_yaml_load_json() reads every document of a text into a jansson array,
 * for callers and tests that need the data rather than the text: the core
 * schema's booleans, nulls and decimal integers, strings for the rest;
 * keys must be strings and unique; nesting and alias expansion are
 * bounded (LL_YAML_DEPTH_MAX, ALIAS_BUDGET beyond a document's nodes).
 *
 * Pure: no state beyond the call; reentrant.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "landlord/error.h"
#include "landlord/template.h"
#include "base/yamltext.h"
#include "template_int.h"

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

static int node_json(json_t **out, load_ctx *c, yaml_node_t *n, int depth);

/* A sequence's items into the new array *out. */
static int seq_json(json_t **out, load_ctx *c, yaml_node_t *n, int depth)
{
    json_t *v = json_array(), *child = NULL;
    yaml_node_item_t *item;
    yaml_node_t *value;
    int error = 0;

    if (!v) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    for (item = n->data.sequence.items.start; item < n->data.sequence.items.top; item++) {
        if (!(value = ll_ytext_node(c->doc, *item))) {
            error = ll_error_set(LL_ERROR, "yaml document has a dangling node");
            goto done;
        }
        if ((error = node_json(&child, c, value, depth + 1)) < 0)
            goto done;
        if (json_array_append_new(v, child) < 0) {
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
    }
    *out = v;
    v = NULL;
done:
    json_decref(v);
    return error;
}

/* A mapping's pairs into the new object *out: keys are strings (without
 * NUL bytes), unique and valid UTF-8. */
static int map_json(json_t **out, load_ctx *c, yaml_node_t *n, int depth)
{
    json_t *v = json_object(), *child = NULL;
    yaml_node_pair_t *pair;
    yaml_node_t *key, *value;
    int error = 0;

    if (!v) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
        key = ll_ytext_node(c->doc, pair->key);
        value = ll_ytext_node(c->doc, pair->value);
        if (!key || !value) {
            error = ll_error_set(LL_ERROR, "yaml document has a dangling node");
            goto done;
        }
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
            error = ll_error_set(LL_EINVALID, "yaml mapping key at line %zu is not valid utf-8",
                                 key->start_mark.line + 1);
            goto done;
        }
    }
    *out = v;
    v = NULL;
done:
    json_decref(v);
    return error;
}

/* Node n as a new jansson value *out, at nesting depth, within c's alias
 * budget. */
static int node_json(json_t **out, load_ctx *c, yaml_node_t *n, int depth)
{
    *out = NULL;
    if (depth > LL_YAML_DEPTH_MAX) {
        ll_error_set(LL_EINVALID, "yaml nested more than %d levels deep at line %zu",
                     LL_YAML_DEPTH_MAX, n->start_mark.line + 1);
        return LL_EINVALID;
    }
    if (c->budget == 0) {
        ll_error_set(LL_EINVALID, "yaml aliases expand to too many nodes");
        return LL_EINVALID;
    }
    c->budget--;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (!(*out = scalar_json(n))) {
            ll_error_set(LL_EINVALID, "yaml scalar at line %zu is not valid utf-8",
                         n->start_mark.line + 1);
            return LL_EINVALID;
        }
        return 0;
    case YAML_SEQUENCE_NODE:
        return seq_json(out, c, n, depth);
    case YAML_MAPPING_NODE:
        return map_json(out, c, n, depth);
    default:
        return ll_error_set(LL_ERROR, "yaml document has a dangling node");
    }
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

/* kustomize_doc.c - a kustomization as a document: reading it (libyaml,
 * with positions, through yamltext.h), the rules of a resources entry and
 * how one is written (plain when no YAML reader could misread it, else
 * double-quoted), a new kustomization, and the check every edit of
 * kustomize.c ends with: the result is parsed again and must list the
 * resources intended.
 *
 * Reentrant; no global state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "base/yamltext.h"
#include "kustomize_int.h"

void ll_kz_free(ll_kz *k)
{
    json_decref(k->entries);
    k->entries = NULL;
    ll_ytext_free(&k->y);
}

/* k->entries (a new array): the strings of the resources sequence, none
 * when it is absent or null. */
static int load_entries(ll_kz *k)
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

int ll_kz_load(ll_kz *k, const char *text, size_t len)
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

int ll_kz_check_entry(const char *entry)
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
int ll_kz_format_entry(char **out, size_t *out_len, const char *entry)
{
    if (plain_safe(entry)) {
        *out_len = strlen(entry);
        if (!(*out = strdup(entry)))
            return ll_error_set(LL_ERROR, "out of memory");
        return 0;
    }
    return ll_yaml_quote(out, out_len, entry, strlen(entry));
}

size_t ll_kz_count_of(const json_t *entries, const char *entry)
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

int ll_kz_copy_text(char **out, size_t *out_len, const char *text, size_t len)
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
char *ll_kz_spaces(size_t n)
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
size_t ll_kz_dash_of(const ll_ytext *y, const yaml_node_t *item, int *ok)
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

/* Applies the edits, then checks that the result lists want. */
int ll_kz_finish(char **out, size_t *out_len, const char *text, size_t len, ll_yedits *e,
                 const json_t *want)
{
    char *res = NULL, why[LL_ERROR_MSG_MAX];
    size_t res_len = 0;
    ll_kz check;
    int error;

    if ((error = ll_yedits_apply(&res, &res_len, text, len, e)) < 0)
        return error;
    error = ll_kz_load(&check, res, res_len);
    if (error == 0 && !json_equal(check.entries, (json_t *)want)) {
        error = ll_error_set(LL_ERROR, WHAT ": edit did not give the resources intended");
    } else if (error < 0) {
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        error = ll_error_set(LL_ERROR, WHAT ": edit broke the file");
        ll_error_detail("%s", why);
    }
    ll_kz_free(&check);
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
    ll_kz k;
    int error;

    *out = NULL;
    if ((error = ll_kz_load(&k, text, len)) == 0) {
        *out = k.entries;
        k.entries = NULL;
    }
    ll_kz_free(&k);
    return error;
}
int ll_kustomize_new(char **out, size_t *out_len, const char *const *entries, size_t n)
{
    ll_buf b;
    json_t *seen = NULL, *want = NULL;
    char *fmt = NULL;
    size_t fmt_len = 0, i;
    ll_kz check;
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
        if ((error = ll_kz_check_entry(entries[i])) < 0)
            goto done;
        if (json_object_get(seen, entries[i]))
            continue;
        if (json_object_set_new(seen, entries[i], json_true()) < 0 ||
            json_array_append_new(want, json_string(entries[i])) < 0) {
            error = ll_error_set(LL_ERROR, "out of memory");
            goto done;
        }
        if ((error = ll_kz_format_entry(&fmt, &fmt_len, entries[i])) < 0)
            goto done;
        error = ll_buf_printf(&b, "  - %s\n", fmt);
        free(fmt);
        fmt = NULL;
        if (error < 0)
            goto done;
    }
    if ((error = ll_kz_load(&check, b.data, b.len)) < 0)
        goto done;
    if (!json_equal(check.entries, want)) {
        error = ll_error_set(LL_ERROR, WHAT ": new file does not list the resources intended");
        goto done;
    }
    if (!(*out = ll_buf_steal(out_len, &b))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    error = 0;

done:
    ll_kz_free(&check);
    ll_buf_free(&b);
    json_decref(seen);
    json_decref(want);
    free(fmt);
    return error;
}

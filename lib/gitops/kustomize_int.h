/* kustomize_int.h - a kustomization as a document (kustomize_doc.c), for
 * the editor (kustomize.c); private to lib/gitops. */
#ifndef LANDLORD_KUSTOMIZE_INT_H
#define LANDLORD_KUSTOMIZE_INT_H

#include <stddef.h>
#include <jansson.h>
#include <yaml.h>

#include "base/yamltext.h"

#define WHAT "kustomization"

/* Longest entry accepted. */
#define ENTRY_MAX 4096

/* A kustomization parsed with positions, and its resources. */
typedef struct ll_kz {
    ll_ytext y;
    yaml_document_t *doc;
    yaml_node_t *root;
    yaml_node_pair_t *pair; /* the resources pair, or NULL */
    yaml_node_t *res;       /* its value, or NULL */
    json_t *entries;        /* the entries as strings */
} ll_kz;

/* Parses text[0..len) into *k (the caller's, freed with ll_kz_free()
 * whatever this returns): one YAML mapping with at most one resources key,
 * whose value is absent, null or a sequence of strings (k->entries).
 * LL_EINVALID saying what is wrong. */
int ll_kz_load(ll_kz *k, const char *text, size_t len);
void ll_kz_free(ll_kz *k);

/* An entry landlord may write: 1 to ENTRY_MAX bytes of UTF-8 without
 * control characters. */
int ll_kz_check_entry(const char *entry);

/* entry as YAML text: plain when no YAML reader could misread it, else
 * double-quoted.  *out is new. */
int ll_kz_format_entry(char **out, size_t *out_len, const char *entry);

/* How often entries (an array of strings) holds entry. */
size_t ll_kz_count_of(const json_t *entries, const char *entry);

/* A NUL-terminated copy of text[0..len) as the new *out. */
int ll_kz_copy_text(char **out, size_t *out_len, const char *text, size_t len);

/* A string of n spaces (new), or NULL. */
char *ll_kz_spaces(size_t n);

/* The offset of the '-' of a block sequence entry, which must be on the
 * entry's line after nothing but spaces; else 0 with *ok cleared. */
size_t ll_kz_dash_of(const ll_ytext *y, const yaml_node_t *item, int *ok);

/* Applies the edits e to text[0..len), then checks that the result lists
 * want (a difference is an internal error, -1).  *out is new. */
int ll_kz_finish(char **out, size_t *out_len, const char *text, size_t len, ll_yedits *e,
                 const json_t *want);

#endif

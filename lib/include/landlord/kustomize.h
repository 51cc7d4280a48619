/* kustomize.h - editing kustomization.yaml files as YAML.
 *
 * The file is parsed with libyaml and the `resources` sequence changed through
 * edits at the positions the parser reports, so the rest of the file (comments,
 * indentation, a missing final newline) stays byte for byte.  An entry is never
 * listed twice: adding removes duplicates, removing removes every copy.
 *
 * New entries go on a new line "- entry" at the column of the existing
 * dashes (two spaces in from `resources:` when there are none); entries are
 * written plain when no YAML reader could misread them (letters, digits and
 * ._/:@=+~- only, not like a number, boolean, null or date), else
 * double-quoted.  A flow list (`resources: [a, b]`) or `resources: null` is
 * rewritten as a JSON flow list; removing the last entry of a block list
 * writes `resources: []`.  Entries must be non-empty UTF-8 without control
 * characters.  A file with more than one document is refused (LL_EINVALID),
 * and so is editing one that uses YAML aliases; messages start with
 * "kustomization: ".
 *
 * Ownership: text and entries are borrowed for the call; `char **out`
 * receives a new NUL-terminated buffer the caller frees (free).
 */
#ifndef LANDLORD_KUSTOMIZE_H
#define LANDLORD_KUSTOMIZE_H

#include <stddef.h>
#include <jansson.h>

/* The entries of `resources` as a new JSON array of strings (empty when the
 * key is missing).  LL_EINVALID when text is not a YAML mapping or resources
 * is not a sequence of strings. */
int ll_kustomize_resources(json_t **out, const char *text, size_t len);

/* Makes entry appear exactly once in resources (appended at the end when it
 * was missing).  *out is a new buffer (caller frees); *changed is 0 when the
 * text already listed entry exactly once, and then *out is a copy of text. */
int ll_kustomize_add(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                     const char *entry);

/* Removes every copy of entry from resources; *changed as above. */
int ll_kustomize_remove(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                        const char *entry);

/* Many changes at once (one parse): every entry of add (an array of
 * strings) appears exactly once, every entry of remove appears no more (an
 * entry in both is removed), other entries keep their order with duplicates
 * dropped, new ones are appended in order.  *changed as above. */
int ll_kustomize_edit(char **out, size_t *out_len, int *changed, const char *text, size_t len,
                      const json_t *add, const json_t *remove);

/* A new kustomization.yaml listing entries in order (kustomize.config.k8s.io/v1beta1). */
int ll_kustomize_new(char **out, size_t *out_len, const char *const *entries, size_t n);

#endif

/* validate.h - rules for ids, releases and chart values taken from requests.
 *
 * Every function returns 0 or LL_EINVALID with a message and the field at
 * fault set through ll_error_set()/ll_error_field().
 */
#ifndef LANDLORD_VALIDATE_H
#define LANDLORD_VALIDATE_H

#include <stddef.h>
#include <jansson.h>

#define LL_TENANT_ID_MAX    40
#define LL_VALUES_DEPTH_MAX 16

/* A DNS-1123 label of 1..max characters: [a-z0-9]([-a-z0-9]*[a-z0-9])?.
 * field names the request field for the error. */
int ll_validate_label(const char *s, size_t max, const char *field);

/* A tenant id: a DNS-1123 label of at most LL_TENANT_ID_MAX characters that is
 * not "default", "flux-system" or "kube-*".  Pool environment names are
 * checked by the caller, which knows them. */
int ll_validate_tenant_id(const char *id);

/* A release: "1.2.3" (pinned), "1.2" or "1.2.x" (floating on the patch). */
int ll_validate_release(const char *release);

/* The chart version expression for a valid release: "1.2" and "1.2.x" give
 * "1.2.x", "1.2.3" gives "1.2.3".  out has room for cap bytes. */
int ll_release_expr(char *out, size_t cap, const char *release);

/* 1 when a valid release pins an exact version ("1.2.3"), 0 when it
 * floats ("1.2", "1.2.x"). */
int ll_release_pinned(const char *release);

/* Compares semantic versions: numbers, then a pre-release before none, then
 * pre-releases as text; build metadata is ignored.  <0, 0, >0. */
int ll_semver_cmp(const char *a, const char *b);

/* Chart value overrides: a JSON object, nested at most LL_VALUES_DEPTH_MAX
 * deep, with no "${" in any key or string (Flux's postBuild substitution would
 * expand it). */
int ll_validate_values(const json_t *values);

#endif

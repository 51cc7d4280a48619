/* ids.h - whether a tenant id may be taken: the names and namespaces it
 * would own (ids.c).  Private to lib/.
 *
 * Every function refuses with LL_EINVALID, a message naming the rule and
 * the request field at fault (ll_core_field_error); 0 when the id may be
 * taken.
 */
#ifndef LANDLORD_IDS_H
#define LANDLORD_IDS_H

#include <jansson.h>

#include "core_int.h"
#include "landlord/tiers.h"

/* The namespaces tenant id would own under tier template tmpl (len
 * bytes), rendered with tier and release: every Namespace the rendered
 * template declares, and every namespace its objects are placed in or
 * deploy to (metadata.namespace, a HelmRelease's spec.targetNamespace and
 * spec.storageNamespace) that is made from the id, i.e. differs when the
 * template is rendered for another id.  *out: a new array of distinct
 * names.  Returns 0, or the render's error (LL_EINVALID). */
int ll_ids_namespaces(json_t **out, const char *tmpl, size_t len, const char *id, const char *tier,
                      const char *release);

/* Onboarding, any tier: refuses an id matching the reserved-namespaces
 * list, the flux-namespace, or a pool environment of catalogue tiers
 * (field "id"). */
int ll_ids_check_name(ll_core *c, const ll_tier_catalogue *tiers, const char *id);

/* Onboarding (from_tier NULL) or a move from from_tier to tier: refuses
 * when a namespace the id would own in tier (and did not own in
 * from_tier) is reserved (as ll_ids_check_name), is declared by another
 * tenant's file, or exists in the followed cluster without having been
 * made for this tenant: applied by landlord's own Kustomization (its
 * kustomize.toolkit.fluxcd.io/name and /namespace labels) and either
 * declared by this tenant's file or labelled landlord.dev/tenant=<id>.
 * field names the request field (e.g. "id", "tier").  Without a cluster,
 * or before the cluster's namespaces were ever listed, only the reserved
 * names are checked. */
int ll_ids_check_namespaces(ll_core *c, const ll_tier_catalogue *tiers, const char *id,
                            const char *tier, const char *release, const char *from_tier,
                            const char *field);

#endif

/* tiers.h - the tier catalogue, read from the repository.
 *
 * A tier exists when <root>/tier-templates/<tier>_tenant_template.yaml does.
 * The catalogue is an immutable JSON snapshot shared between threads:
 *   {"tiers": {"<name>": {"name", "template", "template_path",
 *                          "deployment_model", "pools",
 *                          "policy": {"status": "ok"} or
 *                                    {"status": "violated", "rule", "error"},
 *                          "locked_values": ["/tenantId", ...]}},
 *    "pools": ["pool-1", ...],
 *    "pool_versions": {"pool-1": "<chart version its file asks for>", ...}}
 *
 * Ownership: JSON arguments are borrowed for the call; results say
 * whether they are new references or borrowed from the catalogue.
 */
#ifndef LANDLORD_TIERS_H
#define LANDLORD_TIERS_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/template.h"

/* Builds a catalogue.  files maps repository paths to file contents for
 * <root>/tier-templates/\*.yaml, <root>/pooled-envs/kustomization.yaml and
 * the pool environments it lists (<root>/pooled-envs/<pool>.yaml).
 * Templates that do not render for a sample tenant are left out with a
 * warning; templates that break policy (NULL: the defaults) stay, marked
 * "violated" with the rule and a warning.  policy->pools is used only when
 * files list no pool environment.  Returns a new reference (never NULL
 * unless out of memory). */
json_t *ll_tiers_build(const json_t *files, const char *root, const ll_tier_policy *policy);

/* 0 when tenants may be rendered from tier (a catalogue entry), else
 * LL_ECONFLICT naming the rule its template breaks (field "tier"). */
int ll_tiers_usable(const json_t *tier);

/* ll_template_check_values() with the tier's locked values: 0 or
 * LL_EINVALID naming the path. */
int ll_tiers_check_values(const json_t *tier, const json_t *values);

/* The tiers check of /readyz: {"status": "ok"}, or {"status": "failed",
 * "violations": [{"tier", "rule", "error"}]}.  A new reference. */
json_t *ll_tiers_health(const json_t *catalogue);

/* The tier named name in catalogue (borrowed), or NULL. */
const json_t *ll_tiers_find(const json_t *catalogue, const char *name);

/* Where a tier's template lives in the repository:
 * <root>/tier-templates/<tier>_tenant_template.yaml (the reference's
 * layout; root "" is the repository's top).  Cut to cap. */
void ll_tier_template_path(char *out, size_t cap, const char *root, const char *tier);

/* 1 when name is a pool environment of the catalogue. */
int ll_tiers_is_pool(const json_t *catalogue, const char *name);

#endif

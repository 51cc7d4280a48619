/* tiers.h - the tier catalogue, read from the repository.
 *
 * A tier exists when <root>/tier-templates/<tier>_tenant_template.yaml does.
 * The catalogue is an immutable JSON snapshot shared between threads:
 *   {"tiers": {"<name>": {"name", "template", "template_path",
 *                          "deployment_model", "pools"}},
 *    "pools": ["pool-1", ...],
 *    "pool_versions": {"pool-1": "<chart version its file asks for>", ...}}
 */
#ifndef LANDLORD_TIERS_H
#define LANDLORD_TIERS_H

#include <jansson.h>

/* Builds a catalogue.  files maps repository paths to file contents for
 * <root>/tier-templates/\*.yaml, <root>/pooled-envs/kustomization.yaml and
 * the pool environments it lists (<root>/pooled-envs/<pool>.yaml).
 * Templates that do not render for a sample tenant are left out with a
 * warning.  Returns a new reference (never NULL unless out of memory). */
json_t *ll_tiers_build(const json_t *files, const char *root);

/* The tier named name in catalogue (borrowed), or NULL. */
const json_t *ll_tiers_find(const json_t *catalogue, const char *name);

/* 1 when name is a pool environment of the catalogue. */
int ll_tiers_is_pool(const json_t *catalogue, const char *name);

#endif

/* tiers.h - the tier catalogue, read from the repository.
 *
 * A tier exists when <root>/tier-templates/<tier>_tenant_template.yaml does.
 * The catalogue is a set of typed records (ll_tier_catalogue), immutable
 * once built and shared between threads by an atomic reference count
 * (ll_tier_catalogue_ref / _unref): the git writer builds one per new head
 * (ll_gitops_tiers hands out references), and the API builds a trial one
 * for a template it is given.  JSON appears only where it is input (the
 * files it is built from) or an opaque value (locked_values, which is what
 * ll_template_check_values takes); the API's answers are built in the core
 * (tier_views.c).
 *
 * Ownership: arguments are borrowed for the call; a catalogue's records
 * (and every pointer into them) live as long as a reference to it is held.
 */
#ifndef LANDLORD_TIERS_H
#define LANDLORD_TIERS_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/template.h"

/* How a tier deploys its tenants, read off what its template enables per
 * tenant (apps.<name>.enabled of its HelmReleases): every app its own
 * (siloed), every app in a pool environment (pooled), some of each
 * (hybrid), no apps at all (custom). */
typedef enum ll_deployment_model {
    LL_MODEL_SILOED = 0,
    LL_MODEL_POOLED,
    LL_MODEL_HYBRID,
    LL_MODEL_CUSTOM
} ll_deployment_model;

/* "siloed", "pooled", "hybrid", "custom" (static text; "custom" for a value
 * out of range). */
const char *ll_deployment_model_name(ll_deployment_model model);
/* The model named text into *out: 0, or LL_EINVALID (nothing set). */
int ll_deployment_model_parse(ll_deployment_model *out, const char *text);

/* What the tier policy (ll_template_check_policy) says of a template. */
typedef struct ll_tier_verdict {
    int violated; /* 0: the template meets the policy (rule, error NULL) */
    char *rule;   /* the rule it breaks ("template": it is not YAML objects) */
    char *error;  /* the checker's message */
} ll_tier_verdict;

/* One tier of a catalogue.  Every pointer is owned by the catalogue. */
typedef struct ll_tier {
    char *name;
    char *template_text; /* the template, template_len bytes, NUL-terminated */
    size_t template_len;
    char *template_path; /* where it lives in the repository */
    ll_deployment_model model;
    char helm_version[32]; /* the version of helm.toolkit.fluxcd.io its HelmReleases
                              declare (v2, v2beta1: the first), "" when none */
    char **pools;          /* pool environments its apps use (envId), first seen first */
    size_t n_pools;
    ll_tier_verdict policy;
    json_t *locked_values; /* JSON pointers its template derives from the
                              tenant (ll_template_locked_values); [] when
                              violated */
} ll_tier;

/* The chart version a pool environment's file asks for. */
typedef struct ll_pool_version {
    char *pool;
    char *version;
} ll_pool_version;

/* A catalogue.  Read-only once built; fields are the catalogue's own. */
typedef struct ll_tier_catalogue {
    ll_tier *tiers; /* in the order their files were read */
    size_t n_tiers;
    const ll_tier **by_name; /* the tiers sorted by name (ll_tier_catalogue_index) */
    char **pools;            /* the pool environments pooled-envs/kustomization.yaml lists */
    size_t n_pools;
    ll_pool_version *versions; /* the pools whose file asks for a chart version */
    size_t n_versions;
    int refs; /* atomic; ll_tier_catalogue_ref / _unref only */
} ll_tier_catalogue;

/* Builds a catalogue.  files maps repository paths to file contents for
 * <root>/tier-templates/\*.yaml, <root>/pooled-envs/kustomization.yaml and
 * the pool environments it lists (<root>/pooled-envs/<pool>.yaml).
 * Templates that do not render for a sample tenant are left out with a
 * warning; templates that break policy (NULL: the defaults) stay, marked
 * violated with the rule and a warning.  policy->pools is used only when
 * files list no pool environment.  Returns a new catalogue (one reference;
 * ll_tier_catalogue_unref), NULL only when out of memory. */
ll_tier_catalogue *ll_tiers_build(const json_t *files, const char *root,
                                  const ll_tier_policy *policy);

/* A new empty catalogue (one reference), for callers that fill one by hand
 * (tests): they set its arrays with malloc'd records, then call
 * ll_tier_catalogue_index.  NULL when out of memory. */
ll_tier_catalogue *ll_tier_catalogue_new(void);

/* Builds cat's name index (by_name) after its tiers are set; 0 or -1 (out
 * of memory). */
int ll_tier_catalogue_index(ll_tier_catalogue *cat);

/* Takes one more reference to cat (NULL is fine); returns cat. */
ll_tier_catalogue *ll_tier_catalogue_ref(ll_tier_catalogue *cat);

/* Gives one reference back; the last one frees cat (NULL is fine). */
void ll_tier_catalogue_unref(ll_tier_catalogue *cat);

/* The tier named name in cat (borrowed from cat), or NULL (also when cat
 * or name is NULL). */
const ll_tier *ll_tiers_find(const ll_tier_catalogue *cat, const char *name);

/* 0 when tenants may be rendered from tier, else LL_ECONFLICT naming the
 * rule its template breaks (field "tier"). */
int ll_tiers_usable(const ll_tier *tier);

/* ll_template_check_values() with the tier's locked values: 0 or
 * LL_EINVALID naming the path. */
int ll_tiers_check_values(const ll_tier *tier, const json_t *values);

/* 1 when tier's apps use pool environment pool, else 0. */
int ll_tier_uses_pool(const ll_tier *tier, const char *pool);

/* 1 when name is a pool environment of cat (NULL cat: 0). */
int ll_tiers_is_pool(const ll_tier_catalogue *cat, const char *name);

/* The chart version pool's file asks for (borrowed from cat), or NULL. */
const char *ll_tiers_pool_version(const ll_tier_catalogue *cat, const char *pool);

/* The policy to judge a template by, with cat's pools (cat borrowed, and
 * must outlive the result's use; NULL cat: no pools). */
ll_tier_policy ll_tiers_policy(const ll_tier_catalogue *cat, const char *kinds,
                               const char *flux_namespace);

/* Where a tier's template lives in the repository:
 * <root>/tier-templates/<tier>_tenant_template.yaml (the reference's
 * layout; root "" is the repository's top).  Cut to cap. */
void ll_tier_template_path(char *out, size_t cap, const char *root, const char *tier);

#endif

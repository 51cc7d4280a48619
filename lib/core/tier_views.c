/* tier_views.c - the tiers as the API shows them: the catalogue's tiers
 * (from the repository, through the git writer's snapshot) with their
 * tenant counts, descriptions, ETags and the version the last successful
 * rollout brought each to.
 *
 * Reads only; tier changes are queued by access.c (ll_tier_put,
 * ll_tier_delete), which shows its answers with ll_core_tier_view too.
 */
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/registry.h"
#include "landlord/tiers.h"

#include "core_int.h"

json_t *ll_core_tier_view(const json_t *tier, const json_t *counts, const json_t *info,
                          const json_t *versions, int with_template)
{
    json_t *v = json_deep_copy(tier);
    const char *name = json_string_value(json_object_get(tier, "name"));
    const char *desc = json_string_value(json_object_get(info, name));
    json_t *n = json_object_get(counts, name);
    char etag[LL_ETAG_MAX];
    const char *parts[] = {json_string_value(json_object_get(tier, "template")), desc ? desc : ""};

    ll_etag_of(etag, parts, 2);
    json_object_set_new(v, "description", json_string(desc ? desc : ""));
    json_object_set_new(v, "tenants", json_integer(n ? json_integer_value(n) : 0));
    json_object_set_new(v, "etag", json_string(etag));
    /* Where the last successful rollout of the tier brought it. */
    json_object_set(v, "version",
                    json_object_get(versions, name) ? json_object_get(versions, name)
                                                    : json_null());
    if (!with_template)
        json_object_del(v, "template");
    return v;
}

int ll_tier_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *counts = NULL, *info = NULL, *items = json_array(),
           *t, *versions = NULL;
    const char *name;
    int error = -1;

    if (!r || (error = ll_registry_tenant_counts(&counts, r)) < 0 ||
        (error = ll_registry_tier_info(&info, r)) < 0 ||
        (error = ll_registry_tier_versions(&versions, r)) < 0) {
        json_decref(tiers);
        json_decref(items);
        json_decref(counts);
        json_decref(info);
        return r ? error : -1;
    }
    json_object_foreach(json_object_get(tiers, "tiers"), name, t)
        json_array_append_new(items, ll_core_tier_view(t, counts, info, versions, 0));
    *out = json_pack("{s:o}", "items", items);
    json_decref(counts);
    json_decref(info);
    json_decref(versions);
    json_decref(tiers);
    return 0;
}

int ll_tier_get(json_t **out, ll_core *c, const char *name)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *counts = NULL, *info = NULL, *versions = NULL;
    const json_t *t = ll_tiers_find(tiers, name);
    int error = 0;

    if (!t)
        error = ll_error_set(LL_ENOTFOUND, "no tier '%.64s'", name);
    else if (!r)
        error = -1;
    else if ((error = ll_registry_tenant_counts(&counts, r)) == 0 &&
             (error = ll_registry_tier_info(&info, r)) == 0 &&
             (error = ll_registry_tier_versions(&versions, r)) == 0)
        *out = ll_core_tier_view(t, counts, info, versions, 1);
    json_decref(counts);
    json_decref(info);
    json_decref(versions);
    json_decref(tiers);
    return error;
}

/* tier_views.c - the tiers as the API shows them: the catalogue's tiers
 * (typed records from the repository, through the git writer's snapshot)
 * with their tenant counts, descriptions, ETags and the version the last
 * successful rollout brought each to, and the tiers check of /readyz.
 *
 * This is the edge where the catalogue becomes JSON: the answer's fields
 * ("name", "template_path", "deployment_model", "policy", ...) are written
 * here, from the records, and nowhere else.
 *
 * Reads only; tier changes are queued by access.c (ll_tier_put,
 * ll_tier_delete), which shows its answers with ll_core_tier_view too.
 */
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/etag.h"
#include "landlord/gitops.h"
#include "landlord/registry.h"
#include "landlord/tiers.h"

#include "core_int.h"

void ll_tier_facts_clear(ll_tier_facts *f)
{
    ll_registry_tier_counts_free(f->counts, f->n_counts);
    ll_registry_tier_notes_free(f->notes, f->n_notes);
    ll_registry_tier_versions_free(f->versions, f->n_versions);
    memset(f, 0, sizeof(*f));
}

/* Reads every fact of the tiers from r and c's cluster into f (cleared on
 * failure). */
static int load_facts(ll_tier_facts *f, ll_core *c, ll_registry *r)
{
    int error;
    ll_status_helm_versions(f->helm_served, sizeof(f->helm_served), f->helm_watched,
                            sizeof(f->helm_watched), c->status);
    if ((error = ll_registry_tenant_counts(&f->counts, &f->n_counts, r)) < 0 ||
        (error = ll_registry_tier_info(&f->notes, &f->n_notes, r)) < 0 ||
        (error = ll_registry_tier_versions(&f->versions, &f->n_versions, r)) < 0)
        ll_tier_facts_clear(f);
    return error;
}

static json_t *names_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *policy_json(const ll_tier_verdict *p)
{
    if (!p->violated)
        return json_pack("{s:s}", "status", "ok");
    return json_pack("{s:s, s:s, s:s}", "status", "violated", "rule", p->rule ? p->rule : "",
                     "error", p->error ? p->error : "");
}

/* 1 when version is in served ("v2,v2beta1"). */
static int served_has(const char *served, const char *version, size_t n)
{
    for (const char *p = served; *p;) {
        size_t m = strcspn(p, ",");
        if (m == n && strncmp(p, version, n) == 0)
            return 1;
        p += m + (p[m] == ',');
    }
    return 0;
}

int ll_core_tier_unserved(char *out, size_t cap, const ll_tier *tier, const char *served,
                          const char *watched)
{
    const char *v = tier->helm_version;
    if (!served || !served[0] || !v[0] || served_has(served, v, strlen(v)))
        return 0;
    snprintf(out, cap,
             "its HelmReleases are helm.toolkit.fluxcd.io/%s, which the cluster does not serve (it "
             "serves %s): Flux cannot apply them; change the template's apiVersion to "
             "helm.toolkit.fluxcd.io/%s (PUT /api/v1/tiers/%s)",
             v, served, watched && watched[0] ? watched : "v2", tier->name);
    return 1;
}

void ll_core_tier_etag(char out[LL_ETAG_MAX], const ll_tier *tier, const char *description)
{
    const char *parts[] = {tier->template_text, description ? description : ""};
    ll_etag_of(out, parts, 2);
}

json_t *ll_core_tier_view(const ll_tier *tier, const ll_tier_facts *facts, int with_template)
{
    static const ll_tier_facts none = {0};
    const ll_tier_facts *f = facts ? facts : &none;
    const char *desc = ll_tier_note_of(f->notes, f->n_notes, tier->name);
    const char *version = ll_tier_version_of(f->versions, f->n_versions, tier->name);
    char etag[LL_ETAG_MAX];
    json_t *v = json_pack("{s:s, s:s}", "name", tier->name, "template_path", tier->template_path);

    if (with_template)
        json_object_set_new(v, "template", json_stringn(tier->template_text, tier->template_len));
    json_object_set_new(v, "deployment_model", json_string(ll_deployment_model_name(tier->model)));
    json_object_set_new(v, "pools", names_json(tier->pools, tier->n_pools));
    json_object_set_new(v, "policy", policy_json(&tier->policy));
    json_object_set_new(v, "locked_values", json_deep_copy(tier->locked_values));
    ll_core_tier_etag(etag, tier, desc);
    json_object_set_new(v, "description", json_string(desc ? desc : ""));
    json_object_set_new(v, "tenants",
                        json_integer(ll_tier_count_of(f->counts, f->n_counts, tier->name)));
    json_object_set_new(v, "etag", json_string(etag));
    /* Where the last successful rollout of the tier brought it. */
    json_object_set_new(v, "version", version ? json_string(version) : json_null());
    /* Whether the cluster serves what the template declares (once known). */
    if (f->helm_served[0]) {
        char why[LL_ERROR_MSG_MAX];
        json_object_set_new(
            v, "cluster",
            ll_core_tier_unserved(why, sizeof(why), tier, f->helm_served, f->helm_watched)
                ? json_pack("{s:s, s:s}", "status", "unserved", "error", why)
                : json_pack("{s:s}", "status", "served"));
    }
    return v;
}

int ll_tier_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    ll_tier_catalogue *tiers = ll_gitops_tiers(c->git);
    ll_tier_facts facts = {0};
    json_t *items;
    int error;

    if (!r || (error = load_facts(&facts, c, r)) < 0) {
        ll_tier_catalogue_unref(tiers);
        return r ? error : -1;
    }
    items = json_array();
    for (size_t i = 0; tiers && i < tiers->n_tiers; i++)
        json_array_append_new(items, ll_core_tier_view(&tiers->tiers[i], &facts, 0));
    *out = json_pack("{s:o}", "items", items);
    ll_tier_facts_clear(&facts);
    ll_tier_catalogue_unref(tiers);
    return 0;
}

int ll_tier_get(json_t **out, ll_core *c, const char *name)
{
    ll_registry *r = ll_core_registry(c);
    ll_tier_catalogue *tiers = ll_gitops_tiers(c->git);
    const ll_tier *t = ll_tiers_find(tiers, name);
    ll_tier_facts facts = {0};
    int error = 0;

    if (!t)
        error = ll_error_set(LL_ENOTFOUND, "no tier '%.64s'", name);
    else if (!r)
        error = -1;
    else if ((error = load_facts(&facts, c, r)) == 0)
        *out = ll_core_tier_view(t, &facts, 1);
    ll_tier_facts_clear(&facts);
    ll_tier_catalogue_unref(tiers);
    return error;
}

json_t *ll_core_tiers_health(int *out_ok, const ll_tier_catalogue *cat, const char *served,
                             const char *watched)
{
    json_t *bad = json_array();
    char why[LL_ERROR_MSG_MAX];

    for (size_t i = 0; cat && i < cat->n_tiers; i++) {
        const ll_tier *t = &cat->tiers[i];
        if (t->policy.violated)
            json_array_append_new(bad, json_pack("{s:s, s:s, s:s}", "tier", t->name, "rule",
                                                 t->policy.rule ? t->policy.rule : "", "error",
                                                 t->policy.error ? t->policy.error : ""));
        else if (ll_core_tier_unserved(why, sizeof(why), t, served, watched))
            json_array_append_new(bad, json_pack("{s:s, s:s, s:s}", "tier", t->name, "rule",
                                                 "api-version", "error", why));
    }
    *out_ok = json_array_size(bad) == 0;
    if (*out_ok) {
        json_decref(bad);
        return json_pack("{s:s}", "status", "ok");
    }
    return json_pack("{s:s, s:o}", "status", "failed", "violations", bad);
}

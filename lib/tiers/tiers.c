/* tiers.c - the tier catalogue, derived from the repository's files.
 *
 * Nothing about tiers is hard-coded: a tier is a template file, its
 * deployment model is read off what its template enables per tenant, and the
 * pool environments are what pooled-envs/kustomization.yaml lists.  The
 * catalogue is built once per new head by the git writer and then shared,
 * read-only, between threads.
 *
 * Each tier is judged against the template policy (ll_template_check_policy)
 * when the catalogue is built: a tier that breaks it stays in the catalogue
 * (so GET and /readyz can say why) but is not usable (ll_tiers_usable):
 * nothing is rendered from it until its template is fixed.  The values its
 * template derives from the tenant's identity (ll_template_locked_values)
 * are kept with it, for ll_tiers_check_values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/validate.h"

#define SUFFIX "_tenant_template.yaml"

/* Reads apps.<name>.enabled and envId of every HelmRelease in a rendered
 * sample. */
static void describe(json_t *tier, const json_t *docs)
{
    size_t i, enabled = 0, pooled = 0;
    json_t *doc, *pools = json_array();
    const char *model;

    json_array_foreach(docs, i, doc)
    {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        json_t *apps =
            json_object_get(json_object_get(json_object_get(doc, "spec"), "values"), "apps");
        const char *name;
        json_t *app;
        if (!kind || strcmp(kind, "HelmRelease") != 0 || !json_is_object(apps))
            continue;
        json_object_foreach(apps, name, app)
        {
            json_t *on = json_object_get(app, "enabled");
            const char *env = json_string_value(json_object_get(app, "envId"));
            if (json_is_true(on)) {
                enabled++;
                continue;
            }
            pooled++;
            if (env) {
                int seen = 0;
                size_t k;
                json_t *p;
                json_array_foreach(pools, k, p) seen |= strcmp(json_string_value(p), env) == 0;
                if (!seen)
                    json_array_append_new(pools, json_string(env));
            }
        }
    }
    if (enabled && pooled)
        model = "hybrid";
    else if (enabled)
        model = "siloed";
    else if (pooled)
        model = "pooled";
    else
        model = "custom";
    json_object_set_new(tier, "deployment_model", json_string(model));
    json_object_set_new(tier, "pools", pools);
}

/* Adds the pool environments pooled-envs/kustomization.yaml lists. */
static void read_pools(json_t *pools, const char *path, const json_t *content)
{
    json_t *list = NULL, *entry;
    size_t i;

    if (ll_kustomize_resources(&list, json_string_value(content), json_string_length(content)) <
        0) {
        ll_log_warn("msg=\"cannot read pool environments\" path=%s error=\"%s\"", path,
                    ll_error_last()->message);
        return;
    }
    json_array_foreach(list, i, entry)
    {
        const char *e = json_string_value(entry);
        size_t el = strlen(e);
        if (el > 5 && strcmp(e + el - 5, ".yaml") == 0)
            json_array_append_new(pools, json_stringn(e, el - 5));
        else
            json_array_append_new(pools, json_string(e));
    }
    json_decref(list);
}

/* The policy verdict and the locked values of a tier's template. */
static void judge(json_t *tier, const char *name, const char *text, size_t len,
                  const ll_tier_policy *policy)
{
    const char *rule = NULL;
    json_t *locked = NULL;

    if (ll_template_check_policy(&rule, text, len, policy) < 0 ||
        ll_template_locked_values(&locked, text, len, policy->pools) < 0) {
        ll_log_warn("msg=\"tier template breaks the tier policy; its tenants are not rendered\" "
                    "tier=%s rule=%s error=\"%s\"",
                    name, rule ? rule : "template", ll_error_last()->message);
        json_object_set_new(tier, "policy",
                            json_pack("{s:s, s:s, s:s}", "status", "violated", "rule",
                                      rule ? rule : "template", "error", ll_error_last()->message));
        locked = json_array();
    } else {
        json_object_set_new(tier, "policy", json_pack("{s:s}", "status", "ok"));
    }
    json_object_set_new(tier, "locked_values", locked);
}

json_t *ll_tiers_build(const json_t *files, const char *root, const ll_tier_policy *policy)
{
    json_t *cat = json_object(), *tiers = json_object(), *pools = json_array(), *content;
    char prefix[512], kust_path[512];
    const char *path;
    size_t plen;
    ll_tier_policy p = {0};

    snprintf(prefix, sizeof(prefix), "%s/tier-templates/", root);
    snprintf(kust_path, sizeof(kust_path), "%s/pooled-envs/kustomization.yaml", root);
    plen = strlen(prefix);
    /* The pools first: templates are judged against them. */
    if ((content = json_object_get(files, kust_path)))
        read_pools(pools, kust_path, content);
    if (policy)
        p = *policy;
    if (json_array_size(pools) > 0 || !p.pools)
        p.pools = pools;
    json_object_foreach((json_t *)files, path, content)
    {
        const char *text = json_string_value(content);
        size_t len = json_string_length(content), n = strlen(path);
        char name[128], *rendered = NULL;
        size_t rlen;
        json_t *docs = NULL, *tier;

        if (strncmp(path, prefix, plen) != 0 || n < plen + sizeof(SUFFIX) ||
            strcmp(path + n - (sizeof(SUFFIX) - 1), SUFFIX) != 0 ||
            n - plen - (sizeof(SUFFIX) - 1) >= sizeof(name))
            continue;
        memcpy(name, path + plen, n - plen - (sizeof(SUFFIX) - 1));
        name[n - plen - (sizeof(SUFFIX) - 1)] = '\0';
        if (ll_validate_label(name, 63, "tier") < 0) {
            ll_log_warn("msg=\"ignoring tier template with a bad name\" path=%s", path);
            continue;
        }
        ll_render_input in = {"sample-tenant", name, "0.0", NULL, NULL};
        if (ll_template_render(&rendered, &rlen, text, len, &in) < 0 ||
            ll_yaml_load_json(&docs, rendered, rlen) < 0) {
            ll_log_warn("msg=\"ignoring tier whose template does not render\" tier=%s error=\"%s\"",
                        name, ll_error_last()->message);
            free(rendered);
            continue;
        }
        tier = json_pack("{s:s, s:s, s:s}", "name", name, "template_path", path, "template", "");
        json_object_set_new(tier, "template", json_stringn(text, len));
        describe(tier, docs);
        judge(tier, name, text, len, &p);
        json_object_set_new(tiers, name, tier);
        json_decref(docs);
        free(rendered);
    }
    /* The chart version each pool environment's HelmRelease asks for (what
     * a rollout moves with the first wave of a tier the pool serves). */
    json_t *versions = json_object(), *pool;
    size_t i;
    json_array_foreach(pools, i, pool)
    {
        char pool_path[700];
        json_t *docs = NULL, *doc;
        size_t k;
        snprintf(pool_path, sizeof(pool_path), "%s/pooled-envs/%s.yaml", root,
                 json_string_value(pool));
        json_t *text = json_object_get(files, pool_path);
        if (!text ||
            ll_yaml_load_json(&docs, json_string_value(text), json_string_length(text)) < 0)
            continue;
        json_array_foreach(docs, k, doc)
        {
            const char *kind = json_string_value(json_object_get(doc, "kind"));
            const char *v = json_string_value(json_object_get(
                json_object_get(json_object_get(json_object_get(doc, "spec"), "chart"), "spec"),
                "version"));
            if (kind && strcmp(kind, "HelmRelease") == 0 && v) {
                json_object_set_new(versions, json_string_value(pool), json_string(v));
                break;
            }
        }
        json_decref(docs);
    }
    json_object_set_new(cat, "tiers", tiers);
    json_object_set_new(cat, "pools", pools);
    json_object_set_new(cat, "pool_versions", versions);
    return cat;
}

const json_t *ll_tiers_find(const json_t *catalogue, const char *name)
{
    return json_object_get(json_object_get(catalogue, "tiers"), name);
}

int ll_tiers_usable(const json_t *tier)
{
    const json_t *policy = json_object_get(tier, "policy");
    const char *name = json_string_value(json_object_get(tier, "name"));

    if (!policy || strcmp(json_string_value(json_object_get(policy, "status")) ?: "", "ok") == 0)
        return 0;
    ll_error_set(LL_ECONFLICT,
                 "tier '%s' breaks the tier policy (%s), so its tenants are not rendered until "
                 "its template is fixed: %s",
                 name ? name : "?", json_string_value(json_object_get(policy, "rule")) ?: "?",
                 json_string_value(json_object_get(policy, "error")) ?: "");
    ll_error_field("tier");
    ll_error_hint("fix the template with PUT /api/v1/tiers/%s; GET /api/v1/tiers/%s and /readyz "
                  "show what is wrong",
                  name ? name : "?", name ? name : "?");
    return LL_ECONFLICT;
}

int ll_tiers_check_values(const json_t *tier, const json_t *values)
{
    return ll_template_check_values(json_object_get(tier, "locked_values"), values);
}

json_t *ll_tiers_health(const json_t *catalogue)
{
    json_t *bad = json_array(), *tier;
    const char *name;

    json_object_foreach(json_object_get(catalogue, "tiers"), name, tier)
    {
        const json_t *policy = json_object_get(tier, "policy");
        if (policy && strcmp(json_string_value(json_object_get(policy, "status")) ?: "", "ok") != 0)
            json_array_append_new(bad, json_pack("{s:s, s:O, s:O}", "tier", name, "rule",
                                                 json_object_get(policy, "rule"), "error",
                                                 json_object_get(policy, "error")));
    }
    if (json_array_size(bad) == 0) {
        json_decref(bad);
        return json_pack("{s:s}", "status", "ok");
    }
    return json_pack("{s:s, s:o}", "status", "failed", "violations", bad);
}

int ll_tiers_is_pool(const json_t *catalogue, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(catalogue, "pools"), i, p)
    {
        if (strcmp(json_string_value(p), name) == 0)
            return 1;
    }
    return 0;
}

void ll_tier_template_path(char *out, size_t cap, const char *root, const char *tier)
{
    snprintf(out, cap, "%s/tier-templates/%s_tenant_template.yaml", root, tier);
}

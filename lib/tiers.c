/* tiers.c - the tier catalogue, derived from the repository's files.
 *
 * Nothing about tiers is hard-coded: a tier is a template file, its
 * deployment model is read off what its template enables per tenant, and the
 * pool environments are what pooled-envs/kustomization.yaml lists.  The
 * catalogue is built once per new head by the git writer and then shared,
 * read-only, between threads.
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

json_t *ll_tiers_build(const json_t *files, const char *root)
{
    json_t *cat = json_object(), *tiers = json_object(), *pools = json_array(), *content;
    char prefix[512], kust_path[512];
    const char *path;
    size_t plen;

    snprintf(prefix, sizeof(prefix), "%s/tier-templates/", root);
    snprintf(kust_path, sizeof(kust_path), "%s/pooled-envs/kustomization.yaml", root);
    plen = strlen(prefix);
    json_object_foreach((json_t *)files, path, content)
    {
        const char *text = json_string_value(content);
        size_t len = json_string_length(content), n = strlen(path);
        char name[128], *rendered = NULL;
        size_t rlen;
        json_t *docs = NULL, *tier;

        if (strcmp(path, kust_path) == 0) {
            json_t *list = NULL, *entry;
            size_t i;
            if (ll_kustomize_resources(&list, text, len) < 0) {
                ll_log_warn("msg=\"cannot read pool environments\" path=%s error=\"%s\"", path,
                            ll_error_last()->message);
                continue;
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
            continue;
        }
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

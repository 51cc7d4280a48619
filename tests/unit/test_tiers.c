/* Unit tests of the tier catalogue (lib/tiers/tiers.c): built from the
 * repository's files (the seed's templates, and a few made here), it reads
 * each tier's deployment model and pools off its rendered sample, the pool
 * environments off pooled-envs/kustomization.yaml and their chart versions
 * off their files, keeps a template that breaks the policy (unusable) and
 * leaves out those that do not render; find, is_pool, pool_version, the
 * model name table and the reference count; and the JSON the core builds
 * from the records (tier views, the /readyz tiers check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/tiers.h"

#include "core/core_int.h"

#define ROOT "app/prod"

/* A HelmRelease whose one app runs per tenant: siloed, but it also declares
 * a ClusterRoleBinding, which the policy never allows. */
static const char RBAC[] = "apiVersion: v1\n"
                           "kind: Namespace\n"
                           "metadata:\n"
                           "  name: {TENANT_ID}\n"
                           "---\n"
                           "apiVersion: rbac.authorization.k8s.io/v1\n"
                           "kind: ClusterRoleBinding\n"
                           "metadata:\n"
                           "  name: {TENANT_ID}-admin\n";

/* No HelmRelease with apps: custom. */
static const char CUSTOM[] = "apiVersion: v1\n"
                             "kind: Namespace\n"
                             "metadata:\n"
                             "  name: {TENANT_ID}\n";

/* Not Kubernetes objects (no apiVersion): does not render. */
static const char BROKEN[] = "kind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n";

/* pool-1's environment, as a pool file of the repository. */
static const char POOL_1[] = "apiVersion: v1\n"
                             "kind: Namespace\n"
                             "metadata:\n"
                             "  name: pool-1\n"
                             "---\n"
                             "apiVersion: helm.toolkit.fluxcd.io/v2\n"
                             "kind: HelmRelease\n"
                             "metadata:\n"
                             "  name: pool-1\n"
                             "  namespace: flux-system\n"
                             "spec:\n"
                             "  chart:\n"
                             "    spec:\n"
                             "      chart: helm-tenant-chart\n"
                             "      version: \"1.4.2\"\n";

static const char KUSTOMIZATION[] = "apiVersion: kustomize.config.k8s.io/v1beta1\n"
                                    "kind: Kustomization\n"
                                    "resources:\n"
                                    "  - pool-1.yaml\n"
                                    "  - pool-2.yaml\n";

static void put(json_t *files, const char *path, const char *text)
{
    assert_int_equal(json_object_set_new(files, path, json_string(text)), 0);
}

/* The seed's tenant templates (basic, premium, advanced) under ROOT. */
static json_t *seed_files(void)
{
    static const char *const tiers[] = {"basic", "premium", "advanced"};
    json_t *files = json_object();
    char src[200], dst[200];

    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        snprintf(src, sizeof(src), "lib/seed/tier-templates/%s_tenant_template.yaml", tiers[i]);
        const ll_embedded_file *e = ll_embedded_find(src);
        assert_non_null(e);
        ll_tier_template_path(dst, sizeof(dst), ROOT, tiers[i]);
        put(files, dst, (const char *)e->data);
    }
    return files;
}

/* Deployment models read off what each template enables per tenant; the
 * pools its apps use; the catalogue's pools and their versions. */
static void test_build_models_and_pools(void **state)
{
    (void)state;
    json_t *files = seed_files();
    char path[200];

    ll_tier_template_path(path, sizeof(path), ROOT, "plain");
    put(files, path, CUSTOM);
    put(files, ROOT "/pooled-envs/kustomization.yaml", KUSTOMIZATION);
    put(files, ROOT "/pooled-envs/pool-1.yaml", POOL_1);
    ll_tier_catalogue *cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_non_null(cat);
    assert_int_equal(cat->n_tiers, 4);

    const ll_tier *basic = ll_tiers_find(cat, "basic"), *premium = ll_tiers_find(cat, "premium"),
                  *advanced = ll_tiers_find(cat, "advanced"), *plain = ll_tiers_find(cat, "plain");
    assert_non_null(basic);
    assert_non_null(premium);
    assert_non_null(advanced);
    assert_non_null(plain);
    assert_int_equal(basic->model, LL_MODEL_POOLED);
    assert_int_equal(premium->model, LL_MODEL_SILOED);
    assert_int_equal(advanced->model, LL_MODEL_HYBRID);
    assert_int_equal(plain->model, LL_MODEL_CUSTOM);
    /* The HelmReleases' version (plain has none). */
    assert_string_equal(basic->helm_version, "v2");
    assert_string_equal(advanced->helm_version, "v2");
    assert_string_equal(plain->helm_version, "");
    /* basic's two apps both use pool-1: listed once. */
    assert_int_equal(basic->n_pools, 1);
    assert_string_equal(basic->pools[0], "pool-1");
    assert_int_equal(premium->n_pools, 0);
    assert_int_equal(advanced->n_pools, 1);
    assert_true(ll_tier_uses_pool(advanced, "pool-1"));
    assert_false(ll_tier_uses_pool(premium, "pool-1"));
    /* The records hold the template as read, and where it lives. */
    ll_tier_template_path(path, sizeof(path), ROOT, "plain");
    assert_string_equal(plain->template_path, path);
    assert_int_equal(plain->template_len, strlen(CUSTOM));
    assert_memory_equal(plain->template_text, CUSTOM, strlen(CUSTOM));
    /* With pool-1 a pool environment, every seed tier meets the policy. */
    for (size_t i = 0; i < cat->n_tiers; i++) {
        assert_false(cat->tiers[i].policy.violated);
        assert_int_equal(ll_tiers_usable(&cat->tiers[i]), 0);
        assert_true(json_is_array(cat->tiers[i].locked_values));
    }
    /* The pools pooled-envs lists; pool-2 has no file, so no version. */
    assert_int_equal(cat->n_pools, 2);
    assert_true(ll_tiers_is_pool(cat, "pool-1"));
    assert_true(ll_tiers_is_pool(cat, "pool-2"));
    assert_false(ll_tiers_is_pool(cat, "basic"));
    assert_false(ll_tiers_is_pool(NULL, "pool-1"));
    assert_string_equal(ll_tiers_pool_version(cat, "pool-1"), "1.4.2");
    assert_null(ll_tiers_pool_version(cat, "pool-2"));
    assert_null(ll_tiers_pool_version(cat, "pool-3"));
    assert_null(ll_tiers_find(cat, "gold"));
    assert_null(ll_tiers_find(cat, NULL));
    assert_null(ll_tiers_find(NULL, "basic"));
    ll_tier_catalogue_unref(cat);
}

/* A template that breaks the policy stays, with the rule, but is not
 * usable; one that does not render, or has a bad name, is left out. */
static void test_build_violated_and_left_out(void **state)
{
    (void)state;
    json_t *files = json_object();
    char path[200];

    ll_tier_template_path(path, sizeof(path), ROOT, "rbac");
    put(files, path, RBAC);
    ll_tier_template_path(path, sizeof(path), ROOT, "broken");
    put(files, path, BROKEN);
    ll_tier_template_path(path, sizeof(path), ROOT, "Bad_Name");
    put(files, path, CUSTOM);
    put(files, ROOT "/tier-templates/notes.txt", CUSTOM);
    ll_tier_catalogue *cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_non_null(cat);
    assert_int_equal(cat->n_tiers, 1);
    assert_null(ll_tiers_find(cat, "broken"));
    assert_null(ll_tiers_find(cat, "Bad_Name"));

    const ll_tier *rbac = ll_tiers_find(cat, "rbac");
    assert_non_null(rbac);
    assert_true(rbac->policy.violated);
    assert_string_equal(rbac->policy.rule, "cluster-rbac");
    assert_non_null(strstr(rbac->policy.error, "cluster-rbac"));
    assert_int_equal(json_array_size(rbac->locked_values), 0);
    assert_int_equal(ll_tiers_usable(rbac), LL_ECONFLICT);
    assert_string_equal(ll_error_last()->field, "tier");
    assert_non_null(strstr(ll_error_last()->message, "tier 'rbac' breaks the tier policy"));
    assert_int_equal(cat->n_pools, 0);
    ll_tier_catalogue_unref(cat);
}

/* The pools a template may target come from pooled-envs, else from the
 * policy: basic targets pool-1, which is a foreign namespace otherwise. */
static void test_build_pools_of_the_policy(void **state)
{
    (void)state;
    char *pools[] = {"pool-1"};
    ll_tier_policy with_pools = {NULL, NULL, pools, 1};
    json_t *files = seed_files();

    ll_tier_catalogue *bare = ll_tiers_build(files, ROOT, NULL);
    ll_tier_catalogue *told = ll_tiers_build(files, ROOT, &with_pools);
    put(files, ROOT "/pooled-envs/kustomization.yaml", KUSTOMIZATION);
    ll_tier_catalogue *listed = ll_tiers_build(files, ROOT, &with_pools);
    json_decref(files);

    const ll_tier *basic = ll_tiers_find(bare, "basic");
    assert_true(basic->policy.violated);
    assert_string_equal(basic->policy.rule, "helm-target-namespace");
    assert_int_equal(ll_tiers_usable(basic), LL_ECONFLICT);
    assert_false(ll_tiers_find(bare, "premium")->policy.violated);
    assert_false(ll_tiers_find(told, "basic")->policy.violated);
    /* The policy's pools judge templates; they are not the catalogue's. */
    assert_int_equal(told->n_pools, 0);
    assert_false(ll_tiers_is_pool(told, "pool-1"));
    assert_int_equal(listed->n_pools, 2);
    assert_false(ll_tiers_find(listed, "basic")->policy.violated);

    /* Locked values: basic's identity and its pool placement. */
    const ll_tier *b = ll_tiers_find(listed, "basic");
    json_t *bad = json_pack("{s:s}", "tenantId", "other");
    json_t *good = json_pack("{s:{s:{s:i}}}", "apps", "producer", "replicas", 2);
    assert_int_equal(ll_tiers_check_values(b, bad), LL_EINVALID);
    assert_int_equal(ll_tiers_check_values(b, good), 0);
    json_decref(bad);
    json_decref(good);
    ll_tier_catalogue_unref(bare);
    ll_tier_catalogue_unref(told);
    ll_tier_catalogue_unref(listed);
}

/* One name <-> enum table for the deployment models. */
static void test_model_names(void **state)
{
    (void)state;
    static const struct {
        ll_deployment_model model;
        const char *name;
    } table[] = {{LL_MODEL_SILOED, "siloed"},
                 {LL_MODEL_POOLED, "pooled"},
                 {LL_MODEL_HYBRID, "hybrid"},
                 {LL_MODEL_CUSTOM, "custom"}};
    ll_deployment_model m = LL_MODEL_SILOED;

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_string_equal(ll_deployment_model_name(table[i].model), table[i].name);
        assert_int_equal(ll_deployment_model_parse(&m, table[i].name), 0);
        assert_int_equal(m, table[i].model);
    }
    assert_string_equal(ll_deployment_model_name((ll_deployment_model)42), "custom");
    m = LL_MODEL_HYBRID;
    assert_int_equal(ll_deployment_model_parse(&m, "silo"), LL_EINVALID);
    assert_int_equal(ll_deployment_model_parse(&m, NULL), LL_EINVALID);
    assert_int_equal(m, LL_MODEL_HYBRID);
}

/* Tiers keep the order their files were read in; find goes by the name
 * index; references are counted (the last unref frees: ASan sees a leak
 * or a double free otherwise). */
static void test_order_index_and_refs(void **state)
{
    (void)state;
    static const char *const names[] = {"zeta", "a-b", "a", "mid"};
    json_t *files = json_object();
    char path[200];

    for (size_t i = 0; i < 4; i++) {
        ll_tier_template_path(path, sizeof(path), ROOT, names[i]);
        put(files, path, CUSTOM);
    }
    ll_tier_catalogue *cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_int_equal(cat->n_tiers, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(cat->tiers[i].name, names[i]);
        assert_ptr_equal(ll_tiers_find(cat, names[i]), &cat->tiers[i]);
    }
    assert_null(ll_tiers_find(cat, "b"));
    assert_ptr_equal(ll_tier_catalogue_ref(cat), cat);
    assert_int_equal(cat->refs, 2);
    ll_tier_catalogue_unref(cat);
    assert_int_equal(cat->refs, 1);
    assert_non_null(ll_tiers_find(cat, "mid"));
    ll_tier_catalogue_unref(cat);
    ll_tier_catalogue_unref(NULL);
    assert_null(ll_tier_catalogue_ref(NULL));
    /* Nothing at all: an empty catalogue, not NULL. */
    files = json_object();
    cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_non_null(cat);
    assert_int_equal(cat->n_tiers, 0);
    assert_null(ll_tiers_find(cat, "basic"));
    ll_tier_catalogue_unref(cat);
}

/* The edge where the records become the API's JSON (core/tier_views.c):
 * a tier's view holds the catalogue's fields in the order the API always
 * gave them, then the registry's facts; /readyz's tiers check lists the
 * violations. */
static void test_views_and_health(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "name",    "template_path", "template",      "deployment_model",
        "pools",   "policy",        "locked_values", "description",
        "tenants", "etag",          "version"};
    json_t *files = seed_files();
    char path[200];
    ll_tier_count counts[] = {{"basic", 3}};
    ll_tier_note notes[] = {{"basic", "Shared"}};
    ll_tier_version versions[] = {{"basic", "1.2.0"}};
    ll_tier_facts facts = {.counts = counts,
                           .n_counts = 1,
                           .notes = notes,
                           .n_notes = 1,
                           .versions = versions,
                           .n_versions = 1};

    put(files, ROOT "/pooled-envs/kustomization.yaml", KUSTOMIZATION);
    ll_tier_catalogue *cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    int ok = -1;
    json_t *health = ll_core_tiers_health(&ok, cat, "", "");
    assert_int_equal(ok, 1);
    assert_string_equal(json_string_value(json_object_get(health, "status")), "ok");
    assert_null(json_object_get(health, "violations"));
    json_decref(health);

    json_t *v = ll_core_tier_view(ll_tiers_find(cat, "basic"), &facts, 1), *x;
    const char *key;
    size_t i = 0;
    json_object_foreach(v, key, x)
    {
        assert_true(i < sizeof(keys) / sizeof(keys[0]));
        assert_string_equal(key, keys[i++]);
    }
    assert_int_equal(i, sizeof(keys) / sizeof(keys[0]));
    ll_tier_template_path(path, sizeof(path), ROOT, "basic");
    assert_string_equal(json_string_value(json_object_get(v, "template_path")), path);
    assert_string_equal(json_string_value(json_object_get(v, "deployment_model")), "pooled");
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "pools"), 0)),
                        "pool-1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "policy"), "status")),
                        "ok");
    assert_int_equal(json_object_size(json_object_get(v, "policy")), 1);
    assert_true(json_array_size(json_object_get(v, "locked_values")) > 0);
    assert_string_equal(json_string_value(json_object_get(v, "description")), "Shared");
    assert_int_equal(json_integer_value(json_object_get(v, "tenants")), 3);
    assert_string_equal(json_string_value(json_object_get(v, "version")), "1.2.0");
    char *etag = strdup(json_string_value(json_object_get(v, "etag")));
    json_decref(v);

    /* Without facts: no description, no tenants, no version, another etag;
     * and no template unless asked. */
    v = ll_core_tier_view(ll_tiers_find(cat, "basic"), NULL, 0);
    assert_null(json_object_get(v, "template"));
    assert_string_equal(json_string_value(json_object_get(v, "description")), "");
    assert_int_equal(json_integer_value(json_object_get(v, "tenants")), 0);
    assert_true(json_is_null(json_object_get(v, "version")));
    assert_string_not_equal(json_string_value(json_object_get(v, "etag")), etag);
    free(etag);
    json_decref(v);
    ll_tier_catalogue_unref(cat);

    /* A violated tier: its policy in the view, and /readyz fails. */
    files = json_object();
    ll_tier_template_path(path, sizeof(path), ROOT, "rbac");
    put(files, path, RBAC);
    cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    v = ll_core_tier_view(ll_tiers_find(cat, "rbac"), NULL, 0);
    json_t *policy = json_object_get(v, "policy");
    assert_string_equal(json_string_value(json_object_get(policy, "status")), "violated");
    assert_string_equal(json_string_value(json_object_get(policy, "rule")), "cluster-rbac");
    assert_non_null(json_string_value(json_object_get(policy, "error")));
    assert_string_equal(json_string_value(json_object_get(v, "deployment_model")), "custom");
    json_decref(v);
    health = ll_core_tiers_health(&ok, cat, "", "");
    assert_int_equal(ok, 0);
    assert_string_equal(json_string_value(json_object_get(health, "status")), "failed");
    x = json_array_get(json_object_get(health, "violations"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "tier")), "rbac");
    assert_string_equal(json_string_value(json_object_get(x, "rule")), "cluster-rbac");
    assert_non_null(json_string_value(json_object_get(x, "error")));
    json_decref(health);
    ll_tier_catalogue_unref(cat);
    health = ll_core_tiers_health(&ok, NULL, "", "");
    assert_string_equal(json_string_value(json_object_get(health, "status")), "ok");
    json_decref(health);
}

/* A template's HelmRelease version, read off its rendered HelmReleases
 * (label keys of the group are not versions), against what the cluster
 * serves: the fix names the version landlord watches; an unknown served
 * list or a served version is no finding; the /readyz check reports it as
 * rule api-version. */
static void test_unserved_versions(void **state)
{
    (void)state;
    json_t *files = seed_files(), *premium, *health, *v;
    char path[200], why[512], *legacy;
    int ok = -1;

    ll_tier_template_path(path, sizeof(path), ROOT, "premium");
    premium = json_object_get(files, path);
    const char *text = json_string_value(premium),
               *at = strstr(text, "helm.toolkit.fluxcd.io/v2\n");
    assert_non_null(at);
    assert_non_null(legacy = malloc(strlen(text) + 8));
    sprintf(legacy, "%.*shelm.toolkit.fluxcd.io/v2beta1\n%s", (int)(at - text), text,
            at + strlen("helm.toolkit.fluxcd.io/v2\n"));
    ll_tier_template_path(path, sizeof(path), ROOT, "legacy");
    put(files, path, legacy);
    put(files, ROOT "/pooled-envs/kustomization.yaml", KUSTOMIZATION);
    free(legacy);
    ll_tier_catalogue *cat = ll_tiers_build(files, ROOT, NULL);
    json_decref(files);
    assert_non_null(cat);
    const ll_tier *t = ll_tiers_find(cat, "legacy");
    assert_non_null(t);
    assert_string_equal(t->helm_version, "v2beta1");
    assert_string_equal(ll_tiers_find(cat, "premium")->helm_version, "v2");

    assert_int_equal(ll_core_tier_unserved(why, sizeof(why), t, "v2", "v2"), 1);
    assert_non_null(strstr(why, "helm.toolkit.fluxcd.io/v2beta1, which the cluster does not serve "
                                "(it serves v2)"));
    assert_non_null(
        strstr(why, "apiVersion to helm.toolkit.fluxcd.io/v2 (PUT /api/v1/tiers/legacy)"));
    assert_int_equal(ll_core_tier_unserved(why, sizeof(why), t, "v2,v2beta1", "v2"), 0);
    assert_int_equal(ll_core_tier_unserved(why, sizeof(why), t, "", ""), 0);

    health = ll_core_tiers_health(&ok, cat, "v2", "v2");
    assert_int_equal(ok, 0);
    assert_string_equal(json_string_value(json_object_get(health, "status")), "failed");
    assert_int_equal(json_array_size(json_object_get(health, "violations")), 1);
    v = json_array_get(json_object_get(health, "violations"), 0);
    assert_string_equal(json_string_value(json_object_get(v, "tier")), "legacy");
    assert_string_equal(json_string_value(json_object_get(v, "rule")), "api-version");
    json_decref(health);
    health = ll_core_tiers_health(&ok, cat, "v2,v2beta1", "v2");
    assert_int_equal(ok, 1);
    assert_string_equal(json_string_value(json_object_get(health, "status")), "ok");
    json_decref(health);
    ll_tier_catalogue_unref(cat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_models_and_pools),
        cmocka_unit_test(test_build_violated_and_left_out),
        cmocka_unit_test(test_build_pools_of_the_policy),
        cmocka_unit_test(test_model_names),
        cmocka_unit_test(test_order_index_and_refs),
        cmocka_unit_test(test_views_and_health),
        cmocka_unit_test(test_unserved_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

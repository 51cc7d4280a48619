/* Unit tests of lib/cluster's pure part (slim.c, derive.c): slim objects
 * and the rules that turn Flux's objects into a tenant's state (docs/api.md
 * "Observed state", protocols.md §4), one case or more per rule.  Objects
 * are written the way the API returns them.  Then the records the module
 * hands out (status.h): a tenant's verdict, the cluster's health, and the
 * JSON /readyz builds from that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/status_int.h"
#include "landlord/status.h"

#define HR_KEY "flux-system/acme-premium"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v)
        fail_msg("bad test JSON at %d: %s", e.line, e.text);
    return v;
}

/* A HelmRelease as helm-controller leaves it, its spec asking for chart
 * version `version` with `values` (JSON text, or NULL: none), with the
 * given status block. */
static json_t *helmrelease_spec(long generation, const char *version, const char *values,
                                const char *status)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"helm.toolkit.fluxcd.io/v2\",\"kind\":\"HelmRelease\","
             "\"metadata\":{\"name\":\"acme-premium\",\"namespace\":\"flux-system\","
             "\"generation\":%ld,\"resourceVersion\":\"41\"},"
             "\"spec\":{\"chart\":{\"spec\":{\"chart\":\"helm-tenant-chart\",\"version\":\"%s\"}}"
             "%s%s},"
             "\"status\":%s}",
             generation, version, values ? ",\"values\":" : "", values ? values : "", status);
    json_t *o = parse(text);
    json_t *slim = ll_status_slim(o);
    json_decref(o);
    return slim;
}

static json_t *helmrelease(long generation, const char *status)
{
    return helmrelease_spec(generation, "1.2.x", NULL, status);
}

static const char *READY_STATUS =
    "{\"observedGeneration\":3,\"lastAttemptedRevision\":\"1.2.3\","
    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"UpgradeSucceeded\","
    "\"observedGeneration\":3,\"message\":\"Helm upgrade succeeded for release "
    "acme/acme-premium.v2 with chart helm-tenant-chart@1.2.3\"},"
    "{\"type\":\"Released\",\"status\":\"True\",\"reason\":\"UpgradeSucceeded\"}],"
    "\"history\":[{\"name\":\"acme-premium\",\"version\":2,\"status\":\"deployed\","
    "\"chartName\":\"helm-tenant-chart\",\"chartVersion\":\"1.2.3\"},"
    "{\"version\":1,\"status\":\"superseded\",\"chartVersion\":\"1.2.2\"}]}";

/* The tenant acme (premium) whose file declares its Namespace and
 * HelmRelease asking for chart want. */
static json_t *tenant(const char *lifecycle, const char *sync, const char *want)
{
    return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}, {s:s, s:s, s:s}]}", "lifecycle", lifecycle,
                     "sync", sync, "commit", "450796ddb2ab6724ee1cc32a4be56da032d1cca0", "objects",
                     "kind", "Namespace", "key", "acme", "kind", "HelmRelease", "key", HR_KEY,
                     "chart", want);
}

/* The cluster with the Kustomization having applied (or not) the tenant's
 * commit, a Namespace acme, and hr (stolen; NULL: none). */
static json_t *cluster(int applied, json_t *hr)
{
    json_t *c = json_pack("{s:b, s:b, s:{s:{s:s}}, s:{}, s:{}}", "applied", applied, "fetched",
                          applied, "Namespace", "acme", "name", "acme", "HelmRelease", "Terraform");
    if (hr)
        json_object_set_new(json_object_get(c, "HelmRelease"), HR_KEY, hr);
    return c;
}

/* c with every slim replaced by its packed text, as the cache keeps them
 * (new reference). */
static json_t *packed_cluster(const json_t *c)
{
    json_t *out = json_deep_copy(c), *map, *v;
    const char *kind, *key;
    json_object_foreach(out, kind, map)
    {
        if (!json_is_object(map))
            continue;
        json_object_foreach(map, key, v)
        {
            char *text = ll_status_slim_pack(v);
            assert_non_null(text);
            json_object_set_new(map, key, json_string(text));
            free(text);
        }
    }
    return out;
}

/* Derives and checks state and reason; returns the derivation.  The same
 * cluster with its objects packed must derive exactly the same. */
static json_t *expect(json_t *t, json_t *c, const char *state, const char *reason)
{
    json_t *packed = packed_cluster(c);
    json_t *d = ll_status_derive(t, c), *dp = ll_status_derive(t, packed);
    if (!json_equal(d, dp)) {
        char *a = json_dumps(d, JSON_COMPACT), *b = json_dumps(dp, JSON_COMPACT);
        fail_msg("packed objects derive %s, slims %s", b, a);
    }
    json_decref(dp);
    json_decref(packed);
    const char *got = json_string_value(json_object_get(d, "state"));
    const char *why = json_string_value(json_object_get(d, "reason"));
    if (strcmp(got, state) != 0 || (reason && strcmp(why, reason) != 0))
        fail_msg("expected %s/%s, got %s/%s (%s)", state, reason ? reason : "*", got, why,
                 json_string_value(json_object_get(d, "message")));
    json_decref(t);
    json_decref(c);
    return d;
}

static void test_ready_at_the_desired_chart(void **state)
{
    (void)state;
    json_t *d = expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease(3, READY_STATUS)), "ready", "UpgradeSucceeded");
    assert_string_equal(json_string_value(json_object_get(d, "deployed_chart")), "1.2.3");
    json_t *objects = json_object_get(d, "objects");
    assert_int_equal(json_array_size(objects), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(objects, 1), "state")),
                        "ready");
    json_decref(d);
    /* An exact version must match exactly. */
    json_decref(expect(tenant("active", "committed", "1.2.3"),
                       cluster(1, helmrelease_spec(3, "1.2.3", NULL, READY_STATUS)), "ready",
                       NULL));
}

static void test_not_ready_until_the_commit_is_applied(void **state)
{
    (void)state;
    json_t *d = expect(tenant("active", "committed", "1.2.x"),
                       cluster(0, helmrelease(3, READY_STATUS)), "updating", "NotFetched");
    assert_non_null(strstr(json_string_value(json_object_get(d, "message")), "450796ddb2ab"));
    json_decref(d);
    json_t *c = cluster(0, NULL);
    json_object_set_new(c, "fetched", json_true());
    json_decref(expect(tenant("active", "committed", "1.2.x"), c, "provisioning", "NotApplied"));
    json_decref(expect(tenant("active", "pending", "1.2.x"), cluster(1, NULL), "provisioning",
                       "GitPending"));
}

static void test_healthy_at_the_old_chart_is_not_ready(void **state)
{
    (void)state;
    /* Ready True, but history[0] is 1.2.3 while the file asks for 1.3.x. */
    json_decref(expect(tenant("active", "committed", "1.3.x"),
                       cluster(1, helmrelease_spec(3, "1.3.x", NULL, READY_STATUS)), "updating",
                       "ChartVersion"));
    json_decref(expect(tenant("active", "committed", "1.2.4"),
                       cluster(1, helmrelease_spec(3, "1.2.4", NULL, READY_STATUS)), "updating",
                       "ChartVersion"));
}

/* The Kustomization applied the new commit, but the HelmRelease's watch has
 * not brought its new spec yet: its Ready speaks of the old spec. */
static json_t *tenant_with_values(const char *want, const char *values_digest)
{
    json_t *t = tenant("active", "committed", want);
    json_object_set_new(json_array_get(json_object_get(t, "objects"), 1), "values",
                        json_string(values_digest));
    return t;
}

static void test_old_spec_is_not_ready(void **state)
{
    (void)state;
    /* The file asks for 1.3.x; the live object still says 1.2.x. */
    json_decref(expect(tenant("active", "committed", "1.3.x"),
                       cluster(1, helmrelease(3, READY_STATUS)), "updating", "NotApplied"));

    /* Values: the slim keeps a digest of spec.values; equal values (3 and
     * 3.0, keys in any order) give equal digests. */
    json_t *a =
        helmrelease_spec(3, "1.2.x", "{\"replicaCount\":3,\"a\":{\"x\":1,\"y\":2}}", READY_STATUS);
    json_t *b = helmrelease_spec(3, "1.2.x", "{\"a\":{\"y\":2,\"x\":1.0},\"replicaCount\":3.0}",
                                 READY_STATUS);
    json_t *c = helmrelease_spec(3, "1.2.x", "{\"replicaCount\":4}", READY_STATUS);
    json_t *none = helmrelease_spec(3, "1.2.x", "{}", READY_STATUS);
    json_t *absent = helmrelease(3, READY_STATUS);
    const char *da = json_string_value(json_object_get(a, "values"));
    assert_non_null(da);
    assert_int_equal(strlen(da), 16);
    assert_string_equal(da, json_string_value(json_object_get(b, "values")));
    /* Text and numbers alike, null members dropped (server-side apply). */
    json_t *e = helmrelease_spec(
        3, "1.2.x", "{\"replicaCount\":\"3\",\"a\":{\"x\":1,\"y\":2,\"z\":null}}", READY_STATUS);
    assert_string_equal(da, json_string_value(json_object_get(e, "values")));
    json_decref(e);
    assert_string_not_equal(da, json_string_value(json_object_get(c, "values")));
    assert_string_equal(json_string_value(json_object_get(none, "values")),
                        json_string_value(json_object_get(absent, "values")));
    char want[17];
    snprintf(want, sizeof(want), "%s", da);
    json_decref(expect(tenant_with_values("1.2.x", want), cluster(1, json_incref(b)), "ready",
                       "UpgradeSucceeded"));
    json_decref(expect(tenant_with_values("1.2.x", want), cluster(1, json_incref(c)), "updating",
                       "NotApplied"));
    /* A Flux substitution in the values: only the cluster's copy is
     * resolved, so the values are not compared. */
    json_t *subst =
        helmrelease_spec(3, "1.2.x", "{\"region\":\"${cluster_region}\"}", READY_STATUS);
    assert_null(json_object_get(subst, "values"));
    json_decref(subst);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(none);
    json_decref(absent);
}

static void test_generation_not_observed_is_progressing(void **state)
{
    (void)state;
    json_decref(expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease(4, READY_STATUS)), "updating", NULL));
}

static void test_installing_is_provisioning(void **state)
{
    (void)state;
    const char *installing =
        "{\"lastAttemptedGeneration\":1,\"lastAttemptedRevision\":\"1.2.3\","
        "\"conditions\":[{\"type\":\"Reconciling\",\"status\":\"True\",\"reason\":\"Progressing\","
        "\"message\":\"Running 'install' action with timeout of 5m0s\"},"
        "{\"type\":\"Ready\",\"status\":\"Unknown\",\"reason\":\"Progressing\","
        "\"message\":\"Running 'install' action with timeout of 5m0s\"}]}";
    json_decref(expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease(1, installing)), "provisioning", "Progressing"));
    /* Not created yet at all. */
    json_decref(expect(tenant("active", "committed", "1.2.x"), cluster(1, NULL), "provisioning",
                       "NotCreated"));
}

/* A HelmRelease whose install failed for good (generation 1). */
static const char *INSTALL_FAILED_STATUS =
    "{\"observedGeneration\":1,\"failures\":1,\"lastAttemptedRevision\":\"1.2.3\","
    "\"conditions\":[{\"type\":\"Stalled\",\"status\":\"True\",\"reason\":\"RetriesExceeded\","
    "\"message\":\"Failed to install after 1 attempt(s)\"},"
    "{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"InstallFailed\","
    "\"message\":\"Helm install failed for release acme/acme-premium with chart "
    "helm-tenant-chart@1.2.3: context deadline exceeded\"}],"
    "\"history\":[{\"version\":1,\"status\":\"failed\",\"chartVersion\":\"1.2.3\"}]}";

static void test_failures(void **state)
{
    (void)state;
    json_t *d =
        expect(tenant("active", "committed", "1.2.x"),
               cluster(1, helmrelease(1, INSTALL_FAILED_STATUS)), "failed", "InstallFailed");
    assert_non_null(strstr(json_string_value(json_object_get(d, "message")), "context deadline"));
    json_decref(d);

    const char *missing_chart =
        "{\"observedGeneration\":0,"
        "\"conditions\":[{\"type\":\"Reconciling\",\"status\":\"True\",\"reason\":\"Progressing\","
        "\"message\":\"Fulfilling prerequisites\"},"
        "{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"SourceNotReady\","
        "\"message\":\"HelmChart 'flux-system/flux-system-acme-premium' is not ready: chart pull "
        "error\"}]}";
    json_decref(expect(tenant("active", "committed", "9.9.x"),
                       cluster(1, helmrelease_spec(1, "9.9.x", NULL, missing_chart)), "failed",
                       "SourceNotReady"));

    const char *rolled_back =
        "{\"observedGeneration\":3,"
        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"RollbackSucceeded\","
        "\"observedGeneration\":3,\"message\":\"Helm rollback to previous release succeeded\"},"
        "{\"type\":\"Remediated\",\"status\":\"True\",\"reason\":\"RollbackSucceeded\","
        "\"message\":\"Helm rollback to previous release succeeded\"}],"
        "\"history\":[{\"version\":3,\"status\":\"deployed\",\"chartVersion\":\"1.2.2\"}]}";
    json_decref(expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease(3, rolled_back)), "failed", "RollbackSucceeded"));

    const char *retrying = "{\"observedGeneration\":3,"
                           "\"conditions\":[{\"type\":\"Reconciling\",\"status\":\"True\","
                           "\"reason\":\"ProgressingWithRetry\",\"message\":\"upgrade failed\"},"
                           "{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"UpgradeFailed\","
                           "\"message\":\"Helm upgrade failed\"}]}";
    d = expect(tenant("active", "committed", "1.2.x"), cluster(1, helmrelease(3, retrying)),
               "failed", "UpgradeFailed");
    assert_non_null(strstr(json_string_value(json_object_get(d, "message")), "(retrying)"));
    json_decref(d);
}

static void test_blocked_on_a_dependency(void **state)
{
    (void)state;
    const char *waiting =
        "{\"observedGeneration\":0,\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
        "\"reason\":\"DependencyNotReady\",\"message\":\"dependency 'flux-system/db' is not "
        "ready\"}]}";
    json_decref(expect(tenant("active", "committed", "1.2.x"), cluster(1, helmrelease(1, waiting)),
                       "blocked", "DependencyNotReady"));
}

static void test_kustomization_failure(void **state)
{
    (void)state;
    json_t *c = cluster(0, NULL);
    json_object_set_new(c, "failed_ks", json_string("kustomize build failed: bad file"));
    json_t *d = expect(tenant("active", "committed", "1.2.x"), c, "failed", "KustomizationFailed");
    assert_string_equal(json_string_value(json_object_get(d, "message")),
                        "kustomize build failed: bad file");
    json_decref(d);
}

static void test_offboarding_until_the_objects_are_gone(void **state)
{
    (void)state;
    json_decref(expect(tenant("offboarding", "pending", "1.2.x"),
                       cluster(1, helmrelease(3, READY_STATUS)), "offboarding", "GitPending"));
    json_decref(expect(tenant("offboarded", "committed", "1.2.x"),
                       cluster(1, helmrelease(3, READY_STATUS)), "offboarding", "Deleting"));
    /* The HelmRelease is gone but the namespace terminates. */
    json_t *c = cluster(1, NULL);
    json_object_set_new(json_object_get(json_object_get(c, "Namespace"), "acme"), "phase",
                        json_string("Terminating"));
    json_decref(expect(tenant("offboarded", "committed", "1.2.x"), c, "offboarding", "Deleting"));
    /* Everything gone. */
    c = cluster(1, NULL);
    json_object_clear(json_object_get(c, "Namespace"));
    json_decref(expect(tenant("offboarded", "committed", "1.2.x"), c, "offboarded", "Deleted"));
}

static void test_slim_keeps_what_the_rules_read(void **state)
{
    (void)state;
    json_t *s = helmrelease(3, READY_STATUS);
    assert_int_equal(json_integer_value(json_object_get(s, "generation")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "observedGeneration")), 3);
    assert_string_equal(json_string_value(json_object_get(s, "chart")), "1.2.x");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(s, "history"), "chartVersion")), "1.2.3");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "history"), "entries")),
                     2);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(s, "conditions"), "Ready"), "reason")),
                        "UpgradeSucceeded");
    assert_null(json_object_get(s, "spec"));
    json_decref(s);
}

/* A Terraform as tofu-controller leaves it (slim), with the given Ready
 * condition; chart: made by the acme-premium HelmRelease's chart. */
static json_t *terraform(const char *ready, const char *reason, int chart)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"infra.contrib.fluxcd.io/v1alpha2\",\"kind\":\"Terraform\","
             "\"metadata\":{\"name\":\"acme\",\"namespace\":\"acme\",\"generation\":2%s},"
             "\"status\":{\"observedGeneration\":2,\"conditions\":[{\"type\":\"Ready\","
             "\"status\":\"%s\",\"reason\":\"%s\",\"message\":\"tf says %s\"}]}}",
             chart ? ",\"labels\":{\"helm.toolkit.fluxcd.io/name\":\"acme-premium\","
                     "\"helm.toolkit.fluxcd.io/namespace\":\"flux-system\"}"
                   : "",
             ready, reason, reason);
    json_t *o = parse(text);
    json_t *slim = ll_status_slim(o);
    json_decref(o);
    return slim;
}

static void test_terraform(void **state)
{
    (void)state;
    /* The slim of a chart's Terraform names its HelmRelease. */
    json_t *tf = terraform("True", "TerraformAppliedSucceed", 1);
    assert_string_equal(json_string_value(json_object_get(tf, "hr")), HR_KEY);
    json_decref(tf);
    assert_null(json_object_get(tf = terraform("True", "TerraformAppliedSucceed", 0), "hr"));
    json_decref(tf);

    /* The tenant with its HelmRelease ready and a Terraform (made by the
     * chart: in the ChartTerraform map) in each state. */
    struct {
        const char *ready, *reason, *state;
    } cases[] = {
        {"True", "TerraformAppliedSucceed", "ready"},
        {"Unknown", "Progressing", "updating"},
        {"False", "TFExecApplyFailed", "failed"},
        {"False", "DependencyNotReady", "blocked"},
        {"Unknown", "TerraformPlannedWithChanges", "blocked"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *t = tenant("active", "committed", "1.2.x");
        json_array_append_new(json_object_get(t, "objects"),
                              json_pack("{s:s, s:s}", "kind", "Terraform", "key", "acme/acme"));
        json_t *c = cluster(1, helmrelease(3, READY_STATUS));
        json_object_set_new(
            c, "ChartTerraform",
            json_pack("{s:o}", "acme/acme", terraform(cases[i].ready, cases[i].reason, 1)));
        json_t *d = expect(t, c, cases[i].state, NULL);
        json_t *objects = json_object_get(d, "objects");
        assert_int_equal(json_array_size(objects), 3);
        assert_string_equal(json_string_value(json_object_get(json_array_get(objects, 2), "kind")),
                            "Terraform");
        json_decref(d);
    }
    /* Declared but not there yet: not ready. */
    json_t *t = tenant("active", "committed", "1.2.x");
    json_array_append_new(json_object_get(t, "objects"),
                          json_pack("{s:s, s:s}", "kind", "Terraform", "key", "acme/acme"));
    json_decref(expect(t, cluster(1, helmrelease(3, READY_STATUS)), "updating", "NotCreated"));
}

/* Packed slims read back as the slims they were made from, and take less
 * than 70% of their compact JSON. */
static void test_packed_slims(void **state)
{
    (void)state;
    const char *objects[] = {
        /* no status at all */
        "{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\"}}",
        /* a Namespace being deleted */
        "{\"metadata\":{\"name\":\"acme\",\"deletionTimestamp\":\"2026-12-07T10:00:00Z\"},"
        "\"status\":{\"phase\":\"Terminating\"}}",
        /* a GitRepository and a Kustomization */
        "{\"metadata\":{\"name\":\"flux-system\",\"generation\":4},\"status\":{"
        "\"observedGeneration\":4,\"artifact\":{\"revision\":\"main@sha1:abc\"},"
        "\"lastHandledReconcileAt\":\"2026-12-07T10:00:00Z\",\"conditions\":[{\"type\":"
        "\"Ready\",\"status\":\"True\",\"reason\":\"Succeeded\"}]}}",
        "{\"metadata\":{\"name\":\"t\",\"generation\":1},\"status\":{\"lastAppliedRevision\":"
        "\"main@sha1:abc\",\"lastAttemptedRevision\":\"main@sha1:def\",\"conditions\":[{"
        "\"type\":\"Reconciling\",\"status\":\"True\"},{\"type\":\"Stalled\",\"status\":"
        "\"False\",\"message\":null},{\"type\":\"Ready\",\"status\":\"False\",\"reason\":"
        "\"BuildFailed\",\"message\":\"kustomize build failed\"}]}}",
        /* a HelmRelease with a history entry lacking its chart version */
        "{\"metadata\":{\"name\":\"h\",\"generation\":2},\"spec\":{\"chartRef\":{}},"
        "\"status\":{\"history\":[{\"status\":\"failed\"}],\"conditions\":[{\"type\":"
        "\"Remediated\",\"status\":\"True\",\"observedGeneration\":2}]}}",
    };
    json_t *slims = json_array();
    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
        json_t *o = parse(objects[i]);
        json_array_append_new(slims, ll_status_slim(o));
        json_decref(o);
    }
    json_array_append_new(slims, helmrelease(3, READY_STATUS));
    json_array_append_new(slims, helmrelease_spec(2, "1.2.x", "{\"a\":1}", READY_STATUS));
    json_array_append_new(slims, terraform("False", "TFExecApplyFailed", 1));
    size_t i, packed_bytes = 0, plain_bytes = 0;
    json_t *slim;
    json_array_foreach(slims, i, slim)
    {
        char *text = ll_status_slim_pack(slim), *plain = json_dumps(slim, JSON_COMPACT);
        json_t *back = ll_status_slim_unpack(text);
        if (!json_equal(slim, back)) {
            char *got = json_dumps(back, JSON_COMPACT);
            fail_msg("slim %zu: %s packed as %s reads back as %s", i, plain, text, got);
        }
        packed_bytes += strlen(text);
        plain_bytes += strlen(plain);
        json_decref(back);
        free(text);
        free(plain);
    }
    json_decref(slims);
    assert_true(packed_bytes * 10 < plain_bytes * 7);         /* what it is for */
    assert_null(ll_status_slim_unpack("{\"generation\":1}")); /* not packed */
    assert_null(ll_status_slim_unpack("not json"));
    assert_null(ll_status_slim_unpack(NULL));
}

/* --- one case per rule of docs/api.md "Observed state" not covered above ---------- */

/* A HelmRelease slim at generation 3 with the given conditions (JSON
 * array text) and history[0] deployed at 1.2.3. */
static json_t *helmrelease_with(const char *conditions)
{
    char status[2048];
    snprintf(status, sizeof(status),
             "{\"observedGeneration\":3,\"lastAttemptedRevision\":\"1.2.3\",\"conditions\":%s,"
             "\"history\":[{\"status\":\"deployed\",\"chartVersion\":\"1.2.3\"}]}",
             conditions);
    return helmrelease(3, status);
}

static const char *message_of(const json_t *d)
{
    return json_string_value(json_object_get(d, "message"));
}

static void test_stalled_and_remediated(void **state)
{
    (void)state;
    /* Stalled while Ready is not False: Stalled's reason and message. */
    json_t *d =
        expect(tenant("active", "committed", "1.2.x"),
               cluster(1, helmrelease_with("[{\"type\":\"Stalled\",\"status\":\"True\",\"reason\":"
                                           "\"RetriesExceeded\",\"message\":\"gave up\"},"
                                           "{\"type\":\"Ready\",\"status\":\"Unknown\"}]")),
               "failed", "RetriesExceeded");
    assert_string_equal(message_of(d), "HelmRelease " HR_KEY ": gave up");
    json_decref(d);
    /* Remediated, even with Ready True. */
    d = expect(tenant("active", "committed", "1.2.x"),
               cluster(1, helmrelease_with("[{\"type\":\"Remediated\",\"status\":\"True\","
                                           "\"reason\":\"UninstallSucceeded\",\"message\":"
                                           "\"uninstalled\"},{\"type\":\"Ready\",\"status\":"
                                           "\"True\",\"observedGeneration\":3}]")),
               "failed", "UninstallSucceeded");
    assert_string_equal(message_of(d), "HelmRelease " HR_KEY ": uninstalled");
    json_decref(d);
    /* Ready False for a reason that is not a failure: still working. */
    json_decref(expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease_with("[{\"type\":\"Ready\",\"status\":\"False\","
                                                   "\"reason\":\"Progressing\"}]")),
                       "updating", "Progressing"));
}

static void test_stale_generation(void **state)
{
    (void)state;
    /* Ready True, but about an older generation. */
    json_t *d = expect(tenant("active", "committed", "1.2.x"),
                       cluster(1, helmrelease_with("[{\"type\":\"Ready\",\"status\":\"True\","
                                                   "\"reason\":\"UpgradeSucceeded\","
                                                   "\"observedGeneration\":2}]")),
                       "updating", "UpgradeSucceeded");
    json_decref(d);
    /* Ready True at the generation, but reconciling again. */
    json_decref(
        expect(tenant("active", "committed", "1.2.x"),
               cluster(1, helmrelease_with("[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":"
                                           "\"UpgradeSucceeded\",\"observedGeneration\":3},"
                                           "{\"type\":\"Reconciling\",\"status\":\"True\"}]")),
               "updating", "UpgradeSucceeded"));
    /* generation ahead of observedGeneration: the message says both. */
    d = expect(tenant("active", "committed", "1.2.x"), cluster(1, helmrelease(5, READY_STATUS)),
               "updating", "UpgradeSucceeded");
    assert_non_null(strstr(message_of(d), "generation 5 not reconciled yet (observed 3)"));
    json_decref(d);
}

static void test_chart_versions(void **state)
{
    (void)state;
    struct {
        const char *want, *deployed, *attempted, *hstatus, *state;
    } cases[] = {
        {"1.2.3", "1.2.3+build.7", "1.2.3", "deployed", "ready"}, /* build metadata ignored */
        {"1.*", "1.2.3", "1.2.3", "deployed", "ready"},
        {"1.X", "1.9.0", "1.9.0", "deployed", "ready"},
        {">=1.2 <2", "1.7.0", "1.7.0", "deployed", "ready"}, /* not read: satisfied */
        {"1.2.x", "1.3.0", "1.3.0", "deployed", "updating"},
        {"1.2", "1.2.3", "1.2.3", "deployed", "updating"},     /* exact, not a prefix */
        {"1.2.3", "1.2.3", "1.2.4", "deployed", "updating"},   /* lastAttemptedRevision */
        {"1.2.3", "1.2.3", "1.2.3", "superseded", "updating"}, /* history[0] not deployed */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char status[1024];
        snprintf(status, sizeof(status),
                 "{\"observedGeneration\":3,\"lastAttemptedRevision\":\"%s\",\"conditions\":[{"
                 "\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"UpgradeSucceeded\","
                 "\"observedGeneration\":3}],\"history\":[{\"status\":\"%s\",\"chartVersion\":"
                 "\"%s\"}]}",
                 cases[i].attempted, cases[i].hstatus, cases[i].deployed);
        json_t *d = expect(tenant("active", "committed", cases[i].want),
                           cluster(1, helmrelease_spec(3, cases[i].want, NULL, status)),
                           cases[i].state, NULL);
        if (strcmp(cases[i].state, "ready") != 0)
            assert_string_equal(json_string_value(json_object_get(d, "reason")), "ChartVersion");
        json_decref(d);
    }
}

static void test_deleting_helmrelease(void **state)
{
    (void)state;
    json_t *hr = helmrelease(3, READY_STATUS);
    json_object_set_new(hr, "deleting", json_true());
    json_t *d =
        expect(tenant("active", "committed", "1.2.x"), cluster(1, hr), "updating", "Deleting");
    assert_string_equal(message_of(d), "HelmRelease " HR_KEY ": the HelmRelease is being deleted");
    json_decref(d);
}

static void test_drifted_unreadable_and_no_objects(void **state)
{
    (void)state;
    json_decref(expect(tenant("drifted", "committed", "1.2.x"),
                       cluster(1, helmrelease(3, READY_STATUS)), "drifted", "FileMissing"));
    json_t *t = tenant("active", "committed", "1.2.x");
    json_object_set_new(t, "unreadable", json_true());
    json_t *d = expect(t, cluster(1, helmrelease(3, READY_STATUS)), "unknown", "FileUnreadable");
    assert_string_equal(message_of(d), "the tenant's file cannot be read at commit 450796ddb2ab");
    json_decref(d);
    /* Unreadable says nothing while the push is pending. */
    t = tenant("active", "pending", "1.2.x");
    json_object_set_new(t, "unreadable", json_true());
    json_decref(expect(t, cluster(1, helmrelease(3, READY_STATUS)), "updating", "GitPending"));
    /* A file that declares nothing landlord watches. */
    t = tenant("active", "committed", "1.2.x");
    json_array_clear(json_object_get(t, "objects"));
    d = expect(t, cluster(1, NULL), "ready", "NoObjects");
    assert_int_equal(json_array_size(json_object_get(d, "objects")), 0);
    assert_null(json_object_get(d, "deployed_chart"));
    json_decref(d);
}

static void test_the_worst_object_speaks(void **state)
{
    (void)state;
    const char *waiting =
        "{\"observedGeneration\":1,\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
        "\"reason\":\"DependencyNotReady\",\"message\":\"waiting on db\"}]}";
    /* The Namespace is missing (progressing), the HelmRelease blocked:
     * blocked wins; the missing object is listed as missing. */
    json_t *c = cluster(1, helmrelease(1, waiting));
    json_object_clear(json_object_get(c, "Namespace"));
    json_t *d = expect(tenant("active", "committed", "1.2.x"), c, "blocked", "DependencyNotReady");
    assert_string_equal(message_of(d), "HelmRelease " HR_KEY ": waiting on db");
    json_t *ns = json_array_get(json_object_get(d, "objects"), 0);
    assert_string_equal(json_string_value(json_object_get(ns, "state")), "missing");
    assert_string_equal(json_string_value(json_object_get(ns, "reason")), "NotCreated");
    json_decref(d);
    /* A terminating Namespace holds back a ready HelmRelease. */
    c = cluster(1, helmrelease(3, READY_STATUS));
    json_object_set_new(json_object_get(json_object_get(c, "Namespace"), "acme"), "phase",
                        json_string("Terminating"));
    d = expect(tenant("active", "committed", "1.2.x"), c, "updating", "Terminating");
    assert_string_equal(message_of(d), "Namespace acme: the namespace is being deleted");
    json_decref(d);
    /* Among equals the HelmRelease speaks: both ready, its reason. */
    d = expect(tenant("active", "committed", "1.2.x"), cluster(1, helmrelease(3, READY_STATUS)),
               "ready", "UpgradeSucceeded");
    assert_non_null(strstr(message_of(d), "HelmRelease " HR_KEY ": Helm upgrade succeeded"));
    json_t *hr = json_array_get(json_object_get(d, "objects"), 1);
    assert_string_equal(json_string_value(json_object_get(hr, "desired_chart")), "1.2.x");
    assert_string_equal(json_string_value(json_object_get(hr, "deployed_chart")), "1.2.3");
    assert_int_equal(json_integer_value(json_object_get(hr, "generation")), 3);
    assert_int_equal(json_integer_value(json_object_get(hr, "observed_generation")), 3);
    json_decref(d);
    /* A Kustomization failure on another commit does not count once the
     * tenant's commit is applied. */
    c = cluster(1, helmrelease(3, READY_STATUS));
    json_object_set_new(c, "failed_ks", json_string("kustomize build failed"));
    json_decref(expect(tenant("active", "committed", "1.2.x"), c, "ready", NULL));
}

/* The typed derivation the follower uses (status_int.h) gives what the
 * JSON one shows, and needs no details. */
static void test_typed_verdict(void **state)
{
    (void)state;
    json_t *c = cluster(1, helmrelease(3, READY_STATUS)), *packed = packed_cluster(c);
    st_object objects[] = {
        {.kind = ST_NAMESPACE, .key = "acme"},
        {.kind = ST_HELMRELEASE, .key = HR_KEY, .chart = "1.2.x"},
    };
    st_tenant t = {.lifecycle = "active",
                   .sync = "committed",
                   .commit = "450796ddb2ab6724ee1cc32a4be56da032d1cca0",
                   .objects = objects,
                   .n_objects = 2};
    st_facts facts = {.applied = 1, .fetched = 1};
    st_verdict v;
    st_derive(&v, NULL, &t, packed, &facts);
    assert_int_equal(v.state, LL_STATE_READY);
    assert_string_equal(v.reason, "UpgradeSucceeded");
    assert_string_equal(v.deployed_chart, "1.2.3");
    json_t *jt = tenant("active", "committed", "1.2.x"), *d = ll_status_derive(jt, c);
    assert_string_equal(v.message, message_of(d));
    json_decref(d);
    json_decref(jt);
    /* Not applied: the facts decide. */
    facts.applied = 0;
    facts.failed_ks = "apply failed";
    st_derive(&v, NULL, &t, packed, &facts);
    assert_int_equal(v.state, LL_STATE_FAILED);
    assert_string_equal(v.reason, "KustomizationFailed");
    assert_string_equal(v.message, "apply failed");
    facts.failed_ks = NULL;
    st_derive(&v, NULL, &t, packed, &facts);
    assert_int_equal(v.state, LL_STATE_UPDATING);
    assert_string_equal(v.reason, "NotApplied");
    /* A values digest that differs from the live one: not applied yet. */
    snprintf(objects[1].values, sizeof(objects[1].values), "%s", "0123456789abcdef");
    json_object_set_new(json_object_get(json_object_get(c, "HelmRelease"), HR_KEY), "values",
                        json_string("fedcba9876543210"));
    facts.applied = 1;
    st_derive(&v, NULL, &t, c, &facts);
    assert_int_equal(v.state, LL_STATE_UPDATING);
    assert_string_equal(v.reason, "NotApplied");
    json_decref(packed);
    json_decref(c);
}

#define ACME_COMMIT "450796ddb2ab6724ee1cc32a4be56da032d1cca0"

/* The verdict st_derive gives tenant acme (its HelmRelease asking for
 * 1.2.x) on a cluster whose HelmRelease has status hr_status at
 * generation, with its commit applied. */
static st_verdict derived(long generation, const char *hr_status)
{
    json_t *c = cluster(1, helmrelease(generation, hr_status)), *packed = packed_cluster(c);
    st_object objects[] = {
        {.kind = ST_NAMESPACE, .key = "acme"},
        {.kind = ST_HELMRELEASE, .key = HR_KEY, .chart = "1.2.x"},
    };
    st_tenant t = {.lifecycle = "active",
                   .sync = "committed",
                   .commit = ACME_COMMIT,
                   .objects = objects,
                   .n_objects = 2};
    st_facts facts = {.applied = 1, .fetched = 1};
    st_verdict v;
    st_derive(&v, NULL, &t, packed, &facts);
    json_decref(packed);
    json_decref(c);
    return v;
}

/* r takes verdict v as the follower keeps it; its record then reads back
 * (into *out) with state, reason, a message saying says, and v's words. */
static void judged(ll_verdict *out, trec *r, st_verdict v, ll_tenant_state state,
                   const char *reason, const char *says)
{
    st_trec_judged(r, &v);
    assert_int_equal(st_trec_verdict(out, r, ACME_COMMIT, "committed"), 0);
    assert_int_equal(out->state, state);
    assert_string_equal(out->reason, reason);
    assert_string_equal(out->message, v.message);
    assert_non_null(strstr(out->message, says));
    assert_string_equal(out->deployed_chart, v.deployed_chart);
}

/* The verdict record ll_status_verdict hands out: what the follower
 * derived for the tenant's desired state (st_trec_judged, as derive_one
 * keeps it), typed, for a ready and a failed tenant; nothing for another
 * desired commit or sync, nor without a cluster. */
static void test_verdict_record(void **state)
{
    (void)state;
    tmap m = {0};
    ll_verdict out;
    trec *r = st_tmap_add(&m, "acme");
    assert_non_null(r);
    snprintf(r->commit, sizeof(r->commit), "%s", ACME_COMMIT);
    snprintf(r->sync, sizeof(r->sync), "%s", "committed");
    /* Not derived yet. */
    assert_int_equal(st_trec_verdict(&out, r, ACME_COMMIT, "committed"), LL_ENOTFOUND);
    assert_int_equal(st_trec_verdict(&out, NULL, ACME_COMMIT, "committed"), LL_ENOTFOUND);

    judged(&out, r, derived(3, READY_STATUS), LL_STATE_READY, "UpgradeSucceeded",
           "Helm upgrade succeeded");
    assert_string_equal(out.deployed_chart, "1.2.3");
    /* Any sync; but not for another desired commit or sync (zeroed). */
    assert_int_equal(st_trec_verdict(&out, r, ACME_COMMIT, NULL), 0);
    assert_int_equal(out.state, LL_STATE_READY);
    assert_int_equal(st_trec_verdict(&out, r, "0000000000000000000000000000000000000000", NULL),
                     LL_ENOTFOUND);
    assert_int_equal(out.state, LL_STATE_NONE);
    assert_string_equal(out.reason, "");
    assert_int_equal(st_trec_verdict(&out, r, NULL, NULL), LL_ENOTFOUND);
    assert_int_equal(st_trec_verdict(&out, r, ACME_COMMIT, "pending"), LL_ENOTFOUND);

    judged(&out, r, derived(1, INSTALL_FAILED_STATUS), LL_STATE_FAILED, "InstallFailed",
           "context deadline exceeded");
    /* The desired state moved on since: that verdict is no answer. */
    snprintf(r->commit, sizeof(r->commit), "%s", "1111111111111111111111111111111111111111");
    assert_int_equal(st_trec_verdict(&out, r, r->commit, "committed"), LL_ENOTFOUND);
    st_tmap_free(&m);

    /* Without a cluster there is no verdict. */
    assert_int_equal(ll_status_verdict(&out, NULL, "acme", ACME_COMMIT, NULL), LL_ENOTFOUND);
    assert_int_equal(out.state, LL_STATE_NONE);
}

static char *dumps(const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    assert_non_null(text);
    return text;
}

/* A status without a cluster: the health record says not configured, and
 * /readyz's kube check shows only that. */
static void test_health_without_cluster(void **state)
{
    (void)state;
    ll_status_options opts = {.db_path = "unused.db", .git_dir = "unused.git"};
    ll_status *s = NULL;
    ll_kube_health h;
    ll_verdict v;

    assert_int_equal(ll_status_open(&s, NULL, &opts), 0);
    assert_non_null(s);
    assert_int_equal(ll_status_configured(s), 0);
    memset(&h, 0xff, sizeof(h));
    ll_status_health(&h, s);
    assert_int_equal(h.status, LL_KUBE_NOT_CONFIGURED);
    assert_int_equal(h.n_watches, 0);
    assert_null(h.server);
    assert_string_equal(h.error, "");
    assert_int_equal(h.namespaces_known, 0);
    json_t *j = ll_kube_health_json(&h);
    char *text = dumps(j);
    assert_string_equal(text, "{\"status\":\"not-configured\"}");
    free(text);
    json_decref(j);
    assert_int_equal(ll_status_verdict(&v, s, "acme", ACME_COMMIT, "committed"), LL_ENOTFOUND);
    ll_status_free(s);
    /* No status at all reads the same. */
    ll_status_health(&h, NULL);
    assert_int_equal(h.status, LL_KUBE_NOT_CONFIGURED);
}

/* /readyz's kube check built from a health record: every field /readyz
 * shows, in its order, with null for what is absent. */
static void test_health_json(void **state)
{
    (void)state;
    ll_kube_health h;
    memset(&h, 0, sizeof(h));
    h.status = LL_KUBE_DEGRADED;
    h.server = "https://10.0.0.1:6443";
    h.source = "in-cluster";
    h.watches[0] = (ll_watch_health){
        .kind = "GitRepository", .state = LL_WATCH_SYNCED, .objects = 1, .restarts = 2};
    h.watches[1] = (ll_watch_health){
        .kind = "HelmRelease", .state = LL_WATCH_FAILED, .objects = 40, .restarts = 3};
    snprintf(h.watches[1].error, sizeof(h.watches[1].error), "%s", "kubernetes: 403 Forbidden");
    h.watches[2] = (ll_watch_health){.kind = "Terraform", .state = LL_WATCH_SYNCED, .absent = 1};
    h.watches[3] = (ll_watch_health){.kind = "AllNamespaces", .state = LL_WATCH_LISTING};
    h.n_watches = 4;
    snprintf(h.reconcile_requested_at, sizeof(h.reconcile_requested_at), "%s",
             "2026-12-08T03:00:00Z");
    h.namespaces_known = 1;
    h.namespaces = 12;
    snprintf(h.error, sizeof(h.error), "%s", "HelmRelease: kubernetes: 403 Forbidden");

    json_t *j = ll_kube_health_json(&h);
    char *text = dumps(j);
    assert_string_equal(
        text, "{\"status\":\"degraded\",\"server\":\"https://10.0.0.1:6443\","
              "\"source\":\"in-cluster\",\"watches\":["
              "{\"kind\":\"GitRepository\",\"synced\":true,\"objects\":1,\"restarts\":2,"
              "\"error\":null,\"absent\":false},"
              "{\"kind\":\"HelmRelease\",\"synced\":false,\"objects\":40,\"restarts\":3,"
              "\"error\":\"kubernetes: 403 Forbidden\",\"absent\":false},"
              "{\"kind\":\"Terraform\",\"synced\":true,\"objects\":0,\"restarts\":0,"
              "\"error\":null,\"absent\":true},"
              "{\"kind\":\"AllNamespaces\",\"synced\":false,\"objects\":0,\"restarts\":0,"
              "\"error\":null,\"absent\":false}],"
              "\"reconcile\":{\"requested_at\":\"2026-12-08T03:00:00Z\",\"handled_at\":null},"
              "\"namespaces\":12,\"error\":\"HelmRelease: kubernetes: 403 Forbidden\"}");
    free(text);
    json_decref(j);

    /* Every watch synced: ok, no error; namespaces absent until listed. */
    h.status = LL_KUBE_OK;
    h.n_watches = 1;
    h.namespaces_known = 0;
    snprintf(h.reconcile_handled_at, sizeof(h.reconcile_handled_at), "%s", "2026-12-08T03:00:01Z");
    j = ll_kube_health_json(&h);
    text = dumps(j);
    assert_string_equal(text,
                        "{\"status\":\"ok\",\"server\":\"https://10.0.0.1:6443\","
                        "\"source\":\"in-cluster\",\"watches\":["
                        "{\"kind\":\"GitRepository\",\"synced\":true,\"objects\":1,\"restarts\":2,"
                        "\"error\":null,\"absent\":false}],"
                        "\"reconcile\":{\"requested_at\":\"2026-12-08T03:00:00Z\","
                        "\"handled_at\":\"2026-12-08T03:00:01Z\"},\"error\":null}");
    free(text);
    json_decref(j);
}

/* What a tenant's file declares: the watched kinds only, keys with their
 * namespace (default when none), chart versions and values digests. */
static void test_declared_objects(void **state)
{
    (void)state;
    const char *file = "apiVersion: v1\n"
                       "kind: Namespace\n"
                       "metadata:\n  name: acme\n"
                       "---\n"
                       "apiVersion: helm.toolkit.fluxcd.io/v2\n"
                       "kind: HelmRelease\n"
                       "metadata:\n  name: acme-premium\n  namespace: flux-system\n"
                       "spec:\n  chart:\n    spec:\n      version: 1.2.x\n"
                       "  values:\n    replicaCount: 3\n"
                       "---\n"
                       "apiVersion: infra.contrib.fluxcd.io/v1alpha2\n"
                       "kind: Terraform\n"
                       "metadata:\n  name: acme\n"
                       "---\n"
                       "apiVersion: v1\n"
                       "kind: ConfigMap\n"
                       "metadata:\n  name: ignored\n"
                       "---\n"
                       "apiVersion: example.com/v1\n"
                       "kind: HelmRelease\n"
                       "metadata:\n  name: not-flux\n";
    st_objects o;
    assert_int_equal(st_declared(&o, file, strlen(file)), 0);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.v[0].kind, ST_NAMESPACE);
    assert_string_equal(o.v[0].key, "acme");
    assert_null(o.v[0].chart);
    assert_int_equal(o.v[1].kind, ST_HELMRELEASE);
    assert_string_equal(o.v[1].key, HR_KEY);
    assert_string_equal(o.v[1].chart, "1.2.x");
    /* The digest the slim of the same HelmRelease carries. */
    json_t *slim = helmrelease_spec(3, "1.2.x", "{\"replicaCount\":3}", READY_STATUS);
    assert_string_equal(o.v[1].values, json_string_value(json_object_get(slim, "values")));
    json_decref(slim);
    assert_int_equal(o.v[2].kind, ST_TERRAFORM);
    assert_string_equal(o.v[2].key, "default/acme");
    assert_string_equal(o.v[2].values, "");
    assert_string_equal(st_kind_name(o.v[2].kind), "Terraform");
    st_objects_clear(&o);
    assert_null(o.v);
    assert_int_equal(o.n, 0);
    /* Not YAML. */
    assert_int_equal(st_declared(&o, "a: [", 4), -1);
    assert_null(o.v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_at_the_desired_chart),
        cmocka_unit_test(test_not_ready_until_the_commit_is_applied),
        cmocka_unit_test(test_healthy_at_the_old_chart_is_not_ready),
        cmocka_unit_test(test_old_spec_is_not_ready),
        cmocka_unit_test(test_generation_not_observed_is_progressing),
        cmocka_unit_test(test_installing_is_provisioning),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_blocked_on_a_dependency),
        cmocka_unit_test(test_kustomization_failure),
        cmocka_unit_test(test_offboarding_until_the_objects_are_gone),
        cmocka_unit_test(test_slim_keeps_what_the_rules_read),
        cmocka_unit_test(test_terraform),
        cmocka_unit_test(test_packed_slims),
        cmocka_unit_test(test_stalled_and_remediated),
        cmocka_unit_test(test_stale_generation),
        cmocka_unit_test(test_chart_versions),
        cmocka_unit_test(test_deleting_helmrelease),
        cmocka_unit_test(test_drifted_unreadable_and_no_objects),
        cmocka_unit_test(test_the_worst_object_speaks),
        cmocka_unit_test(test_typed_verdict),
        cmocka_unit_test(test_declared_objects),
        cmocka_unit_test(test_verdict_record),
        cmocka_unit_test(test_health_without_cluster),
        cmocka_unit_test(test_health_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

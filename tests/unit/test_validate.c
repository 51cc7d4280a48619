/* Unit tests of lib/base/validate.c: ids, releases, values, the reserved
 * namespaces; and of the namespaces an id would own (lib/core/ids.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/ids.h"
#include "landlord/error.h"
#include "landlord/validate.h"

static void test_tenant_ids(void **state)
{
    static const struct {
        const char *id;
        int ok;
    } cases[] = {
        {"acme", 1},
        {"a", 1},
        {"acme-corp", 1},
        {"123", 1},
        {"0x1f", 1},
        {"1234567890123456789012345678901234567890", 1},  /* 40 */
        {"12345678901234567890123456789012345678901", 0}, /* 41 */
        {"", 0},
        {"Acme", 0},
        {"ac.me", 0},
        {"ac/me", 0},
        {"..", 0},
        {"ac me", 0},
        {"-acme", 0},
        {"acme-", 0},
        {"acme_corp", 0},
        {"default", 0},
        {"flux-system", 0},
        {"kube-system", 0},
        {"kube-anything", 0},
        {"ac\xc3\xa9me", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = ll_validate_tenant_id(cases[i].id);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, LL_EINVALID);
            assert_string_equal(ll_error_last()->field, "id");
        }
    }
    assert_int_equal(ll_validate_tenant_id(NULL), LL_EINVALID);
}

static void test_releases(void **state)
{
    static const struct {
        const char *release, *expr;
    } cases[] = {
        {"0.0", "0.0.x"},         {"1.2", "1.2.x"},   {"1.2.x", "1.2.x"}, {"1.2.3", "1.2.3"},
        {"10.20.30", "10.20.30"}, {"", NULL},         {"1", NULL},        {"1.x", NULL},
        {"1.2.3.4", NULL},        {"01.2", NULL},     {"1.2.", NULL},     {"v1.2", NULL},
        {"1.2.3-rc1", NULL},      {"1..2", NULL},     {"a.b", NULL},      {"1.2.X", NULL},
        {"${x}", NULL},           {"1.2.xx", NULL},   {"1.2.3x", NULL},   {"1.2x", NULL},
        {"1.2.03", NULL},         {"1.2.0", "1.2.0"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].expr) {
            assert_int_equal(ll_validate_release(cases[i].release), 0);
            assert_int_equal(ll_release_expr(out, sizeof(out), cases[i].release), 0);
            assert_string_equal(out, cases[i].expr);
        } else {
            assert_int_equal(ll_validate_release(cases[i].release), LL_EINVALID);
            assert_string_equal(ll_error_last()->field, "release");
            assert_int_equal(ll_release_expr(out, sizeof(out), cases[i].release), LL_EINVALID);
        }
    }
}

static void test_values(void **state)
{
    static const struct {
        const char *json;
        int ok;
    } cases[] = {
        {"{}", 1},
        {"{\"replicas\": 3, \"apps\": {\"producer\": {\"enabled\": true}}}", 1},
        {"{\"list\": [1, \"two\", {\"three\": null}]}", 1},
        {"{\"price\": \"$5\"}", 1},
        {"{\"a\": \"${SECRET}\"}", 0},
        {"{\"${a}\": 1}", 0},
        {"{\"a\": {\"b\": [\"x\", \"pre${FOO}post\"]}}", 0},
        {"[]", 0},
        {"\"x\"", 0},
        {"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{"
         "\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}}}}}}}}}}}",
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_int_equal(ll_validate_values(v), cases[i].ok ? 0 : LL_EINVALID);
        if (!cases[i].ok)
            assert_string_equal(ll_error_last()->field, "values");
        json_decref(v);
    }
}

static void test_reserved_lists(void **state)
{
    (void)state;
    const char *good[] = {LL_RESERVED_NAMESPACES_DEFAULT, "", "  ", "a", "a*,*-b , c", "x,"};
    const char *bad[] = {"*", "A", "a,,b", "a*b", "**", "a b", "x*y*", "*a*", "ok,bad_name"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (ll_validate_reserved_list(good[i]) != 0)
            fail_msg("'%s' should be a valid list: %s", good[i], ll_error_last()->message);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ll_validate_reserved_list(bad[i]) != LL_EINVALID)
            fail_msg("'%s' should be refused", bad[i]);

    static const struct {
        const char *name, *match; /* NULL: not reserved */
    } cases[] = {
        {"kube-system", "kube-*"},
        {"default", "default"},
        {"flux-system", "flux-system"},
        {"landlord", "landlord"},
        {"cert-manager", "cert-manager"},
        {"ingress-nginx", "ingress-*"},
        {"nginx-ingress", "*-ingress"},
        {"monitoring", "monitoring"},
        {"gatekeeper-system", "*-system"},
        {"amazon-cloudwatch", "amazon-*"},
        {"aws-observability", "aws-*"},
        {"karpenter", "karpenter"},
        {"external-dns", "external-dns"},
        {"istio-system", "*-system"},
        {"linkerd", "linkerd*"},
        {"linkerd-viz", "linkerd*"},
        {"prometheus", "prometheus*"},
        {"tigera-operator", "tigera-operator"},
        {"calico-apiserver", "calico-*"},
        {"argo-events", "argo-*"},
        {"acme", NULL},
        {"tenant-1", NULL},
        {"monitoringx", NULL},
        {"system", NULL},
        {"kube", NULL},
        {"mon", NULL},
        {"default1", NULL},
    };
    char match[80];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int hit =
            ll_reserved_match(match, sizeof(match), LL_RESERVED_NAMESPACES_DEFAULT, cases[i].name);
        if (hit != (cases[i].match != NULL))
            fail_msg("'%s' should %sbe reserved", cases[i].name, cases[i].match ? "" : "not ");
        if (hit)
            assert_string_equal(match, cases[i].match);
    }
    assert_int_equal(ll_reserved_match(match, sizeof(match), " acme ,  x-* ", "x-1"), 1);
    assert_string_equal(match, "x-*");
    assert_int_equal(ll_reserved_match(NULL, 0, " acme ,  x-* ", "acme"), 1);
    assert_int_equal(ll_reserved_match(NULL, 0, "", "acme"), 0);
}

/* The namespaces ll_ids_namespaces() gives, sorted and joined with ','. */
static char *owned(const char *tmpl, const char *id)
{
    json_t *names = NULL;
    assert_int_equal(ll_ids_namespaces(&names, tmpl, strlen(tmpl), id, "gold", "1.2"), 0);
    size_t n = json_array_size(names);
    const char **v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(names, i));
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            const char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    char *out = calloc(1, 4096);
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), 4096 - strlen(out), "%s%s", i ? "," : "", v[i]);
    free(v);
    json_decref(names);
    return out;
}

static void test_owned_namespaces(void **state)
{
    (void)state;
#define HR_HEAD                                                                                    \
    "---\n"                                                                                        \
    "apiVersion: helm.toolkit.fluxcd.io/v2\n"                                                      \
    "kind: HelmRelease\n"                                                                          \
    "metadata:\n"                                                                                  \
    "  name: {TENANT_ID}-gold\n"                                                                   \
    "  namespace: flux-system\n"                                                                   \
    "spec:\n"                                                                                      \
    "  releaseName: {TENANT_ID}-gold\n"
#define HR_TAIL                                                                                    \
    "  chart:\n"                                                                                   \
    "    spec:\n"                                                                                  \
    "      chart: helm-tenant-chart\n"                                                             \
    "      version: \"{RELEASE_VERSION}\"\n"                                                       \
    "  values:\n"                                                                                  \
    "    tenantId: {TENANT_ID}\n"
    static const struct {
        const char *head, *target, *storage, *id, *want;
    } cases[] = {
        /* The reference's premium tier: its own Namespace, named after the id. */
        {"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TENANT_ID}\n", "{TENANT_ID}",
         "{TENANT_ID}", "acme", "acme"},
        /* basic: pooled, nothing of its own. */
        {"", "pool-1", "pool-1", "acme", ""},
        /* A prefixed namespace, declared. */
        {"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant-{TENANT_ID}\n",
         "tenant-{TENANT_ID}", "tenant-{TENANT_ID}", "acme", "tenant-acme"},
        /* Deployed into a namespace made from the id that it does not declare
         * (Helm would create it), and a ConfigMap placed in another. */
        {"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: "
         "{TENANT_ID}-cfg\n",
         "{TENANT_ID}", "pool-1", "acme", "acme,acme-cfg"},
        /* The probe's own name is no blind spot. */
        {"", "{TENANT_ID}", "pool-1", "ll-probe-0", "ll-probe-0"},
    };
    char tmpl[4096];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(tmpl, sizeof(tmpl),
                 "%s" HR_HEAD "  targetNamespace: %s\n  storageNamespace: %s\n" HR_TAIL,
                 cases[i].head, cases[i].target, cases[i].storage);
        char *got = owned(tmpl, cases[i].id);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: owned '%s', expected '%s'", i, got, cases[i].want);
        free(got);
    }
    json_t *names = NULL;
    assert_int_equal(ll_ids_namespaces(&names, "kind: [", 7, "acme", "gold", "1.2"), LL_EINVALID);
    assert_null(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_ids),       cmocka_unit_test(test_releases),
        cmocka_unit_test(test_values),           cmocka_unit_test(test_reserved_lists),
        cmocka_unit_test(test_owned_namespaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

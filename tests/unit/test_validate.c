/* Unit tests of lib/validate.c: ids, releases, values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

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
        {"0.0", "0.0.x"},         {"1.2", "1.2.x"}, {"1.2.x", "1.2.x"}, {"1.2.3", "1.2.3"},
        {"10.20.30", "10.20.30"}, {"", NULL},       {"1", NULL},        {"1.x", NULL},
        {"1.2.3.4", NULL},        {"01.2", NULL},   {"1.2.", NULL},     {"v1.2", NULL},
        {"1.2.3-rc1", NULL},      {"1..2", NULL},   {"a.b", NULL},      {"1.2.X", NULL},
        {"${x}", NULL},
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_ids),
        cmocka_unit_test(test_releases),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

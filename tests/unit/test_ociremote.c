/* Unit tests of the pure parts of lib/charts/ociremote.c: oci:// URLs (host, port,
 * the OCI name grammar of the base path), WWW-Authenticate challenges, the
 * options checked at open (plain HTTP only to this machine), and the
 * reference a release records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "landlord/error.h"
#include "charts/ociremote_int.h"
#include "landlord/ociremote.h"

static void test_parse_url(void **state)
{
    (void)state;
    char host[300], base[600];
    static const struct {
        const char *url, *host, *base;
    } good[] = {
        {"oci://registry.example/charts", "registry.example", "charts"},
        {"oci://registry.example", "registry.example", ""},
        {"oci://registry.example/", "registry.example", ""},
        {"oci://127.0.0.1:5000/a/b/", "127.0.0.1:5000", "a/b"},
        {"oci://[::1]:5000/charts", "[::1]:5000", "charts"},
        {"oci://123456789012.dkr.ecr.us-east-1.amazonaws.com/tenants/app",
         "123456789012.dkr.ecr.us-east-1.amazonaws.com", "tenants/app"},
        {"oci://r.example/a.b_c__d--e/f", "r.example", "a.b_c__d--e/f"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(
            ll_ociremote_parse_url(host, sizeof(host), base, sizeof(base), good[i].url), 0);
        assert_string_equal(host, good[i].host);
        assert_string_equal(base, good[i].base);
    }
    static const char *bad[] = {
        "https://registry.example/charts",
        "oci://",
        "oci:///charts",
        "oci://registry.example:/charts",
        "oci://registry.example:0/charts",
        "oci://registry.example:65536/charts",
        "oci://registry.example:50a/charts",
        "oci://user:pw@registry.example/charts",
        "oci://registry.example/Charts",
        "oci://registry.example/a//b",
        "oci://registry.example/-a",
        "oci://registry.example/a_",
        "oci://registry.example/a___b",
        "oci://registry.example/a b",
        "oci://registry.example/a?b",
        "oci://[::1/charts",
        NULL,
    };
    for (const char **u = bad; *u; u++) {
        print_message("refused: %s\n", *u);
        assert_int_equal(ll_ociremote_parse_url(host, sizeof(host), base, sizeof(base), *u),
                         LL_EINVALID);
    }
}

static void test_challenges(void **state)
{
    (void)state;
    ll_oci_challenge c;
    assert_int_equal(ll_oci_challenge_parse(&c, "Bearer realm=\"https://auth.example/token\","
                                                "service=\"registry.example\","
                                                "scope=\"repository:samalba/my-app:pull,push\""),
                     0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "https://auth.example/token");
    assert_string_equal(c.service, "registry.example");
    assert_string_equal(c.scope, "repository:samalba/my-app:pull,push");

    /* ECR's, and case, spaces and a token value */
    assert_int_equal(ll_oci_challenge_parse(&c, "  BASIC Realm = \"https://1.dkr.ecr/\" , "
                                                "SERVICE=ecr.amazonaws.com"),
                     0);
    assert_string_equal(c.scheme, "basic");
    assert_string_equal(c.realm, "https://1.dkr.ecr/");
    assert_string_equal(c.service, "ecr.amazonaws.com");
    assert_string_equal(c.scope, "");

    /* quoted-pair escapes; unknown parameters skipped */
    assert_int_equal(
        ll_oci_challenge_parse(&c, "Bearer error=\"invalid_token\",realm=\"a\\\"b\\\\c\""), 0);
    assert_string_equal(c.realm, "a\"b\\c");

    /* a scheme alone; a second challenge ends the first */
    assert_int_equal(ll_oci_challenge_parse(&c, "Basic"), 0);
    assert_string_equal(c.scheme, "basic");
    assert_int_equal(ll_oci_challenge_parse(&c, "Basic realm=\"r\", Bearer realm=\"x\""), 0);
    assert_string_equal(c.realm, "r");

    /* refused */
    assert_int_equal(ll_oci_challenge_parse(&c, ""), LL_EINVALID);
    assert_int_equal(ll_oci_challenge_parse(&c, NULL), LL_EINVALID);
    assert_int_equal(ll_oci_challenge_parse(&c, "Bearer realm=\"unclosed"), LL_EINVALID);
    char big[3000];
    snprintf(big, sizeof(big), "Bearer realm=\"%02000d\"", 7);
    assert_int_equal(ll_oci_challenge_parse(&c, big), LL_EINVALID);
}

static void test_open_checks(void **state)
{
    (void)state;
    ll_ociremote *r = NULL;
    char ref[600];
    ll_ociremote_options o = {.url = "oci://registry.example/charts", .plain_http = 1};
    assert_int_equal(ll_ociremote_open(&r, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "oci-plain-http"));
    assert_null(r);

    const char *loopbacks[] = {"oci://127.0.0.1:5000/charts", "oci://localhost:5000/charts",
                               "oci://[::1]:5000/charts", "oci://127.1.2.3/charts", NULL};
    for (const char **u = loopbacks; *u; u++) {
        o.url = *u;
        assert_int_equal(ll_ociremote_open(&r, &o), 0);
        ll_ociremote_free(r);
        r = NULL;
    }
    o.url = "oci://127.0.0.1.example.com/charts";
    assert_int_equal(ll_ociremote_open(&r, &o), LL_EINVALID);

    ll_ociremote_options p = {
        .url = "oci://registry.example:5443/charts/prod", .username = "u", .password = "p"};
    assert_int_equal(ll_ociremote_open(&r, &p), 0);
    ll_ociremote_reference(ref, sizeof(ref), r, "helm-tenant-chart", "1.2.3_build.4");
    assert_string_equal(ref, "registry.example:5443/charts/prod/helm-tenant-chart:1.2.3_build.4");
    assert_int_equal(ll_ociremote_owns(r, ref), 1);
    assert_int_equal(ll_ociremote_owns(r, "registry.example:5443/charts/production/x:1"), 0);
    assert_int_equal(ll_ociremote_owns(r, "registry.example/charts/prod/x:1"), 0);
    assert_int_equal(ll_ociremote_owns(r, "local"), 0);
    json_t *h = ll_ociremote_health(r);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "unknown");
    assert_string_equal(json_string_value(json_object_get(h, "auth")), "unknown");
    json_decref(h);
    ll_ociremote_free(r);

    /* a user name with ':' cannot be a Basic credential */
    p.username = "a:b";
    assert_int_equal(ll_ociremote_open(&r, &p), LL_EINVALID);
    /* ECR needs a region: forced on a host that does not carry one */
    ll_ociremote_options e = {.url = "oci://127.0.0.1:5000/charts", .auth = "ecr"};
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    assert_int_equal(ll_ociremote_open(&r, &e), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->hint, "aws-region"));
    e.aws_region = "eu-west-1";
    assert_int_equal(ll_ociremote_open(&r, &e), 0);
    h = ll_ociremote_health(r);
    assert_string_equal(json_string_value(json_object_get(h, "auth")), "ecr");
    json_decref(h);
    ll_ociremote_free(r);
}

/* What a token server, a manifest and an error body say (the fuzz
 * harness's way in); a token's lifetime, whatever the server sends, is
 * from 1 s to a day and no sum on it overflows. */
static void test_answers(void **state)
{
    static const struct {
        const char *body;
        int rc;
        long long use_ms;
    } tokens[] = {
        {"{\"token\":\"t\",\"expires_in\":300}", 0, 270000},
        {"{\"access_token\":\"t\"}", 0, 30000},
        {"{\"token\":\"\",\"access_token\":\"t\",\"expires_in\":1}", 0, 1000},
        {"{\"token\":\"t\",\"expires_in\":9223372036854775807}", 0, 86370000},
        {"{\"token\":\"t\",\"expires_in\":-9223372036854775808}", 0, 30000},
        {"{\"token\":\"t\",\"expires_in\":1e300}", 0, 30000},
        {"{\"token\":\"a b\"}", LL_EMALFORMED, 0},
        {"{\"expires_in\":3}", LL_ENOTFOUND, 0},
        {"not json", LL_ENOTFOUND, 0},
    };
    char *tok = NULL, cfg[80], text[300];
    int64_t use_ms = 0;

    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        int rc = ll_ociremote_token_answer(&tok, &use_ms, tokens[i].body, strlen(tokens[i].body));
        if (rc != tokens[i].rc || use_ms != tokens[i].use_ms)
            fail_msg("%s: %d %lld", tokens[i].body, rc, (long long)use_ms);
        if (rc == 0)
            assert_string_equal(tok, "t");
        free(tok);
        tok = NULL;
    }
    const char *m =
        "{\"config\":{\"digest\":\"sha256:c\"},\"layers\":[{\"mediaType\":"
        "\"application/vnd.cncf.helm.chart.content.v1.tar+gzip\",\"digest\":\"sha256:l\"}]}";
    assert_int_equal(ll_ociremote_manifest_holds(cfg, sizeof(cfg), m, strlen(m), "sha256:l"), 1);
    assert_string_equal(cfg, "sha256:c");
    assert_int_equal(ll_ociremote_manifest_holds(cfg, sizeof(cfg), m, strlen(m), "sha256:x"), 0);
    assert_int_equal(ll_ociremote_manifest_holds(cfg, sizeof(cfg), "[", 1, "sha256:l"), 0);
    assert_string_equal(cfg, "");
    ll_ociremote_error_text(text, sizeof(text), "{\"errors\":[{\"code\":\"DENIED\"}]}", 30);
    assert_string_equal(text, "DENIED");
    ll_ociremote_error_text(text, sizeof(text), "Not\r\nAuthorized", 15);
    assert_string_equal(text, "Not  Authorized");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_challenges),
        cmocka_unit_test(test_open_checks),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

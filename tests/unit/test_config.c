/* Unit tests of lib/base/config.c: defaults, file, environment, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "landlord/config.h"
#include "landlord/error.h"

static char file[64];

static void write_file(const char *text)
{
    FILE *f;
    snprintf(file, sizeof(file), "/tmp/ll-config-XXXXXX");
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

static void test_defaults(void **state)
{
    ll_config cfg;
    ll_config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.data, "./var");
    assert_string_equal(cfg.git_branch, "main");
    assert_string_equal(cfg.git_url, "");
    assert_string_equal(cfg.git_root, "application-plane/production");
    assert_int_equal(cfg.http_max_body, 1048576);
}

static void test_file_and_env(void **state)
{
    ll_config cfg;
    char *env[] = {"LANDLORD_LISTEN=127.0.0.1:9001", "LANDLORD_UNRELATED=x", "PATH=/bin", NULL};
    ll_config_defaults(&cfg);
    write_file("# a comment\nlisten: 127.0.0.1:9000\ngit-branch: prod\nhttp-threads: 8\n");
    assert_int_equal(ll_config_load_file(&cfg, file), 0);
    unlink(file);
    assert_string_equal(cfg.listen, "127.0.0.1:9000");
    assert_string_equal(cfg.git_branch, "prod");
    assert_int_equal(cfg.http_threads, 8);
    assert_int_equal(ll_config_load_env(&cfg, env), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:9001"); /* env beats file */
}

static void test_file_errors(void **state)
{
    static const struct {
        const char *text, *where, *words;
    } cases[] = {
        {"listen: 127.0.0.1:1\nlisen: x\n", ":2:1:", "unknown setting 'lisen'"},
        {"http-threads: lots\n", ":1:15:", "not a whole number"},
        {"http-threads: 100000\n", ":1:15:", "outside"},
        {"listen: [a, b]\n", ":1:9:", "list"},
        {"git:\n  url: x\n", ":1:1:", "unknown setting 'git'"},
        {"listen: 127.0.0.1:1\n- item\n", ":2:", "did not find expected key"},
        {"git-branch: a..b\n", ":1:13:", "branch"},
        {"git-root: /abs\n", ":1:11:", "relative"},
        {"default-release: v1\n", ":1:18:", "release"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ll_config cfg;
        ll_config_defaults(&cfg);
        write_file(cases[i].text);
        int rc = ll_config_load_file(&cfg, file);
        unlink(file);
        assert_int_not_equal(rc, 0);
        const ll_error *e = ll_error_last();
        if (!strstr(e->message, cases[i].where) || !strstr(e->message, file))
            fail_msg("case %zu: '%s' lacks %s", i, e->message, cases[i].where);
        if (!strstr(e->message, cases[i].words))
            fail_msg("case %zu: '%s' lacks '%s'", i, e->message, cases[i].words);
        assert_true(e->hint[0] != '\0');
        assert_string_equal(cfg.listen, i == 0 || i == 5 ? cfg.listen : "127.0.0.1:8080");
    }
}

static void test_set(void **state)
{
    ll_config cfg;
    ll_config_defaults(&cfg);
    assert_int_equal(ll_config_set(&cfg, "listen", "nope", "test"), LL_EINVALID);
    assert_int_equal(ll_config_set(&cfg, "listen", "127.0.0.1:70000", "test"), LL_EINVALID);
    assert_int_equal(ll_config_set(&cfg, "listen", "[::1]:0", "test"), 0);
    assert_int_equal(ll_config_set(&cfg, "nothing", "1", "test"), LL_ENOTFOUND);
    assert_int_equal(ll_config_set(&cfg, "log-level", "loud", "test"), LL_EINVALID);
    assert_int_equal(ll_config_set(&cfg, "write-wait", "0", "test"), 0);
    assert_int_equal(cfg.write_wait, 0);
}

static void test_tier_kinds(void **state)
{
    static const char *const bad[] = {"",
                                      "deployment",
                                      "Deployment.",
                                      ".apps",
                                      "Deployment.Apps",
                                      "Deploy ment",
                                      "Deployment,,ConfigMap",
                                      "Deployment.apps/v1"};
    ll_config cfg;
    (void)state;
    ll_config_defaults(&cfg);
    assert_non_null(strstr(cfg.tier_kinds, "HelmRelease.helm.toolkit.fluxcd.io"));
    assert_int_equal(ll_config_set(&cfg, "tier-kinds", " ConfigMap , Deployment.apps", "test"), 0);
    assert_string_equal(cfg.tier_kinds, " ConfigMap , Deployment.apps");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ll_config_set(&cfg, "tier-kinds", bad[i], "test") != LL_EINVALID)
            fail_msg("tier-kinds '%s' was taken", bad[i]);
}

/* The config text from memory (the fuzz harness's way in): the same
 * settings and the same errors, at the name given. */
static void test_text(void **state)
{
    static const char good[] = "listen: 127.0.0.1:9\nhttp-threads: 7\n";
    ll_config cfg;
    ll_config_defaults(&cfg);
    assert_int_equal(ll_config_load_text(&cfg, "mem.yaml", good, strlen(good)), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:9");
    assert_int_equal(cfg.http_threads, 7);
    assert_string_equal(cfg.config, "");
    assert_int_equal(
        ll_config_load_text(&cfg, "mem.yaml", "http-threads: 99999999999999999999\n", 35),
        LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "mem.yaml:1:15:"));
    assert_int_equal(ll_config_load_text(&cfg, "mem.yaml", "a: \"\0\"", 6), LL_EINVALID);
    assert_int_equal(cfg.http_threads, 7);
}

/* Each event a config file may not hold is refused with its message and a
 * hint, at the name given; settings before it were applied. */
static void test_text_refusals(void **state)
{
    static const struct {
        const char *text, *words, *hint;
    } cases[] = {
        {"http-threads: 5\nlisten:\n  a: b\n", "'listen' takes a single value, not a mapping",
         "write 'listen: value'"},
        {"http-threads: 5\nlisten: [a]\n", "unexpected list for listen", "settings are flat"},
        {"http-threads: 5\nlog-level: &a info\nlisten: *a\n", "aliases are not supported",
         "write the value out"},
        {"http-threads: 5\nconfig: other.yaml\n", "unknown setting 'config'", "--help"},
        {"just text\n", "the config file must be a mapping", "one 'name: value' per line"},
        {"- a\n", "unexpected list", "settings are flat"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ll_config cfg;
        ll_config_defaults(&cfg);
        assert_int_equal(
            ll_config_load_text(&cfg, "mem.yaml", cases[i].text, strlen(cases[i].text)),
            LL_EINVALID);
        const ll_error *e = ll_error_last();
        if (strncmp(e->message, "mem.yaml:", 9) != 0 || !strstr(e->message, cases[i].words))
            fail_msg("case %zu: '%s' lacks '%s'", i, e->message, cases[i].words);
        if (!strstr(e->hint, cases[i].hint))
            fail_msg("case %zu: hint '%s' lacks '%s'", i, e->hint, cases[i].hint);
        if (strncmp(cases[i].text, "http-threads: 5", 15) == 0)
            assert_int_equal(cfg.http_threads, 5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_file_and_env),
        cmocka_unit_test(test_file_errors),   cmocka_unit_test(test_set),
        cmocka_unit_test(test_tier_kinds),    cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

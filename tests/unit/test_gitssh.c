/* Unit tests of lib/gitops/gitssh.c's URL parser: ssh:// (and ssh+git://,
 * git+ssh://) and scp-like remotes split into user, host, port and the path
 * the remote command gets; a password is dropped; bad hosts, ports and
 * paths are refused with the libgit2 error set and the URL not in it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <git2.h>

#include "gitops/gitssh_int.h"

static void test_good(void **state)
{
    (void)state;
    static const struct {
        const char *url, *user, *host, *port, *path;
    } good[] = {
        {"ssh://git@example.com/repo.git", "git", "example.com", "22", "/repo.git"},
        {"ssh://git@example.com:2222/repo.git", "git", "example.com", "2222", "/repo.git"},
        {"ssh://example.com/~user/x", "", "example.com", "22", "~user/x"},
        {"ssh://[::1]:2200/r", "", "::1", "2200", "/r"},
        {"ssh://[::1]/r", "", "::1", "22", "/r"},
        {"ssh+git://a@b@c/x", "a@b", "c", "22", "/x"},
        {"git+ssh://u:p@h:65535/p", "u", "h", "65535", "/p"},
        {"ssh://h:/p", "", "h", "22", "/p"},
        {"ssh://@h/p", "", "h", "22", "/p"}, /* an empty user is no user */
        {"git@github.com:org/repo.git", "git", "github.com", "22", "org/repo.git"},
        {"github.com:org/repo.git", "", "github.com", "22", "org/repo.git"},
        {"git@[::1]:org/r", "git", "::1", "22", "org/r"},
        {"x:/~u/r", "", "x", "22", "/~u/r"}, /* scp-like keeps "/~" */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ll_ssh_url u;
        assert_int_equal(ll_git_ssh_parse_url(&u, good[i].url), 0);
        assert_string_equal(u.user, good[i].user);
        assert_string_equal(u.host, good[i].host);
        assert_string_equal(u.port, good[i].port);
        assert_string_equal(u.path, good[i].path);
    }
}

static void test_password_dropped(void **state)
{
    (void)state;
    ll_ssh_url u;
    assert_int_equal(ll_git_ssh_parse_url(&u, "ssh://git:s3cret@example.com/x"), 0);
    assert_string_equal(u.user, "git");
    assert_null(strstr(u.user, "s3cret"));
    assert_null(strstr(u.host, "s3cret"));
    assert_null(strstr(u.path, "s3cret"));
    /* a refused URL's message does not carry it either */
    assert_int_equal(ll_git_ssh_parse_url(&u, "ssh://git:s3cret@example.com:0/x"), -1);
    assert_null(strstr(git_error_last()->message, "s3cret"));
}

static void test_bad(void **state)
{
    (void)state;
    char long_user[400], long_host[400], long_path[2100];
    snprintf(long_user, sizeof(long_user), "ssh://%0300d@h/p", 0);
    snprintf(long_host, sizeof(long_host), "ssh://h%0300d/p", 0);
    snprintf(long_path, sizeof(long_path), "ssh://h/%02050d", 0);
    const struct {
        const char *url, *why;
    } bad[] = {
        {"nohost", "no ':' between host and path"},
        {"ssh://example.com/", "has no repository path"},
        {"ssh://example.com", "has no repository path"},
        {"a@b:", "has no repository path"},
        {"ssh://[::1/r", "without ']'"},
        {"ssh://[::1]x/r", "text after the IPv6 address"},
        {"ssh://h:0/r", "bad port: '0'"},
        {"ssh://h:65536/r", "bad port: '65536'"},
        {"ssh://h:123456/r", "bad port"},
        {"ssh://h:+22/p", "bad port"},
        {"ssh://u@/p", "no host"},
        {"ssh://[]/p", "no host"},
        {":path", "no host"},
        {"ssh://h/it's", "single quote"},
        {long_user, "user name longer than 255 bytes"},
        {long_host, "no host, or one longer than 255 bytes"},
        {long_path, "path is longer than 2047 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ll_ssh_url u;
        assert_int_equal(ll_git_ssh_parse_url(&u, bad[i].url), -1);
        assert_non_null(git_error_last());
        if (!strstr(git_error_last()->message, bad[i].why))
            fail_msg("%s: '%s' does not say '%s'", bad[i].url, git_error_last()->message,
                     bad[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_password_dropped),
        cmocka_unit_test(test_bad),
    };
    git_libgit2_init();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return failed;
}

/* Unit tests of lib/events/webhooks.c: where a webhook URL may lead
 * (ll_webhook_check_url: parsing as curl does, resolution, the address
 * policy and the refusal's wording) and the delivery signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <curl/curl.h>
#include <cmocka.h>

#include "landlord/error.h"
#include "landlord/netpolicy.h"
#include "landlord/webhooks.h"

#define KIND "webhook-address-not-allowed"

/* url is refused as an address webhooks may not reach, and the message
 * names the class. */
static void refused(const char *url, const ll_netpolicy *p, const char *cls)
{
    ll_webhook_target t;
    int rc = ll_webhook_check_url(&t, url, p, 5000);
    const ll_error *e = ll_error_last();
    if (rc != LL_EINVALID || strcmp(e->kind, KIND) != 0)
        fail_msg("%s: rc %d kind '%s' message '%s'", url, rc, e->kind, e->message);
    assert_string_equal(e->field, "url");
    if (!strstr(e->message, cls))
        fail_msg("%s: '%s' does not name the class %s", url, e->message, cls);
    assert_non_null(strstr(e->hint, "webhook-allow-cidr"));
}

static void test_refused_forms(void **state)
{
    static const struct {
        const char *url, *cls;
    } cases[] = {
        {"http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"},
        {"http://127.0.0.1:8080/api/v1/tenants", "loopback"},
        {"https://127.0.0.1/", "loopback"},
        {"http://localhost/hook", "loopback"},
        {"http://LOCALHOST:9/hook", "loopback"},
        {"http://[::1]/", "loopback"},
        {"http://[::1]:8080/hook", "loopback"},
        {"http://0.0.0.0/", "unspecified"},
        {"http://0/", "unspecified"},
        {"http://[::]/", "unspecified"},
        {"http://2130706433/", "loopback"},
        {"http://0x7f000001/", "loopback"},
        {"http://017700000001/", "loopback"},
        {"http://127.1/", "loopback"},
        {"http://0x7f.1/", "loopback"},
        {"http://[::ffff:127.0.0.1]/", "loopback"},
        {"http://[::ffff:7f00:1]/", "loopback"},
        {"http://[::ffff:169.254.169.254]/", "link-local"},
        {"http://[::127.0.0.1]/", "loopback"},
        {"http://[64:ff9b::a9fe:a9fe]/", "link-local"},
        {"http://[2002:7f00:1::]/", "loopback"},
        {"http://10.0.0.1/", "private"},
        {"http://172.16.0.1/", "private"},
        {"http://192.168.1.1/", "private"},
        {"http://100.64.0.1/", "private"},
        {"http://[fe80::1]/", "link-local"},
        {"http://[fc00::1]/", "private"},
        {"http://[fd00::1]/", "private"},
        {"http://224.0.0.1/", "multicast"},
        {"http://[ff02::1]/", "multicast"},
        {"http://255.255.255.255/", "broadcast"},
        {"http://240.0.0.1/", "reserved"},
        {"http://192.0.2.1/", "reserved"},
        {"http://[2001:db8::1]/", "reserved"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        refused(cases[i].url, NULL, cases[i].cls);

    /* A name's message says what it resolves to, never the address. */
    ll_webhook_check_url(NULL, "http://localhost:9/hook", NULL, 5000);
    assert_non_null(strstr(ll_error_last()->message, "'localhost' resolves to a loopback"));
    assert_null(strstr(ll_error_last()->message, "127.0.0.1"));
    ll_webhook_check_url(NULL, "http://[::ffff:127.0.0.1]/", NULL, 5000);
    assert_non_null(strstr(ll_error_last()->message, "IPv4-mapped"));
    ll_webhook_check_url(NULL, "http://0.0.0.0/", NULL, 5000);
    assert_non_null(strstr(ll_error_last()->message, "is an unspecified address"));
}

static void test_public_and_allowed(void **state)
{
    ll_webhook_target t;
    ll_netpolicy *p = NULL;

    /* Public literals need no resolver. */
    assert_int_equal(ll_webhook_check_url(&t, "http://93.184.215.14/hook", NULL, 5000), 0);
    assert_string_equal(t.host, "93.184.215.14");
    assert_string_equal(t.port, "80");
    assert_int_equal(t.numeric, 1);
    assert_int_equal(t.addrs.n, 1);
    assert_int_equal(ll_webhook_check_url(&t, "https://[2606:4700:4700::1111]/h", NULL, 5000), 0);
    assert_string_equal(t.host, "2606:4700:4700::1111");
    assert_string_equal(t.port, "443");
    assert_int_equal(t.numeric, 1);
    assert_int_equal(ll_webhook_check_url(&t, "http://[::ffff:8.8.8.8]:8080/", NULL, 5000), 0);
    assert_string_equal(t.port, "8080");

    /* An allowed block lets its addresses (and their IPv4-mapped forms)
     * through, and nothing else. */
    assert_int_equal(ll_netpolicy_parse(&p, "127.0.0.0/8"), 0);
    assert_int_equal(ll_webhook_check_url(&t, "http://127.0.0.1:9/hook", p, 5000), 0);
    /* localhost passes where it is 127.0.0.1 only; where it is also ::1,
     * that address is outside the block. */
    if (ll_webhook_check_url(&t, "http://localhost:9/hook", p, 5000) != 0)
        assert_non_null(strstr(ll_error_last()->message, "loopback"));
    assert_int_equal(ll_webhook_check_url(&t, "http://2130706433:9/", p, 5000), 0);
    assert_string_equal(t.host, "127.0.0.1"); /* curl's own reading */
    assert_int_equal(ll_webhook_check_url(&t, "http://[::ffff:127.0.0.1]:9/", p, 5000), 0);
    refused("http://[::1]:9/", p, "loopback");
    refused("http://169.254.169.254/", p, "link-local");
    refused("http://10.0.0.1/", p, "private");
    ll_netpolicy_free(p);
}

static void test_not_usable(void **state)
{
    static const char *const urls[] = {
        "http://no-such-host.invalid/hook",         /* does not resolve */
        "http://[fe80::1%25eth0]/",                 /* a zone */
        "not a url", "http://exa\xc3\xa4mple.com/", /* not ASCII */
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        ll_webhook_target t;
        if (ll_webhook_check_url(&t, urls[i], NULL, 5000) != LL_EINVALID)
            fail_msg("%s was accepted", urls[i]);
        assert_string_equal(ll_error_last()->field, "url");
        assert_string_equal(ll_error_last()->kind, ""); /* invalid-request */
    }
    ll_webhook_check_url(NULL, "http://no-such-host.invalid/hook", NULL, 5000);
    assert_non_null(strstr(ll_error_last()->message, "'no-such-host.invalid'"));
}

static void test_signature(void **state)
{
    char sig[65];
    /* HMAC-SHA256("secret", "1700000000.{}"), as Python's hmac computes it. */
    assert_int_equal(ll_webhook_sign(sig, "secret", "1700000000", "{}", 2), 0);
    assert_string_equal(sig, "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_forms),
        cmocka_unit_test(test_public_and_allowed),
        cmocka_unit_test(test_not_usable),
        cmocka_unit_test(test_signature),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}

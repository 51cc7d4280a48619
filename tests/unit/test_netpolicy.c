/* Unit tests of lib/base/netpolicy.c: address classes (every special-purpose
 * block, IPv6 forms that carry an IPv4 address), the allow list and its
 * parser, bounded resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "landlord/error.h"
#include "landlord/netpolicy.h"
#include "landlord/util.h"

static ll_netaddr addr(const char *text)
{
    ll_netaddr a;
    if (ll_netaddr_parse(&a, text) != 0)
        fail_msg("'%s' does not parse", text);
    return a;
}

static void test_classes(void **state)
{
    static const struct {
        const char *addr;
        ll_addr_class cls;
        const char *form; /* NULL: none */
    } cases[] = {
        /* IPv4 */
        {"0.0.0.0", LL_ADDR_UNSPECIFIED, NULL},
        {"0.1.2.3", LL_ADDR_UNSPECIFIED, NULL},
        {"10.0.0.1", LL_ADDR_PRIVATE, NULL},
        {"10.255.255.255", LL_ADDR_PRIVATE, NULL},
        {"11.0.0.1", LL_ADDR_PUBLIC, NULL},
        {"100.63.255.255", LL_ADDR_PUBLIC, NULL},
        {"100.64.0.1", LL_ADDR_PRIVATE, NULL},
        {"100.127.255.255", LL_ADDR_PRIVATE, NULL},
        {"100.128.0.0", LL_ADDR_PUBLIC, NULL},
        {"127.0.0.1", LL_ADDR_LOOPBACK, NULL},
        {"127.255.255.254", LL_ADDR_LOOPBACK, NULL},
        {"169.254.169.254", LL_ADDR_LINK_LOCAL, NULL},
        {"169.253.0.1", LL_ADDR_PUBLIC, NULL},
        {"172.15.255.255", LL_ADDR_PUBLIC, NULL},
        {"172.16.0.1", LL_ADDR_PRIVATE, NULL},
        {"172.31.255.255", LL_ADDR_PRIVATE, NULL},
        {"172.32.0.0", LL_ADDR_PUBLIC, NULL},
        {"192.0.0.170", LL_ADDR_RESERVED, NULL},
        {"192.0.2.1", LL_ADDR_RESERVED, NULL},
        {"192.88.99.1", LL_ADDR_RESERVED, NULL},
        {"192.167.255.255", LL_ADDR_PUBLIC, NULL},
        {"192.168.1.1", LL_ADDR_PRIVATE, NULL},
        {"198.18.0.1", LL_ADDR_RESERVED, NULL},
        {"198.19.255.255", LL_ADDR_RESERVED, NULL},
        {"198.20.0.0", LL_ADDR_PUBLIC, NULL},
        {"198.51.100.7", LL_ADDR_RESERVED, NULL},
        {"203.0.113.9", LL_ADDR_RESERVED, NULL},
        {"224.0.0.1", LL_ADDR_MULTICAST, NULL},
        {"239.255.255.250", LL_ADDR_MULTICAST, NULL},
        {"240.0.0.1", LL_ADDR_RESERVED, NULL},
        {"255.255.255.254", LL_ADDR_RESERVED, NULL},
        {"255.255.255.255", LL_ADDR_BROADCAST, NULL},
        {"8.8.8.8", LL_ADDR_PUBLIC, NULL},
        {"93.184.215.14", LL_ADDR_PUBLIC, NULL},
        {"223.255.255.255", LL_ADDR_PUBLIC, NULL},
        /* IPv6 */
        {"::", LL_ADDR_UNSPECIFIED, NULL},
        {"::1", LL_ADDR_LOOPBACK, NULL},
        {"::2", LL_ADDR_UNSPECIFIED, "IPv4-compatible"}, /* ::0.0.0.2 */
        {"fe80::1", LL_ADDR_LINK_LOCAL, NULL},
        {"febf:ffff::1", LL_ADDR_LINK_LOCAL, NULL},
        {"fec0::1", LL_ADDR_PRIVATE, NULL},
        {"fc00::1", LL_ADDR_PRIVATE, NULL},
        {"fd12:3456::1", LL_ADDR_PRIVATE, NULL},
        {"ff02::1", LL_ADDR_MULTICAST, NULL},
        {"ff05::1:3", LL_ADDR_MULTICAST, NULL},
        {"100::1", LL_ADDR_RESERVED, NULL},
        {"2001:db8::1", LL_ADDR_RESERVED, NULL},
        {"2001::1", LL_ADDR_RESERVED, NULL}, /* Teredo */
        {"2001:1ff::1", LL_ADDR_RESERVED, NULL},
        {"2001:200::1", LL_ADDR_PUBLIC, NULL},
        {"3fff::1", LL_ADDR_RESERVED, NULL},
        {"64:ff9b:1::a00:1", LL_ADDR_PRIVATE, NULL},
        {"4000::1", LL_ADDR_RESERVED, NULL},
        {"1::1", LL_ADDR_RESERVED, NULL},
        {"2606:4700:4700::1111", LL_ADDR_PUBLIC, NULL},
        {"2a00:1450:4001::200e", LL_ADDR_PUBLIC, NULL},
        /* IPv6 forms carrying an IPv4 address */
        {"::ffff:127.0.0.1", LL_ADDR_LOOPBACK, "IPv4-mapped"},
        {"::ffff:7f00:1", LL_ADDR_LOOPBACK, "IPv4-mapped"},
        {"::ffff:169.254.169.254", LL_ADDR_LINK_LOCAL, "IPv4-mapped"},
        {"::ffff:10.0.0.1", LL_ADDR_PRIVATE, "IPv4-mapped"},
        {"::ffff:0.0.0.0", LL_ADDR_UNSPECIFIED, "IPv4-mapped"},
        {"::ffff:8.8.8.8", LL_ADDR_PUBLIC, NULL},
        {"::127.0.0.1", LL_ADDR_LOOPBACK, "IPv4-compatible"},
        {"::8.8.8.8", LL_ADDR_RESERVED, "IPv4-compatible"},
        {"::ffff:0:127.0.0.1", LL_ADDR_LOOPBACK, "IPv4-translated"},
        {"::ffff:0:8.8.8.8", LL_ADDR_RESERVED, "IPv4-translated"},
        {"64:ff9b::169.254.169.254", LL_ADDR_LINK_LOCAL, "NAT64"},
        {"64:ff9b::a00:1", LL_ADDR_PRIVATE, "NAT64"},
        {"64:ff9b::8.8.8.8", LL_ADDR_PUBLIC, NULL},
        {"2002:7f00:1::", LL_ADDR_LOOPBACK, "6to4"},
        {"2002:a9fe:a9fe::1", LL_ADDR_LINK_LOCAL, "6to4"},
        {"2002:808:808::1", LL_ADDR_PUBLIC, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ll_netaddr a = addr(cases[i].addr);
        ll_addr_verdict v = ll_netaddr_classify(&a);
        if (v.cls != cases[i].cls)
            fail_msg("%s: %s, not %s", cases[i].addr, ll_addr_class_name(v.cls),
                     ll_addr_class_name(cases[i].cls));
        if (cases[i].form) {
            assert_non_null(v.form);
            assert_string_equal(v.form, cases[i].form);
        } else {
            assert_null(v.form);
        }
        if (v.cls == LL_ADDR_PUBLIC)
            assert_null(v.block);
        else
            assert_non_null(v.block);
        /* Without an allow list only public addresses pass. */
        assert_int_equal(ll_netpolicy_allows(NULL, NULL, &a), v.cls == LL_ADDR_PUBLIC);
    }
}

static void test_class_names(void **state)
{
    assert_string_equal(ll_addr_class_name(LL_ADDR_PUBLIC), "public");
    assert_string_equal(ll_addr_class_name(LL_ADDR_LOOPBACK), "loopback");
    assert_string_equal(ll_addr_class_name(LL_ADDR_LINK_LOCAL), "link-local");
    assert_string_equal(ll_addr_class_name(LL_ADDR_PRIVATE), "private");
    assert_string_equal(ll_addr_class_name(LL_ADDR_UNSPECIFIED), "unspecified");
    assert_string_equal(ll_addr_class_name(LL_ADDR_MULTICAST), "multicast");
    assert_string_equal(ll_addr_class_name(LL_ADDR_BROADCAST), "broadcast");
    assert_string_equal(ll_addr_class_name(LL_ADDR_RESERVED), "reserved");
}

static void test_addresses(void **state)
{
    ll_netaddr a, b;
    char text[LL_NETADDR_STRLEN];
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;

    /* Only canonical numeric forms: names and inet_aton's shorthands are
     * for the resolver. */
    assert_int_equal(ll_netaddr_parse(&a, "localhost"), LL_EINVALID);
    assert_int_equal(ll_netaddr_parse(&a, "127.1"), LL_EINVALID);
    assert_int_equal(ll_netaddr_parse(&a, "2130706433"), LL_EINVALID);
    assert_int_equal(ll_netaddr_parse(&a, "[::1]"), LL_EINVALID);
    assert_int_equal(ll_netaddr_parse(&a, "fe80::1%eth0"), LL_EINVALID);
    assert_int_equal(ll_netaddr_parse(&a, ""), LL_EINVALID);

    a = addr("::ffff:127.0.0.1");
    ll_netaddr_format(text, sizeof(text), &a);
    assert_string_equal(text, "::ffff:127.0.0.1");
    b = addr("::ffff:7f00:1");
    assert_true(ll_netaddr_equal(&a, &b));
    b = addr("127.0.0.1");
    assert_false(ll_netaddr_equal(&a, &b));

    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    in4.sin_addr.s_addr = htonl(0xa9fea9fe);
    assert_int_equal(ll_netaddr_from_sockaddr(&a, (struct sockaddr *)&in4, sizeof(in4)), 0);
    ll_netaddr_format(text, sizeof(text), &a);
    assert_string_equal(text, "169.254.169.254");
    assert_int_equal(ll_netaddr_from_sockaddr(&a, (struct sockaddr *)&in4, sizeof(in4) - 1),
                     LL_EINVALID);
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    in6.sin6_addr.s6_addr[15] = 1;
    assert_int_equal(ll_netaddr_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof(in6)), 0);
    assert_int_equal(ll_netaddr_classify(&a).cls, LL_ADDR_LOOPBACK);
    in6.sin6_family = AF_UNIX;
    assert_int_equal(ll_netaddr_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof(in6)),
                     LL_EINVALID);
    assert_int_equal(ll_netaddr_from_sockaddr(&a, NULL, 0), LL_EINVALID);
}

static void test_allow_list(void **state)
{
    ll_netpolicy *p = NULL;
    ll_addr_verdict why;
    ll_netaddr a;

    assert_int_equal(ll_netpolicy_parse(&p, " 127.0.0.0/8 ,10.20.0.0/16,fd00:1::/64, 192.0.2.7"),
                     0);
    static const struct {
        const char *addr;
        int allowed;
    } cases[] = {
        {"127.0.0.1", 1},
        {"127.9.9.9", 1},
        {"::ffff:127.0.0.1", 1},
        {"64:ff9b::7f00:1", 1},
        {"2002:7f00:1::", 1},
        {"::1", 0},
        {"10.20.3.4", 1},
        {"10.21.0.1", 0},
        {"10.0.0.1", 0},
        {"fd00:1::5", 1},
        {"fd00:1:0:1::5", 0},
        {"fd00:2::1", 0},
        {"192.0.2.7", 1},
        {"192.0.2.8", 0},
        {"169.254.169.254", 0},
        {"8.8.8.8", 1},
        {"2606:4700:4700::1111", 1},
        {"0.0.0.0", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        a = addr(cases[i].addr);
        if (ll_netpolicy_allows(&why, p, &a) != cases[i].allowed)
            fail_msg("%s: allowed should be %d", cases[i].addr, cases[i].allowed);
    }
    a = addr("10.0.0.1");
    assert_int_equal(ll_netpolicy_allows(&why, p, &a), 0);
    assert_int_equal(why.cls, LL_ADDR_PRIVATE);
    assert_string_equal(why.block, "10.0.0.0/8");
    ll_netpolicy_free(p);

    /* Empty: nothing beyond public addresses. */
    assert_int_equal(ll_netpolicy_parse(&p, ""), 0);
    a = addr("127.0.0.1");
    assert_int_equal(ll_netpolicy_allows(NULL, p, &a), 0);
    ll_netpolicy_free(p);
    assert_int_equal(ll_netpolicy_parse(&p, NULL), 0);
    ll_netpolicy_free(p);

    /* Everything, for an operator who says so. */
    assert_int_equal(ll_netpolicy_parse(&p, "0.0.0.0/0,::/0"), 0);
    a = addr("169.254.169.254");
    assert_int_equal(ll_netpolicy_allows(NULL, p, &a), 1);
    a = addr("::1");
    assert_int_equal(ll_netpolicy_allows(NULL, p, &a), 1);
    ll_netpolicy_free(p);
    ll_netpolicy_free(NULL);
}

static void test_allow_list_refusals(void **state)
{
    static const char *const bad[] = {
        "10.0.0.1/8",      /* bits past the prefix */
        "fd00::1/8",       /* likewise */
        "10.0.0.0/33",     /* prefix too long */
        "::/129",          /* likewise */
        "10.0.0.0/",       /* no prefix */
        "10.0.0.0/-1",     /* negative */
        "10.0.0.0/+8",     /* signed */
        "10.0.0.0/8x",     /* trailing junk */
        "10.0.0.0/8,",     /* empty entry */
        ",10.0.0.0/8",     /* likewise */
        "10.0.0.0/8,,::1", /* likewise */
        "10.0.0/24",       /* not an address */
        "localhost",       /* a name */
        "fe80::%eth0/64",  /* a zone */
        "10.0.0.0 /8",     /* a space inside */
        "0x0a000000/8",    /* not dotted decimal */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ll_netpolicy *p = (ll_netpolicy *)1;
        if (ll_netpolicy_parse(&p, bad[i]) != LL_EINVALID)
            fail_msg("'%s' was accepted", bad[i]);
        assert_null(p);
        assert_true(ll_error_last()->message[0] != '\0');
    }

    /* At most LL_NETPOLICY_MAX blocks. */
    char list[LL_NETPOLICY_MAX * 16 + 32];
    size_t n = 0;
    for (int i = 0; i <= LL_NETPOLICY_MAX; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s10.%d.0.0/16", i ? "," : "", i);
    ll_netpolicy *p = NULL;
    assert_int_equal(ll_netpolicy_parse(&p, list), LL_EINVALID);
    assert_null(p);
    *strrchr(list, ',') = '\0';
    assert_int_equal(ll_netpolicy_parse(&p, list), 0);
    ll_netpolicy_free(p);
}

static int has(const ll_netaddr_list *l, const char *text)
{
    ll_netaddr a = addr(text);
    for (size_t i = 0; i < l->n; i++) {
        if (ll_netaddr_equal(&l->a[i], &a))
            return 1;
    }
    return 0;
}

static void test_resolve(void **state)
{
    ll_netaddr_list l;

    /* Numeric hosts, in every form getaddrinfo takes (what curl connects
     * to), without a thread. */
    static const struct {
        const char *host, *addr;
    } numeric[] = {
        {"127.0.0.1", "127.0.0.1"},
        {"2130706433", "127.0.0.1"},
        {"0x7f000001", "127.0.0.1"},
        {"017700000001", "127.0.0.1"},
        {"127.1", "127.0.0.1"},
        {"::1", "::1"},
        {"::ffff:127.0.0.1", "::ffff:7f00:1"},
        {"169.254.169.254", "169.254.169.254"},
    };
    for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
        assert_int_equal(ll_net_resolve(&l, numeric[i].host, 1000), 0);
        assert_int_equal(l.n, 1);
        if (!has(&l, numeric[i].addr))
            fail_msg("%s did not resolve to %s", numeric[i].host, numeric[i].addr);
    }

    /* A name, from the hosts file. */
    assert_int_equal(ll_net_resolve(&l, "localhost", 5000), 0);
    assert_true(l.n >= 1);
    assert_true(has(&l, "127.0.0.1") || has(&l, "::1"));

    /* A name that cannot exist (RFC 6761): some failure, never addresses. */
    int rc = ll_net_resolve(&l, "no-such-host.invalid", 5000);
    assert_true(rc == LL_ENOTFOUND || rc == LL_EUPSTREAM || rc == LL_ETIMEOUT);
    assert_int_equal(l.n, 0);

    /* A caller that stops waiting at once: the lookup is abandoned and
     * its thread frees it (ASan would report a leak or a use after free). */
    for (int i = 0; i < 8; i++) {
        ll_net_lookup *lk = NULL;
        assert_int_equal(ll_net_lookup_start(&lk, "localhost"), 0);
        rc = ll_net_lookup_wait(&l, lk, ll_monotonic_ms() - 1);
        assert_true(rc == 0 || rc == LL_ETIMEOUT);
    }
    /* Their threads end once getaddrinfo returns (the test waits for them:
     * a thread still inside the resolver at exit holds its buffers). */
    assert_int_equal(ll_net_lookups_drain(20000), 0);
    assert_int_equal(ll_net_lookups_running(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_refusals),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

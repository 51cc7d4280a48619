/* netpolicy.c - address classes, the allow list, bounded resolution (see
 * netpolicy.h).
 *
 * Classes come from two tables of special-purpose blocks (IANA's IPv4 and
 * IPv6 special-purpose address registries, reduced to what a receiver of
 * webhooks has no business being): the first block that holds an address
 * names its class.  IPv6 forms that carry an IPv4 address are judged by
 * that address; an IPv6 address outside 2000::/3 (global unicast) is
 * reserved.
 *
 * The resolver: getaddrinfo() cannot be interrupted, so each lookup of a
 * name runs on a detached thread of its own and shares a small record with
 * its caller, counted by reference: the caller may stop waiting at its
 * deadline and whichever of the two lets go last frees the record.
 * Numeric hosts are parsed at once, without a thread.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "landlord/error.h"
#include "landlord/netpolicy.h"
#include "landlord/util.h"

/* --- classes ---------------------------------------------------------------- */

typedef struct block {
    unsigned char b[16];
    int bits;
    ll_addr_class cls;
    const char *text;
} block;

/* First match wins: the broadcast address before 240.0.0.0/4. */
static const block v4_blocks[] = {
    {{0, 0, 0, 0}, 8, LL_ADDR_UNSPECIFIED, "0.0.0.0/8"},
    {{10, 0, 0, 0}, 8, LL_ADDR_PRIVATE, "10.0.0.0/8"},
    {{100, 64, 0, 0}, 10, LL_ADDR_PRIVATE, "100.64.0.0/10, carrier-grade NAT"},
    {{127, 0, 0, 0}, 8, LL_ADDR_LOOPBACK, "127.0.0.0/8"},
    {{169, 254, 0, 0}, 16, LL_ADDR_LINK_LOCAL, "169.254.0.0/16"},
    {{172, 16, 0, 0}, 12, LL_ADDR_PRIVATE, "172.16.0.0/12"},
    {{192, 0, 0, 0}, 24, LL_ADDR_RESERVED, "192.0.0.0/24, IETF protocol assignments"},
    {{192, 0, 2, 0}, 24, LL_ADDR_RESERVED, "192.0.2.0/24, documentation"},
    {{192, 88, 99, 0}, 24, LL_ADDR_RESERVED, "192.88.99.0/24, 6to4 relays"},
    {{192, 168, 0, 0}, 16, LL_ADDR_PRIVATE, "192.168.0.0/16"},
    {{198, 18, 0, 0}, 15, LL_ADDR_RESERVED, "198.18.0.0/15, benchmarking"},
    {{198, 51, 100, 0}, 24, LL_ADDR_RESERVED, "198.51.100.0/24, documentation"},
    {{203, 0, 113, 0}, 24, LL_ADDR_RESERVED, "203.0.113.0/24, documentation"},
    {{224, 0, 0, 0}, 4, LL_ADDR_MULTICAST, "224.0.0.0/4"},
    {{255, 255, 255, 255}, 32, LL_ADDR_BROADCAST, "255.255.255.255"},
    {{240, 0, 0, 0}, 4, LL_ADDR_RESERVED, "240.0.0.0/4"},
};

/* Checked after the forms that carry an IPv4 address; more specific first. */
static const block v6_blocks[] = {
    {{0}, 128, LL_ADDR_UNSPECIFIED, "::/128"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, LL_ADDR_LOOPBACK, "::1/128"},
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, LL_ADDR_PRIVATE, "64:ff9b:1::/48, local-use NAT64"},
    {{0x01, 0x00}, 64, LL_ADDR_RESERVED, "100::/64, discard-only"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, LL_ADDR_RESERVED, "2001:db8::/32, documentation"},
    {{0x20, 0x01}, 23, LL_ADDR_RESERVED, "2001::/23, IETF protocol assignments and Teredo"},
    {{0x3f, 0xff}, 20, LL_ADDR_RESERVED, "3fff::/20, documentation"},
    {{0xfc}, 7, LL_ADDR_PRIVATE, "fc00::/7, unique local"},
    {{0xfe, 0x80}, 10, LL_ADDR_LINK_LOCAL, "fe80::/10"},
    {{0xfe, 0xc0}, 10, LL_ADDR_PRIVATE, "fec0::/10, site-local"},
    {{0xff}, 8, LL_ADDR_MULTICAST, "ff00::/8"},
};

/* IPv6 forms that carry an IPv4 address at byte offset v4_at.  public_ok:
 * the form reaches a public IPv4 address (else it is reserved whatever it
 * carries).  ::/96 comes last: :: and ::1 are matched before these. */
typedef struct v4_form {
    unsigned char b[16];
    int bits;
    int v4_at;
    int public_ok;
    const char *name, *text;
} v4_form;

static const v4_form v4_forms[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 12, 1, "IPv4-mapped", "::ffff:0:0/96"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96, 12, 0, "IPv4-translated", "::ffff:0:0:0/96"},
    {{0, 0x64, 0xff, 0x9b}, 96, 12, 1, "NAT64", "64:ff9b::/96"},
    {{0x20, 0x02}, 16, 2, 1, "6to4", "2002::/16"},
    {{0}, 96, 12, 0, "IPv4-compatible", "::/96, deprecated"},
};

static const unsigned char global_unicast[16] = {0x20};

const char *ll_addr_class_name(ll_addr_class cls)
{
    switch (cls) {
    case LL_ADDR_PUBLIC:
        return "public";
    case LL_ADDR_LOOPBACK:
        return "loopback";
    case LL_ADDR_LINK_LOCAL:
        return "link-local";
    case LL_ADDR_PRIVATE:
        return "private";
    case LL_ADDR_UNSPECIFIED:
        return "unspecified";
    case LL_ADDR_MULTICAST:
        return "multicast";
    case LL_ADDR_BROADCAST:
        return "broadcast";
    case LL_ADDR_RESERVED:
        return "reserved";
    }
    return "reserved";
}

static int in_prefix(const unsigned char *a, const unsigned char *prefix, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (prefix[full] & mask);
}

static ll_addr_verdict classify4(const unsigned char *b)
{
    ll_addr_verdict v = {LL_ADDR_PUBLIC, NULL, NULL};
    for (size_t i = 0; i < sizeof(v4_blocks) / sizeof(v4_blocks[0]); i++) {
        if (in_prefix(b, v4_blocks[i].b, v4_blocks[i].bits)) {
            v.cls = v4_blocks[i].cls;
            v.block = v4_blocks[i].text;
            return v;
        }
    }
    return v;
}

/* The form of an IPv6 address that carries an IPv4 address, or NULL. */
static const v4_form *carried_v4(const ll_netaddr *a)
{
    if (a->family != AF_INET6)
        return NULL;
    /* :: and ::1 are addresses of their own, not IPv4-compatible ones. */
    if (in_prefix(a->b, v6_blocks[0].b, 128) || in_prefix(a->b, v6_blocks[1].b, 128))
        return NULL;
    for (size_t i = 0; i < sizeof(v4_forms) / sizeof(v4_forms[0]); i++) {
        if (in_prefix(a->b, v4_forms[i].b, v4_forms[i].bits))
            return &v4_forms[i];
    }
    return NULL;
}

ll_addr_verdict ll_netaddr_classify(const ll_netaddr *a)
{
    ll_addr_verdict v = {LL_ADDR_PUBLIC, NULL, NULL};
    const v4_form *form;

    if (a->family == AF_INET)
        return classify4(a->b);
    if (a->family != AF_INET6) {
        v.cls = LL_ADDR_RESERVED;
        v.block = "not an IP address";
        return v;
    }
    if ((form = carried_v4(a))) {
        v = classify4(a->b + form->v4_at);
        if (v.cls == LL_ADDR_PUBLIC && !form->public_ok) {
            v.cls = LL_ADDR_RESERVED;
            v.block = form->text;
        }
        if (v.cls != LL_ADDR_PUBLIC)
            v.form = form->name;
        return v;
    }
    for (size_t i = 0; i < sizeof(v6_blocks) / sizeof(v6_blocks[0]); i++) {
        if (in_prefix(a->b, v6_blocks[i].b, v6_blocks[i].bits)) {
            v.cls = v6_blocks[i].cls;
            v.block = v6_blocks[i].text;
            return v;
        }
    }
    if (!in_prefix(a->b, global_unicast, 3)) {
        v.cls = LL_ADDR_RESERVED;
        v.block = "outside 2000::/3, global unicast";
    }
    return v;
}

/* --- addresses ------------------------------------------------------------------ */

int ll_netaddr_parse(ll_netaddr *out, const char *text)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->b) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1) {
        out->family = AF_INET6;
        return 0;
    }
    return LL_EINVALID;
}

int ll_netaddr_from_sockaddr(ll_netaddr *out, const struct sockaddr *sa, size_t len)
{
    memset(out, 0, sizeof(*out));
    if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->b, &in->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        memcpy(out->b, &in6->sin6_addr, 16);
        return 0;
    }
    return LL_EINVALID;
}

void ll_netaddr_format(char *out, size_t cap, const ll_netaddr *a)
{
    if (!inet_ntop(a->family, a->b, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

int ll_netaddr_equal(const ll_netaddr *a, const ll_netaddr *b)
{
    return a->family == b->family && memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16) == 0;
}

/* --- the policy ------------------------------------------------------------------ */

struct ll_netpolicy {
    size_t n;
    struct {
        ll_netaddr addr;
        int bits;
    } allow[LL_NETPOLICY_MAX];
};

/* One entry "addr[/bits]" of n bytes. */
static int parse_block(ll_netpolicy *p, const char *s, size_t n)
{
    char text[96], *slash, *end;
    long bits;
    int max;
    ll_netaddr *a;

    if (n == 0)
        return ll_error_set(LL_EINVALID, "an entry of the list is empty");
    if (n >= sizeof(text))
        return ll_error_set(LL_EINVALID, "'%.40s...' is not an address block", s);
    memcpy(text, s, n);
    text[n] = '\0';
    if (p->n >= LL_NETPOLICY_MAX)
        return ll_error_set(LL_EINVALID, "more than %d address blocks", LL_NETPOLICY_MAX);
    a = &p->allow[p->n].addr;
    if ((slash = strchr(text, '/')))
        *slash = '\0';
    if (ll_netaddr_parse(a, text) < 0) {
        if (slash)
            *slash = '/';
        ll_error_set(LL_EINVALID, "'%s' is not an address block", text);
        ll_error_hint("write a.b.c.d/n or an IPv6 address/n, e.g. 10.0.0.0/8, fd00::/8");
        return LL_EINVALID;
    }
    max = a->family == AF_INET ? 32 : 128;
    bits = max;
    if (slash) {
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || slash[1] == '+' || slash[1] == '-' || bits < 0 ||
            bits > max) {
            *slash = '/';
            return ll_error_set(LL_EINVALID, "'%s' has a prefix length that is not 0 to %d", text,
                                max);
        }
    }
    for (int i = (int)bits; i < max; i++) {
        if (a->b[i / 8] & (0x80 >> (i % 8))) {
            if (slash)
                *slash = '/';
            ll_error_set(LL_EINVALID, "'%s' has bits set past its prefix length", text);
            ll_error_hint("write the first address of the block, e.g. 10.0.0.0/8");
            return LL_EINVALID;
        }
    }
    p->allow[p->n++].bits = (int)bits;
    return 0;
}

int ll_netpolicy_parse(ll_netpolicy **out, const char *cidrs)
{
    ll_netpolicy *p = calloc(1, sizeof(*p));
    const char *s = cidrs ? cidrs : "";
    int error;

    *out = NULL;
    if (!p)
        return ll_error_set(-1, "out of memory");
    while (*s == ' ' || *s == '\t')
        s++;
    while (*s) {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
        const char *last = end;
        while (last > s && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((error = parse_block(p, s, (size_t)(last - s))) < 0) {
            free(p);
            return error;
        }
        if (!comma)
            break;
        s = comma + 1;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s) {
            free(p);
            return ll_error_set(LL_EINVALID, "an entry of the list is empty");
        }
    }
    *out = p;
    return 0;
}

void ll_netpolicy_free(ll_netpolicy *p)
{
    free(p);
}

static int allowed_block(const ll_netpolicy *p, int family, const unsigned char *b)
{
    for (size_t i = 0; p && i < p->n; i++) {
        if (p->allow[i].addr.family == family && in_prefix(b, p->allow[i].addr.b, p->allow[i].bits))
            return 1;
    }
    return 0;
}

int ll_netpolicy_allows(ll_addr_verdict *why, const ll_netpolicy *p, const ll_netaddr *a)
{
    ll_addr_verdict v = ll_netaddr_classify(a);
    const v4_form *form = carried_v4(a);

    if (why)
        *why = v;
    if (v.cls == LL_ADDR_PUBLIC)
        return 1;
    if (allowed_block(p, a->family, a->b))
        return 1;
    return form && allowed_block(p, AF_INET, a->b + form->v4_at);
}

/* --- resolution ------------------------------------------------------------------ */

struct ll_net_lookup {
    pthread_mutex_t lock;
    pthread_cond_t done_cond; /* on CLOCK_MONOTONIC */
    int refs;                 /* the caller, and the thread while it runs */
    int done;
    int rc;  /* getaddrinfo's */
    int err; /* errno, for EAI_SYSTEM */
    struct addrinfo *res;
    char host[];
};

/* Lookup threads still running (atomic): an abandoned lookup's thread
 * runs on until getaddrinfo returns. */
static int lookups_running;

int ll_net_lookups_running(void)
{
    return __atomic_load_n(&lookups_running, __ATOMIC_ACQUIRE);
}

int ll_net_lookups_drain(int64_t timeout_ms)
{
    int64_t until = ll_monotonic_ms() + timeout_ms;
    int left;
    while ((left = ll_net_lookups_running()) > 0 && ll_monotonic_ms() < until) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return left;
}

static void lookup_unref(ll_net_lookup *l)
{
    pthread_mutex_lock(&l->lock);
    int left = --l->refs;
    pthread_mutex_unlock(&l->lock);
    if (left > 0)
        return;
    if (l->res)
        freeaddrinfo(l->res);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->done_cond);
    free(l);
}

static void *lookup_run(void *arg)
{
    ll_net_lookup *l = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(l->host, NULL, &hints, &res);
    int err = errno;
    pthread_mutex_lock(&l->lock);
    l->rc = rc;
    l->err = err;
    l->res = res;
    l->done = 1;
    pthread_cond_signal(&l->done_cond);
    pthread_mutex_unlock(&l->lock);
    lookup_unref(l);
    __atomic_sub_fetch(&lookups_running, 1, __ATOMIC_RELEASE);
    return NULL;
}

int ll_net_lookup_start(ll_net_lookup **out, const char *host)
{
    size_t n = strlen(host);
    ll_net_lookup *l = calloc(1, sizeof(*l) + n + 1);
    pthread_condattr_t ca;
    pthread_attr_t ta;
    struct addrinfo hints;

    *out = NULL;
    if (!l)
        return ll_error_set(-1, "out of memory");
    memcpy(l->host, host, n + 1);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->done_cond, &ca);
    pthread_condattr_destroy(&ca);
    l->refs = 1;

    /* A numeric host needs no resolver (and no thread). */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &l->res) == 0) {
        l->done = 1;
        *out = l;
        return 0;
    }
    l->res = NULL;
    l->refs = 2;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    __atomic_add_fetch(&lookups_running, 1, __ATOMIC_ACQ_REL);
    int rc = pthread_create(&t, &ta, lookup_run, l);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        __atomic_sub_fetch(&lookups_running, 1, __ATOMIC_RELEASE);
        l->refs = 1;
        lookup_unref(l);
        return ll_error_set(-1, "cannot start a thread to resolve a host: %s", strerror(rc));
    }
    *out = l;
    return 0;
}

static int lookup_failed(const char *host, int rc, int err)
{
    switch (rc) {
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
        return ll_error_set(LL_ENOTFOUND, "'%.200s' does not resolve to an address", host);
    case EAI_SYSTEM:
        return ll_error_set(LL_EUPSTREAM, "resolving '%.200s' failed: %s", host, strerror(err));
    default:
        return ll_error_set(LL_EUPSTREAM, "resolving '%.200s' failed: %s", host, gai_strerror(rc));
    }
}

int ll_net_lookup_wait(ll_netaddr_list *out, ll_net_lookup *l, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    struct addrinfo *res = NULL;
    int done, rc, err, error = 0;

    out->n = 0;
    pthread_mutex_lock(&l->lock);
    while (!l->done) {
        if (pthread_cond_timedwait(&l->done_cond, &l->lock, &until) == ETIMEDOUT)
            break;
    }
    done = l->done;
    rc = l->rc;
    err = l->err;
    if (done) {
        res = l->res;
        l->res = NULL;
    }
    pthread_mutex_unlock(&l->lock);

    if (!done)
        error = ll_error_set(LL_ETIMEOUT, "'%.200s' did not resolve in time", l->host);
    else if (rc != 0)
        error = lookup_failed(l->host, rc, err);
    for (struct addrinfo *ai = res; !error && ai; ai = ai->ai_next) {
        ll_netaddr a;
        int seen = 0;
        if (ll_netaddr_from_sockaddr(&a, ai->ai_addr, ai->ai_addrlen) < 0)
            continue;
        for (size_t i = 0; i < out->n && !seen; i++)
            seen = ll_netaddr_equal(&out->a[i], &a);
        if (seen)
            continue;
        if (out->n == LL_NETADDRS_MAX)
            error = ll_error_set(LL_EINVALID, "'%.200s' resolves to more than %d addresses",
                                 l->host, LL_NETADDRS_MAX);
        else
            out->a[out->n++] = a;
    }
    if (!error && out->n == 0)
        error = ll_error_set(LL_ENOTFOUND, "'%.200s' does not resolve to an address", l->host);
    if (res)
        freeaddrinfo(res);
    lookup_unref(l);
    if (error)
        out->n = 0;
    return error;
}

int ll_net_resolve(ll_netaddr_list *out, const char *host, int timeout_ms)
{
    ll_net_lookup *l = NULL;
    int error;
    out->n = 0;
    if ((error = ll_net_lookup_start(&l, host)) < 0)
        return error;
    return ll_net_lookup_wait(out, l, ll_monotonic_ms() + timeout_ms);
}

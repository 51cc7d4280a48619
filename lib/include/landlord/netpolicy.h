/* netpolicy.h - which network addresses landlord may connect to on behalf of
 * a caller (webhook receivers), and host resolution bounded in time.
 *
 * An address is one of a few classes (loopback, link-local, private, ...);
 * only public ones may be reached, unless an operator allows a block of
 * addresses by CIDR (setting webhook-allow-cidr).  IPv6 forms that carry an
 * IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
 * IPv4-translated, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the
 * IPv4 address they carry.  Everything here is pure and thread-safe except
 * the resolver, which runs getaddrinfo() on a thread of its own so that a
 * caller can stop waiting for it.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; ll_netaddr_list and ll_netaddr are plain values
 * (nothing to free).
 */
#ifndef LANDLORD_NETPOLICY_H
#define LANDLORD_NETPOLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for any address as text (INET6_ADDRSTRLEN). */
#define LL_NETADDR_STRLEN 46
/* Most addresses one host may resolve to; more is refused. */
#define LL_NETADDRS_MAX 64
/* Most blocks in an allow list. */
#define LL_NETPOLICY_MAX 64

/* One IPv4 (b[0..3]) or IPv6 (b[0..15]) address, network byte order. */
typedef struct ll_netaddr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char b[16];
} ll_netaddr;

typedef struct ll_netaddr_list {
    size_t n;
    ll_netaddr a[LL_NETADDRS_MAX];
} ll_netaddr_list;

typedef enum ll_addr_class {
    LL_ADDR_PUBLIC = 0,
    LL_ADDR_LOOPBACK,
    LL_ADDR_LINK_LOCAL,
    LL_ADDR_PRIVATE, /* RFC 1918, 100.64.0.0/10 (carrier-grade NAT), fc00::/7, site-local */
    LL_ADDR_UNSPECIFIED,
    LL_ADDR_MULTICAST,
    LL_ADDR_BROADCAST,
    LL_ADDR_RESERVED /* documentation, benchmarking, future use, not global unicast */
} ll_addr_class;

/* What an address is, and why. */
typedef struct ll_addr_verdict {
    ll_addr_class cls;
    const char *block; /* static: the special-purpose block, e.g. "127.0.0.0/8"; NULL if public */
    const char *form;  /* static: the IPv6 form carrying an IPv4 address ("IPv4-mapped",
                        * "IPv4-compatible", "IPv4-translated", "NAT64", "6to4"), or NULL */
} ll_addr_verdict;

/* "public", "loopback", "link-local", "private", "unspecified", "multicast",
 * "broadcast" or "reserved".  Static string. */
const char *ll_addr_class_name(ll_addr_class cls);

/* Parses a numeric address (dotted quad or IPv6 text, no zone): 0 or
 * LL_EINVALID (no message set: the caller says what was wrong). */
int ll_netaddr_parse(ll_netaddr *out, const char *text);

/* The address of an AF_INET or AF_INET6 sockaddr of len bytes: 0 or
 * LL_EINVALID. */
int ll_netaddr_from_sockaddr(ll_netaddr *out, const struct sockaddr *sa, size_t len);

/* The address as text into out (cap >= LL_NETADDR_STRLEN). */
void ll_netaddr_format(char *out, size_t cap, const ll_netaddr *a);

int ll_netaddr_equal(const ll_netaddr *a, const ll_netaddr *b);

/* The class of an address (see the table in netpolicy.c). */
ll_addr_verdict ll_netaddr_classify(const ll_netaddr *a);

/* --- the policy: public addresses plus the blocks an operator allows --- */

typedef struct ll_netpolicy ll_netpolicy;

/* Parses a comma-separated list of CIDR blocks ("127.0.0.0/8, fd00::/8";
 * an address alone is a block of one; "" allows nothing more).  A block
 * with bits set past its prefix is refused (it is most likely a typo).
 * *out is new (free with ll_netpolicy_free).  LL_EINVALID with a message
 * naming the entry. */
int ll_netpolicy_parse(ll_netpolicy **out, const char *cidrs);

void ll_netpolicy_free(ll_netpolicy *p);

/* 1 when a may be connected to: it is public, or it (or the IPv4 address
 * it carries) is in an allowed block; else 0 with *why (when not NULL)
 * saying what it is.  p may be NULL: nothing beyond public addresses. */
int ll_netpolicy_allows(ll_addr_verdict *why, const ll_netpolicy *p, const ll_netaddr *a);

/* --- resolution, bounded in time --- */

typedef struct ll_net_lookup ll_net_lookup;

/* Starts resolving host (a name or a numeric address) on a thread of its
 * own; *out is new and is consumed by ll_net_lookup_wait.  -1 when no
 * thread could be started (message set). */
int ll_net_lookup_start(ll_net_lookup **out, const char *host);

/* How many lookup threads are still running, abandoned ones included (a
 * thread ends only when getaddrinfo returns). */
int ll_net_lookups_running(void);

/* Waits up to timeout_ms for every lookup thread to end (at shutdown, so
 * that none is inside the resolver at exit); returns how many still run. */
int ll_net_lookups_drain(int64_t timeout_ms);

/* Waits for a lookup until deadline_ms (ll_monotonic_ms) and consumes it
 * (an unfinished lookup is abandoned: its thread frees it).  Fills *out
 * with every TCP address of the host, without duplicates.  Returns 0;
 * LL_ENOTFOUND: the name does not exist or has no address; LL_ETIMEOUT:
 * no answer in time; LL_EINVALID: more than LL_NETADDRS_MAX addresses;
 * LL_EUPSTREAM: the resolver failed.  A message is set on failure. */
int ll_net_lookup_wait(ll_netaddr_list *out, ll_net_lookup *l, int64_t deadline_ms);

/* ll_net_lookup_start + ll_net_lookup_wait within timeout_ms. */
int ll_net_resolve(ll_netaddr_list *out, const char *host, int timeout_ms);

#endif

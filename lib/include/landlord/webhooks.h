/* webhooks.h - delivering events to subscribed URLs.
 *
 * One thread reads due deliveries from the registry (events and deliveries
 * are stored by the status follower in one transaction) and POSTs each
 * event as JSON, up to WEBHOOK_PARALLEL at once, each bounded by a timeout:
 *
 *   POST <url>
 *   Content-Type: application/json
 *   Landlord-Event: tenant.ready
 *   Landlord-Delivery: <delivery id>
 *   Landlord-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 *   {"id": <event id>, "type": "tenant.ready", "created_at": "...", "data": {...}}
 *
 * A 2xx answer delivers; anything else (a status, a refused connection, a
 * timeout) is retried after 1, 2, 4 ... seconds (at most 5 minutes apart)
 * until max_attempts, then the delivery is failed.  Requests never wait for
 * deliveries.
 *
 * Receivers must be at public addresses (netpolicy.h), unless the operator
 * allows a block (allow_cidr).  Each attempt resolves the URL's host again
 * and checks every address; a host with any address not allowed is not
 * connected to at all ("address not allowed" in the delivery log, retried
 * like any failure).  curl is then pinned to the checked addresses
 * (CURLOPT_RESOLVE) and the address of every socket it opens is checked
 * once more (CURLOPT_OPENSOCKETFUNCTION), so a name that resolves
 * differently a moment later (DNS rebinding) gains nothing.  Redirects are
 * not followed, and no proxy is used (http_proxy and friends are ignored):
 * the address checked must be the receiver's.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; ll_webhook_target is a plain value (nothing to
 * free).
 */
#ifndef LANDLORD_WEBHOOKS_H
#define LANDLORD_WEBHOOKS_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/netpolicy.h"

typedef struct ll_webhooks ll_webhooks;

typedef struct ll_webhooks_options {
    const char *db_path;
    int timeout_s;          /* per attempt; 0: 5 */
    int max_attempts;       /* 0: 8 */
    const char *ca_file;    /* extra CA bundle for https receivers, or NULL */
    const char *allow_cidr; /* blocks receivers may be in besides public addresses
                             * (webhook-allow-cidr), or NULL */
} ll_webhooks_options;

/* How long a receiver's host may take to resolve when subscribing. */
#define LL_WEBHOOK_RESOLVE_MS 5000

/* Where a webhook URL leads. */
typedef struct ll_webhook_target {
    char host[256]; /* as the URL names it, without the brackets of an IPv6 address */
    char port[8];
    int numeric;           /* host is an IP address */
    ll_netaddr_list addrs; /* every address host resolves to */
} ll_webhook_target;

/* Checks where url (an absolute http(s) URL) leads: resolves its host within
 * timeout_ms and requires every address to be allowed by policy (NULL:
 * public addresses only).  Fills *out when out is not NULL.  Returns 0 or
 * LL_EINVALID with field "url" and a message: of class (ll_error kind)
 * "webhook-address-not-allowed" when an address is not allowed (the message
 * names the address class and block, never an address a name resolved
 * to); without a class when the host is not usable or does not resolve
 * (in time).  -1 when something else failed. */
int ll_webhook_check_url(ll_webhook_target *out, const char *url, const ll_netpolicy *policy,
                         int timeout_ms);

/* *out: a new handle, ended and freed with ll_webhooks_stop; opts is read (ca_file copied), not
 * kept. */
int ll_webhooks_start(ll_webhooks **out, const ll_webhooks_options *opts);

/* New deliveries may be due: look now. */
void ll_webhooks_notify(ll_webhooks *w);

void ll_webhooks_stop(ll_webhooks *w);

/* Deliveries made (2xx) and attempts that failed, since start. */
void ll_webhooks_counts(long long *delivered, long long *failed_attempts, long long *given_up,
                        ll_webhooks *w);

/* out = hex HMAC-SHA256(secret, timestamp "." body). */
int ll_webhook_sign(char out[65], const char *secret, const char *timestamp, const char *body,
                    size_t len);

#endif

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
 */
#ifndef LANDLORD_WEBHOOKS_H
#define LANDLORD_WEBHOOKS_H

#include <stddef.h>
#include <jansson.h>

typedef struct ll_webhooks ll_webhooks;

typedef struct ll_webhooks_options {
    const char *db_path;
    int timeout_s;       /* per attempt; 0: 5 */
    int max_attempts;    /* 0: 8 */
    const char *ca_file; /* extra CA bundle for https receivers, or NULL */
} ll_webhooks_options;

int ll_webhooks_start(ll_webhooks **out, const ll_webhooks_options *opts);

/* New deliveries may be due: look now. */
void ll_webhooks_notify(ll_webhooks *w);

void ll_webhooks_stop(ll_webhooks *w);

/* Deliveries made (2xx) and attempts that failed, since start. */
void ll_webhooks_counts(ll_webhooks *w, long long *delivered, long long *failed_attempts,
                        long long *given_up);

/* out = hex HMAC-SHA256(secret, timestamp "." body). */
int ll_webhook_sign(char out[65], const char *secret, const char *timestamp, const char *body,
                    size_t len);

#endif

/* webhooks.c - the deliverer (see webhooks.h).
 *
 * The thread loops: take up to WEBHOOK_PARALLEL due deliveries, send them
 * at once through one curl multi handle, record each outcome, and sleep
 * until the next delivery is due, ll_webhooks_notify() or stop.  It owns
 * its registry connection.  Secrets are read from the registry per batch
 * (ll_delivery records) and never logged; delivery_body is the one place a
 * delivery becomes the JSON a receiver gets.  An outcome that cannot be recorded (a full volume)
 * leaves its delivery due: the thread then waits IDLE_MS before the next
 * batch instead of sending it again at once.
 *
 * Where a receiver may be (webhooks.h): a batch first starts a lookup of
 * every receiver's host (each on a thread of its own, netpolicy.c), then
 * waits for them until one timeout has passed, checks every address, and
 * only then builds the requests of the receivers that passed, pinned to
 * the addresses checked.  A refusal is recorded as "address not allowed"
 * and nothing more: no connection is made, so the log tells nothing about
 * what listens there; the address and its class go to landlord's own log.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/netpolicy.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/webhooks.h"
#include "landlord/worker.h"

#define WEBHOOK_PARALLEL 16
#define BACKOFF_MAX_MS   (5 * 60 * 1000)
#define IDLE_MS          5000

/* What the delivery log says of a receiver that may not be reached. */
#define NOT_ALLOWED "address not allowed"

struct ll_webhooks {
    char *db_path, *ca_file;
    ll_netpolicy *policy; /* read-only once started */
    int timeout_s, max_attempts;
    ll_worker worker;
    pthread_mutex_t lock; /* the counts */
    long long delivered, failed, given_up;
    ll_registry *reg;
    int unrecorded; /* deliverer thread: an outcome of this batch was not stored */
};

int ll_webhook_sign(char out[65], const char *secret, const char *timestamp, const char *body,
                    size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t tl = strlen(timestamp);
    unsigned char *msg = malloc(tl + 1 + len);
    if (!msg)
        return ll_error_set(-1, "out of memory");
    memcpy(msg, timestamp, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    int ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + len, mac, &n) != NULL;
    free(msg);
    if (!ok || n != 32)
        return ll_error_set(-1, "cannot sign the delivery");
    ll_hex_encode(out, mac, n);
    return 0;
}

/* --- where a URL leads ------------------------------------------------------------ */

static int url_error(const char *message)
{
    ll_error_set(LL_EINVALID, "%s", message);
    ll_error_field("url");
    return LL_EINVALID;
}

/* The host and port of url (absolute http or https). */
static int target_parse(ll_webhook_target *t, const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *zone = NULL;
    int error = 0;
    size_t n;

    memset(t, 0, sizeof(*t));
    if (!u)
        return ll_error_set(-1, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        error = url_error("url is not an absolute URL");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        error = url_error("url's host must not carry an IPv6 zone");
        goto done;
    }
    n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
        n -= 2;
    }
    for (size_t i = 0; i < n && !error; i++) {
        if ((unsigned char)host[i] <= 0x20 || (unsigned char)host[i] >= 0x7f)
            error = url_error("url's host must be ASCII: write an international name "
                              "in its xn-- form");
    }
    if (error)
        goto done;
    if (n == 0 || n >= sizeof(t->host) || strlen(port) >= sizeof(t->port)) {
        error = url_error("url's host is empty or too long");
        goto done;
    }
    memcpy(t->host, host, n + 1);
    memcpy(t->port, port, strlen(port) + 1);
    ll_netaddr probe;
    t->numeric = ll_netaddr_parse(&probe, t->host) == 0;
done:
    curl_free(host);
    curl_free(port);
    curl_free(zone);
    curl_url_cleanup(u);
    return error;
}

/* 0 when every address of t is allowed; else LL_EFORBIDDEN with *bad the
 * first refused address and *why what it is. */
static int target_allowed(const ll_webhook_target *t, const ll_netpolicy *p, ll_netaddr *bad,
                          ll_addr_verdict *why)
{
    for (size_t i = 0; i < t->addrs.n; i++) {
        if (!ll_netpolicy_allows(why, p, &t->addrs.a[i])) {
            *bad = t->addrs.a[i];
            return LL_EFORBIDDEN;
        }
    }
    return 0;
}

int ll_webhook_check_url(ll_webhook_target *out, const char *url, const ll_netpolicy *policy,
                         int timeout_ms)
{
    ll_webhook_target t;
    ll_netaddr bad;
    ll_addr_verdict why;
    int error;

    if ((error = target_parse(&t, url)) < 0)
        return error;
    if ((error = ll_net_resolve(&t.addrs, t.host, timeout_ms)) < 0) {
        if (error == -1)
            return error;
        /* The resolver's message names the host; say which rule it breaks. */
        ll_error_set(LL_EINVALID, "url's host '%.200s' %s", t.host,
                     error == LL_ETIMEOUT    ? "did not resolve in time"
                     : error == LL_EINVALID  ? "resolves to too many addresses"
                     : error == LL_ENOTFOUND ? "does not resolve to an address"
                                             : "could not be resolved");
        ll_error_field("url");
        return LL_EINVALID;
    }
    if (target_allowed(&t, policy, &bad, &why) < 0) {
        const char *cls = ll_addr_class_name(why.cls);
        char form[64] = "";
        if (why.form)
            snprintf(form, sizeof(form), " in its %s form", why.form);
        ll_error_set(LL_EINVALID,
                     "url's host %s%.200s%s %s %s %s address (%s)%s: webhooks reach only public "
                     "addresses",
                     t.numeric ? "" : "'", t.host, t.numeric ? "" : "'",
                     t.numeric ? "is" : "resolves to", cls[0] == 'u' ? "an" : "a", cls, why.block,
                     form);
        ll_error_field("url");
        ll_error_kind("webhook-address-not-allowed");
        ll_error_hint("an operator may allow a block of addresses with the setting "
                      "webhook-allow-cidr");
        return LL_EINVALID;
    }
    if (out)
        *out = t;
    return 0;
}

/* --- the deliverer ------------------------------------------------------------------ */

typedef struct attempt {
    CURL *easy;
    struct curl_slist *headers, *resolve;
    char *body;
    long long id;
    int attempts;
    const ll_netpolicy *policy; /* borrowed from the deliverer */
    ll_webhook_target target;
    ll_net_lookup *lookup; /* the target's host being resolved, or NULL */
    const char *refusal;   /* static: why no request was made, or NULL */
    int refused;           /* curl was about to connect to an address not allowed */
    char error[CURL_ERROR_SIZE];
} attempt;

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* CURLOPT_OPENSOCKETFUNCTION: the address curl is about to connect to is
 * checked here, whatever resolved it. */
static curl_socket_t open_checked(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *address)
{
    attempt *a = clientp;
    ll_netaddr addr;
    ll_addr_verdict why;
    char text[LL_NETADDR_STRLEN];

    if (purpose != CURLSOCKTYPE_IPCXN ||
        ll_netaddr_from_sockaddr(&addr, &address->addr, address->addrlen) < 0) {
        a->refused = 1;
        return CURL_SOCKET_BAD;
    }
    if (!ll_netpolicy_allows(&why, a->policy, &addr)) {
        ll_netaddr_format(text, sizeof(text), &addr);
        ll_log_warn("msg=\"webhook receiver address not allowed at connect\" delivery=%lld "
                    "address=%s class=%s",
                    a->id, text, ll_addr_class_name(why.cls));
        a->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* CURLOPT_RESOLVE's "host:port:addr,addr...": curl connects to the
 * addresses checked, not to what the host resolves to a moment later.  A
 * name with a trailing dot is pinned with and without it. */
static int pin(attempt *a)
{
    char addrs[LL_NETADDRS_MAX * (LL_NETADDR_STRLEN + 3)], entry[sizeof(addrs) + 300];
    size_t n = 0, hl = strlen(a->target.host);

    if (a->target.numeric)
        return 0; /* curl resolves nothing */
    addrs[0] = '\0';
    for (size_t i = 0; i < a->target.addrs.n && n < sizeof(addrs); i++) {
        char text[LL_NETADDR_STRLEN];
        const ll_netaddr *addr = &a->target.addrs.a[i];
        ll_netaddr_format(text, sizeof(text), addr);
        n += (size_t)snprintf(addrs + n, sizeof(addrs) - n,
                              addr->family == AF_INET6 ? "%s[%s]" : "%s%s", i ? "," : "", text);
    }
    if (n >= sizeof(addrs))
        return ll_error_set(-1, "cannot pin the receiver's addresses");
    for (int dotless = 0; dotless < 2; dotless++) {
        if (dotless && (hl < 2 || a->target.host[hl - 1] != '.'))
            break;
        snprintf(entry, sizeof(entry), "%.*s:%s:%s", (int)(hl - (size_t)dotless), a->target.host,
                 a->target.port, addrs);
        struct curl_slist *l = curl_slist_append(a->resolve, entry);
        if (!l)
            return ll_error_set(-1, "out of memory");
        a->resolve = l;
    }
    return 0;
}

/* Starts the delivery d (from ll_registry_deliveries_due): its receiver's
 * host is being resolved afterwards, unless a->refusal says why not. */
static void begin(attempt *a, const ll_webhooks *w, const ll_delivery *d)
{
    a->id = d->id;
    a->attempts = d->attempts + 1;
    a->policy = w->policy;
    if (target_parse(&a->target, d->url) < 0)
        a->refusal = "url not usable";
    else if (ll_net_lookup_start(&a->lookup, a->target.host) < 0)
        a->refusal = "host could not be resolved";
}

/* Waits for the receiver's addresses (until deadline_ms) and checks each. */
static void check(attempt *a, int64_t deadline_ms)
{
    ll_netaddr bad;
    ll_addr_verdict why;
    char text[LL_NETADDR_STRLEN];
    int error;

    if (!a->lookup)
        return;
    error = ll_net_lookup_wait(&a->target.addrs, a->lookup, deadline_ms);
    a->lookup = NULL;
    if (error == LL_ETIMEOUT)
        a->refusal = "host did not resolve in time";
    else if (error == LL_EINVALID)
        a->refusal = NOT_ALLOWED; /* more addresses than can be checked */
    else if (error < 0)
        a->refusal = "host does not resolve";
    else if (target_allowed(&a->target, a->policy, &bad, &why) < 0) {
        ll_netaddr_format(text, sizeof(text), &bad);
        ll_log_warn("msg=\"webhook receiver address not allowed\" delivery=%lld address=%s "
                    "class=%s block=\"%s\"%s%s",
                    a->id, text, ll_addr_class_name(why.cls), why.block, why.form ? " form=" : "",
                    why.form ? why.form : "");
        a->refusal = NOT_ALLOWED;
    }
}

/* The body a receiver gets for delivery d: {"id", "type", "created_at",
 * "data"} of its event, compact JSON (a new string, NULL out of memory). */
static char *delivery_body(const ll_delivery *d)
{
    json_t *data = d->data ? json_loads(d->data, 0, NULL) : NULL;
    json_t *payload =
        json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)d->event, "type", d->event_type,
                  "created_at", d->event_created_at, "data", data ? data : json_object());
    char *body = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    return body;
}

/* Builds the request for delivery d, whose receiver passed check(). */
static int prepare(attempt *a, const ll_webhooks *w, const ll_delivery *d)
{
    char stamp[32], sig[65], header[256];

    a->body = delivery_body(d);
    snprintf(stamp, sizeof(stamp), "%lld", (long long)(ll_wall_ms() / 1000));
    if (!a->body ||
        ll_webhook_sign(sig, d->secret ? d->secret : "", stamp, a->body, strlen(a->body)) < 0 ||
        pin(a) < 0 || !(a->easy = curl_easy_init()))
        return -1;
    a->headers = curl_slist_append(a->headers, "Content-Type: application/json");
    a->headers = curl_slist_append(a->headers, "User-Agent: landlord");
    snprintf(header, sizeof(header), "Landlord-Event: %s", d->event_type);
    a->headers = curl_slist_append(a->headers, header);
    snprintf(header, sizeof(header), "Landlord-Delivery: %lld", a->id);
    a->headers = curl_slist_append(a->headers, header);
    snprintf(header, sizeof(header), "Landlord-Signature: t=%s,v1=%s", stamp, sig);
    a->headers = curl_slist_append(a->headers, header);
    curl_easy_setopt(a->easy, CURLOPT_URL, d->url);
    curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT, (long)w->timeout_s);
    curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT, (long)w->timeout_s);
    curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->error);
    curl_easy_setopt(a->easy, CURLOPT_PRIVATE, a);
    /* Only the address checked is the receiver's: no redirect, no proxy. */
    curl_easy_setopt(a->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(a->easy, CURLOPT_PROXY, "");
    if (a->resolve)
        curl_easy_setopt(a->easy, CURLOPT_RESOLVE, a->resolve);
    curl_easy_setopt(a->easy, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(a->easy, CURLOPT_OPENSOCKETDATA, a);
    if (w->ca_file)
        curl_easy_setopt(a->easy, CURLOPT_CAINFO, w->ca_file);
    return 0;
}

static void record(ll_webhooks *w, attempt *a, CURLcode rc)
{
    long status = 0;
    char why[CURL_ERROR_SIZE + 64];
    long long next = 0;
    int delivered = 0, gave_up = 0;

    if (rc == CURLE_OK && !a->refusal)
        curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && !a->refusal && status >= 200 && status < 300) {
        delivered = 1;
        why[0] = '\0';
    } else {
        /* A refusal says no more than that: not which address, nor whether
         * anything listens there. */
        if (a->refusal)
            snprintf(why, sizeof(why), "%s", a->refusal);
        else if (a->refused)
            snprintf(why, sizeof(why), "%s", NOT_ALLOWED);
        else if (rc != CURLE_OK)
            snprintf(why, sizeof(why), "%s", a->error[0] ? a->error : curl_easy_strerror(rc));
        else
            snprintf(why, sizeof(why), "the receiver answered %ld", status);
        long long backoff = 1000LL << (a->attempts - 1 < 20 ? a->attempts - 1 : 20);
        next = ll_wall_ms() + (backoff > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff);
        gave_up = a->attempts >= w->max_attempts;
    }
    pthread_mutex_lock(&w->lock);
    w->delivered += delivered;
    w->failed += !delivered;
    w->given_up += gave_up;
    pthread_mutex_unlock(&w->lock);
    if (!delivered)
        ll_log_info("msg=\"webhook delivery failed\" delivery=%lld attempt=%d error=\"%s\"%s",
                    a->id, a->attempts, why, gave_up ? " gave_up=1" : "");
    ll_delivery_state state = delivered ? LL_DELIVERY_DELIVERED
                              : gave_up ? LL_DELIVERY_FAILED
                                        : LL_DELIVERY_PENDING;
    if (ll_registry_delivery_attempted(w->reg, a->id, state, a->attempts, next, (int)status,
                                       why[0] ? why : NULL) < 0) {
        ll_log_warn("msg=\"cannot record a delivery\" error=\"%s\"", ll_error_last()->message);
        w->unrecorded = 1;
    }
}

/* Sends one batch of due deliveries; returns how many were due. */
static int deliver_due(ll_webhooks *w)
{
    ll_delivery *due = NULL;
    attempt batch[WEBHOOK_PARALLEL];
    size_t i, n = 0, ndue = 0;
    CURLM *multi = NULL;
    int running = 0;

    if (ll_registry_deliveries_due(&due, &ndue, w->reg, ll_wall_ms(), WEBHOOK_PARALLEL) < 0) {
        ll_log_warn("msg=\"cannot read deliveries\" error=\"%s\"", ll_error_last()->message);
        return 0;
    }
    memset(batch, 0, sizeof(batch));
    /* Every receiver's host resolves at once, within one timeout. */
    for (i = 0; i < ndue && n < WEBHOOK_PARALLEL; i++)
        begin(&batch[n++], w, &due[i]);
    int64_t deadline = ll_monotonic_ms() + (int64_t)w->timeout_s * 1000;
    for (i = 0; i < n; i++)
        check(&batch[i], deadline);
    multi = curl_multi_init();
    for (i = 0; i < n; i++) {
        attempt *a = &batch[i];
        if (a->refusal) {
            record(w, a, CURLE_COULDNT_CONNECT);
            continue;
        }
        if (!multi || prepare(a, w, &due[i]) < 0) {
            record(w, a, CURLE_FAILED_INIT);
            continue;
        }
        curl_multi_add_handle(multi, a->easy);
    }
    do {
        if (!multi || curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(multi, NULL, 0, 200, NULL);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            attempt *a = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
            record(w, a, msg->data.result);
        }
    } while (running);
    for (i = 0; i < n; i++) {
        if (batch[i].easy) {
            curl_multi_remove_handle(multi, batch[i].easy);
            curl_easy_cleanup(batch[i].easy);
        }
        curl_slist_free_all(batch[i].headers);
        curl_slist_free_all(batch[i].resolve);
        free(batch[i].body);
    }
    curl_multi_cleanup(multi);
    ll_registry_deliveries_free(due, ndue);
    return (int)ndue;
}

static void *run(void *arg)
{
    ll_webhooks *w = arg;
    while (!ll_worker_stopping(&w->worker)) {
        w->unrecorded = 0;
        int sent = deliver_due(w);
        if (sent == WEBHOOK_PARALLEL && !w->unrecorded)
            continue;
        long long next = ll_registry_deliveries_next_due(w->reg), wait_ms = IDLE_MS;
        /* Unrecorded outcomes stay due: no burst of repeats at the receiver. */
        if (next >= 0 && !w->unrecorded)
            wait_ms = next - ll_wall_ms();
        if (wait_ms <= 0)
            continue;
        if (ll_worker_wait(&w->worker, wait_ms > IDLE_MS ? IDLE_MS : wait_ms))
            break;
    }
    return NULL;
}

int ll_webhooks_start(ll_webhooks **out, const ll_webhooks_options *o)
{
    ll_webhooks *w = calloc(1, sizeof(*w));
    *out = NULL;
    if (!w)
        return ll_error_set(-1, "out of memory");
    w->db_path = strdup(o->db_path);
    w->ca_file = o->ca_file && o->ca_file[0] ? strdup(o->ca_file) : NULL;
    w->timeout_s = o->timeout_s > 0 ? o->timeout_s : 5;
    w->max_attempts = o->max_attempts > 0 ? o->max_attempts : 8;
    pthread_mutex_init(&w->lock, NULL);
    ll_worker_init(&w->worker);
    int error = ll_netpolicy_parse(&w->policy, o->allow_cidr);
    if (error == 0)
        error = ll_registry_open(&w->reg, w->db_path);
    if (error == 0)
        error = ll_worker_start(&w->worker, run, w, "the webhook deliverer");
    if (error < 0) {
        ll_webhooks_stop(w);
        return error;
    }
    *out = w;
    return 0;
}

void ll_webhooks_notify(ll_webhooks *w)
{
    if (!w)
        return;
    ll_worker_poke(&w->worker);
}

void ll_webhooks_stop(ll_webhooks *w)
{
    if (!w)
        return;
    ll_worker_destroy(&w->worker);
    /* Lookups the deliverer abandoned run on until getaddrinfo returns: give
     * them a moment, so that nothing of theirs is in flight at exit. */
    ll_net_lookups_drain(2000);
    ll_registry_close(w->reg);
    ll_netpolicy_free(w->policy);
    pthread_mutex_destroy(&w->lock);
    free(w->db_path);
    free(w->ca_file);
    free(w);
}

void ll_webhooks_counts(long long *delivered, long long *failed_attempts, long long *given_up,
                        ll_webhooks *w)
{
    *delivered = *failed_attempts = *given_up = 0;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    *delivered = w->delivered;
    *failed_attempts = w->failed;
    *given_up = w->given_up;
    pthread_mutex_unlock(&w->lock);
}

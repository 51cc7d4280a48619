/* webhooks.c - the deliverer (see webhooks.h).
 *
 * The thread loops: take up to WEBHOOK_PARALLEL due deliveries, send them
 * at once through one curl multi handle, record each outcome, and sleep
 * until the next delivery is due, ll_webhooks_notify() or stop.  It owns
 * its registry connection.  Secrets are read from the registry per batch
 * and never logged.  An outcome that cannot be recorded (a full volume)
 * leaves its delivery due: the thread then waits IDLE_MS before the next
 * batch instead of sending it again at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/webhooks.h"

#define WEBHOOK_PARALLEL 16
#define BACKOFF_MAX_MS   (5 * 60 * 1000)
#define IDLE_MS          5000

struct ll_webhooks {
    char *db_path, *ca_file;
    int timeout_s, max_attempts;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop, poked;
    long long delivered, failed, given_up;
    ll_registry *reg;
    int unrecorded; /* deliverer thread: an outcome of this batch was not stored */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

typedef struct attempt {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    long long id;
    int attempts;
    char error[CURL_ERROR_SIZE];
} attempt;

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Builds the request for delivery d (from ll_registry_deliveries_due). */
static int prepare(attempt *a, const ll_webhooks *w, const json_t *d)
{
    char stamp[32], sig[65], header[256];
    const char *secret = json_string_value(json_object_get(d, "secret"));
    json_t *payload =
        json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(d, "event"), "type",
                  json_object_get(d, "event_type"), "created_at",
                  json_object_get(d, "event_created_at"), "data", json_object_get(d, "data"));

    a->id = json_integer_value(json_object_get(d, "id"));
    a->attempts = (int)json_integer_value(json_object_get(d, "attempts")) + 1;
    a->body = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    snprintf(stamp, sizeof(stamp), "%lld", now_ms() / 1000);
    if (!a->body ||
        ll_webhook_sign(sig, secret ? secret : "", stamp, a->body, strlen(a->body)) < 0 ||
        !(a->easy = curl_easy_init()))
        return -1;
    a->headers = curl_slist_append(a->headers, "Content-Type: application/json");
    a->headers = curl_slist_append(a->headers, "User-Agent: landlord");
    snprintf(header, sizeof(header), "Landlord-Event: %s",
             json_string_value(json_object_get(d, "event_type")));
    a->headers = curl_slist_append(a->headers, header);
    snprintf(header, sizeof(header), "Landlord-Delivery: %lld", a->id);
    a->headers = curl_slist_append(a->headers, header);
    snprintf(header, sizeof(header), "Landlord-Signature: t=%s,v1=%s", stamp, sig);
    a->headers = curl_slist_append(a->headers, header);
    curl_easy_setopt(a->easy, CURLOPT_URL, json_string_value(json_object_get(d, "url")));
    curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT, (long)w->timeout_s);
    curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT, (long)w->timeout_s);
    curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->error);
    curl_easy_setopt(a->easy, CURLOPT_PRIVATE, a);
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

    if (rc == CURLE_OK)
        curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        delivered = 1;
        why[0] = '\0';
    } else {
        if (rc != CURLE_OK)
            snprintf(why, sizeof(why), "%s", a->error[0] ? a->error : curl_easy_strerror(rc));
        else
            snprintf(why, sizeof(why), "the receiver answered %ld", status);
        long long backoff = 1000LL << (a->attempts - 1 < 20 ? a->attempts - 1 : 20);
        next = now_ms() + (backoff > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff);
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
    const char *state = delivered ? "delivered" : gave_up ? "failed" : "pending";
    if (ll_registry_delivery_attempted(w->reg, a->id, state, a->attempts, next, (int)status,
                                       why[0] ? why : NULL) < 0) {
        ll_log_warn("msg=\"cannot record a delivery\" error=\"%s\"", ll_error_last()->message);
        w->unrecorded = 1;
    }
}

/* Sends one batch of due deliveries; returns how many were due. */
static int deliver_due(ll_webhooks *w)
{
    json_t *due = NULL, *d;
    attempt batch[WEBHOOK_PARALLEL];
    size_t i, n = 0;
    CURLM *multi = NULL;
    int running = 0;

    if (ll_registry_deliveries_due(&due, w->reg, now_ms(), WEBHOOK_PARALLEL) < 0) {
        ll_log_warn("msg=\"cannot read deliveries\" error=\"%s\"", ll_error_last()->message);
        return 0;
    }
    memset(batch, 0, sizeof(batch));
    multi = curl_multi_init();
    json_array_foreach(due, i, d)
    {
        attempt *a = &batch[n++];
        if (prepare(a, w, d) < 0) {
            record(w, a, CURLE_FAILED_INIT);
            continue;
        }
        curl_multi_add_handle(multi, a->easy);
    }
    do {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
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
        free(batch[i].body);
    }
    curl_multi_cleanup(multi);
    int count = (int)json_array_size(due);
    json_decref(due);
    return count;
}

static void *run(void *arg)
{
    ll_webhooks *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int stop = w->stop;
        w->poked = 0;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        w->unrecorded = 0;
        int sent = deliver_due(w);
        if (sent == WEBHOOK_PARALLEL && !w->unrecorded)
            continue;
        long long next = ll_registry_deliveries_next_due(w->reg), wait_ms = IDLE_MS;
        /* Unrecorded outcomes stay due: no burst of repeats at the receiver. */
        if (next >= 0 && !w->unrecorded)
            wait_ms = next - now_ms();
        if (wait_ms <= 0)
            continue;
        if (wait_ms > IDLE_MS)
            wait_ms = IDLE_MS;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&w->lock);
        while (!w->stop && !w->poked && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
            ;
        pthread_mutex_unlock(&w->lock);
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
    pthread_cond_init(&w->wake, NULL);
    int error = ll_registry_open(&w->reg, w->db_path);
    if (error < 0 || pthread_create(&w->thread, NULL, run, w) != 0) {
        ll_webhooks_stop(w);
        return error < 0 ? error : ll_error_set(-1, "cannot start the webhook deliverer");
    }
    w->started = 1;
    *out = w;
    return 0;
}

void ll_webhooks_notify(ll_webhooks *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->poked = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void ll_webhooks_stop(ll_webhooks *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL);
    ll_registry_close(w->reg);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w->db_path);
    free(w->ca_file);
    free(w);
}

void ll_webhooks_counts(ll_webhooks *w, long long *delivered, long long *failed_attempts,
                        long long *given_up)
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

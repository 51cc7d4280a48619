/* http.c - libmicrohttpd glue.
 *
 * Per request: the first call (headers) creates an ll_req, picks or makes the
 * request id, routes, and refuses before any of the body is read: unknown
 * routes (404/405), headers over http-max-header (431), a missing or bad
 * bearer token (401), a token without the route's scope (403), a caller
 * over its rate (429), an announced body over the cap (413).  Body chunks
 * go into a capped buffer until http-body-timeout; the last call checks
 * the Idempotency-Key of a POST (replay, 409 in flight, 422 for another
 * body) and runs the handler with the caller set for the thread (commit
 * authors come from it).  Every reply passes ll_reply_response, which
 * records the audit entry of a request that tried to change something and
 * stores the answer of an idempotent POST.  The completion callback writes
 * the access-log line and frees the request; it also runs when a client
 * disconnects mid-upload.
 *
 * Before any of that, the edge: a request whose framing is ambiguous (two
 * Content-Lengths, Content-Length with Transfer-Encoding) or whose header
 * bytes hold control characters is refused with 400 and the connection
 * closed.  Connections get deadlines for their request headers, at most
 * http-per-address-limit per client address, and those still sending a
 * header can never fill the server (edge.c).
 *
 * Tokens never reach a log line or an error body: only the reason a token
 * was refused, and the caller's sub once it verified, are ever written.
 *
 * Threads: libmicrohttpd's internal thread pool (http-threads) runs the
 * handlers.  A write does not hold a worker while its push is outstanding:
 * its connection is suspended and put on the waiter list; the waiter thread
 * resumes it when the git writer settles the operation or the wait runs
 * out, and the handler's finish step answers.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/ratelimit.h"
#include "landlord/registry.h"
#include "landlord/validate.h"
#include "edge.h"
#include "problem.h"
#include "routes.h"

#define IDEM_KEY_MAX 255

static ll_ratelimit *limiter;    /* per caller; NULL when rate-limit is 0 */
static char *tls_cert, *tls_key; /* PEM text, kept while the daemon runs */

static void audit(ll_req *req);
static void idempotency_store(ll_req *req, unsigned status);

enum MHD_Result ll_reply_response(ll_req *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;
    char retry[16];
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->etag[0] && status < 300)
        MHD_add_response_header(resp, "ETag", req->etag);
    if (req->www_authenticate[0])
        MHD_add_response_header(resp, "WWW-Authenticate", req->www_authenticate);
    if (req->retry_after > 0) {
        snprintf(retry, sizeof(retry), "%d", req->retry_after);
        MHD_add_response_header(resp, "Retry-After", retry);
    }
    if (req->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    if (req->close_after)
        MHD_add_response_header(resp, "Connection", "close");
    req->status = status;
    /* Before the answer leaves: whoever reads the audit log or retries
     * after seeing it finds the request recorded. */
    idempotency_store(req, status);
    audit(req);
    ret = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->replied = 1;
    return ret;
}

/* Keeps the body of an answer that an Idempotency-Key will replay. */
static void keep_reply(ll_req *req, const char *content_type, const void *data, size_t len,
                       const char *location)
{
    if (!req->idem_reserved)
        return;
    free(req->reply_copy);
    req->reply_copy = len < SIZE_MAX ? malloc(len + 1) : NULL;
    if (req->reply_copy) {
        memcpy(req->reply_copy, data, len);
        req->reply_copy[len] = '\0';
        req->reply_copy_len = len;
    }
    snprintf(req->reply_type, sizeof(req->reply_type), "%s", content_type);
    snprintf(req->reply_location, sizeof(req->reply_location), "%s", location ? location : "");
}

enum MHD_Result ll_reply_bytes(ll_req *req, unsigned status, const char *content_type,
                               const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    req->reply_bytes = len;
    keep_reply(req, content_type, data, len, NULL);
    return ll_reply_response(req, status, resp);
}

static void release_answer(void *cls)
{
    ll_answer_release(cls);
}

enum MHD_Result ll_reply_answer(ll_req *req, unsigned status, ll_answer *answer)
{
    size_t len = 0;
    const char *text = ll_answer_text(answer, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)text, release_answer, answer);
    if (!resp) {
        ll_answer_release(answer);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    req->reply_bytes = len;
    keep_reply(req, "application/json", text, len, NULL);
    return ll_reply_response(req, status, resp);
}

const char *ll_req_header(ll_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result reply_text_impl(ll_req *req, unsigned status, char *text, size_t len,
                                       const char *location)
{
    struct MHD_Response *resp;

    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    const char *ct = status >= 400 ? "application/problem+json" : "application/json";
    MHD_add_response_header(resp, "Content-Type", ct);
    if (location)
        MHD_add_response_header(resp, "Location", location);
    req->reply_bytes = len;
    keep_reply(req, ct, text, len, location);
    return ll_reply_response(req, status, resp);
}

static enum MHD_Result reply_json_impl(ll_req *req, unsigned status, json_t *body,
                                       const char *location)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return reply_text_impl(req, status, text, text ? strlen(text) : 0, location);
}

enum MHD_Result ll_reply_text(ll_req *req, unsigned status, char *text, size_t len)
{
    return reply_text_impl(req, status, text, len, NULL);
}

enum MHD_Result ll_reply_json(ll_req *req, unsigned status, json_t *body)
{
    return reply_json_impl(req, status, body, NULL);
}

enum MHD_Result ll_reply_json_at(ll_req *req, unsigned status, json_t *body, const char *location)
{
    return reply_json_impl(req, status, body, location);
}

const char *ll_req_query(ll_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int ll_req_query_int(ll_req *req, const char *name, long min, long max, long def, long *out)
{
    const char *v = ll_req_query(req, name);
    char *end;
    long n;

    *out = def;
    if (!v)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "query parameter %s must be a whole number from %ld to %ld", name, min, max);
        ll_reply_problem(req, 422, "invalid-request", detail, json_pack("{s:s}", "field", name));
        return -1;
    }
    *out = n;
    return 0;
}

/* A positive decimal id, or 0. */
static long long positive_id(const char *text)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    return text && *text && !errno && !*end && v > 0 ? v : 0;
}

int ll_req_param_id(ll_req *req, const char *what, long long *out)
{
    if (!(*out = positive_id(req->params[0]))) {
        ll_error_set(LL_ENOTFOUND, "no %s '%.32s'", what, req->params[0]);
        ll_reply_error(req, LL_ENOTFOUND);
        return -1;
    }
    return 0;
}

int ll_req_query_cursor(ll_req *req, long long *out)
{
    const char *cursor = ll_req_query(req, "cursor");
    *out = 0;
    if (cursor && !(*out = positive_id(cursor))) {
        ll_error_set(LL_EINVALID, "cursor is not one this server gave out");
        ll_error_field("cursor");
        ll_reply_error(req, LL_EINVALID);
        return -1;
    }
    return 0;
}

int ll_req_json_body(ll_req *req, json_t **out)
{
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    json_error_t jerr;
    size_t n;

    *out = NULL;
    if (ct) {
        n = strcspn(ct, "; \t");
        if (n != strlen("application/json") || strncasecmp(ct, "application/json", n) != 0)
            ct = NULL;
    }
    if (!ct) {
        ll_reply_problem(req, 415, "unsupported-media-type",
                         "the body must be sent with Content-Type: application/json", NULL);
        return -1;
    }
    *out = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!*out) {
        char detail[300];
        snprintf(detail, sizeof(detail), "body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        ll_reply_problem(req, 400, "malformed-request", detail, NULL);
        return -1;
    }
    return 0;
}

/* Request ids are 16 random bytes in hex, drawn from a per-thread pool
 * filled 16 ids at a time (one getrandom call each request was 2% of a
 * kept-answer read).  They name requests; they guard nothing. */
static __thread char id_pool[16 * 32 + 1];
static __thread size_t id_pool_used = sizeof(id_pool) - 1;

static void new_request_id(char out[33])
{
    if (id_pool_used + 32 > sizeof(id_pool) - 1) {
        if (ll_random_hex(id_pool, (sizeof(id_pool) - 1) / 2) < 0) {
            ll_random_hex(out, 16);
            return;
        }
        id_pool_used = 0;
    }
    memcpy(out, id_pool + id_pool_used, 32);
    out[32] = '\0';
    id_pool_used += 32;
}

/* X-Request-Id: the caller's when it is 1..128 visible ASCII characters. */
static void pick_request_id(ll_req *req)
{
    const char *id = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = id ? strlen(id) : 0;
    int ok = n > 0 && n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = id[i] > 0x20 && id[i] < 0x7f && id[i] != '"';
    if (ok)
        memcpy(req->request_id, id, n + 1);
    else
        new_request_id(req->request_id);
}

/* --- writes waiting for their operations ------------------------------------ */

typedef struct stream stream;

static struct {
    pthread_mutex_t lock;
    pthread_t thread;
    int started, stopping;
    ll_req *list;
    ll_core *core;
    stream *streams; /* open event streams */
    int nstreams;
} waiters = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, NULL, NULL, 0};

static void resume_streams(int all);

enum MHD_Result ll_req_wait(ll_req *req, long long op, int wait_s, ll_handler finish)
{
    const ll_config *cfg = ll_core_config(req->core);
    req->wait_op = op;
    req->finish = finish;
    if (op == 0 || wait_s == 0 || ll_core_degraded(req->core))
        return finish(req);
    req->wait_deadline_ms =
        ll_monotonic_ms() + 1000LL * (wait_s < 0 ? cfg->write_wait : (long)wait_s);
    pthread_mutex_lock(&waiters.lock);
    if (waiters.stopping) {
        pthread_mutex_unlock(&waiters.lock);
        return finish(req);
    }
    req->waiting = 1;
    req->next_waiter = waiters.list;
    waiters.list = req;
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&waiters.lock);
    return MHD_YES;
}

enum MHD_Result ll_req_wait_tenant(ll_req *req, const char *id, int timeout_s, ll_handler finish)
{
    req->finish = finish;
    if (ll_tenant_wait_over(req->core, id))
        return finish(req);
    snprintf(req->wait_tenant, sizeof(req->wait_tenant), "%s", id);
    req->wait_deadline_ms = ll_monotonic_ms() + 1000LL * timeout_s;
    pthread_mutex_lock(&waiters.lock);
    if (waiters.stopping) {
        pthread_mutex_unlock(&waiters.lock);
        return finish(req);
    }
    req->waiting = 1;
    req->next_waiter = waiters.list;
    waiters.list = req;
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&waiters.lock);
    return MHD_YES;
}

/* Resumes the waiters whose time is up, whose operations settled (after
 * progress) or whose tenants are ready or failed; all of them when
 * stopping.  Returns the earliest deadline left. */
static int64_t resume_due(int progressed, int all)
{
    int64_t now = ll_monotonic_ms(), next = now + 1000;
    int degraded = ll_core_degraded(waiters.core);
    ll_req **pp;

    pthread_mutex_lock(&waiters.lock);
    pp = &waiters.list;
    while (*pp) {
        ll_req *req = *pp;
        int due =
            all || now >= req->wait_deadline_ms ||
            (req->wait_tenant[0]
                 ? ll_tenant_wait_over(waiters.core, req->wait_tenant)
                 : degraded || (progressed && ll_core_op_queued(waiters.core, req->wait_op) != 1));
        if (due) {
            *pp = req->next_waiter;
            MHD_resume_connection(req->conn);
            continue;
        }
        if (req->wait_deadline_ms < next)
            next = req->wait_deadline_ms;
        pp = &req->next_waiter;
    }
    pthread_mutex_unlock(&waiters.lock);
    return next;
}

static void *waiter_main(void *arg)
{
    unsigned long long seen = ll_core_progress(waiters.core);
    int64_t next = ll_monotonic_ms() + 1000;

    for (;;) {
        unsigned long long now_gen;
        int stopping;

        /* Tenants' states move without the writer: look every 20 ms. */
        ll_core_wait_progress(waiters.core, seen,
                              next < ll_monotonic_ms() + 20 ? next : ll_monotonic_ms() + 20);
        pthread_mutex_lock(&waiters.lock);
        stopping = waiters.stopping;
        pthread_mutex_unlock(&waiters.lock);
        if (stopping)
            break;
        now_gen = ll_core_progress(waiters.core);
        next = resume_due(now_gen != seen, 0);
        seen = now_gen;
        resume_streams(0);
        ll_edge_reap();
    }
    resume_due(0, 1);
    resume_streams(1);
    return NULL;
}

/* --- event streams (text/event-stream) ------------------------------------------- */

#define STREAMS_MAX  256
#define KEEPALIVE_MS 15000
#define STREAM_BATCH 100

struct stream {
    struct MHD_Connection *conn;
    ll_core *core;
    long long last_id;
    char tenant[128]; /* only this tenant's events, or "" */
    ll_buf out;       /* formatted, not yet handed to libmicrohttpd */
    size_t taken;
    int64_t last_write_ms;
    unsigned long long seen; /* events generation when last looked */
    int suspended;
    stream *next;
};

/* Resumes suspended streams that have something to say: new events, a
 * keepalive due, or the server stopping. */
static void resume_streams(int all)
{
    unsigned long long gen = ll_core_events_generation(waiters.core);
    int64_t now = ll_monotonic_ms();
    pthread_mutex_lock(&waiters.lock);
    for (stream *s = waiters.streams; s; s = s->next) {
        if (s->suspended && (all || gen != s->seen || now - s->last_write_ms >= KEEPALIVE_MS)) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&waiters.lock);
}

/* Appends the events after s->last_id (of s->tenant when set). */
static void stream_fill(stream *s)
{
    json_t *events = NULL, *e;
    size_t i;
    if (ll_events_after(&events, s->core, s->last_id, STREAM_BATCH) < 0)
        return;
    json_array_foreach(events, i, e)
    {
        long long id = json_integer_value(json_object_get(e, "id"));
        const char *tenant = json_string_value(json_object_get(e, "tenant"));
        s->last_id = id;
        if (s->tenant[0] && (!tenant || strcmp(tenant, s->tenant) != 0))
            continue;
        char *data = json_dumps(e, JSON_COMPACT);
        if (data)
            ll_buf_printf(&s->out, "id: %lld\nevent: %s\ndata: %s\n\n", id,
                          json_string_value(json_object_get(e, "type")), data);
        free(data);
    }
    json_decref(events);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    (void)pos;
    pthread_mutex_lock(&waiters.lock);
    int stopping = waiters.stopping;
    pthread_mutex_unlock(&waiters.lock);
    if (s->taken == s->out.len) {
        s->out.len = 0;
        s->taken = 0;
        if (stopping)
            return MHD_CONTENT_READER_END_OF_STREAM;
        s->seen = ll_core_events_generation(s->core);
        stream_fill(s);
        if (s->out.len == 0 && ll_monotonic_ms() - s->last_write_ms >= KEEPALIVE_MS)
            ll_buf_adds(&s->out, ": keepalive\n\n");
        if (s->out.len == 0) {
            /* Nothing to say: park the connection until there is. */
            pthread_mutex_lock(&waiters.lock);
            s->suspended = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&waiters.lock);
            return 0;
        }
    }
    size_t n = s->out.len - s->taken;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->taken, n);
    s->taken += n;
    s->last_write_ms = ll_monotonic_ms();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    pthread_mutex_lock(&waiters.lock);
    for (stream **pp = &waiters.streams; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            waiters.nstreams--;
            break;
        }
    }
    pthread_mutex_unlock(&waiters.lock);
    ll_buf_free(&s->out);
    free(s);
}

enum MHD_Result ll_reply_event_stream(ll_req *req, long long after, const char *tenant)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        return MHD_NO;
    s->conn = req->conn;
    s->core = req->core;
    s->last_id = after;
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant ? tenant : "");
    ll_buf_init(&s->out, 4 << 20);
    ll_buf_adds(&s->out, "retry: 3000\n\n");
    s->last_write_ms = ll_monotonic_ms();
    pthread_mutex_lock(&waiters.lock);
    if (waiters.stopping || waiters.nstreams >= STREAMS_MAX) {
        pthread_mutex_unlock(&waiters.lock);
        ll_buf_free(&s->out);
        free(s);
        return ll_reply_problem(req, 503, "unavailable",
                                "too many open event streams; try again later", NULL);
    }
    s->next = waiters.streams;
    waiters.streams = s;
    waiters.nstreams++;
    pthread_mutex_unlock(&waiters.lock);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return ll_reply_response(req, 200, resp);
}

/* Writes path into out with anything unusual escaped, for the log. */
static void log_safe(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

static int is_write(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

/* A DNS-1123 label of at most max characters (checked quietly). */
static int label_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* One audit record per request under /api/v1 that tried to change
 * something, refusals included. */
static void audit(ll_req *req)
{
    char path[600];
    const char *tenant = req->audit_tenant[0] ? req->audit_tenant : NULL, *tier = NULL;
    const ll_caller *c = req->authenticated ? &req->caller : NULL;

    if (!req->path || !is_write(req->method) || strncmp(req->path, "/api/v1/", 8) != 0)
        return;
    if (req->route && req->nparams > 0) {
        if (strncmp(req->route->pattern, "/api/v1/tenants/{id}", 20) == 0 &&
            label_ok(req->params[0], LL_TENANT_ID_MAX))
            tenant = req->params[0];
        else if (strncmp(req->route->pattern, "/api/v1/tiers/{name}", 20) == 0 &&
                 label_ok(req->params[0], 63))
            tier = req->params[0];
    }
    log_safe(path, sizeof(path), req->path);
    ll_audit_entry e = {
        .request_id = req->request_id,
        .actor = c ? c->sub : NULL,
        .actor_name = c && c->name[0] ? c->name : NULL,
        .actor_email = c && c->email[0] ? c->email : NULL,
        .method = req->method,
        .path = path,
        .route = req->route ? req->route->pattern : NULL,
        .tenant = tenant,
        .tier = tier,
        .problem = req->problem[0] ? req->problem : NULL,
        .status = (int)req->status,
        .replayed = req->replayed,
        .operation = req->wait_op,
    };
    if (ll_audit_record(req->core, &e) < 0)
        ll_log_error("msg=\"cannot record the audit entry\" error=\"%s\"",
                     ll_error_last()->message);
}

/* Stores the answer of a POST that reserved its Idempotency-Key; an answer
 * that is not worth replaying (5xx, a stream) frees the key instead. */
static void idempotency_store(ll_req *req, unsigned status)
{
    int error;
    if (!req->idem_reserved)
        return;
    req->idem_reserved = 0;
    if (status >= 500 || !req->reply_copy)
        error = ll_idempotency_release(req->core, req->caller.sub, req->idem_key);
    else
        error = ll_idempotency_finish(
            req->core, req->caller.sub, req->idem_key, (int)status, req->reply_type,
            req->reply_location[0] ? req->reply_location : NULL, req->etag[0] ? req->etag : NULL,
            req->reply_copy, req->reply_copy_len);
    if (error < 0)
        ll_log_error("msg=\"cannot store the idempotent answer\" error=\"%s\"",
                     ll_error_last()->message);
}

/* 401 with WWW-Authenticate (RFC 6750): why, never the token. */
static enum MHD_Result unauthorized(ll_req *req, const char *why, int had_token)
{
    if (had_token)
        snprintf(req->www_authenticate, sizeof(req->www_authenticate),
                 "Bearer realm=\"landlord\", error=\"invalid_token\", error_description=\"%.200s\"",
                 why);
    else
        snprintf(req->www_authenticate, sizeof(req->www_authenticate), "Bearer realm=\"landlord\"");
    return ll_reply_problem(req, 401, "unauthorized", why,
                            json_pack("{s:s}", "hint",
                                      "send Authorization: Bearer <token>; `landlord token` mints "
                                      "one from the server's secret"));
}

/* The caller's address, for rate-limiting requests without a valid token. */
static void client_addr(ll_req *req, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host,
                      sizeof(host));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host,
                      sizeof(host));
    }
    snprintf(out, cap, "ip:%s", host);
}

/* 1 when key may go on; else the 429 is answered. */
static int within_rate(ll_req *req, const char *key, enum MHD_Result *ret)
{
    int retry = 0;
    if (!limiter || ll_ratelimit_take(limiter, key, ll_monotonic_ms(), &retry))
        return 1;
    req->retry_after = retry;
    *ret = ll_reply_problem(req, 429, "too-many-requests",
                            "too many requests from this caller; slow down",
                            json_pack("{s:i}", "retry_after", retry));
    return 0;
}

/* Authenticates the request when its route needs a token, and checks the
 * scope and the caller's rate.  0: go on; else the answer was sent. */
static int admit(ll_req *req, enum MHD_Result *ret)
{
    const ll_config *cfg = ll_core_config(req->core);
    const char *scope = req->route->scope, *h;
    char key[300], detail[LL_ERROR_MSG_MAX];
    int error;

    if (strcmp(scope, "public") == 0 || (strcmp(scope, "metrics") == 0 && !cfg->metrics_auth))
        return 0;
    h = ll_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        client_addr(req, key, sizeof(key));
        if (within_rate(req, key, ret))
            *ret = unauthorized(req,
                                h ? "the Authorization header is not a bearer token"
                                  : "this route needs a bearer token",
                                h != NULL);
        return -1;
    }
    h += 7;
    while (*h == ' ')
        h++;
    error = ll_auth_verify(&req->caller, ll_core_auth(req->core), h, (long long)time(NULL));
    if (error < 0) {
        snprintf(detail, sizeof(detail), "%s", ll_error_last()->message);
        client_addr(req, key, sizeof(key));
        if (within_rate(req, key, ret))
            *ret = unauthorized(req, detail, 1);
        return -1;
    }
    req->authenticated = 1;
    if (strcmp(scope, "metrics") != 0 && !ll_caller_has_scope(&req->caller, scope)) {
        snprintf(detail, sizeof(detail), "this route needs the scope %s, which the token lacks",
                 scope);
        snprintf(req->www_authenticate, sizeof(req->www_authenticate),
                 "Bearer realm=\"landlord\", error=\"insufficient_scope\", scope=\"%s\"", scope);
        *ret = ll_reply_problem(req, 403, "forbidden", detail, json_pack("{s:s}", "scope", scope));
        return -1;
    }
    if (ll_caller_has_scope(&req->caller, "admin"))
        return 0; /* the operator: not rate-limited */
    snprintf(key, sizeof(key), "sub:%s", req->caller.sub);
    if (!within_rate(req, key, ret))
        return -1;
    return 0;
}

static enum MHD_Result route_refused(ll_req *req, unsigned status, const char *allow)
{
    if (status == 405) {
        char detail[256];
        snprintf(detail, sizeof(detail), "%s does not take %s; it takes %s", req->path, req->method,
                 allow);
        json_t *body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type",
                                 "urn:landlord:problem:method-not-allowed", "title",
                                 "Method not allowed", "status", 405, "detail", detail, "instance",
                                 req->path, "request_id", req->request_id);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text)
            return MHD_NO;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/problem+json");
        MHD_add_response_header(resp, "Allow", allow);
        req->reply_bytes = strlen(text);
        snprintf(req->problem, sizeof(req->problem), "method-not-allowed");
        return ll_reply_response(req, 405, resp);
    }
    return ll_reply_problem(req, 404, "not-found", "no such resource", NULL);
}

/* The fingerprint of a POST for its Idempotency-Key: SHA-256 over method,
 * path and body.  A JSON body counts by its value, written with sorted keys
 * and no spaces: a retry that sends the same object with its keys in
 * another order is the same request. */
static void fingerprint(char out[65], ll_req *req)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    json_t *value = req->body.len ? json_loadb(req->body.data, req->body.len,
                                               JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL)
                                  : NULL;
    char *canonical =
        value ? json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(ctx, req->method, strlen(req->method) + 1);
        EVP_DigestUpdate(ctx, req->path, strlen(req->path) + 1);
        if (canonical)
            EVP_DigestUpdate(ctx, canonical, strlen(canonical));
        else if (req->body.len)
            EVP_DigestUpdate(ctx, req->body.data, req->body.len);
        EVP_DigestFinal_ex(ctx, md, &n);
    }
    free(canonical);
    json_decref(value);
    EVP_MD_CTX_free(ctx);
    if (n < 32)
        memset(md, 0, 32);
    ll_hex_encode(out, md, 32);
}

/* Idempotency-Key on a POST: a new key is reserved and the request runs;
 * a key whose request is still running is 409; another body under a used
 * key is 422; a finished one is replayed.  0: run the handler. */
static int idempotency(ll_req *req, enum MHD_Result *ret)
{
    const char *key = ll_req_header(req, "Idempotency-Key");
    json_t *stored = NULL;
    char fp[65];
    int state = 0, error;
    size_t n = key ? strlen(key) : 0;

    if (!key || strcmp(req->method, "POST") != 0 || !req->authenticated)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            n = 0;
    if (n == 0 || n > IDEM_KEY_MAX) {
        *ret = ll_reply_problem(req, 422, "invalid-request",
                                "Idempotency-Key must be 1-255 visible ASCII characters",
                                json_pack("{s:s}", "field", "Idempotency-Key"));
        return -1;
    }
    fingerprint(fp, req);
    if ((error = ll_idempotency_begin(&state, &stored, req->core, req->caller.sub, key, fp)) < 0) {
        *ret = ll_reply_error(req, error); /* a full volume: 503, the key is not reserved */
        return -1;
    }
    switch (state) {
    case LL_IDEM_NEW:
        snprintf(req->idem_key, sizeof(req->idem_key), "%s", key);
        req->idem_reserved = 1;
        return 0;
    case LL_IDEM_IN_FLIGHT:
        req->retry_after = 1;
        *ret = ll_reply_problem(req, 409, "conflict",
                                "a request with this Idempotency-Key is still being processed",
                                json_pack("{s:s}", "hint", "retry after it answered"));
        return -1;
    case LL_IDEM_MISMATCH:
        *ret = ll_reply_problem(req, 422, "idempotency-key-reused",
                                "this Idempotency-Key was used with another request (method, path "
                                "or body)",
                                json_pack("{s:s}", "hint", "use a new key for a new request"));
        return -1;
    default: {
        const char *body = json_string_value(json_object_get(stored, "body"));
        size_t len = json_string_length(json_object_get(stored, "body"));
        const char *loc = json_string_value(json_object_get(stored, "location"));
        const char *etag = json_string_value(json_object_get(stored, "etag"));
        const char *ct = json_string_value(json_object_get(stored, "content_type"));
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        req->replayed = 1;
        if (etag)
            snprintf(req->etag, sizeof(req->etag), "%s", etag);
        if (resp) {
            MHD_add_response_header(resp, "Content-Type", ct ? ct : "application/json");
            if (loc)
                MHD_add_response_header(resp, "Location", loc);
            req->reply_bytes = len;
        }
        json_int_t status = json_integer_value(json_object_get(stored, "status"));
        *ret =
            ll_reply_response(req, status >= 200 && status <= 599 ? (unsigned)status : 500, resp);
        json_decref(stored);
        return -1;
    }
    }
}

static enum MHD_Result dispatch(ll_req *req)
{
    enum MHD_Result ret = MHD_YES;
    if (idempotency(req, &ret) < 0)
        return ret;
    ll_caller_set_current(req->authenticated ? &req->caller : NULL);
    ret = req->route->handler(req);
    ll_caller_set_current(NULL);
    return ret;
}

struct header_sum {
    size_t bytes;
};

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    struct header_sum *h = cls;
    (void)kind;
    h->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* Refuses a request whose framing or header bytes are unsound (see
 * edge.c): 400, and the connection closed after it.  0: sound. */
static int check_framing(ll_req *req, enum MHD_Result *ret)
{
    char header[64];
    const char *rule =
        ll_edge_framing(req->conn, req->method, req->version, header, sizeof(header));
    if (!rule)
        return 0;
    req->close_after = 1;
    *ret = ll_reply_problem(req, 400, "malformed-request", rule,
                            header[0] ? json_pack("{s:s}", "header", header) : NULL);
    return -1;
}

/* Content-Length as HTTP has it: digits only, and within 64 bits. */
static int content_length(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The headers stage: framing, route, size limits, token, scope, rate.  0: read the
 * body; else the answer was sent. */
static int on_headers(ll_req *req, enum MHD_Result *ret)
{
    const ll_config *cfg = ll_core_config(req->core);
    struct header_sum hs = {strlen(req->path) + strlen(req->method) + 12};
    char allow[128];
    unsigned status;
    const char *cl;
    uint64_t announced = 0;

    if (check_framing(req, ret) < 0)
        return -1;
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, add_header_bytes, &hs);
    if (hs.bytes > (size_t)cfg->http_max_header) {
        char detail[160];
        snprintf(detail, sizeof(detail), "the request line and headers are larger than %ld bytes",
                 cfg->http_max_header);
        *ret = ll_reply_problem(req, 431, "header-too-large", detail, NULL);
        return -1;
    }
    req->route = ll_route_match(req, req->method, req->path, &status, allow, sizeof(allow));
    if (!req->route) {
        *ret = route_refused(req, status, allow);
        return -1;
    }
    if (admit(req, ret) < 0)
        return -1;
    /* Chart uploads have their own cap; every other body http-max-body. */
    req->body_cap = req->route->body == LL_BODY_CHART ? cfg->release_max_size : cfg->http_max_body;
    ll_buf_init(&req->body, (size_t)req->body_cap);
    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && content_length(cl, &announced) < 0) {
        /* libmicrohttpd refuses these itself; never trust that it did. */
        req->close_after = 1;
        *ret = ll_reply_problem(req, 400, "malformed-request",
                                "Content-Length must be a whole number of bytes",
                                json_pack("{s:s}", "header", "Content-Length"));
        return -1;
    }
    if (cl && announced > (uint64_t)req->body_cap) {
        char detail[160];
        snprintf(detail, sizeof(detail), "the body is larger than the limit of %ld bytes",
                 req->body_cap);
        *ret = ll_reply_problem(req, 413, "payload-too-large", detail, NULL);
        return -1;
    }
    req->body_deadline_ms = req->started_ms + 1000LL * cfg->http_body_timeout;
    return 0;
}

/* Each thread keeps the last finished ll_req for its next request: at
 * ~3.6 KB it is above glibc's per-thread cache, so calloc and free took a
 * malloc arena's lock on every request, contended between the workers. */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_key_make(void)
{
    pthread_key_create(&spare_key, free);
}

/* A zeroed request context (the caller's to req_free). */
static ll_req *req_new(void)
{
    ll_req *req = pthread_getspecific(spare_key);
    if (!req)
        return calloc(1, sizeof(*req));
    pthread_setspecific(spare_key, NULL);
    memset(req, 0, sizeof(*req));
    return req;
}

static void req_free(ll_req *req)
{
    if (!pthread_getspecific(spare_key) && pthread_setspecific(spare_key, req) == 0)
        return;
    free(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    ll_core *core = cls;
    ll_req *req = *con_cls;
    enum MHD_Result ret = MHD_YES;

    if (!req) {
        if (!(req = req_new()))
            return MHD_NO;
        ll_edge_serving(conn);
        req->conn = conn;
        req->core = core;
        req->method = method;
        req->version = version;
        req->path = strdup(url);
        req->segments = strdup(url);
        req->started_ms = ll_monotonic_ms();
        pick_request_id(req);
        *con_cls = req;
        if (!req->path || !req->segments)
            return MHD_NO;
        ll_log_set_request_id(req->request_id);
        if (on_headers(req, &ret) < 0)
            return ret;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->replied && ll_monotonic_ms() > req->body_deadline_ms) {
            /* A body trickling in: libmicrohttpd cannot answer in the middle
             * of one, so the connection is closed. */
            ll_log_set_request_id(req->request_id);
            ll_log_warn("msg=\"request body too slow; closing the connection\" timeout_s=%ld",
                        ll_core_config(req->core)->http_body_timeout);
            req->status = 408;
            snprintf(req->problem, sizeof(req->problem), "request-timeout");
            audit(req);
            return MHD_NO;
        }
        if (!req->replied && !req->body_too_large &&
            ll_buf_add(&req->body, upload_data, *upload_data_size) < 0) {
            req->body_too_large = 1;
            ll_buf_free(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    ll_log_set_request_id(req->request_id);
    if (req->waiting) {
        /* Resumed: the operation settled or the wait ran out. */
        req->waiting = 0;
        return req->finish(req);
    }
    if (req->body_too_large) {
        char detail[160];
        snprintf(detail, sizeof(detail), "the body is larger than the limit of %ld bytes",
                 req->body_cap);
        return ll_reply_problem(req, 413, "payload-too-large", detail, NULL);
    }
    return dispatch(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ll_req *req = *con_cls;
    char path[512], sub[800];

    ll_edge_idle(conn);
    if (!req)
        return;
    ll_log_set_request_id(req->request_id);
    /* A POST that ended without an answer frees its Idempotency-Key. */
    if (req->idem_reserved) {
        req->idem_reserved = 0;
        ll_idempotency_release(req->core, req->caller.sub, req->idem_key);
    }
    if (ll_log_threshold <= LL_LOG_INFO) { /* the access log line */
        log_safe(path, sizeof(path), req->path);
        log_safe(sub, sizeof(sub), req->authenticated ? req->caller.sub : "");
        ll_log_info("msg=request method=%s path=\"%s\" status=%u bytes=%zu ms=%lld%s%s%s",
                    req->method ? req->method : "-", path, req->status, req->reply_bytes,
                    (long long)(ll_monotonic_ms() - req->started_ms),
                    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1",
                    sub[0] ? " sub=" : "", sub);
    }
    ll_log_set_request_id(NULL);
    ll_buf_free(&req->body);
    free(req->reply_copy);
    free(req->segments);
    free(req->path);
    req_free(req);
    *con_cls = NULL;
}

/* Percent-decodes a URL or query value as libmicrohttpd would, except that
 * %00 does not become a NUL (which would cut the path short: a request for
 * /api/v1/tiers/acme%00x must not act on tier acme); it becomes a control
 * character that no id, name or value accepts. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    for (char *p = s; (p = strstr(p, "%00")) != NULL; p += 3)
        *p = '\x01';
    return MHD_http_unescape(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ll_log_warn("msg=\"http: %s\"", msg);
}

/* 1 when the address is a loopback one (127.0.0.0/8, ::1). */
static int loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}

static void free_tls(void)
{
    if (tls_key) {
        memset(tls_key, 0, strlen(tls_key));
        free(tls_key);
    }
    free(tls_cert);
    tls_key = tls_cert = NULL;
}

int ll_http_start(struct MHD_Daemon **out, char *out_url, size_t url_cap, ll_core *core)
{
    const ll_config *cfg = ll_core_config(core);
    struct addrinfo hints = {0}, *ai = NULL;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    char host[256], port[16];
    const char *colon = strrchr(cfg->listen, ':');
    size_t hlen = (size_t)(colon - cfg->listen);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    int rc, tls = cfg->tls_cert_file[0] || cfg->tls_key_file[0];
    /* Each connection's memory: the request line and headers up to
     * http-max-header with libmicrohttpd's record per header (a set a few
     * KiB over the limit still reaches on_headers and its problem 431;
     * larger ones get libmicrohttpd's own 431), and the answer's headers.
     * No more: libmicrohttpd 0.9.75 zeroes all of it between two requests
     * on a kept-alive connection, which at 48 KiB took ~25% of the CPU of
     * a kept-answer read. */
    size_t memory = (size_t)cfg->http_max_header + 8 * 1024;

    pthread_once(&spare_once, spare_key_make);
    if (hlen >= sizeof(host))
        return ll_error_set(LL_EINVALID, "listen address too long");
    memcpy(host, cfg->listen, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    snprintf(port, sizeof(port), "%s", colon + 1);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
        return ll_error_set(LL_EINVALID, "cannot resolve listen address %s: %s", cfg->listen,
                            gai_strerror(rc));
    /* Bearer tokens must not cross a network in clear text. */
    if (!tls && !loopback(ai->ai_addr)) {
        if (!cfg->allow_insecure_http) {
            freeaddrinfo(ai);
            ll_error_set(LL_EINVALID,
                         "refusing to serve plain HTTP on %s: bearer tokens would cross the "
                         "network in clear text",
                         cfg->listen);
            ll_error_hint("set tls-cert-file and tls-key-file, or allow-insecure-http 1 behind a "
                          "proxy that terminates TLS");
            return LL_EINVALID;
        }
        ll_log_warn("msg=\"serving plain HTTP on a non-loopback address (allow-insecure-http): "
                    "tokens travel in clear text\" listen=%s",
                    cfg->listen);
    }
    if ((rc = ll_edge_init(cfg)) < 0) {
        freeaddrinfo(ai);
        return rc;
    }
    if (tls && (rc = ll_tls_load(&tls_cert, &tls_key, cfg->tls_cert_file, cfg->tls_key_file)) < 0) {
        freeaddrinfo(ai);
        ll_edge_free();
        return rc;
    }
    if (cfg->rate_limit > 0 && (rc = ll_ratelimit_new(&limiter, (double)cfg->rate_limit,
                                                      (double)cfg->rate_limit_burst, 10000)) < 0) {
        freeaddrinfo(ai);
        free_tls();
        ll_edge_free();
        return rc;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
#define COMMON_OPTIONS                                                                             \
    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,               \
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,     \
        (unsigned)cfg->http_connection_limit, MHD_OPTION_CONNECTION_TIMEOUT,                       \
        (unsigned)cfg->http_connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,        \
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape,   \
        NULL, MHD_OPTION_NOTIFY_CONNECTION, ll_edge_on_connection, NULL,                           \
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_per_address_limit
    if (tls)
        d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, core, COMMON_OPTIONS,
                             MHD_OPTION_HTTPS_MEM_KEY, tls_key, MHD_OPTION_HTTPS_MEM_CERT, tls_cert,
                             MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, core, COMMON_OPTIONS,
                             MHD_OPTION_END);
#undef COMMON_OPTIONS
    freeaddrinfo(ai);
    if (!d) {
        ll_ratelimit_free(limiter);
        limiter = NULL;
        free_tls();
        ll_edge_free();
        return ll_error_set(-1, "cannot listen on %s: %s", cfg->listen,
                            errno ? strerror(errno) : "libmicrohttpd refused to start");
    }
    waiters.core = core;
    waiters.stopping = 0;
    if (pthread_create(&waiters.thread, NULL, waiter_main, NULL) != 0) {
        MHD_stop_daemon(d);
        ll_edge_free();
        return ll_error_set(-1, "cannot start the waiter thread");
    }
    waiters.started = 1;
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(out_url, url_cap, strchr(host, ':') ? "%s://[%s]:%u/" : "%s://%s:%u/",
             tls ? "https" : "http", host, info ? info->port : 0);
    *out = d;
    return 0;
}

void ll_http_stop(struct MHD_Daemon *d)
{
    if (!d)
        return;
    /* Waiting writes answer with where they stand (202) before the daemon
     * stops: libmicrohttpd must not stop with suspended connections. */
    MHD_quiesce_daemon(d);
    if (waiters.started) {
        pthread_mutex_lock(&waiters.lock);
        waiters.stopping = 1;
        pthread_mutex_unlock(&waiters.lock);
        pthread_join(waiters.thread, NULL);
        waiters.started = 0;
        struct timespec grace = {0, 100 * 1000000L};
        nanosleep(&grace, NULL);
    }
    MHD_stop_daemon(d);
    ll_edge_free();
    /* What this thread kept (the workers' went with their threads). */
    free(pthread_getspecific(spare_key));
    pthread_setspecific(spare_key, NULL);
    ll_ratelimit_free(limiter);
    limiter = NULL;
    free_tls();
}

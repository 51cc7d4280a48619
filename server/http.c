/* http.c - libmicrohttpd glue.
 *
 * Per request: the first call (headers) creates an ll_req, picks or makes the
 * request id and refuses an announced body over the cap with 413 before any
 * of it is read; body chunks go into a capped buffer; the last call routes
 * and runs the handler.  The completion callback writes the access-log line
 * and frees the request; it also runs when a client disconnects mid-upload.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "problem.h"
#include "routes.h"

enum MHD_Result ll_reply_response(ll_req *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ret = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->replied = 1;
    req->status = status;
    return ret;
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
    return ll_reply_response(req, status, resp);
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
    MHD_add_response_header(resp, "Content-Type",
                            status >= 400 ? "application/problem+json" : "application/json");
    if (location)
        MHD_add_response_header(resp, "Location", location);
    req->reply_bytes = len;
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
        ll_random_hex(req->request_id, 16);
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

static enum MHD_Result dispatch(ll_req *req)
{
    char allow[128];
    unsigned status;
    const ll_route *route =
        ll_route_match(req, req->method, req->path, &status, allow, sizeof(allow));
    if (!route) {
        if (status == 405) {
            json_t *extra = json_pack("{s:s}", "allow", allow);
            struct MHD_Response *resp;
            char detail[256], *text;
            json_t *body;
            snprintf(detail, sizeof(detail), "%s does not take %s; it takes %s", req->path,
                     req->method, allow);
            body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type",
                             "urn:landlord:problem:method-not-allowed", "title",
                             "Method not allowed", "status", 405, "detail", detail, "instance",
                             req->path, "request_id", req->request_id);
            json_decref(extra);
            text = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
            MHD_add_response_header(resp, "Content-Type", "application/problem+json");
            MHD_add_response_header(resp, "Allow", allow);
            req->reply_bytes = strlen(text);
            return ll_reply_response(req, 405, resp);
        }
        return ll_reply_problem(req, 404, "not-found", "no such resource", NULL);
    }
    req->route = route;
    /* Bodies are taken only by the routes that read them. */
    return route->handler(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    ll_core *core = cls;
    ll_req *req = *con_cls;
    const ll_config *cfg = ll_core_config(core);

    if (!req) {
        const char *cl;
        if (!(req = calloc(1, sizeof(*req))))
            return MHD_NO;
        req->conn = conn;
        req->core = core;
        req->method = method;
        req->path = strdup(url);
        req->started_ms = ll_monotonic_ms();
        pick_request_id(req);
        *con_cls = req;
        if (!req->path)
            return MHD_NO;
        /* Chart uploads have their own cap; every other body http-max-body. */
        req->body_cap = ll_route_body_kind(method, req->path) == LL_BODY_CHART
                            ? cfg->release_max_size
                            : cfg->http_max_body;
        ll_buf_init(&req->body, (size_t)req->body_cap);
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)req->body_cap) {
            char detail[160];
            ll_log_set_request_id(req->request_id);
            snprintf(detail, sizeof(detail), "the body is larger than the limit of %ld bytes",
                     req->body_cap);
            return ll_reply_problem(req, 413, "payload-too-large", detail, NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ll_req *req = *con_cls;
    char path[512];

    if (!req)
        return;
    ll_log_set_request_id(req->request_id);
    log_safe(path, sizeof(path), req->path);
    ll_log_info("msg=request method=%s path=\"%s\" status=%u bytes=%zu ms=%lld%s",
                req->method ? req->method : "-", path, req->status, req->reply_bytes,
                (long long)(ll_monotonic_ms() - req->started_ms),
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    ll_log_set_request_id(NULL);
    ll_buf_free(&req->body);
    free(req->path);
    free(req);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ll_log_warn("msg=\"http: %s\"", msg);
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
    int rc;

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
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, core, MHD_OPTION_EXTERNAL_LOGGER,
                         on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_connection_limit,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d)
        return ll_error_set(-1, "cannot listen on %s: %s", cfg->listen,
                            errno ? strerror(errno) : "libmicrohttpd refused to start");
    waiters.core = core;
    waiters.stopping = 0;
    if (pthread_create(&waiters.thread, NULL, waiter_main, NULL) != 0) {
        MHD_stop_daemon(d);
        return ll_error_set(-1, "cannot start the waiter thread");
    }
    waiters.started = 1;
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(out_url, url_cap, strchr(host, ':') ? "http://[%s]:%u/" : "http://%s:%u/", host,
             info ? info->port : 0);
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
}

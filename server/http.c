/* http.c - libmicrohttpd glue: the daemon, and the access handler that
 * takes each request through its stages.
 *
 * Per request: the first call (headers) takes a request context, picks or
 * makes the request id, and refuses before any of the body is read:
 * unsound framing (edge.c: 400, connection closed), headers over
 * http-max-header (431), unknown routes (routes.c: 404/405), a caller
 * without the right token, scope or rate (admit.c: 401/403/429), an
 * announced body over the cap (413).  Body chunks go into a capped buffer
 * until http-body-timeout; the last call looks at the Idempotency-Key of a
 * POST (idempotency.c) and runs the route's handler with the caller set
 * for the thread (commit authors come from it).  A handler that waits
 * (waiter.c) is called back through its finish step when the connection
 * resumes.  The completion callback frees an Idempotency-Key left
 * reserved, writes the access-log line and frees the request; it also runs
 * when a client disconnects mid-upload.
 *
 * The stages each live in their own file; this one only orders them.
 * Below it: routes.c → handlers/ → request.c, reply.c, problem.c,
 * waiter.c, stream.c; reply.c leaves the records (records.c).
 *
 * Threads: libmicrohttpd's internal thread pool (http-threads) runs the
 * handlers; the waiter thread (waiter.c) resumes suspended connections.
 * TLS key material is read before the daemon starts and wiped after it
 * stopped.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "admit.h"
#include "edge.h"
#include "http.h"
#include "idempotency.h"
#include "problem.h"
#include "records.h"
#include "reply.h"
#include "routes.h"
#include "waiter.h"

static char *tls_cert, *tls_key; /* PEM text, kept while the daemon runs */

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

static enum MHD_Result dispatch(ll_req *req)
{
    enum MHD_Result ret = MHD_YES;
    if (ll_req_idempotency(req, &ret) < 0)
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
    if (ll_admit(req, ret) < 0)
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
            ll_record_audit(req);
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
        ll_record_escape(path, sizeof(path), req->path);
        ll_record_escape(sub, sizeof(sub), req->authenticated ? req->caller.sub : "");
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

/* Resolves cfg->listen ("host:port", "[v6]:port") into *out (the caller
 * frees it) and host (brackets removed). */
static int resolve_listen(struct addrinfo **out, char *host, size_t host_cap, const ll_config *cfg)
{
    struct addrinfo hints = {0};
    char port[16];
    const char *colon = strrchr(cfg->listen, ':');
    size_t hlen = (size_t)(colon - cfg->listen);
    int rc;

    if (hlen >= host_cap)
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
    if ((rc = getaddrinfo(host, port, &hints, out)) != 0)
        return ll_error_set(LL_EINVALID, "cannot resolve listen address %s: %s", cfg->listen,
                            gai_strerror(rc));
    return 0;
}

/* Bearer tokens must not cross a network in clear text: plain HTTP only on
 * a loopback address, or with allow-insecure-http (warned). */
static int check_plain_http(const ll_config *cfg, const struct sockaddr *addr)
{
    if (loopback(addr))
        return 0;
    if (!cfg->allow_insecure_http) {
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
    return 0;
}

/* What the daemon needs before it starts: the edge, TLS material, the rate
 * limiter.  On failure whatever was made is freed again. */
static int prepare(const ll_config *cfg, int tls)
{
    int rc;
    if ((rc = ll_edge_init(cfg)) < 0)
        return rc;
    if (tls && (rc = ll_tls_load(&tls_cert, &tls_key, cfg->tls_cert_file, cfg->tls_key_file)) < 0)
        goto done;
    if ((rc = ll_admit_start(cfg)) < 0)
        goto done;
    return 0;
done:
    free_tls();
    ll_edge_free();
    return rc;
}

/* Frees what prepare made (after the daemon stopped). */
static void unprepare(void)
{
    ll_admit_stop();
    free_tls();
    ll_edge_free();
}

int ll_http_start(struct MHD_Daemon **out, char *out_url, size_t url_cap, ll_core *core)
{
    const ll_config *cfg = ll_core_config(core);
    struct addrinfo *ai = NULL;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    char host[256];
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
    if ((rc = resolve_listen(&ai, host, sizeof(host), cfg)) < 0)
        return rc;
    if ((!tls && (rc = check_plain_http(cfg, ai->ai_addr)) < 0) || (rc = prepare(cfg, tls)) < 0) {
        freeaddrinfo(ai);
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
        rc = errno;
        unprepare();
        return ll_error_set(-1, "cannot listen on %s: %s", cfg->listen,
                            rc ? strerror(rc) : "libmicrohttpd refused to start");
    }
    if ((rc = ll_waiter_start(core)) < 0) {
        MHD_stop_daemon(d);
        unprepare();
        return rc;
    }
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
    ll_waiter_stop();
    MHD_stop_daemon(d);
    /* What this thread kept (the workers' went with their threads). */
    free(pthread_getspecific(spare_key));
    pthread_setspecific(spare_key, NULL);
    unprepare();
}

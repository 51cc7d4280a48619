/* http.h - the HTTP layer's request context and reply helpers.
 *
 * libmicrohttpd calls the access handler once for the headers, once per body
 * chunk and once more at the end; http.c collects the body into a capped
 * buffer and then dispatches through the route table (routes.c).  Handlers
 * get an ll_req and answer with one of the ll_reply_* helpers exactly once.
 */
#ifndef LANDLORD_SERVER_HTTP_H
#define LANDLORD_SERVER_HTTP_H

#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

#include "landlord/auth.h"
#include "landlord/core.h"
#include "landlord/util.h"

#define LL_MAX_SEGMENTS 16
#define LL_MAX_PARAMS   4

typedef struct ll_route ll_route;

typedef struct ll_req {
    struct MHD_Connection *conn;
    ll_core *core;
    const char *method;                /* borrowed from libmicrohttpd */
    const char *version;               /* "HTTP/1.1", borrowed likewise */
    char *path;                        /* percent-decoded, as libmicrohttpd gives it */
    char *segments;                    /* a copy of path that params point into */
    const char *params[LL_MAX_PARAMS]; /* values of {name} segments, in order */
    int nparams;
    /* Who is asking (authenticated when the route needs a token, else
     * only when it sent a valid one is it not looked at). */
    ll_caller caller;
    int authenticated;
    /* Idempotency-Key of a POST: reserved while this request runs; its
     * answer is stored when it is sent (see ll_reply_response). */
    char idem_key[256];
    int idem_reserved, replayed;
    char *reply_copy; /* the body sent, kept for the idempotency store */
    size_t reply_copy_len;
    char reply_type[96], reply_location[300];
    /* Set by handlers: ETag of the resource answered; tenant an audit
     * record names when no path parameter or operation does. */
    char etag[48];
    char audit_tenant[64];
    char problem[48]; /* the problem type answered, for the audit */
    char www_authenticate[300];
    int retry_after;
    int64_t body_deadline_ms;
    const ll_route *route;
    ll_buf body;
    long body_cap; /* bytes: http-max-body, or release-max-size for charts */
    int body_too_large;
    int replied;
    int close_after; /* answer with Connection: close (a request whose framing is refused) */
    unsigned status;
    size_t reply_bytes;
    int64_t started_ms;
    char request_id[130];
    /* A write waiting for its operation, or a read waiting for a tenant to
     * be ready (wait_tenant set), with the connection suspended. */
    long long wait_op;
    char wait_tenant[128];
    int64_t wait_deadline_ms;
    int waiting;
    enum MHD_Result (*finish)(struct ll_req *req);
    struct ll_req *next_waiter;
} ll_req;

typedef enum MHD_Result (*ll_handler)(ll_req *req);

/* Starts the server on cfg->listen; *out_url is the base URL it serves
 * (with the real port when 0 was asked for).  The daemon runs its own
 * threads; stop it with ll_http_stop(). */
int ll_http_start(struct MHD_Daemon **out, char *out_url, size_t url_cap, ll_core *core);
void ll_http_stop(struct MHD_Daemon *d);

/* Replies: each takes the status and sets X-Request-Id. */
enum MHD_Result ll_reply_json(ll_req *req, unsigned status, json_t *body /* steals */);
/* The same for JSON already serialized: text (malloc'd, steals) of len bytes. */
enum MHD_Result ll_reply_text(ll_req *req, unsigned status, char *text, size_t len);
enum MHD_Result ll_reply_bytes(ll_req *req, unsigned status, const char *content_type,
                               const void *data, size_t len);
/* A JSON answer sent from a kept tenant answer without copying it; steals
 * the reference (released once libmicrohttpd is done with it). */
enum MHD_Result ll_reply_answer(ll_req *req, unsigned status, ll_answer *answer);
/* ll_reply_json plus a Location header. */
enum MHD_Result ll_reply_json_at(ll_req *req, unsigned status, json_t *body, const char *location);

/* A query parameter (borrowed) or NULL. */
const char *ll_req_query(ll_req *req, const char *name);

/* The route's {id} as a positive whole number; otherwise a 404 naming
 * `what` ("no webhook 'x'") is sent and -1 returned. */
int ll_req_param_id(ll_req *req, const char *what, long long *out);

/* The `cursor` query parameter as a positive id (0 when absent); otherwise
 * a 422 is sent and -1 returned. */
int ll_req_query_cursor(ll_req *req, long long *out);

/* Parses the body as a strict JSON document.  On failure the problem reply
 * is sent and -1 returned; the handler then returns MHD_YES. */
int ll_req_json_body(ll_req *req, json_t **out);

/* Reads an integer query parameter within [min, max] (def when absent).
 * On failure a 422 is sent and -1 returned. */
int ll_req_query_int(ll_req *req, const char *name, long min, long max, long def, long *out);

/* Answers a write once operation op is pushed, failed, or wait_s seconds
 * (< 0: write-wait) have passed, by calling finish(req) then.  The
 * connection is suspended meanwhile, so no worker thread waits.  With op 0,
 * wait_s 0 or a degraded remote, finish runs at once. */
enum MHD_Result ll_req_wait(ll_req *req, long long op, int wait_s, ll_handler finish);

/* Answers a read of tenant id (req->params[0]) once ll_tenant_wait_over()
 * says so or timeout_s seconds have passed, by calling finish(req) then;
 * the connection is suspended meanwhile. */
enum MHD_Result ll_req_wait_tenant(ll_req *req, const char *id, int timeout_s, ll_handler finish);

/* Streams events (Server-Sent Events) after event id `after`, only those of
 * tenant when not NULL, until the client goes or the server stops; a
 * keepalive comment every 15 s.  503 beyond 256 open streams. */
enum MHD_Result ll_reply_event_stream(ll_req *req, long long after, const char *tenant);

/* A request header (borrowed) or NULL. */
const char *ll_req_header(ll_req *req, const char *name);

/* The raw MHD_Response path for replies that need extra headers.  Every
 * reply goes through it: it adds X-Request-Id, the ETag a handler set (on
 * 2xx), WWW-Authenticate and Retry-After when set, records the audit entry
 * of a request that tried to change something, and stores the answer of
 * a POST that reserved an Idempotency-Key. */
enum MHD_Result ll_reply_response(ll_req *req, unsigned status, struct MHD_Response *resp);

#endif

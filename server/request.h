/* request.h - the request context every layer of server/ shares, and the
 * helpers handlers read a request with (request.c).
 *
 * libmicrohttpd calls the access handler once for the headers, once per body
 * chunk and once more at the end; http.c collects the body into a capped
 * buffer and then dispatches through the route table (routes.c).  Handlers
 * get an ll_req, read it with the ll_req_* helpers below and answer with one
 * of the ll_reply_* helpers (reply.h) exactly once.
 */
#ifndef LANDLORD_SERVER_REQUEST_H
#define LANDLORD_SERVER_REQUEST_H

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

/* A request header (borrowed from libmicrohttpd) or NULL. */
const char *ll_req_header(ll_req *req, const char *name);

/* A query parameter (borrowed from libmicrohttpd) or NULL. */
const char *ll_req_query(ll_req *req, const char *name);

/* Reads an integer query parameter within [min, max] into *out (def when
 * absent).  On failure a 422 is sent and -1 returned. */
int ll_req_query_int(long *out, ll_req *req, const char *name, long min, long max, long def);

/* The route's {id} as a positive whole number into *out; otherwise a 404
 * naming `what` ("no webhook 'x'") is sent and -1 returned. */
int ll_req_param_id(long long *out, ll_req *req, const char *what);

/* The `cursor` query parameter as a positive id into *out (0 when absent);
 * otherwise a 422 is sent and -1 returned. */
int ll_req_query_cursor(long long *out, ll_req *req);

/* Parses the body as a strict JSON document into *out (new reference, the
 * caller's).  On failure the problem reply is sent, *out is NULL and -1
 * returned; the handler then returns MHD_YES. */
int ll_req_json_body(json_t **out, ll_req *req);

#endif

/* request.c - reading a request: headers, query parameters (whole numbers
 * within bounds, cursors), the route's {id}, and the body as strict JSON
 * (Content-Type required, duplicate keys refused).
 *
 * A helper that finds the input wrong sends the problem answer itself
 * (problem.c) and returns -1, so a handler only returns MHD_YES then.
 * Values are borrowed from libmicrohttpd and live as long as the request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "landlord/error.h"
#include "problem.h"
#include "request.h"

const char *ll_req_header(ll_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *ll_req_query(ll_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int ll_req_query_int(long *out, ll_req *req, const char *name, long min, long max, long def)
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

int ll_req_param_id(long long *out, ll_req *req, const char *what)
{
    if (!(*out = positive_id(req->params[0]))) {
        ll_error_set(LL_ENOTFOUND, "no %s '%.32s'", what, req->params[0]);
        ll_reply_error(req, LL_ENOTFOUND);
        return -1;
    }
    return 0;
}

int ll_req_query_cursor(long long *out, ll_req *req)
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

int ll_req_json_body(json_t **out, ll_req *req)
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

/* events.c - GET /api/v1/events: tenants' state changes as Server-Sent
 * Events, resumable with Last-Event-ID. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/validate.h"
#include "../problem.h"
#include "handlers.h"

/* A non-negative event id, or -1. */
static long long event_id(const char *s)
{
    char *end;
    errno = 0;
    long long v = s && *s ? strtoll(s, &end, 10) : -1;
    if (!s || !*s || errno || *end || v < 0)
        return -1;
    return v;
}

/* Starts after Last-Event-ID (a reconnecting EventSource), else ?after=N,
 * else after the newest event (only what happens from now on). */
enum MHD_Result h_events_stream(ll_req *req)
{
    const char *last = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *after_q = ll_req_query(req, "after");
    const char *tenant = ll_req_query(req, "tenant");
    long long after = -1;

    if (last) {
        if ((after = event_id(last)) < 0) {
            ll_error_set(LL_EINVALID, "Last-Event-ID must be an event id this server gave out");
            return ll_reply_error(req, LL_EINVALID);
        }
    } else if (after_q) {
        if ((after = event_id(after_q)) < 0) {
            ll_error_set(LL_EINVALID, "after must be a non-negative event id");
            ll_error_field("after");
            return ll_reply_error(req, LL_EINVALID);
        }
    } else if (ll_events_last(&after, req->core) < 0) {
        return ll_reply_error(req, -1);
    }
    if (tenant && ll_validate_tenant_id(tenant) < 0) {
        ll_error_field("tenant");
        return ll_reply_error(req, LL_EINVALID);
    }
    return ll_reply_event_stream(req, after, tenant);
}

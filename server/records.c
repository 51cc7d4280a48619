/* records.c - what a request leaves behind: one audit record per request
 * under /api/v1 that tried to change something (refusals included), and
 * the stored answer of a POST that reserved an Idempotency-Key.
 *
 * Both are written before the answer leaves (reply.c calls them from
 * ll_reply_response), so whoever reads the audit log or retries after
 * seeing the answer finds the request recorded.  The records go to the
 * core (lib/core/access.c), which stores them in the registry; a failure
 * is logged and never changes the answer.
 *
 * Threads: called on the request's libmicrohttpd worker thread; nothing
 * here is shared between requests.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/validate.h"
#include "records.h"
#include "routes.h"

/* Keeps the body of an answer that an Idempotency-Key will replay. */
void ll_record_keep_reply(ll_req *req, const char *content_type, const void *data, size_t len,
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

/* Writes path into out with anything unusual escaped, for the log. */
void ll_record_escape(char *out, size_t cap, const char *s)
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
/* The tenant or tier a request names (borrowed): its path parameter, else
 * the tenant a handler set; the operation may say more (lib/core). */
static void audit_names(const char **tenant, const char **tier, const ll_req *req)
{
    *tenant = req->audit_tenant[0] ? req->audit_tenant : NULL;
    *tier = NULL;
    if (!req->route || req->nparams == 0)
        return;
    if (strncmp(req->route->pattern, "/api/v1/tenants/{id}", 20) == 0 &&
        label_ok(req->params[0], LL_TENANT_ID_MAX))
        *tenant = req->params[0];
    else if (strncmp(req->route->pattern, "/api/v1/tiers/{name}", 20) == 0 &&
             label_ok(req->params[0], 63))
        *tier = req->params[0];
}

void ll_record_audit(ll_req *req)
{
    char path[600];
    const char *tenant, *tier;
    const ll_caller *c = req->authenticated ? &req->caller : NULL;

    if (!req->path || !is_write(req->method) || strncmp(req->path, "/api/v1/", 8) != 0)
        return;
    audit_names(&tenant, &tier, req);
    ll_record_escape(path, sizeof(path), req->path);
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
void ll_record_answer(ll_req *req, unsigned status)
{
    int error;
    if (!req->idem_reserved)
        return;
    req->idem_reserved = 0;
    if (status >= 500 || !req->reply_copy) {
        error = ll_idempotency_release(req->core, req->caller.sub, req->idem_key);
    } else {
        ll_idem_answer answer = {
            .status = (int)status,
            .content_type = req->reply_type,
            .location = req->reply_location[0] ? req->reply_location : NULL,
            .etag = req->etag[0] ? req->etag : NULL,
            .body = req->reply_copy,
            .len = req->reply_copy_len,
        };
        error = ll_idempotency_finish(req->core, req->caller.sub, req->idem_key, &answer);
    }
    if (error < 0)
        ll_log_error("msg=\"cannot store the idempotent answer\" error=\"%s\"",
                     ll_error_last()->message);
}

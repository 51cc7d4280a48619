/* tenants.c - /api/v1/tenants: parse, call the core, map the result. */
#include <stdio.h>
#include <string.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

static int wait_param(int *out, ll_req *req)
{
    long wait;
    if (ll_req_query_int(&wait, req, "wait", 0, 300, -1) < 0)
        return -1;
    *out = (int)wait;
    return 0;
}

/* The tenant's version as the ETag of the answer. */
static void set_etag(ll_req *req, const json_t *tenant)
{
    const char *etag = json_string_value(json_object_get(tenant, "etag"));
    snprintf(req->etag, sizeof(req->etag), "%s", etag ? etag : "");
}

/* The tenant a POST names, for the audit log (when it is a valid id). */
static void audit_tenant(ll_req *req, const json_t *body)
{
    const char *id = json_string_value(json_object_get(body, "id"));
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n >= sizeof(req->audit_tenant) ||
        strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return;
    memcpy(req->audit_tenant, id, n + 1);
}

/* 201/200 when pushed, 202 with the operation's Location while pending. */
static enum MHD_Result reply_write(ll_req *req, unsigned done_status)
{
    json_t *tenant = NULL;
    char location[300];
    int pending = 0;
    int error = ll_tenant_outcome(&tenant, &pending, req->core, req->wait_op,
                                  req->nparams ? req->params[0] : NULL);

    if (error < 0)
        return ll_reply_error(req, error);
    set_etag(req, tenant);
    if (pending) {
        snprintf(location, sizeof(location), "/api/v1/operations/%lld", req->wait_op);
        return ll_reply_json_at(req, 202, tenant, location);
    }
    snprintf(location, sizeof(location), "/api/v1/tenants/%s",
             json_string_value(json_object_get(tenant, "id")));
    return ll_reply_json_at(req, done_status, tenant, done_status == 201 ? location : NULL);
}

static enum MHD_Result finish_created(ll_req *req)
{
    return reply_write(req, 201);
}

static enum MHD_Result finish_changed(ll_req *req)
{
    return reply_write(req, 200);
}

enum MHD_Result h_tenants_create(ll_req *req)
{
    json_t *body = NULL, *existing = NULL;
    long long op = 0;
    int wait, error;

    if (wait_param(&wait, req) < 0 || ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    audit_tenant(req, body);
    error = ll_tenant_onboard(&op, &existing, req->core, body);
    json_decref(body);
    if (error == LL_EEXISTS)
        return ll_reply_error_with(req, error, json_pack("{s:o}", "tenant", existing));
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_req_wait(req, op, wait, finish_created);
}

enum MHD_Result h_tenants_update(ll_req *req)
{
    json_t *body = NULL;
    long long op = 0;
    int wait, error;

    if (wait_param(&wait, req) < 0 || ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    error = ll_tenant_update(&op, req->core, req->params[0], body, ll_req_header(req, "If-Match"));
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_req_wait(req, op, wait, finish_changed);
}

enum MHD_Result h_tenants_delete(ll_req *req)
{
    long long op = 0;
    int wait, error;

    if (wait_param(&wait, req) < 0)
        return MHD_YES;
    if ((error = ll_tenant_offboard(&op, req->core, req->params[0],
                                    ll_req_header(req, "If-Match"))) < 0)
        return ll_reply_error(req, error);
    return ll_req_wait(req, op, wait, finish_changed);
}

static enum MHD_Result reply_tenant(ll_req *req)
{
    ll_answer *answer = NULL;
    int error = ll_tenant_answer(&answer, req->core, req->params[0]);
    if (error < 0)
        return ll_reply_error(req, error);
    snprintf(req->etag, sizeof(req->etag), "%s", ll_answer_etag(answer));
    return ll_reply_answer(req, 200, answer);
}

/* ?wait=ready[&timeout=N] holds the answer until the tenant is ready or
 * failed, or N seconds (default 60) have passed; the answer is the tenant
 * as it is then. */
enum MHD_Result h_tenants_get(ll_req *req)
{
    const char *wait = ll_req_query(req, "wait");
    json_t *tenant = NULL;
    long timeout;
    int error;

    if (!wait)
        return reply_tenant(req);
    if (strcmp(wait, "ready") != 0) {
        ll_error_set(LL_EINVALID, "wait must be 'ready'");
        ll_error_field("wait");
        return ll_reply_error(req, LL_EINVALID);
    }
    if (ll_req_query_int(&timeout, req, "timeout", 1, 300, 60) < 0)
        return MHD_YES;
    if ((error = ll_tenant_get(&tenant, req->core, req->params[0])) < 0)
        return ll_reply_error(req, error);
    json_decref(tenant);
    return ll_req_wait_tenant(req, req->params[0], (int)timeout, reply_tenant);
}

enum MHD_Result h_tenants_list(ll_req *req)
{
    json_t *list = NULL;
    long limit;
    int error;

    if (ll_req_query_int(&limit, req, "limit", 1, 500, 50) < 0)
        return MHD_YES;
    error = ll_tenant_list(&list, req->core, ll_req_query(req, "tier"), ll_req_query(req, "state"),
                           ll_req_query(req, "cursor"), (int)limit);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

enum MHD_Result h_tenants_history(ll_req *req)
{
    json_t *list = NULL;
    long limit;
    int error;

    if (ll_req_query_int(&limit, req, "limit", 1, 500, 50) < 0)
        return MHD_YES;
    error = ll_tenant_history(&list, req->core, req->params[0], ll_req_query(req, "cursor"),
                              (int)limit);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

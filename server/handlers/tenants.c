/* tenants.c - /api/v1/tenants: parse, call the core, map the result. */
#include <stdio.h>
#include <string.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

static int wait_param(ll_req *req, int *out)
{
    long wait;
    if (ll_req_query_int(req, "wait", 0, 300, -1, &wait) < 0)
        return -1;
    *out = (int)wait;
    return 0;
}

/* 201/200 when pushed, 202 with the operation's Location while pending. */
static enum MHD_Result reply_write(ll_req *req, json_t *tenant, int pending, unsigned done_status)
{
    char location[300];
    if (pending) {
        snprintf(location, sizeof(location), "/api/v1/operations/%lld",
                 (long long)json_integer_value(json_object_get(tenant, "operation")));
        return ll_reply_json_at(req, 202, tenant, location);
    }
    snprintf(location, sizeof(location), "/api/v1/tenants/%s",
             json_string_value(json_object_get(tenant, "id")));
    return ll_reply_json_at(req, done_status, tenant, done_status == 201 ? location : NULL);
}

enum MHD_Result h_tenants_create(ll_req *req)
{
    json_t *body = NULL, *tenant = NULL;
    int wait, pending = 0, error;

    if (wait_param(req, &wait) < 0 || ll_req_json_body(req, &body) < 0)
        return MHD_YES;
    error = ll_tenant_onboard(&tenant, &pending, req->core, body, wait);
    json_decref(body);
    if (error == LL_EEXISTS)
        return ll_reply_error_with(req, error, json_pack("{s:o}", "tenant", tenant));
    if (error < 0)
        return ll_reply_error(req, error);
    return reply_write(req, tenant, pending, 201);
}

enum MHD_Result h_tenants_update(ll_req *req)
{
    json_t *body = NULL, *tenant = NULL;
    int wait, pending = 0, error;

    if (wait_param(req, &wait) < 0 || ll_req_json_body(req, &body) < 0)
        return MHD_YES;
    error = ll_tenant_update(&tenant, &pending, req->core, req->params[0], body, wait);
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    return reply_write(req, tenant, pending, 200);
}

enum MHD_Result h_tenants_delete(ll_req *req)
{
    json_t *tenant = NULL;
    int wait, pending = 0, error;

    if (wait_param(req, &wait) < 0)
        return MHD_YES;
    if ((error = ll_tenant_offboard(&tenant, &pending, req->core, req->params[0], wait)) < 0)
        return ll_reply_error(req, error);
    return reply_write(req, tenant, pending, 200);
}

enum MHD_Result h_tenants_get(ll_req *req)
{
    json_t *tenant = NULL;
    int error = ll_tenant_get(&tenant, req->core, req->params[0]);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, tenant);
}

enum MHD_Result h_tenants_list(ll_req *req)
{
    json_t *list = NULL;
    long limit;
    int error;

    if (ll_req_query_int(req, "limit", 1, 500, 50, &limit) < 0)
        return MHD_YES;
    error = ll_tenant_list(&list, req->core, ll_req_query(req, "tier"), ll_req_query(req, "state"),
                           ll_req_query(req, "cursor"), (int)limit);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

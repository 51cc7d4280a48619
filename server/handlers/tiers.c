/* tiers.c - /api/v1/tiers: the tier catalogue read from the repository,
 * and tier changes (PUT, DELETE), each one commit through the outbox. */
#include <stdio.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

static void set_etag(ll_req *req, const json_t *tier)
{
    const char *etag = json_string_value(json_object_get(tier, "etag"));
    snprintf(req->etag, sizeof(req->etag), "%s", etag ? etag : "");
}

enum MHD_Result h_tiers_list(ll_req *req)
{
    json_t *list = NULL;
    int error = ll_tier_list(&list, req->core);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

enum MHD_Result h_tiers_get(ll_req *req)
{
    json_t *tier = NULL;
    int error = ll_tier_get(&tier, req->core, req->params[0]);
    if (error < 0)
        return ll_reply_error(req, error);
    set_etag(req, tier);
    return ll_reply_json(req, 200, tier);
}

/* 201/200 (PUT) or 204 (DELETE) once pushed; 202 with the operation while
 * it is pending. */
static enum MHD_Result reply_change(ll_req *req, unsigned done_status)
{
    json_t *out = NULL;
    char location[300];
    int pending = 0;
    int error = ll_tier_outcome(&out, &pending, req->core, req->wait_op, req->params[0]);

    if (error < 0)
        return ll_reply_error(req, error);
    if (pending) {
        snprintf(location, sizeof(location), "/api/v1/operations/%lld", req->wait_op);
        return ll_reply_json_at(req, 202, out, location);
    }
    if (!out || done_status == 204) {
        json_decref(out);
        return ll_reply_response(req, 204,
                                 MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT));
    }
    set_etag(req, out);
    snprintf(location, sizeof(location), "/api/v1/tiers/%s", req->params[0]);
    return ll_reply_json_at(req, done_status, out, done_status == 201 ? location : NULL);
}

static enum MHD_Result finish_created(ll_req *req)
{
    return reply_change(req, 201);
}

static enum MHD_Result finish_replaced(ll_req *req)
{
    return reply_change(req, 200);
}

static enum MHD_Result finish_deleted(ll_req *req)
{
    return reply_change(req, 204);
}

static int wait_param(int *out, ll_req *req)
{
    long wait;
    if (ll_req_query_int(&wait, req, "wait", 0, 300, -1) < 0)
        return -1;
    *out = (int)wait;
    return 0;
}

enum MHD_Result h_tiers_put(ll_req *req)
{
    json_t *body = NULL;
    long long op = 0;
    int wait, created = 0, error;

    if (wait_param(&wait, req) < 0 || ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    error = ll_tier_put(&op, &created, req->core, req->params[0], body,
                        ll_req_header(req, "If-Match"), ll_req_header(req, "If-None-Match"));
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_req_wait(req, op, wait, created ? finish_created : finish_replaced);
}

enum MHD_Result h_tiers_delete(ll_req *req)
{
    long long op = 0;
    int wait, error;

    if (wait_param(&wait, req) < 0)
        return MHD_YES;
    if ((error = ll_tier_delete(&op, req->core, req->params[0], ll_req_header(req, "If-Match"))) <
        0)
        return ll_reply_error(req, error);
    return ll_req_wait(req, op, wait, finish_deleted);
}

/* rollouts.c - /api/v1/rollouts: create, list, read, and the control
 * actions (pause, resume, abort, rollback). */
#include <stdio.h>
#include <string.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_rollouts_create(ll_req *req)
{
    json_t *body = NULL, *ro = NULL;
    char location[64];
    int error;

    if (ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    error = ll_rollout_create(&ro, req->core, body);
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    snprintf(location, sizeof(location), "/api/v1/rollouts/%lld",
             (long long)json_integer_value(json_object_get(ro, "id")));
    return ll_reply_json_at(req, 201, ro, location);
}

enum MHD_Result h_rollouts_list(ll_req *req)
{
    json_t *list = NULL;
    long long before = 0;
    long limit;
    int error;

    if (ll_req_query_int(&limit, req, "limit", 1, 500, 50) < 0 ||
        ll_req_query_cursor(&before, req) < 0)
        return MHD_YES;
    if ((error = ll_rollout_list(&list, req->core, before, (int)limit)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

enum MHD_Result h_rollouts_get(ll_req *req)
{
    json_t *ro = NULL;
    long long id;
    int error;
    if (ll_req_param_id(&id, req, "rollout") < 0)
        return MHD_YES;
    if ((error = ll_rollout_get(&ro, req->core, id)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, ro);
}

/* POST /api/v1/rollouts/{id}/<action>: an empty body, or {"reason"}. */
static enum MHD_Result control(ll_req *req, const char *action)
{
    json_t *body = NULL, *ro = NULL;
    long long id;
    int error;

    if (ll_req_param_id(&id, req, "rollout") < 0)
        return MHD_YES;
    if (req->body.len > 0 && ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    error = ll_rollout_control(&ro, req->core, id, action, body);
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, ro);
}

enum MHD_Result h_rollouts_pause(ll_req *req)
{
    return control(req, "pause");
}

enum MHD_Result h_rollouts_resume(ll_req *req)
{
    return control(req, "resume");
}

enum MHD_Result h_rollouts_abort(ll_req *req)
{
    return control(req, "abort");
}

enum MHD_Result h_rollouts_rollback(ll_req *req)
{
    return control(req, "rollback");
}

/* webhooks.c - /api/v1/webhooks: subscriptions and their delivery logs. */
#include <stdio.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_webhooks_create(ll_req *req)
{
    json_t *body = NULL, *hook = NULL;
    char location[64];
    int error;

    if (ll_req_json_body(&body, req) < 0)
        return MHD_YES;
    error = ll_webhook_create(&hook, req->core, body);
    json_decref(body);
    if (error < 0)
        return ll_reply_error(req, error);
    snprintf(location, sizeof(location), "/api/v1/webhooks/%lld",
             (long long)json_integer_value(json_object_get(hook, "id")));
    return ll_reply_json_at(req, 201, hook, location);
}

enum MHD_Result h_webhooks_list(ll_req *req)
{
    json_t *list = NULL;
    int error = ll_webhook_list(&list, req->core);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

enum MHD_Result h_webhooks_get(ll_req *req)
{
    json_t *hook = NULL;
    long long id;
    int error;
    if (ll_req_param_id(&id, req, "webhook") < 0)
        return MHD_YES;
    if ((error = ll_webhook_get(&hook, req->core, id)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, hook);
}

enum MHD_Result h_webhooks_delete(ll_req *req)
{
    long long id;
    int error;
    if (ll_req_param_id(&id, req, "webhook") < 0)
        return MHD_YES;
    if ((error = ll_webhook_delete(req->core, id)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_bytes(req, 204, "application/json", "", 0);
}

enum MHD_Result h_webhooks_deliveries(ll_req *req)
{
    json_t *list = NULL;
    long long id, before = 0;
    long limit;
    int error;

    if (ll_req_param_id(&id, req, "webhook") < 0 ||
        ll_req_query_int(&limit, req, "limit", 1, 500, 50) < 0 ||
        ll_req_query_cursor(&before, req) < 0)
        return MHD_YES;
    if ((error = ll_webhook_deliveries(&list, req->core, id, before, (int)limit)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

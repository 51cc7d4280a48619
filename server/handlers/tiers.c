/* tiers.c - /api/v1/tiers: the tier catalogue read from the repository. */
#include "../problem.h"
#include "handlers.h"

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
    return ll_reply_json(req, 200, tier);
}

/* operations.c - /api/v1/operations/{id}: where a queued change stands. */
#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_operations_get(ll_req *req)
{
    json_t *op = NULL;
    long long id;
    int error;

    if (ll_req_param_id(&id, req, "operation") < 0)
        return MHD_YES;
    if ((error = ll_operation_get(&op, req->core, id)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, op);
}

/* operations.c - /api/v1/operations/{id}: where a queued change stands. */
#include <errno.h>
#include <stdlib.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_operations_get(ll_req *req)
{
    json_t *op = NULL;
    char *end;
    long long id;
    int error;

    errno = 0;
    id = strtoll(req->params[0], &end, 10);
    if (errno || *end || id <= 0) {
        ll_error_set(LL_ENOTFOUND, "no operation '%.32s'", req->params[0]);
        return ll_reply_error(req, LL_ENOTFOUND);
    }
    if ((error = ll_operation_get(&op, req->core, id)) < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, op);
}

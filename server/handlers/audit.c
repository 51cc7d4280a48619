/* audit.c - GET /api/v1/audit: who changed what, when, and with what
 * outcome (admin only). */
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_audit_list(ll_req *req)
{
    json_t *list = NULL;
    long limit;
    int error;

    if (ll_req_query_int(&limit, req, "limit", 1, 500, 50) < 0)
        return MHD_YES;
    error = ll_audit_list(&list, req->core, ll_req_query(req, "tenant"), ll_req_query(req, "actor"),
                          ll_req_query(req, "since"), ll_req_query(req, "until"),
                          ll_req_query(req, "cursor"), (int)limit);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

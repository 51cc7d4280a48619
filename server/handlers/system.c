/* system.c - the public routes: admin page, health, readiness, contract. */
#include <stdlib.h>
#include <string.h>

#include "landlord/embedded.h"
#include "../problem.h"
#include "handlers.h"

enum MHD_Result h_root_get(ll_req *req)
{
    const ll_embedded_file *f = ll_embedded_find("web/index.html");
    if (!f)
        return ll_reply_problem(req, 404, "not-found", "no admin page in this build", NULL);
    return ll_reply_bytes(req, 200, "text/html; charset=utf-8", f->data, f->size);
}

enum MHD_Result h_healthz_get(ll_req *req)
{
    return ll_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result h_readyz_get(ll_req *req)
{
    int ok = 0;
    json_t *body = ll_core_ready(&ok, req->core);
    return ll_reply_json(req, ok ? 200 : 503, body);
}

enum MHD_Result h_openapi_get(ll_req *req)
{
    const ll_embedded_file *f = ll_embedded_find("openapi/openapi.yaml");
    if (!f)
        return ll_reply_problem(req, 404, "not-found", "no contract in this build", NULL);
    return ll_reply_bytes(req, 200, "application/yaml", f->data, f->size);
}

enum MHD_Result h_metrics_get(ll_req *req)
{
    char *text = NULL;
    size_t len = 0;
    int error = ll_core_metrics(&text, &len, req->core);
    if (error < 0)
        return ll_reply_error(req, error);
    enum MHD_Result ret =
        ll_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return ret;
}

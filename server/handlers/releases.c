/* releases.c - /api/v1/releases: upload a packaged chart, the catalogue. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "landlord/error.h"
#include "../problem.h"
#include "handlers.h"

/* What `helm package` output travels as. */
static int chart_content_type(const char *ct)
{
    static const char *const ok[] = {"application/gzip", "application/x-gzip",
                                     "application/octet-stream", "application/x-tar+gzip", NULL};
    size_t n = ct ? strcspn(ct, "; ") : 0;
    for (const char *const *t = ok; ct && *t; t++)
        if (n == strlen(*t) && strncasecmp(ct, *t, n) == 0)
            return 1;
    return 0;
}

enum MHD_Result h_releases_create(ll_req *req)
{
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    json_t *rel = NULL;
    char location[200];
    int created = 0, error;

    if (!chart_content_type(ct))
        return ll_reply_problem(req, 415, "unsupported-media-type",
                                "send the chart archive (.tgz) with Content-Type: "
                                "application/gzip or application/octet-stream",
                                NULL);
    if (req->body.len == 0) {
        ll_error_set(LL_EINVALID, "the body must be a chart archive (.tgz)");
        ll_error_kind("invalid-chart");
        return ll_reply_error(req, LL_EINVALID);
    }
    if ((error = ll_release_upload(&rel, &created, req->core, req->body.data, req->body.len)) < 0)
        return ll_reply_error(req, error);
    snprintf(location, sizeof(location), "/api/v1/releases/%s",
             json_string_value(json_object_get(rel, "version")));
    return ll_reply_json_at(req, created ? 201 : 200, rel, location);
}

enum MHD_Result h_releases_list(ll_req *req)
{
    json_t *list = NULL;
    int error = ll_release_list(&list, req->core);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, list);
}

enum MHD_Result h_releases_get(ll_req *req)
{
    json_t *rel = NULL;
    int error = ll_release_get(&rel, req->core, req->params[0]);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_json(req, 200, rel);
}

enum MHD_Result h_releases_delete(ll_req *req)
{
    int error = ll_release_delete(req->core, req->params[0]);
    if (error < 0)
        return ll_reply_error(req, error);
    return ll_reply_bytes(req, 204, "application/json", "", 0);
}

/* problem.c - error codes become HTTP statuses here, and only here.
 *
 * Every error answer is application/problem+json (RFC 9457) with a stable
 * type per error class: urn:landlord:problem:<class>.  docs/api.md lists the
 * classes.
 */
#include <string.h>

#include "landlord/error.h"
#include "problem.h"

typedef struct problem_class {
    const char *type;
    unsigned status;
    const char *title;
} problem_class;

static const problem_class classes[] = {
    {"malformed-request", 400, "Malformed request"},
    {"unauthorized", 401, "Unauthorized"},
    {"forbidden", 403, "Forbidden"},
    {"not-found", 404, "Not found"},
    {"method-not-allowed", 405, "Method not allowed"},
    {"conflict", 409, "Conflict"},
    {"payload-too-large", 413, "Payload too large"},
    {"unsupported-media-type", 415, "Unsupported media type"},
    {"invalid-request", 422, "Invalid request"},
    {"render-failed", 422, "Template did not render"},
    {"internal", 500, "Internal error"},
    {"upstream-failure", 502, "Upstream failure"},
    {"unavailable", 503, "Service unavailable"},
    {"timeout", 504, "Timed out"},
};

static const char *title_of(const char *type)
{
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (strcmp(classes[i].type, type) == 0)
            return classes[i].title;
    }
    return "Error";
}

enum MHD_Result ll_reply_problem(ll_req *req, unsigned status, const char *type, const char *detail,
                                 json_t *extra)
{
    json_t *body = json_object();
    char uri[128];

    snprintf(uri, sizeof(uri), "urn:landlord:problem:%s", type);
    json_object_set_new(body, "type", json_string(uri));
    json_object_set_new(body, "title", json_string(title_of(type)));
    json_object_set_new(body, "status", json_integer(status));
    if (detail && *detail)
        json_object_set_new(body, "detail", json_string(detail));
    json_object_set_new(body, "instance", json_string(req->path ? req->path : "/"));
    json_object_set_new(body, "request_id", json_string(req->request_id));
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    return ll_reply_json(req, status, body);
}

enum MHD_Result ll_reply_error_with(ll_req *req, int err, json_t *extra)
{
    const ll_error *e = ll_error_last();
    const char *type;
    unsigned status;

    switch (err) {
    case LL_EMALFORMED:
        type = "malformed-request", status = 400;
        break;
    case LL_EINVALID:
        type = strcmp(e->kind, "render-failed") == 0 ? "render-failed" : "invalid-request";
        status = 422;
        break;
    case LL_ENOTFOUND:
        type = "not-found", status = 404;
        break;
    case LL_EEXISTS:
    case LL_ECONFLICT:
        type = "conflict", status = 409;
        break;
    case LL_EAUTH:
        type = "unauthorized", status = 401;
        break;
    case LL_EFORBIDDEN:
        type = "forbidden", status = 403;
        break;
    case LL_EUPSTREAM:
        type = "upstream-failure", status = 502;
        break;
    case LL_ETIMEOUT:
        type = "timeout", status = 504;
        break;
    default:
        type = "internal", status = 500;
        break;
    }
    if (!extra)
        extra = json_object();
    if (e->field[0])
        json_object_set_new(extra, "field", json_string(e->field));
    if (e->hint[0])
        json_object_set_new(extra, "hint", json_string(e->hint));
    return ll_reply_problem(req, status, type, e->message[0] ? e->message : title_of(type), extra);
}

enum MHD_Result ll_reply_error(ll_req *req, int err)
{
    return ll_reply_error_with(req, err, NULL);
}

/* problem.c - error codes become HTTP statuses here, and only here.
 *
 * Every error answer is application/problem+json (RFC 9457) with a stable
 * type per error class: urn:landlord:problem:<class>.  docs/api.md lists the
 * classes.  A class that a client should simply retry later (a full data
 * volume) also sets Retry-After.
 */
#include <string.h>

#include "landlord/error.h"
#include "problem.h"
#include "reply.h"

typedef struct problem_class {
    const char *type;
    unsigned status;
    const char *title;
    int retry_after; /* seconds for Retry-After, 0 for none */
} problem_class;

/* A full volume is freed by an operator, not in a moment: a client that
 * comes back after this long is neither hammering nor kept waiting long. */
#define STORAGE_FULL_RETRY_S 10

static const problem_class *class_of(const char *type);

static const problem_class classes[] = {
    {"malformed-request", 400, "Malformed request", 0},
    {"unauthorized", 401, "Unauthorized", 0},
    {"forbidden", 403, "Forbidden", 0},
    {"not-found", 404, "Not found", 0},
    {"method-not-allowed", 405, "Method not allowed", 0},
    {"conflict", 409, "Conflict", 0},
    {"precondition-failed", 412, "Precondition failed", 0},
    {"payload-too-large", 413, "Payload too large", 0},
    {"unsupported-media-type", 415, "Unsupported media type", 0},
    {"invalid-request", 422, "Invalid request", 0},
    {"render-failed", 422, "Template did not render", 0},
    {"tier-policy", 422, "Template breaks the tier policy", 0},
    {"invalid-chart", 422, "Invalid chart", 0},
    {"idempotency-key-reused", 422, "Idempotency-Key reused", 0},
    {"webhook-address-not-allowed", 422, "Webhook address not allowed", 0},
    {"too-many-requests", 429, "Too many requests", 0},
    {"header-too-large", 431, "Request header fields too large", 0},
    {"internal", 500, "Internal error", 0},
    {"upstream-failure", 502, "Upstream failure", 0},
    {"unavailable", 503, "Service unavailable", 0},
    {"storage-full", 503, "Storage full", STORAGE_FULL_RETRY_S},
    {"timeout", 504, "Timed out", 0},
};

enum MHD_Result ll_reply_problem(ll_req *req, unsigned status, const char *type, const char *detail,
                                 json_t *extra)
{
    json_t *body = json_object();
    char uri[128];

    snprintf(uri, sizeof(uri), "urn:landlord:problem:%s", type);
    snprintf(req->problem, sizeof(req->problem), "%s", type);
    if (class_of(type)->retry_after > 0 && req->retry_after <= 0)
        req->retry_after = class_of(type)->retry_after;
    json_object_set_new(body, "type", json_string(uri));
    json_object_set_new(body, "title", json_string(class_of(type)->title));
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

/* Which class each code answers with; anything else is "internal". */
static const struct {
    int code;
    const char *type;
} by_code[] = {
    {LL_EMALFORMED, "malformed-request"},
    {LL_EINVALID, "invalid-request"},
    {LL_ENOTFOUND, "not-found"},
    {LL_EEXISTS, "conflict"},
    {LL_ECONFLICT, "conflict"},
    {LL_EAUTH, "unauthorized"},
    {LL_EFORBIDDEN, "forbidden"},
    {LL_EUPSTREAM, "upstream-failure"},
    {LL_ETIMEOUT, "timeout"},
    {LL_EPRECONDITION, "precondition-failed"},
    {LL_ENOSPACE, "storage-full"},
};

static const problem_class *class_of(const char *type)
{
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (strcmp(classes[i].type, type) == 0)
            return &classes[i];
    }
    return class_of("internal");
}

enum MHD_Result ll_reply_error_with(ll_req *req, int err, json_t *extra)
{
    const ll_error *e = ll_error_last();
    const char *type = "internal";
    const problem_class *pc;

    for (size_t i = 0; i < sizeof(by_code) / sizeof(by_code[0]); i++) {
        if (by_code[i].code == err)
            type = by_code[i].type;
    }
    /* A finer class named by the core wins when it has the same status. */
    if (e->kind[0] && class_of(e->kind)->status == class_of(type)->status)
        type = e->kind;
    pc = class_of(type);
    if (!extra)
        extra = json_object();
    if (e->field[0])
        json_object_set_new(extra, "field", json_string(e->field));
    if (e->hint[0])
        json_object_set_new(extra, "hint", json_string(e->hint));
    return ll_reply_problem(req, pc->status, pc->type, e->message[0] ? e->message : pc->title,
                            extra);
}

enum MHD_Result ll_reply_error(ll_req *req, int err)
{
    return ll_reply_error_with(req, err, NULL);
}

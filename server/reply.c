/* reply.c - the answers: JSON (built, or already serialized), bytes, a kept
 * tenant answer sent without a copy, and the raw MHD_Response path they
 * all end in.
 *
 * ll_reply_response adds the headers every answer carries (X-Request-Id,
 * Cache-Control, the ETag a handler set, WWW-Authenticate, Retry-After,
 * Idempotent-Replayed, Connection: close), then leaves the request's
 * records (records.c) and queues the answer.  The helpers above it keep a
 * copy of the body for a POST that reserved an Idempotency-Key.
 *
 * Error answers are built by problem.c, which calls down into this file;
 * nothing here knows about routes, handlers or error codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"
#include "reply.h"

enum MHD_Result ll_reply_response(ll_req *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;
    char retry[16];
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->etag[0] && status < 300)
        MHD_add_response_header(resp, "ETag", req->etag);
    if (req->www_authenticate[0])
        MHD_add_response_header(resp, "WWW-Authenticate", req->www_authenticate);
    if (req->retry_after > 0) {
        snprintf(retry, sizeof(retry), "%d", req->retry_after);
        MHD_add_response_header(resp, "Retry-After", retry);
    }
    if (req->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    if (req->close_after)
        MHD_add_response_header(resp, "Connection", "close");
    req->status = status;
    /* Before the answer leaves: whoever reads the audit log or retries
     * after seeing it finds the request recorded. */
    ll_record_answer(req, status);
    ll_record_audit(req);
    ret = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->replied = 1;
    return ret;
}

enum MHD_Result ll_reply_bytes(ll_req *req, unsigned status, const char *content_type,
                               const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    req->reply_bytes = len;
    ll_record_keep_reply(req, content_type, data, len, NULL);
    return ll_reply_response(req, status, resp);
}

static void release_answer(void *cls)
{
    ll_answer_release(cls);
}

enum MHD_Result ll_reply_answer(ll_req *req, unsigned status, ll_answer *answer)
{
    size_t len = 0;
    const char *text = ll_answer_text(&len, answer);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)text, release_answer, answer);
    if (!resp) {
        ll_answer_release(answer);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    req->reply_bytes = len;
    ll_record_keep_reply(req, "application/json", text, len, NULL);
    return ll_reply_response(req, status, resp);
}

static enum MHD_Result reply_text_impl(ll_req *req, unsigned status, char *text, size_t len,
                                       const char *location)
{
    struct MHD_Response *resp;

    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    const char *ct = status >= 400 ? "application/problem+json" : "application/json";
    MHD_add_response_header(resp, "Content-Type", ct);
    if (location)
        MHD_add_response_header(resp, "Location", location);
    req->reply_bytes = len;
    ll_record_keep_reply(req, ct, text, len, location);
    return ll_reply_response(req, status, resp);
}

static enum MHD_Result reply_json_impl(ll_req *req, unsigned status, json_t *body,
                                       const char *location)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return reply_text_impl(req, status, text, text ? strlen(text) : 0, location);
}

enum MHD_Result ll_reply_text(ll_req *req, unsigned status, char *text, size_t len)
{
    return reply_text_impl(req, status, text, len, NULL);
}

enum MHD_Result ll_reply_json(ll_req *req, unsigned status, json_t *body)
{
    return reply_json_impl(req, status, body, NULL);
}

enum MHD_Result ll_reply_json_at(ll_req *req, unsigned status, json_t *body, const char *location)
{
    return reply_json_impl(req, status, body, location);
}

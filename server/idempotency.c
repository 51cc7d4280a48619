/* idempotency.c - the Idempotency-Key of a POST by an authenticated
 * caller.
 *
 * The key (1-255 visible ASCII characters) and the request's fingerprint
 * (method, path and body) go to the core (lib/core/access.c), which looks
 * them up and reserves a new key in one transaction.  A reserved key's
 * answer is stored as it leaves (records.c); a request that ends without
 * one frees the key (http.c).  A finished key is replayed here: the stored
 * status, body, Content-Type, Location and ETag, marked
 * Idempotent-Replayed.
 *
 * Threads: runs on the request's worker; the registry serialises callers
 * of one key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "idempotency.h"
#include "problem.h"
#include "reply.h"

#define IDEM_KEY_MAX 255

/* Answers with the stored answer of a finished key, marked
 * Idempotent-Replayed. */
static enum MHD_Result replay(ll_req *req, const ll_idem_answer *a)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, a->body, MHD_RESPMEM_MUST_COPY);
    req->replayed = 1;
    if (a->etag)
        snprintf(req->etag, sizeof(req->etag), "%s", a->etag);
    if (resp) {
        MHD_add_response_header(resp, "Content-Type",
                                a->content_type ? a->content_type : "application/json");
        if (a->location)
            MHD_add_response_header(resp, "Location", a->location);
        req->reply_bytes = a->len;
    }
    return ll_reply_response(req, a->status >= 200 && a->status <= 599 ? (unsigned)a->status : 500,
                             resp);
}

/* Idempotency-Key on a POST: a new key is reserved and the request runs;
 * a key whose request is still running is 409; another body under a used
 * key is 422; a finished one is replayed.  0: run the handler. */
int ll_req_idempotency(ll_req *req, enum MHD_Result *ret)
{
    const char *key = ll_req_header(req, "Idempotency-Key");
    ll_idem_answer stored = {0};
    ll_idem_state state = LL_IDEM_NEW;
    int error;
    size_t n = key ? strlen(key) : 0;

    if (!key || strcmp(req->method, "POST") != 0 || !req->authenticated)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            n = 0;
    if (n == 0 || n > IDEM_KEY_MAX) {
        *ret = ll_reply_problem(req, 422, "invalid-request",
                                "Idempotency-Key must be 1-255 visible ASCII characters",
                                json_pack("{s:s}", "field", "Idempotency-Key"));
        return -1;
    }
    ll_idem_request idem = {req->caller.sub, key,          req->method, req->path,
                            req->body.data,  req->body.len};
    if ((error = ll_idempotency_begin(&state, &stored, req->core, &idem)) < 0) {
        *ret = ll_reply_error(req, error); /* a full volume: 503, the key is not reserved */
        return -1;
    }
    switch (state) {
    case LL_IDEM_NEW:
        snprintf(req->idem_key, sizeof(req->idem_key), "%s", key);
        req->idem_reserved = 1;
        return 0;
    case LL_IDEM_IN_FLIGHT:
        req->retry_after = 1;
        *ret = ll_reply_problem(req, 409, "conflict",
                                "a request with this Idempotency-Key is still being processed",
                                json_pack("{s:s}", "hint", "retry after it answered"));
        return -1;
    case LL_IDEM_MISMATCH:
        *ret = ll_reply_problem(req, 422, "idempotency-key-reused",
                                "this Idempotency-Key was used with another request (method, path "
                                "or body)",
                                json_pack("{s:s}", "hint", "use a new key for a new request"));
        return -1;
    case LL_IDEM_DONE:
        break;
    }
    *ret = replay(req, &stored);
    ll_idem_answer_clear(&stored);
    return -1;
}

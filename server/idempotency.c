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

#include <openssl/evp.h>

#include "landlord/error.h"
#include "idempotency.h"
#include "problem.h"
#include "reply.h"

#define IDEM_KEY_MAX 255

/* The fingerprint of a POST for its Idempotency-Key: SHA-256 over method,
 * path and body.  A JSON body counts by its value, written with sorted keys
 * and no spaces: a retry that sends the same object with its keys in
 * another order is the same request. */
static void fingerprint(char out[65], ll_req *req)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    json_t *value = req->body.len ? json_loadb(req->body.data, req->body.len,
                                               JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL)
                                  : NULL;
    char *canonical =
        value ? json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(ctx, req->method, strlen(req->method) + 1);
        EVP_DigestUpdate(ctx, req->path, strlen(req->path) + 1);
        if (canonical)
            EVP_DigestUpdate(ctx, canonical, strlen(canonical));
        else if (req->body.len)
            EVP_DigestUpdate(ctx, req->body.data, req->body.len);
        EVP_DigestFinal_ex(ctx, md, &n);
    }
    free(canonical);
    json_decref(value);
    EVP_MD_CTX_free(ctx);
    if (n < 32)
        memset(md, 0, 32);
    ll_hex_encode(out, md, 32);
}

/* Idempotency-Key on a POST: a new key is reserved and the request runs;
 * a key whose request is still running is 409; another body under a used
 * key is 422; a finished one is replayed.  0: run the handler. */
int ll_req_idempotency(ll_req *req, enum MHD_Result *ret)
{
    const char *key = ll_req_header(req, "Idempotency-Key");
    json_t *stored = NULL;
    char fp[65];
    int state = 0, error;
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
    fingerprint(fp, req);
    if ((error = ll_idempotency_begin(&state, &stored, req->core, req->caller.sub, key, fp)) < 0) {
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
    default: {
        const char *body = json_string_value(json_object_get(stored, "body"));
        size_t len = json_string_length(json_object_get(stored, "body"));
        const char *loc = json_string_value(json_object_get(stored, "location"));
        const char *etag = json_string_value(json_object_get(stored, "etag"));
        const char *ct = json_string_value(json_object_get(stored, "content_type"));
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
        req->replayed = 1;
        if (etag)
            snprintf(req->etag, sizeof(req->etag), "%s", etag);
        if (resp) {
            MHD_add_response_header(resp, "Content-Type", ct ? ct : "application/json");
            if (loc)
                MHD_add_response_header(resp, "Location", loc);
            req->reply_bytes = len;
        }
        json_int_t status = json_integer_value(json_object_get(stored, "status"));
        *ret =
            ll_reply_response(req, status >= 200 && status <= 599 ? (unsigned)status : 500, resp);
        json_decref(stored);
        return -1;
    }
    }
}

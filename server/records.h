/* records.h - what a request leaves behind (records.c): its audit entry
 * and, for a POST that reserved an Idempotency-Key, its stored answer.
 * Called by reply.c as each answer leaves, and by http.c for a request
 * that ends without one. */
#ifndef LANDLORD_SERVER_RECORDS_H
#define LANDLORD_SERVER_RECORDS_H

#include <stddef.h>

#include "request.h"

/* Keeps a copy of the answer's body (data borrowed; len bytes), its
 * content_type and location (borrowed, may be NULL) for the idempotency
 * store, when req reserved a key; else does nothing. */
void ll_record_keep_reply(ll_req *req, const char *content_type, const void *data, size_t len,
                          const char *location);

/* Stores the answer kept for req's Idempotency-Key with status; an answer
 * not worth replaying (5xx, a stream) frees the key instead.  Failures are
 * logged. */
void ll_record_answer(ll_req *req, unsigned status);

/* Writes the audit record of a request under /api/v1 that tried to change
 * something (refusals included); other requests are not recorded.
 * Failures are logged. */
void ll_record_audit(ll_req *req);

/* Writes s into out (cap bytes, NUL-terminated) with anything unusual
 * percent-escaped, for a log line or the audit record. */
void ll_record_escape(char *out, size_t cap, const char *s);

#endif

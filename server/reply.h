/* reply.h - the answers handlers send (reply.c).  Each sets the status and
 * X-Request-Id; every one passes ll_reply_response, which leaves the
 * request's records (records.h) before the answer goes out. */
#ifndef LANDLORD_SERVER_REPLY_H
#define LANDLORD_SERVER_REPLY_H

#include <stddef.h>
#include <jansson.h>
#include <microhttpd.h>

#include "request.h"

/* Sends body as JSON; steals body. */
enum MHD_Result ll_reply_json(ll_req *req, unsigned status, json_t *body);

/* ll_reply_json plus a Location header (location borrowed); steals body. */
enum MHD_Result ll_reply_json_at(ll_req *req, unsigned status, json_t *body, const char *location);

/* The same for JSON already serialized: text (malloc'd, steals) of len bytes. */
enum MHD_Result ll_reply_text(ll_req *req, unsigned status, char *text, size_t len);

/* len bytes of data (borrowed; copied) with content_type. */
enum MHD_Result ll_reply_bytes(ll_req *req, unsigned status, const char *content_type,
                               const void *data, size_t len);

/* A JSON answer sent from a kept tenant answer without copying it; steals
 * the reference (released once libmicrohttpd is done with it). */
enum MHD_Result ll_reply_answer(ll_req *req, unsigned status, ll_answer *answer);

/* The raw MHD_Response path for replies that need extra headers; resp is
 * consumed (destroyed once queued).  Every reply goes through it: it adds
 * X-Request-Id, the ETag a handler set (on 2xx), WWW-Authenticate and
 * Retry-After when set, records the audit entry of a request that tried to
 * change something, and stores the answer of a POST that reserved an
 * Idempotency-Key. */
enum MHD_Result ll_reply_response(ll_req *req, unsigned status, struct MHD_Response *resp);

#endif

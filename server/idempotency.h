/* idempotency.h - the Idempotency-Key of a POST (idempotency.c), looked
 * at once the body is in and before the handler runs. */
#ifndef LANDLORD_SERVER_IDEMPOTENCY_H
#define LANDLORD_SERVER_IDEMPOTENCY_H

#include <microhttpd.h>

#include "request.h"

/* A new key is reserved (req->idem_reserved) and the request runs; a key
 * whose request is still running is 409; another request under a used
 * key is 422; a finished one is replayed.  0: run the handler; -1: the
 * answer was sent and *ret is what to return to libmicrohttpd. */
int ll_req_idempotency(ll_req *req, enum MHD_Result *ret);

#endif

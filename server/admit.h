/* admit.h - who may ask (admit.c): the bearer token a route needs, its
 * scope, and the caller's rate.  http.c calls it at the headers stage,
 * before any of the body is read. */
#ifndef LANDLORD_SERVER_ADMIT_H
#define LANDLORD_SERVER_ADMIT_H

#include <microhttpd.h>

#include "landlord/config.h"
#include "request.h"

/* Makes the per-caller token buckets for cfg (none when rate-limit is 0).
 * 0, or an error code with the error set. */
int ll_admit_start(const ll_config *cfg);

/* Frees them, once the daemon has stopped. */
void ll_admit_stop(void);

/* Authenticates req when its route (req->route, set) needs a token, checks
 * the scope and the caller's rate, and sets req->caller and
 * req->authenticated.  0: go on; -1: the refusal (401, 403, 429) was sent
 * and *ret is what to return to libmicrohttpd. */
int ll_admit(ll_req *req, enum MHD_Result *ret);

#endif

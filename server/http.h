/* http.h - the HTTP server (http.c): libmicrohttpd's daemon and the stages
 * every request passes.  main.c starts and stops it; handlers see only
 * request.h, reply.h, problem.h, waiter.h and stream.h. */
#ifndef LANDLORD_SERVER_HTTP_H
#define LANDLORD_SERVER_HTTP_H

#include <stddef.h>
#include <microhttpd.h>

#include "landlord/core.h"

/* Starts the server on cfg->listen of core (borrowed; it must outlive the
 * daemon); *out is the daemon and out_url (url_cap bytes) the base URL it
 * serves (with the real port when 0 was asked for).  The daemon runs its
 * own threads; stop it with ll_http_stop().  0, or an error code with the
 * error set. */
int ll_http_start(struct MHD_Daemon **out, char *out_url, size_t url_cap, ll_core *core);

/* Answers the waiting requests, stops the daemon and frees it (NULL is
 * fine). */
void ll_http_stop(struct MHD_Daemon *d);

#endif

/* stream.h - Server-Sent Events (stream.c): GET /api/v1/events as a
 * text/event-stream that parks its connection while there is nothing to
 * say.  The waiter thread (waiter.c) resumes parked streams. */
#ifndef LANDLORD_SERVER_STREAM_H
#define LANDLORD_SERVER_STREAM_H

#include <microhttpd.h>

#include "landlord/core.h"
#include "request.h"

/* Streams events (Server-Sent Events) after event id `after`, only those of
 * tenant (borrowed; copied) when not NULL, until the client goes or the
 * server stops; a keepalive comment every 15 s.  503 beyond 256 open
 * streams. */
enum MHD_Result ll_reply_event_stream(ll_req *req, long long after, const char *tenant);

/* Before serving: streams may open, reading core's events (borrowed; it
 * outlives the daemon). */
void ll_streams_start(ll_core *core);

/* Resumes the parked streams that have something to say (new events, a
 * keepalive due), or all of them when all is set.  The waiter thread calls
 * this every 20 ms. */
void ll_streams_resume(int all);

/* The server stops: open streams end after what they hold, and no new one
 * opens (503). */
void ll_streams_stop(void);

#endif

/* waiter.h - answers that wait without holding a worker thread
 * (waiter.c): a write until its operation settles, a read until its
 * tenant is ready.  The connection is suspended meanwhile and the waiter
 * thread resumes it. */
#ifndef LANDLORD_SERVER_WAITER_H
#define LANDLORD_SERVER_WAITER_H

#include "landlord/core.h"
#include "request.h"

/* Answers a write once operation op is pushed, failed, or wait_s seconds
 * (< 0: write-wait) have passed, by calling finish(req) then.  The
 * connection is suspended meanwhile, so no worker thread waits.  With op 0,
 * wait_s 0 or a degraded remote, finish runs at once. */
enum MHD_Result ll_req_wait(ll_req *req, long long op, int wait_s, ll_handler finish);

/* Answers a read of tenant id (borrowed; copied) once ll_tenant_wait_over()
 * says so or timeout_s seconds have passed, by calling finish(req) then;
 * the connection is suspended meanwhile. */
enum MHD_Result ll_req_wait_tenant(ll_req *req, const char *id, int timeout_s, ll_handler finish);

/* Starts the waiter thread on core (borrowed; it must outlive
 * ll_waiter_stop).  0, or -1 with the error set. */
int ll_waiter_start(ll_core *core);

/* Ends every wait and stream (each answers with where it stands), then
 * stops the thread.  Call after MHD_quiesce_daemon and before
 * MHD_stop_daemon: libmicrohttpd must not stop with suspended connections.
 * Does nothing when the thread is not running. */
void ll_waiter_stop(void);

#endif

/* waiter.c - answers that wait without holding a worker thread.
 *
 * A write whose handler wants to answer once its operation settled, or a
 * read of a tenant with ?wait=ready, suspends its connection and goes on
 * the waiter list (park).  One waiter thread wakes when the git writer's
 * progress counter moves, or every 20 ms (tenants' states move without the
 * writer), and resumes the connections whose operation settled, whose
 * tenant is ready or failed, whose deadline passed, or all of them while
 * the remote is degraded; libmicrohttpd then calls the access handler
 * again, which runs the handler's finish step (http.c).  The same thread
 * resumes parked event streams (stream.c) and closes connections whose
 * header deadline passed (edge.c).
 *
 * Threads: the list and the stopping flag are guarded by one mutex; a
 * request is suspended under it, so the waiter never resumes a connection
 * that has not been suspended yet.  Stopping resumes every waiter, which
 * then answers with where it stands (202 for a write).
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "landlord/error.h"
#include "edge.h"
#include "stream.h"
#include "waiter.h"

static struct {
    pthread_mutex_t lock;
    pthread_t thread;
    int started, stopping;
    ll_req *list;
    ll_core *core;
} waiters = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, NULL};

/* Suspends req's connection and puts it on the list; finish(req) at once
 * when the server is stopping. */
static enum MHD_Result park(ll_req *req)
{
    pthread_mutex_lock(&waiters.lock);
    if (waiters.stopping) {
        pthread_mutex_unlock(&waiters.lock);
        return req->finish(req);
    }
    req->waiting = 1;
    req->next_waiter = waiters.list;
    waiters.list = req;
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&waiters.lock);
    return MHD_YES;
}

enum MHD_Result ll_req_wait(ll_req *req, long long op, int wait_s, ll_handler finish)
{
    const ll_config *cfg = ll_core_config(req->core);
    req->wait_op = op;
    req->finish = finish;
    if (op == 0 || wait_s == 0 || ll_core_degraded(req->core))
        return finish(req);
    req->wait_deadline_ms =
        ll_monotonic_ms() + 1000LL * (wait_s < 0 ? cfg->write_wait : (long)wait_s);
    return park(req);
}

enum MHD_Result ll_req_wait_tenant(ll_req *req, const char *id, int timeout_s, ll_handler finish)
{
    req->finish = finish;
    if (ll_tenant_wait_over(req->core, id))
        return finish(req);
    snprintf(req->wait_tenant, sizeof(req->wait_tenant), "%s", id);
    req->wait_deadline_ms = ll_monotonic_ms() + 1000LL * timeout_s;
    return park(req);
}

/* Resumes the waiters whose time is up, whose operations settled (after
 * progress) or whose tenants are ready or failed; all of them when
 * stopping.  Returns the earliest deadline left. */
static int64_t resume_due(int progressed, int all)
{
    int64_t now = ll_monotonic_ms(), next = now + 1000;
    int degraded = ll_core_degraded(waiters.core);
    ll_req **pp;

    pthread_mutex_lock(&waiters.lock);
    pp = &waiters.list;
    while (*pp) {
        ll_req *req = *pp;
        int due =
            all || now >= req->wait_deadline_ms ||
            (req->wait_tenant[0]
                 ? ll_tenant_wait_over(waiters.core, req->wait_tenant)
                 : degraded || (progressed && ll_core_op_queued(waiters.core, req->wait_op) != 1));
        if (due) {
            *pp = req->next_waiter;
            MHD_resume_connection(req->conn);
            continue;
        }
        if (req->wait_deadline_ms < next)
            next = req->wait_deadline_ms;
        pp = &req->next_waiter;
    }
    pthread_mutex_unlock(&waiters.lock);
    return next;
}

static void *waiter_main(void *arg)
{
    unsigned long long seen = ll_core_progress(waiters.core);
    int64_t next = ll_monotonic_ms() + 1000;

    for (;;) {
        unsigned long long now_gen;
        int stopping;

        /* Tenants' states move without the writer: look every 20 ms. */
        ll_core_wait_progress(waiters.core, seen,
                              next < ll_monotonic_ms() + 20 ? next : ll_monotonic_ms() + 20);
        pthread_mutex_lock(&waiters.lock);
        stopping = waiters.stopping;
        pthread_mutex_unlock(&waiters.lock);
        if (stopping)
            break;
        now_gen = ll_core_progress(waiters.core);
        next = resume_due(now_gen != seen, 0);
        seen = now_gen;
        ll_streams_resume(0);
        ll_edge_reap();
    }
    resume_due(0, 1);
    ll_streams_resume(1);
    return NULL;
}

int ll_waiter_start(ll_core *core)
{
    waiters.core = core;
    waiters.stopping = 0;
    ll_streams_start(core);
    if (pthread_create(&waiters.thread, NULL, waiter_main, NULL) != 0)
        return ll_error_set(-1, "cannot start the waiter thread");
    waiters.started = 1;
    return 0;
}

void ll_waiter_stop(void)
{
    if (!waiters.started)
        return;
    ll_streams_stop();
    pthread_mutex_lock(&waiters.lock);
    waiters.stopping = 1;
    pthread_mutex_unlock(&waiters.lock);
    pthread_join(waiters.thread, NULL);
    waiters.started = 0;
    /* A moment for the resumed connections to send their answers. */
    struct timespec grace = {0, 100 * 1000000L};
    nanosleep(&grace, NULL);
}

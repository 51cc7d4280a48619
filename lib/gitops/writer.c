/* writer.c - the writer thread: drains the outbox batch by batch.
 *
 * How it works.  The thread sleeps until it is notified (work stored), a
 * poll is due, or, degraded, its backoff has passed.  It then fetches when
 * due (the registry follows the head) and drains the outbox: up to
 * batch-size queued operations of one author (a tier change alone), run as
 * one batch (batch.c), their outcomes recorded in one transaction, the
 * progress counter moved and the packer asked.  Between batches it lingers
 * for the answered callers' next operations (group commit under load).  An
 * unreachable remote leaves the operations queued with the attempt counted
 * and turns the status degraded, with retries backing off up to 30 s.
 *
 * Threads.  One writer thread; others call ll_gitops_notify and wait on
 * the progress counter (g->lock, g->wake, g->progress).  It is not an
 * ll_worker (lib/base/worker.c): its wake-up condition (notified,
 * degraded, arrivals) and the progress generation callers wait on are one
 * state under g->lock; a worker's own lock would split it.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gitops_int.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "landlord/worker.h"

/* The remote could not be reached: writes queue, retries back off. */
void gitops_enter_degraded(ll_gitops *g, const char *why)
{
    int64_t now = ll_monotonic_ms();
    g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (g->backoff_ms > BACKOFF_MAX_MS)
        g->backoff_ms = BACKOFF_MAX_MS;
    g->retry_at_ms = now + g->backoff_ms / 2 + rand_r(&g->seed_rand) % (g->backoff_ms / 2 + 1);
    if (!g->degraded)
        ll_log_warn("msg=\"cannot push; writes queue until it works again\" error=\"%s\"", why);
    g->degraded = 1;
    gitops_set_status(g, NULL, why);
}

static void leave_degraded(ll_gitops *g)
{
    if (g->degraded)
        ll_log_info("msg=\"pushing again\"");
    g->degraded = 0;
    g->backoff_ms = 0;
}

static void publish_progress(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    g->generation++;
    pthread_cond_broadcast(&g->progress);
    pthread_mutex_unlock(&g->lock);
    if (g->on_progress)
        g->on_progress(g->on_progress_payload);
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Operations of one author from the head of the queue. */
static void same_author(ll_op_list *ops)
{
    for (size_t i = 1; i < ops->n; i++) {
        if (!same_str(ops->ops[i].author_name, ops->ops[0].author_name) ||
            !same_str(ops->ops[i].author_email, ops->ops[0].author_email)) {
            ll_op_list_truncate(ops, i);
            return;
        }
    }
}

/* A tier change is a commit of its own: the batch is the tier operation
 * alone, or the operations before the first one. */
static void tier_ops_alone(ll_op_list *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        ll_op_kind kind = ops->ops[i].kind;
        if (kind == LL_OP_TIER_PUT || kind == LL_OP_TIER_DELETE) {
            ll_op_list_truncate(ops, i == 0 ? 1 : i);
            return;
        }
    }
}

/* Group commit under load.  After a batch of several operations was
 * answered, their callers are about to send their next ones: wait, woken
 * by each operation stored, until expect are queued (the batch answered
 * plus those that came during its push, at most batch-size) or
 * batch-linger ms passed.  Without this wait the callers split into two
 * groups that alternate (57 and 7 of 64), each pushed alone: a push per
 * half of them instead of one for all.  The answered callers' next
 * operations take a round trip (the answer, their request, its
 * transaction): all 64 of them 30-40 ms at 10,000 tenants on 2 cores, so
 * a shorter pause in arrivals does not mean they are done (batch-linger
 * 25 ms cut batches to 35 of 64 there: 323 tenants/s; 50-60 ms: 466-476/s). */
static void linger(ll_gitops *g, long long expect)
{
    int64_t until = ll_monotonic_ms() + g->linger_ms;
    unsigned long long seen;
    long long queued = 0;

    if (expect > g->batch_size)
        expect = g->batch_size;
    pthread_mutex_lock(&g->lock);
    seen = g->arrivals;
    pthread_mutex_unlock(&g->lock);
    while (ll_registry_ops_count_queued(&queued, g->reg) == 0 && queued < expect) {
        int64_t left = until - ll_monotonic_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        ll_deadline_in(&ts, left);
        pthread_mutex_lock(&g->lock);
        if (g->arrivals == seen && !g->stopping)
            pthread_cond_timedwait(&g->wake, &g->lock, &ts);
        seen = g->arrivals;
        int stopping = g->stopping;
        pthread_mutex_unlock(&g->lock);
        if (stopping)
            break;
    }
}

/* Pushes queued operations batch by batch until the queue is empty or the
 * remote fails.  Returns 0 or the failure. */
static int drain(ll_gitops *g)
{
    size_t last = 0;
    long long waiting = 0; /* queued when the last batch was answered */

    for (;;) {
        ll_op_list ops = {NULL, 0};
        ll_op_results results = {0};
        int64_t t0 = ll_monotonic_ms();
        int error;

        if ((error = gitops_reopen_if_repacked(g)) < 0)
            return error;
        if (last > 1 && g->linger_ms > 0) {
            linger(g, waiting + (long long)last);
            ll_log_debug("msg=\"lingered\" ms=%lld expect=%lld",
                         (long long)(ll_monotonic_ms() - t0), waiting + (long long)last);
            t0 = ll_monotonic_ms();
        }

        if (ll_registry_ops_queued(&ops, g->reg, g->batch_size) < 0) {
            ll_log_error("msg=\"cannot read the outbox\" error=\"%s\"", ll_error_last()->message);
            return -1;
        }
        if (ops.n == 0) {
            ll_op_list_free(&ops);
            return 0;
        }
        same_author(&ops);
        tier_ops_alone(&ops);
        last = ops.n;
        if ((error = gitops_run_batch(&results, g, ops.ops, ops.n)) < 0) {
            char why[LL_ERROR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", ll_error_last()->message);
            gitops_discard_unpushed(g);
            ll_registry_ops_attempted(g->reg, ops.ops, ops.n, why);
            ll_op_results_free(&results);
            ll_op_list_free(&ops);
            ll_error_set(error, "%s", why);
            return error;
        }
        if ((error = ll_registry_ops_finish(g->reg, results.v, results.n)) < 0) {
            /* Pushed but not recorded (a full volume): back off as for an
             * outage; they replay as no-ops once the registry takes writes. */
            ll_log_error("msg=\"cannot record outcomes\" error=\"%s\"", ll_error_last()->message);
            ll_op_results_free(&results);
            ll_op_list_free(&ops);
            return error;
        }
        leave_degraded(g);
        ll_log_info("msg=\"batch pushed\" ops=%zu ms=%lld", ops.n,
                    (long long)(ll_monotonic_ms() - t0));
        ll_op_results_free(&results);
        ll_op_list_free(&ops);
        if (ll_registry_ops_count_queued(&waiting, g->reg) < 0)
            waiting = 0;
        publish_progress(g);
        gitops_ask_packer(g);
    }
}

void *gitops_writer_main(void *arg)
{
    ll_gitops *g = arg;

    for (;;) {
        int64_t now = ll_monotonic_ms(), until;
        struct timespec ts;
        int error;

        /* Sleep until there is work, a poll is due, or (degraded) the backoff
         * has passed: a down remote is not hammered by every new request. */
        pthread_mutex_lock(&g->lock);
        until = g->degraded ? g->retry_at_ms : g->next_poll_ms;
        while (!g->stopping && (g->degraded || !g->notified) && now < until) {
            int64_t left = until - now;
            ll_deadline_in(&ts, left);
            pthread_cond_timedwait(&g->wake, &g->lock, &ts);
            now = ll_monotonic_ms();
        }
        if (g->stopping) {
            pthread_mutex_unlock(&g->lock);
            break;
        }
        g->notified = 0;
        pthread_mutex_unlock(&g->lock);

        if ((error = gitops_ensure_clone(g)) < 0) {
            gitops_enter_degraded(g, ll_error_last()->message);
            publish_progress(g);
            continue;
        }
        if (g->degraded || now >= g->next_poll_ms) {
            g->next_poll_ms = now + g->poll_interval_ms;
            if ((error = gitops_fetch(g)) < 0 || (error = gitops_follow_head(g)) < 0) {
                char why[LL_ERROR_MSG_MAX];
                ll_op_list queued = {NULL, 0};
                snprintf(why, sizeof(why), "%s", ll_error_last()->message);
                /* The queued operations say why they wait. */
                if (ll_registry_ops_queued(&queued, g->reg, g->batch_size) == 0)
                    ll_registry_ops_attempted(g->reg, queued.ops, queued.n, why);
                ll_op_list_free(&queued);
                gitops_enter_degraded(g, why);
                publish_progress(g);
                continue;
            }
        }
        if ((error = drain(g)) == LL_ECONFLICT) {
            /* Reachable, only busy: other writers kept moving the branch.  Go
             * again soon; the operations stay queued and say why. */
            ll_log_warn("msg=\"the branch keeps moving; retrying\" error=\"%s\"",
                        ll_error_last()->message);
            gitops_jitter_sleep(g, 6);
            ll_gitops_notify(g);
        } else if (error < 0) {
            gitops_enter_degraded(g, ll_error_last()->message);
            publish_progress(g);
        } else if (g->degraded) {
            /* Out of degraded once writes go through, not on a fetch alone
             * (a full clone fetches fine): else the backoff never grows. */
            leave_degraded(g);
            gitops_set_status(g, NULL, NULL);
        }
        /* The queue is empty: what bursts of batches freed (their overlays,
         * trees, JSON) goes back to the system, at most every 10 s. */
        if (ll_monotonic_ms() >= g->next_trim_ms) {
            g->next_trim_ms = ll_monotonic_ms() + 10000;
            malloc_trim(0);
        }
    }
    return NULL;
}

void ll_gitops_notify(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    g->notified = 1;
    g->arrivals++;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
}

unsigned long long ll_gitops_generation(ll_gitops *g)
{
    unsigned long long gen;
    pthread_mutex_lock(&g->lock);
    gen = g->generation;
    pthread_mutex_unlock(&g->lock);
    return gen;
}

void ll_gitops_wait_progress(ll_gitops *g, unsigned long long seen, int64_t deadline_ms)
{
    pthread_mutex_lock(&g->lock);
    while (g->generation == seen && !g->stopping) {
        struct timespec ts;
        int64_t left = deadline_ms - ll_monotonic_ms();
        if (left <= 0)
            break;
        ll_deadline_in(&ts, left);
        if (pthread_cond_timedwait(&g->progress, &g->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g->lock);
}

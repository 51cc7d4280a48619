/* worker.h - one background thread that sleeps until poked, a timeout or
 * stop: the mechanics every worker of landlord shares (the webhook
 * deliverer, the rollout engine, the informers, the git packer).
 *
 * The owner embeds an ll_worker, calls ll_worker_init once, ll_worker_start
 * with its thread's main, and ll_worker_destroy at the end (which stops and
 * joins first).  The thread loops on ll_worker_wait(): it returns at once
 * when poked since the last wait, else after ms or on stop, and says
 * whether to stop.  The lock is the worker's own; owners keep their other
 * state under locks of their own.
 */
#ifndef LANDLORD_WORKER_H
#define LANDLORD_WORKER_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef struct ll_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started, stop, poked;
} ll_worker;

/* Prepares w (not started). */
void ll_worker_init(ll_worker *w);

/* Runs main(arg) on a new thread.  0, or -1 with the error set.  arg is handed to the thread as is:
 * it must outlive it (until ll_worker_stop); what (a name for the error message) is borrowed for
 * the call. */
int ll_worker_start(ll_worker *w, void *(*main)(void *), void *arg, const char *what);

/* Asks the thread to stop and waits for it; nothing when not started.  The
 * worker may be started again. */
void ll_worker_stop(ll_worker *w);

/* ll_worker_stop, then frees what ll_worker_init made. */
void ll_worker_destroy(ll_worker *w);

/* Wakes the thread: its next ll_worker_wait returns at once. */
void ll_worker_poke(ll_worker *w);

/* On the thread: sleeps until poked (since the last wait), ms passed
 * (ms <= 0: not at all) or stop; clears the poke.  1 when the thread is to
 * stop, else 0. */
int ll_worker_wait(ll_worker *w, int64_t ms);

/* On the thread: ll_worker_wait without a time limit (until poked since
 * the last wait, or stop).  1 when the thread is to stop, else 0. */
int ll_worker_sleep(ll_worker *w);

/* 1 once stop was asked. */
int ll_worker_stopping(ll_worker *w);

/* *out becomes the wall-clock time ms from now: a deadline for
 * pthread_cond_timedwait. */
void ll_deadline_in(struct timespec *out, int64_t ms);

#endif

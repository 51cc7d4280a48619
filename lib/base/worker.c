/* worker.c - one background thread, its wake-ups and its stop (see
 * worker.h).
 *
 * The poke is a flag under the lock, not only a signal: a poke that comes
 * while the thread works (not waiting) is kept, so the next wait returns at
 * once and no work asked for is slept through.
 */

#include "landlord/error.h"
#include "landlord/worker.h"

void ll_deadline_in(struct timespec *out, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, out);
    if (ms <= 0)
        return;
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void ll_worker_init(ll_worker *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->started = w->stop = w->poked = 0;
}

int ll_worker_start(ll_worker *w, void *(*main)(void *), void *arg, const char *what)
{
    pthread_mutex_lock(&w->lock);
    w->stop = 0;
    pthread_mutex_unlock(&w->lock);
    if (pthread_create(&w->thread, NULL, main, arg) != 0)
        return ll_error_set(-1, "cannot start %s", what);
    w->started = 1;
    return 0;
}

void ll_worker_stop(ll_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
}

void ll_worker_destroy(ll_worker *w)
{
    ll_worker_stop(w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
}

void ll_worker_poke(ll_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->poked = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int ll_worker_wait(ll_worker *w, int64_t ms)
{
    struct timespec until;
    ll_deadline_in(&until, ms);
    pthread_mutex_lock(&w->lock);
    while (ms > 0 && !w->stop && !w->poked &&
           pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
        ;
    w->poked = 0;
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

int ll_worker_sleep(ll_worker *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->stop && !w->poked)
        pthread_cond_wait(&w->wake, &w->lock);
    w->poked = 0;
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

int ll_worker_stopping(ll_worker *w)
{
    pthread_mutex_lock(&w->lock);
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

/* packer.c - the packer thread: merges the clone's packs off the writer's path.
 *
 * How it works.  Each pushed batch leaves one pack in the clone (and one in
 * the embedded remote, when landlord hosts it).  After a batch the writer
 * pokes the packer (an ll_worker, lib/base/worker.c); once a repository holds
 * PACKS_MERGED_AT packs the packer runs `git repack -d --geometric=2` on
 * it, then sets reopen_clone so the writer opens the clone anew between
 * batches (its handle holds the removed files open), and calls on_repacked
 * so the status follower does the same.  Without git installed it stops.
 *
 * Threads.  The packer never touches g->repo; it sleeps on its worker's
 * lock and shares g->lock with the writer only for the flags reopen_clone
 * and notified.
 */
#include <pthread.h>

#include "gitops_int.h"
#include "gitpack.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "landlord/worker.h"

/* Has the packer merge packs once a batch is done (cheap: a flag). */
void gitops_ask_packer(ll_gitops *g)
{
    ll_worker_poke(&g->packer);
}

/* Writer thread, between batches: the packer replaced packs, so the clone
 * is opened anew (the old handle holds removed files open). */
int gitops_reopen_if_repacked(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    int reopen = g->reopen_clone;
    g->reopen_clone = 0;
    pthread_mutex_unlock(&g->lock);
    return reopen ? gitops_open_clone(g) : gitops_ensure_clone(g);
}

/* One repository: merged when it has gathered PACKS_MERGED_AT packs (or
 * always, to pack loose objects left by earlier versions).  1 when packs
 * were replaced. */
static int repack_one(ll_gitops *g, const char *dir, int always)
{
    size_t n = ll_gitpack_count(dir);
    if (!always && n < PACKS_MERGED_AT)
        return 0;
    int64_t t0 = ll_monotonic_ms();
    int error = ll_gitpack_repack(dir);
    if (error == LL_ENOTFOUND) {
        ll_log_warn("msg=\"git is not installed: packs are not merged\" error=\"%s\"",
                    ll_error_last()->message);
        g->git_missing = 1;
        return 0;
    }
    if (error < 0) {
        ll_log_warn("msg=\"cannot merge packs\" error=\"%s\"", ll_error_last()->message);
        return 0;
    }
    ll_log_debug("msg=\"packs merged\" dir=%s packs=%zu now=%zu ms=%lld", dir, n,
                 ll_gitpack_count(dir), (long long)(ll_monotonic_ms() - t0));
    return 1;
}

/* The packer thread: merges the packs of the clone (one per pushed batch)
 * and of the embedded remote (one per local push) with git, off the
 * writer's path; then the writer and the status follower open the clone
 * anew.  First round at start: loose objects of earlier versions. */
void *gitops_packer_main(void *arg)
{
    ll_gitops *g = arg;
    int first = 1;

    while (!g->git_missing &&
           !(first ? ll_worker_stopping(&g->packer) : ll_worker_sleep(&g->packer))) {
        int changed = repack_one(g, g->workdir, first);
        if (g->own_remote && !g->git_missing)
            repack_one(g, g->url, first);
        first = 0;
        if (changed) {
            pthread_mutex_lock(&g->lock);
            g->reopen_clone = 1;
            g->notified = 1; /* an idle writer reopens now, not at its next poll */
            pthread_cond_signal(&g->wake);
            pthread_mutex_unlock(&g->lock);
            if (g->on_repacked)
                g->on_repacked(g->on_progress_payload);
        }
    }
    return NULL;
}

/* gitops_int.h - what the git writer's files share (private to lib/gitops).
 *
 * The writer is one handle (struct ll_gitops) and several rooms, each with
 * one job; the calls go one way, so there is no circle among them:
 *
 *   gitops.c   open, start, stop, free, the public getters
 *     -> seed.c    a new repository's layout, the layout of an existing one
 *     -> writer.c  the writer thread: drain the outbox, linger, degraded
 *          -> batch.c   one batch: build on the head, commit, push, rebase
 *               -> apply.c   one operation applied to an overlay (apply.h)
 *               -> follow.c  the registry and the tier catalogue follow the head
 *     -> packer.c  the packer thread: merges packs off the writer's path
 *     -> remote.c  the clone, fetch, push, credentials, the remote's health
 *
 * Threads.  Before ll_gitops_start() only the caller touches the
 * repository; after, only the writer thread does (the packer works on the
 * files with git, never through g->repo).  lock guards the wake-up flags,
 * the generation counter and what is published (tiers, health).
 */
#ifndef LANDLORD_GITOPS_INT_H
#define LANDLORD_GITOPS_INT_H

#include <pthread.h>
#include <stdint.h>
#include <git2.h>
#include <jansson.h>

#include "landlord/gitops.h"
#include "landlord/operation.h"
#include "landlord/registry.h"
#include "landlord/worker.h"

#define BACKOFF_MIN_MS 250
/* Packs (one per pushed batch) a repository collects before small ones are
 * merged: fewer, larger merges and reopenings of the clone. */
#define PACKS_MERGED_AT 16
#define BACKOFF_MAX_MS  30000

struct ll_gitops {
    char *workdir, *url, *shown_url, *branch, *root, *author_name, *author_email;
    char *default_release, *db_path, *username, *password, *ssh_key, *ssh_host_key;
    char *tier_kinds, *flux_namespace; /* the tier policy */
    char remote_ref[300];
    int batch_size, push_attempts, import_only, linger_ms, sharded, own_remote;
    int64_t poll_interval_ms;
    void (*on_progress)(void *payload);
    void *on_progress_payload;
    void (*on_repacked)(void *payload);
    git_repository *repo;
    git_odb_backend *memstore; /* repo's in-memory object store (repo owns it) */
    ll_registry *reg;

    /* Writer thread only. */
    git_oid scanned; /* head the registry last followed */
    int have_scanned;
    int degraded, backoff_ms;
    int64_t retry_at_ms, next_poll_ms, next_trim_ms;
    unsigned int seed_rand;

    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the writer waits here for work */
    pthread_cond_t progress; /* waiters wait here for outcomes */
    int notified, stopping;
    /* The packer thread (packer_main): poked after each batch; it sets
     * reopen_clone for the writer when it replaced the clone's packs. */
    ll_worker packer;
    int reopen_clone, git_missing; /* reopen_clone under lock; git_missing packer only */
    unsigned long long arrivals;   /* ll_gitops_notify calls: work stored */
    unsigned long long generation;
    ll_tier_catalogue *tiers; /* immutable snapshot; one reference */
    ll_git_health health;     /* under lock: what gitops_set_status published */
    /* Push latency: counts per bucket of push_bounds_ms (last: above). */
    long long push_buckets[LL_PUSH_BUCKETS + 1], push_count, push_sum_ms;
};

/* --- remote.c ------------------------------------------------------------------ */

/* Sets the error from libgit2's last error, prefixed by what; returns code. */
int gitops_git_fail(int code, const char *what);

/* Publishes the remote's health: ok (error NULL) or degraded with error;
 * head NULL keeps the head the snapshot had. */
void gitops_set_status(ll_gitops *g, const git_oid *head, const char *error);

/* (Re)opens the clone with an in-memory object store for new objects. */
int gitops_open_clone(ll_gitops *g);

/* The clone is open, or opening it failed (set in the error). */
int gitops_ensure_clone(ll_gitops *g);

/* Forgets the objects and the outgoing ref of a batch that was not pushed. */
void gitops_discard_unpushed(ll_gitops *g);

/* An in-memory remote for git-url (*out: a new remote, caller frees). */
int gitops_open_remote(git_remote **out, ll_gitops *g);

/* Fetches the branch into the remote-tracking ref. */
int gitops_fetch(ll_gitops *g);

/* Pushes commit to the branch without force: LL_ECONFLICT when the branch
 * moved, LL_EUPSTREAM when the remote failed or refused us. */
int gitops_push(ll_gitops *g, const git_oid *commit);

/* The remote head as last fetched or pushed (*out: new, caller frees), or
 * *out NULL when the branch does not exist. */
int gitops_remote_head(git_commit **out, ll_gitops *g);

/* --- packer.c ------------------------------------------------------------------ */

/* Has the packer merge packs once a batch is done (cheap: a flag). */
void gitops_ask_packer(ll_gitops *g);

/* Writer thread, between batches: opens the clone anew when the packer
 * replaced its packs, else makes sure it is open. */
int gitops_reopen_if_repacked(ll_gitops *g);

/* The packer thread's body (arg: the ll_gitops). */
void *gitops_packer_main(void *arg);

/* --- follow.c ------------------------------------------------------------------ */

/* Reads the tier catalogue of head and publishes it as g->tiers. */
void gitops_publish_tiers(ll_gitops *g, git_commit *head);

/* Makes the registry and the tier catalogue follow the remote head, when
 * they have not followed it yet. */
int gitops_follow_head(ll_gitops *g);

/* --- batch.c ------------------------------------------------------------------- */

/* Writes a commit of tree_id on parent (or none) with the given author and
 * the configured committer. */
int gitops_make_commit(git_oid *out, ll_gitops *g, const git_oid *tree_id, git_commit *parent,
                       const char *author_name, const char *author_email, const char *message);

/* Sleeps a jittered while that grows with attempt. */
void gitops_jitter_sleep(ll_gitops *g, int attempt);

/* Applies the n operations of ops (borrowed) on the remote head, commits
 * and pushes; adds an outcome for each to results.  0, or LL_EUPSTREAM /
 * LL_ECONFLICT (nothing added: the operations stay queued). */
int gitops_run_batch(ll_op_results *results, ll_gitops *g, const ll_operation *ops, size_t n);

/* --- writer.c ------------------------------------------------------------------ */

/* The remote could not be reached: writes queue, retries back off. */
void gitops_enter_degraded(ll_gitops *g, const char *why);

/* The writer thread's body (arg: the ll_gitops). */
void *gitops_writer_main(void *arg);

/* --- seed.c -------------------------------------------------------------------- */

/* 1 when the repository at head uses the sharded layout (git-layout auto). */
int gitops_layout_of(ll_gitops *g, git_commit *head);

/* Writes the default layout on head (or an empty branch) and pushes it. */
int gitops_seed(ll_gitops *g, git_commit *head);

#endif

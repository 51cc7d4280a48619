/* gitops.c - the one writer of the GitOps repository: open, start, stop, free.
 *
 * How it works.  A bare clone at <data>/work.git has the remote as "origin";
 * refs/remotes/origin/<branch> is the last remote head landlord knows.  The
 * writer thread loops: take queued operations from the registry's outbox
 * (up to batch-size, one author per batch), apply each to an in-memory
 * overlay of the remote head's tree (render the tenant file, edit the tier
 * kustomization as YAML), write one tree with git_tree_create_updated and one
 * commit on that head, and push it without force.
 *
 * - A push refused because the branch moved: fetch, rebuild on the new head
 *   (re-applying the operations, so foreign changes are kept), push again,
 *   with jittered backoff, up to git-push-attempts times.
 * - The remote unreachable (down, credentials, TLS): the operations stay
 *   queued, the status turns degraded, and the writer retries with
 *   exponential backoff (capped at 30 s).  Nothing acknowledged is dropped.
 * - An operation that cannot apply (template gone, hand-made file in the
 *   way, tier folder deleted, a template that breaks the tier policy or
 *   values that set what it derives from the tenant's identity) fails
 *   alone; its partial changes are undone.
 * - Applying is idempotent, so an operation whose commit was pushed just
 *   before a crash is replayed as a no-op after restart.
 * - After every fetch the registry follows the repository (adopt.c).
 *
 * Rooms (gitops_int.h draws how they call each other): gitops.c opens the
 * clone and starts the threads, remote.c fetches and pushes, writer.c is the
 * writer thread, batch.c one batch, apply.c one operation, follow.c the
 * registry following the head, seed.c the default layout, packer.c the
 * packer thread.
 *
 * Threads.  Before ll_gitops_start() only the caller touches the repository;
 * after, only the writer thread does.  lock guards the wake-up flags, the
 * generation counter and what is published (the tier catalogue, the
 * remote's health).
 */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <git2.h>

#include "gitops_int.h"
#include "gitssh.h"
#include "gitstream.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

/* The URL without any user:password@ part, for messages and logs. */
static char *redact_url(const char *url)
{
    const char *scheme = strstr(url, "://"), *at, *slash;
    char *out;
    if (!scheme)
        return strdup(url);
    at = strchr(scheme + 3, '@');
    slash = strchr(scheme + 3, '/');
    if (!at || (slash && slash < at))
        return strdup(url);
    if (!(out = malloc(strlen(url) + 1)))
        return NULL;
    snprintf(out, strlen(url) + 1, "%.*s%s", (int)(scheme + 3 - url), url, at + 1);
    return out;
}

static int remove_lock(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);
    (void)st;
    (void)ftw;
    if (flag == FTW_F && n > 5 && strcmp(path + n - 5, ".lock") == 0) {
        ll_log_warn("msg=\"removing a stale lock left by a crash\" path=%s", path);
        unlink(path);
    }
    return 0;
}

/* A process killed while writing a ref leaves its .lock behind, and every
 * later write of that ref fails.  Only landlord writes its clone (and the
 * embedded default remote), and only one landlord runs on a data dir, so at
 * start any lock there is stale. */
static void clear_stale_locks(const char *repo_dir)
{
    char path[1200];
    const char *files[] = {"packed-refs.lock", "config.lock", "HEAD.lock", "index.lock"};
    snprintf(path, sizeof(path), "%s/refs", repo_dir);
    nftw(path, remove_lock, 16, FTW_PHYS);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", repo_dir, files[i]);
        if (unlink(path) == 0)
            ll_log_warn("msg=\"removed a stale lock left by a crash\" path=%s", path);
    }
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* The handle with its locks and a copy of the options (absent strings
 * empty, numbers defaulted). */
static void init_handle(ll_gitops *g, const ll_gitops_options *o)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    pthread_cond_init(&g->progress, NULL);
    ll_worker_init(&g->packer);
    g->workdir = dup_or_empty(o->workdir);
    g->url = dup_or_empty(o->url);
    g->shown_url = redact_url(g->url);
    g->branch = dup_or_empty(o->branch);
    g->root = dup_or_empty(o->root);
    g->author_name = dup_or_empty(o->author_name);
    g->author_email = dup_or_empty(o->author_email);
    g->default_release = dup_or_empty(o->default_release);
    g->tier_kinds = dup_or_empty(o->tier_kinds);
    g->flux_namespace = dup_or_empty(o->flux_namespace);
    g->db_path = dup_or_empty(o->db_path);
    g->username = dup_or_empty(o->username);
    g->password = dup_or_empty(o->password);
    g->ssh_key = dup_or_empty(o->ssh_key_file);
    g->ssh_host_key = dup_or_empty(o->ssh_host_key);
    g->batch_size = o->batch_size > 0 ? o->batch_size : 64;
    g->push_attempts = o->push_attempts > 0 ? o->push_attempts : 10;
    g->poll_interval_ms = 1000LL * (o->poll_interval_s > 0 ? o->poll_interval_s : 30);
    g->import_only = o->import_only;
    g->linger_ms = o->linger_ms;
    g->own_remote = o->own_remote;
    g->sharded = o->sharded;
    g->on_progress = o->on_progress;
    g->on_progress_payload = o->on_progress_payload;
    g->on_repacked = o->on_repacked;
    g->seed_rand = (unsigned int)ll_monotonic_ms();
    snprintf(g->remote_ref, sizeof(g->remote_ref), "refs/remotes/origin/%s", g->branch);
}

/* libgit2's process-wide settings: the object cache, the transports for
 * http(s) and ssh with their timeouts, the CA bundle. */
static int install_transports(const ll_gitops *g, const ll_gitops_options *o)
{
    int timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;

    /* Tier folders of large repositories are trees of megabytes.  By default
     * libgit2 caches no object over 4 KiB and re-hashes (SHA-1DC) every
     * object it reads, so each path lookup would inflate and hash the whole
     * folder again.  Cache trees of any size; objects come from our own
     * clone (the indexer verified them on fetch), so skip the re-hash.
     * But every commit makes new versions of the trees it touches, and the
     * cache (256 MiB by default, across handles) would keep them all: RSS
     * grew by ~30 KB per onboarding until the cache was full.  16 MiB holds
     * the tier trees of 100,000 tenants in the flat layout. */
    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)16 << 20);
    git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)16 << 20);
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
    if ((strncmp(g->url, "http://", 7) == 0 || strncmp(g->url, "https://", 8) == 0) &&
        ll_git_stream_install(timeout_s) < 0)
        return gitops_git_fail(-1, "git: cannot install the network stream");
    if (ll_git_ssh_install(timeout_s) < 0)
        return gitops_git_fail(-1, "git: cannot install the ssh transport");
    if (o->ca_file && o->ca_file[0] &&
        git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, o->ca_file, NULL) < 0)
        return gitops_git_fail(LL_EINVALID, "git: cannot use git-ca-file");
    return 0;
}

/* The local clone, made when missing, opened with its in-memory object
 * store, without stale locks or an outgoing ref of a crashed batch, and
 * with the remote's URL and bounded packing memory in its config. */
static int prepare_clone(ll_gitops *g)
{
    git_repository *made = NULL;
    git_remote *remote = NULL;
    git_config *cfg = NULL;
    int error;

    clear_stale_locks(g->workdir);
    if (g->own_remote)
        clear_stale_locks(g->url);
    if (git_repository_open_bare(&made, g->workdir) < 0 &&
        git_repository_init(&made, g->workdir, 1) < 0)
        return gitops_git_fail(-1, "git: cannot create the local clone");
    git_repository_free(made);
    if ((error = gitops_open_clone(g)) < 0)
        return error;
    gitops_discard_unpushed(g); /* an outgoing ref whose objects died with a crash */
    if (gitops_open_remote(&remote, g) < 0)
        return gitops_git_fail(LL_EINVALID, "git: bad remote url");
    git_remote_free(remote);
    /* remote.origin.url, for people who look into the clone with git
     * (landlord itself never reads it: see open_remote); packing memory
     * bounded (libgit2's packbuilder would keep up to 256 MiB of deltas). */
    if (git_repository_config(&cfg, g->repo) < 0 ||
        git_config_set_string(cfg, "remote.origin.url", g->url) < 0 ||
        git_config_set_int64(cfg, "pack.deltaCacheSize", 16 << 20) < 0 ||
        git_config_set_int64(cfg, "pack.windowMemory", 32 << 20) < 0)
        error = gitops_git_fail(-1, "git: cannot write the clone's config");
    git_config_free(cfg);
    return error;
}

/* The first fetch failed (why): with a head from an earlier run, start
 * degraded and keep the writes queued; without one there is nothing to
 * read tiers from, LL_EUPSTREAM. */
static int open_unreachable(ll_gitops *g, const char *why)
{
    git_commit *head = NULL;

    if (g->import_only || gitops_remote_head(&head, g) < 0 || !head) {
        char hint[LL_ERROR_MSG_MAX];
        snprintf(hint, sizeof(hint), "%s", ll_error_last()->hint);
        ll_error_set(LL_EUPSTREAM, "%s", why);
        ll_error_hint("%s%sthe first start needs the remote", hint, hint[0] ? "; " : "");
        git_commit_free(head);
        return LL_EUPSTREAM;
    }
    ll_log_warn("msg=\"starting with the last known head; the remote is unreachable\" "
                "error=\"%s\"",
                why);
    if (g->sharded < 0)
        g->sharded = gitops_layout_of(g, head);
    gitops_publish_tiers(g, head);
    gitops_enter_degraded(g, why);
    git_commit_free(head);
    return 0;
}

/* 1 when head has the root folder. */
static int has_root(ll_gitops *g, git_commit *head)
{
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    int found = head && git_commit_tree(&tree, head) == 0 &&
                git_tree_entry_bypath(&entry, tree, g->root) == 0;
    git_tree_entry_free(entry);
    git_tree_free(tree);
    return found;
}

/* The remote was fetched: seed a branch without the root folder (never
 * for import), decide the layout, make the registry follow the head, and
 * open the clone anew. */
static int open_reachable(ll_gitops *g)
{
    git_commit *head = NULL;
    int error;

    if ((error = gitops_remote_head(&head, g)) < 0)
        goto done;
    if (!has_root(g, head)) {
        if (g->import_only) {
            error = ll_error_set(LL_ENOTFOUND, "no %s folder on branch %s of %s", g->root,
                                 g->branch, g->shown_url);
            ll_error_hint("import reads an existing GitOps repository; check git-root and "
                          "git-branch");
            goto done;
        }
        if ((error = gitops_seed(g, head)) < 0)
            goto done;
        if (g->sharded < 0)
            g->sharded = 1; /* a new repository gets the layout that scales */
    }
    if (g->sharded < 0) {
        git_commit_free(head);
        head = NULL;
        if ((error = gitops_remote_head(&head, g)) < 0)
            goto done;
        g->sharded = gitops_layout_of(g, head);
    }
    if ((error = gitops_follow_head(g)) < 0)
        goto done;
    git_commit_free(head);
    head = NULL;
    /* The clone and the first scan read every tenant file: libgit2 keeps
     * inflated delta bases (up to 16 MiB a pack) and objects for this
     * handle.  Open it anew and give the freed memory back. */
    if ((error = gitops_open_clone(g)) < 0)
        goto done;
    malloc_trim(0);
    if ((error = gitops_remote_head(&head, g)) < 0)
        goto done;
    gitops_set_status(g, head ? git_commit_id(head) : NULL, NULL);
done:
    git_commit_free(head);
    return error;
}

int ll_gitops_open(ll_gitops **out, const ll_gitops_options *o)
{
    ll_gitops *g = calloc(1, sizeof(*g));
    int error;

    if (!g)
        return ll_error_set(-1, "out of memory");
    init_handle(g, o);
    if ((error = install_transports(g, o)) < 0 ||
        (error = ll_registry_open(&g->reg, g->db_path)) < 0 || (error = prepare_clone(g)) < 0)
        goto done;
    if ((error = gitops_fetch(g)) < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        error = open_unreachable(g, why);
    } else {
        error = open_reachable(g);
    }
    if (error < 0)
        goto done;
    g->next_poll_ms = ll_monotonic_ms() + g->poll_interval_ms;
    *out = g;
    g = NULL;
done:
    ll_gitops_free(g);
    return error;
}

int ll_gitops_start(ll_gitops *g)
{
    if (pthread_create(&g->thread, NULL, gitops_writer_main, g) != 0)
        return ll_error_set(-1, "cannot start the git writer thread");
    g->started = 1;
    if (ll_worker_start(&g->packer, gitops_packer_main, g, "the git packer") < 0)
        return -1;
    ll_gitops_notify(g); /* operations queued before a restart */
    return 0;
}

void ll_gitops_stop(ll_gitops *g)
{
    if (!g || !g->started)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_cond_broadcast(&g->wake);
    pthread_cond_broadcast(&g->progress);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    ll_worker_stop(&g->packer);
    g->started = 0;
}

void ll_gitops_free(ll_gitops *g)
{
    if (!g)
        return;
    ll_gitops_stop(g);
    ll_registry_close(g->reg);
    git_repository_free(g->repo);
    ll_tier_catalogue_unref(g->tiers);
    free(g->workdir);
    free(g->url);
    free(g->shown_url);
    free(g->branch);
    free(g->root);
    free(g->author_name);
    free(g->author_email);
    free(g->default_release);
    free(g->tier_kinds);
    free(g->flux_namespace);
    free(g->db_path);
    if (g->password)
        memset(g->password, 0, strlen(g->password));
    free(g->password);
    free(g->username);
    free(g->ssh_key);
    free(g->ssh_host_key);
    pthread_cond_destroy(&g->wake);
    pthread_cond_destroy(&g->progress);
    ll_worker_destroy(&g->packer);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

int ll_gitops_sharded(const ll_gitops *g)
{
    return g->sharded > 0;
}

const char *ll_gitops_url(const ll_gitops *g)
{
    return g->shown_url;
}

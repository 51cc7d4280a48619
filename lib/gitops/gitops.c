/* gitops.c - the one writer of the GitOps repository.
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
 * Threads.  Before ll_gitops_start() only the caller touches the repository;
 * after, only the writer thread does.  lock guards the wake-up flags, the
 * generation counter and the published snapshots (tiers, status).
 */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <git2.h>
#include <openssl/evp.h>

#include "adopt.h"
#include "gitpack.h"
#include "gitssh.h"
#include "gitstream.h"
#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "overlay.h"

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
    /* The packer thread (packer_main): asked after each batch; it sets
     * reopen_clone for the writer when it replaced the clone's packs. */
    pthread_t packer;
    pthread_cond_t pack_wake;
    int packer_started, pack_asked, reopen_clone, git_missing;
    unsigned long long arrivals; /* ll_gitops_notify calls: work stored */
    unsigned long long generation;
    json_t *tiers;  /* immutable snapshot */
    json_t *status; /* immutable snapshot */
    /* Push latency: counts per bucket of push_bounds_ms (last: above). */
    long long push_buckets[LL_PUSH_BUCKETS + 1], push_count, push_sum_ms;
};

const int ll_push_bounds_ms[LL_PUSH_BUCKETS] = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

static int git_fail(int code, const char *what)
{
    const git_error *e = git_error_last();
    return ll_error_set(code, "%s: %s", what, e && e->message ? e->message : "unknown git error");
}

static void set_status(ll_gitops *g, const git_oid *head, const char *error)
{
    json_t *s = json_object(), *old;
    char sha[GIT_OID_HEXSZ + 1] = "";

    json_object_set_new(s, "status", json_string(error ? "degraded" : "ok"));
    json_object_set_new(s, "branch", json_string(g->branch));
    json_object_set_new(s, "url", json_string(g->shown_url));
    pthread_mutex_lock(&g->lock);
    if (head) {
        git_oid_tostr(sha, sizeof(sha), head);
        json_object_set_new(s, "head", json_string(sha));
    } else if (g->status && json_object_get(g->status, "head")) {
        json_object_set(s, "head", json_object_get(g->status, "head"));
    }
    if (error)
        json_object_set_new(s, "error", json_string(error));
    old = g->status;
    g->status = s;
    pthread_mutex_unlock(&g->lock);
    json_decref(old);
}

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

/* --- remote ----------------------------------------------------------------- */

typedef struct remote_ctx {
    ll_gitops *g;
    int credential_calls;
    char rejected[256];
} remote_ctx;

/* Credentials for the remote: asked for once; a second request means the
 * remote refused them (libgit2 would otherwise ask forever). */
static int on_credentials(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload)
{
    remote_ctx *rc = payload;
    ll_gitops *g = rc->g;
    const char *user = g->username[0] ? g->username : user_from_url;

    if (rc->credential_calls++ > 0) {
        git_error_set_str(GIT_ERROR_NET, "authentication failed: the remote refused the "
                                         "credentials");
        return GIT_EAUTH;
    }
    if ((allowed & GIT_CREDENTIAL_SSH_KEY) && g->ssh_key[0])
        return git_credential_ssh_key_new(out, user ? user : "git", NULL, g->ssh_key, NULL);
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && g->username[0])
        return git_credential_userpass_plaintext_new(out, g->username, g->password);
    if ((allowed & GIT_CREDENTIAL_USERNAME) && user)
        return git_credential_username_new(out, user);
    git_error_set_str(GIT_ERROR_NET, "authentication failed: the remote asks for credentials "
                                     "and none are configured");
    return GIT_EAUTH;
}

/* SSH host keys are pinned: libgit2 1.5 does not check known_hosts, so the
 * server's key must match git-ssh-host-key ("SHA256:<base64>", as
 * `ssh-keygen -lf` prints it).  TLS certificates keep libgit2's checks. */
static int on_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
    remote_ctx *rc = payload;
    const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;
    unsigned char b64[64];
    char seen[80];
    int n;

    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
        return GIT_PASSTHROUGH;
    if (!(hk->type & GIT_CERT_SSH_SHA256)) {
        git_error_set_str(GIT_ERROR_SSH, "ssh host key of the remote has no SHA-256 fingerprint");
        return GIT_ECERTIFICATE;
    }
    n = EVP_EncodeBlock(b64, hk->hash_sha256, 32);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    snprintf(seen, sizeof(seen), "SHA256:%.*s", n, (const char *)b64);
    if (rc->g->ssh_host_key[0] && strcmp(seen, rc->g->ssh_host_key) == 0)
        return 0;
    char msg[300];
    snprintf(msg, sizeof(msg), "ssh host key of %s is %s, which git-ssh-host-key does not pin",
             host ? host : "the remote", seen);
    git_error_set_str(GIT_ERROR_SSH, msg);
    (void)valid;
    return GIT_ECERTIFICATE;
}

static int on_push_update(const char *refname, const char *status, void *payload)
{
    remote_ctx *rc = payload;
    if (status)
        snprintf(rc->rejected, sizeof(rc->rejected), "%s: %s", refname, status);
    return 0;
}

/* Turns a failed fetch or push into one clear message with a hint. */
static int remote_fail(ll_gitops *g, int code, const char *what)
{
    const git_error *e = git_error_last();
    const char *msg = e && e->message ? e->message : "unknown error";

    /* "401" only as libgit2 words an HTTP status: a port or address in the
     * message may hold those digits too. */
    if (code == GIT_EAUTH || strstr(msg, "authentication") || strstr(msg, "status code: 401")) {
        ll_error_set(LL_EUPSTREAM, "git: %s %s: authentication failed", what, g->shown_url);
        ll_error_hint(strncmp(g->url, "ssh://", 6) == 0
                          ? "check git-username and git-ssh-key-file"
                          : "check git-username and git-password-file");
    } else if (strstr(msg, "ssh host key")) {
        ll_error_set(LL_EUPSTREAM, "git: %s %s: %s", what, g->shown_url, msg);
        ll_error_hint("set git-ssh-host-key to the server's SHA256 fingerprint (ssh-keygen -lf)");
    } else if (code == GIT_ECERTIFICATE || strstr(msg, "certificate") || strstr(msg, "SSL")) {
        ll_error_set(LL_EUPSTREAM, "git: %s %s: TLS certificate not trusted: %s", what,
                     g->shown_url, msg);
        ll_error_hint("set git-ca-file to the CA bundle that signed the server's certificate");
    } else {
        ll_error_set(LL_EUPSTREAM, "git: %s %s failed: %s", what, g->shown_url, msg);
        ll_error_hint("check that the remote is reachable and git-url is right");
    }
    return LL_EUPSTREAM;
}

/* (Re)opens the clone with an in-memory object store for new objects: they
 * reach the disk as one pack per pushed batch (push, ll_gitpack_store),
 * never as loose files.  The old handle goes first: libgit2 shares a pack
 * (and its cache of inflated delta bases, up to 16 MiB) among the handles
 * that have it open, so opening the new one first would keep the cache
 * (11 MB after the first scan of 10,000 tenants).  On failure g->repo is
 * NULL: the writer tries again at its next round (ensure_clone). */
static int open_clone(ll_gitops *g)
{
    git_repository *repo = NULL;
    git_odb_backend *memstore = NULL;

    git_repository_free(g->repo);
    g->repo = NULL;
    g->memstore = NULL;
    if (git_repository_open_bare(&repo, g->workdir) < 0)
        return git_fail(-1, "git: cannot open the local clone");
    if (ll_gitpack_add_memstore(&memstore, repo) < 0) {
        git_repository_free(repo);
        return -1;
    }
    g->repo = repo;
    g->memstore = memstore;
    return 0;
}

/* The clone is open, or opening it failed (set in the error). */
static int ensure_clone(ll_gitops *g)
{
    return g->repo ? 0 : open_clone(g);
}

/* A batch that could not be pushed: objects it left in memory (when they
 * could not be stored) go, and the outgoing ref that named its commit.  The
 * operations stay queued and are built anew. */
static void discard_unpushed(ll_gitops *g)
{
    if (!g->repo)
        return;
    git_reference *ref = NULL;
    ll_gitpack_discard(g->memstore);
    if (git_reference_lookup(&ref, g->repo, "refs/landlord/outgoing") == 0)
        git_reference_delete(ref);
    git_reference_free(ref);
}

/* --- packs ------------------------------------------------------------------ */

/* Has the packer merge packs once a batch is done (cheap: a flag). */
static void ask_packer(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    g->pack_asked = 1;
    pthread_cond_signal(&g->pack_wake);
    pthread_mutex_unlock(&g->lock);
}

/* Writer thread, between batches: the packer replaced packs, so the clone
 * is opened anew (the old handle holds removed files open). */
static int reopen_if_repacked(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    int reopen = g->reopen_clone;
    g->reopen_clone = 0;
    pthread_mutex_unlock(&g->lock);
    return reopen ? open_clone(g) : ensure_clone(g);
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
static void *packer_main(void *arg)
{
    ll_gitops *g = arg;
    int first = 1;

    for (;;) {
        pthread_mutex_lock(&g->lock);
        while (!g->pack_asked && !g->stopping && !first)
            pthread_cond_wait(&g->pack_wake, &g->lock);
        int stop = g->stopping;
        g->pack_asked = 0;
        pthread_mutex_unlock(&g->lock);
        if (stop || g->git_missing)
            break;
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

/* An in-memory remote for git-url, made for each fetch and push.  Not
 * git_remote_lookup("origin"): libgit2 1.5 reads a remote's url.*.insteadOf
 * rewrites with a config pattern, and its pattern matcher leaks pcre2 match
 * data (~20 KB) on every config entry that does not match, so each lookup
 * leaked ~160 KB.  landlord never configures insteadOf, and the refspecs
 * are given with each call, so nothing is read from the config. */
static int open_remote(git_remote **out, ll_gitops *g)
{
    git_remote_create_options o;
    git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    o.repository = g->repo;
    o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    return git_remote_create_with_opts(out, g->url, &o);
}

static int fetch(ll_gitops *g)
{
    git_remote *remote = NULL;
    git_fetch_options opts;
    remote_ctx rc = {g, 0, ""};
    char spec[600];
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    int error;

    git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
    snprintf(spec, sizeof(spec), "+refs/heads/%s:%s", g->branch, g->remote_ref);
    if (open_remote(&remote, g) < 0)
        return git_fail(-1, "git: cannot make the remote");
    opts.prune = GIT_FETCH_NO_PRUNE;
    opts.update_fetchhead = 0;
    opts.callbacks.credentials = on_credentials;
    opts.callbacks.certificate_check = on_certificate;
    opts.callbacks.payload = &rc;
    error = git_remote_fetch(remote, &refspecs, &opts, NULL);
    error = error < 0 ? remote_fail(g, error, "fetch from") : 0;
    git_remote_free(remote);
    return error;
}

/* Pushes commit to the branch without force.  LL_ECONFLICT when the remote
 * refused because its branch moved, LL_EUPSTREAM when it could not be
 * reached or refused us. */
static int push(ll_gitops *g, const git_oid *commit)
{
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    git_push_options opts;
    remote_ctx rc = {g, 0, ""};
    char spec[600];
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    int error = -1;

    git_push_options_init(&opts, GIT_PUSH_OPTIONS_VERSION);
    /* The commit's new objects go to disk (one pack) first: a clone that
     * cannot take them (a full volume) pushes nothing, and readers of the
     * clone (the status follower, history) find every object the
     * remote-tracking ref reaches.  A push that then fails leaves its few
     * new objects behind (packs are merged, never pruned). */
    int64_t t_store = ll_monotonic_ms();
    if ((error = ll_gitpack_store(g->repo, g->memstore, g->workdir)) < 0)
        goto done;
    ll_log_debug("msg=\"objects stored\" ms=%lld", (long long)(ll_monotonic_ms() - t_store));
    if (git_reference_create(&ref, g->repo, "refs/landlord/outgoing", commit, 1, NULL) < 0) {
        error = git_fail(-1, "git: cannot write the outgoing ref");
        goto done;
    }
    git_reference_free(ref);
    ref = NULL;
    snprintf(spec, sizeof(spec), "refs/landlord/outgoing:refs/heads/%s", g->branch);
    if (open_remote(&remote, g) < 0) {
        error = git_fail(-1, "git: cannot make the remote");
        goto done;
    }
    opts.callbacks.credentials = on_credentials;
    opts.callbacks.certificate_check = on_certificate;
    opts.callbacks.push_update_reference = on_push_update;
    opts.callbacks.payload = &rc;
    if ((error = git_remote_push(remote, &refspecs, &opts)) < 0) {
        /* libgit2 checks fast-forward itself before sending. */
        const git_error *e = git_error_last();
        if (error == GIT_ENONFASTFORWARD ||
            (e && e->message && strstr(e->message, "not present locally")))
            error = ll_error_set(LL_ECONFLICT, "git: push rejected: the branch moved");
        else
            error = remote_fail(g, error, "push to");
        goto done;
    }
    if (rc.rejected[0]) {
        error = ll_error_set(LL_ECONFLICT, "git: push rejected by the remote: %s", rc.rejected);
        goto done;
    }
    if (git_reference_create(&ref, g->repo, g->remote_ref, commit, 1, "push") < 0) {
        error = git_fail(-1, "git: cannot record the pushed head");
        goto done;
    }
    error = 0;
done:
    git_reference_free(ref);
    git_remote_free(remote);
    return error;
}

/* The remote head commit as last fetched or pushed; *out NULL when the branch
 * does not exist. */
static int remote_head(git_commit **out, ll_gitops *g)
{
    git_oid oid;
    *out = NULL;
    if (git_reference_name_to_id(&oid, g->repo, g->remote_ref) < 0)
        return 0;
    if (git_commit_lookup(out, g->repo, &oid) < 0)
        return git_fail(-1, "git: cannot read the remote head");
    return 0;
}

/* --- operations --------------------------------------------------------------- */

/* An operation's outcome on the failing side: why, and the error class. */
static json_t *failure(long long id, const char *type)
{
    return json_pack("{s:I, s:b, s:s, s:s}", "id", (json_int_t)id, "ok", 0, "error",
                     ll_error_last()->message, "error_type", type);
}

/* Records that entry must be in (add) or out of the kustomization at path.
 * The edits of a whole batch are made at once, one parse per file
 * (apply_kustomizations), so a batch costs one edit of each tier's list
 * however long the list is. */
static int kustomization_change(json_t *intents, const char *path, const char *entry, int add)
{
    json_t *entries = json_object_get(intents, path);
    if (!entries && json_object_set_new(intents, path, entries = json_object()) < 0)
        return ll_error_set(-1, "out of memory");
    return json_object_set_new(entries, entry, json_boolean(add)) < 0
               ? ll_error_set(-1, "out of memory")
               : 0;
}

static const char *op_str(const json_t *op, const char *key)
{
    return json_string_value(json_object_get(op, key));
}

#define SHARD_KUSTOMIZATION                                                                        \
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"

void ll_tenant_file_path(char *out, size_t cap, const char *root, int sharded, const char *tier,
                         const char *id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!sharded || !EVP_Digest(id, strlen(id), md, &n, EVP_sha256(), NULL) || n < 1) {
        snprintf(out, cap, "%s/tenants/%s/%s.yaml", root, tier, id);
        return;
    }
    snprintf(out, cap, "%s/tenants/%s/%02x/%s.yaml", root, tier, md[0], id);
}

/* Where tenant's file in tier is: the configured layout's path when the file
 * is there or nowhere, else the other layout's (a flat file adopted while
 * the layout is sharded stays where it is).  dir gets its folder. */
static void tenant_location(char *path, size_t cap, char *dir, size_t dir_cap, ll_gitops *g,
                            ll_overlay *ov, const char *tier, const char *tenant)
{
    ll_tenant_file_path(path, cap, g->root, g->sharded, tier, tenant);
    if (!ll_overlay_exists(ov, path)) {
        ll_tenant_file_path(path, cap, g->root, !g->sharded, tier, tenant);
        if (!ll_overlay_exists(ov, path))
            ll_tenant_file_path(path, cap, g->root, g->sharded, tier, tenant);
    }
    snprintf(dir, dir_cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
}

/* Nothing is rendered from a template that breaks the tier policy, and no
 * tenant's values may set what the template derives from the tenant's
 * identity.  The API checked both against the catalogue; the template read
 * here may be newer (a foreign writer), so it is checked again unless it is
 * the catalogue's own text, whose verdict stands.  *why is the class of a
 * failure. */
static int check_tier_template(ll_gitops *g, const char *tier, const char *tmpl, size_t len,
                               const json_t *values, const char **why)
{
    json_t *cat = ll_gitops_tiers(g), *locked = NULL;
    const json_t *known = ll_tiers_find(cat, tier);
    const json_t *text = json_object_get(known, "template");
    char msg[LL_ERROR_MSG_MAX];
    const char *rule = NULL;
    int error;

    *why = "conflict";
    if (text && json_string_length(text) == len &&
        memcmp(json_string_value(text), tmpl, len) == 0) {
        if ((error = ll_tiers_usable(known)) == 0 &&
            (error = ll_tiers_check_values(known, values)) < 0)
            *why = "render-failed";
        json_decref(cat);
        return error;
    }
    ll_tier_policy policy = {g->tier_kinds, g->flux_namespace, json_object_get(cat, "pools")};
    if ((error = ll_template_check_policy(&rule, tmpl, len, &policy)) < 0 ||
        (error = ll_template_locked_values(&locked, tmpl, len, policy.pools)) < 0) {
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        error = ll_error_set(LL_ECONFLICT,
                             "tier '%s' breaks the tier policy (%s), so its tenants are not "
                             "rendered until its template is fixed: %s",
                             tier, rule ? rule : "template", msg);
    } else if ((error = ll_template_check_values(locked, values)) < 0) {
        *why = "render-failed";
    }
    json_decref(locked);
    json_decref(cat);
    return error;
}

/* Renders the tenant of op into tier and writes it there, with its
 * kustomization entry.  A different file already there is a conflict unless
 * replace (an update re-renders its own file). */
static int put_tenant(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op,
                      const char *tier, int replace, const char **why)
{
    const char *tenant = op_str(op, "tenant");
    const json_t *payload = json_object_get(op, "payload");
    char path[1024], dir[1000], entry[128], *tmpl = NULL, *rendered = NULL, *existing = NULL;
    size_t tmpl_len = 0, rendered_len = 0, existing_len = 0;
    /* What the file carries: the exact chart version chosen for the tenant
     * (chart_version), else its release as a range. */
    const char *version = json_string_value(json_object_get(payload, "chart_version"));
    ll_render_input in = {
        tenant, tier, version ? version : json_string_value(json_object_get(payload, "release")),
        NULL, json_object_get(payload, "values")};
    int error;

    *why = "conflict";
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if ((error = ll_overlay_read(&tmpl, &tmpl_len, ov, path)) < 0)
        goto done;
    if (!tmpl) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' has no template at %s", tier, path);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    if (!ll_overlay_exists(ov, path)) {
        error = ll_error_set(
            LL_ECONFLICT, "the tier folder %s/tenants/%s has no kustomization.yaml", g->root, tier);
        ll_error_hint("restore the tier folder in the repository");
        goto done;
    }
    if ((error = check_tier_template(g, tier, tmpl, tmpl_len, in.values, why)) < 0)
        goto done;
    if ((error = ll_template_render(&rendered, &rendered_len, tmpl, tmpl_len, &in)) < 0) {
        *why = "render-failed";
        goto done;
    }
    tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, tenant);
    if ((error = ll_overlay_read(&existing, &existing_len, ov, path)) < 0)
        goto done;
    if (existing && (existing_len != rendered_len || memcmp(existing, rendered, rendered_len))) {
        if (!replace) {
            error = ll_error_set(LL_ECONFLICT,
                                 "%s exists in the repository with other content (made by hand?)",
                                 path);
            ll_error_hint("remove or adopt the file, or pick another id");
            goto done;
        }
    }
    if (!existing || existing_len != rendered_len || memcmp(existing, rendered, rendered_len)) {
        error = ll_overlay_put(ov, path, rendered, rendered_len);
        rendered = NULL;
        if (error < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s", g->root, tier);
    if (strcmp(dir, path) != 0) {
        /* A shard: its own kustomization, listed by the tier's. */
        const char *shard = dir + strlen(path) + 1;
        snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
        if (!ll_overlay_exists(ov, path)) {
            char *text = strdup(SHARD_KUSTOMIZATION);
            if (!text || (error = ll_overlay_put(ov, path, text, strlen(text))) < 0) {
                error = text ? error : ll_error_set(-1, "out of memory");
                goto done;
            }
        }
        snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
        if ((error = kustomization_change(intents, path, shard, 1)) < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    error = kustomization_change(intents, path, entry, 1);
done:
    free(tmpl);
    free(rendered);
    free(existing);
    return error;
}

/* Removes the tenant's file from tier and its kustomization entry; absent
 * already is fine. */
static int remove_tenant(ll_gitops *g, ll_overlay *ov, json_t *intents, const char *tenant,
                         const char *tier)
{
    char path[1024], dir[1000], entry[128], *existing = NULL;
    size_t len = 0;
    int error;

    tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, tenant);
    if ((error = ll_overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (existing) {
        free(existing);
        if ((error = ll_overlay_put(ov, path, NULL, 0)) < 0)
            return error;
    }
    snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
    if (!ll_overlay_exists(ov, path))
        return 0;
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    return kustomization_change(intents, path, entry, 0);
}

/* Writes a tier's template (from the operation's payload), makes its
 * tenants folder with an empty kustomization when it has none, and lists
 * the folder in tenants/kustomization.yaml. */
static int put_tier(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op)
{
    const char *tier = op_str(op, "tier");
    const json_t *tmpl = json_object_get(json_object_get(op, "payload"), "template");
    char path[1024], *existing = NULL, *copy = NULL;
    size_t len = 0;
    int error;

    if (!json_is_string(tmpl))
        return ll_error_set(LL_EINVALID, "tier operation without a template");
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", g->root);
    if (!ll_overlay_exists(ov, path)) {
        ll_error_set(LL_ECONFLICT, "%s is missing: the repository has no tenants folder", path);
        ll_error_hint("restore the GitOps layout in the repository");
        return LL_ECONFLICT;
    }
    if ((error = kustomization_change(intents, path, tier, 1)) < 0)
        return error;
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if ((error = ll_overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (!existing || len != json_string_length(tmpl) ||
        memcmp(existing, json_string_value(tmpl), len) != 0) {
        if (!(copy = malloc(json_string_length(tmpl) + 1))) {
            free(existing);
            return ll_error_set(-1, "out of memory");
        }
        memcpy(copy, json_string_value(tmpl), json_string_length(tmpl) + 1);
        if ((error = ll_overlay_put(ov, path, copy, json_string_length(tmpl))) < 0) {
            free(existing);
            return error;
        }
    }
    free(existing);
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    if (!ll_overlay_exists(ov, path)) {
        char *text = strdup(SHARD_KUSTOMIZATION);
        if (!text)
            return ll_error_set(-1, "out of memory");
        if ((error = ll_overlay_put(ov, path, text, strlen(text))) < 0)
            return error;
    }
    return 0;
}

typedef struct folder_walk {
    const char *prefix; /* the tier folder, for paths */
    json_t *files;      /* repository paths of the blobs under it */
} folder_walk;

static int on_folder_entry(const char *root, const git_tree_entry *e, void *payload)
{
    folder_walk *w = payload;
    char path[1200];
    if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
        return 0;
    snprintf(path, sizeof(path), "%s/%s%s", w->prefix, root, git_tree_entry_name(e));
    json_array_append_new(w->files, json_string(path));
    return 0;
}

/* Removes a tier: its template, its tenants folder (which may only hold its
 * kustomization and empty shard kustomizations: a tenant file left there is
 * a conflict) and its entry in tenants/kustomization.yaml.  Absent already
 * is fine (a replay after a crash). */
static int delete_tier(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op)
{
    const char *tier = op_str(op, "tier");
    char dir[1024], path[1024];
    git_tree_entry *entry = NULL;
    git_tree *tree = NULL;
    folder_walk w = {dir, json_array()};
    json_t *file;
    size_t i;
    int error = 0;

    snprintf(dir, sizeof(dir), "%s/tenants/%s", g->root, tier);
    if (ov->base && git_tree_entry_bypath(&entry, ov->base, dir) == 0 &&
        git_tree_entry_type(entry) == GIT_OBJECT_TREE &&
        git_tree_lookup(&tree, g->repo, git_tree_entry_id(entry)) == 0 &&
        git_tree_walk(tree, GIT_TREEWALK_PRE, on_folder_entry, &w) < 0) {
        error = git_fail(-1, "git: cannot list the tier folder");
        goto done;
    }
    json_array_foreach(w.files, i, file)
    {
        const char *f = json_string_value(file), *name = strrchr(f, '/');
        char *text = NULL;
        size_t len = 0;
        json_t *list = NULL;
        int empty = 0;
        if (name && strcmp(name + 1, "kustomization.yaml") == 0) {
            if (strlen(f) == strlen(dir) + strlen("/kustomization.yaml"))
                empty = 1; /* the tier's own list goes with the folder */
            else if (ll_overlay_read(&text, &len, ov, f) == 0 && text &&
                     ll_kustomize_resources(&list, text, len) == 0)
                empty = json_array_size(list) == 0;
        }
        free(text);
        json_decref(list);
        if (!empty) {
            error = ll_error_set(LL_ECONFLICT, "tier folder %s still holds %s", dir, f);
            ll_error_hint("offboard or move the tenants of tier '%s' first", tier);
            goto done;
        }
    }
    json_array_foreach(w.files, i, file)
    {
        if ((error = ll_overlay_put(ov, json_string_value(file), NULL, 0)) < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if (ll_overlay_exists(ov, path) && (error = ll_overlay_put(ov, path, NULL, 0)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", g->root);
    if (ll_overlay_exists(ov, path))
        error = kustomization_change(intents, path, tier, 0);
done:
    json_decref(w.files);
    git_tree_free(tree);
    git_tree_entry_free(entry);
    return error;
}

/* Sets the chart version of the file at path to version, in place (only
 * that field changes); a missing file is left alone. */
static int set_version(ll_overlay *ov, const char *path, const char *version)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    int changed = 0, error;

    if ((error = ll_overlay_read(&text, &len, ov, path)) < 0 || !text)
        return error;
    if ((error = ll_template_set_chart_version(&out, &out_len, &changed, text, len, version)) < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        ll_error_set(LL_ECONFLICT, "%s: %s", path, why);
    } else if (changed) {
        error = ll_overlay_put(ov, path, out, out_len);
        out = NULL;
    }
    free(text);
    free(out);
    return error;
}

/* A rollout operation: every tenant of a wave (or every tenant a rollback
 * returns) and the pool environments moving with it get their chart
 * version, as in-place edits of that one field, in one commit.  A tenant
 * whose file vanished is left out (it reads drifted). */
static int apply_rollout(ll_gitops *g, ll_overlay *ov, const json_t *op)
{
    const json_t *payload = json_object_get(op, "payload"), *t;
    char path[1024], dir[1000];
    size_t i;
    int error;

    json_array_foreach(json_object_get(payload, "tenants"), i, t)
    {
        const char *id = op_str(t, "id"), *tier = op_str(t, "tier"), *at = op_str(t, "path");
        if (!id || !tier || !op_str(t, "to") || ll_validate_tenant_id(id) < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad tenant");
        if (at)
            snprintf(path, sizeof(path), "%s", at);
        else
            tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, id);
        if ((error = set_version(ov, path, op_str(t, "to"))) < 0)
            return error;
    }
    json_array_foreach(json_object_get(payload, "pools"), i, t)
    {
        const char *name = op_str(t, "name");
        if (!name || !op_str(t, "to") || ll_validate_label(name, 63, "pool") < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad pool");
        snprintf(path, sizeof(path), "%s/pooled-envs/%s.yaml", g->root, name);
        if ((error = set_version(ov, path, op_str(t, "to"))) < 0)
            return error;
    }
    return 0;
}

static int apply_op(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op,
                    const char **why)
{
    const char *kind = op_str(op, "kind"), *tier = op_str(op, "tier");
    *why = "conflict";
    if (strcmp(kind, "tier_put") == 0)
        return put_tier(g, ov, intents, op);
    if (strcmp(kind, "tier_delete") == 0)
        return delete_tier(g, ov, intents, op);
    if (strcmp(kind, "rollout") == 0)
        return apply_rollout(g, ov, op);
    if (strcmp(kind, "onboard") == 0)
        return put_tenant(g, ov, intents, op, tier, 0, why);
    if (strcmp(kind, "offboard") == 0)
        return remove_tenant(g, ov, intents, op_str(op, "tenant"), tier);
    /* update: leave the old tier folder first when the tier changes */
    const char *from =
        json_string_value(json_object_get(json_object_get(op, "payload"), "from_tier"));
    int error;
    if (from && strcmp(from, tier) != 0 &&
        (error = remove_tenant(g, ov, intents, op_str(op, "tenant"), from)) < 0)
        return error;
    return put_tenant(g, ov, intents, op, tier, 1, why);
}

static void describe(ll_buf *b, const json_t *op)
{
    const char *kind = op_str(op, "kind"), *tenant = op_str(op, "tenant"),
               *tier = op_str(op, "tier");
    const json_t *payload = json_object_get(op, "payload");
    const char *from = json_string_value(json_object_get(payload, "from_tier"));
    if (strcmp(kind, "rollout") == 0) {
        long long rollout = (long long)json_integer_value(json_object_get(payload, "rollout"));
        size_t n = json_array_size(json_object_get(payload, "tenants")),
               pools = json_array_size(json_object_get(payload, "pools"));
        const char *version = op_str(payload, "version");
        if (strcmp(op_str(payload, "action") ? op_str(payload, "action") : "", "rollback") == 0)
            ll_buf_printf(b,
                          "Roll back rollout %lld of %s: %zu tenant(s)%s to their previous "
                          "version",
                          rollout, version ? version : "?", n, pools ? " and pools" : "");
        else
            ll_buf_printf(b, "Roll out %s, rollout %lld wave %lld: %zu tenant(s)%s",
                          version ? version : "?", rollout,
                          (long long)json_integer_value(json_object_get(payload, "wave")), n,
                          pools ? " and pools" : "");
        return;
    }
    if (strcmp(kind, "tier_put") == 0)
        ll_buf_printf(b, "%s tier %s",
                      json_is_true(json_object_get(payload, "replace")) ? "Replace" : "Add", tier);
    else if (strcmp(kind, "tier_delete") == 0)
        ll_buf_printf(b, "Delete tier %s", tier);
    else if (strcmp(kind, "onboard") == 0)
        ll_buf_printf(b, "Onboard tenant %s (%s)", tenant, tier);
    else if (strcmp(kind, "offboard") == 0)
        ll_buf_printf(b, "Offboard tenant %s (%s)", tenant, tier);
    else if (from && strcmp(from, tier) != 0)
        ll_buf_printf(b, "Move tenant %s (%s -> %s)", tenant, from, tier);
    else
        ll_buf_printf(b, "Update tenant %s (%s)", tenant, tier);
}

/* "Onboard tenant acme (premium)", or a summary line and one line per
 * operation; then the trailer naming the operations. */
static void commit_message(ll_buf *msg, const json_t *applied)
{
    size_t i, n = json_array_size(applied);
    json_t *op;

    if (n == 1) {
        describe(msg, json_array_get(applied, 0));
        ll_buf_adds(msg, "\n");
    } else {
        ll_buf_printf(msg, "Apply %zu tenant operations\n\n", n);
        json_array_foreach(applied, i, op)
        {
            ll_buf_adds(msg, "- ");
            describe(msg, op);
            ll_buf_adds(msg, "\n");
        }
    }
    ll_buf_adds(msg, "\nLandlord-Operations:");
    json_array_foreach(applied, i, op)
        ll_buf_printf(msg, " %lld", (long long)json_integer_value(json_object_get(op, "id")));
    ll_buf_adds(msg, "\n");
}

static int make_commit(git_oid *out, ll_gitops *g, const git_oid *tree_id, git_commit *parent,
                       const char *author_name, const char *author_email, const char *message)
{
    git_signature *author = NULL, *committer = NULL;
    git_tree *tree = NULL;
    const git_commit *parents[] = {parent};
    int error = -1;

    if (git_signature_now(&committer, g->author_name, g->author_email) < 0 ||
        git_signature_now(&author, author_name, author_email) < 0) {
        error = git_fail(-1, "git: bad commit identity");
        goto done;
    }
    if (git_tree_lookup(&tree, g->repo, tree_id) < 0) {
        error = git_fail(-1, "git: cannot read the new tree");
        goto done;
    }
    if (git_commit_create(out, g->repo, NULL, author, committer, NULL, message, tree,
                          parent ? 1 : 0, parents) < 0) {
        error = git_fail(-1, "git: cannot write the commit");
        goto done;
    }
    error = 0;
done:
    git_tree_free(tree);
    git_signature_free(author);
    git_signature_free(committer);
    return error;
}

static json_t *read_tiers(ll_gitops *g, git_commit *commit)
{
    json_t *files = json_object(), *cat;
    git_tree *tree = NULL, *dir = NULL;
    git_tree_entry *entry = NULL;
    ll_overlay ov = {0};
    char path[1024], *text = NULL;
    size_t len;

    if (commit && git_commit_tree(&tree, commit) == 0) {
        ov.repo = g->repo;
        ov.base = tree;
        snprintf(path, sizeof(path), "%s/tier-templates", g->root);
        if (git_tree_entry_bypath(&entry, tree, path) == 0 &&
            git_tree_entry_type(entry) == GIT_OBJECT_TREE &&
            git_tree_lookup(&dir, g->repo, git_tree_entry_id(entry)) == 0) {
            for (size_t i = 0; i < git_tree_entrycount(dir); i++) {
                const git_tree_entry *e = git_tree_entry_byindex(dir, i);
                snprintf(path, sizeof(path), "%s/tier-templates/%s", g->root,
                         git_tree_entry_name(e));
                if (ll_overlay_read(&text, &len, &ov, path) == 0 && text)
                    json_object_set_new(files, path, json_stringn(text, len));
                free(text);
                text = NULL;
            }
        }
        snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
        if (ll_overlay_read(&text, &len, &ov, path) == 0 && text) {
            json_t *pools = NULL, *pool;
            size_t i;
            json_object_set_new(files, path, json_stringn(text, len));
            /* The pool environments it lists: their chart versions. */
            if (ll_kustomize_resources(&pools, text, len) == 0) {
                json_array_foreach(pools, i, pool)
                {
                    char *ptext = NULL;
                    size_t plen = 0;
                    snprintf(path, sizeof(path), "%s/pooled-envs/%s", g->root,
                             json_string_value(pool));
                    if (!strchr(json_string_value(pool), '/') &&
                        ll_overlay_read(&ptext, &plen, &ov, path) == 0 && ptext)
                        json_object_set_new(files, path, json_stringn(ptext, plen));
                    free(ptext);
                }
            }
            json_decref(pools);
        }
        free(text);
    }
    ll_tier_policy policy = {g->tier_kinds, g->flux_namespace, NULL};
    cat = ll_tiers_build(files, g->root, &policy);
    json_decref(files);
    git_tree_free(dir);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    return cat;
}

static void publish_tiers(ll_gitops *g, git_commit *head)
{
    json_t *cat = read_tiers(g, head), *old;
    pthread_mutex_lock(&g->lock);
    old = g->tiers;
    g->tiers = cat;
    pthread_mutex_unlock(&g->lock);
    json_decref(old);
}

/* Makes the registry and the tier catalogue follow the remote head, when it
 * is one they have not followed yet. */
static int follow_head(ll_gitops *g, json_t **out_stats)
{
    git_commit *head = NULL;
    git_tree *tree = NULL;
    char sha[GIT_OID_HEXSZ + 1];
    int error;

    if (out_stats)
        *out_stats = NULL;
    if ((error = remote_head(&head, g)) < 0 || !head)
        return error;
    if (g->have_scanned && git_oid_equal(&g->scanned, git_commit_id(head))) {
        git_commit_free(head);
        return 0;
    }
    git_oid_tostr(sha, sizeof(sha), git_commit_id(head));
    if (git_commit_tree(&tree, head) < 0) {
        error = git_fail(-1, "git: cannot read the head tree");
    } else if ((error = ll_adopt_scan(out_stats, g->repo, tree, sha, g->root, g->default_release,
                                      g->reg)) == 0) {
        git_oid_cpy(&g->scanned, git_commit_id(head));
        g->have_scanned = 1;
        publish_tiers(g, head);
    }
    git_tree_free(tree);
    git_commit_free(head);
    return error;
}

static void jitter_sleep(ll_gitops *g, int attempt)
{
    int cap = 20 << (attempt < 6 ? attempt : 6); /* 20 ms .. 1.3 s */
    int ms = (int)(rand_r(&g->seed_rand) % (unsigned)cap);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Makes the batch's kustomization edits, one parse per file.  When a file
 * cannot be edited, *out_broken = {"error", "ops": [ids that touched it]}
 * and nothing is written for it. */
static int apply_kustomizations(json_t **out_broken, ll_overlay *ov, const json_t *plan,
                                const json_t *touched)
{
    const char *path;
    json_t *entries;

    *out_broken = NULL;
    json_object_foreach((json_t *)plan, path, entries)
    {
        json_t *add = json_array(), *remove = json_array(), *want;
        const char *entry;
        char *text = NULL, *out = NULL;
        size_t len = 0, out_len = 0;
        int changed = 0, error;

        json_object_foreach(entries, entry, want)
            json_array_append_new(json_is_true(want) ? add : remove, json_string(entry));
        error = ll_overlay_read(&text, &len, ov, path);
        if (error == 0 && !text)
            error = ll_error_set(LL_ECONFLICT, "%s is missing", path);
        if (error == 0)
            error = ll_kustomize_edit(&out, &out_len, &changed, text, len, add, remove);
        free(text);
        json_decref(add);
        json_decref(remove);
        if (error < 0) {
            char why[LL_ERROR_MSG_MAX + 1024];
            snprintf(why, sizeof(why), "%s: %s", path, ll_error_last()->message);
            ll_log_warn("msg=\"kustomization cannot be edited\" error=\"%s\"", why);
            *out_broken =
                json_pack("{s:s, s:O}", "error", why, "ops", json_object_get(touched, path));
            return 0;
        }
        if (!changed) {
            free(out);
            continue;
        }
        if ((error = ll_overlay_put(ov, path, out, out_len)) < 0)
            return error;
    }
    return 0;
}

/* One batch being built: the operations applied to an overlay of a base
 * commit's tree. */
typedef struct batch {
    ll_overlay ov;
    git_commit *head; /* the base commit, or NULL for an empty branch */
    git_tree *base;
    json_t *applied;   /* operations that applied */
    json_t *effective; /* those that changed something (named in the trailer) */
    json_t *failed;    /* outcomes of operations that failed alone */
} batch;

static void batch_free(batch *b)
{
    ll_overlay_free(&b->ov);
    git_tree_free(b->base);
    git_commit_free(b->head);
    json_decref(b->applied);
    json_decref(b->effective);
    json_decref(b->failed);
    memset(b, 0, sizeof(*b));
}

/* Whether an operation's kustomization intents change the file as the batch
 * found it (members caches each file's entries). */
static int intents_change(ll_overlay *ov, json_t *members, const json_t *intents)
{
    const char *path, *entry;
    json_t *entries, *want;

    json_object_foreach((json_t *)intents, path, entries)
    {
        json_t *set = json_object_get(members, path);
        if (!set) {
            char *text = NULL;
            size_t len = 0;
            json_t *list = NULL, *v;
            size_t i;
            set = json_object();
            if (ll_overlay_read(&text, &len, ov, path) == 0 && text &&
                ll_kustomize_resources(&list, text, len) == 0)
                json_array_foreach(list, i, v)
                    json_object_set(set, json_string_value(v), json_true());
            json_decref(list);
            free(text);
            json_object_set_new(members, path, set);
        }
        json_object_foreach(entries, entry, want)
        {
            if (json_is_true(want) != (json_object_get(set, entry) != NULL))
                return 1;
        }
    }
    return 0;
}

/* Applies the operations of work on the remote head.  Operations that fail
 * alone go to b->failed; operations whose kustomization cannot be edited go
 * to kfailed and leave work, and the batch is built again without them. */
static int build(batch *b, ll_gitops *g, json_t *work, json_t *kfailed)
{
    int error;

    for (;;) {
        json_t *plan = json_object(), *touched = json_object(), *members = json_object(), *op,
               *broken = NULL;
        size_t i;

        memset(b, 0, sizeof(*b));
        b->applied = json_array();
        b->effective = json_array();
        b->failed = json_array();
        if ((error = remote_head(&b->head, g)) < 0)
            goto fail;
        if (b->head && git_commit_tree(&b->base, b->head) < 0) {
            error = git_fail(-1, "git: cannot read the head tree");
            goto fail;
        }
        b->ov.repo = g->repo;
        b->ov.base = b->base;
        json_array_foreach(work, i, op)
        {
            const char *why = "conflict", *path;
            long long id = json_integer_value(json_object_get(op, "id"));
            json_t *intents = json_object(), *entries;
            size_t puts = b->ov.puts;
            ll_overlay_begin(&b->ov);
            if (apply_op(g, &b->ov, intents, op, &why) < 0) {
                /* Fails alone: its partial changes are taken back. */
                ll_overlay_undo(&b->ov);
                json_array_append_new(b->failed, failure(id, why));
                ll_log_warn("msg=\"operation failed\" op=%lld tenant=%s error=\"%s\"", id,
                            op_str(op, "tenant") ? op_str(op, "tenant") : "-",
                            ll_error_last()->message);
                json_decref(intents);
                continue;
            }
            ll_overlay_keep(&b->ov);
            json_array_append(b->applied, op);
            /* A replayed operation whose change is already there (pushed just
             * before a crash) is not named again. */
            if (b->ov.puts != puts || intents_change(&b->ov, members, intents))
                json_array_append(b->effective, op);
            json_object_foreach(intents, path, entries)
            {
                json_t *p = json_object_get(plan, path), *t = json_object_get(touched, path);
                if (!p) {
                    json_object_set_new(plan, path, p = json_object());
                    json_object_set_new(touched, path, t = json_array());
                }
                json_object_update(p, entries); /* the later operation wins */
                json_array_append_new(t, json_integer(id));
            }
            json_decref(intents);
        }
        error = apply_kustomizations(&broken, &b->ov, plan, touched);
        json_decref(plan);
        json_decref(touched);
        json_decref(members);
        if (error < 0)
            goto fail;
        if (!broken)
            return 0;
        /* A kustomization that cannot be edited fails the operations that
         * touch it; the rest is built again without them. */
        json_t *why = json_object_get(broken, "error"), *bad;
        json_array_foreach(json_object_get(broken, "ops"), i, bad)
        {
            for (size_t w = 0; w < json_array_size(work); w++) {
                if (json_integer_value(json_object_get(json_array_get(work, w), "id")) ==
                    json_integer_value(bad)) {
                    json_array_remove(work, w);
                    break;
                }
            }
            json_array_append_new(kfailed, json_pack("{s:O, s:b, s:O, s:s}", "id", bad, "ok", 0,
                                                     "error", why, "error_type", "conflict"));
        }
        json_decref(broken);
        batch_free(b);
    }
fail:
    batch_free(b);
    return error;
}

static int same_entry(git_tree *a, git_tree *b, const char *path)
{
    git_tree_entry *ea = NULL, *eb = NULL;
    int ha = a && git_tree_entry_bypath(&ea, a, path) == 0;
    int hb = b && git_tree_entry_bypath(&eb, b, path) == 0;
    int same = ha == hb && (!ha || git_oid_equal(git_tree_entry_id(ea), git_tree_entry_id(eb)));
    git_tree_entry_free(ea);
    git_tree_entry_free(eb);
    return same;
}

/* Moves the batch onto new_head when the commits in between touched
 * nothing it changed or rendered from (its files, its kustomizations, the
 * tier templates): then its changes stand as they are, with no rebuild.
 * Returns 1 when moved. */
static int move_batch(batch *b, ll_gitops *g, git_commit *new_head)
{
    git_tree *tree = NULL;
    char templates[600];

    if (!new_head || git_commit_tree(&tree, new_head) < 0)
        return 0;
    snprintf(templates, sizeof(templates), "%s/tier-templates", g->root);
    int ok = same_entry(b->base, tree, templates);
    for (size_t i = 0; ok && i < b->ov.n; i++)
        ok = same_entry(b->base, tree, b->ov.changes[i].path);
    /* Where a tenant's file goes depends on whether it exists in the other
     * layout, so those paths count too. */
    for (size_t i = 0; ok && i < json_array_size(b->applied); i++) {
        const json_t *op = json_array_get(b->applied, i);
        if (!op_str(op, "tenant"))
            continue; /* a rollout: it edits files in place, found where they are */
        const char *tiers[] = {
            op_str(op, "tier"),
            json_string_value(json_object_get(json_object_get(op, "payload"), "from_tier"))};
        for (int t = 0; ok && t < 2; t++) {
            char path[1024];
            if (!tiers[t])
                continue;
            ll_tenant_file_path(path, sizeof(path), g->root, !g->sharded, tiers[t],
                                op_str(op, "tenant"));
            ok = same_entry(b->base, tree, path);
        }
    }
    if (!ok) {
        git_tree_free(tree);
        return 0;
    }
    git_tree_free(b->base);
    git_commit_free(b->head);
    b->base = tree;
    b->ov.base = tree;
    git_commit_dup(&b->head, new_head);
    return 1;
}

/* Applies ops on the remote head, commits and pushes; fills results.  On a
 * moved branch fetches and follows, then moves the batch onto the new head
 * (or rebuilds it when the new commits touched what it changed) and pushes
 * again.  Returns 0 when results hold every op; LL_EUPSTREAM (remote
 * unreachable) or LL_ECONFLICT (the branch kept moving) leave them queued. */
static int run_batch(ll_gitops *g, const json_t *ops, json_t *results)
{
    const json_t *author = json_object_get(json_array_get(ops, 0), "author");
    json_t *work = json_array(), *kfailed = json_array(), *op;
    batch b = {0};
    int error = -1, built = 0;
    size_t i;

    json_array_extend(work, (json_t *)ops);
    for (int attempt = 0; attempt < g->push_attempts; attempt++) {
        git_oid tree_id, commit_id;
        char sha[GIT_OID_HEXSZ + 1] = "";
        int changed = 0;
        ll_buf msg;

        int64_t t0 = ll_monotonic_ms();
        if (!built && (error = build(&b, g, work, kfailed)) < 0)
            break;
        built = 1;
        int64_t t_write = ll_monotonic_ms();
        if ((error = ll_overlay_write(&tree_id, &changed, &b.ov)) < 0)
            break;
        ll_log_debug("msg=\"applied\" ops=%zu apply_ms=%lld write_ms=%lld", json_array_size(work),
                     (long long)(t_write - t0), (long long)(ll_monotonic_ms() - t_write));
        if (!changed) {
            if (b.head)
                git_oid_tostr(sha, sizeof(sha), git_commit_id(b.head));
        } else {
            ll_buf_init(&msg, 1 << 20);
            commit_message(&msg, json_array_size(b.effective) ? b.effective : b.applied);
            error = make_commit(&commit_id, g, &tree_id, b.head,
                                json_string_value(json_object_get(author, "name")),
                                json_string_value(json_object_get(author, "email")), msg.data);
            ll_buf_free(&msg);
            if (error < 0)
                break;
            int64_t t_push = ll_monotonic_ms();
            error = push(g, &commit_id);
            int64_t push_ms = ll_monotonic_ms() - t_push;
            ll_log_debug("msg=\"pushed\" ms=%lld", (long long)push_ms);
            if (error == 0) {
                int k = 0;
                while (k < LL_PUSH_BUCKETS && push_ms > ll_push_bounds_ms[k])
                    k++;
                pthread_mutex_lock(&g->lock);
                g->push_buckets[k]++;
                g->push_count++;
                g->push_sum_ms += push_ms;
                pthread_mutex_unlock(&g->lock);
            }
            if (error == LL_ECONFLICT) {
                char refused[LL_ERROR_MSG_MAX];
                git_commit *now = NULL;
                snprintf(refused, sizeof(refused), "%s", ll_error_last()->message);
                ll_log_info("msg=\"push rejected: the branch moved; fetching and rebuilding\" "
                            "attempt=%d",
                            attempt + 1);
                /* Back off first, then fetch and move or rebuild at once: work
                 * on a head fetched before the pause would lose again. */
                if (attempt > 0)
                    jitter_sleep(g, attempt);
                if ((error = fetch(g)) < 0 || (error = follow_head(g, NULL)) < 0 ||
                    (error = remote_head(&now, g)) < 0)
                    break;
                if (now && b.head && git_oid_equal(git_commit_id(now), git_commit_id(b.head))) {
                    /* The branch did not move: the remote refused for another
                     * reason (a stale lock, a hook).  That is an outage. */
                    git_commit_free(now);
                    error =
                        ll_error_set(LL_EUPSTREAM, "git: the remote refused the push: %s", refused);
                    break;
                }
                if (!move_batch(&b, g, now)) {
                    batch_free(&b);
                    built = 0;
                }
                git_commit_free(now);
                error = LL_ECONFLICT;
                continue;
            }
            if (error < 0)
                break;
            git_oid_tostr(sha, sizeof(sha), &commit_id);
            /* Our own commit: the registry already knows what it holds. */
            if (g->have_scanned && b.head && git_oid_equal(&g->scanned, git_commit_id(b.head)))
                git_oid_cpy(&g->scanned, &commit_id);
            git_commit_free(b.head);
            b.head = NULL;
            if (git_commit_lookup(&b.head, g->repo, &commit_id) == 0)
                publish_tiers(g, b.head);
        }
        json_array_foreach(b.applied, i, op)
        {
            json_array_append_new(results,
                                  json_pack("{s:O, s:b, s:s}", "id", json_object_get(op, "id"),
                                            "ok", 1, "commit", sha));
        }
        json_array_extend(results, b.failed);
        json_array_extend(results, kfailed);
        set_status(g, b.head ? git_commit_id(b.head) : NULL, NULL);
        error = 0;
        break;
    }
    if (error == LL_ECONFLICT)
        ll_error_set(LL_ECONFLICT, "git: the branch kept moving: %d push attempts refused",
                     g->push_attempts);
    batch_free(&b);
    json_decref(work);
    json_decref(kfailed);
    return error;
}

/* The remote could not be reached: writes queue, retries back off. */
static void enter_degraded(ll_gitops *g, const char *why)
{
    int64_t now = ll_monotonic_ms();
    g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (g->backoff_ms > BACKOFF_MAX_MS)
        g->backoff_ms = BACKOFF_MAX_MS;
    g->retry_at_ms = now + g->backoff_ms / 2 + rand_r(&g->seed_rand) % (g->backoff_ms / 2 + 1);
    if (!g->degraded)
        ll_log_warn("msg=\"cannot push; writes queue until it works again\" error=\"%s\"", why);
    g->degraded = 1;
    set_status(g, NULL, why);
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

/* Operations of one author from the head of the queue. */
static void same_author(json_t *ops)
{
    const json_t *first = json_object_get(json_array_get(ops, 0), "author");
    for (size_t i = 1; i < json_array_size(ops); i++) {
        if (!json_equal(json_object_get(json_array_get(ops, i), "author"), (json_t *)first)) {
            while (json_array_size(ops) > i)
                json_array_remove(ops, i);
            return;
        }
    }
}

/* A tier change is a commit of its own: the batch is the tier operation
 * alone, or the operations before the first one. */
static void tier_ops_alone(json_t *ops)
{
    for (size_t i = 0; i < json_array_size(ops); i++) {
        if (strncmp(op_str(json_array_get(ops, i), "kind"), "tier_", 5) == 0) {
            size_t keep = i == 0 ? 1 : i;
            while (json_array_size(ops) > keep)
                json_array_remove(ops, keep);
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
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
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
        json_t *ops = NULL, *results;
        int64_t t0 = ll_monotonic_ms();
        int error;

        if ((error = reopen_if_repacked(g)) < 0)
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
        if (json_array_size(ops) == 0) {
            json_decref(ops);
            return 0;
        }
        same_author(ops);
        tier_ops_alone(ops);
        last = json_array_size(ops);
        results = json_array();
        if ((error = run_batch(g, ops, results)) < 0) {
            char why[LL_ERROR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", ll_error_last()->message);
            discard_unpushed(g);
            ll_registry_ops_attempted(g->reg, ops, why);
            json_decref(results);
            json_decref(ops);
            ll_error_set(error, "%s", why);
            return error;
        }
        if ((error = ll_registry_ops_finish(g->reg, results)) < 0) {
            /* Pushed but not recorded (a full volume): back off as for an
             * outage; they replay as no-ops once the registry takes writes. */
            ll_log_error("msg=\"cannot record outcomes\" error=\"%s\"", ll_error_last()->message);
            json_decref(results);
            json_decref(ops);
            return error;
        }
        leave_degraded(g);
        ll_log_info("msg=\"batch pushed\" ops=%zu ms=%lld", json_array_size(ops),
                    (long long)(ll_monotonic_ms() - t0));
        json_decref(results);
        json_decref(ops);
        if (ll_registry_ops_count_queued(&waiting, g->reg) < 0)
            waiting = 0;
        publish_progress(g);
        ask_packer(g);
    }
}

static void *writer_main(void *arg)
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
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g->wake, &g->lock, &ts);
            now = ll_monotonic_ms();
        }
        if (g->stopping) {
            pthread_mutex_unlock(&g->lock);
            break;
        }
        g->notified = 0;
        pthread_mutex_unlock(&g->lock);

        if ((error = ensure_clone(g)) < 0) {
            enter_degraded(g, ll_error_last()->message);
            publish_progress(g);
            continue;
        }
        if (g->degraded || now >= g->next_poll_ms) {
            g->next_poll_ms = now + g->poll_interval_ms;
            if ((error = fetch(g)) < 0 || (error = follow_head(g, NULL)) < 0) {
                char why[LL_ERROR_MSG_MAX];
                json_t *queued = NULL;
                snprintf(why, sizeof(why), "%s", ll_error_last()->message);
                /* The queued operations say why they wait. */
                if (ll_registry_ops_queued(&queued, g->reg, g->batch_size) == 0)
                    ll_registry_ops_attempted(g->reg, queued, why);
                json_decref(queued);
                enter_degraded(g, why);
                publish_progress(g);
                continue;
            }
        }
        if ((error = drain(g)) == LL_ECONFLICT) {
            /* Reachable, only busy: other writers kept moving the branch.  Go
             * again soon; the operations stay queued and say why. */
            ll_log_warn("msg=\"the branch keeps moving; retrying\" error=\"%s\"",
                        ll_error_last()->message);
            jitter_sleep(g, 6);
            ll_gitops_notify(g);
        } else if (error < 0) {
            enter_degraded(g, ll_error_last()->message);
            publish_progress(g);
        } else if (g->degraded) {
            /* Out of degraded once writes go through, not on a fetch alone
             * (a full clone fetches fine): else the backoff never grows. */
            leave_degraded(g);
            set_status(g, NULL, NULL);
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

/* The layout an existing repository uses, for git-layout auto: sharded when
 * a tier folder holds a shard folder (two hex digits), flat when one holds a
 * file besides its kustomization (a tenant, or the reference's
 * dummy-configmap.yaml), else sharded, the layout of new repositories.
 * Returns 1 for sharded. */
static int layout_of(ll_gitops *g, git_commit *head)
{
    git_tree *root = NULL, *tenants = NULL, *tier = NULL;
    git_tree_entry *entry = NULL;
    char path[1024];
    int flat = 0, sharded = 0;

    snprintf(path, sizeof(path), "%s/tenants", g->root);
    if (!head || git_commit_tree(&root, head) < 0 ||
        git_tree_entry_bypath(&entry, root, path) < 0 ||
        git_tree_entry_type(entry) != GIT_OBJECT_TREE ||
        git_tree_lookup(&tenants, g->repo, git_tree_entry_id(entry)) < 0)
        goto done;
    for (size_t i = 0; i < git_tree_entrycount(tenants) && !sharded; i++) {
        const git_tree_entry *t = git_tree_entry_byindex(tenants, i);
        if (git_tree_entry_type(t) != GIT_OBJECT_TREE ||
            git_tree_lookup(&tier, g->repo, git_tree_entry_id(t)) < 0)
            continue;
        for (size_t k = 0; k < git_tree_entrycount(tier); k++) {
            const git_tree_entry *e = git_tree_entry_byindex(tier, k);
            const char *name = git_tree_entry_name(e);
            if (git_tree_entry_type(e) == GIT_OBJECT_TREE && strlen(name) == 2 &&
                strspn(name, "0123456789abcdef") == 2) {
                sharded = 1;
                break;
            }
            if (git_tree_entry_type(e) == GIT_OBJECT_BLOB && strcmp(name, "kustomization.yaml"))
                flat = 1;
        }
        git_tree_free(tier);
        tier = NULL;
    }
done:
    git_tree_free(tier);
    git_tree_free(tenants);
    git_tree_entry_free(entry);
    git_tree_free(root);
    ll_log_info("msg=\"git layout\" layout=%s why=\"%s\"", sharded || !flat ? "sharded" : "flat",
                sharded ? "the repository has shard folders"
                : flat  ? "the repository has tenant files in tier folders"
                        : "no tenant file yet: the layout of new repositories");
    return sharded || !flat;
}

static int seed(ll_gitops *g, git_commit *head)
{
    static const char prefix[] = "lib/seed/";
    ll_overlay ov = {0};
    git_tree *base = NULL;
    git_oid tree_id, commit_id;
    char path[1024], *env_tmpl = NULL, *kust = NULL;
    size_t env_len = 0, kust_len = 0;
    json_t *pools = NULL, *pool;
    int changed = 0, error = -1;
    size_t i;

    if (head && git_commit_tree(&base, head) < 0)
        return git_fail(-1, "git: cannot read the head tree");
    ov.repo = g->repo;
    ov.base = base;
    for (const ll_embedded_file *f = ll_embedded_files; f->path; f++) {
        if (strncmp(f->path, prefix, sizeof(prefix) - 1) != 0)
            continue;
        char *copy = malloc(f->size + 1);
        if (!copy)
            goto done;
        memcpy(copy, f->data, f->size + 1);
        snprintf(path, sizeof(path), "%s/%s", g->root, f->path + sizeof(prefix) - 1);
        if ((error = ll_overlay_put(&ov, path, copy, f->size)) < 0)
            goto done;
    }
    /* Render the pool environments the pooled-envs kustomization lists. */
    snprintf(path, sizeof(path), "%s/tier-templates/basic_env_template.yaml", g->root);
    if ((error = ll_overlay_read(&env_tmpl, &env_len, &ov, path)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
    if ((error = ll_overlay_read(&kust, &kust_len, &ov, path)) < 0 ||
        (error = ll_kustomize_resources(&pools, kust, kust_len)) < 0)
        goto done;
    json_array_foreach(pools, i, pool)
    {
        char name[256], *out = NULL;
        size_t out_len;
        const char *file = json_string_value(pool);
        size_t n = strlen(file);
        if (n < 6 || n - 5 >= sizeof(name) || strcmp(file + n - 5, ".yaml") != 0)
            continue;
        memcpy(name, file, n - 5);
        name[n - 5] = '\0';
        ll_render_input in = {NULL, NULL, g->default_release, name, NULL};
        if ((error = ll_template_render(&out, &out_len, env_tmpl, env_len, &in)) < 0)
            goto done;
        snprintf(path, sizeof(path), "%s/pooled-envs/%s", g->root, file);
        if ((error = ll_overlay_put(&ov, path, out, out_len)) < 0)
            goto done;
    }
    if ((error = ll_overlay_write(&tree_id, &changed, &ov)) < 0)
        goto done;
    if ((error = make_commit(&commit_id, g, &tree_id, head, g->author_name, g->author_email,
                             "Seed the GitOps layout (tiers basic, premium, advanced; pool-1)\n")) <
        0)
        goto done;
    if ((error = push(g, &commit_id)) < 0)
        goto done;
    ll_log_info("msg=\"seeded the GitOps repository\" url=%s branch=%s root=%s", g->shown_url,
                g->branch, g->root);
done:
    json_decref(pools);
    free(env_tmpl);
    free(kust);
    ll_overlay_free(&ov);
    git_tree_free(base);
    return error;
}

/* --- lifecycle ------------------------------------------------------------------ */

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

int ll_gitops_open(ll_gitops **out, const ll_gitops_options *o)
{
    ll_gitops *g = calloc(1, sizeof(*g));
    git_remote *remote = NULL;
    git_commit *head = NULL;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    int error = -1;

    if (!g)
        return ll_error_set(-1, "out of memory");
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    pthread_cond_init(&g->progress, NULL);
    pthread_cond_init(&g->pack_wake, NULL);
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
        ll_git_stream_install(o->timeout_s > 0 ? o->timeout_s : 60) < 0) {
        error = git_fail(-1, "git: cannot install the network stream");
        goto fail;
    }
    if (ll_git_ssh_install(o->timeout_s > 0 ? o->timeout_s : 60) < 0) {
        error = git_fail(-1, "git: cannot install the ssh transport");
        goto fail;
    }
    if (o->ca_file && o->ca_file[0] &&
        git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, o->ca_file, NULL) < 0) {
        error = git_fail(LL_EINVALID, "git: cannot use git-ca-file");
        goto fail;
    }
    if ((error = ll_registry_open(&g->reg, g->db_path)) < 0)
        goto fail;
    clear_stale_locks(g->workdir);
    if (o->own_remote)
        clear_stale_locks(g->url);
    git_repository *made = NULL;
    if (git_repository_open_bare(&made, g->workdir) < 0 &&
        git_repository_init(&made, g->workdir, 1) < 0) {
        error = git_fail(-1, "git: cannot create the local clone");
        goto fail;
    }
    git_repository_free(made);
    if ((error = open_clone(g)) < 0)
        goto fail;
    discard_unpushed(g); /* an outgoing ref whose objects died with a crash */
    if (open_remote(&remote, g) < 0) {
        error = git_fail(LL_EINVALID, "git: bad remote url");
        goto fail;
    }
    /* remote.origin.url, for people who look into the clone with git
     * (landlord itself never reads it: see open_remote); packing memory
     * bounded (libgit2's packbuilder would keep up to 256 MiB of deltas). */
    git_config *cfg = NULL;
    if (git_repository_config(&cfg, g->repo) < 0 ||
        git_config_set_string(cfg, "remote.origin.url", g->url) < 0 ||
        git_config_set_int64(cfg, "pack.deltaCacheSize", 16 << 20) < 0 ||
        git_config_set_int64(cfg, "pack.windowMemory", 32 << 20) < 0) {
        git_config_free(cfg);
        error = git_fail(-1, "git: cannot write the clone's config");
        goto fail;
    }
    git_config_free(cfg);
    if ((error = fetch(g)) < 0) {
        /* With a head from an earlier run, start degraded and keep the
         * writes queued; without one there is nothing to read tiers from. */
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        if (g->import_only || remote_head(&head, g) < 0 || !head) {
            char hint[LL_ERROR_MSG_MAX];
            snprintf(hint, sizeof(hint), "%s", ll_error_last()->hint);
            ll_error_set(LL_EUPSTREAM, "%s", why);
            ll_error_hint("%s%sthe first start needs the remote", hint, hint[0] ? "; " : "");
            error = LL_EUPSTREAM;
            goto fail;
        }
        ll_log_warn("msg=\"starting with the last known head; the remote is unreachable\" "
                    "error=\"%s\"",
                    why);
        if (g->sharded < 0)
            g->sharded = layout_of(g, head);
        publish_tiers(g, head);
        enter_degraded(g, why);
        goto opened;
    }
    if ((error = remote_head(&head, g)) < 0)
        goto fail;
    if (!(head && git_commit_tree(&tree, head) == 0 &&
          git_tree_entry_bypath(&entry, tree, g->root) == 0)) {
        if (g->import_only) {
            error = ll_error_set(LL_ENOTFOUND, "no %s folder on branch %s of %s", g->root,
                                 g->branch, g->shown_url);
            ll_error_hint("import reads an existing GitOps repository; check git-root and "
                          "git-branch");
            goto fail;
        }
        if ((error = seed(g, head)) < 0)
            goto fail;
        if (g->sharded < 0)
            g->sharded = 1; /* a new repository gets the layout that scales */
    }
    if (g->sharded < 0) {
        git_commit_free(head);
        head = NULL;
        if ((error = remote_head(&head, g)) < 0)
            goto fail;
        g->sharded = layout_of(g, head);
    }
    if ((error = follow_head(g, NULL)) < 0)
        goto fail;
    git_commit_free(head);
    head = NULL;
    git_tree_entry_free(entry);
    entry = NULL;
    git_tree_free(tree);
    tree = NULL;
    git_remote_free(remote);
    remote = NULL;
    /* The clone and the first scan read every tenant file: libgit2 keeps
     * inflated delta bases (up to 16 MiB a pack) and objects for this
     * handle.  Open it anew and give the freed memory back. */
    if ((error = open_clone(g)) < 0)
        goto fail;
    malloc_trim(0);
    if ((error = remote_head(&head, g)) < 0)
        goto fail;
    set_status(g, head ? git_commit_id(head) : NULL, NULL);
opened:
    g->next_poll_ms = ll_monotonic_ms() + g->poll_interval_ms;
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(head);
    git_remote_free(remote);
    *out = g;
    return 0;
fail:
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(head);
    git_remote_free(remote);
    ll_gitops_free(g);
    return error;
}

int ll_gitops_start(ll_gitops *g)
{
    if (pthread_create(&g->thread, NULL, writer_main, g) != 0)
        return ll_error_set(-1, "cannot start the git writer thread");
    g->started = 1;
    if (pthread_create(&g->packer, NULL, packer_main, g) != 0)
        return ll_error_set(-1, "cannot start the git packer thread");
    g->packer_started = 1;
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
    pthread_cond_broadcast(&g->pack_wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    if (g->packer_started)
        pthread_join(g->packer, NULL);
    g->started = g->packer_started = 0;
}

void ll_gitops_free(ll_gitops *g)
{
    if (!g)
        return;
    ll_gitops_stop(g);
    ll_registry_close(g->reg);
    git_repository_free(g->repo);
    json_decref(g->tiers);
    json_decref(g->status);
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
    pthread_cond_destroy(&g->pack_wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
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
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&g->progress, &g->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g->lock);
}

int ll_gitops_sharded(const ll_gitops *g)
{
    return g->sharded > 0;
}

int ll_gitops_degraded(ll_gitops *g)
{
    int degraded;
    pthread_mutex_lock(&g->lock);
    degraded = g->status &&
               strcmp(json_string_value(json_object_get(g->status, "status")), "degraded") == 0;
    pthread_mutex_unlock(&g->lock);
    return degraded;
}

const char *ll_gitops_url(const ll_gitops *g)
{
    return g->shown_url;
}

json_t *ll_gitops_tiers(ll_gitops *g)
{
    json_t *t;
    pthread_mutex_lock(&g->lock);
    t = json_incref(g->tiers);
    pthread_mutex_unlock(&g->lock);
    return t;
}

void ll_gitops_push_stats(ll_gitops *g, long long buckets[LL_PUSH_BUCKETS + 1], long long *count,
                          long long *sum_ms)
{
    pthread_mutex_lock(&g->lock);
    memcpy(buckets, g->push_buckets, sizeof(g->push_buckets));
    *count = g->push_count;
    *sum_ms = g->push_sum_ms;
    pthread_mutex_unlock(&g->lock);
}

json_t *ll_gitops_status(ll_gitops *g)
{
    json_t *s;
    pthread_mutex_lock(&g->lock);
    s = json_incref(g->status);
    pthread_mutex_unlock(&g->lock);
    return s;
}

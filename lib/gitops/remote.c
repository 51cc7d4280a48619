/* remote.c - the git writer's clone and its remote: fetch, push, credentials.
 *
 * How it works.  A bare clone at <data>/work.git; refs/remotes/origin/<branch>
 * is the last remote head landlord knows.  Each fetch and push makes an
 * in-memory remote for git-url (never the configured "origin", see
 * gitops_open_remote) with callbacks for credentials (asked for once: a
 * second request means the remote refused them) and pinned SSH host keys.
 * A failed fetch or push becomes one clear LL_EUPSTREAM with a hint
 * (remote_fail); a push refused because the branch moved is LL_ECONFLICT.
 * New objects live in an in-memory object store until a push writes the
 * batch's objects as one pack (gitpack.c).  This file also keeps the status
 * snapshot ("ok" or "degraded", the head) that /readyz shows.
 *
 * Threads.  Everything here but the snapshot getters runs on the thread
 * that owns the repository (the opener, then the writer); the snapshot is
 * swapped under g->lock and handed out as a new reference.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>
#include <openssl/evp.h>

#include "gitops_int.h"
#include "gitpack.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

int gitops_git_fail(int code, const char *what)
{
    const git_error *e = git_error_last();
    return ll_error_set(code, "%s: %s", what, e && e->message ? e->message : "unknown git error");
}

/* Publishes the remote's state: ok (error NULL) or degraded with error;
 * head NULL keeps the head it had. */
void gitops_set_status(ll_gitops *g, const git_oid *head, const char *error)
{
    ll_git_health *h = &g->health;
    pthread_mutex_lock(&g->lock);
    h->known = 1;
    h->degraded = error != NULL;
    snprintf(h->branch, sizeof(h->branch), "%s", g->branch);
    snprintf(h->url, sizeof(h->url), "%s", g->shown_url);
    if (head)
        git_oid_tostr(h->head, sizeof(h->head), head);
    snprintf(h->error, sizeof(h->error), "%s", error ? error : "");
    pthread_mutex_unlock(&g->lock);
}

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
int gitops_open_clone(ll_gitops *g)
{
    git_repository *repo = NULL;
    git_odb_backend *memstore = NULL;

    git_repository_free(g->repo);
    g->repo = NULL;
    g->memstore = NULL;
    if (git_repository_open_bare(&repo, g->workdir) < 0)
        return gitops_git_fail(-1, "git: cannot open the local clone");
    if (ll_gitpack_add_memstore(&memstore, repo) < 0) {
        git_repository_free(repo);
        return -1;
    }
    g->repo = repo;
    g->memstore = memstore;
    return 0;
}

/* The clone is open, or opening it failed (set in the error). */
int gitops_ensure_clone(ll_gitops *g)
{
    return g->repo ? 0 : gitops_open_clone(g);
}

/* A batch that could not be pushed: objects it left in memory (when they
 * could not be stored) go, and the outgoing ref that named its commit.  The
 * operations stay queued and are built anew. */
void gitops_discard_unpushed(ll_gitops *g)
{
    if (!g->repo)
        return;
    git_reference *ref = NULL;
    ll_gitpack_discard(g->memstore);
    if (git_reference_lookup(&ref, g->repo, "refs/landlord/outgoing") == 0)
        git_reference_delete(ref);
    git_reference_free(ref);
}

/* An in-memory remote for git-url, made for each fetch and push.  Not
 * git_remote_lookup("origin"): libgit2 1.5 reads a remote's url.*.insteadOf
 * rewrites with a config pattern, and its pattern matcher leaks pcre2 match
 * data (~20 KB) on every config entry that does not match, so each lookup
 * leaked ~160 KB.  landlord never configures insteadOf, and the refspecs
 * are given with each call, so nothing is read from the config. */
int gitops_open_remote(git_remote **out, ll_gitops *g)
{
    git_remote_create_options o;
    git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    o.repository = g->repo;
    o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    return git_remote_create_with_opts(out, g->url, &o);
}

int gitops_fetch(ll_gitops *g)
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
    if (gitops_open_remote(&remote, g) < 0)
        return gitops_git_fail(-1, "git: cannot make the remote");
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
int gitops_push(ll_gitops *g, const git_oid *commit)
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
        error = gitops_git_fail(-1, "git: cannot write the outgoing ref");
        goto done;
    }
    git_reference_free(ref);
    ref = NULL;
    snprintf(spec, sizeof(spec), "refs/landlord/outgoing:refs/heads/%s", g->branch);
    if (gitops_open_remote(&remote, g) < 0) {
        error = gitops_git_fail(-1, "git: cannot make the remote");
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
        error = gitops_git_fail(-1, "git: cannot record the pushed head");
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
int gitops_remote_head(git_commit **out, ll_gitops *g)
{
    git_oid oid;
    *out = NULL;
    if (git_reference_name_to_id(&oid, g->repo, g->remote_ref) < 0)
        return 0;
    if (git_commit_lookup(out, g->repo, &oid) < 0)
        return gitops_git_fail(-1, "git: cannot read the remote head");
    return 0;
}

int ll_gitops_degraded(ll_gitops *g)
{
    int degraded;
    pthread_mutex_lock(&g->lock);
    degraded = g->health.known && g->health.degraded;
    pthread_mutex_unlock(&g->lock);
    return degraded;
}

void ll_gitops_health(ll_git_health *out, ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    *out = g->health;
    pthread_mutex_unlock(&g->lock);
}

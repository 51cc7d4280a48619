/* core.c - the composition root: ll_core_open() builds the service from
 * the configuration, ll_core_free() takes it apart, ll_core_ready() says
 * how its parts are.
 *
 * Opening: the data dir's paths, the registry's migrations (once, before
 * any other thread opens the file), bearer token keys (a bad key fails at
 * once), the GitOps remote and landlord's clone; serving adds the git
 * writer's threads, the chart registry, the cluster's follower with the
 * webhooks and the rollout engine, and the access records' housekeeping.
 * Callbacks wire them together: stored events wake the webhooks and the
 * rollout engine, the writer's batches wake the engine, repacks reopen the
 * follower's clone.  Freeing stops the threads in the order their
 * callbacks need (the engine first), then frees.
 *
 * Only this file starts or stops parts; the use cases (tenants.c,
 * tier_views.c, operations.c, access.c, ...) share context.c and never
 * call in here.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "landlord/auth.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/kube.h"
#include "landlord/log.h"
#include "landlord/status.h"
#include "landlord/storage.h"
#include "landlord/tiers.h"
#include "landlord/util.h"

#include "core_int.h"

static int absolute(char *out, size_t cap, const char *path)
{
    char *real;
    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return 0;
    }
    if (!(real = realpath(path, NULL)))
        return ll_error_set(-1, "cannot resolve %s", path);
    snprintf(out, cap, "%s", real);
    free(real);
    return 0;
}

/* The password or token from a password file (setting names it in the
 * hint): its first line. */
static int read_password(char **out, const char *path, const char *setting)
{
    size_t len = 0;
    int error;
    *out = NULL;
    if (!path[0])
        return 0;
    if ((error = ll_read_file(out, &len, path, 64 * 1024)) < 0) {
        ll_error_hint("%s must name a readable file holding the password or token", setting);
        return error;
    }
    (*out)[strcspn(*out, "\r\n")] = '\0';
    return 0;
}

/* "v2beta1" when the tier templates declare HelmReleases of that version
 * (the reference's), else "v2"; the setting wins when given. */
static const char *helm_version(ll_core *c)
{
    ll_tier_catalogue *cat = ll_gitops_tiers(c->git);
    const char *version = "v2";
    if (c->cfg.flux_helm_version[0])
        version = c->cfg.flux_helm_version;
    else
        for (size_t i = 0; cat && i < cat->n_tiers; i++) {
            if (strcmp(cat->tiers[i].helm_version, "v2beta1") == 0)
                version = "v2beta1";
        }
    ll_tier_catalogue_unref(cat);
    return version;
}

static void events_stored(void *payload)
{
    ll_core *c = payload;
    ll_webhooks_notify(c->webhooks);
    /* Tenants' states moved: a rollout may wait on them. */
    ll_rollouts_notify(ll_core_rollouts(c));
}

static void rollout_events_stored(void *payload)
{
    ll_core *c = payload;
    ll_webhooks_notify(c->webhooks);
}

/* A batch was pushed (or not): a rollout may wait on its operation. */
static void git_progressed(void *payload)
{
    ll_core *c = payload;
    ll_rollouts_notify(ll_core_rollouts(c));
}

static void git_repacked(void *payload)
{
    ll_core *c = payload;
    ll_status_clone_repacked(c->status);
}

/* Follows the cluster when one is configured (kubeconfig, $KUBECONFIG or a
 * pod's service account); without one, states stay "unknown". */
static int open_status(ll_core *c)
{
    ll_kube *k = NULL;
    ll_kube_options ko = {
        .kubeconfig = c->cfg.kubeconfig,
        .context = c->cfg.kube_context,
        .sa_dir = c->cfg.kube_service_account_dir,
    };
    int error = ll_kube_open(&k, &ko);
    if (error == LL_ENOTFOUND) {
        k = NULL;
        ll_log_info("msg=\"no cluster configured; tenant states stay unknown\"");
    } else if (error < 0) {
        return error;
    } else {
        ll_log_info("msg=\"following the cluster\" server=%s source=\"%s\"", ll_kube_server(k),
                    ll_kube_source(k));
    }
    ll_status_options so = {
        .db_path = c->db_path,
        .git_dir = c->work_path,
        .root = c->cfg.git_root,
        .sharded = strcmp(c->cfg.git_layout, "sharded") == 0,
        .flux_namespace = c->cfg.flux_namespace,
        .git_repository = c->cfg.flux_git_repository,
        .kustomization = c->cfg.flux_kustomization,
        .helm_version = helm_version(c),
        .branch = c->cfg.git_branch,
        .reconcile_now = c->cfg.flux_reconcile_now != 0,
        .on_events = events_stored,
        .on_events_payload = c,
    };
    ll_webhooks_options wo = {.db_path = c->db_path, .allow_cidr = c->cfg.webhook_allow_cidr};
    if ((error = ll_webhooks_start(&c->webhooks, &wo)) < 0) {
        ll_kube_free(k);
        return error;
    }
    if ((error = ll_status_open(&c->status, k, &so)) < 0)
        return error;
    ll_rollouts_options ro = {
        .db_path = c->db_path,
        .status = c->status,
        .git = c->git,
        .author_name = c->cfg.git_author_name,
        .author_email = c->cfg.git_author_email,
        .on_events = rollout_events_stored,
        .on_events_payload = c,
    };
    ll_rollouts *engine = NULL;
    if ((error = ll_rollouts_start(&engine, &ro)) < 0)
        return error;
    __atomic_store_n(&c->rollouts, engine, __ATOMIC_RELEASE);
    return 0;
}

/* The OCI registry of uploaded charts, when oci-url is set; else charts go
 * to the image layout in the data dir. */
static int open_oci(ll_core *c)
{
    char *password = NULL;
    int error;
    if (!c->cfg.oci_url[0]) {
        ll_log_info("msg=\"charts go to the OCI image layout in the data dir\" path=%s",
                    c->oci_dir);
        return 0;
    }
    if ((error = read_password(&password, c->cfg.oci_password_file, "oci-password-file")) < 0)
        return error;
    ll_ociremote_options o = {
        .url = c->cfg.oci_url,
        .username = c->cfg.oci_username,
        .password = password,
        .ca_file = c->cfg.oci_ca_file,
        .plain_http = c->cfg.oci_plain_http != 0,
        .auth = c->cfg.oci_auth,
        .aws_region = c->cfg.aws_region,
        .timeout_s = (int)c->cfg.oci_timeout,
    };
    error = ll_ociremote_open(&c->oci, &o);
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return error;
}

/* The data dir's paths: the registry, landlord's clone, the image layout
 * of uploaded releases, and the GitOps remote (git-url, else one kept in
 * the data dir). */
static int set_paths(ll_core *c)
{
    char data[1024];
    int error;
    if ((error = ll_mkdir_p(c->cfg.data)) < 0 ||
        (error = absolute(data, sizeof(data), c->cfg.data)) < 0 ||
        (error = ll_storage_lock(&c->data_lock, data)) < 0)
        return error;
    snprintf(c->db_path, sizeof(c->db_path), "%s/" LL_CORE_REGISTRY_FILE, data);
    snprintf(c->work_path, sizeof(c->work_path), "%s/work.git", data);
    snprintf(c->oci_dir, sizeof(c->oci_dir), "%s/oci/%s", data, c->cfg.chart_name);
    if (c->cfg.git_url[0])
        snprintf(c->git_url, sizeof(c->git_url), "%s", c->cfg.git_url);
    else
        snprintf(c->git_url, sizeof(c->git_url), "%s/remote.git", data);
    return 0;
}

/* Without git-url, the GitOps remote is a bare repository in the data
 * dir, made on the first start. */
static int open_own_remote(ll_core *c)
{
    git_repository *bare = NULL;
    git_repository_init_options io;
    char head[200];
    git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    snprintf(head, sizeof(head), "refs/heads/%s", c->cfg.git_branch);
    io.initial_head = head;
    if (git_repository_open_bare(&bare, c->git_url) < 0 &&
        git_repository_init_ext(&bare, c->git_url, &io) < 0)
        return ll_error_set(-1, "cannot create the local GitOps remote %s", c->git_url);
    git_repository_free(bare);
    return 0;
}

/* Opens landlord's clone of the GitOps remote (the git writer); importing
 * only reads it.  Settles git-layout auto to what the repository uses. */
static int open_git(ll_core *c, ll_core_mode mode)
{
    const ll_config *cfg = &c->cfg;
    char *password = NULL;
    int error;
    if ((error = read_password(&password, cfg->git_password_file, "git-password-file")) < 0)
        return error;
    ll_gitops_options go = {
        .workdir = c->work_path,
        .url = c->git_url,
        .branch = cfg->git_branch,
        .root = cfg->git_root,
        .author_name = cfg->git_author_name,
        .author_email = cfg->git_author_email,
        .default_release = cfg->default_release,
        .tier_kinds = cfg->tier_kinds,
        .flux_namespace = cfg->flux_namespace,
        .db_path = c->db_path,
        .batch_size = (int)cfg->batch_size,
        .push_attempts = (int)cfg->git_push_attempts,
        .linger_ms = (int)cfg->batch_linger,
        .poll_interval_s = (int)cfg->git_poll_interval,
        .timeout_s = (int)cfg->git_timeout,
        .sharded =
            strcmp(cfg->git_layout, "auto") == 0 ? -1 : strcmp(cfg->git_layout, "sharded") == 0,
        .username = cfg->git_username,
        .password = password,
        .ca_file = cfg->git_ca_file,
        .ssh_key_file = cfg->git_ssh_key_file,
        .ssh_host_key = cfg->git_ssh_host_key,
        .import_only = mode == LL_CORE_IMPORT,
        .own_remote = !cfg->git_url[0],
        .on_progress = git_progressed,
        .on_progress_payload = c,
        .on_repacked = git_repacked,
    };
    error = ll_gitops_open(&c->git, &go);
    if (error == 0) /* auto: what the repository uses, for every reader of it */
        snprintf(c->cfg.git_layout, sizeof(c->cfg.git_layout), "%s",
                 ll_gitops_sharded(c->git) ? "sharded" : "flat");
    if (password) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return error;
}

/* Serving: the threads and clients only a server needs, in order: the git
 * writer, the chart registry, the cluster's follower (with webhooks and
 * the rollout engine), then the access records' housekeeping. */
static int start_serving(ll_core *c)
{
    int error;
    if ((error = ll_gitops_start(c->git)) < 0 || (error = open_oci(c)) < 0 ||
        (error = open_status(c)) < 0)
        return error;
    ll_access_start(c);
    return 0;
}

int ll_core_open(ll_core **out, const ll_config *cfg, ll_core_mode mode)
{
    ll_core *c = calloc(1, sizeof(*c));
    ll_registry *r = NULL;
    int error;

    *out = NULL;
    if (!c)
        return ll_error_set(-1, "out of memory");
    c->cfg = *cfg;
    c->data_lock = -1;
    pthread_mutex_init(&c->prune_lock, NULL);
    pthread_mutex_init(&c->release_lock, NULL);
    if ((error = ll_core_context_init(c)) < 0 || (error = ll_core_answers_init(c)) < 0 ||
        (error = set_paths(c)) < 0)
        goto done;
    /* Migrations run here, once, before any other thread opens the file. */
    if ((error = ll_registry_open(&r, c->db_path)) < 0)
        goto done;
    ll_registry_close(r);
    /* Bearer token keys before anything slow: a bad key fails at once. */
    if (mode == LL_CORE_SERVE && (error = ll_auth_open(&c->auth, cfg)) < 0)
        goto done;
    if (!cfg->git_url[0] && mode == LL_CORE_SERVE && (error = open_own_remote(c)) < 0)
        goto done;
    if ((error = open_git(c, mode)) < 0)
        goto done;
    if (mode == LL_CORE_SERVE && (error = start_serving(c)) < 0)
        goto done;
    *out = c;
    c = NULL;
done:
    ll_core_free(c);
    return error;
}

void ll_core_free(ll_core *c)
{
    if (!c)
        return;
    /* The engine reads the status and wakes the writer: its thread goes
     * first; the handle stays until their threads (which notify it) end. */
    ll_rollouts_stop(c->rollouts);
    ll_gitops_stop(c->git); /* its packer tells the status follower about repacks */
    ll_status_free(c->status);
    ll_webhooks_stop(c->webhooks);
    ll_auth_free(c->auth);
    ll_gitops_free(c->git);
    ll_rollouts_free(c->rollouts);
    ll_ociremote_free(c->oci);
    pthread_mutex_destroy(&c->release_lock);
    ll_core_context_free(c);
    ll_core_answers_free(c);
    pthread_mutex_destroy(&c->prune_lock);
    ll_storage_unlock(c->data_lock); /* last: every thread has ended */
    free(c);
}

const ll_config *ll_core_config(const ll_core *c)
{
    return &c->cfg;
}

const char *ll_core_git_url(const ll_core *c)
{
    return ll_gitops_url(c->git);
}

/* The git check of /readyz: the remote's health and the queue. */
static json_t *git_check(const ll_git_health *h, long long queued)
{
    json_t *git;
    if (!h->known)
        git = json_pack("{s:s}", "status", "degraded");
    else
        git = json_pack("{s:s, s:s, s:s, s:s*, s:s*}", "status", h->degraded ? "degraded" : "ok",
                        "branch", h->branch, "url", h->url, "head", h->head[0] ? h->head : NULL,
                        "error", h->error[0] ? h->error : NULL);
    json_object_set_new(git, "queued", json_integer(queued));
    return git;
}

/* The storage check of /readyz: the volume's state, else full when the
 * git writer's error (git_error, or NULL) says so. */
static json_t *storage_check(const ll_storage_state *st, const char *git_error)
{
    if (st->full)
        return json_pack("{s:s, s:s, s:s}", "status", "full", "error", st->error, "since",
                         st->since);
    if (git_error && ll_storage_message_full(git_error))
        return json_pack("{s:s, s:s}", "status", "full", "error", git_error);
    return json_pack("{s:s}", "status", "ok");
}

json_t *ll_core_ready(int *ok, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    json_t *checks = json_object();
    int reg_ok = r && ll_registry_ping(r) == 0;
    long long queued = 0;
    ll_git_health git;
    ll_kube_health kube;
    ll_storage_state storage;
    const char *status;

    if (reg_ok) {
        json_object_set_new(checks, "registry", json_pack("{s:s}", "status", "ok"));
        ll_registry_ops_count_queued(&queued, r);
    } else {
        json_object_set_new(
            checks, "registry",
            json_pack("{s:s, s:s}", "status", "failed", "error", ll_error_last()->message));
    }
    ll_gitops_health(&git, c->git);
    json_object_set_new(checks, "git", git_check(&git, queued));
    ll_status_health(&kube, c->status);
    json_object_set_new(checks, "kube", ll_kube_health_json(&kube));
    /* The registry of charts: the outcome of the last exchange (no request
     * is made here); it does not change the overall status. */
    json_object_set_new(checks, "oci",
                        c->oci ? ll_ociremote_health(c->oci)
                               : json_pack("{s:s}", "status", "local"));
    /* The data volume: full while writes fail for lack of space, the
     * registry's or the git writer's in landlord's clone (whose error names
     * it); clear again once a write gets through. */
    ll_storage_health(&storage);
    const char *git_error = git.known && git.degraded ? git.error : NULL;
    int storage_full = storage.full || (git_error && ll_storage_message_full(git_error));
    json_object_set_new(checks, "storage", storage_check(&storage, git_error));
    /* Tier templates in the repository that break the policy: their tenants
     * are not rendered until they are fixed. */
    ll_tier_catalogue *cat = ll_gitops_tiers(c->git);
    int tiers_fine = 0;
    json_object_set_new(
        checks, "tiers",
        ll_core_tiers_health(&tiers_fine, cat, kube.helm_served, kube.helm_watched));
    ll_tier_catalogue_unref(cat);
    /* A degraded remote still takes writes (they queue): ready, but say so. */
    *ok = reg_ok;
    /* So does an unreachable cluster: states read "unknown" meanwhile; and
     * a full volume, whose writes answer 503 while reads go on. */
    status = !reg_ok ? "unavailable"
             : git.known && !git.degraded && kube.status != LL_KUBE_DEGRADED && !storage_full &&
                     tiers_fine
                 ? "ready"
                 : "degraded";
    return json_pack("{s:s, s:o}", "status", status, "checks", checks);
}

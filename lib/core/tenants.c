/* tenants.c - the service: tenant, tier and operation use cases.
 *
 * A write is checked completely before anything is stored: field shapes,
 * id rules, the tier, the release, the values, and a trial render of the
 * tier's template.  Then the registry stores the tenant and its operation in
 * one transaction, the git writer is woken, and the caller waits (bounded)
 * for the push.  Reads only touch the registry and the tier snapshot; a
 * tenant's answer is kept (immutable, reference-counted, ll_tenant_answer)
 * while the registry's generation and its status stamp stay put.
 *
 * Each thread gets its own registry connection through a pthread key.
 */
#include <pthread.h>
#include <stdarg.h>
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
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"

#include "core_int.h"
#include "ids.h"

/* Kept answers: chains of the map, and at most this many bytes of text
 * (then all are dropped). */
#define ANSWER_BUCKETS    1024
#define ANSWERS_MAX_BYTES (4u << 20)

static void answers_clear(ll_core *c);

static void close_registry(void *r)
{
    ll_registry_close(r);
}

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
    json_t *cat = ll_gitops_tiers(c->git);
    const char *name, *version = "v2";
    json_t *tier;
    if (c->cfg.flux_helm_version[0])
        version = c->cfg.flux_helm_version;
    else
        json_object_foreach(json_object_get(cat, "tiers"), name, tier)
        {
            const char *t = json_string_value(json_object_get(tier, "template"));
            if (t && strstr(t, "helm.toolkit.fluxcd.io/v2beta1"))
                version = "v2beta1";
        }
    json_decref(cat);
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

int ll_core_open(ll_core **out, const ll_config *cfg, ll_core_mode mode)
{
    ll_core *c = calloc(1, sizeof(*c));
    ll_registry *r = NULL;
    char data[1024], *password = NULL;
    int error;

    if (!c)
        return ll_error_set(-1, "out of memory");
    c->cfg = *cfg;
    pthread_key_create(&c->reg_key, close_registry);
    pthread_mutex_init(&c->answers_lock, NULL);
    c->answers = calloc(ANSWER_BUCKETS, sizeof(*c->answers));
    pthread_mutex_init(&c->prune_lock, NULL);
    pthread_mutex_init(&c->release_lock, NULL);
    if (!c->answers) {
        error = ll_error_set(-1, "out of memory");
        goto fail;
    }
    if ((error = ll_mkdir_p(cfg->data)) < 0 ||
        (error = absolute(data, sizeof(data), cfg->data)) < 0)
        goto fail;
    snprintf(c->db_path, sizeof(c->db_path), "%s/landlord.db", data);
    snprintf(c->work_path, sizeof(c->work_path), "%s/work.git", data);
    snprintf(c->oci_dir, sizeof(c->oci_dir), "%s/oci/%s", data, cfg->chart_name);
    if (cfg->git_url[0])
        snprintf(c->git_url, sizeof(c->git_url), "%s", cfg->git_url);
    else
        snprintf(c->git_url, sizeof(c->git_url), "%s/remote.git", data);
    /* Migrations run here, once, before any other thread opens the file. */
    if ((error = ll_registry_open(&r, c->db_path)) < 0)
        goto fail;
    ll_registry_close(r);
    /* Bearer token keys before anything slow: a bad key fails at once. */
    if (mode == LL_CORE_SERVE && (error = ll_auth_open(&c->auth, cfg)) < 0)
        goto fail;
    if (!cfg->git_url[0] && mode == LL_CORE_SERVE) {
        git_repository *bare = NULL;
        git_repository_init_options io;
        char head[200];
        git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
        io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
        snprintf(head, sizeof(head), "refs/heads/%s", cfg->git_branch);
        io.initial_head = head;
        if (git_repository_open_bare(&bare, c->git_url) < 0 &&
            git_repository_init_ext(&bare, c->git_url, &io) < 0) {
            error = ll_error_set(-1, "cannot create the local GitOps remote %s", c->git_url);
            goto fail;
        }
        git_repository_free(bare);
    }
    if ((error = read_password(&password, cfg->git_password_file, "git-password-file")) < 0)
        goto fail;
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
    if (error < 0 || (mode == LL_CORE_SERVE && (error = ll_gitops_start(c->git)) < 0))
        goto fail;
    if (mode == LL_CORE_SERVE && (error = open_oci(c)) < 0)
        goto fail;
    if (mode == LL_CORE_SERVE && (error = open_status(c)) < 0)
        goto fail;
    if (mode == LL_CORE_SERVE)
        ll_access_start(c);
    *out = c;
    return 0;
fail:
    ll_core_free(c);
    return error;
}

void ll_core_free(ll_core *c)
{
    ll_registry *r;
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
    if ((r = pthread_getspecific(c->reg_key))) {
        ll_registry_close(r);
        pthread_setspecific(c->reg_key, NULL);
    }
    pthread_key_delete(c->reg_key);
    if (c->answers)
        answers_clear(c);
    free(c->answers);
    pthread_mutex_destroy(&c->answers_lock);
    pthread_mutex_destroy(&c->prune_lock);
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

ll_registry *ll_core_registry(ll_core *c)
{
    ll_registry *r = pthread_getspecific(c->reg_key);
    if (r)
        return r;
    if (ll_registry_open(&r, c->db_path) < 0)
        return NULL;
    pthread_setspecific(c->reg_key, r);
    return r;
}

json_t *ll_core_ready(ll_core *c, int *ok)
{
    ll_registry *r = ll_core_registry(c);
    json_t *checks = json_object(), *snap = ll_gitops_status(c->git), *git;
    int reg_ok = r && ll_registry_ping(r) == 0;
    long long queued = 0;
    const char *status;

    if (reg_ok) {
        json_object_set_new(checks, "registry", json_pack("{s:s}", "status", "ok"));
        ll_registry_ops_count_queued(&queued, r);
    } else {
        json_object_set_new(
            checks, "registry",
            json_pack("{s:s, s:s}", "status", "failed", "error", ll_error_last()->message));
    }
    git = snap ? json_deep_copy(snap) : json_pack("{s:s}", "status", "degraded");
    json_decref(snap);
    json_object_set_new(git, "queued", json_integer(queued));
    json_object_set_new(checks, "git", git);
    json_t *kube = ll_status_health(c->status);
    const char *kube_status = json_string_value(json_object_get(kube, "status"));
    json_object_set_new(checks, "kube", kube);
    /* The registry of charts: the outcome of the last exchange (no request
     * is made here); it does not change the overall status. */
    json_object_set_new(checks, "oci",
                        c->oci ? ll_ociremote_health(c->oci)
                               : json_pack("{s:s}", "status", "local"));
    /* The data volume: full while writes fail for lack of space, the
     * registry's or the git writer's in landlord's clone (whose error names
     * it); clear again once a write gets through. */
    json_t *storage = ll_storage_health();
    const char *git_error = json_string_value(json_object_get(git, "error"));
    int storage_ok = strcmp(json_string_value(json_object_get(storage, "status")), "ok") == 0;
    if (storage_ok && ll_storage_message_full(git_error)) {
        json_decref(storage);
        storage = json_pack("{s:s, s:s}", "status", "full", "error", git_error);
        storage_ok = 0;
    }
    json_object_set_new(checks, "storage", storage);
    /* Tier templates in the repository that break the policy: their tenants
     * are not rendered until they are fixed. */
    json_t *cat = ll_gitops_tiers(c->git), *tiers = ll_tiers_health(cat);
    int tiers_ok = strcmp(json_string_value(json_object_get(tiers, "status")), "ok") == 0;
    json_decref(cat);
    json_object_set_new(checks, "tiers", tiers);
    /* A degraded remote still takes writes (they queue): ready, but say so. */
    *ok = reg_ok;
    /* So does an unreachable cluster: states read "unknown" meanwhile; and
     * a full volume, whose writes answer 503 while reads go on. */
    status = !reg_ok ? "unavailable"
             : strcmp(json_string_value(json_object_get(git, "status")), "ok") == 0 &&
                     strcmp(kube_status, "degraded") != 0 && storage_ok && tiers_ok
                 ? "ready"
                 : "degraded";
    return json_pack("{s:s, s:o}", "status", status, "checks", checks);
}

/* --- views ------------------------------------------------------------------------ */

/* Turns a registry row into the API's tenant (in place). */
static json_t *tenant_view(ll_core *c, json_t *t)
{
    char path[1024];

    /* From the cluster; without one (or before it was seen), never pretend. */
    ll_status_describe(c->status, t);
    if (!json_is_string(json_object_get(t, "path"))) {
        ll_tenant_file_path(path, sizeof(path), c->cfg.git_root,
                            strcmp(c->cfg.git_layout, "sharded") == 0,
                            json_string_value(json_object_get(t, "tier")),
                            json_string_value(json_object_get(t, "id")));
        json_object_set_new(t, "path", json_string(path));
    }
    json_object_del(t, "lifecycle");
    json_object_del(t, "observed_state");
    json_object_del(t, "observed_since");
    /* A pinned tenant is never moved by a rollout; a floating one follows
     * them.  chart_version: what its file carries. */
    const char *release = json_string_value(json_object_get(t, "release"));
    json_object_set_new(t, "pinned", json_boolean(release && ll_release_pinned(release)));
    return t;
}

int ll_core_field_error(const char *field, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "%s", msg);
    ll_error_field(field);
    return LL_EINVALID;
}

int ll_tenant_outcome(json_t **out, int *pending, ll_core *c, long long op, const char *id)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation opr = {0};
    json_t *t = NULL;
    ll_op_state state = LL_OP_PUSHED;
    int error;

    *out = NULL;
    *pending = 0;
    if (!r)
        return -1;
    if (op > 0) {
        if ((error = ll_registry_op_get(&opr, r, op)) < 0)
            return error;
        state = opr.state;
    }
    if (state == LL_OP_FAILED) {
        const char *why = opr.error;
        if (opr.failure == LL_OP_FAILURE_RENDER) {
            error = ll_error_set(LL_EINVALID, "%s", why ? why : "the template did not render");
            ll_error_kind("render-failed");
        } else if (opr.failure == LL_OP_FAILURE_CONFLICT) {
            error = ll_error_set(LL_ECONFLICT, "%s", why ? why : "conflict in the repository");
        } else {
            error = ll_error_set(LL_EUPSTREAM, "%s", why ? why : "push failed");
            ll_error_hint("check the GitOps remote; /readyz shows its state");
        }
        goto done;
    }
    *pending = state == LL_OP_QUEUED;
    if ((error = ll_registry_tenant_get(&t, r, op > 0 ? opr.tenant : id, 1)) < 0)
        goto done;
    *out = tenant_view(c, t);
    t = NULL;
done:
    json_decref(t);
    ll_operation_clear(&opr);
    return error;
}

unsigned long long ll_core_progress(ll_core *c)
{
    return ll_gitops_generation(c->git);
}

void ll_core_wait_progress(ll_core *c, unsigned long long seen, int64_t deadline_ms)
{
    ll_gitops_wait_progress(c->git, seen, deadline_ms);
}

int ll_core_op_queued(ll_core *c, long long op)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation opr;
    int queued;
    if (!r || ll_registry_op_get(&opr, r, op) < 0)
        return -1;
    queued = opr.state == LL_OP_QUEUED;
    ll_operation_clear(&opr);
    return queued;
}

int ll_core_degraded(ll_core *c)
{
    return ll_gitops_degraded(c->git);
}

/* The commit author of a request: the caller the HTTP layer authenticated
 * (name and email claims, else sub and sub@<git-author-domain>), or the
 * configured identity for work no caller asked for.  The strings live in
 * buf, which the caller keeps while it uses the author. */
ll_registry_author ll_core_author(const ll_core *c, ll_author_buf *buf)
{
    const ll_caller *caller = ll_caller_current();
    ll_registry_author a = {c->cfg.git_author_name, c->cfg.git_author_email};
    if (caller) {
        const char *domain = c->cfg.git_author_domain;
        const char *at = strrchr(c->cfg.git_author_email, '@');
        if (!domain[0])
            domain = at && at[1] ? at + 1 : "localhost";
        ll_caller_author(buf->name, sizeof(buf->name), buf->email, sizeof(buf->email), caller,
                         domain);
        a.name = buf->name;
        a.email = buf->email;
    }
    return a;
}

#define author_of(c) ll_core_author((c), &author_buf)

/* Refuses fields outside allowed and non-string values of string fields. */
static int check_fields(const json_t *body, const char *const *allowed, const char *const *strings,
                        const char *hint)
{
    const char *key;
    json_t *v;

    if (!json_is_object(body))
        return ll_core_field_error("", "the body must be a JSON object");
    json_object_foreach((json_t *)body, key, v)
    {
        int known = 0;
        for (const char *const *f = allowed; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known) {
            ll_core_field_error(key, "unknown field '%.64s'", key);
            ll_error_hint("%s", hint);
            return LL_EINVALID;
        }
    }
    for (const char *const *f = strings; *f; f++) {
        v = json_object_get(body, *f);
        if (v && !json_is_string(v))
            return ll_core_field_error(*f, "%s must be a string", *f);
    }
    return 0;
}

/* Checks a desired state completely, including a trial render of the tier's
 * template: a tenant whose objects would be invalid is refused now, before
 * anything is stored. */
static int check_desired(const json_t *tiers, const char *id, const char *tier, const char *release,
                         const json_t *values)
{
    const json_t *tier_obj, *tmpl;
    char *rendered = NULL;
    size_t rlen;
    int error;

    if (!(tier_obj = ll_tiers_find(tiers, tier))) {
        ll_core_field_error("tier", "unknown tier '%.64s'", tier);
        ll_error_hint("GET /api/v1/tiers lists the tiers");
        return LL_EINVALID;
    }
    /* Nothing is rendered from a tier whose template breaks the policy. */
    if ((error = ll_tiers_usable(tier_obj)) < 0)
        return error;
    if ((error = ll_validate_release(release)) < 0)
        return error;
    if (values && (error = ll_validate_values(values)) < 0)
        return error;
    /* Nor may values set what the template derives from who the tenant is. */
    if (values && (error = ll_tiers_check_values(tier_obj, values)) < 0)
        return error;
    tmpl = json_object_get(tier_obj, "template");
    ll_render_input in = {id, tier, release, NULL, values};
    if ((error = ll_template_render(&rendered, &rlen, json_string_value(tmpl),
                                    json_string_length(tmpl), &in)) < 0) {
        ll_error_kind("render-failed");
        return error;
    }
    free(rendered);
    return 0;
}

static const char *const onboard_fields[] = {"id", "tier", "release", "values", NULL};
static const char *const onboard_strings[] = {"id", "tier", "release", NULL};

int ll_tenant_onboard(long long *out_op, json_t **out_existing, ll_core *c, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *existing = NULL;
    const json_t *values;
    const char *id, *tier, *release;
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    char *values_json = NULL;
    long long op = 0;
    int error;

    *out_op = 0;
    *out_existing = NULL;
    if (!r) {
        error = -1;
        goto done;
    }
    if ((error = check_fields(body, onboard_fields, onboard_strings,
                              "a tenant takes id, tier, release and values")) < 0)
        goto done;
    id = json_string_value(json_object_get(body, "id"));
    tier = json_string_value(json_object_get(body, "tier"));
    if (!id || !tier) {
        error = ll_core_field_error(id ? "tier" : "id", "%s is required", id ? "tier" : "id");
        goto done;
    }
    release = json_is_string(json_object_get(body, "release"))
                  ? json_string_value(json_object_get(body, "release"))
                  : c->cfg.default_release;
    values = json_object_get(body, "values");
    if ((error = ll_validate_tenant_id(id)) < 0 || (error = ll_ids_check_name(c, tiers, id)) < 0)
        goto done;
    if ((error = check_desired(tiers, id, tier, release, values)) < 0)
        goto done;
    if ((error = ll_ids_check_namespaces(c, tiers, id, tier, release, NULL, "id")) < 0)
        goto done;
    values_json = values ? json_dumps(values, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    if (!values_json) {
        error = ll_error_set(-1, "cannot encode values");
        goto done;
    }
    error = ll_registry_onboard(&op, &existing, r, id, tier, release, values_json, &author);
    if (error == LL_EEXISTS) {
        *out_existing = tenant_view(c, existing);
        existing = NULL;
        ll_error_set(LL_EEXISTS, "tenant '%s' exists already", id);
        ll_error_field("id");
        goto done;
    }
    if (error < 0)
        goto done;
    ll_log_info("msg=\"onboarding queued\" tenant=%s tier=%s op=%lld", id, tier, op);
    ll_gitops_notify(c->git);
    ll_status_touch(c->status);
    *out_op = op;
done:
    json_decref(existing);
    json_decref(tiers);
    free(values_json);
    return error;
}

static const char *const update_fields[] = {"tier", "release", "values", NULL};
static const char *const update_strings[] = {"tier", "release", NULL};

/* 1 when tier, release and values are what current (a registry row)
 * already holds and the repository has it (sync committed). */
static int unchanged(const json_t *current, const char *tier, const char *release,
                     const json_t *values)
{
    const char *was = json_string_value(json_object_get(current, "release"));
    const char *sync = json_string_value(json_object_get(current, "sync"));
    return sync && strcmp(sync, "committed") == 0 &&
           strcmp(tier, json_string_value(json_object_get(current, "tier"))) == 0 &&
           ((!release && !was) || (release && was && strcmp(release, was) == 0)) &&
           json_equal(values, json_object_get(current, "values"));
}

int ll_tenant_update(long long *out_op, ll_core *c, const char *id, const json_t *body,
                     const char *if_match)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *current = NULL;
    const json_t *values;
    const char *tier, *release, *lifecycle;
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    char *values_json = NULL;
    long long op = 0;
    int error;

    *out_op = 0;
    if (!r) {
        error = -1;
        goto done;
    }
    if (ll_validate_tenant_id(id) < 0) {
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
        goto done;
    }
    if ((error = ll_registry_tenant_get(&current, r, id, 0)) < 0)
        goto done;
    lifecycle = json_string_value(json_object_get(current, "lifecycle"));
    if (strcmp(lifecycle, "offboarded") == 0 || strcmp(lifecycle, "offboarding") == 0) {
        error = ll_error_set(LL_ECONFLICT, "tenant '%s' is %s", id, lifecycle);
        ll_error_hint("onboard it again with POST /api/v1/tenants");
        goto done;
    }
    if ((error = check_fields(body, update_fields, update_strings,
                              "a change takes tier, release and values")) < 0)
        goto done;
    if (json_object_size(body) == 0) {
        error = ll_core_field_error("", "nothing to change: send tier, release or values");
        goto done;
    }
    tier = json_is_string(json_object_get(body, "tier"))
               ? json_string_value(json_object_get(body, "tier"))
               : json_string_value(json_object_get(current, "tier"));
    release = json_is_string(json_object_get(body, "release"))
                  ? json_string_value(json_object_get(body, "release"))
                  : json_string_value(json_object_get(current, "release"));
    values = json_object_get(body, "values") ? json_object_get(body, "values")
                                             : json_object_get(current, "values");
    if ((error = check_desired(tiers, id, tier, release, values)) < 0)
        goto done;
    /* Another tier may give the tenant namespaces it did not own. */
    if ((error = ll_ids_check_namespaces(c, tiers, id, tier, release,
                                         json_string_value(json_object_get(current, "tier")),
                                         "tier")) < 0)
        goto done;
    if (unchanged(current, tier, release, values)) {
        /* Nothing to do: no operation, no new version (another client's
         * If-Match stays good); the answer is the tenant as it is. */
        const char *etag = json_string_value(json_object_get(current, "etag"));
        if (if_match && !ll_etag_matches(if_match, etag)) {
            error = ll_error_set(LL_EPRECONDITION, "tenant '%s' has changed: it is at version %s",
                                 id, etag);
            ll_error_hint("read it again (GET /api/v1/tenants/%s) and send its ETag in If-Match",
                          id);
        }
        goto done;
    }
    if (!(values_json = json_dumps(values, JSON_COMPACT | JSON_SORT_KEYS))) {
        error = ll_error_set(-1, "cannot encode values");
        goto done;
    }
    if ((error = ll_registry_update(&op, r, id, tier, release, values_json, &author, if_match)) < 0)
        goto done;
    ll_log_info("msg=\"update queued\" tenant=%s tier=%s op=%lld", id, tier, op);
    ll_gitops_notify(c->git);
    ll_status_touch(c->status);
    *out_op = op;
done:
    json_decref(current);
    json_decref(tiers);
    free(values_json);
    return error;
}

int ll_tenant_offboard(long long *out_op, ll_core *c, const char *id, const char *if_match)
{
    ll_registry *r = ll_core_registry(c);
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    int error;

    *out_op = 0;
    if (!r)
        return -1;
    if (ll_validate_tenant_id(id) < 0)
        return ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
    if ((error = ll_registry_offboard(out_op, r, id, &author, if_match)) < 0)
        return error;
    if (*out_op) {
        ll_log_info("msg=\"offboarding queued\" tenant=%s op=%lld", id, *out_op);
        ll_gitops_notify(c->git);
        ll_status_touch(c->status);
    }
    return 0;
}

int ll_tenant_get(json_t **out, ll_core *c, const char *id)
{
    ll_registry *r = ll_core_registry(c);
    json_t *t = NULL;
    int error;
    if (!r)
        return -1;
    if (ll_validate_label(id, 253, "id") < 0)
        return ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
    if ((error = ll_registry_tenant_get(&t, r, id, 1)) < 0)
        return error;
    *out = tenant_view(c, t);
    return 0;
}

/* --- kept answers ----------------------------------------------------------------- */

struct ll_answer {
    int refs;                      /* atomic: the map's and each reader's */
    unsigned long long gen, stamp; /* what the answer was built with */
    struct ll_answer *next;        /* in its chain of c->answers */
    char etag[LL_ETAG_MAX];
    char *id; /* points after text */
    size_t len;
    char text[]; /* len bytes, NUL, then the id and its NUL */
};

const char *ll_answer_text(const ll_answer *a, size_t *out_len)
{
    *out_len = a->len;
    return a->text;
}

const char *ll_answer_etag(const ll_answer *a)
{
    return a->etag;
}

void ll_answer_release(ll_answer *a)
{
    if (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(a);
}

static size_t answer_bucket(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h & (ANSWER_BUCKETS - 1);
}

/* Under answers_lock: drops every kept answer (readers keep theirs). */
static void answers_clear(ll_core *c)
{
    for (size_t i = 0; i < ANSWER_BUCKETS; i++) {
        while (c->answers[i]) {
            ll_answer *a = c->answers[i];
            c->answers[i] = a->next;
            ll_answer_release(a);
        }
    }
    c->answers_bytes = 0;
}

/* Under answers_lock: takes id's answer out of the map (the map's
 * reference moves to the caller), or NULL. */
static ll_answer *answers_take(ll_core *c, const char *id)
{
    for (ll_answer **pp = &c->answers[answer_bucket(id)]; *pp; pp = &(*pp)->next) {
        ll_answer *a = *pp;
        if (strcmp(a->id, id) == 0) {
            *pp = a->next;
            a->next = NULL;
            c->answers_bytes -= a->len;
            return a;
        }
    }
    return NULL;
}

int ll_tenant_answer(ll_answer **out, ll_core *c, const char *id)
{
    /* Read both before the rows and the cluster's objects: an answer is
     * kept with them and served while neither has moved. */
    unsigned long long gen = ll_registry_generation();
    unsigned long long stamp = ll_status_stamp(c->status, id);
    ll_answer *a = NULL;
    json_t *t = NULL;
    char *text = NULL;
    size_t len, idlen = strlen(id);
    int error;

    *out = NULL;
    if (stamp) {
        pthread_mutex_lock(&c->answers_lock);
        for (a = c->answers[answer_bucket(id)]; a; a = a->next)
            if (strcmp(a->id, id) == 0)
                break;
        if (a && a->gen == gen && a->stamp == stamp)
            __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
        else
            a = NULL;
        pthread_mutex_unlock(&c->answers_lock);
        if ((*out = a))
            return 0;
    }
    if ((error = ll_tenant_get(&t, c, id)) < 0)
        return error;
    text = json_dumps(t, JSON_COMPACT);
    len = text ? strlen(text) : 0;
    if (!text || !(a = malloc(sizeof(*a) + len + 1 + idlen + 1))) {
        free(text);
        json_decref(t);
        return ll_error_set(-1, "out of memory");
    }
    a->refs = 1;
    a->gen = gen;
    a->stamp = stamp;
    a->next = NULL;
    snprintf(a->etag, sizeof(a->etag), "%s", json_string_value(json_object_get(t, "etag")) ?: "");
    a->len = len;
    memcpy(a->text, text, len + 1);
    a->id = a->text + len + 1;
    memcpy(a->id, id, idlen + 1);
    free(text);
    json_decref(t);
    if (stamp) {
        pthread_mutex_lock(&c->answers_lock);
        ll_answer_release(answers_take(c, id));
        if (c->answers_bytes + len > ANSWERS_MAX_BYTES)
            answers_clear(c);
        __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED); /* the map's */
        size_t b = answer_bucket(id);
        a->next = c->answers[b];
        c->answers[b] = a;
        c->answers_bytes += len;
        pthread_mutex_unlock(&c->answers_lock);
    }
    *out = a;
    return 0;
}

int ll_tenant_wait_over(ll_core *c, const char *id)
{
    char state[32];
    json_t *t = NULL;
    ll_registry *r;

    if (!ll_status_configured(c->status))
        return 1;
    if (!(r = ll_core_registry(c)) || ll_registry_tenant_get(&t, r, id, 0) < 0)
        return 1;
    int active = strcmp(json_string_value(json_object_get(t, "lifecycle")), "active") == 0;
    int known =
        ll_status_state(c->status, id, json_string_value(json_object_get(t, "commit")),
                        json_string_value(json_object_get(t, "sync")), state, sizeof(state)) == 0;
    json_decref(t);
    /* Not looked at (for this desired state) yet: over only when it is not
     * active. */
    if (!known)
        return !active;
    return strcmp(state, "ready") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "offboarding") == 0 || strcmp(state, "offboarded") == 0 ||
           strcmp(state, "drifted") == 0;
}

int ll_tenant_list(json_t **out, ll_core *c, const char *tier, const char *state,
                   const char *cursor, int limit)
{
    ll_registry *r = ll_core_registry(c);
    json_t *items = NULL, *t;
    char *next = NULL, after[256], next_cursor[520];
    const char *lifecycle = NULL;
    size_t i;
    int error, n;

    if (!r)
        return -1;
    if (limit < 1 || limit > 500)
        return ll_core_field_error("limit", "limit must be from 1 to 500");
    if (state) {
        static const char *const observed[] = {"unknown", "provisioning", "updating", "ready",
                                               "failed",  "blocked",      NULL};
        int known = 0;
        for (const char *const *s = observed; *s; s++)
            known |= strcmp(state, *s) == 0;
        if (known)
            lifecycle = "active";
        else if (strcmp(state, "offboarding") == 0 || strcmp(state, "offboarded") == 0 ||
                 strcmp(state, "drifted") == 0)
            lifecycle = state;
        else
            return ll_core_field_error("state", "unknown state '%.32s'", state);
    }
    /* Any well-formed tier name filters, known or not: tenants may remain in a
     * tier whose template left the repository. */
    if (tier && ll_validate_label(tier, 63, "tier") < 0)
        return LL_EINVALID;
    if (cursor) {
        n = ll_hex_decode((unsigned char *)after, sizeof(after) - 1, cursor);
        if (n <= 0)
            return ll_core_field_error("cursor", "cursor is not one this server gave out");
        after[n] = '\0';
        if (ll_validate_label(after, 253, "cursor") < 0)
            return ll_core_field_error("cursor", "cursor is not one this server gave out");
    }
    if ((error = ll_registry_tenant_list(&items, &next, r, tier, lifecycle, cursor ? after : NULL,
                                         limit)) < 0)
        return error;
    json_array_foreach(items, i, t) tenant_view(c, t);
    /* Observed states live in memory: the page is filtered after reading, so
     * it may hold fewer than limit items (next_cursor still goes on). */
    for (i = json_array_size(items); state && i-- > 0;) {
        const char *s = json_string_value(json_object_get(json_array_get(items, i), "state"));
        if (!s || strcmp(s, state) != 0)
            json_array_remove(items, i);
    }
    if (next)
        ll_hex_encode(next_cursor, (const unsigned char *)next,
                      strlen(next) < 255 ? strlen(next) : 255);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                     next ? json_string(next_cursor) : json_null());
    free(next);
    return 0;
}

json_t *ll_core_tier_view(const json_t *tier, const json_t *counts, const json_t *info,
                          const json_t *versions, int with_template)
{
    json_t *v = json_deep_copy(tier);
    const char *name = json_string_value(json_object_get(tier, "name"));
    const char *desc = json_string_value(json_object_get(info, name));
    json_t *n = json_object_get(counts, name);
    char etag[LL_ETAG_MAX];
    const char *parts[] = {json_string_value(json_object_get(tier, "template")), desc ? desc : ""};

    ll_etag_of(etag, parts, 2);
    json_object_set_new(v, "description", json_string(desc ? desc : ""));
    json_object_set_new(v, "tenants", json_integer(n ? json_integer_value(n) : 0));
    json_object_set_new(v, "etag", json_string(etag));
    /* Where the last successful rollout of the tier brought it. */
    json_object_set(v, "version",
                    json_object_get(versions, name) ? json_object_get(versions, name)
                                                    : json_null());
    if (!with_template)
        json_object_del(v, "template");
    return v;
}

int ll_tier_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *counts = NULL, *info = NULL, *items = json_array(),
           *t, *versions = NULL;
    const char *name;
    int error = -1;

    if (!r || (error = ll_registry_tenant_counts(&counts, r)) < 0 ||
        (error = ll_registry_tier_info(&info, r)) < 0 ||
        (error = ll_registry_tier_versions(&versions, r)) < 0) {
        json_decref(tiers);
        json_decref(items);
        json_decref(counts);
        json_decref(info);
        return r ? error : -1;
    }
    json_object_foreach(json_object_get(tiers, "tiers"), name, t)
        json_array_append_new(items, ll_core_tier_view(t, counts, info, versions, 0));
    *out = json_pack("{s:o}", "items", items);
    json_decref(counts);
    json_decref(info);
    json_decref(versions);
    json_decref(tiers);
    return 0;
}

int ll_tier_get(json_t **out, ll_core *c, const char *name)
{
    ll_registry *r = ll_core_registry(c);
    json_t *tiers = ll_gitops_tiers(c->git), *counts = NULL, *info = NULL, *versions = NULL;
    const json_t *t = ll_tiers_find(tiers, name);
    int error = 0;

    if (!t)
        error = ll_error_set(LL_ENOTFOUND, "no tier '%.64s'", name);
    else if (!r)
        error = -1;
    else if ((error = ll_registry_tenant_counts(&counts, r)) == 0 &&
             (error = ll_registry_tier_info(&info, r)) == 0 &&
             (error = ll_registry_tier_versions(&versions, r)) == 0)
        *out = ll_core_tier_view(t, counts, info, versions, 1);
    json_decref(counts);
    json_decref(info);
    json_decref(versions);
    json_decref(tiers);
    return error;
}

int ll_operation_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation op;
    json_t *v;
    int error;
    if (!r)
        return -1;
    if ((error = ll_registry_op_get(&op, r, id)) < 0)
        return error;
        /* The API's view: the record without its payload and failure class;
         * tier changes and rollouts name no tenant. */
#define TEXT(s) ((s) ? json_string(s) : json_null())
    v = json_pack("{s:I, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:{s:o, s:o}, s:I, s:o}", "id",
                  (json_int_t)op.id, "kind", ll_op_kind_name(op.kind), "tenant", TEXT(op.tenant),
                  "tier", TEXT(op.tier), "state", ll_op_state_name(op.state), "commit",
                  TEXT(op.commit), "error", TEXT(op.error), "created_at", TEXT(op.created_at),
                  "updated_at", TEXT(op.updated_at), "author", "name", TEXT(op.author_name),
                  "email", TEXT(op.author_email), "attempts", (json_int_t)op.attempts, "last_error",
                  TEXT(op.last_error));
#undef TEXT
    if (v && op.rollout_id)
        json_object_set_new(v, "rollout", json_integer(op.rollout_id));
    ll_operation_clear(&op);
    if (!v)
        return ll_error_set(-1, "out of memory");
    *out = v;
    return 0;
}

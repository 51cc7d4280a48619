/* status.c - tenants' observed state, from Flux's objects (see status.h):
 * the handle and the reads the API makes.
 *
 * The module's rooms (status_int.h): slim.c (what is kept of an object),
 * derive.c (the rules, pure), cache.c (informers, the cache, the tenants'
 * records), follower.c (the thread that derives states and records
 * transitions) and this file: opening and freeing the handle, and the
 * answers other threads ask for (describe, stamp, health, a tenant's state
 * or verdict, a namespace's owner, the generation).  Answers that other
 * modules read are typed records (ll_verdict, ll_kube_health); the health
 * becomes JSON here, in ll_kube_health_json, beside its record, so /readyz's
 * kube check has one spelling (and a unit test) whoever assembles /readyz.
 *
 * Locking: `lock` guards cache, tenants, owners, dirty, namespaces and
 * generation; every read here takes it and copies what it returns.  The
 * clone and the registry connection belong to the follower thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "landlord/error.h"
#include "landlord/util.h"
#include "landlord/worker.h"
#include "status_int.h"

#define NAMESPACES_WAIT_MS 2000 /* an ids check waits this long for the first list */

static const char *or_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* --- the handle ------------------------------------------------------------------------ */

static char *dup_or(const char *s, const char *def)
{
    return strdup(s && s[0] ? s : def);
}

int ll_status_open(ll_status **out, ll_kube *k, const ll_status_options *o)
{
    ll_status *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s) {
        ll_kube_free(k);
        return ll_error_set(-1, "out of memory");
    }
    s->kube = k;
    s->db_path = dup_or(o->db_path, "");
    s->git_dir = dup_or(o->git_dir, "");
    s->root = dup_or(o->root, "application-plane/production");
    s->flux_ns = dup_or(o->flux_namespace, "flux-system");
    s->gitrepo = dup_or(o->git_repository, "flux-system");
    s->ks = dup_or(o->kustomization, "dataplane-tenants");
    s->helm_version = dup_or(o->helm_version, "v2");
    s->branch = dup_or(o->branch, "main");
    s->sharded = o->sharded;
    s->reconcile_now = o->reconcile_now;
    s->on_events = o->on_events;
    s->on_events_payload = o->on_events_payload;
    s->cache = json_pack("{s:{}, s:{}, s:{}, s:{}, s:{}, s:{}}", "GitRepository", "Kustomization",
                         "HelmRelease", "Namespace", "Terraform", "ChartTerraform");

    s->owners = json_object();
    s->namespaces = json_object();
    s->tf_of_hr = json_object();
    s->dirty = json_object();
    s->seq = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->changed, NULL);
    if (!k) {
        *out = s;
        return 0;
    }
    if (git_repository_open_bare(&s->repo, s->git_dir) < 0) {
        ll_status_free(s);
        return ll_error_set(-1, "cannot open landlord's clone %s", o->git_dir);
    }
    if (st_start_informers(s) < 0 || pthread_create(&s->thread, NULL, st_follower_main, s) != 0) {
        ll_status_free(s);
        return ll_error_set(-1, "cannot start following the cluster");
    }
    s->started = 1;
    *out = s;
    return 0;
}

void ll_status_free(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (s->kube)
        ll_kube_cancel(s->kube);
    /* The follower reads the informers' status: it goes first. */
    if (s->started)
        pthread_join(s->thread, NULL);
    for (int i = 0; i < N_INFORMERS; i++)
        ll_informer_stop(s->inf[i]);
    ll_kube_free(s->kube);
    git_repository_free(s->repo);
    ll_registry_close(s->reg);
    json_decref(s->cache);
    st_tmap_free(&s->tenants);
    json_decref(s->owners);
    json_decref(s->namespaces);
    json_decref(s->tf_of_hr);
    json_decref(s->dirty);
    free(s->unstored);
    json_decref(s->walk);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->changed);
    free(s->db_path);
    free(s->git_dir);
    free(s->root);
    free(s->flux_ns);
    free(s->gitrepo);
    free(s->ks);
    free(s->helm_version);
    free(s->branch);
    free(s);
}

void ll_status_clone_repacked(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->repacked = 1;
    s->touched = 1;
    st_wake(s);
    pthread_mutex_unlock(&s->lock);
}

void ll_status_touch(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->touched = 1;
    st_wake(s);
    pthread_mutex_unlock(&s->lock);
}

/* Under lock: 1 when r's verdict was derived for its desired state as it
 * is now. */
static int verdict_current(const trec *r)
{
    return r->commit[0] && strcmp(r->state_commit, r->commit) == 0 &&
           strcmp(r->state_sync, r->sync) == 0;
}

/* Under lock: view as ll_status_describe shows a tenant the follower
 * derived: its verdict, unless the desired state moved since it was made
 * (then what the objects say now), and the objects as they are now. */
static void describe_record(ll_status *s, const trec *r, json_t *view)
{
    json_t *maps = NULL, *details = NULL;
    st_facts facts = {
        .applied = r->applied_at[0] && r->commit[0] && strcmp(r->applied_at, r->commit) == 0,
        .fetched = r->fetched,
    };
    const char *desired = NULL;
    st_objects objects = {NULL, 0};
    st_tenant t;
    st_verdict now;

    if (st_tenant_of(&t, &objects, s, r) < 0)
        goto done;
    for (size_t i = 0; i < t.n_objects && !desired; i++)
        desired = t.objects[i].chart;
    maps = st_cluster_maps(s);
    details = json_array();
    st_derive(&now, details, &t, maps, &facts);
    int current = verdict_current(r);
    const char *reason = current ? r->said->reason : now.reason;
    const char *message = current ? r->said->message : now.message;
    const char *deployed = current ? r->said->deployed_chart : now.deployed_chart;
    json_object_set_new(view, "state",
                        json_string(ll_tenant_state_name(current ? r->state : now.state)));
    json_object_set_new(view, "state_reason", json_string(reason));
    json_object_set_new(view, "state_message", json_string(message));
    if (or_null(r->since))
        json_object_set_new(view, "state_since", json_string(r->since));
    json_t *observed = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:O}", "desired_commit",
                                 or_null(r->commit), "fetched_commit", or_null(s->fetched_rev),
                                 "applied_commit", or_null(s->applied_rev), "desired_chart",
                                 desired, "deployed_chart", or_null(deployed), "objects", details);
    json_object_set_new(view, "observed", observed);
done:
    json_decref(details);
    json_decref(maps);
    free(objects.v);
}

void ll_status_describe(ll_status *s, json_t *view)
{
    const char *id = json_string_value(json_object_get(view, "id"));
    const char *lifecycle = json_string_value(json_object_get(view, "lifecycle"));
    const char *stored = json_string_value(json_object_get(view, "observed_state"));
    char why[LL_ERROR_MSG_MAX + 64];

    if (!s || !s->kube) {
        int active = strcmp(lifecycle, "active") == 0;
        json_object_set_new(view, "state", json_string(active ? "unknown" : lifecycle));
        json_object_set_new(view, "state_reason",
                            active ? json_string("no cluster configured") : json_null());
        return;
    }
    pthread_mutex_lock(&s->lock);
    const trec *r = st_tmap_get(&s->tenants, id);
    int synced = st_all_synced(s, why, sizeof(why));
    if (!r && strcmp(lifecycle, "offboarded") == 0 && stored && strcmp(stored, "offboarded") == 0) {
        /* Forgotten once offboarded and read so (forget_offboarded). */
        json_object_set_new(view, "state", json_string("offboarded"));
        json_object_set_new(view, "state_reason", json_string("Deleted"));
        json_object_set_new(view, "state_message", json_string("the tenant's objects are gone"));
        json_object_set(view, "state_since", json_object_get(view, "observed_since"));
    } else if (!r || !r->said || (!synced && strcmp(lifecycle, "active") == 0)) {
        json_object_set_new(view, "state", json_string("unknown"));
        json_object_set_new(view, "state_reason", json_string(!synced ? why : "not looked at yet"));
    } else {
        describe_record(s, r, view);
    }
    pthread_mutex_unlock(&s->lock);
}

int ll_status_configured(const ll_status *s)
{
    return s && s->kube;
}

unsigned long long ll_status_stamp(ll_status *s, const char *id)
{
    char why[LL_ERROR_MSG_MAX + 64];
    unsigned long long stamp = 0;
    if (!s || !s->kube)
        return 1;
    pthread_mutex_lock(&s->lock);
    /* While a watch is not synced the answer carries its error, which may
     * change at any time: not stamped. */
    if (st_all_synced(s, why, sizeof(why))) {
        const trec *r = st_tmap_get(&s->tenants, id);
        unsigned long long ver = r ? r->ver : 0;
        stamp = (ver > s->global_ver ? ver : s->global_ver) + 1;
    }
    pthread_mutex_unlock(&s->lock);
    return stamp;
}

_Static_assert(N_INFORMERS <= LL_KUBE_WATCHES_MAX, "ll_kube_health holds every informer");

void ll_status_health(ll_kube_health *out, ll_status *s)
{
    memset(out, 0, sizeof(*out));
    if (!s || !s->kube)
        return; /* LL_KUBE_NOT_CONFIGURED */
    int ok = st_all_synced(s, out->error, sizeof(out->error));
    out->status = ok ? LL_KUBE_OK : LL_KUBE_DEGRADED;
    out->server = ll_kube_server(s->kube);
    out->source = ll_kube_source(s->kube);
    for (int i = 0; i < N_INFORMERS; i++)
        ll_informer_health(&out->watches[i], s->inf[i]);
    out->n_watches = N_INFORMERS;
    pthread_mutex_lock(&s->lock);
    snprintf(out->reconcile_requested_at, sizeof(out->reconcile_requested_at), "%s",
             s->requested_at);
    snprintf(out->reconcile_handled_at, sizeof(out->reconcile_handled_at), "%s", s->handled_at);
    snprintf(out->helm_served, sizeof(out->helm_served), "%s", s->helm_served);
    snprintf(out->helm_watched, sizeof(out->helm_watched), "%s", s->helm_watched);
    out->namespaces_known = s->namespaces_listed;
    if (s->namespaces_listed)
        out->namespaces = (long long)json_object_size(s->namespaces);
    pthread_mutex_unlock(&s->lock);
}

void ll_status_helm_versions(char *served, size_t served_cap, char *watched, size_t watched_cap,
                             ll_status *s)
{
    served[0] = watched[0] = '\0';
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    snprintf(served, served_cap, "%s", s->helm_served);
    snprintf(watched, watched_cap, "%s", s->helm_watched);
    pthread_mutex_unlock(&s->lock);
}

json_t *ll_kube_health_json(const ll_kube_health *h)
{
    if (h->status == LL_KUBE_NOT_CONFIGURED)
        return json_pack("{s:s}", "status", "not-configured");
    json_t *watches = json_array();
    for (size_t i = 0; i < h->n_watches; i++) {
        const ll_watch_health *w = &h->watches[i];
        json_array_append_new(watches,
                              json_pack("{s:s, s:b, s:I, s:I, s:s?, s:b}", "kind", w->kind,
                                        "synced", w->state == LL_WATCH_SYNCED, "objects",
                                        (json_int_t)w->objects, "restarts", (json_int_t)w->restarts,
                                        "error", or_null(w->error), "absent", w->absent));
    }
    json_t *reconcile =
        json_pack("{s:s?, s:s?}", "requested_at", or_null(h->reconcile_requested_at), "handled_at",
                  or_null(h->reconcile_handled_at));
    json_t *namespaces = h->namespaces_known ? json_integer((json_int_t)h->namespaces) : NULL;
    json_t *helm = NULL;
    if (h->helm_watched[0]) {
        json_t *served = json_array();
        const char *p = h->helm_served;
        while (*p) {
            size_t n = strcspn(p, ",");
            json_array_append_new(served, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        helm = json_pack("{s:s, s:o}", "version", h->helm_watched, "served", served);
    }
    int ok = h->status == LL_KUBE_OK;
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o*, s:o*, s:s?}", "status",
                     ok ? "ok" : "degraded", "server", h->server, "source", h->source, "watches",
                     watches, "reconcile", reconcile, "helmreleases", helm, "namespaces",
                     namespaces, "error", ok ? NULL : h->error);
}

/* Under lock: 1 when r's last verdict was derived for the desired commit
 * and sync given (a state derived for an older desired state is no
 * answer). */
static int derived_for(const trec *r, const char *commit, const char *sync)
{
    const char *had = or_null(r->state_commit), *was = or_null(r->state_sync);
    return (commit ? had && strcmp(had, commit) == 0 : !had) &&
           (!sync || (was && strcmp(was, sync) == 0));
}

int ll_status_state(ll_tenant_state *out, ll_status *s, const char *id, const char *commit,
                    const char *sync)
{
    int error = LL_ENOTFOUND;
    *out = LL_STATE_NONE;
    if (!s || !s->kube)
        return LL_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    const trec *r = st_tmap_get(&s->tenants, id);
    if (r && r->state != LL_STATE_NONE && derived_for(r, commit, sync)) {
        *out = r->state;
        error = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return error;
}

int st_trec_verdict(ll_verdict *out, const trec *r, const char *commit, const char *sync)
{
    memset(out, 0, sizeof(*out));
    if (!r || !r->said || !derived_for(r, commit, sync))
        return LL_ENOTFOUND;
    out->state = r->state;
    snprintf(out->reason, sizeof(out->reason), "%s", r->said->reason);
    snprintf(out->message, sizeof(out->message), "%s", r->said->message);
    snprintf(out->deployed_chart, sizeof(out->deployed_chart), "%s", r->said->deployed_chart);
    return 0;
}

int ll_status_verdict(ll_verdict *out, ll_status *s, const char *id, const char *commit,
                      const char *sync)
{
    if (!s || !s->kube) {
        memset(out, 0, sizeof(*out));
        return LL_ENOTFOUND;
    }
    pthread_mutex_lock(&s->lock);
    int error = st_trec_verdict(out, st_tmap_get(&s->tenants, id), commit, sync);
    pthread_mutex_unlock(&s->lock);
    return error;
}

/* Under lock: 1 once the namespaces were listed, waiting for the first
 * list (at most NAMESPACES_WAIT_MS) while it is under way and has not
 * failed. */
static int wait_namespaces_listed(ll_status *s)
{
    struct timespec until;
    ll_deadline_in(&until, NAMESPACES_WAIT_MS);
    while (!s->namespaces_listed && !s->stop) {
        ll_watch_health w;
        ll_informer_health(&w, s->inf[I_ALL_NAMESPACES]);
        if (w.state == LL_WATCH_FAILED ||
            pthread_cond_timedwait(&s->changed, &s->lock, &until) != 0)
            break;
    }
    return s->namespaces_listed;
}

int ll_status_namespace_owner(ll_namespace_owner *out, ll_status *s, const char *name)
{
    char key[600];
    memset(out, 0, sizeof(*out));
    if (!s || !s->kube)
        return LL_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    out->known = wait_namespaces_listed(s);
    const json_t *v = json_object_get(s->namespaces, name);
    out->exists = out->known && v;
    if (out->exists && json_is_string(v)) {
        /* "<ks>/<ks namespace>/<tenant label>" */
        const char *text = json_string_value(v), *slash = strchr(text, '/');
        const char *second = slash ? strchr(slash + 1, '/') : NULL;
        if (second) {
            size_t ks_len = (size_t)(slash - text), ns_len = (size_t)(second - slash - 1);
            out->applied = strlen(s->ks) == ks_len && strncmp(text, s->ks, ks_len) == 0 &&
                           strlen(s->flux_ns) == ns_len &&
                           strncmp(slash + 1, s->flux_ns, ns_len) == 0;
            snprintf(out->tenant_label, sizeof(out->tenant_label), "%s", second + 1);
        }
    }
    snprintf(key, sizeof(key), "Namespace %s", name);
    snprintf(out->declared_by, sizeof(out->declared_by), "%s",
             json_string_value(json_object_get(s->owners, key)) ?: "");
    pthread_mutex_unlock(&s->lock);
    return 0;
}

unsigned long long ll_status_generation(ll_status *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    unsigned long long g = s->generation;
    pthread_mutex_unlock(&s->lock);
    return g;
}

void ll_status_wait(ll_status *s, unsigned long long seen, int64_t deadline_ms)
{
    if (!s)
        return;
    int64_t now_ms = ll_monotonic_ms();
    if (now_ms >= deadline_ms)
        return;
    struct timespec until;
    int64_t left = deadline_ms - now_ms;
    ll_deadline_in(&until, left);
    pthread_mutex_lock(&s->lock);
    while (!s->stop && s->generation == seen &&
           pthread_cond_timedwait(&s->changed, &s->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&s->lock);
}

/* cache.c - what the status module knows of the cluster and of each
 * tenant: the informers and their cache, the tenants' records.
 *
 * Informers (watch.c) follow the GitRepository and the Kustomization (by
 * name) and the HelmReleases, Namespaces and Terraforms applied by that
 * Kustomization (kustomize-controller's kustomize.toolkit.fluxcd.io/name
 * and /namespace labels), and the Terraforms a HelmRelease's chart made
 * (ChartTerraform: helm-controller's labels).  Their callbacks, on the
 * informers' threads, keep each object's packed slim in `cache` and mark
 * the tenants owning the object dirty for the follower (follower.c).  One
 * more informer follows every Namespace of the cluster, whoever made it:
 * `namespaces` keeps each one's name and, when a Kustomization applied it,
 * which one and its landlord.dev/tenant label (ll_status_namespace_owner).
 *
 * Tenants' records (trec) live in an open-addressing map by id (tmap);
 * st_trec_judged keeps a record's verdict (its words in one allocation).
 *
 * Locking: every function here that touches the handle runs under
 * s->lock (the callbacks take it themselves).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "status_int.h"

/* The cache's maps, one per informer.  ChartTerraform: Terraforms that a
 * HelmRelease's chart made (helm-controller labels them with the release),
 * as the reference's tenant chart does; they count for the tenant whose
 * file declares that HelmRelease.  AllNamespaces: every Namespace, kept in
 * `namespaces` rather than the cache. */
const char *const st_kinds[N_INFORMERS] = {"GitRepository", "Kustomization", "HelmRelease",
                                           "Namespace",     "Terraform",     "ChartTerraform",
                                           "AllNamespaces"};

/* --- tenant records ---------------------------------------------------------------- */

static size_t hash_id(const char *id)
{
    size_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

trec *st_tmap_get(const tmap *m, const char *id)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash_id(id) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i])
            return NULL;
        if (strcmp(m->slots[i]->id, id) == 0)
            return m->slots[i];
    }
}

void st_tmap_put(tmap *m, trec *r)
{
    size_t i = hash_id(r->id) & (m->cap - 1);
    while (m->slots[i])
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = r;
    m->count++;
}

/* A new empty record for id (NULL when out of memory). */
trec *st_tmap_add(tmap *m, const char *id)
{
    if ((m->count + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        trec **slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return NULL;
        tmap grown = {slots, cap, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                st_tmap_put(&grown, m->slots[i]);
        free(m->slots);
        *m = grown;
    }
    trec *r = calloc(1, sizeof(*r));
    if (!r || !(r->id = strdup(id))) {
        free(r);
        return NULL;
    }
    st_tmap_put(m, r);
    return r;
}

void st_tmap_free(tmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        st_trec_free(m->slots[i]);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void st_trec_free(trec *r)
{
    if (!r)
        return;
    free(r->id);
    st_objects_clear(&r->objects);
    free(r->said);
    free(r);
}

/* The words of verdict v, as a record keeps them (NULL when out of memory). */
static st_said *said_of(const st_verdict *v)
{
    size_t n = strlen(v->message) + 1;
    st_said *said = malloc(sizeof(*said) + n);
    if (!said)
        return NULL;
    snprintf(said->reason, sizeof(said->reason), "%s", v->reason);
    snprintf(said->deployed_chart, sizeof(said->deployed_chart), "%s", v->deployed_chart);
    memcpy(said->message, v->message, n);
    return said;
}

void st_trec_judged(trec *r, const st_verdict *v)
{
    r->state = v->state;
    /* What the state was derived for (ll_status_state compares). */
    snprintf(r->state_commit, sizeof(r->state_commit), "%s", r->commit);
    snprintf(r->state_sync, sizeof(r->state_sync), "%s", r->sync);
    /* Per-object details are derived again when asked for (describe):
     * thousands of tenants keep only their verdict. */
    free(r->said);
    r->said = said_of(v);
}

int st_tenant_of(st_tenant *out, st_objects *view, ll_status *s, const trec *r)
{
    const char *k;
    json_t *x;
    size_t n = r->objects.n;

    /* The Terraforms the charts of its HelmReleases made count as its own. */
    for (size_t i = 0; i < r->objects.n; i++) {
        if (r->objects.v[i].kind == ST_HELMRELEASE)
            n += json_object_size(json_object_get(s->tf_of_hr, r->objects.v[i].key));
    }
    memset(out, 0, sizeof(*out));
    view->n = 0;
    if (!(view->v = calloc(n + 1, sizeof(*view->v))))
        return -1;
    for (size_t i = 0; i < r->objects.n; i++)
        view->v[view->n++] = r->objects.v[i];
    for (size_t i = 0; i < r->objects.n; i++) {
        const st_object *o = &r->objects.v[i];
        if (o->kind != ST_HELMRELEASE)
            continue;
        json_object_foreach(json_object_get(s->tf_of_hr, o->key), k, x)
        {
            st_object *tf = &view->v[view->n++];
            tf->kind = ST_TERRAFORM;
            tf->key = (char *)k;
        }
    }
    out->lifecycle = r->lifecycle;
    out->sync = r->sync;
    out->commit = r->commit[0] ? r->commit : NULL;
    out->unreadable = r->unreadable;
    out->objects = view->v;
    out->n_objects = view->n;
    return 0;
}

json_t *st_cluster_maps(ll_status *s)
{
    return json_pack("{s:O, s:O, s:O, s:O}", "HelmRelease",
                     json_object_get(s->cache, "HelmRelease"), "Namespace",
                     json_object_get(s->cache, "Namespace"), "Terraform",
                     json_object_get(s->cache, "Terraform"), "ChartTerraform",
                     json_object_get(s->cache, "ChartTerraform"));
}

/* --- the informers' callbacks ------------------------------------------------------ */

/* The informers' slim: packed as text (ll_status_slim_pack). */
static json_t *slim_packed(const json_t *object)
{
    json_t *slim = ll_status_slim(object);
    char *text = ll_status_slim_pack(slim);
    json_t *packed = json_string(text ? text : "[]");
    free(text);
    json_decref(slim);
    return packed;
}

json_t *st_unpack(const json_t *v)
{
    return json_is_string(v) ? ll_status_slim_unpack(json_string_value(v))
                             : json_incref((json_t *)v);
}

void st_wake(ll_status *s)
{
    pthread_cond_signal(&s->wake);
}

void st_mark(ll_status *s, const char *id)
{
    trec *r = st_tmap_get(&s->tenants, id);
    s->clock++;
    if (r)
        r->ver = s->clock;
    json_object_set_new(s->dirty, id, json_true());
}

void st_mark_all(ll_status *s)
{
    s->global_ver = ++s->clock;
}

/* The HelmRelease a packed ChartTerraform slim belongs to, into out. */
static void hr_of(char *out, size_t cap, const json_t *packed)
{
    json_t *o = st_unpack(packed);
    snprintf(out, cap, "%s", json_string_value(json_object_get(o, "hr")) ?: "");
    json_decref(o);
}

/* Under lock: keeps tf_of_hr up to date with a ChartTerraform change (map:
 * the cache's map before the change) and marks the tenant owning the
 * HelmRelease. */
static void index_chart_terraform(ll_status *s, const char *type, const char *key,
                                  const json_t *slim, const json_t *objects, const json_t *map)
{
    char hr[600], owner_key[700];
    const char *k;
    json_t *v;
    if (strcmp(type, "RESYNC") == 0) {
        json_object_clear(s->tf_of_hr);
        json_object_foreach((json_t *)objects, k, v)
        {
            hr_of(hr, sizeof(hr), v);
            if (!hr[0])
                continue;
            json_t *set = json_object_get(s->tf_of_hr, hr);
            if (!set)
                json_object_set_new(s->tf_of_hr, hr, set = json_object());
            json_object_set_new(set, k, json_true());
        }
        return;
    }
    /* Where it was (a label may have changed), then where it is. */
    hr_of(hr, sizeof(hr), json_object_get(map, key));
    if (hr[0]) {
        json_t *set = json_object_get(s->tf_of_hr, hr);
        json_object_del(set, key);
        if (set && !json_object_size(set))
            json_object_del(s->tf_of_hr, hr);
        snprintf(owner_key, sizeof(owner_key), "HelmRelease %s", hr);
        const char *id = json_string_value(json_object_get(s->owners, owner_key));
        if (id)
            st_mark(s, id);
    }
    if (strcmp(type, "DELETED") == 0)
        return;
    hr_of(hr, sizeof(hr), slim);
    if (hr[0]) {
        json_t *set = json_object_get(s->tf_of_hr, hr);
        if (!set)
            json_object_set_new(s->tf_of_hr, hr, set = json_object());
        json_object_set_new(set, key, json_true());
        snprintf(owner_key, sizeof(owner_key), "HelmRelease %s", hr);
        const char *id = json_string_value(json_object_get(s->owners, owner_key));
        if (id)
            st_mark(s, id);
    }
}

/* Informer callback: keep the slim object, mark its owner dirty. */
static void on_change(const char *type, const char *key, const json_t *slim, const json_t *objects,
                      const char *kind, ll_status *s)
{
    json_t *map;
    char owner_key[600];

    pthread_mutex_lock(&s->lock);
    map = json_object_get(s->cache, kind);
    int chart_tf = strcmp(kind, "ChartTerraform") == 0;
    if (chart_tf)
        index_chart_terraform(s, type, key, slim, objects, map);
    if (strcmp(type, "RESYNC") == 0) {
        /* The informer is done with the map: keep it as it is. */
        json_object_set(s->cache, kind, (json_t *)objects);
        /* Everything of this kind may have changed. */
        trec *r;
        TMAP_FOREACH(&s->tenants, r) json_object_set_new(s->dirty, r->id, json_true());
        st_mark_all(s);
    } else {
        if (strcmp(type, "DELETED") == 0)
            json_object_del(map, key);
        else
            json_object_set(map, key, (json_t *)slim);
        if (strcmp(kind, "GitRepository") == 0 || strcmp(kind, "Kustomization") == 0) {
            s->pending_dirty = 1;
            st_mark_all(s);
        } else {
            snprintf(owner_key, sizeof(owner_key), "%s %s", kind, key);
            const char *id = json_string_value(json_object_get(s->owners, owner_key));
            if (id)
                st_mark(s, id);
        }
    }
    st_wake(s);
    pthread_mutex_unlock(&s->lock);
}

#define CALLBACK(name, idx)                                                                        \
    static void name(const char *type, const char *key, const json_t *slim, const json_t *objects, \
                     void *payload)                                                                \
    {                                                                                              \
        on_change(type, key, slim, objects, st_kinds[idx], payload);                               \
    }
CALLBACK(on_gitrepo, I_GITREPO)
CALLBACK(on_kustomization, I_KUSTOMIZATION)
CALLBACK(on_helmrelease, I_HELMRELEASE)
CALLBACK(on_namespace, I_NAMESPACE)
CALLBACK(on_terraform, I_TERRAFORM)
CALLBACK(on_chart_terraform, I_CHART_TERRAFORM)
#undef CALLBACK

/* What `namespaces` keeps of a Namespace (new reference): true when no
 * Kustomization applied it, else "<ks>/<ks namespace>/<tenant label>"
 * (label values and names hold no '/'). */
static json_t *namespace_slim(const json_t *o)
{
    const json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
    const char *ks = json_string_value(json_object_get(labels, "kustomize.toolkit.fluxcd.io/name"));
    const char *ns =
        json_string_value(json_object_get(labels, "kustomize.toolkit.fluxcd.io/namespace"));
    const char *tenant = json_string_value(json_object_get(labels, "landlord.dev/tenant"));
    if (!ks || !ns)
        return json_true();
    return json_sprintf("%s/%s/%s", ks, ns, tenant ? tenant : "");
}

static void on_all_namespaces(const char *type, const char *key, const json_t *slim,
                              const json_t *objects, void *payload)
{
    ll_status *s = payload;
    pthread_mutex_lock(&s->lock);
    if (strcmp(type, "RESYNC") == 0) {
        /* The informer is done with the map: keep it as it is. */
        json_decref(s->namespaces);
        s->namespaces = json_incref((json_t *)objects);
        s->namespaces_listed = 1;
        pthread_cond_broadcast(&s->changed); /* ll_status_namespace_owner may wait */
    } else if (strcmp(type, "DELETED") == 0) {
        json_object_del(s->namespaces, key);
    } else {
        json_object_set(s->namespaces, key, (json_t *)slim);
    }
    pthread_mutex_unlock(&s->lock);
}

/* --- starting and asking the informers --------------------------------------------- */

/* 1 when v is a Kubernetes API version name (v1, v2beta1): what may go into a
 * path. */
static int api_version_name(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    return n >= 2 && n < 32 && v[0] == 'v' &&
           strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

/* The HelmRelease collection at a version the cluster serves (the informer's
 * resolve hook): the version the templates or the setting ask for when the
 * cluster serves it, else the group's preferred version.  Asks API discovery
 * (GET /apis/helm.toolkit.fluxcd.io, which every authenticated user may
 * read) before each list, and keeps what it learnt for /readyz and the tier
 * views. */
static int resolve_helm(char *out, size_t cap, void *payload)
{
    ll_status *s = payload;
    json_t *group = NULL, *v;
    char served[sizeof(s->helm_served)] = "", chosen[32] = "";
    size_t i, used = 0;
    int error = ll_kube_get(&group, s->kube, "/apis/helm.toolkit.fluxcd.io");

    if (error == LL_ENOTFOUND) {
        ll_error_set(LL_ENOTFOUND, "the cluster serves no helm.toolkit.fluxcd.io API");
        ll_error_hint("install Flux's helm-controller (its HelmRelease CRD)");
        return LL_ENOTFOUND;
    }
    if (error < 0)
        return error;
    const char *preferred =
        json_string_value(json_object_get(json_object_get(group, "preferredVersion"), "version"));
    json_array_foreach(json_object_get(group, "versions"), i, v)
    {
        const char *name = json_string_value(json_object_get(v, "version"));
        if (!api_version_name(name) || used + strlen(name) + 2 > sizeof(served))
            continue;
        used +=
            (size_t)snprintf(served + used, sizeof(served) - used, "%s%s", used ? "," : "", name);
        if (strcmp(name, s->helm_version) == 0 ||
            (!chosen[0] && preferred && strcmp(name, preferred) == 0))
            snprintf(chosen, sizeof(chosen), "%s", name);
    }
    json_decref(group);
    if (!chosen[0]) {
        ll_error_set(LL_ENOTFOUND, "the cluster serves no usable helm.toolkit.fluxcd.io version");
        return LL_ENOTFOUND;
    }
    pthread_mutex_lock(&s->lock);
    int changed = strcmp(s->helm_watched, chosen) != 0;
    snprintf(s->helm_served, sizeof(s->helm_served), "%s", served);
    snprintf(s->helm_watched, sizeof(s->helm_watched), "%s", chosen);
    pthread_mutex_unlock(&s->lock);
    if (changed && strcmp(chosen, s->helm_version) != 0)
        ll_log_warn("msg=\"the cluster does not serve the HelmRelease version the tier templates "
                    "use; watching the one it serves\" wanted=%s watching=%s served=%s",
                    s->helm_version, chosen, served);
    snprintf(out, cap, "/apis/helm.toolkit.fluxcd.io/%s/helmreleases", chosen);
    return 0;
}

int st_start_informers(ll_status *s)
{
    char selector[600], field[300], paths[N_INFORMERS][400], probe[200];
    const ll_informer_fn fns[N_INFORMERS] = {on_gitrepo,       on_kustomization, on_helmrelease,
                                             on_namespace,     on_terraform,     on_chart_terraform,
                                             on_all_namespaces};

    snprintf(selector, sizeof(selector),
             "kustomize.toolkit.fluxcd.io/name=%s,kustomize.toolkit.fluxcd.io/namespace=%s", s->ks,
             s->flux_ns);
    snprintf(paths[I_GITREPO], sizeof(paths[0]),
             "/apis/source.toolkit.fluxcd.io/v1/namespaces/%s/gitrepositories", s->flux_ns);
    snprintf(paths[I_KUSTOMIZATION], sizeof(paths[0]),
             "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/%s/kustomizations", s->flux_ns);
    snprintf(paths[I_HELMRELEASE], sizeof(paths[0]), "/apis/helm.toolkit.fluxcd.io/%s/helmreleases",
             s->helm_version);
    snprintf(paths[I_NAMESPACE], sizeof(paths[0]), "/api/v1/namespaces");
    snprintf(paths[I_ALL_NAMESPACES], sizeof(paths[0]), "/api/v1/namespaces");
    snprintf(paths[I_TERRAFORM], sizeof(paths[0]),
             "/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms");
    snprintf(paths[I_CHART_TERRAFORM], sizeof(paths[0]),
             "/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms");
    snprintf(probe, sizeof(probe), "/apis/infra.contrib.fluxcd.io/v1alpha2");
    for (int i = 0; i < N_INFORMERS; i++) {
        const char *name = i == I_GITREPO ? s->gitrepo : s->ks;
        snprintf(field, sizeof(field), "metadata.name=%s", name);
        ll_informer_spec spec = {
            .kind = st_kinds[i],
            .path = paths[i],
            .label_selector = i == I_CHART_TERRAFORM  ? "helm.toolkit.fluxcd.io/name"
                              : i == I_ALL_NAMESPACES ? NULL
                              : i >= I_HELMRELEASE    ? selector
                                                      : NULL,
            .field_selector = i < I_HELMRELEASE ? field : NULL,
            .probe = i == I_TERRAFORM || i == I_CHART_TERRAFORM ? probe : NULL,
            .resolve = i == I_HELMRELEASE ? resolve_helm : NULL,
            .slim = i == I_ALL_NAMESPACES ? namespace_slim : slim_packed,
            .on_change = fns[i],
            .payload = s,
        };
        if (ll_informer_start(&s->inf[i], s->kube, &spec) < 0)
            return -1;
    }
    return 0;
}

int st_all_synced(ll_status *s, char *why, size_t cap)
{
    for (int i = 0; i < N_INFORMERS; i++) {
        if (!ll_informer_synced(s->inf[i])) {
            ll_watch_health w;
            ll_informer_health(&w, s->inf[i]);
            snprintf(why, cap, "%s: %s", st_kinds[i],
                     w.error[0] ? w.error : "listing the cluster's objects for the first time");
            return 0;
        }
    }
    return 1;
}

/* status_int.h - what the files of the status module share (status.h is
 * its public face); private to lib/cluster.
 *
 * The module's rooms:
 * - slim.c: what is kept of a Kubernetes object (ll_status_slim), packed
 *   as text for the cache.  Pure.
 * - derive.c: the rules of docs/api.md "Observed state" (judge an object,
 *   then the tenant), and the objects a tenant's file declares.  Pure.
 * - cache.c: the per-tenant records (tmap), the informers and their
 *   callbacks, which fill the cache and mark tenants dirty.
 * - follower.c: the follower thread, which derives dirty tenants' states
 *   and records transitions in the registry.
 * - status.c: the handle (open, free) and the reads the API makes.
 *
 * Records that cross these files are typed: a tenant's record (trec), the
 * objects its file declares (st_object), a tenant as the rules read it
 * (st_tenant), the cluster's facts for one tenant (st_facts) and a verdict
 * (st_verdict: status.h's ll_verdict, which the module also hands out).  The cached slims stay
 * packed JSON text, as the informers give them: tens of thousands are kept, and text is the
 * smallest form that holds them.
 */
#ifndef LANDLORD_STATUS_INT_H
#define LANDLORD_STATUS_INT_H

#include <pthread.h>
#include <stddef.h>
#include <git2.h>
#include <jansson.h>

#include "landlord/registry.h"
#include "landlord/state.h"
#include "landlord/status.h"
#include "landlord/watch.h"

#define MESSAGE_MAX 600 /* of a condition's message, as kept in a slim */
#define N_INFORMERS 7

enum {
    I_GITREPO,
    I_KUSTOMIZATION,
    I_HELMRELEASE,
    I_NAMESPACE,
    I_TERRAFORM,
    I_CHART_TERRAFORM,
    I_ALL_NAMESPACES
};

/* The informers' kinds, by I_* (cache.c). */
extern const char *const st_kinds[N_INFORMERS];

/* --- tenants and verdicts (derive.c) --- */

/* The kinds of object a tenant's file may declare that landlord watches. */
typedef enum st_kind { ST_NAMESPACE, ST_HELMRELEASE, ST_TERRAFORM, ST_KIND_COUNT } st_kind;

/* Kind k's name: the Kubernetes kind, and the cache's map (a static string). */
const char *st_kind_name(st_kind k);

/* One object a tenant's file declares. */
typedef struct st_object {
    st_kind kind;
    char *key;       /* "name" (a Namespace) or "namespace/name" */
    char *chart;     /* spec.chart.spec.version, or NULL */
    char values[17]; /* a HelmRelease's values digest (st_values_digest), or "" */
} st_object;

/* The objects a tenant's file declares: v[0..n), their strings owned. */
typedef struct st_objects {
    st_object *v;
    size_t n;
} st_objects;

/* Frees what o holds and empties it. */
void st_objects_clear(st_objects *o);

/* A tenant as the rules read it; every pointer borrowed. */
typedef struct st_tenant {
    const char *lifecycle; /* active, offboarding, offboarded, drifted */
    const char *sync;      /* pending, committed, failed */
    const char *commit;    /* its desired commit, or NULL */
    int unreadable;        /* its file cannot be read at that commit */
    const st_object *objects;
    size_t n_objects;
} st_tenant;

/* What the follower knows of the cluster for one tenant's desired commit. */
typedef struct st_facts {
    int applied;           /* the Kustomization applied a commit including it */
    int fetched;           /* the GitRepository fetched one */
    const char *failed_ks; /* the Kustomization failed on one: its message (borrowed), or NULL */
} st_facts;

/* A tenant's derived state: docs/api.md "Observed state"; the record
 * ll_status_verdict hands out (status.h). */
typedef ll_verdict st_verdict;

/* What a tenant's record keeps of its last verdict (one allocation). */
typedef struct st_said {
    char reason[128];
    char deployed_chart[64];
    char message[]; /* NUL-terminated */
} st_said;

/* Derives tenant's state (pure).  maps: {"HelmRelease": {key: slim or
 * packed slim}, "Namespace", "Terraform", "ChartTerraform"}; details, when
 * not NULL, gets one object per declared object as the API shows them.
 * tenant, maps and facts are borrowed. */
void st_derive(st_verdict *out, json_t *details, const st_tenant *tenant, const json_t *maps,
               const st_facts *facts);

/* The objects tenant file text[0..len) declares into *out (new; free with
 * st_objects_clear).  0, or -1 when it is not YAML or out of memory. */
int st_declared(st_objects *out, const char *text, size_t len);

/* Condition type's field of a slim (borrowed), or NULL. */
const char *st_cond_str(const json_t *slim, const char *type, const char *field);

/* 1 when condition type of slim has status. */
int st_cond_is(const json_t *slim, const char *type, const char *status);

/* --- slims (slim.c) --- */

/* The digest of a HelmRelease's spec.values (NULL: {}), 16 hex digits,
 * into out; "" when the values hold a Flux substitution (${...}). */
void st_values_digest(char out[17], const json_t *values);

/* --- tenant records (cache.c) --- */

/* One tenant as the follower knows it: short fields inline ("" when
 * absent), a few hundred bytes where a jansson tree took several
 * kilobytes. */
typedef struct trec {
    char *id;
    char lifecycle[16], sync[16];         /* from the registry */
    char commit[GIT_OID_HEXSZ + 1];       /* its desired commit */
    char objects_at[GIT_OID_HEXSZ + 1];   /* the commit `objects` was read at */
    char applied_at[GIT_OID_HEXSZ + 1];   /* Flux applied a commit including `commit` */
    ll_tenant_state state;                /* the last verdict (LL_STATE_NONE: none) */
    char since[40];                       /* when it changed */
    char state_commit[GIT_OID_HEXSZ + 1]; /* what the verdict was derived for */
    char state_sync[16];
    unsigned char unreadable, fetched;
    unsigned long long ver; /* ll_status_stamp */
    st_objects objects;     /* what its file declares (as read at objects_at) */
    st_said *said;          /* the last verdict's words; NULL: none derived yet */
} trec;

/* id -> trec, open addressing; records leave only when the whole map is
 * rebuilt without them (forget_offboarded in follower.c). */
typedef struct tmap {
    trec **slots;
    size_t cap, count;
} tmap;

/* The record of id (borrowed), or NULL. */
trec *st_tmap_get(const tmap *m, const char *id);

/* Puts r (stolen) in a slot of m, which has room. */
void st_tmap_put(tmap *m, trec *r);

/* A new empty record for id, owned by m (NULL when out of memory). */
trec *st_tmap_add(tmap *m, const char *id);

/* Frees a record; NULL is fine. */
void st_trec_free(trec *r);

/* r took verdict v (borrowed) for its desired state as it is now (commit,
 * sync): its state, what that was derived for, and the verdict's words
 * (said stays NULL when out of memory). */
void st_trec_judged(trec *r, const st_verdict *v);

/* r's last verdict into *out, when it was derived for the desired commit
 * (NULL: none) and sync (NULL: any) given; else LL_ENOTFOUND and *out
 * zeroed.  r may be NULL (LL_ENOTFOUND).  status.c; under lock. */
int st_trec_verdict(ll_verdict *out, const trec *r, const char *commit, const char *sync);

/* Frees every record of m and its slots. */
void st_tmap_free(tmap *m);

#define TMAP_FOREACH(m, r)                                                                         \
    for (size_t r##_i = 0; r##_i < (m)->cap; r##_i++)                                              \
        if (((r) = (m)->slots[r##_i]))

/* --- the handle --- */

struct ll_status {
    ll_kube *kube;
    char *db_path, *git_dir, *root, *flux_ns, *gitrepo, *ks, *helm_version, *branch;
    /* Under lock: the HelmRelease versions the cluster serves ("v2,v2beta1",
     * from discovery; "" before it answered) and the one watched. */
    char helm_served[128], helm_watched[32];
    int sharded, reconcile_now;
    void (*on_events)(void *payload);
    void *on_events_payload;

    ll_informer *inf[N_INFORMERS];
    pthread_t thread;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the follower */
    pthread_cond_t changed; /* waiters on generation */
    int stop, touched;
    json_t *cache;     /* kind -> {key -> packed slim} */
    tmap tenants;      /* id -> record (see load_tenants) */
    json_t *owners;    /* "Kind key" -> id */
    json_t *tf_of_hr;  /* HelmRelease key -> {ChartTerraform key -> true} */
    json_t *dirty;     /* id -> true */
    int pending_dirty; /* GitRepository/Kustomization moved: tenants not yet applied */
    unsigned long long generation;
    /* Stamps for ll_status_stamp: `clock` moves on every change; a tenant's
     * record keeps the clock of its last change ("ver"), `global_ver` that
     * of the last change every tenant's answer shows. */
    unsigned long long clock, global_ver;
    /* Every namespace of the cluster: name -> true, or "<ks>/<ks
     * namespace>/<landlord.dev/tenant label>" when a Kustomization applied
     * it (namespace_slim); listed once the first list arrived. */
    json_t *namespaces;
    int namespaces_listed;

    /* The follower's own. */
    git_repository *repo;
    ll_registry *reg;
    long long seq; /* the last tenant change read (-1: none yet) */
    char head[GIT_OID_HEXSZ + 1];
    char walk_of[GIT_OID_HEXSZ + 1];
    json_t *walk;            /* sha -> true: commits reachable from walk_of (up to WALK_MAX) */
    long long since_prune;   /* events stored since the last prune */
    ll_transition *unstored; /* transitions not stored yet (a full volume), oldest first */
    size_t n_unstored;
    int repacked;         /* the clone's packs were merged (under lock) */
    long long since_trim; /* tenants derived since the last malloc_trim */
    /* Under lock: the commits of the GitRepository's artifact and of the
     * Kustomization's last apply, as last looked at. */
    char fetched_rev[GIT_OID_HEXSZ + 1], applied_rev[GIT_OID_HEXSZ + 1];
    /* Under lock: the last reconcile request landlord made, and the one
     * Flux last handled (the GitRepository's lastHandledReconcileAt). */
    char requested_at[64], handled_at[64];
    int walk_complete;
};

/* --- the cache (cache.c) --- */

/* Starts the informers that fill s->cache and s->namespaces. */
int st_start_informers(ll_status *s);

/* 1 when every informer has listed its collection; else 0 and why. */
int st_all_synced(ll_status *s, char *why, size_t cap);

/* Under lock: wakes the follower. */
void st_wake(ll_status *s);

/* Under lock: what tenant id's answer shows changed (or may have). */
void st_mark(ll_status *s, const char *id);

/* Under lock: what every tenant's answer shows changed. */
void st_mark_all(ll_status *s);

/* A cached object as a tree (new reference). */
json_t *st_unpack(const json_t *v);

/* Under lock: r as st_derive() reads a tenant, with the Terraforms the
 * charts of its HelmReleases made, into *out.  Its objects are a view into
 * r and s->tf_of_hr, in *view (free(view->v) alone frees it); valid while
 * the lock is held and r is not changed.  0, or -1 when out of memory. */
int st_tenant_of(st_tenant *out, st_objects *view, ll_status *s, const trec *r);

/* Under lock: the cache's maps st_derive() reads (new reference). */
json_t *st_cluster_maps(ll_status *s);

/* --- the follower (follower.c) --- */

/* The follower thread's body; arg is the ll_status. */
void *st_follower_main(void *arg);

#endif

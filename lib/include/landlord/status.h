/* status.h - what the cluster has made of each tenant.
 *
 * Informers (watch.h) follow the GitRepository and Kustomization that carry
 * the tenants, and the HelmReleases, Namespaces and (when that API exists)
 * Terraform objects Flux applied from that Kustomization (selected by the
 * labels kustomize-controller puts on what it applies).  Each tenant's
 * objects are the ones its file declares at its desired commit, read from
 * landlord's clone, so adopted tenants are matched by name like rendered
 * ones.  Its state follows docs/api.md "Observed state": ready only when
 * Flux applied a commit that includes the tenant's desired commit and every
 * HelmRelease is Ready at its generation with history[0] deployed at the
 * chart version the file asks for.
 *
 * A thread of its own reloads changed tenants from the registry, reads
 * their files, derives states and records transitions; GET requests only
 * read what it computed.  When the branch moves and reconcile_now is set, it
 * asks Flux to fetch at once (merge-patches reconcile.fluxcd.io/requestedAt
 * on the GitRepository).  Thread-safe.
 *
 * What other modules read comes as typed records filled into out
 * parameters: a tenant's verdict (ll_verdict), the cluster's health
 * (ll_kube_health, each informer's ll_watch_health); ll_kube_health_json
 * spells the health as /readyz shows it.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; `json_t *` results are new references.
 */
#ifndef LANDLORD_STATUS_H
#define LANDLORD_STATUS_H

#include <stdint.h>
#include <jansson.h>

#include "landlord/kube.h"
#include "landlord/state.h"
#include "landlord/watch.h"

typedef struct ll_status ll_status;

typedef struct ll_status_options {
    const char *db_path;        /* the registry */
    const char *git_dir;        /* landlord's clone, read for tenant files and ancestry */
    const char *root;           /* the folder holding tenants/ in the repository */
    int sharded;                /* git-layout sharded */
    const char *flux_namespace; /* where the GitRepository and Kustomization live */
    const char *git_repository; /* the GitRepository's name */
    const char *kustomization;  /* the Kustomization that applies the tenants */
    const char *helm_version;   /* "v2" or "v2beta1" */
    const char *branch;         /* the GitOps branch (its remote-tracking ref is read) */
    int reconcile_now;          /* annotate the GitRepository when the branch moves */
    /* Called on the follower's thread after transitions were stored as
     * events (to wake whoever delivers them), or NULL. */
    void (*on_events)(void *payload);
    void *on_events_payload;
} ll_status_options;

/* Starts following the cluster through k (steals it).  k NULL: no cluster
 * configured; every active tenant's state is then "unknown".  *out is new
 * (ll_status_free); opts is borrowed (its strings are copied). */
int ll_status_open(ll_status **out, ll_kube *k, const ll_status_options *opts);

/* Stops the watches and the thread; frees.  NULL is fine. */
void ll_status_free(ll_status *s);

/* The registry changed (a write was stored, a batch was pushed, adoption).
 * Any thread; s may be NULL. */
void ll_status_touch(ll_status *s);

/* The clone's packs were merged: the follower opens its handle anew (the
 * old one holds removed pack files open).  Any thread; s may be NULL. */
void ll_status_clone_repacked(ll_status *s);

/* Adds the observed state to view, a tenant as the API shows it ("id",
 * "lifecycle" still present): "state", "state_reason", "state_message",
 * "state_since" and "observed" {desired_commit, fetched_commit,
 * applied_commit, desired_chart, deployed_chart, objects: [...]}.  view is
 * borrowed and changed in place. */
void ll_status_describe(ll_status *s, json_t *view);

/* 1 when a cluster is configured (states are followed). */
int ll_status_configured(const ll_status *s);

/* The cluster check of /readyz, as ll_kube_health_json spells it. */
typedef enum ll_kube_status {
    LL_KUBE_NOT_CONFIGURED = 0, /* no cluster: states are "unknown" */
    LL_KUBE_OK,                 /* every informer synced */
    LL_KUBE_DEGRADED,           /* one is not (yet): error says which and why */
} ll_kube_status;

#define LL_KUBE_WATCHES_MAX 8 /* informers of one ll_status (7 today) */

/* How following the cluster goes.  With LL_KUBE_NOT_CONFIGURED only
 * status is set (the rest is zero). */
typedef struct ll_kube_health {
    ll_kube_status status;
    const char *server; /* the API server, borrowed from s: valid until ll_status_free */
    const char *source; /* where its address came from, borrowed likewise */
    ll_watch_health watches[LL_KUBE_WATCHES_MAX]; /* [0..n_watches), kinds borrowed from s */
    size_t n_watches;
    char reconcile_requested_at[64]; /* landlord's last reconcile request, or "" */
    char reconcile_handled_at[64];   /* the one Flux last handled, or "" */
    char helm_served[128]; /* HelmRelease versions the cluster serves ("v2,v2beta1"), or "" before
                              discovery */
    char helm_watched[32]; /* the version landlord watches, or "" */
    int namespaces_known;  /* the cluster's namespaces were listed */
    long long namespaces;  /* how many there are, when known */
    char error[LL_ERROR_MSG_MAX + 64]; /* DEGRADED: the first informer not synced, and why */
} ll_kube_health;

/* How following the cluster goes, into *out (strings borrowed from s; see
 * ll_kube_health).  s may be NULL (not configured). */
void ll_status_health(ll_kube_health *out, ll_status *s);

/* The HelmRelease versions the cluster serves ("v2,v2beta1") and the one
 * landlord watches, as API discovery last said, into served and watched
 * (each "" before discovery answered, or without a cluster; cut to cap).
 * Any thread; s may be NULL. */
void ll_status_helm_versions(char *served, size_t served_cap, char *watched, size_t watched_cap,
                             ll_status *s);

/* /readyz's "kube" check from h (borrowed): {"status": "ok"|"degraded"|
 * "not-configured", "server", "source", "watches": [{"kind", "synced",
 * "objects", "restarts", "error", "absent"}...], "reconcile":
 * {"requested_at", "handled_at"}, "helmreleases"? {"version", "served":
 * [...]} (once discovered), "namespaces"? (once listed), "error"};
 * only "status" when not configured.  New reference (NULL when out of
 * memory).  The one place that record becomes JSON. */
json_t *ll_kube_health_json(const ll_kube_health *h);

/* Tenant id's state into *out, when it was derived for the desired commit
 * and sync given (the registry's; borrowed).  LL_ENOTFOUND (and
 * LL_STATE_NONE) when the follower has not looked at that desired state
 * yet, or there is no cluster. */
int ll_status_state(ll_tenant_state *out, ll_status *s, const char *id, const char *commit,
                    const char *sync);

/* A tenant's derived state and its words: docs/api.md "Observed state". */
typedef struct ll_verdict {
    ll_tenant_state state;
    char reason[128];        /* e.g. "UpgradeFailed" */
    char message[1280];      /* one line for a person */
    char deployed_chart[64]; /* the first HelmRelease's history[0] chart version, or "" */
} ll_verdict;

/* The follower's verdict on tenant id into *out, when it was derived for
 * the desired commit and sync given (the registry's; borrowed).
 * LL_ENOTFOUND (and *out zeroed) when not (yet), or without a cluster. */
int ll_status_verdict(ll_verdict *out, ll_status *s, const char *id, const char *commit,
                      const char *sync);

/* A namespace as the cluster and landlord's clone show it. */
typedef struct ll_namespace_owner {
    int known;             /* the cluster's namespaces were listed (else exists, applied are 0) */
    int exists;            /* in the cluster, as last listed and watched */
    int applied;           /* it carries the labels of landlord's Kustomization */
    char tenant_label[64]; /* its landlord.dev/tenant label, or "" */
    char declared_by[64];  /* the tenant whose file (as last read) declares it, or "" */
} ll_namespace_owner;

/* What is known of namespace name, for the ids check (ids.c), copied into
 * *out.  When the cluster's namespaces were never listed yet, waits up to
 * 2 s while the first list is under way (not once it failed); out->known
 * says whether they were.  Returns 0, or LL_ENOTFOUND without a cluster. */
int ll_status_namespace_owner(ll_namespace_owner *out, ll_status *s, const char *name);

/* Moves on every state change of any tenant.  s may be NULL (0). */
unsigned long long ll_status_generation(ll_status *s);

/* Sleeps until the generation moves past seen or deadline_ms (monotonic).
 * s may be NULL (returns at once). */
void ll_status_wait(ll_status *s, unsigned long long seen, int64_t deadline_ms);

/* Derives the state of one tenant from what the cluster shows (pure; for
 * tests and for ll_status).  tenant: {lifecycle, sync, commit, objects:
 * [{kind, key, chart}] (what its file declares)}; cluster: {"applied": 0|1
 * (the Kustomization applied a commit including the tenant's), "failed_ks":
 * Kustomization failure message or absent, "HelmRelease": {key: slim},
 * "Namespace": {...}, "Terraform": {...}}.  Returns {"state", "reason",
 * "message", "deployed_chart", "objects": [...]} (new reference); tenant
 * and cluster are borrowed.  The JSON face of the typed derivation the
 * follower runs (lib/cluster/derive.c). */
json_t *ll_status_derive(const json_t *tenant, const json_t *cluster);

/* The slim form of a Kubernetes object that ll_status_derive reads (new
 * reference; object is borrowed). */
json_t *ll_status_slim(const json_t *object);

/* A slim (as ll_status_slim makes it) packed as text for the cache: a JSON
 * array with a place per member, about half the size of its compact JSON.
 * Returns a new string (caller frees), or NULL when out of memory. */
char *ll_status_slim_pack(const json_t *slim);

/* The slim that ll_status_slim_pack packed into text (new reference), or
 * NULL when text is not a packed slim.  ll_status_derive also accepts
 * packed text in place of a slim. */
json_t *ll_status_slim_unpack(const char *text);

/* A stamp of what ll_status_describe() shows for tenant id: it changes
 * whenever that may change.  0: do not keep the answer (a watch is not
 * synced).  Read it before describing. */
unsigned long long ll_status_stamp(ll_status *s, const char *id);

#endif

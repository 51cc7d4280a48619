/* core_int.h - the service handle, shared by the files of the core: the
 * composition root (core.c), what use cases share (context.c), the kept
 * answers (answers.c) and the use cases (tenants.c, tier_views.c,
 * operations.c, access.c, events.c, releases.c, rollouts.c); private to
 * lib/. */
#ifndef LANDLORD_CORE_INT_H
#define LANDLORD_CORE_INT_H

#include <pthread.h>

#include "landlord/config.h"
#include "landlord/core.h"
#include "landlord/gitops.h"
#include "landlord/rollouts.h"
#include "landlord/ociremote.h"
#include "landlord/status.h"
#include "landlord/webhooks.h"

struct ll_auth;
/* The registry's file in the data dir. */
#define LL_CORE_REGISTRY_FILE "landlord.db"

struct ll_core {
    ll_config cfg;
    int data_lock; /* the data dir's lock (ll_storage_lock), -1 before */
    char db_path[1100];
    char git_url[1100];
    char work_path[1100];
    char oci_dir[1200];           /* the OCI image layout of uploaded releases (embedded default) */
    ll_ociremote *oci;            /* the OCI registry (oci-url), or NULL for the layout */
    pthread_mutex_t release_lock; /* one upload or delete of a release at a time */
    ll_gitops *git;
    ll_status *status;     /* NULL unless serving */
    ll_webhooks *webhooks; /* NULL unless serving */
    ll_rollouts *rollouts; /* NULL unless serving */
    pthread_key_t reg_key; /* each thread's registry (context.c) */
    int reg_key_made;
    /* Tenant answers as sent, with what they were built from (see
     * ll_tenant_answer): chained by a hash of the id; each holds a
     * reference of its own. */
    pthread_mutex_t answers_lock;
    struct ll_answer **answers; /* ANSWER_BUCKETS chains */
    size_t answers_bytes;
    struct ll_auth *auth; /* bearer token keys; NULL unless serving */
    pthread_mutex_t prune_lock;
    int64_t next_prune_ms; /* when audit and idempotency keys are pruned next */
};

/* Storage for the strings of a commit author made by ll_core_author. */
typedef struct ll_author_buf {
    char name[256];
    char email[300];
} ll_author_buf;

/* Makes the thread key of registry connections (context.c); 0 or -1. */
int ll_core_context_init(ll_core *c);

/* Closes the calling thread's registry connection and deletes the key;
 * nothing when it was never made. */
void ll_core_context_free(ll_core *c);

/* Makes the map of kept answers (answers.c); 0 or -1 (out of memory). */
int ll_core_answers_init(ll_core *c);

/* Drops every kept answer (readers keep theirs) and the map. */
void ll_core_answers_free(ll_core *c);

/* At start (serving): forgets idempotency reservations of an earlier
 * process and prunes what is past retention (access.c). */
void ll_access_start(ll_core *c);

/* What the registry knows of the tiers (tier_views.c): tenant counts,
 * descriptions (tier_info) and the versions rollouts brought them to.
 * Each array is owned; any may be empty. */
typedef struct ll_tier_facts {
    ll_tier_count *counts;
    size_t n_counts;
    ll_tier_note *notes;
    size_t n_notes;
    ll_tier_version *versions;
    size_t n_versions;
    char helm_served[128]; /* HelmRelease versions the cluster serves, "" unknown */
    char helm_watched[32]; /* the one landlord watches, "" unknown */
} ll_tier_facts;

/* 1 when tier's HelmReleases (ll_tier.helm_version) are at a version of
 * helm.toolkit.fluxcd.io that the cluster does not serve (served: "v2,...",
 * "" unknown: 0), with why (the version, what is served and the fix:
 * watched, the version landlord watches) in out. */
int ll_core_tier_unserved(char *out, size_t cap, const ll_tier *tier, const char *served,
                          const char *watched);

/* Frees the arrays of f (f itself is the caller's); f is empty after. */
void ll_tier_facts_clear(ll_tier_facts *f);

/* The ETag of tier (borrowed) with its description (NULL: "") into out:
 * over the template and the description, what a tier PUT changes. */
void ll_core_tier_etag(char out[LL_ETAG_MAX], const ll_tier *tier, const char *description);

/* A catalogue tier (borrowed) as the API shows it: its records with the
 * tenant count, description and version facts (borrowed; NULL: none) hold
 * for it, and its etag; template only when asked.  A new reference. */
json_t *ll_core_tier_view(const ll_tier *tier, const ll_tier_facts *facts, int with_template);

/* The tiers check of /readyz for cat (borrowed; NULL: no tiers):
 * {"status": "ok"}, or {"status": "failed", "violations": [{"tier",
 * "rule", "error"}]} for the tiers whose templates break the policy, or
 * declare a HelmRelease version the cluster does not serve (rule
 * "api-version"; served, watched as ll_core_tier_unserved takes them);
 * *out_ok 1 when the status is ok.  A new reference. */
json_t *ll_core_tiers_health(int *out_ok, const ll_tier_catalogue *cat, const char *served,
                             const char *watched);

/* The commit author of the current request (see context.c); the strings
 * are borrowed from buf or the configuration. */
ll_registry_author ll_core_author(const ll_core *c, ll_author_buf *buf);
/* The rollout engine, or NULL (before it started, or not serving).  Read
 * with an atomic load: the writer's and the follower's callbacks may run
 * while ll_core_open() sets it. */
static inline ll_rollouts *ll_core_rollouts(ll_core *c)
{
    return __atomic_load_n(&c->rollouts, __ATOMIC_ACQUIRE);
}

/* Records an LL_EINVALID error about field; returns LL_EINVALID. */
int ll_core_field_error(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An operation as the API shows it (GET /api/v1/operations/{id}): the
 * record without its payload and failure class (operations.c).  New
 * reference, NULL when out of memory; op is borrowed. */
json_t *ll_core_operation_json(const ll_operation *op);

#endif

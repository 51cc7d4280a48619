/* registry.h - the SQLite registry: tenants and the outbox of operations.
 *
 * One ll_registry is one SQLite connection and belongs to one thread at a
 * time.  Opening applies the embedded migrations (migrations/NNNN_*.sql) in
 * order inside a transaction each, tracked by PRAGMA user_version and the
 * schema_migrations table; a database newer than the binary is refused.
 *
 * Tenants come back as typed records (ll_tenant_record, below); operations
 * as records too (operation.h).
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call (read, never kept); `json_t **out` receives a new
 * reference (json_decref); records filled through `out` (ll_tenant_record,
 * ll_operation, ll_op_list, ll_audit_page, arrays of them) are the caller's,
 * cleared or freed with the function their comment names.
 */
#ifndef LANDLORD_REGISTRY_H
#define LANDLORD_REGISTRY_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/etag.h"
#include "landlord/rollout_records.h"
#include "landlord/state.h"
#include "landlord/operation.h"

typedef struct ll_registry ll_registry;

/* Who asked for a change: the commit author of the operation. */
typedef struct ll_registry_author {
    const char *name;
    const char *email;
} ll_registry_author;

/* Opens (creating it if needed) and migrates the database at path.
 * WAL, foreign keys on, busy timeout 5 s.  LL_ECONFLICT when the database
 * was written by a newer landlord.  *out: a new handle (ll_registry_close). */
int ll_registry_open(ll_registry **out, const char *path);

void ll_registry_close(ll_registry *r);

/* A process-wide counter that moves after every transaction committed by a
 * connection of this process that is not quiet, once the commit is in the
 * WAL.  Read it before reading rows: an answer built from those rows is
 * still current while the counter has not moved.  Thread-safe. */
unsigned long long ll_registry_generation(void);

/* quiet 1: this connection's commits do not move ll_registry_generation()
 * (the status follower's, which writes only what answers do not show). */
void ll_registry_set_quiet(ll_registry *r, int quiet);

/* The number of migrations applied (PRAGMA user_version), and how many this
 * binary knows. */
int ll_registry_schema_version(int *out_applied, int *out_known, ll_registry *r);

/* A trivial query, for /readyz. */
int ll_registry_ping(ll_registry *r);

/* --- backup and restore of the SQLite file (backup.c) --- */

/* Copies the registry file db_path into the new file to, as one
 * consistent state, while landlord may be writing it (SQLite's online
 * backup API over a read-only connection).  to is whole or absent after:
 * written as <to>.partial, synced, renamed.  LL_ECONFLICT when to exists;
 * LL_ENOTFOUND without a registry. */
int ll_registry_backup(const char *db_path, const char *to);

/* Replaces the registry file db_path by the backup from, for a landlord
 * that is not running (the caller holds the data dir's lock): checks from
 * (SQLite's integrity check; a landlord registry), keeps the current file
 * as <db_path>.before-restore, and opens the result with ll_registry_open
 * (older backups are migrated; one newer than this binary is refused and
 * the old file put back).  LL_EINVALID for a file that is no sound
 * registry. */
int ll_registry_restore(const char *db_path, const char *from);

/* --- tenants (registry.c: the store; tenant_writes.c: its writes) --- */

/* What landlord asked for a tenant (tenants.lifecycle). */
typedef enum ll_tenant_lifecycle {
    LL_TENANT_ACTIVE = 0,
    LL_TENANT_OFFBOARDING,
    LL_TENANT_OFFBOARDED,
    LL_TENANT_DRIFTED, /* its file vanished from the repository */
} ll_tenant_lifecycle;

/* Whether the repository carries the desired state yet (tenants.sync). */
typedef enum ll_tenant_sync {
    LL_TENANT_PENDING = 0,
    LL_TENANT_COMMITTED,
    LL_TENANT_SYNC_FAILED,
} ll_tenant_sync;

/* How the tenant came to be: through the API, or adopted from a file. */
typedef enum ll_tenant_origin {
    LL_TENANT_API = 0,
    LL_TENANT_ADOPTED,
} ll_tenant_origin;

/* The names of the enums as SQL rows and API bodies spell them (static
 * strings; "unknown" for a value out of range), and back: 0, or
 * LL_EINVALID for a name that is none of them (*out untouched). */
const char *ll_tenant_lifecycle_name(ll_tenant_lifecycle l);
int ll_tenant_lifecycle_parse(ll_tenant_lifecycle *out, const char *s);
const char *ll_tenant_sync_name(ll_tenant_sync s);
int ll_tenant_sync_parse(ll_tenant_sync *out, const char *s);
const char *ll_tenant_origin_name(ll_tenant_origin o);
int ll_tenant_origin_parse(ll_tenant_origin *out, const char *s);

/* A commit that changed a tenant: its sha, the kind of the operation, and
 * when it was pushed.  Strings owned by the record (NULL when unknown). */
typedef struct ll_tenant_commit {
    char *sha;
    char *operation;
    char *at;
} ll_tenant_commit;

/* A tenant as the registry holds it.  Every pointer is owned by the record
 * (free with ll_tenant_record_clear); NULL where the row holds NULL. */
typedef struct ll_tenant_record {
    char *id, *tier, *release; /* release: the policy (exact, x.y or x.y.x) */
    json_t *values;            /* a reference of its own; opaque to the registry */
    ll_tenant_lifecycle lifecycle;
    ll_tenant_sync sync;
    ll_tenant_origin origin;
    char *commit;        /* the commit that carries the desired state, or NULL */
    long long operation; /* the tenant's latest operation, 0 for none */
    char *created_at, *updated_at, *offboarded_at; /* RFC 3339 */
    char *path;                                    /* its file, NULL: where the layout puts it */
    char *observed_state;                          /* the follower's last state, and since when */
    char *observed_since;
    char *chart_version;       /* what its file carries */
    char etag[LL_ETAG_MAX];    /* the version of the desired state, for If-Match */
    int has_commits;           /* read with its commits: */
    ll_tenant_commit *commits; /* oldest first */
    size_t n_commits;
} ll_tenant_record;

/* Frees what t owns and zeroes it; NULL is fine. */
void ll_tenant_record_clear(ll_tenant_record *t);

/* Clears n records and frees the array; NULL is fine. */
void ll_tenant_records_free(ll_tenant_record *items, size_t n);

/* The record as a JSON object (new reference; values shared): id tier
 * release values lifecycle sync commit operation created_at updated_at
 * offboarded_at origin path observed_state observed_since etag
 * chart_version [commits: [{sha, operation, at}]]. */
json_t *ll_tenant_record_json(const ll_tenant_record *t);

/* A desired state, as a write asks for it.  All borrowed.  Onboarding
 * reads id, tier, release, values; an update those and if_match; an
 * offboarding id and if_match. */
typedef struct ll_tenant_desired {
    const char *id;
    const char *tier;
    const char *release;  /* the policy: exact, x.y or x.y.x */
    const json_t *values; /* stored as given (keys sorted); NULL: {} when onboarding */
    const char *if_match; /* an If-Match value the tenant's etag must match, or NULL */
} ll_tenant_desired;

/* The tenant into *out (with its commits when with_commits; clear it
 * with ll_tenant_record_clear), LL_ENOTFOUND if none (*out zeroed). */
int ll_registry_tenant_get(ll_tenant_record *out, ll_registry *r, const char *id, int with_commits);

/* Tenants ordered by id, after the id `after` (NULL = from the start),
 * optionally of one tier and one lifecycle (an ll_tenant_lifecycle, -1 for
 * any): *out_items a new array of *out_count records (free with
 * ll_tenant_records_free).  *out_next is the last id returned when more
 * follow (caller frees), else NULL. */
int ll_registry_tenant_list(ll_tenant_record **out_items, size_t *out_count, char **out_next,
                            ll_registry *r, const char *tier, int lifecycle, const char *after,
                            int limit);

/* How many tenants (not offboarded) a tier holds. */
typedef struct ll_tier_count {
    char *tier; /* owned */
    long long count;
} ll_tier_count;

/* Tenants not offboarded, counted per tier: *out a new array of *out_n
 * records, one per tier that has any (free with ll_registry_tier_counts_free;
 * NULL when none). */
int ll_registry_tenant_counts(ll_tier_count **out, size_t *out_n, ll_registry *r);
/* Frees n records at v and v (NULL is fine). */
void ll_registry_tier_counts_free(ll_tier_count *v, size_t n);
/* The count of tier in v (n records), 0 when it is not there. */
long long ll_tier_count_of(const ll_tier_count *v, size_t n, const char *tier);

/* Stores the tenant d (lifecycle active, sync pending) and its onboard
 * operation in one transaction.  An offboarded tenant is reused.
 * LL_EEXISTS when the tenant exists and is not offboarded; *out_existing
 * then holds it with its commits (the caller clears it; zeroed
 * otherwise).  *out_op is the operation id. */
int ll_registry_onboard(long long *out_op, ll_tenant_record *out_existing, ll_registry *r,
                        const ll_tenant_desired *d, const ll_registry_author *author);

/* Stores a new desired state d (tier, release, values) and queues an
 * update operation.  LL_ENOTFOUND; LL_ECONFLICT when the tenant is
 * offboarded or being offboarded; LL_EPRECONDITION when d->if_match is
 * given and does not match the tenant's etag, checked in the same
 * transaction. */
int ll_registry_update(long long *out_op, ll_registry *r, const ll_tenant_desired *d,
                       const ll_registry_author *author);

/* Marks the tenant d->id offboarding and queues its offboard operation.
 * LL_ENOTFOUND for no such tenant; *out_op = 0 when it is offboarded
 * already (nothing queued); LL_EPRECONDITION as for updates. */
int ll_registry_offboard(long long *out_op, ll_registry *r, const ll_tenant_desired *d,
                         const ll_registry_author *author);

/* --- the outbox (outbox.c) --- */

/* Up to limit queued operations, oldest first, into *out (owned by the
 * caller: ll_op_list_free). */
int ll_registry_ops_queued(ll_op_list *out, ll_registry *r, int limit);

/* The operation into *out (owned by the caller: ll_operation_clear), or
 * LL_ENOTFOUND. */
int ll_registry_op_get(ll_operation *out, ll_registry *r, long long id);

/* Records the outcome of n operations (borrowed) in one transaction and
 * moves their tenants, tiers or rollouts along.  A failed onboarding
 * removes the tenant it created (or returns a re-onboarded tenant to
 * offboarded); a failed update returns the tenant to its previous desired
 * state; a failed offboarding returns the tenant to active. */
int ll_registry_ops_finish(ll_registry *r, const ll_op_result *results, size_t n);

/* Counts a failed push attempt on each queued operation of ops (n of
 * them, borrowed) and records why. */
int ll_registry_ops_attempted(ll_registry *r, const ll_operation *ops, size_t n, const char *why);

/* How many operations are queued. */
int ll_registry_ops_count_queued(long long *out, ll_registry *r);

/* The tenants whose desired state changed after change number *seq (-1:
 * every tenant): *out a new array of *out_n records
 * (ll_tenant_records_free), NULL when none; *seq becomes the newest change
 * read. */
int ll_registry_tenants_changed(ll_tenant_record **out, size_t *out_n, long long *seq,
                                ll_registry *r);

/* Forgets the changes up to upto (the status follower has read them). */
int ll_registry_tenant_changes_prune(ll_registry *r, long long upto);

/* A tenant as the repository scan (lib/gitops/adopt.c) compares it with
 * the files it finds: a value. */
typedef struct ll_tenant_index_entry {
    char id[64];
    char tier[64];
    ll_tenant_lifecycle lifecycle;
    ll_tenant_sync sync;
} ll_tenant_index_entry;

/* Every tenant, ordered by id (strcmp order, for bsearch): *out a new
 * array of *out_n entries (free()), NULL when there is none. */
int ll_registry_tenant_index(ll_tenant_index_entry **out, size_t *out_n, ll_registry *r);

/* A tenant file the scan adopts.  Its fields are borrowed for the call. */
typedef struct ll_adoption {
    const char *id, *tier;
    const char *release;  /* a version or x.y line, read off the file's chart version */
    const char *path;     /* the file, from the repository's top */
    const json_t *values; /* opaque chart values, stored as given (keys sorted); NULL: {} */
} ll_adoption;

/* Applies what a scan of the repository found, in one transaction: adopt
 * (n_adopt files) inserts unknown tenants (or revives offboarded ones) as
 * origin adopted at commit; drifted (ids) marks active, committed tenants
 * whose files vanished; returned (ids) makes drifted tenants whose files
 * are back active again.  Everything is borrowed for the call. */
int ll_registry_reconcile(ll_registry *r, const ll_adoption *adopt, size_t n_adopt,
                          const ll_names *drifted, const ll_names *returned, const char *commit);

/* --- events and webhooks (registry_events.c) --- */

/* One observed-state transition of a tenant, as the status follower
 * records it: a value (it owns its text; "" is none).  Its event is
 * "tenant.<state>" with data {tenant, state, previous, reason, message,
 * desired_commit, applied_commit, deployed_chart, at} (null for what is
 * "" or LL_STATE_NONE; at: since). */
typedef struct ll_transition {
    char tenant[64];
    ll_tenant_state state;    /* the new state */
    ll_tenant_state previous; /* LL_STATE_NONE: none before */
    char since[40];           /* when it changed, RFC 3339 */
    char reason[128];
    char message[1280];
    char desired_commit[41];
    char applied_commit[41];
    char deployed_chart[64];
} ll_transition;

/* Stores the n transitions t[0..n) in one transaction: for each, sets the
 * tenant's observed_state/observed_since, stores its event, and queues a
 * delivery (due at now_ms) for every webhook whose event_types match the
 * event's type.  t is borrowed. */
int ll_registry_record_transitions(ll_registry *r, const ll_transition *t, size_t n,
                                   long long now_ms);

/* One stored event, as read back. */
typedef struct ll_event {
    long long id;
    char type[64];       /* "tenant.<state>" or "rollout.<event>" */
    char tenant[64];     /* "" when of no single tenant */
    char created_at[40]; /* RFC 3339 */
    char *data;          /* its data, compact JSON text (owned; "{}" when none) */
} ll_event;

/* Events with id > after, oldest first, at most limit: *out a new array of
 * *count events (free with ll_registry_events_free), NULL when none. */
int ll_registry_events_after(ll_event **out, size_t *count, ll_registry *r, long long after,
                             int limit);

/* Frees what ll_registry_events_after returned; NULL is fine. */
void ll_registry_events_free(ll_event *events, size_t count);

/* How many tenants of a tier are in a state: the last observed one, else
 * unknown (active) or the lifecycle. */
typedef struct ll_state_count {
    char *tier;  /* owned */
    char *state; /* owned */
    long long count;
} ll_state_count;

/* Tenants per tier and state, ordered by tier then state: *out a new array
 * of *out_n counts (ll_registry_state_counts_free), NULL when none. */
int ll_registry_state_counts(ll_state_count **out, size_t *out_n, ll_registry *r);

/* Frees what ll_registry_state_counts returned; NULL is fine. */
void ll_registry_state_counts_free(ll_state_count *counts, size_t n);

/* The newest event's id, 0 when none. */
int ll_registry_events_last(long long *out, ll_registry *r);

/* Keeps the newest keep events (and their deliveries). */
int ll_registry_events_prune(ll_registry *r, long long keep);

/* A webhook subscription as stored.  The secret is stored but never read
 * back into one. */
typedef struct ll_webhook {
    long long id;
    char *url;            /* owned */
    ll_names event_types; /* owned: types, or prefixes ending in '*' */
    char *description;    /* owned; "" when none */
    char created_at[40];  /* RFC 3339 */
} ll_webhook;

/* Frees what w owns (w itself is the caller's); NULL is fine. */
void ll_registry_webhook_clear(ll_webhook *w);

/* Frees an array of webhooks and what each owns; NULL is fine. */
void ll_registry_webhooks_free(ll_webhook *items, size_t n);

/* Stores a subscription (url, secret, types and description borrowed;
 * description NULL: "") and fills *out with it as stored (cleared first;
 * ll_registry_webhook_clear). */
int ll_registry_webhook_create(ll_webhook *out, ll_registry *r, const char *url, const char *secret,
                               const ll_names *types, const char *description);

/* Every webhook by id: *out a new array of *out_n (ll_registry_webhooks_free),
 * NULL when none. */
int ll_registry_webhook_list(ll_webhook **out, size_t *out_n, ll_registry *r);

/* Webhook id into *out (cleared first; ll_registry_webhook_clear).
 * LL_ENOTFOUND. */
int ll_registry_webhook_get(ll_webhook *out, ll_registry *r, long long id);
int ll_registry_webhook_delete(ll_registry *r, long long id); /* LL_ENOTFOUND */

/* Where a delivery stands: due (again) at its next_at_ms, or done. */
typedef enum ll_delivery_state {
    LL_DELIVERY_PENDING = 0,
    LL_DELIVERY_DELIVERED,
    LL_DELIVERY_FAILED /* gave up */
} ll_delivery_state;

/* "pending", "delivered" or "failed": the state's name as stored and shown
 * (static). */
const char *ll_delivery_state_name(ll_delivery_state s);

/* One delivery of an event to a webhook, as read back. */
typedef struct ll_delivery {
    long long id, webhook, event;
    ll_delivery_state state;
    int attempts;
    int last_status;     /* the receiver's last HTTP status, 0: none */
    char *last_error;    /* owned; NULL: none */
    char created_at[40]; /* RFC 3339 */
    char updated_at[40];
    char event_type[64];
    /* Filled by ll_registry_deliveries_due only (else NULL and ""): */
    char *url;                 /* owned */
    char *secret;              /* owned; never logged, never in an API answer */
    char *data;                /* owned: the event's data, compact JSON text */
    char event_created_at[40]; /* RFC 3339 */
    char tenant[64];           /* the event's tenant, "" when of no single one */
} ll_delivery;

/* Frees an array of deliveries and what each owns; NULL is fine. */
void ll_registry_deliveries_free(ll_delivery *items, size_t n);

/* The delivery log of a webhook, newest first, ids below before (0: from
 * the newest), at most limit: *out a new array of *out_n
 * (ll_registry_deliveries_free), NULL when none. */
int ll_registry_deliveries(ll_delivery **out, size_t *out_n, ll_registry *r, long long webhook,
                           long long before, int limit);

/* Pending deliveries due at now_ms, at most limit, with what sending needs
 * (url, secret, data, event_created_at, tenant): as ll_registry_deliveries. */
int ll_registry_deliveries_due(ll_delivery **out, size_t *out_n, ll_registry *r, long long now_ms,
                               int limit);

/* The earliest next_at_ms of a pending delivery, -1 when none. */
long long ll_registry_deliveries_next_due(ll_registry *r);

/* Records an attempt: state pending (retry at next_at_ms), delivered or
 * failed; status the HTTP status (0: none), error_text why it failed
 * (borrowed; NULL: none). */
int ll_registry_delivery_attempted(ll_registry *r, long long id, ll_delivery_state state,
                                   int attempts, long long next_at_ms, int status,
                                   const char *error_text);

/* --- releases (releases.c) --- */

/* An uploaded release as stored; every string owned (app_version NULL when
 * the chart has none). */
typedef struct ll_release {
    char *version, *tag;
    char *digest; /* the manifest's */
    char *chart_digest, *config_digest;
    long long size;
    char *location; /* "local" or the OCI reference */
    char *app_version;
    char *pushed_at; /* RFC 3339 */
} ll_release;

/* Frees what rel owns (rel itself is the caller's); NULL is fine. */
void ll_registry_release_clear(ll_release *rel);

/* Frees an array of releases and what each owns; NULL is fine. */
void ll_registry_releases_free(ll_release *items, size_t n);

/* Stores an uploaded release (borrowed).  LL_ECONFLICT when the version
 * exists. */
int ll_registry_release_put(ll_registry *r, const ll_release *rel);

/* The release of version into *out (cleared first;
 * ll_registry_release_clear).  LL_ENOTFOUND. */
int ll_registry_release_get(ll_release *out, ll_registry *r, const char *version);

/* Every release, in no order: *out a new array of *out_n
 * (ll_registry_releases_free), NULL when none. */
int ll_registry_release_list(ll_release **out, size_t *out_n, ll_registry *r);
int ll_registry_release_delete(ll_registry *r, const char *version); /* LL_ENOTFOUND */

/* --- rollouts (registry_rollouts.c reads, registry_rollout_steps.c writes) --- */

/* Active tenants a rollout may concern, ordered by id within each group:
 * those of the tiers in tiers, or those named in ids (any lifecycle,
 * unknown ones absent); exactly one of tiers and ids is not NULL (both
 * borrowed).  *out is a new array of *out_n candidates
 * (ll_rollout_candidates_free). */
int ll_registry_rollout_candidates(ll_rollout_candidate **out, size_t *out_n, ll_registry *r,
                                   const ll_names *tiers, const ll_names *ids);

/* Stores a rollout (state running) with its waves, tenants and pools and
 * the event rollout.started, in one transaction; spec is borrowed.
 * LL_ECONFLICT when a tenant (not skipped) or a pool is in another active
 * rollout (running, paused, rolling_back); LL_EINVALID when the version is
 * not uploaded (any more). */
int ll_registry_rollout_create(long long *out_id, ll_registry *r, const ll_rollout_spec *spec);

/* The rollout as stored, with its waves, pools, counts and, when
 * with_tenants, its tenants: a new record (ll_rollout_free).
 * LL_ENOTFOUND. */
int ll_registry_rollout_get(ll_rollout **out, ll_registry *r, long long id, int with_tenants);

/* Rollouts newest first with ids below before (0: from the newest), as
 * ll_registry_rollout_get without tenants: a new array of *out_n new
 * records (ll_rollout_array_free). */
int ll_registry_rollout_list(ll_rollout ***out_items, size_t *out_n, ll_registry *r,
                             long long before, int limit);

/* The ids of the rollouts the engine drives (running, rolling_back): a new
 * array of *out_n (free()). */
int ll_registry_rollouts_driven(long long **out_ids, size_t *out_n, ll_registry *r);

/* Starts a wave of a running rollout in one transaction: the wave's pending
 * tenants that are still active, floating and not at the version move (the
 * others are skipped with the reason), with the wave's pools, through ONE
 * queued rollout operation; the wave turns committing (or, with nothing to
 * commit, waiting); step's other changes and events (borrowed, as
 * ll_registry_rollout_step; the first event's data gets "tenants",
 * "skipped", "operation") in the same transaction.  *out_op is the
 * operation, 0 when there was nothing to commit.  LL_ECONFLICT when the
 * rollout is not running or the wave has started. */
int ll_registry_rollout_wave_start(long long *out_op, ll_registry *r, long long id, int wave,
                                   const ll_rollout_step *step, const ll_registry_author *author);

/* Returns every tenant the rollout moved that still carries its version,
 * and its moved pools, to where they were, through ONE queued rollout
 * operation, in one transaction with step (borrowed; as
 * ll_registry_rollout_step, minus a state); the rollout turns rolling_back,
 * or rolled_back at once when nothing needs to move, and the event
 * rollout.rolling_back (or rollout.rolled_back) follows step's events.
 * LL_ECONFLICT when the rollout's state is not one of step's expect. */
int ll_registry_rollout_rollback(long long *out_op, ll_registry *r, long long id,
                                 const ll_rollout_step *step, const ll_registry_author *author);

/* One step of the engine or a control action (borrowed), in one
 * transaction: LL_ECONFLICT (nothing changed) unless the rollout is in one
 * of step->expect; then the rollout's and the wave's fields named in set
 * and wave_set, the tenants' states, the tier versions, and the events. */
int ll_registry_rollout_step(ll_registry *r, const ll_rollout_step *step);

/* The tenants of a wave that it moved (updating, ready, failed), each with
 * its current row: a new array of *out_n (ll_wave_tenants_free). */
int ll_registry_rollout_wave_tenants(ll_wave_tenant **out, size_t *out_n, ll_registry *r,
                                     long long id, int wave);

/* How many active rollouts need version: as their target, or as what a
 * rollback would return a tenant or pool to. */
int ll_registry_rollouts_using(long long *out, ll_registry *r, const char *version);

/* The version a successful rollout last brought a tier to. */
typedef struct ll_tier_version {
    char *tier;    /* owned */
    char *version; /* owned */
} ll_tier_version;

/* The tiers a successful rollout brought somewhere: *out a new array of
 * *out_n records (free with ll_registry_tier_versions_free; NULL when
 * none). */
int ll_registry_tier_versions(ll_tier_version **out, size_t *out_n, ll_registry *r);
/* Frees n records at v and v (NULL is fine). */
void ll_registry_tier_versions_free(ll_tier_version *v, size_t n);
/* The version of tier in v (n records; borrowed from v), or NULL. */
const char *ll_tier_version_of(const ll_tier_version *v, size_t n, const char *tier);

/* How many tenants not offboarded carry a chart version in their files
 * (an exact version, or a range while none was uploaded). */
typedef struct ll_release_use {
    char *release; /* owned */
    long long count;
} ll_release_use;

/* The uses of every chart version: *out a new array of *out_n
 * (ll_registry_release_uses_free), NULL when none. */
int ll_registry_release_users(ll_release_use **out, size_t *out_n, ll_registry *r);

/* Frees what ll_registry_release_users returned; NULL is fine. */
void ll_registry_release_uses_free(ll_release_use *uses, size_t n);

/* --- audit, idempotency, tiers (registry_auth.c) --- */

/* One request that tried to change something, as it is recorded: NULL
 * fields are stored as NULL, operation 0 as none.  Every string is
 * borrowed from the caller. */
typedef struct ll_audit_entry {
    const char *request_id, *actor, *actor_name, *actor_email;
    const char *method, *path, *route, *tenant, *tier, *problem;
    int status, replayed;
    long long operation;
} ll_audit_entry;

int ll_registry_audit_add(ll_registry *r, const ll_audit_entry *e);

/* One audit record as it is read back, with the operation the request
 * queued.  Every string is owned by the record (NULL when the column is
 * NULL); free them with ll_audit_page_free. */
typedef struct ll_audit_item {
    long long id;
    char *at, *request_id;
    char *actor, *actor_name, *actor_email; /* actor NULL: no caller was authenticated */
    char *method, *path, *route, *tenant, *tier, *problem;
    int status, replayed;
    /* The operation, when the request queued one that is still stored
     * (op_id 0 otherwise, and the op_ strings NULL). */
    long long op_id;
    char *op_kind, *op_state, *op_commit, *op_author_name, *op_author_email;
} ll_audit_item;

/* A page of audit records, newest first. */
typedef struct ll_audit_page {
    ll_audit_item *items; /* count records, owned by the page */
    size_t count;
    long long next; /* the cursor (an id) when more follow, else 0 */
} ll_audit_page;

/* Frees the records of page (not page itself) and zeroes it; NULL is fine. */
void ll_audit_page_free(ll_audit_page *page);

/* Which audit records to list: each filter NULL (or 0) for any.  Strings
 * borrowed. */
typedef struct ll_audit_filter {
    const char *tenant, *actor; /* tenant id; actor: a token's sub */
    const char *since, *until;  /* at in [since, until), stored form (RFC 3339, ms) */
    long long before;           /* ids below this one (0: from the newest) */
} ll_audit_filter;

/* At most limit audit records matching filter into *out (zeroed first;
 * the caller frees it with ll_audit_page_free), newest first. */
int ll_registry_audit_list(ll_audit_page *out, ll_registry *r, const ll_audit_filter *filter,
                           int limit);

/* Forgets audit records older than before (RFC 3339). */
int ll_registry_audit_prune(ll_registry *r, const char *before);

/* Where an Idempotency-Key stands when a request brings it. */
typedef enum {
    LL_IDEM_NEW = 0,   /* unknown or expired: now reserved for this request */
    LL_IDEM_IN_FLIGHT, /* its request still runs */
    LL_IDEM_MISMATCH,  /* used for another request (another fingerprint) */
    LL_IDEM_DONE       /* answered: the answer is replayed */
} ll_idem_state;

/* The stored answer of an idempotent POST.  Given to
 * ll_registry_idem_finish, its strings are borrowed; filled by
 * ll_registry_idem_begin, they are owned by the record (free with
 * ll_idem_answer_clear).  NULL content_type, location, etag: none. */
typedef struct ll_idem_answer {
    int status;
    char *content_type, *location, *etag;
    char *body; /* len bytes followed by a NUL (len 0: "") */
    size_t len;
} ll_idem_answer;

/* Frees the strings of an answer ll_registry_idem_begin filled and zeroes
 * it; NULL is fine. */
void ll_idem_answer_clear(ll_idem_answer *a);

/* Looks up (subject, key) in one transaction: LL_IDEM_NEW (unknown or
 * older than ttl_ms; now reserved as in flight for this request),
 * LL_IDEM_IN_FLIGHT, LL_IDEM_MISMATCH (another fingerprint) or
 * LL_IDEM_DONE with *out_answer filled (owned by the caller: clear it with
 * ll_idem_answer_clear; zeroed in every other case).  Outcomes that finish
 * or release could not store are stored first; LL_ENOSPACE while this
 * key's still cannot.  Strings borrowed. */
int ll_registry_idem_begin(ll_idem_state *out_state, ll_idem_answer *out_answer, ll_registry *r,
                           const char *subject, const char *key, const char *fingerprint,
                           long long now_ms, long long ttl_ms);

/* Stores answer (borrowed) as that of the request that reserved (subject,
 * key).  When it cannot be stored (LL_ENOSPACE: a full volume), a copy is
 * kept in memory and stored before the key is looked at again
 * (ll_registry_idem_begin). */
int ll_registry_idem_finish(ll_registry *r, const char *subject, const char *key,
                            const ll_idem_answer *answer);

/* Frees a reservation whose request ended without an answer worth keeping
 * (kept for later like an answer when that cannot be stored). */
int ll_registry_idem_release(ll_registry *r, const char *subject, const char *key);

/* Forgets keys made before before_ms, and every reservation when
 * in_flight_too (at start: no request of an earlier process runs). */
int ll_registry_idem_prune(ll_registry *r, long long before_ms, int in_flight_too);

/* Queues a tier operation (kind "tier_put" or "tier_delete", payload JSON
 * text) in one transaction.  LL_ECONFLICT while another change to the tier
 * is queued, or (tier_delete) while tenants that are not offboarded are in
 * the tier. */
int ll_registry_tier_op(long long *out_op, ll_registry *r, const char *kind, const char *tier,
                        const char *payload, const ll_registry_author *author);

/* What landlord keeps of a tier it wrote: its description. */
typedef struct ll_tier_note {
    char *name;        /* owned */
    char *description; /* owned; NULL when none */
} ll_tier_note;

/* The notes of the tiers landlord wrote: *out a new array of *out_n
 * records (free with ll_registry_tier_notes_free; NULL when none). */
int ll_registry_tier_info(ll_tier_note **out, size_t *out_n, ll_registry *r);
/* Frees n records at v and v (NULL is fine). */
void ll_registry_tier_notes_free(ll_tier_note *v, size_t n);
/* The description of tier in v (n records; borrowed from v), or NULL. */
const char *ll_tier_note_of(const ll_tier_note *v, size_t n, const char *tier);

#endif

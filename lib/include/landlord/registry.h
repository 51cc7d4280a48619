/* registry.h - the SQLite registry: tenants and the outbox of operations.
 *
 * One ll_registry is one SQLite connection and belongs to one thread at a
 * time.  Opening applies the embedded migrations (migrations/NNNN_*.sql) in
 * order inside a transaction each, tracked by PRAGMA user_version and the
 * schema_migrations table; a database newer than the binary is refused.
 *
 * Tenants come back as JSON objects (new references):
 *   tenant:    id tier release values lifecycle sync commit operation
 *              created_at updated_at offboarded_at etag [commits]
 *              (etag: the version of the desired state, for If-Match)
 * Operations come back as records (operation.h).
 */
#ifndef LANDLORD_REGISTRY_H
#define LANDLORD_REGISTRY_H

#include <jansson.h>

#include "landlord/operation.h"

typedef struct ll_registry ll_registry;

/* Who asked for a change: the commit author of the operation. */
typedef struct ll_registry_author {
    const char *name;
    const char *email;
} ll_registry_author;

/* Opens (creating it if needed) and migrates the database at path.
 * WAL, foreign keys on, busy timeout 5 s.  LL_ECONFLICT when the database
 * was written by a newer landlord. */
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
int ll_registry_schema_version(ll_registry *r, int *out_applied, int *out_known);

/* A trivial query, for /readyz. */
int ll_registry_ping(ll_registry *r);

/* The tenant (with its commits when with_commits), LL_ENOTFOUND if none. */
int ll_registry_tenant_get(json_t **out, ll_registry *r, const char *id, int with_commits);

/* Tenants ordered by id, after the id `after` (NULL = from the start),
 * optionally of one tier and one lifecycle.  *out_next is the last id
 * returned when more follow (caller frees), else NULL. */
int ll_registry_tenant_list(json_t **out_items, char **out_next, ll_registry *r, const char *tier,
                            const char *lifecycle, const char *after, int limit);

/* Tenants not offboarded, counted per tier: {"basic": 3, ...}. */
int ll_registry_tenant_counts(json_t **out, ll_registry *r);

/* Stores the tenant (lifecycle active, sync pending) and its onboard
 * operation in one transaction.  An offboarded tenant is reused.
 * LL_EEXISTS when the tenant exists and is not offboarded; *out_existing
 * then holds it.  *out_op is the operation id. */
int ll_registry_onboard(long long *out_op, json_t **out_existing, ll_registry *r, const char *id,
                        const char *tier, const char *release, const char *values_json,
                        const ll_registry_author *author);

/* Stores a new desired state (tier, release, values) and queues an update
 * operation.  LL_ENOTFOUND; LL_ECONFLICT when the tenant is offboarded or
 * being offboarded; LL_EPRECONDITION when if_match (an If-Match value, or
 * NULL) does not match the tenant's "etag", checked in the same
 * transaction. */
int ll_registry_update(long long *out_op, ll_registry *r, const char *id, const char *tier,
                       const char *release, const char *values_json,
                       const ll_registry_author *author, const char *if_match);

/* Marks the tenant offboarding and queues its offboard operation.
 * LL_ENOTFOUND for no such tenant; *out_op = 0 when it is offboarded
 * already (nothing queued); LL_EPRECONDITION as for updates. */
int ll_registry_offboard(long long *out_op, ll_registry *r, const char *id,
                         const ll_registry_author *author, const char *if_match);

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

/* The tenants (registry rows, as ll_registry_tenant_get gives them) whose
 * desired state changed after change number *seq (-1: every tenant);
 * *seq becomes the newest change read.  New reference. */
int ll_registry_tenants_changed(json_t **out, long long *seq, ll_registry *r);

/* Forgets the changes up to upto (the status follower has read them). */
int ll_registry_tenant_changes_prune(ll_registry *r, long long upto);

/* Every tenant as {"<id>": {"tier", "lifecycle", "sync"}} (new reference). */
int ll_registry_tenant_index(json_t **out, ll_registry *r);

/* Applies what a scan of the repository found, in one transaction: adopt
 * ([{"id","tier","release","values"}]) inserts unknown tenants (or revives
 * offboarded ones) as origin adopted at commit; drifted ([ids]) marks active,
 * committed tenants whose files vanished; returned ([ids]) makes drifted
 * tenants whose files are back active again. */
int ll_registry_reconcile(ll_registry *r, const json_t *adopt, const json_t *drifted,
                          const json_t *returned, const char *commit);

/* --- events and webhooks (registry_events.c) --- */

/* Stores observed-state transitions in one transaction: for each
 * {"tenant", "state", "since", "type", "data"} sets the tenant's
 * observed_state/observed_since, stores the event, and queues a delivery
 * (due at now_ms) for every webhook whose event_types match type. */
int ll_registry_record_transitions(ll_registry *r, const json_t *transitions, long long now_ms);

/* Events with id > after, oldest first, at most limit:
 * [{"id", "type", "tenant", "data", "created_at"}] (new reference). */
int ll_registry_events_after(json_t **out, ll_registry *r, long long after, int limit);

/* Tenants per tier and state: [{"tier", "state", "count"}], the state being
 * the last observed one, else unknown (active) or the lifecycle. */
int ll_registry_state_counts(json_t **out, ll_registry *r);

/* The newest event's id, 0 when none. */
int ll_registry_events_last(long long *out, ll_registry *r);

/* Keeps the newest keep events (and their deliveries). */
int ll_registry_events_prune(ll_registry *r, long long keep);

/* Webhooks: {"id", "url", "event_types", "description", "created_at"}; the
 * secret is stored but never read back here. */
int ll_registry_webhook_create(json_t **out, ll_registry *r, const char *url, const char *secret,
                               const json_t *types, const char *description);
int ll_registry_webhook_list(json_t **out, ll_registry *r);
int ll_registry_webhook_get(json_t **out, ll_registry *r, long long id); /* LL_ENOTFOUND */
int ll_registry_webhook_delete(ll_registry *r, long long id);            /* LL_ENOTFOUND */

/* The delivery log of a webhook, newest first, ids below before (0: from
 * the newest): [{"id", "webhook", "event", "event_type", "state", "attempts",
 * "last_status", "last_error", "created_at", "updated_at"}]. */
int ll_registry_deliveries(json_t **out, ll_registry *r, long long webhook, long long before,
                           int limit);

/* Pending deliveries due at now_ms, with what sending needs: the above plus
 * "url", "secret", "data", "event_created_at", "tenant". */
int ll_registry_deliveries_due(json_t **out, ll_registry *r, long long now_ms, int limit);

/* The earliest next_at_ms of a pending delivery, -1 when none. */
long long ll_registry_deliveries_next_due(ll_registry *r);

/* Records an attempt: state pending (retry at next_at_ms), delivered or
 * failed; status the HTTP status (0: none), error_text why it failed. */
int ll_registry_delivery_attempted(ll_registry *r, long long id, const char *state, int attempts,
                                   long long next_at_ms, int status, const char *error_text);

/* --- releases (registry_events.c) --- */

/* Stores an uploaded release: {"version", "tag", "digest" (manifest),
 * "chart_digest", "config_digest", "size", "location", "app_version"?,
 * "pushed_at"}.  LL_ECONFLICT when the version exists. */
int ll_registry_release_put(ll_registry *r, const json_t *rel);
int ll_registry_release_get(json_t **out, ll_registry *r, const char *version); /* LL_ENOTFOUND */
int ll_registry_release_list(json_t **out, ll_registry *r);
int ll_registry_release_delete(ll_registry *r, const char *version); /* LL_ENOTFOUND */

/* --- rollouts (registry_rollouts.c) --- */

/* Active tenants a rollout may concern, ordered by id within each group:
 * those of the tiers in tiers (an array), or those named in ids (an array;
 * any lifecycle, unknown ones absent).  [{"id", "tier", "release",
 * "chart_version", "lifecycle", "path"}], new reference. */
int ll_registry_rollout_candidates(json_t **out, ll_registry *r, const json_t *tiers,
                                   const json_t *ids);

/* Stores a rollout (state running) with its waves, tenants and pools and
 * the event rollout.started, in one transaction.  spec: {"version",
 * "on_failure", "scope", "wave_timeout", "author": {"name", "email"},
 * "waves": [{"selector", "soak_seconds"}], "tenants": [{"id", "tier",
 * "wave" (null: skipped), "from", "state" (pending | skipped), "reason"}],
 * "pools": [{"pool", "wave", "from"}], "event": extra event data}.
 * LL_ECONFLICT when a tenant (not skipped) or a pool is in another active
 * rollout (running, paused, rolling_back); LL_EINVALID when the version is
 * not uploaded (any more). */
int ll_registry_rollout_create(long long *out_id, ll_registry *r, const json_t *spec);

/* The rollout as stored (columns as keys; "scope" decoded), with "waves"
 * (selector decoded), "pools", "counts" ({"<wave, 0 for none>": {"<state>":
 * n}}) and, when with_tenants, "tenants".  LL_ENOTFOUND. */
int ll_registry_rollout_get(json_t **out, ll_registry *r, long long id, int with_tenants);

/* Rollouts newest first with ids below before (0: from the newest), as
 * ll_registry_rollout_get without tenants. */
int ll_registry_rollout_list(json_t **out, ll_registry *r, long long before, int limit);

/* [{"id"}] of the rollouts the engine drives (running, rolling_back). */
int ll_registry_rollouts_driven(json_t **out, ll_registry *r);

/* Starts a wave of a running rollout in one transaction: the wave's pending
 * tenants that are still active, floating and not at the version move (the
 * others are skipped with the reason), with the wave's pools, through ONE
 * queued rollout operation; the wave turns committing (or, with nothing to
 * commit, waiting); step's other changes and events (as
 * ll_registry_rollout_step; the first event's data gets "tenants",
 * "skipped", "operation") in the same transaction.  *out_op is the operation, 0 when
 * there was nothing to commit.  LL_ECONFLICT when the rollout is not
 * running or the wave has started. */
int ll_registry_rollout_wave_start(long long *out_op, ll_registry *r, long long id, int wave,
                                   const json_t *step, const ll_registry_author *author);

/* Returns every tenant the rollout moved that still carries its version,
 * and its moved pools, to where they were, through ONE queued rollout
 * operation, in one transaction with step (as ll_registry_rollout_step,
 * minus a state); the rollout turns rolling_back, or rolled_back at once
 * when nothing needs to move, and the event rollout.rolling_back (or
 * rollout.rolled_back) follows step's events.  LL_ECONFLICT when the
 * rollout's state is not step's "expect". */
int ll_registry_rollout_rollback(long long *out_op, ll_registry *r, long long id,
                                 const json_t *step, const ll_registry_author *author);

/* One step of the engine or a control action, in one transaction: {"rollout":
 * id, "expect": state or [states] (LL_ECONFLICT otherwise, nothing
 * changed), "set": {rollout columns: state, reason, current_wave,
 * rollback_sha, finished_at}, "wave": n, "wave_set": {wave columns: state,
 * deadline_ms, soak_until_ms, error, pushed_at, ready_at, finished_at,
 * commit_sha}, "tenants": [{"id", "state", "reason"}], "tier_versions":
 * {"<tier>": version}, "events": [{"type", "tenant"?, "data"}]}. */
int ll_registry_rollout_step(ll_registry *r, const json_t *step);

/* The tenants of a wave that it moved: [{"id", "state" (updating, ready,
 * failed), "reason", "lifecycle", "commit_sha", "sync", "chart_version"}]
 * (the tenant's current row). */
int ll_registry_rollout_wave_tenants(json_t **out, ll_registry *r, long long id, int wave);

/* How many active rollouts need version: as their target, or as what a
 * rollback would return a tenant or pool to. */
int ll_registry_rollouts_using(long long *out, ll_registry *r, const char *version);

/* {"<tier>": version} for the tiers a successful rollout brought somewhere. */
int ll_registry_tier_versions(json_t **out, ll_registry *r);

/* Tenants not offboarded per chart version their files carry (an exact
 * version, or a range while none was uploaded): [{"release", "count"}]. */
int ll_registry_release_users(json_t **out, ll_registry *r);

/* --- versions, audit, idempotency, tiers (registry_auth.c) --- */

#define LL_ETAG_MAX 40

/* A strong ETag ("<32 hex>", quotes included) over the parts, in order. */
void ll_etag_of(char out[LL_ETAG_MAX], const char *const *parts, int n);

/* 1 when an If-Match header value (a list of entity tags, or *) matches
 * etag by strong comparison (weak tags never match). */
int ll_etag_matches(const char *if_match, const char *etag);

/* One request that tried to change something; NULL fields are stored as
 * NULL, operation 0 as none. */
typedef struct ll_audit_entry {
    const char *request_id, *actor, *actor_name, *actor_email;
    const char *method, *path, *route, *tenant, *tier, *problem;
    int status, replayed;
    long long operation;
} ll_audit_entry;

int ll_registry_audit_add(ll_registry *r, const ll_audit_entry *e);

/* Audit records, newest first, with ids below before (0: from the newest),
 * filtered by tenant, actor (sub) and at in [since, until) (each NULL for
 * any): [{"id", "at", "request_id", "actor": {"sub", "name", "email"} |
 * null, "method", "path", "route", "tenant", "tier", "status", "outcome",
 * "problem", "replayed", "operation": {...} | null, "commit"}].
 * *out_next is the cursor (an id) when more follow, else 0. */
int ll_registry_audit_list(json_t **out_items, long long *out_next, ll_registry *r,
                           const char *tenant, const char *actor, const char *since,
                           const char *until, long long before, int limit);

/* Forgets audit records older than before (RFC 3339). */
int ll_registry_audit_prune(ll_registry *r, const char *before);

enum { LL_IDEM_NEW = 0, LL_IDEM_IN_FLIGHT, LL_IDEM_MISMATCH, LL_IDEM_DONE };

/* Looks up (subject, key) in one transaction: LL_IDEM_NEW (unknown or
 * older than ttl_ms; now reserved as in flight for this request),
 * LL_IDEM_IN_FLIGHT, LL_IDEM_MISMATCH (another fingerprint) or
 * LL_IDEM_DONE with *out_stored {"status", "content_type", "location",
 * "etag", "body"} (new reference).  Outcomes that finish or release could
 * not store are stored first; LL_ENOSPACE while this key's still cannot. */
int ll_registry_idem_begin(int *out_state, json_t **out_stored, ll_registry *r, const char *subject,
                           const char *key, const char *fingerprint, long long now_ms,
                           long long ttl_ms);

/* Stores the answer of the request that reserved (subject, key).  When it
 * cannot be stored (LL_ENOSPACE: a full volume), it is kept in memory and
 * stored before the key is looked at again (ll_registry_idem_begin). */
int ll_registry_idem_finish(ll_registry *r, const char *subject, const char *key, int status,
                            const char *content_type, const char *location, const char *etag,
                            const void *body, size_t len);

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

/* {"<tier>": "<description>"} of the tiers landlord wrote (new reference). */
int ll_registry_tier_info(json_t **out, ll_registry *r);

#endif

/* core.h - the running service: configuration, registry, git writer, and the
 * tenant, tier and operation use cases the HTTP layer calls.
 *
 * Every function may be called from any thread.  Results are JSON objects
 * (new references) shaped as docs/api.md describes.  Errors are the LL_E*
 * codes with ll_error_last() saying why; ll_error_last()->kind refines the
 * class where the code alone is too coarse ("render-failed").
 *
 * Ownership, unless a prototype says otherwise: `json_t **out` receives a
 * new reference (json_decref), `const json_t *body` and strings are borrowed
 * for the call, handles from ll_core_* accessors are borrowed for the life
 * of the core.
 */
#ifndef LANDLORD_CORE_H
#define LANDLORD_CORE_H

#include <jansson.h>

#include "landlord/config.h"
#include "landlord/registry.h"

typedef struct ll_core ll_core;

typedef enum {
    LL_CORE_SERVE = 0, /* seed an empty remote, start the git writer */
    LL_CORE_IMPORT = 1 /* only read the repository into the registry */
} ll_core_mode;

/* Creates the data directory, opens and migrates the registry, opens the
 * GitOps remote (seeding it when needed), makes the registry follow the
 * repository, and (serving) starts the git writer (core.c).  *out: a new
 * handle, freed with ll_core_free; NULL on failure. */
int ll_core_open(ll_core **out, const ll_config *cfg, ll_core_mode mode);

/* Stops the writer and frees everything; NULL is fine. */
void ll_core_free(ll_core *c);

/* Copies the registry of cfg's data dir into the new file to while a
 * landlord may be serving it (backup.c, ll_registry_backup).  cfg is
 * borrowed. */
int ll_core_backup(const ll_config *cfg, const char *to);

/* Replaces the registry of cfg's data dir by the backup from
 * (ll_registry_restore), holding the data dir's lock: LL_ECONFLICT while
 * a landlord serves it.  cfg is borrowed. */
int ll_core_restore(const ll_config *cfg, const char *from);

/* The configuration (borrowed, read-only). */
const ll_config *ll_core_config(const ll_core *c);

/* The GitOps remote URL in use, without credentials (borrowed). */
const char *ll_core_git_url(const ll_core *c);

/* This thread's registry connection, opened on first use (borrowed; closed
 * when the thread ends).  NULL on failure. */
ll_registry *ll_core_registry(ll_core *c);

/* Readiness (new reference): {"status": "ready"|"degraded"|"unavailable",
 * "checks": {registry, git, kube, oci}}; *ok 1/0.  The oci check (the
 * chart registry's last outcome) never changes the status. */
json_t *ll_core_ready(int *ok, ll_core *c);

/* Writes: each checks the request completely, then stores the desired state
 * and queues an operation for the git writer in one transaction, and returns
 * without waiting.  *out_op is the operation id.  ll_tenant_outcome() then
 * tells how it went; ll_core_progress()/ll_core_wait_progress() let a caller
 * wait for the writer without holding a thread per request.
 *
 * Onboard: body {id, tier, release?, values?} (borrowed).  LL_EEXISTS:
 * *out_existing is the existing tenant (new reference).  LL_EINVALID: a bad field
 * (ll_error_last()->field) or a template that does not render (kind "render-failed"). */
int ll_tenant_onboard(long long *out_op, json_t **out_existing, ll_core *c, const json_t *body);

/* Change: body {tier?, release?, values?}, at least one.  LL_ENOTFOUND,
 * LL_ECONFLICT (offboarded), LL_EINVALID; LL_EPRECONDITION when if_match
 * (an If-Match header value, or NULL) does not name the tenant's etag. */
int ll_tenant_update(long long *out_op, ll_core *c, const char *id, const json_t *body,
                     const char *if_match);

/* Offboard.  *out_op is 0 when the tenant is offboarded already.
 * LL_ENOTFOUND, LL_EPRECONDITION. */
int ll_tenant_offboard(long long *out_op, ll_core *c, const char *id, const char *if_match);

/* Writes are authored by the caller that ll_caller_set_current() (auth.h)
 * names for the thread: name and email claims, else sub and
 * sub@<git-author-domain>; without one, by git-author-name/-email.  The
 * committer is always git-author-name/-email. */

/* The answer to a write: *out the tenant as it is now (new reference) and
 * *pending 1 while op is still queued; or the error that failed op (LL_EINVALID with kind
 * "render-failed", LL_ECONFLICT).  op 0: just tenant id. */
int ll_tenant_outcome(json_t **out, int *pending, ll_core *c, long long op, const char *id);

/* The git writer's progress counter; it moves after every batch. */
unsigned long long ll_core_progress(ll_core *c);

/* Sleeps until the counter moves past seen or deadline_ms (monotonic). */
void ll_core_wait_progress(ll_core *c, unsigned long long seen, int64_t deadline_ms);

/* 1 while op is queued, 0 once settled, negative on error. */
int ll_core_op_queued(ll_core *c, long long op);

/* 1 while the git remote is unreachable (writes queue). */
int ll_core_degraded(ll_core *c);

/* The tenant as the API shows it, with its commits (*out: new reference).
 * LL_ENOTFOUND. */
int ll_tenant_get(json_t **out, ll_core *c, const char *id);

/* A tenant's answer: its view as compact JSON text with its ETag,
 * immutable and reference-counted, so it can be sent without a copy. */
typedef struct ll_answer ll_answer;

/* The tenant as ll_tenant_get() shows it, as an answer (*out: a new
 * reference; give it back with ll_answer_release).  Answers are kept per
 * tenant while the registry (ll_registry_generation) and what the cluster
 * shows of the tenant (ll_status_stamp) have not moved, so a repeated read
 * costs a lookup; at most 4 MiB of them are kept. */
int ll_tenant_answer(ll_answer **out, ll_core *c, const char *id);

/* The answer's text (borrowed, NUL-terminated, *out_len bytes) and ETag
 * (borrowed); both live as long as the reference. */
const char *ll_answer_text(size_t *out_len, const ll_answer *a);
const char *ll_answer_etag(const ll_answer *a);

/* Gives back a reference from ll_tenant_answer (NULL is fine); any thread. */
void ll_answer_release(ll_answer *a);

/* 1 when a caller waiting for tenant id to be ready should stop waiting:
 * it is ready or failed, it is not active (offboarding, drifted...), or no
 * cluster is configured; 0 while it provisions, updates, is blocked or its
 * state is unknown for now. */
int ll_tenant_wait_over(ll_core *c, const char *id);

/* {"items": [...], "next_cursor": ...} (new reference); tier, state,
 * cursor may be NULL; limit 1..500. */
int ll_tenant_list(json_t **out, ll_core *c, const char *tier, const char *state,
                   const char *cursor, int limit);

/* {"items": [tier...]} (without templates) and one tier (with template),
 * each *out a new reference (tier_views.c).  A tier carries "etag", the
 * version of its template and description. */
int ll_tier_list(json_t **out, ll_core *c);
int ll_tier_get(json_t **out, ll_core *c, const char *name);

/* --- identity and access (access.c) --- */

struct ll_auth;

/* The bearer token keys (NULL unless serving; borrowed). */
const struct ll_auth *ll_core_auth(ll_core *c);

/* Creates or replaces tier name: body {"template", "description"?,
 * "deployment_model"?}; the template must render for a sample tenant and
 * give the deployment model named.  if_match / if_none_match are the
 * headers (or NULL): LL_EPRECONDITION when they fail.  Queues one tier_put
 * operation (*out_op); *out_created 1 when the tier is new.  LL_EINVALID
 * (field set; kind "render-failed" when the template does not render),
 * LL_ECONFLICT while another change to the tier is queued. */
int ll_tier_put(long long *out_op, int *out_created, ll_core *c, const char *name,
                const json_t *body, const char *if_match, const char *if_none_match);

/* Deletes tier name (its template, folder and entry), one tier_delete
 * operation.  LL_ENOTFOUND, LL_EPRECONDITION, LL_ECONFLICT while tenants
 * that are not offboarded are in it or another change is queued. */
int ll_tier_delete(long long *out_op, ll_core *c, const char *name, const char *if_match);

/* The answer to a tier change: *pending 1 and *out the operation while it
 * is queued; else *out the tier as it is now (NULL once deleted), or the
 * error that failed the operation (LL_ECONFLICT, LL_EUPSTREAM). */
int ll_tier_outcome(json_t **out, int *pending, ll_core *c, long long op, const char *name);

/* Records one request that tried to change something (e and its strings
 * borrowed; see registry.h); the tenant and tier default to what its
 * operation names.  Prunes records older than audit-retention now and
 * then. */
int ll_audit_record(ll_core *c, const ll_audit_entry *e);

/* The audit log, newest first, as the API's body into *out (new
 * reference): {"items", "next_cursor"}.  Filters (each may be NULL;
 * borrowed): tenant, actor (a token's sub), since / until (RFC 3339 UTC);
 * cursor from an earlier page.  LL_EINVALID for a bad filter. */
int ll_audit_list(json_t **out, ll_core *c, const char *tenant, const char *actor,
                  const char *since, const char *until, const char *cursor, int limit);

/* One audit record (borrowed) as the API shows it (new reference): {"id",
 * "at", "request_id", "actor": {"sub", "name", "email"} | null, "method",
 * "path", "route", "tenant", "tier", "status", "outcome" (refused, failed,
 * pending or done), "problem", "replayed", "operation": {"id", "kind",
 * "state", "commit", "author": {"name", "email"}} | null, "commit"}. */
json_t *ll_audit_item_json(const ll_audit_item *item);

/* The commits of the GitOps branch that touched tenant id's file (in any
 * tier folder, either layout), newest first, read from landlord's clone:
 * {"items": [{"sha", "message" (first line), "author": {"name", "email",
 * "at"}, "committer": {...}, "changes": [{"path", "change"}],
 * "operations": [ids]}], "next_cursor"}.  At most limit items and 20,000
 * commits looked at per call; next_cursor (a commit) continues.
 * LL_ENOTFOUND for a tenant the registry does not know. */
int ll_tenant_history(json_t **out, ll_core *c, const char *id, const char *cursor, int limit);

/* A POST that brought an Idempotency-Key; every string borrowed. */
typedef struct ll_idem_request {
    const char *subject, *key; /* the caller's sub, and its key */
    const char *method, *path; /* as the request line had them (decoded) */
    const char *body;          /* len bytes (NULL when len is 0) */
    size_t len;
} ll_idem_request;

/* The fingerprint of an idempotent request into out (64 hex and a NUL):
 * SHA-256 over method, path and body, where a JSON body counts by its
 * value (sorted keys, no spaces), so a retry that sends the same object
 * with its keys in another order is the same request. */
void ll_idempotency_fingerprint(char out[65], const ll_idem_request *req);

/* Looks up req's key (see ll_registry_idem_begin; ttl: idempotency-ttl):
 * *out_state, and with LL_IDEM_DONE the stored answer in *out_answer
 * (owned by the caller: ll_idem_answer_clear). */
int ll_idempotency_begin(ll_idem_state *out_state, ll_idem_answer *out_answer, ll_core *c,
                         const ll_idem_request *req);

/* Stores answer (borrowed) for the request that reserved (subject, key). */
int ll_idempotency_finish(ll_core *c, const char *subject, const char *key,
                          const ll_idem_answer *answer);

/* Frees the reservation of (subject, key) whose request ended without an
 * answer worth keeping. */
int ll_idempotency_release(ll_core *c, const char *subject, const char *key);

int ll_operation_get(json_t **out, ll_core *c, long long id);

/* --- releases (releases.c) --- */

/* Uploads a packaged chart (.tgz): checked (LL_EINVALID, kind
 * "invalid-chart"), turned into an OCI artifact as helm push makes it,
 * pushed to the OCI registry (oci-url) or stored in the data dir's image
 * layout, and only then recorded.  *created 1 when new; the same chart
 * again answers the existing release (0) without touching the registry;
 * another chart under an existing version, recorded or in the registry, is
 * LL_ECONFLICT; a registry that refuses or fails is LL_EUPSTREAM and
 * nothing is recorded.  *out is the release as the catalogue shows it. */
int ll_release_upload(json_t **out, int *created, ll_core *c, const void *data, size_t len);

/* {"items": [release...]}, newest version first; each release {"version",
 * "tag", "digest", "chart_digest", "config_digest", "size", "location",
 * "app_version", "pushed_at", "tenants"}. */
int ll_release_list(json_t **out, ll_core *c);
int ll_release_get(json_t **out, ll_core *c, const char *version); /* LL_ENOTFOUND */

/* Deletes the release's manifest from the registry (or its tag from the
 * layout), then the record.  LL_ECONFLICT while any tenant runs or targets
 * it, or when it lives in another registry than the configured one;
 * LL_EUPSTREAM when the registry refuses or fails (the record stays);
 * LL_ENOTFOUND. */
int ll_release_delete(ll_core *c, const char *version);

/* --- rollouts (rollouts.c) --- */

/* Creates a rollout: body {"version", "tiers" | "tenants", "waves"?:
 * [{"tiers" | "tenants" | "percent", "soak_seconds"?}], "on_failure"?:
 * "pause" | "rollback", "wave_timeout_seconds"?}.  Every wave is computed
 * now; the engine drives them.  *out is the rollout (docs/api.md).
 * LL_EINVALID with the field at fault (a version never uploaded, unknown
 * tiers or tenants, bad waves); LL_ECONFLICT when its tenants or pools are
 * in an active rollout, or no cluster is configured. */
int ll_rollout_create(json_t **out, ll_core *c, const json_t *body);

/* {"items": [rollout without "tenants"], "next_cursor"}, newest first;
 * before: the cursor (a rollout id; 0 from the newest); limit 1..500. */
int ll_rollout_list(json_t **out, ll_core *c, long long before, int limit);

/* The rollout with its waves, pools and tenants; LL_ENOTFOUND. */
int ll_rollout_get(json_t **out, ll_core *c, long long id);

/* action "pause" (running), "resume" (paused), "abort" (running or paused:
 * stops for good, tenants stay where they are) or "rollback" (running or
 * paused: every tenant it moved returns, in one commit); body NULL or
 * {"reason"?}.  LL_ECONFLICT when the rollout's state does not allow it;
 * LL_ENOTFOUND. */
int ll_rollout_control(json_t **out, ll_core *c, long long id, const char *action,
                       const json_t *body);

/* --- events and webhooks (events.c) --- */

/* Subscribes: body {"url", "event_types"?: ["tenant.*" | "tenant.<state>" |
 * "rollout.*" | "rollout.<event>" | "*"], "secret"?, "description"?}.  *out is the webhook with its
 * "secret" (generated when not given; shown only here).  LL_EINVALID with the field at fault: a URL
 * that is not http(s), carries credentials or is too long, an unknown event type, a short secret,
 * an unknown field. */
int ll_webhook_create(json_t **out, ll_core *c, const json_t *body);

/* {"items": [webhook...]} without secrets. */
int ll_webhook_list(json_t **out, ll_core *c);
int ll_webhook_get(json_t **out, ll_core *c, long long id);
int ll_webhook_delete(ll_core *c, long long id);

/* The delivery log, newest first: {"items": [...], "next_cursor"}; before
 * is the cursor (a delivery id; 0 from the newest). */
int ll_webhook_deliveries(json_t **out, ll_core *c, long long id, long long before, int limit);

/* Events with id > after, oldest first (new reference). */
int ll_events_after(json_t **out, ll_core *c, long long after, int limit);

/* The newest event id (0 when none). */
int ll_events_last(long long *out, ll_core *c);

/* Moves whenever new events may exist. */
unsigned long long ll_core_events_generation(ll_core *c);

/* /metrics in the Prometheus text format (caller frees *out). */
int ll_core_metrics(char **out, size_t *out_len, ll_core *c);

#endif

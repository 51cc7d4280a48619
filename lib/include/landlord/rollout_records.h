/* rollout_records.h - a rollout, its waves, tenants and pools as C records.
 *
 * The rollout's use cases (core/rollouts.c), its planner (rollout_plan.c)
 * and its engine (rollout_engine.c) work on these records and compare
 * enums; text exists only in SQL rows (converted in registry_rollouts.c)
 * and in API bodies (built in core/rollout_view.c, parsed in rollouts.c).
 * The enum <-> text tables and the record helpers are in
 * registry/rollout_records.c.
 *
 * Ownership: a record owns every string and array it points at (heap
 * copies), freed by its *_free function (which accepts NULL).  A step
 * (ll_rollout_step) only borrows: it lives on its caller's stack for one
 * registry call.
 *
 * Ownership: the records here own their strings and arrays; each is
 * released with its _clear/_free function.  Pointer arguments are borrowed
 * for the call unless a prototype says otherwise.
 */
#ifndef LANDLORD_ROLLOUT_RECORDS_H
#define LANDLORD_ROLLOUT_RECORDS_H

#include <jansson.h>
#include <stddef.h>

/* A rollout's state (rollouts.state). */
typedef enum ll_rollout_state {
    LL_ROLLOUT_RUNNING = 0,
    LL_ROLLOUT_PAUSED,
    LL_ROLLOUT_ROLLING_BACK,
    LL_ROLLOUT_SUCCEEDED,
    LL_ROLLOUT_ROLLED_BACK,
    LL_ROLLOUT_ABORTED,
    LL_ROLLOUT_FAILED,
    LL_ROLLOUT_STATES
} ll_rollout_state;

/* A set of rollout states, for a step's expectation. */
#define LL_ROLLOUT_BIT(s) (1u << (s))

/* A wave's state (rollout_waves.state). */
typedef enum ll_wave_state {
    LL_WAVE_PENDING = 0,
    LL_WAVE_COMMITTING,
    LL_WAVE_WAITING,
    LL_WAVE_SOAKING,
    LL_WAVE_SUCCEEDED,
    LL_WAVE_FAILED,
    LL_WAVE_STATES
} ll_wave_state;

/* A tenant's state within a rollout (rollout_tenants.state), in the order
 * the API's counts list them. */
typedef enum ll_rt_state {
    LL_RT_PENDING = 0,
    LL_RT_UPDATING,
    LL_RT_READY,
    LL_RT_FAILED,
    LL_RT_SKIPPED,
    LL_RT_ROLLED_BACK,
    LL_RT_STATES
} ll_rt_state;

/* A pool environment's state within a rollout (rollout_pools.state). */
typedef enum ll_pool_state {
    LL_POOL_PENDING = 0,
    LL_POOL_MOVED,
    LL_POOL_ROLLED_BACK,
    LL_POOL_STATES
} ll_pool_state;

/* What a failed wave does (rollouts.on_failure). */
typedef enum ll_on_failure { LL_ON_FAILURE_PAUSE = 0, LL_ON_FAILURE_ROLLBACK } ll_on_failure;

/* The text of each value (as stored and as the API shows it): a static
 * string, "?" out of range. */
const char *ll_rollout_state_name(ll_rollout_state s);
const char *ll_wave_state_name(ll_wave_state s);
const char *ll_rt_state_name(ll_rt_state s);
const char *ll_pool_state_name(ll_pool_state s);
const char *ll_on_failure_name(ll_on_failure f);

/* The value of text; LL_EINVALID (*out untouched) when text (may be NULL)
 * names none. */
int ll_rollout_state_parse(ll_rollout_state *out, const char *text);
int ll_wave_state_parse(ll_wave_state *out, const char *text);
int ll_rt_state_parse(ll_rt_state *out, const char *text);
int ll_pool_state_parse(ll_pool_state *out, const char *text);
int ll_on_failure_parse(ll_on_failure *out, const char *text);

/* A list of names (tiers, tenant ids); owns its strings. */
typedef struct ll_names {
    char **v;
    size_t n;
} ll_names;

/* Appends a copy of name (borrowed; NULL adds ""); -1 out of memory. */
int ll_names_add(ll_names *l, const char *name);
/* 1 when l holds name (both borrowed; either may be NULL: 0). */
int ll_names_has(const ll_names *l, const char *name);
/* Frees the strings (l itself is the caller's); l is empty after. */
void ll_names_clear(ll_names *l);

/* Which tenants a wave (or a rollout's scope) concerns. */
typedef enum ll_selector_kind {
    LL_SELECT_TIERS = 0,
    LL_SELECT_TENANTS,
    LL_SELECT_PERCENT
} ll_selector_kind;

typedef struct ll_selector {
    ll_selector_kind kind;
    ll_names names;    /* tiers or tenant ids */
    long long percent; /* of the scope's tenants still unassigned, 1..100 */
} ll_selector;

/* {"tiers": [...]} | {"tenants": [...]} | {"percent": n}, as stored and as
 * the API shows it (new reference). */
json_t *ll_selector_json(const ll_selector *s);
/* The selector of such an object (borrowed) into out, which owns copies
 * (ll_selector_clear); LL_EINVALID when v is none of them. */
int ll_selector_from_json(ll_selector *out, const json_t *v);
/* Frees what s holds (s is the caller's); NULL is fine. */
void ll_selector_clear(ll_selector *s);

/* One wave of a rollout (rollout_waves); optional times are NULL when not
 * set, optional numbers have a has_* flag. */
typedef struct ll_wave {
    int wave; /* from 1 */
    ll_selector selector;
    long long soak_seconds;
    ll_wave_state state;
    long long operation_id; /* 0: none */
    char *commit_sha;
    int has_deadline, has_soak_until;
    long long deadline_ms, soak_until_ms; /* wall clock, ms since the epoch */
    char *error;
    char *started_at, *pushed_at, *ready_at, *finished_at;
    long long counts[LL_RT_STATES]; /* its tenants per state */
} ll_wave;

/* A tenant a rollout concerns (rollout_tenants). */
typedef struct ll_rollout_tenant {
    char *id, *tier;
    int wave;           /* 0: skipped, in no wave */
    char *from_version; /* what its file carried before (may be NULL) */
    ll_rt_state state;
    char *reason, *updated_at; /* may be NULL */
} ll_rollout_tenant;

/* A pool environment that moves with a wave (rollout_pools). */
typedef struct ll_rollout_pool {
    char *pool;
    int wave;
    char *from_version;
    ll_pool_state state;
} ll_rollout_pool;

/* A rollout as stored, with its waves and pools and, when read with them,
 * its tenants. */
typedef struct ll_rollout {
    long long id;
    char *version;
    ll_rollout_state state;
    ll_on_failure on_failure;
    ll_selector scope; /* tiers or tenants */
    long long wave_timeout;
    int current_wave;
    char *reason;
    long long rollback_op; /* 0: none */
    char *rollback_sha;
    char *author_name, *author_email;
    char *created_at, *updated_at, *finished_at;
    ll_wave *waves; /* waves[i].wave == i + 1 */
    size_t nwaves;
    ll_rollout_pool *pools;
    size_t npools;
    int with_tenants;
    ll_rollout_tenant *tenants;
    size_t ntenants;
    long long counts[LL_RT_STATES]; /* every tenant (in a wave or skipped), per state */
} ll_rollout;

/* Frees a rollout from the registry and all it holds; NULL is fine. */
void ll_rollout_free(ll_rollout *ro);
/* Frees n rollouts and the array; NULL is fine. */
void ll_rollout_array_free(ll_rollout **items, size_t n);
/* Free what a record holds and zero it (the record is the caller's). */
void ll_rollout_tenant_clear(ll_rollout_tenant *t);
void ll_rollout_pool_clear(ll_rollout_pool *p);
void ll_wave_clear(ll_wave *w);

/* The wave numbered wave (borrowed), or NULL. */
const ll_wave *ll_rollout_wave(const ll_rollout *ro, int wave);

/* A tenant a rollout may concern, as it is now (tenants). */
typedef struct ll_rollout_candidate {
    char *id, *tier, *release, *chart_version, *lifecycle;
    int active; /* lifecycle is active */
} ll_rollout_candidate;

/* Frees n candidates and the array; NULL is fine. */
void ll_rollout_candidates_free(ll_rollout_candidate *v, size_t n);

/* A tenant a wave moved, with its current row: what the engine watches. */
typedef struct ll_wave_tenant {
    char *id;
    ll_rt_state state; /* updating, ready or failed */
    char *reason;
    char *lifecycle; /* NULL: the tenant is gone */
    int active;
    char *commit_sha, *sync, *chart_version;
} ll_wave_tenant;

/* Frees n wave tenants and the array; NULL is fine. */
void ll_wave_tenants_free(ll_wave_tenant *v, size_t n);

/* A rollout to store (ll_registry_rollout_create); borrows everything. */
typedef struct ll_rollout_spec {
    const char *version;
    ll_on_failure on_failure;
    const ll_selector *scope;
    long long wave_timeout;
    const char *author_name, *author_email;
    const ll_wave *waves; /* selector and soak_seconds */
    size_t nwaves;
    const ll_rollout_tenant *tenants; /* id, tier, wave, from_version, state, reason */
    size_t ntenants;
    const ll_rollout_pool *pools; /* pool, wave, from_version */
    size_t npools;
    size_t targets; /* tenants the waves move (for the rollout.started event) */
} ll_rollout_spec;

/* A tenant's new state in a step. */
typedef struct ll_rt_change {
    const char *id;
    ll_rt_state state;
    const char *reason; /* NULL stores NULL */
} ll_rt_change;

/* Which fields of a step are written (ll_rollout_step.set, .wave_set). */
enum {
    LL_SET_STATE = 1 << 0,
    LL_SET_REASON = 1 << 1,
    LL_SET_CURRENT_WAVE = 1 << 2,
    LL_SET_ROLLBACK_SHA = 1 << 3,
    LL_SET_FINISHED_AT = 1 << 4,
};
enum {
    LL_WSET_STATE = 1 << 0,
    LL_WSET_DEADLINE = 1 << 1,
    LL_WSET_SOAK_UNTIL = 1 << 2,
    LL_WSET_ERROR = 1 << 3,
    LL_WSET_PUSHED_AT = 1 << 4,
    LL_WSET_READY_AT = 1 << 5,
    LL_WSET_FINISHED_AT = 1 << 6,
    LL_WSET_COMMIT_SHA = 1 << 7,
};

/* An event a rollout step stores with the step and sends to the webhooks
 * subscribed to its type.  data is the event's body: JSON stored as it is
 * (an opaque value to the registry, but for the "rollout" and "at" it adds
 * to a copy). */
typedef struct ll_event_note {
    const char *type;   /* "rollout.<event>" (borrowed) */
    const char *tenant; /* the tenant it concerns, or NULL (borrowed) */
    json_t *data;       /* a reference of the note's owner; NULL: {} */
} ll_event_note;

/* Drops the data references of n notes (notes itself is the caller's). */
void ll_event_notes_clear(ll_event_note *notes, size_t n);

/* One step of the engine or a control action (ll_registry_rollout_step):
 * borrows everything.  A string field named in set or wave_set but NULL
 * stores NULL. */
typedef struct ll_rollout_step {
    long long rollout;
    unsigned expect; /* LL_ROLLOUT_BIT()s the rollout must be in; 0: any */
    unsigned set;    /* LL_SET_* */
    ll_rollout_state state;
    const char *reason;
    int current_wave;
    const char *rollback_sha, *finished_at;
    int wave;          /* the wave wave_set changes */
    unsigned wave_set; /* LL_WSET_* */
    ll_wave_state wave_state;
    long long deadline_ms, soak_until_ms;
    const char *error, *pushed_at, *ready_at, *wave_finished_at, *commit_sha;
    const ll_rt_change *tenants;
    size_t ntenants;
    const ll_names *tier_versions; /* tiers that run tier_version from now on */
    const char *tier_version;
    const ll_event_note *events; /* stored with the step (borrowed); NULL: none */
    size_t nevents;
} ll_rollout_step;

#endif

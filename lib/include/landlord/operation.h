/* operation.h - an operation of the outbox, as a record.
 *
 * Every change to the repository travels from a use case to the git writer
 * as a row of the registry's outbox (the operations table).  The registry
 * converts a row and its payload into an ll_operation in one place
 * (lib/registry/outbox.c), and the writer works on the record: a switch
 * over ll_op_kind, fields instead of JSON keys.  The kinds' names exist as
 * strings only in that conversion (ll_op_kind_name gives them to the API's
 * view of an operation).  Outcomes go back as ll_op_result records.
 *
 * Ownership.  A record owns its strings and its values; ll_operation_clear
 * frees them.  Lists (ll_op_list, ll_op_results) own their records.
 */
#ifndef LANDLORD_OPERATION_H
#define LANDLORD_OPERATION_H

#include <stddef.h>
#include <jansson.h>

typedef enum ll_op_kind {
    LL_OP_ONBOARD,     /* render the tenant's file into its tier */
    LL_OP_UPDATE,      /* render it again (from_tier: the folder it leaves) */
    LL_OP_OFFBOARD,    /* remove the tenant's file */
    LL_OP_TIER_PUT,    /* write a tier's template and folder */
    LL_OP_TIER_DELETE, /* remove a tier's template and (empty) folder */
    LL_OP_ROLLOUT      /* set the chart version of a wave's files */
} ll_op_kind;

typedef enum ll_op_state { LL_OP_QUEUED, LL_OP_PUSHED, LL_OP_FAILED } ll_op_state;

/* Why an operation failed (its error_type): a conflict in the repository,
 * or a template that did not render for the tenant's values. */
typedef enum ll_op_failure {
    LL_OP_FAILURE_NONE, /* none recorded (also for types this binary does not know) */
    LL_OP_FAILURE_CONFLICT,
    LL_OP_FAILURE_RENDER
} ll_op_failure;

/* A tenant's desired state, as an operation carries it (previous). */
typedef struct ll_op_desired {
    char *tier, *release, *chart_version; /* chart_version may be NULL */
    json_t *values;                       /* opaque chart values, owned; may be NULL */
} ll_op_desired;

/* onboard, update, offboard.  An offboarding carries nothing. */
typedef struct ll_op_tenant_payload {
    char *release;       /* the release policy (a version or x.y line) */
    char *chart_version; /* what the file carries, chosen by the registry */
    json_t *values;      /* opaque chart values, owned; NULL for an offboarding */
    char *from_tier;     /* update: the tier the tenant leaves, or NULL */
    int has_previous;    /* update, re-onboarding: what to return to on failure */
    ll_op_desired previous;
} ll_op_tenant_payload;

/* tier_put (tier_delete carries nothing). */
typedef struct ll_op_tier_payload {
    char *template_text; /* the tier's template; NULL when missing */
    char *description, *deployment_model;
    int replace; /* 1: the tier existed (the commit says "Replace") */
} ll_op_tier_payload;

/* A tenant a rollout moves from one chart version to another. */
typedef struct ll_op_move {
    char *id, *tier;   /* NULL when missing (the writer refuses the operation) */
    char *path;        /* where its file is, or NULL: where the layout puts it */
    char *from, *to;   /* chart versions; from may be NULL */
    long long prev_op; /* the tenant's operation before, 0 for none */
} ll_op_move;

/* A pool environment moving with a rollout's wave. */
typedef struct ll_op_pool_move {
    char *name, *from, *to; /* from may be NULL */
} ll_op_pool_move;

typedef enum ll_op_rollout_action {
    LL_OP_ROLLOUT_WAVE,
    LL_OP_ROLLOUT_ROLLBACK
} ll_op_rollout_action;

typedef struct ll_op_rollout_payload {
    long long rollout;
    ll_op_rollout_action action;
    long long wave; /* a wave: its number (from 1); a rollback: 0 */
    char *version;  /* the rollout's version, or NULL */
    ll_op_move *tenants;
    size_t n_tenants;
    ll_op_pool_move *pools;
    size_t n_pools;
} ll_op_rollout_payload;

typedef struct ll_operation {
    long long id;
    ll_op_kind kind;
    ll_op_state state;
    char *tenant; /* the tenant of a tenant operation; NULL for tier and rollout ones */
    char *tier;   /* the tenant's (new) tier, or the tier changed; "" for a rollout */
    char *commit; /* pushed: the commit; NULL otherwise */
    char *error;  /* failed: why; NULL otherwise */
    ll_op_failure failure;
    char *created_at, *updated_at;
    char *author_name, *author_email; /* the commit author */
    long long attempts;               /* pushes tried while the remote failed */
    char *last_error;                 /* why the last attempt failed, or NULL */
    long long rollout_id;             /* a rollout operation's rollout, else 0 */
    /* The payload of the kind: tenant (onboard, update, offboard), tier
     * (tier_put, tier_delete) or rollout; the others stay zero. */
    ll_op_tenant_payload t;
    ll_op_tier_payload tier_op;
    ll_op_rollout_payload rollout;
} ll_operation;

/* Frees what op owns and zeroes it; NULL is fine. */
void ll_operation_clear(ll_operation *op);

/* The kind's name as rows and the API spell it ("onboard", "tier_put", ...);
 * static string. */
const char *ll_op_kind_name(ll_op_kind kind);

/* The state's name ("queued", "pushed", "failed"); static string. */
const char *ll_op_state_name(ll_op_state state);

/* Operations read from the outbox, oldest first; owns them. */
typedef struct ll_op_list {
    ll_operation *ops;
    size_t n;
} ll_op_list;

/* Keeps the first n operations of list (n <= list->n), freeing the rest. */
void ll_op_list_truncate(ll_op_list *list, size_t n);

/* Frees every operation of list and empties it; NULL is fine. */
void ll_op_list_free(ll_op_list *list);

/* The outcome of one operation of a batch. */
typedef struct ll_op_result {
    long long id;
    int ok;
    char commit[41];       /* ok: the commit that holds it ("" on an empty branch) */
    ll_op_failure failure; /* !ok: the class of the failure */
    char *error;           /* !ok: why (owned) */
} ll_op_result;

/* Outcomes of a batch, in the order they were added; owns them. */
typedef struct ll_op_results {
    ll_op_result *v;
    size_t n, cap;
} ll_op_results;

/* Adds a success: id is in commit (copied).  -1 when out of memory. */
int ll_op_results_ok(ll_op_results *res, long long id, const char *commit);

/* Adds a failure (error copied).  -1 when out of memory. */
int ll_op_results_failed(ll_op_results *res, long long id, ll_op_failure failure,
                         const char *error);

/* Moves every outcome of from to the end of to (from ends empty).  The outcomes move: to owns them,
 * from keeps nothing. */
int ll_op_results_take(ll_op_results *to, ll_op_results *from);

/* Frees the outcomes and empties res; NULL is fine. */
void ll_op_results_free(ll_op_results *res);

#endif

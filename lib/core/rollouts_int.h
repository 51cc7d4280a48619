/* rollouts_int.h - planning a rollout's waves (rollout_plan.c) and showing
 * a rollout (rollout_view.c); private to lib/core and its unit tests. */
#ifndef LANDLORD_ROLLOUTS_INT_H
#define LANDLORD_ROLLOUTS_INT_H

#include <jansson.h>

#include "landlord/rollout_records.h"
#include "landlord/tiers.h"

/* A rollout being planned: every tenant it concerns (skipped, or a target
 * in a wave once planned), its waves and its pools. */
typedef struct ll_plan {
    const char *version;                /* borrowed */
    const ll_tier_catalogue *catalogue; /* the tiers (borrowed) */
    const ll_names *scope_tiers;        /* NULL for a scope of tenants (borrowed) */
    ll_rollout_tenant *tenants;         /* wave 0 until a wave takes it */
    size_t ntenants;
    size_t targets;           /* tenants not skipped */
    size_t assigned;          /* targets in a wave */
    ll_rollout_tenant **byid; /* into tenants, sorted by id */
    ll_wave *waves;
    size_t nwaves;
    ll_rollout_pool *pools;
    size_t npools;
} ll_plan;

/* Starts a plan from the candidates (ll_registry_rollout_candidates; read,
 * copied): a pinned tenant, or one at the version already, is skipped with
 * the reason; the others are targets.  With a scope of named tenants
 * (names, borrowed), each must be a candidate and active (LL_EINVALID on
 * field "tenants").  Clear p with ll_plan_clear whatever it returns. */
int ll_plan_init(ll_plan *p, const char *version, const ll_rollout_candidate *candidates, size_t n,
                 const ll_names *scope_tiers, const ll_names *names,
                 const ll_tier_catalogue *catalogue);

/* Plans the next wave (req: its selector and soak_seconds, read): tiers
 * (each in the catalogue and the scope) take their unassigned targets;
 * tenants (each in the scope, in no earlier wave; skipped ones stay
 * skipped) take those; a percentage takes that share, rounded up, of the
 * targets still unassigned, in order.  field names the wave in errors
 * (LL_EINVALID). */
int ll_plan_wave(ll_plan *p, const ll_wave *req, const char *field);

/* Ends the plan: LL_EINVALID when the waves leave a target out; then the
 * pool environments serving the scope's tiers, each moving with the first
 * wave that holds a target of a tier it serves (else wave 1), unless it
 * runs the version already. */
int ll_plan_finish(ll_plan *p);

void ll_plan_clear(ll_plan *p);

/* The API's rollout (docs/api.md "Rollouts") from the record: a new
 * reference. */
json_t *ll_rollout_view(const ll_rollout *ro);

#endif

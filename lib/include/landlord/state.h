/* state.h - a tenant's observed state (docs/api.md "Observed state") as an
 * enum, and its one spelling.
 *
 * The status follower (lib/cluster) derives it, the registry stores it
 * (tenants.observed_state, the event type "tenant.<state>") and the API
 * shows it; each converts at its edge with ll_tenant_state_name() and
 * ll_tenant_state_parse(), so no state is compared as text anywhere else.
 * Header-only: nothing to link, no module depends on another for it.
 */
#ifndef LANDLORD_STATE_H
#define LANDLORD_STATE_H

#include <string.h>

typedef enum ll_tenant_state {
    LL_STATE_NONE = 0, /* not derived yet */
    LL_STATE_PROVISIONING,
    LL_STATE_READY,
    LL_STATE_UPDATING,
    LL_STATE_FAILED,
    LL_STATE_BLOCKED,
    LL_STATE_OFFBOARDING,
    LL_STATE_OFFBOARDED,
    LL_STATE_DRIFTED,
    LL_STATE_UNKNOWN,
} ll_tenant_state;

#define LL_STATE_COUNT (LL_STATE_UNKNOWN + 1)

/* The API's and the registry's name of state s ("" for LL_STATE_NONE);
 * a static string. */
static inline const char *ll_tenant_state_name(ll_tenant_state s)
{
    switch (s) {
    case LL_STATE_PROVISIONING:
        return "provisioning";
    case LL_STATE_READY:
        return "ready";
    case LL_STATE_UPDATING:
        return "updating";
    case LL_STATE_FAILED:
        return "failed";
    case LL_STATE_BLOCKED:
        return "blocked";
    case LL_STATE_OFFBOARDING:
        return "offboarding";
    case LL_STATE_OFFBOARDED:
        return "offboarded";
    case LL_STATE_DRIFTED:
        return "drifted";
    case LL_STATE_UNKNOWN:
        return "unknown";
    case LL_STATE_NONE:
        break;
    }
    return "";
}

/* The state named name into *out: 0, or -1 (and LL_STATE_NONE) when name
 * is NULL or names no state. */
static inline int ll_tenant_state_parse(ll_tenant_state *out, const char *name)
{
    *out = LL_STATE_NONE;
    for (int s = LL_STATE_NONE + 1; name && s < LL_STATE_COUNT; s++) {
        if (strcmp(name, ll_tenant_state_name((ll_tenant_state)s)) == 0) {
            *out = (ll_tenant_state)s;
            return 0;
        }
    }
    return -1;
}

#endif

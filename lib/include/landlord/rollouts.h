/* rollouts.h - the rollout engine (core/rollout_engine.c): waves driven
 * from the registry.
 *
 * One thread moves every running rollout along: it starts a wave (one
 * outbox operation, so one commit, for all its tenants and pools), waits
 * for the git writer to push it, waits until every tenant of the wave reads
 * ready at the rollout's version (status.h), soaks, and goes on; a failed
 * wave pauses the rollout or rolls it back (one commit).  It keeps nothing
 * in memory between steps: the registry's rows are the truth, so after a
 * restart it continues where they say.  The use cases (create, list, get,
 * pause, resume, abort, rollback) are in core.h (core/rollouts.c); the
 * records a rollout travels as are in rollout_records.h.
 */
#ifndef LANDLORD_ROLLOUTS_H
#define LANDLORD_ROLLOUTS_H

#include <jansson.h>

#include "landlord/gitops.h"
#include "landlord/status.h"

typedef struct ll_rollouts ll_rollouts;

typedef struct ll_rollouts_options {
    const char *db_path;      /* the registry; the engine opens its own connection */
    ll_status *status;        /* observed state (borrowed; must outlive the engine) */
    ll_gitops *git;           /* the git writer to wake (borrowed) */
    const char *author_name;  /* author of the rollout commits */
    const char *author_email; /* (the configured identity) */
    /* Called on the engine's thread after events were stored, or NULL. */
    void (*on_events)(void *payload);
    void *on_events_payload;
} ll_rollouts_options;

/* Starts the engine thread; *out is a new handle (ll_rollouts_free).  opts
 * is read (strings copied); its status and git are borrowed. */
int ll_rollouts_start(ll_rollouts **out, const ll_rollouts_options *opts);

/* Stops the thread (after its current step); the handle stays valid for
 * ll_rollouts_notify() until ll_rollouts_free(). */
void ll_rollouts_stop(ll_rollouts *e);

/* Stops the thread if need be and frees; NULL is fine. */
void ll_rollouts_free(ll_rollouts *e);

/* Something changed (a rollout was created or controlled, a batch was
 * pushed, a tenant's state moved): look again now.  e may be NULL. */
void ll_rollouts_notify(ll_rollouts *e);

/* Moves whenever the engine stored events (0 for NULL). */
unsigned long long ll_rollouts_generation(ll_rollouts *e);

#endif

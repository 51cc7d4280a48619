/* apply.h - applying one operation to an overlay (private to lib/gitops).
 *
 * The engine of the git writer, kept free of the writer's handle so that it
 * can be driven (and tested) over any overlay: what it needs of the
 * repository's configuration comes in an ll_apply_ctx.  See apply.c.
 */
#ifndef LANDLORD_APPLY_H
#define LANDLORD_APPLY_H

#include <jansson.h>

#include "landlord/operation.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "overlay.h"

/* What applying needs besides the overlay; all borrowed. */
typedef struct ll_apply_ctx {
    const char *root; /* the GitOps root folder, e.g. "application-plane/production" */
    int sharded;      /* new tenant files go to shard folders */
    const ll_tier_catalogue *tiers; /* the tier catalogue (tiers.h), or NULL */
    const char *tier_kinds;         /* the tier policy's kinds, "" for the default */
    const char *flux_namespace;     /* where templates put HelmReleases, "" for the default */
} ll_apply_ctx;

/* An entry an operation needs in (add) or out of a kustomization's
 * resources. */
typedef struct ll_kust_intent {
    char *path;  /* the kustomization file (owned) */
    char *entry; /* a file or folder it lists (owned) */
    int add;
} ll_kust_intent;

/* An operation's intents, in the order they were first recorded, one per
 * (path, entry); owns them. */
typedef struct ll_kust_intents {
    ll_kust_intent *v;
    size_t n, cap;
} ll_kust_intents;

/* Frees the intents and empties the list, keeping its storage. */
void ll_kust_intents_clear(ll_kust_intents *intents);

/* Frees the intents and the list's storage; NULL is fine. */
void ll_kust_intents_free(ll_kust_intents *intents);

/* Applies op to ov.  Kustomization entries are not edited: they are added
 * to intents for the batch to apply at once.  On failure *why is its class
 * (a conflict in the repository, or a template that did not render) and
 * the overlay may hold partial changes: the caller undoes them
 * (ll_overlay_begin/undo).  op and ctx are borrowed. */
int ll_apply_op(ll_op_failure *why, const ll_apply_ctx *ctx, ll_overlay *ov,
                ll_kust_intents *intents, const ll_operation *op);

/* Appends to msg the commit message of the n applied operations: one line
 * for one ("Onboard tenant acme (premium)"), else a summary and a line per
 * operation; then the Landlord-Operations trailer with their ids. */
void ll_apply_commit_message(ll_buf *msg, const ll_operation *const *applied, size_t n);

#endif

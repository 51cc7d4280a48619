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
#include "landlord/util.h"
#include "overlay.h"

/* What applying needs besides the overlay; all borrowed. */
typedef struct ll_apply_ctx {
    const char *root;           /* the GitOps root folder, e.g. "application-plane/production" */
    int sharded;                /* new tenant files go to shard folders */
    const json_t *tiers;        /* the tier catalogue (tiers.h), or NULL */
    const char *tier_kinds;     /* the tier policy's kinds, "" for the default */
    const char *flux_namespace; /* where templates put HelmReleases, "" for the default */
} ll_apply_ctx;

/* Applies op to ov.  Kustomization entries are not edited: they are recorded
 * in intents as {"<kustomization path>": {"<entry>": true (in) | false
 * (out)}} for the batch to apply at once.  On failure *why is its class
 * (a conflict in the repository, or a template that did not render) and
 * the overlay may hold partial changes: the caller undoes them
 * (ll_overlay_begin/undo).  op and ctx are borrowed. */
int ll_apply_op(ll_op_failure *why, const ll_apply_ctx *ctx, ll_overlay *ov, json_t *intents,
                const ll_operation *op);

/* Appends to msg the commit message of the n applied operations: one line
 * for one ("Onboard tenant acme (premium)"), else a summary and a line per
 * operation; then the Landlord-Operations trailer with their ids. */
void ll_apply_commit_message(ll_buf *msg, const ll_operation *const *applied, size_t n);

#endif

/* adopt.h - reconciling the registry with what the repository holds (private).
 *
 * After every fetch the git writer scans <root>/tenants/<tier>/<id>.yaml:
 * tenant files unknown to the registry are adopted, registry tenants whose
 * files vanished are marked drifted, drifted tenants whose files came back
 * become active again.  `landlord import` is this scan on a fresh registry.
 */
#ifndef LANDLORD_ADOPT_H
#define LANDLORD_ADOPT_H

#include <git2.h>
#include <jansson.h>

#include "landlord/registry.h"

/* How many tenants a scan adopted, marked drifted, and found returned. */
typedef struct ll_adopt_stats {
    size_t adopted, drifted, returned;
} ll_adopt_stats;

/* Scans tree (the head commit head_sha's tree) and records what it finds in
 * reg; *out_stats (may be NULL) gets the counts.  Files that hold no
 * HelmRelease (dummy-configmap.yaml) are not tenants. */
int ll_adopt_scan(ll_adopt_stats *out_stats, git_repository *repo, git_tree *tree,
                  const char *head_sha, const char *root, const char *default_release,
                  ll_registry *reg);

/* What actual changes relative to base, as chart value overrides: keys whose
 * values differ (objects compared key by key), null for keys actual lacks.
 * NULL when they are equal.  New reference. */
json_t *ll_values_diff(const json_t *base, const json_t *actual);

#endif

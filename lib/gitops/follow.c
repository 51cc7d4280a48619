/* follow.c - the registry and the tier catalogue follow the remote head.
 *
 * How it works.  After every fetch (at start, after a rejected push, every
 * git-poll-interval) gitops_follow_head compares the remote head with the
 * one last followed; for a new one the registry scans the tenant files
 * (adopt.c: adoption, drift) and the tier catalogue is read again from the
 * tier templates and the pool environments (tiers.c) and published as an
 * immutable snapshot (ll_gitops_tiers).
 *
 * Threads.  Following runs on the thread that owns the repository; the
 * snapshot (typed records, tiers.h) is swapped under g->lock and handed
 * out as a new reference (ll_tier_catalogue_ref).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "adopt.h"
#include "gitops_int.h"
#include "landlord/kustomize.h"
#include "landlord/tiers.h"
#include "overlay.h"

static ll_tier_catalogue *read_tiers(ll_gitops *g, git_commit *commit)
{
    json_t *files = json_object();
    ll_tier_catalogue *cat;
    git_tree *tree = NULL, *dir = NULL;
    git_tree_entry *entry = NULL;
    ll_overlay ov = {0};
    char path[1024], *text = NULL;
    size_t len;

    if (commit && git_commit_tree(&tree, commit) == 0) {
        ov.repo = g->repo;
        ov.base = tree;
        snprintf(path, sizeof(path), "%s/tier-templates", g->root);
        if (git_tree_entry_bypath(&entry, tree, path) == 0 &&
            git_tree_entry_type(entry) == GIT_OBJECT_TREE &&
            git_tree_lookup(&dir, g->repo, git_tree_entry_id(entry)) == 0) {
            for (size_t i = 0; i < git_tree_entrycount(dir); i++) {
                const git_tree_entry *e = git_tree_entry_byindex(dir, i);
                snprintf(path, sizeof(path), "%s/tier-templates/%s", g->root,
                         git_tree_entry_name(e));
                if (ll_overlay_read(&text, &len, &ov, path) == 0 && text)
                    json_object_set_new(files, path, json_stringn(text, len));
                free(text);
                text = NULL;
            }
        }
        snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
        if (ll_overlay_read(&text, &len, &ov, path) == 0 && text) {
            json_t *pools = NULL, *pool;
            size_t i;
            json_object_set_new(files, path, json_stringn(text, len));
            /* The pool environments it lists: their chart versions. */
            if (ll_kustomize_resources(&pools, text, len) == 0) {
                json_array_foreach(pools, i, pool)
                {
                    char *ptext = NULL;
                    size_t plen = 0;
                    snprintf(path, sizeof(path), "%s/pooled-envs/%s", g->root,
                             json_string_value(pool));
                    if (!strchr(json_string_value(pool), '/') &&
                        ll_overlay_read(&ptext, &plen, &ov, path) == 0 && ptext)
                        json_object_set_new(files, path, json_stringn(ptext, plen));
                    free(ptext);
                }
            }
            json_decref(pools);
        }
        free(text);
    }
    ll_tier_policy policy = {g->tier_kinds, g->flux_namespace, NULL, 0};
    cat = ll_tiers_build(files, g->root, &policy);
    json_decref(files);
    git_tree_free(dir);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    return cat;
}

void gitops_publish_tiers(ll_gitops *g, git_commit *head)
{
    ll_tier_catalogue *cat = read_tiers(g, head), *old;
    /* Out of memory: the old catalogue stays. */
    if (!cat)
        return;
    pthread_mutex_lock(&g->lock);
    old = g->tiers;
    g->tiers = cat;
    pthread_mutex_unlock(&g->lock);
    ll_tier_catalogue_unref(old);
}

/* Makes the registry and the tier catalogue follow the remote head, when it
 * is one they have not followed yet. */
int gitops_follow_head(ll_gitops *g)
{
    git_commit *head = NULL;
    git_tree *tree = NULL;
    char sha[GIT_OID_HEXSZ + 1];
    int error;

    if ((error = gitops_remote_head(&head, g)) < 0 || !head)
        return error;
    if (g->have_scanned && git_oid_equal(&g->scanned, git_commit_id(head))) {
        git_commit_free(head);
        return 0;
    }
    git_oid_tostr(sha, sizeof(sha), git_commit_id(head));
    if (git_commit_tree(&tree, head) < 0) {
        error = gitops_git_fail(-1, "git: cannot read the head tree");
    } else if ((error = ll_adopt_scan(NULL, g->repo, tree, sha, g->root, g->default_release,
                                      g->reg)) == 0) {
        git_oid_cpy(&g->scanned, git_commit_id(head));
        g->have_scanned = 1;
        gitops_publish_tiers(g, head);
    }
    git_tree_free(tree);
    git_commit_free(head);
    return error;
}

ll_tier_catalogue *ll_gitops_tiers(ll_gitops *g)
{
    ll_tier_catalogue *t;
    pthread_mutex_lock(&g->lock);
    t = ll_tier_catalogue_ref(g->tiers);
    pthread_mutex_unlock(&g->lock);
    return t;
}

/* seed.c - a new repository's layout, and the layout of an existing one.
 *
 * How it works.  A branch without the root folder is seeded with the
 * default GitOps layout embedded in the binary (lib/seed: tier templates,
 * tier folders, pool environments rendered from the environment
 * template), as one commit pushed without force.  For git-layout auto,
 * gitops_layout_of reads an existing repository's tier folders: shard
 * folders mean sharded, tenant files mean flat, nothing yet means sharded.
 *
 * Threads.  Run by ll_gitops_open, before the writer thread starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "gitops_int.h"
#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "overlay.h"

/* One tier folder: 1 when it holds a shard folder (two hex digits); *flat
 * set when it holds a file besides its kustomization. */
static int tier_layout(int *flat, const git_tree *tier)
{
    for (size_t k = 0; k < git_tree_entrycount(tier); k++) {
        const git_tree_entry *e = git_tree_entry_byindex(tier, k);
        const char *name = git_tree_entry_name(e);
        if (git_tree_entry_type(e) == GIT_OBJECT_TREE && strlen(name) == 2 &&
            strspn(name, "0123456789abcdef") == 2)
            return 1;
        if (git_tree_entry_type(e) == GIT_OBJECT_BLOB && strcmp(name, "kustomization.yaml"))
            *flat = 1;
    }
    return 0;
}

/* The layout an existing repository uses, for git-layout auto: sharded when
 * a tier folder holds a shard folder (two hex digits), flat when one holds a
 * file besides its kustomization (a tenant, or the reference's
 * dummy-configmap.yaml), else sharded, the layout of new repositories.
 * Returns 1 for sharded. */
int gitops_layout_of(ll_gitops *g, git_commit *head)
{
    git_tree *root = NULL, *tenants = NULL, *tier = NULL;
    git_tree_entry *entry = NULL;
    char path[1024];
    int flat = 0, sharded = 0;

    snprintf(path, sizeof(path), "%s/tenants", g->root);
    if (!head || git_commit_tree(&root, head) < 0 ||
        git_tree_entry_bypath(&entry, root, path) < 0 ||
        git_tree_entry_type(entry) != GIT_OBJECT_TREE ||
        git_tree_lookup(&tenants, g->repo, git_tree_entry_id(entry)) < 0)
        goto done;
    for (size_t i = 0; i < git_tree_entrycount(tenants) && !sharded; i++) {
        const git_tree_entry *t = git_tree_entry_byindex(tenants, i);
        if (git_tree_entry_type(t) != GIT_OBJECT_TREE ||
            git_tree_lookup(&tier, g->repo, git_tree_entry_id(t)) < 0)
            continue;
        sharded = tier_layout(&flat, tier);
        git_tree_free(tier);
        tier = NULL;
    }
done:
    git_tree_free(tier);
    git_tree_free(tenants);
    git_tree_entry_free(entry);
    git_tree_free(root);
    ll_log_info("msg=\"git layout\" layout=%s why=\"%s\"", sharded || !flat ? "sharded" : "flat",
                sharded ? "the repository has shard folders"
                : flat  ? "the repository has tenant files in tier folders"
                        : "no tenant file yet: the layout of new repositories");
    return sharded || !flat;
}

int gitops_seed(ll_gitops *g, git_commit *head)
{
    static const char prefix[] = "lib/seed/";
    ll_overlay ov = {0};
    git_tree *base = NULL;
    git_oid tree_id, commit_id;
    char path[1024], *env_tmpl = NULL, *kust = NULL;
    size_t env_len = 0, kust_len = 0;
    json_t *pools = NULL, *pool;
    int changed = 0, error = -1;
    size_t i;

    if (head && git_commit_tree(&base, head) < 0)
        return gitops_git_fail(-1, "git: cannot read the head tree");
    ov.repo = g->repo;
    ov.base = base;
    for (const ll_embedded_file *f = ll_embedded_files; f->path; f++) {
        if (strncmp(f->path, prefix, sizeof(prefix) - 1) != 0)
            continue;
        char *copy = malloc(f->size + 1);
        if (!copy)
            goto done;
        memcpy(copy, f->data, f->size + 1);
        snprintf(path, sizeof(path), "%s/%s", g->root, f->path + sizeof(prefix) - 1);
        if ((error = ll_overlay_put(&ov, path, copy, f->size)) < 0)
            goto done;
    }
    /* Render the pool environments the pooled-envs kustomization lists. */
    snprintf(path, sizeof(path), "%s/tier-templates/basic_env_template.yaml", g->root);
    if ((error = ll_overlay_read(&env_tmpl, &env_len, &ov, path)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
    if ((error = ll_overlay_read(&kust, &kust_len, &ov, path)) < 0 ||
        (error = ll_kustomize_resources(&pools, kust, kust_len)) < 0)
        goto done;
    json_array_foreach(pools, i, pool)
    {
        char name[256], *out = NULL;
        size_t out_len;
        const char *file = json_string_value(pool);
        size_t n = strlen(file);
        if (n < 6 || n - 5 >= sizeof(name) || strcmp(file + n - 5, ".yaml") != 0)
            continue;
        memcpy(name, file, n - 5);
        name[n - 5] = '\0';
        ll_render_input in = {NULL, NULL, g->default_release, name, NULL};
        if ((error = ll_template_render(&out, &out_len, env_tmpl, env_len, &in)) < 0)
            goto done;
        snprintf(path, sizeof(path), "%s/pooled-envs/%s", g->root, file);
        if ((error = ll_overlay_put(&ov, path, out, out_len)) < 0)
            goto done;
    }
    if ((error = ll_overlay_write(&tree_id, &changed, &ov)) < 0)
        goto done;
    if ((error = gitops_make_commit(
             &commit_id, g, &tree_id, head, g->author_name, g->author_email,
             "Seed the GitOps layout (tiers basic, premium, advanced; pool-1)\n")) < 0)
        goto done;
    if ((error = gitops_push(g, &commit_id)) < 0)
        goto done;
    ll_log_info("msg=\"seeded the GitOps repository\" url=%s branch=%s root=%s", g->shown_url,
                g->branch, g->root);
done:
    json_decref(pools);
    free(env_tmpl);
    free(kust);
    ll_overlay_free(&ov);
    git_tree_free(base);
    return error;
}

/* apply.c - applying one operation to an overlay of the repository.
 *
 * How it works.  Each kind of operation edits files of the overlay (the
 * remote head's tree with the batch's changes on top, overlay.c): an
 * onboarding or update renders the tier's template for the tenant and
 * writes its file (put_tenant), an offboarding removes it (remove_tenant),
 * a tier change writes or removes the tier's template and folder
 * (put_tier, delete_tier), a rollout edits the chart version of files in
 * place (apply_rollout).  Kustomization entries are not edited here: each
 * operation records them as intents ({path: {entry: add?}}) and the batch
 * edits every kustomization once (batch.c).  Applying is idempotent (a
 * file that already matches is not written again), so a replay after a
 * crash changes nothing.  The commit message is made here too: one line
 * per operation and the Landlord-Operations trailer.
 *
 * Threads.  Called on the thread that owns the repository; the overlay
 * and the intents belong to the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <git2.h>
#include <openssl/evp.h>

#include "gitops_int.h"
#include "landlord/error.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "overlay.h"

/* Records that entry must be in (add) or out of the kustomization at path.
 * The edits of a whole batch are made at once, one parse per file
 * (apply_kustomizations), so a batch costs one edit of each tier's list
 * however long the list is. */
static int kustomization_change(json_t *intents, const char *path, const char *entry, int add)
{
    json_t *entries = json_object_get(intents, path);
    if (!entries && json_object_set_new(intents, path, entries = json_object()) < 0)
        return ll_error_set(-1, "out of memory");
    return json_object_set_new(entries, entry, json_boolean(add)) < 0
               ? ll_error_set(-1, "out of memory")
               : 0;
}

#define SHARD_KUSTOMIZATION                                                                        \
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"

void ll_tenant_file_path(char *out, size_t cap, const char *root, int sharded, const char *tier,
                         const char *id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!sharded || !EVP_Digest(id, strlen(id), md, &n, EVP_sha256(), NULL) || n < 1) {
        snprintf(out, cap, "%s/tenants/%s/%s.yaml", root, tier, id);
        return;
    }
    snprintf(out, cap, "%s/tenants/%s/%02x/%s.yaml", root, tier, md[0], id);
}

/* Where tenant's file in tier is: the configured layout's path when the file
 * is there or nowhere, else the other layout's (a flat file adopted while
 * the layout is sharded stays where it is).  dir gets its folder. */
static void tenant_location(char *path, size_t cap, char *dir, size_t dir_cap, ll_gitops *g,
                            ll_overlay *ov, const char *tier, const char *tenant)
{
    ll_tenant_file_path(path, cap, g->root, g->sharded, tier, tenant);
    if (!ll_overlay_exists(ov, path)) {
        ll_tenant_file_path(path, cap, g->root, !g->sharded, tier, tenant);
        if (!ll_overlay_exists(ov, path))
            ll_tenant_file_path(path, cap, g->root, g->sharded, tier, tenant);
    }
    snprintf(dir, dir_cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
}

/* Nothing is rendered from a template that breaks the tier policy, and no
 * tenant's values may set what the template derives from the tenant's
 * identity.  The API checked both against the catalogue; the template read
 * here may be newer (a foreign writer), so it is checked again unless it is
 * the catalogue's own text, whose verdict stands.  *why is the class of a
 * failure. */
static int check_tier_template(ll_gitops *g, const char *tier, const char *tmpl, size_t len,
                               const json_t *values, const char **why)
{
    json_t *cat = ll_gitops_tiers(g), *locked = NULL;
    const json_t *known = ll_tiers_find(cat, tier);
    const json_t *text = json_object_get(known, "template");
    char msg[LL_ERROR_MSG_MAX];
    const char *rule = NULL;
    int error;

    *why = "conflict";
    if (text && json_string_length(text) == len &&
        memcmp(json_string_value(text), tmpl, len) == 0) {
        if ((error = ll_tiers_usable(known)) == 0 &&
            (error = ll_tiers_check_values(known, values)) < 0)
            *why = "render-failed";
        json_decref(cat);
        return error;
    }
    ll_tier_policy policy = {g->tier_kinds, g->flux_namespace, json_object_get(cat, "pools")};
    if ((error = ll_template_check_policy(&rule, tmpl, len, &policy)) < 0 ||
        (error = ll_template_locked_values(&locked, tmpl, len, policy.pools)) < 0) {
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        error = ll_error_set(LL_ECONFLICT,
                             "tier '%s' breaks the tier policy (%s), so its tenants are not "
                             "rendered until its template is fixed: %s",
                             tier, rule ? rule : "template", msg);
    } else if ((error = ll_template_check_values(locked, values)) < 0) {
        *why = "render-failed";
    }
    json_decref(locked);
    json_decref(cat);
    return error;
}

/* Renders the tenant of op into tier and writes it there, with its
 * kustomization entry.  A different file already there is a conflict unless
 * replace (an update re-renders its own file). */
static int put_tenant(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op,
                      const char *tier, int replace, const char **why)
{
    const char *tenant = op_str(op, "tenant");
    const json_t *payload = json_object_get(op, "payload");
    char path[1024], dir[1000], entry[128], *tmpl = NULL, *rendered = NULL, *existing = NULL;
    size_t tmpl_len = 0, rendered_len = 0, existing_len = 0;
    /* What the file carries: the exact chart version chosen for the tenant
     * (chart_version), else its release as a range. */
    const char *version = json_string_value(json_object_get(payload, "chart_version"));
    ll_render_input in = {
        tenant, tier, version ? version : json_string_value(json_object_get(payload, "release")),
        NULL, json_object_get(payload, "values")};
    int error;

    *why = "conflict";
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if ((error = ll_overlay_read(&tmpl, &tmpl_len, ov, path)) < 0)
        goto done;
    if (!tmpl) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' has no template at %s", tier, path);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    if (!ll_overlay_exists(ov, path)) {
        error = ll_error_set(
            LL_ECONFLICT, "the tier folder %s/tenants/%s has no kustomization.yaml", g->root, tier);
        ll_error_hint("restore the tier folder in the repository");
        goto done;
    }
    if ((error = check_tier_template(g, tier, tmpl, tmpl_len, in.values, why)) < 0)
        goto done;
    if ((error = ll_template_render(&rendered, &rendered_len, tmpl, tmpl_len, &in)) < 0) {
        *why = "render-failed";
        goto done;
    }
    tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, tenant);
    if ((error = ll_overlay_read(&existing, &existing_len, ov, path)) < 0)
        goto done;
    if (existing && (existing_len != rendered_len || memcmp(existing, rendered, rendered_len))) {
        if (!replace) {
            error = ll_error_set(LL_ECONFLICT,
                                 "%s exists in the repository with other content (made by hand?)",
                                 path);
            ll_error_hint("remove or adopt the file, or pick another id");
            goto done;
        }
    }
    if (!existing || existing_len != rendered_len || memcmp(existing, rendered, rendered_len)) {
        error = ll_overlay_put(ov, path, rendered, rendered_len);
        rendered = NULL;
        if (error < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s", g->root, tier);
    if (strcmp(dir, path) != 0) {
        /* A shard: its own kustomization, listed by the tier's. */
        const char *shard = dir + strlen(path) + 1;
        snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
        if (!ll_overlay_exists(ov, path)) {
            char *text = strdup(SHARD_KUSTOMIZATION);
            if (!text || (error = ll_overlay_put(ov, path, text, strlen(text))) < 0) {
                error = text ? error : ll_error_set(-1, "out of memory");
                goto done;
            }
        }
        snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
        if ((error = kustomization_change(intents, path, shard, 1)) < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    error = kustomization_change(intents, path, entry, 1);
done:
    free(tmpl);
    free(rendered);
    free(existing);
    return error;
}

/* Removes the tenant's file from tier and its kustomization entry; absent
 * already is fine. */
static int remove_tenant(ll_gitops *g, ll_overlay *ov, json_t *intents, const char *tenant,
                         const char *tier)
{
    char path[1024], dir[1000], entry[128], *existing = NULL;
    size_t len = 0;
    int error;

    tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, tenant);
    if ((error = ll_overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (existing) {
        free(existing);
        if ((error = ll_overlay_put(ov, path, NULL, 0)) < 0)
            return error;
    }
    snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
    if (!ll_overlay_exists(ov, path))
        return 0;
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    return kustomization_change(intents, path, entry, 0);
}

/* Writes a tier's template (from the operation's payload), makes its
 * tenants folder with an empty kustomization when it has none, and lists
 * the folder in tenants/kustomization.yaml. */
static int put_tier(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op)
{
    const char *tier = op_str(op, "tier");
    const json_t *tmpl = json_object_get(json_object_get(op, "payload"), "template");
    char path[1024], *existing = NULL, *copy = NULL;
    size_t len = 0;
    int error;

    if (!json_is_string(tmpl))
        return ll_error_set(LL_EINVALID, "tier operation without a template");
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", g->root);
    if (!ll_overlay_exists(ov, path)) {
        ll_error_set(LL_ECONFLICT, "%s is missing: the repository has no tenants folder", path);
        ll_error_hint("restore the GitOps layout in the repository");
        return LL_ECONFLICT;
    }
    if ((error = kustomization_change(intents, path, tier, 1)) < 0)
        return error;
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if ((error = ll_overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (!existing || len != json_string_length(tmpl) ||
        memcmp(existing, json_string_value(tmpl), len) != 0) {
        if (!(copy = malloc(json_string_length(tmpl) + 1))) {
            free(existing);
            return ll_error_set(-1, "out of memory");
        }
        memcpy(copy, json_string_value(tmpl), json_string_length(tmpl) + 1);
        if ((error = ll_overlay_put(ov, path, copy, json_string_length(tmpl))) < 0) {
            free(existing);
            return error;
        }
    }
    free(existing);
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    if (!ll_overlay_exists(ov, path)) {
        char *text = strdup(SHARD_KUSTOMIZATION);
        if (!text)
            return ll_error_set(-1, "out of memory");
        if ((error = ll_overlay_put(ov, path, text, strlen(text))) < 0)
            return error;
    }
    return 0;
}

typedef struct folder_walk {
    const char *prefix; /* the tier folder, for paths */
    json_t *files;      /* repository paths of the blobs under it */
} folder_walk;

static int on_folder_entry(const char *root, const git_tree_entry *e, void *payload)
{
    folder_walk *w = payload;
    char path[1200];
    if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
        return 0;
    snprintf(path, sizeof(path), "%s/%s%s", w->prefix, root, git_tree_entry_name(e));
    json_array_append_new(w->files, json_string(path));
    return 0;
}

/* Removes a tier: its template, its tenants folder (which may only hold its
 * kustomization and empty shard kustomizations: a tenant file left there is
 * a conflict) and its entry in tenants/kustomization.yaml.  Absent already
 * is fine (a replay after a crash). */
static int delete_tier(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op)
{
    const char *tier = op_str(op, "tier");
    char dir[1024], path[1024];
    git_tree_entry *entry = NULL;
    git_tree *tree = NULL;
    folder_walk w = {dir, json_array()};
    json_t *file;
    size_t i;
    int error = 0;

    snprintf(dir, sizeof(dir), "%s/tenants/%s", g->root, tier);
    if (ov->base && git_tree_entry_bypath(&entry, ov->base, dir) == 0 &&
        git_tree_entry_type(entry) == GIT_OBJECT_TREE &&
        git_tree_lookup(&tree, g->repo, git_tree_entry_id(entry)) == 0 &&
        git_tree_walk(tree, GIT_TREEWALK_PRE, on_folder_entry, &w) < 0) {
        error = gitops_git_fail(-1, "git: cannot list the tier folder");
        goto done;
    }
    json_array_foreach(w.files, i, file)
    {
        const char *f = json_string_value(file), *name = strrchr(f, '/');
        char *text = NULL;
        size_t len = 0;
        json_t *list = NULL;
        int empty = 0;
        if (name && strcmp(name + 1, "kustomization.yaml") == 0) {
            if (strlen(f) == strlen(dir) + strlen("/kustomization.yaml"))
                empty = 1; /* the tier's own list goes with the folder */
            else if (ll_overlay_read(&text, &len, ov, f) == 0 && text &&
                     ll_kustomize_resources(&list, text, len) == 0)
                empty = json_array_size(list) == 0;
        }
        free(text);
        json_decref(list);
        if (!empty) {
            error = ll_error_set(LL_ECONFLICT, "tier folder %s still holds %s", dir, f);
            ll_error_hint("offboard or move the tenants of tier '%s' first", tier);
            goto done;
        }
    }
    json_array_foreach(w.files, i, file)
    {
        if ((error = ll_overlay_put(ov, json_string_value(file), NULL, 0)) < 0)
            goto done;
    }
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if (ll_overlay_exists(ov, path) && (error = ll_overlay_put(ov, path, NULL, 0)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", g->root);
    if (ll_overlay_exists(ov, path))
        error = kustomization_change(intents, path, tier, 0);
done:
    json_decref(w.files);
    git_tree_free(tree);
    git_tree_entry_free(entry);
    return error;
}

/* Sets the chart version of the file at path to version, in place (only
 * that field changes); a missing file is left alone. */
static int set_version(ll_overlay *ov, const char *path, const char *version)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    int changed = 0, error;

    if ((error = ll_overlay_read(&text, &len, ov, path)) < 0 || !text)
        return error;
    if ((error = ll_template_set_chart_version(&out, &out_len, &changed, text, len, version)) < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        ll_error_set(LL_ECONFLICT, "%s: %s", path, why);
    } else if (changed) {
        error = ll_overlay_put(ov, path, out, out_len);
        out = NULL;
    }
    free(text);
    free(out);
    return error;
}

/* A rollout operation: every tenant of a wave (or every tenant a rollback
 * returns) and the pool environments moving with it get their chart
 * version, as in-place edits of that one field, in one commit.  A tenant
 * whose file vanished is left out (it reads drifted). */
static int apply_rollout(ll_gitops *g, ll_overlay *ov, const json_t *op)
{
    const json_t *payload = json_object_get(op, "payload"), *t;
    char path[1024], dir[1000];
    size_t i;
    int error;

    json_array_foreach(json_object_get(payload, "tenants"), i, t)
    {
        const char *id = op_str(t, "id"), *tier = op_str(t, "tier"), *at = op_str(t, "path");
        if (!id || !tier || !op_str(t, "to") || ll_validate_tenant_id(id) < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad tenant");
        if (at)
            snprintf(path, sizeof(path), "%s", at);
        else
            tenant_location(path, sizeof(path), dir, sizeof(dir), g, ov, tier, id);
        if ((error = set_version(ov, path, op_str(t, "to"))) < 0)
            return error;
    }
    json_array_foreach(json_object_get(payload, "pools"), i, t)
    {
        const char *name = op_str(t, "name");
        if (!name || !op_str(t, "to") || ll_validate_label(name, 63, "pool") < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad pool");
        snprintf(path, sizeof(path), "%s/pooled-envs/%s.yaml", g->root, name);
        if ((error = set_version(ov, path, op_str(t, "to"))) < 0)
            return error;
    }
    return 0;
}

int gitops_apply_op(ll_gitops *g, ll_overlay *ov, json_t *intents, const json_t *op,
                    const char **why)
{
    const char *kind = op_str(op, "kind"), *tier = op_str(op, "tier");
    *why = "conflict";
    if (strcmp(kind, "tier_put") == 0)
        return put_tier(g, ov, intents, op);
    if (strcmp(kind, "tier_delete") == 0)
        return delete_tier(g, ov, intents, op);
    if (strcmp(kind, "rollout") == 0)
        return apply_rollout(g, ov, op);
    if (strcmp(kind, "onboard") == 0)
        return put_tenant(g, ov, intents, op, tier, 0, why);
    if (strcmp(kind, "offboard") == 0)
        return remove_tenant(g, ov, intents, op_str(op, "tenant"), tier);
    /* update: leave the old tier folder first when the tier changes */
    const char *from =
        json_string_value(json_object_get(json_object_get(op, "payload"), "from_tier"));
    int error;
    if (from && strcmp(from, tier) != 0 &&
        (error = remove_tenant(g, ov, intents, op_str(op, "tenant"), from)) < 0)
        return error;
    return put_tenant(g, ov, intents, op, tier, 1, why);
}

static void describe(ll_buf *b, const json_t *op)
{
    const char *kind = op_str(op, "kind"), *tenant = op_str(op, "tenant"),
               *tier = op_str(op, "tier");
    const json_t *payload = json_object_get(op, "payload");
    const char *from = json_string_value(json_object_get(payload, "from_tier"));
    if (strcmp(kind, "rollout") == 0) {
        long long rollout = (long long)json_integer_value(json_object_get(payload, "rollout"));
        size_t n = json_array_size(json_object_get(payload, "tenants")),
               pools = json_array_size(json_object_get(payload, "pools"));
        const char *version = op_str(payload, "version");
        if (strcmp(op_str(payload, "action") ? op_str(payload, "action") : "", "rollback") == 0)
            ll_buf_printf(b,
                          "Roll back rollout %lld of %s: %zu tenant(s)%s to their previous "
                          "version",
                          rollout, version ? version : "?", n, pools ? " and pools" : "");
        else
            ll_buf_printf(b, "Roll out %s, rollout %lld wave %lld: %zu tenant(s)%s",
                          version ? version : "?", rollout,
                          (long long)json_integer_value(json_object_get(payload, "wave")), n,
                          pools ? " and pools" : "");
        return;
    }
    if (strcmp(kind, "tier_put") == 0)
        ll_buf_printf(b, "%s tier %s",
                      json_is_true(json_object_get(payload, "replace")) ? "Replace" : "Add", tier);
    else if (strcmp(kind, "tier_delete") == 0)
        ll_buf_printf(b, "Delete tier %s", tier);
    else if (strcmp(kind, "onboard") == 0)
        ll_buf_printf(b, "Onboard tenant %s (%s)", tenant, tier);
    else if (strcmp(kind, "offboard") == 0)
        ll_buf_printf(b, "Offboard tenant %s (%s)", tenant, tier);
    else if (from && strcmp(from, tier) != 0)
        ll_buf_printf(b, "Move tenant %s (%s -> %s)", tenant, from, tier);
    else
        ll_buf_printf(b, "Update tenant %s (%s)", tenant, tier);
}

/* "Onboard tenant acme (premium)", or a summary line and one line per
 * operation; then the trailer naming the operations. */
void gitops_commit_message(ll_buf *msg, const json_t *applied)
{
    size_t i, n = json_array_size(applied);
    json_t *op;

    if (n == 1) {
        describe(msg, json_array_get(applied, 0));
        ll_buf_adds(msg, "\n");
    } else {
        ll_buf_printf(msg, "Apply %zu tenant operations\n\n", n);
        json_array_foreach(applied, i, op)
        {
            ll_buf_adds(msg, "- ");
            describe(msg, op);
            ll_buf_adds(msg, "\n");
        }
    }
    ll_buf_adds(msg, "\nLandlord-Operations:");
    json_array_foreach(applied, i, op)
        ll_buf_printf(msg, " %lld", (long long)json_integer_value(json_object_get(op, "id")));
    ll_buf_adds(msg, "\n");
}

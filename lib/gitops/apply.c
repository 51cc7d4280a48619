/* apply.c - applying one operation to an overlay of the repository.
 *
 * How it works.  Each kind of operation edits files of the overlay (the
 * remote head's tree with the batch's changes on top, overlay.c): an
 * onboarding or update renders the tier's template for the tenant and
 * writes its file (put_tenant), an offboarding removes it (remove_tenant),
 * a tier change writes or removes the tier's template and folder
 * (put_tier, delete_tier), a rollout edits the chart version of files in
 * place (apply_rollout).  Kustomization entries are not edited here: each
 * operation records them as intents (path, entry, in or out) and the batch
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

#include "apply.h"
#include "gitops_int.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/kustomize.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "overlay.h"

/* Records that entry must be in (add) or out of the kustomization at path
 * (a later call for the same entry wins).  The edits of a whole batch are
 * made at once, one parse per file (batch.c), so a batch costs one edit of
 * each tier's list however long the list is. */
static int kustomization_change(ll_kust_intents *intents, const char *path, const char *entry,
                                int add)
{
    ll_kust_intent *in;

    for (size_t i = 0; i < intents->n; i++) {
        in = &intents->v[i];
        if (strcmp(in->path, path) == 0 && strcmp(in->entry, entry) == 0) {
            in->add = add;
            return 0;
        }
    }
    if (ll_grow((void **)&intents->v, &intents->cap, intents->n, sizeof(*intents->v)) < 0)
        return -1;
    in = &intents->v[intents->n];
    if (!(in->path = strdup(path)) || !(in->entry = strdup(entry))) {
        free(in->path);
        return ll_error_set(-1, "out of memory");
    }
    in->add = add;
    intents->n++;
    return 0;
}

void ll_kust_intents_clear(ll_kust_intents *intents)
{
    for (size_t i = 0; i < intents->n; i++) {
        free(intents->v[i].path);
        free(intents->v[i].entry);
    }
    intents->n = 0;
}

void ll_kust_intents_free(ll_kust_intents *intents)
{
    if (!intents)
        return;
    ll_kust_intents_clear(intents);
    free(intents->v);
    memset(intents, 0, sizeof(*intents));
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
static void tenant_location(char *path, size_t cap, char *dir, size_t dir_cap,
                            const ll_apply_ctx *ctx, ll_overlay *ov, const char *tier,
                            const char *tenant)
{
    ll_tenant_file_path(path, cap, ctx->root, ctx->sharded, tier, tenant);
    if (!ll_overlay_exists(ov, path)) {
        ll_tenant_file_path(path, cap, ctx->root, !ctx->sharded, tier, tenant);
        if (!ll_overlay_exists(ov, path))
            ll_tenant_file_path(path, cap, ctx->root, ctx->sharded, tier, tenant);
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
static int check_tier_template(const ll_apply_ctx *ctx, const char *tier, const char *tmpl,
                               size_t len, const json_t *values, ll_op_failure *why)
{
    const ll_tier_catalogue *cat = ctx->tiers;
    json_t *locked = NULL;
    const ll_tier *known = ll_tiers_find(cat, tier);
    char msg[LL_ERROR_MSG_MAX];
    const char *rule = NULL;
    int error;

    *why = LL_OP_FAILURE_CONFLICT;
    if (known && known->template_len == len && memcmp(known->template_text, tmpl, len) == 0) {
        if ((error = ll_tiers_usable(known)) == 0 &&
            (error = ll_tiers_check_values(known, values)) < 0)
            *why = LL_OP_FAILURE_RENDER;
        return error;
    }
    ll_tier_policy policy = ll_tiers_policy(cat, ctx->tier_kinds, ctx->flux_namespace);
    if ((error = ll_template_check_policy(&rule, tmpl, len, &policy)) < 0 ||
        (error = ll_template_locked_values(&locked, tmpl, len, policy.pools, policy.n_pools)) < 0) {
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        error = ll_error_set(LL_ECONFLICT,
                             "tier '%s' breaks the tier policy (%s), so its tenants are not "
                             "rendered until its template is fixed: %s",
                             tier, rule ? rule : "template", msg);
    } else if ((error = ll_template_check_values(locked, values)) < 0) {
        *why = LL_OP_FAILURE_RENDER;
    }
    json_decref(locked);
    return error;
}

/* An empty kustomization at path when there is none (a new tier or shard
 * folder). */
static int ensure_kustomization(ll_overlay *ov, const char *path)
{
    char *text;
    if (ll_overlay_exists(ov, path))
        return 0;
    if (!(text = strdup(SHARD_KUSTOMIZATION)))
        return ll_error_set(-1, "out of memory");
    return ll_overlay_put(ov, path, text, strlen(text));
}

/* The kustomization entries of tenant's file in dir, a folder of tier: in
 * the tier's list, or in a shard's (made when new), itself in the tier's. */
static int list_tenant(const ll_apply_ctx *ctx, ll_overlay *ov, ll_kust_intents *intents,
                       const char *dir, const char *tier, const char *tenant)
{
    char path[1024], entry[128];
    int error;

    snprintf(path, sizeof(path), "%s/tenants/%s", ctx->root, tier);
    if (strcmp(dir, path) != 0) {
        const char *shard = dir + strlen(path) + 1;
        snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
        if ((error = ensure_kustomization(ov, path)) < 0)
            return error;
        snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", ctx->root, tier);
        if ((error = kustomization_change(intents, path, shard, 1)) < 0)
            return error;
    }
    snprintf(path, sizeof(path), "%s/kustomization.yaml", dir);
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    return kustomization_change(intents, path, entry, 1);
}

/* Renders the tenant of op into tier and writes it there, with its
 * kustomization entry.  A different file already there is a conflict unless
 * replace (an update re-renders its own file). */
static int put_tenant(const ll_apply_ctx *ctx, ll_overlay *ov, ll_kust_intents *intents,
                      const ll_operation *op, int replace, ll_op_failure *why)
{
    const char *tenant = op->tenant, *tier = op->tier;
    char path[1024], dir[1000], *tmpl = NULL, *rendered = NULL, *existing = NULL;
    size_t tmpl_len = 0, rendered_len = 0, existing_len = 0;
    /* What the file carries: the exact chart version chosen for the tenant
     * (chart_version), else its release as a range. */
    ll_render_input in = {tenant, tier, op->t.chart_version ? op->t.chart_version : op->t.release,
                          NULL, op->t.values};
    int error;

    *why = LL_OP_FAILURE_CONFLICT;
    ll_tier_template_path(path, sizeof(path), ctx->root, tier);
    if ((error = ll_overlay_read(&tmpl, &tmpl_len, ov, path)) < 0)
        goto done;
    if (!tmpl) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' has no template at %s", tier, path);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", ctx->root, tier);
    if (!ll_overlay_exists(ov, path)) {
        error =
            ll_error_set(LL_ECONFLICT, "the tier folder %s/tenants/%s has no kustomization.yaml",
                         ctx->root, tier);
        ll_error_hint("restore the tier folder in the repository");
        goto done;
    }
    if ((error = check_tier_template(ctx, tier, tmpl, tmpl_len, in.values, why)) < 0)
        goto done;
    if ((error = ll_template_render(&rendered, &rendered_len, tmpl, tmpl_len, &in)) < 0) {
        *why = LL_OP_FAILURE_RENDER;
        goto done;
    }
    tenant_location(path, sizeof(path), dir, sizeof(dir), ctx, ov, tier, tenant);
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
    error = list_tenant(ctx, ov, intents, dir, tier, tenant);
done:
    free(tmpl);
    free(rendered);
    free(existing);
    return error;
}

/* Removes the tenant's file from tier and its kustomization entry; absent
 * already is fine. */
static int remove_tenant(const ll_apply_ctx *ctx, ll_overlay *ov, ll_kust_intents *intents,
                         const char *tenant, const char *tier)
{
    char path[1024], dir[1000], entry[128], *existing = NULL;
    size_t len = 0;
    int error;

    tenant_location(path, sizeof(path), dir, sizeof(dir), ctx, ov, tier, tenant);
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
static int put_tier(const ll_apply_ctx *ctx, ll_overlay *ov, ll_kust_intents *intents,
                    const ll_operation *op)
{
    const char *tier = op->tier, *tmpl = op->tier_op.template_text;
    char path[1024], *existing = NULL, *copy = NULL;
    size_t len = 0, tmpl_len = tmpl ? strlen(tmpl) : 0;
    int error;

    if (!tmpl)
        return ll_error_set(LL_EINVALID, "tier operation without a template");
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", ctx->root);
    if (!ll_overlay_exists(ov, path)) {
        ll_error_set(LL_ECONFLICT, "%s is missing: the repository has no tenants folder", path);
        ll_error_hint("restore the GitOps layout in the repository");
        return LL_ECONFLICT;
    }
    if ((error = kustomization_change(intents, path, tier, 1)) < 0)
        return error;
    ll_tier_template_path(path, sizeof(path), ctx->root, tier);
    if ((error = ll_overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (!existing || len != tmpl_len || memcmp(existing, tmpl, len) != 0) {
        if (!(copy = strdup(tmpl))) {
            free(existing);
            return ll_error_set(-1, "out of memory");
        }
        if ((error = ll_overlay_put(ov, path, copy, tmpl_len)) < 0) {
            free(existing);
            return error;
        }
    }
    free(existing);
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", ctx->root, tier);
    return ensure_kustomization(ov, path);
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
static int delete_tier(const ll_apply_ctx *ctx, ll_overlay *ov, ll_kust_intents *intents,
                       const ll_operation *op)
{
    const char *tier = op->tier;
    char dir[1024], path[1024];
    git_tree_entry *entry = NULL;
    git_tree *tree = NULL;
    folder_walk w = {dir, json_array()};
    json_t *file;
    size_t i;
    int error = 0;

    snprintf(dir, sizeof(dir), "%s/tenants/%s", ctx->root, tier);
    if (ov->base && git_tree_entry_bypath(&entry, ov->base, dir) == 0 &&
        git_tree_entry_type(entry) == GIT_OBJECT_TREE &&
        git_tree_lookup(&tree, ov->repo, git_tree_entry_id(entry)) == 0 &&
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
    ll_tier_template_path(path, sizeof(path), ctx->root, tier);
    if (ll_overlay_exists(ov, path) && (error = ll_overlay_put(ov, path, NULL, 0)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/tenants/kustomization.yaml", ctx->root);
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
static int apply_rollout(const ll_apply_ctx *ctx, ll_overlay *ov, const ll_operation *op)
{
    const ll_op_rollout_payload *ro = &op->rollout;
    char path[1024], dir[1000];
    int error;

    for (size_t i = 0; i < ro->n_tenants; i++) {
        const ll_op_move *m = &ro->tenants[i];
        if (!m->id || !m->tier || !m->to || ll_validate_tenant_id(m->id) < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad tenant");
        if (m->path)
            snprintf(path, sizeof(path), "%s", m->path);
        else
            tenant_location(path, sizeof(path), dir, sizeof(dir), ctx, ov, m->tier, m->id);
        if ((error = set_version(ov, path, m->to)) < 0)
            return error;
    }
    for (size_t i = 0; i < ro->n_pools; i++) {
        const ll_op_pool_move *m = &ro->pools[i];
        if (!m->name || !m->to || ll_validate_label(m->name, 63, "pool") < 0)
            return ll_error_set(LL_EINVALID, "rollout operation names a bad pool");
        snprintf(path, sizeof(path), "%s/pooled-envs/%s.yaml", ctx->root, m->name);
        if ((error = set_version(ov, path, m->to)) < 0)
            return error;
    }
    return 0;
}

int ll_apply_op(ll_op_failure *why, const ll_apply_ctx *ctx, ll_overlay *ov,
                ll_kust_intents *intents, const ll_operation *op)
{
    int error;

    *why = LL_OP_FAILURE_CONFLICT;
    switch (op->kind) {
    case LL_OP_TIER_PUT:
        return put_tier(ctx, ov, intents, op);
    case LL_OP_TIER_DELETE:
        return delete_tier(ctx, ov, intents, op);
    case LL_OP_ROLLOUT:
        return apply_rollout(ctx, ov, op);
    case LL_OP_ONBOARD:
        return put_tenant(ctx, ov, intents, op, 0, why);
    case LL_OP_OFFBOARD:
        return remove_tenant(ctx, ov, intents, op->tenant, op->tier);
    case LL_OP_UPDATE:
        /* Leave the old tier folder first when the tier changes. */
        if (op->t.from_tier && strcmp(op->t.from_tier, op->tier) != 0 &&
            (error = remove_tenant(ctx, ov, intents, op->tenant, op->t.from_tier)) < 0)
            return error;
        return put_tenant(ctx, ov, intents, op, 1, why);
    }
    return ll_error_set(LL_EINVALID, "unknown operation kind");
}

static void describe_rollout(ll_buf *b, const ll_op_rollout_payload *ro)
{
    const char *version = ro->version ? ro->version : "?";
    const char *pools = ro->n_pools ? " and pools" : "";

    if (ro->action == LL_OP_ROLLOUT_ROLLBACK)
        ll_buf_printf(b,
                      "Roll back rollout %lld of %s: %zu tenant(s)%s to their previous "
                      "version",
                      ro->rollout, version, ro->n_tenants, pools);
    else
        ll_buf_printf(b, "Roll out %s, rollout %lld wave %lld: %zu tenant(s)%s", version,
                      ro->rollout, ro->wave, ro->n_tenants, pools);
}

static void describe(ll_buf *b, const ll_operation *op)
{
    const char *tenant = op->tenant, *tier = op->tier, *from = op->t.from_tier;

    switch (op->kind) {
    case LL_OP_ROLLOUT:
        describe_rollout(b, &op->rollout);
        break;
    case LL_OP_TIER_PUT:
        ll_buf_printf(b, "%s tier %s", op->tier_op.replace ? "Replace" : "Add", tier);
        break;
    case LL_OP_TIER_DELETE:
        ll_buf_printf(b, "Delete tier %s", tier);
        break;
    case LL_OP_ONBOARD:
        ll_buf_printf(b, "Onboard tenant %s (%s)", tenant, tier);
        break;
    case LL_OP_OFFBOARD:
        ll_buf_printf(b, "Offboard tenant %s (%s)", tenant, tier);
        break;
    case LL_OP_UPDATE:
        if (from && strcmp(from, tier) != 0)
            ll_buf_printf(b, "Move tenant %s (%s -> %s)", tenant, from, tier);
        else
            ll_buf_printf(b, "Update tenant %s (%s)", tenant, tier);
        break;
    }
}

void ll_apply_commit_message(ll_buf *msg, const ll_operation *const *applied, size_t n)
{
    if (n == 1) {
        describe(msg, applied[0]);
        ll_buf_adds(msg, "\n");
    } else {
        ll_buf_printf(msg, "Apply %zu tenant operations\n\n", n);
        for (size_t i = 0; i < n; i++) {
            ll_buf_adds(msg, "- ");
            describe(msg, applied[i]);
            ll_buf_adds(msg, "\n");
        }
    }
    ll_buf_adds(msg, "\nLandlord-Operations:");
    for (size_t i = 0; i < n; i++)
        ll_buf_printf(msg, " %lld", applied[i]->id);
    ll_buf_adds(msg, "\n");
}

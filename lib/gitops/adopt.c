/* adopt.c - the registry follows the repository.
 *
 * Git holds the desired state.  A scan lists the tier folders' tenant files
 * (tree entries only: cheap even at 100k tenants), compares them with the
 * registry's index, and reads and parses only the files of tenants it is
 * about to adopt.  Tenants landlord is working on (sync pending) are left
 * alone: their files are about to change.  Runs on the git writer thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adopt.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/validate.h"
#include "overlay.h"

json_t *ll_values_diff(const json_t *base, const json_t *actual)
{
    if (json_is_object(base) && json_is_object(actual)) {
        json_t *out = json_object(), *v;
        const char *key;
        json_object_foreach((json_t *)actual, key, v)
        {
            json_t *b = json_object_get(base, key);
            json_t *d = b ? ll_values_diff(b, v) : json_deep_copy(v);
            if (d)
                json_object_set_new(out, key, d);
        }
        json_object_foreach((json_t *)base, key, v)
        {
            if (!json_object_get(actual, key))
                json_object_set_new(out, key, json_null());
        }
        if (json_object_size(out) == 0) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    return json_equal((json_t *)base, (json_t *)actual) ? NULL : json_deep_copy(actual);
}

static const json_t *helm_release(const json_t *docs)
{
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        if (kind && strcmp(kind, "HelmRelease") == 0)
            return doc;
    }
    return NULL;
}

static const json_t *spec_values(const json_t *hr)
{
    const json_t *v = json_object_get(json_object_get(hr, "spec"), "values");
    return json_is_object(v) ? v : NULL;
}

/* The release a chart version constraint stands for: "1.2.x" is "1.2",
 * "1.2.3" is itself; anything else falls back to def. */
static void release_of(char *out, size_t cap, const char *version, const char *def)
{
    size_t n = version ? strlen(version) : 0;
    snprintf(out, cap, "%s", version ? version : "");
    if (n > 2 && strcmp(version + n - 2, ".x") == 0) {
        out[n - 2] = '\0';
        if (ll_validate_release(out) == 0)
            return;
    } else if (version && ll_validate_release(version) == 0) {
        return;
    }
    snprintf(out, cap, "%s", def);
}

/* Builds the adoption record of one tenant file, or NULL when the file is
 * not a tenant (no HelmRelease). */
static json_t *examine(ll_overlay *ov, const char *root, const char *tier, const char *id,
                       const char *path, const char *default_release)
{
    char *text = NULL, *tmpl = NULL, *rendered = NULL, tpath[1024], release[64];
    size_t len = 0, tlen = 0, rlen = 0;
    json_t *docs = NULL, *tdocs = NULL, *rec = NULL, *values = NULL;
    const json_t *hr, *file_values;
    const char *version;

    if (ll_overlay_read(&text, &len, ov, path) < 0 || !text ||
        ll_yaml_load_json(&docs, text, len) < 0 || !(hr = helm_release(docs)))
        goto done;
    version = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(hr, "spec"), "chart"), "spec"), "version"));
    release_of(release, sizeof(release), version, default_release);
    file_values = spec_values(hr);
    ll_tier_template_path(tpath, sizeof(tpath), root, tier);
    ll_render_input in = {id, tier, release, NULL, NULL};
    if (ll_overlay_read(&tmpl, &tlen, ov, tpath) == 0 && tmpl &&
        ll_template_render(&rendered, &rlen, tmpl, tlen, &in) == 0 &&
        ll_yaml_load_json(&tdocs, rendered, rlen) == 0 && helm_release(tdocs)) {
        const json_t *tv = spec_values(helm_release(tdocs));
        if (file_values)
            values = tv ? ll_values_diff(tv, file_values) : json_deep_copy(file_values);
    } else if (file_values) {
        values = json_deep_copy(file_values);
    }
    rec = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "tier", tier, "release", release, "path",
                    path, "values", values ? values : json_object());
    values = NULL;
done:
    json_decref(values);
    json_decref(docs);
    json_decref(tdocs);
    free(text);
    free(tmpl);
    free(rendered);
    return rec;
}

static int is_shard_name(const char *name)
{
    return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

/* Adds the tenant files of folder (at path) to found as id -> {tier, path};
 * with shards, also those one level down in shard folders (git-layout
 * sharded).  The first file of an id wins. */
static void collect(json_t *found, git_repository *repo, git_tree *folder, const char *path,
                    const char *tier, int shards)
{
    for (size_t k = 0; k < git_tree_entrycount(folder); k++) {
        const git_tree_entry *fe = git_tree_entry_byindex(folder, k);
        const char *name = git_tree_entry_name(fe);
        size_t n = strlen(name);
        char tid[64], file[1024];
        git_tree *shard = NULL;
        if (shards && git_tree_entry_type(fe) == GIT_OBJECT_TREE && is_shard_name(name) &&
            git_tree_lookup(&shard, repo, git_tree_entry_id(fe)) == 0) {
            snprintf(file, sizeof(file), "%s/%s", path, name);
            collect(found, repo, shard, file, tier, 0);
            git_tree_free(shard);
            continue;
        }
        if (git_tree_entry_type(fe) != GIT_OBJECT_BLOB || n < 6 || n - 5 >= sizeof(tid) ||
            strcmp(name + n - 5, ".yaml") != 0 || strcmp(name, "kustomization.yaml") == 0)
            continue;
        memcpy(tid, name, n - 5);
        tid[n - 5] = '\0';
        if (ll_validate_tenant_id(tid) < 0 || json_object_get(found, tid))
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, name);
        json_object_set_new(found, tid, json_pack("{s:s, s:s}", "tier", tier, "path", file));
    }
}

/* Every tenant file under <root>/tenants/<tier>/ of tree into found:
 * id -> {"tier", "path"}. */
static void find_tenant_files(json_t *found, git_repository *repo, git_tree *tree, const char *root)
{
    git_tree_entry *dir_entry = NULL;
    git_tree *tenants = NULL;
    char path[1024];

    snprintf(path, sizeof(path), "%s/tenants", root);
    if (git_tree_entry_bypath(&dir_entry, tree, path) == 0 &&
        git_tree_entry_type(dir_entry) == GIT_OBJECT_TREE &&
        git_tree_lookup(&tenants, repo, git_tree_entry_id(dir_entry)) == 0) {
        for (size_t i = 0; i < git_tree_entrycount(tenants); i++) {
            const git_tree_entry *te = git_tree_entry_byindex(tenants, i);
            const char *tier = git_tree_entry_name(te);
            git_tree *folder = NULL;
            if (git_tree_entry_type(te) != GIT_OBJECT_TREE ||
                ll_validate_label(tier, 63, "tier") < 0 ||
                git_tree_lookup(&folder, repo, git_tree_entry_id(te)) < 0)
                continue;
            snprintf(path, sizeof(path), "%s/tenants/%s", root, tier);
            collect(found, repo, folder, path, tier, 1);
            git_tree_free(folder);
        }
    }
    git_tree_free(tenants);
    git_tree_entry_free(dir_entry);
}

/* The files found against the registry's index: unknown (or offboarded
 * and committed) tenants to adopt, drifted ones that came back. */
static void sort_found(json_t *adopt, json_t *returned, ll_overlay *ov, const json_t *found,
                       const json_t *index, const char *root, const char *default_release)
{
    const char *id;
    json_t *v;

    json_object_foreach((json_t *)found, id, v)
    {
        json_t *known = json_object_get(index, id);
        const char *lifecycle = json_string_value(json_object_get(known, "lifecycle"));
        const char *sync = json_string_value(json_object_get(known, "sync"));
        const char *tier = json_string_value(json_object_get(v, "tier"));
        const char *file = json_string_value(json_object_get(v, "path"));
        if (!known || (strcmp(lifecycle, "offboarded") == 0 && strcmp(sync, "committed") == 0)) {
            json_t *rec;
            if ((rec = examine(ov, root, tier, id, file, default_release)))
                json_array_append_new(adopt, rec);
        } else if (strcmp(lifecycle, "drifted") == 0) {
            json_array_append_new(returned, json_string(id));
        }
    }
}

/* Active, committed tenants of the index whose file is gone: drifted. */
static void find_drifted(json_t *drifted, const json_t *found, const json_t *index)
{
    const char *id;
    json_t *v;

    json_object_foreach((json_t *)index, id, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "lifecycle")), "active") == 0 &&
            strcmp(json_string_value(json_object_get(v, "sync")), "committed") == 0 &&
            !json_object_get(found, id))
            json_array_append_new(drifted, json_string(id));
    }
}

int ll_adopt_scan(json_t **out_stats, git_repository *repo, git_tree *tree, const char *head_sha,
                  const char *root, const char *default_release, ll_registry *reg)
{
    json_t *found = json_object(), *index = NULL, *adopt = json_array(), *drifted = json_array(),
           *returned = json_array();
    ll_overlay ov = {0};
    int error = -1;

    ov.repo = repo;
    ov.base = tree;
    find_tenant_files(found, repo, tree, root);
    if ((error = ll_registry_tenant_index(&index, reg)) < 0)
        goto done;
    sort_found(adopt, returned, &ov, found, index, root, default_release);
    find_drifted(drifted, found, index);
    if (json_array_size(adopt) || json_array_size(drifted) || json_array_size(returned)) {
        if ((error = ll_registry_reconcile(reg, adopt, drifted, returned, head_sha)) < 0)
            goto done;
        ll_log_info("msg=\"registry follows the repository\" adopted=%zu drifted=%zu returned=%zu "
                    "head=%s",
                    json_array_size(adopt), json_array_size(drifted), json_array_size(returned),
                    head_sha);
    }
    if (out_stats)
        *out_stats =
            json_pack("{s:i, s:i, s:i}", "adopted", (int)json_array_size(adopt), "drifted",
                      (int)json_array_size(drifted), "returned", (int)json_array_size(returned));
    error = 0;
done:
    ll_overlay_free(&ov);
    json_decref(found);
    json_decref(index);
    json_decref(adopt);
    json_decref(drifted);
    json_decref(returned);
    return error;
}

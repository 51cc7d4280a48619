/* adopt.c - the registry follows the repository.
 *
 * Git holds the desired state.  A scan lists the tier folders' tenant files
 * (tree entries only: cheap even at 100k tenants), orders them by id and
 * compares them with the registry's index (ll_tenant_index_entry records,
 * ordered by id too), and reads and parses only the files of tenants it is
 * about to adopt; what it found goes to ll_registry_reconcile as
 * ll_adoption records and lists of ids.  Tenants landlord is working on (sync pending) are left
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
#include "landlord/util.h"
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

/* A tenant file the scan found: its id, tier folder and path. */
typedef struct found_file {
    char id[64];
    char tier[64];
    char *path; /* owned (a scan may find 100k files: not a fixed buffer) */
    size_t seq; /* order found in: the first file of an id wins */
} found_file;

typedef struct found_list {
    found_file *v;
    size_t n, cap;
} found_list;

/* An adoption of one tenant file (its strings its own), or none. */
typedef struct adoption_rec {
    char release[64];
    json_t *values; /* a reference of its own */
} adoption_rec;

/* Reads one tenant file into *out: its release and its values (as
 * overrides of what the tier's template renders).  0, or -1 when the file
 * is not a tenant (no HelmRelease). */
static int examine(adoption_rec *out, ll_overlay *ov, const char *root, const found_file *f,
                   const char *default_release)
{
    char *text = NULL, *tmpl = NULL, *rendered = NULL, tpath[1024];
    size_t len = 0, tlen = 0, rlen = 0;
    json_t *docs = NULL, *tdocs = NULL, *values = NULL;
    const json_t *hr, *file_values;
    const char *version;
    int error = -1;

    out->values = NULL;
    if (ll_overlay_read(&text, &len, ov, f->path) < 0 || !text ||
        ll_yaml_load_json(&docs, text, len) < 0 || !(hr = helm_release(docs)))
        goto done;
    version = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(hr, "spec"), "chart"), "spec"), "version"));
    release_of(out->release, sizeof(out->release), version, default_release);
    file_values = spec_values(hr);
    ll_tier_template_path(tpath, sizeof(tpath), root, f->tier);
    ll_render_input in = {f->id, f->tier, out->release, NULL, NULL};
    if (ll_overlay_read(&tmpl, &tlen, ov, tpath) == 0 && tmpl &&
        ll_template_render(&rendered, &rlen, tmpl, tlen, &in) == 0 &&
        ll_yaml_load_json(&tdocs, rendered, rlen) == 0 && helm_release(tdocs)) {
        const json_t *tv = spec_values(helm_release(tdocs));
        if (file_values)
            values = tv ? ll_values_diff(tv, file_values) : json_deep_copy(file_values);
    } else if (file_values) {
        values = json_deep_copy(file_values);
    }
    out->values = values ? values : json_object();
    error = 0;
done:
    json_decref(docs);
    json_decref(tdocs);
    free(text);
    free(tmpl);
    free(rendered);
    return error;
}

static int is_shard_name(const char *name)
{
    return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

/* Appends a file to found; -1 when out of memory. */
static int found_add(found_list *found, const char *id, const char *tier, const char *path)
{
    if (ll_grow((void **)&found->v, &found->cap, found->n, sizeof(*found->v)) < 0)
        return -1;
    found_file *f = &found->v[found->n];
    if (!(f->path = strdup(path)))
        return -1;
    snprintf(f->id, sizeof(f->id), "%s", id);
    snprintf(f->tier, sizeof(f->tier), "%s", tier);
    f->seq = found->n++;
    return 0;
}

static void found_free(found_list *found)
{
    for (size_t i = 0; i < found->n; i++)
        free(found->v[i].path);
    free(found->v);
}

/* Adds the tenant files of folder (at path) to found; with shards, also
 * those one level down in shard folders (git-layout sharded). */
static void collect(found_list *found, git_repository *repo, git_tree *folder, const char *path,
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
        if (ll_validate_tenant_id(tid) < 0)
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, name);
        if (found_add(found, tid, tier, file) < 0)
            ll_log_warn("msg=\"out of memory while scanning tenant files\" path=%s", file);
    }
}

static int by_id_then_seq(const void *a, const void *b)
{
    const found_file *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Orders found by id, keeping the first file found of each id. */
static void found_sort(found_list *found)
{
    size_t kept = 0;
    if (found->n)
        qsort(found->v, found->n, sizeof(*found->v), by_id_then_seq);
    for (size_t i = 0; i < found->n; i++) {
        if (kept && strcmp(found->v[kept - 1].id, found->v[i].id) == 0) {
            free(found->v[i].path);
            continue;
        }
        found->v[kept++] = found->v[i];
    }
    found->n = kept;
}

/* Every tenant file under <root>/tenants/<tier>/ of tree into found,
 * ordered by id, one per id. */
static void find_tenant_files(found_list *found, git_repository *repo, git_tree *tree,
                              const char *root)
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
    found_sort(found);
}

/* What the scan will change in the registry. */
typedef struct scan_result {
    ll_adoption *adopt;
    adoption_rec *recs; /* what adopt[i] points into */
    size_t n_adopt;
    ll_names drifted, returned;
} scan_result;

static void scan_result_clear(scan_result *res)
{
    for (size_t i = 0; i < res->n_adopt; i++)
        json_decref(res->recs[i].values);
    free(res->adopt);
    free(res->recs);
    ll_names_clear(&res->drifted);
    ll_names_clear(&res->returned);
}

static int by_index_id(const void *key, const void *item)
{
    return strcmp(key, ((const ll_tenant_index_entry *)item)->id);
}

static int by_found_id(const void *key, const void *item)
{
    return strcmp(key, ((const found_file *)item)->id);
}

/* The files found against the registry's index: unknown (or offboarded
 * and committed) tenants to adopt, drifted ones that came back.  -1 when
 * out of memory. */
static int sort_found(scan_result *res, ll_overlay *ov, const found_list *found,
                      const ll_tenant_index_entry *index, size_t n_index, const char *root,
                      const char *default_release)
{
    if (found->n && (!(res->adopt = calloc(found->n, sizeof(*res->adopt))) ||
                     !(res->recs = calloc(found->n, sizeof(*res->recs)))))
        return -1;
    for (size_t i = 0; i < found->n; i++) {
        const found_file *f = &found->v[i];
        const ll_tenant_index_entry *known =
            n_index ? bsearch(f->id, index, n_index, sizeof(*index), by_index_id) : NULL;
        if (!known ||
            (known->lifecycle == LL_TENANT_OFFBOARDED && known->sync == LL_TENANT_COMMITTED)) {
            adoption_rec *rec = &res->recs[res->n_adopt];
            if (examine(rec, ov, root, f, default_release) < 0)
                continue;
            res->adopt[res->n_adopt++] = (ll_adoption){.id = f->id,
                                                       .tier = f->tier,
                                                       .release = rec->release,
                                                       .path = f->path,
                                                       .values = rec->values};
        } else if (known->lifecycle == LL_TENANT_DRIFTED &&
                   ll_names_add(&res->returned, f->id) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Active, committed tenants of the index whose file is gone: drifted.  -1
 * when out of memory. */
static int find_drifted(ll_names *drifted, const found_list *found,
                        const ll_tenant_index_entry *index, size_t n_index)
{
    for (size_t i = 0; i < n_index; i++) {
        const ll_tenant_index_entry *e = &index[i];
        if (e->lifecycle == LL_TENANT_ACTIVE && e->sync == LL_TENANT_COMMITTED &&
            !(found->n && bsearch(e->id, found->v, found->n, sizeof(*found->v), by_found_id)) &&
            ll_names_add(drifted, e->id) < 0)
            return -1;
    }
    return 0;
}

int ll_adopt_scan(ll_adopt_stats *out_stats, git_repository *repo, git_tree *tree,
                  const char *head_sha, const char *root, const char *default_release,
                  ll_registry *reg)
{
    found_list found = {0};
    ll_tenant_index_entry *index = NULL;
    size_t n_index = 0;
    scan_result res = {0};
    ll_overlay ov = {0};
    int error = -1;

    ov.repo = repo;
    ov.base = tree;
    find_tenant_files(&found, repo, tree, root);
    if ((error = ll_registry_tenant_index(&index, &n_index, reg)) < 0)
        goto done;
    if (sort_found(&res, &ov, &found, index, n_index, root, default_release) < 0 ||
        find_drifted(&res.drifted, &found, index, n_index) < 0) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    if (res.n_adopt || res.drifted.n || res.returned.n) {
        if ((error = ll_registry_reconcile(reg, res.adopt, res.n_adopt, &res.drifted, &res.returned,
                                           head_sha)) < 0)
            goto done;
        ll_log_info("msg=\"registry follows the repository\" adopted=%zu drifted=%zu returned=%zu "
                    "head=%s",
                    res.n_adopt, res.drifted.n, res.returned.n, head_sha);
    }
    if (out_stats)
        *out_stats = (ll_adopt_stats){res.n_adopt, res.drifted.n, res.returned.n};
    error = 0;
done:
    ll_overlay_free(&ov);
    found_free(&found);
    free(index);
    scan_result_clear(&res);
    return error;
}

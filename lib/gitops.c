/* gitops.c - the one writer of the GitOps repository.
 *
 * How it works.  A bare clone at <data>/work.git has the remote as "origin".
 * refs/remotes/origin/<branch> is the last remote head landlord knows.  The
 * writer thread loops: take up to batch-size queued operations from the
 * registry, apply each to an in-memory overlay of the remote head's tree
 * (render the tenant file, edit the tier's kustomization as YAML), write one
 * tree with git_tree_create_updated and one commit on that head, push it
 * without force.  If the push is refused because the branch moved, fetch and
 * rebuild on the new head; foreign changes are never overwritten because
 * every attempt starts from the remote's tree.  Outcomes go back to the
 * registry in one transaction and waiters are woken.
 *
 * Threads.  Before ll_gitops_start() only the caller touches the repository;
 * after, only the writer thread does.  lock guards generation, the status and
 * the tier catalogue, which other threads read through ll_gitops_status() and
 * ll_gitops_tiers().
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <git2.h>

#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/kustomize.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"

#define MAX_PUSH_ATTEMPTS 5
#define FILE_CAP          (8u << 20)

struct ll_gitops {
    char *workdir, *url, *branch, *root, *author_name, *author_email, *default_release, *db_path;
    char remote_ref[300];
    int batch_size;
    git_repository *repo;
    ll_registry *reg;

    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* writer waits here for work */
    pthread_cond_t progress; /* waiters wait here for outcomes */
    int notified, stopping;
    unsigned long long generation;
    json_t *tiers;  /* immutable snapshot */
    json_t *status; /* immutable snapshot */
};

static int git_fail(int code, const char *what)
{
    const git_error *e = git_error_last();
    return ll_error_set(code, "%s: %s", what, e && e->message ? e->message : "unknown git error");
}

static void set_status(ll_gitops *g, const git_oid *head, const char *error)
{
    json_t *s = json_object();
    char sha[GIT_OID_HEXSZ + 1] = "";
    json_t *old;

    if (head)
        git_oid_tostr(sha, sizeof(sha), head);
    json_object_set_new(s, "status", json_string(error ? "failed" : "ok"));
    json_object_set_new(s, "branch", json_string(g->branch));
    if (head)
        json_object_set_new(s, "head", json_string(sha));
    else if (g->status && json_object_get(g->status, "head"))
        json_object_set(s, "head", json_object_get(g->status, "head"));
    if (error)
        json_object_set_new(s, "error", json_string(error));
    pthread_mutex_lock(&g->lock);
    old = g->status;
    g->status = s;
    pthread_mutex_unlock(&g->lock);
    json_decref(old);
}

/* --- remote ----------------------------------------------------------------- */

static int fetch(ll_gitops *g)
{
    git_remote *remote = NULL;
    git_fetch_options opts;
    char spec[600];
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    int error;

    git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
    snprintf(spec, sizeof(spec), "+refs/heads/%s:%s", g->branch, g->remote_ref);
    if (git_remote_lookup(&remote, g->repo, "origin") < 0)
        return git_fail(-1, "git: no remote origin in the clone");
    opts.prune = GIT_FETCH_NO_PRUNE;
    opts.update_fetchhead = 0;
    if (git_remote_fetch(remote, &refspecs, &opts, NULL) < 0) {
        error = git_fail(LL_EUPSTREAM, "git: fetch failed");
        ll_error_detail("remote %s, branch %s", g->url, g->branch);
    } else {
        error = 0;
    }
    git_remote_free(remote);
    return error;
}

typedef struct push_state {
    char rejected[256];
} push_state;

static int on_push_update(const char *refname, const char *status, void *payload)
{
    push_state *ps = payload;
    if (status)
        snprintf(ps->rejected, sizeof(ps->rejected), "%s: %s", refname, status);
    return 0;
}

/* Pushes commit to the branch without force.  LL_ECONFLICT when the remote
 * refused because its branch moved (or may have), LL_EUPSTREAM otherwise. */
static int push(ll_gitops *g, const git_oid *commit)
{
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    git_push_options opts;
    push_state ps = {""};
    char spec[600];
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    int error = -1;

    git_push_options_init(&opts, GIT_PUSH_OPTIONS_VERSION);
    if (git_reference_create(&ref, g->repo, "refs/landlord/outgoing", commit, 1, NULL) < 0) {
        error = git_fail(-1, "git: cannot write the outgoing ref");
        goto done;
    }
    git_reference_free(ref);
    ref = NULL;
    snprintf(spec, sizeof(spec), "refs/landlord/outgoing:refs/heads/%s", g->branch);
    if (git_remote_lookup(&remote, g->repo, "origin") < 0) {
        error = git_fail(-1, "git: no remote origin in the clone");
        goto done;
    }
    opts.callbacks.push_update_reference = on_push_update;
    opts.callbacks.payload = &ps;
    if ((error = git_remote_push(remote, &refspecs, &opts)) < 0) {
        /* libgit2 checks fast-forward itself before sending: the branch moved. */
        error = error == GIT_ENONFASTFORWARD ? ll_error_set(LL_ECONFLICT, "git: push rejected")
                                             : git_fail(LL_EUPSTREAM, "git: push failed");
        goto done;
    }
    if (ps.rejected[0]) {
        error = ll_error_set(LL_ECONFLICT, "git: push rejected by the remote: %s", ps.rejected);
        goto done;
    }
    if (git_reference_create(&ref, g->repo, g->remote_ref, commit, 1, "push") < 0) {
        error = git_fail(-1, "git: cannot record the pushed head");
        goto done;
    }
    error = 0;
done:
    git_reference_free(ref);
    git_remote_free(remote);
    return error;
}

/* The remote head commit as last fetched or pushed; *out NULL when the branch
 * does not exist. */
static int remote_head(git_commit **out, ll_gitops *g)
{
    git_oid oid;
    *out = NULL;
    if (git_reference_name_to_id(&oid, g->repo, g->remote_ref) < 0)
        return 0;
    if (git_commit_lookup(out, g->repo, &oid) < 0)
        return git_fail(-1, "git: cannot read the remote head");
    return 0;
}

/* --- the overlay: changed files on top of a base tree ----------------------- */

typedef struct change {
    char *path;
    char *data; /* NULL: removed */
    size_t len;
} change;

typedef struct undo {
    size_t index;
    char *data;
    size_t len;
} undo;

typedef struct overlay {
    git_repository *repo;
    git_tree *base; /* borrowed; may be NULL (empty repository) */
    change *changes;
    size_t n, cap;
    /* What the operation being applied replaced, so a failing operation can
     * be taken back without touching what earlier operations did. */
    undo *undo;
    size_t nundo, capundo;
    size_t mark;
} overlay;

static change *overlay_find(overlay *ov, const char *path)
{
    for (size_t i = 0; i < ov->n; i++) {
        if (strcmp(ov->changes[i].path, path) == 0)
            return &ov->changes[i];
    }
    return NULL;
}

/* Reads path: *out is a new buffer, or NULL when the file does not exist. */
static int overlay_read(char **out, size_t *out_len, overlay *ov, const char *path)
{
    change *c = overlay_find(ov, path);
    git_tree_entry *entry = NULL;
    git_blob *blob = NULL;
    int error = 0;

    *out = NULL;
    *out_len = 0;
    if (c) {
        if (c->data) {
            if (!(*out = malloc(c->len + 1)))
                return ll_error_set(-1, "out of memory");
            memcpy(*out, c->data, c->len + 1);
            *out_len = c->len;
        }
        return 0;
    }
    if (!ov->base || git_tree_entry_bypath(&entry, ov->base, path) < 0)
        return 0;
    if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB)
        goto done;
    if (git_blob_lookup(&blob, ov->repo, git_tree_entry_id(entry)) < 0) {
        error = git_fail(-1, "git: cannot read a file");
        goto done;
    }
    if ((size_t)git_blob_rawsize(blob) > FILE_CAP) {
        error = ll_error_set(LL_EINVALID, "%s is larger than %u bytes", path, FILE_CAP);
        goto done;
    }
    *out_len = (size_t)git_blob_rawsize(blob);
    if (!(*out = malloc(*out_len + 1))) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    memcpy(*out, git_blob_rawcontent(blob), *out_len);
    (*out)[*out_len] = '\0';
done:
    git_blob_free(blob);
    git_tree_entry_free(entry);
    return error;
}

/* Sets path to data (steals it), or removes it when data is NULL. */
static int overlay_put(overlay *ov, const char *path, char *data, size_t len)
{
    change *c = overlay_find(ov, path);
    if (!c) {
        if (ov->n == ov->cap) {
            size_t ncap = ov->cap ? ov->cap * 2 : 16;
            change *nc = realloc(ov->changes, ncap * sizeof(*nc));
            if (!nc) {
                free(data);
                return ll_error_set(-1, "out of memory");
            }
            ov->changes = nc;
            ov->cap = ncap;
        }
        c = &ov->changes[ov->n++];
        c->path = strdup(path);
        c->data = NULL;
        c->len = 0;
        if (!c->path) {
            ov->n--;
            free(data);
            return ll_error_set(-1, "out of memory");
        }
    } else if ((size_t)(c - ov->changes) < ov->mark) {
        if (ov->nundo == ov->capundo) {
            size_t ncap = ov->capundo ? ov->capundo * 2 : 8;
            undo *nu = realloc(ov->undo, ncap * sizeof(*nu));
            if (!nu) {
                free(data);
                return ll_error_set(-1, "out of memory");
            }
            ov->undo = nu;
            ov->capundo = ncap;
        }
        ov->undo[ov->nundo++] = (undo){(size_t)(c - ov->changes), c->data, c->len};
        c->data = data;
        c->len = len;
        return 0;
    }
    free(c->data);
    c->data = data;
    c->len = len;
    return 0;
}

/* Starts an operation: what follows can be taken back. */
static void overlay_begin(overlay *ov)
{
    ov->mark = ov->n;
}

/* Keeps what the operation did. */
static void overlay_keep(overlay *ov)
{
    for (size_t i = 0; i < ov->nundo; i++)
        free(ov->undo[i].data);
    ov->nundo = 0;
    ov->mark = ov->n;
}

/* Takes back what the operation did. */
static void overlay_undo(overlay *ov)
{
    while (ov->nundo > 0) {
        undo *u = &ov->undo[--ov->nundo];
        free(ov->changes[u->index].data);
        ov->changes[u->index].data = u->data;
        ov->changes[u->index].len = u->len;
    }
    while (ov->n > ov->mark) {
        ov->n--;
        free(ov->changes[ov->n].path);
        free(ov->changes[ov->n].data);
    }
}

static void overlay_free(overlay *ov)
{
    overlay_keep(ov);
    free(ov->undo);
    for (size_t i = 0; i < ov->n; i++) {
        free(ov->changes[i].path);
        free(ov->changes[i].data);
    }
    free(ov->changes);
    memset(ov, 0, sizeof(*ov));
}

/* Writes the overlay as a new tree on the base; *changed 0 when it equals
 * the base. */
static int overlay_write(git_oid *out, int *changed, overlay *ov)
{
    git_tree_update *ups = calloc(ov->n ? ov->n : 1, sizeof(*ups));
    git_oid *blobs = calloc(ov->n ? ov->n : 1, sizeof(*blobs));
    git_tree *empty = NULL;
    git_treebuilder *tb = NULL;
    size_t n = 0;
    int error = -1;

    if (!ups || !blobs) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ov->n; i++) {
        change *c = &ov->changes[i];
        git_tree_entry *old = NULL;
        int exists = ov->base && git_tree_entry_bypath(&old, ov->base, c->path) == 0;
        if (c->data) {
            if (git_blob_create_from_buffer(&blobs[i], ov->repo, c->data, c->len) < 0) {
                git_tree_entry_free(old);
                error = git_fail(-1, "git: cannot write a blob");
                goto done;
            }
            if (exists && git_oid_equal(git_tree_entry_id(old), &blobs[i])) {
                git_tree_entry_free(old);
                continue;
            }
            ups[n].action = GIT_TREE_UPDATE_UPSERT;
            ups[n].id = blobs[i];
            ups[n].filemode = GIT_FILEMODE_BLOB;
            ups[n].path = c->path;
            n++;
        } else if (exists) {
            ups[n].action = GIT_TREE_UPDATE_REMOVE;
            ups[n].path = c->path;
            n++;
        }
        git_tree_entry_free(old);
    }
    *changed = n > 0;
    if (!n) {
        if (ov->base)
            git_oid_cpy(out, git_tree_id(ov->base));
        error = 0;
        goto done;
    }
    if (!ov->base) {
        git_oid empty_id;
        if (git_treebuilder_new(&tb, ov->repo, NULL) < 0 ||
            git_treebuilder_write(&empty_id, tb) < 0 ||
            git_tree_lookup(&empty, ov->repo, &empty_id) < 0) {
            error = git_fail(-1, "git: cannot write an empty tree");
            goto done;
        }
    }
    if (git_tree_create_updated(out, ov->repo, ov->base ? ov->base : empty, n, ups) < 0) {
        error = git_fail(-1, "git: cannot write the tree");
        goto done;
    }
    error = 0;
done:
    git_treebuilder_free(tb);
    git_tree_free(empty);
    free(ups);
    free(blobs);
    return error;
}

/* --- operations --------------------------------------------------------------- */

/* An operation's outcome, on the failing side: why, and the error class. */
static json_t *failure(long long id, const char *type)
{
    return json_pack("{s:I, s:b, s:s, s:s}", "id", (json_int_t)id, "ok", 0, "error",
                     ll_error_last()->message, "error_type", type);
}

static int kustomization_change(overlay *ov, const char *path, const char *entry, int add)
{
    char *text = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    int changed = 0, error;

    if ((error = overlay_read(&text, &len, ov, path)) < 0)
        return error;
    if (!text) {
        if (!add)
            return 0;
        const char *entries[] = {entry};
        error = ll_kustomize_new(&out, &out_len, entries, 1);
        changed = 1;
    } else if (add) {
        error = ll_kustomize_add(&out, &out_len, &changed, text, len, entry);
    } else {
        error = ll_kustomize_remove(&out, &out_len, &changed, text, len, entry);
    }
    free(text);
    if (error < 0) {
        free(out);
        return ll_error_set(error, "%s: %s", path, ll_error_last()->message);
    }
    if (!changed) {
        free(out);
        return 0;
    }
    return overlay_put(ov, path, out, out_len);
}

static int apply_onboard(ll_gitops *g, overlay *ov, const json_t *op, const char **why)
{
    const char *tenant = json_string_value(json_object_get(op, "tenant"));
    const char *tier = json_string_value(json_object_get(op, "tier"));
    const json_t *payload = json_object_get(op, "payload");
    const char *release = json_string_value(json_object_get(payload, "release"));
    char path[1024], *tmpl = NULL, *rendered = NULL, *existing = NULL;
    size_t tmpl_len = 0, rendered_len = 0, existing_len = 0;
    ll_render_input in = {tenant, tier, release, NULL, json_object_get(payload, "values")};
    int error;

    *why = "conflict";
    snprintf(path, sizeof(path), "%s/tier-templates/%s_tenant_template.yaml", g->root, tier);
    if ((error = overlay_read(&tmpl, &tmpl_len, ov, path)) < 0)
        goto done;
    if (!tmpl) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' has no template at %s", tier, path);
        goto done;
    }
    if ((error = ll_template_render(&rendered, &rendered_len, tmpl, tmpl_len, &in)) < 0) {
        *why = "render-failed";
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/%s.yaml", g->root, tier, tenant);
    if ((error = overlay_read(&existing, &existing_len, ov, path)) < 0)
        goto done;
    if (!existing || existing_len != rendered_len || memcmp(existing, rendered, rendered_len)) {
        if ((error = overlay_put(ov, path, rendered, rendered_len)) < 0) {
            rendered = NULL;
            goto done;
        }
        rendered = NULL;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    char *tier_kust = NULL;
    size_t tier_kust_len = 0;
    if ((error = overlay_read(&tier_kust, &tier_kust_len, ov, path)) < 0)
        goto done;
    if (!tier_kust) {
        /* A tier folder new to the repository joins tenants/kustomization.yaml. */
        char top[1024];
        snprintf(top, sizeof(top), "%s/tenants/kustomization.yaml", g->root);
        if ((error = kustomization_change(ov, top, tier, 1)) < 0)
            goto done;
    }
    free(tier_kust);
    char entry[128];
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    error = kustomization_change(ov, path, entry, 1);
done:
    free(tmpl);
    free(rendered);
    free(existing);
    return error;
}

static int apply_offboard(ll_gitops *g, overlay *ov, const json_t *op)
{
    const char *tenant = json_string_value(json_object_get(op, "tenant"));
    const char *tier = json_string_value(json_object_get(op, "tier"));
    char path[1024], entry[128];
    char *existing = NULL;
    size_t len = 0;
    int error;

    snprintf(path, sizeof(path), "%s/tenants/%s/%s.yaml", g->root, tier, tenant);
    if ((error = overlay_read(&existing, &len, ov, path)) < 0)
        return error;
    if (existing) {
        free(existing);
        if ((error = overlay_put(ov, path, NULL, 0)) < 0)
            return error;
    }
    snprintf(path, sizeof(path), "%s/tenants/%s/kustomization.yaml", g->root, tier);
    snprintf(entry, sizeof(entry), "%s.yaml", tenant);
    return kustomization_change(ov, path, entry, 0);
}

static void describe(ll_buf *b, const json_t *op)
{
    const char *kind = json_string_value(json_object_get(op, "kind"));
    ll_buf_printf(b, "%s tenant %s (%s)", strcmp(kind, "onboard") == 0 ? "Onboard" : "Offboard",
                  json_string_value(json_object_get(op, "tenant")),
                  json_string_value(json_object_get(op, "tier")));
}

static int make_commit(git_oid *out, ll_gitops *g, const git_oid *tree_id, git_commit *parent,
                       const char *message)
{
    git_signature *sig = NULL;
    git_tree *tree = NULL;
    const git_commit *parents[] = {parent};
    int error = -1;

    if (git_signature_now(&sig, g->author_name, g->author_email) < 0) {
        error = git_fail(-1, "git: bad author identity");
        goto done;
    }
    if (git_tree_lookup(&tree, g->repo, tree_id) < 0) {
        error = git_fail(-1, "git: cannot read the new tree");
        goto done;
    }
    if (git_commit_create(out, g->repo, NULL, sig, sig, NULL, message, tree, parent ? 1 : 0,
                          parents) < 0) {
        error = git_fail(-1, "git: cannot write the commit");
        goto done;
    }
    error = 0;
done:
    git_tree_free(tree);
    git_signature_free(sig);
    return error;
}

/* Builds a catalogue from the tree of commit. */
static json_t *read_tiers(ll_gitops *g, git_commit *commit)
{
    json_t *files = json_object(), *cat;
    git_tree *tree = NULL, *dir = NULL;
    git_tree_entry *entry = NULL;
    overlay ov = {0};
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
                if (overlay_read(&text, &len, &ov, path) == 0 && text)
                    json_object_set_new(files, path, json_stringn(text, len));
                free(text);
                text = NULL;
            }
        }
        snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
        if (overlay_read(&text, &len, &ov, path) == 0 && text)
            json_object_set_new(files, path, json_stringn(text, len));
        free(text);
    }
    cat = ll_tiers_build(files, g->root);
    json_decref(files);
    git_tree_free(dir);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    return cat;
}

static void publish_tiers(ll_gitops *g, git_commit *head)
{
    json_t *cat = read_tiers(g, head), *old;
    pthread_mutex_lock(&g->lock);
    old = g->tiers;
    g->tiers = cat;
    pthread_mutex_unlock(&g->lock);
    json_decref(old);
}

/* Applies ops on the remote head, commits and pushes; fills results.
 * Retries on a moved branch.  Returns 0 when results hold every op. */
static int run_batch(ll_gitops *g, const json_t *ops, json_t *results)
{
    int error = -1;

    for (int attempt = 0; attempt < MAX_PUSH_ATTEMPTS; attempt++) {
        git_commit *head = NULL;
        git_tree *base = NULL;
        overlay ov = {0};
        json_t *applied = json_array(), *failed = json_array(), *op;
        git_oid tree_id, commit_id;
        char sha[GIT_OID_HEXSZ + 1];
        int changed = 0;
        size_t i;
        ll_buf msg;

        ll_buf_init(&msg, 1 << 20);
        if ((error = remote_head(&head, g)) < 0 ||
            (head && git_commit_tree(&base, head) < 0 &&
             (error = git_fail(-1, "git: cannot read the head tree")) < 0))
            goto attempt_done;
        ov.repo = g->repo;
        ov.base = base;
        json_array_foreach(ops, i, op)
        {
            const char *kind = json_string_value(json_object_get(op, "kind"));
            const char *why = "conflict";
            long long id = json_integer_value(json_object_get(op, "id"));
            int rc;
            overlay_begin(&ov);
            rc = strcmp(kind, "onboard") == 0 ? apply_onboard(g, &ov, op, &why)
                                              : apply_offboard(g, &ov, op);
            if (rc < 0) {
                /* Fails alone: its partial changes are taken back. */
                overlay_undo(&ov);
                json_array_append_new(failed, failure(id, why));
                ll_log_warn("msg=\"operation failed\" op=%lld tenant=%s error=\"%s\"", id,
                            json_string_value(json_object_get(op, "tenant")),
                            ll_error_last()->message);
                continue;
            }
            overlay_keep(&ov);
            json_array_append(applied, op);
        }
        if ((error = overlay_write(&tree_id, &changed, &ov)) < 0)
            goto attempt_done;
        if (changed) {
            json_array_foreach(applied, i, op)
            {
                if (json_array_size(applied) > 1)
                    ll_buf_adds(&msg, i == 0 ? "" : "\n");
                if (json_array_size(applied) > 1 && i == 0) {
                    ll_buf_printf(&msg, "Apply %zu tenant operations\n\n",
                                  json_array_size(applied));
                }
                if (json_array_size(applied) > 1)
                    ll_buf_adds(&msg, "- ");
                describe(&msg, op);
            }
            ll_buf_adds(&msg, "\n");
            if ((error = make_commit(&commit_id, g, &tree_id, head, msg.data)) < 0)
                goto attempt_done;
            error = push(g, &commit_id);
            if (error == LL_ECONFLICT) {
                ll_log_info("msg=\"push rejected, fetching and rebuilding\" attempt=%d",
                            attempt + 1);
                if ((error = fetch(g)) == 0)
                    error = LL_ECONFLICT;
                goto attempt_done;
            }
            if (error < 0)
                goto attempt_done;
            git_oid_tostr(sha, sizeof(sha), &commit_id);
            git_commit_free(head);
            head = NULL;
            git_commit_lookup(&head, g->repo, &commit_id);
            publish_tiers(g, head);
        } else if (head) {
            git_oid_tostr(sha, sizeof(sha), git_commit_id(head));
        } else {
            sha[0] = '\0';
        }
        json_array_foreach(applied, i, op)
        {
            json_array_append_new(results,
                                  json_pack("{s:O, s:b, s:s}", "id", json_object_get(op, "id"),
                                            "ok", 1, "commit", sha));
        }
        json_array_extend(results, failed);
        set_status(g, head ? git_commit_id(head) : NULL, NULL);
        error = 0;
    attempt_done:
        ll_buf_free(&msg);
        overlay_free(&ov);
        git_tree_free(base);
        git_commit_free(head);
        json_decref(applied);
        json_decref(failed);
        if (error != LL_ECONFLICT)
            break;
    }
    return error;
}

static void *writer_main(void *arg)
{
    ll_gitops *g = arg;

    for (;;) {
        json_t *ops = NULL, *results = NULL;
        int error;

        pthread_mutex_lock(&g->lock);
        while (!g->notified && !g->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 5; /* also look for work now and then */
            if (pthread_cond_timedwait(&g->wake, &g->lock, &ts) == ETIMEDOUT)
                break;
        }
        if (g->stopping) {
            pthread_mutex_unlock(&g->lock);
            break;
        }
        g->notified = 0;
        pthread_mutex_unlock(&g->lock);

        if (ll_registry_ops_queued(&ops, g->reg, g->batch_size) < 0) {
            ll_log_error("msg=\"cannot read the outbox\" error=\"%s\"", ll_error_last()->message);
            continue;
        }
        if (json_array_size(ops) == 0) {
            json_decref(ops);
            continue;
        }
        if (json_array_size(ops) == (size_t)g->batch_size) {
            pthread_mutex_lock(&g->lock);
            g->notified = 1; /* more may wait */
            pthread_mutex_unlock(&g->lock);
        }
        results = json_array();
        int64_t t0 = ll_monotonic_ms();
        error = run_batch(g, ops, results);
        if (error < 0) {
            /* The whole batch failed to reach the remote: every op fails. */
            char reason[LL_ERROR_MSG_MAX];
            size_t i;
            json_t *op;
            snprintf(reason, sizeof(reason), "%s", ll_error_last()->message);
            set_status(g, NULL, reason);
            ll_log_error("msg=\"push failed\" ops=%zu error=\"%s\"", json_array_size(ops), reason);
            json_array_clear(results);
            json_array_foreach(ops, i, op)
            {
                json_array_append_new(
                    results, json_pack("{s:O, s:b, s:s, s:s}", "id", json_object_get(op, "id"),
                                       "ok", 0, "error", reason, "error_type", "upstream-failure"));
            }
        } else {
            ll_log_info("msg=\"batch pushed\" ops=%zu ms=%lld", json_array_size(ops),
                        (long long)(ll_monotonic_ms() - t0));
        }
        if (ll_registry_ops_finish(g->reg, results) < 0)
            ll_log_error("msg=\"cannot record outcomes\" error=\"%s\"", ll_error_last()->message);
        json_decref(results);
        json_decref(ops);
        pthread_mutex_lock(&g->lock);
        g->generation++;
        pthread_cond_broadcast(&g->progress);
        pthread_mutex_unlock(&g->lock);
    }
    return NULL;
}

/* --- seeding ----------------------------------------------------------------- */

static int seed(ll_gitops *g, git_commit *head)
{
    static const char prefix[] = "lib/seed/";
    overlay ov = {0};
    git_tree *base = NULL;
    git_oid tree_id, commit_id;
    char path[1024], *env_tmpl = NULL, *kust = NULL;
    size_t env_len = 0, kust_len = 0;
    json_t *pools = NULL, *pool;
    int changed = 0, error = -1;
    size_t i;

    if (head && git_commit_tree(&base, head) < 0)
        return git_fail(-1, "git: cannot read the head tree");
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
        if ((error = overlay_put(&ov, path, copy, f->size)) < 0)
            goto done;
    }
    /* Render the pool environments the pooled-envs kustomization lists. */
    snprintf(path, sizeof(path), "%s/tier-templates/basic_env_template.yaml", g->root);
    if ((error = overlay_read(&env_tmpl, &env_len, &ov, path)) < 0)
        goto done;
    snprintf(path, sizeof(path), "%s/pooled-envs/kustomization.yaml", g->root);
    if ((error = overlay_read(&kust, &kust_len, &ov, path)) < 0 ||
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
        if ((error = overlay_put(&ov, path, out, out_len)) < 0)
            goto done;
    }
    if ((error = overlay_write(&tree_id, &changed, &ov)) < 0)
        goto done;
    if ((error = make_commit(&commit_id, g, &tree_id, head,
                             "Seed the GitOps layout (tiers basic, premium, advanced; pool-1)\n")) <
        0)
        goto done;
    if ((error = push(g, &commit_id)) < 0)
        goto done;
    ll_log_info("msg=\"seeded the GitOps repository\" url=%s branch=%s root=%s", g->url, g->branch,
                g->root);
done:
    json_decref(pools);
    free(env_tmpl);
    free(kust);
    overlay_free(&ov);
    git_tree_free(base);
    return error;
}

/* --- lifecycle ------------------------------------------------------------------ */

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int ll_gitops_open(ll_gitops **out, const ll_gitops_options *o)
{
    ll_gitops *g = calloc(1, sizeof(*g));
    git_remote *remote = NULL;
    git_commit *head = NULL;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    int error = -1;

    if (!g)
        return ll_error_set(-1, "out of memory");
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    pthread_cond_init(&g->progress, NULL);
    g->workdir = dup_or_empty(o->workdir);
    g->url = dup_or_empty(o->url);
    g->branch = dup_or_empty(o->branch);
    g->root = dup_or_empty(o->root);
    g->author_name = dup_or_empty(o->author_name);
    g->author_email = dup_or_empty(o->author_email);
    g->default_release = dup_or_empty(o->default_release);
    g->db_path = dup_or_empty(o->db_path);
    g->batch_size = o->batch_size > 0 ? o->batch_size : 64;
    snprintf(g->remote_ref, sizeof(g->remote_ref), "refs/remotes/origin/%s", g->branch);

    if (git_repository_open_bare(&g->repo, g->workdir) < 0 &&
        git_repository_init(&g->repo, g->workdir, 1) < 0) {
        error = git_fail(-1, "git: cannot create the local clone");
        goto fail;
    }
    if (git_remote_lookup(&remote, g->repo, "origin") < 0) {
        if (git_remote_create(&remote, g->repo, "origin", g->url) < 0) {
            error = git_fail(LL_EINVALID, "git: bad remote url");
            goto fail;
        }
    } else if (strcmp(git_remote_url(remote), g->url) != 0 &&
               git_remote_set_url(g->repo, "origin", g->url) < 0) {
        error = git_fail(LL_EINVALID, "git: bad remote url");
        goto fail;
    }
    if ((error = fetch(g)) < 0)
        goto fail;
    if ((error = remote_head(&head, g)) < 0)
        goto fail;
    if (head && git_commit_tree(&tree, head) == 0 &&
        git_tree_entry_bypath(&entry, tree, g->root) == 0) {
        /* The layout is there: nothing to seed. */
    } else {
        if ((error = seed(g, head)) < 0)
            goto fail;
        git_commit_free(head);
        head = NULL;
        if ((error = remote_head(&head, g)) < 0)
            goto fail;
    }
    publish_tiers(g, head);
    set_status(g, head ? git_commit_id(head) : NULL, NULL);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(head);
    git_remote_free(remote);
    *out = g;
    return 0;
fail:
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(head);
    git_remote_free(remote);
    ll_gitops_free(g);
    return error;
}

int ll_gitops_start(ll_gitops *g)
{
    int error;
    if ((error = ll_registry_open(&g->reg, g->db_path)) < 0)
        return error;
    if (pthread_create(&g->thread, NULL, writer_main, g) != 0)
        return ll_error_set(-1, "cannot start the git writer thread");
    g->started = 1;
    ll_gitops_notify(g); /* operations queued before a restart */
    return 0;
}

void ll_gitops_free(ll_gitops *g)
{
    if (!g)
        return;
    if (g->started) {
        pthread_mutex_lock(&g->lock);
        g->stopping = 1;
        pthread_cond_broadcast(&g->wake);
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->thread, NULL);
    }
    ll_registry_close(g->reg);
    git_repository_free(g->repo);
    json_decref(g->tiers);
    json_decref(g->status);
    free(g->workdir);
    free(g->url);
    free(g->branch);
    free(g->root);
    free(g->author_name);
    free(g->author_email);
    free(g->default_release);
    free(g->db_path);
    pthread_cond_destroy(&g->wake);
    pthread_cond_destroy(&g->progress);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void ll_gitops_notify(ll_gitops *g)
{
    pthread_mutex_lock(&g->lock);
    g->notified = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
}

int ll_gitops_wait(json_t **out, ll_gitops *g, ll_registry *r, long long op, int64_t deadline_ms)
{
    *out = NULL;
    for (;;) {
        unsigned long long gen;
        int error;

        pthread_mutex_lock(&g->lock);
        gen = g->generation;
        pthread_mutex_unlock(&g->lock);
        json_decref(*out);
        *out = NULL;
        if ((error = ll_registry_op_get(out, r, op)) < 0)
            return error;
        if (strcmp(json_string_value(json_object_get(*out, "state")), "queued") != 0)
            return 0;
        int64_t now = ll_monotonic_ms();
        if (now >= deadline_ms)
            return LL_ETIMEOUT;
        pthread_mutex_lock(&g->lock);
        while (g->generation == gen && !g->stopping) {
            struct timespec ts;
            int64_t left = deadline_ms - ll_monotonic_ms();
            if (left <= 0)
                break;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += left / 1000;
            ts.tv_nsec += (left % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&g->progress, &g->lock, &ts) == ETIMEDOUT)
                break;
        }
        int stopping = g->stopping;
        pthread_mutex_unlock(&g->lock);
        if (stopping)
            return LL_ETIMEOUT;
    }
}

json_t *ll_gitops_tiers(ll_gitops *g)
{
    json_t *t;
    pthread_mutex_lock(&g->lock);
    t = json_incref(g->tiers);
    pthread_mutex_unlock(&g->lock);
    return t;
}

json_t *ll_gitops_status(ll_gitops *g)
{
    json_t *s;
    pthread_mutex_lock(&g->lock);
    s = json_incref(g->status);
    pthread_mutex_unlock(&g->lock);
    return s;
}

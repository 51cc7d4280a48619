/* overlay.c - changed files on top of a git tree, in memory.  See overlay.h. */
#include <stdlib.h>
#include <string.h>
#include <git2.h>

#include "landlord/error.h"
#include "landlord/util.h"
#include "overlay.h"

#define FILE_CAP (8u << 20)

static int git_fail(int code, const char *what)
{
    const git_error *e = git_error_last();
    return ll_error_set(code, "%s: %s", what, e && e->message ? e->message : "unknown git error");
}

static change *ll_overlay_find(ll_overlay *ov, const char *path)
{
    for (size_t i = 0; i < ov->n; i++) {
        if (strcmp(ov->changes[i].path, path) == 0)
            return &ov->changes[i];
    }
    return NULL;
}

/* Reads path: *out is a new buffer, or NULL when the file does not exist. */
int ll_overlay_read(char **out, size_t *out_len, ll_overlay *ov, const char *path)
{
    change *c = ll_overlay_find(ov, path);
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
int ll_overlay_put(ll_overlay *ov, const char *path, char *data, size_t len)
{
    ov->puts++;
    change *c = ll_overlay_find(ov, path);
    if (!c) {
        if (ll_grow((void **)&ov->changes, &ov->cap, ov->n, sizeof(*ov->changes)) < 0) {
            free(data);
            return -1;
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
        if (ll_grow((void **)&ov->undo, &ov->capundo, ov->nundo, sizeof(*ov->undo)) < 0) {
            free(data);
            return -1;
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
void ll_overlay_begin(ll_overlay *ov)
{
    ov->mark = ov->n;
}

/* Keeps what the operation did. */
void ll_overlay_keep(ll_overlay *ov)
{
    for (size_t i = 0; i < ov->nundo; i++)
        free(ov->undo[i].data);
    ov->nundo = 0;
    ov->mark = ov->n;
}

/* Takes back what the operation did. */
void ll_overlay_undo(ll_overlay *ov)
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

void ll_overlay_free(ll_overlay *ov)
{
    ll_overlay_keep(ov);
    free(ov->undo);
    for (size_t i = 0; i < ov->n; i++) {
        free(ov->changes[i].path);
        free(ov->changes[i].data);
    }
    free(ov->changes);
    memset(ov, 0, sizeof(*ov));
}

/* Change c as an update of the base into *up: 1 when it changes the base,
 * 0 when not (the same blob, or removing what is not there), or the error.
 * *blob receives the id of c's data (when it has data). */
static int change_update(git_tree_update *up, git_oid *blob, const ll_overlay *ov, const change *c)
{
    git_tree_entry *old = NULL;
    int exists = ov->base && git_tree_entry_bypath(&old, ov->base, c->path) == 0;
    int result = 0;

    if (c->data) {
        if (git_blob_create_from_buffer(blob, ov->repo, c->data, c->len) < 0) {
            result = git_fail(-1, "git: cannot write a blob");
        } else if (!exists || !git_oid_equal(git_tree_entry_id(old), blob)) {
            up->action = GIT_TREE_UPDATE_UPSERT;
            up->id = *blob;
            up->filemode = GIT_FILEMODE_BLOB;
            up->path = c->path;
            result = 1;
        }
    } else if (exists) {
        up->action = GIT_TREE_UPDATE_REMOVE;
        up->path = c->path;
        result = 1;
    }
    git_tree_entry_free(old);
    return result;
}

/* A new empty tree of repo into *out: the base of an overlay without one. */
static int empty_tree(git_tree **out, git_repository *repo)
{
    git_treebuilder *tb = NULL;
    git_oid id;
    int error = 0;

    if (git_treebuilder_new(&tb, repo, NULL) < 0 || git_treebuilder_write(&id, tb) < 0 ||
        git_tree_lookup(out, repo, &id) < 0)
        error = git_fail(-1, "git: cannot write an empty tree");
    git_treebuilder_free(tb);
    return error;
}

/* Writes the overlay as a new tree on the base; *changed 0 when it equals
 * the base. */
int ll_overlay_write(git_oid *out, int *changed, ll_overlay *ov)
{
    git_tree_update *ups = calloc(ov->n ? ov->n : 1, sizeof(*ups));
    git_oid *blobs = calloc(ov->n ? ov->n : 1, sizeof(*blobs));
    git_tree *empty = NULL;
    size_t n = 0;
    int error = -1;

    if (!ups || !blobs) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ov->n; i++) {
        if ((error = change_update(&ups[n], &blobs[i], ov, &ov->changes[i])) < 0)
            goto done;
        n += (size_t)error;
    }
    *changed = n > 0;
    if (!n) {
        if (ov->base)
            git_oid_cpy(out, git_tree_id(ov->base));
        error = 0;
        goto done;
    }
    if (!ov->base && (error = empty_tree(&empty, ov->repo)) < 0)
        goto done;
    if (git_tree_create_updated(out, ov->repo, ov->base ? ov->base : empty, n, ups) < 0) {
        error = git_fail(-1, "git: cannot write the tree");
        goto done;
    }
    error = 0;
done:
    git_tree_free(empty);
    free(ups);
    free(blobs);
    return error;
}

int ll_overlay_exists(ll_overlay *ov, const char *path)
{
    git_tree_entry *entry = NULL;
    int exists;
    for (size_t i = 0; i < ov->n; i++) {
        if (strcmp(ov->changes[i].path, path) == 0)
            return ov->changes[i].data != NULL;
    }
    exists = ov->base && git_tree_entry_bypath(&entry, ov->base, path) == 0;
    git_tree_entry_free(entry);
    return exists;
}

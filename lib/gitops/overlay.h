/* overlay.h - changed files on top of a git tree, in memory (private).
 *
 * The git writer applies operations to an overlay of the remote head's tree:
 * reads see earlier changes, writes stay in memory, and ll_overlay_write()
 * turns the changes into one new tree with git_tree_create_updated(), so a
 * commit costs what it changes, not the size of the repository.  An
 * operation's changes can be taken back (begin/keep/undo) when it fails.
 * Not thread-safe: one overlay belongs to one thread.
 */
#ifndef LANDLORD_OVERLAY_H
#define LANDLORD_OVERLAY_H

#include <stddef.h>
#include <git2.h>

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

typedef struct ll_overlay {
    git_repository *repo;
    git_tree *base; /* borrowed; may be NULL (empty repository) */
    change *changes;
    size_t n, cap;
    /* What the operation being applied replaced, so a failing operation can
     * be taken back without touching what earlier operations did. */
    undo *undo;
    size_t nundo, capundo;
    size_t mark;
    size_t puts; /* how many times ll_overlay_put ran: did an operation write? */
} ll_overlay;

/* Reads path: *out is a new buffer (caller frees), or NULL when the file does
 * not exist.  LL_EINVALID for files over 8 MiB. */
int ll_overlay_read(char **out, size_t *out_len, ll_overlay *ov, const char *path);

/* 1 when path exists (in the changes, else in the base tree). */
int ll_overlay_exists(ll_overlay *ov, const char *path);

/* Sets path to data (steals it), or removes path when data is NULL. */
int ll_overlay_put(ll_overlay *ov, const char *path, char *data, size_t len);

/* Starts an operation; keep or undo ends it. */
void ll_overlay_begin(ll_overlay *ov);
void ll_overlay_keep(ll_overlay *ov);
void ll_overlay_undo(ll_overlay *ov);

/* Writes the changes as a new tree on the base; *changed 0 when it equals the
 * base (then *out is the base tree's id). */
int ll_overlay_write(git_oid *out, int *changed, ll_overlay *ov);

void ll_overlay_free(ll_overlay *ov);

#endif

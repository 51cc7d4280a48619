/* gitpack.h - keeping a repository's object store small (private).
 *
 * The git writer writes new objects to memory (an object store in memory, ll_gitpack_add_memstore)
 * and, once a push has put them on the remote, stores them as one small pack (ll_gitpack_store).
 * ll_gitpack_maintain() then merges the small packs (and any loose objects) so that the packs form
 * a geometric progression by size, as `git repack --geometric=2` does: a repository of N bytes has
 * at most about log2(N / smallest pack) packs, and each object is
 * rewritten O(log N) times in all.  A merge that takes in every pack packs
 * only what the remote-tracking refs reach, so objects of refused pushes
 * go.  Not thread-safe: a repository handle belongs to one thread.
 */
#ifndef LANDLORD_GITPACK_H
#define LANDLORD_GITPACK_H

#include <stddef.h>
#include <stdint.h>
#include <git2.h>
#include <git2/sys/odb_backend.h>

/* A new in-memory object store, added to repo's object database with the
 * highest priority, so every object written through repo goes to memory.
 * *out is borrowed: the database owns it and frees it with the handle. */
int ll_gitpack_add_memstore(git_odb_backend **out, git_repository *repo);

/* Stores exactly the objects written to mem since the last store (not what
 * they reach) as one pack in git_dir's objects/pack, and empties mem.  The
 * pack is complete on disk when this returns.  Nothing written: a no-op. */
int ll_gitpack_store(git_repository *repo, git_odb_backend *mem, const char *git_dir);

/* Drops the objects written to mem (a batch that was not pushed). */
void ll_gitpack_discard(git_odb_backend *mem);

/* Of n pack sizes sorted ascending, how many of the smallest to merge into
 * one so that the packs left and the merged one form a geometric
 * progression with factor 2 (each pack at least twice the next smaller).
 * 0 or 1: nothing to merge.  Pure. */
size_t ll_gitpack_split(const uint64_t *sizes, size_t n);

/* Merges the small packs of the repository at git_dir (see
 * ll_gitpack_split) once it has at least min_packs packs (fewer merges,
 * each of more), and its loose objects when loose is set (they are
 * looked for only then: it reads 256 folders).  A merge of every pack
 * keeps what the refs matching the glob refs reach ("refs/remotes/..." in a
 * clone, every ref in a remote).  *out_changed is 1 when
 * files were replaced: handles opened before then still list the removed
 * packs and hold them open, so their owners should open them anew. */
int ll_gitpack_maintain(int *out_changed, const char *git_dir, const char *refs, size_t min_packs,
                        int loose);

#endif

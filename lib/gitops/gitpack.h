/* gitpack.h - keeping a repository's object store small (private).
 *
 * The git writer writes new objects to an object store in memory
 * (ll_gitpack_add_memstore) and, just before a push, stores those of the
 * batch as one small pack (ll_gitpack_store).  ll_gitpack_repack() has git
 * roll the small packs up (`git repack --geometric=2`), so a repository of
 * N objects holds about log2(N) packs and never loose objects.  Not
 * thread-safe: a repository handle and its store belong to one thread.
 */
#ifndef LANDLORD_GITPACK_H
#define LANDLORD_GITPACK_H

#include <stddef.h>
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

/* How many packs git_dir holds (a readdir: cheap). */
size_t ll_gitpack_count(const char *git_dir);

/* Runs `git repack -d --geometric=2` on git_dir and waits for it: small
 * packs and loose objects are merged, nothing is pruned.  Handles opened
 * before may still list (and hold open) removed packs: their owners should
 * open them anew.  LL_ENOTFOUND when git is not installed. */
int ll_gitpack_repack(const char *git_dir);

#endif

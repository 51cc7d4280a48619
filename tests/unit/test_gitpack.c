/* Unit tests of lib/gitops/gitpack.c: the in-memory object store, one pack per
 * store, and git's geometric repack: every object stays readable while the
 * repository ends with a few packs and no loose objects. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <git2.h>

#include "gitops/gitpack.h"
#include "landlord/error.h"
#include "support.h"

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (e->d_name[0] != '.' && len >= sl && strcmp(e->d_name + len - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Loose objects: files in the two-hex-digit folders of objects/. */
static size_t count_loose(const char *git_dir)
{
    char path[1200];
    size_t n = 0;
    for (int i = 0; i < 256; i++) {
        snprintf(path, sizeof(path), "%s/objects/%02x", git_dir, i);
        n += count_files(path, "");
    }
    return n;
}

/* One commit on parent with a new file "f<i>" among the files of parent's
 * tree, written through repo (so into its in-memory store when it has one). */
static void commit_one(git_oid *out, git_repository *repo, const git_oid *parent, int i)
{
    git_treebuilder *tb = NULL;
    git_tree *base = NULL, *tree = NULL;
    git_commit *pc = NULL;
    git_signature *sig = NULL;
    git_oid blob, tree_id;
    char name[32], text[64];

    if (parent) {
        assert_int_equal(git_commit_lookup(&pc, repo, parent), 0);
        assert_int_equal(git_commit_tree(&base, pc), 0);
    }
    assert_int_equal(git_treebuilder_new(&tb, repo, base), 0);
    snprintf(name, sizeof(name), "f%04d", i);
    snprintf(text, sizeof(text), "file %d of the test\n", i);
    assert_int_equal(git_blob_create_from_buffer(&blob, repo, text, strlen(text)), 0);
    assert_int_equal(git_treebuilder_insert(NULL, tb, name, &blob, GIT_FILEMODE_BLOB), 0);
    assert_int_equal(git_treebuilder_write(&tree_id, tb), 0);
    assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
    assert_int_equal(git_signature_new(&sig, "t", "t@example.com", 1700000000 + i, 0), 0);
    const git_commit *parents[] = {pc};
    assert_int_equal(
        git_commit_create(out, repo, NULL, sig, sig, NULL, "c\n", tree, pc ? 1 : 0, parents), 0);
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(base);
    git_commit_free(pc);
    git_treebuilder_free(tb);
}

static void test_store_and_repack(void **state)
{
    (void)state;
    char dir[64];
    git_repository *repo = NULL, *check = NULL;
    git_odb_backend *mem = NULL;
    git_oid head, prev, loose;
    const int commits = 40;

    assert_int_equal(ut_temp_dir(dir, sizeof(dir), "gitpack"), 0);
    assert_int_equal(git_repository_init(&repo, dir, 1), 0);
    /* A loose object written the usual way, before the store exists. */
    assert_int_equal(git_blob_create_from_buffer(&loose, repo, "loose\n", 6), 0);
    assert_int_equal(count_loose(dir), 1);
    assert_int_equal(ll_gitpack_add_memstore(&mem, repo), 0);

    for (int i = 0; i < commits; i++) {
        commit_one(&head, repo, i ? &prev : NULL, i);
        assert_int_equal(count_loose(dir), 1); /* written to memory only */
        if (i % 7 == 3) {
            /* A batch that is thrown away (not stored, never pushed). */
            git_oid dropped;
            git_odb *odb = NULL;
            commit_one(&dropped, repo, &head, 1000 + i);
            ll_gitpack_discard(mem);
            assert_int_equal(git_repository_odb(&odb, repo), 0);
            assert_false(git_odb_exists(odb, &dropped));
            assert_false(git_odb_exists(odb, &head)); /* discarded with it */
            git_odb_free(odb);
            commit_one(&head, repo, i ? &prev : NULL, i); /* the same again */
        }
        assert_int_equal(ll_gitpack_store(repo, mem, dir), 0);
        assert_int_equal(ll_gitpack_count(dir), (size_t)i + 1); /* one pack per store */
        prev = head;
    }
    assert_int_equal(ll_gitpack_store(repo, mem, dir), 0); /* nothing new: no pack */
    assert_int_equal(ll_gitpack_count(dir), (size_t)commits);

    /* git rolls them up (and the loose blob) while the store's handle is
     * open; a fresh handle reads every commit and file of the history. */
    assert_int_equal(ll_gitpack_repack(dir), 0);
    assert_true(ll_gitpack_count(dir) <= 6);
    assert_int_equal(count_loose(dir), 0);
    assert_int_equal(git_repository_open_bare(&check, dir), 0);
    git_oid at = head;
    for (int i = commits - 1; i >= 0; i--) {
        git_commit *c = NULL;
        git_tree *t = NULL;
        assert_int_equal(git_commit_lookup(&c, check, &at), 0);
        assert_int_equal(git_commit_tree(&t, c), 0);
        assert_int_equal(git_tree_entrycount(t), (size_t)i + 1);
        for (size_t k = 0; k < git_tree_entrycount(t); k++) {
            git_blob *b = NULL;
            const git_oid *id = git_tree_entry_id(git_tree_entry_byindex(t, k));
            assert_int_equal(git_blob_lookup(&b, check, id), 0);
            git_blob_free(b);
        }
        if (i > 0)
            git_oid_cpy(&at, git_commit_parent_id(c, 0));
        git_tree_free(t);
        git_commit_free(c);
    }
    git_blob *lb = NULL;
    assert_int_equal(git_blob_lookup(&lb, check, &loose), 0); /* nothing pruned */
    git_blob_free(lb);
    /* The writer's handle, opened before the repack, still reads (libgit2
     * looks in the new pack when the removed ones fail). */
    git_commit *c = NULL;
    assert_int_equal(git_commit_lookup(&c, repo, &head), 0);
    git_commit_free(c);

    git_repository_free(check);
    git_repository_free(repo);
    assert_int_equal(ut_remove_tree(dir), 0);
}

static void test_repack_names_the_failure(void **state)
{
    (void)state;
    /* Not a repository: git's own message comes back. */
    assert_int_equal(ll_gitpack_repack("/nonexistent/landlord-gitpack"), -1);
    assert_non_null(
        strstr(ll_error_last()->message, "git repack of /nonexistent/landlord-gitpack"));
}

int main(void)
{
    git_libgit2_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_and_repack),
        cmocka_unit_test(test_repack_names_the_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return rc;
}

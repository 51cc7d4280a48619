/* Unit tests of lib/gitpack.c: which packs a geometric merge takes, the
 * in-memory object store, and that storing and merging keep every object
 * the refs reach while the repository stays a few packs and no loose
 * objects. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <dirent.h>
#include <ftw.h>
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

#include "gitpack.h"

static void test_split(void **state)
{
    (void)state;
    static const struct {
        uint64_t sizes[8];
        size_t n, want;
    } cases[] = {
        {{0}, 0, 0},                        /* no pack */
        {{10}, 1, 0},                       /* one pack */
        {{10, 100}, 2, 0},                  /* already a progression */
        {{1, 2, 4, 8}, 4, 0},               /* exactly factor 2 */
        {{10, 12}, 2, 2},                   /* two alike: merge both */
        {{1, 1, 1, 100}, 4, 3},             /* small ones under a big one */
        {{5, 5, 5, 5, 5, 100}, 6, 5},       /* 25 merged stays under half of 100 */
        {{30, 30, 100}, 3, 3},              /* 60 merged is over half of 100: all */
        {{1, 50, 60, 1000, 5000}, 5, 3},    /* 1, 50, 60 merge; 111 vs 1000 is fine */
        {{100, 300, 900, 2000, 2100}, 5, 5} /* the top pair breaks: everything */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = ll_gitpack_split(cases[i].sizes, cases[i].n);
        if (got != cases[i].want)
            fail_msg("case %zu: split %zu, want %zu", i, got, cases[i].want);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

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

static void test_store_and_merge(void **state)
{
    (void)state;
    char dir[] = "/tmp/landlord-gitpack-XXXXXX", packdir[1200];
    git_repository *repo = NULL, *check = NULL;
    git_odb_backend *mem = NULL;
    git_oid head, prev;
    int changed = 0, merges = 0;
    const int commits = 60;

    assert_non_null(mkdtemp(dir));
    snprintf(packdir, sizeof(packdir), "%s/objects/pack", dir);
    assert_int_equal(git_repository_init(&repo, dir, 1), 0);
    /* A loose object written the usual way, before the store exists. */
    git_oid loose;
    assert_int_equal(git_blob_create_from_buffer(&loose, repo, "loose\n", 6), 0);
    assert_int_equal(count_loose(dir), 1);
    assert_int_equal(ll_gitpack_add_memstore(&mem, repo), 0);

    for (int i = 0; i < commits; i++) {
        commit_one(&head, repo, i ? &prev : NULL, i);
        /* Written to memory only (the loose blob is packed by the first
         * maintenance, which looks for loose objects). */
        assert_int_equal(count_loose(dir), i == 0 ? 1 : 0);
        if (i % 7 == 3) {
            /* A commit that is thrown away (a refused push). */
            git_oid dropped;
            commit_one(&dropped, repo, &head, 1000 + i);
            ll_gitpack_discard(mem);
            git_odb *odb = NULL;
            assert_int_equal(git_repository_odb(&odb, repo), 0);
            assert_false(git_odb_exists(odb, &dropped));
            git_odb_free(odb);
            commit_one(&head, repo, i ? &prev : NULL, i); /* the same again */
        }
        assert_int_equal(ll_gitpack_store(repo, mem, dir), 0);
        git_reference *ref = NULL;
        assert_int_equal(
            git_reference_create(&ref, repo, "refs/remotes/origin/main", &head, 1, NULL), 0);
        git_reference_free(ref);
        prev = head;
        assert_int_equal(ll_gitpack_maintain(&changed, dir, "refs/remotes/*", 8, i == 0), 0);
        if (changed) {
            merges++;
            /* Handles opened before a merge are opened anew, as the writer
             * does. */
            git_repository_free(repo);
            assert_int_equal(git_repository_open_bare(&repo, dir), 0);
            assert_int_equal(ll_gitpack_add_memstore(&mem, repo), 0);
        }
        assert_true(count_files(packdir, ".pack") < 8 + 1);
    }
    assert_true(merges > 0);
    assert_int_equal(count_loose(dir), 0); /* the loose blob was packed */

    /* A fresh handle reads every commit and every file of the history. */
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
            assert_int_equal(
                git_blob_lookup(&b, check, git_tree_entry_id(git_tree_entry_byindex(t, k))), 0);
            git_blob_free(b);
        }
        if (i > 0)
            git_oid_cpy(&at, git_commit_parent_id(c, 0));
        git_tree_free(t);
        git_commit_free(c);
    }
    git_repository_free(check);
    git_repository_free(repo);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    git_libgit2_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_store_and_merge),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    git_libgit2_shutdown();
    return rc;
}

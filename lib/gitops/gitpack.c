/* gitpack.c - keeping a repository's object store small.
 *
 * Why.  Written the usual way (loose objects, one zlib file each), every
 * commit of the writer leaves its new trees and blobs on disk for ever: a
 * tier's tree of thousands of entries is rewritten by each commit, so the
 * clone grew by megabytes a minute under load and was never packed.
 *
 * How.  The writer's repository handle gets an object store in memory
 * (ll_gitpack_add_memstore) that takes every write.  Before a commit is
 * pushed, exactly the objects written since the last store become one pack
 * (ll_gitpack_store: libgit2's packbuilder, which finds deltas among them,
 * and its indexer), so each batch adds one small file.
 *
 * Packs then gather, one per batch; ll_gitpack_repack() has git merge
 * them: `git repack -d --geometric=2` rolls up the small packs (and any
 * loose objects) until each pack holds at least twice the objects of the
 * next smaller, so a repository of N objects has about log2(N) packs and
 * each object is rewritten a few times in all.  git, not libgit2: git's
 * pack-objects reuses the deltas the packs already hold, where libgit2's
 * packbuilder recomputes every one (merging 21,000 objects took git 0.6 s
 * and 17 MB, libgit2 3.2 s and 50 MB, for a pack 1.5 times as big).  A
 * geometric repack keeps every object of the packs it merges, reachable or
 * not, so it is safe while the writer adds packs; what a refused push left
 * (a commit and the few objects not already there) stays.
 *
 * Threads: a repository handle (and its store) belongs to one thread;
 * repack runs git in a child process and may run on any thread.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gitpack.h"
#include "landlord/error.h"
#include "landlord/log.h"

/* Formats a path into out; -1 when it does not fit (nothing is done with a
 * cut path). */
__attribute__((format(printf, 3, 4))) static int pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int git_fail(const char *what)
{
    const git_error *e = git_error_last();
    return ll_error_set(-1, "git: %s: %s", what, e && e->message ? e->message : "unknown error");
}

/* --- the in-memory object store ------------------------------------------
 *
 * libgit2's own mempack cannot serve: its dump packs everything the new
 * commits reach (the whole tree, every tenant file), not the new objects.
 * This store keeps each written object in a hash table and in write order,
 * so store() packs exactly what was written. */

typedef struct memobj {
    git_oid oid;
    git_object_t type;
    size_t len;
    struct memobj *next_in_bucket, *next;
    unsigned char data[];
} memobj;

typedef struct memstore {
    git_odb_backend parent;
    memobj **buckets;
    size_t nbuckets, count;
    memobj *first, *last; /* write order */
} memstore;

static size_t bucket_of(const memstore *m, const git_oid *id)
{
    size_t h;
    memcpy(&h, id->id, sizeof(h)); /* object ids are uniformly distributed */
    return h & (m->nbuckets - 1);
}

static memobj *mem_find(const memstore *m, const git_oid *id)
{
    for (memobj *o = m->buckets[bucket_of(m, id)]; o; o = o->next_in_bucket)
        if (git_oid_equal(&o->oid, id))
            return o;
    return NULL;
}

static int mem_read(void **out, size_t *out_len, git_object_t *out_type, git_odb_backend *b,
                    const git_oid *id)
{
    memobj *o = mem_find((memstore *)b, id);
    if (!o)
        return GIT_ENOTFOUND;
    if (!(*out = git_odb_backend_data_alloc(b, o->len ? o->len : 1)))
        return -1;
    memcpy(*out, o->data, o->len);
    *out_len = o->len;
    *out_type = o->type;
    return 0;
}

static int mem_read_header(size_t *out_len, git_object_t *out_type, git_odb_backend *b,
                           const git_oid *id)
{
    memobj *o = mem_find((memstore *)b, id);
    if (!o)
        return GIT_ENOTFOUND;
    *out_len = o->len;
    *out_type = o->type;
    return 0;
}

static int mem_exists(git_odb_backend *b, const git_oid *id)
{
    return mem_find((memstore *)b, id) != NULL;
}

static int mem_grow(memstore *m)
{
    size_t n = m->nbuckets * 2;
    memobj **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return -1;
    memobj **old = m->buckets;
    size_t oldn = m->nbuckets;
    m->buckets = nb;
    m->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (memobj *o = old[i], *next; o; o = next) {
            next = o->next_in_bucket;
            size_t k = bucket_of(m, &o->oid);
            o->next_in_bucket = nb[k];
            nb[k] = o;
        }
    }
    free(old);
    return 0;
}

static int mem_write(git_odb_backend *b, const git_oid *id, const void *data, size_t len,
                     git_object_t type)
{
    memstore *m = (memstore *)b;
    memobj *o;

    if (mem_find(m, id))
        return 0;
    if (m->count >= m->nbuckets && mem_grow(m) < 0)
        return -1;
    if (!(o = malloc(sizeof(*o) + len)))
        return -1;
    git_oid_cpy(&o->oid, id);
    o->type = type;
    o->len = len;
    memcpy(o->data, data, len);
    size_t k = bucket_of(m, id);
    o->next_in_bucket = m->buckets[k];
    m->buckets[k] = o;
    o->next = NULL;
    if (m->last)
        m->last->next = o;
    else
        m->first = o;
    m->last = o;
    m->count++;
    return 0;
}

static void mem_clear(memstore *m)
{
    for (memobj *o = m->first, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    memset(m->buckets, 0, m->nbuckets * sizeof(*m->buckets));
    m->first = m->last = NULL;
    m->count = 0;
}

static void mem_free(git_odb_backend *b)
{
    memstore *m = (memstore *)b;
    mem_clear(m);
    free(m->buckets);
    free(m);
}

int ll_gitpack_add_memstore(git_odb_backend **out, git_repository *repo)
{
    memstore *m = calloc(1, sizeof(*m));
    git_odb *odb = NULL;
    int error = -1;

    *out = NULL;
    if (!m || !(m->buckets = calloc(m->nbuckets = 1024, sizeof(*m->buckets)))) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    git_odb_init_backend(&m->parent, GIT_ODB_BACKEND_VERSION);
    m->parent.read = mem_read;
    m->parent.read_header = mem_read_header;
    m->parent.exists = mem_exists;
    m->parent.write = mem_write;
    m->parent.free = mem_free;
    if (git_repository_odb(&odb, repo) < 0 || git_odb_add_backend(odb, &m->parent, 999) < 0) {
        error = git_fail("cannot add the in-memory object store");
        goto done;
    }
    *out = &m->parent;
    m = NULL; /* the database owns it */
    error = 0;
done:
    if (m)
        mem_free(&m->parent);
    git_odb_free(odb);
    return error;
}

void ll_gitpack_discard(git_odb_backend *mem)
{
    if (mem)
        mem_clear((memstore *)mem);
}

int ll_gitpack_store(git_repository *repo, git_odb_backend *mem, const char *git_dir)
{
    memstore *m = (memstore *)mem;
    git_packbuilder *pb = NULL;
    char packdir[4096];
    int error = -1;

    if (!m->count)
        return 0;
    if (pathf(packdir, sizeof(packdir), "%s/objects/pack", git_dir) < 0)
        return ll_error_set(LL_EINVALID, "path too long: %s", git_dir);
    if (git_packbuilder_new(&pb, repo) < 0) {
        error = git_fail("cannot pack the new objects");
        goto done;
    }
    git_packbuilder_set_threads(pb, 1);
    for (memobj *o = m->first; o; o = o->next) {
        if (git_packbuilder_insert(pb, &o->oid, NULL) < 0) {
            error = git_fail("cannot pack a new object");
            goto done;
        }
    }
    if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
        error = git_fail("cannot store the new objects as a pack");
        goto done;
    }
    mem_clear(m);
    error = 0;
done:
    git_packbuilder_free(pb);
    return error;
}

size_t ll_gitpack_count(const char *git_dir)
{
    char dir[4096];
    struct dirent *e;
    DIR *d;
    size_t n = 0;

    if (pathf(dir, sizeof(dir), "%s/objects/pack", git_dir) < 0 || !(d = opendir(dir)))
        return 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".pack") == 0)
            n++;
    }
    closedir(d);
    return n;
}

int ll_gitpack_repack(const char *git_dir)
{
    /* No user or system config (a signing or hook setting must not reach
     * landlord's clone), no bitmaps (a bare repository would write them by
     * default, and they need a single pack), no info/refs (for dumb http
     * servers: nobody serves the clone). */
    char *argv[] = {"git",
                    "-c",
                    "repack.writeBitmaps=false",
                    "-c",
                    "repack.updateServerInfo=false",
                    "-c",
                    "gc.auto=0",
                    "--git-dir",
                    (char *)git_dir,
                    "repack",
                    "-d",
                    "-q",
                    "--geometric=2",
                    NULL};
    char path_env[4096], *envp[] = {path_env, "GIT_CONFIG_NOSYSTEM=1",
                                    "GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C", NULL};
    const char *path = getenv("PATH");
    posix_spawn_file_actions_t fa;
    int out[2] = {-1, -1}, status = 0, error = -1;
    char err[512] = "";
    size_t got = 0;
    pid_t pid;

    snprintf(path_env, sizeof(path_env), "PATH=%s", path ? path : "/usr/bin:/bin");
    if (pipe2(out, O_CLOEXEC) < 0)
        return ll_error_set(-1, "git repack: cannot make a pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    int rc = posix_spawnp(&pid, "git", &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return ll_error_set(rc == ENOENT ? LL_ENOTFOUND : -1, "git repack: cannot run git: %s",
                            strerror(rc));
    }
    /* Its error output, at most the first 511 bytes, the rest drained. */
    for (;;) {
        char buf[512];
        ssize_t n = read(out[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < sizeof(err) - 1 - got ? (size_t)n : sizeof(err) - 1 - got;
        memcpy(err + got, buf, take);
        got += take;
    }
    err[got] = '\0';
    close(out[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return ll_error_set(-1, "git repack: cannot wait for git: %s", strerror(errno));
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        error = 0;
    else {
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        error = ll_error_set(-1, "git repack of %s failed (%s %d): %s", git_dir,
                             WIFEXITED(status) ? "exit" : "signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                             err[0] ? err : "no message");
    }
    return error;
}

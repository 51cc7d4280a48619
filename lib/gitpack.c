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
 * ll_gitpack_maintain() merges small packs the way `git repack
 * --geometric=2` chooses them: sorted by size, the smallest ones that break
 * "each pack is at least twice the next smaller" are packed into one,
 * together with any larger pack the merged one would not be twice as big
 * as.  A merge that takes in every pack packs only what the remote-tracking
 * refs reach (so objects of refused pushes go); other merges keep every
 * object of the packs they merge.  The new pack is complete (renamed into
 * place by libgit2's indexer) before the merged files are removed, so a
 * crash leaves at worst objects twice.
 *
 * Packbuilder memory is bounded by pack.deltaCacheSize and
 * pack.windowMemory, which the writer sets in its clone's config.
 *
 * Threads: a repository handle belongs to one thread; maintain opens its
 * own handle on the directory and frees it before returning.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitpack.h"
#include "landlord/error.h"
#include "landlord/log.h"

/* Loose objects merged at most per maintenance (a clone of an earlier
 * version may hold hundreds of thousands: they go over several rounds). */
#define LOOSE_MAX 200000

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

size_t ll_gitpack_split(const uint64_t *sizes, size_t n)
{
    size_t i, split;
    uint64_t total = 0;

    if (n < 2)
        return 0;
    /* From the top: the first pair where the larger is not twice the
     * smaller breaks the progression; it and everything below merge. */
    for (i = n - 1; i > 0; i--) {
        if (sizes[i] < 2 * sizes[i - 1])
            break;
    }
    split = i ? i + 1 : 0;
    for (i = 0; i < split; i++)
        total += sizes[i];
    /* The merged pack must itself be at most half the next one. */
    for (i = split; i < n && split; i++) {
        if (sizes[i] >= 2 * total)
            break;
        split++;
        total += sizes[i];
    }
    return split > 1 ? split : 0;
}

typedef struct pack_file {
    char *base; /* .../objects/pack/pack-<sha>, without extension */
    uint64_t size;
} pack_file;

static int by_size(const void *a, const void *b)
{
    const pack_file *x = a, *y = b;
    return x->size < y->size ? -1 : x->size > y->size;
}

static void free_packs(pack_file *packs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(packs[i].base);
    free(packs);
}

/* The packs in dir that have an index and no .keep, by size ascending. */
static int list_packs(pack_file **out, size_t *out_n, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    pack_file *packs = NULL;
    size_t n = 0, cap = 0;
    char path[4096];
    struct stat st;

    *out = NULL;
    *out_n = 0;
    if (!d)
        return errno == ENOENT ? 0 : ll_error_set(-1, "cannot read %s: %s", dir, strerror(errno));
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".pack") != 0)
            continue;
        if (pathf(path, sizeof(path), "%s/%.*s.keep", dir, (int)(len - 5), e->d_name) < 0 ||
            access(path, F_OK) == 0)
            continue;
        if (pathf(path, sizeof(path), "%s/%.*s.idx", dir, (int)(len - 5), e->d_name) < 0 ||
            access(path, F_OK) != 0)
            continue; /* being written by an indexer */
        if (pathf(path, sizeof(path), "%s/%s", dir, e->d_name) < 0 || stat(path, &st) < 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            pack_file *np = realloc(packs, ncap * sizeof(*np));
            if (!np)
                goto oom;
            packs = np;
            cap = ncap;
        }
        if (!(packs[n].base = strndup(path, strlen(path) - 5)))
            goto oom;
        packs[n++].size = (uint64_t)st.st_size;
    }
    closedir(d);
    qsort(packs, n, sizeof(*packs), by_size);
    *out = packs;
    *out_n = n;
    return 0;
oom:
    closedir(d);
    free_packs(packs, n);
    return ll_error_set(-1, "out of memory");
}

/* The object ids a backend holds, appended to an array. */
typedef struct oids {
    git_oid *v;
    size_t n, cap, max;
} oids;

static int collect_oid(const git_oid *id, void *payload)
{
    oids *o = payload;
    if (o->n >= o->max)
        return 1; /* enough for this round */
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 1024;
        git_oid *nv = realloc(o->v, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        o->v = nv;
        o->cap = ncap;
    }
    git_oid_cpy(&o->v[o->n++], id);
    return 0;
}

static int insert_all(git_packbuilder *pb, const oids *o)
{
    for (size_t i = 0; i < o->n; i++) {
        if (git_packbuilder_insert(pb, &o->v[i], NULL) < 0)
            return git_fail("cannot pack an object");
    }
    return 0;
}

/* Every object of the pack with this base name (borrowed ids in o). */
static int pack_objects(oids *o, const char *base)
{
    char idx[4096];
    git_odb_backend *b = NULL;
    int error;

    if (pathf(idx, sizeof(idx), "%s.idx", base) < 0 || git_odb_backend_one_pack(&b, idx) < 0)
        return git_fail("cannot open a pack");
    error = b->foreach (b, collect_oid, o);
    b->free(b);
    return error < 0 && error != 1 ? git_fail("cannot list a pack") : 0;
}

static void remove_loose(const char *objects, const oids *o)
{
    char path[4096], hex[GIT_OID_HEXSZ + 1];
    for (size_t i = 0; i < o->n; i++) {
        git_oid_tostr(hex, sizeof(hex), &o->v[i]);
        if (pathf(path, sizeof(path), "%s/%.2s/%s", objects, hex, hex + 2) == 0)
            unlink(path);
        if (pathf(path, sizeof(path), "%s/%.2s", objects, hex) == 0)
            rmdir(path); /* when it became empty */
    }
}

int ll_gitpack_maintain(int *out_changed, const char *git_dir, const char *refs, size_t min_packs,
                        int loose)
{
    git_repository *repo = NULL;
    git_packbuilder *pb = NULL;
    git_revwalk *walk = NULL;
    git_odb_backend *lb = NULL;
    pack_file *packs = NULL;
    oids objs = {NULL, 0, 0, (size_t)-1}, loose_objs = {NULL, 0, 0, LOOSE_MAX};
    uint64_t *sizes = NULL;
    char objects[4096], packdir[4096];
    size_t n = 0, split;
    int error = -1;

    *out_changed = 0;
    if (pathf(objects, sizeof(objects), "%s/objects", git_dir) < 0 ||
        pathf(packdir, sizeof(packdir), "%s/pack", objects) < 0) {
        error = ll_error_set(LL_EINVALID, "path too long: %s", git_dir);
        goto done;
    }
    if ((error = list_packs(&packs, &n, packdir)) < 0)
        goto done;
    if (loose) {
        if (git_odb_backend_loose(&lb, objects, -1, 0, 0, 0) < 0) {
            error = git_fail("cannot read the loose objects");
            goto done;
        }
        error = lb->foreach (lb, collect_oid, &loose_objs);
        if (error < 0 && error != 1) {
            error = git_fail("cannot list the loose objects");
            goto done;
        }
    }
    if (!(sizes = calloc(n ? n : 1, sizeof(*sizes)))) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        sizes[i] = packs[i].size;
    split = n >= min_packs ? ll_gitpack_split(sizes, n) : 0;
    if (!split && !loose_objs.n) {
        error = 0;
        goto done;
    }
    if (git_repository_open_bare(&repo, git_dir) < 0 || git_packbuilder_new(&pb, repo) < 0) {
        error = git_fail("cannot open the repository to pack it");
        goto done;
    }
    if (split == n && n > 0) {
        /* Everything: what the refs reach, with paths as delta hints. */
        if (git_revwalk_new(&walk, repo) < 0 || git_revwalk_push_glob(walk, refs) < 0 ||
            git_packbuilder_insert_walk(pb, walk) < 0) {
            error = git_fail("cannot walk the history to pack it");
            goto done;
        }
    } else {
        for (size_t i = 0; i < split; i++) {
            if ((error = pack_objects(&objs, packs[i].base)) < 0)
                goto done;
        }
        if ((error = insert_all(pb, &objs)) < 0)
            goto done;
    }
    if ((error = insert_all(pb, &loose_objs)) < 0)
        goto done;
    if (git_packbuilder_object_count(pb) == 0) {
        /* Nothing reachable (no ref yet): remove nothing. */
        error = 0;
        goto done;
    }
    if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
        error = git_fail("cannot write the merged pack");
        goto done;
    }
    /* The merged pack is in place: the files it replaces can go.  Its own
     * name is the hash of its content, so it is never one of them unless
     * the content is the same (then it stays). */
    const git_oid *made = git_packbuilder_hash(pb);
    char made_hex[GIT_OID_HEXSZ + 1] = "";
    if (made)
        git_oid_tostr(made_hex, sizeof(made_hex), made);
    for (size_t i = 0; i < split; i++) {
        char path[4200];
        size_t blen = strlen(packs[i].base);
        if (made_hex[0] && blen >= GIT_OID_HEXSZ &&
            strcmp(packs[i].base + blen - GIT_OID_HEXSZ, made_hex) == 0)
            continue;
        if (pathf(path, sizeof(path), "%s.idx", packs[i].base) == 0)
            unlink(path);
        if (pathf(path, sizeof(path), "%s.pack", packs[i].base) == 0)
            unlink(path);
    }
    remove_loose(objects, &loose_objs);
    ll_log_debug("msg=\"packs merged\" dir=%s packs=%zu of %zu loose=%zu objects=%zu", git_dir,
                 split, n, loose_objs.n, git_packbuilder_object_count(pb));
    *out_changed = 1;
    error = 0;
done:
    if (lb)
        lb->free(lb);
    git_revwalk_free(walk);
    git_packbuilder_free(pb);
    git_repository_free(repo);
    free(objs.v);
    free(loose_objs.v);
    free(sizes);
    free_packs(packs, n);
    return error;
}

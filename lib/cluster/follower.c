/* follower.c - the status follower thread: from the registry, the clone
 * and the cache to each tenant's state, and its transitions to events.
 *
 * Every POLL_MS or when woken (every SYNC_POLL_MS while a watch has not
 * listed yet) one round (follow):
 * - reads tenants changed in the registry since its watermark, and each
 *   changed tenant's file at its desired commit from landlord's clone
 *   (which objects it declares: st_declared);
 * - asks Flux to reconcile when the branch moved (reconcile_now);
 * - takes at most WORK_MAX dirty tenants, decides whether the commits Flux
 *   fetched and applied include each one's desired commit (a revwalk from
 *   the applied revision, cached per revision), derives their states
 *   (st_derive) and keeps each verdict in the tenant's record;
 * - records the transitions as ll_transition records in one registry
 *   transaction.  Transitions the registry cannot take (a full volume) are
 *   kept and stored first in the next rounds, so events are late, never
 *   lost.
 *
 * Threads: the clone (s->repo), the registry connection (s->reg) and the
 * walk cache belong to this thread; it takes s->lock only to copy inputs
 * and to store results, never across git or SQLite work.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "landlord/worker.h"
#include "status_int.h"

#define POLL_MS            250
#define SYNC_POLL_MS       20 /* while a watch has not listed yet */
#define WALK_MAX           20000
#define FILE_MAX           (1 << 20)
#define EVENTS_KEPT        100000
#define EVENTS_PRUNE_EVERY 1000
#define WORK_MAX           500
#define UNSTORED_MAX       10000 /* transitions kept while they cannot be stored */

static void set_text(char *to, size_t cap, const char *from)
{
    snprintf(to, cap, "%s", from ? from : "");
}

/* --- what the cluster has: revisions and ancestry ---------------------------------- */

/* The commit sha in a Flux revision ("main@sha1:<hex>", "sha1:<hex>", or a
 * bare hex); "" when there is none. */
static void revision_sha(char out[GIT_OID_HEXSZ + 1], const char *rev)
{
    const char *colon = rev ? strrchr(rev, ':') : NULL;
    const char *hex = colon ? colon + 1 : rev;
    out[0] = '\0';
    if (hex && strlen(hex) == GIT_OID_HEXSZ)
        snprintf(out, GIT_OID_HEXSZ + 1, "%s", hex);
}

/* 1 when commit c is a, or an ancestor of a, in landlord's clone. */
static int includes(ll_status *s, const char *a, const char *c)
{
    git_oid ao, co;
    if (!a[0] || !c || !c[0])
        return 0;
    if (strcmp(a, c) == 0)
        return 1;
    if (git_oid_fromstr(&ao, a) < 0 || git_oid_fromstr(&co, c) < 0)
        return 0;
    if (strcmp(s->walk_of, a) != 0) {
        git_revwalk *walk = NULL;
        git_oid oid;
        int n = 0, rc = 0;
        json_decref(s->walk);
        s->walk = json_object();
        s->walk_complete = 0;
        s->walk_of[0] = '\0';
        if (git_revwalk_new(&walk, s->repo) < 0 || git_revwalk_push(walk, &ao) < 0) {
            git_revwalk_free(walk);
            return 0; /* not in the clone yet: fetched later */
        }
        while (n < WALK_MAX && (rc = git_revwalk_next(&oid, walk)) == 0) {
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr(hex, sizeof(hex), &oid);
            json_object_set_new(s->walk, hex, json_true());
            n++;
        }
        s->walk_complete = rc == GIT_ITEROVER;
        git_revwalk_free(walk);
        snprintf(s->walk_of, sizeof(s->walk_of), "%s", a);
    }
    if (json_object_get(s->walk, c))
        return 1;
    if (s->walk_complete)
        return 0;
    return git_graph_descendant_of(s->repo, &ao, &co) == 1;
}

/* --- the tenants: the registry's rows and their files ------------------------------ */

/* The objects path declares at commit sha (or its first parent) into
 * *out (new); -1 when it cannot be read there. */
static int read_declared(st_objects *out, ll_status *s, const char *sha, const char *path,
                         int parent)
{
    git_oid oid;
    git_commit *commit = NULL, *up = NULL;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    git_blob *blob = NULL;
    int error = -1;

    if (git_oid_fromstr(&oid, sha) < 0 || git_commit_lookup(&commit, s->repo, &oid) < 0)
        goto done;
    if (parent) {
        if (git_commit_parent(&up, commit, 0) < 0)
            goto done;
        git_commit_free(commit);
        commit = up;
    }
    if (git_commit_tree(&tree, commit) < 0 || git_tree_entry_bypath(&entry, tree, path) < 0 ||
        git_blob_lookup(&blob, s->repo, git_tree_entry_id(entry)) < 0 ||
        git_blob_rawsize(blob) > FILE_MAX)
        goto done;
    error = st_declared(out, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
done:
    git_blob_free(blob);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(commit);
    return error;
}

/* The objects a registry row's file declares at its desired commit into
 * *out: 1 when read, 0 when an active tenant's file cannot be read, -1
 * when a tenant being removed has no file to read (nothing changes). */
static int read_row_file(st_objects *out, ll_status *s, const ll_tenant_record *row)
{
    const char *commit = row->commit;
    int gone = row->lifecycle != LL_TENANT_ACTIVE;
    char file[1024];

    if (row->path)
        snprintf(file, sizeof(file), "%s", row->path);
    else
        ll_tenant_file_path(file, sizeof(file), s->root, s->sharded, row->tier, row->id);
    /* An offboarding commit removed the file: its objects are the ones the
     * file declared just before. */
    if (read_declared(out, s, commit, file, 0) == 0 ||
        (gone && read_declared(out, s, commit, file, 1) == 0))
        return 1;
    return gone ? -1 : 0;
}

/* Under lock: tenant id owns the objects in now, no longer those in old.
 * owners: "Kind key" -> id. */
static void set_owners(ll_status *s, const char *id, const st_objects *old, const st_objects *now)
{
    char key[600];
    for (size_t i = 0; i < old->n; i++) {
        snprintf(key, sizeof(key), "%s %s", st_kind_name(old->v[i].kind), old->v[i].key);
        const char *owner = json_string_value(json_object_get(s->owners, key));
        if (owner && strcmp(owner, id) == 0)
            json_object_del(s->owners, key);
    }
    for (size_t i = 0; i < now->n; i++) {
        snprintf(key, sizeof(key), "%s %s", st_kind_name(now->v[i].kind), now->v[i].key);
        json_object_set_new(s->owners, key, json_string(id));
    }
}

/* Under lock: tenant id's record as registry row shows it (added when
 * new); objects (stolen; read: 1, unreadable: 0, none: -1, as
 * read_row_file says) when its file was read.  -1 when out of memory. */
static int update_record(ll_status *s, const ll_tenant_record *row, st_objects *objects, int read)
{
    const char *id = row->id, *commit = row->commit;
    trec *r = st_tmap_get(&s->tenants, id);
    if (!r) {
        if (!(r = st_tmap_add(&s->tenants, id)))
            return -1;
        /* What was derived before a restart: not a transition. */
        if (ll_tenant_state_parse(&r->state, row->observed_state) == 0)
            set_text(r->since, sizeof(r->since), row->observed_since);
    }
    set_text(r->lifecycle, sizeof(r->lifecycle), ll_tenant_lifecycle_name(row->lifecycle));
    set_text(r->sync, sizeof(r->sync), ll_tenant_sync_name(row->sync));
    set_text(r->commit, sizeof(r->commit), commit);
    if (read >= 0) {
        set_owners(s, id, &r->objects, objects);
        st_objects_clear(&r->objects);
        r->objects = *objects;
        objects->v = NULL;
        objects->n = 0;
        set_text(r->objects_at, sizeof(r->objects_at), commit);
        r->unreadable = (unsigned char)(read == 0);
        r->applied_at[0] = '\0';
    }
    st_mark(s, id);
    return 0;
}

/* Reads tenants changed in the registry; reads the files of those whose
 * desired commit moved.  Follower thread. */
static void load_tenants(ll_status *s)
{
    ll_tenant_record *rows = NULL;
    size_t n = 0;

    if (!s->reg) {
        if (ll_registry_open(&s->reg, s->db_path) < 0)
            return;
        /* It writes observed states and events, which tenant answers take
         * from memory, not from rows: no need to move the generation. */
        ll_registry_set_quiet(s->reg, 1);
    }
    long long seq = s->seq;
    if (ll_registry_tenants_changed(&rows, &n, &seq, s->reg) < 0)
        return;
    if (seq > s->seq && seq > 0)
        ll_registry_tenant_changes_prune(s->reg, seq);
    s->seq = seq;
    for (size_t i = 0; i < n; i++) {
        const ll_tenant_record *row = &rows[i];
        const char *id = row->id, *commit = row->commit;
        st_objects objects = {NULL, 0};
        int read = -1;

        pthread_mutex_lock(&s->lock);
        const trec *r = st_tmap_get(&s->tenants, id);
        int need = commit && (!r || !r->objects_at[0] || strcmp(r->objects_at, commit) != 0);
        pthread_mutex_unlock(&s->lock);
        /* git work without the lock */
        if (need)
            read = read_row_file(&objects, s, row);
        pthread_mutex_lock(&s->lock);
        update_record(s, row, &objects, read);
        pthread_mutex_unlock(&s->lock);
        st_objects_clear(&objects);
    }
    ll_tenant_records_free(rows, n);
}

static void ask_reconcile(ll_status *s)
{
    git_oid oid;
    char ref[300], sha[GIT_OID_HEXSZ + 1], path[600], stamp[32];

    snprintf(ref, sizeof(ref), "refs/remotes/origin/%s", s->branch);
    if (git_reference_name_to_id(&oid, s->repo, ref) < 0)
        return;
    git_oid_tostr(sha, sizeof(sha), &oid);
    if (strcmp(sha, s->head) == 0)
        return;
    int first = !s->head[0];
    snprintf(s->head, sizeof(s->head), "%s", sha);
    if (first || !s->reconcile_now)
        return;
    ll_now_rfc3339(stamp);
    snprintf(path, sizeof(path),
             "/apis/source.toolkit.fluxcd.io/v1/namespaces/%s/gitrepositories/%s", s->flux_ns,
             s->gitrepo);
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations",
                              "reconcile.fluxcd.io/requestedAt", stamp);
    if (ll_kube_merge_patch(NULL, s->kube, path, patch) < 0) {
        ll_log_warn("msg=\"cannot ask Flux to reconcile\" error=\"%s\"", ll_error_last()->message);
    } else {
        ll_log_debug("msg=\"asked Flux to reconcile\" head=%s", sha);
        pthread_mutex_lock(&s->lock);
        snprintf(s->requested_at, sizeof(s->requested_at), "%s", stamp);
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(patch);
}

/* 1 when r is offboarded and read so, for its current desired state, and
 * nothing waits to be derived for it (see forget_offboarded).  Under lock. */
static int forgettable(ll_status *s, const trec *r)
{
    return strcmp(r->lifecycle, "offboarded") == 0 && r->state == LL_STATE_OFFBOARDED &&
           r->commit[0] && strcmp(r->state_commit, r->commit) == 0 &&
           strcmp(r->state_sync, r->sync) == 0 && !json_object_get(s->dirty, r->id);
}

/* Forgets the records of tenants that are offboarded and read so (their
 * state stored in the registry, nothing dirty) once there are enough of
 * them to be worth a rebuild of the map: every tenant ever onboarded would
 * otherwise keep ~630 bytes here and its owner entries for good (RSS grew
 * by a third over 50,000 writes with a cluster).  Without a record the
 * API reads an offboarded tenant's state from its registry row
 * (ll_status_describe); a tenant onboarded again gets a new record. */
static void forget_offboarded(ll_status *s)
{
    trec *r;
    size_t gone = 0;

    pthread_mutex_lock(&s->lock);
    if (s->n_unstored == 0) {
        TMAP_FOREACH(&s->tenants, r)
        gone += forgettable(s, r);
    }
    if (gone < 64 || gone * 8 < s->tenants.count) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    json_t *ids = json_object();
    tmap kept = {calloc(s->tenants.cap, sizeof(trec *)), s->tenants.cap, 0};
    if (!kept.slots || !ids) {
        free(kept.slots);
        json_decref(ids);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    TMAP_FOREACH(&s->tenants, r)
    {
        if (!forgettable(s, r)) {
            st_tmap_put(&kept, r);
            continue;
        }
        json_object_set_new(ids, r->id, json_true());
        st_trec_free(r);
    }
    free(s->tenants.slots);
    s->tenants = kept;
    const char *key;
    void *tmp;
    json_t *owner;
    json_object_foreach_safe(s->owners, tmp, key, owner)
    {
        if (json_object_get(ids, json_string_value(owner)))
            json_object_del(s->owners, key);
    }
    pthread_mutex_unlock(&s->lock);
    ll_log_debug("msg=\"forgot offboarded tenants\" count=%zu kept=%zu", json_object_size(ids),
                 kept.count);
    json_decref(ids);
}

/* --- one round ---------------------------------------------------------------------- */

/* Transitions, in order, owned (a growing array). */
typedef struct tlist {
    ll_transition *v;
    size_t n, cap;
} tlist;

/* Appends a copy of t; 0, or -1 when out of memory (t is then dropped). */
static int tlist_add(tlist *l, const ll_transition *t)
{
    if (ll_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
        return -1;
    l->v[l->n++] = *t;
    return 0;
}

/* What one round took under the lock and found without it. */
typedef struct round {
    json_t *work;    /* id -> true: the tenants derived this round */
    json_t *ks, *gr; /* the Kustomization and the GitRepository (slims), or NULL */
    json_t *commits; /* id -> its desired commit, when not known to be applied */
    json_t *facts;   /* id -> FACT_* bits for those commits */
    char applied[GIT_OID_HEXSZ + 1], attempted[GIT_OID_HEXSZ + 1], fetched[GIT_OID_HEXSZ + 1];
    int ks_ready, ks_failed;
    const char *ks_failure; /* what the Kustomization says of its failure (borrowed from ks) */
    tlist moved;            /* transitions derived this round */
} round;

enum { FACT_APPLIED = 1, FACT_FETCHED = 2, FACT_ATTEMPTED = 4 };

/* Under lock: the dirty tenants to derive this round (new reference), at
 * most WORK_MAX (the rest stay dirty for the next, which follows at once):
 * a start or relist of thousands of tenants then never builds thousands of
 * transitions at a time, whose garbage would be left between the records
 * that stay. */
static json_t *take_dirty(ll_status *s)
{
    const char *id;
    json_t *v, *work;
    trec *r;

    if (s->pending_dirty) {
        TMAP_FOREACH(&s->tenants, r)
        {
            if (!r->applied_at[0] || !r->commit[0] || strcmp(r->applied_at, r->commit) != 0)
                json_object_set_new(s->dirty, r->id, json_true());
        }
        s->pending_dirty = 0;
    }
    if (json_object_size(s->dirty) <= WORK_MAX) {
        work = s->dirty;
        s->dirty = json_object();
        return work;
    }
    void *it = json_object_iter(s->dirty);
    work = json_object();
    while (it && json_object_size(work) < WORK_MAX) {
        json_object_set(work, json_object_iter_key(it), json_object_iter_value(it));
        it = json_object_iter_next(s->dirty, it);
    }
    json_object_foreach(work, id, v) json_object_del(s->dirty, id);
    return work;
}

/* Under the lock: the work, the one Kustomization and GitRepository
 * (selected by name), and the desired commits to look for. */
static void take_inputs(round *rd, ll_status *s)
{
    const char *id;
    json_t *v;

    pthread_mutex_lock(&s->lock);
    rd->work = take_dirty(s);
    json_object_foreach(json_object_get(s->cache, "Kustomization"), id, v)
    {
        json_decref(rd->ks);
        rd->ks = st_unpack(v);
    }
    json_object_foreach(json_object_get(s->cache, "GitRepository"), id, v)
    {
        json_decref(rd->gr);
        rd->gr = st_unpack(v);
    }
    rd->commits = json_object();
    json_object_foreach(rd->work, id, v)
    {
        const trec *r = st_tmap_get(&s->tenants, id);
        if (r && r->commit[0] && (!r->applied_at[0] || strcmp(r->applied_at, r->commit) != 0))
            json_object_set_new(rd->commits, id, json_string(r->commit));
    }
    pthread_mutex_unlock(&s->lock);
}

/* Which desired commits the cluster has: git work, no lock. */
static void find_facts(round *rd, ll_status *s)
{
    const char *id;
    json_t *v;

    revision_sha(rd->applied, json_string_value(json_object_get(rd->ks, "lastAppliedRevision")));
    revision_sha(rd->attempted,
                 json_string_value(json_object_get(rd->ks, "lastAttemptedRevision")));
    revision_sha(rd->fetched, json_string_value(json_object_get(rd->gr, "revision")));
    const char *reason = st_cond_str(rd->ks, "Ready", "reason");
    rd->ks_ready = st_cond_is(rd->ks, "Ready", "True");
    rd->ks_failed =
        st_cond_is(rd->ks, "Ready", "False") && reason && strcmp(reason, "Progressing") != 0;
    rd->ks_failure = st_cond_str(rd->ks, "Ready", "message") ?: reason;
    rd->facts = json_object();
    json_object_foreach(rd->commits, id, v)
    {
        const char *c = json_string_value(v);
        int bits = (rd->ks_ready && includes(s, rd->applied, c) ? FACT_APPLIED : 0) |
                   (includes(s, rd->fetched, c) ? FACT_FETCHED : 0) |
                   (includes(s, rd->attempted, c) ? FACT_ATTEMPTED : 0);
        json_object_set_new(rd->facts, id, json_integer(bits));
    }
}

/* Under lock: what Flux handled and which revisions it fetched and
 * applied, for /readyz and the answers. */
static void note_revisions(ll_status *s, const round *rd)
{
    const char *handled = json_string_value(json_object_get(rd->gr, "lastHandledReconcileAt"));
    if (handled && strcmp(handled, s->handled_at) != 0) {
        snprintf(s->handled_at, sizeof(s->handled_at), "%s", handled);
        if (strcmp(handled, s->requested_at) == 0)
            ll_log_debug("msg=\"Flux handled the reconcile request\" requested_at=%s", handled);
    }
    if (strcmp(s->fetched_rev, rd->fetched) != 0 || strcmp(s->applied_rev, rd->applied) != 0)
        st_mark_all(s);
    snprintf(s->fetched_rev, sizeof(s->fetched_rev), "%s", rd->fetched);
    snprintf(s->applied_rev, sizeof(s->applied_rev), "%s", rd->applied);
}

/* The transition of r to verdict v, at stamp. */
static void transition_of(ll_transition *t, const trec *r, const st_verdict *v, const char *stamp,
                          const char *applied)
{
    memset(t, 0, sizeof(*t));
    set_text(t->tenant, sizeof(t->tenant), r->id);
    t->state = v->state;
    t->previous = r->state;
    set_text(t->since, sizeof(t->since), stamp);
    set_text(t->reason, sizeof(t->reason), v->reason);
    set_text(t->message, sizeof(t->message), v->message);
    set_text(t->desired_commit, sizeof(t->desired_commit), r->commit);
    set_text(t->applied_commit, sizeof(t->applied_commit), applied);
    set_text(t->deployed_chart, sizeof(t->deployed_chart), v->deployed_chart);
}

/* Under lock: derives tenant r's state; a change becomes a transition. */
static void derive_one(round *rd, ll_status *s, trec *r, const json_t *maps)
{
    int bits = (int)json_integer_value(json_object_get(rd->facts, r->id));
    int applied_now = (r->applied_at[0] && r->commit[0] && strcmp(r->applied_at, r->commit) == 0) ||
                      (bits & FACT_APPLIED);
    st_facts facts = {
        .applied = applied_now,
        .fetched = applied_now || (bits & FACT_FETCHED),
        .failed_ks =
            !applied_now && rd->ks_failed && (bits & FACT_ATTEMPTED) ? rd->ks_failure : NULL,
    };
    st_verdict v;

    /* Its record changes below (verdict, applied_at, fetched). */
    r->ver = ++s->clock;
    if (applied_now && r->commit[0])
        set_text(r->applied_at, sizeof(r->applied_at), r->commit);
    st_tenant t;
    st_objects view;
    if (st_tenant_of(&t, &view, s, r) < 0)
        return; /* out of memory: derived again when it changes */
    st_derive(&v, NULL, &t, maps, &facts);
    free(view.v);
    if (r->state != v.state) {
        char stamp[32];
        ll_transition tr;
        ll_now_rfc3339(stamp);
        set_text(r->since, sizeof(r->since), stamp);
        ll_log_info("msg=\"tenant state\" tenant=%s state=%s reason=%s", r->id,
                    ll_tenant_state_name(v.state), v.reason);
        transition_of(&tr, r, &v, stamp, rd->applied);
        if (tlist_add(&rd->moved, &tr) < 0)
            ll_log_error("msg=\"state change dropped: out of memory\" tenant=%s", r->id);
    }
    st_trec_judged(r, &v);
    r->fetched = (unsigned char)facts.fetched;
}

/* Under the lock: derives the round's tenants. */
static void derive_work(round *rd, ll_status *s)
{
    const char *id;
    json_t *v;

    pthread_mutex_lock(&s->lock);
    note_revisions(s, rd);
    json_t *maps = st_cluster_maps(s);
    json_object_foreach(rd->work, id, v)
    {
        trec *r = st_tmap_get(&s->tenants, id);
        if (r)
            derive_one(rd, s, r, maps);
    }
    json_decref(maps);
    pthread_mutex_unlock(&s->lock);
}

/* Stores the transitions kept back and then the round's, in order, in one
 * transaction; keeps them for the next round when the registry cannot
 * take them (a full volume).  1 when stored. */
static int store_transitions(ll_status *s, round *rd)
{
    tlist all = {s->unstored, s->n_unstored, s->n_unstored};
    size_t retried = s->n_unstored;
    int stored = 0;

    s->unstored = NULL;
    s->n_unstored = 0;
    for (size_t i = 0; i < rd->moved.n; i++) {
        if (tlist_add(&all, &rd->moved.v[i]) < 0)
            ll_log_error("msg=\"state change dropped: out of memory\" tenant=%s",
                         rd->moved.v[i].tenant);
    }
    if (!all.n)
        return 0;
    if (ll_registry_record_transitions(s->reg, all.v, all.n, ll_wall_ms()) < 0) {
        if (!retried)
            ll_log_warn("msg=\"cannot store state changes; retrying\" error=\"%s\"",
                        ll_error_last()->message);
        if (all.n <= UNSTORED_MAX) {
            s->unstored = all.v;
            s->n_unstored = all.n;
            all.v = NULL;
        } else {
            ll_log_error("msg=\"state changes dropped: too many unstored\" count=%zu", all.n);
        }
    } else {
        stored = 1;
        if (retried)
            ll_log_info("msg=\"stored state changes kept back\" count=%zu", retried);
        s->since_prune += (long long)all.n;
    }
    if (s->since_prune >= EVENTS_PRUNE_EVERY) {
        s->since_prune = 0;
        if (ll_registry_events_prune(s->reg, EVENTS_KEPT) < 0)
            ll_log_warn("msg=\"cannot prune events\" error=\"%s\"", ll_error_last()->message);
    }
    free(all.v);
    return stored;
}

/* The clone's packs were merged: the old handle holds removed files
 * open.  (Not after many reads: libgit2 shares a pack's cache of inflated
 * delta bases with the git writer's handle, so reopening this one alone
 * frees nothing, and a cold handle walks the history again.)  Big rounds
 * (start, a relist) freed a lot on this thread: trim. */
static void reopen_and_trim(ll_status *s, size_t worked)
{
    pthread_mutex_lock(&s->lock);
    int reopen = s->repacked;
    s->repacked = 0;
    pthread_mutex_unlock(&s->lock);
    if (reopen) {
        git_repository *fresh = NULL;
        if (git_repository_open_bare(&fresh, s->git_dir) == 0) {
            git_repository_free(s->repo);
            s->repo = fresh;
        }
    }
    s->since_trim += (long long)worked;
    if (reopen || s->since_trim > 2000) {
        s->since_trim = 0;
        malloc_trim(0);
    }
}

/* One round: inputs copied under the lock, git work without it, results
 * stored under it.  Returns 1 when it stopped early because a watch has
 * not listed its collection yet (nothing can be derived until it has). */
static int follow(ll_status *s)
{
    round rd = {0};
    char why[LL_ERROR_MSG_MAX + 64];

    load_tenants(s);
    if (s->kube)
        ask_reconcile(s);
    /* Nothing is derived from a cache that was never filled. */
    if (!st_all_synced(s, why, sizeof(why)))
        return 1;
    take_inputs(&rd, s);
    find_facts(&rd, s);
    derive_work(&rd, s);
    int stored = store_transitions(s, &rd);
    /* States moved (in memory, whether stored or not), or events arrived. */
    if (rd.moved.n || stored) {
        pthread_mutex_lock(&s->lock);
        s->generation++;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        if (s->on_events)
            s->on_events(s->on_events_payload);
    }
    forget_offboarded(s);
    reopen_and_trim(s, json_object_size(rd.work));
    free(rd.moved.v);
    json_decref(rd.facts);
    json_decref(rd.commits);
    json_decref(rd.work);
    json_decref(rd.ks);
    json_decref(rd.gr);
    return 0;
}

void *st_follower_main(void *arg)
{
    ll_status *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        int unsynced = follow(s);
        pthread_mutex_lock(&s->lock);
        if (s->stop)
            break;
        /* Dirty tenants wait for the watches to list: look again soon, but
         * do not spin (it took a core from the informers listing at start,
         * with a registry query each turn). */
        if (!unsynced && (json_object_size(s->dirty) || s->pending_dirty || s->touched)) {
            s->touched = 0;
            continue;
        }
        struct timespec until;
        ll_deadline_in(&until, unsynced ? SYNC_POLL_MS : POLL_MS);
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

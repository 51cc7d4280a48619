/* registry.c - SQLite storage for tenants (the outbox's rows they add are
 * read and finished by outbox.c).
 *
 * Each ll_registry wraps one connection; callers keep one per thread (the
 * core hands each thread its own).  Every write that must be atomic runs in
 * one BEGIN IMMEDIATE transaction, so the outbox row and the tenant row land
 * together or not at all.  Rows are returned as jansson objects.
 *
 * A full volume (SQLITE_FULL, or an I/O error with ENOSPC when the WAL or
 * its index cannot grow) is LL_ENOSPACE, and a transaction whose COMMIT
 * failed is rolled back at once (reg_commit), so nothing of a refused write
 * stays and the connection holds no lock.  Such failures are reported to
 * storage.h; every commit that reaches the WAL clears the report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/storage.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "registry_int.h"

/* The code for the last failure on r's connection: the volume full
 * (SQLITE_FULL, or an I/O error whose errno says so), a constraint, or
 * anything else. */
static int code_of(ll_registry *r)
{
    int rc = sqlite3_extended_errcode(r->db);
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return LL_ECONFLICT;
    case SQLITE_FULL:
        return LL_ENOSPACE;
    case SQLITE_IOERR:
        return ll_error_of_errno(sqlite3_system_errno(r->db));
    default:
        return LL_ERROR;
    }
}

/* Sets the error for what (NULL: not said) failed with SQLite's message. */
static int fail_with(ll_registry *r, const char *what, const char *msg)
{
    int code = code_of(r);
    if (code != LL_ENOSPACE)
        return what ? ll_error_set(code, "registry: %s: %s", what, msg)
                    : ll_error_set(code, "registry: %s", msg);
    /* what may be SQL: the caller is told what happened, not how. */
    ll_error_set(LL_ENOSPACE, "the data volume is full: the registry cannot store the change (%s)",
                 msg);
    ll_error_hint("free space on landlord's data volume; writes are taken again as soon as "
                  "there is room, without a restart");
    ll_storage_full(sqlite3_db_filename(r->db, "main"), ll_error_last()->message);
    return LL_ENOSPACE;
}

int reg_db_error(ll_registry *r, const char *what)
{
    return fail_with(r, what, sqlite3_errmsg(r->db));
}

int reg_exec(ll_registry *r, const char *sql)
{
    char *msg = NULL;
    int error;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    error = fail_with(r, NULL, msg ? msg : "exec failed");
    sqlite3_free(msg);
    return error;
}

int reg_commit(ll_registry *r)
{
    int error = reg_exec(r, "COMMIT");
    /* SQLite may leave the transaction open after a COMMIT that could not
     * write (a full disk, an I/O error): end it, so none of it stays and
     * this connection's next BEGIN starts clean. */
    if (error < 0)
        reg_rollback(r);
    return error;
}

void reg_rollback(ll_registry *r)
{
    /* Quietly: after some errors SQLite has rolled back already, and the
     * error that made the caller roll back is the one to report. */
    if (!sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

int reg_prepare(sqlite3_stmt **out, ll_registry *r, const char *sql)
{
    int slot = -1;

    *out = NULL;
    for (int i = 0; i < REG_CACHED_MAX; i++) {
        sqlite3_stmt *st = r->cached[i].st;
        if (st && !r->cached[i].busy && strcmp(sqlite3_sql(st), sql) == 0) {
            r->cached[i].busy = 1;
            r->cached[i].used = ++r->uses;
            *out = st;
            return 0;
        }
        /* A free slot, else the least recently used statement not in use. */
        if (!r->cached[i].busy &&
            (slot < 0 || (r->cached[slot].st && (!st || r->cached[i].used < r->cached[slot].used))))
            slot = i;
    }
    if (sqlite3_prepare_v3(r->db, sql, -1, slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, out, NULL) !=
        SQLITE_OK)
        return reg_db_error(r, "prepare");
    if (slot >= 0) { /* else every cached statement is in use: this one is not kept */
        sqlite3_finalize(r->cached[slot].st);
        r->cached[slot].st = *out;
        r->cached[slot].busy = 1;
        r->cached[slot].used = ++r->uses;
    }
    return 0;
}

void reg_finalize(ll_registry *r, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < REG_CACHED_MAX; i++) {
        if (r->cached[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            r->cached[i].busy = 0;
            return;
        }
    }
    reg_finalize(r, st);
}

/* Moves after every commit of a connection that is not quiet (see
 * ll_registry_generation). */
static unsigned long long change_generation;

unsigned long long ll_registry_generation(void)
{
    return __atomic_load_n(&change_generation, __ATOMIC_ACQUIRE);
}

void ll_registry_set_quiet(ll_registry *r, int quiet)
{
    r->quiet = quiet;
}

/* Called by SQLite after each commit has reached the WAL.  Moves the change
 * generation, then does what the default hook it replaces does: a passive
 * checkpoint once the WAL holds 1000 pages. */
static int after_commit(void *payload, sqlite3 *db, const char *name, int pages)
{
    ll_registry *r = payload;
    if (!r->quiet)
        __atomic_add_fetch(&change_generation, 1, __ATOMIC_RELEASE);
    ll_storage_ok(); /* the commit reached the disk */
    if (pages >= 1000)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void reg_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

json_t *reg_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

/* Migrations: the embedded migrations/NNNN_name.sql files, in path order. */
static int known_migrations(const ll_embedded_file **list, int cap)
{
    int n = 0;
    for (const ll_embedded_file *f = ll_embedded_files; f->path && n < cap; f++) {
        if (strncmp(f->path, "migrations/", 11) == 0 && strstr(f->path, ".sql"))
            list[n++] = f;
    }
    return n;
}

static int user_version(ll_registry *r, int *out)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r, "PRAGMA user_version")) < 0)
        return error;
    *out = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    reg_finalize(r, st);
    return 0;
}

static int migrate(ll_registry *r, const char *path)
{
    const ll_embedded_file *list[256];
    int n = known_migrations(list, 256), applied = 0, error;
    char sql[256], now[32];

    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = user_version(r, &applied)) < 0)
        goto fail;
    if (applied > n) {
        ll_error_set(LL_ECONFLICT,
                     "registry %s has schema version %d but this landlord knows only %d", path,
                     applied, n);
        ll_error_hint("run a newer landlord, or restore a backup made for this version");
        error = LL_ECONFLICT;
        goto fail;
    }
    if ((error =
             reg_exec(r, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                         "KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT")) < 0)
        goto fail;
    for (int i = applied; i < n; i++) {
        sqlite3_stmt *st = NULL;
        if ((error = reg_exec(r, (const char *)list[i]->data)) < 0) {
            ll_error_set(LL_ERROR, "migration %s failed: %s", list[i]->path,
                         ll_error_last()->message);
            goto fail;
        }
        ll_now_rfc3339(now);
        if ((error = reg_prepare(&st, r, "INSERT INTO schema_migrations VALUES (?, ?, ?)")) < 0)
            goto fail;
        sqlite3_bind_int(st, 1, i + 1);
        reg_bind_text(st, 2, list[i]->path + 11);
        reg_bind_text(st, 3, now);
        error = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_db_error(r, "record migration");
        reg_finalize(r, st);
        if (error < 0)
            goto fail;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
        if ((error = reg_exec(r, sql)) < 0)
            goto fail;
    }
    return reg_commit(r);
fail:
    reg_rollback(r);
    return error;
}

/* Waits for another connection's write lock.  SQLite's own busy handler
 * (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ... up to 100 ms between tries,
 * so with many threads writing, one that found the lock taken sleeps on
 * long after it was free, and writes arrive in bursts with gaps.  This one
 * tries again after 0.1 ms (1 ms once it has waited 1 ms), for up to 5 s. */
static int on_busy(void *payload, int tries)
{
    (void)payload;
    if (tries >= 10 + 5000)
        return 0;
    struct timespec ts = {0, tries < 10 ? 100000L : 1000000L};
    nanosleep(&ts, NULL);
    return 1;
}

int ll_registry_open(ll_registry **out, const char *path)
{
    ll_registry *r = calloc(1, sizeof(*r));
    int error = -1;

    if (!r)
        return ll_error_set(LL_ERROR, "out of memory");
    if (sqlite3_open_v2(path, &r->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        error = ll_error_set(LL_ERROR, "cannot open registry %s: %s", path,
                             r->db ? sqlite3_errmsg(r->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler(r->db, on_busy, NULL);
    /* Several threads keep a connection each: 512 KiB of page cache apiece
     * (SQLite's default is 2 MiB) keeps the hot pages of thousands of
     * tenants without multiplying memory by the thread count. */
    /* The WAL is rewound after each complete checkpoint, but its file keeps
     * the size of the largest burst (316 MB after 12,000 writes queued
     * during an outage): journal_size_limit truncates it to 8 MiB then. */
    if ((error = reg_exec(r, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                             "PRAGMA foreign_keys = ON; PRAGMA cache_size = -512; "
                             "PRAGMA journal_size_limit = 8388608")) < 0)
        goto fail;
    if ((error = migrate(r, path)) < 0)
        goto fail;
    sqlite3_wal_hook(r->db, after_commit, r);
    *out = r;
    return 0;
fail:
    ll_registry_close(r);
    return error;
}

void ll_registry_close(ll_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < REG_CACHED_MAX; i++)
        sqlite3_finalize(r->cached[i].st);
    sqlite3_close(r->db);
    free(r);
}

int ll_registry_schema_version(ll_registry *r, int *out_applied, int *out_known)
{
    const ll_embedded_file *list[256];
    *out_known = known_migrations(list, 256);
    return user_version(r, out_applied);
}

int ll_registry_ping(ll_registry *r)
{
    return reg_exec(r, "SELECT count(*) FROM tenants WHERE 0");
}

/* --- tenants ------------------------------------------------------------ */

#define TENANT_COLS                                                                                \
    "id, tier, release, values_json, lifecycle, sync, commit_sha, operation_id, created_at, "      \
    "updated_at, offboarded_at, origin, path, observed_state, observed_since, chart_version"

static json_t *tenant_row(sqlite3_stmt *st)
{
    json_t *t = json_object(), *values;
    const char *vj = (const char *)sqlite3_column_text(st, 3);

    values = vj ? json_loads(vj, 0, NULL) : NULL;
    json_object_set_new(t, "id", reg_col_text(st, 0));
    json_object_set_new(t, "tier", reg_col_text(st, 1));
    json_object_set_new(t, "release", reg_col_text(st, 2));
    json_object_set_new(t, "values", values ? values : json_object());
    json_object_set_new(t, "lifecycle", reg_col_text(st, 4));
    json_object_set_new(t, "sync", reg_col_text(st, 5));
    json_object_set_new(t, "commit", reg_col_text(st, 6));
    json_object_set_new(t, "operation",
                        sqlite3_column_type(st, 7) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(t, "created_at", reg_col_text(st, 8));
    json_object_set_new(t, "updated_at", reg_col_text(st, 9));
    json_object_set_new(t, "offboarded_at", reg_col_text(st, 10));
    json_object_set_new(t, "origin", reg_col_text(st, 11));
    json_object_set_new(t, "path", reg_col_text(st, 12));
    json_object_set_new(t, "observed_state", reg_col_text(st, 13));
    json_object_set_new(t, "observed_since", reg_col_text(st, 14));
    {
        /* The version of the desired state: what If-Match compares. */
        char etag[LL_ETAG_MAX];
        const char *parts[] = {(const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2),
                               vj,
                               (const char *)sqlite3_column_text(st, 4),
                               (const char *)sqlite3_column_text(st, 7),
                               (const char *)sqlite3_column_text(st, 12)};
        ll_etag_of(etag, parts, 6);
        json_object_set_new(t, "etag", json_string(etag));
    }
    json_object_set_new(t, "chart_version", reg_col_text(st, 15));
    return t;
}

/* LL_EPRECONDITION when if_match is given and does not name t's version. */
static int check_if_match(const json_t *t, const char *id, const char *if_match)
{
    const char *etag = json_string_value(json_object_get(t, "etag"));
    if (!if_match || ll_etag_matches(if_match, etag))
        return 0;
    ll_error_set(LL_EPRECONDITION, "tenant '%s' has changed: it is at version %s", id, etag);
    ll_error_hint("read it again (GET /api/v1/tenants/%s) and send its ETag in If-Match", id);
    return LL_EPRECONDITION;
}

static int tenant_commits(json_t *t, ll_registry *r, const char *id)
{
    sqlite3_stmt *st = NULL;
    json_t *list = json_array();
    int error, rc;

    /* Its own operations, and the rollout operations that moved it. */
    if ((error = reg_prepare(&st, r,
                             "SELECT commit_sha, kind, updated_at, id FROM operations WHERE "
                             "tenant_id = ?1 AND state = 'pushed' UNION ALL SELECT o.commit_sha, "
                             "o.kind, o.updated_at, o.id FROM operation_tenants ot JOIN operations "
                             "o ON o.id = ot.operation_id WHERE ot.tenant_id = ?1 AND o.state = "
                             "'pushed' ORDER BY 4")) < 0)
        goto done;
    reg_bind_text(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *c = json_object();
        json_object_set_new(c, "sha", reg_col_text(st, 0));
        json_object_set_new(c, "operation", reg_col_text(st, 1));
        json_object_set_new(c, "at", reg_col_text(st, 2));
        json_array_append_new(list, c);
    }
    error = rc == SQLITE_DONE ? 0 : reg_db_error(r, "read commits");
done:
    reg_finalize(r, st);
    json_object_set_new(t, "commits", list);
    return error;
}

int ll_registry_tenant_get(json_t **out, ll_registry *r, const char *id, int with_commits)
{
    sqlite3_stmt *st = NULL;
    json_t *t = NULL;
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT " TENANT_COLS " FROM tenants WHERE id = ?")) < 0)
        return error;
    reg_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t = tenant_row(st);
        error = 0;
    } else if (rc == SQLITE_DONE) {
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%s'", id);
    } else {
        error = reg_db_error(r, "read tenant");
    }
    reg_finalize(r, st);
    if (!error && with_commits)
        error = tenant_commits(t, r, id);
    if (error < 0) {
        json_decref(t);
        return error;
    }
    *out = t;
    return 0;
}

int ll_registry_tenant_list(json_t **out_items, char **out_next, ll_registry *r, const char *tier,
                            const char *lifecycle, const char *after, int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array();
    int error, rc, n = 0;

    *out_next = NULL;
    if ((error =
             reg_prepare(&st, r,
                         "SELECT " TENANT_COLS " FROM tenants WHERE (?1 IS NULL OR tier = ?1) AND "
                         "(?2 IS NULL OR lifecycle = ?2) AND (?3 IS NULL OR id > ?3) "
                         "ORDER BY id LIMIT ?4")) < 0)
        goto fail;
    reg_bind_text(st, 1, tier);
    reg_bind_text(st, 2, lifecycle);
    reg_bind_text(st, 3, after);
    sqlite3_bind_int(st, 4, limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == limit) {
            json_t *last = json_array_get(items, json_array_size(items) - 1);
            *out_next = strdup(json_string_value(json_object_get(last, "id")));
            break;
        }
        json_array_append_new(items, tenant_row(st));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "list tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out_items = items;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(items);
    return error;
}

int ll_registry_tenant_counts(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *counts = json_object();
    int error, rc;

    if ((error = reg_prepare(&st, r,
                             "SELECT tier, count(*) FROM tenants WHERE lifecycle != 'offboarded' "
                             "GROUP BY tier")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "count tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = counts;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(counts);
    return error;
}

static int insert_op(long long *out, ll_registry *r, const char *kind, const char *tenant,
                     const char *tier, const char *payload, const char *now,
                     const ll_registry_author *author)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error =
             reg_prepare(&st, r,
                         "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                         "created_at, updated_at, author_name, author_email) VALUES (?, ?, ?, ?, "
                         "'queued', ?, ?, ?, ?) RETURNING id")) < 0)
        return error;
    reg_bind_text(st, 7, author->name);
    reg_bind_text(st, 8, author->email);
    reg_bind_text(st, 1, kind);
    reg_bind_text(st, 2, tenant);
    reg_bind_text(st, 3, tier);
    reg_bind_text(st, 4, payload);
    reg_bind_text(st, 5, now);
    reg_bind_text(st, 6, now);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        error = 0;
    } else {
        error = reg_db_error(r, "queue operation");
    }
    reg_finalize(r, st);
    return error;
}

/* Runs one statement with text parameters (NULL binds NULL); returns the
 * number of changed rows or a negative code. */
int reg_run(ll_registry *r, const char *sql, int n, const char *const *params)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r, sql)) < 0)
        return error;
    for (int i = 0; i < n; i++)
        reg_bind_text(st, i + 1, params[i]);
    error = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(r->db) : reg_db_error(r, sql);
    reg_finalize(r, st);
    return error;
}

int ll_registry_onboard(long long *out_op, json_t **out_existing, ll_registry *r, const char *id,
                        const char *tier, const char *release, const char *values_json,
                        const ll_registry_author *author)
{
    json_t *existing = NULL, *values = json_loads(values_json, 0, NULL), *desired = NULL;
    char now[32], opid[32], *payload = NULL;
    int error;

    if (!values && !(values = json_object()))
        return ll_error_set(-1, "out of memory");

    char chart[64];
    *out_existing = NULL;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0) {
        json_decref(values);
        return error;
    }
    /* What the file will carry, chosen in the same transaction as the
     * catalogue it is chosen from. */
    if ((error = reg_chart_version_for(chart, sizeof(chart), r, tier, release)) < 0)
        goto fail;
    error = ll_registry_tenant_get(&existing, r, id, 1);
    if (error == 0 &&
        strcmp(json_string_value(json_object_get(existing, "lifecycle")), "offboarded") != 0) {
        ll_error_set(LL_EEXISTS, "tenant '%s' exists already", id);
        ll_error_field("id");
        *out_existing = existing;
        existing = NULL;
        error = LL_EEXISTS;
        goto fail;
    }
    if (error < 0 && error != LL_ENOTFOUND)
        goto fail;
    /* The operation carries the desired state it must write and, for a
     * tenant onboarded again, the record to return to if it fails. */
    desired =
        json_pack("{s:s, s:O, s:s}", "release", release, "values", values, "chart_version", chart);
    if (existing)
        json_object_set_new(desired, "previous",
                            json_pack("{s:O, s:O, s:O, s:O}", "tier",
                                      json_object_get(existing, "tier"), "release",
                                      json_object_get(existing, "release"), "values",
                                      json_object_get(existing, "values"), "chart_version",
                                      json_object_get(existing, "chart_version")));
    payload = json_dumps(desired, JSON_COMPACT | JSON_SORT_KEYS);
    if (!payload) {
        error = ll_error_set(-1, "cannot encode the operation");
        goto fail;
    }
    if ((error = insert_op(out_op, r, "onboard", id, tier, payload, now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    if (existing) {
        const char *p[] = {tier, release, values_json, opid, now, chart, id};
        error =
            reg_run(r,
                    "UPDATE tenants SET tier = ?, release = ?, values_json = ?, lifecycle = "
                    "'active', sync = 'pending', origin = 'api', operation_id = ?, updated_at = ?, "
                    "offboarded_at = NULL, path = NULL, chart_version = ? WHERE id = ?",
                    7, p);
    } else {
        const char *p[] = {id, tier, release, values_json, opid, now, now, chart};
        error = reg_run(r,
                        "INSERT INTO tenants (id, tier, release, values_json, lifecycle, sync, "
                        "operation_id, created_at, updated_at, chart_version) VALUES (?, ?, ?, ?, "
                        "'active', 'pending', ?, ?, ?, ?)",
                        8, p);
    }
    if (error < 0)
        goto fail;
    json_decref(existing);
    json_decref(desired);
    json_decref(values);
    free(payload);
    return reg_commit(r);
fail:
    json_decref(existing);
    json_decref(desired);
    json_decref(values);
    free(payload);
    reg_rollback(r);
    return error;
}

int ll_registry_offboard(long long *out_op, ll_registry *r, const char *id,
                         const ll_registry_author *author, const char *if_match)
{
    json_t *t = NULL;
    char now[32], opid[32];
    const char *lifecycle;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = ll_registry_tenant_get(&t, r, id, 0)) < 0 ||
        (error = check_if_match(t, id, if_match)) < 0)
        goto fail;
    lifecycle = json_string_value(json_object_get(t, "lifecycle"));
    if (strcmp(lifecycle, "offboarded") == 0) {
        json_decref(t);
        return reg_commit(r);
    }
    if ((error = insert_op(out_op, r, "offboard", id, json_string_value(json_object_get(t, "tier")),
                           "{}", now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    {
        const char *p[] = {opid, now, id};
        if ((error = reg_run(r,
                             "UPDATE tenants SET lifecycle = 'offboarding', sync = 'pending', "
                             "operation_id = ?, updated_at = ? WHERE id = ?",
                             3, p)) < 0)
            goto fail;
    }
    json_decref(t);
    return reg_commit(r);
fail:
    json_decref(t);
    reg_rollback(r);
    return error;
}

int ll_registry_update(long long *out_op, ll_registry *r, const char *id, const char *tier,
                       const char *release, const char *values_json,
                       const ll_registry_author *author, const char *if_match)
{
    json_t *t = NULL, *values = json_loads(values_json, 0, NULL), *desired = NULL;
    char now[32], opid[32], *payload = NULL;
    const char *lifecycle;
    int error;

    *out_op = 0;
    if (!values)
        return ll_error_set(LL_EINVALID, "values are not JSON");
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0) {
        json_decref(values);
        return error;
    }
    if ((error = ll_registry_tenant_get(&t, r, id, 0)) < 0 ||
        (error = check_if_match(t, id, if_match)) < 0)
        goto fail;
    lifecycle = json_string_value(json_object_get(t, "lifecycle"));
    if (strcmp(lifecycle, "offboarded") == 0 || strcmp(lifecycle, "offboarding") == 0) {
        error = ll_error_set(LL_ECONFLICT, "tenant '%s' is %s", id, lifecycle);
        ll_error_hint("onboard it again with POST /api/v1/tenants");
        goto fail;
    }
    /* What the file carries changes only with the policy: pinning writes the
     * pin, a new floating line (or unpinning) chooses again; anything else
     * (values, a tier move) keeps the version the tenant runs. */
    const char *old_release = json_string_value(json_object_get(t, "release"));
    const char *old_chart = json_string_value(json_object_get(t, "chart_version"));
    char old_expr[64] = "", new_expr[64] = "", chart[64];
    ll_release_expr(old_expr, sizeof(old_expr), old_release);
    ll_release_expr(new_expr, sizeof(new_expr), release);
    if (old_chart && strcmp(old_expr, new_expr) == 0)
        snprintf(chart, sizeof(chart), "%s", old_chart);
    else if ((error = reg_chart_version_for(chart, sizeof(chart), r, tier, release)) < 0)
        goto fail;
    /* The operation carries the new desired state, the folder the tenant
     * leaves, and the state to return to if it fails. */
    desired = json_pack(
        "{s:s, s:O, s:s, s:O, s:{s:O, s:O, s:O, s:O}}", "release", release, "values", values,
        "chart_version", chart, "from_tier", json_object_get(t, "tier"), "previous", "tier",
        json_object_get(t, "tier"), "release", json_object_get(t, "release"), "values",
        json_object_get(t, "values"), "chart_version", json_object_get(t, "chart_version"));
    if (!desired || !(payload = json_dumps(desired, JSON_COMPACT | JSON_SORT_KEYS))) {
        error = ll_error_set(-1, "cannot encode the operation");
        goto fail;
    }
    if ((error = insert_op(out_op, r, "update", id, tier, payload, now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    {
        /* A tier change writes the file where the configured layout puts it. */
        const char *p[] = {tier, release, values_json, opid, now, id, chart};
        if ((error = reg_run(
                 r,
                 "UPDATE tenants SET tier = ?1, release = ?2, values_json = ?3, sync = "
                 "'pending', operation_id = ?4, updated_at = ?5, path = CASE WHEN tier = ?1 "
                 "THEN path ELSE NULL END, chart_version = ?7 WHERE id = ?6",
                 7, p)) < 0)
            goto fail;
    }
    error = reg_commit(r);
    goto done;
fail:
    reg_rollback(r);
done:
    json_decref(t);
    json_decref(values);
    json_decref(desired);
    free(payload);
    return error;
}

int ll_registry_tenants_changed(json_t **out, long long *seq, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    long long top = *seq < 0 ? 0 : *seq;
    int error, rc;

    /* The follower's poll, every round: prepared once (both forms). */
    if ((error =
             reg_prepare(&st, r,
                         *seq < 0 ? "SELECT " TENANT_COLS ", (SELECT coalesce(max(seq), 0) FROM "
                                    "tenant_changes) FROM tenants WHERE ? < 0"
                                  : "SELECT " TENANT_COLS ", (SELECT max(seq) FROM "
                                    "tenant_changes WHERE tenant_id = tenants.id) FROM tenants "
                                    "WHERE id IN (SELECT tenant_id FROM tenant_changes WHERE "
                                    "seq > ?)")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, *seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(rows, tenant_row(st));
        if (sqlite3_column_int64(st, 16) > top)
            top = sqlite3_column_int64(st, 16);
    }
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "read changed tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    *seq = top;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

int ll_registry_tenant_changes_prune(ll_registry *r, long long upto)
{
    char sql[120];
    snprintf(sql, sizeof(sql), "DELETE FROM tenant_changes WHERE seq <= %lld", upto);
    return reg_exec(r, sql);
}

int ll_registry_tenant_index(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *index = json_object();
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT id, tier, lifecycle, sync FROM tenants")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(index, (const char *)sqlite3_column_text(st, 0),
                            json_pack("{s:o, s:o, s:o}", "tier", reg_col_text(st, 1), "lifecycle",
                                      reg_col_text(st, 2), "sync", reg_col_text(st, 3)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "index tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = index;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(index);
    return error;
}

/* An adopted file's chart version: its release as the range it reads
 * ("1.2" -> "1.2.x"), or the exact version. */
#define ADOPTED_CHART "CASE WHEN ?3 GLOB '*.*.*' THEN ?3 ELSE ?3 || '.x' END"

int ll_registry_reconcile(ll_registry *r, const json_t *adopt, const json_t *drifted,
                          const json_t *returned, const char *commit)
{
    char now[32];
    size_t i;
    json_t *v;
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    json_array_foreach(adopt, i, v)
    {
        char *values = json_dumps(json_object_get(v, "values"), JSON_COMPACT | JSON_SORT_KEYS);
        const char *p[] = {json_string_value(json_object_get(v, "id")),
                           json_string_value(json_object_get(v, "tier")),
                           json_string_value(json_object_get(v, "release")),
                           values ? values : "{}",
                           commit,
                           now,
                           json_string_value(json_object_get(v, "path"))};
        /* New, or offboarded earlier and put back by hand: adopted either way.
         * A tenant landlord is working on is never touched. */
        error =
            reg_run(r,
                    "INSERT INTO tenants (id, tier, release, values_json, lifecycle, sync, origin, "
                    "commit_sha, created_at, updated_at, path, chart_version) VALUES (?1, ?2, ?3, "
                    "?4, 'active', 'committed', 'adopted', ?5, ?6, ?6, ?7, " ADOPTED_CHART
                    ") ON CONFLICT (id) DO UPDATE SET tier = ?2, release = ?3, values_json = ?4, "
                    "lifecycle = 'active', origin = 'adopted', commit_sha = ?5, updated_at = ?6, "
                    "offboarded_at = NULL, path = ?7, chart_version = " ADOPTED_CHART
                    " WHERE lifecycle = 'offboarded' AND sync = 'committed'",
                    7, p);
        free(values);
        if (error < 0)
            goto fail;
    }
    json_array_foreach(drifted, i, v)
    {
        const char *p[] = {now, json_string_value(v)};
        if ((error = reg_run(
                 r,
                 "UPDATE tenants SET lifecycle = 'drifted', updated_at = ? WHERE id = ? AND "
                 "lifecycle = 'active' AND sync = 'committed'",
                 2, p)) < 0)
            goto fail;
    }
    json_array_foreach(returned, i, v)
    {
        const char *p[] = {now, json_string_value(v)};
        if ((error =
                 reg_run(r,
                         "UPDATE tenants SET lifecycle = 'active', updated_at = ? WHERE id = ? AND "
                         "lifecycle = 'drifted'",
                         2, p)) < 0)
            goto fail;
    }
    return reg_commit(r);
fail:
    reg_rollback(r);
    return error;
}

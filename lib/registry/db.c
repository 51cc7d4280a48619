/* db.c - the SQLite mechanics every registry file shares: the connection
 * (open, migrations, the busy handler, the commit hook), statements
 * prepared once per connection, the row loop, transactions, and errors.
 *
 * One ll_registry wraps one connection; callers keep one per thread (the
 * core hands each thread its own).  Opening applies the embedded
 * migrations in order, one transaction each.  Statements are prepared once
 * per connection and SQL text and kept (reg_prepare/reg_finalize, at most
 * REG_CACHED_MAX, least recently used out).  Every store runs its queries
 * through reg_rows (prepare, bind, step, map each row, give back) or
 * reg_run (one statement, text parameters).
 *
 * A full volume (SQLITE_FULL, or an I/O error with ENOSPC when the WAL or
 * its index cannot grow) is LL_ENOSPACE, and a transaction whose COMMIT
 * failed is rolled back at once (reg_commit), so nothing of a refused write
 * stays and the connection holds no lock.  Such failures are reported to
 * storage.h; every commit that reaches the WAL clears the report.
 */
#include <stdarg.h>
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
    sqlite3_finalize(st); /* prepared when every cached statement was in use */
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

static int int_row(sqlite3_stmt *st, void *payload)
{
    *(int *)payload = sqlite3_column_int(st, 0);
    return 0;
}

static int user_version(int *out, ll_registry *r)
{
    *out = 0;
    int error = reg_rows(r, "read user_version", int_row, out, "PRAGMA user_version", NULL);
    return error < 0 ? error : 0;
}

static int migrate(ll_registry *r, const char *path)
{
    const ll_embedded_file *list[256];
    int n = known_migrations(list, 256), applied = 0, error;
    char sql[256], now[32];

    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = user_version(&applied, r)) < 0)
        goto done;
    if (applied > n) {
        ll_error_set(LL_ECONFLICT,
                     "registry %s has schema version %d but this landlord knows only %d", path,
                     applied, n);
        ll_error_hint("run a newer landlord, or restore a backup made for this version");
        error = LL_ECONFLICT;
        goto done;
    }
    if ((error =
             reg_exec(r, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                         "KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT")) < 0)
        goto done;
    for (int i = applied; i < n; i++) {
        if ((error = reg_exec(r, (const char *)list[i]->data)) < 0) {
            ll_error_set(LL_ERROR, "migration %s failed: %s", list[i]->path,
                         ll_error_last()->message);
            goto done;
        }
        ll_now_rfc3339(now);
        if ((error = reg_rows(r, "record migration", NULL, NULL,
                              "INSERT INTO schema_migrations VALUES (?, ?, ?)", "iss", i + 1,
                              list[i]->path + 11, now)) < 0)
            goto done;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
        if ((error = reg_exec(r, sql)) < 0)
            goto done;
    }
    error = reg_commit(r);
done:
    if (error < 0)
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
        goto done;
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
        goto done;
    if ((error = migrate(r, path)) < 0)
        goto done;
    sqlite3_wal_hook(r->db, after_commit, r);
    *out = r;
    r = NULL;
done:
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

int ll_registry_schema_version(int *out_applied, int *out_known, ll_registry *r)
{
    const ll_embedded_file *list[256];
    *out_known = known_migrations(list, 256);
    return user_version(out_applied, r);
}

int ll_registry_ping(ll_registry *r)
{
    return reg_exec(r, "SELECT count(*) FROM tenants WHERE 0");
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

/* Binds the parameters binds describes (see reg_rows) from ap. */
static void bind_list(sqlite3_stmt *st, const char *binds, va_list ap)
{
    for (int i = 0; binds && binds[i]; i++) {
        switch (binds[i]) {
        case 's':
            reg_bind_text(st, i + 1, va_arg(ap, const char *));
            break;
        case 'i':
            sqlite3_bind_int(st, i + 1, va_arg(ap, int));
            break;
        case 'I':
            sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
            break;
        default:
            sqlite3_bind_null(st, i + 1);
        }
    }
}

int reg_step_rows(ll_registry *r, sqlite3_stmt *st, const char *what, reg_row_fn row, void *payload)
{
    int error, rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row && (error = row(st, payload)) < 0)
            goto done;
        n++;
    }
    error = rc == SQLITE_DONE ? n : reg_db_error(r, what);
done:
    reg_finalize(r, st);
    return error;
}

int reg_rows(ll_registry *r, const char *what, reg_row_fn row, void *payload, const char *sql,
             const char *binds, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int error;

    if ((error = reg_prepare(&st, r, sql)) < 0)
        return error;
    va_start(ap, binds);
    bind_list(st, binds, ap);
    va_end(ap);
    return reg_step_rows(r, st, what, row, payload);
}

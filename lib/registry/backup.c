/* backup.c - a copy of the registry file taken while landlord serves, and
 * the way back from one.
 *
 * How it works.  A backup opens the registry read-only and copies it with
 * SQLite's online backup API in one step: one read transaction, so the
 * copy is one consistent state, and in WAL mode writers go on meanwhile.
 * It is written next to its destination, synced and renamed, so the
 * destination is either the whole backup or absent.  A restore checks the
 * file (SQLite's integrity check; a landlord registry), copies it next to
 * the registry, sets the current one aside as <registry>.before-restore
 * (after a checkpoint, so its WAL is in it), renames the copy into place
 * and opens it with ll_registry_open, which applies newer migrations or
 * refuses a schema newer than this binary's; on refusal the old file goes
 * back.  Restoring is for a stopped landlord: the caller holds the data
 * dir's lock (ll_core_lock_data).
 *
 * Both run on the calling thread and keep nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "registry_int.h"

/* Copies the database src (an open connection) into the new file to. */
static int copy_db(sqlite3 *src, const char *to)
{
    sqlite3 *dst = NULL;
    sqlite3_backup *b = NULL;
    int error = 0, rc;

    if (sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        error = ll_error_set(LL_ERROR, "cannot create %s: %s", to,
                             dst ? sqlite3_errmsg(dst) : "out of memory");
        goto done;
    }
    if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
        error = ll_error_set(LL_ERROR, "cannot copy into %s: %s", to, sqlite3_errmsg(dst));
        goto done;
    }
    rc = sqlite3_backup_step(b, -1);
    if (sqlite3_backup_finish(b) != SQLITE_OK || rc != SQLITE_DONE)
        error = ll_error_set(rc == SQLITE_FULL ? LL_ENOSPACE : LL_ERROR, "cannot copy into %s: %s",
                             to, sqlite3_errmsg(dst));
done:
    if (dst && sqlite3_close(dst) != SQLITE_OK && error == 0)
        error = ll_error_set(LL_ERROR, "cannot close %s", to);
    return error;
}

/* fsync of path (a file, or the directory that holds a renamed one). */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = fd >= 0 ? fsync(fd) : -1;
    if (fd >= 0)
        close(fd);
    return rc == 0 ? 0
                   : ll_error_set(ll_error_of_errno(errno), "cannot sync %s: %s", path,
                                  strerror(errno));
}

static void dir_of(char *out, size_t cap, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", (int)(slash == path ? 1 : slash - path), path);
}

int ll_registry_backup(const char *db_path, const char *to)
{
    sqlite3 *src = NULL;
    char tmp[4096], dir[4096];
    int error;

    if (access(to, F_OK) == 0) {
        ll_error_set(LL_ECONFLICT, "%s exists: a backup never overwrites a file", to);
        ll_error_hint("choose a new name, or remove the old backup first");
        return LL_ECONFLICT;
    }
    if (access(db_path, R_OK) != 0)
        return ll_error_set(LL_ENOTFOUND, "no registry at %s: %s", db_path, strerror(errno));
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial", to) >= sizeof(tmp))
        return ll_error_set(LL_EINVALID, "backup path too long");
    unlink(tmp);
    if (sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        error = ll_error_set(LL_ERROR, "cannot open registry %s: %s", db_path,
                             src ? sqlite3_errmsg(src) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(src, 5000);
    if ((error = copy_db(src, tmp)) < 0 || (error = sync_path(tmp)) < 0)
        goto done;
    if (rename(tmp, to) != 0) {
        error =
            ll_error_set(ll_error_of_errno(errno), "cannot rename %s: %s", tmp, strerror(errno));
        goto done;
    }
    dir_of(dir, sizeof(dir), to);
    error = sync_path(dir);
done:
    sqlite3_close(src);
    if (error < 0)
        unlink(tmp);
    return error;
}

static int text_row(sqlite3_stmt *st, void *payload)
{
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(payload, 64, "%s", t ? (const char *)t : "");
    return 0;
}

/* from is a sound SQLite file that holds a landlord registry. */
static int check_backup(const char *from)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char result[64] = "";
    int error = 0, tables = 0;

    if (sqlite3_open_v2(from, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        error = ll_error_set(LL_EINVALID, "cannot open %s: %s", from,
                             db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        error =
            ll_error_set(LL_EINVALID, "%s is not a SQLite database: %s", from, sqlite3_errmsg(db));
        goto done;
    }
    text_row(st, result);
    sqlite3_finalize(st);
    st = NULL;
    if (strcmp(result, "ok") != 0) {
        error = ll_error_set(LL_EINVALID, "%s is damaged: %s", from, result);
        goto done;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                           "('tenants', 'operations', 'schema_migrations')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        tables = sqlite3_column_int(st, 0);
    if (tables != 3)
        error = ll_error_set(LL_EINVALID, "%s is not a landlord registry", from);
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return error;
}

/* Folds the WAL of the registry at path into its file (nothing when there
 * is none). */
static int checkpoint(const char *path)
{
    sqlite3 *db = NULL;
    int error = 0;
    if (access(path, F_OK) != 0)
        return 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) != SQLITE_OK)
        error = ll_error_set(LL_ERROR, "cannot checkpoint %s: %s", path,
                             db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return error;
}

/* Removes the WAL and shared-memory index next to the registry at path:
 * they belong to a file that is no longer there. */
static void forget_wal(const char *path)
{
    char side[4200];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

int ll_registry_restore(const char *db_path, const char *from)
{
    sqlite3 *src = NULL;
    ll_registry *r = NULL;
    char tmp[4096], before[4096];
    int error, moved = 0;

    if ((error = check_backup(from)) < 0)
        return error;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.restoring", db_path) >= sizeof(tmp) ||
        (size_t)snprintf(before, sizeof(before), "%s.before-restore", db_path) >= sizeof(before))
        return ll_error_set(LL_EINVALID, "registry path too long");
    unlink(tmp);
    if (sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        error = ll_error_set(LL_EINVALID, "cannot open %s", from);
        goto done;
    }
    if ((error = copy_db(src, tmp)) < 0 || (error = sync_path(tmp)) < 0 ||
        (error = checkpoint(db_path)) < 0)
        goto done;
    if (access(db_path, F_OK) == 0) {
        if (rename(db_path, before) != 0) {
            error = ll_error_set(ll_error_of_errno(errno), "cannot set %s aside: %s", db_path,
                                 strerror(errno));
            goto done;
        }
        moved = 1;
    }
    /* What an old WAL or index holds belongs to the file set aside. */
    forget_wal(db_path);
    if (rename(tmp, db_path) != 0) {
        error = ll_error_set(ll_error_of_errno(errno), "cannot put %s in place: %s", db_path,
                             strerror(errno));
        goto done;
    }
    /* Migrates an older backup; refuses one newer than this binary. */
    if ((error = ll_registry_open(&r, db_path)) < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        unlink(db_path);
        forget_wal(db_path); /* the refused file's, never the old one's */
        if (moved && rename(before, db_path) == 0)
            moved = 0;
        ll_error_set(error, "%s cannot be restored: %s", from, why);
        goto done;
    }
    error = 0;
done:
    ll_registry_close(r);
    sqlite3_close(src);
    unlink(tmp);
    return error;
}

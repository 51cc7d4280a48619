/* support.c - the unit tests' shared helpers (support.h): temporary
 * directories, and SQL on a registry file with a connection of its own.
 */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "support.h"

int ut_temp_dir(char *dir, size_t cap, const char *name)
{
    if ((size_t)snprintf(dir, cap, "/tmp/ll-%s-XXXXXX", name) >= cap)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

int ut_temp_db(char *dir, size_t cap, char *path, size_t path_cap, const char *name)
{
    if (ut_temp_dir(dir, cap, name) < 0)
        return -1;
    return (size_t)snprintf(path, path_cap, "%s/landlord.db", dir) < path_cap ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int ut_remove_tree(const char *dir)
{
    return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

void ut_sql_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_close(h);
}

char *ut_sql_text(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

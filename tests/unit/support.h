/* support.h - what the unit tests share: a temporary directory made and
 * removed, and SQL run on a registry file behind the registry's back (as
 * another connection, or an older version of landlord, would).
 *
 * Ownership: strings passed in are borrowed; ut_sql_text's result is the
 * caller's (free).  Failures end the running test (cmocka assertions).
 */
#ifndef LANDLORD_TESTS_UNIT_SUPPORT_H
#define LANDLORD_TESTS_UNIT_SUPPORT_H

#include <stddef.h>

/* Makes /tmp/ll-<name>-XXXXXX into dir (cap bytes).  0, or -1. */
int ut_temp_dir(char *dir, size_t cap, const char *name);

/* ut_temp_dir, and path (path_cap bytes) becomes <dir>/landlord.db: the
 * setup of a test that opens a registry.  0, or -1. */
int ut_temp_db(char *dir, size_t cap, char *path, size_t path_cap, const char *name);

/* Removes dir and everything under it (symbolic links are not followed).
 * 0, or -1 when something could not be removed. */
int ut_remove_tree(const char *dir);

/* Runs sql (one or more statements) on the SQLite file db. */
void ut_sql_exec(const char *db, const char *sql);

/* The first column of the first row of sql on db as a new string (caller
 * frees), or NULL when there is no row or it is NULL. */
char *ut_sql_text(const char *db, const char *sql);

#endif

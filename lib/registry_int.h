/* registry_int.h - what registry.c shares with the other registry files
 * (registry_events.c); private to lib/. */
#ifndef LANDLORD_REGISTRY_INT_H
#define LANDLORD_REGISTRY_INT_H

#include <jansson.h>
#include <sqlite3.h>

#include "landlord/registry.h"

struct ll_registry {
    sqlite3 *db;
};

/* Sets the error from SQLite's message; a constraint is LL_ECONFLICT. */
int reg_db_error(ll_registry *r, const char *what);

/* Runs SQL without results (several statements allowed). */
int reg_exec(ll_registry *r, const char *sql);

int reg_prepare(sqlite3_stmt **out, ll_registry *r, const char *sql);

/* Binds s, or NULL when s is NULL. */
void reg_bind_text(sqlite3_stmt *st, int i, const char *s);

/* Column i as a JSON string, or null (new reference). */
json_t *reg_col_text(sqlite3_stmt *st, int i);

/* Runs one statement with text parameters (NULL binds NULL); returns the
 * number of changed rows or a negative code. */
int reg_run(ll_registry *r, const char *sql, int n, const char *const *params);

/* Records the outcome of a pushed tier operation (tier_put stores its
 * description, tier_delete forgets it); inside the caller's transaction. */
int reg_tier_finish(ll_registry *r, const json_t *op, const char *now);

#endif

/* registry_int.h - what the registry's files share: the connection and its
 * SQLite mechanics (db.c), and the hooks one store offers another inside a
 * transaction; private to lib/. */
#ifndef LANDLORD_REGISTRY_INT_H
#define LANDLORD_REGISTRY_INT_H

#include <jansson.h>
#include <sqlite3.h>

#include "landlord/operation.h"
#include "landlord/registry.h"

/* Prepared statements kept per connection (see reg_prepare). */
#define REG_CACHED_MAX 40

struct ll_registry {
    sqlite3 *db;
    int quiet; /* commits here do not move ll_registry_generation() */
    /* Statements prepared once and reused, by SQL text (reg_prepare). */
    struct {
        sqlite3_stmt *st;
        unsigned long long used; /* when last handed out (LRU) */
        int busy;                /* handed out, not given back yet */
    } cached[REG_CACHED_MAX];
    unsigned long long uses;
};

/* Sets the error from SQLite's message; a constraint is LL_ECONFLICT, a
 * full volume LL_ENOSPACE (reported to storage.h). */
int reg_db_error(ll_registry *r, const char *what);

/* Runs SQL without results (several statements allowed). */
int reg_exec(ll_registry *r, const char *sql);

/* Commits the open transaction; when that fails it is rolled back. */
int reg_commit(ll_registry *r);

/* Rolls back the open transaction, if any, leaving the last error alone. */
void reg_rollback(ll_registry *r);

/* A statement for sql, borrowed from the connection's cache: statements are
 * prepared once per connection and SQL text (parsing was a sixth of a
 * write's CPU) and reused; the least recently used goes when the cache is
 * full.  Give it back with reg_finalize(), never sqlite3_finalize(). */
int reg_prepare(sqlite3_stmt **out, ll_registry *r, const char *sql);

/* Gives back a statement from reg_prepare (reset, bindings cleared, so it
 * holds no read snapshot); NULL is fine. */
void reg_finalize(ll_registry *r, sqlite3_stmt *st);

/* Binds s, or NULL when s is NULL. */
void reg_bind_text(sqlite3_stmt *st, int i, const char *s);

/* Column i as a JSON string, or null (new reference). */
json_t *reg_col_text(sqlite3_stmt *st, int i);

/* Maps one result row of st (borrowed, valid during the call) into
 * payload; a negative code stops the loop and is returned. */
typedef int (*reg_row_fn)(sqlite3_stmt *st, void *payload);

/* The registry's row loop: prepares sql (reg_prepare), binds the
 * parameters binds describes, one letter each in order ('s' a const char *,
 * NULL binding NULL; 'i' an int; 'I' a long long; binds may be NULL), steps
 * through the rows calling row(st, payload) for each (row NULL: rows are
 * only counted) and gives the statement back (reg_finalize) whatever
 * happens.  Returns the number of rows (>= 0), the first negative code of
 * row, or reg_db_error(r, what). */
int reg_rows(ll_registry *r, const char *what, reg_row_fn row, void *payload, const char *sql,
             const char *binds, ...);

/* The loop of reg_rows for a statement already prepared (reg_prepare) and
 * bound: steps st, calls row for each row, gives st back; returns as
 * reg_rows does. */
int reg_step_rows(ll_registry *r, sqlite3_stmt *st, const char *what, reg_row_fn row,
                  void *payload);

/* A growing array of records of size bytes each (records.c), filled from
 * rows by from_row, which starts from a zeroed record and returns -1 when
 * out of memory; a record it could not fill completely is kept, for clear
 * to free its parts.  Start it as {.size, .from_row, .clear}. */
typedef struct reg_records {
    void *v;
    size_t n, cap, size;
    int (*from_row)(void *item, sqlite3_stmt *st);
    void (*clear)(void *item);
} reg_records;

/* reg_row_fn for reg_rows: appends the row to the reg_records payload
 * points to. */
int reg_collect(sqlite3_stmt *st, void *payload);

/* Ends a reg_rows loop into l that returned error: on success hands the
 * array over (*out a new array, NULL when none; *out_n its length) and
 * returns 0; else frees it and returns error. */
int reg_records_finish(void **out, size_t *out_n, reg_records *l, int error);

/* Frees n records of size bytes at v (clear on each, then v); NULL is fine. */
void reg_records_free(void *v, size_t n, size_t size, void (*clear)(void *));

/* Column i as a new string, NULL when SQL NULL (or out of memory: then
 * *oom, when not NULL, is set to 1).  The registry's one column copier. */
char *reg_dup_col(sqlite3_stmt *st, int i, int *oom);

/* Column i copied into to[cap] ("" when NULL; cut at cap). */
void reg_copy_col(char *to, size_t cap, sqlite3_stmt *st, int i);

/* Runs one statement with text parameters (NULL binds NULL); returns the
 * number of changed rows or a negative code. */
int reg_run(ll_registry *r, const char *sql, int n, const char *const *params);

/* The tenant store's writes inside the caller's transaction (registry.c),
 * given the chart version the tenant's file carries (chart), the
 * operation op that carries the change, and the time now; values_json is
 * d->values as stored.  A put inserts the tenant, or revives an offboarded
 * one (revive 1); set_desired stores an update; set_offboarding marks the
 * tenant leaving.  The number of changed rows, or a negative code. */
int reg_tenant_put(ll_registry *r, const ll_tenant_desired *d, const char *values_json,
                   const char *chart, long long op, const char *now, int revive);
int reg_tenant_set_desired(ll_registry *r, const ll_tenant_desired *d, const char *values_json,
                           const char *chart, long long op, const char *now);
int reg_tenant_set_offboarding(ll_registry *r, const char *id, long long op, const char *now);

/* Records the outcome of a pushed tier operation (tier_put stores its
 * description, tier_delete forgets it); inside the caller's transaction. */
int reg_tier_finish(ll_registry *r, const ll_operation *op, const char *now);
/* Stores n events (borrowed) with a pending delivery for every matching
 * webhook, inside the caller's transaction (registry_events.c); each
 * event's data is stored with "rollout" (when > 0) and "at" (when not
 * NULL) added. */
int reg_store_events(ll_registry *r, const ll_event_note *events, size_t n, long long rollout,
                     const char *at);

/* What the file of a tenant with release in tier carries (registry_rollouts.c):
 * a pinned release as it is; a floating one the version its tier runs (set
 * by the last successful rollout of the tier, while still uploaded), else
 * the newest uploaded version on its line (x.y.*, no pre-releases), else
 * the range (x.y.x). */
int reg_chart_version_for(char *out, size_t cap, ll_registry *r, const char *tier,
                          const char *release);

/* Records that rollout operation op was pushed at sha (ok) or failed, for the tenants it changes;
 * inside the caller's transaction (registry_rollouts.c). */
int reg_rollout_op_finished(ll_registry *r, const ll_operation *op, int ok, const char *sha,
                            const char *now);

/* The outbox's conversion (outbox.c).  Fills op's payload for its kind
 * (op->kind set) from the row's payload JSON (borrowed); missing or
 * mistyped fields stay NULL/0 (the writer refuses what it cannot apply). */
int reg_op_from_payload(ll_operation *op, const json_t *payload);

/* The inverse: op's payload as the row stores it (new reference). */
json_t *reg_op_payload_json(const ll_operation *op);

#endif

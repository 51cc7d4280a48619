/* registry_rollouts_int.h - what the rollout files of the registry share
 * (registry_rollouts.c: reading, rows into records; registry_rollout_steps.c:
 * writing); private to lib/registry. */
#ifndef LANDLORD_REGISTRY_ROLLOUTS_INT_H
#define LANDLORD_REGISTRY_ROLLOUTS_INT_H

#include <sqlite3.h>

#include "landlord/rollout_records.h"
#include "registry_int.h"

/* One bound parameter: an integer, a text (NULL binds NULL) or NULL. */
typedef struct rr_arg {
    enum { RR_INT, RR_TEXT, RR_NULL } type;
    long long i;
    const char *s;
} rr_arg;

#define RR_I(x) ((rr_arg){RR_INT, (long long)(x), NULL})
#define RR_S(x) ((rr_arg){RR_TEXT, 0, (x)})
#define RR_NUL  ((rr_arg){RR_NULL, 0, NULL})
/* An integer, or NULL when it is 0 (an optional id). */
#define RR_ID(x) ((x) ? RR_I(x) : RR_NUL)
/* The parameters of a statement, as (array, count). */
#define RR_ARGS(...)                                                                               \
    (const rr_arg[]){__VA_ARGS__}, sizeof((const rr_arg[]){__VA_ARGS__}) / sizeof(rr_arg)

/* Maps the current row of st; a negative code stops the loop. */
typedef reg_row_fn rr_row_fn;

/* reg_rows with typed parameters: prepare sql, bind args, then the
 * registry's one row loop (reg_step_rows).  The number of rows, or a
 * negative code. */
int rr_each(ll_registry *r, const char *sql, const rr_arg *args, size_t nargs, rr_row_fn row,
            void *payload);

/* Runs one statement; the number of changed rows or a negative code. */
int rr_run(ll_registry *r, const char *sql, const rr_arg *args, size_t nargs);

/* Makes room for one more item of size bytes in *v (holding *n); -1 out of
 * memory. */
int rr_grow(void **v, size_t n, size_t size);

/* The rollout's state and version (a new string, when out_version is not
 * NULL), inside a transaction; LL_ENOTFOUND. */
int rr_rollout_state(ll_rollout_state *out, char **out_version, ll_registry *r, long long id);

/* LL_ECONFLICT "rollout <id> is <state>". */
int rr_state_conflict(long long id, ll_rollout_state state);

#endif

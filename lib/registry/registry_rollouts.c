/* registry_rollouts.c - reading rollouts: their rows into records, and the
 * version each tier runs.
 *
 * The registry is the rollout's truth: the engine (core/rollout_engine.c)
 * keeps nothing in memory between steps, so a restart continues where the
 * rows say.  This file is the one place where rollout rows become records
 * (rollout_records.h): states are parsed into enums with the tables of
 * rollout_records.c, selectors and scopes decoded from their JSON text, and
 * each row loop is rr_each() (prepare, bind, map each row, finalize).  The
 * writes (a rollout, a wave's start, a rollback, a step) are in
 * registry_rollout_steps.c.
 *
 * Threads: like every registry file, a connection belongs to one thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "registry_rollouts_int.h"

/* --- the row loop ------------------------------------------------------------------ */

static void bind_args(sqlite3_stmt *st, const rr_arg *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type == RR_INT)
            sqlite3_bind_int64(st, (int)i + 1, args[i].i);
        else if (args[i].type == RR_TEXT)
            reg_bind_text(st, (int)i + 1, args[i].s);
        else
            sqlite3_bind_null(st, (int)i + 1);
    }
}

int rr_each(ll_registry *r, const char *sql, const rr_arg *args, size_t nargs, rr_row_fn row,
            void *payload)
{
    sqlite3_stmt *st = NULL;
    int error;

    if ((error = reg_prepare(&st, r, sql)) < 0)
        return error;
    bind_args(st, args, nargs);
    return reg_step_rows(r, st, "read rollouts", row, payload);
}

int rr_run(ll_registry *r, const char *sql, const rr_arg *args, size_t nargs)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r, sql)) < 0)
        return error;
    bind_args(st, args, nargs);
    error = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(r->db) : reg_db_error(r, sql);
    reg_finalize(r, st);
    return error;
}

int rr_grow(void **v, size_t n, size_t size)
{
    void *grown = realloc(*v, (n + 1) * size);
    if (!grown)
        return ll_error_set(-1, "out of memory");
    *v = grown;
    memset((char *)grown + n * size, 0, size);
    return 0;
}

static int to_text(char *out, size_t cap, sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s ? s : "");
    return 0;
}

static long long opt_int(sqlite3_stmt *st, int i, int *has)
{
    *has = sqlite3_column_type(st, i) != SQLITE_NULL;
    return sqlite3_column_int64(st, i);
}

/* --- states ---------------------------------------------------------------------- */

struct state_row {
    int found;
    char state[32];
    char *version;
};

static int state_row(sqlite3_stmt *st, void *payload)
{
    struct state_row *s = payload;
    s->found = 1;
    to_text(s->state, sizeof(s->state), st, 0);
    free(s->version);
    s->version = reg_dup_col(st, 1, NULL);
    return 0;
}

int rr_rollout_state(ll_rollout_state *out, char **out_version, ll_registry *r, long long id)
{
    struct state_row s = {0};
    int error = rr_each(r, "SELECT state, version FROM rollouts WHERE id = ?", RR_ARGS(RR_I(id)),
                        state_row, &s);
    if (error >= 0 && !s.found)
        error = ll_error_set(LL_ENOTFOUND, "no rollout %lld", id);
    if (error >= 0)
        error = ll_rollout_state_parse(out, s.state);
    if (error >= 0 && out_version) {
        *out_version = s.version;
        s.version = NULL;
    }
    free(s.version);
    return error < 0 ? error : 0;
}

int rr_state_conflict(long long id, ll_rollout_state state)
{
    ll_error_set(LL_ECONFLICT, "rollout %lld is %s", id, ll_rollout_state_name(state));
    return LL_ECONFLICT;
}

/* --- what a tenant's file carries ------------------------------------------------ */

struct newest {
    char *best; /* the newest exact version on the line */
    char *tier_version;
};

static int tier_version_row(sqlite3_stmt *st, void *payload)
{
    struct newest *n = payload;
    free(n->tier_version);
    n->tier_version = reg_dup_col(st, 0, NULL);
    return 0;
}

static int line_row(sqlite3_stmt *st, void *payload)
{
    struct newest *n = payload;
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (!v || ll_validate_release(v) < 0 || !ll_release_pinned(v))
        return 0; /* pre-releases and build metadata are never chosen */
    if (!n->best || ll_semver_cmp(v, n->best) > 0) {
        free(n->best);
        n->best = strdup(v);
    }
    return 0;
}

int reg_chart_version_for(char *out, size_t cap, ll_registry *r, const char *tier,
                          const char *release)
{
    struct newest n = {0};
    char expr[64], line[64];
    int error;

    if (ll_release_expr(expr, sizeof(expr), release) < 0)
        return LL_EINVALID;
    snprintf(out, cap, "%s", expr);
    if (ll_release_pinned(release))
        return 0;
    if ((error = rr_each(r,
                         "SELECT version FROM tier_versions tv WHERE tier = ? AND EXISTS (SELECT 1 "
                         "FROM releases WHERE version = tv.version)",
                         RR_ARGS(RR_S(tier)), tier_version_row, &n)) < 0)
        goto done;
    if (n.tier_version) {
        snprintf(out, cap, "%s", n.tier_version);
        error = 0;
        goto done;
    }
    /* The newest upload on the tenant's line ("1.2." of "1.2.x"). */
    snprintf(line, sizeof(line), "%.*s", (int)(strlen(expr) - 1), expr);
    if ((error = rr_each(r, "SELECT version FROM releases WHERE substr(version, 1, ?) = ?",
                         RR_ARGS(RR_I(strlen(line)), RR_S(line)), line_row, &n)) < 0)
        goto done;
    ll_error_clear();
    if (n.best)
        snprintf(out, cap, "%s", n.best);
    error = 0;
done:
    free(n.best);
    free(n.tier_version);
    return error;
}

/* --- rows into records ------------------------------------------------------------ */

#define ROLLOUT_COLS                                                                               \
    "id, version, state, on_failure, scope, wave_timeout, current_wave, reason, rollback_op, "     \
    "rollback_sha, author_name, author_email, created_at, updated_at, finished_at"

/* A JSON text column decoded into a selector. */
static int selector_col(ll_selector *out, sqlite3_stmt *st, int i)
{
    const char *text = (const char *)sqlite3_column_text(st, i);
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    int error = ll_selector_from_json(out, v);
    json_decref(v);
    return error;
}

/* A row of ROLLOUT_COLS. */
static int rollout_row(ll_rollout *ro, sqlite3_stmt *st)
{
    char state[32], on_failure[32];
    int error;
    ro->id = sqlite3_column_int64(st, 0);
    ro->version = reg_dup_col(st, 1, NULL);
    to_text(state, sizeof(state), st, 2);
    to_text(on_failure, sizeof(on_failure), st, 3);
    if ((error = ll_rollout_state_parse(&ro->state, state)) < 0 ||
        (error = ll_on_failure_parse(&ro->on_failure, on_failure)) < 0 ||
        (error = selector_col(&ro->scope, st, 4)) < 0)
        return error;
    ro->wave_timeout = sqlite3_column_int64(st, 5);
    ro->current_wave = sqlite3_column_int(st, 6);
    ro->reason = reg_dup_col(st, 7, NULL);
    ro->rollback_op = sqlite3_column_int64(st, 8);
    ro->rollback_sha = reg_dup_col(st, 9, NULL);
    ro->author_name = reg_dup_col(st, 10, NULL);
    ro->author_email = reg_dup_col(st, 11, NULL);
    ro->created_at = reg_dup_col(st, 12, NULL);
    ro->updated_at = reg_dup_col(st, 13, NULL);
    ro->finished_at = reg_dup_col(st, 14, NULL);
    return 0;
}

/* Rows of ROLLOUT_COLS into a growing array of new rollouts. */
struct rollouts_acc {
    ll_rollout **v;
    size_t n;
};

static int rollouts_row(sqlite3_stmt *st, void *payload)
{
    struct rollouts_acc *a = payload;
    ll_rollout *ro = calloc(1, sizeof(*ro));
    if (!ro || rr_grow((void **)&a->v, a->n, sizeof(*a->v)) < 0) {
        free(ro);
        return ll_error_set(-1, "out of memory");
    }
    a->v[a->n++] = ro;
    return rollout_row(ro, st);
}

static int wave_row(sqlite3_stmt *st, void *payload)
{
    ll_rollout *ro = payload;
    char state[32];
    int error;
    if ((error = rr_grow((void **)&ro->waves, ro->nwaves, sizeof(*ro->waves))) < 0)
        return error;
    ll_wave *w = &ro->waves[ro->nwaves++];
    w->wave = sqlite3_column_int(st, 0);
    w->soak_seconds = sqlite3_column_int64(st, 2);
    to_text(state, sizeof(state), st, 3);
    w->operation_id = sqlite3_column_int64(st, 4);
    w->commit_sha = reg_dup_col(st, 5, NULL);
    w->deadline_ms = opt_int(st, 6, &w->has_deadline);
    w->soak_until_ms = opt_int(st, 7, &w->has_soak_until);
    w->error = reg_dup_col(st, 8, NULL);
    w->started_at = reg_dup_col(st, 9, NULL);
    w->pushed_at = reg_dup_col(st, 10, NULL);
    w->ready_at = reg_dup_col(st, 11, NULL);
    w->finished_at = reg_dup_col(st, 12, NULL);
    if ((error = ll_wave_state_parse(&w->state, state)) < 0)
        return error;
    return selector_col(&w->selector, st, 1);
}

static int pool_row(sqlite3_stmt *st, void *payload)
{
    ll_rollout *ro = payload;
    char state[32];
    int error;
    if ((error = rr_grow((void **)&ro->pools, ro->npools, sizeof(*ro->pools))) < 0)
        return error;
    ll_rollout_pool *p = &ro->pools[ro->npools++];
    p->pool = reg_dup_col(st, 0, NULL);
    p->wave = sqlite3_column_int(st, 1);
    p->from_version = reg_dup_col(st, 2, NULL);
    to_text(state, sizeof(state), st, 3);
    return ll_pool_state_parse(&p->state, state);
}

static int count_row(sqlite3_stmt *st, void *payload)
{
    ll_rollout *ro = payload;
    char state[32];
    ll_rt_state s;
    int error;
    int wave = sqlite3_column_int(st, 0);
    long long n = sqlite3_column_int64(st, 2);
    to_text(state, sizeof(state), st, 1);
    if ((error = ll_rt_state_parse(&s, state)) < 0)
        return error;
    ro->counts[s] += n;
    for (size_t i = 0; i < ro->nwaves; i++)
        if (ro->waves[i].wave == wave)
            ro->waves[i].counts[s] += n;
    return 0;
}

static int tenant_row(sqlite3_stmt *st, void *payload)
{
    ll_rollout *ro = payload;
    char state[32];
    int error;
    if ((error = rr_grow((void **)&ro->tenants, ro->ntenants, sizeof(*ro->tenants))) < 0)
        return error;
    ll_rollout_tenant *t = &ro->tenants[ro->ntenants++];
    t->id = reg_dup_col(st, 0, NULL);
    t->tier = reg_dup_col(st, 1, NULL);
    t->wave = sqlite3_column_int(st, 2); /* NULL (skipped): 0 */
    t->from_version = reg_dup_col(st, 3, NULL);
    to_text(state, sizeof(state), st, 4);
    t->reason = reg_dup_col(st, 5, NULL);
    t->updated_at = reg_dup_col(st, 6, NULL);
    return ll_rt_state_parse(&t->state, state);
}

/* Reads the rollout's waves, pools, counts and (with_tenants) tenants. */
static int fill(ll_rollout *ro, ll_registry *r, int with_tenants)
{
    int error;
    if ((error = rr_each(r,
                         "SELECT wave, selector, soak_seconds, state, operation_id, commit_sha, "
                         "deadline_ms, soak_until_ms, error, started_at, pushed_at, ready_at, "
                         "finished_at FROM rollout_waves WHERE rollout_id = ? ORDER BY wave",
                         RR_ARGS(RR_I(ro->id)), wave_row, ro)) < 0 ||
        (error = rr_each(r,
                         "SELECT pool, wave, from_version, state FROM rollout_pools WHERE "
                         "rollout_id = ? ORDER BY pool",
                         RR_ARGS(RR_I(ro->id)), pool_row, ro)) < 0 ||
        (error = rr_each(r,
                         "SELECT coalesce(wave, 0) AS wave, state, count(*) AS n FROM "
                         "rollout_tenants WHERE rollout_id = ? GROUP BY 1, 2",
                         RR_ARGS(RR_I(ro->id)), count_row, ro)) < 0)
        return error;
    ro->with_tenants = with_tenants;
    if (with_tenants &&
        (error = rr_each(r,
                         "SELECT tenant_id, tier, wave, from_version, state, reason, updated_at "
                         "FROM rollout_tenants WHERE rollout_id = ? ORDER BY wave IS NULL, wave, "
                         "tenant_id",
                         RR_ARGS(RR_I(ro->id)), tenant_row, ro)) < 0)
        return error;
    return 0;
}

/* --- reading --------------------------------------------------------------------- */

int ll_registry_rollout_get(ll_rollout **out, ll_registry *r, long long id, int with_tenants)
{
    struct rollouts_acc a = {0};
    int error;

    *out = NULL;
    if ((error = rr_each(r, "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id = ?", RR_ARGS(RR_I(id)),
                         rollouts_row, &a)) < 0)
        goto done;
    if (!a.n) {
        error = ll_error_set(LL_ENOTFOUND, "no rollout %lld", id);
        goto done;
    }
    if ((error = fill(a.v[0], r, with_tenants)) < 0)
        goto done;
    *out = a.v[0];
    a.v[0] = NULL;
    error = 0;
done:
    ll_rollout_array_free(a.v, a.n);
    return error;
}

int ll_registry_rollout_list(ll_rollout ***out_items, size_t *out_n, ll_registry *r,
                             long long before, int limit)
{
    struct rollouts_acc a = {0};
    int error;

    *out_items = NULL;
    *out_n = 0;
    if ((error = rr_each(r,
                         "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id < ? ORDER BY id DESC "
                         "LIMIT ?",
                         RR_ARGS(RR_I(before > 0 ? before : (long long)1 << 62), RR_I(limit)),
                         rollouts_row, &a)) < 0)
        goto done;
    for (size_t i = 0; i < a.n; i++)
        if ((error = fill(a.v[i], r, 0)) < 0)
            goto done;
    *out_items = a.v;
    *out_n = a.n;
    a.v = NULL;
    a.n = 0;
    error = 0;
done:
    ll_rollout_array_free(a.v, a.n);
    return error;
}

struct ids_acc {
    long long *v;
    size_t n;
};

static int id_row(sqlite3_stmt *st, void *payload)
{
    struct ids_acc *a = payload;
    int error;
    if ((error = rr_grow((void **)&a->v, a->n, sizeof(*a->v))) < 0)
        return error;
    a->v[a->n++] = sqlite3_column_int64(st, 0);
    return 0;
}

int ll_registry_rollouts_driven(long long **out_ids, size_t *out_n, ll_registry *r)
{
    struct ids_acc a = {0};
    int error =
        rr_each(r, "SELECT id FROM rollouts WHERE state IN ('running', 'rolling_back') ORDER BY id",
                NULL, 0, id_row, &a);
    *out_ids = NULL;
    *out_n = 0;
    if (error < 0) {
        free(a.v);
        return error;
    }
    *out_ids = a.v;
    *out_n = a.n;
    return 0;
}

struct candidates_acc {
    ll_rollout_candidate *v;
    size_t n;
};

static int candidate_row(sqlite3_stmt *st, void *payload)
{
    struct candidates_acc *a = payload;
    int error;
    if ((error = rr_grow((void **)&a->v, a->n, sizeof(*a->v))) < 0)
        return error;
    ll_rollout_candidate *c = &a->v[a->n++];
    c->id = reg_dup_col(st, 0, NULL);
    c->tier = reg_dup_col(st, 1, NULL);
    c->release = reg_dup_col(st, 2, NULL);
    c->chart_version = reg_dup_col(st, 3, NULL);
    c->lifecycle = reg_dup_col(st, 4, NULL);
    c->active = c->lifecycle && strcmp(c->lifecycle, "active") == 0;
    return 0;
}

int ll_registry_rollout_candidates(ll_rollout_candidate **out, size_t *out_n, ll_registry *r,
                                   const ll_names *tiers, const ll_names *ids)
{
    struct candidates_acc a = {0};
    const ll_names *by = tiers ? tiers : ids;
    int error = 0;

    *out = NULL;
    *out_n = 0;
    /* Few tiers, or a named list: one indexed query each. */
    for (size_t i = 0; by && i < by->n && error >= 0; i++)
        error = rr_each(r,
                        tiers ? "SELECT id, tier, release, chart_version, lifecycle FROM tenants "
                                "WHERE tier = ? AND lifecycle = 'active' ORDER BY id"
                              : "SELECT id, tier, release, chart_version, lifecycle FROM tenants "
                                "WHERE id = ?",
                        RR_ARGS(RR_S(by->v[i])), candidate_row, &a);
    if (error < 0) {
        ll_rollout_candidates_free(a.v, a.n);
        return error;
    }
    *out = a.v;
    *out_n = a.n;
    return 0;
}

struct wave_tenants_acc {
    ll_wave_tenant *v;
    size_t n;
};

static int wave_tenant_row(sqlite3_stmt *st, void *payload)
{
    struct wave_tenants_acc *a = payload;
    char state[32];
    int error;
    if ((error = rr_grow((void **)&a->v, a->n, sizeof(*a->v))) < 0)
        return error;
    ll_wave_tenant *t = &a->v[a->n++];
    t->id = reg_dup_col(st, 0, NULL);
    to_text(state, sizeof(state), st, 1);
    t->reason = reg_dup_col(st, 2, NULL);
    t->lifecycle = reg_dup_col(st, 3, NULL);
    t->active = t->lifecycle && strcmp(t->lifecycle, "active") == 0;
    t->commit_sha = reg_dup_col(st, 4, NULL);
    t->sync = reg_dup_col(st, 5, NULL);
    t->chart_version = reg_dup_col(st, 6, NULL);
    return ll_rt_state_parse(&t->state, state);
}

int ll_registry_rollout_wave_tenants(ll_wave_tenant **out, size_t *out_n, ll_registry *r,
                                     long long id, int wave)
{
    struct wave_tenants_acc a = {0};
    int error = rr_each(r,
                        "SELECT rt.tenant_id AS id, rt.state, rt.reason, t.lifecycle, t.commit_sha "
                        "AS commit_sha, t.sync, t.chart_version FROM rollout_tenants rt LEFT JOIN "
                        "tenants t ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.wave = ? "
                        "AND rt.state IN ('updating', 'ready', 'failed') ORDER BY rt.tenant_id",
                        RR_ARGS(RR_I(id), RR_I(wave)), wave_tenant_row, &a);
    *out = NULL;
    *out_n = 0;
    if (error < 0) {
        ll_wave_tenants_free(a.v, a.n);
        return error;
    }
    *out = a.v;
    *out_n = a.n;
    return 0;
}

static int count_of(sqlite3_stmt *st, void *payload)
{
    *(long long *)payload = sqlite3_column_int64(st, 0);
    return 0;
}

int ll_registry_rollouts_using(long long *out, ll_registry *r, const char *version)
{
    int error;
    *out = 0;
    error = rr_each(r,
                    "SELECT count(*) AS n FROM rollouts ro WHERE state IN ('running', 'paused', "
                    "'rolling_back') AND (version = ?1 OR EXISTS (SELECT 1 FROM rollout_tenants "
                    "WHERE rollout_id = ro.id AND from_version = ?1) OR EXISTS (SELECT 1 FROM "
                    "rollout_pools WHERE rollout_id = ro.id AND from_version = ?1))",
                    RR_ARGS(RR_S(version)), count_of, out);
    return error < 0 ? error : 0;
}

static int tier_version_from_row(void *item, sqlite3_stmt *st)
{
    ll_tier_version *t = item;
    int oom = 0;
    t->tier = reg_dup_col(st, 0, &oom);
    t->version = reg_dup_col(st, 1, &oom);
    return oom ? -1 : 0;
}

static void tier_version_clear(void *item)
{
    ll_tier_version *t = item;
    free(t->tier);
    free(t->version);
}

void ll_registry_tier_versions_free(ll_tier_version *v, size_t n)
{
    reg_records_free(v, n, sizeof(*v), tier_version_clear);
}

const char *ll_tier_version_of(const ll_tier_version *v, size_t n, const char *tier)
{
    for (size_t i = 0; tier && i < n; i++) {
        if (v[i].tier && strcmp(v[i].tier, tier) == 0)
            return v[i].version;
    }
    return NULL;
}

int ll_registry_tier_versions(ll_tier_version **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {.size = sizeof(ll_tier_version),
                     .from_row = tier_version_from_row,
                     .clear = tier_version_clear};
    int error = reg_rows(r, "read rollouts", reg_collect, &l,
                         "SELECT tier, version FROM tier_versions", NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

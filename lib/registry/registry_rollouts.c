/* registry_rollouts.c - rollouts, their waves, tenants and pools, and the
 * version each tier runs, in the registry's SQLite file.
 *
 * The registry is the rollout's truth: the engine (rollouts.c) keeps
 * nothing in memory between steps, so a restart continues where the rows
 * say.  Every step that changes tenants runs in one BEGIN IMMEDIATE
 * transaction together with its outbox operation and its events: a wave's
 * tenants, its operation (one commit for all of them) and the event
 * rollout.wave_started land together or not at all.  Which tenants a wave
 * really moves is decided inside that transaction, against the tenants as
 * they are then (a tenant pinned or offboarded since the rollout began is
 * skipped), so a concurrent PATCH cannot slip between decision and write.
 *
 * Each step names the state it expects the rollout in; when another thread
 * (a pause from the API, the engine) changed it first, the step changes
 * nothing and answers LL_ECONFLICT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "registry_int.h"

/* --- small helpers ------------------------------------------------------------- */

static void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
    if (json_is_string(v))
        sqlite3_bind_text(st, i, json_string_value(v), -1, SQLITE_TRANSIENT);
    else if (json_is_integer(v))
        sqlite3_bind_int64(st, i, json_integer_value(v));
    else if (json_is_true(v) || json_is_false(v))
        sqlite3_bind_int(st, i, json_is_true(v));
    else
        sqlite3_bind_null(st, i);
}

/* A result row as an object keyed by column name. */
static json_t *row_object(sqlite3_stmt *st)
{
    json_t *o = json_object();
    for (int i = 0; i < sqlite3_column_count(st); i++) {
        json_t *v;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(st, i));
            break;
        case SQLITE_NULL:
            v = json_null();
            break;
        default:
            v = json_string((const char *)sqlite3_column_text(st, i));
        }
        json_object_set_new(o, sqlite3_column_name(st, i), v ? v : json_null());
    }
    return o;
}

/* Runs sql with params (a JSON array, bound in order; stolen) and collects
 * the rows as objects into a new array. */
static int query(json_t **out, ll_registry *r, const char *sql, json_t *params)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array(), *v;
    size_t i;
    int error, rc;

    *out = NULL;
    if ((error = reg_prepare(&st, r, sql)) < 0) {
        json_decref(rows);
        json_decref(params);
        return error;
    }
    json_array_foreach(params, i, v) bind_json(st, (int)i + 1, v);
    json_decref(params);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, row_object(st));
    reg_finalize(r, st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        return reg_db_error(r, "read rollouts");
    }
    *out = rows;
    return 0;
}

/* Runs one statement with JSON params; the number of changed rows or a
 * negative code. */
static int run(ll_registry *r, const char *sql, const json_t *params)
{
    sqlite3_stmt *st = NULL;
    json_t *v;
    size_t i;
    int error;
    if ((error = reg_prepare(&st, r, sql)) < 0)
        return error;
    json_array_foreach(params, i, v) bind_json(st, (int)i + 1, v);
    error = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(r->db) : reg_db_error(r, sql);
    reg_finalize(r, st);
    return error;
}

/* run() that steals params. */
static int run_new(ll_registry *r, const char *sql, json_t *params)
{
    int error = params ? run(r, sql, params) : ll_error_set(-1, "out of memory");
    json_decref(params);
    return error;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int rollback(ll_registry *r, int error)
{
    reg_rollback(r);
    return error;
}

/* The rollout's state inside a transaction; LL_ENOTFOUND. */
static int rollout_state(char *out, size_t cap, char *version, size_t vcap, ll_registry *r,
                         long long id)
{
    json_t *rows = NULL;
    int error = query(&rows, r, "SELECT state, version FROM rollouts WHERE id = ?",
                      json_pack("[I]", (json_int_t)id));
    if (error < 0)
        return error;
    json_t *row = json_array_get(rows, 0);
    if (!row)
        error = ll_error_set(LL_ENOTFOUND, "no rollout %lld", id);
    else {
        snprintf(out, cap, "%s", str(row, "state"));
        if (version)
            snprintf(version, vcap, "%s", str(row, "version"));
    }
    json_decref(rows);
    return error;
}

/* 1 when state is expect (a string) or one of expect (an array); 1 when
 * expect is NULL. */
static int state_is(const char *state, const json_t *expect)
{
    size_t i;
    json_t *v;
    if (!expect)
        return 1;
    if (json_is_string(expect))
        return strcmp(state, json_string_value(expect)) == 0;
    json_array_foreach(expect, i, v) if (strcmp(state, json_string_value(v)) == 0) return 1;
    return 0;
}

static int state_conflict(long long id, const char *state)
{
    ll_error_set(LL_ECONFLICT, "rollout %lld is %s", id, state);
    return LL_ECONFLICT;
}

/* --- what a tenant's file carries ------------------------------------------------ */

int reg_chart_version_for(char *out, size_t cap, ll_registry *r, const char *tier,
                          const char *release)
{
    json_t *rows = NULL, *row;
    char expr[64], line[64];
    const char *best = NULL;
    size_t i;
    int error;

    if (ll_release_expr(expr, sizeof(expr), release) < 0)
        return LL_EINVALID;
    snprintf(out, cap, "%s", expr);
    if (ll_release_pinned(release))
        return 0;
    if ((error = query(&rows, r,
                       "SELECT version FROM tier_versions tv WHERE tier = ? AND EXISTS (SELECT 1 "
                       "FROM releases WHERE version = tv.version)",
                       json_pack("[s]", tier))) < 0)
        return error;
    if ((row = json_array_get(rows, 0))) {
        snprintf(out, cap, "%s", str(row, "version"));
        json_decref(rows);
        return 0;
    }
    json_decref(rows);
    /* The newest upload on the tenant's line ("1.2." of "1.2.x"). */
    snprintf(line, sizeof(line), "%.*s", (int)(strlen(expr) - 1), expr);
    if ((error = query(&rows, r, "SELECT version FROM releases WHERE substr(version, 1, ?) = ?",
                       json_pack("[i, s]", (int)strlen(line), line))) < 0)
        return error;
    json_array_foreach(rows, i, row)
    {
        const char *v = str(row, "version");
        if (ll_validate_release(v) < 0 || !ll_release_pinned(v))
            continue; /* pre-releases and build metadata are never chosen */
        if (!best || ll_semver_cmp(v, best) > 0)
            best = v;
    }
    ll_error_clear();
    if (best)
        snprintf(out, cap, "%s", best);
    json_decref(rows);
    return 0;
}

/* --- the outbox ---------------------------------------------------------------- */

static int insert_rollout_op(long long *out, ll_registry *r, long long rollout,
                             const json_t *payload, const char *now,
                             const ll_registry_author *author)
{
    sqlite3_stmt *st = NULL;
    char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    int error;

    if (!text)
        return ll_error_set(-1, "cannot encode the rollout operation");
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                             "created_at, updated_at, author_name, author_email, rollout_id) "
                             "VALUES ('rollout', NULL, '', ?, 'queued', ?, ?, ?, ?, ?) RETURNING "
                             "id")) < 0) {
        free(text);
        return error;
    }
    reg_bind_text(st, 1, text);
    reg_bind_text(st, 2, now);
    reg_bind_text(st, 3, now);
    reg_bind_text(st, 4, author->name);
    reg_bind_text(st, 5, author->email);
    sqlite3_bind_int64(st, 6, rollout);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        error = 0;
    } else {
        error = reg_db_error(r, "queue rollout operation");
    }
    reg_finalize(r, st);
    free(text);
    return error;
}

/* Points every tenant of payload at operation op, carrying its "to"
 * version, pending. */
static int move_tenants(ll_registry *r, long long op, const json_t *payload, const char *now)
{
    size_t i;
    json_t *t;
    int error;
    json_array_foreach(json_object_get(payload, "tenants"), i, t)
    {
        if ((error = run_new(r,
                             "INSERT OR IGNORE INTO operation_tenants (operation_id, tenant_id) "
                             "VALUES (?, ?)",
                             json_pack("[I, O]", (json_int_t)op, json_object_get(t, "id")))) < 0 ||
            (error = run_new(r,
                             "UPDATE tenants SET chart_version = ?, sync = 'pending', "
                             "operation_id = ?, updated_at = ? WHERE id = ?",
                             json_pack("[O, I, s, O]", json_object_get(t, "to"), (json_int_t)op,
                                       now, json_object_get(t, "id")))) < 0)
            return error;
    }
    return 0;
}

int reg_rollout_op_finished(ll_registry *r, const json_t *op, int ok, const char *sha,
                            const char *now)
{
    long long id = json_integer_value(json_object_get(op, "id"));
    const json_t *payload = json_object_get(op, "payload"), *t;
    size_t i;
    int error;

    if (ok)
        return run_new(r,
                       "UPDATE tenants SET sync = 'committed', commit_sha = ?, updated_at = ? "
                       "WHERE operation_id = ?",
                       json_pack("[s, s, I]", sha, now, (json_int_t)id)) < 0
                   ? -1
                   : 0;
    /* Nothing of it reached git: each tenant it still owns returns to what
     * its file carries (and to the operation before, pending if that one
     * still is). */
    json_array_foreach(json_object_get(payload, "tenants"), i, t)
    {
        if ((error = run_new(r,
                             "UPDATE tenants SET chart_version = ?1, updated_at = ?2, "
                             "operation_id = ?3, sync = CASE WHEN (SELECT state FROM operations "
                             "WHERE id = ?3) = 'queued' THEN 'pending' ELSE 'committed' END "
                             "WHERE id = ?4 AND operation_id = ?5",
                             json_pack("[O, s, O, O, I]", json_object_get(t, "from"), now,
                                       json_object_get(t, "prev_op"), json_object_get(t, "id"),
                                       (json_int_t)id))) < 0)
            return error;
    }
    return 0;
}

/* --- reading --------------------------------------------------------------------- */

#define ROLLOUT_COLS                                                                               \
    "id, version, state, on_failure, scope, wave_timeout, current_wave, reason, rollback_op, "     \
    "rollback_sha, author_name, author_email, created_at, updated_at, finished_at"

/* Decodes the JSON text columns of a rollout or wave row in place. */
static void decode(json_t *row, const char *key)
{
    const char *text = str(row, key);
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (v)
        json_object_set_new(row, key, v);
}

/* Counts of the rollout's tenants per wave and state:
 * {"<wave or skipped>": {"<state>": n}}. */
static int counts(json_t **out, ll_registry *r, long long id)
{
    json_t *rows = NULL, *row, *c = json_object();
    size_t i;
    int error = query(&rows, r,
                      "SELECT coalesce(wave, 0) AS wave, state, count(*) AS n FROM "
                      "rollout_tenants WHERE rollout_id = ? GROUP BY 1, 2",
                      json_pack("[I]", (json_int_t)id));
    if (error < 0) {
        json_decref(c);
        return error;
    }
    json_array_foreach(rows, i, row)
    {
        char key[32];
        snprintf(key, sizeof(key), "%lld",
                 (long long)json_integer_value(json_object_get(row, "wave")));
        json_t *w = json_object_get(c, key);
        if (!w)
            json_object_set_new(c, key, w = json_object());
        json_object_set(w, str(row, "state"), json_object_get(row, "n"));
    }
    json_decref(rows);
    *out = c;
    return 0;
}

static int fill(json_t *ro, ll_registry *r, int with_tenants)
{
    long long id = json_integer_value(json_object_get(ro, "id"));
    json_t *waves = NULL, *pools = NULL, *tenants = NULL, *c = NULL, *w;
    size_t i;
    int error;

    decode(ro, "scope");
    if ((error = query(&waves, r,
                       "SELECT wave, selector, soak_seconds, state, operation_id, commit_sha, "
                       "deadline_ms, soak_until_ms, error, started_at, pushed_at, ready_at, "
                       "finished_at FROM rollout_waves WHERE rollout_id = ? ORDER BY wave",
                       json_pack("[I]", (json_int_t)id))) < 0 ||
        (error = query(&pools, r,
                       "SELECT pool, wave, from_version, state FROM rollout_pools WHERE "
                       "rollout_id = ? ORDER BY pool",
                       json_pack("[I]", (json_int_t)id))) < 0 ||
        (error = counts(&c, r, id)) < 0)
        goto done;
    json_array_foreach(waves, i, w) decode(w, "selector");
    json_object_set(ro, "waves", waves);
    json_object_set(ro, "pools", pools);
    json_object_set(ro, "counts", c);
    if (with_tenants) {
        if ((error = query(&tenants, r,
                           "SELECT tenant_id, tier, wave, from_version, state, reason, updated_at "
                           "FROM rollout_tenants WHERE rollout_id = ? ORDER BY wave IS NULL, wave, "
                           "tenant_id",
                           json_pack("[I]", (json_int_t)id))) < 0)
            goto done;
        json_object_set(ro, "tenants", tenants);
    }
done:
    json_decref(waves);
    json_decref(pools);
    json_decref(tenants);
    json_decref(c);
    return error;
}

int ll_registry_rollout_get(json_t **out, ll_registry *r, long long id, int with_tenants)
{
    json_t *rows = NULL;
    int error;
    *out = NULL;
    if ((error = query(&rows, r, "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id = ?",
                       json_pack("[I]", (json_int_t)id))) < 0)
        return error;
    json_t *ro = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    if (!ro)
        return ll_error_set(LL_ENOTFOUND, "no rollout %lld", id);
    if ((error = fill(ro, r, with_tenants)) < 0) {
        json_decref(ro);
        return error;
    }
    *out = ro;
    return 0;
}

int ll_registry_rollout_list(json_t **out, ll_registry *r, long long before, int limit)
{
    json_t *rows = NULL, *ro;
    size_t i;
    int error;
    *out = NULL;
    if ((error = query(&rows, r,
                       "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id < ? ORDER BY id DESC "
                       "LIMIT ?",
                       json_pack("[I, i]", (json_int_t)(before > 0 ? before : (long long)1 << 62),
                                 limit))) < 0)
        return error;
    json_array_foreach(rows, i, ro)
    {
        if ((error = fill(ro, r, 0)) < 0) {
            json_decref(rows);
            return error;
        }
    }
    *out = rows;
    return 0;
}

int ll_registry_rollouts_driven(json_t **out, ll_registry *r)
{
    return query(out, r,
                 "SELECT id FROM rollouts WHERE state IN ('running', 'rolling_back') ORDER BY id",
                 NULL);
}

int ll_registry_rollout_candidates(json_t **out, ll_registry *r, const json_t *tiers,
                                   const json_t *ids)
{
    json_t *all = json_array(), *rows = NULL, *v;
    size_t i;
    int error = 0;

    *out = NULL;
    /* Few tiers, or a named list: one indexed query each. */
    json_array_foreach(tiers ? tiers : ids, i, v)
    {
        error = query(&rows, r,
                      tiers ? "SELECT id, tier, release, chart_version, lifecycle, path FROM "
                              "tenants WHERE tier = ? AND lifecycle = 'active' ORDER BY id"
                            : "SELECT id, tier, release, chart_version, lifecycle, path FROM "
                              "tenants WHERE id = ?",
                      json_pack("[O]", v));
        if (error < 0)
            break;
        json_array_extend(all, rows);
        json_decref(rows);
        rows = NULL;
    }
    if (error < 0) {
        json_decref(all);
        return error;
    }
    *out = all;
    return 0;
}

int ll_registry_rollouts_using(long long *out, ll_registry *r, const char *version)
{
    json_t *rows = NULL;
    int error = query(&rows, r,
                      "SELECT count(*) AS n FROM rollouts ro WHERE state IN ('running', 'paused', "
                      "'rolling_back') AND (version = ?1 OR EXISTS (SELECT 1 FROM rollout_tenants "
                      "WHERE rollout_id = ro.id AND from_version = ?1) OR EXISTS (SELECT 1 FROM "
                      "rollout_pools WHERE rollout_id = ro.id AND from_version = ?1))",
                      json_pack("[s]", version));
    if (error < 0)
        return error;
    *out = json_integer_value(json_object_get(json_array_get(rows, 0), "n"));
    json_decref(rows);
    return 0;
}

int ll_registry_tier_versions(json_t **out, ll_registry *r)
{
    json_t *rows = NULL, *row, *map = json_object();
    size_t i;
    int error = query(&rows, r, "SELECT tier, version FROM tier_versions", NULL);
    if (error < 0) {
        json_decref(map);
        return error;
    }
    json_array_foreach(rows, i, row)
        json_object_set(map, str(row, "tier"), json_object_get(row, "version"));
    json_decref(rows);
    *out = map;
    return 0;
}

/* --- writing --------------------------------------------------------------------- */

int ll_registry_rollout_create(long long *out_id, ll_registry *r, const json_t *spec)
{
    const json_t *author = json_object_get(spec, "author"), *v;
    json_t *rows = NULL, *ids = NULL;
    char now[32], *scope = NULL;
    long long id = 0;
    size_t i;
    int error;

    *out_id = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    /* The version may have been deleted since the request was checked. */
    if ((error = query(&rows, r, "SELECT 1 FROM releases WHERE version = ?",
                       json_pack("[O]", json_object_get(spec, "version")))) < 0)
        return rollback(r, error);
    int uploaded = json_array_size(rows) > 0;
    json_decref(rows);
    if (!uploaded) {
        ll_error_set(LL_EINVALID, "release %s was never uploaded", str(spec, "version"));
        ll_error_field("version");
        return rollback(r, LL_EINVALID);
    }
    /* No tenant or pool in two active rollouts. */
    json_array_foreach(json_object_get(spec, "tenants"), i, v)
    {
        if (strcmp(str(v, "state"), "skipped") == 0)
            continue;
        if ((error = query(&rows, r,
                           "SELECT ro.id FROM rollout_tenants rt JOIN rollouts ro ON ro.id = "
                           "rt.rollout_id WHERE rt.tenant_id = ? AND rt.state != 'skipped' AND "
                           "ro.state IN ('running', 'paused', 'rolling_back') LIMIT 1",
                           json_pack("[O]", json_object_get(v, "id")))) < 0)
            return rollback(r, error);
        if (json_array_size(rows)) {
            long long other = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
            json_decref(rows);
            ll_error_set(LL_ECONFLICT, "tenant '%s' is in rollout %lld, which is still active",
                         str(v, "id"), other);
            ll_error_field("tenants");
            ll_error_hint("wait for rollout %lld to end, or abort it", other);
            return rollback(r, LL_ECONFLICT);
        }
        json_decref(rows);
    }
    json_array_foreach(json_object_get(spec, "pools"), i, v)
    {
        if ((error = query(&rows, r,
                           "SELECT ro.id FROM rollout_pools rp JOIN rollouts ro ON ro.id = "
                           "rp.rollout_id WHERE rp.pool = ? AND ro.state IN ('running', 'paused', "
                           "'rolling_back') LIMIT 1",
                           json_pack("[O]", json_object_get(v, "pool")))) < 0)
            return rollback(r, error);
        if (json_array_size(rows)) {
            long long other = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
            json_decref(rows);
            ll_error_set(LL_ECONFLICT,
                         "pool environment '%s' moves with rollout %lld, which is still active",
                         str(v, "pool"), other);
            ll_error_field("tiers");
            ll_error_hint("wait for rollout %lld to end, or abort it", other);
            return rollback(r, LL_ECONFLICT);
        }
        json_decref(rows);
    }
    if (!(scope = json_dumps(json_object_get(spec, "scope"), JSON_COMPACT | JSON_SORT_KEYS))) {
        error = ll_error_set(-1, "cannot encode the scope");
        return rollback(r, error);
    }
    error = query(&ids, r,
                  "INSERT INTO rollouts (version, state, on_failure, scope, wave_timeout, "
                  "author_name, author_email, created_at, updated_at) VALUES (?, 'running', ?, ?, "
                  "?, ?, ?, ?, ?) RETURNING id",
                  json_pack("[O, O, s, O, O, O, s, s]", json_object_get(spec, "version"),
                            json_object_get(spec, "on_failure"), scope,
                            json_object_get(spec, "wave_timeout"), json_object_get(author, "name"),
                            json_object_get(author, "email"), now, now));
    free(scope);
    if (error < 0)
        return rollback(r, error);
    id = json_integer_value(json_object_get(json_array_get(ids, 0), "id"));
    json_decref(ids);
    json_array_foreach(json_object_get(spec, "waves"), i, v)
    {
        char *sel = json_dumps(json_object_get(v, "selector"), JSON_COMPACT | JSON_SORT_KEYS);
        error = run_new(r,
                        "INSERT INTO rollout_waves (rollout_id, wave, selector, soak_seconds, "
                        "state) VALUES (?, ?, ?, ?, 'pending')",
                        json_pack("[I, i, s, O]", (json_int_t)id, (int)i + 1, sel ? sel : "{}",
                                  json_object_get(v, "soak_seconds")));
        free(sel);
        if (error < 0)
            return rollback(r, error);
    }
    json_array_foreach(json_object_get(spec, "tenants"), i, v)
    {
        if ((error = run_new(r,
                             "INSERT INTO rollout_tenants (rollout_id, tenant_id, tier, wave, "
                             "from_version, state, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, "
                             "?, ?)",
                             json_pack("[I, O, O, O, O, O, O, s]", (json_int_t)id,
                                       json_object_get(v, "id"), json_object_get(v, "tier"),
                                       json_object_get(v, "wave"), json_object_get(v, "from"),
                                       json_object_get(v, "state"), json_object_get(v, "reason"),
                                       now))) < 0)
            return rollback(r, error);
    }
    json_array_foreach(json_object_get(spec, "pools"), i, v)
    {
        if ((error = run_new(r,
                             "INSERT INTO rollout_pools (rollout_id, pool, wave, from_version, "
                             "state) VALUES (?, ?, ?, ?, 'pending')",
                             json_pack("[I, O, O, O]", (json_int_t)id, json_object_get(v, "pool"),
                                       json_object_get(v, "wave"), json_object_get(v, "from")))) <
            0)
            return rollback(r, error);
    }
    json_t *data = json_deep_copy(json_object_get(spec, "event"));
    if (!data)
        data = json_object();
    json_object_set_new(data, "rollout", json_integer(id));
    json_object_set_new(data, "at", json_string(now));
    json_t *events = json_pack("[{s:s, s:o}]", "type", "rollout.started", "data", data);
    error = reg_store_events(r, events);
    json_decref(events);
    if (error < 0)
        return rollback(r, error);
    if ((error = reg_commit(r)) < 0)
        return rollback(r, error);
    *out_id = id;
    return 0;
}

static int step_body(ll_registry *r, long long id, const json_t *step, const char *now);

/* Adds "rollout" and "at" to each event's data and stores them. */
static int events_of(ll_registry *r, long long id, const json_t *events, const char *now)
{
    json_t *copy = json_deep_copy(events), *e;
    size_t i;
    int error;
    json_array_foreach(copy, i, e)
    {
        json_t *data = json_object_get(e, "data");
        if (!data)
            json_object_set_new(e, "data", data = json_object());
        json_object_set_new(data, "rollout", json_integer(id));
        json_object_set_new(data, "at", json_string(now));
    }
    error = reg_store_events(r, copy);
    json_decref(copy);
    return error;
}

int ll_registry_rollout_wave_start(long long *out_op, ll_registry *r, long long id, int wave,
                                   const json_t *step, const ll_registry_author *author)
{
    json_t *rows = NULL, *pools = NULL, *payload = NULL, *row, *moving = json_array(),
           *skipped = json_array(), *pool_moves = json_array();
    char now[32], state[32], version[64];
    long long op = 0;
    size_t i;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        goto done;
    if ((error = rollout_state(state, sizeof(state), version, sizeof(version), r, id)) < 0)
        goto fail;
    if (strcmp(state, "running") != 0) {
        error = state_conflict(id, state);
        goto fail;
    }
    if ((error =
             query(&rows, r, "SELECT state FROM rollout_waves WHERE rollout_id = ? AND wave = ?",
                   json_pack("[I, i]", (json_int_t)id, wave))) < 0)
        goto fail;
    if (!json_array_size(rows) || strcmp(str(json_array_get(rows, 0), "state"), "pending") != 0) {
        error = ll_error_set(LL_ECONFLICT, "wave %d of rollout %lld has started already", wave, id);
        goto fail;
    }
    json_decref(rows);
    /* Which of the wave's tenants move, decided against them as they are. */
    if ((error = query(&rows, r,
                       "SELECT rt.tenant_id AS id, t.tier, t.release, t.chart_version, "
                       "t.lifecycle, t.path, t.operation_id FROM rollout_tenants rt LEFT JOIN "
                       "tenants t ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.wave = ? "
                       "AND rt.state = 'pending' ORDER BY rt.tenant_id",
                       json_pack("[I, i]", (json_int_t)id, wave))) < 0)
        goto fail;
    json_array_foreach(rows, i, row)
    {
        const char *lifecycle = str(row, "lifecycle"), *release = str(row, "release"),
                   *chart = str(row, "chart_version");
        char why[160] = "";
        if (!lifecycle || strcmp(lifecycle, "active") != 0)
            snprintf(why, sizeof(why), "%s since the rollout began",
                     lifecycle ? lifecycle : "gone");
        else if (ll_release_pinned(release))
            snprintf(why, sizeof(why), "pinned to %s since the rollout began", release);
        else if (chart && strcmp(chart, version) == 0)
            snprintf(why, sizeof(why), "at %s already", version);
        if (why[0]) {
            json_array_append_new(
                skipped, json_pack("{s:O, s:s}", "id", json_object_get(row, "id"), "reason", why));
            continue;
        }
        json_array_append_new(moving, json_pack("{s:O, s:O, s:O, s:s, s:O, s:O}", "id",
                                                json_object_get(row, "id"), "tier",
                                                json_object_get(row, "tier"), "path",
                                                json_object_get(row, "path"), "to", version, "from",
                                                json_object_get(row, "chart_version"), "prev_op",
                                                json_object_get(row, "operation_id")));
    }
    if ((error = query(&pools, r,
                       "SELECT pool, from_version FROM rollout_pools WHERE rollout_id = ? AND wave "
                       "= ? AND state = 'pending' ORDER BY pool",
                       json_pack("[I, i]", (json_int_t)id, wave))) < 0)
        goto fail;
    json_array_foreach(pools, i, row) json_array_append_new(
        pool_moves, json_pack("{s:O, s:s, s:O}", "name", json_object_get(row, "pool"), "to",
                              version, "from", json_object_get(row, "from_version")));
    json_array_foreach(skipped, i, row)
    {
        if ((error = run_new(r,
                             "UPDATE rollout_tenants SET state = 'skipped', reason = ?, updated_at "
                             "= ? WHERE rollout_id = ? AND tenant_id = ?",
                             json_pack("[O, s, I, O]", json_object_get(row, "reason"), now,
                                       (json_int_t)id, json_object_get(row, "id")))) < 0)
            goto fail;
    }
    if (json_array_size(moving) || json_array_size(pool_moves)) {
        payload =
            json_pack("{s:I, s:s, s:i, s:s, s:O, s:O}", "rollout", (json_int_t)id, "action", "wave",
                      "wave", wave, "version", version, "tenants", moving, "pools", pool_moves);
        if ((error = insert_rollout_op(&op, r, id, payload, now, author)) < 0 ||
            (error = move_tenants(r, op, payload, now)) < 0)
            goto fail;
        json_array_foreach(moving, i, row)
        {
            if ((error = run_new(r,
                                 "UPDATE rollout_tenants SET state = 'updating', from_version = ?, "
                                 "prev_op = ?, reason = NULL, updated_at = ? WHERE rollout_id = ? "
                                 "AND tenant_id = ?",
                                 json_pack("[O, O, s, I, O]", json_object_get(row, "from"),
                                           json_object_get(row, "prev_op"), now, (json_int_t)id,
                                           json_object_get(row, "id")))) < 0)
                goto fail;
        }
        if ((error = run_new(r,
                             "UPDATE rollout_pools SET state = 'moved' WHERE rollout_id = ? AND "
                             "wave = ? AND state = 'pending'",
                             json_pack("[I, i]", (json_int_t)id, wave))) < 0)
            goto fail;
    }
    /* Without anything to commit the wave waits at once (and passes). */
    if ((error = run_new(r,
                         "UPDATE rollout_waves SET state = ?, operation_id = ?, started_at = ?, "
                         "pushed_at = CASE WHEN ? THEN NULL ELSE ? END WHERE rollout_id = ? AND "
                         "wave = ?",
                         json_pack("[s, o, s, b, s, I, i]", op ? "committing" : "waiting",
                                   op ? json_integer(op) : json_null(), now, op != 0, now,
                                   (json_int_t)id, wave))) < 0 ||
        (error = run_new(r, "UPDATE rollouts SET current_wave = ?, updated_at = ? WHERE id = ?",
                         json_pack("[i, s, I]", wave, now, (json_int_t)id))) < 0)
        goto fail;
    json_t *own = json_deep_copy(step);
    json_t *e0 = json_array_get(json_object_get(own, "events"), 0);
    if (e0) {
        json_t *data = json_object_get(e0, "data");
        json_object_set_new(data, "tenants", json_integer((json_int_t)json_array_size(moving)));
        json_object_set_new(data, "skipped", json_integer((json_int_t)json_array_size(skipped)));
        json_object_set_new(data, "operation", op ? json_integer(op) : json_null());
    }
    error = step_body(r, id, own, now);
    json_decref(own);
    if (error < 0)
        goto fail;
    if ((error = reg_commit(r)) < 0)
        goto fail;
    *out_op = op;
    goto done;
fail:
    reg_rollback(r);
done:
    json_decref(rows);
    json_decref(pools);
    json_decref(payload);
    json_decref(moving);
    json_decref(skipped);
    json_decref(pool_moves);
    return error;
}

int ll_registry_rollout_rollback(long long *out_op, ll_registry *r, long long id,
                                 const json_t *step, const ll_registry_author *author)
{
    json_t *rows = NULL, *pools = NULL, *payload = NULL, *row, *back = json_array(),
           *pool_back = json_array();
    char now[32], state[32], version[64];
    long long op = 0;
    size_t i;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        goto done;
    if ((error = rollout_state(state, sizeof(state), version, sizeof(version), r, id)) < 0)
        goto fail;
    if (!state_is(state, json_object_get(step, "expect"))) {
        error = state_conflict(id, state);
        goto fail;
    }
    /* Every tenant the rollout moved (or tried to), as it is now. */
    if ((error = query(&rows, r,
                       "SELECT rt.tenant_id AS id, rt.from_version, t.tier, t.chart_version, "
                       "t.lifecycle, t.path, t.operation_id FROM rollout_tenants rt LEFT JOIN "
                       "tenants t ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.state IN "
                       "('updating', 'ready', 'failed') ORDER BY rt.tenant_id",
                       json_pack("[I]", (json_int_t)id))) < 0)
        goto fail;
    json_array_foreach(rows, i, row)
    {
        const char *chart = str(row, "chart_version"), *from = str(row, "from_version"),
                   *lifecycle = str(row, "lifecycle");
        int active = lifecycle && strcmp(lifecycle, "active") == 0;
        const char *why = NULL;
        if (active && chart && from && strcmp(chart, version) == 0) {
            json_array_append_new(
                back,
                json_pack("{s:O, s:O, s:O, s:O, s:s, s:O}", "id", json_object_get(row, "id"),
                          "tier", json_object_get(row, "tier"), "path",
                          json_object_get(row, "path"), "to", json_object_get(row, "from_version"),
                          "from", version, "prev_op", json_object_get(row, "operation_id")));
            continue;
        }
        /* Not at the rollout's version: back already (its wave's commit
         * failed), or changed by someone since (left as it is). */
        if (!active)
            why = "not active any more: left as it is";
        else if (!chart || !from || strcmp(chart, from) != 0)
            why = "changed since the rollout moved it: left as it is";
        {
            if ((error = run_new(r,
                                 "UPDATE rollout_tenants SET state = 'rolled_back', reason = ?, "
                                 "updated_at = ? WHERE rollout_id = ? AND tenant_id = ?",
                                 json_pack("[s?, s, I, O]", why, now, (json_int_t)id,
                                           json_object_get(row, "id")))) < 0)
                goto fail;
        }
    }
    if ((error = query(&pools, r,
                       "SELECT pool, from_version FROM rollout_pools WHERE rollout_id = ? AND "
                       "state = 'moved' ORDER BY pool",
                       json_pack("[I]", (json_int_t)id))) < 0)
        goto fail;
    json_array_foreach(pools, i, row) json_array_append_new(
        pool_back, json_pack("{s:O, s:O, s:s}", "name", json_object_get(row, "pool"), "to",
                             json_object_get(row, "from_version"), "from", version));
    if (json_array_size(back) || json_array_size(pool_back)) {
        payload = json_pack("{s:I, s:s, s:s, s:O, s:O}", "rollout", (json_int_t)id, "action",
                            "rollback", "version", version, "tenants", back, "pools", pool_back);
        if ((error = insert_rollout_op(&op, r, id, payload, now, author)) < 0 ||
            (error = move_tenants(r, op, payload, now)) < 0)
            goto fail;
        json_array_foreach(back, i, row)
        {
            if ((error = run_new(
                     r,
                     "UPDATE rollout_tenants SET state = 'rolled_back', reason = NULL, "
                     "updated_at = ? WHERE rollout_id = ? AND tenant_id = ?",
                     json_pack("[s, I, O]", now, (json_int_t)id, json_object_get(row, "id")))) < 0)
                goto fail;
        }
        if ((error = run_new(r,
                             "UPDATE rollout_pools SET state = 'rolled_back' WHERE rollout_id = ? "
                             "AND state = 'moved'",
                             json_pack("[I]", (json_int_t)id))) < 0)
            goto fail;
    }
    /* Nothing to return: rolled back at once. */
    if ((error = run_new(r,
                         "UPDATE rollouts SET state = ?, rollback_op = ?, updated_at = ?, "
                         "finished_at = CASE WHEN ? THEN NULL ELSE ? END WHERE id = ?",
                         json_pack("[s, o, s, b, s, I]", op ? "rolling_back" : "rolled_back",
                                   op ? json_integer(op) : json_null(), now, op != 0, now,
                                   (json_int_t)id))) < 0)
        goto fail;
    json_t *own = json_deep_copy(step);
    json_t *evs = json_object_get(own, "events");
    if (!evs)
        json_object_set_new(own, "events", evs = json_array());
    json_array_append_new(evs, json_pack("{s:s, s:{s:s, s:I, s:o, s:O?}}", "type",
                                         op ? "rollout.rolling_back" : "rollout.rolled_back",
                                         "data", "version", version, "tenants",
                                         (json_int_t)json_array_size(back), "operation",
                                         op ? json_integer(op) : json_null(), "reason",
                                         json_object_get(json_object_get(own, "set"), "reason")));
    json_object_del(json_object_get(own, "set"), "state");
    error = step_body(r, id, own, now);
    json_decref(own);
    if (error < 0)
        goto fail;
    if ((error = reg_commit(r)) < 0)
        goto fail;
    *out_op = op;
    goto done;
fail:
    reg_rollback(r);
done:
    json_decref(rows);
    json_decref(pools);
    json_decref(payload);
    json_decref(back);
    json_decref(pool_back);
    return error;
}

/* Columns a step may set. */
static const char *const rollout_columns[] = {"state",        "reason",      "current_wave",
                                              "rollback_sha", "finished_at", NULL};
static const char *const wave_columns[] = {"state",       "deadline_ms", "soak_until_ms",
                                           "error",       "pushed_at",   "ready_at",
                                           "finished_at", "commit_sha",  NULL};

static int allowed(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* UPDATE table SET <set...>, [updated_at] WHERE <where>, with the values of
 * set bound first and then where_params. */
static int update_set(ll_registry *r, const char *table, const json_t *set,
                      const char *const *columns, const char *where, const json_t *where_params,
                      const char *now, int stamp)
{
    ll_buf sql;
    json_t *params = json_array(), *v;
    const char *key;
    int error;

    ll_buf_init(&sql, 4096);
    ll_buf_printf(&sql, "UPDATE %s SET ", table);
    int n = 0;
    json_object_foreach((json_t *)set, key, v)
    {
        if (!allowed(key, columns)) {
            ll_buf_free(&sql);
            json_decref(params);
            return ll_error_set(-1, "rollout step sets an unknown column %s", key);
        }
        ll_buf_printf(&sql, "%s%s = ?", n++ ? ", " : "", key);
        json_array_append(params, v);
    }
    if (stamp) {
        ll_buf_printf(&sql, "%supdated_at = ?", n++ ? ", " : "");
        json_array_append_new(params, json_string(now));
    }
    if (!n) {
        ll_buf_free(&sql);
        json_decref(params);
        return 0;
    }
    ll_buf_printf(&sql, " WHERE %s", where);
    json_array_extend(params, (json_t *)where_params);
    error = run(r, sql.data, params);
    ll_buf_free(&sql);
    json_decref(params);
    return error;
}

/* The generic part of a step, inside the caller's transaction. */
static int step_body(ll_registry *r, long long id, const json_t *step, const char *now)
{
    const json_t *set = json_object_get(step, "set"), *wave_set = json_object_get(step, "wave_set"),
                 *t, *v;
    json_t *where = json_pack("[I]", (json_int_t)id);
    const char *key;
    size_t i;
    int error;

    error = update_set(r, "rollouts", set, rollout_columns, "id = ?", where, now, 1);
    json_decref(where);
    if (error < 0)
        return error;
    if (wave_set) {
        json_t *wp = json_pack("[I, O]", (json_int_t)id, json_object_get(step, "wave"));
        error = update_set(r, "rollout_waves", wave_set, wave_columns,
                           "rollout_id = ? AND wave = ?", wp, now, 0);
        json_decref(wp);
        if (error < 0)
            return error;
    }
    json_array_foreach(json_object_get(step, "tenants"), i, t)
    {
        if ((error = run_new(r,
                             "UPDATE rollout_tenants SET state = ?, reason = ?, updated_at = ? "
                             "WHERE rollout_id = ? AND tenant_id = ?",
                             json_pack("[O, O, s, I, O]", json_object_get(t, "state"),
                                       json_object_get(t, "reason"), now, (json_int_t)id,
                                       json_object_get(t, "id")))) < 0)
            return error;
    }
    json_object_foreach((json_t *)json_object_get(step, "tier_versions"), key, v)
    {
        if ((error = run_new(r,
                             "INSERT INTO tier_versions (tier, version, rollout_id, updated_at) "
                             "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tier) DO UPDATE SET version = "
                             "?2, rollout_id = ?3, updated_at = ?4",
                             json_pack("[s, O, I, s]", key, v, (json_int_t)id, now))) < 0)
            return error;
    }
    return events_of(r, id, json_object_get(step, "events"), now);
}

int ll_registry_rollout_step(ll_registry *r, const json_t *step)
{
    long long id = json_integer_value(json_object_get(step, "rollout"));
    char now[32], state[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = rollout_state(state, sizeof(state), NULL, 0, r, id)) < 0)
        return rollback(r, error);
    if (!state_is(state, json_object_get(step, "expect")))
        return rollback(r, state_conflict(id, state));
    if ((error = step_body(r, id, step, now)) < 0)
        return rollback(r, error);
    return reg_commit(r);
}

int ll_registry_rollout_wave_tenants(json_t **out, ll_registry *r, long long id, int wave)
{
    return query(out, r,
                 "SELECT rt.tenant_id AS id, rt.state, rt.reason, t.lifecycle, t.commit_sha AS "
                 "commit_sha, t.sync, t.chart_version FROM rollout_tenants rt LEFT JOIN tenants t "
                 "ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.wave = ? AND rt.state IN "
                 "('updating', 'ready', 'failed') ORDER BY rt.tenant_id",
                 json_pack("[I, i]", (json_int_t)id, wave));
}

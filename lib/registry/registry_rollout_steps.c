/* registry_rollout_steps.c - writing rollouts: storing one, starting a
 * wave, rolling back, and the steps of the engine and the control actions.
 *
 * Every step that changes tenants runs in one BEGIN IMMEDIATE transaction
 * together with its outbox operation and its events: a wave's tenants, its
 * operation (one commit for all of them) and the event rollout.wave_started
 * land together or not at all.  Which tenants a wave really moves is decided
 * inside that transaction, against the tenants as they are then (a tenant
 * pinned or offboarded since the rollout began is skipped), so a concurrent
 * PATCH cannot slip between decision and write.
 *
 * Each step names the states it expects the rollout in; when another thread
 * (a pause from the API, the engine) changed it first, the step changes
 * nothing and answers LL_ECONFLICT.  Steps arrive as records
 * (ll_rollout_step); the rollout operation's payload, stored as JSON text for
 * the git writer (gitops.c apply_rollout), is built here and read back by
 * reg_rollout_op_finished.
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

static int rollback(ll_registry *r, int error)
{
    reg_rollback(r);
    return error;
}

/* LL_ECONFLICT unless the rollout is in one of the states of expect (0:
 * any); its version in *out_version (a new string) when that is not
 * NULL. */
static int expect_state(char **out_version, ll_registry *r, long long id, unsigned expect)
{
    ll_rollout_state state;
    int error = rr_rollout_state(&state, out_version, r, id);
    if (error < 0)
        return error;
    if (expect && !(expect & LL_ROLLOUT_BIT(state)))
        return rr_state_conflict(id, state);
    return 0;
}

/* --- the outbox ---------------------------------------------------------------- */

/* A tenant a rollout operation moves: from one version to another. */
typedef struct move {
    char *id, *tier, *path, *from, *to;
    long long prev_op; /* the tenant's operation before (0: none) */
} move;

typedef struct moves {
    move *v;
    size_t n;
    ll_names pools, pool_from; /* pools and what each returns to or comes from */
} moves;

static void moves_clear(moves *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].id);
        free(m->v[i].tier);
        free(m->v[i].path);
        free(m->v[i].from);
        free(m->v[i].to);
    }
    free(m->v);
    ll_names_clear(&m->pools);
    ll_names_clear(&m->pool_from);
}

static move *moves_add(moves *m)
{
    if (rr_grow((void **)&m->v, m->n, sizeof(*m->v)) < 0)
        return NULL;
    return &m->v[m->n++];
}

/* The operation's payload: {"rollout", "action", "wave"?, "version",
 * "tenants": [{"id", "tier", "path", "to", "from", "prev_op"}], "pools":
 * [{"name", "to", "from"}]}; pools go to version (wave) or back (rollback). */
static json_t *payload_json(long long id, int wave, const char *version, const moves *m)
{
    json_t *tenants = json_array(), *pools = json_array();
    for (size_t i = 0; i < m->n; i++) {
        const move *t = &m->v[i];
        json_array_append_new(
            tenants, json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:o}", "id", t->id, "tier", t->tier,
                               "path", t->path, "to", t->to, "from", t->from, "prev_op",
                               t->prev_op ? json_integer(t->prev_op) : json_null()));
    }
    for (size_t i = 0; i < m->pools.n; i++)
        json_array_append_new(pools, json_pack("{s:s, s:s, s:s}", "name", m->pools.v[i], "to",
                                               wave ? version : m->pool_from.v[i], "from",
                                               wave ? m->pool_from.v[i] : version));
    if (wave)
        return json_pack("{s:I, s:s, s:i, s:s, s:o, s:o}", "rollout", (json_int_t)id, "action",
                         "wave", "wave", wave, "version", version, "tenants", tenants, "pools",
                         pools);
    return json_pack("{s:I, s:s, s:s, s:o, s:o}", "rollout", (json_int_t)id, "action", "rollback",
                     "version", version, "tenants", tenants, "pools", pools);
}

static int insert_rollout_op(long long *out, ll_registry *r, long long rollout,
                             const json_t *payload, const char *now,
                             const ll_registry_author *author)
{
    sqlite3_stmt *st = NULL;
    char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
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

/* Queues ONE operation for every tenant and pool of m and points each
 * tenant at it, carrying its "to" version, pending. */
static int queue_moves(long long *out_op, ll_registry *r, long long id, int wave,
                       const char *version, const moves *m, const char *now,
                       const ll_registry_author *author)
{
    json_t *payload = payload_json(id, wave, version, m);
    long long op = 0;
    int error = insert_rollout_op(&op, r, id, payload, now, author);
    json_decref(payload);
    for (size_t i = 0; error >= 0 && i < m->n; i++) {
        if ((error = rr_run(r,
                            "INSERT OR IGNORE INTO operation_tenants (operation_id, tenant_id) "
                            "VALUES (?, ?)",
                            RR_ARGS(RR_I(op), RR_S(m->v[i].id)))) < 0)
            break;
        error = rr_run(r,
                       "UPDATE tenants SET chart_version = ?, sync = 'pending', "
                       "operation_id = ?, updated_at = ? WHERE id = ?",
                       RR_ARGS(RR_S(m->v[i].to), RR_I(op), RR_S(now), RR_S(m->v[i].id)));
    }
    *out_op = op;
    return error < 0 ? error : 0;
}

int reg_rollout_op_finished(ll_registry *r, const ll_operation *op, int ok, const char *sha,
                            const char *now)
{
    const ll_op_rollout_payload *p = &op->rollout;
    int error;

    if (ok)
        return rr_run(r,
                      "UPDATE tenants SET sync = 'committed', commit_sha = ?, updated_at = ? "
                      "WHERE operation_id = ?",
                      RR_ARGS(RR_S(sha), RR_S(now), RR_I(op->id))) < 0
                   ? -1
                   : 0;
    /* Nothing of it reached git: each tenant it still owns returns to what
     * its file carries (and to the operation before, pending if that one
     * still is). */
    for (size_t i = 0; i < p->n_tenants; i++) {
        const ll_op_move *t = &p->tenants[i];
        if ((error =
                 rr_run(r,
                        "UPDATE tenants SET chart_version = ?1, updated_at = ?2, "
                        "operation_id = ?3, sync = CASE WHEN (SELECT state FROM operations "
                        "WHERE id = ?3) = 'queued' THEN 'pending' ELSE 'committed' END "
                        "WHERE id = ?4 AND operation_id = ?5",
                        RR_ARGS(RR_S(t->from), RR_S(now), t->prev_op ? RR_I(t->prev_op) : RR_NUL,
                                RR_S(t->id), RR_I(op->id)))) < 0)
            return error;
    }
    return 0;
}

/* --- a step --------------------------------------------------------------------- */

/* UPDATE ... SET col = ?, ... with its parameters. */
typedef struct set_clause {
    ll_buf sql;
    rr_arg args[16];
    size_t n;
} set_clause;

static void col(set_clause *c, const char *name, rr_arg v)
{
    ll_buf_printf(&c->sql, "%s%s = ?", c->n ? ", " : "", name);
    c->args[c->n++] = v;
}

/* Runs the clause with where's parameters after its own. */
static int run_clause(ll_registry *r, set_clause *c, const char *where, rr_arg w1, rr_arg w2,
                      size_t nwhere)
{
    ll_buf_printf(&c->sql, " WHERE %s", where);
    c->args[c->n++] = w1;
    if (nwhere > 1)
        c->args[c->n++] = w2;
    int error = rr_run(r, c->sql.data, c->args, c->n);
    ll_buf_free(&c->sql);
    return error;
}

static int update_rollout(ll_registry *r, long long id, const ll_rollout_step *s, const char *now)
{
    set_clause c = {.n = 0};
    ll_buf_init(&c.sql, 4096);
    ll_buf_printf(&c.sql, "UPDATE rollouts SET ");
    if (s->set & LL_SET_STATE)
        col(&c, "state", RR_S(ll_rollout_state_name(s->state)));
    if (s->set & LL_SET_REASON)
        col(&c, "reason", RR_S(s->reason));
    if (s->set & LL_SET_CURRENT_WAVE)
        col(&c, "current_wave", RR_I(s->current_wave));
    if (s->set & LL_SET_ROLLBACK_SHA)
        col(&c, "rollback_sha", RR_S(s->rollback_sha));
    if (s->set & LL_SET_FINISHED_AT)
        col(&c, "finished_at", RR_S(s->finished_at));
    col(&c, "updated_at", RR_S(now));
    return run_clause(r, &c, "id = ?", RR_I(id), RR_NUL, 1);
}

static int update_wave(ll_registry *r, long long id, const ll_rollout_step *s)
{
    set_clause c = {.n = 0};
    unsigned ws = s->wave_set;
    if (!ws)
        return 0;
    ll_buf_init(&c.sql, 4096);
    ll_buf_printf(&c.sql, "UPDATE rollout_waves SET ");
    if (ws & LL_WSET_STATE)
        col(&c, "state", RR_S(ll_wave_state_name(s->wave_state)));
    if (ws & LL_WSET_DEADLINE)
        col(&c, "deadline_ms", RR_I(s->deadline_ms));
    if (ws & LL_WSET_SOAK_UNTIL)
        col(&c, "soak_until_ms", RR_I(s->soak_until_ms));
    if (ws & LL_WSET_ERROR)
        col(&c, "error", RR_S(s->error));
    if (ws & LL_WSET_PUSHED_AT)
        col(&c, "pushed_at", RR_S(s->pushed_at));
    if (ws & LL_WSET_READY_AT)
        col(&c, "ready_at", RR_S(s->ready_at));
    if (ws & LL_WSET_FINISHED_AT)
        col(&c, "finished_at", RR_S(s->wave_finished_at));
    if (ws & LL_WSET_COMMIT_SHA)
        col(&c, "commit_sha", RR_S(s->commit_sha));
    return run_clause(r, &c, "rollout_id = ? AND wave = ?", RR_I(id), RR_I(s->wave), 2);
}

/* The generic part of a step, inside the caller's transaction. */
static int step_body(ll_registry *r, long long id, const ll_rollout_step *s, const char *now)
{
    int error;
    if ((error = update_rollout(r, id, s, now)) < 0 || (error = update_wave(r, id, s)) < 0)
        return error;
    for (size_t i = 0; i < s->ntenants; i++) {
        if ((error = rr_run(r,
                            "UPDATE rollout_tenants SET state = ?, reason = ?, updated_at = ? "
                            "WHERE rollout_id = ? AND tenant_id = ?",
                            RR_ARGS(RR_S(ll_rt_state_name(s->tenants[i].state)),
                                    RR_S(s->tenants[i].reason), RR_S(now), RR_I(id),
                                    RR_S(s->tenants[i].id)))) < 0)
            return error;
    }
    for (size_t i = 0; s->tier_versions && i < s->tier_versions->n; i++) {
        if ((error = rr_run(r,
                            "INSERT INTO tier_versions (tier, version, rollout_id, updated_at) "
                            "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tier) DO UPDATE SET version = "
                            "?2, rollout_id = ?3, updated_at = ?4",
                            RR_ARGS(RR_S(s->tier_versions->v[i]), RR_S(s->tier_version), RR_I(id),
                                    RR_S(now)))) < 0)
            return error;
    }
    return reg_store_events(r, s->events, s->nevents, id, now);
}

/* step (borrowed) minus the rollout fields in drop, with n events
 * (borrowed) for its own, then the commit. */
static int commit_with(ll_registry *r, long long id, const ll_rollout_step *step, unsigned drop,
                       const ll_event_note *events, size_t n, const char *now)
{
    ll_rollout_step own = *step;
    int error;
    own.set &= ~drop;
    own.events = events;
    own.nevents = n;
    if ((error = step_body(r, id, &own, now)) < 0)
        return error;
    return reg_commit(r);
}

int ll_registry_rollout_step(ll_registry *r, const ll_rollout_step *step)
{
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = expect_state(NULL, r, step->rollout, step->expect)) < 0 ||
        (error = step_body(r, step->rollout, step, now)) < 0)
        return rollback(r, error);
    return reg_commit(r);
}

/* --- storing a rollout ----------------------------------------------------------- */

static int first_id(sqlite3_stmt *st, void *payload)
{
    *(long long *)payload = sqlite3_column_int64(st, 0);
    return 0;
}

/* LL_ECONFLICT when a tenant (not skipped) or a pool of spec is in another
 * active rollout. */
static int check_free(ll_registry *r, const ll_rollout_spec *spec)
{
    long long other = 0;
    int error;
    for (size_t i = 0; i < spec->ntenants; i++) {
        const ll_rollout_tenant *t = &spec->tenants[i];
        if (t->state == LL_RT_SKIPPED)
            continue;
        if ((error = rr_each(r,
                             "SELECT ro.id FROM rollout_tenants rt JOIN rollouts ro ON ro.id = "
                             "rt.rollout_id WHERE rt.tenant_id = ? AND rt.state != 'skipped' AND "
                             "ro.state IN ('running', 'paused', 'rolling_back') LIMIT 1",
                             RR_ARGS(RR_S(t->id)), first_id, &other)) < 0)
            return error;
        if (error > 0) {
            ll_error_set(LL_ECONFLICT, "tenant '%s' is in rollout %lld, which is still active",
                         t->id, other);
            ll_error_field("tenants");
            ll_error_hint("wait for rollout %lld to end, or abort it", other);
            return LL_ECONFLICT;
        }
    }
    for (size_t i = 0; i < spec->npools; i++) {
        if ((error = rr_each(r,
                             "SELECT ro.id FROM rollout_pools rp JOIN rollouts ro ON ro.id = "
                             "rp.rollout_id WHERE rp.pool = ? AND ro.state IN ('running', "
                             "'paused', 'rolling_back') LIMIT 1",
                             RR_ARGS(RR_S(spec->pools[i].pool)), first_id, &other)) < 0)
            return error;
        if (error > 0) {
            ll_error_set(LL_ECONFLICT,
                         "pool environment '%s' moves with rollout %lld, which is still active",
                         spec->pools[i].pool, other);
            ll_error_field("tiers");
            ll_error_hint("wait for rollout %lld to end, or abort it", other);
            return LL_ECONFLICT;
        }
    }
    return 0;
}

/* The selector as JSON text (new string), or NULL. */
static char *selector_text(const ll_selector *s)
{
    json_t *v = ll_selector_json(s);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    return text;
}

/* The rows of a new rollout id: its waves, tenants and pools. */
static int insert_parts(ll_registry *r, long long id, const ll_rollout_spec *spec, const char *now)
{
    int error = 0;
    for (size_t i = 0; i < spec->nwaves && error >= 0; i++) {
        char *sel = selector_text(&spec->waves[i].selector);
        error = rr_run(r,
                       "INSERT INTO rollout_waves (rollout_id, wave, selector, soak_seconds, "
                       "state) VALUES (?, ?, ?, ?, 'pending')",
                       RR_ARGS(RR_I(id), RR_I(i + 1), RR_S(sel ? sel : "{}"),
                               RR_I(spec->waves[i].soak_seconds)));
        free(sel);
    }
    for (size_t i = 0; i < spec->ntenants && error >= 0; i++) {
        const ll_rollout_tenant *t = &spec->tenants[i];
        error = rr_run(r,
                       "INSERT INTO rollout_tenants (rollout_id, tenant_id, tier, wave, "
                       "from_version, state, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       RR_ARGS(RR_I(id), RR_S(t->id), RR_S(t->tier), RR_ID(t->wave),
                               RR_S(t->from_version), RR_S(ll_rt_state_name(t->state)),
                               RR_S(t->reason), RR_S(now)));
    }
    for (size_t i = 0; i < spec->npools && error >= 0; i++) {
        const ll_rollout_pool *p = &spec->pools[i];
        error = rr_run(r,
                       "INSERT INTO rollout_pools (rollout_id, pool, wave, from_version, state) "
                       "VALUES (?, ?, ?, ?, 'pending')",
                       RR_ARGS(RR_I(id), RR_S(p->pool), RR_I(p->wave), RR_S(p->from_version)));
    }
    return error < 0 ? error : 0;
}

int ll_registry_rollout_create(long long *out_id, ll_registry *r, const ll_rollout_spec *spec)
{
    char now[32], *scope = NULL;
    long long id = 0;
    int error;

    *out_id = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    /* The version may have been deleted since the request was checked. */
    if ((error = rr_each(r, "SELECT 1 FROM releases WHERE version = ?",
                         RR_ARGS(RR_S(spec->version)), NULL, NULL)) < 0)
        return rollback(r, error);
    if (error == 0) {
        ll_error_set(LL_EINVALID, "release %s was never uploaded", spec->version);
        ll_error_field("version");
        return rollback(r, LL_EINVALID);
    }
    /* No tenant or pool in two active rollouts. */
    if ((error = check_free(r, spec)) < 0)
        return rollback(r, error);
    if (!(scope = selector_text(spec->scope)))
        return rollback(r, ll_error_set(-1, "cannot encode the scope"));
    error = rr_each(r,
                    "INSERT INTO rollouts (version, state, on_failure, scope, wave_timeout, "
                    "author_name, author_email, created_at, updated_at) VALUES (?, 'running', ?, "
                    "?, ?, ?, ?, ?, ?) RETURNING id",
                    RR_ARGS(RR_S(spec->version), RR_S(ll_on_failure_name(spec->on_failure)),
                            RR_S(scope), RR_I(spec->wave_timeout), RR_S(spec->author_name),
                            RR_S(spec->author_email), RR_S(now), RR_S(now)),
                    first_id, &id);
    free(scope);
    if (error < 0 || (error = insert_parts(r, id, spec, now)) < 0)
        return rollback(r, error);
    ll_event_note started = {.type = "rollout.started",
                             .data = json_pack("{s:s, s:I, s:I}", "version", spec->version,
                                               "targets", (json_int_t)spec->targets, "waves",
                                               (json_int_t)spec->nwaves)};
    error = started.data ? reg_store_events(r, &started, 1, id, now)
                         : ll_error_set(-1, "out of memory");
    ll_event_notes_clear(&started, 1);
    if (error < 0)
        return rollback(r, error);
    if ((error = reg_commit(r)) < 0)
        return rollback(r, error);
    *out_id = id;
    return 0;
}

/* --- starting a wave ------------------------------------------------------------- */

/* Where a wave's pending tenants are now, and which of them it moves. */
struct wave_pick {
    const char *version;
    moves moving;
    ll_names skipped, skip_reasons;
    int error;
};

static int wave_tenant_pick(sqlite3_stmt *st, void *payload)
{
    struct wave_pick *p = payload;
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *release = (const char *)sqlite3_column_text(st, 2),
               *chart = (const char *)sqlite3_column_text(st, 3),
               *lifecycle = (const char *)sqlite3_column_text(st, 4);
    char why[160] = "";
    move *m;

    if (!lifecycle || strcmp(lifecycle, "active") != 0)
        snprintf(why, sizeof(why), "%s since the rollout began", lifecycle ? lifecycle : "gone");
    else if (ll_release_pinned(release))
        snprintf(why, sizeof(why), "pinned to %s since the rollout began", release);
    else if (chart && strcmp(chart, p->version) == 0)
        snprintf(why, sizeof(why), "at %s already", p->version);
    if (why[0])
        return ll_names_add(&p->skipped, id) < 0 || ll_names_add(&p->skip_reasons, why) < 0 ? -1
                                                                                            : 0;
    if (!(m = moves_add(&p->moving)))
        return -1;
    m->id = reg_dup_col(st, 0, NULL);
    m->tier = reg_dup_col(st, 1, NULL);
    m->path = reg_dup_col(st, 5, NULL);
    m->to = strdup(p->version);
    m->from = reg_dup_col(st, 3, NULL);
    m->prev_op = sqlite3_column_int64(st, 6);
    return 0;
}

static int pool_pick(sqlite3_stmt *st, void *payload)
{
    moves *m = payload;
    return ll_names_add(&m->pools, (const char *)sqlite3_column_text(st, 0)) < 0 ||
                   ll_names_add(&m->pool_from, (const char *)sqlite3_column_text(st, 1)) < 0
               ? -1
               : 0;
}

static int wave_state_row(sqlite3_stmt *st, void *payload)
{
    const char *s = (const char *)sqlite3_column_text(st, 0);
    *(int *)payload = s && strcmp(s, "pending") == 0;
    return 0;
}

/* LL_ECONFLICT unless the rollout runs and the wave is pending; the
 * rollout's version in *out_version (new string). */
static int wave_startable(char **out_version, ll_registry *r, long long id, int wave)
{
    int pending = 0, error;
    if ((error = expect_state(out_version, r, id, LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING))) < 0 ||
        (error = rr_each(r, "SELECT state FROM rollout_waves WHERE rollout_id = ? AND wave = ?",
                         RR_ARGS(RR_I(id), RR_I(wave)), wave_state_row, &pending)) < 0)
        return error;
    if (!pending)
        return ll_error_set(LL_ECONFLICT, "wave %d of rollout %lld has started already", wave, id);
    return 0;
}

/* Moves what p picked through ONE operation (*out_op; 0 when nothing
 * moves), records the skipped, and turns the wave committing (or waiting). */
static int wave_moves(long long *out_op, ll_registry *r, long long id, int wave,
                      struct wave_pick *p, const char *now, const ll_registry_author *author)
{
    int error = 0;
    *out_op = 0;
    for (size_t i = 0; i < p->skipped.n && error >= 0; i++)
        error =
            rr_run(r,
                   "UPDATE rollout_tenants SET state = 'skipped', reason = ?, updated_at = ? "
                   "WHERE rollout_id = ? AND tenant_id = ?",
                   RR_ARGS(RR_S(p->skip_reasons.v[i]), RR_S(now), RR_I(id), RR_S(p->skipped.v[i])));
    if (error >= 0 && (p->moving.n || p->moving.pools.n)) {
        error = queue_moves(out_op, r, id, wave, p->version, &p->moving, now, author);
        for (size_t i = 0; i < p->moving.n && error >= 0; i++) {
            const move *m = &p->moving.v[i];
            error =
                rr_run(r,
                       "UPDATE rollout_tenants SET state = 'updating', from_version = ?, "
                       "prev_op = ?, reason = NULL, updated_at = ? WHERE rollout_id = ? AND "
                       "tenant_id = ?",
                       RR_ARGS(RR_S(m->from), RR_ID(m->prev_op), RR_S(now), RR_I(id), RR_S(m->id)));
        }
        if (error >= 0)
            error = rr_run(r,
                           "UPDATE rollout_pools SET state = 'moved' WHERE rollout_id = ? AND "
                           "wave = ? AND state = 'pending'",
                           RR_ARGS(RR_I(id), RR_I(wave)));
    }
    /* Without anything to commit the wave waits at once (and passes). */
    if (error >= 0)
        error = rr_run(r,
                       "UPDATE rollout_waves SET state = ?, operation_id = ?, started_at = ?, "
                       "pushed_at = ? WHERE rollout_id = ? AND wave = ?",
                       RR_ARGS(RR_S(*out_op ? "committing" : "waiting"), RR_ID(*out_op), RR_S(now),
                               RR_S(*out_op ? NULL : now), RR_I(id), RR_I(wave)));
    if (error >= 0)
        error = rr_run(r, "UPDATE rollouts SET current_wave = ?, updated_at = ? WHERE id = ?",
                       RR_ARGS(RR_I(wave), RR_S(now), RR_I(id)));
    return error < 0 ? error : 0;
}

int ll_registry_rollout_wave_start(long long *out_op, ll_registry *r, long long id, int wave,
                                   const ll_rollout_step *step, const ll_registry_author *author)
{
    struct wave_pick p = {0};
    char now[32], *version = NULL;
    ll_event_note *events = NULL;
    long long op = 0;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0 ||
        (error = wave_startable(&version, r, id, wave)) < 0)
        goto done;
    p.version = version;
    /* Which of the wave's tenants move, decided against them as they are. */
    if ((error = rr_each(r,
                         "SELECT rt.tenant_id AS id, t.tier, t.release, t.chart_version, "
                         "t.lifecycle, t.path, t.operation_id FROM rollout_tenants rt LEFT JOIN "
                         "tenants t ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.wave = ? "
                         "AND rt.state = 'pending' ORDER BY rt.tenant_id",
                         RR_ARGS(RR_I(id), RR_I(wave)), wave_tenant_pick, &p)) < 0 ||
        (error = rr_each(r,
                         "SELECT pool, from_version FROM rollout_pools WHERE rollout_id = ? AND "
                         "wave = ? AND state = 'pending' ORDER BY pool",
                         RR_ARGS(RR_I(id), RR_I(wave)), pool_pick, &p.moving)) < 0 ||
        (error = wave_moves(&op, r, id, wave, &p, now, author)) < 0)
        goto done;
    /* The first event says what the wave moves (in a copy of its data). */
    if (step->nevents) {
        if (!(events = calloc(step->nevents, sizeof(*events)))) {
            error = ll_error_set(-1, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < step->nevents; i++) {
            events[i] = step->events[i];
            events[i].data = json_incref(step->events[i].data);
        }
        json_t *data = step->events[0].data ? json_deep_copy(step->events[0].data) : json_object();
        json_decref(events[0].data);
        if (!(events[0].data = data)) {
            error = ll_error_set(-1, "out of memory");
            goto done;
        }
        json_object_set_new(data, "tenants", json_integer((json_int_t)p.moving.n));
        json_object_set_new(data, "skipped", json_integer((json_int_t)p.skipped.n));
        json_object_set_new(data, "operation", op ? json_integer(op) : json_null());
    }
    if ((error = commit_with(r, id, step, 0, events, step->nevents, now)) == 0)
        *out_op = op;
done:
    if (error < 0)
        reg_rollback(r);
    ll_event_notes_clear(events, events ? step->nevents : 0);
    free(events);
    free(version);
    moves_clear(&p.moving);
    ll_names_clear(&p.skipped);
    ll_names_clear(&p.skip_reasons);
    return error;
}

/* --- rolling back ---------------------------------------------------------------- */

/* Every tenant the rollout moved (or tried to), as it is now: those still
 * at the version go back, the others are marked rolled_back as they are. */
struct back_pick {
    ll_registry *r;
    long long id;
    const char *version, *now;
    moves back;
    ll_names left;    /* tenants left as they are */
    const char **why; /* why each of left is (static strings, or NULL) */
};

static int back_pick(sqlite3_stmt *st, void *payload)
{
    struct back_pick *p = payload;
    const char *from = (const char *)sqlite3_column_text(st, 1),
               *chart = (const char *)sqlite3_column_text(st, 3),
               *lifecycle = (const char *)sqlite3_column_text(st, 4);
    int active = lifecycle && strcmp(lifecycle, "active") == 0;
    const char *why = NULL;
    move *m;

    if (active && chart && from && strcmp(chart, p->version) == 0) {
        if (!(m = moves_add(&p->back)))
            return -1;
        m->id = reg_dup_col(st, 0, NULL);
        m->tier = reg_dup_col(st, 2, NULL);
        m->path = reg_dup_col(st, 5, NULL);
        m->to = reg_dup_col(st, 1, NULL);
        m->from = strdup(p->version);
        m->prev_op = sqlite3_column_int64(st, 6);
        return 0;
    }
    /* Not at the rollout's version: back already (its wave's commit
     * failed), or changed by someone since (left as it is). */
    if (!active)
        why = "not active any more: left as it is";
    else if (!chart || !from || strcmp(chart, from) != 0)
        why = "changed since the rollout moved it: left as it is";
    if (rr_grow((void **)&p->why, p->left.n, sizeof(*p->why)) < 0 ||
        ll_names_add(&p->left, (const char *)sqlite3_column_text(st, 0)) < 0)
        return -1;
    p->why[p->left.n - 1] = why;
    return 0;
}

/* Returns what p picked through ONE operation (*out_op; 0 when nothing
 * moves) and turns the rollout rolling_back (or rolled_back). */
static int back_moves(long long *out_op, struct back_pick *p, const ll_registry_author *author)
{
    ll_registry *r = p->r;
    long long id = p->id;
    int error = 0;
    *out_op = 0;
    for (size_t i = 0; i < p->left.n && error >= 0; i++)
        error = rr_run(r,
                       "UPDATE rollout_tenants SET state = 'rolled_back', reason = ?, updated_at = "
                       "? WHERE rollout_id = ? AND tenant_id = ?",
                       RR_ARGS(RR_S(p->why[i]), RR_S(p->now), RR_I(id), RR_S(p->left.v[i])));
    if (error >= 0 && (p->back.n || p->back.pools.n)) {
        error = queue_moves(out_op, r, id, 0, p->version, &p->back, p->now, author);
        for (size_t i = 0; i < p->back.n && error >= 0; i++)
            error = rr_run(r,
                           "UPDATE rollout_tenants SET state = 'rolled_back', reason = NULL, "
                           "updated_at = ? WHERE rollout_id = ? AND tenant_id = ?",
                           RR_ARGS(RR_S(p->now), RR_I(id), RR_S(p->back.v[i].id)));
        if (error >= 0)
            error = rr_run(r,
                           "UPDATE rollout_pools SET state = 'rolled_back' WHERE rollout_id = ? "
                           "AND state = 'moved'",
                           RR_ARGS(RR_I(id)));
    }
    /* Nothing to return: rolled back at once. */
    if (error >= 0)
        error = rr_run(r,
                       "UPDATE rollouts SET state = ?, rollback_op = ?, updated_at = ?, "
                       "finished_at = ? WHERE id = ?",
                       RR_ARGS(RR_S(*out_op ? "rolling_back" : "rolled_back"), RR_ID(*out_op),
                               RR_S(p->now), RR_S(*out_op ? NULL : p->now), RR_I(id)));
    return error < 0 ? error : 0;
}

int ll_registry_rollout_rollback(long long *out_op, ll_registry *r, long long id,
                                 const ll_rollout_step *step, const ll_registry_author *author)
{
    struct back_pick p = {.r = r, .id = id};
    char now[32], *version = NULL;
    ll_event_note *events = NULL;
    size_t nevents = 0;
    long long op = 0;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    p.now = now;
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0 ||
        (error = expect_state(&version, r, id, step->expect)) < 0)
        goto done;
    p.version = version;
    if ((error = rr_each(r,
                         "SELECT rt.tenant_id AS id, rt.from_version, t.tier, t.chart_version, "
                         "t.lifecycle, t.path, t.operation_id FROM rollout_tenants rt LEFT JOIN "
                         "tenants t ON t.id = rt.tenant_id WHERE rt.rollout_id = ? AND rt.state "
                         "IN ('updating', 'ready', 'failed') ORDER BY rt.tenant_id",
                         RR_ARGS(RR_I(id)), back_pick, &p)) < 0 ||
        (error = rr_each(r,
                         "SELECT pool, from_version FROM rollout_pools WHERE rollout_id = ? AND "
                         "state = 'moved' ORDER BY pool",
                         RR_ARGS(RR_I(id)), pool_pick, &p.back)) < 0 ||
        (error = back_moves(&op, &p, author)) < 0)
        goto done;
    /* step's events, then what the rollback did. */
    if (!(events = calloc(step->nevents + 1, sizeof(*events)))) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    for (; nevents < step->nevents; nevents++) {
        events[nevents] = step->events[nevents];
        events[nevents].data = json_incref(step->events[nevents].data);
    }
    events[nevents++] = (ll_event_note){
        .type = op ? "rollout.rolling_back" : "rollout.rolled_back",
        .data = json_pack("{s:s, s:I, s:o, s:s?}", "version", version, "tenants",
                          (json_int_t)p.back.n, "operation", op ? json_integer(op) : json_null(),
                          "reason", step->set & LL_SET_REASON ? step->reason : NULL)};
    if ((error = commit_with(r, id, step, LL_SET_STATE, events, nevents, now)) == 0)
        *out_op = op;
done:
    if (error < 0)
        reg_rollback(r);
    ll_event_notes_clear(events, nevents);
    free(events);
    free(version);
    moves_clear(&p.back);
    ll_names_clear(&p.left);
    free(p.why);
    return error;
}

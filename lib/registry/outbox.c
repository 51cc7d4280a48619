/* outbox.c - the outbox of operations: queued for the git writer, finished.
 *
 * What it is for.  Every change to the repository is a row of the
 * operations table, stored by a use case in the same transaction as the
 * desired state it writes (registry.c for tenants, registry_auth.c for
 * tiers, registry_rollouts.c for rollout waves).  The git writer reads the
 * queued rows (ll_registry_ops_queued), counts failed attempts, and records
 * each batch's outcomes (ll_registry_ops_finish), which move the tenant,
 * tier or rollout stores along.  The outbox sits above those stores: it
 * calls them (reg_tier_finish, reg_rollout_op_finished), never the other
 * way round.
 *
 * How it works.  The one conversion between a row (and its payload JSON)
 * and an ll_operation lives here (op_from_row, reg_op_from_payload), and
 * its inverse for the row's payload column (reg_op_payload_json); the
 * stores that follow an outcome take the record.  The kinds' names as
 * strings exist
 * only in kind_names.  Finishing runs in one BEGIN IMMEDIATE transaction:
 * each outcome marks its row, then its store follows (a pushed tenant is
 * committed, a failed onboarding removed or returned to offboarded, a
 * failed update returned to its previous desired state).
 *
 * Threads.  As the rest of the registry: one connection per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "landlord/error.h"
#include "landlord/operation.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "registry_int.h"

/* --- records ---------------------------------------------------------------- */

static const struct {
    ll_op_kind kind;
    const char *name;
} kind_names[] = {
    {LL_OP_ONBOARD, "onboard"},   {LL_OP_UPDATE, "update"},           {LL_OP_OFFBOARD, "offboard"},
    {LL_OP_TIER_PUT, "tier_put"}, {LL_OP_TIER_DELETE, "tier_delete"}, {LL_OP_ROLLOUT, "rollout"},
};

static const char *const state_names[] = {"queued", "pushed", "failed"};

/* Names of failures as rows hold them (error_type); NONE is NULL. */
static const char *const failure_names[] = {NULL, "conflict", "render-failed"};

const char *ll_op_kind_name(ll_op_kind kind)
{
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
        if (kind_names[i].kind == kind)
            return kind_names[i].name;
    return "?";
}

const char *ll_op_state_name(ll_op_state state)
{
    return (unsigned)state < 3 ? state_names[state] : "?";
}

static int kind_of(ll_op_kind *out, const char *name)
{
    for (size_t i = 0; name && i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (strcmp(kind_names[i].name, name) == 0) {
            *out = kind_names[i].kind;
            return 0;
        }
    }
    return ll_error_set(LL_EINVALID, "unknown operation kind '%s'", name ? name : "");
}

static ll_op_state state_of(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(state_names[i], name) == 0)
            return (ll_op_state)i;
    return LL_OP_QUEUED;
}

static ll_op_failure failure_of(const char *name)
{
    for (int i = 1; name && i < 3; i++)
        if (strcmp(failure_names[i], name) == 0)
            return (ll_op_failure)i;
    return LL_OP_FAILURE_NONE;
}

static void desired_clear(ll_op_desired *d)
{
    free(d->tier);
    free(d->release);
    free(d->chart_version);
    json_decref(d->values);
}

void ll_operation_clear(ll_operation *op)
{
    if (!op)
        return;
    free(op->tenant);
    free(op->tier);
    free(op->commit);
    free(op->error);
    free(op->created_at);
    free(op->updated_at);
    free(op->author_name);
    free(op->author_email);
    free(op->last_error);
    free(op->t.release);
    free(op->t.chart_version);
    json_decref(op->t.values);
    free(op->t.from_tier);
    desired_clear(&op->t.previous);
    free(op->tier_op.template_text);
    free(op->tier_op.description);
    free(op->tier_op.deployment_model);
    for (size_t i = 0; i < op->rollout.n_tenants; i++) {
        ll_op_move *m = &op->rollout.tenants[i];
        free(m->id);
        free(m->tier);
        free(m->path);
        free(m->from);
        free(m->to);
    }
    free(op->rollout.tenants);
    for (size_t i = 0; i < op->rollout.n_pools; i++) {
        free(op->rollout.pools[i].name);
        free(op->rollout.pools[i].from);
        free(op->rollout.pools[i].to);
    }
    free(op->rollout.pools);
    free(op->rollout.version);
    memset(op, 0, sizeof(*op));
}

void ll_op_list_truncate(ll_op_list *list, size_t n)
{
    while (list->n > n)
        ll_operation_clear(&list->ops[--list->n]);
}

void ll_op_list_free(ll_op_list *list)
{
    if (!list)
        return;
    ll_op_list_truncate(list, 0);
    free(list->ops);
    list->ops = NULL;
}

static ll_op_result *result_add(ll_op_results *res, long long id)
{
    if (ll_grow((void **)&res->v, &res->cap, res->n, sizeof(*res->v)) < 0)
        return NULL;
    ll_op_result *r = &res->v[res->n++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    return r;
}

int ll_op_results_ok(ll_op_results *res, long long id, const char *commit)
{
    ll_op_result *r = result_add(res, id);
    if (!r)
        return ll_error_set(-1, "out of memory");
    r->ok = 1;
    snprintf(r->commit, sizeof(r->commit), "%s", commit ? commit : "");
    return 0;
}

int ll_op_results_failed(ll_op_results *res, long long id, ll_op_failure failure, const char *error)
{
    ll_op_result *r = result_add(res, id);
    if (!r)
        return ll_error_set(-1, "out of memory");
    r->failure = failure;
    if (error && !(r->error = strdup(error))) {
        res->n--;
        return ll_error_set(-1, "out of memory");
    }
    return 0;
}

int ll_op_results_take(ll_op_results *to, ll_op_results *from)
{
    for (size_t i = 0; i < from->n; i++) {
        ll_op_result *r = result_add(to, from->v[i].id);
        if (!r)
            return ll_error_set(-1, "out of memory");
        *r = from->v[i];
        from->v[i].error = NULL;
    }
    from->n = 0;
    return 0;
}

void ll_op_results_free(ll_op_results *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->n; i++)
        free(res->v[i].error);
    free(res->v);
    memset(res, 0, sizeof(*res));
}

/* --- the conversion ----------------------------------------------------------- */

/* A copy of the string at key of o, or NULL (absent, null, not a string). */
static char *dup_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static void desired_from(ll_op_desired *d, const json_t *o)
{
    d->tier = dup_str(o, "tier");
    d->release = dup_str(o, "release");
    d->chart_version = dup_str(o, "chart_version");
    d->values = json_incref(json_object_get(o, "values"));
}

static int rollout_from(ll_op_rollout_payload *ro, const json_t *payload)
{
    const json_t *tenants = json_object_get(payload, "tenants");
    const json_t *pools = json_object_get(payload, "pools"), *v;
    const char *action = json_string_value(json_object_get(payload, "action"));
    size_t i;

    ro->rollout = (long long)json_integer_value(json_object_get(payload, "rollout"));
    ro->action =
        action && strcmp(action, "rollback") == 0 ? LL_OP_ROLLOUT_ROLLBACK : LL_OP_ROLLOUT_WAVE;
    ro->wave = (long long)json_integer_value(json_object_get(payload, "wave"));
    ro->version = dup_str(payload, "version");
    if ((json_array_size(tenants) &&
         !(ro->tenants = calloc(json_array_size(tenants), sizeof(*ro->tenants)))) ||
        (json_array_size(pools) &&
         !(ro->pools = calloc(json_array_size(pools), sizeof(*ro->pools)))))
        return ll_error_set(-1, "out of memory");
    json_array_foreach(tenants, i, v)
    {
        ll_op_move *m = &ro->tenants[ro->n_tenants++];
        m->id = dup_str(v, "id");
        m->tier = dup_str(v, "tier");
        m->path = dup_str(v, "path");
        m->from = dup_str(v, "from");
        m->to = dup_str(v, "to");
        m->prev_op = (long long)json_integer_value(json_object_get(v, "prev_op"));
    }
    json_array_foreach(pools, i, v)
    {
        ll_op_pool_move *p = &ro->pools[ro->n_pools++];
        p->name = dup_str(v, "name");
        p->from = dup_str(v, "from");
        p->to = dup_str(v, "to");
    }
    return 0;
}

int reg_op_from_payload(ll_operation *op, const json_t *payload)
{
    switch (op->kind) {
    case LL_OP_ONBOARD:
    case LL_OP_UPDATE:
    case LL_OP_OFFBOARD: {
        const json_t *prev = json_object_get(payload, "previous");
        op->t.release = dup_str(payload, "release");
        op->t.chart_version = dup_str(payload, "chart_version");
        op->t.values = json_incref(json_object_get(payload, "values"));
        op->t.from_tier = dup_str(payload, "from_tier");
        if ((op->t.has_previous = json_is_object(prev)))
            desired_from(&op->t.previous, prev);
        return 0;
    }
    case LL_OP_TIER_PUT:
    case LL_OP_TIER_DELETE:
        op->tier_op.template_text = dup_str(payload, "template");
        op->tier_op.description = dup_str(payload, "description");
        op->tier_op.deployment_model = dup_str(payload, "deployment_model");
        op->tier_op.replace = json_is_true(json_object_get(payload, "replace"));
        return 0;
    case LL_OP_ROLLOUT:
        return rollout_from(&op->rollout, payload);
    }
    return ll_error_set(LL_EINVALID, "unknown operation kind");
}

/* s as JSON: a string, or null. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void set_if(json_t *o, const char *key, const char *s)
{
    if (s)
        json_object_set_new(o, key, json_string(s));
}

static json_t *desired_json(const ll_op_desired *d)
{
    return json_pack("{s:o, s:o, s:O?, s:o}", "tier", str_or_null(d->tier), "release",
                     str_or_null(d->release), "values", d->values, "chart_version",
                     str_or_null(d->chart_version));
}

static json_t *rollout_json(const ll_op_rollout_payload *ro)
{
    json_t *p = json_object(), *tenants = json_array(), *pools = json_array();

    json_object_set_new(p, "rollout", json_integer(ro->rollout));
    json_object_set_new(p, "action",
                        json_string(ro->action == LL_OP_ROLLOUT_ROLLBACK ? "rollback" : "wave"));
    if (ro->action == LL_OP_ROLLOUT_WAVE)
        json_object_set_new(p, "wave", json_integer(ro->wave));
    set_if(p, "version", ro->version);
    for (size_t i = 0; i < ro->n_tenants; i++) {
        const ll_op_move *m = &ro->tenants[i];
        json_array_append_new(
            tenants, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", str_or_null(m->id), "tier",
                               str_or_null(m->tier), "path", str_or_null(m->path), "from",
                               str_or_null(m->from), "to", str_or_null(m->to), "prev_op",
                               m->prev_op ? json_integer(m->prev_op) : json_null()));
    }
    for (size_t i = 0; i < ro->n_pools; i++) {
        const ll_op_pool_move *m = &ro->pools[i];
        json_array_append_new(pools,
                              json_pack("{s:o, s:o, s:o}", "name", str_or_null(m->name), "from",
                                        str_or_null(m->from), "to", str_or_null(m->to)));
    }
    json_object_set_new(p, "tenants", tenants);
    json_object_set_new(p, "pools", pools);
    return p;
}

json_t *reg_op_payload_json(const ll_operation *op)
{
    json_t *p = NULL;

    switch (op->kind) {
    case LL_OP_ONBOARD:
    case LL_OP_UPDATE:
    case LL_OP_OFFBOARD:
        p = json_object();
        set_if(p, "release", op->t.release);
        if (op->t.values)
            json_object_set(p, "values", op->t.values);
        set_if(p, "chart_version", op->t.chart_version);
        set_if(p, "from_tier", op->t.from_tier);
        if (op->t.has_previous)
            json_object_set_new(p, "previous", desired_json(&op->t.previous));
        break;
    case LL_OP_TIER_PUT:
        p = json_pack("{s:o, s:o, s:b, s:o}", "template", str_or_null(op->tier_op.template_text),
                      "description", str_or_null(op->tier_op.description), "replace",
                      op->tier_op.replace, "deployment_model",
                      str_or_null(op->tier_op.deployment_model));
        break;
    case LL_OP_TIER_DELETE:
        p = json_object();
        break;
    case LL_OP_ROLLOUT:
        p = rollout_json(&op->rollout);
        break;
    }
    return p;
}

#define OP_COLS                                                                                    \
    "id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type, created_at, "       \
    "updated_at, author_name, author_email, attempts, last_error, rollout_id"

/* The row as a record: the one place the outbox's columns are read. */
static int op_from_row(ll_operation *out, sqlite3_stmt *st)
{
    const char *pj = (const char *)sqlite3_column_text(st, 4);
    json_t *payload = pj ? json_loads(pj, 0, NULL) : NULL;
    int error;

    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(st, 0);
    if ((error = kind_of(&out->kind, (const char *)sqlite3_column_text(st, 1))) < 0)
        goto done;
    out->tenant = reg_dup_col(st, 2, NULL);
    if (out->tenant && !out->tenant[0]) {
        free(out->tenant); /* a tier operation names no tenant */
        out->tenant = NULL;
    }
    out->tier = reg_dup_col(st, 3, NULL);
    out->state = state_of((const char *)sqlite3_column_text(st, 5));
    out->commit = reg_dup_col(st, 6, NULL);
    out->error = reg_dup_col(st, 7, NULL);
    out->failure = failure_of((const char *)sqlite3_column_text(st, 8));
    out->created_at = reg_dup_col(st, 9, NULL);
    out->updated_at = reg_dup_col(st, 10, NULL);
    out->author_name = reg_dup_col(st, 11, NULL);
    out->author_email = reg_dup_col(st, 12, NULL);
    out->attempts = sqlite3_column_int64(st, 13);
    out->last_error = reg_dup_col(st, 14, NULL);
    out->rollout_id = sqlite3_column_int64(st, 15);
    error = reg_op_from_payload(out, payload);
done:
    json_decref(payload);
    if (error < 0)
        ll_operation_clear(out);
    return error;
}

/* --- reading -------------------------------------------------------------------- */

int ll_registry_ops_queued(ll_op_list *out, ll_registry *r, int limit)
{
    sqlite3_stmt *st = NULL;
    ll_op_list list = {NULL, 0};
    int error, rc;

    out->ops = NULL;
    out->n = 0;
    if (limit > 0 && !(list.ops = calloc((size_t)limit, sizeof(*list.ops))))
        return ll_error_set(-1, "out of memory");
    if ((error =
             reg_prepare(&st, r,
                         "SELECT " OP_COLS " FROM operations WHERE state = 'queued' ORDER BY id "
                         "LIMIT ?")) < 0)
        goto done;
    sqlite3_bind_int(st, 1, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && list.n < (size_t)limit) {
        if ((error = op_from_row(&list.ops[list.n], st)) < 0)
            goto done;
        list.n++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        error = reg_db_error(r, "read queued operations");
        goto done;
    }
    *out = list;
    list.ops = NULL;
    list.n = 0;
    error = 0;
done:
    reg_finalize(r, st);
    ll_op_list_free(&list);
    return error;
}

int ll_registry_op_get(ll_operation *out, ll_registry *r, long long id)
{
    sqlite3_stmt *st = NULL;
    int error, rc;

    memset(out, 0, sizeof(*out));
    if ((error = reg_prepare(&st, r, "SELECT " OP_COLS " FROM operations WHERE id = ?")) < 0)
        return error;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        error = op_from_row(out, st);
    else if (rc == SQLITE_DONE)
        error = ll_error_set(LL_ENOTFOUND, "no operation %lld", id);
    else
        error = reg_db_error(r, "read operation");
    reg_finalize(r, st);
    return error;
}

int ll_registry_ops_count_queued(long long *out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    int error;
    *out = 0;
    if ((error = reg_prepare(&st, r, "SELECT count(*) FROM operations WHERE state = 'queued'")) < 0)
        return error;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    reg_finalize(r, st);
    return 0;
}

/* --- outcomes ------------------------------------------------------------------- */

/* Returns a tenant whose operation opid failed to the desired state it had
 * before (prev), offboarded again when it had been re-onboarded. */
static int restore_previous(ll_registry *r, const ll_op_desired *prev, const char *tenant,
                            const char *opid, const char *now, int offboarded)
{
    char *pv = json_dumps(prev->values, JSON_COMPACT | JSON_SORT_KEYS);
    const char *p[] = {
        now, tenant, opid, prev->tier, prev->release, pv ? pv : "{}", prev->chart_version};
    int error =
        reg_run(r,
                offboarded ? "UPDATE tenants SET lifecycle = 'offboarded', sync = 'committed', "
                             "updated_at = ?1, tier = ?4, release = ?5, values_json = ?6, "
                             "chart_version = coalesce(?7, chart_version), "
                             "operation_id = (SELECT max(id) FROM operations WHERE tenant_id "
                             "= ?2 AND state = 'pushed') WHERE id = ?2 AND operation_id = ?3"
                           : "UPDATE tenants SET sync = 'committed', updated_at = ?1, tier = "
                             "?4, release = ?5, values_json = ?6, chart_version = coalesce(?7, "
                             "chart_version), operation_id = (SELECT "
                             "max(id) FROM operations WHERE tenant_id = ?2 AND state = "
                             "'pushed') WHERE id = ?2 AND operation_id = ?3",
                7, p);
    free(pv);
    return error;
}

/* A pushed tenant operation: the tenant is committed (offboarded for an
 * offboarding), if the operation is still its latest. */
static int tenant_pushed(ll_registry *r, const ll_operation *op, const char *sha, const char *opid,
                         const char *now)
{
    if (op->kind != LL_OP_OFFBOARD) {
        const char *p[] = {sha, now, op->tenant, opid};
        return reg_run(r,
                       "UPDATE tenants SET sync = 'committed', commit_sha = ?, updated_at = ? "
                       "WHERE id = ? AND operation_id = ?",
                       4, p);
    }
    const char *p[] = {sha, now, now, op->tenant, opid};
    return reg_run(r,
                   "UPDATE tenants SET lifecycle = 'offboarded', sync = 'committed', "
                   "commit_sha = ?, updated_at = ?, offboarded_at = ? WHERE id = ? AND "
                   "operation_id = ?",
                   5, p);
}

/* A failed tenant operation is undone: an update returns to the desired
 * state before the change; an onboarding removes a tenant with no pushed
 * history (a re-onboarded one returns to offboarded); an offboarding
 * returns the tenant to active. */
static int tenant_failed(ll_registry *r, const ll_operation *op, const char *opid, const char *now)
{
    int error;

    switch (op->kind) {
    case LL_OP_UPDATE:
        return restore_previous(r, &op->t.previous, op->tenant, opid, now, 0);
    case LL_OP_ONBOARD: {
        const char *p[] = {op->tenant, opid};
        error = reg_run(r,
                        "DELETE FROM tenants WHERE id = ?1 AND operation_id = ?2 AND NOT EXISTS "
                        "(SELECT 1 FROM operations WHERE tenant_id = ?1 AND state = 'pushed')",
                        2, p);
        if (error >= 0 && op->t.has_previous)
            error = restore_previous(r, &op->t.previous, op->tenant, opid, now, 1);
        return error;
    }
    default: {
        const char *p[] = {now, op->tenant, opid};
        return reg_run(
            r,
            "UPDATE tenants SET lifecycle = 'active', sync = 'committed', updated_at = ?1, "
            "operation_id = (SELECT max(id) FROM operations WHERE tenant_id = ?2 AND "
            "state = 'pushed') WHERE id = ?2 AND operation_id = ?3",
            3, p);
    }
    }
}

/* The store of op follows its outcome (inside the caller's transaction). */
static int store_follows(ll_registry *r, const ll_operation *op, const ll_op_result *res,
                         const char *opid, const char *now)
{
    switch (op->kind) {
    case LL_OP_TIER_PUT:
    case LL_OP_TIER_DELETE:
        /* A tier change moves no tenant; a pushed one updates tier_info. */
        return res->ok ? reg_tier_finish(r, op, now) : 0;
    case LL_OP_ROLLOUT:
        return reg_rollout_op_finished(r, op, res->ok, res->ok ? res->commit : NULL, now);
    default:
        /* Only the tenant's latest operation moves the tenant. */
        return res->ok ? tenant_pushed(r, op, res->commit, opid, now)
                       : tenant_failed(r, op, opid, now);
    }
}

static int finish_one(ll_registry *r, const ll_op_result *res, const char *now)
{
    ll_operation op;
    char opid[32];
    int error;

    if ((error = ll_registry_op_get(&op, r, res->id)) < 0)
        return error;
    snprintf(opid, sizeof(opid), "%lld", res->id);
    {
        const char *p[] = {res->ok ? "pushed" : "failed",
                           res->ok ? res->commit : NULL,
                           res->ok ? NULL : res->error,
                           res->ok ? NULL : failure_names[res->failure],
                           now,
                           opid};
        if ((error = reg_run(r,
                             "UPDATE operations SET state = ?, commit_sha = ?, error = ?, "
                             "error_type = ?, updated_at = ? WHERE id = ?",
                             6, p)) < 0)
            goto done;
    }
    error = store_follows(r, &op, res, opid, now);
done:
    ll_operation_clear(&op);
    return error < 0 ? error : 0;
}

int ll_registry_ops_finish(ll_registry *r, const ll_op_result *results, size_t n)
{
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    for (size_t i = 0; i < n; i++) {
        if ((error = finish_one(r, &results[i], now)) < 0) {
            reg_rollback(r);
            return error;
        }
    }
    return reg_commit(r);
}

int ll_registry_ops_attempted(ll_registry *r, const ll_operation *ops, size_t n, const char *why)
{
    char now[32], opid[32];
    int error = 0;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    for (size_t i = 0; i < n; i++) {
        const char *p[] = {why, now, opid};
        snprintf(opid, sizeof(opid), "%lld", ops[i].id);
        if ((error = reg_run(r,
                             "UPDATE operations SET attempts = attempts + 1, last_error = ?, "
                             "updated_at = ? WHERE id = ? AND state = 'queued'",
                             3, p)) < 0) {
            reg_rollback(r);
            return error;
        }
    }
    return reg_commit(r);
}

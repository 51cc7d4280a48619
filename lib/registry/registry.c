/* registry.c - SQLite storage for tenants and the operation outbox.
 *
 * Each ll_registry wraps one connection; callers keep one per thread (the
 * core hands each thread its own).  Every write that must be atomic runs in
 * one BEGIN IMMEDIATE transaction, so the outbox row and the tenant row land
 * together or not at all.  Rows are returned as jansson objects.
 *
 * A full volume (SQLITE_FULL, or an I/O error with ENOSPC when the WAL or
 * its index cannot grow) is LL_ENOSPACE, and a transaction whose COMMIT
 * failed is rolled back at once (reg_commit), so nothing of a refused write
 * stays and the connection holds no lock.  Such failures are reported to
 * storage.h; every commit that reaches the WAL clears the report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>

#include "landlord/embedded.h"
#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/storage.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "registry_int.h"

/* --- tenants ------------------------------------------------------------ */

#define TENANT_COLS                                                                                \
    "id, tier, release, values_json, lifecycle, sync, commit_sha, operation_id, created_at, "      \
    "updated_at, offboarded_at, origin, path, observed_state, observed_since, chart_version"

static json_t *tenant_row(sqlite3_stmt *st)
{
    json_t *t = json_object(), *values;
    const char *vj = (const char *)sqlite3_column_text(st, 3);

    values = vj ? json_loads(vj, 0, NULL) : NULL;
    json_object_set_new(t, "id", reg_col_text(st, 0));
    json_object_set_new(t, "tier", reg_col_text(st, 1));
    json_object_set_new(t, "release", reg_col_text(st, 2));
    json_object_set_new(t, "values", values ? values : json_object());
    json_object_set_new(t, "lifecycle", reg_col_text(st, 4));
    json_object_set_new(t, "sync", reg_col_text(st, 5));
    json_object_set_new(t, "commit", reg_col_text(st, 6));
    json_object_set_new(t, "operation",
                        sqlite3_column_type(st, 7) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, 7)));
    json_object_set_new(t, "created_at", reg_col_text(st, 8));
    json_object_set_new(t, "updated_at", reg_col_text(st, 9));
    json_object_set_new(t, "offboarded_at", reg_col_text(st, 10));
    json_object_set_new(t, "origin", reg_col_text(st, 11));
    json_object_set_new(t, "path", reg_col_text(st, 12));
    json_object_set_new(t, "observed_state", reg_col_text(st, 13));
    json_object_set_new(t, "observed_since", reg_col_text(st, 14));
    {
        /* The version of the desired state: what If-Match compares. */
        char etag[LL_ETAG_MAX];
        const char *parts[] = {(const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2),
                               vj,
                               (const char *)sqlite3_column_text(st, 4),
                               (const char *)sqlite3_column_text(st, 7),
                               (const char *)sqlite3_column_text(st, 12)};
        ll_etag_of(etag, parts, 6);
        json_object_set_new(t, "etag", json_string(etag));
    }
    json_object_set_new(t, "chart_version", reg_col_text(st, 15));
    return t;
}

/* LL_EPRECONDITION when if_match is given and does not name t's version. */
static int check_if_match(const json_t *t, const char *id, const char *if_match)
{
    const char *etag = json_string_value(json_object_get(t, "etag"));
    if (!if_match || ll_etag_matches(if_match, etag))
        return 0;
    ll_error_set(LL_EPRECONDITION, "tenant '%s' has changed: it is at version %s", id, etag);
    ll_error_hint("read it again (GET /api/v1/tenants/%s) and send its ETag in If-Match", id);
    return LL_EPRECONDITION;
}

static int tenant_commits(json_t *t, ll_registry *r, const char *id)
{
    sqlite3_stmt *st = NULL;
    json_t *list = json_array();
    int error, rc;

    /* Its own operations, and the rollout operations that moved it. */
    if ((error = reg_prepare(&st, r,
                             "SELECT commit_sha, kind, updated_at, id FROM operations WHERE "
                             "tenant_id = ?1 AND state = 'pushed' UNION ALL SELECT o.commit_sha, "
                             "o.kind, o.updated_at, o.id FROM operation_tenants ot JOIN operations "
                             "o ON o.id = ot.operation_id WHERE ot.tenant_id = ?1 AND o.state = "
                             "'pushed' ORDER BY 4")) < 0)
        goto done;
    reg_bind_text(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *c = json_object();
        json_object_set_new(c, "sha", reg_col_text(st, 0));
        json_object_set_new(c, "operation", reg_col_text(st, 1));
        json_object_set_new(c, "at", reg_col_text(st, 2));
        json_array_append_new(list, c);
    }
    error = rc == SQLITE_DONE ? 0 : reg_db_error(r, "read commits");
done:
    reg_finalize(r, st);
    json_object_set_new(t, "commits", list);
    return error;
}

int ll_registry_tenant_get(json_t **out, ll_registry *r, const char *id, int with_commits)
{
    sqlite3_stmt *st = NULL;
    json_t *t = NULL;
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT " TENANT_COLS " FROM tenants WHERE id = ?")) < 0)
        return error;
    reg_bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        t = tenant_row(st);
        error = 0;
    } else if (rc == SQLITE_DONE) {
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%s'", id);
    } else {
        error = reg_db_error(r, "read tenant");
    }
    reg_finalize(r, st);
    if (!error && with_commits)
        error = tenant_commits(t, r, id);
    if (error < 0) {
        json_decref(t);
        return error;
    }
    *out = t;
    return 0;
}

int ll_registry_tenant_list(json_t **out_items, char **out_next, ll_registry *r, const char *tier,
                            const char *lifecycle, const char *after, int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array();
    int error, rc, n = 0;

    *out_next = NULL;
    if ((error =
             reg_prepare(&st, r,
                         "SELECT " TENANT_COLS " FROM tenants WHERE (?1 IS NULL OR tier = ?1) AND "
                         "(?2 IS NULL OR lifecycle = ?2) AND (?3 IS NULL OR id > ?3) "
                         "ORDER BY id LIMIT ?4")) < 0)
        goto fail;
    reg_bind_text(st, 1, tier);
    reg_bind_text(st, 2, lifecycle);
    reg_bind_text(st, 3, after);
    sqlite3_bind_int(st, 4, limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == limit) {
            json_t *last = json_array_get(items, json_array_size(items) - 1);
            *out_next = strdup(json_string_value(json_object_get(last, "id")));
            break;
        }
        json_array_append_new(items, tenant_row(st));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "list tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out_items = items;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(items);
    return error;
}

int ll_registry_tenant_counts(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *counts = json_object();
    int error, rc;

    if ((error = reg_prepare(&st, r,
                             "SELECT tier, count(*) FROM tenants WHERE lifecycle != 'offboarded' "
                             "GROUP BY tier")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "count tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = counts;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(counts);
    return error;
}

static int insert_op(long long *out, ll_registry *r, const char *kind, const char *tenant,
                     const char *tier, const char *payload, const char *now,
                     const ll_registry_author *author)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error =
             reg_prepare(&st, r,
                         "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                         "created_at, updated_at, author_name, author_email) VALUES (?, ?, ?, ?, "
                         "'queued', ?, ?, ?, ?) RETURNING id")) < 0)
        return error;
    reg_bind_text(st, 7, author->name);
    reg_bind_text(st, 8, author->email);
    reg_bind_text(st, 1, kind);
    reg_bind_text(st, 2, tenant);
    reg_bind_text(st, 3, tier);
    reg_bind_text(st, 4, payload);
    reg_bind_text(st, 5, now);
    reg_bind_text(st, 6, now);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        error = 0;
    } else {
        error = reg_db_error(r, "queue operation");
    }
    reg_finalize(r, st);
    return error;
}

int ll_registry_onboard(long long *out_op, json_t **out_existing, ll_registry *r, const char *id,
                        const char *tier, const char *release, const char *values_json,
                        const ll_registry_author *author)
{
    json_t *existing = NULL, *values = json_loads(values_json, 0, NULL), *desired = NULL;
    char now[32], opid[32], *payload = NULL;
    int error;

    if (!values && !(values = json_object()))
        return ll_error_set(-1, "out of memory");

    char chart[64];
    *out_existing = NULL;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0) {
        json_decref(values);
        return error;
    }
    /* What the file will carry, chosen in the same transaction as the
     * catalogue it is chosen from. */
    if ((error = reg_chart_version_for(chart, sizeof(chart), r, tier, release)) < 0)
        goto fail;
    error = ll_registry_tenant_get(&existing, r, id, 1);
    if (error == 0 &&
        strcmp(json_string_value(json_object_get(existing, "lifecycle")), "offboarded") != 0) {
        ll_error_set(LL_EEXISTS, "tenant '%s' exists already", id);
        ll_error_field("id");
        *out_existing = existing;
        existing = NULL;
        error = LL_EEXISTS;
        goto fail;
    }
    if (error < 0 && error != LL_ENOTFOUND)
        goto fail;
    /* The operation carries the desired state it must write and, for a
     * tenant onboarded again, the record to return to if it fails. */
    desired =
        json_pack("{s:s, s:O, s:s}", "release", release, "values", values, "chart_version", chart);
    if (existing)
        json_object_set_new(desired, "previous",
                            json_pack("{s:O, s:O, s:O, s:O}", "tier",
                                      json_object_get(existing, "tier"), "release",
                                      json_object_get(existing, "release"), "values",
                                      json_object_get(existing, "values"), "chart_version",
                                      json_object_get(existing, "chart_version")));
    payload = json_dumps(desired, JSON_COMPACT | JSON_SORT_KEYS);
    if (!payload) {
        error = ll_error_set(-1, "cannot encode the operation");
        goto fail;
    }
    if ((error = insert_op(out_op, r, "onboard", id, tier, payload, now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    if (existing) {
        const char *p[] = {tier, release, values_json, opid, now, chart, id};
        error =
            reg_run(r,
                    "UPDATE tenants SET tier = ?, release = ?, values_json = ?, lifecycle = "
                    "'active', sync = 'pending', origin = 'api', operation_id = ?, updated_at = ?, "
                    "offboarded_at = NULL, path = NULL, chart_version = ? WHERE id = ?",
                    7, p);
    } else {
        const char *p[] = {id, tier, release, values_json, opid, now, now, chart};
        error = reg_run(r,
                        "INSERT INTO tenants (id, tier, release, values_json, lifecycle, sync, "
                        "operation_id, created_at, updated_at, chart_version) VALUES (?, ?, ?, ?, "
                        "'active', 'pending', ?, ?, ?, ?)",
                        8, p);
    }
    if (error < 0)
        goto fail;
    json_decref(existing);
    json_decref(desired);
    json_decref(values);
    free(payload);
    return reg_commit(r);
fail:
    json_decref(existing);
    json_decref(desired);
    json_decref(values);
    free(payload);
    reg_rollback(r);
    return error;
}

int ll_registry_offboard(long long *out_op, ll_registry *r, const char *id,
                         const ll_registry_author *author, const char *if_match)
{
    json_t *t = NULL;
    char now[32], opid[32];
    const char *lifecycle;
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = ll_registry_tenant_get(&t, r, id, 0)) < 0 ||
        (error = check_if_match(t, id, if_match)) < 0)
        goto fail;
    lifecycle = json_string_value(json_object_get(t, "lifecycle"));
    if (strcmp(lifecycle, "offboarded") == 0) {
        json_decref(t);
        return reg_commit(r);
    }
    if ((error = insert_op(out_op, r, "offboard", id, json_string_value(json_object_get(t, "tier")),
                           "{}", now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    {
        const char *p[] = {opid, now, id};
        if ((error = reg_run(r,
                             "UPDATE tenants SET lifecycle = 'offboarding', sync = 'pending', "
                             "operation_id = ?, updated_at = ? WHERE id = ?",
                             3, p)) < 0)
            goto fail;
    }
    json_decref(t);
    return reg_commit(r);
fail:
    json_decref(t);
    reg_rollback(r);
    return error;
}

/* --- operations ----------------------------------------------------------- */

#define OP_COLS                                                                                    \
    "id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type, created_at, "       \
    "updated_at, author_name, author_email, attempts, last_error, rollout_id"

static json_t *op_row(sqlite3_stmt *st)
{
    json_t *o = json_object(), *payload;
    const char *pj = (const char *)sqlite3_column_text(st, 4);
    payload = pj ? json_loads(pj, 0, NULL) : NULL;
    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "kind", reg_col_text(st, 1));
    json_object_set_new(o, "tenant", reg_col_text(st, 2));
    json_object_set_new(o, "tier", reg_col_text(st, 3));
    json_object_set_new(o, "payload", payload ? payload : json_object());
    json_object_set_new(o, "state", reg_col_text(st, 5));
    json_object_set_new(o, "commit", reg_col_text(st, 6));
    json_object_set_new(o, "error", reg_col_text(st, 7));
    json_object_set_new(o, "error_type", reg_col_text(st, 8));
    json_object_set_new(o, "created_at", reg_col_text(st, 9));
    json_object_set_new(o, "updated_at", reg_col_text(st, 10));
    json_object_set_new(
        o, "author",
        json_pack("{s:o, s:o}", "name", reg_col_text(st, 11), "email", reg_col_text(st, 12)));
    json_object_set_new(o, "attempts", json_integer(sqlite3_column_int64(st, 13)));
    json_object_set_new(o, "last_error", reg_col_text(st, 14));
    if (sqlite3_column_type(st, 15) != SQLITE_NULL)
        json_object_set_new(o, "rollout", json_integer(sqlite3_column_int64(st, 15)));
    return o;
}

int ll_registry_ops_queued(json_t **out, ll_registry *r, int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *list = json_array();
    int error, rc;

    if ((error =
             reg_prepare(&st, r,
                         "SELECT " OP_COLS " FROM operations WHERE state = 'queued' ORDER BY id "
                         "LIMIT ?")) < 0)
        goto fail;
    sqlite3_bind_int(st, 1, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(list, op_row(st));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "read queued operations");
        goto fail;
    }
    reg_finalize(r, st);
    *out = list;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(list);
    return error;
}

int ll_registry_op_get(json_t **out, ll_registry *r, long long id)
{
    sqlite3_stmt *st = NULL;
    int error, rc;
    if ((error = reg_prepare(&st, r, "SELECT " OP_COLS " FROM operations WHERE id = ?")) < 0)
        return error;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = op_row(st);
        error = 0;
    } else if (rc == SQLITE_DONE) {
        error = ll_error_set(LL_ENOTFOUND, "no operation %lld", id);
    } else {
        error = reg_db_error(r, "read operation");
    }
    reg_finalize(r, st);
    return error;
}

/* Returns a tenant whose operation opid failed to the desired state it had
 * before (prev: {tier, release, values}), offboarded again when it had been
 * re-onboarded. */
static int restore_previous(ll_registry *r, const json_t *prev, const char *tenant,
                            const char *opid, const char *now, int offboarded)
{
    char *pv = json_dumps(json_object_get(prev, "values"), JSON_COMPACT | JSON_SORT_KEYS);
    const char *p[] = {now,
                       tenant,
                       opid,
                       json_string_value(json_object_get(prev, "tier")),
                       json_string_value(json_object_get(prev, "release")),
                       pv ? pv : "{}",
                       json_string_value(json_object_get(prev, "chart_version"))};
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

static int finish_one(ll_registry *r, const json_t *res, const char *now)
{
    long long id = json_integer_value(json_object_get(res, "id"));
    int ok = json_is_true(json_object_get(res, "ok"));
    const char *sha = json_string_value(json_object_get(res, "commit"));
    const char *err = json_string_value(json_object_get(res, "error"));
    const char *etype = json_string_value(json_object_get(res, "error_type"));
    json_t *op = NULL;
    const char *kind, *tenant;
    char opid[32];
    int error;

    if ((error = ll_registry_op_get(&op, r, id)) < 0)
        return error;
    kind = json_string_value(json_object_get(op, "kind"));
    tenant = json_string_value(json_object_get(op, "tenant"));
    snprintf(opid, sizeof(opid), "%lld", id);
    {
        const char *p[] = {ok ? "pushed" : "failed",
                           ok ? sha : NULL,
                           ok ? NULL : err,
                           ok ? NULL : etype,
                           now,
                           opid};
        if ((error = reg_run(r,
                             "UPDATE operations SET state = ?, commit_sha = ?, error = ?, "
                             "error_type = ?, updated_at = ? WHERE id = ?",
                             6, p)) < 0)
            goto done;
    }
    if (strncmp(kind, "tier_", 5) == 0) {
        /* A tier change moves no tenant; a pushed one updates tier_info. */
        error = ok ? reg_tier_finish(r, op, now) : 0;
        goto done;
    }
    /* Only the tenant's latest operation moves the tenant. */
    if (strcmp(kind, "rollout") == 0) {
        error = reg_rollout_op_finished(r, op, ok, sha, now);
    } else if (ok && strcmp(kind, "offboard") != 0) {
        const char *p[] = {sha, now, tenant, opid};
        error = reg_run(r,
                        "UPDATE tenants SET sync = 'committed', commit_sha = ?, updated_at = ? "
                        "WHERE id = ? AND operation_id = ?",
                        4, p);
    } else if (ok) {
        const char *p[] = {sha, now, now, tenant, opid};
        error = reg_run(r,
                        "UPDATE tenants SET lifecycle = 'offboarded', sync = 'committed', "
                        "commit_sha = ?, updated_at = ?, offboarded_at = ? WHERE id = ? AND "
                        "operation_id = ?",
                        5, p);
    } else if (strcmp(kind, "update") == 0) {
        /* Undo: back to the desired state before the change. */
        error = restore_previous(r, json_object_get(json_object_get(op, "payload"), "previous"),
                                 tenant, opid, now, 0);
    } else if (strcmp(kind, "onboard") == 0) {
        /* Undo: a tenant with no pushed history disappears; a re-onboarded
         * one returns to offboarded. */
        const char *p[] = {tenant, opid};
        error = reg_run(r,
                        "DELETE FROM tenants WHERE id = ?1 AND operation_id = ?2 AND NOT EXISTS "
                        "(SELECT 1 FROM operations WHERE tenant_id = ?1 AND state = 'pushed')",
                        2, p);
        json_t *prev = json_object_get(json_object_get(op, "payload"), "previous");
        if (error >= 0 && prev)
            error = restore_previous(r, prev, tenant, opid, now, 1);
    } else {
        const char *p[] = {now, tenant, opid};
        error =
            reg_run(r,
                    "UPDATE tenants SET lifecycle = 'active', sync = 'committed', updated_at = ?1, "
                    "operation_id = (SELECT max(id) FROM operations WHERE tenant_id = ?2 AND "
                    "state = 'pushed') WHERE id = ?2 AND operation_id = ?3",
                    3, p);
    }
done:
    json_decref(op);
    return error < 0 ? error : 0;
}

int ll_registry_ops_finish(ll_registry *r, const json_t *results)
{
    char now[32];
    size_t i;
    json_t *res;
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    json_array_foreach(results, i, res)
    {
        if ((error = finish_one(r, res, now)) < 0) {
            reg_rollback(r);
            return error;
        }
    }
    return reg_commit(r);
}

int ll_registry_update(long long *out_op, ll_registry *r, const char *id, const char *tier,
                       const char *release, const char *values_json,
                       const ll_registry_author *author, const char *if_match)
{
    json_t *t = NULL, *values = json_loads(values_json, 0, NULL), *desired = NULL;
    char now[32], opid[32], *payload = NULL;
    const char *lifecycle;
    int error;

    *out_op = 0;
    if (!values)
        return ll_error_set(LL_EINVALID, "values are not JSON");
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0) {
        json_decref(values);
        return error;
    }
    if ((error = ll_registry_tenant_get(&t, r, id, 0)) < 0 ||
        (error = check_if_match(t, id, if_match)) < 0)
        goto fail;
    lifecycle = json_string_value(json_object_get(t, "lifecycle"));
    if (strcmp(lifecycle, "offboarded") == 0 || strcmp(lifecycle, "offboarding") == 0) {
        error = ll_error_set(LL_ECONFLICT, "tenant '%s' is %s", id, lifecycle);
        ll_error_hint("onboard it again with POST /api/v1/tenants");
        goto fail;
    }
    /* What the file carries changes only with the policy: pinning writes the
     * pin, a new floating line (or unpinning) chooses again; anything else
     * (values, a tier move) keeps the version the tenant runs. */
    const char *old_release = json_string_value(json_object_get(t, "release"));
    const char *old_chart = json_string_value(json_object_get(t, "chart_version"));
    char old_expr[64] = "", new_expr[64] = "", chart[64];
    ll_release_expr(old_expr, sizeof(old_expr), old_release);
    ll_release_expr(new_expr, sizeof(new_expr), release);
    if (old_chart && strcmp(old_expr, new_expr) == 0)
        snprintf(chart, sizeof(chart), "%s", old_chart);
    else if ((error = reg_chart_version_for(chart, sizeof(chart), r, tier, release)) < 0)
        goto fail;
    /* The operation carries the new desired state, the folder the tenant
     * leaves, and the state to return to if it fails. */
    desired = json_pack(
        "{s:s, s:O, s:s, s:O, s:{s:O, s:O, s:O, s:O}}", "release", release, "values", values,
        "chart_version", chart, "from_tier", json_object_get(t, "tier"), "previous", "tier",
        json_object_get(t, "tier"), "release", json_object_get(t, "release"), "values",
        json_object_get(t, "values"), "chart_version", json_object_get(t, "chart_version"));
    if (!desired || !(payload = json_dumps(desired, JSON_COMPACT | JSON_SORT_KEYS))) {
        error = ll_error_set(-1, "cannot encode the operation");
        goto fail;
    }
    if ((error = insert_op(out_op, r, "update", id, tier, payload, now, author)) < 0)
        goto fail;
    snprintf(opid, sizeof(opid), "%lld", *out_op);
    {
        /* A tier change writes the file where the configured layout puts it. */
        const char *p[] = {tier, release, values_json, opid, now, id, chart};
        if ((error = reg_run(
                 r,
                 "UPDATE tenants SET tier = ?1, release = ?2, values_json = ?3, sync = "
                 "'pending', operation_id = ?4, updated_at = ?5, path = CASE WHEN tier = ?1 "
                 "THEN path ELSE NULL END, chart_version = ?7 WHERE id = ?6",
                 7, p)) < 0)
            goto fail;
    }
    error = reg_commit(r);
    goto done;
fail:
    reg_rollback(r);
done:
    json_decref(t);
    json_decref(values);
    json_decref(desired);
    free(payload);
    return error;
}

int ll_registry_ops_attempted(ll_registry *r, const json_t *ops, const char *why)
{
    char now[32], opid[32];
    size_t i;
    json_t *op;
    int error = 0;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    json_array_foreach(ops, i, op)
    {
        const char *p[] = {why, now, opid};
        snprintf(opid, sizeof(opid), "%lld",
                 (long long)json_integer_value(json_object_get(op, "id")));
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

int ll_registry_tenants_changed(json_t **out, long long *seq, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    long long top = *seq < 0 ? 0 : *seq;
    int error, rc;

    /* The follower's poll, every round: prepared once (both forms). */
    if ((error =
             reg_prepare(&st, r,
                         *seq < 0 ? "SELECT " TENANT_COLS ", (SELECT coalesce(max(seq), 0) FROM "
                                    "tenant_changes) FROM tenants WHERE ? < 0"
                                  : "SELECT " TENANT_COLS ", (SELECT max(seq) FROM "
                                    "tenant_changes WHERE tenant_id = tenants.id) FROM tenants "
                                    "WHERE id IN (SELECT tenant_id FROM tenant_changes WHERE "
                                    "seq > ?)")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, *seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(rows, tenant_row(st));
        if (sqlite3_column_int64(st, 16) > top)
            top = sqlite3_column_int64(st, 16);
    }
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "read changed tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    *seq = top;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

int ll_registry_tenant_changes_prune(ll_registry *r, long long upto)
{
    char sql[120];
    snprintf(sql, sizeof(sql), "DELETE FROM tenant_changes WHERE seq <= %lld", upto);
    return reg_exec(r, sql);
}

int ll_registry_tenant_index(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *index = json_object();
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT id, tier, lifecycle, sync FROM tenants")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(index, (const char *)sqlite3_column_text(st, 0),
                            json_pack("{s:o, s:o, s:o}", "tier", reg_col_text(st, 1), "lifecycle",
                                      reg_col_text(st, 2), "sync", reg_col_text(st, 3)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "index tenants");
        goto fail;
    }
    reg_finalize(r, st);
    *out = index;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(index);
    return error;
}

/* An adopted file's chart version: its release as the range it reads
 * ("1.2" -> "1.2.x"), or the exact version. */
#define ADOPTED_CHART "CASE WHEN ?3 GLOB '*.*.*' THEN ?3 ELSE ?3 || '.x' END"

int ll_registry_reconcile(ll_registry *r, const json_t *adopt, const json_t *drifted,
                          const json_t *returned, const char *commit)
{
    char now[32];
    size_t i;
    json_t *v;
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    json_array_foreach(adopt, i, v)
    {
        char *values = json_dumps(json_object_get(v, "values"), JSON_COMPACT | JSON_SORT_KEYS);
        const char *p[] = {json_string_value(json_object_get(v, "id")),
                           json_string_value(json_object_get(v, "tier")),
                           json_string_value(json_object_get(v, "release")),
                           values ? values : "{}",
                           commit,
                           now,
                           json_string_value(json_object_get(v, "path"))};
        /* New, or offboarded earlier and put back by hand: adopted either way.
         * A tenant landlord is working on is never touched. */
        error =
            reg_run(r,
                    "INSERT INTO tenants (id, tier, release, values_json, lifecycle, sync, origin, "
                    "commit_sha, created_at, updated_at, path, chart_version) VALUES (?1, ?2, ?3, "
                    "?4, 'active', 'committed', 'adopted', ?5, ?6, ?6, ?7, " ADOPTED_CHART
                    ") ON CONFLICT (id) DO UPDATE SET tier = ?2, release = ?3, values_json = ?4, "
                    "lifecycle = 'active', origin = 'adopted', commit_sha = ?5, updated_at = ?6, "
                    "offboarded_at = NULL, path = ?7, chart_version = " ADOPTED_CHART
                    " WHERE lifecycle = 'offboarded' AND sync = 'committed'",
                    7, p);
        free(values);
        if (error < 0)
            goto fail;
    }
    json_array_foreach(drifted, i, v)
    {
        const char *p[] = {now, json_string_value(v)};
        if ((error = reg_run(
                 r,
                 "UPDATE tenants SET lifecycle = 'drifted', updated_at = ? WHERE id = ? AND "
                 "lifecycle = 'active' AND sync = 'committed'",
                 2, p)) < 0)
            goto fail;
    }
    json_array_foreach(returned, i, v)
    {
        const char *p[] = {now, json_string_value(v)};
        if ((error =
                 reg_run(r,
                         "UPDATE tenants SET lifecycle = 'active', updated_at = ? WHERE id = ? AND "
                         "lifecycle = 'drifted'",
                         2, p)) < 0)
            goto fail;
    }
    return reg_commit(r);
fail:
    reg_rollback(r);
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

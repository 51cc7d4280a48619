/* Unit tests of lib/registry: migrations, tenants, the outbox, a full volume
 * (SQLite's max_page_count makes the database "full" on demand), the tenant
 * record's conversions (enum names, SQL row -> record -> JSON, the desired
 * state as stored), db.c's row loop and the tier reads as records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/storage.h"
#include "support.h"
#include "registry/registry_int.h"

static char dir[64], path[128];
static const ll_registry_author author = {"Ada", "ada@example.com"};

/* The tenant store through its typed records, in the JSON shape the
 * assertions below read (ll_tenant_record_json: the one conversion the
 * follower and the API's views start from). */
static int tenant_get_json(json_t **out, ll_registry *r, const char *id, int with_commits)
{
    ll_tenant_record t;
    int error = ll_registry_tenant_get(&t, r, id, with_commits);
    if (error == 0)
        *out = ll_tenant_record_json(&t);
    ll_tenant_record_clear(&t);
    return error;
}

static int tenant_list_json(json_t **out, char **out_next, ll_registry *r, const char *tier,
                            const char *lifecycle, const char *after, int limit)
{
    ll_tenant_record *items = NULL;
    ll_tenant_lifecycle l = LL_TENANT_ACTIVE;
    size_t n = 0;
    if (lifecycle)
        assert_int_equal(ll_tenant_lifecycle_parse(&l, lifecycle), 0);
    int error = ll_registry_tenant_list(&items, &n, out_next, r, tier, lifecycle ? (int)l : -1,
                                        after, limit);
    if (error == 0) {
        *out = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*out, ll_tenant_record_json(&items[i]));
    }
    ll_tenant_records_free(items, n);
    return error;
}

/* Onboards (values as JSON text); *existing: the tenant in the way, as
 * JSON, when LL_EEXISTS. */
static int onboard(long long *op, json_t **existing, ll_registry *r, const char *id,
                   const char *tier, const char *release, const char *values)
{
    json_t *v = json_loads(values, 0, NULL);
    ll_tenant_record in_the_way;
    ll_tenant_desired d = {.id = id, .tier = tier, .release = release, .values = v};
    assert_non_null(v);
    int error = ll_registry_onboard(op, &in_the_way, r, &d, &author);
    *existing = error == LL_EEXISTS ? ll_tenant_record_json(&in_the_way) : NULL;
    ll_tenant_record_clear(&in_the_way);
    json_decref(v);
    return error;
}

static int update(long long *op, ll_registry *r, const char *id, const char *tier,
                  const char *release, const char *values)
{
    json_t *v = json_loads(values, 0, NULL);
    ll_tenant_desired d = {.id = id, .tier = tier, .release = release, .values = v};
    assert_non_null(v);
    int error = ll_registry_update(op, r, &d, &author);
    json_decref(v);
    return error;
}

static int offboard(long long *op, ll_registry *r, const char *id)
{
    ll_tenant_desired d = {.id = id};
    return ll_registry_offboard(op, r, &d, &author);
}

static int setup(void **state)
{
    (void)state;
    return ut_temp_db(dir, sizeof(dir), path, sizeof(path), "registry");
}

static int teardown(void **state)
{
    (void)state;
    return ut_remove_tree(dir);
}

/* The first column of the first row of sql as an int (-1 when none). */
static int scalar_int(const char *sql)
{
    char *v = ut_sql_text(path, sql);
    int n = v ? atoi(v) : -1;
    free(v);
    return n;
}

/* Records one outcome the way the git writer does. */
static int finish_ok(ll_registry *r, long long id, const char *sha)
{
    ll_op_results res = {0};
    int error = ll_op_results_ok(&res, id, sha);
    if (error == 0)
        error = ll_registry_ops_finish(r, res.v, res.n);
    ll_op_results_free(&res);
    return error;
}

static int finish_failed(ll_registry *r, long long id, ll_op_failure failure, const char *why)
{
    ll_op_results res = {0};
    int error = ll_op_results_failed(&res, id, failure, why);
    if (error == 0)
        error = ll_registry_ops_finish(r, res.v, res.n);
    ll_op_results_free(&res);
    return error;
}

static void test_migrations(void **state)
{
    ll_registry *r = NULL;
    int applied = 0, known = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_schema_version(&applied, &known, r), 0);
    assert_true(known >= 1);
    assert_int_equal(applied, known);
    ll_registry_close(r);
    /* Tracked: one row per migration, and re-opening applies nothing twice. */
    assert_int_equal(scalar_int("SELECT count(*) FROM schema_migrations"), known);
    assert_int_equal(ll_registry_open(&r, path), 0);
    ll_registry_close(r);
    assert_int_equal(scalar_int("SELECT count(*) FROM schema_migrations"), known);

    /* A database from a newer landlord is refused and left alone. */
    {
        sqlite3 *db = NULL;
        char sql[64];
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", known + 1);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    assert_int_equal(ll_registry_open(&r, path), LL_ECONFLICT);
    assert_non_null(strstr(ll_error_last()->message, "newer")
                        ? ll_error_last()->message
                        : strstr(ll_error_last()->message, "knows only"));
    assert_int_equal(scalar_int("PRAGMA user_version"), known + 1);
}

static void test_wal_and_foreign_keys(void **state)
{
    ll_registry *r = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    ll_registry_close(r);
}

/* A commit moves the change generation once it is in the WAL; a quiet
 * connection's commits and reads do not move it. */
static void test_change_generation(void **state)
{
    ll_registry *r = NULL, *quiet = NULL;
    json_t *t = NULL, *existing = NULL;
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_open(&quiet, path), 0);
    ll_registry_set_quiet(quiet, 1);
    unsigned long long g0 = ll_registry_generation();
    assert_int_equal(onboard(&op, &existing, r, "acme", "premium", "0.0", "{}"), 0);
    unsigned long long g1 = ll_registry_generation();
    assert_true(g1 > g0);
    /* Reads (through the cached statements, twice) move nothing. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tenant_get_json(&t, r, "acme", 1), 0);
        json_decref(t);
    }
    assert_int_equal(tenant_get_json(&t, r, "nobody", 1), LL_ENOTFOUND);
    assert_true(ll_registry_generation() == g1);
    assert_int_equal(onboard(&op, &existing, quiet, "quiet1", "basic", "0.0", "{}"), 0);
    assert_true(ll_registry_generation() == g1);
    /* The quiet connection's write is there for the others. */
    assert_int_equal(tenant_get_json(&t, r, "quiet1", 1), 0);
    json_decref(t);
    ll_registry_close(quiet);
    ll_registry_close(r);
}

static void test_tenant_lifecycle(void **state)
{
    ll_registry *r = NULL;
    json_t *t = NULL, *existing = NULL, *list = NULL;
    ll_op_list ops = {NULL, 0};
    char *next = NULL;
    long long op = 0, op2 = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&op, &existing, r, "acme", "premium", "0.0", "{\"a\":1}"), 0);
    assert_true(op > 0);
    assert_null(existing);
    assert_int_equal(tenant_get_json(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "pending");
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "active");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "values"), "a")), 1);
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 0);
    json_decref(t);

    /* Exists: refused with the existing tenant. */
    assert_int_equal(onboard(&op2, &existing, r, "acme", "basic", "0.0", "{}"), LL_EEXISTS);
    assert_non_null(existing);
    assert_string_equal(json_string_value(json_object_get(existing, "tier")), "premium");
    json_decref(existing);

    /* The outbox holds exactly one queued operation with the desired state. */
    assert_int_equal(ll_registry_ops_queued(&ops, r, 10), 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.ops[0].kind, LL_OP_ONBOARD);
    assert_string_equal(ops.ops[0].t.release, "0.0");
    ll_op_list_free(&ops);

    assert_int_equal(finish_ok(r, op, "0123456789012345678901234567890123456789"), 0);
    assert_int_equal(tenant_get_json(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "committed");
    assert_string_equal(json_string_value(json_object_get(t, "commit")),
                        "0123456789012345678901234567890123456789");
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 1);
    json_decref(t);

    /* Offboard, then a failed re-onboard returns the tenant to offboarded. */
    assert_int_equal(offboard(&op, r, "acme"), 0);
    assert_true(op > 0);
    assert_int_equal(finish_ok(r, op, "1111111111111111111111111111111111111111"), 0);
    assert_int_equal(offboard(&op2, r, "acme"), 0);
    assert_int_equal(op2, 0); /* offboarded already */
    assert_int_equal(onboard(&op, &existing, r, "acme", "basic", "0.0", "{}"), 0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_NONE, "boom"), 0);
    assert_int_equal(tenant_get_json(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "offboarded");
    assert_string_equal(json_string_value(json_object_get(t, "tier")), "premium");
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 2);
    json_decref(t);

    /* A failed first onboarding leaves no tenant behind. */
    assert_int_equal(onboard(&op, &existing, r, "beta", "basic", "0.0", "{}"), 0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_RENDER, "boom"), 0);
    assert_int_equal(tenant_get_json(&t, r, "beta", 0), LL_ENOTFOUND);

    /* Lists page by id. */
    assert_int_equal(onboard(&op, &existing, r, "gamma", "basic", "0.0", "{}"), 0);
    assert_int_equal(onboard(&op, &existing, r, "delta", "basic", "0.0", "{}"), 0);
    assert_int_equal(tenant_list_json(&list, &next, r, "basic", NULL, NULL, 1), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "delta");
    assert_string_equal(next, "delta");
    free(next);
    next = NULL;
    json_decref(list);
    assert_int_equal(tenant_list_json(&list, &next, r, "basic", NULL, "delta", 1), 0);
    free(next);
    next = NULL;
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "gamma");
    json_decref(list);
    assert_int_equal(tenant_list_json(&list, &next, r, "basic", NULL, "gamma", 1), 0);
    assert_int_equal(json_array_size(list), 0);
    assert_null(next);
    json_decref(list);
    ll_registry_close(r);
}

static void test_update_and_reconcile(void **state)
{
    ll_registry *r = NULL;
    json_t *t = NULL, *existing = NULL;
    ll_op_list ops = {NULL, 0};
    ll_operation got;
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&op, &existing, r, "acme", "basic", "0.0", "{\"a\":1}"), 0);
    assert_int_equal(finish_ok(r, op, "c1"), 0);

    /* An update carries where the tenant comes from and what to return to. */
    assert_int_equal(update(&op, r, "acme", "premium", "1.2", "{\"b\":2}"), 0);
    assert_int_equal(ll_registry_ops_queued(&ops, r, 10), 0);
    assert_int_equal(ops.n, 1);
    const ll_operation *o = &ops.ops[0];
    assert_int_equal(o->kind, LL_OP_UPDATE);
    assert_string_equal(o->t.from_tier, "basic");
    assert_string_equal(o->author_email, "ada@example.com");
    assert_int_equal(ll_registry_ops_attempted(r, ops.ops, ops.n, "remote down"), 0);
    ll_op_list_free(&ops);
    assert_int_equal(ll_registry_op_get(&got, r, op), 0);
    assert_int_equal(got.attempts, 1);
    assert_string_equal(got.last_error, "remote down");
    ll_operation_clear(&got);

    /* A failed update returns the tenant to its previous desired state. */
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_CONFLICT, "x"), 0);
    assert_int_equal(tenant_get_json(&t, r, "acme", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "tier")), "basic");
    assert_string_equal(json_string_value(json_object_get(t, "release")), "0.0");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "values"), "a")), 1);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "committed");
    json_decref(t);

    /* Scans: adopt a new tenant, mark one drifted, bring it back. */
    json_t *no_values = json_object();
    ll_adoption adopt = {.id = "found",
                         .tier = "basic",
                         .release = "0.0",
                         .path = "tenants/basic/found.yaml",
                         .values = no_values};
    ll_names drift = {0}, none = {0};
    ll_tenant_index_entry *index = NULL;
    size_t n_index = 0;
    assert_int_equal(ll_names_add(&drift, "acme"), 0);
    assert_int_equal(ll_registry_reconcile(r, &adopt, 1, &drift, &none, "c2"), 0);
    assert_int_equal(tenant_get_json(&t, r, "found", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "origin")), "adopted");
    assert_string_equal(json_string_value(json_object_get(t, "commit")), "c2");
    assert_string_equal(json_string_value(json_object_get(t, "chart_version")), "0.0.x");
    json_decref(t);
    /* The index: every tenant, ordered by id, as enums. */
    assert_int_equal(ll_registry_tenant_index(&index, &n_index, r), 0);
    assert_int_equal(n_index, 2);
    assert_string_equal(index[0].id, "acme");
    assert_string_equal(index[0].tier, "basic");
    assert_int_equal(index[0].lifecycle, LL_TENANT_DRIFTED);
    assert_int_equal(index[0].sync, LL_TENANT_COMMITTED);
    assert_string_equal(index[1].id, "found");
    assert_int_equal(index[1].lifecycle, LL_TENANT_ACTIVE);
    free(index);
    /* Updating an existing tenant through a scan is refused: only new ones. */
    assert_int_equal(ll_registry_reconcile(r, &adopt, 1, &none, &drift, "c3"), 0);
    assert_int_equal(tenant_get_json(&t, r, "found", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "commit")), "c2");
    json_decref(t);
    assert_int_equal(tenant_get_json(&t, r, "acme", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "active");
    json_decref(t);
    json_decref(no_values);
    ll_names_clear(&drift);

    /* Offboarded tenants cannot be changed. */
    assert_int_equal(offboard(&op, r, "found"), 0);
    assert_int_equal(update(&op, r, "found", "basic", "0.0", "{}"), LL_ECONFLICT);
    assert_int_equal(update(&op, r, "nobody", "basic", "0.0", "{}"), LL_ENOTFOUND);
    ll_registry_close(r);
}

static const char *chart_of(ll_registry *r, const char *id)
{
    static char out[64];
    json_t *t = NULL;
    assert_int_equal(tenant_get_json(&t, r, id, 0), 0);
    snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(t, "chart_version")));
    json_decref(t);
    return out;
}

static void put_release(ll_registry *r, const char *version)
{
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", version);
    ll_release rel = {.version = tag,
                      .tag = tag,
                      .digest = "sha256:m",
                      .chart_digest = "sha256:c",
                      .config_digest = "sha256:f",
                      .size = 1,
                      .location = "local",
                      .pushed_at = "2026-01-01T00:00:00.000Z"};
    assert_int_equal(ll_registry_release_put(r, &rel), 0);
}

/* What a tenant's file carries: the range while nothing is uploaded; then
 * an exact version (the tier's, else the newest on the line, never a
 * pre-release); PATCH pins, unpins, and keeps it for values. */
static void test_chart_versions(void **state)
{
    ll_registry *r = NULL;
    json_t *existing = NULL;
    ll_op_list ops = {NULL, 0};
    long long op = 0, id = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&op, &existing, r, "a", "basic", "0.0", "{}"), 0);
    assert_string_equal(chart_of(r, "a"), "0.0.x");
    assert_int_equal(ll_registry_ops_queued(&ops, r, 10), 0);
    assert_string_equal(ops.ops[0].t.chart_version, "0.0.x");
    ll_op_list_free(&ops);
    put_release(r, "0.0.1");
    put_release(r, "0.0.10");
    put_release(r, "0.0.2");
    put_release(r, "0.0.11-rc.1");
    put_release(r, "0.1.0");
    assert_string_equal(chart_of(r, "a"), "0.0.x"); /* an upload moves nobody */
    assert_int_equal(onboard(&op, &existing, r, "b", "basic", "0.0.x", "{}"), 0);
    assert_string_equal(chart_of(r, "b"), "0.0.10");
    assert_int_equal(onboard(&op, &existing, r, "c", "basic", "0.0.2", "{}"), 0);
    assert_string_equal(chart_of(r, "c"), "0.0.2");
    assert_int_equal(onboard(&op, &existing, r, "d", "basic", "2.0", "{}"), 0);
    assert_string_equal(chart_of(r, "d"), "2.0.x"); /* nothing on its line */

    /* A tier's version (what a successful rollout records) wins. */
    ll_selector scope = {.kind = LL_SELECT_TIERS};
    assert_int_equal(ll_names_add(&scope.names, "basic"), 0);
    ll_rollout_spec spec = {.version = "0.1.0",
                            .on_failure = LL_ON_FAILURE_PAUSE,
                            .scope = &scope,
                            .wave_timeout = 60,
                            .author_name = "Ada",
                            .author_email = "a@example.com"};
    assert_int_equal(ll_registry_rollout_create(&id, r, &spec), 0);
    ll_rollout_step step = {.rollout = id, .tier_versions = &scope.names, .tier_version = "0.1.0"};
    assert_int_equal(ll_registry_rollout_step(r, &step), 0);
    ll_selector_clear(&scope);
    assert_int_equal(onboard(&op, &existing, r, "e", "basic", "0.0", "{}"), 0);
    assert_string_equal(chart_of(r, "e"), "0.1.0");
    assert_int_equal(onboard(&op, &existing, r, "f", "premium", "0.0", "{}"), 0);
    assert_string_equal(chart_of(r, "f"), "0.0.10");

    /* PATCH: values keep it; an exact release pins; a range unpins. */
    assert_int_equal(update(&op, r, "b", "basic", "0.0.x", "{\"v\":1}"), 0);
    assert_string_equal(chart_of(r, "b"), "0.0.10");
    assert_int_equal(update(&op, r, "b", "basic", "0.0.1", "{}"), 0);
    assert_string_equal(chart_of(r, "b"), "0.0.1");
    assert_int_equal(update(&op, r, "b", "basic", "0.0", "{}"), 0);
    assert_string_equal(chart_of(r, "b"), "0.1.0");
    /* A tier move keeps the version too. */
    assert_int_equal(update(&op, r, "b", "premium", "0.0", "{}"), 0);
    assert_string_equal(chart_of(r, "b"), "0.1.0");
    /* A failed update returns to what the file carried. */
    assert_int_equal(update(&op, r, "f", "premium", "0.0.1", "{}"), 0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_CONFLICT, "x"), 0);
    assert_string_equal(chart_of(r, "f"), "0.0.10");
    /* The catalogue's users are what files carry. */
    ll_release_use *users = NULL;
    size_t n = 0;
    long long on_10 = 0;
    assert_int_equal(ll_registry_release_users(&users, &n, r), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(users[i].release, "0.0.10") == 0)
            on_10 = users[i].count;
    assert_int_equal(on_10, 1); /* f; b moved to 0.1.0 */
    ll_registry_release_uses_free(users, n);
    ll_registry_close(r);
}

/* Makes r's database full: no page may be added to what it has (SQLite
 * answers SQLITE_FULL, as for a full disk), or lifts that again. */
static void set_full(ll_registry *r, int full)
{
    char sql[80];
    long long pages = 0;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(r->db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", full ? pages : 1000000LL);
    assert_int_equal(sqlite3_exec(r->db, sql, NULL, NULL, NULL), SQLITE_OK);
}

static void test_full_volume(void **state)
{
    ll_registry *r = NULL;
    json_t *existing = NULL, *t = NULL;
    ll_op_list ops = {NULL, 0};
    char id[32], values[4096 + 16];
    long long op = 0;
    int error = 0, n;

    assert_int_equal(ll_registry_open(&r, path), 0);
    set_full(r, 1);
    /* Values big enough that the tenants soon need a page the database
     * may not have. */
    snprintf(values, sizeof(values), "{\"pad\":\"%04000d\"}", 0);
    for (n = 0; n < 100; n++) {
        snprintf(id, sizeof(id), "t%d", n);
        if ((error = onboard(&op, &existing, r, id, "basic", "0.0", values)) < 0)
            break;
    }
    assert_int_equal(error, LL_ENOSPACE);
    assert_non_null(strstr(ll_error_last()->message, "the data volume is full"));
    assert_true(ll_error_last()->hint[0] != '\0');
    assert_true(ll_storage_is_full());
    /* Nothing of the refused write: no tenant, no operation without its
     * tenant, and no transaction left open on the connection. */
    assert_true(sqlite3_get_autocommit(r->db));
    assert_int_equal(tenant_get_json(&t, r, id, 0), LL_ENOTFOUND);
    assert_int_equal(ll_registry_ops_queued(&ops, r, 1000), 0);
    assert_int_equal(ops.n, n);
    ll_op_list_free(&ops);
    assert_int_equal(scalar_int("SELECT count(*) FROM tenants"), n);
    /* Reads go on. */
    assert_int_equal(ll_registry_ping(r), 0);

    /* Space again: the same connection takes the write, and the volume is
     * reported as taking writes. */
    set_full(r, 0);
    assert_int_equal(onboard(&op, &existing, r, id, "basic", "0.0", values), 0);
    assert_false(ll_storage_is_full());
    assert_int_equal(tenant_get_json(&t, r, id, 0), 0);
    json_decref(t);
    ll_registry_close(r);
}

static void test_idempotency_when_full(void **state)
{
    ll_registry *r = NULL;
    ll_idem_answer stored = {0};
    static char body[64 * 1024];
    const ll_idem_answer answer = {.status = 201,
                                   .content_type = "application/json",
                                   .location = "/x",
                                   .body = body,
                                   .len = sizeof(body) - 1};
    ll_idem_state idem = -1;

    memset(body, 'x', sizeof(body) - 1);
    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k2", "fp", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);

    /* The answer cannot be stored, nor the other key released. */
    set_full(r, 1);
    assert_int_equal(ll_registry_idem_finish(r, "sub", "k1", &answer), LL_ENOSPACE);
    /* A retry of the key while that is so: refused the same way, not 409. */
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 2000, 60000),
                     LL_ENOSPACE);

    /* Space again: the kept answer is stored first, then replayed. */
    set_full(r, 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 3000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_DONE);
    assert_int_equal(stored.status, 201);
    assert_int_equal(stored.len, strlen(body));
    assert_string_equal(stored.location, "/x");
    ll_idem_answer_clear(&stored);
    /* The other one was left alone: still in flight. */
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k2", "fp", 3000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_IN_FLIGHT);
    ll_registry_close(r);
}

/* --- the tenant record's conversions ----------------------------------------- */

/* Each enum's names as SQL rows and API bodies spell them, both ways. */
static void test_tenant_enum_names(void **state)
{
    static const struct {
        ll_tenant_lifecycle l;
        const char *name;
    } lifecycles[] = {{LL_TENANT_ACTIVE, "active"},
                      {LL_TENANT_OFFBOARDING, "offboarding"},
                      {LL_TENANT_OFFBOARDED, "offboarded"},
                      {LL_TENANT_DRIFTED, "drifted"}};
    static const struct {
        ll_tenant_sync s;
        const char *name;
    } syncs[] = {{LL_TENANT_PENDING, "pending"},
                 {LL_TENANT_COMMITTED, "committed"},
                 {LL_TENANT_SYNC_FAILED, "failed"}};
    static const struct {
        ll_tenant_origin o;
        const char *name;
    } origins[] = {{LL_TENANT_API, "api"}, {LL_TENANT_ADOPTED, "adopted"}};
    ll_tenant_lifecycle l;
    ll_tenant_sync sy;
    ll_tenant_origin o;

    for (size_t i = 0; i < sizeof(lifecycles) / sizeof(*lifecycles); i++) {
        assert_string_equal(ll_tenant_lifecycle_name(lifecycles[i].l), lifecycles[i].name);
        l = (ll_tenant_lifecycle)-1;
        assert_int_equal(ll_tenant_lifecycle_parse(&l, lifecycles[i].name), 0);
        assert_int_equal(l, lifecycles[i].l);
    }
    for (size_t i = 0; i < sizeof(syncs) / sizeof(*syncs); i++) {
        assert_string_equal(ll_tenant_sync_name(syncs[i].s), syncs[i].name);
        assert_int_equal(ll_tenant_sync_parse(&sy, syncs[i].name), 0);
        assert_int_equal(sy, syncs[i].s);
    }
    for (size_t i = 0; i < sizeof(origins) / sizeof(*origins); i++) {
        assert_string_equal(ll_tenant_origin_name(origins[i].o), origins[i].name);
        assert_int_equal(ll_tenant_origin_parse(&o, origins[i].name), 0);
        assert_int_equal(o, origins[i].o);
    }
    /* Names that are none of them are refused and leave *out alone;
     * matching is exact (case, prefixes). */
    static const char *const bad[] = {"", "Active", "activ", "active ", "ready", "unknown", NULL};
    for (int i = 0; i < 7; i++) {
        l = LL_TENANT_DRIFTED;
        sy = LL_TENANT_SYNC_FAILED;
        o = LL_TENANT_ADOPTED;
        assert_int_equal(ll_tenant_lifecycle_parse(&l, bad[i]), LL_EINVALID);
        assert_int_equal(ll_tenant_sync_parse(&sy, bad[i]), LL_EINVALID);
        assert_int_equal(ll_tenant_origin_parse(&o, bad[i]), LL_EINVALID);
        assert_int_equal(l, LL_TENANT_DRIFTED);
        assert_int_equal(sy, LL_TENANT_SYNC_FAILED);
        assert_int_equal(o, LL_TENANT_ADOPTED);
    }
    /* Out of range: a name that no row holds, never a crash. */
    assert_string_equal(ll_tenant_lifecycle_name((ll_tenant_lifecycle)99), "unknown");
    assert_string_equal(ll_tenant_sync_name((ll_tenant_sync)-1), "unknown");
    assert_string_equal(ll_tenant_origin_name((ll_tenant_origin)2), "unknown");
}

/* Runs sql on the database file behind the registry's back. */
static void exec_sql(const char *sql)
{
    ut_sql_exec(path, sql);
}

/* The tier reads become typed arrays: tenants counted per tier (not the
 * offboarded), the descriptions of tier_info, the versions of
 * tier_versions; empty tables give NULL and 0; the lookups find by name. */
static void test_tier_records(void **state)
{
    ll_registry *r = NULL;
    ll_tier_count *counts = (ll_tier_count *)1;
    ll_tier_note *notes = (ll_tier_note *)1;
    ll_tier_version *versions = (ll_tier_version *)1;
    size_t n_counts = 9, n_notes = 9, n_versions = 9;
    json_t *existing = NULL;
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_tenant_counts(&counts, &n_counts, r), 0);
    assert_int_equal(ll_registry_tier_info(&notes, &n_notes, r), 0);
    assert_int_equal(ll_registry_tier_versions(&versions, &n_versions, r), 0);
    assert_null(counts);
    assert_null(notes);
    assert_null(versions);
    assert_int_equal(n_counts + n_notes + n_versions, 0);
    assert_int_equal(ll_tier_count_of(counts, n_counts, "basic"), 0);

    assert_int_equal(onboard(&op, &existing, r, "acme", "premium", "0.0", "{}"), 0);
    assert_int_equal(onboard(&op, &existing, r, "beta", "premium", "0.0", "{}"), 0);
    assert_int_equal(onboard(&op, &existing, r, "gone", "basic", "0.0", "{}"), 0);
    assert_int_equal(onboard(&op, &existing, r, "kept", "basic", "0.0", "{}"), 0);
    exec_sql("UPDATE tenants SET lifecycle = 'offboarded' WHERE id = 'gone';"
             "INSERT INTO tier_info (name, description, updated_at) VALUES "
             "('gold', 'For the big ones', 't'), ('basic', '', 't');"
             "INSERT INTO tier_versions (tier, version, updated_at) VALUES "
             "('basic', '1.2.0', 't');");
    assert_int_equal(ll_registry_tenant_counts(&counts, &n_counts, r), 0);
    assert_int_equal(n_counts, 2);
    assert_int_equal(ll_tier_count_of(counts, n_counts, "premium"), 2);
    assert_int_equal(ll_tier_count_of(counts, n_counts, "basic"), 1);
    assert_int_equal(ll_tier_count_of(counts, n_counts, "gold"), 0);
    assert_int_equal(ll_tier_count_of(counts, n_counts, NULL), 0);

    assert_int_equal(ll_registry_tier_info(&notes, &n_notes, r), 0);
    assert_int_equal(n_notes, 2);
    assert_string_equal(ll_tier_note_of(notes, n_notes, "gold"), "For the big ones");
    assert_string_equal(ll_tier_note_of(notes, n_notes, "basic"), "");
    assert_null(ll_tier_note_of(notes, n_notes, "premium"));

    assert_int_equal(ll_registry_tier_versions(&versions, &n_versions, r), 0);
    assert_int_equal(n_versions, 1);
    assert_string_equal(versions[0].tier, "basic");
    assert_string_equal(versions[0].version, "1.2.0");
    assert_string_equal(ll_tier_version_of(versions, n_versions, "basic"), "1.2.0");
    assert_null(ll_tier_version_of(versions, n_versions, "premium"));

    ll_registry_tier_counts_free(counts, n_counts);
    ll_registry_tier_notes_free(notes, n_notes);
    ll_registry_tier_versions_free(versions, n_versions);
    ll_registry_tier_counts_free(NULL, 0);
    ll_registry_tier_notes_free(NULL, 0);
    ll_registry_tier_versions_free(NULL, 0);
    ll_registry_close(r);
}

/* A tenants row becomes a record field by field: strings or NULL, enums,
 * the operation id, values parsed, the etag over the desired state's
 * columns, commits only when asked for. */
static void test_tenant_record_from_row(void **state)
{
    ll_registry *r = NULL;
    ll_tenant_record t, existing;
    json_t *values = json_pack("{s:i, s:i}", "b", 2, "a", 1);
    ll_tenant_desired d = {.id = "acme", .tier = "basic", .release = "0.0", .values = values};
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_onboard(&op, &existing, r, &d, &author), 0);
    assert_null(existing.id); /* zeroed when not in the way */
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 0), 0);
    assert_string_equal(t.id, "acme");
    assert_string_equal(t.tier, "basic");
    assert_string_equal(t.release, "0.0");
    assert_true(json_equal(t.values, values));
    assert_int_equal(t.lifecycle, LL_TENANT_ACTIVE);
    assert_int_equal(t.sync, LL_TENANT_PENDING);
    assert_int_equal(t.origin, LL_TENANT_API);
    assert_null(t.commit);
    assert_int_equal(t.operation, op);
    assert_non_null(t.created_at);
    assert_string_equal(t.created_at, t.updated_at);
    assert_null(t.offboarded_at);
    assert_null(t.path);
    assert_null(t.observed_state);
    assert_null(t.observed_since);
    assert_string_equal(t.chart_version, "0.0.x");
    assert_int_equal(t.has_commits, 0);
    assert_null(t.commits);
    {
        /* The etag: tier, release, values as stored (keys sorted),
         * lifecycle, operation, path. */
        char etag[LL_ETAG_MAX], opid[32];
        snprintf(opid, sizeof(opid), "%lld", op);
        const char *parts[] = {"basic", "0.0", "{\"a\":1,\"b\":2}", "active", opid, NULL};
        ll_etag_of(etag, parts, 6);
        assert_string_equal(t.etag, etag);
    }
    ll_tenant_record_clear(&t);
    assert_null(t.id);
    assert_null(t.values);
    ll_tenant_record_clear(&t); /* twice is fine, and NULL */
    ll_tenant_record_clear(NULL);

    /* Every other value of the columns, set behind the store's back. */
    exec_sql("UPDATE tenants SET lifecycle = 'drifted', sync = 'committed', origin = 'adopted', "
             "commit_sha = 'c0ffee', path = 'tenants/x/acme.yaml', observed_state = 'ready', "
             "observed_since = '2026-01-01T00:00:00Z', offboarded_at = '2026-01-02T00:00:00Z', "
             "values_json = 'not json', operation_id = NULL");
    exec_sql("UPDATE operations SET state = 'pushed', commit_sha = 'c0ffee'");
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 1), 0);
    assert_int_equal(t.lifecycle, LL_TENANT_DRIFTED);
    assert_int_equal(t.sync, LL_TENANT_COMMITTED);
    assert_int_equal(t.origin, LL_TENANT_ADOPTED);
    assert_string_equal(t.commit, "c0ffee");
    assert_int_equal(t.operation, 0);
    assert_string_equal(t.path, "tenants/x/acme.yaml");
    assert_string_equal(t.observed_state, "ready");
    assert_string_equal(t.observed_since, "2026-01-01T00:00:00Z");
    assert_string_equal(t.offboarded_at, "2026-01-02T00:00:00Z");
    /* Values that do not parse read as an empty object. */
    assert_true(json_is_object(t.values));
    assert_int_equal(json_object_size(t.values), 0);
    assert_int_equal(t.has_commits, 1);
    assert_int_equal(t.n_commits, 1);
    assert_string_equal(t.commits[0].sha, "c0ffee");
    assert_string_equal(t.commits[0].operation, "onboard");
    assert_non_null(t.commits[0].at);
    ll_tenant_record_clear(&t);

    /* Not found: LL_ENOTFOUND and a zeroed record. */
    memset(&t, 0xff, sizeof(t));
    assert_int_equal(ll_registry_tenant_get(&t, r, "nobody", 1), LL_ENOTFOUND);
    assert_null(t.id);
    assert_null(t.values);
    ll_tenant_record_clear(&t);
    json_decref(values);
    ll_registry_close(r);
}

/* A record becomes the JSON the follower and the API's views start from:
 * every key, in the order answers have always shown them, nulls where the
 * record has none, commits only when the record was read with them. */
static void test_tenant_record_json(void **state)
{
    static const char *const keys[] = {
        "id",     "tier",           "release",        "values",     "lifecycle",     "sync",
        "commit", "operation",      "created_at",     "updated_at", "offboarded_at", "origin",
        "path",   "observed_state", "observed_since", "etag",       "chart_version", "commits",
        NULL};
    ll_tenant_commit commits[] = {{"aaa", "onboard", "2026-01-01T00:00:00Z"},
                                  {NULL, "rollout", NULL}};
    ll_tenant_record t = {
        .id = "acme",
        .tier = "basic",
        .release = "1.2",
        .values = json_pack("{s:s}", "k", "v"),
        .lifecycle = LL_TENANT_OFFBOARDING,
        .sync = LL_TENANT_SYNC_FAILED,
        .origin = LL_TENANT_ADOPTED,
        .operation = 42,
        .created_at = "2026-01-01T00:00:00Z",
        .updated_at = "2026-01-03T00:00:00Z",
        .chart_version = "1.2.3",
        .etag = "\"0123\"",
        .has_commits = 1,
        .commits = commits,
        .n_commits = 2,
    };
    json_t *j = ll_tenant_record_json(&t);
    const char *key;
    json_t *v;
    int i = 0;

    json_object_foreach(j, key, v)
    {
        assert_non_null(keys[i]);
        assert_string_equal(key, keys[i]);
        i++;
    }
    assert_null(keys[i]);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "acme");
    assert_string_equal(json_string_value(json_object_get(j, "release")), "1.2");
    assert_string_equal(json_string_value(json_object_get(j, "lifecycle")), "offboarding");
    assert_string_equal(json_string_value(json_object_get(j, "sync")), "failed");
    assert_string_equal(json_string_value(json_object_get(j, "origin")), "adopted");
    assert_int_equal(json_integer_value(json_object_get(j, "operation")), 42);
    assert_string_equal(json_string_value(json_object_get(j, "etag")), "\"0123\"");
    assert_string_equal(json_string_value(json_object_get(j, "chart_version")), "1.2.3");
    assert_true(json_is_null(json_object_get(j, "commit")));
    assert_true(json_is_null(json_object_get(j, "offboarded_at")));
    assert_true(json_is_null(json_object_get(j, "path")));
    assert_true(json_is_null(json_object_get(j, "observed_state")));
    assert_true(json_is_null(json_object_get(j, "observed_since")));
    /* values: the record's value itself (a reference of the JSON's own). */
    assert_ptr_equal(json_object_get(j, "values"), t.values);
    assert_int_equal(t.values->refcount, 2);
    json_t *c = json_object_get(j, "commits");
    assert_int_equal(json_array_size(c), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "sha")), "aaa");
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "operation")),
                        "onboard");
    assert_true(json_is_null(json_object_get(json_array_get(c, 1), "sha")));
    assert_true(json_is_null(json_object_get(json_array_get(c, 1), "at")));
    json_decref(j);
    assert_int_equal(t.values->refcount, 1);

    /* No operation is null; without commits read, no "commits" key. */
    t.operation = 0;
    t.has_commits = 0;
    j = ll_tenant_record_json(&t);
    assert_true(json_is_null(json_object_get(j, "operation")));
    assert_null(json_object_get(j, "commits"));
    assert_int_equal(json_object_size(j), 17);
    json_decref(j);
    json_decref(t.values);
}

/* The desired state as the store keeps it: values stored compact with
 * keys sorted, no values as {}, If-Match checked against the record's
 * etag; lists filter by the lifecycle enum. */
static void test_tenant_desired(void **state)
{
    ll_registry *r = NULL;
    ll_tenant_record t, existing, *items = NULL;
    json_t *values = json_pack("{s:i, s:{s:b}}", "z", 1, "a", "x", 1);
    ll_tenant_desired d = {.id = "one", .tier = "basic", .release = "0.0"};
    char *next = NULL;
    size_t n = 0;
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_onboard(&op, &existing, r, &d, &author), 0);
    assert_int_equal(ll_registry_tenant_get(&t, r, "one", 0), 0);
    assert_true(json_is_object(t.values));
    assert_int_equal(json_object_size(t.values), 0);
    char etag[LL_ETAG_MAX];
    snprintf(etag, sizeof(etag), "%s", t.etag);
    ll_tenant_record_clear(&t);
    assert_int_equal(scalar_int("SELECT values_json = '{}' FROM tenants WHERE id = 'one'"), 1);

    /* An update: values kept as given, keys sorted in the row. */
    d.values = values;
    d.if_match = "\"stale\"";
    assert_int_equal(ll_registry_update(&op, r, &d, &author), LL_EPRECONDITION);
    d.if_match = etag;
    assert_int_equal(ll_registry_update(&op, r, &d, &author), 0);
    assert_true(op > 0);
    assert_int_equal(scalar_int("SELECT values_json = '{\"a\":{\"x\":true},\"z\":1}' FROM "
                                "tenants WHERE id = 'one'"),
                     1);
    assert_int_equal(ll_registry_tenant_get(&t, r, "one", 0), 0);
    assert_true(json_equal(t.values, values));
    assert_string_not_equal(t.etag, etag);
    assert_int_equal(t.operation, op);
    ll_tenant_record_clear(&t);
    /* An update without values is refused before anything is stored. */
    d.values = NULL;
    d.if_match = NULL;
    assert_int_equal(ll_registry_update(&op, r, &d, &author), LL_EINVALID);

    /* Onboarding over it: refused with the tenant in the way. */
    d.values = values;
    assert_int_equal(ll_registry_onboard(&op, &existing, r, &d, &author), LL_EEXISTS);
    assert_string_equal(existing.id, "one");
    assert_int_equal(existing.has_commits, 1);
    ll_tenant_record_clear(&existing);

    /* Offboarding checks If-Match too, then lists see it by lifecycle. */
    ll_tenant_desired gone = {.id = "one", .if_match = "\"stale\""};
    assert_int_equal(ll_registry_offboard(&op, r, &gone, &author), LL_EPRECONDITION);
    gone.if_match = NULL;
    assert_int_equal(ll_registry_offboard(&op, r, &gone, &author), 0);
    assert_true(op > 0);
    assert_int_equal(
        ll_registry_tenant_list(&items, &n, &next, r, NULL, LL_TENANT_ACTIVE, NULL, 10), 0);
    assert_int_equal(n, 0);
    ll_tenant_records_free(items, n);
    assert_int_equal(
        ll_registry_tenant_list(&items, &n, &next, r, "basic", LL_TENANT_OFFBOARDING, NULL, 10), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].id, "one");
    assert_int_equal(items[0].lifecycle, LL_TENANT_OFFBOARDING);
    assert_int_equal(items[0].sync, LL_TENANT_PENDING);
    assert_null(next);
    ll_tenant_records_free(items, n);
    ll_tenant_records_free(NULL, 0);
    json_decref(values);
    ll_registry_close(r);
}

/* --- db.c ---------------------------------------------------------------------- */

static int sum_row(sqlite3_stmt *st, void *payload)
{
    *(long long *)payload += sqlite3_column_int64(st, 0);
    return 0;
}

static int stop_at_two(sqlite3_stmt *st, void *payload)
{
    (void)payload;
    return sqlite3_column_int(st, 0) == 2 ? LL_ECONFLICT : 0;
}

/* The follower's poll: every tenant at first (seq -1), then only those
 * whose desired state changed after the change number it was given, as
 * records with their lifecycle and sync. */
static void test_tenants_changed(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_tenant_record *rows = NULL;
    json_t *existing = NULL;
    long long op = 0, seq = -1, first;
    size_t n = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&op, &existing, r, "acme", "basic", "0.0", "{}"), 0);
    assert_int_equal(onboard(&op, &existing, r, "beta", "premium", "0.0", "{\"a\": 1}"), 0);
    assert_int_equal(ll_registry_tenants_changed(&rows, &n, &seq, r), 0);
    assert_int_equal(n, 2);
    assert_true(seq > 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(rows[i].id, "acme") == 0 || strcmp(rows[i].id, "beta") == 0);
        assert_int_equal(rows[i].lifecycle, LL_TENANT_ACTIVE);
        assert_int_equal(rows[i].sync, LL_TENANT_PENDING);
    }
    ll_tenant_records_free(rows, n);
    first = seq;
    /* Nothing changed since: no rows, seq stays. */
    assert_int_equal(ll_registry_tenants_changed(&rows, &n, &seq, r), 0);
    assert_int_equal(n, 0);
    assert_null(rows);
    assert_int_equal(seq, first);
    /* One changes: only it. */
    assert_int_equal(update(&op, r, "beta", "basic", "0.0", "{}"), 0);
    assert_int_equal(ll_registry_tenants_changed(&rows, &n, &seq, r), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].id, "beta");
    assert_string_equal(rows[0].tier, "basic");
    assert_true(seq > first);
    ll_tenant_records_free(rows, n);
    ll_registry_close(r);
}

/* The row loop binds, maps each row, counts them and gives the statement
 * back whatever happens; more statements out at once than the cache keeps
 * are finalized when given back. */
static void test_row_loop(void **state)
{
    ll_registry *r = NULL;
    long long sum = 0;
    static const char *const rows =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "SELECT i FROM n WHERE ?2 IS NULL OR i > ?3";

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(reg_rows(r, "sum", sum_row, &sum, rows, "isI", 4, NULL, 0LL), 4);
    assert_int_equal(sum, 10);
    sum = 0;
    assert_int_equal(reg_rows(r, "sum", sum_row, &sum, rows, "isI", 4, "x", 2LL), 2);
    assert_int_equal(sum, 7);
    assert_int_equal(reg_rows(r, "count", NULL, NULL, rows, "isI", 3, NULL, 0LL), 3);
    /* A row function's error stops the loop and comes back. */
    assert_int_equal(reg_rows(r, "stop", stop_at_two, NULL, rows, "isI", 5, NULL, 0LL),
                     LL_ECONFLICT);
    /* SQLite's error names what failed. */
    assert_true(reg_rows(r, "bad query", NULL, NULL, "SELECT nothing FROM nowhere", NULL) < 0);
    /* Every statement went back: the cache still serves. */
    for (int i = 0; i < REG_CACHED_MAX; i++)
        assert_false(r->cached[i].busy);

    /* More out at once than the cache holds: the extra one is finalized. */
    sqlite3_stmt *st[REG_CACHED_MAX + 1];
    for (int i = 0; i <= REG_CACHED_MAX; i++) {
        char sql[32];
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        assert_int_equal(reg_prepare(&st[i], r, sql), 0);
    }
    for (int i = 0; i <= REG_CACHED_MAX; i++)
        reg_finalize(r, st[i]);
    assert_int_equal(reg_rows(r, "count", NULL, NULL, "SELECT 1", NULL), 1);
    ll_registry_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_foreign_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_and_reconcile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chart_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_volume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_when_full, setup, teardown),
        cmocka_unit_test(test_tenant_enum_names),
        cmocka_unit_test_setup_teardown(test_tier_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_record_from_row, setup, teardown),
        cmocka_unit_test(test_tenant_record_json),
        cmocka_unit_test_setup_teardown(test_tenant_desired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants_changed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

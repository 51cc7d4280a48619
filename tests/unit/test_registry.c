/* Unit tests of lib/registry/registry.c: migrations, tenants, the outbox, a full
 * volume (SQLite's max_page_count makes the database "full" on demand). */
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
#include "registry/registry_int.h"

static char dir[64], path[128];
static const ll_registry_author author = {"Ada", "ada@example.com"};

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/ll-registry-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/landlord.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int scalar_int(const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
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
    assert_int_equal(ll_registry_schema_version(r, &applied, &known), 0);
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
    assert_int_equal(
        ll_registry_onboard(&op, &existing, r, "acme", "premium", "0.0", "{}", &author), 0);
    unsigned long long g1 = ll_registry_generation();
    assert_true(g1 > g0);
    /* Reads (through the cached statements, twice) move nothing. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 1), 0);
        json_decref(t);
    }
    assert_int_equal(ll_registry_tenant_get(&t, r, "nobody", 1), LL_ENOTFOUND);
    assert_true(ll_registry_generation() == g1);
    assert_int_equal(
        ll_registry_onboard(&op, &existing, quiet, "quiet1", "basic", "0.0", "{}", &author), 0);
    assert_true(ll_registry_generation() == g1);
    /* The quiet connection's write is there for the others. */
    assert_int_equal(ll_registry_tenant_get(&t, r, "quiet1", 1), 0);
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
    assert_int_equal(
        ll_registry_onboard(&op, &existing, r, "acme", "premium", "0.0", "{\"a\":1}", &author), 0);
    assert_true(op > 0);
    assert_null(existing);
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "pending");
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "active");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "values"), "a")), 1);
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 0);
    json_decref(t);

    /* Exists: refused with the existing tenant. */
    assert_int_equal(ll_registry_onboard(&op2, &existing, r, "acme", "basic", "0.0", "{}", &author),
                     LL_EEXISTS);
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
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "committed");
    assert_string_equal(json_string_value(json_object_get(t, "commit")),
                        "0123456789012345678901234567890123456789");
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 1);
    json_decref(t);

    /* Offboard, then a failed re-onboard returns the tenant to offboarded. */
    assert_int_equal(ll_registry_offboard(&op, r, "acme", &author, NULL), 0);
    assert_true(op > 0);
    assert_int_equal(finish_ok(r, op, "1111111111111111111111111111111111111111"), 0);
    assert_int_equal(ll_registry_offboard(&op2, r, "acme", &author, NULL), 0);
    assert_int_equal(op2, 0); /* offboarded already */
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "acme", "basic", "0.0", "{}", &author),
                     0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_NONE, "boom"), 0);
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 1), 0);
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "offboarded");
    assert_string_equal(json_string_value(json_object_get(t, "tier")), "premium");
    assert_int_equal(json_array_size(json_object_get(t, "commits")), 2);
    json_decref(t);

    /* A failed first onboarding leaves no tenant behind. */
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "beta", "basic", "0.0", "{}", &author),
                     0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_RENDER, "boom"), 0);
    assert_int_equal(ll_registry_tenant_get(&t, r, "beta", 0), LL_ENOTFOUND);

    /* Lists page by id. */
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "gamma", "basic", "0.0", "{}", &author),
                     0);
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "delta", "basic", "0.0", "{}", &author),
                     0);
    assert_int_equal(ll_registry_tenant_list(&list, &next, r, "basic", NULL, NULL, 1), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "delta");
    assert_string_equal(next, "delta");
    free(next);
    next = NULL;
    json_decref(list);
    assert_int_equal(ll_registry_tenant_list(&list, &next, r, "basic", NULL, "delta", 1), 0);
    free(next);
    next = NULL;
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "gamma");
    json_decref(list);
    assert_int_equal(ll_registry_tenant_list(&list, &next, r, "basic", NULL, "gamma", 1), 0);
    assert_int_equal(json_array_size(list), 0);
    assert_null(next);
    json_decref(list);
    ll_registry_close(r);
}

static void test_update_and_reconcile(void **state)
{
    ll_registry *r = NULL;
    json_t *t = NULL, *existing = NULL, *index = NULL;
    ll_op_list ops = {NULL, 0};
    ll_operation got;
    long long op = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(
        ll_registry_onboard(&op, &existing, r, "acme", "basic", "0.0", "{\"a\":1}", &author), 0);
    assert_int_equal(finish_ok(r, op, "c1"), 0);

    /* An update carries where the tenant comes from and what to return to. */
    assert_int_equal(
        ll_registry_update(&op, r, "acme", "premium", "1.2", "{\"b\":2}", &author, NULL), 0);
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
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "tier")), "basic");
    assert_string_equal(json_string_value(json_object_get(t, "release")), "0.0");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "values"), "a")), 1);
    assert_string_equal(json_string_value(json_object_get(t, "sync")), "committed");
    json_decref(t);

    /* Scans: adopt a new tenant, mark one drifted, bring it back. */
    json_t *adopt = json_pack("[{s:s, s:s, s:s, s:{}}]", "id", "found", "tier", "basic", "release",
                              "0.0", "values");
    json_t *drift = json_pack("[s]", "acme"), *none = json_array();
    assert_int_equal(ll_registry_reconcile(r, adopt, drift, none, "c2"), 0);
    assert_int_equal(ll_registry_tenant_get(&t, r, "found", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "origin")), "adopted");
    assert_string_equal(json_string_value(json_object_get(t, "commit")), "c2");
    json_decref(t);
    assert_int_equal(ll_registry_tenant_index(&index, r), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(index, "acme"), "lifecycle")), "drifted");
    json_decref(index);
    /* Updating an existing tenant through a scan is refused: only new ones. */
    assert_int_equal(ll_registry_reconcile(r, adopt, none, drift, "c3"), 0);
    assert_int_equal(ll_registry_tenant_get(&t, r, "found", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "commit")), "c2");
    json_decref(t);
    assert_int_equal(ll_registry_tenant_get(&t, r, "acme", 0), 0);
    assert_string_equal(json_string_value(json_object_get(t, "lifecycle")), "active");
    json_decref(t);
    json_decref(adopt);
    json_decref(drift);
    json_decref(none);

    /* Offboarded tenants cannot be changed. */
    assert_int_equal(ll_registry_offboard(&op, r, "found", &author, NULL), 0);
    assert_int_equal(ll_registry_update(&op, r, "found", "basic", "0.0", "{}", &author, NULL),
                     LL_ECONFLICT);
    assert_int_equal(ll_registry_update(&op, r, "nobody", "basic", "0.0", "{}", &author, NULL),
                     LL_ENOTFOUND);
    ll_registry_close(r);
}

static const char *chart_of(ll_registry *r, const char *id)
{
    static char out[64];
    json_t *t = NULL;
    assert_int_equal(ll_registry_tenant_get(&t, r, id, 0), 0);
    snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(t, "chart_version")));
    json_decref(t);
    return out;
}

static void put_release(ll_registry *r, const char *version)
{
    json_t *rel =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "version", version, "tag", version,
                  "digest", "sha256:m", "chart_digest", "sha256:c", "config_digest", "sha256:f",
                  "size", 1, "location", "local", "pushed_at", "2026-01-01T00:00:00.000Z");
    assert_int_equal(ll_registry_release_put(r, rel), 0);
    json_decref(rel);
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
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "a", "basic", "0.0", "{}", &author), 0);
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
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "b", "basic", "0.0.x", "{}", &author),
                     0);
    assert_string_equal(chart_of(r, "b"), "0.0.10");
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "c", "basic", "0.0.2", "{}", &author),
                     0);
    assert_string_equal(chart_of(r, "c"), "0.0.2");
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "d", "basic", "2.0", "{}", &author), 0);
    assert_string_equal(chart_of(r, "d"), "2.0.x"); /* nothing on its line */

    /* A tier's version (what a successful rollout records) wins. */
    json_t *spec =
        json_pack("{s:s, s:s, s:{s:[s]}, s:i, s:{s:s, s:s}, s:[], s:[], s:[]}", "version", "0.1.0",
                  "on_failure", "pause", "scope", "tiers", "basic", "wave_timeout", 60, "author",
                  "name", "Ada", "email", "a@example.com", "waves", "tenants", "pools");
    assert_int_equal(ll_registry_rollout_create(&id, r, spec), 0);
    json_decref(spec);
    json_t *step =
        json_pack("{s:I, s:{s:s}}", "rollout", (json_int_t)id, "tier_versions", "basic", "0.1.0");
    assert_int_equal(ll_registry_rollout_step(r, step), 0);
    json_decref(step);
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "e", "basic", "0.0", "{}", &author), 0);
    assert_string_equal(chart_of(r, "e"), "0.1.0");
    assert_int_equal(ll_registry_onboard(&op, &existing, r, "f", "premium", "0.0", "{}", &author),
                     0);
    assert_string_equal(chart_of(r, "f"), "0.0.10");

    /* PATCH: values keep it; an exact release pins; a range unpins. */
    assert_int_equal(ll_registry_update(&op, r, "b", "basic", "0.0.x", "{\"v\":1}", &author, NULL),
                     0);
    assert_string_equal(chart_of(r, "b"), "0.0.10");
    assert_int_equal(ll_registry_update(&op, r, "b", "basic", "0.0.1", "{}", &author, NULL), 0);
    assert_string_equal(chart_of(r, "b"), "0.0.1");
    assert_int_equal(ll_registry_update(&op, r, "b", "basic", "0.0", "{}", &author, NULL), 0);
    assert_string_equal(chart_of(r, "b"), "0.1.0");
    /* A tier move keeps the version too. */
    assert_int_equal(ll_registry_update(&op, r, "b", "premium", "0.0", "{}", &author, NULL), 0);
    assert_string_equal(chart_of(r, "b"), "0.1.0");
    /* A failed update returns to what the file carried. */
    assert_int_equal(ll_registry_update(&op, r, "f", "premium", "0.0.1", "{}", &author, NULL), 0);
    assert_int_equal(finish_failed(r, op, LL_OP_FAILURE_CONFLICT, "x"), 0);
    assert_string_equal(chart_of(r, "f"), "0.0.10");
    /* The catalogue's users are what files carry. */
    json_t *users = NULL, *u;
    size_t i;
    long long on_10 = 0;
    assert_int_equal(ll_registry_release_users(&users, r), 0);
    json_array_foreach(
        users, i, u) if (strcmp(json_string_value(json_object_get(u, "release")), "0.0.10") == 0)
        on_10 = json_integer_value(json_object_get(u, "count"));
    assert_int_equal(on_10, 1); /* f; b moved to 0.1.0 */
    json_decref(users);
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
        if ((error = ll_registry_onboard(&op, &existing, r, id, "basic", "0.0", values, &author)) <
            0)
            break;
    }
    assert_int_equal(error, LL_ENOSPACE);
    assert_non_null(strstr(ll_error_last()->message, "the data volume is full"));
    assert_true(ll_error_last()->hint[0] != '\0');
    assert_true(ll_storage_is_full());
    /* Nothing of the refused write: no tenant, no operation without its
     * tenant, and no transaction left open on the connection. */
    assert_true(sqlite3_get_autocommit(r->db));
    assert_int_equal(ll_registry_tenant_get(&t, r, id, 0), LL_ENOTFOUND);
    assert_int_equal(ll_registry_ops_queued(&ops, r, 1000), 0);
    assert_int_equal(ops.n, n);
    ll_op_list_free(&ops);
    assert_int_equal(scalar_int("SELECT count(*) FROM tenants"), n);
    /* Reads go on. */
    assert_int_equal(ll_registry_ping(r), 0);

    /* Space again: the same connection takes the write, and the volume is
     * reported as taking writes. */
    set_full(r, 0);
    assert_int_equal(ll_registry_onboard(&op, &existing, r, id, "basic", "0.0", values, &author),
                     0);
    assert_false(ll_storage_is_full());
    assert_int_equal(ll_registry_tenant_get(&t, r, id, 0), 0);
    json_decref(t);
    ll_registry_close(r);
}

static void test_idempotency_when_full(void **state)
{
    ll_registry *r = NULL;
    json_t *stored = NULL;
    static char body[64 * 1024];
    int idem = -1;

    memset(body, 'x', sizeof(body) - 1);
    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k2", "fp", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);

    /* The answer cannot be stored, nor the other key released. */
    set_full(r, 1);
    assert_int_equal(ll_registry_idem_finish(r, "sub", "k1", 201, "application/json", "/x", NULL,
                                             body, strlen(body)),
                     LL_ENOSPACE);
    /* A retry of the key while that is so: refused the same way, not 409. */
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 2000, 60000),
                     LL_ENOSPACE);

    /* Space again: the kept answer is stored first, then replayed. */
    set_full(r, 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k1", "fp", 3000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_DONE);
    assert_int_equal(json_integer_value(json_object_get(stored, "status")), 201);
    assert_int_equal(json_string_length(json_object_get(stored, "body")), strlen(body));
    assert_string_equal(json_string_value(json_object_get(stored, "location")), "/x");
    json_decref(stored);
    stored = NULL;
    /* The other one was left alone: still in flight. */
    assert_int_equal(ll_registry_idem_begin(&idem, &stored, r, "sub", "k2", "fp", 3000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_IN_FLIGHT);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

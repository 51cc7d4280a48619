/* Unit tests of lib/registry/outbox.c: the conversion between an outbox row
 * (and its payload JSON, as each producer writes it) and ll_operation, and
 * back; the queue read as records; outcomes recorded from typed results
 * moving the tenant, tier and rollout stores. */
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
#include "landlord/operation.h"
#include "landlord/registry.h"
#include "support.h"
#include "registry/registry_int.h"

static char dir[64], path[128];
static const ll_registry_author author = {"Ada", "ada@example.com"};

/* The tenant writes the outbox's rows come from, with values as JSON text. */
static int onboard(long long *op, ll_registry *r, const char *id, const char *values)
{
    json_t *v = json_loads(values, 0, NULL);
    ll_tenant_record in_the_way;
    ll_tenant_desired d = {.id = id, .tier = "basic", .release = "0.0", .values = v};
    int error = ll_registry_onboard(op, &in_the_way, r, &d, &author);
    ll_tenant_record_clear(&in_the_way);
    json_decref(v);
    return error;
}

static int update(long long *op, ll_registry *r, const char *id, const char *tier,
                  const char *values)
{
    json_t *v = json_loads(values, 0, NULL);
    ll_tenant_desired d = {.id = id, .tier = tier, .release = "0.0", .values = v};
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
    return ut_temp_db(dir, sizeof(dir), path, sizeof(path), "outbox");
}

static int teardown(void **state)
{
    (void)state;
    return ut_remove_tree(dir);
}

/* Runs sql on its own connection; the first column of the first row as
 * text (caller frees), or NULL. */
static char *sql_text(const char *sql)
{
    return ut_sql_text(path, sql);
}

static void sql_exec(const char *sql)
{
    ut_sql_exec(path, sql);
}

/* payload (as the producers write it) -> record -> payload: the same JSON. */
static ll_operation round_trip(ll_op_kind kind, const char *payload_text)
{
    ll_operation op;
    json_error_t err;
    json_t *payload = json_loads(payload_text, 0, &err), *back;

    assert_non_null(payload);
    memset(&op, 0, sizeof(op));
    op.kind = kind;
    assert_int_equal(reg_op_from_payload(&op, payload), 0);
    back = reg_op_payload_json(&op);
    assert_non_null(back);
    if (!json_equal(back, payload)) {
        char *a = json_dumps(payload, JSON_SORT_KEYS), *b = json_dumps(back, JSON_SORT_KEYS);
        fprintf(stderr, "payload %s\ncame back as %s\n", a, b);
        free(a);
        free(b);
        fail();
    }
    json_decref(back);
    json_decref(payload);
    return op;
}

static void test_payload_conversion(void **state)
{
    (void)state;
    ll_operation op;

    /* onboard (ll_registry_onboard): the desired state. */
    op =
        round_trip(LL_OP_ONBOARD, "{\"release\": \"0.0\", \"values\": {\"a\": [1, {\"b\": null}]}, "
                                  "\"chart_version\": \"0.0.3\"}");
    assert_string_equal(op.t.release, "0.0");
    assert_string_equal(op.t.chart_version, "0.0.3");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(op.t.values, "a"), 0)), 1);
    assert_null(op.t.from_tier);
    assert_false(op.t.has_previous);
    ll_operation_clear(&op);

    /* onboard again, and update: where it leaves and what to return to. */
    op = round_trip(LL_OP_UPDATE,
                    "{\"release\": \"1.2\", \"values\": {}, \"chart_version\": \"1.2.x\", "
                    "\"from_tier\": \"basic\", \"previous\": {\"tier\": \"basic\", \"release\": "
                    "\"0.0\", \"values\": {\"a\": 1}, \"chart_version\": null}}");
    assert_string_equal(op.t.from_tier, "basic");
    assert_true(op.t.has_previous);
    assert_string_equal(op.t.previous.tier, "basic");
    assert_string_equal(op.t.previous.release, "0.0");
    assert_null(op.t.previous.chart_version);
    assert_int_equal(json_integer_value(json_object_get(op.t.previous.values, "a")), 1);
    ll_operation_clear(&op);

    /* offboard and tier_delete carry nothing. */
    op = round_trip(LL_OP_OFFBOARD, "{}");
    assert_null(op.t.release);
    assert_null(op.t.values);
    ll_operation_clear(&op);
    op = round_trip(LL_OP_TIER_DELETE, "{}");
    ll_operation_clear(&op);

    /* tier_put (ll_tier_put): the template and its description. */
    op = round_trip(LL_OP_TIER_PUT, "{\"template\": \"kind: HelmRelease\\n\", \"description\": "
                                    "\"gold\", \"replace\": true, \"deployment_model\": "
                                    "\"silo\"}");
    assert_string_equal(op.tier_op.template_text, "kind: HelmRelease\n");
    assert_string_equal(op.tier_op.description, "gold");
    assert_string_equal(op.tier_op.deployment_model, "silo");
    assert_true(op.tier_op.replace);
    ll_operation_clear(&op);

    /* rollout (ll_registry_rollout_wave_start): a wave, then a rollback. */
    op = round_trip(LL_OP_ROLLOUT,
                    "{\"rollout\": 4, \"action\": \"wave\", \"wave\": 2, \"version\": \"0.0.2\", "
                    "\"tenants\": [{\"id\": \"acme\", \"tier\": \"basic\", \"path\": null, "
                    "\"to\": \"0.0.2\", \"from\": \"0.0.1\", \"prev_op\": 17}, {\"id\": "
                    "\"beta\", \"tier\": \"premium\", \"path\": \"r/tenants/premium/beta.yaml\", "
                    "\"to\": \"0.0.2\", \"from\": null, \"prev_op\": null}], \"pools\": "
                    "[{\"name\": \"pool-1\", \"to\": \"0.0.2\", \"from\": null}]}");
    assert_int_equal(op.rollout.rollout, 4);
    assert_int_equal(op.rollout.action, LL_OP_ROLLOUT_WAVE);
    assert_int_equal(op.rollout.wave, 2);
    assert_int_equal(op.rollout.n_tenants, 2);
    assert_string_equal(op.rollout.tenants[0].id, "acme");
    assert_null(op.rollout.tenants[0].path);
    assert_int_equal(op.rollout.tenants[0].prev_op, 17);
    assert_string_equal(op.rollout.tenants[1].path, "r/tenants/premium/beta.yaml");
    assert_null(op.rollout.tenants[1].from);
    assert_int_equal(op.rollout.n_pools, 1);
    assert_string_equal(op.rollout.pools[0].name, "pool-1");
    ll_operation_clear(&op);
    op = round_trip(LL_OP_ROLLOUT, "{\"rollout\": 4, \"action\": \"rollback\", \"version\": "
                                   "\"0.0.2\", \"tenants\": [], \"pools\": [{\"name\": "
                                   "\"pool-1\", \"to\": \"0.0.1\", \"from\": \"0.0.2\"}]}");
    assert_int_equal(op.rollout.action, LL_OP_ROLLOUT_ROLLBACK);
    assert_int_equal(op.rollout.wave, 0);
    assert_int_equal(op.rollout.n_tenants, 0);
    ll_operation_clear(&op);

    /* Missing or mistyped fields stay NULL: the writer refuses what it
     * cannot apply. */
    memset(&op, 0, sizeof(op));
    op.kind = LL_OP_ROLLOUT;
    json_t *bad = json_loads("{\"tenants\": [{\"id\": 3}]}", 0, NULL);
    assert_int_equal(reg_op_from_payload(&op, bad), 0);
    assert_int_equal(op.rollout.n_tenants, 1);
    assert_null(op.rollout.tenants[0].id);
    assert_null(op.rollout.tenants[0].to);
    json_decref(bad);
    ll_operation_clear(&op);

    /* The names the rows and the API use. */
    const char *names[] = {"onboard", "update", "offboard", "tier_put", "tier_delete", "rollout"};
    const ll_op_kind kinds[] = {LL_OP_ONBOARD,  LL_OP_UPDATE,      LL_OP_OFFBOARD,
                                LL_OP_TIER_PUT, LL_OP_TIER_DELETE, LL_OP_ROLLOUT};
    for (int i = 0; i < 6; i++)
        assert_string_equal(ll_op_kind_name(kinds[i]), names[i]);
    assert_string_equal(ll_op_state_name(LL_OP_QUEUED), "queued");
    assert_string_equal(ll_op_state_name(LL_OP_PUSHED), "pushed");
    assert_string_equal(ll_op_state_name(LL_OP_FAILED), "failed");
}

/* Rows of every producer read back as records, oldest first. */
static void test_rows(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_op_list ops = {NULL, 0};
    ll_operation op;
    long long on = 0, up = 0, tier = 0, off = 0;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&on, r, "acme", "{\"a\":1}"), 0);
    assert_int_equal(update(&up, r, "acme", "premium", "{\"a\":2}"), 0);
    assert_int_equal(ll_registry_tier_op(&tier, r, "tier_put", "gold",
                                         "{\"template\": \"t\", \"description\": \"d\", "
                                         "\"replace\": false, \"deployment_model\": \"pool\"}",
                                         &author),
                     0);
    sql_exec("INSERT INTO operations (kind, tenant_id, tier, payload, state, created_at, "
             "updated_at, author_name, author_email, rollout_id) VALUES ('rollout', NULL, '', "
             "'{\"rollout\": 9, \"action\": \"wave\", \"wave\": 1, \"version\": \"0.0.2\", "
             "\"tenants\": [], \"pools\": []}', 'queued', 'x', 'x', 'Eve', 'eve@example.com', 9)");

    assert_int_equal(ll_registry_ops_queued(&ops, r, 2), 0);
    assert_int_equal(ops.n, 2); /* the limit */
    ll_op_list_free(&ops);
    assert_int_equal(ll_registry_ops_queued(&ops, r, 10), 0);
    assert_int_equal(ops.n, 4);
    assert_int_equal(ops.ops[0].id, on);
    assert_int_equal(ops.ops[0].kind, LL_OP_ONBOARD);
    assert_int_equal(ops.ops[0].state, LL_OP_QUEUED);
    assert_string_equal(ops.ops[0].tenant, "acme");
    assert_string_equal(ops.ops[0].tier, "basic");
    assert_string_equal(ops.ops[0].author_name, "Ada");
    assert_string_equal(ops.ops[0].author_email, "ada@example.com");
    assert_int_equal(json_integer_value(json_object_get(ops.ops[0].t.values, "a")), 1);
    assert_int_equal(ops.ops[1].kind, LL_OP_UPDATE);
    assert_string_equal(ops.ops[1].tier, "premium");
    assert_string_equal(ops.ops[1].t.from_tier, "basic");
    assert_true(ops.ops[1].t.has_previous);
    assert_int_equal(json_integer_value(json_object_get(ops.ops[1].t.previous.values, "a")), 1);
    assert_int_equal(ops.ops[2].kind, LL_OP_TIER_PUT);
    assert_null(ops.ops[2].tenant); /* a tier change names no tenant */
    assert_string_equal(ops.ops[2].tier, "gold");
    assert_string_equal(ops.ops[2].tier_op.template_text, "t");
    assert_int_equal(ops.ops[3].kind, LL_OP_ROLLOUT);
    assert_null(ops.ops[3].tenant);
    assert_int_equal(ops.ops[3].rollout_id, 9);
    assert_int_equal(ops.ops[3].rollout.rollout, 9);
    assert_string_equal(ops.ops[3].author_name, "Eve");
    assert_int_equal(ops.ops[0].rollout_id, 0);

    /* Attempts are counted on the records given. */
    assert_int_equal(ll_registry_ops_attempted(r, ops.ops, 1, "remote down"), 0);
    ll_op_list_free(&ops);
    assert_int_equal(ll_registry_op_get(&op, r, on), 0);
    assert_int_equal(op.attempts, 1);
    assert_string_equal(op.last_error, "remote down");
    ll_operation_clear(&op);
    assert_int_equal(ll_registry_op_get(&op, r, up), 0);
    assert_int_equal(op.attempts, 0);
    assert_null(op.last_error);
    ll_operation_clear(&op);
    assert_int_equal(ll_registry_op_get(&op, r, 999), LL_ENOTFOUND);
    ll_operation_clear(&op);

    /* Offboarding carries nothing. */
    ll_op_results res = {0};
    assert_int_equal(ll_op_results_ok(&res, on, "c1"), 0);
    assert_int_equal(ll_op_results_ok(&res, up, "c1"), 0);
    assert_int_equal(ll_registry_ops_finish(r, res.v, res.n), 0);
    ll_op_results_free(&res);
    assert_int_equal(offboard(&off, r, "acme"), 0);
    assert_int_equal(ll_registry_op_get(&op, r, off), 0);
    assert_int_equal(op.kind, LL_OP_OFFBOARD);
    assert_null(op.t.values);
    ll_operation_clear(&op);
    ll_registry_close(r);
}

/* Typed outcomes: the failure class is stored as the row's error_type and
 * read back; a pushed tier change updates the tier's description (a pushed
 * deletion forgets it); a failed
 * rollout operation returns its tenants to their versions before it. */
static void test_finish(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_op_results res = {0};
    ll_operation op;
    long long on = 0, bad = 0, tier = 0;
    char sql[600], *v;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(onboard(&on, r, "acme", "{}"), 0);
    assert_int_equal(onboard(&bad, r, "beta", "{}"), 0);
    assert_int_equal(
        ll_registry_tier_op(&tier, r, "tier_put", "gold",
                            "{\"template\": \"t\", \"description\": \"shiny\", \"replace\": false, "
                            "\"deployment_model\": \"pool\"}",
                            &author),
        0);
    assert_int_equal(ll_op_results_ok(&res, on, "c1"), 0);
    assert_int_equal(ll_op_results_failed(&res, bad, LL_OP_FAILURE_RENDER, "no render"), 0);
    assert_int_equal(ll_op_results_ok(&res, tier, "c1"), 0);
    assert_int_equal(ll_registry_ops_finish(r, res.v, res.n), 0);
    ll_op_results_free(&res);

    assert_int_equal(ll_registry_op_get(&op, r, on), 0);
    assert_int_equal(op.state, LL_OP_PUSHED);
    assert_string_equal(op.commit, "c1");
    assert_int_equal(op.failure, LL_OP_FAILURE_NONE);
    ll_operation_clear(&op);
    assert_int_equal(ll_registry_op_get(&op, r, bad), 0);
    assert_int_equal(op.state, LL_OP_FAILED);
    assert_string_equal(op.error, "no render");
    assert_int_equal(op.failure, LL_OP_FAILURE_RENDER);
    ll_operation_clear(&op);
    snprintf(sql, sizeof(sql), "SELECT error_type FROM operations WHERE id = %lld", bad);
    v = sql_text(sql);
    assert_string_equal(v, "render-failed");
    free(v);
    v = sql_text("SELECT description FROM tier_info WHERE name = 'gold'");
    assert_string_equal(v, "shiny");
    free(v);
    /* A pushed tier_delete forgets it. */
    assert_int_equal(ll_registry_tier_op(&tier, r, "tier_delete", "gold", "{}", &author), 0);
    assert_int_equal(ll_op_results_ok(&res, tier, "c2"), 0);
    assert_int_equal(ll_registry_ops_finish(r, res.v, res.n), 0);
    ll_op_results_free(&res);
    v = sql_text("SELECT count(*) FROM tier_info WHERE name = 'gold'");
    assert_string_equal(v, "0");
    free(v);

    /* A rollout operation that moved acme from 0.0.x to 0.0.2 fails. */
    sql_exec("INSERT INTO operations (id, kind, tenant_id, tier, payload, state, created_at, "
             "updated_at, rollout_id) VALUES (100, 'rollout', NULL, '', '{\"rollout\": 1, "
             "\"action\": \"wave\", \"wave\": 1, \"version\": \"0.0.2\", \"tenants\": [{\"id\": "
             "\"acme\", \"tier\": \"basic\", \"path\": null, \"to\": \"0.0.2\", \"from\": "
             "\"0.0.x\", \"prev_op\": 1}], \"pools\": []}', 'queued', 'x', 'x', 1)");
    sql_exec("UPDATE tenants SET chart_version = '0.0.2', operation_id = 100, sync = 'pending' "
             "WHERE id = 'acme'");
    assert_int_equal(ll_op_results_failed(&res, 100, LL_OP_FAILURE_CONFLICT, "moved"), 0);
    assert_int_equal(ll_registry_ops_finish(r, res.v, res.n), 0);
    ll_op_results_free(&res);
    v = sql_text("SELECT chart_version || ' ' || operation_id || ' ' || sync FROM tenants WHERE "
                 "id = 'acme'");
    assert_string_equal(v, "0.0.x 1 committed");
    free(v);
    v = sql_text("SELECT error_type FROM operations WHERE id = 100");
    assert_string_equal(v, "conflict");
    free(v);
    ll_registry_close(r);
}

static void test_results(void **state)
{
    (void)state;
    ll_op_results a = {0}, b = {0};

    for (int i = 0; i < 40; i++)
        assert_int_equal(ll_op_results_ok(&a, i, "0123456789012345678901234567890123456789"), 0);
    assert_int_equal(ll_op_results_failed(&b, 41, LL_OP_FAILURE_CONFLICT, "why"), 0);
    assert_int_equal(ll_op_results_take(&a, &b), 0);
    assert_int_equal(a.n, 41);
    assert_int_equal(b.n, 0);
    assert_string_equal(a.v[39].commit, "0123456789012345678901234567890123456789");
    assert_false(a.v[40].ok);
    assert_string_equal(a.v[40].error, "why");
    ll_op_results_free(&a);
    ll_op_results_free(&b);
    ll_op_results_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_conversion),
        cmocka_unit_test_setup_teardown(test_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish, setup, teardown),
        cmocka_unit_test(test_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

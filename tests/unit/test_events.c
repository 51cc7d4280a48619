/* Unit tests of the records at the seam between the status follower and
 * the registry: a tenant's state and its one spelling (landlord/state.h),
 * transitions (ll_transition) turned into rows, events and deliveries, and
 * events read back as ll_event records (lib/registry/registry_events.c). */
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

#include "landlord/registry.h"
#include "landlord/state.h"

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ll-events-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/landlord.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[200];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs sql on the database file with its own connection. */
static void run_sql(const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* The first column of the first row of sql as text, into out ("" when none). */
static void scalar_text(char *out, size_t cap, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_state_names(void **state)
{
    (void)state;
    const char *names[] = {"provisioning", "ready",      "updating", "failed", "blocked",
                           "offboarding",  "offboarded", "drifted",  "unknown"};
    ll_tenant_state s;
    assert_int_equal(LL_STATE_COUNT, 10);
    /* Every state has its one name, and reads back as itself. */
    for (int i = LL_STATE_NONE + 1; i < LL_STATE_COUNT; i++) {
        assert_string_equal(ll_tenant_state_name((ll_tenant_state)i), names[i - 1]);
        assert_int_equal(ll_tenant_state_parse(&s, names[i - 1]), 0);
        assert_int_equal(s, i);
    }
    /* None, and what names no state. */
    assert_string_equal(ll_tenant_state_name(LL_STATE_NONE), "");
    assert_int_equal(ll_tenant_state_parse(&s, ""), -1);
    assert_int_equal(s, LL_STATE_NONE);
    assert_int_equal(ll_tenant_state_parse(&s, "Ready"), -1);
    assert_int_equal(ll_tenant_state_parse(&s, "progressing"),
                     -1); /* an object's, not a tenant's */
    assert_int_equal(ll_tenant_state_parse(&s, NULL), -1);
}

/* A transition of acme to state from previous. */
static ll_transition transition(const char *tenant, ll_tenant_state state, ll_tenant_state previous)
{
    ll_transition t;
    memset(&t, 0, sizeof(t));
    snprintf(t.tenant, sizeof(t.tenant), "%s", tenant);
    t.state = state;
    t.previous = previous;
    snprintf(t.since, sizeof(t.since), "2026-12-08T00:00:0%dZ", (int)state);
    snprintf(t.reason, sizeof(t.reason), "%s", state == LL_STATE_READY ? "UpgradeSucceeded" : "");
    snprintf(t.message, sizeof(t.message), "HelmRelease flux-system/%s: \"quoted\"", tenant);
    snprintf(t.desired_commit, sizeof(t.desired_commit), "%s",
             "450796ddb2ab6724ee1cc32a4be56da032d1cca0");
    if (state == LL_STATE_READY) {
        snprintf(t.applied_commit, sizeof(t.applied_commit), "%s",
                 "550796ddb2ab6724ee1cc32a4be56da032d1cca0");
        snprintf(t.deployed_chart, sizeof(t.deployed_chart), "%s", "1.2.3");
    }
    return t;
}

static void test_transitions_become_events(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_webhook hook = {0};
    ll_delivery *due = NULL;
    size_t ndue = 99;
    ll_event *events = NULL;
    size_t n = 99;
    char text[512];

    assert_int_equal(ll_registry_open(&r, path), 0);
    run_sql("INSERT INTO tenants (id, tier, release, lifecycle, sync, created_at, updated_at) "
            "VALUES ('acme', 'premium', '1.2.x', 'active', 'committed', 'x', 'x')");
    /* One webhook for every tenant event, one for ready only, one for rollouts. */
    ll_names all = {NULL, 0}, ready = {NULL, 0}, rollouts = {NULL, 0};
    assert_int_equal(ll_names_add(&all, "tenant.*"), 0);
    assert_int_equal(ll_names_add(&ready, "tenant.ready"), 0);
    assert_int_equal(ll_names_add(&rollouts, "rollout.*"), 0);
    assert_int_equal(ll_registry_webhook_create(&hook, r, "https://a.example/", "s", &all, ""), 0);
    ll_registry_webhook_clear(&hook);
    assert_int_equal(ll_registry_webhook_create(&hook, r, "https://b.example/", "s", &ready, ""),
                     0);
    ll_registry_webhook_clear(&hook);
    assert_int_equal(ll_registry_webhook_create(&hook, r, "https://c.example/", "s", &rollouts, ""),
                     0);
    ll_registry_webhook_clear(&hook);
    ll_names_clear(&all);
    ll_names_clear(&ready);
    ll_names_clear(&rollouts);

    /* Nothing to store: nothing done. */
    assert_int_equal(ll_registry_record_transitions(r, NULL, 0, 1000), 0);
    assert_int_equal(ll_registry_events_after(&events, &n, r, 0, 10), 0);
    assert_null(events);
    assert_int_equal(n, 0);

    ll_transition t[2] = {transition("acme", LL_STATE_PROVISIONING, LL_STATE_NONE),
                          transition("acme", LL_STATE_READY, LL_STATE_PROVISIONING)};
    assert_int_equal(ll_registry_record_transitions(r, t, 2, 1000), 0);

    /* The tenant's row carries the last state. */
    scalar_text(text, sizeof(text), "SELECT observed_state || ' ' || observed_since FROM tenants");
    assert_string_equal(text, "ready 2026-12-08T00:00:02Z");

    /* The events, as records, oldest first, with the data webhooks send. */
    assert_int_equal(ll_registry_events_after(&events, &n, r, 0, 10), 0);
    assert_int_equal(n, 2);
    assert_true(events[0].id < events[1].id);
    assert_string_equal(events[0].type, "tenant.provisioning");
    assert_string_equal(events[0].tenant, "acme");
    assert_true(events[0].created_at[0] != '\0');
    /* No previous state, applied commit nor chart: null. */
    assert_string_equal(events[0].data,
                        "{\"tenant\":\"acme\",\"state\":\"provisioning\",\"previous\":null,"
                        "\"reason\":\"\","
                        "\"message\":\"HelmRelease flux-system/acme: \\\"quoted\\\"\","
                        "\"desired_commit\":\"450796ddb2ab6724ee1cc32a4be56da032d1cca0\","
                        "\"applied_commit\":null,\"deployed_chart\":null,"
                        "\"at\":\"2026-12-08T00:00:01Z\"}");
    assert_string_equal(events[1].type, "tenant.ready");
    assert_string_equal(events[1].data,
                        "{\"tenant\":\"acme\",\"state\":\"ready\",\"previous\":\"provisioning\","
                        "\"reason\":\"UpgradeSucceeded\","
                        "\"message\":\"HelmRelease flux-system/acme: \\\"quoted\\\"\","
                        "\"desired_commit\":\"450796ddb2ab6724ee1cc32a4be56da032d1cca0\","
                        "\"applied_commit\":\"550796ddb2ab6724ee1cc32a4be56da032d1cca0\","
                        "\"deployed_chart\":\"1.2.3\",\"at\":\"2026-12-08T00:00:02Z\"}");
    long long first = events[0].id;
    ll_registry_events_free(events, n);

    /* After an id, and at most limit. */
    assert_int_equal(ll_registry_events_after(&events, &n, r, first, 10), 0);
    assert_int_equal(n, 1);
    assert_string_equal(events[0].type, "tenant.ready");
    ll_registry_events_free(events, n);
    assert_int_equal(ll_registry_events_after(&events, &n, r, 0, 1), 0);
    assert_int_equal(n, 1);
    assert_int_equal(events[0].id, first);
    ll_registry_events_free(events, n);

    /* Deliveries: both events for tenant.*, the ready one for tenant.ready,
     * none for rollout.*; due at now_ms, not before. */
    assert_int_equal(ll_registry_deliveries_due(&due, &ndue, r, 999, 10), 0);
    assert_null(due);
    assert_int_equal(ndue, 0);
    assert_int_equal(ll_registry_deliveries_due(&due, &ndue, r, 1000, 10), 0);
    assert_int_equal(ndue, 3);
    int to_b = 0;
    for (size_t i = 0; i < ndue; i++) {
        const ll_delivery *d = &due[i];
        assert_string_not_equal(d->url, "https://c.example/");
        if (strcmp(d->url, "https://b.example/") == 0) {
            to_b++;
            assert_string_equal(d->event_type, "tenant.ready");
            json_t *data = json_loads(d->data, 0, NULL);
            assert_non_null(data);
            assert_string_equal(json_string_value(json_object_get(data, "deployed_chart")),
                                "1.2.3");
            json_decref(data);
        }
        assert_string_equal(d->tenant, "acme");
    }
    assert_int_equal(to_b, 1);
    ll_registry_deliveries_free(due, ndue);
    ll_registry_close(r);
}

static void test_events_of_no_tenant(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_event *events = NULL;
    size_t n = 0;
    assert_int_equal(ll_registry_open(&r, path), 0);
    /* A rollout's event names no single tenant; data that is not JSON
     * reads back as it was stored. */
    run_sql("INSERT INTO events (type, tenant_id, data, created_at) VALUES "
            "('rollout.started', '', '{\"rollout\":1}', '2026-12-08T00:00:00Z')");
    assert_int_equal(ll_registry_events_after(&events, &n, r, 0, 10), 0);
    assert_int_equal(n, 1);
    assert_string_equal(events[0].type, "rollout.started");
    assert_string_equal(events[0].tenant, "");
    assert_string_equal(events[0].data, "{\"rollout\":1}");
    assert_string_equal(events[0].created_at, "2026-12-08T00:00:00Z");
    ll_registry_events_free(events, n);
    ll_registry_events_free(NULL, 0);
    /* No room asked: nothing read. */
    assert_int_equal(ll_registry_events_after(&events, &n, r, 0, 0), 0);
    assert_null(events);
    assert_int_equal(n, 0);
    ll_registry_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test_setup_teardown(test_transitions_become_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_of_no_tenant, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

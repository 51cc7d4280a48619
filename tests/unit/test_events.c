/* Unit tests of the records at the seam between the status follower and
 * the registry: a tenant's state and its one spelling (landlord/state.h),
 * transitions (ll_transition) turned into rows, events and deliveries, and
 * events read back as ll_event records; and the other records of
 * lib/registry/registry_events.c and their rows: webhooks (ll_webhook),
 * deliveries (ll_delivery), state counts (ll_state_count) and releases
 * (ll_release, ll_release_use). */
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
#include "landlord/state.h"
#include "support.h"

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    return ut_temp_db(dir, sizeof(dir), path, sizeof(path), "events");
}

static int teardown(void **state)
{
    (void)state;
    return ut_remove_tree(dir);
}

/* Runs sql on the database file with its own connection. */
static void run_sql(const char *sql)
{
    ut_sql_exec(path, sql);
}

/* The first column of the first row of sql as text, into out ("" when none). */
static void scalar_text(char *out, size_t cap, const char *sql)
{
    char *v = ut_sql_text(path, sql);
    snprintf(out, cap, "%s", v ? v : "");
    free(v);
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

/* A webhook row and its record: what is stored reads back, the secret is
 * kept in the row only, a missing description is "", unreadable
 * event_types read back as none; get, list and delete by id. */
static void test_webhook_records(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_webhook a = {0}, b = {0}, got = {0}, *list = NULL;
    ll_names types = {NULL, 0};
    size_t n = 99;
    char text[256];

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_webhook_list(&list, &n, r), 0);
    assert_null(list);
    assert_int_equal(n, 0);

    assert_int_equal(ll_names_add(&types, "tenant.*"), 0);
    assert_int_equal(ll_names_add(&types, "rollout.failed"), 0);
    assert_int_equal(
        ll_registry_webhook_create(&a, r, "https://a.example/h", "s3cret-s3cret-s3", &types, NULL),
        0);
    ll_names_clear(&types);
    assert_true(a.id > 0);
    assert_string_equal(a.url, "https://a.example/h");
    assert_string_equal(a.description, "");
    assert_int_equal(a.event_types.n, 2);
    assert_string_equal(a.event_types.v[0], "tenant.*");
    assert_string_equal(a.event_types.v[1], "rollout.failed");
    assert_true(a.created_at[0] != '\0');
    /* The column holds the types as compact JSON, and the secret. */
    scalar_text(text, sizeof(text), "SELECT event_types || ' ' || secret FROM webhooks");
    assert_string_equal(text, "[\"tenant.*\",\"rollout.failed\"] s3cret-s3cret-s3");

    /* A row whose types are not JSON reads back with none. */
    run_sql("INSERT INTO webhooks (url, secret, event_types, description, created_at) VALUES "
            "('https://b.example/', 'x', 'not json', 'second', '2026-12-08T00:00:00Z')");
    assert_int_equal(ll_registry_webhook_list(&list, &n, r), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, a.id);
    assert_string_equal(list[0].url, "https://a.example/h");
    assert_int_equal(list[0].event_types.n, 2);
    assert_string_equal(list[1].url, "https://b.example/");
    assert_string_equal(list[1].description, "second");
    assert_string_equal(list[1].created_at, "2026-12-08T00:00:00Z");
    assert_int_equal(list[1].event_types.n, 0);
    b.id = list[1].id;
    ll_registry_webhooks_free(list, n);
    ll_registry_webhooks_free(NULL, 0);

    assert_int_equal(ll_registry_webhook_get(&got, r, a.id), 0);
    assert_int_equal(got.id, a.id);
    assert_string_equal(got.url, a.url);
    assert_string_equal(got.created_at, a.created_at);
    ll_registry_webhook_clear(&got);
    assert_null(got.url);

    assert_int_equal(ll_registry_webhook_delete(r, b.id), 0);
    assert_int_equal(ll_registry_webhook_delete(r, b.id), LL_ENOTFOUND);
    assert_int_equal(ll_registry_webhook_get(&got, r, b.id), LL_ENOTFOUND);
    assert_null(got.url);
    ll_registry_webhook_clear(&a);
    ll_registry_close(r);
}

/* Delivery rows and records: the state as an enum spelled as stored, no
 * status nor error until an attempt records one, the log newest first
 * with a cursor, only pending ones due. */
static void test_delivery_records(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_webhook hook = {0};
    ll_names types = {NULL, 0};
    ll_delivery *log = NULL, *due = NULL;
    size_t n = 0, ndue = 0;
    char text[256];

    assert_string_equal(ll_delivery_state_name(LL_DELIVERY_PENDING), "pending");
    assert_string_equal(ll_delivery_state_name(LL_DELIVERY_DELIVERED), "delivered");
    assert_string_equal(ll_delivery_state_name(LL_DELIVERY_FAILED), "failed");

    assert_int_equal(ll_registry_open(&r, path), 0);
    run_sql("INSERT INTO tenants (id, tier, release, lifecycle, sync, created_at, updated_at) "
            "VALUES ('acme', 'premium', '1.2.x', 'active', 'committed', 'x', 'x')");
    assert_int_equal(ll_names_add(&types, "tenant.*"), 0);
    assert_int_equal(ll_registry_webhook_create(&hook, r, "https://a.example/", "s", &types, "d"),
                     0);
    ll_names_clear(&types);
    ll_transition t[2] = {transition("acme", LL_STATE_PROVISIONING, LL_STATE_NONE),
                          transition("acme", LL_STATE_READY, LL_STATE_PROVISIONING)};
    assert_int_equal(ll_registry_record_transitions(r, t, 2, 1000), 0);
    assert_int_equal(ll_registry_deliveries_next_due(r), 1000);

    assert_int_equal(ll_registry_deliveries(&log, &n, r, hook.id, 0, 10), 0);
    assert_int_equal(n, 2);
    assert_true(log[0].id > log[1].id); /* newest first */
    assert_int_equal(log[0].webhook, hook.id);
    assert_string_equal(log[0].event_type, "tenant.ready");
    assert_string_equal(log[1].event_type, "tenant.provisioning");
    assert_int_equal(log[0].state, LL_DELIVERY_PENDING);
    assert_int_equal(log[0].attempts, 0);
    assert_int_equal(log[0].last_status, 0);
    assert_null(log[0].last_error);
    assert_true(log[0].created_at[0] && log[0].updated_at[0]);
    /* The log carries nothing of the receiver or its secret. */
    assert_null(log[0].url);
    assert_null(log[0].secret);
    assert_null(log[0].data);
    long long newest = log[0].id, oldest = log[1].id, ready_event = log[0].event;
    ll_registry_deliveries_free(log, n);

    /* Attempts: a failure with a status and why, then given up; a
     * delivery without a status stores none. */
    assert_int_equal(ll_registry_delivery_attempted(r, newest, LL_DELIVERY_FAILED, 3, 0, 502,
                                                    "the receiver answered 502"),
                     0);
    assert_int_equal(
        ll_registry_delivery_attempted(r, oldest, LL_DELIVERY_DELIVERED, 1, 0, 0, NULL), 0);
    scalar_text(text, sizeof(text),
                "SELECT group_concat(state || '/' || coalesce(last_status, '-'), ' ') FROM "
                "(SELECT * FROM deliveries ORDER BY id)");
    assert_string_equal(text, "delivered/- failed/502");
    assert_int_equal(ll_registry_deliveries(&log, &n, r, hook.id, 0, 1), 0);
    assert_int_equal(n, 1);
    assert_int_equal(log[0].id, newest);
    assert_int_equal(log[0].state, LL_DELIVERY_FAILED);
    assert_int_equal(log[0].attempts, 3);
    assert_int_equal(log[0].last_status, 502);
    assert_string_equal(log[0].last_error, "the receiver answered 502");
    assert_int_equal(log[0].event, ready_event);
    ll_registry_deliveries_free(log, n);
    /* Below a cursor. */
    assert_int_equal(ll_registry_deliveries(&log, &n, r, hook.id, newest, 10), 0);
    assert_int_equal(n, 1);
    assert_int_equal(log[0].id, oldest);
    assert_int_equal(log[0].state, LL_DELIVERY_DELIVERED);
    assert_int_equal(log[0].last_status, 0);
    assert_null(log[0].last_error);
    ll_registry_deliveries_free(log, n);
    /* Of another webhook: none. */
    assert_int_equal(ll_registry_deliveries(&log, &n, r, hook.id + 1, 0, 10), 0);
    assert_null(log);
    assert_int_equal(n, 0);

    /* Nothing pending: nothing due. */
    assert_int_equal(ll_registry_deliveries_due(&due, &ndue, r, 1LL << 40, 10), 0);
    assert_int_equal(ndue, 0);
    assert_int_equal(ll_registry_deliveries_next_due(r), -1);
    /* A pending retry is due with what sending needs; data not stored
     * reads as it was stored. */
    assert_int_equal(
        ll_registry_delivery_attempted(r, newest, LL_DELIVERY_PENDING, 3, 5000, 0, "timeout"), 0);
    assert_int_equal(ll_registry_deliveries_next_due(r), 5000);
    assert_int_equal(ll_registry_deliveries_due(&due, &ndue, r, 5000, 10), 0);
    assert_int_equal(ndue, 1);
    assert_int_equal(due[0].id, newest);
    assert_string_equal(due[0].url, "https://a.example/");
    assert_string_equal(due[0].secret, "s");
    assert_string_equal(due[0].tenant, "acme");
    assert_true(due[0].event_created_at[0] != '\0');
    assert_non_null(strstr(due[0].data, "\"state\":\"ready\""));
    ll_registry_deliveries_free(due, ndue);
    ll_registry_webhook_clear(&hook);
    ll_registry_close(r);
}

/* Tenants per tier and state: the observed state, else unknown while
 * active, else the lifecycle; ordered by tier, then state. */
static void test_state_count_records(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_state_count *c = NULL;
    size_t n = 99;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_state_counts(&c, &n, r), 0);
    assert_null(c);
    assert_int_equal(n, 0);
    run_sql("INSERT INTO tenants (id, tier, release, lifecycle, sync, created_at, updated_at, "
            "observed_state) VALUES "
            "('a', 'premium', '1.2.x', 'active', 'committed', 'x', 'x', 'ready'),"
            "('b', 'premium', '1.2.x', 'active', 'committed', 'x', 'x', 'ready'),"
            "('c', 'premium', '1.2.x', 'active', 'committed', 'x', 'x', NULL),"
            "('d', 'basic', '1.2.x', 'offboarded', 'committed', 'x', 'x', NULL)");
    assert_int_equal(ll_registry_state_counts(&c, &n, r), 0);
    assert_int_equal(n, 3);
    assert_string_equal(c[0].tier, "basic");
    assert_string_equal(c[0].state, "offboarded");
    assert_int_equal(c[0].count, 1);
    assert_string_equal(c[1].tier, "premium");
    assert_string_equal(c[1].state, "ready");
    assert_int_equal(c[1].count, 2);
    assert_string_equal(c[2].tier, "premium");
    assert_string_equal(c[2].state, "unknown");
    assert_int_equal(c[2].count, 1);
    ll_registry_state_counts_free(c, n);
    ll_registry_state_counts_free(NULL, 0);
    ll_registry_close(r);
}

/* A release record and its row: every field reads back (app_version NULL
 * stays NULL); one version once; get, list, delete; the users per chart
 * version tenants' files carry. */
static void test_release_records(void **state)
{
    (void)state;
    ll_registry *r = NULL;
    ll_release got = {0}, *list = NULL;
    ll_release_use *uses = NULL;
    size_t n = 99;
    char text[512];
    ll_release rel = {.version = "1.2.3",
                      .tag = "1.2.3",
                      .digest = "sha256:m",
                      .chart_digest = "sha256:c",
                      .config_digest = "sha256:f",
                      .size = 4096,
                      .location = "local",
                      .app_version = "v9",
                      .pushed_at = "2026-12-08T00:00:00.000Z"};

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_release_list(&list, &n, r), 0);
    assert_null(list);
    assert_int_equal(n, 0);
    assert_int_equal(ll_registry_release_put(r, &rel), 0);
    assert_int_equal(ll_registry_release_put(r, &rel), LL_ECONFLICT);
    scalar_text(text, sizeof(text),
                "SELECT version || ' ' || tag || ' ' || manifest_digest || ' ' || chart_digest || "
                "' ' || config_digest || ' ' || size || ' ' || location || ' ' || app_version || "
                "' ' || pushed_at FROM releases");
    assert_string_equal(text, "1.2.3 1.2.3 sha256:m sha256:c sha256:f 4096 local v9 "
                              "2026-12-08T00:00:00.000Z");
    rel.version = rel.tag = "1.3.0";
    rel.app_version = NULL;
    rel.location = "oci://registry.example/charts/app:1.3.0";
    assert_int_equal(ll_registry_release_put(r, &rel), 0);

    assert_int_equal(ll_registry_release_get(&got, r, "1.2.3"), 0);
    assert_string_equal(got.version, "1.2.3");
    assert_string_equal(got.tag, "1.2.3");
    assert_string_equal(got.digest, "sha256:m");
    assert_string_equal(got.chart_digest, "sha256:c");
    assert_string_equal(got.config_digest, "sha256:f");
    assert_int_equal(got.size, 4096);
    assert_string_equal(got.location, "local");
    assert_string_equal(got.app_version, "v9");
    assert_string_equal(got.pushed_at, "2026-12-08T00:00:00.000Z");
    ll_registry_release_clear(&got);
    assert_null(got.version);
    assert_int_equal(ll_registry_release_get(&got, r, "1.3.0"), 0);
    assert_null(got.app_version);
    assert_string_equal(got.location, "oci://registry.example/charts/app:1.3.0");
    ll_registry_release_clear(&got);
    assert_int_equal(ll_registry_release_get(&got, r, "9.9.9"), LL_ENOTFOUND);
    assert_null(got.version);

    assert_int_equal(ll_registry_release_list(&list, &n, r), 0);
    assert_int_equal(n, 2);
    int seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= strcmp(list[i].version, "1.2.3") == 0   ? 1
                : strcmp(list[i].version, "1.3.0") == 0 ? 2
                                                        : 4;
    assert_int_equal(seen, 3);
    ll_registry_releases_free(list, n);
    ll_registry_releases_free(NULL, 0);

    /* Users: what files carry (chart_version, else the release), not
     * counting offboarded tenants. */
    run_sql("INSERT INTO tenants (id, tier, release, chart_version, lifecycle, sync, created_at, "
            "updated_at) VALUES "
            "('a', 'basic', '1.2', '1.2.3', 'active', 'committed', 'x', 'x'),"
            "('b', 'basic', '1.2.3', '1.2.3', 'active', 'committed', 'x', 'x'),"
            "('c', 'basic', '2.0', NULL, 'active', 'committed', 'x', 'x'),"
            "('d', 'basic', '1.3.0', '1.3.0', 'offboarded', 'committed', 'x', 'x')");
    assert_int_equal(ll_registry_release_users(&uses, &n, r), 0);
    assert_int_equal(n, 2);
    long long on_123 = 0, on_20 = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(uses[i].release, "1.2.3") == 0)
            on_123 = uses[i].count;
        else if (strcmp(uses[i].release, "2.0") == 0)
            on_20 = uses[i].count;
        else
            fail_msg("unexpected use of %s", uses[i].release);
    }
    assert_int_equal(on_123, 2);
    assert_int_equal(on_20, 1);
    ll_registry_release_uses_free(uses, n);

    assert_int_equal(ll_registry_release_delete(r, "1.3.0"), 0);
    assert_int_equal(ll_registry_release_delete(r, "1.3.0"), LL_ENOTFOUND);
    assert_int_equal(ll_registry_release_get(&got, r, "1.3.0"), LL_ENOTFOUND);
    ll_registry_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test_setup_teardown(test_transitions_become_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_of_no_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_count_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

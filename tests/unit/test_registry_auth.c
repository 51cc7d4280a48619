/* Unit tests of the audit and idempotency records (lib/registry/registry_auth.c,
 * lib/core/access.c): SQL rows become ll_audit_item / ll_idem_answer in one
 * place each, an audit record becomes the API's JSON in one place, and an
 * idempotent request is known by its fingerprint. */
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

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/registry.h"
#include "support.h"

static char dir[64], path[128];
static const ll_registry_author author = {"Ada", "ada@example.com"};

static int setup(void **state)
{
    (void)state;
    return ut_temp_db(dir, sizeof(dir), path, sizeof(path), "registry-auth");
}

static int teardown(void **state)
{
    (void)state;
    return ut_remove_tree(dir);
}

/* Runs sql on the database file, as another connection would. */
static void run_sql(const char *sql)
{
    ut_sql_exec(path, sql);
}

/* --- audit ----------------------------------------------------------------------- */

static void test_audit_rows_become_records(void **state)
{
    ll_registry *r = NULL;
    ll_audit_page page = {0};
    ll_audit_filter any = {0};
    long long op = 0;
    (void)state;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_tier_op(&op, r, "tier_put", "gold", "{}", &author), 0);
    assert_true(op > 0);
    /* A refusal without a caller, then a write by one that queued op. */
    ll_audit_entry refused = {.request_id = "r1",
                              .method = "DELETE",
                              .path = "/api/v1/tenants/acme",
                              .route = "/api/v1/tenants/{id}",
                              .tenant = "acme",
                              .problem = "unauthorized",
                              .status = 401};
    ll_audit_entry written = {.request_id = "r2",
                              .actor = "ci",
                              .actor_name = "CI",
                              .actor_email = "ci@example.com",
                              .method = "PUT",
                              .path = "/api/v1/tiers/gold",
                              .route = "/api/v1/tiers/{name}",
                              .tier = "gold",
                              .status = 202,
                              .replayed = 1,
                              .operation = op};
    assert_int_equal(ll_registry_audit_add(r, &refused), 0);
    assert_int_equal(ll_registry_audit_add(r, &written), 0);

    assert_int_equal(ll_registry_audit_list(&page, r, &any, 10), 0);
    assert_int_equal(page.count, 2);
    assert_int_equal(page.next, 0);
    /* Newest first. */
    const ll_audit_item *w = &page.items[0], *f = &page.items[1];
    assert_true(w->id > f->id);
    assert_string_equal(w->request_id, "r2");
    assert_string_equal(w->actor, "ci");
    assert_string_equal(w->actor_name, "CI");
    assert_string_equal(w->actor_email, "ci@example.com");
    assert_string_equal(w->method, "PUT");
    assert_string_equal(w->path, "/api/v1/tiers/gold");
    assert_string_equal(w->route, "/api/v1/tiers/{name}");
    assert_null(w->tenant);
    assert_string_equal(w->tier, "gold");
    assert_null(w->problem);
    assert_int_equal(w->status, 202);
    assert_int_equal(w->replayed, 1);
    assert_int_equal(w->op_id, op);
    assert_string_equal(w->op_kind, "tier_put");
    assert_string_equal(w->op_state, "queued");
    assert_null(w->op_commit);
    assert_string_equal(w->op_author_name, "Ada");
    assert_string_equal(w->op_author_email, "ada@example.com");
    assert_non_null(w->at);
    assert_int_equal(strlen(w->at), 24); /* 2026-11-23T18:16:26.123Z */

    assert_string_equal(f->request_id, "r1");
    assert_null(f->actor);
    assert_null(f->actor_name);
    assert_null(f->actor_email);
    assert_string_equal(f->tenant, "acme");
    assert_null(f->tier);
    assert_string_equal(f->problem, "unauthorized");
    assert_int_equal(f->status, 401);
    assert_int_equal(f->replayed, 0);
    assert_int_equal(f->op_id, 0);
    assert_null(f->op_kind);
    assert_null(f->op_state);
    ll_audit_page_free(&page);
    assert_null(page.items);
    assert_int_equal(page.count, 0);

    /* An operation whose row is gone reads as none. */
    run_sql("DELETE FROM operations");
    assert_int_equal(ll_registry_audit_list(&page, r, &any, 10), 0);
    assert_int_equal(page.items[0].op_id, 0);
    assert_null(page.items[0].op_kind);
    ll_audit_page_free(&page);
    ll_audit_page_free(NULL);
    ll_registry_close(r);
}

/* Lists the audit with filter and limit, asserts the request ids it gives
 * (want: "r5 r4", newest first) and whether a cursor follows; returns the
 * cursor. */
static long long expect_page(ll_registry *r, const ll_audit_filter *filter, int limit,
                             const char *want, int more)
{
    ll_audit_page page = {0};
    char got[256] = "";
    long long next;

    assert_int_equal(ll_registry_audit_list(&page, r, filter, limit), 0);
    for (size_t i = 0; i < page.count; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof(got) - n, "%s%s", n ? " " : "", page.items[i].request_id);
    }
    assert_string_equal(got, want);
    if (more)
        assert_int_equal(page.next, page.items[page.count - 1].id);
    else
        assert_int_equal(page.next, 0);
    next = page.next;
    ll_audit_page_free(&page);
    return next;
}

static void test_audit_filters_and_pages(void **state)
{
    ll_registry *r = NULL;
    char id[16];
    (void)state;

    assert_int_equal(ll_registry_open(&r, path), 0);
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        ll_audit_entry e = {.request_id = id,
                            .actor = i % 2 ? "odd" : "even",
                            .method = "POST",
                            .path = "/api/v1/tenants",
                            .tenant = i <= 3 ? "acme" : "zeta",
                            .status = 201};
        assert_int_equal(ll_registry_audit_add(r, &e), 0);
    }
    run_sql("UPDATE audit SET at = '2026-01-0' || id || 'T00:00:00.000Z'");

    /* Two at a time: the cursor is the last id given, and goes on below it. */
    ll_audit_filter f = {0};
    f.before = expect_page(r, &f, 2, "r5 r4", 1);
    f.before = expect_page(r, &f, 2, "r3 r2", 1);
    expect_page(r, &f, 2, "r1", 0);

    /* Tenant, actor and time filters, together. */
    f = (ll_audit_filter){.tenant = "acme", .actor = "odd"};
    expect_page(r, &f, 10, "r3 r1", 0);
    f = (ll_audit_filter){.since = "2026-01-02T00:00:00.000Z", .until = "2026-01-04T00:00:00.000Z"};
    expect_page(r, &f, 10, "r3 r2", 0);
    f.tenant = "zeta";
    expect_page(r, &f, 10, "", 0);

    /* Pruning forgets what is older than the bound. */
    assert_int_equal(ll_registry_audit_prune(r, "2026-01-03T00:00:00.000Z"), 0);
    f = (ll_audit_filter){0};
    expect_page(r, &f, 10, "r5 r4 r3", 0);
    ll_registry_close(r);
}

/* The JSON of item, checked key by key, then freed. */
static json_t *item_json(const ll_audit_item *item)
{
    json_t *j = ll_audit_item_json(item);
    const char *keys[] = {"id",      "at",      "request_id", "actor",     "method",
                          "path",    "route",   "tenant",     "tier",      "status",
                          "outcome", "problem", "replayed",   "operation", "commit"};
    assert_non_null(j);
    assert_int_equal(json_object_size(j), sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_non_null(json_object_get(j, keys[i]));
    return j;
}

static const char *outcome_of(int status, long long op_id, char *op_state)
{
    static char out[16];
    ll_audit_item item = {.id = 1, .status = status, .op_id = op_id, .op_state = op_state};
    json_t *j = item_json(&item);
    snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(j, "outcome")));
    json_decref(j);
    return out;
}

static void test_audit_item_json(void **state)
{
    (void)state;
    ll_audit_item item = {.id = 7,
                          .at = "2026-01-01T00:00:00.000Z",
                          .request_id = "r7",
                          .actor = "ci",
                          .actor_email = "ci@example.com",
                          .method = "PATCH",
                          .path = "/api/v1/tenants/acme",
                          .route = "/api/v1/tenants/{id}",
                          .tenant = "acme",
                          .status = 200,
                          .op_id = 9,
                          .op_kind = "update",
                          .op_state = "pushed",
                          .op_commit = "abc123",
                          .op_author_name = "CI"};
    json_t *j = item_json(&item), *want;

    want = json_pack("{s:I, s:s, s:s, s:{s:s, s:n, s:s}, s:s, s:s, s:s, s:s, s:n, s:i, s:s, s:n, "
                     "s:b, s:{s:I, s:s, s:s, s:s, s:{s:s, s:n}}, s:s}",
                     "id", (json_int_t)7, "at", "2026-01-01T00:00:00.000Z", "request_id", "r7",
                     "actor", "sub", "ci", "name", "email", "ci@example.com", "method", "PATCH",
                     "path", "/api/v1/tenants/acme", "route", "/api/v1/tenants/{id}", "tenant",
                     "acme", "tier", "status", 200, "outcome", "done", "problem", "replayed", 0,
                     "operation", "id", (json_int_t)9, "kind", "update", "state", "pushed",
                     "commit", "abc123", "author", "name", "CI", "email", "commit", "abc123");
    assert_non_null(want);
    assert_true(json_equal(j, want));
    json_decref(want);
    json_decref(j);

    /* No caller, no operation: both null, and so is the commit. */
    item.actor = NULL;
    item.op_id = 0;
    j = item_json(&item);
    assert_true(json_is_null(json_object_get(j, "actor")));
    assert_true(json_is_null(json_object_get(j, "operation")));
    assert_true(json_is_null(json_object_get(j, "commit")));
    json_decref(j);

    /* The outcome: the status first, then the operation's state. */
    assert_string_equal(outcome_of(401, 0, NULL), "refused");
    assert_string_equal(outcome_of(422, 3, "queued"), "refused");
    assert_string_equal(outcome_of(500, 0, NULL), "failed");
    assert_string_equal(outcome_of(503, 3, "pushed"), "failed");
    assert_string_equal(outcome_of(202, 3, "queued"), "pending");
    assert_string_equal(outcome_of(202, 3, "failed"), "failed");
    assert_string_equal(outcome_of(200, 3, "pushed"), "done");
    assert_string_equal(outcome_of(204, 0, NULL), "done");
    /* A state without its operation counts for nothing. */
    assert_string_equal(outcome_of(202, 0, "queued"), "done");
}

/* --- idempotency -------------------------------------------------------------------- */

static void test_idem_answer_round_trip(void **state)
{
    ll_registry *r = NULL;
    ll_idem_state idem = LL_IDEM_DONE;
    ll_idem_answer got = {0};
    static const char body[] = "{\"id\":\"acme\"}\0tail"; /* bytes, NUL included */
    ll_idem_answer answer = {.status = 201,
                             .content_type = "application/json",
                             .location = "/api/v1/operations/4",
                             .etag = "\"abc\"",
                             .body = (char *)body,
                             .len = sizeof(body) - 1};
    (void)state;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp1", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    assert_null(got.body);
    /* While its request runs: in flight; another request under it: mismatch. */
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp1", 1001, 60000), 0);
    assert_int_equal(idem, LL_IDEM_IN_FLIGHT);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp2", 1002, 60000), 0);
    assert_int_equal(idem, LL_IDEM_MISMATCH);
    /* Keys are the caller's own. */
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "other", "k", "fp2", 1002, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);

    assert_int_equal(ll_registry_idem_finish(r, "ci", "k", &answer), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp1", 2000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_DONE);
    assert_int_equal(got.status, 201);
    assert_string_equal(got.content_type, "application/json");
    assert_string_equal(got.location, "/api/v1/operations/4");
    assert_string_equal(got.etag, "\"abc\"");
    assert_int_equal(got.len, sizeof(body) - 1);
    assert_memory_equal(got.body, body, sizeof(body) - 1);
    assert_int_equal(got.body[got.len], '\0');
    ll_idem_answer_clear(&got);
    assert_null(got.body);
    assert_int_equal(got.len, 0);
    ll_idem_answer_clear(NULL);

    /* Once the ttl ran out the key is new again (and reserved anew). */
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp2", 62000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    ll_registry_close(r);
}

static void test_idem_answer_without_extras(void **state)
{
    ll_registry *r = NULL;
    ll_idem_state idem;
    ll_idem_answer got = {0};
    ll_idem_answer empty = {.status = 200, .content_type = "application/json"};
    (void)state;

    assert_int_equal(ll_registry_open(&r, path), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp", 1000, 60000), 0);
    assert_int_equal(ll_registry_idem_finish(r, "ci", "k", &empty), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k", "fp", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_DONE);
    assert_int_equal(got.status, 200);
    assert_null(got.location);
    assert_null(got.etag);
    assert_non_null(got.body);
    assert_int_equal(got.len, 0);
    assert_string_equal(got.body, "");
    ll_idem_answer_clear(&got);

    /* A released key is free for the next request. */
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k2", "fp", 1000, 60000), 0);
    assert_int_equal(ll_registry_idem_release(r, "ci", "k2"), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k2", "other", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    /* Pruning at start forgets reservations, whatever their age. */
    assert_int_equal(ll_registry_idem_prune(r, 0, 1), 0);
    assert_int_equal(ll_registry_idem_begin(&idem, &got, r, "ci", "k2", "third", 1000, 60000), 0);
    assert_int_equal(idem, LL_IDEM_NEW);
    ll_registry_close(r);
}

static void fingerprint(char out[65], const char *method, const char *route, const char *body)
{
    ll_idem_request req = {"ci", "k", method, route, body, body ? strlen(body) : 0};
    ll_idempotency_fingerprint(out, &req);
    assert_int_equal(strlen(out), 64);
    assert_int_equal(strspn(out, "0123456789abcdef"), 64);
}

static void test_fingerprint(void **state)
{
    char a[65], b[65];
    (void)state;

    /* A JSON body counts by its value: key order and spacing do not matter. */
    fingerprint(a, "POST", "/api/v1/tenants", "{\"id\":\"acme\",\"tier\":\"basic\"}");
    fingerprint(b, "POST", "/api/v1/tenants", "{ \"tier\": \"basic\", \"id\": \"acme\" }");
    assert_string_equal(a, b);
    /* Another value, path or method is another request. */
    fingerprint(b, "POST", "/api/v1/tenants", "{\"id\":\"acme\",\"tier\":\"gold\"}");
    assert_string_not_equal(a, b);
    fingerprint(b, "POST", "/api/v1/webhooks", "{\"id\":\"acme\",\"tier\":\"basic\"}");
    assert_string_not_equal(a, b);
    fingerprint(b, "PUT", "/api/v1/tenants", "{\"id\":\"acme\",\"tier\":\"basic\"}");
    assert_string_not_equal(a, b);
    /* Method and path are kept apart: "POST" "/x" is not "POS" "T/x". */
    fingerprint(a, "POST", "/x", NULL);
    fingerprint(b, "POS", "T/x", NULL);
    assert_string_not_equal(a, b);
    /* A body that is not JSON counts by its bytes. */
    fingerprint(a, "POST", "/api/v1/releases", "not json");
    fingerprint(b, "POST", "/api/v1/releases", "not  json");
    assert_string_not_equal(a, b);
    fingerprint(b, "POST", "/api/v1/releases", "not json");
    assert_string_equal(a, b);
    /* No body at all differs from an empty object. */
    fingerprint(a, "POST", "/api/v1/rollouts/1/pause", NULL);
    fingerprint(b, "POST", "/api/v1/rollouts/1/pause", "{}");
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_rows_become_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_filters_and_pages, setup, teardown),
        cmocka_unit_test(test_audit_item_json),
        cmocka_unit_test_setup_teardown(test_idem_answer_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idem_answer_without_extras, setup, teardown),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

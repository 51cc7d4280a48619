/* registry_events.c - events (tenants' state transitions), webhook
 * subscriptions and their delivery log, in the registry's SQLite file.
 *
 * Transitions come in and events go out as records (ll_transition,
 * ll_event in registry.h); the section "transitions and events" is the one
 * place they become rows and back: the state's name, the event type
 * "tenant.<state>" and the event's JSON data.
 *
 * A transition is stored with its event and one pending delivery per
 * subscribed webhook in one transaction, so a delivery is never lost and
 * never made for an event that was not stored.  The deliverer
 * (webhooks.c) reads due deliveries and records each attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "registry_int.h"

/* 1 when type matches one of patterns (a JSON array of types, or prefixes
 * ending in '*'). */
static int type_matches(const json_t *patterns, const char *type)
{
    size_t i;
    json_t *p;
    json_array_foreach(patterns, i, p)
    {
        const char *s = json_string_value(p);
        size_t n = s ? strlen(s) : 0;
        if (!s)
            continue;
        if (n && s[n - 1] == '*' ? strncmp(s, type, n - 1) == 0 : strcmp(s, type) == 0)
            return 1;
    }
    return 0;
}

/* The webhooks and what each subscribed to: [{"id", "types"}]. */
static int subscriptions(json_t **out, ll_registry *r)
{
    sqlite3_stmt *hooks = NULL;
    json_t *subs = json_array();
    int error, rc;

    if ((error = reg_prepare(&hooks, r, "SELECT id, event_types FROM webhooks")) < 0) {
        json_decref(subs);
        return error;
    }
    while ((rc = sqlite3_step(hooks)) == SQLITE_ROW) {
        json_t *types = json_loads((const char *)sqlite3_column_text(hooks, 1), 0, NULL);
        json_array_append_new(subs, json_pack("{s:I, s:o}", "id", sqlite3_column_int64(hooks, 0),
                                              "types", types ? types : json_array()));
    }
    reg_finalize(r, hooks);
    if (rc != SQLITE_DONE) {
        json_decref(subs);
        return reg_db_error(r, "read webhooks");
    }
    *out = subs;
    return 0;
}

/* Stores one event and a pending delivery for every subscription in subs
 * whose types match; inside the caller's transaction.  tenant NULL: an
 * event of no single tenant (stored as ''). */
static int store_event(ll_registry *r, const json_t *subs, const char *type, const char *tenant,
                       const json_t *data, const char *now, long long now_ms)
{
    sqlite3_stmt *ev = NULL, *del = NULL;
    char *text = json_dumps(data, JSON_COMPACT);
    size_t k;
    json_t *sub;
    int error;

    /* Run for every state transition the follower stores: prepared once. */
    if ((error = reg_prepare(&ev, r,
                             "INSERT INTO events (type, tenant_id, data, created_at) VALUES (?, ?, "
                             "?, ?) RETURNING id")) < 0 ||
        (error = reg_prepare(&del, r,
                             "INSERT INTO deliveries (webhook_id, event_id, state, next_at_ms, "
                             "created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)")) < 0)
        goto done;
    reg_bind_text(ev, 1, type);
    reg_bind_text(ev, 2, tenant ? tenant : "");
    reg_bind_text(ev, 3, text ? text : "{}");
    reg_bind_text(ev, 4, now);
    if (sqlite3_step(ev) != SQLITE_ROW) {
        error = reg_db_error(r, "store event");
        goto done;
    }
    long long event_id = sqlite3_column_int64(ev, 0);
    json_array_foreach(subs, k, sub)
    {
        if (!type_matches(json_object_get(sub, "types"), type))
            continue;
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, json_integer_value(json_object_get(sub, "id")));
        sqlite3_bind_int64(del, 2, event_id);
        sqlite3_bind_int64(del, 3, now_ms);
        reg_bind_text(del, 4, now);
        reg_bind_text(del, 5, now);
        if (sqlite3_step(del) != SQLITE_DONE) {
            error = reg_db_error(r, "queue delivery");
            goto done;
        }
    }
    error = 0;
done:
    reg_finalize(r, ev);
    reg_finalize(r, del);
    free(text);
    return error;
}

int reg_store_events(ll_registry *r, const json_t *events)
{
    json_t *subs = NULL, *e;
    char now[32];
    size_t i;
    int error;

    if (!json_array_size(events))
        return 0;
    if ((error = subscriptions(&subs, r)) < 0)
        return error;
    ll_now_rfc3339(now);
    json_array_foreach(events, i, e)
    {
        if ((error = store_event(r, subs, json_string_value(json_object_get(e, "type")),
                                 json_string_value(json_object_get(e, "tenant")),
                                 json_object_get(e, "data"), now, ll_wall_ms())) < 0)
            break;
    }
    json_decref(subs);
    return error;
}

/* --- transitions and events: the records to and from rows ------------------ */

/* The event type of transition t ("tenant.<state>") into out. */
static void transition_type(char *out, size_t cap, const ll_transition *t)
{
    snprintf(out, cap, "tenant.%s", ll_tenant_state_name(t->state));
}

static const char *or_null(const char *s)
{
    return s[0] ? s : NULL;
}

/* The data of transition t's event, as stored in events.data and sent in
 * webhook bodies (new reference). */
static json_t *transition_data(const ll_transition *t)
{
    return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s}", "tenant", t->tenant,
                     "state", ll_tenant_state_name(t->state), "previous",
                     t->previous ? ll_tenant_state_name(t->previous) : NULL, "reason", t->reason,
                     "message", t->message, "desired_commit", or_null(t->desired_commit),
                     "applied_commit", or_null(t->applied_commit), "deployed_chart",
                     or_null(t->deployed_chart), "at", t->since);
}

/* Sets the observed state of transition t's tenant and stores its event;
 * inside the caller's transaction.  st: the prepared UPDATE. */
static int store_transition(ll_registry *r, sqlite3_stmt *st, const json_t *subs,
                            const ll_transition *t, const char *now, long long now_ms)
{
    char type[80];
    int error = 0, rc;
    reg_bind_text(st, 1, ll_tenant_state_name(t->state));
    reg_bind_text(st, 2, t->since);
    reg_bind_text(st, 3, t->tenant);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return reg_db_error(r, "store a tenant's state");
    json_t *data = transition_data(t);
    transition_type(type, sizeof(type), t);
    error = store_event(r, subs, type, t->tenant, data, now, now_ms);
    json_decref(data);
    return error;
}

int ll_registry_record_transitions(ll_registry *r, const ll_transition *t, size_t n,
                                   long long now_ms)
{
    sqlite3_stmt *st = NULL;
    json_t *subs = NULL;
    char now[32];
    int error;

    if (!n)
        return 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = subscriptions(&subs, r)) < 0)
        goto done;
    if ((error = reg_prepare(
             &st, r, "UPDATE tenants SET observed_state = ?, observed_since = ? WHERE id = ?")) < 0)
        goto done;
    for (size_t i = 0; i < n && error == 0; i++)
        error = store_transition(r, st, subs, &t[i], now, now_ms);
done:
    json_decref(subs);
    reg_finalize(r, st);
    if (error < 0) {
        reg_rollback(r);
        return error;
    }
    return reg_commit(r);
}

static void copy_col(char *to, size_t cap, sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    snprintf(to, cap, "%s", v ? v : "");
}

/* An events row (id, type, tenant_id, data, created_at) as a record; 0, or
 * -1 when out of memory. */
static int event_row(ll_event *out, sqlite3_stmt *st)
{
    const char *data = (const char *)sqlite3_column_text(st, 3);
    memset(out, 0, sizeof(*out));
    out->id = sqlite3_column_int64(st, 0);
    copy_col(out->type, sizeof(out->type), st, 1);
    copy_col(out->tenant, sizeof(out->tenant), st, 2);
    copy_col(out->created_at, sizeof(out->created_at), st, 4);
    out->data = strdup(data ? data : "{}");
    return out->data ? 0 : -1;
}

void ll_registry_events_free(ll_event *events, size_t count)
{
    for (size_t i = 0; events && i < count; i++)
        free(events[i].data);
    free(events);
}

int ll_registry_events_after(ll_event **out, size_t *count, ll_registry *r, long long after,
                             int limit)
{
    sqlite3_stmt *st = NULL;
    ll_event *rows = NULL;
    size_t n = 0;
    int error, rc = SQLITE_DONE;

    *out = NULL;
    *count = 0;
    if (limit <= 0)
        return 0;
    if (!(rows = calloc((size_t)limit, sizeof(*rows))))
        return ll_error_set(-1, "out of memory");
    if ((error = reg_prepare(&st, r,
                             "SELECT id, type, tenant_id, data, created_at FROM events WHERE id > "
                             "? ORDER BY id LIMIT ?")) < 0)
        goto done;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, limit);
    while (n < (size_t)limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (event_row(&rows[n++], st) < 0) {
            error = ll_error_set(-1, "out of memory");
            goto done;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "read events");
        goto done;
    }
    *out = n ? rows : NULL;
    *count = n;
    if (n)
        rows = NULL;
done:
    reg_finalize(r, st);
    ll_registry_events_free(rows, n);
    return error;
}

int ll_registry_events_last(long long *out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    int error;
    *out = 0;
    if ((error = reg_prepare(&st, r, "SELECT coalesce(max(id), 0) FROM events")) < 0)
        return error;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    reg_finalize(r, st);
    return 0;
}

int ll_registry_events_prune(ll_registry *r, long long keep)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "DELETE FROM events WHERE id <= (SELECT coalesce(max(id), 0) FROM events) - %lld",
             keep);
    return reg_exec(r, sql);
}

int ll_registry_state_counts(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;

    if ((error = reg_prepare(&st, r,
                             "SELECT tier, coalesce(observed_state, CASE lifecycle WHEN 'active' "
                             "THEN 'unknown' ELSE lifecycle END) AS state, count(*) FROM tenants "
                             "GROUP BY 1, 2 ORDER BY 1, 2")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, json_pack("{s:o, s:o, s:I}", "tier", reg_col_text(st, 0),
                                              "state", reg_col_text(st, 1), "count",
                                              (json_int_t)sqlite3_column_int64(st, 2)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "count states");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

/* --- webhooks ------------------------------------------------------------------ */

#define WEBHOOK_COLS "id, url, event_types, description, created_at"

static json_t *webhook_row(sqlite3_stmt *st)
{
    json_t *types = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
    return json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "url", reg_col_text(st, 1), "event_types", types ? types : json_array(),
                     "description", reg_col_text(st, 3), "created_at", reg_col_text(st, 4));
}

int ll_registry_webhook_create(json_t **out, ll_registry *r, const char *url, const char *secret,
                               const json_t *types, const char *description)
{
    sqlite3_stmt *st = NULL;
    char now[32], *types_json = json_dumps(types, JSON_COMPACT);
    int error;

    *out = NULL;
    ll_now_rfc3339(now);
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO webhooks (url, secret, event_types, description, "
                             "created_at) VALUES (?, ?, ?, ?, ?) RETURNING " WEBHOOK_COLS)) < 0)
        goto done;
    reg_bind_text(st, 1, url);
    reg_bind_text(st, 2, secret);
    reg_bind_text(st, 3, types_json ? types_json : "[]");
    reg_bind_text(st, 4, description ? description : "");
    reg_bind_text(st, 5, now);
    /* Outside a transaction the insert commits when the statement ends,
     * after its RETURNING row: only SQLITE_DONE says it is stored. */
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = webhook_row(st);
    if (!*out || sqlite3_step(st) != SQLITE_DONE) {
        error = reg_db_error(r, "store webhook");
        json_decref(*out);
        *out = NULL;
    }
done:
    reg_finalize(r, st);
    free(types_json);
    return error;
}

int ll_registry_webhook_list(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, webhook_row(st));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "list webhooks");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

int ll_registry_webhook_get(json_t **out, ll_registry *r, long long id)
{
    sqlite3_stmt *st = NULL;
    int error;

    *out = NULL;
    if ((error = reg_prepare(&st, r, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?")) < 0)
        return error;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = webhook_row(st);
    else
        error = ll_error_set(LL_ENOTFOUND, "no webhook %lld", id);
    reg_finalize(r, st);
    return error;
}

int ll_registry_webhook_delete(ll_registry *r, long long id)
{
    char sql[100];
    int error;
    snprintf(sql, sizeof(sql), "DELETE FROM webhooks WHERE id = %lld", id);
    if ((error = reg_exec(r, sql)) < 0)
        return error;
    if (sqlite3_changes(r->db) == 0)
        return ll_error_set(LL_ENOTFOUND, "no webhook %lld", id);
    return 0;
}

#define DELIVERY_COLS                                                                              \
    "d.id, d.webhook_id, d.event_id, d.state, d.attempts, d.last_status, d.last_error, "           \
    "d.created_at, d.updated_at, e.type"

static json_t *delivery_row(sqlite3_stmt *st)
{
    json_t *d = json_pack(
        "{s:I, s:I, s:I, s:o, s:I, s:o, s:o, s:o, s:o}", "id",
        (json_int_t)sqlite3_column_int64(st, 0), "webhook", (json_int_t)sqlite3_column_int64(st, 1),
        "event", (json_int_t)sqlite3_column_int64(st, 2), "state", reg_col_text(st, 3), "attempts",
        (json_int_t)sqlite3_column_int64(st, 4), "last_error", reg_col_text(st, 6), "created_at",
        reg_col_text(st, 7), "updated_at", reg_col_text(st, 8), "event_type", reg_col_text(st, 9));
    json_object_set_new(d, "last_status",
                        sqlite3_column_type(st, 5) == SQLITE_NULL
                            ? json_null()
                            : json_integer(sqlite3_column_int64(st, 5)));
    return d;
}

int ll_registry_deliveries(json_t **out, ll_registry *r, long long webhook, long long before,
                           int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;

    if ((error = reg_prepare(&st, r,
                             "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.id = "
                             "d.event_id WHERE d.webhook_id = ? AND d.id < ? ORDER BY d.id DESC "
                             "LIMIT ?")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, webhook);
    sqlite3_bind_int64(st, 2, before > 0 ? before : (long long)1 << 62);
    sqlite3_bind_int(st, 3, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, delivery_row(st));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "list deliveries");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

int ll_registry_deliveries_due(json_t **out, ll_registry *r, long long now_ms, int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;

    /* Polled by the deliverer after every batch of events: prepared once. */
    if ((error = reg_prepare(
             &st, r,
             "SELECT " DELIVERY_COLS ", w.url, w.secret, e.data, e.created_at, "
             "nullif(e.tenant_id, '') FROM deliveries d JOIN events e ON e.id = d.event_id "
             "JOIN webhooks w ON w.id = d.webhook_id WHERE d.state = 'pending' "
             "AND d.next_at_ms <= ? ORDER BY d.next_at_ms, d.id LIMIT ?")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *d = delivery_row(st);
        const char *data = (const char *)sqlite3_column_text(st, 12);
        json_t *dj = data ? json_loads(data, 0, NULL) : NULL;
        json_object_set_new(d, "url", reg_col_text(st, 10));
        json_object_set_new(d, "secret", reg_col_text(st, 11));
        json_object_set_new(d, "data", dj ? dj : json_object());
        json_object_set_new(d, "event_created_at", reg_col_text(st, 13));
        json_object_set_new(d, "tenant", reg_col_text(st, 14));
        json_array_append_new(rows, d);
    }
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "read due deliveries");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

long long ll_registry_deliveries_next_due(ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    long long next = -1;
    if (reg_prepare(&st, r, "SELECT min(next_at_ms) FROM deliveries WHERE state = 'pending'") < 0)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        next = sqlite3_column_int64(st, 0);
    reg_finalize(r, st);
    return next;
}

int ll_registry_delivery_attempted(ll_registry *r, long long id, const char *state, int attempts,
                                   long long next_at_ms, int status, const char *error_text)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_prepare(&st, r,
                             "UPDATE deliveries SET state = ?, attempts = ?, next_at_ms = ?, "
                             "last_status = ?, last_error = ?, updated_at = ? WHERE id = ?")) < 0)
        return error;
    reg_bind_text(st, 1, state);
    sqlite3_bind_int(st, 2, attempts);
    sqlite3_bind_int64(st, 3, next_at_ms);
    if (status > 0)
        sqlite3_bind_int(st, 4, status);
    else
        sqlite3_bind_null(st, 4);
    reg_bind_text(st, 5, error_text);
    reg_bind_text(st, 6, now);
    sqlite3_bind_int64(st, 7, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        error = reg_db_error(r, "record delivery");
    reg_finalize(r, st);
    return error;
}

/* --- releases ----------------------------------------------------------------- */

#define RELEASE_COLS                                                                               \
    "version, tag, manifest_digest, chart_digest, config_digest, size, location, app_version, "    \
    "pushed_at"

static json_t *release_row(sqlite3_stmt *st)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}", "version",
                     reg_col_text(st, 0), "tag", reg_col_text(st, 1), "digest", reg_col_text(st, 2),
                     "chart_digest", reg_col_text(st, 3), "config_digest", reg_col_text(st, 4),
                     "size", (json_int_t)sqlite3_column_int64(st, 5), "location",
                     reg_col_text(st, 6), "app_version", reg_col_text(st, 7), "pushed_at",
                     reg_col_text(st, 8));
}

int ll_registry_release_put(ll_registry *r, const json_t *rel)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO releases (" RELEASE_COLS
                             ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")) < 0)
        return error;
    const char *keys[] = {"version", "tag",      "digest",      "chart_digest", "config_digest",
                          NULL,      "location", "app_version", "pushed_at"};
    for (int i = 0; i < 9; i++) {
        if (!keys[i])
            sqlite3_bind_int64(st, i + 1, json_integer_value(json_object_get(rel, "size")));
        else
            reg_bind_text(st, i + 1, json_string_value(json_object_get(rel, keys[i])));
    }
    if (sqlite3_step(st) != SQLITE_DONE)
        error = reg_db_error(r, "store release");
    reg_finalize(r, st);
    return error;
}

int ll_registry_release_get(json_t **out, ll_registry *r, const char *version)
{
    sqlite3_stmt *st = NULL;
    int error;
    *out = NULL;
    if ((error = reg_prepare(&st, r, "SELECT " RELEASE_COLS " FROM releases WHERE version = ?")) <
        0)
        return error;
    reg_bind_text(st, 1, version);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = release_row(st);
    else
        error = ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version);
    reg_finalize(r, st);
    return error;
}

int ll_registry_release_list(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;
    if ((error = reg_prepare(&st, r, "SELECT " RELEASE_COLS " FROM releases")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, release_row(st));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "list releases");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

int ll_registry_release_delete(ll_registry *r, const char *version)
{
    const char *p[] = {version};
    int n = reg_run(r, "DELETE FROM releases WHERE version = ?", 1, p);
    if (n < 0)
        return n;
    return n == 0 ? ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version) : 0;
}

int ll_registry_release_users(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array();
    int error, rc;
    if ((error = reg_prepare(&st, r,
                             "SELECT coalesce(chart_version, release), count(*) FROM tenants "
                             "WHERE lifecycle != 'offboarded' GROUP BY 1")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, json_pack("{s:o, s:I}", "release", reg_col_text(st, 0), "count",
                                              (json_int_t)sqlite3_column_int64(st, 1)));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "count releases in use");
        goto fail;
    }
    reg_finalize(r, st);
    *out = rows;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(rows);
    return error;
}

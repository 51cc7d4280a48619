/* registry_events.c - events (tenants' state transitions), webhook
 * subscriptions and their delivery log, and tenants' state counts, in the
 * registry's SQLite file.
 *
 * Everything goes in and out as records (registry.h): ll_transition,
 * ll_event, ll_webhook, ll_delivery, ll_state_count.  Each kind of row
 * becomes its record in one function (event_from_row, webhook_from_row,
 * delivery_from_row, state_count_from_row), and the queries of webhooks,
 * events, deliveries and counts run through reg_rows, lists growing in a
 * reg_records array (records.c) that the caller gets as a new array with
 * its free function.  JSON appears only
 * where a column stores it (event data, a webhook's event_types); the
 * service builds API and webhook bodies from the records.  A webhook's
 * secret is read back only for the deliverer (ll_registry_deliveries_due),
 * never into an ll_webhook.
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

/* --- webhooks: the records to and from rows ------------------------------------ */

#define WEBHOOK_COLS "id, url, event_types, description, created_at"

/* A webhooks row (WEBHOOK_COLS) as a record; event_types is stored as a
 * JSON array of strings ([] when unreadable).  0, or -1 out of memory. */
static int webhook_from_row(void *item, sqlite3_stmt *st)
{
    ll_webhook *w = item;
    json_t *types = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL), *t;
    int oom = 0;
    size_t i;

    w->id = sqlite3_column_int64(st, 0);
    w->url = reg_dup_col(st, 1, &oom);
    w->description = reg_dup_col(st, 3, &oom);
    reg_copy_col(w->created_at, sizeof(w->created_at), st, 4);
    json_array_foreach(types, i, t)
    {
        if (json_is_string(t) && ll_names_add(&w->event_types, json_string_value(t)) < 0)
            oom = 1;
    }
    json_decref(types);
    return oom ? -1 : 0;
}

/* types as the column stores them: a compact JSON array (new string). */
static char *types_text(const ll_names *types)
{
    json_t *a = json_array();
    for (size_t i = 0; types && i < types->n; i++)
        json_array_append_new(a, json_string(types->v[i]));
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

void ll_registry_webhook_clear(ll_webhook *w)
{
    if (!w)
        return;
    free(w->url);
    free(w->description);
    ll_names_clear(&w->event_types);
    memset(w, 0, sizeof(*w));
}

static void webhook_clear(void *item)
{
    ll_registry_webhook_clear(item);
}

void ll_registry_webhooks_free(ll_webhook *items, size_t n)
{
    reg_records_free(items, n, sizeof(*items), webhook_clear);
}

#define WEBHOOK_RECORDS                                                                            \
    {                                                                                              \
        .size = sizeof(ll_webhook), .from_row = webhook_from_row, .clear = webhook_clear           \
    }

/* 1 when type matches one of patterns (types, or prefixes ending in '*'). */
static int type_matches(const ll_names *patterns, const char *type)
{
    for (size_t i = 0; i < patterns->n; i++) {
        const char *s = patterns->v[i];
        size_t n = strlen(s);
        if (n && s[n - 1] == '*' ? strncmp(s, type, n - 1) == 0 : strcmp(s, type) == 0)
            return 1;
    }
    return 0;
}

/* The first column of the first row, as a long long payload points to; -1
 * stays when it is NULL. */
static int first_int(sqlite3_stmt *st, void *payload)
{
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *(long long *)payload = sqlite3_column_int64(st, 0);
    return 0;
}

/* The webhooks and what each subscribed to. */
typedef struct hook_set {
    ll_webhook *v;
    size_t n;
} hook_set;

static int subscriptions(hook_set *out, ll_registry *r)
{
    reg_records l = WEBHOOK_RECORDS;
    int error = reg_rows(r, "read webhooks", reg_collect, &l,
                         "SELECT " WEBHOOK_COLS " FROM webhooks", NULL);
    return reg_records_finish((void **)&out->v, &out->n, &l, error);
}

/* Stores one event and a pending delivery for every subscription in subs
 * whose types match; inside the caller's transaction.  tenant NULL: an
 * event of no single tenant (stored as ''). */
static int store_event(ll_registry *r, const hook_set *subs, const char *type, const char *tenant,
                       const json_t *data, const char *now, long long now_ms)
{
    char *text = json_dumps(data, JSON_COMPACT);
    long long event_id = -1;
    int error;

    /* Run for every state transition the follower stores: the statements
     * stay prepared in the registry's cache. */
    error = reg_rows(r, "store event", first_int, &event_id,
                     "INSERT INTO events (type, tenant_id, data, created_at) VALUES (?, ?, ?, ?) "
                     "RETURNING id",
                     "ssss", type, tenant ? tenant : "", text ? text : "{}", now);
    for (size_t k = 0; error >= 0 && k < subs->n; k++) {
        if (type_matches(&subs->v[k].event_types, type))
            error = reg_rows(r, "queue delivery", NULL, NULL,
                             "INSERT INTO deliveries (webhook_id, event_id, state, next_at_ms, "
                             "created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                             "IIIss", subs->v[k].id, event_id, now_ms, now, now);
    }
    free(text);
    return error < 0 ? error : 0;
}

int reg_store_events(ll_registry *r, const ll_event_note *events, size_t n, long long rollout,
                     const char *at)
{
    hook_set subs = {NULL, 0};
    char now[32];
    int error = 0;

    if (!n)
        return 0;
    if ((error = subscriptions(&subs, r)) < 0)
        return error;
    ll_now_rfc3339(now);
    for (size_t i = 0; i < n && error == 0; i++) {
        /* The note's data, with the rollout and when added to a copy. */
        json_t *data = events[i].data ? json_deep_copy(events[i].data) : json_object();
        if (!data) {
            error = ll_error_set(-1, "out of memory");
            break;
        }
        if (rollout > 0)
            json_object_set_new(data, "rollout", json_integer(rollout));
        if (at)
            json_object_set_new(data, "at", json_string(at));
        error = store_event(r, &subs, events[i].type, events[i].tenant, data, now, ll_wall_ms());
        json_decref(data);
    }
    ll_registry_webhooks_free(subs.v, subs.n);
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
 * inside the caller's transaction. */
static int store_transition(ll_registry *r, const hook_set *subs, const ll_transition *t,
                            const char *now, long long now_ms)
{
    char type[80];
    int error = reg_rows(r, "store a tenant's state", NULL, NULL,
                         "UPDATE tenants SET observed_state = ?, observed_since = ? WHERE id = ?",
                         "sss", ll_tenant_state_name(t->state), t->since, t->tenant);
    if (error < 0)
        return error;
    json_t *data = transition_data(t);
    transition_type(type, sizeof(type), t);
    error = store_event(r, subs, type, t->tenant, data, now, now_ms);
    json_decref(data);
    return error;
}

int ll_registry_record_transitions(ll_registry *r, const ll_transition *t, size_t n,
                                   long long now_ms)
{
    hook_set subs = {NULL, 0};
    char now[32];
    int error;

    if (!n)
        return 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    error = subscriptions(&subs, r);
    for (size_t i = 0; i < n && error == 0; i++)
        error = store_transition(r, &subs, &t[i], now, now_ms);
    ll_registry_webhooks_free(subs.v, subs.n);
    if (error < 0) {
        reg_rollback(r);
        return error;
    }
    return reg_commit(r);
}

/* An events row (id, type, tenant_id, data, created_at) as a record; 0, or
 * -1 when out of memory. */
static int event_from_row(void *item, sqlite3_stmt *st)
{
    ll_event *out = item;
    const char *data = (const char *)sqlite3_column_text(st, 3);
    out->id = sqlite3_column_int64(st, 0);
    reg_copy_col(out->type, sizeof(out->type), st, 1);
    reg_copy_col(out->tenant, sizeof(out->tenant), st, 2);
    reg_copy_col(out->created_at, sizeof(out->created_at), st, 4);
    out->data = strdup(data ? data : "{}");
    return out->data ? 0 : -1;
}

static void event_clear(void *item)
{
    free(((ll_event *)item)->data);
}

void ll_registry_events_free(ll_event *events, size_t count)
{
    reg_records_free(events, count, sizeof(*events), event_clear);
}

int ll_registry_events_after(ll_event **out, size_t *count, ll_registry *r, long long after,
                             int limit)
{
    reg_records l = {.size = sizeof(ll_event), .from_row = event_from_row, .clear = event_clear};
    int error = 0;

    if (limit > 0)
        error = reg_rows(r, "read events", reg_collect, &l,
                         "SELECT id, type, tenant_id, data, created_at FROM events WHERE id > ? "
                         "ORDER BY id LIMIT ?",
                         "Ii", after, limit);
    return reg_records_finish((void **)out, count, &l, error);
}

int ll_registry_events_last(long long *out, ll_registry *r)
{
    int error;
    *out = 0;
    error = reg_rows(r, "read the last event", first_int, out,
                     "SELECT coalesce(max(id), 0) FROM events", NULL);
    return error < 0 ? error : 0;
}

int ll_registry_events_prune(ll_registry *r, long long keep)
{
    char sql[200];
    snprintf(sql, sizeof(sql),
             "DELETE FROM events WHERE id <= (SELECT coalesce(max(id), 0) FROM events) - %lld",
             keep);
    return reg_exec(r, sql);
}

/* --- state counts ---------------------------------------------------------------- */

static int state_count_from_row(void *item, sqlite3_stmt *st)
{
    ll_state_count *c = item;
    int oom = 0;
    c->tier = reg_dup_col(st, 0, &oom);
    c->state = reg_dup_col(st, 1, &oom);
    c->count = sqlite3_column_int64(st, 2);
    return oom ? -1 : 0;
}

static void state_count_clear(void *item)
{
    ll_state_count *c = item;
    free(c->tier);
    free(c->state);
}

void ll_registry_state_counts_free(ll_state_count *counts, size_t n)
{
    reg_records_free(counts, n, sizeof(*counts), state_count_clear);
}

int ll_registry_state_counts(ll_state_count **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {.size = sizeof(ll_state_count),
                     .from_row = state_count_from_row,
                     .clear = state_count_clear};
    int error = reg_rows(r, "count states", reg_collect, &l,
                         "SELECT tier, coalesce(observed_state, CASE lifecycle WHEN 'active' "
                         "THEN 'unknown' ELSE lifecycle END) AS state, count(*) FROM tenants "
                         "GROUP BY 1, 2 ORDER BY 1, 2",
                         NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

/* --- webhooks -------------------------------------------------------------------- */

/* reg_row_fn: the first row into the webhook payload points to. */
static int webhook_one(sqlite3_stmt *st, void *payload)
{
    ll_webhook *w = payload;
    if (w->url)
        return 0;
    return webhook_from_row(w, st) < 0 ? ll_error_set(-1, "out of memory") : 0;
}

int ll_registry_webhook_create(ll_webhook *out, ll_registry *r, const char *url, const char *secret,
                               const ll_names *types, const char *description)
{
    char now[32], *types_json = types_text(types);
    int error;

    memset(out, 0, sizeof(*out));
    ll_now_rfc3339(now);
    /* Outside a transaction the insert commits when the statement ends,
     * after its RETURNING row: only the loop's end (SQLITE_DONE) says it
     * is stored. */
    error = reg_rows(r, "store webhook", webhook_one, out,
                     "INSERT INTO webhooks (url, secret, event_types, description, "
                     "created_at) VALUES (?, ?, ?, ?, ?) RETURNING " WEBHOOK_COLS,
                     "sssss", url, secret, types_json ? types_json : "[]",
                     description ? description : "", now);
    if (error == 0)
        error = reg_db_error(r, "store webhook");
    free(types_json);
    if (error < 0) {
        ll_registry_webhook_clear(out);
        return error;
    }
    return 0;
}

int ll_registry_webhook_list(ll_webhook **out, size_t *out_n, ll_registry *r)
{
    reg_records l = WEBHOOK_RECORDS;
    int error = reg_rows(r, "list webhooks", reg_collect, &l,
                         "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id", NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

int ll_registry_webhook_get(ll_webhook *out, ll_registry *r, long long id)
{
    int error;
    memset(out, 0, sizeof(*out));
    error = reg_rows(r, "read webhook", webhook_one, out,
                     "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?", "I", id);
    if (error == 0)
        error = ll_error_set(LL_ENOTFOUND, "no webhook %lld", id);
    if (error < 0) {
        ll_registry_webhook_clear(out);
        return error;
    }
    return 0;
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

/* --- deliveries: the records to and from rows ------------------------------------- */

static const char *const delivery_states[] = {"pending", "delivered", "failed"};

const char *ll_delivery_state_name(ll_delivery_state s)
{
    return (unsigned)s < 3 ? delivery_states[s] : "pending";
}

/* The state named name; only the three names are ever stored. */
static ll_delivery_state delivery_state_of(const char *name)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, delivery_states[i]) == 0)
            return (ll_delivery_state)i;
    return LL_DELIVERY_PENDING;
}

#define DELIVERY_COLS                                                                              \
    "d.id, d.webhook_id, d.event_id, d.state, d.attempts, d.last_status, d.last_error, "           \
    "d.created_at, d.updated_at, e.type"

/* A deliveries row (DELIVERY_COLS) as a record; 0, or -1 out of memory. */
static int delivery_from_row(void *item, sqlite3_stmt *st)
{
    ll_delivery *d = item;
    int oom = 0;
    d->id = sqlite3_column_int64(st, 0);
    d->webhook = sqlite3_column_int64(st, 1);
    d->event = sqlite3_column_int64(st, 2);
    d->state = delivery_state_of((const char *)sqlite3_column_text(st, 3));
    d->attempts = sqlite3_column_int(st, 4);
    d->last_status = sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 5);
    d->last_error = reg_dup_col(st, 6, &oom);
    reg_copy_col(d->created_at, sizeof(d->created_at), st, 7);
    reg_copy_col(d->updated_at, sizeof(d->updated_at), st, 8);
    reg_copy_col(d->event_type, sizeof(d->event_type), st, 9);
    return oom ? -1 : 0;
}

/* A due delivery's row: DELIVERY_COLS, then the webhook's url and secret,
 * the event's data ("{}" when none), created_at and tenant. */
static int due_from_row(void *item, sqlite3_stmt *st)
{
    ll_delivery *d = item;
    int oom = delivery_from_row(d, st) < 0;
    d->url = reg_dup_col(st, 10, &oom);
    d->secret = reg_dup_col(st, 11, &oom);
    d->data = reg_dup_col(st, 12, &oom);
    if (!d->data && !oom && !(d->data = strdup("{}")))
        oom = 1;
    reg_copy_col(d->event_created_at, sizeof(d->event_created_at), st, 13);
    reg_copy_col(d->tenant, sizeof(d->tenant), st, 14);
    return oom ? -1 : 0;
}

static void delivery_clear(void *item)
{
    ll_delivery *d = item;
    free(d->last_error);
    free(d->url);
    free(d->secret);
    free(d->data);
}

void ll_registry_deliveries_free(ll_delivery *items, size_t n)
{
    reg_records_free(items, n, sizeof(*items), delivery_clear);
}

int ll_registry_deliveries(ll_delivery **out, size_t *out_n, ll_registry *r, long long webhook,
                           long long before, int limit)
{
    reg_records l = {
        .size = sizeof(ll_delivery), .from_row = delivery_from_row, .clear = delivery_clear};
    int error = reg_rows(r, "list deliveries", reg_collect, &l,
                         "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.id = "
                         "d.event_id WHERE d.webhook_id = ? AND d.id < ? ORDER BY d.id DESC "
                         "LIMIT ?",
                         "IIi", webhook, before > 0 ? before : (long long)1 << 62, limit);
    return reg_records_finish((void **)out, out_n, &l, error);
}

int ll_registry_deliveries_due(ll_delivery **out, size_t *out_n, ll_registry *r, long long now_ms,
                               int limit)
{
    reg_records l = {
        .size = sizeof(ll_delivery), .from_row = due_from_row, .clear = delivery_clear};
    /* Polled by the deliverer after every batch of events: prepared once. */
    int error = reg_rows(r, "read due deliveries", reg_collect, &l,
                         "SELECT " DELIVERY_COLS ", w.url, w.secret, e.data, e.created_at, "
                         "e.tenant_id FROM "
                         "deliveries d JOIN events e ON e.id = d.event_id JOIN webhooks w ON "
                         "w.id = d.webhook_id WHERE d.state = 'pending' AND d.next_at_ms <= ? "
                         "ORDER BY d.next_at_ms, d.id LIMIT ?",
                         "Ii", now_ms, limit);
    return reg_records_finish((void **)out, out_n, &l, error);
}

long long ll_registry_deliveries_next_due(ll_registry *r)
{
    long long next = -1;
    if (reg_rows(r, "read the next due delivery", first_int, &next,
                 "SELECT min(next_at_ms) FROM deliveries WHERE state = 'pending'", NULL) < 0)
        return -1;
    return next;
}

int ll_registry_delivery_attempted(ll_registry *r, long long id, ll_delivery_state state,
                                   int attempts, long long next_at_ms, int status,
                                   const char *error_text)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_prepare(&st, r,
                             "UPDATE deliveries SET state = ?, attempts = ?, next_at_ms = ?, "
                             "last_status = ?, last_error = ?, updated_at = ? WHERE id = ?")) < 0)
        return error;
    reg_bind_text(st, 1, ll_delivery_state_name(state));
    sqlite3_bind_int(st, 2, attempts);
    sqlite3_bind_int64(st, 3, next_at_ms);
    if (status > 0)
        sqlite3_bind_int(st, 4, status);
    else
        sqlite3_bind_null(st, 4);
    reg_bind_text(st, 5, error_text);
    reg_bind_text(st, 6, now);
    sqlite3_bind_int64(st, 7, id);
    error = reg_step_rows(r, st, "record delivery", NULL, NULL);
    return error < 0 ? error : 0;
}

/* registry.c - the tenant store: the tenants table, read as typed records
 * (ll_tenant_record) and written inside the transactions of its callers.
 *
 * A tenants row becomes a record in one place (tenant_of_row), and a record
 * becomes the JSON the status follower and the API's views start from in
 * one place (ll_tenant_record_json); lifecycle, sync and origin are enums
 * whose names exist only in those conversions (and the SQL).  values stay
 * an opaque JSON value, stored as text.
 *
 * The store reads what it is given: onboard, update and offboard compose
 * their transactions in tenant_writes.c, which hands the store the chart
 * version the tenant's file carries (reg_tenant_put, reg_tenant_set_desired),
 * so this file calls no other store.  Scans of the repository write through
 * ll_registry_reconcile, in one transaction of their own.  The outbox
 * (operations: queued, attempted, finished) is outbox.c.
 *
 * Connections, statements and errors: db.c.  One connection per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "registry_int.h"

/* --- tenant records ------------------------------------------------------ */

static const char *const lifecycle_names[] = {"active", "offboarding", "offboarded", "drifted"};
static const char *const sync_names[] = {"pending", "committed", "failed"};
static const char *const origin_names[] = {"api", "adopted"};

/* The index of s in names (n of them) into *out; LL_EINVALID when none. */
static int parse_name(int *out, const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return LL_EINVALID;
}

/* names[i], or "unknown" out of range. */
static const char *name_of(const char *const *names, int n, int i)
{
    return i >= 0 && i < n ? names[i] : "unknown";
}

#define NAMES_OF(a) a, (int)(sizeof(a) / sizeof(*(a)))

const char *ll_tenant_lifecycle_name(ll_tenant_lifecycle l)
{
    return name_of(NAMES_OF(lifecycle_names), (int)l);
}

int ll_tenant_lifecycle_parse(ll_tenant_lifecycle *out, const char *s)
{
    int i, error = parse_name(&i, NAMES_OF(lifecycle_names), s);
    if (error == 0)
        *out = (ll_tenant_lifecycle)i;
    return error;
}

const char *ll_tenant_sync_name(ll_tenant_sync s)
{
    return name_of(NAMES_OF(sync_names), (int)s);
}

int ll_tenant_sync_parse(ll_tenant_sync *out, const char *s)
{
    int i, error = parse_name(&i, NAMES_OF(sync_names), s);
    if (error == 0)
        *out = (ll_tenant_sync)i;
    return error;
}

const char *ll_tenant_origin_name(ll_tenant_origin o)
{
    return name_of(NAMES_OF(origin_names), (int)o);
}

int ll_tenant_origin_parse(ll_tenant_origin *out, const char *s)
{
    int i, error = parse_name(&i, NAMES_OF(origin_names), s);
    if (error == 0)
        *out = (ll_tenant_origin)i;
    return error;
}

void ll_tenant_record_clear(ll_tenant_record *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->tier);
    free(t->release);
    json_decref(t->values);
    free(t->commit);
    free(t->created_at);
    free(t->updated_at);
    free(t->offboarded_at);
    free(t->path);
    free(t->observed_state);
    free(t->observed_since);
    free(t->chart_version);
    for (size_t i = 0; i < t->n_commits; i++) {
        free(t->commits[i].sha);
        free(t->commits[i].operation);
        free(t->commits[i].at);
    }
    free(t->commits);
    memset(t, 0, sizeof(*t));
}

void ll_tenant_records_free(ll_tenant_record *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        ll_tenant_record_clear(&items[i]);
    free(items);
}

/* A string, or null (NULL); never fails for a NULL s. */
static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *ll_tenant_record_json(const ll_tenant_record *t)
{
    json_t *j = json_object();

    json_object_set_new(j, "id", string_or_null(t->id));
    json_object_set_new(j, "tier", string_or_null(t->tier));
    json_object_set_new(j, "release", string_or_null(t->release));
    json_object_set(j, "values", t->values);
    json_object_set_new(j, "lifecycle", json_string(ll_tenant_lifecycle_name(t->lifecycle)));
    json_object_set_new(j, "sync", json_string(ll_tenant_sync_name(t->sync)));
    json_object_set_new(j, "commit", string_or_null(t->commit));
    json_object_set_new(j, "operation", t->operation ? json_integer(t->operation) : json_null());
    json_object_set_new(j, "created_at", string_or_null(t->created_at));
    json_object_set_new(j, "updated_at", string_or_null(t->updated_at));
    json_object_set_new(j, "offboarded_at", string_or_null(t->offboarded_at));
    json_object_set_new(j, "origin", json_string(ll_tenant_origin_name(t->origin)));
    json_object_set_new(j, "path", string_or_null(t->path));
    json_object_set_new(j, "observed_state", string_or_null(t->observed_state));
    json_object_set_new(j, "observed_since", string_or_null(t->observed_since));
    json_object_set_new(j, "etag", json_string(t->etag));
    json_object_set_new(j, "chart_version", string_or_null(t->chart_version));
    if (t->has_commits) {
        json_t *list = json_array();
        for (size_t i = 0; i < t->n_commits; i++)
            json_array_append_new(list, json_pack("{s:o, s:o, s:o}", "sha",
                                                  string_or_null(t->commits[i].sha), "operation",
                                                  string_or_null(t->commits[i].operation), "at",
                                                  string_or_null(t->commits[i].at)));
        json_object_set_new(j, "commits", list);
    }
    return j;
}

/* --- tenants: from the SQL row ---------------------------------------------- */

#define TENANT_COLS                                                                                \
    "id, tier, release, values_json, lifecycle, sync, commit_sha, operation_id, created_at, "      \
    "updated_at, offboarded_at, origin, path, observed_state, observed_since, chart_version"

/* Column i as a new string, or NULL. */
/* The one conversion of a tenants row (TENANT_COLS) into a record. */
static int tenant_of_row(ll_tenant_record *t, sqlite3_stmt *st)
{
    const char *vj = (const char *)sqlite3_column_text(st, 3);

    memset(t, 0, sizeof(*t));
    t->values = vj ? json_loads(vj, 0, NULL) : NULL;
    if (!t->values)
        t->values = json_object();
    t->id = reg_dup_col(st, 0, NULL);
    t->tier = reg_dup_col(st, 1, NULL);
    t->release = reg_dup_col(st, 2, NULL);
    /* The schema's CHECK constraints admit only the names known here. */
    ll_tenant_lifecycle_parse(&t->lifecycle, (const char *)sqlite3_column_text(st, 4));
    ll_tenant_sync_parse(&t->sync, (const char *)sqlite3_column_text(st, 5));
    t->commit = reg_dup_col(st, 6, NULL);
    t->operation = sqlite3_column_type(st, 7) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 7);
    t->created_at = reg_dup_col(st, 8, NULL);
    t->updated_at = reg_dup_col(st, 9, NULL);
    t->offboarded_at = reg_dup_col(st, 10, NULL);
    ll_tenant_origin_parse(&t->origin, (const char *)sqlite3_column_text(st, 11));
    t->path = reg_dup_col(st, 12, NULL);
    t->observed_state = reg_dup_col(st, 13, NULL);
    t->observed_since = reg_dup_col(st, 14, NULL);
    t->chart_version = reg_dup_col(st, 15, NULL);
    {
        /* The version of the desired state: what If-Match compares. */
        const char *parts[] = {(const char *)sqlite3_column_text(st, 1),
                               (const char *)sqlite3_column_text(st, 2),
                               vj,
                               (const char *)sqlite3_column_text(st, 4),
                               (const char *)sqlite3_column_text(st, 7),
                               (const char *)sqlite3_column_text(st, 12)};
        ll_etag_of(t->etag, parts, 6);
    }
    if (!t->id || !t->values) {
        ll_tenant_record_clear(t);
        return ll_error_set(-1, "out of memory");
    }
    return 0;
}

/* --- tenants: reads --------------------------------------------------------- */

static int commit_row(sqlite3_stmt *st, void *payload)
{
    ll_tenant_record *t = payload;
    ll_tenant_commit *grown = realloc(t->commits, (t->n_commits + 1) * sizeof(*grown));
    if (!grown)
        return ll_error_set(-1, "out of memory");
    t->commits = grown;
    t->commits[t->n_commits++] = (ll_tenant_commit){
        .sha = reg_dup_col(st, 0, NULL),
        .operation = reg_dup_col(st, 1, NULL),
        .at = reg_dup_col(st, 2, NULL),
    };
    return 0;
}

/* Its own operations, and the rollout operations that moved it. */
static int tenant_commits(ll_tenant_record *t, ll_registry *r, const char *id)
{
    int error;
    t->has_commits = 1;
    error = reg_rows(r, "read commits", commit_row, t,
                     "SELECT commit_sha, kind, updated_at, id FROM operations WHERE "
                     "tenant_id = ?1 AND state = 'pushed' UNION ALL SELECT o.commit_sha, "
                     "o.kind, o.updated_at, o.id FROM operation_tenants ot JOIN operations "
                     "o ON o.id = ot.operation_id WHERE ot.tenant_id = ?1 AND o.state = "
                     "'pushed' ORDER BY 4",
                     "s", id);
    return error < 0 ? error : 0;
}

static int one_tenant(sqlite3_stmt *st, void *payload)
{
    return tenant_of_row(payload, st);
}

int ll_registry_tenant_get(ll_tenant_record *out, ll_registry *r, const char *id, int with_commits)
{
    ll_tenant_record t = {0};
    int error = reg_rows(r, "read tenant", one_tenant, &t,
                         "SELECT " TENANT_COLS " FROM tenants WHERE id = ?", "s", id);

    memset(out, 0, sizeof(*out));
    if (error == 0)
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%s'", id);
    if (error > 0)
        error = with_commits ? tenant_commits(&t, r, id) : 0;
    if (error < 0) {
        ll_tenant_record_clear(&t);
        return error;
    }
    *out = t;
    return 0;
}

/* Records gathered from rows, at most limit; the row past them names the
 * next page. */
typedef struct tenant_page {
    ll_tenant_record *items;
    size_t n, cap;
    int limit, more;
} tenant_page;

static int page_row(sqlite3_stmt *st, void *payload)
{
    tenant_page *p = payload;
    if ((int)p->n == p->limit) {
        p->more = 1;
        return 0;
    }
    if (ll_grow((void **)&p->items, &p->cap, p->n, sizeof(*p->items)) < 0)
        return -1;
    int error = tenant_of_row(&p->items[p->n], st);
    if (error == 0)
        p->n++;
    return error;
}

int ll_registry_tenant_list(ll_tenant_record **out_items, size_t *out_count, char **out_next,
                            ll_registry *r, const char *tier, int lifecycle, const char *after,
                            int limit)
{
    tenant_page page = {.limit = limit};
    int error;

    *out_items = NULL;
    *out_count = 0;
    *out_next = NULL;
    error =
        reg_rows(r, "list tenants", page_row, &page,
                 "SELECT " TENANT_COLS " FROM tenants WHERE (?1 IS NULL OR tier = ?1) AND "
                 "(?2 IS NULL OR lifecycle = ?2) AND (?3 IS NULL OR id > ?3) "
                 "ORDER BY id LIMIT ?4",
                 "sssi", tier,
                 lifecycle < 0 ? NULL : ll_tenant_lifecycle_name((ll_tenant_lifecycle)lifecycle),
                 after, limit + 1);
    if (error >= 0 && page.more && page.n > 0 && !(*out_next = strdup(page.items[page.n - 1].id)))
        error = ll_error_set(-1, "out of memory");
    if (error < 0) {
        ll_tenant_records_free(page.items, page.n);
        return error;
    }
    *out_items = page.items;
    *out_count = page.n;
    return 0;
}

static int tier_count_from_row(void *item, sqlite3_stmt *st)
{
    ll_tier_count *c = item;
    int oom = 0;
    c->tier = reg_dup_col(st, 0, &oom);
    c->count = sqlite3_column_int64(st, 1);
    return oom ? -1 : 0;
}

static void tier_count_clear(void *item)
{
    free(((ll_tier_count *)item)->tier);
}

void ll_registry_tier_counts_free(ll_tier_count *v, size_t n)
{
    reg_records_free(v, n, sizeof(*v), tier_count_clear);
}

long long ll_tier_count_of(const ll_tier_count *v, size_t n, const char *tier)
{
    for (size_t i = 0; tier && i < n; i++) {
        if (v[i].tier && strcmp(v[i].tier, tier) == 0)
            return v[i].count;
    }
    return 0;
}

int ll_registry_tenant_counts(ll_tier_count **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {
        .size = sizeof(ll_tier_count), .from_row = tier_count_from_row, .clear = tier_count_clear};
    int error = reg_rows(r, "count tenants", reg_collect, &l,
                         "SELECT tier, count(*) FROM tenants WHERE lifecycle != 'offboarded' "
                         "GROUP BY tier",
                         NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

/* --- tenants: writes inside the caller's transaction ---------------------------- */

int reg_tenant_put(ll_registry *r, const ll_tenant_desired *d, const char *values_json,
                   const char *chart, long long op, const char *now, int revive)
{
    char opid[32];
    snprintf(opid, sizeof(opid), "%lld", op);
    if (revive) {
        const char *p[] = {d->tier, d->release, values_json, opid, now, chart, d->id};
        return reg_run(r,
                       "UPDATE tenants SET tier = ?, release = ?, values_json = ?, lifecycle = "
                       "'active', sync = 'pending', origin = 'api', operation_id = ?, updated_at = "
                       "?, offboarded_at = NULL, path = NULL, chart_version = ? WHERE id = ?",
                       7, p);
    }
    const char *p[] = {d->id, d->tier, d->release, values_json, opid, now, now, chart};
    return reg_run(r,
                   "INSERT INTO tenants (id, tier, release, values_json, lifecycle, sync, "
                   "operation_id, created_at, updated_at, chart_version) VALUES (?, ?, ?, ?, "
                   "'active', 'pending', ?, ?, ?, ?)",
                   8, p);
}

int reg_tenant_set_desired(ll_registry *r, const ll_tenant_desired *d, const char *values_json,
                           const char *chart, long long op, const char *now)
{
    char opid[32];
    snprintf(opid, sizeof(opid), "%lld", op);
    /* A tier change writes the file where the configured layout puts it. */
    const char *p[] = {d->tier, d->release, values_json, opid, now, d->id, chart};
    return reg_run(r,
                   "UPDATE tenants SET tier = ?1, release = ?2, values_json = ?3, sync = "
                   "'pending', operation_id = ?4, updated_at = ?5, path = CASE WHEN tier = ?1 "
                   "THEN path ELSE NULL END, chart_version = ?7 WHERE id = ?6",
                   7, p);
}

int reg_tenant_set_offboarding(ll_registry *r, const char *id, long long op, const char *now)
{
    char opid[32];
    snprintf(opid, sizeof(opid), "%lld", op);
    const char *p[] = {opid, now, id};
    return reg_run(r,
                   "UPDATE tenants SET lifecycle = 'offboarding', sync = 'pending', "
                   "operation_id = ?, updated_at = ? WHERE id = ?",
                   3, p);
}

/* Rows of the follower's poll: records, and the newest change. */
typedef struct changed_rows {
    ll_tenant_record *v;
    size_t n, cap;
    long long top;
} changed_rows;

static int changed_row(sqlite3_stmt *st, void *payload)
{
    changed_rows *c = payload;
    int error;
    if (ll_grow((void **)&c->v, &c->cap, c->n, sizeof(*c->v)) < 0)
        return -1;
    if ((error = tenant_of_row(&c->v[c->n], st)) < 0)
        return error;
    c->n++;
    if (sqlite3_column_int64(st, 16) > c->top)
        c->top = sqlite3_column_int64(st, 16);
    return 0;
}

int ll_registry_tenants_changed(ll_tenant_record **out, size_t *out_n, long long *seq,
                                ll_registry *r)
{
    changed_rows c = {NULL, 0, 0, *seq < 0 ? 0 : *seq};
    /* The follower's poll, every round: prepared once (both forms). */
    int error = reg_rows(r, "read changed tenants", changed_row, &c,
                         *seq < 0 ? "SELECT " TENANT_COLS ", (SELECT coalesce(max(seq), 0) FROM "
                                    "tenant_changes) FROM tenants WHERE ? < 0"
                                  : "SELECT " TENANT_COLS ", (SELECT max(seq) FROM "
                                    "tenant_changes WHERE tenant_id = tenants.id) FROM tenants "
                                    "WHERE id IN (SELECT tenant_id FROM tenant_changes WHERE "
                                    "seq > ?)",
                         "I", *seq);
    *out = NULL;
    *out_n = 0;
    if (error < 0) {
        ll_tenant_records_free(c.v, c.n);
        return error;
    }
    *out = c.v;
    *out_n = c.n;
    *seq = c.top;
    return 0;
}

int ll_registry_tenant_changes_prune(ll_registry *r, long long upto)
{
    char sql[120];
    snprintf(sql, sizeof(sql), "DELETE FROM tenant_changes WHERE seq <= %lld", upto);
    return reg_exec(r, sql);
}

/* A row (id, tier, lifecycle, sync) as an index entry; the CHECK
 * constraints of the tenants table keep the names to the enums'. */
static int index_from_row(void *item, sqlite3_stmt *st)
{
    ll_tenant_index_entry *e = item;
    reg_copy_col(e->id, sizeof(e->id), st, 0);
    reg_copy_col(e->tier, sizeof(e->tier), st, 1);
    ll_tenant_lifecycle_parse(&e->lifecycle, (const char *)sqlite3_column_text(st, 2));
    ll_tenant_sync_parse(&e->sync, (const char *)sqlite3_column_text(st, 3));
    return 0;
}

static void index_clear(void *item)
{
    (void)item; /* values only */
}

int ll_registry_tenant_index(ll_tenant_index_entry **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {
        .size = sizeof(ll_tenant_index_entry), .from_row = index_from_row, .clear = index_clear};
    /* BINARY collation: memcmp order, which is strcmp's. */
    int error = reg_rows(r, "index tenants", reg_collect, &l,
                         "SELECT id, tier, lifecycle, sync FROM tenants ORDER BY id", NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

/* An adopted file's chart version: its release as the range it reads
 * ("1.2" -> "1.2.x"), or the exact version. */
#define ADOPTED_CHART "CASE WHEN ?3 GLOB '*.*.*' THEN ?3 ELSE ?3 || '.x' END"

int ll_registry_reconcile(ll_registry *r, const ll_adoption *adopt, size_t n_adopt,
                          const ll_names *drifted, const ll_names *returned, const char *commit)
{
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    for (size_t i = 0; i < n_adopt; i++) {
        const ll_adoption *a = &adopt[i];
        char *values = a->values ? json_dumps(a->values, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        const char *p[] = {a->id,  a->tier, a->release, values ? values : "{}",
                           commit, now,     a->path};
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
            goto done;
    }
    for (size_t i = 0; drifted && i < drifted->n; i++) {
        const char *p[] = {now, drifted->v[i]};
        if ((error = reg_run(
                 r,
                 "UPDATE tenants SET lifecycle = 'drifted', updated_at = ? WHERE id = ? AND "
                 "lifecycle = 'active' AND sync = 'committed'",
                 2, p)) < 0)
            goto done;
    }
    for (size_t i = 0; returned && i < returned->n; i++) {
        const char *p[] = {now, returned->v[i]};
        if ((error =
                 reg_run(r,
                         "UPDATE tenants SET lifecycle = 'active', updated_at = ? WHERE id = ? AND "
                         "lifecycle = 'drifted'",
                         2, p)) < 0)
            goto done;
    }
    error = 0;
done:
    if (error < 0)
        reg_rollback(r);
    else
        error = reg_commit(r);
    return error;
}

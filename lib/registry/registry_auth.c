/* registry_auth.c - what identity and access keep in SQLite: the audit
 * log, stored answers of idempotent POSTs, tier changes queued in the
 * outbox, and tier descriptions.
 *
 * Same rules as registry.c: one connection per thread, bound parameters,
 * one BEGIN IMMEDIATE transaction for anything that must be atomic (a
 * tier change's checks and its operation; an idempotency key's check and
 * its reservation).
 *
 * Rows come back as typed records, each converted in one place: an audit
 * row in audit_item_from_row (ll_audit_item, with the operation the
 * request queued), a stored answer in idem_answer_from_row
 * (ll_idem_answer).  The API's JSON is built from them in lib/core/access.c.
 *
 * A reserved key whose answer (or release) cannot be stored, for lack of
 * space, would stay in flight and answer 409 to every retry until it
 * expired.  So what could not be stored is kept in memory (process-wide,
 * per database file) and stored before the key is looked at again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "registry_int.h"

/* --- audit --------------------------------------------------------------------------- */

int ll_registry_audit_add(ll_registry *r, const ll_audit_entry *e)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO audit (at, request_id, actor, actor_name, actor_email, "
                             "method, path, route, tenant_id, tier, status, problem, operation_id, "
                             "replayed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) < 0)
        return error;
    reg_bind_text(st, 1, now);
    reg_bind_text(st, 2, e->request_id);
    reg_bind_text(st, 3, e->actor);
    reg_bind_text(st, 4, e->actor_name);
    reg_bind_text(st, 5, e->actor_email);
    reg_bind_text(st, 6, e->method);
    reg_bind_text(st, 7, e->path);
    reg_bind_text(st, 8, e->route);
    reg_bind_text(st, 9, e->tenant);
    reg_bind_text(st, 10, e->tier);
    sqlite3_bind_int(st, 11, e->status);
    reg_bind_text(st, 12, e->problem);
    if (e->operation > 0)
        sqlite3_bind_int64(st, 13, e->operation);
    else
        sqlite3_bind_null(st, 13);
    sqlite3_bind_int(st, 14, e->replayed);
    error = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_db_error(r, "record audit");
    reg_finalize(r, st);
    return error;
}

/* A text column as a new string into *out (NULL for NULL).  -1 when
 * memory runs out. */
static int col_dup(char **out, sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    *out = t ? strdup((const char *)t) : NULL;
    return t && !*out ? -1 : 0;
}

/* The SELECT of ll_registry_audit_list: the audit columns, then the
 * operation's (NULL when the request queued none, or it is gone). */
#define AUDIT_COLUMNS                                                                              \
    "a.id, a.at, a.request_id, a.actor, a.actor_name, a.actor_email, a.method, a.path, a.route, "  \
    "a.tenant_id, a.tier, a.status, a.problem, a.replayed, a.operation_id, o.kind, o.state, "      \
    "o.commit_sha, o.author_name, o.author_email"

/* The audit row st (AUDIT_COLUMNS) as a record: the one place where an
 * audit row becomes C.  -1 when memory runs out (item then holds what was
 * copied, for ll_audit_page_free). */
static int audit_item_from_row(ll_audit_item *item, sqlite3_stmt *st)
{
    char **text[] = {&item->at,          &item->request_id, &item->actor, &item->actor_name,
                     &item->actor_email, &item->method,     &item->path,  &item->route,
                     &item->tenant,      &item->tier};
    char **op_text[] = {&item->op_kind, &item->op_state, &item->op_commit, &item->op_author_name,
                        &item->op_author_email};
    int error = 0;

    item->id = sqlite3_column_int64(st, 0);
    for (int i = 0; i < 10; i++)
        error |= col_dup(text[i], st, 1 + i);
    item->status = sqlite3_column_int(st, 11);
    error |= col_dup(&item->problem, st, 12);
    item->replayed = sqlite3_column_int(st, 13);
    /* An operation whose row was pruned reads as none. */
    if (sqlite3_column_type(st, 14) != SQLITE_NULL && sqlite3_column_type(st, 15) != SQLITE_NULL) {
        item->op_id = sqlite3_column_int64(st, 14);
        for (int i = 0; i < 5; i++)
            error |= col_dup(op_text[i], st, 15 + i);
    }
    return error ? ll_error_set(-1, "out of memory reading the audit log") : 0;
}

static void audit_item_free(ll_audit_item *item)
{
    char *text[] = {
        item->at,          item->request_id, item->actor,          item->actor_name,
        item->actor_email, item->method,     item->path,           item->route,
        item->tenant,      item->tier,       item->problem,        item->op_kind,
        item->op_state,    item->op_commit,  item->op_author_name, item->op_author_email};
    for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
        free(text[i]);
}

void ll_audit_page_free(ll_audit_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->count; i++)
        audit_item_free(&page->items[i]);
    free(page->items);
    memset(page, 0, sizeof(*page));
}

int ll_registry_audit_list(ll_audit_page *out, ll_registry *r, const ll_audit_filter *filter,
                           int limit)
{
    sqlite3_stmt *st = NULL;
    int error, rc;

    memset(out, 0, sizeof(*out));
    if (limit < 0)
        limit = 0;
    if (!(out->items = calloc((size_t)limit + 1, sizeof(*out->items))))
        return ll_error_set(-1, "out of memory reading the audit log");
    if ((error = reg_prepare(&st, r,
                             "SELECT " AUDIT_COLUMNS " FROM audit a LEFT JOIN operations o ON o.id "
                             "= a.operation_id WHERE (?1 IS NULL OR a.tenant_id = ?1) AND (?2 IS "
                             "NULL OR a.actor = ?2) AND (?3 IS NULL OR a.at >= ?3) AND (?4 IS NULL "
                             "OR a.at < ?4) AND (?5 = 0 OR a.id < ?5) ORDER BY a.id DESC LIMIT "
                             "?6")) < 0)
        goto done;
    reg_bind_text(st, 1, filter->tenant);
    reg_bind_text(st, 2, filter->actor);
    reg_bind_text(st, 3, filter->since);
    reg_bind_text(st, 4, filter->until);
    sqlite3_bind_int64(st, 5, filter->before);
    sqlite3_bind_int(st, 6, limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->count == (size_t)limit) {
            /* One more than asked for: the page goes on after the last. */
            out->next = out->count ? out->items[out->count - 1].id : 0;
            break;
        }
        error = audit_item_from_row(&out->items[out->count++], st);
        if (error < 0)
            goto done;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        error = reg_db_error(r, "list audit");
done:
    reg_finalize(r, st);
    if (error < 0)
        ll_audit_page_free(out);
    return error;
}

int ll_registry_audit_prune(ll_registry *r, const char *before)
{
    const char *p[] = {before};
    int n = reg_run(r, "DELETE FROM audit WHERE at < ?", 1, p);
    return n < 0 ? n : 0;
}

/* --- idempotency keys ----------------------------------------------------------------- */

void ll_idem_answer_clear(ll_idem_answer *a)
{
    if (!a)
        return;
    free(a->content_type);
    free(a->location);
    free(a->etag);
    free(a->body);
    memset(a, 0, sizeof(*a));
}

/* A copy of src (borrowed) into *dst, owning its strings.  -1 when memory
 * runs out (dst then holds what was copied, for ll_idem_answer_clear). */
static int idem_answer_copy(ll_idem_answer *dst, const ll_idem_answer *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->status = src->status;
    dst->len = src->len;
    if ((src->content_type && !(dst->content_type = strdup(src->content_type))) ||
        (src->location && !(dst->location = strdup(src->location))) ||
        (src->etag && !(dst->etag = strdup(src->etag))) || !(dst->body = malloc(src->len + 1)))
        return -1;
    if (src->len)
        memcpy(dst->body, src->body, src->len);
    dst->body[src->len] = '\0';
    return 0;
}

/* The stored answer of the idempotency_keys row st, its columns status,
 * content_type, location, etag, body from col on: the one place where a
 * stored answer becomes C.  -1 when memory runs out. */
static int idem_answer_from_row(ll_idem_answer *out, sqlite3_stmt *st, int col)
{
    const void *blob = sqlite3_column_blob(st, col + 4);
    ll_idem_answer row = {
        .status = sqlite3_column_int(st, col),
        .content_type = (char *)sqlite3_column_text(st, col + 1),
        .location = (char *)sqlite3_column_text(st, col + 2),
        .etag = (char *)sqlite3_column_text(st, col + 3),
        .body = blob ? (char *)blob : "",
        .len = blob ? (size_t)sqlite3_column_bytes(st, col + 4) : 0,
    };
    if (idem_answer_copy(out, &row) < 0) {
        ll_idem_answer_clear(out);
        return ll_error_set(-1, "out of memory reading an idempotent answer");
    }
    return 0;
}

static int idem_finish(ll_registry *r, const char *subject, const char *key,
                       const ll_idem_answer *a)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r,
                             "UPDATE idempotency_keys SET state = 'done', status = ?, content_type "
                             "= ?, location = ?, etag = ?, body = ? WHERE subject = ? AND key = ? "
                             "AND state = 'in_flight'")) < 0)
        return error;
    sqlite3_bind_int(st, 1, a->status);
    reg_bind_text(st, 2, a->content_type);
    reg_bind_text(st, 3, a->location);
    reg_bind_text(st, 4, a->etag);
    sqlite3_bind_blob(st, 5, a->body ? a->body : "", (int)a->len, SQLITE_TRANSIENT);
    reg_bind_text(st, 6, subject);
    reg_bind_text(st, 7, key);
    error = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_db_error(r, "store idempotent answer");
    reg_finalize(r, st);
    return error;
}

static int idem_release(ll_registry *r, const char *subject, const char *key)
{
    const char *p[] = {subject, key};
    int n = reg_run(r,
                    "DELETE FROM idempotency_keys WHERE subject = ? AND key = ? AND state = "
                    "'in_flight'",
                    2, p);
    return n < 0 ? n : 0;
}

/* A key's outcome that could not be stored: the answer (status > 0) or a
 * release (status 0), for the database file db. */
typedef struct idem_pending {
    struct idem_pending *next;
    char *db, *subject, *key;
    ll_idem_answer answer; /* owned */
} idem_pending;

#define IDEM_PENDING_MAX 1024

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static idem_pending *pending;

static void pending_free(idem_pending *p)
{
    if (!p)
        return;
    free(p->db);
    free(p->subject);
    free(p->key);
    ll_idem_answer_clear(&p->answer);
    free(p);
}

static int same_key(const idem_pending *p, const char *db, const char *subject, const char *key)
{
    return strcmp(p->db, db) == 0 && strcmp(p->subject, subject) == 0 && strcmp(p->key, key) == 0;
}

/* A pending outcome for (subject, key) of r's database, copying answer
 * (borrowed); NULL when memory runs out. */
static idem_pending *pending_new(ll_registry *r, const char *subject, const char *key,
                                 const ll_idem_answer *answer)
{
    const char *db = sqlite3_db_filename(r->db, "main");
    idem_pending *p = calloc(1, sizeof(*p));

    if (!p || !(p->db = strdup(db ? db : "")) || !(p->subject = strdup(subject)) ||
        !(p->key = strdup(key)) || idem_answer_copy(&p->answer, answer) < 0) {
        pending_free(p);
        return NULL;
    }
    return p;
}

/* Keeps (subject, key)'s outcome to be stored later; the last one wins. */
static void pending_add(ll_registry *r, const char *subject, const char *key,
                        const ll_idem_answer *answer)
{
    idem_pending *p = pending_new(r, subject, key, answer), **at;
    size_t n = 0;

    if (!p)
        return; /* out of memory: the key expires with its ttl */
    pthread_mutex_lock(&pending_lock);
    for (at = &pending; *at; at = &(*at)->next, n++) {
        if (same_key(*at, p->db, subject, key)) {
            idem_pending *old = *at;
            p->next = old->next;
            *at = p;
            pending_free(old);
            p = NULL;
            break;
        }
    }
    if (p && n >= IDEM_PENDING_MAX) {
        /* Bounded: the oldest is given up (its key expires with its ttl). */
        idem_pending *oldest = pending;
        pending = oldest->next;
        pending_free(oldest);
        for (at = &pending; *at; at = &(*at)->next)
            ;
    }
    if (p)
        *at = p;
    pthread_mutex_unlock(&pending_lock);
}

/* Stores the pending outcomes of r's database.  Returns the error of
 * (subject, key)'s own when that one still cannot be stored, else 0. */
static int pending_flush(ll_registry *r, const char *subject, const char *key)
{
    const char *db = sqlite3_db_filename(r->db, "main");
    int error = 0;

    pthread_mutex_lock(&pending_lock);
    for (idem_pending **at = &pending; *at;) {
        idem_pending *p = *at;
        int e = 0;
        if (strcmp(p->db, db ? db : "") != 0) {
            at = &p->next;
            continue;
        }
        e = p->answer.status > 0 ? idem_finish(r, p->subject, p->key, &p->answer)
                                 : idem_release(r, p->subject, p->key);
        if (e < 0) {
            if (same_key(p, p->db, subject, key))
                error = e;
            at = &p->next;
            continue;
        }
        *at = p->next;
        pending_free(p);
    }
    pthread_mutex_unlock(&pending_lock);
    return error;
}

int ll_registry_idem_finish(ll_registry *r, const char *subject, const char *key,
                            const ll_idem_answer *answer)
{
    int error = idem_finish(r, subject, key, answer);
    if (error < 0)
        pending_add(r, subject, key, answer);
    return error;
}

int ll_registry_idem_release(ll_registry *r, const char *subject, const char *key)
{
    static const ll_idem_answer released = {0};
    int error = idem_release(r, subject, key);
    if (error < 0)
        pending_add(r, subject, key, &released);
    return error;
}

/* Reserves (subject, key) for a request with fingerprint at now_ms, inside
 * the caller's transaction. */
static int idem_reserve(ll_registry *r, const char *subject, const char *key,
                        const char *fingerprint, long long now_ms)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r,
                             "INSERT OR REPLACE INTO idempotency_keys (subject, key, fingerprint, "
                             "state, created_at_ms) VALUES (?, ?, ?, 'in_flight', ?)")) < 0)
        return error;
    reg_bind_text(st, 1, subject);
    reg_bind_text(st, 2, key);
    reg_bind_text(st, 3, fingerprint);
    sqlite3_bind_int64(st, 4, now_ms);
    error = sqlite3_step(st) == SQLITE_DONE ? 0 : reg_db_error(r, "reserve idempotency key");
    reg_finalize(r, st);
    return error;
}

int ll_registry_idem_begin(ll_idem_state *out_state, ll_idem_answer *out_answer, ll_registry *r,
                           const char *subject, const char *key, const char *fingerprint,
                           long long now_ms, long long ttl_ms)
{
    sqlite3_stmt *st = NULL;
    int error, rc;

    *out_state = LL_IDEM_NEW;
    memset(out_answer, 0, sizeof(*out_answer));
    /* An outcome still unstored is stored first: else its key reads as in
     * flight; while it cannot be, neither can a new reservation. */
    if ((error = pending_flush(r, subject, key)) < 0)
        return error;
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = reg_prepare(&st, r,
                             "SELECT fingerprint, state, created_at_ms, status, content_type, "
                             "location, etag, body FROM idempotency_keys WHERE subject = ? AND key "
                             "= ?")) < 0)
        goto done;
    reg_bind_text(st, 1, subject);
    reg_bind_text(st, 2, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, 2) + ttl_ms > now_ms) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        if (!fp || strcmp(fp, fingerprint) != 0)
            *out_state = LL_IDEM_MISMATCH;
        else if (strcmp(state, "in_flight") == 0)
            *out_state = LL_IDEM_IN_FLIGHT;
        else if ((error = idem_answer_from_row(out_answer, st, 3)) == 0)
            *out_state = LL_IDEM_DONE;
        goto done;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "read idempotency key");
        goto done;
    }
    reg_finalize(r, st);
    st = NULL;
    /* New (or expired): reserve it for this request. */
    error = idem_reserve(r, subject, key, fingerprint, now_ms);
done:
    reg_finalize(r, st);
    if (error < 0)
        reg_rollback(r);
    else
        error = reg_commit(r);
    if (error < 0) {
        *out_state = LL_IDEM_NEW;
        ll_idem_answer_clear(out_answer);
    }
    return error;
}

int ll_registry_idem_prune(ll_registry *r, long long before_ms, int in_flight_too)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "DELETE FROM idempotency_keys WHERE created_at_ms < %lld%s",
             before_ms, in_flight_too ? " OR state = 'in_flight'" : "");
    return reg_exec(r, sql);
}

/* --- tiers ------------------------------------------------------------------------------ */

int ll_registry_tier_op(long long *out_op, ll_registry *r, const char *kind, const char *tier,
                        const char *payload, const ll_registry_author *author)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int error, rc;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = reg_prepare(&st, r,
                             "SELECT (SELECT count(*) FROM operations WHERE tenant_id = '' AND "
                             "tier = ?1 AND state = 'queued'), (SELECT count(*) FROM tenants "
                             "WHERE tier = ?1 AND lifecycle != 'offboarded')")) < 0)
        goto done;
    reg_bind_text(st, 1, tier);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        error = reg_db_error(r, "read tier");
        goto done;
    }
    if (sqlite3_column_int64(st, 0) > 0) {
        error = ll_error_set(LL_ECONFLICT, "a change to tier '%s' is still being pushed", tier);
        ll_error_hint("wait for it (GET /api/v1/operations/{id}) and try again");
        goto done;
    }
    if (strcmp(kind, "tier_delete") == 0 && sqlite3_column_int64(st, 1) > 0) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' still has %lld tenant(s)", tier,
                             (long long)sqlite3_column_int64(st, 1));
        ll_error_hint("offboard or move them first; only a tier without tenants can be deleted");
        goto done;
    }
    reg_finalize(r, st);
    st = NULL;
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                             "created_at, updated_at, author_name, author_email) VALUES (?, '', ?, "
                             "?, 'queued', ?, ?, ?, ?) RETURNING id")) < 0)
        goto done;
    reg_bind_text(st, 1, kind);
    reg_bind_text(st, 2, tier);
    reg_bind_text(st, 3, payload);
    reg_bind_text(st, 4, now);
    reg_bind_text(st, 5, now);
    reg_bind_text(st, 6, author->name);
    reg_bind_text(st, 7, author->email);
    if (sqlite3_step(st) != SQLITE_ROW) {
        error = reg_db_error(r, "queue operation");
        goto done;
    }
    *out_op = sqlite3_column_int64(st, 0);
done:
    reg_finalize(r, st);
    if (error < 0) {
        *out_op = 0;
        reg_rollback(r);
        return error;
    }
    return reg_commit(r);
}

static int tier_note_from_row(void *item, sqlite3_stmt *st)
{
    ll_tier_note *t = item;
    int oom = 0;
    t->name = reg_dup_col(st, 0, &oom);
    t->description = reg_dup_col(st, 1, &oom);
    return oom ? -1 : 0;
}

static void tier_note_clear(void *item)
{
    ll_tier_note *t = item;
    free(t->name);
    free(t->description);
}

void ll_registry_tier_notes_free(ll_tier_note *v, size_t n)
{
    reg_records_free(v, n, sizeof(*v), tier_note_clear);
}

const char *ll_tier_note_of(const ll_tier_note *v, size_t n, const char *tier)
{
    for (size_t i = 0; tier && i < n; i++) {
        if (v[i].name && strcmp(v[i].name, tier) == 0)
            return v[i].description;
    }
    return NULL;
}

int ll_registry_tier_info(ll_tier_note **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {
        .size = sizeof(ll_tier_note), .from_row = tier_note_from_row, .clear = tier_note_clear};
    int error = reg_rows(r, "read tier descriptions", reg_collect, &l,
                         "SELECT name, description FROM tier_info", NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

int reg_tier_finish(ll_registry *r, const ll_operation *op, const char *now)
{
    const char *desc = op->tier_op.description;
    int n;

    if (op->kind == LL_OP_TIER_DELETE) {
        const char *p[] = {op->tier};
        n = reg_run(r, "DELETE FROM tier_info WHERE name = ?", 1, p);
    } else {
        const char *p[] = {op->tier, desc ? desc : "", now};
        n = reg_run(r,
                    "INSERT INTO tier_info (name, description, updated_at) VALUES (?1, ?2, ?3) ON "
                    "CONFLICT (name) DO UPDATE SET description = ?2, updated_at = ?3",
                    3, p);
    }
    return n < 0 ? n : 0;
}

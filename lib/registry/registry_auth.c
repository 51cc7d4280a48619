/* registry_auth.c - what identity and access keep in SQLite: the audit
 * log, stored answers of idempotent POSTs, tier changes queued in the
 * outbox, and tier descriptions.
 *
 * Same rules as registry.c: one connection per thread, bound parameters,
 * one BEGIN IMMEDIATE transaction for anything that must be atomic (a
 * tier change's checks and its operation; an idempotency key's check and
 * its reservation).
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

/* outcome: what became of the request, from its status and operation. */
static const char *outcome(int status, const char *op_state)
{
    if (status >= 500)
        return "failed";
    if (status >= 400)
        return "refused";
    if (op_state && strcmp(op_state, "queued") == 0)
        return "pending";
    if (op_state && strcmp(op_state, "failed") == 0)
        return "failed";
    return "done";
}

int ll_registry_audit_list(json_t **out_items, long long *out_next, ll_registry *r,
                           const char *tenant, const char *actor, const char *since,
                           const char *until, long long before, int limit)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array();
    int error, rc, n = 0;

    *out_next = 0;
    if ((error = reg_prepare(
             &st, r,
             "SELECT a.id, a.at, a.request_id, a.actor, a.actor_name, a.actor_email, a.method, "
             "a.path, a.route, a.tenant_id, a.tier, a.status, a.problem, a.operation_id, "
             "a.replayed, o.kind, o.state, o.commit_sha, o.author_name, o.author_email FROM audit "
             "a LEFT JOIN operations o ON o.id = a.operation_id WHERE (?1 IS NULL OR a.tenant_id "
             "= ?1) AND (?2 IS NULL OR a.actor = ?2) AND (?3 IS NULL OR a.at >= ?3) AND (?4 IS "
             "NULL OR a.at < ?4) AND (?5 = 0 OR a.id < ?5) ORDER BY a.id DESC LIMIT ?6")) < 0)
        goto fail;
    reg_bind_text(st, 1, tenant);
    reg_bind_text(st, 2, actor);
    reg_bind_text(st, 3, since);
    reg_bind_text(st, 4, until);
    sqlite3_bind_int64(st, 5, before);
    sqlite3_bind_int(st, 6, limit + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *e, *actor_obj = json_null(), *op = json_null();
        const char *op_state = (const char *)sqlite3_column_text(st, 16);
        if (n++ == limit) {
            *out_next = json_integer_value(
                json_object_get(json_array_get(items, json_array_size(items) - 1), "id"));
            break;
        }
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            actor_obj = json_pack("{s:o, s:o, s:o}", "sub", reg_col_text(st, 3), "name",
                                  reg_col_text(st, 4), "email", reg_col_text(st, 5));
        if (sqlite3_column_type(st, 13) != SQLITE_NULL &&
            sqlite3_column_type(st, 15) != SQLITE_NULL)
            op = json_pack("{s:I, s:o, s:o, s:o, s:{s:o, s:o}}", "id",
                           (json_int_t)sqlite3_column_int64(st, 13), "kind", reg_col_text(st, 15),
                           "state", reg_col_text(st, 16), "commit", reg_col_text(st, 17), "author",
                           "name", reg_col_text(st, 18), "email", reg_col_text(st, 19));
        e = json_object();
        json_object_set_new(e, "id", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(e, "at", reg_col_text(st, 1));
        json_object_set_new(e, "request_id", reg_col_text(st, 2));
        json_object_set_new(e, "actor", actor_obj);
        json_object_set_new(e, "method", reg_col_text(st, 6));
        json_object_set_new(e, "path", reg_col_text(st, 7));
        json_object_set_new(e, "route", reg_col_text(st, 8));
        json_object_set_new(e, "tenant", reg_col_text(st, 9));
        json_object_set_new(e, "tier", reg_col_text(st, 10));
        json_object_set_new(e, "status", json_integer(sqlite3_column_int(st, 11)));
        json_object_set_new(
            e, "outcome",
            json_string(outcome(sqlite3_column_int(st, 11), json_is_null(op) ? NULL : op_state)));
        json_object_set_new(e, "problem", reg_col_text(st, 12));
        json_object_set_new(e, "replayed", json_boolean(sqlite3_column_int(st, 14)));
        json_object_set_new(e, "operation", op);
        json_object_set_new(e, "commit", json_is_null(op) ? json_null() : reg_col_text(st, 17));
        json_array_append_new(items, e);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "list audit");
        goto fail;
    }
    reg_finalize(r, st);
    *out_items = items;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(items);
    return error;
}

int ll_registry_audit_prune(ll_registry *r, const char *before)
{
    const char *p[] = {before};
    int n = reg_run(r, "DELETE FROM audit WHERE at < ?", 1, p);
    return n < 0 ? n : 0;
}

/* --- idempotency keys ----------------------------------------------------------------- */

static int idem_finish(ll_registry *r, const char *subject, const char *key, int status,
                       const char *content_type, const char *location, const char *etag,
                       const void *body, size_t len)
{
    sqlite3_stmt *st = NULL;
    int error;
    if ((error = reg_prepare(&st, r,
                             "UPDATE idempotency_keys SET state = 'done', status = ?, content_type "
                             "= ?, location = ?, etag = ?, body = ? WHERE subject = ? AND key = ? "
                             "AND state = 'in_flight'")) < 0)
        return error;
    sqlite3_bind_int(st, 1, status);
    reg_bind_text(st, 2, content_type);
    reg_bind_text(st, 3, location);
    reg_bind_text(st, 4, etag);
    sqlite3_bind_blob(st, 5, body ? body : "", (int)len, SQLITE_TRANSIENT);
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
    int status;
    char *content_type, *location, *etag, *body;
    size_t len;
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
    free(p->content_type);
    free(p->location);
    free(p->etag);
    free(p->body);
    free(p);
}

static int same_key(const idem_pending *p, const char *db, const char *subject, const char *key)
{
    return strcmp(p->db, db) == 0 && strcmp(p->subject, subject) == 0 && strcmp(p->key, key) == 0;
}

/* Keeps (subject, key)'s outcome to be stored later; the last one wins. */
static void pending_add(ll_registry *r, const char *subject, const char *key, int status,
                        const char *content_type, const char *location, const char *etag,
                        const void *body, size_t len)
{
    const char *db = sqlite3_db_filename(r->db, "main");
    idem_pending *p = calloc(1, sizeof(*p)), **at;
    size_t n = 0;

    if (!p || !(p->db = strdup(db ? db : "")) || !(p->subject = strdup(subject)) ||
        !(p->key = strdup(key)) || (content_type && !(p->content_type = strdup(content_type))) ||
        (location && !(p->location = strdup(location))) || (etag && !(p->etag = strdup(etag))) ||
        (body && !(p->body = malloc(len ? len : 1)))) {
        pending_free(p);
        return; /* out of memory: the key expires with its ttl */
    }
    if (body && len)
        memcpy(p->body, body, len);
    p->status = status;
    p->len = len;
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
        e = p->status > 0 ? idem_finish(r, p->subject, p->key, p->status, p->content_type,
                                        p->location, p->etag, p->body, p->len)
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

int ll_registry_idem_finish(ll_registry *r, const char *subject, const char *key, int status,
                            const char *content_type, const char *location, const char *etag,
                            const void *body, size_t len)
{
    int error = idem_finish(r, subject, key, status, content_type, location, etag, body, len);
    if (error < 0)
        pending_add(r, subject, key, status, content_type, location, etag, body ? body : "", len);
    return error;
}

int ll_registry_idem_release(ll_registry *r, const char *subject, const char *key)
{
    int error = idem_release(r, subject, key);
    if (error < 0)
        pending_add(r, subject, key, 0, NULL, NULL, NULL, NULL, 0);
    return error;
}

int ll_registry_idem_begin(int *out_state, json_t **out_stored, ll_registry *r, const char *subject,
                           const char *key, const char *fingerprint, long long now_ms,
                           long long ttl_ms)
{
    sqlite3_stmt *st = NULL;
    int error, rc;

    *out_state = LL_IDEM_NEW;
    *out_stored = NULL;
    /* An outcome still unstored is stored first: else its key reads as in
     * flight; while it cannot be, neither can a new reservation. */
    if ((error = pending_flush(r, subject, key)) < 0)
        return error;
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = reg_prepare(&st, r,
                             "SELECT fingerprint, state, status, content_type, location, etag, "
                             "body, created_at_ms FROM idempotency_keys WHERE subject = ? AND key "
                             "= ?")) < 0)
        goto fail;
    reg_bind_text(st, 1, subject);
    reg_bind_text(st, 2, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, 7) + ttl_ms > now_ms) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 1);
        if (!fp || strcmp(fp, fingerprint) != 0) {
            *out_state = LL_IDEM_MISMATCH;
        } else if (strcmp(state, "in_flight") == 0) {
            *out_state = LL_IDEM_IN_FLIGHT;
        } else {
            *out_state = LL_IDEM_DONE;
            *out_stored = json_pack(
                "{s:i, s:o, s:o, s:o, s:s%}", "status", sqlite3_column_int(st, 2), "content_type",
                reg_col_text(st, 3), "location", reg_col_text(st, 4), "etag", reg_col_text(st, 5),
                "body", sqlite3_column_blob(st, 6) ? (const char *)sqlite3_column_blob(st, 6) : "",
                (size_t)sqlite3_column_bytes(st, 6));
        }
        reg_finalize(r, st);
        return reg_commit(r);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        error = reg_db_error(r, "read idempotency key");
        goto fail;
    }
    reg_finalize(r, st);
    st = NULL;
    /* New (or expired): reserve it for this request. */
    if ((error = reg_prepare(&st, r,
                             "INSERT OR REPLACE INTO idempotency_keys (subject, key, fingerprint, "
                             "state, created_at_ms) VALUES (?, ?, ?, 'in_flight', ?)")) < 0)
        goto fail;
    reg_bind_text(st, 1, subject);
    reg_bind_text(st, 2, key);
    reg_bind_text(st, 3, fingerprint);
    sqlite3_bind_int64(st, 4, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE) {
        error = reg_db_error(r, "reserve idempotency key");
        goto fail;
    }
    reg_finalize(r, st);
    return reg_commit(r);
fail:
    reg_finalize(r, st);
    reg_rollback(r);
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
        goto fail;
    reg_bind_text(st, 1, tier);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        error = reg_db_error(r, "read tier");
        goto fail;
    }
    if (sqlite3_column_int64(st, 0) > 0) {
        error = ll_error_set(LL_ECONFLICT, "a change to tier '%s' is still being pushed", tier);
        ll_error_hint("wait for it (GET /api/v1/operations/{id}) and try again");
        goto fail;
    }
    if (strcmp(kind, "tier_delete") == 0 && sqlite3_column_int64(st, 1) > 0) {
        error = ll_error_set(LL_ECONFLICT, "tier '%s' still has %lld tenant(s)", tier,
                             (long long)sqlite3_column_int64(st, 1));
        ll_error_hint("offboard or move them first; only a tier without tenants can be deleted");
        goto fail;
    }
    reg_finalize(r, st);
    st = NULL;
    if ((error = reg_prepare(&st, r,
                             "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                             "created_at, updated_at, author_name, author_email) VALUES (?, '', ?, "
                             "?, 'queued', ?, ?, ?, ?) RETURNING id")) < 0)
        goto fail;
    reg_bind_text(st, 1, kind);
    reg_bind_text(st, 2, tier);
    reg_bind_text(st, 3, payload);
    reg_bind_text(st, 4, now);
    reg_bind_text(st, 5, now);
    reg_bind_text(st, 6, author->name);
    reg_bind_text(st, 7, author->email);
    if (sqlite3_step(st) != SQLITE_ROW) {
        error = reg_db_error(r, "queue operation");
        goto fail;
    }
    *out_op = sqlite3_column_int64(st, 0);
    reg_finalize(r, st);
    return reg_commit(r);
fail:
    reg_finalize(r, st);
    reg_rollback(r);
    return error;
}

int ll_registry_tier_info(json_t **out, ll_registry *r)
{
    sqlite3_stmt *st = NULL;
    json_t *info = json_object();
    int error, rc;

    if ((error = reg_prepare(&st, r, "SELECT name, description FROM tier_info")) < 0)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_object_set_new(info, (const char *)sqlite3_column_text(st, 0), reg_col_text(st, 1));
    if (rc != SQLITE_DONE) {
        error = reg_db_error(r, "read tier descriptions");
        goto fail;
    }
    reg_finalize(r, st);
    *out = info;
    return 0;
fail:
    reg_finalize(r, st);
    json_decref(info);
    return error;
}

int reg_tier_finish(ll_registry *r, const json_t *op, const char *now)
{
    const char *kind = json_string_value(json_object_get(op, "kind"));
    const char *tier = json_string_value(json_object_get(op, "tier"));
    const char *desc =
        json_string_value(json_object_get(json_object_get(op, "payload"), "description"));
    int n;

    if (strcmp(kind, "tier_delete") == 0) {
        const char *p[] = {tier};
        n = reg_run(r, "DELETE FROM tier_info WHERE name = ?", 1, p);
    } else {
        const char *p[] = {tier, desc ? desc : "", now};
        n = reg_run(r,
                    "INSERT INTO tier_info (name, description, updated_at) VALUES (?1, ?2, ?3) ON "
                    "CONFLICT (name) DO UPDATE SET description = ?2, updated_at = ?3",
                    3, p);
    }
    return n < 0 ? n : 0;
}

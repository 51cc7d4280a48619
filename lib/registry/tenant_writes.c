/* tenant_writes.c - storing a tenant's desired state: onboard, update and
 * offboard, each one BEGIN IMMEDIATE transaction that spans the stores it
 * needs, so the tenant row and its outbox operation land together or not
 * at all.
 *
 * The shape: this file sits above the stores, as the outbox does.  A
 * floating tenant's file carries the version its tier runs, chosen from
 * the catalogue (tier_versions and releases, reg_chart_version_for in
 * registry_rollouts.c) inside the same transaction that stores the tenant,
 * so a rollout finishing at the same moment is seen either wholly before
 * or wholly after.  The tenant store (registry.c) is GIVEN that version
 * (reg_tenant_put, reg_tenant_set_desired): it depends on no other store.
 * The operation's payload (the desired state to write, and the state to
 * return to if the push fails) is built here, from typed records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "registry_int.h"

static int id_row(sqlite3_stmt *st, void *payload)
{
    *(long long *)payload = sqlite3_column_int64(st, 0);
    return 0;
}

/* Queues an operation (kind, for tenant and tier) carrying payload (stolen;
 * NULL: it could not be built) inside the caller's transaction; *out its
 * id. */
static int insert_op(long long *out, ll_registry *r, ll_op_kind kind, const char *tenant,
                     const char *tier, json_t *payload, const char *now,
                     const ll_registry_author *author)
{
    char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int error;

    json_decref(payload);
    if (!text)
        return ll_error_set(-1, "cannot encode the operation");
    error = reg_rows(r, "queue operation", id_row, out,
                     "INSERT INTO operations (kind, tenant_id, tier, payload, state, "
                     "created_at, updated_at, author_name, author_email) VALUES (?, ?, ?, ?, "
                     "'queued', ?, ?, ?, ?) RETURNING id",
                     "ssssssss", ll_op_kind_name(kind), tenant, tier, text, now, now, author->name,
                     author->email);
    free(text);
    if (error == 0)
        error = ll_error_set(-1, "registry: queue operation: no id returned");
    return error < 0 ? error : 0;
}

/* LL_EPRECONDITION when if_match is given and does not name t's version. */
static int check_if_match(const ll_tenant_record *t, const char *if_match)
{
    if (!if_match || ll_etag_matches(if_match, t->etag))
        return 0;
    ll_error_set(LL_EPRECONDITION, "tenant '%s' has changed: it is at version %s", t->id, t->etag);
    ll_error_hint("read it again (GET /api/v1/tenants/%s) and send its ETag in If-Match", t->id);
    return LL_EPRECONDITION;
}

/* A string, or null (NULL). */
static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The desired state t had, for the operation to return to if it fails:
 * {"tier", "release", "values", "chart_version"} (new reference). */
static json_t *previous_of(const ll_tenant_record *t)
{
    return json_pack("{s:o, s:o, s:O, s:o}", "tier", string_or_null(t->tier), "release",
                     string_or_null(t->release), "values", t->values, "chart_version",
                     string_or_null(t->chart_version));
}

/* values as the tenants row stores them (compact, keys sorted); new
 * string, NULL when it cannot be encoded. */
static char *values_text(const json_t *values)
{
    return values ? json_dumps(values, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
}

int ll_registry_onboard(long long *out_op, ll_tenant_record *out_existing, ll_registry *r,
                        const ll_tenant_desired *d, const ll_registry_author *author)
{
    ll_tenant_record existing = {0};
    json_t *values = d->values ? json_incref((json_t *)d->values) : json_object(), *desired;
    char now[32], chart[64], *values_json = values_text(d->values);
    int error, revive = 0;

    memset(out_existing, 0, sizeof(*out_existing));
    if (!values || !values_json) {
        error = ll_error_set(-1, "cannot encode values");
        goto done;
    }
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        goto done;
    /* What the file will carry, chosen in the same transaction as the
     * catalogue it is chosen from. */
    if ((error = reg_chart_version_for(chart, sizeof(chart), r, d->tier, d->release)) < 0)
        goto done;
    error = ll_registry_tenant_get(&existing, r, d->id, 1);
    if (error == 0 && existing.lifecycle != LL_TENANT_OFFBOARDED) {
        ll_error_set(LL_EEXISTS, "tenant '%s' exists already", d->id);
        ll_error_field("id");
        *out_existing = existing;
        memset(&existing, 0, sizeof(existing));
        error = LL_EEXISTS;
        goto done;
    }
    if (error < 0 && error != LL_ENOTFOUND)
        goto done;
    revive = error == 0;
    /* The operation carries the desired state it must write and, for a
     * tenant onboarded again, the record to return to if it fails. */
    desired = json_pack("{s:s, s:O, s:s}", "release", d->release, "values", values, "chart_version",
                        chart);
    if (desired && revive)
        json_object_set_new(desired, "previous", previous_of(&existing));
    if ((error = insert_op(out_op, r, LL_OP_ONBOARD, d->id, d->tier, desired, now, author)) < 0 ||
        (error = reg_tenant_put(r, d, values_json, chart, *out_op, now, revive)) < 0)
        goto done;
    error = reg_commit(r);
done:
    if (error < 0)
        reg_rollback(r);
    ll_tenant_record_clear(&existing);
    json_decref(values);
    free(values_json);
    return error;
}

int ll_registry_offboard(long long *out_op, ll_registry *r, const ll_tenant_desired *d,
                         const ll_registry_author *author)
{
    ll_tenant_record t = {0};
    char now[32];
    int error;

    *out_op = 0;
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        return error;
    if ((error = ll_registry_tenant_get(&t, r, d->id, 0)) < 0 ||
        (error = check_if_match(&t, d->if_match)) < 0)
        goto done;
    if (t.lifecycle != LL_TENANT_OFFBOARDED &&
        ((error = insert_op(out_op, r, LL_OP_OFFBOARD, d->id, t.tier, json_object(), now, author)) <
             0 ||
         (error = reg_tenant_set_offboarding(r, d->id, *out_op, now)) < 0))
        goto done;
    error = reg_commit(r);
done:
    if (error < 0)
        reg_rollback(r);
    ll_tenant_record_clear(&t);
    return error;
}

/* What the file carries changes only with the policy: pinning writes the
 * pin, a new floating line (or unpinning) chooses again; anything else
 * (values, a tier move) keeps the version the tenant runs. */
static int chart_for_update(char *out, size_t cap, ll_registry *r, const ll_tenant_record *t,
                            const ll_tenant_desired *d)
{
    char old_expr[64] = "", new_expr[64] = "";
    ll_release_expr(old_expr, sizeof(old_expr), t->release);
    ll_release_expr(new_expr, sizeof(new_expr), d->release);
    if (t->chart_version && strcmp(old_expr, new_expr) == 0) {
        snprintf(out, cap, "%s", t->chart_version);
        return 0;
    }
    return reg_chart_version_for(out, cap, r, d->tier, d->release);
}

int ll_registry_update(long long *out_op, ll_registry *r, const ll_tenant_desired *d,
                       const ll_registry_author *author)
{
    ll_tenant_record t = {0};
    json_t *desired;
    char now[32], chart[64], *values_json = NULL;
    int error;

    *out_op = 0;
    if (!d->values || !(values_json = values_text(d->values)))
        return ll_error_set(LL_EINVALID, "values are not JSON");
    ll_now_rfc3339(now);
    if ((error = reg_exec(r, "BEGIN IMMEDIATE")) < 0)
        goto done;
    if ((error = ll_registry_tenant_get(&t, r, d->id, 0)) < 0 ||
        (error = check_if_match(&t, d->if_match)) < 0)
        goto done;
    if (t.lifecycle == LL_TENANT_OFFBOARDED || t.lifecycle == LL_TENANT_OFFBOARDING) {
        error = ll_error_set(LL_ECONFLICT, "tenant '%s' is %s", d->id,
                             ll_tenant_lifecycle_name(t.lifecycle));
        ll_error_hint("onboard it again with POST /api/v1/tenants");
        goto done;
    }
    if ((error = chart_for_update(chart, sizeof(chart), r, &t, d)) < 0)
        goto done;
    /* The operation carries the new desired state, the folder the tenant
     * leaves, and the state to return to if it fails. */
    desired = json_pack("{s:s, s:O, s:s, s:o, s:o}", "release", d->release, "values", d->values,
                        "chart_version", chart, "from_tier", string_or_null(t.tier), "previous",
                        previous_of(&t));
    if ((error = insert_op(out_op, r, LL_OP_UPDATE, d->id, d->tier, desired, now, author)) < 0 ||
        (error = reg_tenant_set_desired(r, d, values_json, chart, *out_op, now)) < 0)
        goto done;
    error = reg_commit(r);
done:
    if (error < 0)
        reg_rollback(r);
    ll_tenant_record_clear(&t);
    free(values_json);
    return error;
}

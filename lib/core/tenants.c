/* tenants.c - the tenant use cases: onboard, update, offboard, get, list,
 * and the outcome a waiting request answers with.
 *
 * A write is checked completely before anything is stored: field shapes,
 * id rules (ids.c), the tier, the release, the values, and a trial render
 * of the tier's template.  Then the registry stores the tenant and its
 * operation in one transaction, the git writer is woken, and the caller
 * waits (bounded) for the push.  Reads only touch the registry and the
 * tier snapshot; the API's tenant is built here from the registry's row
 * (tenant_view) with what the cluster shows of it.  Kept answers of reads
 * live in answers.c; what every use case shares in context.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/log.h"
#include "landlord/status.h"
#include "landlord/template.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"

#include "core_int.h"
#include "ids.h"

/* The API's tenant, built from the registry's record (new reference): the
 * record's JSON with what the cluster shows of it, its file's path, and
 * whether it is pinned; lifecycle and the follower's stored state give way
 * to "state". */
static json_t *tenant_view(ll_core *c, const ll_tenant_record *rec)
{
    json_t *t = ll_tenant_record_json(rec);
    char path[1024];

    /* From the cluster; without one (or before it was seen), never pretend. */
    ll_status_describe(c->status, t);
    if (!rec->path) {
        ll_tenant_file_path(path, sizeof(path), c->cfg.git_root,
                            strcmp(c->cfg.git_layout, "sharded") == 0, rec->tier, rec->id);
        json_object_set_new(t, "path", json_string(path));
    }
    json_object_del(t, "lifecycle");
    json_object_del(t, "observed_state");
    json_object_del(t, "observed_since");
    /* A pinned tenant is never moved by a rollout; a floating one follows
     * them.  chart_version: what its file carries. */
    json_object_set_new(t, "pinned", json_boolean(rec->release && ll_release_pinned(rec->release)));
    return t;
}

int ll_tenant_outcome(json_t **out, int *pending, ll_core *c, long long op, const char *id)
{
    ll_registry *r = ll_core_registry(c);
    ll_operation opr = {0};
    ll_tenant_record t = {0};
    ll_op_state state = LL_OP_PUSHED;
    int error;

    *out = NULL;
    *pending = 0;
    if (!r)
        return -1;
    if (op > 0) {
        if ((error = ll_registry_op_get(&opr, r, op)) < 0)
            return error;
        state = opr.state;
    }
    if (state == LL_OP_FAILED) {
        const char *why = opr.error;
        if (opr.failure == LL_OP_FAILURE_RENDER) {
            error = ll_error_set(LL_EINVALID, "%s", why ? why : "the template did not render");
            ll_error_kind("render-failed");
        } else if (opr.failure == LL_OP_FAILURE_CONFLICT) {
            error = ll_error_set(LL_ECONFLICT, "%s", why ? why : "conflict in the repository");
        } else {
            error = ll_error_set(LL_EUPSTREAM, "%s", why ? why : "push failed");
            ll_error_hint("check the GitOps remote; /readyz shows its state");
        }
        goto done;
    }
    *pending = state == LL_OP_QUEUED;
    if ((error = ll_registry_tenant_get(&t, r, op > 0 ? opr.tenant : id, 1)) < 0)
        goto done;
    *out = tenant_view(c, &t);
done:
    ll_tenant_record_clear(&t);
    ll_operation_clear(&opr);
    return error;
}

#define author_of(c) ll_core_author((c), &author_buf)

/* Refuses fields outside allowed and non-string values of string fields. */
static int check_fields(const json_t *body, const char *const *allowed, const char *const *strings,
                        const char *hint)
{
    const char *key;
    json_t *v;

    if (!json_is_object(body))
        return ll_core_field_error("", "the body must be a JSON object");
    json_object_foreach((json_t *)body, key, v)
    {
        int known = 0;
        for (const char *const *f = allowed; *f; f++)
            known |= strcmp(*f, key) == 0;
        if (!known) {
            ll_core_field_error(key, "unknown field '%.64s'", key);
            ll_error_hint("%s", hint);
            return LL_EINVALID;
        }
    }
    for (const char *const *f = strings; *f; f++) {
        v = json_object_get(body, *f);
        if (v && !json_is_string(v))
            return ll_core_field_error(*f, "%s must be a string", *f);
    }
    return 0;
}

/* Checks a desired state completely, including a trial render of the tier's
 * template: a tenant whose objects would be invalid is refused now, before
 * anything is stored. */
static int check_desired(const ll_tier_catalogue *tiers, const char *id, const char *tier,
                         const char *release, const json_t *values)
{
    const ll_tier *tier_obj;
    char *rendered = NULL;
    size_t rlen;
    int error;

    if (!(tier_obj = ll_tiers_find(tiers, tier))) {
        ll_core_field_error("tier", "unknown tier '%.64s'", tier);
        ll_error_hint("GET /api/v1/tiers lists the tiers");
        return LL_EINVALID;
    }
    /* Nothing is rendered from a tier whose template breaks the policy. */
    if ((error = ll_tiers_usable(tier_obj)) < 0)
        return error;
    if ((error = ll_validate_release(release)) < 0)
        return error;
    if (values && (error = ll_validate_values(values)) < 0)
        return error;
    /* Nor may values set what the template derives from who the tenant is. */
    if (values && (error = ll_tiers_check_values(tier_obj, values)) < 0)
        return error;
    ll_render_input in = {id, tier, release, NULL, values};
    if ((error = ll_template_render(&rendered, &rlen, tier_obj->template_text,
                                    tier_obj->template_len, &in)) < 0) {
        ll_error_kind("render-failed");
        return error;
    }
    free(rendered);
    return 0;
}

static const char *const onboard_fields[] = {"id", "tier", "release", "values", NULL};
static const char *const onboard_strings[] = {"id", "tier", "release", NULL};

int ll_tenant_onboard(long long *out_op, json_t **out_existing, ll_core *c, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    ll_tier_catalogue *tiers = ll_gitops_tiers(c->git);
    ll_tenant_record existing = {0};
    const json_t *values;
    const char *id, *tier, *release;
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    long long op = 0;
    int error;

    *out_op = 0;
    *out_existing = NULL;
    if (!r) {
        error = -1;
        goto done;
    }
    if ((error = check_fields(body, onboard_fields, onboard_strings,
                              "a tenant takes id, tier, release and values")) < 0)
        goto done;
    id = json_string_value(json_object_get(body, "id"));
    tier = json_string_value(json_object_get(body, "tier"));
    if (!id || !tier) {
        error = ll_core_field_error(id ? "tier" : "id", "%s is required", id ? "tier" : "id");
        goto done;
    }
    release = json_is_string(json_object_get(body, "release"))
                  ? json_string_value(json_object_get(body, "release"))
                  : c->cfg.default_release;
    values = json_object_get(body, "values");
    if ((error = ll_validate_tenant_id(id)) < 0 || (error = ll_ids_check_name(c, tiers, id)) < 0)
        goto done;
    if ((error = check_desired(tiers, id, tier, release, values)) < 0)
        goto done;
    if ((error = ll_ids_check_namespaces(c, tiers, id, tier, release, NULL, "id")) < 0)
        goto done;
    ll_tenant_desired desired = {.id = id, .tier = tier, .release = release, .values = values};
    error = ll_registry_onboard(&op, &existing, r, &desired, &author);
    if (error == LL_EEXISTS) {
        *out_existing = tenant_view(c, &existing);
        ll_error_set(LL_EEXISTS, "tenant '%s' exists already", id);
        ll_error_field("id");
        goto done;
    }
    if (error < 0)
        goto done;
    ll_log_info("msg=\"onboarding queued\" tenant=%s tier=%s op=%lld", id, tier, op);
    ll_gitops_notify(c->git);
    ll_status_touch(c->status);
    *out_op = op;
done:
    ll_tenant_record_clear(&existing);
    ll_tier_catalogue_unref(tiers);
    return error;
}

static const char *const update_fields[] = {"tier", "release", "values", NULL};
static const char *const update_strings[] = {"tier", "release", NULL};

/* 1 when tier, release and values are what current already holds and the
 * repository has it (sync committed). */
static int unchanged(const ll_tenant_record *current, const char *tier, const char *release,
                     const json_t *values)
{
    const char *was = current->release;
    return current->sync == LL_TENANT_COMMITTED && strcmp(tier, current->tier) == 0 &&
           ((!release && !was) || (release && was && strcmp(release, was) == 0)) &&
           json_equal(values, current->values);
}

int ll_tenant_update(long long *out_op, ll_core *c, const char *id, const json_t *body,
                     const char *if_match)
{
    ll_registry *r = ll_core_registry(c);
    ll_tier_catalogue *tiers = ll_gitops_tiers(c->git);
    ll_tenant_record current = {0};
    const json_t *values;
    const char *tier, *release;
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    long long op = 0;
    int error;

    *out_op = 0;
    if (!r) {
        error = -1;
        goto done;
    }
    if (ll_validate_tenant_id(id) < 0) {
        error = ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
        goto done;
    }
    if ((error = ll_registry_tenant_get(&current, r, id, 0)) < 0)
        goto done;
    if (current.lifecycle == LL_TENANT_OFFBOARDED || current.lifecycle == LL_TENANT_OFFBOARDING) {
        error = ll_error_set(LL_ECONFLICT, "tenant '%s' is %s", id,
                             ll_tenant_lifecycle_name(current.lifecycle));
        ll_error_hint("onboard it again with POST /api/v1/tenants");
        goto done;
    }
    if ((error = check_fields(body, update_fields, update_strings,
                              "a change takes tier, release and values")) < 0)
        goto done;
    if (json_object_size(body) == 0) {
        error = ll_core_field_error("", "nothing to change: send tier, release or values");
        goto done;
    }
    tier = json_is_string(json_object_get(body, "tier"))
               ? json_string_value(json_object_get(body, "tier"))
               : current.tier;
    release = json_is_string(json_object_get(body, "release"))
                  ? json_string_value(json_object_get(body, "release"))
                  : current.release;
    values = json_object_get(body, "values") ? json_object_get(body, "values") : current.values;
    if ((error = check_desired(tiers, id, tier, release, values)) < 0)
        goto done;
    /* Another tier may give the tenant namespaces it did not own. */
    if ((error = ll_ids_check_namespaces(c, tiers, id, tier, release, current.tier, "tier")) < 0)
        goto done;
    if (unchanged(&current, tier, release, values)) {
        /* Nothing to do: no operation, no new version (another client's
         * If-Match stays good); the answer is the tenant as it is. */
        const char *etag = current.etag;
        if (if_match && !ll_etag_matches(if_match, etag)) {
            error = ll_error_set(LL_EPRECONDITION, "tenant '%s' has changed: it is at version %s",
                                 id, etag);
            ll_error_hint("read it again (GET /api/v1/tenants/%s) and send its ETag in If-Match",
                          id);
        }
        goto done;
    }
    ll_tenant_desired desired = {
        .id = id, .tier = tier, .release = release, .values = values, .if_match = if_match};
    if ((error = ll_registry_update(&op, r, &desired, &author)) < 0)
        goto done;
    ll_log_info("msg=\"update queued\" tenant=%s tier=%s op=%lld", id, tier, op);
    ll_gitops_notify(c->git);
    ll_status_touch(c->status);
    *out_op = op;
done:
    ll_tenant_record_clear(&current);
    ll_tier_catalogue_unref(tiers);
    return error;
}

int ll_tenant_offboard(long long *out_op, ll_core *c, const char *id, const char *if_match)
{
    ll_registry *r = ll_core_registry(c);
    ll_author_buf author_buf;
    ll_registry_author author = author_of(c);
    int error;

    *out_op = 0;
    if (!r)
        return -1;
    if (ll_validate_tenant_id(id) < 0)
        return ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
    ll_tenant_desired gone = {.id = id, .if_match = if_match};
    if ((error = ll_registry_offboard(out_op, r, &gone, &author)) < 0)
        return error;
    if (*out_op) {
        ll_log_info("msg=\"offboarding queued\" tenant=%s op=%lld", id, *out_op);
        ll_gitops_notify(c->git);
        ll_status_touch(c->status);
    }
    return 0;
}

int ll_tenant_get(json_t **out, ll_core *c, const char *id)
{
    ll_registry *r = ll_core_registry(c);
    ll_tenant_record t;
    int error;
    if (!r)
        return -1;
    if (ll_validate_label(id, 253, "id") < 0)
        return ll_error_set(LL_ENOTFOUND, "no tenant '%.64s'", id);
    if ((error = ll_registry_tenant_get(&t, r, id, 1)) < 0)
        return error;
    *out = tenant_view(c, &t);
    ll_tenant_record_clear(&t);
    return 0;
}

int ll_tenant_wait_over(ll_core *c, const char *id)
{
    ll_tenant_state state;
    ll_tenant_record t;
    ll_registry *r;

    if (!ll_status_configured(c->status))
        return 1;
    if (!(r = ll_core_registry(c)) || ll_registry_tenant_get(&t, r, id, 0) < 0)
        return 1;
    int active = t.lifecycle == LL_TENANT_ACTIVE;
    int known = ll_status_state(&state, c->status, id, t.commit, ll_tenant_sync_name(t.sync)) == 0;
    ll_tenant_record_clear(&t);
    /* Not looked at (for this desired state) yet: over only when it is not
     * active. */
    if (!known)
        return !active;
    return state == LL_STATE_READY || state == LL_STATE_FAILED || state == LL_STATE_OFFBOARDING ||
           state == LL_STATE_OFFBOARDED || state == LL_STATE_DRIFTED;
}

/* The lifecycle a ?state= filter reads from the registry (-1: any, for no
 * state): observed states are those of active tenants, the others are
 * lifecycles.  LL_EINVALID for a state that is neither. */
static int lifecycle_of_state(int *out, const char *state)
{
    static const char *const observed[] = {"unknown", "provisioning", "updating", "ready",
                                           "failed",  "blocked",      NULL};
    ll_tenant_lifecycle l = LL_TENANT_ACTIVE;
    int known = 0;

    *out = -1;
    if (!state)
        return 0;
    for (const char *const *s = observed; *s; s++)
        known |= strcmp(state, *s) == 0;
    if (!known && (ll_tenant_lifecycle_parse(&l, state) < 0 || l == LL_TENANT_ACTIVE))
        return ll_core_field_error("state", "unknown state '%.32s'", state);
    *out = (int)l;
    return 0;
}

/* A page cursor (hex of the last id) into after (cap bytes). */
static int decode_cursor(char *after, size_t cap, const char *cursor)
{
    int n = ll_hex_decode((unsigned char *)after, cap - 1, cursor);
    if (n <= 0)
        return ll_core_field_error("cursor", "cursor is not one this server gave out");
    after[n] = '\0';
    if (ll_validate_label(after, 253, "cursor") < 0)
        return ll_core_field_error("cursor", "cursor is not one this server gave out");
    return 0;
}

int ll_tenant_list(json_t **out, ll_core *c, const char *tier, const char *state,
                   const char *cursor, int limit)
{
    ll_registry *r = ll_core_registry(c);
    ll_tenant_record *recs = NULL;
    json_t *items;
    char *next = NULL, after[256], next_cursor[520];
    int lifecycle = -1; /* any */
    size_t count = 0;
    int error;

    if (!r)
        return -1;
    if (limit < 1 || limit > 500)
        return ll_core_field_error("limit", "limit must be from 1 to 500");
    if ((error = lifecycle_of_state(&lifecycle, state)) < 0)
        return error;
    /* Any well-formed tier name filters, known or not: tenants may remain in a
     * tier whose template left the repository. */
    if (tier && ll_validate_label(tier, 63, "tier") < 0)
        return LL_EINVALID;
    if (cursor && (error = decode_cursor(after, sizeof(after), cursor)) < 0)
        return error;
    if ((error = ll_registry_tenant_list(&recs, &count, &next, r, tier, lifecycle,
                                         cursor ? after : NULL, limit)) < 0)
        return error;
    items = json_array();
    for (size_t i = 0; i < count; i++) {
        json_t *t = tenant_view(c, &recs[i]);
        /* Observed states live in memory: the page is filtered after
         * reading, so it may hold fewer than limit items (next_cursor still
         * goes on). */
        const char *s = json_string_value(json_object_get(t, "state"));
        if (state && (!s || strcmp(s, state) != 0))
            json_decref(t);
        else
            json_array_append_new(items, t);
    }
    ll_tenant_records_free(recs, count);
    if (next)
        ll_hex_encode(next_cursor, (const unsigned char *)next,
                      strlen(next) < 255 ? strlen(next) : 255);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                     next ? json_string(next_cursor) : json_null());
    free(next);
    return 0;
}

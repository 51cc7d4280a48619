/* rollout_view.c - the API's rollout (docs/api.md "Rollouts",
 * openapi/openapi.yaml Rollout) built from its record.
 *
 * The one place where a rollout becomes JSON for an answer: states are
 * named with the tables of rollout_records.c, counts list every tenant
 * state, times kept in wall-clock milliseconds are shown in RFC 3339.
 * Pure: reads the record, returns a new reference.
 */
#include <stdio.h>
#include <time.h>

#include "landlord/rollout_records.h"
#include "rollouts_int.h"

static void ms_rfc3339(char out[32], long long ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* A string, or null. */
static json_t *text(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* An id, or null for 0. */
static json_t *id_or_null(long long id)
{
    return id ? json_integer(id) : json_null();
}

static json_t *time_or_null(int has, long long ms)
{
    char at[32];
    if (!has)
        return json_null();
    ms_rfc3339(at, ms);
    return json_string(at);
}

/* {"pending": n, ...}, every state. */
static json_t *count_view(const long long counts[LL_RT_STATES])
{
    json_t *out = json_object();
    for (int s = 0; s < LL_RT_STATES; s++)
        json_object_set_new(out, ll_rt_state_name((ll_rt_state)s), json_integer(counts[s]));
    return out;
}

static json_t *wave_view(const ll_wave *w)
{
    json_t *wv = json_object(), *sel = ll_selector_json(&w->selector);
    json_object_set_new(wv, "wave", json_integer(w->wave));
    json_object_update(wv, sel);
    json_decref(sel);
    json_object_set_new(wv, "soak_seconds", json_integer(w->soak_seconds));
    json_object_set_new(wv, "state", json_string(ll_wave_state_name(w->state)));
    json_object_set_new(wv, "operation", id_or_null(w->operation_id));
    json_object_set_new(wv, "commit", text(w->commit_sha));
    json_object_set_new(wv, "started_at", text(w->started_at));
    json_object_set_new(wv, "pushed_at", text(w->pushed_at));
    json_object_set_new(wv, "ready_at", text(w->ready_at));
    json_object_set_new(wv, "finished_at", text(w->finished_at));
    json_object_set_new(
        wv, "deadline_at",
        time_or_null(w->has_deadline && w->state == LL_WAVE_WAITING, w->deadline_ms));
    json_object_set_new(wv, "soak_until", time_or_null(w->has_soak_until, w->soak_until_ms));
    json_object_set_new(wv, "error", text(w->error));
    json_object_set_new(wv, "counts", count_view(w->counts));
    return wv;
}

static json_t *tenant_view(const ll_rollout_tenant *t, const char *version)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o}", "id", t->id, "tier", text(t->tier),
                     "wave", id_or_null(t->wave), "from", text(t->from_version), "to", version,
                     "state", ll_rt_state_name(t->state), "reason", text(t->reason), "updated_at",
                     text(t->updated_at));
}

json_t *ll_rollout_view(const ll_rollout *ro)
{
    json_t *v = json_object(), *waves = json_array(), *pools = json_array();

    json_object_set_new(v, "id", json_integer(ro->id));
    json_object_set_new(v, "version", text(ro->version));
    json_object_set_new(v, "state", json_string(ll_rollout_state_name(ro->state)));
    json_object_set_new(v, "on_failure", json_string(ll_on_failure_name(ro->on_failure)));
    json_object_set_new(v, "scope", ll_selector_json(&ro->scope));
    json_object_set_new(v, "wave_timeout_seconds", json_integer(ro->wave_timeout));
    json_object_set_new(v, "current_wave", json_integer(ro->current_wave));
    json_object_set_new(v, "reason", text(ro->reason));
    json_object_set_new(
        v, "author",
        json_pack("{s:o, s:o}", "name", text(ro->author_name), "email", text(ro->author_email)));
    json_object_set_new(v, "rollback",
                        ro->rollback_op
                            ? json_pack("{s:I, s:o}", "operation", (json_int_t)ro->rollback_op,
                                        "commit", text(ro->rollback_sha))
                            : json_null());
    /* Totals over every wave (and the skipped). */
    json_object_set_new(v, "counts", count_view(ro->counts));
    for (size_t i = 0; i < ro->nwaves; i++)
        json_array_append_new(waves, wave_view(&ro->waves[i]));
    json_object_set_new(v, "waves", waves);
    for (size_t i = 0; i < ro->npools; i++) {
        const ll_rollout_pool *p = &ro->pools[i];
        json_array_append_new(pools, json_pack("{s:s, s:i, s:o, s:s, s:s}", "pool", p->pool, "wave",
                                               p->wave, "from", text(p->from_version), "to",
                                               ro->version, "state", ll_pool_state_name(p->state)));
    }
    json_object_set_new(v, "pools", pools);
    if (ro->with_tenants) {
        json_t *tenants = json_array();
        for (size_t i = 0; i < ro->ntenants; i++)
            json_array_append_new(tenants, tenant_view(&ro->tenants[i], ro->version));
        json_object_set_new(v, "tenants", tenants);
    }
    json_object_set_new(v, "created_at", text(ro->created_at));
    json_object_set_new(v, "updated_at", text(ro->updated_at));
    json_object_set_new(v, "finished_at", text(ro->finished_at));
    return v;
}

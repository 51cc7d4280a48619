/* rollouts.c - rollouts: the use cases behind /api/v1/rollouts and the
 * engine that drives them wave by wave.
 *
 * Creating a rollout checks the whole request (version uploaded and exact,
 * scope, waves, on_failure), computes every wave at once (tiers, named
 * tenants, or a percentage of the target tenants still unassigned, by id),
 * lists pinned tenants and those at the version already as skipped, picks
 * the pool environments that move with the first wave of a tier they serve,
 * and stores it all in one transaction (registry_rollouts.c), which also
 * refuses tenants or pools of another active rollout.
 *
 * The engine is one thread with its own registry connection.  Each round it
 * reads the rollouts that are running or rolling back and moves each one
 * step, from what the registry says (nothing is kept in memory, so a
 * restart continues where it was):
 *   pending    -> start the wave: ONE outbox operation changes every tenant
 *                 of it (and its pools) in one commit    -> committing
 *   committing -> the operation is pushed                -> waiting
 *   waiting    -> every tenant reads ready at the version (status.c: the
 *                 desired commit applied and history[0] at the chart
 *                 version), -> soaking; a tenant failed, or the wave timed
 *                 out -> the wave fails: pause, or roll back (one commit)
 *   soaking    -> soak_seconds passed without a failure  -> next wave, or
 *                 succeeded (the tiers of the scope now run the version)
 * It wakes on notifications (the git writer's batches, the status
 * follower's events, the API's writes) and every POLL_MS for timers.
 *
 * Threads: the use cases run on HTTP workers with their thread's registry
 * connection; the engine only on its own thread.  Both write through
 * transactions that check the rollout's state first, so a pause racing a
 * wave's end never loses either.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/registry.h"
#include "landlord/rollouts.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "core_int.h"

#define POLL_MS       250
#define WAVES_MAX     20
#define LIST_MAX      10000 /* tenants named in a scope or a wave */
#define TIERS_MAX     64
#define SOAK_MAX      86400
#define TIMEOUT_MAX   86400
#define REASON_MAX    200
#define FAILED_SHOWN  5 /* failed tenants named in a wave's error */
#define MESSAGE_SHOWN 160

struct ll_rollouts {
    char *db_path, *author_name, *author_email;
    ll_status *status;
    ll_gitops *git;
    void (*on_events)(void *payload);
    void *on_events_payload;
    ll_registry *reg; /* the engine thread's */

    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int notified, stopping;
    unsigned long long generation; /* events stored */
};

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long integer(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void ms_rfc3339(char out[32], long long ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* --- the view ----------------------------------------------------------------------- */

static const char *const tenant_states[] = {"pending", "updating",    "ready", "failed",
                                            "skipped", "rolled_back", NULL};

/* {"pending": n, ...} from the registry's {"<state>": n}, every state. */
static json_t *count_view(const json_t *c)
{
    json_t *out = json_object();
    for (const char *const *s = tenant_states; *s; s++)
        json_object_set_new(out, *s, json_integer(json_integer_value(json_object_get(c, *s))));
    return out;
}

/* The API's rollout (docs/api.md "Rollouts") from the registry's rows. */
static json_t *rollout_view(const json_t *ro)
{
    const json_t *counts = json_object_get(ro, "counts"), *w, *p, *t, *c;
    const char *version = str(ro, "version"), *key;
    json_t *v = json_object(), *waves = json_array(), *pools = json_array(), *total = json_object();
    size_t i;

    json_object_set(v, "id", json_object_get(ro, "id"));
    json_object_set(v, "version", json_object_get(ro, "version"));
    json_object_set(v, "state", json_object_get(ro, "state"));
    json_object_set(v, "on_failure", json_object_get(ro, "on_failure"));
    json_object_set(v, "scope", json_object_get(ro, "scope"));
    json_object_set(v, "wave_timeout_seconds", json_object_get(ro, "wave_timeout"));
    json_object_set(v, "current_wave", json_object_get(ro, "current_wave"));
    json_object_set(v, "reason", json_object_get(ro, "reason"));
    json_object_set_new(v, "author",
                        json_pack("{s:O, s:O}", "name", json_object_get(ro, "author_name"), "email",
                                  json_object_get(ro, "author_email")));
    json_object_set_new(v, "rollback",
                        json_is_integer(json_object_get(ro, "rollback_op"))
                            ? json_pack("{s:O, s:O}", "operation",
                                        json_object_get(ro, "rollback_op"), "commit",
                                        json_object_get(ro, "rollback_sha"))
                            : json_null());
    /* Totals over every wave (and the skipped, wave 0). */
    json_object_foreach((json_t *)counts, key, c)
    {
        const char *state;
        json_t *n;
        json_object_foreach((json_t *)c, state, n)
            json_object_set_new(total, state,
                                json_integer(json_integer_value(json_object_get(total, state)) +
                                             json_integer_value(n)));
    }
    json_object_set_new(v, "counts", count_view(total));
    json_decref(total);
    json_array_foreach(json_object_get(ro, "waves"), i, w)
    {
        char key_w[32], at[32];
        json_t *wv = json_object();
        json_object_set(wv, "wave", json_object_get(w, "wave"));
        json_object_update(wv, json_object_get(w, "selector"));
        json_object_set(wv, "soak_seconds", json_object_get(w, "soak_seconds"));
        json_object_set(wv, "state", json_object_get(w, "state"));
        json_object_set(wv, "operation", json_object_get(w, "operation_id"));
        json_object_set(wv, "commit", json_object_get(w, "commit_sha"));
        json_object_set(wv, "started_at", json_object_get(w, "started_at"));
        json_object_set(wv, "pushed_at", json_object_get(w, "pushed_at"));
        json_object_set(wv, "ready_at", json_object_get(w, "ready_at"));
        json_object_set(wv, "finished_at", json_object_get(w, "finished_at"));
        if (json_is_integer(json_object_get(w, "deadline_ms")) &&
            strcmp(str(w, "state"), "waiting") == 0) {
            ms_rfc3339(at, integer(w, "deadline_ms"));
            json_object_set_new(wv, "deadline_at", json_string(at));
        } else {
            json_object_set_new(wv, "deadline_at", json_null());
        }
        if (json_is_integer(json_object_get(w, "soak_until_ms"))) {
            ms_rfc3339(at, integer(w, "soak_until_ms"));
            json_object_set_new(wv, "soak_until", json_string(at));
        } else {
            json_object_set_new(wv, "soak_until", json_null());
        }
        json_object_set(wv, "error", json_object_get(w, "error"));
        snprintf(key_w, sizeof(key_w), "%lld", integer(w, "wave"));
        json_object_set_new(wv, "counts", count_view(json_object_get(counts, key_w)));
        json_array_append_new(waves, wv);
    }
    json_object_set_new(v, "waves", waves);
    json_array_foreach(json_object_get(ro, "pools"), i, p) json_array_append_new(
        pools, json_pack("{s:O, s:O, s:O, s:s, s:O}", "pool", json_object_get(p, "pool"), "wave",
                         json_object_get(p, "wave"), "from", json_object_get(p, "from_version"),
                         "to", version, "state", json_object_get(p, "state")));
    json_object_set_new(v, "pools", pools);
    if (json_object_get(ro, "tenants")) {
        json_t *tenants = json_array();
        json_array_foreach(json_object_get(ro, "tenants"), i, t) json_array_append_new(
            tenants, json_pack("{s:O, s:O, s:O, s:O, s:s, s:O, s:O, s:O}", "id",
                               json_object_get(t, "tenant_id"), "tier", json_object_get(t, "tier"),
                               "wave", json_object_get(t, "wave"), "from",
                               json_object_get(t, "from_version"), "to", version, "state",
                               json_object_get(t, "state"), "reason", json_object_get(t, "reason"),
                               "updated_at", json_object_get(t, "updated_at")));
        json_object_set_new(v, "tenants", tenants);
    }
    json_object_set(v, "created_at", json_object_get(ro, "created_at"));
    json_object_set(v, "updated_at", json_object_get(ro, "updated_at"));
    json_object_set(v, "finished_at", json_object_get(ro, "finished_at"));
    return v;
}

/* --- checking a request ------------------------------------------------------------- */

static int field_error(const char *field, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int field_error(const char *field, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ll_core_field_error(field, "%s", msg);
}

/* A non-empty array of at most max distinct strings, each checked by
 * label rules (tiers, tenant ids). */
static int check_names(const json_t *v, const char *field, size_t max, int tenant_ids)
{
    json_t *seen = json_object(), *x;
    size_t i, n = json_array_size(v);
    int error = 0;

    if (!json_is_array(v) || n == 0 || n > max) {
        json_decref(seen);
        return field_error(field, "%s must be an array of 1 to %zu names", field, max);
    }
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        if (!s) {
            error = field_error(field, "%s[%zu] must be a string", field, i);
            break;
        }
        if ((error = tenant_ids ? ll_validate_tenant_id(s) : ll_validate_label(s, 63, field)) < 0) {
            ll_error_field(field);
            break;
        }
        if (json_object_get(seen, s)) {
            error = field_error(field, "%s names '%s' twice", field, s);
            break;
        }
        json_object_set_new(seen, s, json_true());
    }
    json_decref(seen);
    return error;
}

/* An integer field within [min, max], or def when absent. */
static int int_field(long long *out, const json_t *o, const char *key, const char *field,
                     long long min, long long max, long long def)
{
    const json_t *v = json_object_get(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return field_error(field, "%s must be an integer from %lld to %lld", field, min, max);
    *out = json_integer_value(v);
    return 0;
}

static int only_keys(const json_t *o, const char *const *keys, const char *where, const char *hint)
{
    const char *key;
    json_t *v;
    if (!json_is_object(o))
        return field_error(where, "%s must be a JSON object", where[0] ? where : "the body");
    json_object_foreach((json_t *)o, key, v)
    {
        int known = 0;
        for (const char *const *k = keys; *k; k++)
            known |= strcmp(*k, key) == 0;
        if (!known) {
            char field[96];
            snprintf(field, sizeof(field), "%s%s%.48s", where, where[0] ? "." : "", key);
            field_error(field, "unknown field '%.48s'%s%s", key, where[0] ? " in " : "", where);
            ll_error_hint("%s", hint);
            return LL_EINVALID;
        }
    }
    return 0;
}

static int in_array(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (strcmp(json_string_value(v), s) == 0) return 1;
    return 0;
}

/* The waves of a request, checked; assigns wave numbers to the targets
 * (tenant records with "wave" set).  targets is ordered by id. */
static int plan_waves(json_t **out_waves, json_t *targets, const json_t *candidates,
                      const json_t *waves, const json_t *scope_tiers, const json_t *catalogue)
{
    static const char *const wave_keys[] = {"tiers", "tenants", "percent", "soak_seconds", NULL};
    json_t *plan = json_array(), *w, *byid = json_object(), *t;
    size_t i, k, assigned = 0;
    int error = 0;

    json_array_foreach(candidates, i, t) json_object_set(byid, str(t, "id"), t);
    json_array_foreach(waves, i, w)
    {
        char field[48];
        long long soak = 0, percent = 0;
        int kinds = 0;
        snprintf(field, sizeof(field), "waves[%zu]", i);
        if ((error = only_keys(w, wave_keys, field,
                               "a wave takes tiers, tenants or percent, and soak_seconds")) < 0)
            break;
        kinds = !!json_object_get(w, "tiers") + !!json_object_get(w, "tenants") +
                !!json_object_get(w, "percent");
        if (kinds != 1) {
            error = field_error(field,
                                "%s must say which tenants: exactly one of tiers, tenants "
                                "or percent",
                                field);
            break;
        }
        if ((error = int_field(&soak, w, "soak_seconds", field, 0, SOAK_MAX, 0)) < 0)
            break;
        json_t *sel = NULL;
        if (json_object_get(w, "tiers")) {
            const json_t *tiers = json_object_get(w, "tiers");
            if ((error = check_names(tiers, field, TIERS_MAX, 0)) < 0)
                break;
            json_array_foreach(tiers, k, t)
            {
                const char *name = json_string_value(t);
                if (!ll_tiers_find(catalogue, name) ||
                    (scope_tiers && !in_array(scope_tiers, name))) {
                    error = field_error(field,
                                        "%s names tier '%s', which is not in the rollout's "
                                        "scope",
                                        field, name);
                    break;
                }
            }
            if (error < 0)
                break;
            json_array_foreach(targets, k, t)
            {
                if (json_is_null(json_object_get(t, "wave")) && in_array(tiers, str(t, "tier"))) {
                    json_object_set_new(t, "wave", json_integer((json_int_t)i + 1));
                    assigned++;
                }
            }
            sel = json_pack("{s:O}", "tiers", tiers);
        } else if (json_object_get(w, "tenants")) {
            const json_t *names = json_object_get(w, "tenants");
            if ((error = check_names(names, field, LIST_MAX, 1)) < 0)
                break;
            json_array_foreach(names, k, t)
            {
                const char *name = json_string_value(t);
                json_t *c = json_object_get(byid, name);
                if (!c) {
                    error = field_error(field,
                                        "%s names tenant '%s', which is not in the "
                                        "rollout's scope",
                                        field, name);
                    break;
                }
                if (json_is_true(json_object_get(c, "skipped")))
                    continue; /* pinned or there already: listed as skipped */
                if (!json_is_null(json_object_get(c, "wave"))) {
                    error = field_error(field, "tenant '%s' is in wave %lld already", name,
                                        integer(c, "wave"));
                    break;
                }
                json_object_set_new(c, "wave", json_integer((json_int_t)i + 1));
                assigned++;
            }
            if (error < 0)
                break;
            sel = json_pack("{s:O}", "tenants", names);
        } else {
            if ((error = int_field(&percent, w, "percent", field, 1, 100, 0)) < 0)
                break;
            size_t left = json_array_size(targets) - assigned;
            /* the share rounded up, in integers (percent is 1..100) */
            size_t take = (left * (size_t)percent + 99) / 100;
            json_array_foreach(targets, k, t)
            {
                if (!take)
                    break;
                if (json_is_null(json_object_get(t, "wave"))) {
                    json_object_set_new(t, "wave", json_integer((json_int_t)i + 1));
                    assigned++;
                    take--;
                }
            }
            sel = json_pack("{s:I}", "percent", (json_int_t)percent);
        }
        json_array_append_new(
            plan, json_pack("{s:o, s:I}", "selector", sel, "soak_seconds", (json_int_t)soak));
    }
    if (!error && assigned < json_array_size(targets)) {
        const char *first = NULL;
        json_array_foreach(targets, k, t) if (!first && json_is_null(json_object_get(t, "wave")))
            first = str(t, "id");
        error = field_error("waves", "the waves leave %zu tenant(s) of the scope out (%s first)",
                            json_array_size(targets) - assigned, first ? first : "?");
        ll_error_hint("end with a wave of {\"percent\": 100}");
    }
    json_decref(byid);
    if (error < 0) {
        json_decref(plan);
        return error;
    }
    *out_waves = plan;
    return 0;
}

/* Pool environments serving the scope's tiers, each moving with the first
 * wave that holds a tenant of a tier it serves (else wave 1), unless it
 * asks for the version already. */
static json_t *plan_pools(const json_t *scope_tiers, const json_t *targets, const json_t *catalogue,
                          const char *version)
{
    json_t *pools = json_array(), *t, *p, *seen = json_object();
    size_t i, k, m;
    const json_t *versions = json_object_get(catalogue, "pool_versions");

    json_array_foreach(scope_tiers, i, t)
    {
        const json_t *tier = ll_tiers_find(catalogue, json_string_value(t));
        json_array_foreach(json_object_get(tier, "pools"), k, p)
        {
            const char *name = json_string_value(p);
            const char *from = json_string_value(json_object_get(versions, name));
            if (json_object_get(seen, name) || !ll_tiers_is_pool(catalogue, name) || !from ||
                strcmp(from, version) == 0 || ll_validate_label(name, 63, "pool") < 0)
                continue;
            json_object_set_new(seen, name, json_true());
            /* Which of the scope's tiers this pool serves. */
            long long wave = 0;
            json_t *tt;
            json_array_foreach(scope_tiers, m, tt)
            {
                const json_t *other = ll_tiers_find(catalogue, json_string_value(tt));
                if (!in_array(json_object_get(other, "pools"), name))
                    continue;
                size_t q;
                json_t *target;
                json_array_foreach(targets, q, target)
                {
                    if (strcmp(str(target, "tier"), json_string_value(tt)) == 0 &&
                        (!wave || integer(target, "wave") < wave))
                        wave = integer(target, "wave");
                }
            }
            json_array_append_new(pools, json_pack("{s:s, s:I, s:s}", "pool", name, "wave",
                                                   (json_int_t)(wave ? wave : 1), "from", from));
        }
    }
    ll_error_clear();
    json_decref(seen);
    return pools;
}

static const char *const create_keys[] = {
    "version", "tiers", "tenants", "waves", "on_failure", "wave_timeout_seconds", NULL};

int ll_rollout_create(json_t **out, ll_core *c, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    json_t *catalogue = ll_gitops_tiers(c->git), *rel = NULL, *candidates = NULL,
           *targets = json_array(), *records = json_array(), *waves = NULL, *pools = NULL,
           *spec = NULL, *ro = NULL, *t;
    const json_t *tiers, *names, *wave_req;
    const char *version, *on_failure = "rollback";
    long long timeout = c->cfg.rollout_wave_timeout, id = 0;
    size_t i;
    int error;

    *out = NULL;
    if (!r) {
        error = -1;
        goto done;
    }
    if ((error = only_keys(body, create_keys, "",
                           "a rollout takes version, tiers or tenants, waves, on_failure and "
                           "wave_timeout_seconds")) < 0)
        goto done;
    version = str(body, "version");
    if (!version) {
        error = field_error("version", json_object_get(body, "version") ? "version must be a string"
                                                                        : "version is required");
        goto done;
    }
    if (ll_validate_release(version) < 0 || !ll_release_pinned(version)) {
        error = field_error("version", "version '%.64s' is not an exact chart version like 1.2.3",
                            version);
        ll_error_hint("a rollout moves tenants to one uploaded version");
        goto done;
    }
    if (ll_registry_release_get(&rel, r, version) < 0) {
        error = field_error("version", "release %s was never uploaded", version);
        ll_error_hint("upload it first: POST /api/v1/releases");
        goto done;
    }
    tiers = json_object_get(body, "tiers");
    names = json_object_get(body, "tenants");
    if (!!tiers == !!names) {
        error = field_error(tiers ? "tenants" : "tiers",
                            "a rollout takes either tiers or tenants (exactly one)");
        goto done;
    }
    if (tiers && (error = check_names(tiers, "tiers", TIERS_MAX, 0)) < 0)
        goto done;
    if (names && (error = check_names(names, "tenants", LIST_MAX, 1)) < 0)
        goto done;
    json_array_foreach(tiers, i, t)
    {
        if (!ll_tiers_find(catalogue, json_string_value(t))) {
            error = field_error("tiers", "unknown tier '%s'", json_string_value(t));
            ll_error_hint("GET /api/v1/tiers lists the tiers");
            goto done;
        }
    }
    if (json_object_get(body, "on_failure")) {
        on_failure = str(body, "on_failure");
        if (!on_failure || (strcmp(on_failure, "pause") != 0 && strcmp(on_failure, "rollback"))) {
            error = field_error("on_failure", "on_failure must be pause or rollback");
            goto done;
        }
    }
    if ((error = int_field(&timeout, body, "wave_timeout_seconds", "wave_timeout_seconds", 1,
                           TIMEOUT_MAX, timeout)) < 0)
        goto done;
    wave_req = json_object_get(body, "waves");
    if (wave_req && (!json_is_array(wave_req) || !json_array_size(wave_req) ||
                     json_array_size(wave_req) > WAVES_MAX)) {
        error = field_error("waves", "waves must be an array of 1 to %d waves", WAVES_MAX);
        goto done;
    }
    /* Who the rollout concerns, as they are now. */
    if ((error = ll_registry_rollout_candidates(&candidates, r, tiers, names)) < 0)
        goto done;
    json_t *byid = json_object(), *cand;
    json_array_foreach(candidates, i, cand) json_object_set(byid, str(cand, "id"), cand);
    json_array_foreach(names, i, t)
    {
        const char *name = json_string_value(t);
        const json_t *found = json_object_get(byid, name);
        if (!found || strcmp(str(found, "lifecycle"), "active") != 0) {
            error = field_error("tenants",
                                found ? "tenant '%s' is not active (%s)" : "no tenant '%s'%s", name,
                                found ? str(found, "lifecycle") : "");
            break;
        }
    }
    json_decref(byid);
    if (error < 0)
        goto done;
    json_array_foreach(candidates, i, t)
    {
        const char *release = str(t, "release"), *chart = str(t, "chart_version");
        char why[128] = "";
        if (ll_release_pinned(release))
            snprintf(why, sizeof(why), "pinned to %s", release);
        else if (chart && strcmp(chart, version) == 0)
            snprintf(why, sizeof(why), "at %s already", version);
        json_t *rec = json_pack("{s:O, s:O, s:n, s:O, s:s, s:s?}", "id", json_object_get(t, "id"),
                                "tier", json_object_get(t, "tier"), "wave", "from",
                                json_object_get(t, "chart_version"), "state",
                                why[0] ? "skipped" : "pending", "reason", why[0] ? why : NULL);
        if (why[0])
            json_object_set_new(rec, "skipped", json_true());
        else
            json_array_append(targets, rec);
        json_array_append_new(records, rec);
    }
    json_t *def = json_pack("[{s:i}]", "percent", 100);
    error = plan_waves(&waves, targets, records, wave_req ? wave_req : def, tiers, catalogue);
    json_decref(def);
    if (error < 0)
        goto done;
    pools = tiers ? plan_pools(tiers, targets, catalogue, version) : json_array();
    json_array_foreach(records, i, t) json_object_del(t, "skipped");
    /* Without a cluster there is no health to gate on. */
    if (!ll_status_configured(c->status)) {
        error = ll_error_set(LL_ECONFLICT, "rollouts wait for every tenant of a wave to read "
                                           "ready, and no cluster is configured");
        ll_error_hint("configure the cluster Flux runs in (kubeconfig); meanwhile PATCH a "
                      "tenant's release to move it");
        goto done;
    }
    spec = json_pack(
        "{s:s, s:s, s:o, s:I, s:{s:s, s:s}, s:O, s:O, s:O, s:{s:s, s:I, s:I}}", "version", version,
        "on_failure", on_failure, "scope",
        tiers ? json_pack("{s:O}", "tiers", tiers) : json_pack("{s:O}", "tenants", names),
        "wave_timeout", (json_int_t)timeout, "author", "name", c->cfg.git_author_name, "email",
        c->cfg.git_author_email, "waves", waves, "tenants", records, "pools", pools, "event",
        "version", version, "targets", (json_int_t)json_array_size(targets), "waves",
        (json_int_t)json_array_size(waves));
    if (!spec) {
        error = ll_error_set(-1, "cannot encode the rollout");
        goto done;
    }
    if ((error = ll_registry_rollout_create(&id, r, spec)) < 0)
        goto done;
    ll_log_info("msg=\"rollout created\" rollout=%lld version=%s tenants=%zu waves=%zu", id,
                version, json_array_size(targets), json_array_size(waves));
    ll_rollouts_notify(ll_core_rollouts(c));
    if ((error = ll_registry_rollout_get(&ro, r, id, 1)) < 0)
        goto done;
    *out = rollout_view(ro);
done:
    json_decref(catalogue);
    json_decref(rel);
    json_decref(candidates);
    json_decref(targets);
    json_decref(records);
    json_decref(waves);
    json_decref(pools);
    json_decref(spec);
    json_decref(ro);
    return error;
}

int ll_rollout_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    json_t *ro = NULL;
    int error;
    *out = NULL;
    if (!r)
        return -1;
    if ((error = ll_registry_rollout_get(&ro, r, id, 1)) < 0)
        return error;
    *out = rollout_view(ro);
    json_decref(ro);
    return 0;
}

int ll_rollout_list(json_t **out, ll_core *c, long long before, int limit)
{
    ll_registry *r = ll_core_registry(c);
    json_t *rows = NULL, *items = json_array(), *ro;
    size_t i;
    int error;

    *out = NULL;
    if (!r) {
        json_decref(items);
        return -1;
    }
    if (limit < 1 || limit > 500) {
        json_decref(items);
        return ll_core_field_error("limit", "limit must be from 1 to 500");
    }
    if ((error = ll_registry_rollout_list(&rows, r, before, limit + 1)) < 0) {
        json_decref(items);
        return error;
    }
    json_array_foreach(rows, i, ro)
    {
        if (i == (size_t)limit)
            break;
        json_array_append_new(items, rollout_view(ro));
    }
    json_t *next =
        json_array_size(rows) > (size_t)limit
            ? json_sprintf("%lld", integer(json_array_get(rows, (size_t)limit - 1), "id"))
            : json_null();
    json_decref(rows);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return 0;
}

int ll_rollout_control(json_t **out, ll_core *c, long long id, const char *action,
                       const json_t *body)
{
    static const char *const keys[] = {"reason", NULL};
    ll_registry *r = ll_core_registry(c);
    ll_registry_author author = {c->cfg.git_author_name, c->cfg.git_author_email};
    json_t *ro = NULL, *step = NULL;
    const char *reason = NULL;
    char why[REASON_MAX + 64];
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if (body && (error = only_keys(body, keys, "", "a control action takes only reason")) < 0)
        return error;
    if (body && json_object_get(body, "reason")) {
        reason = str(body, "reason");
        if (!reason || strlen(reason) > REASON_MAX)
            return field_error("reason", "reason must be a string of at most %d characters",
                               REASON_MAX);
    }
    if ((error = ll_registry_rollout_get(&ro, r, id, 0)) < 0)
        return error;
    int wave = (int)integer(ro, "current_wave");
    const json_t *w = json_array_get(json_object_get(ro, "waves"), (size_t)wave - 1);
    const char *wstate = w ? str(w, "state") : "";
    snprintf(why, sizeof(why), "%s by %s%s%s", action, c->cfg.git_author_name, reason ? ": " : "",
             reason ? reason : "");
    /* The event names what happened and why. */
    json_t *data =
        json_pack("{s:s, s:i, s:s}", "version", str(ro, "version"), "wave", wave, "reason", why);
    if (strcmp(action, "pause") == 0) {
        step = json_pack("{s:I, s:s, s:{s:s, s:s}, s:[{s:s, s:O}]}", "rollout", (json_int_t)id,
                         "expect", "running", "set", "state", "paused", "reason", why, "events",
                         "type", "rollout.paused", "data", data);
    } else if (strcmp(action, "resume") == 0) {
        /* Time paused does not count: a waiting wave gets its whole timeout
         * again, a soaking one its whole soak; a failed wave is looked at
         * again (helm-controller may have recovered it). */
        json_t *wave_set = json_object(), *tenants = json_array();
        long long now = ll_wall_ms();
        if (strcmp(wstate, "waiting") == 0 || strcmp(wstate, "failed") == 0) {
            json_object_set_new(wave_set, "state", json_string("waiting"));
            json_object_set_new(wave_set, "deadline_ms",
                                json_integer(now + 1000LL * integer(ro, "wave_timeout")));
            json_object_set_new(wave_set, "error", json_null());
            json_object_set_new(wave_set, "finished_at", json_null());
        } else if (strcmp(wstate, "soaking") == 0) {
            json_object_set_new(wave_set, "soak_until_ms",
                                json_integer(now + 1000LL * integer(w, "soak_seconds")));
        }
        if (strcmp(wstate, "failed") == 0) {
            json_t *rows = NULL, *row;
            size_t i;
            if (ll_registry_rollout_wave_tenants(&rows, r, id, wave) == 0)
                json_array_foreach(rows, i, row) if (strcmp(str(row, "state"), "failed") == 0)
                    json_array_append_new(tenants, json_pack("{s:O, s:s, s:n}", "id",
                                                             json_object_get(row, "id"), "state",
                                                             "updating", "reason"));
            json_decref(rows);
        }
        step = json_pack("{s:I, s:s, s:{s:s, s:n}, s:i, s:o, s:o, s:[{s:s, s:O}]}", "rollout",
                         (json_int_t)id, "expect", "paused", "set", "state", "running", "reason",
                         "wave", wave, "wave_set", wave_set, "tenants", tenants, "events", "type",
                         "rollout.resumed", "data", data);
    } else if (strcmp(action, "abort") == 0) {
        char now[32];
        ll_now_rfc3339(now);
        step = json_pack("{s:I, s:[s, s], s:{s:s, s:s, s:s}, s:[{s:s, s:O}]}", "rollout",
                         (json_int_t)id, "expect", "running", "paused", "set", "state", "aborted",
                         "reason", why, "finished_at", now, "events", "type", "rollout.aborted",
                         "data", data);
    } else if (strcmp(action, "rollback") == 0) {
        long long op = 0;
        step = json_pack("{s:I, s:[s, s], s:{s:s}}", "rollout", (json_int_t)id, "expect", "running",
                         "paused", "set", "reason", why);
        error = ll_registry_rollout_rollback(&op, r, id, step, &author);
        if (error == 0 && op)
            ll_gitops_notify(c->git);
        goto stepped;
    } else {
        json_decref(data);
        json_decref(ro);
        return ll_error_set(LL_ENOTFOUND, "no action '%.32s'", action);
    }
    error = step ? ll_registry_rollout_step(r, step) : ll_error_set(-1, "out of memory");
stepped:
    json_decref(data);
    json_decref(step);
    json_decref(ro);
    ro = NULL;
    if (error == LL_ECONFLICT) {
        char msg[LL_ERROR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        ll_error_set(LL_ECONFLICT, "cannot %s: %s", action, msg);
        ll_error_hint("%s", strcmp(action, "resume") == 0 ? "only a paused rollout resumes"
                            : strcmp(action, "pause") == 0
                                ? "only a running rollout pauses"
                                : "only a running or paused rollout can do that");
        return LL_ECONFLICT;
    }
    if (error < 0)
        return error;
    ll_log_info("msg=\"rollout %s\" rollout=%lld", action, id);
    ll_status_touch(c->status);
    ll_rollouts_notify(ll_core_rollouts(c));
    if ((error = ll_registry_rollout_get(&ro, r, id, 1)) < 0)
        return error;
    *out = rollout_view(ro);
    json_decref(ro);
    return 0;
}

/* --- the engine ----------------------------------------------------------------------- */

static void stored_events(ll_rollouts *e)
{
    pthread_mutex_lock(&e->lock);
    e->generation++;
    pthread_mutex_unlock(&e->lock);
    if (e->on_events)
        e->on_events(e->on_events_payload);
}

/* Applies a step; a conflict (the API changed the rollout first) is not
 * an error: the next round sees the new state. */
static int step(ll_rollouts *e, json_t *s)
{
    int error = s ? ll_registry_rollout_step(e->reg, s) : ll_error_set(-1, "out of memory");
    json_decref(s);
    if (error == 0)
        stored_events(e);
    else if (error != LL_ECONFLICT)
        ll_log_warn("msg=\"rollout step failed\" error=\"%s\"", ll_error_last()->message);
    return error;
}

static json_t *event(const char *type, const json_t *ro, int wave)
{
    json_t *data = json_pack("{s:O}", "version", json_object_get(ro, "version"));
    if (wave > 0)
        json_object_set_new(data, "wave", json_integer(wave));
    return json_pack("{s:s, s:o}", "type", type, "data", data);
}

/* The wave failed: pause, or return every tenant the rollout moved. */
static void fail_wave(ll_rollouts *e, const json_t *ro, int wave, const char *why)
{
    long long id = integer(ro, "id");
    char now[32];
    ll_now_rfc3339(now);
    json_t *failed = event("rollout.failed", ro, wave);
    json_object_set_new(json_object_get(failed, "data"), "reason", json_string(why));
    json_object_set(json_object_get(failed, "data"), "on_failure",
                    json_object_get(ro, "on_failure"));
    ll_log_warn("msg=\"rollout wave failed\" rollout=%lld wave=%d on_failure=%s error=\"%s\"", id,
                wave, str(ro, "on_failure"), why);
    if (strcmp(str(ro, "on_failure"), "rollback") == 0) {
        long long op = 0;
        json_t *s = json_pack("{s:I, s:s, s:{s:s}, s:i, s:{s:s, s:s, s:s}, s:[o]}", "rollout",
                              (json_int_t)id, "expect", "running", "set", "reason", why, "wave",
                              wave, "wave_set", "state", "failed", "error", why, "finished_at", now,
                              "events", failed);
        ll_registry_author author = {e->author_name, e->author_email};
        int error = ll_registry_rollout_rollback(&op, e->reg, id, s, &author);
        json_decref(s);
        if (error == 0) {
            stored_events(e);
            if (op)
                ll_gitops_notify(e->git);
            ll_status_touch(e->status);
        } else if (error != LL_ECONFLICT) {
            ll_log_warn("msg=\"cannot roll back\" rollout=%lld error=\"%s\"", id,
                        ll_error_last()->message);
        }
        return;
    }
    json_t *paused = event("rollout.paused", ro, wave);
    json_object_set_new(json_object_get(paused, "data"), "reason", json_string(why));
    step(e, json_pack("{s:I, s:s, s:{s:s, s:s}, s:i, s:{s:s, s:s, s:s}, s:[o, o]}", "rollout",
                      (json_int_t)id, "expect", "running", "set", "state", "paused", "reason", why,
                      "wave", wave, "wave_set", "state", "failed", "error", why, "finished_at", now,
                      "events", failed, paused));
}

/* Looks at the tenants of a waiting or soaking wave; records who turned
 * ready or failed; ends the wave when it is due. */
static void watch_wave(ll_rollouts *e, const json_t *ro, const json_t *w, int wave)
{
    long long id = integer(ro, "id"), now_ms = ll_wall_ms();
    const char *version = str(ro, "version"), *wstate = str(w, "state");
    json_t *rows = NULL, *row, *changes = json_array(), *events = json_array();
    char failures[LL_ERROR_MSG_MAX] = "", now[32];
    size_t i, total = 0, ready = 0, failed = 0;

    ll_now_rfc3339(now);
    if (ll_registry_rollout_wave_tenants(&rows, e->reg, id, wave) < 0) {
        ll_log_warn("msg=\"cannot read a wave\" rollout=%lld error=\"%s\"", id,
                    ll_error_last()->message);
        goto done;
    }
    json_array_foreach(rows, i, row)
    {
        const char *tid = str(row, "id"), *was = str(row, "state");
        const char *lifecycle = str(row, "lifecycle"), *chart = str(row, "chart_version");
        const char *became = NULL;
        char reason[MESSAGE_SHOWN + 64] = "";
        /* Changed by someone since the wave moved it: not this wave's to wait on. */
        if (!lifecycle || strcmp(lifecycle, "active") != 0 || !chart ||
            strcmp(chart, version) != 0) {
            if (!lifecycle || strcmp(lifecycle, "active") != 0)
                snprintf(reason, sizeof(reason), "%s since its wave moved it",
                         lifecycle ? lifecycle : "gone");
            else
                snprintf(reason, sizeof(reason), "moved to %s since its wave moved it",
                         chart ? chart : "?");
            json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "id", tid, "state",
                                                     "skipped", "reason", reason));
            continue;
        }
        total++;
        json_t *v = ll_status_verdict(e->status, tid, str(row, "commit_sha"), str(row, "sync"));
        const char *state = str(v, "state"), *deployed = str(v, "deployed_chart");
        if (state && strcmp(state, "ready") == 0 && deployed && strcmp(deployed, version) == 0) {
            ready++;
            if (strcmp(was, "ready") != 0)
                became = "ready";
        } else if (state && strcmp(state, "failed") == 0) {
            failed++;
            snprintf(reason, sizeof(reason), "%.*s", MESSAGE_SHOWN,
                     str(v, "message") ? str(v, "message") : str(v, "reason"));
            if (failed <= FAILED_SHOWN) {
                size_t n = strlen(failures);
                snprintf(failures + n, sizeof(failures) - n, "%s%s: %s", n ? "; " : "", tid,
                         reason);
            }
            if (strcmp(was, "failed") != 0)
                became = "failed";
        }
        json_decref(v);
        if (became) {
            json_array_append_new(
                changes, json_pack("{s:s, s:s, s:s?}", "id", tid, "state", became, "reason",
                                   strcmp(became, "failed") == 0 ? reason : NULL));
            json_t *ev = event(strcmp(became, "ready") == 0 ? "rollout.tenant_ready"
                                                            : "rollout.tenant_failed",
                               ro, wave);
            json_object_set_new(ev, "tenant", json_string(tid));
            json_object_set_new(json_object_get(ev, "data"), "tenant", json_string(tid));
            if (reason[0])
                json_object_set_new(json_object_get(ev, "data"), "reason", json_string(reason));
            json_array_append_new(events, ev);
        }
    }
    if (json_array_size(changes) &&
        step(e, json_pack("{s:I, s:s, s:O, s:O}", "rollout", (json_int_t)id, "expect", "running",
                          "tenants", changes, "events", events)) < 0)
        goto done;
    if (failed) {
        char why[LL_ERROR_MSG_MAX + 64];
        snprintf(why, sizeof(why), "wave %d: %zu of %zu tenant(s) failed: %s", wave, failed, total,
                 failures);
        fail_wave(e, ro, wave, why);
        goto done;
    }
    long long soak_until =
        json_is_integer(json_object_get(w, "soak_until_ms")) ? integer(w, "soak_until_ms") : now_ms;
    if (strcmp(wstate, "waiting") == 0 && ready == total) {
        long long soak = integer(w, "soak_seconds");
        ll_log_info("msg=\"rollout wave ready\" rollout=%lld wave=%d tenants=%zu soak_s=%lld", id,
                    wave, total, soak);
        if (step(e, json_pack("{s:I, s:s, s:i, s:{s:s, s:s, s:I}}", "rollout", (json_int_t)id,
                              "expect", "running", "wave", wave, "wave_set", "state", "soaking",
                              "ready_at", now, "soak_until_ms",
                              (json_int_t)(now_ms + 1000 * soak))) < 0 ||
            soak > 0)
            goto done;
        wstate = "soaking";
        soak_until = now_ms;
    }
    if (strcmp(wstate, "soaking") == 0 && now_ms >= soak_until) {
        /* The wave passed its gate. */
        int last = (size_t)wave >= json_array_size(json_object_get(ro, "waves"));
        json_t *evs = json_pack("[o]", event("rollout.wave_succeeded", ro, wave));
        json_t *s = json_pack("{s:I, s:s, s:i, s:{s:s, s:s}, s:{s:i}, s:o}", "rollout",
                              (json_int_t)id, "expect", "running", "wave", wave, "wave_set",
                              "state", "succeeded", "finished_at", now, "set", "current_wave",
                              last ? wave : wave + 1, "events", evs);
        if (last) {
            json_t *set = json_object_get(s, "set"), *tv = json_object(), *t;
            json_object_set_new(set, "state", json_string("succeeded"));
            json_object_set_new(set, "finished_at", json_string(now));
            /* The tiers of the scope run the version now: floating tenants
             * onboarded later start there. */
            json_array_foreach(json_object_get(json_object_get(ro, "scope"), "tiers"), i, t)
                json_object_set_new(tv, json_string_value(t), json_string(version));
            json_object_set_new(s, "tier_versions", tv);
            json_array_append_new(evs, event("rollout.succeeded", ro, 0));
            ll_log_info("msg=\"rollout succeeded\" rollout=%lld version=%s", id, version);
        }
        step(e, s);
        goto done;
    }
    if (strcmp(wstate, "waiting") == 0 && json_is_integer(json_object_get(w, "deadline_ms")) &&
        now_ms > integer(w, "deadline_ms")) {
        char why[300];
        json_t *health = ll_status_health(e->status);
        const char *kube = str(health, "status");
        if (!kube || strcmp(kube, "ok") != 0) {
            /* Never pretend: states were unknown, nothing says the tenants
             * failed.  Stop and let a person look. */
            snprintf(why, sizeof(why),
                     "wave %d timed out after %lld s while the cluster could not be watched (%zu "
                     "of %zu tenant(s) ready)",
                     wave, integer(ro, "wave_timeout"), ready, total);
            json_t *paused = event("rollout.paused", ro, wave);
            json_object_set_new(json_object_get(paused, "data"), "reason", json_string(why));
            step(e,
                 json_pack("{s:I, s:s, s:{s:s, s:s}, s:[o]}", "rollout", (json_int_t)id, "expect",
                           "running", "set", "state", "paused", "reason", why, "events", paused));
        } else {
            snprintf(why, sizeof(why), "wave %d timed out after %lld s: %zu of %zu tenant(s) ready",
                     wave, integer(ro, "wave_timeout"), ready, total);
            fail_wave(e, ro, wave, why);
        }
        json_decref(health);
    }
done:
    json_decref(rows);
    json_decref(changes);
    json_decref(events);
}

/* Moves one rollout one step (or a few, when they need no waiting). */
static void drive(ll_rollouts *e, long long id)
{
    for (int guard = 0; guard < 8; guard++) {
        json_t *ro = NULL;
        ll_operation op = {0};
        char now[32];
        int again = 0;

        if (ll_registry_rollout_get(&ro, e->reg, id, 0) < 0)
            return;
        ll_now_rfc3339(now);
        const char *state = str(ro, "state");
        if (strcmp(state, "rolling_back") == 0) {
            if (ll_registry_op_get(&op, e->reg, integer(ro, "rollback_op")) == 0) {
                if (op.state == LL_OP_PUSHED) {
                    json_t *ev = event("rollout.rolled_back", ro, 0);
                    json_object_set_new(json_object_get(ev, "data"), "commit",
                                        op.commit ? json_string(op.commit) : json_null());
                    step(e, json_pack("{s:I, s:s, s:{s:s, s:s, s:s?}, s:[o]}", "rollout",
                                      (json_int_t)id, "expect", "rolling_back", "set", "state",
                                      "rolled_back", "finished_at", now, "rollback_sha", op.commit,
                                      "events", ev));
                    ll_log_info("msg=\"rollout rolled back\" rollout=%lld", id);
                } else if (op.state == LL_OP_FAILED) {
                    char why[LL_ERROR_MSG_MAX + 64];
                    snprintf(why, sizeof(why), "the rollback commit failed: %s",
                             op.error ? op.error : "?");
                    json_t *ev = event("rollout.failed", ro, 0);
                    json_object_set_new(json_object_get(ev, "data"), "reason", json_string(why));
                    step(e, json_pack("{s:I, s:s, s:{s:s, s:s, s:s}, s:[o]}", "rollout",
                                      (json_int_t)id, "expect", "rolling_back", "set", "state",
                                      "failed", "reason", why, "finished_at", now, "events", ev));
                }
            }
        } else if (strcmp(state, "running") == 0) {
            int wave = (int)integer(ro, "current_wave");
            const json_t *w = json_array_get(json_object_get(ro, "waves"), (size_t)wave - 1);
            const char *wstate = w ? str(w, "state") : "";
            if (!w) {
                /* No waves at all: nothing to do. */
                step(e, json_pack("{s:I, s:s, s:{s:s, s:s}, s:[o]}", "rollout", (json_int_t)id,
                                  "expect", "running", "set", "state", "succeeded", "finished_at",
                                  now, "events", event("rollout.succeeded", ro, 0)));
            } else if (strcmp(wstate, "pending") == 0) {
                long long opid = 0;
                ll_registry_author author = {e->author_name, e->author_email};
                json_t *s = json_pack("{s:[o]}", "events", event("rollout.wave_started", ro, wave));
                int error = ll_registry_rollout_wave_start(&opid, e->reg, id, wave, s, &author);
                json_decref(s);
                if (error == 0) {
                    stored_events(e);
                    ll_log_info("msg=\"rollout wave started\" rollout=%lld wave=%d op=%lld", id,
                                wave, opid);
                    if (opid)
                        ll_gitops_notify(e->git);
                    ll_status_touch(e->status);
                    again = 1;
                } else if (error != LL_ECONFLICT) {
                    ll_log_warn("msg=\"cannot start a wave\" rollout=%lld wave=%d error=\"%s\"", id,
                                wave, ll_error_last()->message);
                }
            } else if (strcmp(wstate, "committing") == 0) {
                if (ll_registry_op_get(&op, e->reg, integer(w, "operation_id")) == 0) {
                    if (op.state == LL_OP_PUSHED) {
                        again =
                            step(e, json_pack("{s:I, s:s, s:i, s:{s:s, s:s, s:s?, s:I}}", "rollout",
                                              (json_int_t)id, "expect", "running", "wave", wave,
                                              "wave_set", "state", "waiting", "pushed_at", now,
                                              "commit_sha", op.commit, "deadline_ms",
                                              (json_int_t)(ll_wall_ms() +
                                                           1000 * integer(ro, "wave_timeout")))) ==
                            0;
                    } else if (op.state == LL_OP_FAILED) {
                        char why[LL_ERROR_MSG_MAX + 64];
                        snprintf(why, sizeof(why), "wave %d: its commit failed: %s", wave,
                                 op.error ? op.error : "?");
                        fail_wave(e, ro, wave, why);
                    }
                }
            } else if (strcmp(wstate, "waiting") == 0 || strcmp(wstate, "soaking") == 0) {
                if (!json_is_integer(json_object_get(w, "deadline_ms"))) {
                    /* Nothing was committed: the clock starts now. */
                    again =
                        step(e,
                             json_pack("{s:I, s:s, s:i, s:{s:I}}", "rollout", (json_int_t)id,
                                       "expect", "running", "wave", wave, "wave_set", "deadline_ms",
                                       (json_int_t)(ll_wall_ms() +
                                                    1000 * integer(ro, "wave_timeout")))) == 0;
                } else {
                    unsigned long long gen = ll_rollouts_generation(e);
                    watch_wave(e, ro, w, wave);
                    /* The wave ended: on to the next one at once. */
                    again = ll_rollouts_generation(e) != gen;
                }
            } else if (strcmp(wstate, "succeeded") == 0) {
                /* Ended before a crash moved current_wave: move it now. */
                step(e, json_pack("{s:I, s:s, s:{s:i}}", "rollout", (json_int_t)id, "expect",
                                  "running", "set", "current_wave", wave + 1));
                again = 1;
            } else if (strcmp(wstate, "failed") == 0) {
                /* Failed before a crash applied on_failure: apply it now. */
                fail_wave(e, ro, wave, str(w, "error") ? str(w, "error") : "the wave failed");
            }
        }
        ll_operation_clear(&op);
        json_decref(ro);
        if (!again)
            return;
    }
}

static void round_(ll_rollouts *e)
{
    json_t *ids = NULL, *row;
    size_t i;
    if (ll_registry_rollouts_driven(&ids, e->reg) < 0) {
        ll_log_warn("msg=\"cannot read rollouts\" error=\"%s\"", ll_error_last()->message);
        return;
    }
    json_array_foreach(ids, i, row) drive(e, integer(row, "id"));
    json_decref(ids);
}

static void *engine_main(void *arg)
{
    ll_rollouts *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        if (!e->notified) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += POLL_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->wake, &e->lock, &until);
            if (e->stopping)
                break;
        }
        e->notified = 0;
        pthread_mutex_unlock(&e->lock);
        round_(e);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int ll_rollouts_start(ll_rollouts **out, const ll_rollouts_options *o)
{
    ll_rollouts *e = calloc(1, sizeof(*e));
    int error;
    *out = NULL;
    if (!e)
        return ll_error_set(-1, "out of memory");
    e->db_path = strdup(o->db_path);
    e->author_name = strdup(o->author_name);
    e->author_email = strdup(o->author_email);
    e->status = o->status;
    e->git = o->git;
    e->on_events = o->on_events;
    e->on_events_payload = o->on_events_payload;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (!e->db_path || !e->author_name || !e->author_email) {
        ll_rollouts_free(e);
        return ll_error_set(-1, "out of memory");
    }
    if ((error = ll_registry_open(&e->reg, e->db_path)) < 0) {
        ll_rollouts_free(e);
        return error;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        ll_rollouts_free(e);
        return ll_error_set(-1, "cannot start the rollout engine");
    }
    e->started = 1;
    ll_rollouts_notify(e); /* rollouts that were running before a restart */
    *out = e;
    return 0;
}

void ll_rollouts_stop(ll_rollouts *e)
{
    if (!e || !e->started)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    e->started = 0;
}

void ll_rollouts_free(ll_rollouts *e)
{
    if (!e)
        return;
    ll_rollouts_stop(e);
    ll_registry_close(e->reg);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e->db_path);
    free(e->author_name);
    free(e->author_email);
    free(e);
}

void ll_rollouts_notify(ll_rollouts *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->notified = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

unsigned long long ll_rollouts_generation(ll_rollouts *e)
{
    unsigned long long g;
    if (!e)
        return 0;
    pthread_mutex_lock(&e->lock);
    g = e->generation;
    pthread_mutex_unlock(&e->lock);
    return g;
}

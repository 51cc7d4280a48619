/* rollouts.c - the use cases behind /api/v1/rollouts: create, list, get,
 * and the control actions (pause, resume, abort, rollback).
 *
 * Creating a rollout checks the whole request (version uploaded and exact,
 * scope, waves, on_failure) as it parses it, plans every wave at once
 * (rollout_plan.c: tiers, named tenants, or a percentage of the target
 * tenants still unassigned, by id; pinned tenants and those at the version
 * already skipped; the pool environments that move with the first wave of
 * a tier they serve), and stores it all in one transaction
 * (registry_rollout_steps.c), which also refuses tenants or pools of
 * another active rollout.  A control action is one step of the registry
 * (ll_rollout_step), or a rollback.  The engine that drives rollouts is
 * rollout_engine.c; answers are built from records by rollout_view.c.
 *
 * This file is the request edge: the body's JSON becomes records here.
 *
 * Threads: the use cases run on HTTP workers with their thread's registry
 * connection.  They write through transactions that check the rollout's
 * state first, so a pause racing a wave's end never loses either.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/registry.h"
#include "landlord/rollouts.h"
#include "landlord/tiers.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "core_int.h"
#include "rollouts_int.h"

#define WAVES_MAX   20
#define LIST_MAX    10000 /* tenants named in a scope or a wave */
#define TIERS_MAX   64
#define SOAK_MAX    86400
#define TIMEOUT_MAX 86400
#define REASON_MAX  200

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* --- checking a request ------------------------------------------------------------- */

/* A non-empty array of at most max distinct strings, each checked by
 * label rules (tiers, tenant ids), into out (names added). */
static int check_names(ll_names *out, const json_t *v, const char *field, size_t max,
                       int tenant_ids)
{
    json_t *seen = json_object(), *x;
    size_t i, n = json_array_size(v);
    int error = 0;

    if (!json_is_array(v) || n == 0 || n > max) {
        json_decref(seen);
        return ll_core_field_error(field, "%s must be an array of 1 to %zu names", field, max);
    }
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        if (!s) {
            error = ll_core_field_error(field, "%s[%zu] must be a string", field, i);
            break;
        }
        if ((error = tenant_ids ? ll_validate_tenant_id(s) : ll_validate_label(s, 63, field)) < 0) {
            ll_error_field(field);
            break;
        }
        if (json_object_get(seen, s)) {
            error = ll_core_field_error(field, "%s names '%s' twice", field, s);
            break;
        }
        json_object_set_new(seen, s, json_true());
        if ((error = ll_names_add(out, s)) < 0)
            break;
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
        return ll_core_field_error(field, "%s must be an integer from %lld to %lld", field, min,
                                   max);
    *out = json_integer_value(v);
    return 0;
}

static int only_keys(const json_t *o, const char *const *keys, const char *where, const char *hint)
{
    const char *key;
    json_t *v;
    if (!json_is_object(o))
        return ll_core_field_error(where, "%s must be a JSON object",
                                   where[0] ? where : "the body");
    json_object_foreach((json_t *)o, key, v)
    {
        int known = 0;
        for (const char *const *k = keys; *k; k++)
            known |= strcmp(*k, key) == 0;
        if (!known) {
            char field[96];
            snprintf(field, sizeof(field), "%s%s%.48s", where, where[0] ? "." : "", key);
            ll_core_field_error(field, "unknown field '%.48s'%s%s", key, where[0] ? " in " : "",
                                where);
            ll_error_hint("%s", hint);
            return LL_EINVALID;
        }
    }
    return 0;
}

/* One requested wave, parsed into out (its selector and soak_seconds). */
static int parse_wave(ll_wave *out, const json_t *w, const char *field)
{
    static const char *const wave_keys[] = {"tiers", "tenants", "percent", "soak_seconds", NULL};
    const json_t *tiers = json_object_get(w, "tiers"), *tenants = json_object_get(w, "tenants");
    int error;

    memset(out, 0, sizeof(*out));
    if ((error = only_keys(w, wave_keys, field,
                           "a wave takes tiers, tenants or percent, and soak_seconds")) < 0)
        return error;
    if (!!tiers + !!tenants + !!json_object_get(w, "percent") != 1)
        return ll_core_field_error(
            field, "%s must say which tenants: exactly one of tiers, tenants or percent", field);
    if ((error = int_field(&out->soak_seconds, w, "soak_seconds", field, 0, SOAK_MAX, 0)) < 0)
        return error;
    out->selector.kind = tiers ? LL_SELECT_TIERS : tenants ? LL_SELECT_TENANTS : LL_SELECT_PERCENT;
    if (tiers)
        return check_names(&out->selector.names, tiers, field, TIERS_MAX, 0);
    if (tenants)
        return check_names(&out->selector.names, tenants, field, LIST_MAX, 1);
    return int_field(&out->selector.percent, w, "percent", field, 1, 100, 0);
}

/* What a create request asks for, parsed. */
typedef struct create_req {
    const char *version; /* borrowed from the body */
    ll_selector scope;
    ll_on_failure on_failure;
    long long timeout;
    const json_t *waves; /* the requested waves (borrowed), or NULL */
} create_req;

static int parse_version(create_req *q, const json_t *body, ll_registry *r)
{
    ll_release rel = {0};
    q->version = str(body, "version");
    if (!q->version)
        return ll_core_field_error("version", json_object_get(body, "version")
                                                  ? "version must be a string"
                                                  : "version is required");
    if (ll_validate_release(q->version) < 0 || !ll_release_pinned(q->version)) {
        ll_core_field_error("version", "version '%.64s' is not an exact chart version like 1.2.3",
                            q->version);
        ll_error_hint("a rollout moves tenants to one uploaded version");
        return LL_EINVALID;
    }
    if (ll_registry_release_get(&rel, r, q->version) < 0) {
        ll_core_field_error("version", "release %s was never uploaded", q->version);
        ll_error_hint("upload it first: POST /api/v1/releases");
        return LL_EINVALID;
    }
    ll_registry_release_clear(&rel);
    return 0;
}

static int parse_scope(create_req *q, const json_t *body, const ll_tier_catalogue *catalogue)
{
    const json_t *tiers = json_object_get(body, "tiers"), *names = json_object_get(body, "tenants");
    int error;
    if (!!tiers == !!names)
        return ll_core_field_error(tiers ? "tenants" : "tiers",
                                   "a rollout takes either tiers or tenants (exactly one)");
    q->scope.kind = tiers ? LL_SELECT_TIERS : LL_SELECT_TENANTS;
    if (tiers && (error = check_names(&q->scope.names, tiers, "tiers", TIERS_MAX, 0)) < 0)
        return error;
    if (names && (error = check_names(&q->scope.names, names, "tenants", LIST_MAX, 1)) < 0)
        return error;
    for (size_t i = 0; tiers && i < q->scope.names.n; i++) {
        if (!ll_tiers_find(catalogue, q->scope.names.v[i])) {
            ll_core_field_error("tiers", "unknown tier '%s'", q->scope.names.v[i]);
            ll_error_hint("GET /api/v1/tiers lists the tiers");
            return LL_EINVALID;
        }
    }
    return 0;
}

/* The body of a create request, checked, into q. */
static int parse_create(create_req *q, const json_t *body, ll_registry *r,
                        const ll_tier_catalogue *catalogue)
{
    static const char *const create_keys[] = {
        "version", "tiers", "tenants", "waves", "on_failure", "wave_timeout_seconds", NULL};
    int error;

    if ((error = only_keys(body, create_keys, "",
                           "a rollout takes version, tiers or tenants, waves, on_failure and "
                           "wave_timeout_seconds")) < 0 ||
        (error = parse_version(q, body, r)) < 0 || (error = parse_scope(q, body, catalogue)) < 0)
        return error;
    q->on_failure = LL_ON_FAILURE_ROLLBACK;
    if (json_object_get(body, "on_failure") &&
        ll_on_failure_parse(&q->on_failure, str(body, "on_failure")) < 0)
        return ll_core_field_error("on_failure", "on_failure must be pause or rollback");
    if ((error = int_field(&q->timeout, body, "wave_timeout_seconds", "wave_timeout_seconds", 1,
                           TIMEOUT_MAX, q->timeout)) < 0)
        return error;
    q->waves = json_object_get(body, "waves");
    if (q->waves && (!json_is_array(q->waves) || !json_array_size(q->waves) ||
                     json_array_size(q->waves) > WAVES_MAX))
        return ll_core_field_error("waves", "waves must be an array of 1 to %d waves", WAVES_MAX);
    return 0;
}

/* Plans the waves of q (by default one of every tenant) over the
 * candidates. */
static int plan(ll_plan *p, const create_req *q, const ll_rollout_candidate *candidates, size_t n,
                const ll_tier_catalogue *catalogue)
{
    const ll_names *tiers = q->scope.kind == LL_SELECT_TIERS ? &q->scope.names : NULL;
    int error = ll_plan_init(p, q->version, candidates, n, tiers, tiers ? NULL : &q->scope.names,
                             catalogue);
    if (error < 0)
        return error;
    if (!q->waves) {
        ll_wave all = {.selector = {.kind = LL_SELECT_PERCENT, .percent = 100}};
        return (error = ll_plan_wave(p, &all, "waves[0]")) < 0 ? error : ll_plan_finish(p);
    }
    for (size_t i = 0; i < json_array_size(q->waves); i++) {
        char field[48];
        ll_wave req;
        snprintf(field, sizeof(field), "waves[%zu]", i);
        error = parse_wave(&req, json_array_get(q->waves, i), field);
        if (error >= 0)
            error = ll_plan_wave(p, &req, field);
        ll_wave_clear(&req);
        if (error < 0)
            return error;
    }
    return ll_plan_finish(p);
}

/* Stores the plan; *out_id the new rollout. */
static int store(long long *out_id, ll_core *c, ll_registry *r, const create_req *q,
                 const ll_plan *p)
{
    ll_rollout_spec spec = {
        .version = q->version,
        .on_failure = q->on_failure,
        .scope = &q->scope,
        .wave_timeout = q->timeout,
        .author_name = c->cfg.git_author_name,
        .author_email = c->cfg.git_author_email,
        .waves = p->waves,
        .nwaves = p->nwaves,
        .tenants = p->tenants,
        .ntenants = p->ntenants,
        .pools = p->pools,
        .npools = p->npools,
        .targets = p->targets,
    };
    return ll_registry_rollout_create(out_id, r, &spec);
}

/* The rollout as the API shows it, with its tenants. */
static int answer(json_t **out, ll_registry *r, long long id)
{
    ll_rollout *ro = NULL;
    int error = ll_registry_rollout_get(&ro, r, id, 1);
    if (error < 0)
        return error;
    *out = ll_rollout_view(ro);
    ll_rollout_free(ro);
    return 0;
}

int ll_rollout_create(json_t **out, ll_core *c, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    ll_tier_catalogue *catalogue = ll_gitops_tiers(c->git);
    create_req q = {.timeout = c->cfg.rollout_wave_timeout};
    ll_rollout_candidate *candidates = NULL;
    size_t n = 0;
    ll_plan p = {0};
    long long id = 0;
    int error = -1;

    *out = NULL;
    if (!r || (error = parse_create(&q, body, r, catalogue)) < 0)
        goto done;
    /* Who the rollout concerns, as they are now. */
    if ((error = ll_registry_rollout_candidates(
             &candidates, &n, r, q.scope.kind == LL_SELECT_TIERS ? &q.scope.names : NULL,
             q.scope.kind == LL_SELECT_TENANTS ? &q.scope.names : NULL)) < 0 ||
        (error = plan(&p, &q, candidates, n, catalogue)) < 0)
        goto done;
    /* Without a cluster there is no health to gate on. */
    if (!ll_status_configured(c->status)) {
        error = ll_error_set(LL_ECONFLICT, "rollouts wait for every tenant of a wave to read "
                                           "ready, and no cluster is configured");
        ll_error_hint("configure the cluster Flux runs in (kubeconfig); meanwhile PATCH a "
                      "tenant's release to move it");
        goto done;
    }
    if ((error = store(&id, c, r, &q, &p)) < 0)
        goto done;
    ll_log_info("msg=\"rollout created\" rollout=%lld version=%s tenants=%zu waves=%zu", id,
                q.version, p.targets, p.nwaves);
    ll_rollouts_notify(ll_core_rollouts(c));
    error = answer(out, r, id);
done:
    ll_tier_catalogue_unref(catalogue);
    ll_selector_clear(&q.scope);
    ll_rollout_candidates_free(candidates, n);
    ll_plan_clear(&p);
    return error;
}

int ll_rollout_get(json_t **out, ll_core *c, long long id)
{
    ll_registry *r = ll_core_registry(c);
    *out = NULL;
    if (!r)
        return -1;
    return answer(out, r, id);
}

int ll_rollout_list(json_t **out, ll_core *c, long long before, int limit)
{
    ll_registry *r = ll_core_registry(c);
    ll_rollout **rows = NULL;
    json_t *items, *next;
    size_t n = 0;
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if (limit < 1 || limit > 500)
        return ll_core_field_error("limit", "limit must be from 1 to 500");
    if ((error = ll_registry_rollout_list(&rows, &n, r, before, limit + 1)) < 0)
        return error;
    items = json_array();
    for (size_t i = 0; i < n && i < (size_t)limit; i++)
        json_array_append_new(items, ll_rollout_view(rows[i]));
    next = n > (size_t)limit ? json_sprintf("%lld", rows[limit - 1]->id) : json_null();
    ll_rollout_array_free(rows, n);
    *out = json_pack("{s:o, s:o}", "items", items, "next_cursor", next);
    return 0;
}

/* --- control actions ---------------------------------------------------------------- */

typedef enum action { ACT_PAUSE, ACT_RESUME, ACT_ABORT, ACT_ROLLBACK } action;

static int parse_action(action *out, const char *name)
{
    static const char *const names[] = {"pause", "resume", "abort", "rollback"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(names[i], name) == 0) {
            *out = (action)i;
            return 0;
        }
    }
    return ll_error_set(LL_ENOTFOUND, "no action '%.32s'", name);
}

/* The optional body {"reason"} of a control action: *out_reason borrowed
 * from it, or NULL. */
static int parse_reason(const char **out_reason, const json_t *body)
{
    static const char *const keys[] = {"reason", NULL};
    int error;
    *out_reason = NULL;
    if (!body)
        return 0;
    if ((error = only_keys(body, keys, "", "a control action takes only reason")) < 0)
        return error;
    if (json_object_get(body, "reason")) {
        *out_reason = str(body, "reason");
        if (!*out_reason || strlen(*out_reason) > REASON_MAX)
            return ll_core_field_error("reason", "reason must be a string of at most %d characters",
                                       REASON_MAX);
    }
    return 0;
}

/* What resuming does to the current wave: time paused does not count, so a
 * waiting wave gets its whole timeout again, a soaking one its whole soak;
 * a failed wave is looked at again (helm-controller may have recovered it):
 * its failed tenants turn updating.  *out_rows (*out_n of them) and
 * *out_changes are new arrays the step borrows from. */
static void resume_wave(ll_rollout_step *s, ll_rt_change **out_changes, ll_wave_tenant **out_rows,
                        size_t *out_n, ll_registry *r, const ll_rollout *ro, const ll_wave *w)
{
    long long now = ll_wall_ms();
    *out_changes = NULL;
    *out_rows = NULL;
    *out_n = 0;
    if (!w)
        return;
    if (w->state == LL_WAVE_WAITING || w->state == LL_WAVE_FAILED) {
        s->wave_set = LL_WSET_STATE | LL_WSET_DEADLINE | LL_WSET_ERROR | LL_WSET_FINISHED_AT;
        s->wave_state = LL_WAVE_WAITING;
        s->deadline_ms = now + 1000LL * ro->wave_timeout;
    } else if (w->state == LL_WAVE_SOAKING) {
        s->wave_set = LL_WSET_SOAK_UNTIL;
        s->soak_until_ms = now + 1000LL * w->soak_seconds;
    }
    if (w->state != LL_WAVE_FAILED ||
        ll_registry_rollout_wave_tenants(out_rows, out_n, r, ro->id, w->wave) < 0 ||
        !(*out_changes = calloc(*out_n ? *out_n : 1, sizeof(**out_changes))))
        return;
    for (size_t i = 0; i < *out_n; i++)
        if ((*out_rows)[i].state == LL_RT_FAILED)
            (*out_changes)[s->ntenants++] = (ll_rt_change){(*out_rows)[i].id, LL_RT_UPDATING, NULL};
    s->tenants = *out_changes;
}

/* Runs the action as one step (or a rollback). */
static int act(ll_core *c, ll_registry *r, const ll_rollout *ro, action a, const char *why)
{
    static const char *const types[] = {"rollout.paused", "rollout.resumed", "rollout.aborted",
                                        NULL};
    ll_registry_author author = {c->cfg.git_author_name, c->cfg.git_author_email};
    const ll_wave *w = ll_rollout_wave(ro, ro->current_wave);
    ll_rollout_step s = {
        .rollout = ro->id, .wave = ro->current_wave, .set = LL_SET_REASON, .reason = why};
    ll_rt_change *changes = NULL;
    ll_wave_tenant *rows = NULL;
    size_t nrows = 0;
    ll_event_note event = {0};
    char now[32];
    int error;

    ll_now_rfc3339(now);
    if (a == ACT_ROLLBACK) {
        long long op = 0;
        s.expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING) | LL_ROLLOUT_BIT(LL_ROLLOUT_PAUSED);
        error = ll_registry_rollout_rollback(&op, r, ro->id, &s, &author);
        if (error == 0 && op)
            ll_gitops_notify(c->git);
        return error;
    }
    /* The event names what happened and why. */
    event = (ll_event_note){.type = types[a],
                            .data = json_pack("{s:s, s:i, s:s}", "version", ro->version, "wave",
                                              ro->current_wave, "reason", why)};
    s.events = &event;
    s.nevents = 1;
    s.set |= LL_SET_STATE;
    if (a == ACT_PAUSE) {
        s.expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING);
        s.state = LL_ROLLOUT_PAUSED;
    } else if (a == ACT_RESUME) {
        s.expect = LL_ROLLOUT_BIT(LL_ROLLOUT_PAUSED);
        s.state = LL_ROLLOUT_RUNNING;
        s.reason = NULL;
        resume_wave(&s, &changes, &rows, &nrows, r, ro, w);
    } else {
        s.expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING) | LL_ROLLOUT_BIT(LL_ROLLOUT_PAUSED);
        s.state = LL_ROLLOUT_ABORTED;
        s.set |= LL_SET_FINISHED_AT;
        s.finished_at = now;
    }
    error = event.data ? ll_registry_rollout_step(r, &s) : ll_error_set(-1, "out of memory");
    ll_event_notes_clear(&event, 1);
    free(changes);
    ll_wave_tenants_free(rows, nrows);
    return error;
}

int ll_rollout_control(json_t **out, ll_core *c, long long id, const char *name, const json_t *body)
{
    ll_registry *r = ll_core_registry(c);
    ll_rollout *ro = NULL;
    const char *reason = NULL;
    char why[REASON_MAX + 64];
    action a = ACT_PAUSE;
    int error;

    *out = NULL;
    if (!r)
        return -1;
    if ((error = parse_reason(&reason, body)) < 0 ||
        (error = ll_registry_rollout_get(&ro, r, id, 0)) < 0)
        return error;
    if ((error = parse_action(&a, name)) < 0) {
        ll_rollout_free(ro);
        return error;
    }
    snprintf(why, sizeof(why), "%s by %s%s%s", name, c->cfg.git_author_name, reason ? ": " : "",
             reason ? reason : "");
    error = act(c, r, ro, a, why);
    ll_rollout_free(ro);
    if (error == LL_ECONFLICT) {
        char msg[LL_ERROR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
        ll_error_set(LL_ECONFLICT, "cannot %s: %s", name, msg);
        ll_error_hint("%s", a == ACT_RESUME  ? "only a paused rollout resumes"
                            : a == ACT_PAUSE ? "only a running rollout pauses"
                                             : "only a running or paused rollout can do that");
        return LL_ECONFLICT;
    }
    if (error < 0)
        return error;
    ll_log_info("msg=\"rollout %s\" rollout=%lld", name, id);
    ll_status_touch(c->status);
    ll_rollouts_notify(ll_core_rollouts(c));
    return answer(out, r, id);
}

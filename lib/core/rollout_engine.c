/* rollout_engine.c - the thread that drives rollouts wave by wave.
 *
 * The engine is one thread with its own registry connection.  Each round it
 * reads the rollouts that are running or rolling back and moves each one
 * step, from the record the registry gives (nothing is kept in memory, so a
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
 * Each move is one ll_rollout_step (or a wave's start, or a rollback) that
 * names the state it expects, so a control action from the API racing the
 * engine never loses either.  It wakes on notifications (the git writer's
 * batches, the status follower's events, the API's writes) and every
 * POLL_MS for timers.
 *
 * Events (rollout.*) are built here as JSON: they are stored and sent to
 * webhooks as they are.
 *
 * Threads: drive() and what it calls run only on the engine's thread;
 * ll_rollouts_notify() and ll_rollouts_generation() from any thread (under
 * lock).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/registry.h"
#include "landlord/rollouts.h"
#include "landlord/util.h"
#include "landlord/worker.h"

#define POLL_MS       250
#define FAILED_SHOWN  5 /* failed tenants named in a wave's error */
#define MESSAGE_SHOWN 160

struct ll_rollouts {
    char *db_path, *author_name, *author_email;
    ll_status *status;
    ll_gitops *git;
    void (*on_events)(void *payload);
    void *on_events_payload;
    ll_registry *reg; /* the engine thread's */

    ll_worker worker;
    pthread_mutex_t lock;          /* generation */
    unsigned long long generation; /* events stored */
};

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
static int step(ll_rollouts *e, const ll_rollout_step *s)
{
    int error = ll_registry_rollout_step(e->reg, s);
    if (error == 0)
        stored_events(e);
    else if (error != LL_ECONFLICT)
        ll_log_warn("msg=\"rollout step failed\" error=\"%s\"", ll_error_last()->message);
    return error;
}

/* An event of type (a static string) with data {"version", "wave"?, ...}
 * (a reference of its own: ll_event_notes_clear): the keys of more
 * (stolen; may be NULL) follow in data. */
static ll_event_note event_with(const char *type, const ll_rollout *ro, int wave, json_t *more)
{
    json_t *data = json_pack("{s:s}", "version", ro->version);
    if (wave > 0)
        json_object_set_new(data, "wave", json_integer(wave));
    if (more)
        json_object_update(data, more);
    json_decref(more);
    return (ll_event_note){.type = type, .data = data};
}

static ll_event_note event(const char *type, const ll_rollout *ro, int wave)
{
    return event_with(type, ro, wave, NULL);
}

/* The event with data.reason = why. */
static ll_event_note event_why(const char *type, const ll_rollout *ro, int wave, const char *why)
{
    return event_with(type, ro, wave, json_pack("{s:s}", "reason", why));
}

/* After a wave's start or a rollback was stored. */
static void queued(ll_rollouts *e, long long op)
{
    stored_events(e);
    if (op)
        ll_gitops_notify(e->git);
    ll_status_touch(e->status);
}

/* The wave failed: pause, or return every tenant the rollout moved. */
static void fail_wave(ll_rollouts *e, const ll_rollout *ro, int wave, const char *why)
{
    char now[32];
    ll_event_note events[2] = {event_with(
        "rollout.failed", ro, wave,
        json_pack("{s:s, s:s}", "reason", why, "on_failure", ll_on_failure_name(ro->on_failure)))};
    ll_rollout_step s = {.rollout = ro->id,
                         .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                         .set = LL_SET_REASON,
                         .reason = why,
                         .wave = wave,
                         .wave_set = LL_WSET_STATE | LL_WSET_ERROR | LL_WSET_FINISHED_AT,
                         .wave_state = LL_WAVE_FAILED,
                         .error = why,
                         .wave_finished_at = now};

    ll_now_rfc3339(now);
    ll_log_warn("msg=\"rollout wave failed\" rollout=%lld wave=%d on_failure=%s error=\"%s\"",
                ro->id, wave, ll_on_failure_name(ro->on_failure), why);
    if (ro->on_failure == LL_ON_FAILURE_ROLLBACK) {
        ll_registry_author author = {e->author_name, e->author_email};
        long long op = 0;
        s.events = events;
        s.nevents = 1; /* failed */
        int error = ll_registry_rollout_rollback(&op, e->reg, ro->id, &s, &author);
        ll_event_notes_clear(events, 1);
        if (error == 0)
            queued(e, op);
        else if (error != LL_ECONFLICT)
            ll_log_warn("msg=\"cannot roll back\" rollout=%lld error=\"%s\"", ro->id,
                        ll_error_last()->message);
        return;
    }
    s.set |= LL_SET_STATE;
    s.state = LL_ROLLOUT_PAUSED;
    events[1] = event_why("rollout.paused", ro, wave, why);
    s.events = events;
    s.nevents = 2; /* failed, paused */
    step(e, &s);
    ll_event_notes_clear(events, 2);
}

/* --- watching a wave ---------------------------------------------------------------- */

/* What the tenants of a wave say. */
typedef struct tally {
    size_t total, ready, failed;
    char failures[LL_ERROR_MSG_MAX];
} tally;

typedef char reason_buf[MESSAGE_SHOWN + 64];

/* Judges one tenant of the wave, counted in n: the state it turned to (or
 * LL_RT_STATES for none), with the reason in reason. */
static ll_rt_state judge(reason_buf reason, tally *n, ll_rollouts *e, const ll_rollout *ro,
                         const ll_wave_tenant *t)
{
    ll_rt_state became = LL_RT_STATES;
    reason[0] = 0;
    /* Changed by someone since the wave moved it: not this wave's to wait on. */
    if (!t->active) {
        snprintf(reason, sizeof(reason_buf), "%s since its wave moved it",
                 t->lifecycle ? t->lifecycle : "gone");
        return LL_RT_SKIPPED;
    }
    if (!t->chart_version || strcmp(t->chart_version, ro->version) != 0) {
        snprintf(reason, sizeof(reason_buf), "moved to %s since its wave moved it",
                 t->chart_version ? t->chart_version : "?");
        return LL_RT_SKIPPED;
    }
    n->total++;
    ll_verdict v;
    if (ll_status_verdict(&v, e->status, t->id, t->commit_sha, t->sync) < 0)
        return became; /* not derived for its desired state yet */
    if (v.state == LL_STATE_READY && v.deployed_chart[0] &&
        strcmp(v.deployed_chart, ro->version) == 0) {
        n->ready++;
        if (t->state != LL_RT_READY)
            became = LL_RT_READY;
    } else if (v.state == LL_STATE_FAILED) {
        n->failed++;
        snprintf(reason, sizeof(reason_buf), "%.*s", MESSAGE_SHOWN, v.message);
        if (n->failed <= FAILED_SHOWN) {
            size_t len = strlen(n->failures);
            snprintf(n->failures + len, sizeof(n->failures) - len, "%s%s: %s", len ? "; " : "",
                     t->id, reason);
        }
        if (t->state != LL_RT_FAILED)
            became = LL_RT_FAILED;
    }
    return became;
}

/* Records who turned ready, failed or skipped; -1 when that could not be
 * read or stored. */
static int judge_wave(tally *n, ll_rollouts *e, const ll_rollout *ro, int wave)
{
    ll_wave_tenant *rows = NULL;
    ll_rt_change *changes = NULL;
    reason_buf *reasons = NULL;
    ll_event_note *events = NULL;
    size_t count = 0, nchanges = 0, nevents = 0;
    int error;

    if ((error = ll_registry_rollout_wave_tenants(&rows, &count, e->reg, ro->id, wave)) < 0) {
        ll_log_warn("msg=\"cannot read a wave\" rollout=%lld error=\"%s\"", ro->id,
                    ll_error_last()->message);
        goto done;
    }
    changes = calloc(count ? count : 1, sizeof(*changes));
    reasons = calloc(count ? count : 1, sizeof(*reasons));
    events = calloc(count ? count : 1, sizeof(*events));
    if (!changes || !reasons || !events) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        ll_rt_state became = judge(reasons[i], n, e, ro, &rows[i]);
        if (became == LL_RT_STATES)
            continue;
        changes[nchanges++] =
            (ll_rt_change){rows[i].id, became, became == LL_RT_READY ? NULL : reasons[i]};
        if (became == LL_RT_SKIPPED)
            continue;
        json_t *more = json_pack("{s:s}", "tenant", rows[i].id);
        if (reasons[i][0])
            json_object_set_new(more, "reason", json_string(reasons[i]));
        events[nevents] =
            event_with(became == LL_RT_READY ? "rollout.tenant_ready" : "rollout.tenant_failed", ro,
                       wave, more);
        events[nevents++].tenant = rows[i].id;
    }
    if (nchanges) {
        ll_rollout_step s = {.rollout = ro->id,
                             .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                             .tenants = changes,
                             .ntenants = nchanges,
                             .events = events,
                             .nevents = nevents};
        error = step(e, &s);
    }
done:
    ll_event_notes_clear(events, nevents);
    free(events);
    free(changes);
    free(reasons);
    ll_wave_tenants_free(rows, count);
    return error < 0 ? -1 : 0;
}

/* The wave passed its gate: on to the next one, or the rollout succeeded. */
static void wave_succeeded(ll_rollouts *e, const ll_rollout *ro, int wave, const char *now)
{
    int last = (size_t)wave >= ro->nwaves;
    ll_event_note events[2] = {event("rollout.wave_succeeded", ro, wave)};
    ll_rollout_step s = {.rollout = ro->id,
                         .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                         .set = LL_SET_CURRENT_WAVE,
                         .current_wave = last ? wave : wave + 1,
                         .wave = wave,
                         .wave_set = LL_WSET_STATE | LL_WSET_FINISHED_AT,
                         .wave_state = LL_WAVE_SUCCEEDED,
                         .wave_finished_at = now,
                         .events = events,
                         .nevents = 1};
    if (last) {
        s.set |= LL_SET_STATE | LL_SET_FINISHED_AT;
        s.state = LL_ROLLOUT_SUCCEEDED;
        s.finished_at = now;
        /* The tiers of the scope run the version now: floating tenants
         * onboarded later start there. */
        if (ro->scope.kind == LL_SELECT_TIERS) {
            s.tier_versions = &ro->scope.names;
            s.tier_version = ro->version;
        }
        events[s.nevents++] = event("rollout.succeeded", ro, 0);
        ll_log_info("msg=\"rollout succeeded\" rollout=%lld version=%s", ro->id, ro->version);
    }
    step(e, &s);
    ll_event_notes_clear(events, s.nevents);
}

/* The wave's deadline passed with tenants not ready. */
static void wave_timed_out(ll_rollouts *e, const ll_rollout *ro, int wave, const tally *n)
{
    char why[300];
    ll_kube_health health;
    ll_status_health(&health, e->status);
    if (health.status != LL_KUBE_OK) {
        /* Never pretend: states were unknown, nothing says the tenants
         * failed.  Stop and let a person look. */
        snprintf(why, sizeof(why),
                 "wave %d timed out after %lld s while the cluster could not be watched (%zu "
                 "of %zu tenant(s) ready)",
                 wave, ro->wave_timeout, n->ready, n->total);
        ll_event_note paused = event_why("rollout.paused", ro, wave, why);
        ll_rollout_step s = {.rollout = ro->id,
                             .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                             .set = LL_SET_STATE | LL_SET_REASON,
                             .state = LL_ROLLOUT_PAUSED,
                             .reason = why,
                             .events = &paused,
                             .nevents = 1};
        step(e, &s);
        ll_event_notes_clear(&paused, 1);
    } else {
        snprintf(why, sizeof(why), "wave %d timed out after %lld s: %zu of %zu tenant(s) ready",
                 wave, ro->wave_timeout, n->ready, n->total);
        fail_wave(e, ro, wave, why);
    }
}

/* Looks at the tenants of a waiting or soaking wave; records who turned
 * ready or failed; ends the wave when it is due. */
static void watch_wave(ll_rollouts *e, const ll_rollout *ro, const ll_wave *w)
{
    long long now_ms = ll_wall_ms();
    ll_wave_state wstate = w->state;
    tally n = {0};
    char now[32];

    ll_now_rfc3339(now);
    if (judge_wave(&n, e, ro, w->wave) < 0)
        return;
    if (n.failed) {
        char why[LL_ERROR_MSG_MAX + 64];
        snprintf(why, sizeof(why), "wave %d: %zu of %zu tenant(s) failed: %s", w->wave, n.failed,
                 n.total, n.failures);
        fail_wave(e, ro, w->wave, why);
        return;
    }
    long long soak_until = w->has_soak_until ? w->soak_until_ms : now_ms;
    if (wstate == LL_WAVE_WAITING && n.ready == n.total) {
        ll_rollout_step s = {.rollout = ro->id,
                             .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                             .wave = w->wave,
                             .wave_set = LL_WSET_STATE | LL_WSET_READY_AT | LL_WSET_SOAK_UNTIL,
                             .wave_state = LL_WAVE_SOAKING,
                             .ready_at = now,
                             .soak_until_ms = now_ms + 1000 * w->soak_seconds};
        ll_log_info("msg=\"rollout wave ready\" rollout=%lld wave=%d tenants=%zu soak_s=%lld",
                    ro->id, w->wave, n.total, w->soak_seconds);
        if (step(e, &s) < 0 || w->soak_seconds > 0)
            return;
        wstate = LL_WAVE_SOAKING;
        soak_until = now_ms;
    }
    if (wstate == LL_WAVE_SOAKING && now_ms >= soak_until)
        wave_succeeded(e, ro, w->wave, now);
    else if (wstate == LL_WAVE_WAITING && w->has_deadline && now_ms > w->deadline_ms)
        wave_timed_out(e, ro, w->wave, &n);
}

/* --- driving ---------------------------------------------------------------------- */

/* Where an outbox operation is. */
typedef struct op_outcome {
    enum { OP_QUEUED, OP_PUSHED, OP_FAILED } state;
    char *commit, *error; /* new strings, or NULL */
} op_outcome;

/* The operation's outcome; -1 when it cannot be read. */
static int op_read(op_outcome *out, ll_rollouts *e, long long id)
{
    ll_operation op = {0};
    memset(out, 0, sizeof(*out));
    if (ll_registry_op_get(&op, e->reg, id) < 0)
        return -1;
    out->state = op.state == LL_OP_PUSHED   ? OP_PUSHED
                 : op.state == LL_OP_FAILED ? OP_FAILED
                                            : OP_QUEUED;
    out->commit = op.commit ? strdup(op.commit) : NULL;
    out->error = op.error ? strdup(op.error) : NULL;
    ll_operation_clear(&op);
    return 0;
}

static void op_clear(op_outcome *o)
{
    free(o->commit);
    free(o->error);
}

/* A rollout rolling back: done when its rollback commit is pushed. */
static void drive_rollback(ll_rollouts *e, const ll_rollout *ro, const char *now)
{
    op_outcome op;
    if (op_read(&op, e, ro->rollback_op) < 0)
        return;
    ll_rollout_step s = {.rollout = ro->id, .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_ROLLING_BACK)};
    ll_event_note ev = {0};
    if (op.state == OP_PUSHED) {
        ev = event_with("rollout.rolled_back", ro, 0, json_pack("{s:s?}", "commit", op.commit));
        s.events = &ev;
        s.nevents = 1;
        s.set = LL_SET_STATE | LL_SET_FINISHED_AT | LL_SET_ROLLBACK_SHA;
        s.state = LL_ROLLOUT_ROLLED_BACK;
        s.finished_at = now;
        s.rollback_sha = op.commit;
        step(e, &s);
        ll_log_info("msg=\"rollout rolled back\" rollout=%lld", ro->id);
    } else if (op.state == OP_FAILED) {
        char why[LL_ERROR_MSG_MAX + 64];
        snprintf(why, sizeof(why), "the rollback commit failed: %s", op.error ? op.error : "?");
        ev = event_why("rollout.failed", ro, 0, why);
        s.events = &ev;
        s.nevents = 1;
        s.set = LL_SET_STATE | LL_SET_REASON | LL_SET_FINISHED_AT;
        s.state = LL_ROLLOUT_FAILED;
        s.reason = why;
        s.finished_at = now;
        step(e, &s);
    }
    ll_event_notes_clear(&ev, 1);
    op_clear(&op);
}

/* A pending wave starts; 1 to look again at once. */
static int start_wave(ll_rollouts *e, const ll_rollout *ro, int wave)
{
    long long op = 0;
    ll_registry_author author = {e->author_name, e->author_email};
    ll_event_note started = event("rollout.wave_started", ro, wave);
    ll_rollout_step s = {.rollout = ro->id, .events = &started, .nevents = 1};
    int error = ll_registry_rollout_wave_start(&op, e->reg, ro->id, wave, &s, &author);
    ll_event_notes_clear(&started, 1);
    if (error == 0) {
        ll_log_info("msg=\"rollout wave started\" rollout=%lld wave=%d op=%lld", ro->id, wave, op);
        queued(e, op);
        return 1;
    }
    if (error != LL_ECONFLICT)
        ll_log_warn("msg=\"cannot start a wave\" rollout=%lld wave=%d error=\"%s\"", ro->id, wave,
                    ll_error_last()->message);
    return 0;
}

/* A committing wave: waiting once its operation is pushed; 1 to look
 * again at once. */
static int wave_committed(ll_rollouts *e, const ll_rollout *ro, const ll_wave *w, const char *now)
{
    op_outcome op;
    int again = 0;
    if (op_read(&op, e, w->operation_id) < 0)
        return 0;
    if (op.state == OP_PUSHED) {
        ll_rollout_step s = {.rollout = ro->id,
                             .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                             .wave = w->wave,
                             .wave_set = LL_WSET_STATE | LL_WSET_PUSHED_AT | LL_WSET_COMMIT_SHA |
                                         LL_WSET_DEADLINE,
                             .wave_state = LL_WAVE_WAITING,
                             .pushed_at = now,
                             .commit_sha = op.commit,
                             .deadline_ms = ll_wall_ms() + 1000 * ro->wave_timeout};
        again = step(e, &s) == 0;
    } else if (op.state == OP_FAILED) {
        char why[LL_ERROR_MSG_MAX + 64];
        snprintf(why, sizeof(why), "wave %d: its commit failed: %s", w->wave,
                 op.error ? op.error : "?");
        fail_wave(e, ro, w->wave, why);
    }
    op_clear(&op);
    return again;
}

/* A waiting or soaking wave; 1 to look again at once. */
static int wave_watched(ll_rollouts *e, const ll_rollout *ro, const ll_wave *w)
{
    if (!w->has_deadline) {
        /* Nothing was committed: the clock starts now. */
        ll_rollout_step s = {.rollout = ro->id,
                             .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING),
                             .wave = w->wave,
                             .wave_set = LL_WSET_DEADLINE,
                             .deadline_ms = ll_wall_ms() + 1000 * ro->wave_timeout};
        return step(e, &s) == 0;
    }
    unsigned long long gen = ll_rollouts_generation(e);
    watch_wave(e, ro, w);
    /* The wave ended: on to the next one at once. */
    return ll_rollouts_generation(e) != gen;
}

/* A running rollout, at its current wave; 1 to look again at once. */
static int drive_running(ll_rollouts *e, const ll_rollout *ro, const char *now)
{
    int wave = ro->current_wave;
    const ll_wave *w = ll_rollout_wave(ro, wave);
    ll_rollout_step s = {.rollout = ro->id, .expect = LL_ROLLOUT_BIT(LL_ROLLOUT_RUNNING)};

    if (!w) {
        /* No waves at all: nothing to do. */
        ll_event_note done = event("rollout.succeeded", ro, 0);
        s.events = &done;
        s.nevents = 1;
        s.set = LL_SET_STATE | LL_SET_FINISHED_AT;
        s.state = LL_ROLLOUT_SUCCEEDED;
        s.finished_at = now;
        step(e, &s);
        ll_event_notes_clear(&done, 1);
        return 0;
    }
    switch (w->state) {
    case LL_WAVE_PENDING:
        return start_wave(e, ro, wave);
    case LL_WAVE_COMMITTING:
        return wave_committed(e, ro, w, now);
    case LL_WAVE_WAITING:
    case LL_WAVE_SOAKING:
        return wave_watched(e, ro, w);
    case LL_WAVE_SUCCEEDED:
        /* Ended before a crash moved current_wave: move it now. */
        s.set = LL_SET_CURRENT_WAVE;
        s.current_wave = wave + 1;
        step(e, &s);
        return 1;
    case LL_WAVE_FAILED:
        /* Failed before a crash applied on_failure: apply it now. */
        fail_wave(e, ro, wave, w->error ? w->error : "the wave failed");
        return 0;
    default:
        return 0;
    }
}

/* Moves one rollout one step (or a few, when they need no waiting). */
static void drive(ll_rollouts *e, long long id)
{
    for (int guard = 0; guard < 8; guard++) {
        ll_rollout *ro = NULL;
        char now[32];
        int again = 0;

        if (ll_registry_rollout_get(&ro, e->reg, id, 0) < 0)
            return;
        ll_now_rfc3339(now);
        if (ro->state == LL_ROLLOUT_ROLLING_BACK)
            drive_rollback(e, ro, now);
        else if (ro->state == LL_ROLLOUT_RUNNING)
            again = drive_running(e, ro, now);
        ll_rollout_free(ro);
        if (!again)
            return;
    }
}

static void round_(ll_rollouts *e)
{
    long long *ids = NULL;
    size_t n = 0;
    if (ll_registry_rollouts_driven(&ids, &n, e->reg) < 0) {
        ll_log_warn("msg=\"cannot read rollouts\" error=\"%s\"", ll_error_last()->message);
        return;
    }
    for (size_t i = 0; i < n; i++)
        drive(e, ids[i]);
    free(ids);
}

/* --- the thread ------------------------------------------------------------------- */

static void *engine_main(void *arg)
{
    ll_rollouts *e = arg;
    while (!ll_worker_wait(&e->worker, POLL_MS))
        round_(e);
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
    ll_worker_init(&e->worker);
    if (!e->db_path || !e->author_name || !e->author_email) {
        ll_rollouts_free(e);
        return ll_error_set(-1, "out of memory");
    }
    if ((error = ll_registry_open(&e->reg, e->db_path)) < 0) {
        ll_rollouts_free(e);
        return error;
    }
    if ((error = ll_worker_start(&e->worker, engine_main, e, "the rollout engine")) < 0) {
        ll_rollouts_free(e);
        return error;
    }
    ll_rollouts_notify(e); /* rollouts that were running before a restart */
    *out = e;
    return 0;
}

void ll_rollouts_stop(ll_rollouts *e)
{
    if (e)
        ll_worker_stop(&e->worker);
}

void ll_rollouts_free(ll_rollouts *e)
{
    if (!e)
        return;
    ll_worker_destroy(&e->worker);
    ll_registry_close(e->reg);
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
    ll_worker_poke(&e->worker);
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

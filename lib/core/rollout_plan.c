/* rollout_plan.c - planning a rollout: which tenants each wave moves, and
 * which pool environments move with which wave.
 *
 * Pure: records in, records out; no registry, no threads, no clock.  The
 * use case (rollouts.c) reads the candidates from the registry, parses each
 * requested wave from the body and hands it here one at a time (so errors
 * come in the order of the request), then stores the plan.
 *
 *   init    every candidate becomes a tenant record: skipped (pinned, or at
 *           the version already, with the reason) or a target (pending)
 *   wave    tiers: the unassigned targets of those tiers; tenants: those
 *           named; percent: that share (rounded up) of the targets still
 *           unassigned, in the candidates' order
 *   finish  every target must be in a wave; pools move with the first wave
 *           holding a target of a tier they serve (else wave 1)
 *
 * Errors are LL_EINVALID with the request field they concern.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/tiers.h"
#include "landlord/validate.h"
#include "core_int.h"
#include "rollouts_int.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int by_id(const void *a, const void *b)
{
    const ll_rollout_tenant *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

/* The tenant record with id, or NULL. */
static ll_rollout_tenant *find(const ll_plan *p, const char *id)
{
    size_t lo = 0, hi = p->ntenants;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(p->byid[mid]->id, id);
        if (c == 0)
            return p->byid[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Each named tenant is a candidate (the plan's tenants are the candidates,
 * in their order) and active. */
static int check_named(const ll_plan *p, const ll_rollout_candidate *c, const ll_names *names)
{
    for (size_t i = 0; names && i < names->n; i++) {
        const ll_rollout_tenant *t = find(p, names->v[i]);
        if (!t)
            return ll_core_field_error("tenants", "no tenant '%s'", names->v[i]);
        if (!c[t - p->tenants].active)
            return ll_core_field_error("tenants", "tenant '%s' is not active (%s)", names->v[i],
                                       c[t - p->tenants].lifecycle);
    }
    return 0;
}

int ll_plan_init(ll_plan *p, const char *version, const ll_rollout_candidate *candidates, size_t n,
                 const ll_names *scope_tiers, const ll_names *names,
                 const ll_tier_catalogue *catalogue)
{
    memset(p, 0, sizeof(*p));
    p->version = version;
    p->catalogue = catalogue;
    p->scope_tiers = scope_tiers;
    p->tenants = calloc(n ? n : 1, sizeof(*p->tenants));
    p->byid = calloc(n ? n : 1, sizeof(*p->byid));
    if (!p->tenants || !p->byid)
        return ll_error_set(-1, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const ll_rollout_candidate *c = &candidates[i];
        ll_rollout_tenant *t = &p->tenants[p->ntenants++];
        char why[128] = "";
        if (ll_release_pinned(c->release))
            snprintf(why, sizeof(why), "pinned to %s", c->release);
        else if (c->chart_version && strcmp(c->chart_version, version) == 0)
            snprintf(why, sizeof(why), "at %s already", version);
        t->id = strdup(c->id);
        t->tier = dup_or_null(c->tier);
        t->from_version = dup_or_null(c->chart_version);
        t->state = why[0] ? LL_RT_SKIPPED : LL_RT_PENDING;
        t->reason = why[0] ? strdup(why) : NULL;
        p->targets += !why[0];
        p->byid[i] = t;
        if (!t->id)
            return ll_error_set(-1, "out of memory");
    }
    qsort(p->byid, p->ntenants, sizeof(*p->byid), by_id);
    return check_named(p, candidates, names);
}

/* Puts a target into wave. */
static void assign(ll_plan *p, ll_rollout_tenant *t, int wave)
{
    t->wave = wave;
    p->assigned++;
}

static int wave_of_tiers(ll_plan *p, const ll_names *tiers, int wave, const char *field)
{
    for (size_t k = 0; k < tiers->n; k++) {
        const char *name = tiers->v[k];
        if (!ll_tiers_find(p->catalogue, name) ||
            (p->scope_tiers && !ll_names_has(p->scope_tiers, name)))
            return ll_core_field_error(
                field, "%s names tier '%s', which is not in the rollout's scope", field, name);
    }
    for (size_t k = 0; k < p->ntenants; k++) {
        ll_rollout_tenant *t = &p->tenants[k];
        if (t->state != LL_RT_SKIPPED && !t->wave && ll_names_has(tiers, t->tier))
            assign(p, t, wave);
    }
    return 0;
}

static int wave_of_tenants(ll_plan *p, const ll_names *names, int wave, const char *field)
{
    for (size_t k = 0; k < names->n; k++) {
        ll_rollout_tenant *t = find(p, names->v[k]);
        if (!t)
            return ll_core_field_error(field,
                                       "%s names tenant '%s', which is not in the rollout's scope",
                                       field, names->v[k]);
        if (t->state == LL_RT_SKIPPED)
            continue; /* pinned or there already: listed as skipped */
        if (t->wave)
            return ll_core_field_error(field, "tenant '%s' is in wave %d already", names->v[k],
                                       t->wave);
        assign(p, t, wave);
    }
    return 0;
}

static void wave_of_percent(ll_plan *p, long long percent, int wave)
{
    size_t left = p->targets - p->assigned;
    /* the share rounded up, in integers (percent is 1..100) */
    size_t take = (left * (size_t)percent + 99) / 100;
    for (size_t k = 0; k < p->ntenants && take; k++) {
        ll_rollout_tenant *t = &p->tenants[k];
        if (t->state != LL_RT_SKIPPED && !t->wave) {
            assign(p, t, wave);
            take--;
        }
    }
}

/* A copy of a selector into out. */
static int selector_copy(ll_selector *out, const ll_selector *s)
{
    memset(out, 0, sizeof(*out));
    out->kind = s->kind;
    out->percent = s->percent;
    for (size_t i = 0; i < s->names.n; i++)
        if (ll_names_add(&out->names, s->names.v[i]) < 0)
            return -1;
    return 0;
}

int ll_plan_wave(ll_plan *p, const ll_wave *req, const char *field)
{
    int wave = (int)p->nwaves + 1, error = 0;
    ll_wave *w;

    if (req->selector.kind == LL_SELECT_TIERS)
        error = wave_of_tiers(p, &req->selector.names, wave, field);
    else if (req->selector.kind == LL_SELECT_TENANTS)
        error = wave_of_tenants(p, &req->selector.names, wave, field);
    else
        wave_of_percent(p, req->selector.percent, wave);
    if (error < 0)
        return error;
    w = realloc(p->waves, (p->nwaves + 1) * sizeof(*w));
    if (!w)
        return ll_error_set(-1, "out of memory");
    p->waves = w;
    w = &p->waves[p->nwaves++];
    memset(w, 0, sizeof(*w));
    w->wave = wave;
    w->soak_seconds = req->soak_seconds;
    return selector_copy(&w->selector, &req->selector);
}

/* The first wave holding a target of a scope tier that pool serves, else
 * 1. */
static int pool_wave(const ll_plan *p, const char *pool)
{
    int wave = 0;
    for (size_t m = 0; m < p->scope_tiers->n; m++) {
        const ll_tier *tier = ll_tiers_find(p->catalogue, p->scope_tiers->v[m]);
        int serves = ll_tier_uses_pool(tier, pool);
        for (size_t q = 0; serves && q < p->ntenants; q++) {
            const ll_rollout_tenant *t = &p->tenants[q];
            if (t->state != LL_RT_SKIPPED && t->tier &&
                strcmp(t->tier, p->scope_tiers->v[m]) == 0 && (!wave || t->wave < wave))
                wave = t->wave;
        }
    }
    return wave ? wave : 1;
}

static int add_pool(ll_plan *p, const char *name, const char *from)
{
    ll_rollout_pool *v = realloc(p->pools, (p->npools + 1) * sizeof(*v));
    if (!v)
        return ll_error_set(-1, "out of memory");
    p->pools = v;
    v = &p->pools[p->npools++];
    memset(v, 0, sizeof(*v));
    v->pool = strdup(name);
    v->from_version = strdup(from);
    v->wave = pool_wave(p, name);
    v->state = LL_POOL_PENDING;
    return v->pool && v->from_version ? 0 : ll_error_set(-1, "out of memory");
}

/* The pools of the scope's tiers that move, each once. */
static int plan_pools(ll_plan *p)
{
    ll_names seen = {0};
    int error = 0;

    for (size_t i = 0; i < p->scope_tiers->n && error >= 0; i++) {
        const ll_tier *tier = ll_tiers_find(p->catalogue, p->scope_tiers->v[i]);
        for (size_t k = 0; tier && k < tier->n_pools; k++) {
            const char *name = tier->pools[k];
            const char *from = ll_tiers_pool_version(p->catalogue, name);
            if (!name || ll_names_has(&seen, name) || !ll_tiers_is_pool(p->catalogue, name) ||
                !from || strcmp(from, p->version) == 0 || ll_validate_label(name, 63, "pool") < 0)
                continue;
            if ((error = ll_names_add(&seen, name)) < 0 || (error = add_pool(p, name, from)) < 0)
                break;
        }
    }
    ll_names_clear(&seen);
    if (error >= 0)
        ll_error_clear();
    return error < 0 ? error : 0;
}

int ll_plan_finish(ll_plan *p)
{
    if (p->assigned < p->targets) {
        const char *first = "?";
        for (size_t k = 0; k < p->ntenants; k++) {
            if (p->tenants[k].state != LL_RT_SKIPPED && !p->tenants[k].wave) {
                first = p->tenants[k].id;
                break;
            }
        }
        ll_core_field_error("waves", "the waves leave %zu tenant(s) of the scope out (%s first)",
                            p->targets - p->assigned, first);
        ll_error_hint("end with a wave of {\"percent\": 100}");
        return LL_EINVALID;
    }
    return p->scope_tiers ? plan_pools(p) : 0;
}

void ll_plan_clear(ll_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ntenants; i++)
        ll_rollout_tenant_clear(&p->tenants[i]);
    free(p->tenants);
    free(p->byid);
    for (size_t i = 0; i < p->nwaves; i++)
        ll_wave_clear(&p->waves[i]);
    free(p->waves);
    for (size_t i = 0; i < p->npools; i++)
        ll_rollout_pool_clear(&p->pools[i]);
    free(p->pools);
    memset(p, 0, sizeof(*p));
}

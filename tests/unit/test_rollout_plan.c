/* Unit tests of wave planning (lib/core/rollout_plan.c) and of the rollout
 * records' conversions (lib/registry/rollout_records.c): enum <-> text,
 * selectors <-> JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/rollouts_int.h"
#include "landlord/error.h"
#include "landlord/rollout_records.h"

/* --- fixtures ---------------------------------------------------------------------- */

/* Tiers basic (pool shared-a), premium (pools shared-a and shared-b), gold
 * (pool shared-c, which runs 2.0.0 already); every pool runs 1.0.0 but
 * shared-c. */
static char **strs(const char *const *list, size_t *n)
{
    char **v = calloc(8, sizeof(*v));
    assert_non_null(v);
    for (*n = 0; list[*n]; (*n)++)
        v[*n] = strdup(list[*n]);
    return v;
}

static ll_tier_catalogue *catalogue(void)
{
    static const char *const names[] = {"basic", "premium", "gold"};
    static const char *const tier_pools[][3] = {
        {"shared-a", NULL}, {"shared-a", "shared-b", NULL}, {"shared-c", NULL}};
    static const char *const pools[] = {"shared-a", "shared-b", "shared-c", NULL};
    static const char *const versions[] = {"1.0.0", "1.0.0", "2.0.0"};
    ll_tier_catalogue *cat = ll_tier_catalogue_new();

    assert_non_null(cat);
    cat->tiers = calloc(3, sizeof(*cat->tiers));
    cat->versions = calloc(3, sizeof(*cat->versions));
    assert_non_null(cat->tiers);
    assert_non_null(cat->versions);
    for (size_t i = 0; i < 3; i++) {
        cat->tiers[i].name = strdup(names[i]);
        cat->tiers[i].pools = strs(tier_pools[i], &cat->tiers[i].n_pools);
        cat->versions[i].pool = strdup(pools[i]);
        cat->versions[i].version = strdup(versions[i]);
    }
    cat->n_tiers = cat->n_versions = 3;
    cat->pools = strs(pools, &cat->n_pools);
    assert_int_equal(ll_tier_catalogue_index(cat), 0);
    return cat;
}

/* A candidate: id, tier, release, chart version; active unless lifecycle. */
typedef struct cand {
    const char *id, *tier, *release, *chart, *lifecycle;
} cand;

static ll_rollout_candidate *candidates(const cand *c, size_t n)
{
    ll_rollout_candidate *v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const char *lifecycle = c[i].lifecycle ? c[i].lifecycle : "active";
        v[i].id = strdup(c[i].id);
        v[i].tier = strdup(c[i].tier);
        v[i].release = strdup(c[i].release);
        v[i].chart_version = strdup(c[i].chart);
        v[i].lifecycle = strdup(lifecycle);
        v[i].active = strcmp(lifecycle, "active") == 0;
    }
    return v;
}

static ll_names names(const char *const *list)
{
    ll_names l = {0};
    for (; *list; list++)
        assert_int_equal(ll_names_add(&l, *list), 0);
    return l;
}

static ll_wave wave_tiers(const char *const *list)
{
    ll_wave w = {.selector = {.kind = LL_SELECT_TIERS, .names = names(list)}};
    return w;
}

static ll_wave wave_tenants(const char *const *list)
{
    ll_wave w = {.selector = {.kind = LL_SELECT_TENANTS, .names = names(list)}};
    return w;
}

static ll_wave wave_percent(long long percent, long long soak)
{
    ll_wave w = {.selector = {.kind = LL_SELECT_PERCENT, .percent = percent}, .soak_seconds = soak};
    return w;
}

static const ll_rollout_tenant *tenant(const ll_plan *p, const char *id)
{
    for (size_t i = 0; i < p->ntenants; i++)
        if (strcmp(p->tenants[i].id, id) == 0)
            return &p->tenants[i];
    fail_msg("no tenant %s in the plan", id);
    return NULL;
}

static int wave_of(const ll_plan *p, const char *id)
{
    return tenant(p, id)->wave;
}

static const ll_rollout_pool *pool(const ll_plan *p, const char *name)
{
    for (size_t i = 0; i < p->npools; i++)
        if (strcmp(p->pools[i].pool, name) == 0)
            return &p->pools[i];
    return NULL;
}

/* Plans waves (each cleared after) over the candidates; the code of the
 * first failing step. */
static int plan(ll_plan *p, const cand *c, size_t n, const ll_names *scope_tiers,
                const ll_names *named, ll_wave *waves, size_t nwaves, const ll_tier_catalogue *cat)
{
    ll_rollout_candidate *v = candidates(c, n);
    int error = ll_plan_init(p, "2.0.0", v, n, scope_tiers, named, cat);
    for (size_t i = 0; i < nwaves; i++) {
        if (error >= 0)
            error = ll_plan_wave(p, &waves[i], "waves[x]");
        ll_wave_clear(&waves[i]);
    }
    if (error >= 0)
        error = ll_plan_finish(p);
    ll_rollout_candidates_free(v, n);
    return error;
}

static const cand fleet[] = {
    {"a1", "basic", "1.0", "1.0.3", NULL},   {"a2", "basic", "1.0", "1.0.3", NULL},
    {"b1", "premium", "1.0", "1.0.3", NULL}, {"b2", "premium", "1.0.x", "1.0.3", NULL},
    {"g1", "gold", "1.0", "1.0.3", NULL},
};

/* --- planning ---------------------------------------------------------------------- */

/* Waves by tier take the targets of their tiers; pools move with the first
 * wave that holds a tenant of a tier they serve. */
static void test_waves_by_tier(void **state)
{
    ll_tier_catalogue *cat = catalogue();
    ll_names scope = names((const char *[]){"basic", "premium", "gold", NULL});
    ll_wave waves[] = {wave_tiers((const char *[]){"premium", NULL}),
                       wave_tiers((const char *[]){"basic", "gold", NULL})};
    ll_plan p;

    assert_int_equal(plan(&p, fleet, 5, &scope, NULL, waves, 2, cat), 0);
    assert_int_equal(p.nwaves, 2);
    assert_int_equal(p.waves[0].wave, 1);
    assert_int_equal(p.waves[0].selector.kind, LL_SELECT_TIERS);
    assert_string_equal(p.waves[0].selector.names.v[0], "premium");
    assert_int_equal(p.targets, 5);
    assert_int_equal(wave_of(&p, "b1"), 1);
    assert_int_equal(wave_of(&p, "b2"), 1);
    assert_int_equal(wave_of(&p, "a1"), 2);
    assert_int_equal(wave_of(&p, "a2"), 2);
    assert_int_equal(wave_of(&p, "g1"), 2);
    assert_int_equal(tenant(&p, "a1")->state, LL_RT_PENDING);
    assert_string_equal(tenant(&p, "a1")->from_version, "1.0.3");
    /* shared-a serves basic (wave 2) and premium (wave 1): wave 1;
     * shared-b serves premium: wave 1; shared-c runs 2.0.0 already. */
    assert_int_equal(p.npools, 2);
    assert_non_null(pool(&p, "shared-a"));
    assert_int_equal(pool(&p, "shared-a")->wave, 1);
    assert_string_equal(pool(&p, "shared-a")->from_version, "1.0.0");
    assert_int_equal(pool(&p, "shared-a")->state, LL_POOL_PENDING);
    assert_int_equal(pool(&p, "shared-b")->wave, 1);
    assert_null(pool(&p, "shared-c"));
    ll_plan_clear(&p);
    ll_names_clear(&scope);
    ll_tier_catalogue_unref(cat);
    (void)state;
}

/* A pool whose tiers have no target moves with wave 1. */
static void test_pool_without_targets(void **state)
{
    ll_tier_catalogue *cat = catalogue();
    ll_names scope = names((const char *[]){"basic", NULL});
    static const cand pinned[] = {{"a1", "basic", "1.0.3", "1.0.3", NULL}};
    ll_wave waves[] = {wave_percent(100, 0)};
    ll_plan p;

    assert_int_equal(plan(&p, pinned, 1, &scope, NULL, waves, 1, cat), 0);
    assert_int_equal(p.targets, 0);
    assert_int_equal(p.npools, 1);
    assert_int_equal(pool(&p, "shared-a")->wave, 1);
    ll_plan_clear(&p);
    ll_names_clear(&scope);
    ll_tier_catalogue_unref(cat);
    (void)state;
}

/* Named tenants first, the rest by percentages of the targets still
 * unassigned (rounded up), in the candidates' order. */
static void test_named_then_percentages(void **state)
{
    ll_tier_catalogue *cat = catalogue();
    ll_names scope = names((const char *[]){"basic", "premium", "gold", NULL});
    ll_wave waves[] = {wave_tenants((const char *[]){"g1", NULL}), wave_percent(30, 60),
                       wave_percent(50, 0), wave_percent(100, 0)};
    ll_plan p;

    assert_int_equal(plan(&p, fleet, 5, &scope, NULL, waves, 4, cat), 0);
    assert_int_equal(p.nwaves, 4);
    assert_int_equal(wave_of(&p, "g1"), 1);
    /* 30 % of 4 left: 2 (1.2 rounded up), the first two in order. */
    assert_int_equal(wave_of(&p, "a1"), 2);
    assert_int_equal(wave_of(&p, "a2"), 2);
    assert_int_equal(p.waves[1].soak_seconds, 60);
    assert_int_equal(p.waves[1].selector.percent, 30);
    /* 50 % of 2 left: 1. */
    assert_int_equal(wave_of(&p, "b1"), 3);
    assert_int_equal(wave_of(&p, "b2"), 4);
    /* Pools by the first wave of a tier they serve: premium is in 3 and 4,
     * basic in 2: shared-a with 2, shared-b with 3. */
    assert_int_equal(pool(&p, "shared-a")->wave, 2);
    assert_int_equal(pool(&p, "shared-b")->wave, 3);
    ll_plan_clear(&p);
    ll_names_clear(&scope);
    ll_tier_catalogue_unref(cat);
    (void)state;
}

/* Pinned tenants and those at the version are skipped with the reason; a
 * wave naming one leaves it skipped. */
static void test_skipped(void **state)
{
    ll_tier_catalogue *cat = catalogue();
    static const cand some[] = {
        {"p1", "basic", "1.0.3", "1.0.3", NULL}, /* pinned */
        {"t1", "basic", "1.0", "2.0.0", NULL},   /* there already */
        {"m1", "basic", "1.0", "1.0.3", NULL},
    };
    ll_names named = names((const char *[]){"p1", "t1", "m1", NULL});
    ll_wave waves[] = {wave_tenants((const char *[]){"p1", "m1", NULL})};
    ll_plan p;

    assert_int_equal(plan(&p, some, 3, NULL, &named, waves, 1, cat), 0);
    assert_int_equal(p.targets, 1);
    assert_int_equal(tenant(&p, "p1")->state, LL_RT_SKIPPED);
    assert_int_equal(tenant(&p, "p1")->wave, 0);
    assert_string_equal(tenant(&p, "p1")->reason, "pinned to 1.0.3");
    assert_int_equal(tenant(&p, "t1")->state, LL_RT_SKIPPED);
    assert_string_equal(tenant(&p, "t1")->reason, "at 2.0.0 already");
    assert_int_equal(tenant(&p, "m1")->state, LL_RT_PENDING);
    assert_int_equal(wave_of(&p, "m1"), 1);
    assert_null(tenant(&p, "m1")->reason);
    assert_int_equal(p.npools, 0); /* a scope of tenants moves no pool */
    ll_plan_clear(&p);
    ll_names_clear(&named);
    ll_tier_catalogue_unref(cat);
    (void)state;
}

/* What a plan refuses, with the field it names. */
static void test_refused(void **state)
{
    ll_tier_catalogue *cat = catalogue();
    ll_names scope = names((const char *[]){"basic", "premium", NULL});
    ll_plan p;

    /* A tier out of the scope. */
    ll_wave w1[] = {wave_tiers((const char *[]){"gold", NULL})};
    assert_int_equal(plan(&p, fleet, 4, &scope, NULL, w1, 1, cat), LL_EINVALID);
    assert_string_equal(ll_error_last()->field, "waves[x]");
    assert_non_null(strstr(ll_error_last()->message, "tier 'gold'"));
    ll_plan_clear(&p);
    /* A tenant out of the scope, and one named twice across waves. */
    ll_wave w2[] = {wave_tenants((const char *[]){"g1", NULL})};
    assert_int_equal(plan(&p, fleet, 4, &scope, NULL, w2, 1, cat), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "not in the rollout's scope"));
    ll_plan_clear(&p);
    ll_wave w3[] = {wave_tenants((const char *[]){"a1", NULL}),
                    wave_tenants((const char *[]){"a1", NULL})};
    assert_int_equal(plan(&p, fleet, 4, &scope, NULL, w3, 2, cat), LL_EINVALID);
    assert_string_equal(ll_error_last()->message, "tenant 'a1' is in wave 1 already");
    ll_plan_clear(&p);
    /* Waves that leave a target out. */
    ll_wave w4[] = {wave_tiers((const char *[]){"basic", NULL})};
    assert_int_equal(plan(&p, fleet, 4, &scope, NULL, w4, 1, cat), LL_EINVALID);
    assert_string_equal(ll_error_last()->field, "waves");
    assert_string_equal(ll_error_last()->message,
                        "the waves leave 2 tenant(s) of the scope out (b1 first)");
    ll_plan_clear(&p);
    /* A named tenant that is unknown, or not active. */
    static const cand off[] = {{"o1", "basic", "1.0", "1.0.3", "offboarding"}};
    ll_names named = names((const char *[]){"o1", NULL});
    assert_int_equal(plan(&p, off, 1, NULL, &named, NULL, 0, cat), LL_EINVALID);
    assert_string_equal(ll_error_last()->field, "tenants");
    assert_string_equal(ll_error_last()->message, "tenant 'o1' is not active (offboarding)");
    ll_plan_clear(&p);
    assert_int_equal(plan(&p, off, 0, NULL, &named, NULL, 0, cat), LL_EINVALID);
    assert_string_equal(ll_error_last()->message, "no tenant 'o1'");
    ll_plan_clear(&p);
    ll_names_clear(&named);
    ll_names_clear(&scope);
    ll_tier_catalogue_unref(cat);
    (void)state;
}

/* --- record conversions ------------------------------------------------------------ */

/* Every enum value has a name that parses back to it, the text the
 * migration's CHECK constraints allow; unknown text is refused. */
static void test_state_names(void **state)
{
    static const char *const rollout[] = {"running",     "paused",  "rolling_back", "succeeded",
                                          "rolled_back", "aborted", "failed"};
    static const char *const wave[] = {"pending", "committing", "waiting",
                                       "soaking", "succeeded",  "failed"};
    static const char *const rt[] = {"pending", "updating", "ready",
                                     "failed",  "skipped",  "rolled_back"};
    static const char *const pools[] = {"pending", "moved", "rolled_back"};

    for (int i = 0; i < LL_ROLLOUT_STATES; i++) {
        ll_rollout_state s = LL_ROLLOUT_STATES;
        assert_string_equal(ll_rollout_state_name((ll_rollout_state)i), rollout[i]);
        assert_int_equal(ll_rollout_state_parse(&s, rollout[i]), 0);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < LL_WAVE_STATES; i++) {
        ll_wave_state s = LL_WAVE_STATES;
        assert_string_equal(ll_wave_state_name((ll_wave_state)i), wave[i]);
        assert_int_equal(ll_wave_state_parse(&s, wave[i]), 0);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < LL_RT_STATES; i++) {
        ll_rt_state s = LL_RT_STATES;
        assert_string_equal(ll_rt_state_name((ll_rt_state)i), rt[i]);
        assert_int_equal(ll_rt_state_parse(&s, rt[i]), 0);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < LL_POOL_STATES; i++) {
        ll_pool_state s = LL_POOL_STATES;
        assert_string_equal(ll_pool_state_name((ll_pool_state)i), pools[i]);
        assert_int_equal(ll_pool_state_parse(&s, pools[i]), 0);
        assert_int_equal(s, i);
    }
    ll_on_failure f = LL_ON_FAILURE_PAUSE;
    assert_int_equal(ll_on_failure_parse(&f, "rollback"), 0);
    assert_int_equal(f, LL_ON_FAILURE_ROLLBACK);
    assert_string_equal(ll_on_failure_name(LL_ON_FAILURE_PAUSE), "pause");

    /* Unknown or missing text: refused, the value untouched. */
    ll_rollout_state rs = LL_ROLLOUT_PAUSED;
    assert_int_equal(ll_rollout_state_parse(&rs, "Running"), LL_EINVALID);
    assert_int_equal(ll_rollout_state_parse(&rs, NULL), LL_EINVALID);
    assert_int_equal(rs, LL_ROLLOUT_PAUSED);
    ll_wave_state ws = LL_WAVE_SOAKING;
    assert_int_equal(ll_wave_state_parse(&ws, "done"), LL_EINVALID);
    assert_int_equal(ws, LL_WAVE_SOAKING);
    assert_int_equal(ll_on_failure_parse(&f, "retry"), LL_EINVALID);
    assert_string_equal(ll_rollout_state_name(LL_ROLLOUT_STATES), "?");
    assert_string_equal(ll_wave_state_name((ll_wave_state)-1), "?");
    (void)state;
}

/* Selectors as stored and shown: {"tiers"}, {"tenants"}, {"percent"}. */
static void test_selectors(void **state)
{
    static const char *const texts[] = {"{\"tiers\": [\"basic\", \"premium\"]}",
                                        "{\"tenants\": [\"acme\"]}", "{\"percent\": 25}"};
    static const ll_selector_kind kinds[] = {LL_SELECT_TIERS, LL_SELECT_TENANTS, LL_SELECT_PERCENT};
    for (size_t i = 0; i < 3; i++) {
        json_t *in = json_loads(texts[i], 0, NULL), *out;
        ll_selector s;
        assert_int_equal(ll_selector_from_json(&s, in), 0);
        assert_int_equal(s.kind, kinds[i]);
        out = ll_selector_json(&s);
        assert_true(json_equal(in, out));
        json_decref(out);
        json_decref(in);
        ll_selector_clear(&s);
    }
    ll_selector s;
    json_t *bad = json_pack("{s:s}", "what", "ever");
    assert_int_equal(ll_selector_from_json(&s, bad), LL_EINVALID);
    assert_int_equal(ll_selector_from_json(&s, NULL), LL_EINVALID);
    json_decref(bad);

    ll_names l = names((const char *[]){"x", "y", NULL});
    assert_true(ll_names_has(&l, "y"));
    assert_false(ll_names_has(&l, "z"));
    ll_names_clear(&l);
    assert_int_equal(l.n, 0);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waves_by_tier),
        cmocka_unit_test(test_pool_without_targets),
        cmocka_unit_test(test_named_then_percentages),
        cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_selectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

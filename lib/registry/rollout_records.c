/* rollout_records.c - the rollout records' text tables and helpers.
 *
 * Each enum of rollout_records.h has one table of names, which is the text
 * the registry stores (migrations/0007_rollouts.sql's CHECK constraints) and
 * the API shows: registry_rollouts.c parses rows with it, rollout_view.c
 * names states with it.  Selectors travel as JSON objects both in
 * rollout_waves.selector / rollouts.scope and in API bodies; their one
 * conversion is here.  Pure: no registry, no threads.
 */
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/rollout_records.h"

static const char *const rollout_states[LL_ROLLOUT_STATES] = {
    "running", "paused", "rolling_back", "succeeded", "rolled_back", "aborted", "failed"};
static const char *const wave_states[LL_WAVE_STATES] = {"pending", "committing", "waiting",
                                                        "soaking", "succeeded",  "failed"};
static const char *const rt_states[LL_RT_STATES] = {"pending", "updating", "ready",
                                                    "failed",  "skipped",  "rolled_back"};
static const char *const pool_states[LL_POOL_STATES] = {"pending", "moved", "rolled_back"};
static const char *const on_failures[] = {"pause", "rollback"};

static const char *name_of(const char *const *table, int n, int v)
{
    return v >= 0 && v < n ? table[v] : "?";
}

/* The index of text in table, or LL_EINVALID. */
static int index_of(const char *const *table, int n, const char *text, const char *what)
{
    for (int i = 0; text && i < n; i++)
        if (strcmp(table[i], text) == 0)
            return i;
    return ll_error_set(LL_EINVALID, "unknown %s '%.32s'", what, text ? text : "(null)");
}

#define NAMES(fn, type, table, n)                                                                  \
    const char *fn(type v)                                                                         \
    {                                                                                              \
        return name_of(table, n, (int)v);                                                          \
    }
#define PARSE(fn, type, table, n, what)                                                            \
    int fn(type *out, const char *text)                                                            \
    {                                                                                              \
        int i = index_of(table, n, text, what);                                                    \
        if (i < 0)                                                                                 \
            return i;                                                                              \
        *out = (type)i;                                                                            \
        return 0;                                                                                  \
    }

NAMES(ll_rollout_state_name, ll_rollout_state, rollout_states, LL_ROLLOUT_STATES)
NAMES(ll_wave_state_name, ll_wave_state, wave_states, LL_WAVE_STATES)
NAMES(ll_rt_state_name, ll_rt_state, rt_states, LL_RT_STATES)
NAMES(ll_pool_state_name, ll_pool_state, pool_states, LL_POOL_STATES)
NAMES(ll_on_failure_name, ll_on_failure, on_failures, 2)
PARSE(ll_rollout_state_parse, ll_rollout_state, rollout_states, LL_ROLLOUT_STATES, "rollout state")
PARSE(ll_wave_state_parse, ll_wave_state, wave_states, LL_WAVE_STATES, "wave state")
PARSE(ll_rt_state_parse, ll_rt_state, rt_states, LL_RT_STATES, "rollout tenant state")
PARSE(ll_pool_state_parse, ll_pool_state, pool_states, LL_POOL_STATES, "pool state")
PARSE(ll_on_failure_parse, ll_on_failure, on_failures, 2, "on_failure")

/* --- names and selectors ------------------------------------------------------------ */

int ll_names_add(ll_names *l, const char *name)
{
    char *copy = strdup(name ? name : "");
    char **v = copy ? realloc(l->v, (l->n + 1) * sizeof(*v)) : NULL;
    if (!v) {
        free(copy);
        return ll_error_set(-1, "out of memory");
    }
    l->v = v;
    l->v[l->n++] = copy;
    return 0;
}

int ll_names_has(const ll_names *l, const char *name)
{
    for (size_t i = 0; l && name && i < l->n; i++)
        if (strcmp(l->v[i], name) == 0)
            return 1;
    return 0;
}

void ll_event_notes_clear(ll_event_note *notes, size_t n)
{
    for (size_t i = 0; notes && i < n; i++) {
        json_decref(notes[i].data);
        notes[i].data = NULL;
    }
}

void ll_names_clear(ll_names *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

json_t *ll_selector_json(const ll_selector *s)
{
    json_t *names;
    if (s->kind == LL_SELECT_PERCENT)
        return json_pack("{s:I}", "percent", (json_int_t)s->percent);
    names = json_array();
    for (size_t i = 0; i < s->names.n; i++)
        json_array_append_new(names, json_string(s->names.v[i]));
    return json_pack("{s:o}", s->kind == LL_SELECT_TIERS ? "tiers" : "tenants", names);
}

int ll_selector_from_json(ll_selector *out, const json_t *v)
{
    const json_t *list = json_object_get(v, "tiers"), *x;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (json_is_integer(json_object_get(v, "percent"))) {
        out->kind = LL_SELECT_PERCENT;
        out->percent = json_integer_value(json_object_get(v, "percent"));
        return 0;
    }
    out->kind = list ? LL_SELECT_TIERS : LL_SELECT_TENANTS;
    if (!list)
        list = json_object_get(v, "tenants");
    if (!json_is_array(list))
        return ll_error_set(LL_EINVALID, "a selector names tiers, tenants or a percent");
    json_array_foreach(list, i, x)
    {
        if (ll_names_add(&out->names, json_string_value(x)) < 0) {
            ll_selector_clear(out);
            return -1;
        }
    }
    return 0;
}

void ll_selector_clear(ll_selector *s)
{
    if (s)
        ll_names_clear(&s->names);
}

/* --- freeing ------------------------------------------------------------------------ */

void ll_wave_clear(ll_wave *w)
{
    if (!w)
        return;
    ll_selector_clear(&w->selector);
    free(w->commit_sha);
    free(w->error);
    free(w->started_at);
    free(w->pushed_at);
    free(w->ready_at);
    free(w->finished_at);
    memset(w, 0, sizeof(*w));
}

void ll_rollout_tenant_clear(ll_rollout_tenant *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->tier);
    free(t->from_version);
    free(t->reason);
    free(t->updated_at);
    memset(t, 0, sizeof(*t));
}

void ll_rollout_pool_clear(ll_rollout_pool *p)
{
    if (!p)
        return;
    free(p->pool);
    free(p->from_version);
    memset(p, 0, sizeof(*p));
}

void ll_rollout_free(ll_rollout *ro)
{
    if (!ro)
        return;
    free(ro->version);
    ll_selector_clear(&ro->scope);
    free(ro->reason);
    free(ro->rollback_sha);
    free(ro->author_name);
    free(ro->author_email);
    free(ro->created_at);
    free(ro->updated_at);
    free(ro->finished_at);
    for (size_t i = 0; i < ro->nwaves; i++)
        ll_wave_clear(&ro->waves[i]);
    free(ro->waves);
    for (size_t i = 0; i < ro->npools; i++)
        ll_rollout_pool_clear(&ro->pools[i]);
    free(ro->pools);
    for (size_t i = 0; i < ro->ntenants; i++)
        ll_rollout_tenant_clear(&ro->tenants[i]);
    free(ro->tenants);
    free(ro);
}

void ll_rollout_array_free(ll_rollout **items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        ll_rollout_free(items[i]);
    free(items);
}

const ll_wave *ll_rollout_wave(const ll_rollout *ro, int wave)
{
    return wave >= 1 && (size_t)wave <= ro->nwaves ? &ro->waves[wave - 1] : NULL;
}

void ll_rollout_candidates_free(ll_rollout_candidate *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].tier);
        free(v[i].release);
        free(v[i].chart_version);
        free(v[i].lifecycle);
    }
    free(v);
}

void ll_wave_tenants_free(ll_wave_tenant *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].reason);
        free(v[i].lifecycle);
        free(v[i].commit_sha);
        free(v[i].sync);
        free(v[i].chart_version);
    }
    free(v);
}

/* derive.c - a tenant's observed state from what the cluster shows: the
 * rules of docs/api.md "Observed state" (protocols.md §4.2, "Decision
 * rules").
 *
 * Two steps.  Each declared object is judged alone (judge: HelmRelease,
 * Terraform, Namespace) into an object verdict (ready, progressing,
 * blocked, failed, ranked in that order); the worst object speaks for the
 * tenant, a HelmRelease among equals.  Then the tenant's lifecycle and
 * sync, and the facts the follower found (did Flux fetch and apply a
 * commit that includes the desired one), decide its state (tenant_state).
 *
 * Pure: no threads, no I/O.  st_derive() reads a typed tenant (st_tenant,
 * its declared objects st_object) and the cached slims, and fills a typed
 * verdict (and, when asked, the per-object details the API shows).
 * ll_status_derive() is the same over JSON, for tests and tools.  Also
 * here: the objects a tenant's file declares (st_declared), read by the
 * follower from landlord's clone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/template.h"
#include "status_int.h"

/* --- reading slims ---------------------------------------------------------------- */

const char *st_cond_str(const json_t *slim, const char *type, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(slim, "conditions"), type), field));
}

int st_cond_is(const json_t *slim, const char *type, const char *status)
{
    const char *s = st_cond_str(slim, type, "status");
    return s && strcmp(s, status) == 0;
}

static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static int eq(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

static long long int_of(const json_t *slim, const char *field)
{
    return json_integer_value(json_object_get(slim, field));
}

/* Whether chart version have (a "+build" part ignored) satisfies want: an
 * exact version, or one with x / X / * components ("1.2.x").  A constraint
 * this cannot read (">=1.2 <2") is taken as satisfied. */
static int version_matches(const char *want, const char *have)
{
    if (!want || !want[0])
        return 1;
    if (!have)
        return 0;
    if (strpbrk(want, "<>=~^ |,"))
        return 1;
    size_t hl = strcspn(have, "+");
    const char *w = want, *h = have, *hend = have + hl;
    while (*w) {
        size_t wn = strcspn(w, ".");
        size_t hn = (size_t)(hend - h);
        const char *dot = memchr(h, '.', hn);
        if (dot)
            hn = (size_t)(dot - h);
        int wild = wn == 1 && (*w == 'x' || *w == 'X' || *w == '*');
        if (!wild && (wn != hn || memcmp(w, h, wn) != 0))
            return 0;
        w += wn;
        h += hn;
        if (*w == '.')
            w++;
        if (h < hend && *h == '.')
            h++;
        else if (*w && !wild)
            return 0;
        if (!*w)
            return wild || h >= hend;
    }
    return h >= hend;
}

/* --- judging one object ------------------------------------------------------------ */

/* An object's state, ranked: the tenant takes its worst object's. */
typedef enum obj_state { OBJ_READY, OBJ_PROGRESSING, OBJ_BLOCKED, OBJ_FAILED } obj_state;

static const char *const obj_state_names[] = {"ready", "progressing", "blocked", "failed"};

typedef struct verdict {
    obj_state state;
    char reason[128];
    char message[MESSAGE_MAX + 64];
} verdict;

static void say(verdict *v, obj_state state, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes a verdict's words: reason (NULL: "") and the formatted message. */
static void words(char *reason, size_t reason_cap, char *message, size_t message_cap,
                  const char *why, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static void words(char *reason, size_t reason_cap, char *message, size_t message_cap,
                  const char *why, const char *fmt, va_list ap)
{
    snprintf(reason, reason_cap, "%s", why ? why : "");
    vsnprintf(message, message_cap, fmt, ap);
}

static void say(verdict *v, obj_state state, const char *reason, const char *fmt, ...)
{
    va_list ap;
    v->state = state;
    va_start(ap, fmt);
    words(v->reason, sizeof(v->reason), v->message, sizeof(v->message), reason, fmt, ap);
    va_end(ap);
}

/* The message of o's condition type, or "". */
static const char *cond_msg(const json_t *o, const char *type)
{
    const char *m = st_cond_str(o, type, "message");
    return m ? m : "";
}

static const char *const hr_failures[] = {"InstallFailed",
                                          "UpgradeFailed",
                                          "TestFailed",
                                          "RollbackSucceeded",
                                          "RollbackFailed",
                                          "UninstallSucceeded",
                                          "UninstallFailed",
                                          "ArtifactFailed",
                                          "SourceNotReady",
                                          "ValuesError",
                                          NULL};

/* A HelmRelease being deleted, or not carrying the file's chart version
 * and values yet: the Kustomization's status and the HelmRelease arrive on
 * different watches, and until then its Ready speaks of the spec before.
 * 1 when it said so. */
static int hr_not_current(verdict *v, const json_t *o, const char *want, const char *want_values)
{
    if (json_is_true(json_object_get(o, "deleting"))) {
        say(v, OBJ_PROGRESSING, "Deleting", "the HelmRelease is being deleted");
        return 1;
    }
    const char *live_chart = json_string_value(json_object_get(o, "chart"));
    const char *live_values = json_string_value(json_object_get(o, "values"));
    if ((want && live_chart && strcmp(want, live_chart) != 0) ||
        (want_values && live_values && strcmp(want_values, live_values) != 0)) {
        say(v, OBJ_PROGRESSING, "NotApplied",
            "the HelmRelease does not carry the desired spec yet");
        return 1;
    }
    return 0;
}

/* A HelmRelease Stalled, Remediated, failed (Ready False for one of
 * hr_failures) or waiting on another object.  1 when it said so. */
static int hr_failed(verdict *v, const json_t *o)
{
    const char *ready = st_cond_str(o, "Ready", "status");
    const char *reason = st_cond_str(o, "Ready", "reason");
    if (st_cond_is(o, "Stalled", "True")) {
        if (eq(ready, "False"))
            say(v, OBJ_FAILED, reason, "%s", cond_msg(o, "Ready"));
        else
            say(v, OBJ_FAILED, st_cond_str(o, "Stalled", "reason"), "%s", cond_msg(o, "Stalled"));
        return 1;
    }
    if (st_cond_is(o, "Remediated", "True")) {
        say(v, OBJ_FAILED, st_cond_str(o, "Remediated", "reason"), "%s", cond_msg(o, "Remediated"));
        return 1;
    }
    if (!eq(ready, "False"))
        return 0;
    if (eq(reason, "DependencyNotReady")) {
        say(v, OBJ_BLOCKED, reason, "%s", cond_msg(o, "Ready"));
        return 1;
    }
    if (in_list(reason, hr_failures)) {
        int retrying = eq(st_cond_str(o, "Reconciling", "reason"), "ProgressingWithRetry");
        say(v, OBJ_FAILED, reason, "%s%s", cond_msg(o, "Ready"), retrying ? " (retrying)" : "");
        return 1;
    }
    return 0;
}

/* protocols.md §4.2, "Decision rules": current spec, then failures, then
 * whether helm-controller is done at the generation and chart version. */
static void judge_helmrelease(verdict *v, const json_t *o, const char *want,
                              const char *want_values)
{
    const char *ready = st_cond_str(o, "Ready", "status");
    const char *reason = st_cond_str(o, "Ready", "reason");
    const char *msg = st_cond_str(o, "Ready", "message");
    long long gen = int_of(o, "generation"), seen = int_of(o, "observedGeneration");
    const json_t *hist = json_object_get(o, "history"),
                 *ready_gen =
                     json_object_get(json_object_get(json_object_get(o, "conditions"), "Ready"),
                                     "observedGeneration");
    const char *deployed = json_string_value(json_object_get(hist, "chartVersion"));
    const char *hstatus = json_string_value(json_object_get(hist, "status"));
    const char *attempted = json_string_value(json_object_get(o, "lastAttemptedRevision"));

    if (hr_not_current(v, o, want, want_values) || hr_failed(v, o))
        return;
    if (gen != seen) {
        say(v, OBJ_PROGRESSING, reason ? reason : "Progressing",
            "generation %lld not reconciled yet (observed %lld)", gen, seen);
        return;
    }
    if (!eq(ready, "True") || st_cond_is(o, "Reconciling", "True") ||
        (ready_gen && json_integer_value(ready_gen) != gen)) {
        say(v, OBJ_PROGRESSING, reason ? reason : "Progressing", "%s",
            msg ? msg : "waiting for helm-controller");
        return;
    }
    if (!eq(hstatus, "deployed") || !version_matches(want, deployed) ||
        !version_matches(want, attempted)) {
        say(v, OBJ_PROGRESSING, "ChartVersion", "chart version %s wanted, %s deployed",
            want ? want : "?", deployed ? deployed : "none");
        return;
    }
    say(v, OBJ_READY, reason, "%s", msg ? msg : "");
}

static const char *const tf_failures[] = {"TFExecApplyFailed", "TFExecPlanFailed",
                                          "TFExecInitFailed",  "ArtifactFailed",
                                          "RetryLimitReached", NULL};

static void judge_terraform(verdict *v, const json_t *o)
{
    const char *ready = st_cond_str(o, "Ready", "status");
    const char *reason = st_cond_str(o, "Ready", "reason");
    const char *msg = st_cond_str(o, "Ready", "message");
    if (st_cond_is(o, "Stalled", "True") || (eq(ready, "False") && in_list(reason, tf_failures))) {
        say(v, OBJ_FAILED, reason, "%s", msg ? msg : "");
    } else if (eq(ready, "False") && eq(reason, "DependencyNotReady")) {
        say(v, OBJ_BLOCKED, reason, "%s", msg ? msg : "");
    } else if (eq(reason, "TerraformPlannedWithChanges") && !eq(ready, "True")) {
        say(v, OBJ_BLOCKED, reason, "a plan is waiting for approval");
    } else if (eq(ready, "True") && int_of(o, "generation") == int_of(o, "observedGeneration")) {
        say(v, OBJ_READY, reason, "%s", msg ? msg : "");
    } else {
        say(v, OBJ_PROGRESSING, reason ? reason : "Progressing", "%s",
            msg ? msg : "waiting for tofu-controller");
    }
}

/* o: the object of kind as the cluster shows it, NULL when absent. */
static void judge(verdict *v, st_kind kind, const json_t *o, const char *want,
                  const char *want_values)
{
    if (!o) {
        say(v, OBJ_PROGRESSING, "NotCreated", "not created yet");
        return;
    }
    switch (kind) {
    case ST_HELMRELEASE:
        judge_helmrelease(v, o, want, want_values);
        return;
    case ST_TERRAFORM:
        judge_terraform(v, o);
        return;
    case ST_NAMESPACE:
    case ST_KIND_COUNT:
        break;
    }
    const char *phase = json_string_value(json_object_get(o, "phase"));
    if (json_is_true(json_object_get(o, "deleting")) || eq(phase, "Terminating"))
        say(v, OBJ_PROGRESSING, "Terminating", "the namespace is being deleted");
    else
        say(v, OBJ_READY, "Active", "%s", "");
}

/* --- judging a tenant -------------------------------------------------------------- */

/* What judging a tenant's objects found. */
typedef struct summary {
    int worst;            /* the worst object's obj_state; -1: no objects */
    int top_is_hr;        /* the worst object is a HelmRelease */
    int present;          /* objects that exist */
    int installed_before; /* an object has a Helm history */
    verdict top;          /* the worst object's verdict */
    char top_message[sizeof(((verdict *)0)->message) + 600]; /* prefixed by the object */
    char deployed[64]; /* the first HelmRelease's history[0] chart version */
} summary;

static void copy_field(json_t *to, const char *name, const json_t *v)
{
    if (v && !json_is_null(v))
        json_object_set(to, name, (json_t *)v);
}

/* Object kind/key as maps keep it, as a tree (new reference), or NULL
 * when absent.  The cache keeps objects packed as text (a small part of
 * the memory of a jansson tree); tests may give slims.  A Terraform a
 * chart made is in the ChartTerraform map. */
static json_t *lookup(const json_t *maps, st_kind kind, const char *key)
{
    const json_t *stored = json_object_get(json_object_get(maps, st_kind_name(kind)), key);
    if (!stored && kind == ST_TERRAFORM)
        stored = json_object_get(json_object_get(maps, "ChartTerraform"), key);
    if (json_is_string(stored))
        return ll_status_slim_unpack(json_string_value(stored));
    return json_is_object(stored) ? json_incref((json_t *)stored) : NULL;
}

/* Declared object w and its verdict as the API shows them (new
 * reference). */
static json_t *detail(const st_object *w, const json_t *o, const verdict *v)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", st_kind_name(w->kind), "key", w->key,
                          "state", o ? obj_state_names[v->state] : "missing", "reason", v->reason,
                          "message", v->message);
    if (w->chart)
        json_object_set_new(d, "desired_chart", json_string(w->chart));
    if (o && w->kind == ST_HELMRELEASE) {
        copy_field(d, "deployed_chart",
                   json_object_get(json_object_get(o, "history"), "chartVersion"));
        copy_field(d, "generation", json_object_get(o, "generation"));
        copy_field(d, "observed_generation", json_object_get(o, "observedGeneration"));
    }
    return d;
}

/* Judges the declared object w and folds its verdict into sum; its detail
 * goes to details when not NULL. */
static void judge_object(summary *sum, json_t *details, const st_object *w, const json_t *maps)
{
    json_t *o = lookup(maps, w->kind, w->key);
    const json_t *hist = json_object_get(o, "history");
    const char *version = json_string_value(json_object_get(hist, "chartVersion"));
    int hr = w->kind == ST_HELMRELEASE;
    verdict v;

    if (o)
        sum->present++;
    if (json_integer_value(json_object_get(hist, "entries")) > 0)
        sum->installed_before = 1;
    judge(&v, w->kind, o, w->chart, w->values[0] ? w->values : NULL);
    if (!sum->deployed[0] && version && hr)
        snprintf(sum->deployed, sizeof(sum->deployed), "%s", version);
    if (details)
        json_array_append_new(details, detail(w, o, &v));
    /* The worst object speaks for the tenant; among equals, a HelmRelease
     * (its reason says the most). */
    if ((int)v.state > sum->worst || ((int)v.state == sum->worst && !sum->top_is_hr && hr)) {
        sum->worst = (int)v.state;
        sum->top_is_hr = hr;
        sum->top = v;
        snprintf(sum->top_message, sizeof(sum->top_message), "%s %s: %s", st_kind_name(w->kind),
                 w->key, v.message);
    }
    json_decref(o);
}

static void tell(st_verdict *out, ll_tenant_state state, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void tell(st_verdict *out, ll_tenant_state state, const char *reason, const char *fmt, ...)
{
    va_list ap;
    out->state = state;
    va_start(ap, fmt);
    words(out->reason, sizeof(out->reason), out->message, sizeof(out->message), reason, fmt, ap);
    va_end(ap);
}

/* A tenant being removed: until the push, then until its objects are gone. */
static void offboarding_state(st_verdict *out, const char *sync, const summary *sum)
{
    if (eq(sync, "pending"))
        tell(out, LL_STATE_OFFBOARDING, "GitPending", "waiting for the git push");
    else if (sum->present)
        tell(out, LL_STATE_OFFBOARDING, "Deleting", "%d of the tenant's objects still exist",
             sum->present);
    else
        tell(out, LL_STATE_OFFBOARDED, "Deleted", "the tenant's objects are gone");
}

/* An active tenant: git, its file, Flux's fetch and apply, then its worst
 * object. */
static void active_state(st_verdict *out, const st_tenant *tenant, const summary *sum,
                         const st_facts *f)
{
    const char *sync = tenant->sync, *commit = tenant->commit;
    ll_tenant_state moving = sum->installed_before ? LL_STATE_UPDATING : LL_STATE_PROVISIONING;
    char short_sha[13];

    snprintf(short_sha, sizeof(short_sha), "%s", commit ? commit : "");
    if (eq(sync, "pending")) {
        tell(out, moving, "GitPending", "waiting for the git push");
    } else if (tenant->unreadable) {
        tell(out, LL_STATE_UNKNOWN, "FileUnreadable",
             "the tenant's file cannot be read at commit %s", short_sha);
    } else if (!f->applied && f->failed_ks) {
        tell(out, LL_STATE_FAILED, "KustomizationFailed", "%s", f->failed_ks);
    } else if (!f->applied) {
        tell(out, moving, f->fetched ? "NotApplied" : "NotFetched", "Flux has not %s commit %s yet",
             f->fetched ? "applied" : "fetched", short_sha);
    } else if (sum->worst < 0) {
        tell(out, LL_STATE_READY, "NoObjects", "the tenant's file declares no watched objects");
    } else {
        ll_tenant_state by_rank[] = {LL_STATE_READY, moving, LL_STATE_BLOCKED, LL_STATE_FAILED};
        tell(out, by_rank[sum->worst], sum->top.reason, "%s", sum->top_message);
    }
}

void st_derive(st_verdict *out, json_t *details, const st_tenant *tenant, const json_t *maps,
               const st_facts *facts)
{
    summary sum = {.worst = -1};

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < tenant->n_objects; i++)
        judge_object(&sum, details, &tenant->objects[i], maps);
    if (eq(tenant->lifecycle, "offboarding") || eq(tenant->lifecycle, "offboarded"))
        offboarding_state(out, tenant->sync, &sum);
    else if (eq(tenant->lifecycle, "drifted"))
        tell(out, LL_STATE_DRIFTED, "FileMissing",
             "the tenant's file vanished from the repository");
    else
        active_state(out, tenant, &sum, facts);
    snprintf(out->deployed_chart, sizeof(out->deployed_chart), "%s", sum.deployed);
}

/* --- the JSON face ----------------------------------------------------------------- */

static int kind_parse(st_kind *out, const char *name)
{
    for (int k = 0; name && k < ST_KIND_COUNT; k++) {
        if (strcmp(name, st_kind_name((st_kind)k)) == 0) {
            *out = (st_kind)k;
            return 0;
        }
    }
    return -1;
}

/* The objects of a tenant as JSON ([{kind, key, chart?, values?}]) as a
 * view: *out is new (free it alone), its strings borrowed from objects.
 * Objects of other kinds, or without a key, are left out. */
static st_object *objects_view(size_t *n, const json_t *objects)
{
    st_object *v = calloc(json_array_size(objects) + 1, sizeof(*v));
    const json_t *o;
    size_t i;
    *n = 0;
    json_array_foreach(objects, i, o)
    {
        st_object *w = v ? &v[*n] : NULL;
        if (!w || kind_parse(&w->kind, json_string_value(json_object_get(o, "kind"))) < 0 ||
            !(w->key = (char *)json_string_value(json_object_get(o, "key"))))
            continue;
        w->chart = (char *)json_string_value(json_object_get(o, "chart"));
        snprintf(w->values, sizeof(w->values), "%s",
                 json_string_value(json_object_get(o, "values")) ?: "");
        (*n)++;
    }
    return v;
}

json_t *ll_status_derive(const json_t *tenant, const json_t *cluster)
{
    st_facts f = {
        .applied = json_is_true(json_object_get(cluster, "applied")),
        .fetched = json_is_true(json_object_get(cluster, "fetched")),
        .failed_ks = json_string_value(json_object_get(cluster, "failed_ks")),
    };
    st_tenant t = {
        .lifecycle = json_string_value(json_object_get(tenant, "lifecycle")),
        .sync = json_string_value(json_object_get(tenant, "sync")),
        .commit = json_string_value(json_object_get(tenant, "commit")),
        .unreadable = json_is_true(json_object_get(tenant, "unreadable")),
    };
    st_object *objects = objects_view(&t.n_objects, json_object_get(tenant, "objects"));
    json_t *details = json_array();
    st_verdict v;

    t.objects = objects;
    st_derive(&v, details, &t, cluster, &f);
    free(objects);
    json_t *out = json_pack("{s:s, s:s, s:s, s:o}", "state", ll_tenant_state_name(v.state),
                            "reason", v.reason, "message", v.message, "objects", details);
    if (v.deployed_chart[0])
        json_object_set_new(out, "deployed_chart", json_string(v.deployed_chart));
    return out;
}

/* --- what a tenant's file declares ------------------------------------------------- */

const char *st_kind_name(st_kind k)
{
    static const char *const names[ST_KIND_COUNT] = {"Namespace", "HelmRelease", "Terraform"};
    return k < ST_KIND_COUNT ? names[k] : "";
}

void st_objects_clear(st_objects *o)
{
    for (size_t i = 0; o->v && i < o->n; i++) {
        free(o->v[i].key);
        free(o->v[i].chart);
    }
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

/* The watched kind doc is (a Namespace, or a HelmRelease or Terraform of
 * the APIs Flux reconciles) into *out; -1 when it is none. */
static int declared_kind(st_kind *out, const json_t *doc)
{
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *api = json_string_value(json_object_get(doc, "apiVersion"));
    if (!kind || !api)
        return -1;
    if (strcmp(kind, "Namespace") == 0 && strcmp(api, "v1") == 0)
        *out = ST_NAMESPACE;
    else if (strcmp(kind, "HelmRelease") == 0 && strncmp(api, "helm.toolkit.fluxcd.io/", 23) == 0)
        *out = ST_HELMRELEASE;
    else if (strcmp(kind, "Terraform") == 0 && strncmp(api, "infra.contrib.fluxcd.io/", 24) == 0)
        *out = ST_TERRAFORM;
    else
        return -1;
    return 0;
}

/* Document doc as a declared object into *w; 1 when it is one, 0 when
 * not, -1 when out of memory. */
static int declared_object(st_object *w, const json_t *doc)
{
    const json_t *meta = json_object_get(doc, "metadata"), *spec = json_object_get(doc, "spec");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *chart = json_string_value(
        json_object_get(json_object_get(json_object_get(spec, "chart"), "spec"), "version"));
    char key[512];

    memset(w, 0, sizeof(*w));
    if (!name || declared_kind(&w->kind, doc) < 0)
        return 0;
    if (w->kind == ST_NAMESPACE) {
        w->key = strdup(name);
        return w->key ? 1 : -1;
    }
    snprintf(key, sizeof(key), "%s/%s", ns && ns[0] ? ns : "default", name);
    if (!(w->key = strdup(key)) || (chart && !(w->chart = strdup(chart)))) {
        free(w->key);
        w->key = NULL;
        return -1;
    }
    if (w->kind == ST_HELMRELEASE)
        st_values_digest(w->values, json_object_get(spec, "values"));
    return 1;
}

int st_declared(st_objects *out, const char *text, size_t len)
{
    json_t *docs = NULL;
    const json_t *doc;
    int error = -1;
    size_t i;

    out->v = NULL;
    out->n = 0;
    if (ll_yaml_load_json(&docs, text, len) < 0)
        return -1;
    if (!(out->v = calloc(json_array_size(docs) + 1, sizeof(*out->v))))
        goto done;
    json_array_foreach(docs, i, doc)
    {
        int got = declared_object(&out->v[out->n], doc);
        if (got < 0)
            goto done;
        out->n += (size_t)got;
    }
    error = 0;
done:
    if (error < 0)
        st_objects_clear(out);
    json_decref(docs);
    return error;
}

/* status.c - tenants' observed state, from Flux's objects (see status.h).
 *
 * Pieces:
 * - ll_status_slim/ll_status_derive: pure functions.  A slim object keeps
 *   what the rules of docs/api.md "Observed state" read (protocols.md §4);
 *   the cache keeps it packed (ll_status_slim_pack).
 * - informers (watch.c) for the GitRepository and the Kustomization (by
 *   name) and for HelmReleases, Namespaces and Terraforms applied by that
 *   Kustomization (kustomize-controller's kustomize.toolkit.fluxcd.io/name
 *   and /namespace labels).  Their callbacks update `cache` and mark the
 *   tenants owning the object dirty.
 * - one more informer for every Namespace of the cluster, whoever made it:
 *   `namespaces` keeps each one's name and, when a Kustomization applied
 *   it, which one and its landlord.dev/tenant label; ids.c asks through
 *   ll_status_namespace_owner() before a tenant may own a namespace.
 * - the follower thread: every POLL_MS or when woken (every SYNC_POLL_MS
 *   while a watch has not listed yet), reads tenants changed
 *   in the registry since its watermark, reads each changed tenant's file at
 *   its desired commit from landlord's clone (which objects it declares),
 *   decides whether the applied revision includes that commit (a revwalk
 *   from the applied revision, cached per revision), derives the dirty
 *   tenants' states and records transitions (generation, since).
 *   Transitions the registry cannot take (a full volume) are kept and
 *   stored first in the next rounds, so events are late, never lost.
 *
 * Locking: `lock` guards cache, tenants, owners, dirty, namespaces and
 * generation.  The clone (repo) and the registry connection belong to the
 * follower thread; it takes the lock only to copy inputs and to store
 * results.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <git2.h>
#include <openssl/evp.h>

#include "landlord/error.h"
#include "landlord/gitops.h"
#include "landlord/log.h"
#include "landlord/registry.h"
#include "landlord/status.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "landlord/watch.h"

#define POLL_MS            250
#define SYNC_POLL_MS       20 /* while a watch has not listed yet */
#define WALK_MAX           20000
#define MESSAGE_MAX        600
#define FILE_MAX           (1 << 20)
#define N_INFORMERS        7
#define EVENTS_KEPT        100000
#define EVENTS_PRUNE_EVERY 1000
#define WORK_MAX           500
#define UNSTORED_MAX       10000 /* transitions kept while they cannot be stored */
#define NAMESPACES_WAIT_MS 2000  /* an ids check waits this long for the first list */

enum {
    I_GITREPO,
    I_KUSTOMIZATION,
    I_HELMRELEASE,
    I_NAMESPACE,
    I_TERRAFORM,
    I_CHART_TERRAFORM,
    I_ALL_NAMESPACES
};

/* The cache's maps, one per informer.  ChartTerraform: Terraforms that a
 * HelmRelease's chart made (helm-controller labels them with the release),
 * as the reference's tenant chart does; they count for the tenant whose
 * file declares that HelmRelease.  AllNamespaces: every Namespace, kept in
 * `namespaces` rather than the cache. */
static const char *const kinds[N_INFORMERS] = {"GitRepository", "Kustomization", "HelmRelease",
                                               "Namespace",     "Terraform",     "ChartTerraform",
                                               "AllNamespaces"};

/* One tenant as the follower knows it: short fields inline ("" when
 * absent) and the two variable parts as compact JSON text, a few hundred
 * bytes where a jansson tree took several kilobytes. */
typedef struct trec {
    char *id;
    char lifecycle[16], sync[16];         /* from the registry */
    char commit[GIT_OID_HEXSZ + 1];       /* its desired commit */
    char objects_at[GIT_OID_HEXSZ + 1];   /* the commit `objects` was read at */
    char applied_at[GIT_OID_HEXSZ + 1];   /* Flux applied a commit including `commit` */
    char state[16], since[40];            /* the last verdict and when it changed */
    char state_commit[GIT_OID_HEXSZ + 1]; /* what the verdict was derived for */
    char state_sync[16];
    unsigned char unreadable, fetched;
    unsigned long long ver; /* ll_status_stamp */
    char *objects;          /* [{kind, key, chart?, values?}]; NULL: not read yet */
    char *derived;          /* {state, reason, message, deployed_chart?}; NULL: none yet */
} trec;

/* id -> trec, open addressing; records leave only when the whole map is
 * rebuilt without them (forget_offboarded). */
typedef struct tmap {
    trec **slots;
    size_t cap, count;
} tmap;

struct ll_status {
    ll_kube *kube;
    char *db_path, *git_dir, *root, *flux_ns, *gitrepo, *ks, *helm_version, *branch;
    int sharded, reconcile_now;
    void (*on_events)(void *payload);
    void *on_events_payload;

    ll_informer *inf[N_INFORMERS];
    pthread_t thread;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the follower */
    pthread_cond_t changed; /* waiters on generation */
    int stop, touched;
    json_t *cache;     /* kind -> {key -> slim} */
    tmap tenants;      /* id -> record (see load_tenants) */
    json_t *owners;    /* "Kind key" -> id */
    json_t *tf_of_hr;  /* HelmRelease key -> {ChartTerraform key -> true} */
    json_t *dirty;     /* id -> true */
    int pending_dirty; /* GitRepository/Kustomization moved: tenants not yet applied */
    unsigned long long generation;
    /* Stamps for ll_status_stamp: `clock` moves on every change; a tenant's
     * record keeps the clock of its last change ("ver"), `global_ver` that
     * of the last change every tenant's answer shows. */
    unsigned long long clock, global_ver;
    /* Every namespace of the cluster: name -> true, or "<ks>/<ks
     * namespace>/<landlord.dev/tenant label>" when a Kustomization applied
     * it (namespace_slim); listed once the first list arrived. */
    json_t *namespaces;
    int namespaces_listed;

    /* The follower's own. */
    git_repository *repo;
    ll_registry *reg;
    long long seq; /* the last tenant change read (-1: none yet) */
    char head[GIT_OID_HEXSZ + 1];
    char walk_of[GIT_OID_HEXSZ + 1];
    json_t *walk;          /* sha -> true: commits reachable from walk_of (up to WALK_MAX) */
    long long since_prune; /* events stored since the last prune */
    json_t *unstored;      /* transitions not stored yet (a full volume), oldest first */
    int repacked;          /* the clone's packs were merged (under lock) */
    long long since_trim;  /* tenants derived since the last malloc_trim */
    /* Under lock: the commits of the GitRepository's artifact and of the
     * Kustomization's last apply, as last looked at. */
    char fetched_rev[GIT_OID_HEXSZ + 1], applied_rev[GIT_OID_HEXSZ + 1];
    /* Under lock: the last reconcile request landlord made, and the one
     * Flux last handled (the GitRepository's lastHandledReconcileAt). */
    char requested_at[64], handled_at[64];
    int walk_complete;
};

/* --- slim objects ------------------------------------------------------------------ */

static void copy_field(json_t *to, const char *name, const json_t *v)
{
    if (v && !json_is_null(v))
        json_object_set(to, name, (json_t *)v);
}

static json_t *capped_string(const char *s)
{
    size_t n = strlen(s);
    return json_stringn(s, n > MESSAGE_MAX ? MESSAGE_MAX : n);
}

static int in_list(const char *s, const char *const *list);

/* 1 when d is a whole number that json_int_t holds.  Only then is it
 * converted: a double beyond int64_t (1e300 in a HelmRelease's values, as
 * the cluster sends it) has no conversion, and C leaves that undefined. */
static int whole_int(double d)
{
    return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(json_int_t)d;
}

/* A copy of v for comparing values across YAML readers and the API server:
 * every scalar as text (3, 3.0 and "3" alike; true and "true" alike), and
 * no null members (server-side apply drops them).  New reference. */
static json_t *normalized(const json_t *v)
{
    const char *k;
    json_t *x, *out;
    size_t i;
    char text[64];
    if (json_is_object(v)) {
        out = json_object();
        json_object_foreach((json_t *)v, k, x) if (!json_is_null(x))
            json_object_set_new(out, k, normalized(x));
        return out;
    }
    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, x) json_array_append_new(out, normalized(x));
        return out;
    }
    if (json_is_string(v))
        return json_incref((json_t *)v);
    if (json_is_integer(v))
        snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v) && whole_int(json_real_value(v)))
        snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, (json_int_t)json_real_value(v));
    else if (json_is_real(v))
        snprintf(text, sizeof(text), "%.17g", json_real_value(v));
    else
        snprintf(text, sizeof(text), "%s",
                 json_is_true(v)    ? "true"
                 : json_is_false(v) ? "false"
                                    : "null");
    return json_string(text);
}

/* The digest of a HelmRelease's spec.values (absent: {}), 16 hex digits,
 * into out; "" when the values hold a Flux substitution (${...}), which
 * only the cluster's copy has resolved. */
static void values_digest(char out[17], const json_t *values)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    json_t *norm = values ? normalized(values) : json_object();
    char *text = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    out[0] = '\0';
    if (text && !strstr(text, "${") && EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL)) {
        for (unsigned int i = 0; i < 8 && i < n; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    free(text);
    json_decref(norm);
}

static const char *const kept_conditions[] = {"Ready", "Reconciling", "Stalled", "Remediated",
                                              NULL};

json_t *ll_status_slim(const json_t *o)
{
    const json_t *meta = json_object_get(o, "metadata"), *st = json_object_get(o, "status"),
                 *conds = json_object_get(st, "conditions"), *c,
                 *hist = json_object_get(st, "history");
    json_t *slim = json_object(), *cs = json_object();
    size_t i;

    /* Not name and namespace: the cache's key has them. */
    copy_field(slim, "generation", json_object_get(meta, "generation"));
    if (json_object_get(meta, "deletionTimestamp"))
        json_object_set_new(slim, "deleting", json_true());
    copy_field(slim, "observedGeneration", json_object_get(st, "observedGeneration"));
    json_array_foreach(conds, i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *msg = json_string_value(json_object_get(c, "message"));
        /* Only the conditions the rules read; Released, Drifted ... are
         * left out to keep thousands of objects small. */
        if (!type || !in_list(type, kept_conditions))
            continue;
        json_t *k = json_object();
        copy_field(k, "status", json_object_get(c, "status"));
        copy_field(k, "reason", json_object_get(c, "reason"));
        copy_field(k, "observedGeneration", json_object_get(c, "observedGeneration"));
        if (msg)
            json_object_set_new(k, "message", capped_string(msg));
        json_object_set_new(cs, type, k);
    }
    json_object_set_new(slim, "conditions", cs);
    copy_field(slim, "chart",
               json_object_get(
                   json_object_get(json_object_get(json_object_get(o, "spec"), "chart"), "spec"),
                   "version"));
    if (json_array_size(hist) > 0) {
        const json_t *h = json_array_get(hist, 0);
        json_object_set_new(slim, "history",
                            json_pack("{s:O?, s:O?, s:I}", "chartVersion",
                                      json_object_get(h, "chartVersion"), "status",
                                      json_object_get(h, "status"), "entries",
                                      (json_int_t)json_array_size(hist)));
    }
    /* A HelmRelease's values, to tell its new spec from the old (list items
     * may come without "kind": a chart or chartRef marks a HelmRelease). */
    const json_t *spec = json_object_get(o, "spec");
    if (json_object_get(spec, "chart") || json_object_get(spec, "chartRef")) {
        char digest[17];
        values_digest(digest, json_object_get(spec, "values"));
        if (digest[0])
            json_object_set_new(slim, "values", json_string(digest));
    }
    /* A Terraform made by a chart: the HelmRelease it belongs to. */
    const json_t *labels = json_object_get(meta, "labels");
    const char *hr_name = json_string_value(json_object_get(labels, "helm.toolkit.fluxcd.io/name"));
    const char *hr_ns =
        json_string_value(json_object_get(labels, "helm.toolkit.fluxcd.io/namespace"));
    if (hr_name && hr_ns)
        json_object_set_new(slim, "hr", json_sprintf("%s/%s", hr_ns, hr_name));
    copy_field(slim, "lastAttemptedRevision", json_object_get(st, "lastAttemptedRevision"));
    copy_field(slim, "lastAppliedRevision", json_object_get(st, "lastAppliedRevision"));
    copy_field(slim, "revision", json_object_get(json_object_get(st, "artifact"), "revision"));
    copy_field(slim, "phase", json_object_get(st, "phase"));
    copy_field(slim, "lastHandledReconcileAt", json_object_get(st, "lastHandledReconcileAt"));
    return slim;
}

/* --- packed slims ------------------------------------------------------------------ */

/* The cache keeps tens of thousands of slims as text.  As compact JSON
 * their member names ("observedGeneration" twice, "lastAttemptedRevision",
 * "conditions", "chartVersion"...) took about as much room as their values,
 * so they are packed as a JSON array with one place per member (null:
 * absent; trailing nulls dropped):
 *   [generation, observedGeneration, deleting, conditions, chart, history,
 *    values, hr, lastAttemptedRevision, lastAppliedRevision, revision,
 *    phase, lastHandledReconcileAt]
 * conditions: one place per kept_conditions type, each [status, reason,
 * observedGeneration, message]; history: [chartVersion, status, entries]. */
static const char *const packed_members[] = {"generation",
                                             "observedGeneration",
                                             "deleting",
                                             "conditions",
                                             "chart",
                                             "history",
                                             "values",
                                             "hr",
                                             "lastAttemptedRevision",
                                             "lastAppliedRevision",
                                             "revision",
                                             "phase",
                                             "lastHandledReconcileAt",
                                             NULL};
static const char *const packed_condition[] = {"status", "reason", "observedGeneration", "message",
                                               NULL};
static const char *const packed_history[] = {"chartVersion", "status", "entries", NULL};

/* Appends o's members named in names to a new array (null when absent),
 * without the trailing nulls. */
static json_t *pack_members(const json_t *o, const char *const *names)
{
    json_t *a = json_array();
    size_t n = 0;
    for (size_t i = 0; names[i]; i++) {
        const json_t *v = json_object_get(o, names[i]);
        json_array_append(a, v ? (json_t *)v : json_null());
        if (v && !json_is_null(v))
            n = i + 1;
    }
    while (json_array_size(a) > n)
        json_array_remove(a, json_array_size(a) - 1);
    return a;
}

char *ll_status_slim_pack(const json_t *slim)
{
    json_t *top = json_object(), *conds = json_array();
    const json_t *cs = json_object_get(slim, "conditions"), *h = json_object_get(slim, "history");
    size_t n = 0;
    for (size_t i = 0; kept_conditions[i]; i++) {
        const json_t *c = json_object_get(cs, kept_conditions[i]);
        json_array_append_new(conds, c ? pack_members(c, packed_condition) : json_null());
        if (c)
            n = i + 1;
    }
    while (json_array_size(conds) > n)
        json_array_remove(conds, json_array_size(conds) - 1);
    /* The members as they are, conditions and history in their places. */
    json_object_update(top, (json_t *)slim);
    json_object_set_new(top, "conditions", conds);
    if (h)
        json_object_set_new(top, "history", pack_members(h, packed_history));
    json_t *a = pack_members(top, packed_members);
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    json_decref(top);
    return text;
}

/* An object with names[i] = a[i] for each non-null a[i] (new reference). */
static json_t *unpack_members(const json_t *a, const char *const *names, int keep_nulls)
{
    json_t *o = json_object();
    for (size_t i = 0; names[i]; i++) {
        json_t *v = json_array_get(a, i);
        if (v && !json_is_null(v))
            json_object_set(o, names[i], v);
        else if (keep_nulls)
            json_object_set_new(o, names[i], json_null());
    }
    return o;
}

json_t *ll_status_slim_unpack(const char *text)
{
    json_t *a = text ? json_loads(text, 0, NULL) : NULL, *slim, *cs;
    if (!json_is_array(a)) {
        json_decref(a);
        return NULL;
    }
    slim = unpack_members(a, packed_members, 0);
    cs = json_object();
    const json_t *conds = json_object_get(slim, "conditions");
    for (size_t i = 0; kept_conditions[i]; i++) {
        const json_t *c = json_array_get(conds, i);
        if (json_is_array(c))
            json_object_set_new(cs, kept_conditions[i], unpack_members(c, packed_condition, 0));
    }
    json_object_set_new(slim, "conditions", cs);
    const json_t *h = json_object_get(slim, "history");
    if (h) /* ll_status_slim writes all three, null when absent */
        json_object_set_new(slim, "history", unpack_members(h, packed_history, 1));
    json_decref(a);
    return slim;
}

/* --- deriving a tenant's state ------------------------------------------------------ */

static const char *cond_str(const json_t *slim, const char *type, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(slim, "conditions"), type), field));
}

static int cond_is(const json_t *slim, const char *type, const char *status)
{
    const char *s = cond_str(slim, type, "status");
    return s && strcmp(s, status) == 0;
}

static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
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

typedef struct verdict {
    const char *state; /* ready, progressing, failed, blocked */
    char reason[128];
    char message[MESSAGE_MAX + 64];
} verdict;

static void say(verdict *v, const char *state, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(verdict *v, const char *state, const char *reason, const char *fmt, ...)
{
    va_list ap;
    v->state = state;
    snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
}

static long long int_of(const json_t *slim, const char *field)
{
    return json_integer_value(json_object_get(slim, field));
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

/* protocols.md §4.2, "Decision rules". */
static void judge_helmrelease(verdict *v, const json_t *o, const char *want,
                              const char *want_values)
{
    const char *ready = cond_str(o, "Ready", "status"), *reason = cond_str(o, "Ready", "reason"),
               *msg = cond_str(o, "Ready", "message");
    long long gen = int_of(o, "generation"), seen = int_of(o, "observedGeneration");
    const json_t *hist = json_object_get(o, "history"),
                 *ready_gen =
                     json_object_get(json_object_get(json_object_get(o, "conditions"), "Ready"),
                                     "observedGeneration");
    const char *deployed = json_string_value(json_object_get(hist, "chartVersion"));
    const char *hstatus = json_string_value(json_object_get(hist, "status"));
    const char *attempted = json_string_value(json_object_get(o, "lastAttemptedRevision"));

    if (json_is_true(json_object_get(o, "deleting"))) {
        say(v, "progressing", "Deleting", "the HelmRelease is being deleted");
        return;
    }
    /* The Kustomization's status and the HelmRelease arrive on different
     * watches: until the HelmRelease carries the file's chart version and
     * values, its Ready speaks of the spec before. */
    const char *live_chart = json_string_value(json_object_get(o, "chart"));
    const char *live_values = json_string_value(json_object_get(o, "values"));
    if ((want && live_chart && strcmp(want, live_chart) != 0) ||
        (want_values && live_values && strcmp(want_values, live_values) != 0)) {
        say(v, "progressing", "NotApplied", "the HelmRelease does not carry the desired spec yet");
        return;
    }
    if (cond_is(o, "Stalled", "True")) {
        if (ready && strcmp(ready, "False") == 0)
            say(v, "failed", reason, "%s", msg ? msg : "");
        else
            say(v, "failed", cond_str(o, "Stalled", "reason"), "%s",
                cond_str(o, "Stalled", "message") ? cond_str(o, "Stalled", "message") : "");
        return;
    }
    if (cond_is(o, "Remediated", "True")) {
        say(v, "failed", cond_str(o, "Remediated", "reason"), "%s",
            cond_str(o, "Remediated", "message") ? cond_str(o, "Remediated", "message") : "");
        return;
    }
    if (ready && strcmp(ready, "False") == 0) {
        if (reason && strcmp(reason, "DependencyNotReady") == 0) {
            say(v, "blocked", reason, "%s", msg ? msg : "");
            return;
        }
        if (in_list(reason, hr_failures)) {
            const char *retry = cond_str(o, "Reconciling", "reason");
            say(v, "failed", reason, "%s%s", msg ? msg : "",
                retry && strcmp(retry, "ProgressingWithRetry") == 0 ? " (retrying)" : "");
            return;
        }
    }
    if (gen != seen) {
        say(v, "progressing", reason ? reason : "Progressing",
            "generation %lld not reconciled yet (observed %lld)", gen, seen);
        return;
    }
    if (!ready || strcmp(ready, "True") != 0 || cond_is(o, "Reconciling", "True") ||
        (ready_gen && json_integer_value(ready_gen) != gen)) {
        say(v, "progressing", reason ? reason : "Progressing", "%s",
            msg ? msg : "waiting for helm-controller");
        return;
    }
    if (!hstatus || strcmp(hstatus, "deployed") != 0 || !version_matches(want, deployed) ||
        !version_matches(want, attempted)) {
        say(v, "progressing", "ChartVersion", "chart version %s wanted, %s deployed",
            want ? want : "?", deployed ? deployed : "none");
        return;
    }
    say(v, "ready", reason, "%s", msg ? msg : "");
}

static const char *const tf_failures[] = {"TFExecApplyFailed", "TFExecPlanFailed",
                                          "TFExecInitFailed",  "ArtifactFailed",
                                          "RetryLimitReached", NULL};

static void judge_terraform(verdict *v, const json_t *o)
{
    const char *ready = cond_str(o, "Ready", "status"), *reason = cond_str(o, "Ready", "reason"),
               *msg = cond_str(o, "Ready", "message");
    if (cond_is(o, "Stalled", "True") ||
        (ready && strcmp(ready, "False") == 0 && in_list(reason, tf_failures))) {
        say(v, "failed", reason, "%s", msg ? msg : "");
    } else if (ready && strcmp(ready, "False") == 0 && reason &&
               strcmp(reason, "DependencyNotReady") == 0) {
        say(v, "blocked", reason, "%s", msg ? msg : "");
    } else if (reason && strcmp(reason, "TerraformPlannedWithChanges") == 0 &&
               (!ready || strcmp(ready, "True") != 0)) {
        say(v, "blocked", reason, "a plan is waiting for approval");
    } else if (ready && strcmp(ready, "True") == 0 &&
               int_of(o, "generation") == int_of(o, "observedGeneration")) {
        say(v, "ready", reason, "%s", msg ? msg : "");
    } else {
        say(v, "progressing", reason ? reason : "Progressing", "%s",
            msg ? msg : "waiting for tofu-controller");
    }
}

static void judge(verdict *v, const char *kind, const json_t *o, const char *want,
                  const char *want_values)
{
    if (!o) {
        say(v, "progressing", "NotCreated", "not created yet");
        return;
    }
    if (strcmp(kind, "HelmRelease") == 0) {
        judge_helmrelease(v, o, want, want_values);
    } else if (strcmp(kind, "Terraform") == 0) {
        judge_terraform(v, o);
    } else {
        const char *phase = json_string_value(json_object_get(o, "phase"));
        if (json_is_true(json_object_get(o, "deleting")) ||
            (phase && strcmp(phase, "Terminating") == 0))
            say(v, "progressing", "Terminating", "the namespace is being deleted");
        else
            say(v, "ready", "Active", "%s", "");
    }
}

static int rank(const char *state)
{
    /* The tenant takes its worst object's state. */
    if (strcmp(state, "failed") == 0)
        return 3;
    if (strcmp(state, "blocked") == 0)
        return 2;
    if (strcmp(state, "progressing") == 0)
        return 1;
    return 0;
}

json_t *ll_status_derive(const json_t *tenant, const json_t *cluster)
{
    const char *lifecycle = json_string_value(json_object_get(tenant, "lifecycle"));
    const char *sync = json_string_value(json_object_get(tenant, "sync"));
    const json_t *objects = json_object_get(tenant, "objects"), *want;
    json_t *details = json_array();
    char deployed[64] = "";
    int worst = -1, present = 0, installed_before = 0, top_is_hr = 0;
    verdict top = {"ready", "", ""};
    char top_message[sizeof(top.message) + 600] = "";
    size_t i;
    char short_sha[13];

    const char *commit = json_string_value(json_object_get(tenant, "commit"));
    snprintf(short_sha, sizeof(short_sha), "%s", commit ? commit : "");
    json_array_foreach(objects, i, want)
    {
        const char *kind = json_string_value(json_object_get(want, "kind"));
        const char *key = json_string_value(json_object_get(want, "key"));
        const char *chart = json_string_value(json_object_get(want, "chart"));
        /* The cache keeps each object packed as text (a small part of the
         * memory of a jansson tree); read it back for the rules. */
        const json_t *stored = json_object_get(json_object_get(cluster, kind), key);
        if (!stored && strcmp(kind, "Terraform") == 0)
            stored = json_object_get(json_object_get(cluster, "ChartTerraform"), key);
        json_t *parsed =
            json_is_string(stored) ? ll_status_slim_unpack(json_string_value(stored)) : NULL;
        const json_t *o = parsed ? parsed : json_is_object(stored) ? stored : NULL;
        verdict v;
        if (o)
            present++;
        if (json_integer_value(json_object_get(json_object_get(o, "history"), "entries")) > 0)
            installed_before = 1;
        judge(&v, kind, o, chart, json_string_value(json_object_get(want, "values")));
        const char *version =
            json_string_value(json_object_get(json_object_get(o, "history"), "chartVersion"));
        if (!deployed[0] && version && strcmp(kind, "HelmRelease") == 0)
            snprintf(deployed, sizeof(deployed), "%s", version);
        json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", kind, "key", key, "state",
                              o ? v.state : "missing", "reason", v.reason, "message", v.message);
        if (chart)
            json_object_set_new(d, "desired_chart", json_string(chart));
        if (o && strcmp(kind, "HelmRelease") == 0) {
            copy_field(d, "deployed_chart",
                       json_object_get(json_object_get(o, "history"), "chartVersion"));
            copy_field(d, "generation", json_object_get(o, "generation"));
            copy_field(d, "observed_generation", json_object_get(o, "observedGeneration"));
        }
        json_array_append_new(details, d);
        /* The worst object speaks for the tenant; among equals, a HelmRelease
         * (its reason says the most). */
        if (rank(v.state) > worst ||
            (rank(v.state) == worst && !top_is_hr && strcmp(kind, "HelmRelease") == 0)) {
            worst = rank(v.state);
            top_is_hr = strcmp(kind, "HelmRelease") == 0;
            top = v;
            snprintf(top_message, sizeof(top_message), "%s %s: %s", kind, key, v.message);
        }
        json_decref(parsed);
    }

    const char *state, *reason;
    char message[sizeof(top_message)];
    if (strcmp(lifecycle, "offboarding") == 0 || strcmp(lifecycle, "offboarded") == 0) {
        if (strcmp(sync, "pending") == 0) {
            state = "offboarding", reason = "GitPending";
            snprintf(message, sizeof(message), "waiting for the git push");
        } else if (present) {
            state = "offboarding", reason = "Deleting";
            snprintf(message, sizeof(message), "%d of the tenant's objects still exist", present);
        } else {
            state = "offboarded", reason = "Deleted";
            snprintf(message, sizeof(message), "the tenant's objects are gone");
        }
    } else if (strcmp(lifecycle, "drifted") == 0) {
        state = "drifted", reason = "FileMissing";
        snprintf(message, sizeof(message), "the tenant's file vanished from the repository");
    } else {
        const char *moving = installed_before ? "updating" : "provisioning";
        const char *ks_failed = json_string_value(json_object_get(cluster, "failed_ks"));
        if (strcmp(sync, "pending") == 0) {
            state = moving, reason = "GitPending";
            snprintf(message, sizeof(message), "waiting for the git push");
        } else if (json_is_true(json_object_get(tenant, "unreadable"))) {
            state = "unknown", reason = "FileUnreadable";
            snprintf(message, sizeof(message), "the tenant's file cannot be read at commit %s",
                     short_sha);
        } else if (!json_is_true(json_object_get(cluster, "applied"))) {
            if (ks_failed) {
                state = "failed", reason = "KustomizationFailed";
                snprintf(message, sizeof(message), "%s", ks_failed);
            } else {
                state = moving, reason = json_is_true(json_object_get(cluster, "fetched"))
                                             ? "NotApplied"
                                             : "NotFetched";
                snprintf(message, sizeof(message), "Flux has not %s commit %s yet",
                         json_is_true(json_object_get(cluster, "fetched")) ? "applied" : "fetched",
                         short_sha);
            }
        } else if (worst <= 0) {
            state = "ready", reason = worst < 0 ? "NoObjects" : top.reason;
            snprintf(message, sizeof(message), "%s",
                     worst < 0 ? "the tenant's file declares no watched objects" : top_message);
        } else {
            state = worst == 3 ? "failed" : worst == 2 ? "blocked" : moving;
            reason = top.reason;
            snprintf(message, sizeof(message), "%s", top_message);
        }
    }
    json_t *out = json_pack("{s:s, s:s, s:s, s:o}", "state", state, "reason", reason, "message",
                            message, "objects", details);
    if (deployed[0])
        json_object_set_new(out, "deployed_chart", json_string(deployed));
    return out;
}

/* --- tenant records ---------------------------------------------------------------- */

static size_t hash_id(const char *id)
{
    size_t h = 1469598103934665603ULL;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

static trec *tmap_get(const tmap *m, const char *id)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash_id(id) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i])
            return NULL;
        if (strcmp(m->slots[i]->id, id) == 0)
            return m->slots[i];
    }
}

static void tmap_put(tmap *m, trec *r)
{
    size_t i = hash_id(r->id) & (m->cap - 1);
    while (m->slots[i])
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = r;
    m->count++;
}

/* A new empty record for id (NULL when out of memory). */
static trec *tmap_add(tmap *m, const char *id)
{
    if ((m->count + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        trec **slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return NULL;
        tmap grown = {slots, cap, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                tmap_put(&grown, m->slots[i]);
        free(m->slots);
        *m = grown;
    }
    trec *r = calloc(1, sizeof(*r));
    if (!r || !(r->id = strdup(id))) {
        free(r);
        return NULL;
    }
    tmap_put(m, r);
    return r;
}

static void tmap_free(tmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i]) {
            free(m->slots[i]->id);
            free(m->slots[i]->objects);
            free(m->slots[i]->derived);
            free(m->slots[i]);
        }
    }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

#define TMAP_FOREACH(m, r)                                                                         \
    for (size_t r##_i = 0; r##_i < (m)->cap; r##_i++)                                              \
        if (((r) = (m)->slots[r##_i]))

/* 1 when r is offboarded and read so, for its current desired state, and
 * nothing waits to be derived for it (see forget_offboarded).  Under lock. */
static int forgettable(ll_status *s, const trec *r)
{
    return strcmp(r->lifecycle, "offboarded") == 0 && strcmp(r->state, "offboarded") == 0 &&
           r->commit[0] && strcmp(r->state_commit, r->commit) == 0 &&
           strcmp(r->state_sync, r->sync) == 0 && !json_object_get(s->dirty, r->id);
}

static void set_text(char *to, size_t cap, const char *from)
{
    snprintf(to, cap, "%s", from ? from : "");
}

static const char *or_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* Parsed compact JSON text (new reference), or NULL. */
static json_t *parsed(const char *text)
{
    return text ? json_loads(text, 0, NULL) : NULL;
}

/* The record as ll_status_derive() reads a tenant (new reference). */
static json_t *trec_json(const trec *r)
{
    json_t *objects = parsed(r->objects);
    return json_pack("{s:s, s:s, s:s?, s:o, s:b}", "lifecycle", r->lifecycle, "sync", r->sync,
                     "commit", or_null(r->commit), "objects", objects ? objects : json_array(),
                     "unreadable", r->unreadable);
}

/* Under lock: the record as ll_status_derive() reads a tenant, with the
 * Terraforms the charts of its HelmReleases made (new reference). */
static json_t *tenant_json(ll_status *s, const trec *r)
{
    json_t *t = trec_json(r), *objects = json_object_get(t, "objects"), *x;
    size_t n = json_array_size(objects);
    const char *k;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(objects, i);
        if (strcmp(json_string_value(json_object_get(o, "kind")) ?: "", "HelmRelease") != 0)
            continue;
        json_object_foreach(
            json_object_get(s->tf_of_hr, json_string_value(json_object_get(o, "key")) ?: ""), k, x)
            json_array_append_new(objects, json_pack("{s:s, s:s}", "kind", "Terraform", "key", k));
    }
    return t;
}

/* --- the follower -------------------------------------------------------------------- */

/* The informers' slim: packed as text (ll_status_slim_pack). */
static json_t *slim_packed(const json_t *object)
{
    json_t *slim = ll_status_slim(object);
    char *text = ll_status_slim_pack(slim);
    json_t *packed = json_string(text ? text : "[]");
    free(text);
    json_decref(slim);
    return packed;
}

/* A cached object as a tree (new reference). */
static json_t *unpack(const json_t *v)
{
    return json_is_string(v) ? ll_status_slim_unpack(json_string_value(v))
                             : json_incref((json_t *)v);
}

static int all_synced(ll_status *s, char *why, size_t cap);

static void wake(ll_status *s)
{
    pthread_cond_signal(&s->wake);
}

/* Under lock: what tenant id's answer shows changed (or may have). */
static void mark(ll_status *s, const char *id)
{
    trec *r = tmap_get(&s->tenants, id);
    s->clock++;
    if (r)
        r->ver = s->clock;
    json_object_set_new(s->dirty, id, json_true());
}

/* Under lock: what every tenant's answer shows changed. */
static void mark_all(ll_status *s)
{
    s->global_ver = ++s->clock;
}

/* The HelmRelease a packed ChartTerraform slim belongs to, into out. */
static void hr_of(char *out, size_t cap, const json_t *packed)
{
    json_t *o = unpack(packed);
    snprintf(out, cap, "%s", json_string_value(json_object_get(o, "hr")) ?: "");
    json_decref(o);
}

/* Under lock: keeps tf_of_hr up to date with a ChartTerraform change (map:
 * the cache's map before the change) and marks the tenant owning the
 * HelmRelease. */
static void index_chart_terraform(ll_status *s, const char *type, const char *key,
                                  const json_t *slim, const json_t *objects, const json_t *map)
{
    char hr[600], owner_key[700];
    const char *k;
    json_t *v;
    if (strcmp(type, "RESYNC") == 0) {
        json_object_clear(s->tf_of_hr);
        json_object_foreach((json_t *)objects, k, v)
        {
            hr_of(hr, sizeof(hr), v);
            if (!hr[0])
                continue;
            json_t *set = json_object_get(s->tf_of_hr, hr);
            if (!set)
                json_object_set_new(s->tf_of_hr, hr, set = json_object());
            json_object_set_new(set, k, json_true());
        }
        return;
    }
    /* Where it was (a label may have changed), then where it is. */
    hr_of(hr, sizeof(hr), json_object_get(map, key));
    if (hr[0]) {
        json_t *set = json_object_get(s->tf_of_hr, hr);
        json_object_del(set, key);
        if (set && !json_object_size(set))
            json_object_del(s->tf_of_hr, hr);
        snprintf(owner_key, sizeof(owner_key), "HelmRelease %s", hr);
        const char *id = json_string_value(json_object_get(s->owners, owner_key));
        if (id)
            mark(s, id);
    }
    if (strcmp(type, "DELETED") == 0)
        return;
    hr_of(hr, sizeof(hr), slim);
    if (hr[0]) {
        json_t *set = json_object_get(s->tf_of_hr, hr);
        if (!set)
            json_object_set_new(s->tf_of_hr, hr, set = json_object());
        json_object_set_new(set, key, json_true());
        snprintf(owner_key, sizeof(owner_key), "HelmRelease %s", hr);
        const char *id = json_string_value(json_object_get(s->owners, owner_key));
        if (id)
            mark(s, id);
    }
}

/* Informer callback: keep the slim object, mark its owner dirty. */
static void on_change(const char *type, const char *key, const json_t *slim, const json_t *objects,
                      const char *kind, ll_status *s)
{
    json_t *map;
    char owner_key[600];

    pthread_mutex_lock(&s->lock);
    map = json_object_get(s->cache, kind);
    int chart_tf = strcmp(kind, "ChartTerraform") == 0;
    if (chart_tf)
        index_chart_terraform(s, type, key, slim, objects, map);
    if (strcmp(type, "RESYNC") == 0) {
        /* The informer is done with the map: keep it as it is. */
        json_object_set(s->cache, kind, (json_t *)objects);
        /* Everything of this kind may have changed. */
        trec *r;
        TMAP_FOREACH(&s->tenants, r) json_object_set_new(s->dirty, r->id, json_true());
        mark_all(s);
    } else {
        if (strcmp(type, "DELETED") == 0)
            json_object_del(map, key);
        else
            json_object_set(map, key, (json_t *)slim);
        if (strcmp(kind, "GitRepository") == 0 || strcmp(kind, "Kustomization") == 0) {
            s->pending_dirty = 1;
            mark_all(s);
        } else {
            snprintf(owner_key, sizeof(owner_key), "%s %s", kind, key);
            const char *id = json_string_value(json_object_get(s->owners, owner_key));
            if (id)
                mark(s, id);
        }
    }
    wake(s);
    pthread_mutex_unlock(&s->lock);
}

#define CALLBACK(name, idx)                                                                        \
    static void name(const char *type, const char *key, const json_t *slim, const json_t *objects, \
                     void *payload)                                                                \
    {                                                                                              \
        on_change(type, key, slim, objects, kinds[idx], payload);                                  \
    }
CALLBACK(on_gitrepo, I_GITREPO)
CALLBACK(on_kustomization, I_KUSTOMIZATION)
CALLBACK(on_helmrelease, I_HELMRELEASE)
CALLBACK(on_namespace, I_NAMESPACE)
CALLBACK(on_terraform, I_TERRAFORM)
CALLBACK(on_chart_terraform, I_CHART_TERRAFORM)
#undef CALLBACK

/* What `namespaces` keeps of a Namespace (new reference): true when no
 * Kustomization applied it, else "<ks>/<ks namespace>/<tenant label>"
 * (label values and names hold no '/'). */
static json_t *namespace_slim(const json_t *o)
{
    const json_t *labels = json_object_get(json_object_get(o, "metadata"), "labels");
    const char *ks = json_string_value(json_object_get(labels, "kustomize.toolkit.fluxcd.io/name"));
    const char *ns =
        json_string_value(json_object_get(labels, "kustomize.toolkit.fluxcd.io/namespace"));
    const char *tenant = json_string_value(json_object_get(labels, "landlord.dev/tenant"));
    if (!ks || !ns)
        return json_true();
    return json_sprintf("%s/%s/%s", ks, ns, tenant ? tenant : "");
}

static void on_all_namespaces(const char *type, const char *key, const json_t *slim,
                              const json_t *objects, void *payload)
{
    ll_status *s = payload;
    pthread_mutex_lock(&s->lock);
    if (strcmp(type, "RESYNC") == 0) {
        /* The informer is done with the map: keep it as it is. */
        json_decref(s->namespaces);
        s->namespaces = json_incref((json_t *)objects);
        s->namespaces_listed = 1;
        pthread_cond_broadcast(&s->changed); /* ll_status_namespace_owner may wait */
    } else if (strcmp(type, "DELETED") == 0) {
        json_object_del(s->namespaces, key);
    } else {
        json_object_set(s->namespaces, key, (json_t *)slim);
    }
    pthread_mutex_unlock(&s->lock);
}

/* The commit sha in a Flux revision ("main@sha1:<hex>", "sha1:<hex>", or a
 * bare hex); "" when there is none. */
static void revision_sha(char out[GIT_OID_HEXSZ + 1], const char *rev)
{
    const char *colon = rev ? strrchr(rev, ':') : NULL;
    const char *hex = colon ? colon + 1 : rev;
    out[0] = '\0';
    if (hex && strlen(hex) == GIT_OID_HEXSZ)
        snprintf(out, GIT_OID_HEXSZ + 1, "%s", hex);
}

/* 1 when commit c is a, or an ancestor of a, in landlord's clone. */
static int includes(ll_status *s, const char *a, const char *c)
{
    git_oid ao, co;
    if (!a[0] || !c || !c[0])
        return 0;
    if (strcmp(a, c) == 0)
        return 1;
    if (git_oid_fromstr(&ao, a) < 0 || git_oid_fromstr(&co, c) < 0)
        return 0;
    if (strcmp(s->walk_of, a) != 0) {
        git_revwalk *walk = NULL;
        git_oid oid;
        int n = 0, rc = 0;
        json_decref(s->walk);
        s->walk = json_object();
        s->walk_complete = 0;
        s->walk_of[0] = '\0';
        if (git_revwalk_new(&walk, s->repo) < 0 || git_revwalk_push(walk, &ao) < 0) {
            git_revwalk_free(walk);
            return 0; /* not in the clone yet: fetched later */
        }
        while (n < WALK_MAX && (rc = git_revwalk_next(&oid, walk)) == 0) {
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr(hex, sizeof(hex), &oid);
            json_object_set_new(s->walk, hex, json_true());
            n++;
        }
        s->walk_complete = rc == GIT_ITEROVER;
        git_revwalk_free(walk);
        snprintf(s->walk_of, sizeof(s->walk_of), "%s", a);
    }
    if (json_object_get(s->walk, c))
        return 1;
    if (s->walk_complete)
        return 0;
    return git_graph_descendant_of(s->repo, &ao, &co) == 1;
}

/* The objects tenant file text declares: [{kind, key, chart}]. */
static json_t *declared(const char *text, size_t len)
{
    json_t *docs = NULL, *out = json_array(), *doc;
    size_t i;
    if (ll_yaml_load_json(&docs, text, len) < 0) {
        json_decref(out);
        return NULL;
    }
    json_array_foreach(docs, i, doc)
    {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        const char *api = json_string_value(json_object_get(doc, "apiVersion"));
        const json_t *meta = json_object_get(doc, "metadata");
        const char *name = json_string_value(json_object_get(meta, "name"));
        const char *ns = json_string_value(json_object_get(meta, "namespace"));
        char key[512];
        if (!kind || !api || !name)
            continue;
        if (strcmp(kind, "Namespace") == 0 && strcmp(api, "v1") == 0) {
            json_array_append_new(out, json_pack("{s:s, s:s}", "kind", kind, "key", name));
            continue;
        }
        if (!((strcmp(kind, "HelmRelease") == 0 &&
               strncmp(api, "helm.toolkit.fluxcd.io/", 23) == 0) ||
              (strcmp(kind, "Terraform") == 0 &&
               strncmp(api, "infra.contrib.fluxcd.io/", 24) == 0)))
            continue;
        snprintf(key, sizeof(key), "%s/%s", ns && ns[0] ? ns : "default", name);
        json_t *o = json_pack("{s:s, s:s}", "kind", kind, "key", key);
        const char *chart = json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "spec"), "chart"), "spec"),
            "version"));
        if (chart)
            json_object_set_new(o, "chart", json_string(chart));
        if (strcmp(kind, "HelmRelease") == 0) {
            char digest[17];
            values_digest(digest, json_object_get(json_object_get(doc, "spec"), "values"));
            if (digest[0])
                json_object_set_new(o, "values", json_string(digest));
        }
        json_array_append_new(out, o);
    }
    json_decref(docs);
    return out;
}

/* Reads path at commit sha (or its first parent); NULL when absent. */
static json_t *read_declared(ll_status *s, const char *sha, const char *path, int parent)
{
    git_oid oid;
    git_commit *commit = NULL, *up = NULL;
    git_tree *tree = NULL;
    git_tree_entry *entry = NULL;
    git_blob *blob = NULL;
    json_t *out = NULL;

    if (git_oid_fromstr(&oid, sha) < 0 || git_commit_lookup(&commit, s->repo, &oid) < 0)
        goto done;
    if (parent) {
        if (git_commit_parent(&up, commit, 0) < 0)
            goto done;
        git_commit_free(commit);
        commit = up;
    }
    if (git_commit_tree(&tree, commit) < 0 || git_tree_entry_bypath(&entry, tree, path) < 0 ||
        git_blob_lookup(&blob, s->repo, git_tree_entry_id(entry)) < 0 ||
        git_blob_rawsize(blob) > FILE_MAX)
        goto done;
    out = declared(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
done:
    git_blob_free(blob);
    git_tree_entry_free(entry);
    git_tree_free(tree);
    git_commit_free(commit);
    return out;
}

static void set_owners(ll_status *s, const char *id, const json_t *old, const json_t *now)
{
    size_t i;
    json_t *o;
    char key[600];
    json_array_foreach(old, i, o)
    {
        snprintf(key, sizeof(key), "%s %s", json_string_value(json_object_get(o, "kind")),
                 json_string_value(json_object_get(o, "key")));
        const char *owner = json_string_value(json_object_get(s->owners, key));
        if (owner && strcmp(owner, id) == 0)
            json_object_del(s->owners, key);
    }
    json_array_foreach(now, i, o)
    {
        snprintf(key, sizeof(key), "%s %s", json_string_value(json_object_get(o, "kind")),
                 json_string_value(json_object_get(o, "key")));
        json_object_set_new(s->owners, key, json_string(id));
    }
}

/* Reads tenants changed in the registry; reads the files of those whose
 * desired commit moved.  Follower thread. */
static void load_tenants(ll_status *s)
{
    json_t *rows = NULL, *row;
    size_t i;

    if (!s->reg) {
        if (ll_registry_open(&s->reg, s->db_path) < 0)
            return;
        /* It writes observed states and events, which tenant answers take
         * from memory, not from rows: no need to move the generation. */
        ll_registry_set_quiet(s->reg, 1);
    }
    long long seq = s->seq;
    if (ll_registry_tenants_changed(&rows, &seq, s->reg) < 0)
        return;
    if (seq > s->seq && seq > 0)
        ll_registry_tenant_changes_prune(s->reg, seq);
    s->seq = seq;
    json_array_foreach(rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *commit = json_string_value(json_object_get(row, "commit"));
        const char *lifecycle = json_string_value(json_object_get(row, "lifecycle"));
        const char *path = json_string_value(json_object_get(row, "path"));
        char file[1024];
        json_t *objects = NULL;
        int unreadable = 0;

        pthread_mutex_lock(&s->lock);
        trec *r = tmap_get(&s->tenants, id);
        int need = commit && (!r || !r->objects_at[0] || strcmp(r->objects_at, commit) != 0);
        pthread_mutex_unlock(&s->lock);

        if (need) {
            int gone = strcmp(lifecycle, "active") != 0;
            if (path)
                snprintf(file, sizeof(file), "%s", path);
            else
                ll_tenant_file_path(file, sizeof(file), s->root, s->sharded,
                                    json_string_value(json_object_get(row, "tier")), id);
            /* An offboarding commit removed the file: its objects are the
             * ones the file declared just before. */
            objects = read_declared(s, commit, file, 0);
            if (!objects && gone)
                objects = read_declared(s, commit, file, 1);
            unreadable = !objects && !gone;
        }
        pthread_mutex_lock(&s->lock);
        r = tmap_get(&s->tenants, id);
        if (!r) {
            if (!(r = tmap_add(&s->tenants, id))) {
                pthread_mutex_unlock(&s->lock);
                json_decref(objects);
                continue;
            }
            /* What was derived before a restart: not a transition. */
            if (json_is_string(json_object_get(row, "observed_state"))) {
                set_text(r->state, sizeof(r->state),
                         json_string_value(json_object_get(row, "observed_state")));
                set_text(r->since, sizeof(r->since),
                         json_string_value(json_object_get(row, "observed_since")));
            }
        }
        set_text(r->lifecycle, sizeof(r->lifecycle), lifecycle);
        set_text(r->sync, sizeof(r->sync), json_string_value(json_object_get(row, "sync")));
        set_text(r->commit, sizeof(r->commit), commit);
        if (need && (objects || unreadable)) {
            json_t *old = parsed(r->objects), *now = objects ? objects : json_array();
            set_owners(s, id, old, now);
            json_decref(old);
            free(r->objects);
            r->objects = json_dumps(now, JSON_COMPACT);
            json_decref(now);
            objects = NULL;
            set_text(r->objects_at, sizeof(r->objects_at), commit);
            r->unreadable = (unsigned char)unreadable;
            r->applied_at[0] = '\0';
        }
        json_decref(objects);
        mark(s, id);
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(rows);
}

static void ask_reconcile(ll_status *s)
{
    git_oid oid;
    char ref[300], sha[GIT_OID_HEXSZ + 1], path[600], stamp[32];

    snprintf(ref, sizeof(ref), "refs/remotes/origin/%s", s->branch);
    if (git_reference_name_to_id(&oid, s->repo, ref) < 0)
        return;
    git_oid_tostr(sha, sizeof(sha), &oid);
    if (strcmp(sha, s->head) == 0)
        return;
    int first = !s->head[0];
    snprintf(s->head, sizeof(s->head), "%s", sha);
    if (first || !s->reconcile_now)
        return;
    ll_now_rfc3339(stamp);
    snprintf(path, sizeof(path),
             "/apis/source.toolkit.fluxcd.io/v1/namespaces/%s/gitrepositories/%s", s->flux_ns,
             s->gitrepo);
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations",
                              "reconcile.fluxcd.io/requestedAt", stamp);
    if (ll_kube_merge_patch(NULL, s->kube, path, patch) < 0) {
        ll_log_warn("msg=\"cannot ask Flux to reconcile\" error=\"%s\"", ll_error_last()->message);
    } else {
        ll_log_debug("msg=\"asked Flux to reconcile\" head=%s", sha);
        pthread_mutex_lock(&s->lock);
        snprintf(s->requested_at, sizeof(s->requested_at), "%s", stamp);
        pthread_mutex_unlock(&s->lock);
    }
    json_decref(patch);
}

/* Forgets the records of tenants that are offboarded and read so (their
 * state stored in the registry, nothing dirty) once there are enough of
 * them to be worth a rebuild of the map: every tenant ever onboarded would
 * otherwise keep ~630 bytes here and its owner entries for good (RSS grew
 * by a third over 50,000 writes with a cluster).  Without a record the
 * API reads an offboarded tenant's state from its registry row
 * (ll_status_describe); a tenant onboarded again gets a new record. */
static void forget_offboarded(ll_status *s)
{
    trec *r;
    size_t gone = 0;

    pthread_mutex_lock(&s->lock);
    if (json_array_size(s->unstored) == 0) {
        TMAP_FOREACH(&s->tenants, r)
        gone += forgettable(s, r);
    }
    if (gone < 64 || gone * 8 < s->tenants.count) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    json_t *ids = json_object();
    tmap kept = {calloc(s->tenants.cap, sizeof(trec *)), s->tenants.cap, 0};
    if (!kept.slots || !ids) {
        free(kept.slots);
        json_decref(ids);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    TMAP_FOREACH(&s->tenants, r)
    {
        if (!forgettable(s, r)) {
            tmap_put(&kept, r);
            continue;
        }
        json_object_set_new(ids, r->id, json_true());
        free(r->id);
        free(r->objects);
        free(r->derived);
        free(r);
    }
    free(s->tenants.slots);
    s->tenants = kept;
    const char *key;
    void *tmp;
    json_t *owner;
    json_object_foreach_safe(s->owners, tmp, key, owner)
    {
        if (json_object_get(ids, json_string_value(owner)))
            json_object_del(s->owners, key);
    }
    pthread_mutex_unlock(&s->lock);
    ll_log_debug("msg=\"forgot offboarded tenants\" count=%zu kept=%zu", json_object_size(ids),
                 kept.count);
    json_decref(ids);
}

/* One round: inputs copied under the lock, git work without it, results
 * stored under it.  Returns 1 when it stopped early because a watch has
 * not listed its collection yet (nothing can be derived until it has). */
static int follow(ll_status *s)
{
    char applied[GIT_OID_HEXSZ + 1], attempted[GIT_OID_HEXSZ + 1], fetched[GIT_OID_HEXSZ + 1];
    json_t *work, *ks, *gr, *cluster;
    const char *id;
    json_t *v;
    trec *r;

    load_tenants(s);
    if (s->kube)
        ask_reconcile(s);

    /* Nothing is derived from a cache that was never filled. */
    char why[LL_ERROR_MSG_MAX + 64];
    if (!all_synced(s, why, sizeof(why)))
        return 1;

    pthread_mutex_lock(&s->lock);
    if (s->pending_dirty) {
        TMAP_FOREACH(&s->tenants, r)
        {
            if (!r->applied_at[0] || !r->commit[0] || strcmp(r->applied_at, r->commit) != 0)
                json_object_set_new(s->dirty, r->id, json_true());
        }
        s->pending_dirty = 0;
    }
    /* At most WORK_MAX tenants a round (the rest stay dirty for the next,
     * which follows at once): a start or relist of thousands of tenants
     * then never builds thousands of transitions at a time, whose garbage
     * would be left between the records that stay. */
    if (json_object_size(s->dirty) <= WORK_MAX) {
        work = s->dirty;
        s->dirty = json_object();
    } else {
        void *it = json_object_iter(s->dirty);
        work = json_object();
        while (it && json_object_size(work) < WORK_MAX) {
            const char *key = json_object_iter_key(it);
            json_object_set(work, key, json_object_iter_value(it));
            it = json_object_iter_next(s->dirty, it);
        }
        json_object_foreach(work, id, v) json_object_del(s->dirty, id);
    }
    /* The one Kustomization and GitRepository (selected by name). */
    ks = NULL, gr = NULL;
    json_object_foreach(json_object_get(s->cache, "Kustomization"), id, v) ks = unpack(v);
    json_object_foreach(json_object_get(s->cache, "GitRepository"), id, v) gr = unpack(v);
    json_t *commits = json_object();
    json_object_foreach(work, id, v)
    {
        r = tmap_get(&s->tenants, id);
        if (r && r->commit[0] && (!r->applied_at[0] || strcmp(r->applied_at, r->commit) != 0))
            json_object_set_new(commits, id, json_string(r->commit));
    }
    pthread_mutex_unlock(&s->lock);

    revision_sha(applied, json_string_value(json_object_get(ks, "lastAppliedRevision")));
    revision_sha(attempted, json_string_value(json_object_get(ks, "lastAttemptedRevision")));
    revision_sha(fetched, json_string_value(json_object_get(gr, "revision")));
    int ks_ready = cond_is(ks, "Ready", "True");
    const char *ks_reason = cond_str(ks, "Ready", "reason");
    int ks_failed =
        cond_is(ks, "Ready", "False") && ks_reason && strcmp(ks_reason, "Progressing") != 0;
    /* Which desired commits the cluster has: git work, no lock. */
    json_t *facts = json_object();
    json_object_foreach(commits, id, v)
    {
        const char *c = json_string_value(v);
        json_object_set_new(
            facts, id,
            json_pack("{s:b, s:b, s:b}", "applied", ks_ready && includes(s, applied, c), "fetched",
                      includes(s, fetched, c), "attempted", includes(s, attempted, c)));
    }

    const char *handled = json_string_value(json_object_get(gr, "lastHandledReconcileAt"));
    pthread_mutex_lock(&s->lock);
    if (handled && strcmp(handled, s->handled_at) != 0) {
        snprintf(s->handled_at, sizeof(s->handled_at), "%s", handled);
        if (strcmp(handled, s->requested_at) == 0)
            ll_log_debug("msg=\"Flux handled the reconcile request\" requested_at=%s", handled);
    }
    if (strcmp(s->fetched_rev, fetched) != 0 || strcmp(s->applied_rev, applied) != 0)
        mark_all(s);
    snprintf(s->fetched_rev, sizeof(s->fetched_rev), "%s", fetched);
    snprintf(s->applied_rev, sizeof(s->applied_rev), "%s", applied);
    cluster =
        json_pack("{s:O, s:O, s:O, s:O}", "HelmRelease", json_object_get(s->cache, "HelmRelease"),
                  "Namespace", json_object_get(s->cache, "Namespace"), "Terraform",
                  json_object_get(s->cache, "Terraform"), "ChartTerraform",
                  json_object_get(s->cache, "ChartTerraform"));
    json_t *transitions = json_array();
    json_object_foreach(work, id, v)
    {
        r = tmap_get(&s->tenants, id);
        if (!r)
            continue;
        /* Its record changes below (verdict, applied_at, fetched). */
        r->ver = ++s->clock;
        const json_t *f = json_object_get(facts, id);
        int applied_now =
            (r->applied_at[0] && r->commit[0] && strcmp(r->applied_at, r->commit) == 0) ||
            json_is_true(json_object_get(f, "applied"));
        if (applied_now && r->commit[0])
            set_text(r->applied_at, sizeof(r->applied_at), r->commit);
        json_object_set_new(cluster, "applied", json_boolean(applied_now));
        json_object_set_new(
            cluster, "fetched",
            json_boolean(applied_now || json_is_true(json_object_get(f, "fetched"))));
        if (!applied_now && ks_failed && json_is_true(json_object_get(f, "attempted")))
            json_object_set_new(cluster, "failed_ks",
                                json_string(cond_str(ks, "Ready", "message")
                                                ? cond_str(ks, "Ready", "message")
                                                : ks_reason));
        else
            json_object_del(cluster, "failed_ks");
        json_t *t = tenant_json(s, r);
        json_t *d = ll_status_derive(t, cluster);
        json_decref(t);
        char was_text[sizeof(r->state)];
        set_text(was_text, sizeof(was_text), r->state);
        const char *was = or_null(was_text);
        const char *now = json_string_value(json_object_get(d, "state"));
        if (!was || strcmp(was, now) != 0) {
            char stamp[32], type[64];
            ll_now_rfc3339(stamp);
            set_text(r->since, sizeof(r->since), stamp);
            ll_log_info("msg=\"tenant state\" tenant=%s state=%s reason=%s", id, now,
                        json_string_value(json_object_get(d, "reason")));
            snprintf(type, sizeof(type), "tenant.%s", now);
            json_t *data =
                json_pack("{s:s, s:s, s:s?, s:O, s:O, s:s?, s:s?, s:O?, s:s}", "tenant", id,
                          "state", now, "previous", was, "reason", json_object_get(d, "reason"),
                          "message", json_object_get(d, "message"), "desired_commit",
                          or_null(r->commit), "applied_commit", applied[0] ? applied : NULL,
                          "deployed_chart", json_object_get(d, "deployed_chart"), "at", stamp);
            json_array_append_new(transitions,
                                  json_pack("{s:s, s:s, s:s, s:s, s:o}", "tenant", id, "state", now,
                                            "since", stamp, "type", type, "data", data));
        }
        set_text(r->state, sizeof(r->state), now);
        /* What the state was derived for (ll_status_state compares). */
        set_text(r->state_commit, sizeof(r->state_commit), r->commit);
        set_text(r->state_sync, sizeof(r->state_sync), r->sync);
        /* Per-object details are derived again when asked for (describe):
         * thousands of tenants keep only their verdict. */
        json_object_del(d, "objects");
        free(r->derived);
        r->derived = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        r->fetched = json_is_true(json_object_get(cluster, "fetched"));
    }
    pthread_mutex_unlock(&s->lock);
    /* Transitions that could not be stored (a full volume) go first, so
     * that no event is lost and they stay in order; retried every round. */
    size_t moved = json_array_size(transitions), retried = json_array_size(s->unstored);
    if (retried) {
        json_array_extend(s->unstored, transitions);
        json_decref(transitions);
        transitions = s->unstored;
        s->unstored = json_array();
    }
    int stored = 0;
    if (json_array_size(transitions)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (ll_registry_record_transitions(
                s->reg, transitions, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) < 0) {
            if (!retried)
                ll_log_warn("msg=\"cannot store state changes; retrying\" error=\"%s\"",
                            ll_error_last()->message);
            if (json_array_size(transitions) <= UNSTORED_MAX) {
                json_decref(s->unstored);
                s->unstored = json_incref(transitions);
            } else {
                ll_log_error("msg=\"state changes dropped: too many unstored\" count=%zu",
                             json_array_size(transitions));
            }
        } else {
            stored = 1;
            if (retried)
                ll_log_info("msg=\"stored state changes kept back\" count=%zu", retried);
            s->since_prune += (long long)json_array_size(transitions);
        }
        if (s->since_prune >= EVENTS_PRUNE_EVERY) {
            s->since_prune = 0;
            if (ll_registry_events_prune(s->reg, EVENTS_KEPT) < 0)
                ll_log_warn("msg=\"cannot prune events\" error=\"%s\"", ll_error_last()->message);
        }
    }
    /* States moved (in memory, whether stored or not), or events arrived. */
    if (moved || stored) {
        pthread_mutex_lock(&s->lock);
        s->generation++;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->lock);
        if (s->on_events)
            s->on_events(s->on_events_payload);
    }
    json_decref(transitions);
    json_decref(cluster);
    json_decref(facts);
    json_decref(commits);
    forget_offboarded(s);
    /* The clone's packs were merged: the old handle holds removed files
     * open.  (Not after many reads: libgit2 shares a pack's cache of
     * inflated delta bases with the git writer's handle, so reopening this
     * one alone frees nothing, and a cold handle walks the history again.) */
    pthread_mutex_lock(&s->lock);
    int reopen = s->repacked;
    s->repacked = 0;
    pthread_mutex_unlock(&s->lock);
    if (reopen) {
        git_repository *fresh = NULL;
        if (git_repository_open_bare(&fresh, s->git_dir) == 0) {
            git_repository_free(s->repo);
            s->repo = fresh;
        }
    }
    /* Big rounds (start, a relist) freed a lot on this thread. */
    s->since_trim += (long long)json_object_size(work);
    if (reopen || s->since_trim > 2000) {
        s->since_trim = 0;
        malloc_trim(0);
    }
    json_decref(work);
    json_decref(ks);
    json_decref(gr);
    return 0;
}

static void *run(void *arg)
{
    ll_status *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        int unsynced = follow(s);
        pthread_mutex_lock(&s->lock);
        if (s->stop)
            break;
        /* Dirty tenants wait for the watches to list: look again soon, but
         * do not spin (it took a core from the informers listing at start,
         * with a registry query each turn). */
        if (!unsynced && (json_object_size(s->dirty) || s->pending_dirty || s->touched)) {
            s->touched = 0;
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (unsynced ? SYNC_POLL_MS : POLL_MS) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* --- the handle ------------------------------------------------------------------------ */

static char *dup_or(const char *s, const char *def)
{
    return strdup(s && s[0] ? s : def);
}

static int start_informers(ll_status *s)
{
    char selector[600], field[300], paths[N_INFORMERS][400], probe[200];
    const ll_informer_fn fns[N_INFORMERS] = {on_gitrepo,       on_kustomization, on_helmrelease,
                                             on_namespace,     on_terraform,     on_chart_terraform,
                                             on_all_namespaces};

    snprintf(selector, sizeof(selector),
             "kustomize.toolkit.fluxcd.io/name=%s,kustomize.toolkit.fluxcd.io/namespace=%s", s->ks,
             s->flux_ns);
    snprintf(paths[I_GITREPO], sizeof(paths[0]),
             "/apis/source.toolkit.fluxcd.io/v1/namespaces/%s/gitrepositories", s->flux_ns);
    snprintf(paths[I_KUSTOMIZATION], sizeof(paths[0]),
             "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/%s/kustomizations", s->flux_ns);
    snprintf(paths[I_HELMRELEASE], sizeof(paths[0]), "/apis/helm.toolkit.fluxcd.io/%s/helmreleases",
             s->helm_version);
    snprintf(paths[I_NAMESPACE], sizeof(paths[0]), "/api/v1/namespaces");
    snprintf(paths[I_ALL_NAMESPACES], sizeof(paths[0]), "/api/v1/namespaces");
    snprintf(paths[I_TERRAFORM], sizeof(paths[0]),
             "/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms");
    snprintf(paths[I_CHART_TERRAFORM], sizeof(paths[0]),
             "/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms");
    snprintf(probe, sizeof(probe), "/apis/infra.contrib.fluxcd.io/v1alpha2");
    for (int i = 0; i < N_INFORMERS; i++) {
        const char *name = i == I_GITREPO ? s->gitrepo : s->ks;
        snprintf(field, sizeof(field), "metadata.name=%s", name);
        ll_informer_spec spec = {
            .kind = kinds[i],
            .path = paths[i],
            .label_selector = i == I_CHART_TERRAFORM  ? "helm.toolkit.fluxcd.io/name"
                              : i == I_ALL_NAMESPACES ? NULL
                              : i >= I_HELMRELEASE    ? selector
                                                      : NULL,
            .field_selector = i < I_HELMRELEASE ? field : NULL,
            .probe = i == I_TERRAFORM || i == I_CHART_TERRAFORM ? probe : NULL,
            .slim = i == I_ALL_NAMESPACES ? namespace_slim : slim_packed,
            .on_change = fns[i],
            .payload = s,
        };
        if (ll_informer_start(&s->inf[i], s->kube, &spec) < 0)
            return -1;
    }
    return 0;
}

int ll_status_open(ll_status **out, ll_kube *k, const ll_status_options *o)
{
    ll_status *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s) {
        ll_kube_free(k);
        return ll_error_set(-1, "out of memory");
    }
    s->kube = k;
    s->db_path = dup_or(o->db_path, "");
    s->git_dir = dup_or(o->git_dir, "");
    s->root = dup_or(o->root, "application-plane/production");
    s->flux_ns = dup_or(o->flux_namespace, "flux-system");
    s->gitrepo = dup_or(o->git_repository, "flux-system");
    s->ks = dup_or(o->kustomization, "dataplane-tenants");
    s->helm_version = dup_or(o->helm_version, "v2");
    s->branch = dup_or(o->branch, "main");
    s->sharded = o->sharded;
    s->reconcile_now = o->reconcile_now;
    s->on_events = o->on_events;
    s->on_events_payload = o->on_events_payload;
    s->cache = json_pack("{s:{}, s:{}, s:{}, s:{}, s:{}, s:{}}", "GitRepository", "Kustomization",
                         "HelmRelease", "Namespace", "Terraform", "ChartTerraform");

    s->owners = json_object();
    s->namespaces = json_object();
    s->tf_of_hr = json_object();
    s->dirty = json_object();
    s->unstored = json_array();
    s->seq = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->changed, NULL);
    if (!k) {
        *out = s;
        return 0;
    }
    if (git_repository_open_bare(&s->repo, s->git_dir) < 0) {
        ll_status_free(s);
        return ll_error_set(-1, "cannot open landlord's clone %s", o->git_dir);
    }
    if (start_informers(s) < 0 || pthread_create(&s->thread, NULL, run, s) != 0) {
        ll_status_free(s);
        return ll_error_set(-1, "cannot start following the cluster");
    }
    s->started = 1;
    *out = s;
    return 0;
}

void ll_status_free(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (s->kube)
        ll_kube_cancel(s->kube);
    /* The follower reads the informers' status: it goes first. */
    if (s->started)
        pthread_join(s->thread, NULL);
    for (int i = 0; i < N_INFORMERS; i++)
        ll_informer_stop(s->inf[i]);
    ll_kube_free(s->kube);
    git_repository_free(s->repo);
    ll_registry_close(s->reg);
    json_decref(s->cache);
    tmap_free(&s->tenants);
    json_decref(s->owners);
    json_decref(s->namespaces);
    json_decref(s->tf_of_hr);
    json_decref(s->dirty);
    json_decref(s->unstored);
    json_decref(s->walk);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->changed);
    free(s->db_path);
    free(s->git_dir);
    free(s->root);
    free(s->flux_ns);
    free(s->gitrepo);
    free(s->ks);
    free(s->helm_version);
    free(s->branch);
    free(s);
}

void ll_status_clone_repacked(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->repacked = 1;
    s->touched = 1;
    wake(s);
    pthread_mutex_unlock(&s->lock);
}

void ll_status_touch(ll_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->touched = 1;
    wake(s);
    pthread_mutex_unlock(&s->lock);
}

static int all_synced(ll_status *s, char *why, size_t cap)
{
    for (int i = 0; i < N_INFORMERS; i++) {
        if (!ll_informer_synced(s->inf[i])) {
            json_t *st = ll_informer_status(s->inf[i]);
            const char *err = json_string_value(json_object_get(st, "error"));
            snprintf(why, cap, "%s: %s", kinds[i],
                     err ? err : "listing the cluster's objects for the first time");
            json_decref(st);
            return 0;
        }
    }
    return 1;
}

void ll_status_describe(ll_status *s, json_t *view)
{
    const char *id = json_string_value(json_object_get(view, "id"));
    const char *lifecycle = json_string_value(json_object_get(view, "lifecycle"));
    char why[LL_ERROR_MSG_MAX + 64];

    if (!s || !s->kube) {
        int active = strcmp(lifecycle, "active") == 0;
        json_object_set_new(view, "state", json_string(active ? "unknown" : lifecycle));
        json_object_set_new(view, "state_reason",
                            active ? json_string("no cluster configured") : json_null());
        return;
    }
    pthread_mutex_lock(&s->lock);
    const trec *r = tmap_get(&s->tenants, id);
    const char *stored = json_string_value(json_object_get(view, "observed_state"));
    if (!r && strcmp(lifecycle, "offboarded") == 0 && stored && strcmp(stored, "offboarded") == 0) {
        /* Forgotten once offboarded and read so (forget_offboarded). */
        pthread_mutex_unlock(&s->lock);
        json_object_set_new(view, "state", json_string("offboarded"));
        json_object_set_new(view, "state_reason", json_string("Deleted"));
        json_object_set_new(view, "state_message", json_string("the tenant's objects are gone"));
        json_object_set(view, "state_since", json_object_get(view, "observed_since"));
        return;
    }
    json_t *d = r ? parsed(r->derived) : NULL;
    int synced = all_synced(s, why, sizeof(why));
    if (!d || (!synced && strcmp(lifecycle, "active") == 0)) {
        json_object_set_new(view, "state", json_string("unknown"));
        json_object_set_new(view, "state_reason", json_string(!synced ? why : "not looked at yet"));
        pthread_mutex_unlock(&s->lock);
        json_decref(d);
        return;
    }
    json_t *t = tenant_json(s, r);
    const json_t *o;
    const char *desired = NULL;
    size_t i;
    json_array_foreach(json_object_get(t, "objects"), i, o) if (!desired) desired =
        json_string_value(json_object_get(o, "chart"));
    /* The objects as they are now. */
    json_t *cluster = json_pack(
        "{s:O, s:O, s:O, s:O, s:b, s:b}", "HelmRelease", json_object_get(s->cache, "HelmRelease"),
        "Namespace", json_object_get(s->cache, "Namespace"), "Terraform",
        json_object_get(s->cache, "Terraform"), "ChartTerraform",
        json_object_get(s->cache, "ChartTerraform"), "applied",
        r->applied_at[0] && r->commit[0] && strcmp(r->applied_at, r->commit) == 0, "fetched",
        r->fetched);
    json_t *now = ll_status_derive(t, cluster);
    /* The follower's verdict, unless the desired state moved since it was
     * made (then what the objects say now). */
    int current = r->commit[0] && strcmp(r->state_commit, r->commit) == 0 &&
                  strcmp(r->state_sync, r->sync) == 0;
    const json_t *v = current ? d : now;
    json_object_set(view, "state", json_object_get(v, "state"));
    json_object_set(view, "state_reason", json_object_get(v, "reason"));
    json_object_set(view, "state_message", json_object_get(v, "message"));
    if (or_null(r->since))
        json_object_set_new(view, "state_since", json_string(r->since));
    json_t *observed = json_pack(
        "{s:s?, s:s?, s:s?, s:s?, s:O?, s:O}", "desired_commit", or_null(r->commit),
        "fetched_commit", s->fetched_rev[0] ? s->fetched_rev : NULL, "applied_commit",
        s->applied_rev[0] ? s->applied_rev : NULL, "desired_chart", desired, "deployed_chart",
        json_object_get(v, "deployed_chart"), "objects", json_object_get(now, "objects"));
    json_object_set_new(view, "observed", observed);
    json_decref(now);
    json_decref(cluster);
    json_decref(t);
    json_decref(d);
    pthread_mutex_unlock(&s->lock);
}

int ll_status_configured(const ll_status *s)
{
    return s && s->kube;
}

unsigned long long ll_status_stamp(ll_status *s, const char *id)
{
    char why[LL_ERROR_MSG_MAX + 64];
    unsigned long long stamp = 0;
    if (!s || !s->kube)
        return 1;
    pthread_mutex_lock(&s->lock);
    /* While a watch is not synced the answer carries its error, which may
     * change at any time: not stamped. */
    if (all_synced(s, why, sizeof(why))) {
        const trec *r = tmap_get(&s->tenants, id);
        unsigned long long ver = r ? r->ver : 0;
        stamp = (ver > s->global_ver ? ver : s->global_ver) + 1;
    }
    pthread_mutex_unlock(&s->lock);
    return stamp;
}

json_t *ll_status_health(ll_status *s)
{
    if (!s || !s->kube)
        return json_pack("{s:s}", "status", "not-configured");
    json_t *watches = json_array();
    char why[LL_ERROR_MSG_MAX + 64] = "";
    int ok = all_synced(s, why, sizeof(why));
    for (int i = 0; i < N_INFORMERS; i++)
        json_array_append_new(watches, ll_informer_status(s->inf[i]));
    pthread_mutex_lock(&s->lock);
    json_t *reconcile =
        json_pack("{s:s?, s:s?}", "requested_at", s->requested_at[0] ? s->requested_at : NULL,
                  "handled_at", s->handled_at[0] ? s->handled_at : NULL);
    json_t *namespaces =
        s->namespaces_listed ? json_integer((json_int_t)json_object_size(s->namespaces)) : NULL;
    pthread_mutex_unlock(&s->lock);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o*, s:s?}", "status", ok ? "ok" : "degraded",
                     "server", ll_kube_server(s->kube), "source", ll_kube_source(s->kube),
                     "watches", watches, "reconcile", reconcile, "namespaces", namespaces, "error",
                     ok ? NULL : why);
}

int ll_status_state(ll_status *s, const char *id, const char *commit, const char *sync, char *out,
                    size_t cap)
{
    int error = LL_ENOTFOUND;
    if (!s || !s->kube)
        return LL_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    const trec *r = tmap_get(&s->tenants, id);
    const char *state = r ? or_null(r->state) : NULL;
    const char *had = r ? or_null(r->state_commit) : NULL;
    const char *was = r ? or_null(r->state_sync) : NULL;
    /* A state derived for an older desired state is no answer. */
    int current = (commit ? had && strcmp(had, commit) == 0 : !had) &&
                  (!sync || (was && strcmp(was, sync) == 0));
    if (state && current) {
        snprintf(out, cap, "%s", state);
        error = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return error;
}

json_t *ll_status_verdict(ll_status *s, const char *id, const char *commit, const char *sync)
{
    json_t *out = NULL;
    if (!s || !s->kube)
        return NULL;
    pthread_mutex_lock(&s->lock);
    const trec *r = tmap_get(&s->tenants, id);
    const char *had = r ? or_null(r->state_commit) : NULL;
    const char *was = r ? or_null(r->state_sync) : NULL;
    int current = (commit ? had && strcmp(had, commit) == 0 : !had) &&
                  (!sync || (was && strcmp(was, sync) == 0));
    if (r && r->derived && current)
        out = parsed(r->derived);
    pthread_mutex_unlock(&s->lock);
    return out;
}

/* Under lock: 1 once the namespaces were listed, waiting for the first
 * list (at most NAMESPACES_WAIT_MS) while it is under way and has not
 * failed. */
static int wait_namespaces_listed(ll_status *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += NAMESPACES_WAIT_MS / 1000;
    until.tv_nsec += (NAMESPACES_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!s->namespaces_listed && !s->stop) {
        json_t *st = ll_informer_status(s->inf[I_ALL_NAMESPACES]);
        int failed = json_is_string(json_object_get(st, "error"));
        json_decref(st);
        if (failed || pthread_cond_timedwait(&s->changed, &s->lock, &until) != 0)
            break;
    }
    return s->namespaces_listed;
}

int ll_status_namespace_owner(ll_namespace_owner *out, ll_status *s, const char *name)
{
    char key[600];
    memset(out, 0, sizeof(*out));
    if (!s || !s->kube)
        return LL_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    out->known = wait_namespaces_listed(s);
    const json_t *v = json_object_get(s->namespaces, name);
    out->exists = out->known && v;
    if (out->exists && json_is_string(v)) {
        /* "<ks>/<ks namespace>/<tenant label>" */
        const char *text = json_string_value(v), *slash = strchr(text, '/');
        const char *second = slash ? strchr(slash + 1, '/') : NULL;
        if (second) {
            size_t ks_len = (size_t)(slash - text), ns_len = (size_t)(second - slash - 1);
            out->applied = strlen(s->ks) == ks_len && strncmp(text, s->ks, ks_len) == 0 &&
                           strlen(s->flux_ns) == ns_len &&
                           strncmp(slash + 1, s->flux_ns, ns_len) == 0;
            snprintf(out->tenant_label, sizeof(out->tenant_label), "%s", second + 1);
        }
    }
    snprintf(key, sizeof(key), "Namespace %s", name);
    snprintf(out->declared_by, sizeof(out->declared_by), "%s",
             json_string_value(json_object_get(s->owners, key)) ?: "");
    pthread_mutex_unlock(&s->lock);
    return 0;
}

unsigned long long ll_status_generation(ll_status *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    unsigned long long g = s->generation;
    pthread_mutex_unlock(&s->lock);
    return g;
}

void ll_status_wait(ll_status *s, unsigned long long seen, int64_t deadline_ms)
{
    if (!s)
        return;
    int64_t now_ms = ll_monotonic_ms();
    if (now_ms >= deadline_ms)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t left = deadline_ms - now_ms;
    until.tv_sec += left / 1000;
    until.tv_nsec += (left % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stop && s->generation == seen &&
           pthread_cond_timedwait(&s->changed, &s->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&s->lock);
}

/* slim.c - what the status module keeps of a Kubernetes object, and how.
 *
 * ll_status_slim() keeps what the rules of docs/api.md "Observed state"
 * read (protocols.md §4): generation, the Ready/Reconciling/Stalled/
 * Remediated conditions, the chart version asked for and history[0], a
 * digest of a HelmRelease's values, the revisions and the phase.  The cache
 * keeps tens of thousands of them as text, packed as a JSON array with one
 * place per member (ll_status_slim_pack); the rules read them unpacked.
 *
 * Pure: no threads, no I/O; every function may run on any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "status_int.h"

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
void st_values_digest(char out[17], const json_t *values)
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

/* 1 when s is one of list (NULL-terminated). */
static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

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
        st_values_digest(digest, json_object_get(spec, "values"));
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

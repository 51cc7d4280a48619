/* releases.c - the service's release use cases: uploading a packaged
 * chart, the catalogue, deleting a version nobody uses.
 *
 * An upload is checked completely (chart.c, within the chart-max-* caps)
 * before anything is stored; the artifact is built as Helm pushes it
 * (oci.c) and pushed to the configured OCI registry (ociremote.c) or, with
 * none configured, stored in the OCI image layout in the data dir.  Only
 * once that succeeded is it recorded in the registry, with its location
 * ("local" or the registry reference).  The same chart again is answered
 * from the record without touching the OCI registry; another chart under
 * an existing version is a conflict.  A delete removes the manifest from
 * where the release lives first, then the record.  Uploads and deletes
 * take release_lock, so two uploads of one version cannot race between
 * the registry and the record.  The registry hands releases as records
 * (ll_release); the catalogue sorts them newest first and counts their
 * tenants, and release_json is the one place one becomes the API's JSON.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/chart.h"
#include "landlord/core.h"
#include "landlord/error.h"
#include "landlord/oci.h"
#include "landlord/ociremote.h"
#include "landlord/registry.h"
#include "landlord/util.h"
#include "landlord/validate.h"
#include "core_int.h"

/* The catalogue: every release, newest version first, with how many
 * tenants run or target each. */
typedef struct catalogue {
    ll_release *rows; /* as listed (owned) */
    size_t n;
    ll_release **sorted; /* rows, newest first (borrowed from rows) */
    long long *tenants;  /* per sorted[i] */
} catalogue;

static void catalogue_clear(catalogue *cat)
{
    ll_registry_releases_free(cat->rows, cat->n);
    free(cat->sorted);
    free(cat->tenants);
    memset(cat, 0, sizeof(*cat));
}

/* The uploaded version a tenant's release stands for: itself when pinned;
 * for "1.2" (floating) the newest upload of 1.2.*; NULL when none. */
static const char *resolves_to(const char *release, const catalogue *cat)
{
    char prefix[64];
    size_t n = strlen(release);
    const char *best = NULL;
    if (n > 2 && strcmp(release + n - 2, ".x") == 0)
        n -= 2;
    int dots = 0;
    for (size_t k = 0; k < n; k++)
        dots += release[k] == '.';
    int floating = dots == 1; /* "1.2" */
    snprintf(prefix, sizeof(prefix), "%.*s.", (int)n, release);
    for (size_t i = 0; i < cat->n; i++) {
        const char *v = cat->sorted[i]->version;
        if (floating ? strncmp(v, prefix, strlen(prefix)) != 0 || strchr(v, '-')
                     : strcmp(v, release) != 0)
            continue;
        if (!best || ll_semver_cmp(v, best) > 0)
            best = v;
    }
    return best;
}

/* Counts into cat->tenants how many tenants run or target each release. */
static int count_users(catalogue *cat, ll_registry *r)
{
    ll_release_use *uses = NULL;
    size_t nuses = 0;
    int error;
    if ((error = ll_registry_release_users(&uses, &nuses, r)) < 0)
        return error;
    for (size_t u = 0; u < nuses; u++) {
        const char *v = resolves_to(uses[u].release, cat);
        for (size_t k = 0; v && k < cat->n; k++) {
            if (strcmp(cat->sorted[k]->version, v) == 0)
                cat->tenants[k] += uses[u].count;
        }
    }
    ll_registry_release_uses_free(uses, nuses);
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const ll_release *x = *(const ll_release *const *)a, *y = *(const ll_release *const *)b;
    return ll_semver_cmp(y->version, x->version);
}

/* Reads the catalogue into *out (catalogue_clear). */
static int catalogue_read(catalogue *out, ll_registry *r)
{
    int error;
    memset(out, 0, sizeof(*out));
    if ((error = ll_registry_release_list(&out->rows, &out->n, r)) < 0)
        return error;
    out->sorted = calloc(out->n ? out->n : 1, sizeof(*out->sorted));
    out->tenants = calloc(out->n ? out->n : 1, sizeof(*out->tenants));
    if (!out->sorted || !out->tenants) {
        catalogue_clear(out);
        return ll_error_set(-1, "out of memory");
    }
    for (size_t i = 0; i < out->n; i++)
        out->sorted[i] = &out->rows[i];
    qsort(out->sorted, out->n, sizeof(*out->sorted), newest_first);
    if ((error = count_users(out, r)) < 0)
        catalogue_clear(out);
    return error;
}

/* The place of version in cat's order, -1 when it is not there. */
static long find(const catalogue *cat, const char *version)
{
    for (size_t i = 0; i < cat->n; i++) {
        if (strcmp(cat->sorted[i]->version, version) == 0)
            return (long)i;
    }
    return -1;
}

/* A release as the API shows it: {"version", "tag", "digest",
 * "chart_digest", "config_digest", "size", "location", "app_version",
 * "pushed_at", "tenants"} (new reference). */
static json_t *release_json(const ll_release *rel, long long tenants)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s?, s:s, s:I}", "version", rel->version,
                     "tag", rel->tag, "digest", rel->digest, "chart_digest", rel->chart_digest,
                     "config_digest", rel->config_digest, "size", (json_int_t)rel->size, "location",
                     rel->location, "app_version", rel->app_version, "pushed_at", rel->pushed_at,
                     "tenants", (json_int_t)tenants);
}

/* The API's answer for version in cat: a new reference, or LL_ENOTFOUND. */
static int catalogue_get(json_t **out, const catalogue *cat, const char *version)
{
    long i = find(cat, version);
    *out = NULL;
    if (i < 0)
        return ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version);
    *out = release_json(cat->sorted[i], cat->tenants[i]);
    return *out ? 0 : ll_error_set(-1, "out of memory");
}

/* Stores a's artifact where releases go: the OCI registry (*location the
 * reference; *digest and *config_digest what the tag points to, which is
 * an earlier push of the same chart when the registry held one) or the
 * image layout ("local"). */
static int store(char *location, size_t cap, char digest[80], char config_digest[80], ll_core *c,
                 const ll_oci_artifact *a, const void *data, size_t len)
{
    int error;
    if (!c->oci) {
        snprintf(location, cap, "local");
        snprintf(digest, 80, "%s", a->manifest_digest);
        snprintf(config_digest, 80, "%s", a->config_digest);
        return ll_oci_layout_put(c->oci_dir, a, data, len);
    }
    ll_ociremote_pushed p;
    if ((error = ll_ociremote_push(&p, c->oci, c->cfg.chart_name, a, data, len)) < 0)
        return error;
    ll_ociremote_reference(location, cap, c->oci, c->cfg.chart_name, a->tag);
    snprintf(digest, 80, "%s", p.manifest_digest);
    snprintf(config_digest, 80, "%s", p.config_digest);
    return 0;
}

int ll_release_upload(json_t **out, int *created, ll_core *c, const void *data, size_t len)
{
    ll_registry *r = ll_core_registry(c);
    json_t *meta = NULL;
    ll_release existing = {0};
    catalogue cat = {0};
    ll_oci_artifact a = {0};
    char now[32], chart_digest[80], digest[80], config_digest[80], location[1200];
    int error;

    *out = NULL;
    *created = 0;
    if (!r)
        return -1;
    ll_chart_limits limits = {
        .unpacked = (unsigned long long)c->cfg.chart_max_unpacked,
        .entry_size = (unsigned long long)c->cfg.chart_max_entry_size,
        .entries = (unsigned long long)c->cfg.chart_max_entries,
    };
    if ((error = ll_chart_read_limited(&meta, data, len, c->cfg.chart_name, &limits)) < 0)
        return error;
    const char *version = json_string_value(json_object_get(meta, "version"));
    ll_oci_digest(chart_digest, data, len);
    pthread_mutex_lock(&c->release_lock);
    if (ll_registry_release_get(&existing, r, version) == 0) {
        if (strcmp(existing.chart_digest, chart_digest) != 0) {
            error = ll_error_set(LL_ECONFLICT,
                                 "release %s exists with another chart (%s); a version is "
                                 "immutable",
                                 version, existing.chart_digest);
            ll_error_hint("upload the chart under a new version");
            goto done;
        }
    } else {
        ll_now_rfc3339(now);
        if ((error = ll_oci_artifact_build(&a, meta, data, len, now)) < 0 ||
            (error = store(location, sizeof(location), digest, config_digest, c, &a, data, len)) <
                0)
            goto done;
        ll_release rel = {
            .version = (char *)version,
            .tag = a.tag,
            .digest = digest,
            .chart_digest = a.layer_digest,
            .config_digest = config_digest,
            .size = (long long)len,
            .location = location,
            .app_version = (char *)json_string_value(json_object_get(meta, "appVersion")),
            .pushed_at = now,
        };
        if ((error = ll_registry_release_put(r, &rel)) < 0)
            goto done;
        *created = 1;
    }
    if ((error = catalogue_read(&cat, r)) < 0)
        goto done;
    if (find(&cat, version) < 0)
        error = ll_error_set(-1, "release %s vanished", version);
    else
        error = catalogue_get(out, &cat, version);
done:
    pthread_mutex_unlock(&c->release_lock);
    ll_oci_artifact_free(&a);
    json_decref(meta);
    ll_registry_release_clear(&existing);
    catalogue_clear(&cat);
    return error;
}

int ll_release_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    catalogue cat;
    int error;
    if (!r)
        return -1;
    if ((error = catalogue_read(&cat, r)) < 0)
        return error;
    json_t *items = json_array();
    for (size_t i = 0; i < cat.n; i++)
        json_array_append_new(items, release_json(cat.sorted[i], cat.tenants[i]));
    catalogue_clear(&cat);
    *out = json_pack("{s:o}", "items", items);
    return 0;
}

int ll_release_get(json_t **out, ll_core *c, const char *version)
{
    ll_registry *r = ll_core_registry(c);
    catalogue cat;
    int error;
    *out = NULL;
    if (!r)
        return -1;
    if ((error = catalogue_read(&cat, r)) < 0)
        return error;
    error = catalogue_get(out, &cat, version);
    catalogue_clear(&cat);
    return error;
}

/* Removes the release's artifact from where it lives: its tag from the
 * layout, or its manifest from the OCI registry.  A registry release while
 * another registry (or none) is configured is LL_ECONFLICT: landlord
 * cannot reach it, and the record stays. */
static int unstore(ll_core *c, const ll_release *rel)
{
    int error;
    if (!rel->location || !strcmp(rel->location, "local")) {
        error = ll_oci_layout_untag(c->oci_dir, rel->tag);
        return error == LL_ENOTFOUND ? 0 : error;
    }
    if (!c->oci || !ll_ociremote_owns(c->oci, rel->location)) {
        error = ll_error_set(LL_ECONFLICT,
                             "release %s lives in %s, which is not the configured "
                             "registry",
                             rel->version, rel->location);
        ll_error_hint("set oci-url to that registry to delete it");
        return error;
    }
    return ll_ociremote_delete(c->oci, c->cfg.chart_name, rel->digest);
}

int ll_release_delete(ll_core *c, const char *version)
{
    ll_registry *r = ll_core_registry(c);
    catalogue cat = {0};
    long i;
    int error;
    if (!r)
        return -1;
    pthread_mutex_lock(&c->release_lock);
    if ((error = catalogue_read(&cat, r)) < 0)
        goto done;
    if ((i = find(&cat, version)) < 0) {
        error = ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version);
        goto done;
    }
    long long users = cat.tenants[i];
    if (users > 0) {
        error = ll_error_set(LL_ECONFLICT, "release %s is run or targeted by %lld tenant(s)",
                             version, users);
        ll_error_hint("move those tenants to another release first");
        goto done;
    }
    /* An active rollout moves tenants to it, or would roll them back to it. */
    long long rollouts = 0;
    if ((error = ll_registry_rollouts_using(&rollouts, r, version)) < 0)
        goto done;
    if (rollouts > 0) {
        error = ll_error_set(LL_ECONFLICT,
                             "release %s is the target of an active rollout, or what it would "
                             "roll tenants back to",
                             version);
        ll_error_hint("wait for the rollout to end, or abort it");
        goto done;
    }
    /* The artifact first: a registry that refuses leaves the record. */
    if ((error = unstore(c, cat.sorted[i])) < 0 ||
        (error = ll_registry_release_delete(r, version)) < 0)
        goto done;
done:
    pthread_mutex_unlock(&c->release_lock);
    catalogue_clear(&cat);
    return error;
}

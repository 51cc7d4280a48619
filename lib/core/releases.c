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
 * the registry and the record.
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

/* The uploaded version a tenant's release stands for: itself when pinned;
 * for "1.2" (floating) the newest upload of 1.2.*; NULL when none. */
static const char *resolves_to(const char *release, const json_t *releases)
{
    char prefix[64];
    size_t i, n = strlen(release);
    const char *best = NULL;
    json_t *r;
    if (n > 2 && strcmp(release + n - 2, ".x") == 0)
        n -= 2;
    int dots = 0;
    for (size_t k = 0; k < n; k++)
        dots += release[k] == '.';
    int floating = dots == 1; /* "1.2" */
    snprintf(prefix, sizeof(prefix), "%.*s.", (int)n, release);
    json_array_foreach(releases, i, r)
    {
        const char *v = json_string_value(json_object_get(r, "version"));
        if (floating ? strncmp(v, prefix, strlen(prefix)) != 0 || strchr(v, '-')
                     : strcmp(v, release) != 0)
            continue;
        if (!best || ll_semver_cmp(v, best) > 0)
            best = v;
    }
    return best;
}

/* Sets "tenants" on each release: how many tenants run or target it. */
static int count_users(json_t *releases, ll_registry *r)
{
    json_t *users = NULL, *u, *rel;
    size_t i;
    int error;
    if ((error = ll_registry_release_users(&users, r)) < 0)
        return error;
    json_array_foreach(releases, i, rel) json_object_set_new(rel, "tenants", json_integer(0));
    json_array_foreach(users, i, u)
    {
        const char *v = resolves_to(json_string_value(json_object_get(u, "release")), releases);
        size_t k;
        json_array_foreach(releases, k, rel)
        {
            if (v && strcmp(json_string_value(json_object_get(rel, "version")), v) == 0)
                json_object_set_new(
                    rel, "tenants",
                    json_integer(json_integer_value(json_object_get(rel, "tenants")) +
                                 json_integer_value(json_object_get(u, "count"))));
        }
    }
    json_decref(users);
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    return ll_semver_cmp(json_string_value(json_object_get(y, "version")),
                         json_string_value(json_object_get(x, "version")));
}

/* The catalogue, newest version first, with tenant counts. */
static int catalogue(json_t **out, ll_registry *r)
{
    json_t *rows = NULL;
    int error;
    *out = NULL;
    if ((error = ll_registry_release_list(&rows, r)) < 0)
        return error;
    size_t n = json_array_size(rows);
    json_t **items = calloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(rows, i);
    qsort(items, n, sizeof(*items), newest_first);
    json_t *sorted = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, items[i]);
    free(items);
    json_decref(rows);
    if ((error = count_users(sorted, r)) < 0) {
        json_decref(sorted);
        return error;
    }
    *out = sorted;
    return 0;
}

static json_t *find(const json_t *list, const char *version)
{
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "version")), version) == 0)
            return r;
    }
    return NULL;
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
    json_t *meta = NULL, *existing = NULL, *rel = NULL, *list = NULL;
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
        if (strcmp(json_string_value(json_object_get(existing, "chart_digest")), chart_digest) !=
            0) {
            error =
                ll_error_set(LL_ECONFLICT,
                             "release %s exists with another chart (%s); a version is "
                             "immutable",
                             version, json_string_value(json_object_get(existing, "chart_digest")));
            ll_error_hint("upload the chart under a new version");
            goto done;
        }
    } else {
        ll_now_rfc3339(now);
        if ((error = ll_oci_artifact_build(&a, meta, data, len, now)) < 0 ||
            (error = store(location, sizeof(location), digest, config_digest, c, &a, data, len)) <
                0)
            goto done;
        rel = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:O?, s:s}", "version", version, "tag",
                        a.tag, "digest", digest, "chart_digest", a.layer_digest, "config_digest",
                        config_digest, "size", (json_int_t)len, "location", location, "app_version",
                        json_object_get(meta, "appVersion"), "pushed_at", now);
        if ((error = ll_registry_release_put(r, rel)) < 0)
            goto done;
        *created = 1;
    }
    if ((error = catalogue(&list, r)) < 0)
        goto done;
    *out = json_incref(find(list, version));
    error = *out ? 0 : ll_error_set(-1, "release %s vanished", version);
done:
    pthread_mutex_unlock(&c->release_lock);
    ll_oci_artifact_free(&a);
    json_decref(meta);
    json_decref(existing);
    json_decref(rel);
    json_decref(list);
    return error;
}

int ll_release_list(json_t **out, ll_core *c)
{
    ll_registry *r = ll_core_registry(c);
    json_t *list = NULL;
    int error;
    if (!r)
        return -1;
    if ((error = catalogue(&list, r)) < 0)
        return error;
    *out = json_pack("{s:o}", "items", list);
    return 0;
}

int ll_release_get(json_t **out, ll_core *c, const char *version)
{
    ll_registry *r = ll_core_registry(c);
    json_t *list = NULL;
    int error;
    *out = NULL;
    if (!r)
        return -1;
    if ((error = catalogue(&list, r)) < 0)
        return error;
    *out = json_incref(find(list, version));
    json_decref(list);
    return *out ? 0 : ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version);
}

/* Removes the release's artifact from where it lives: its tag from the
 * layout, or its manifest from the OCI registry.  A registry release while
 * another registry (or none) is configured is LL_ECONFLICT: landlord
 * cannot reach it, and the record stays. */
static int unstore(ll_core *c, const json_t *rel)
{
    const char *location = json_string_value(json_object_get(rel, "location"));
    const char *tag = json_string_value(json_object_get(rel, "tag"));
    const char *digest = json_string_value(json_object_get(rel, "digest"));
    int error;
    if (!location || !strcmp(location, "local")) {
        error = ll_oci_layout_untag(c->oci_dir, tag);
        return error == LL_ENOTFOUND ? 0 : error;
    }
    if (!c->oci || !ll_ociremote_owns(c->oci, location)) {
        error = ll_error_set(LL_ECONFLICT,
                             "release %s lives in %s, which is not the configured "
                             "registry",
                             json_string_value(json_object_get(rel, "version")), location);
        ll_error_hint("set oci-url to that registry to delete it");
        return error;
    }
    return ll_ociremote_delete(c->oci, c->cfg.chart_name, digest);
}

int ll_release_delete(ll_core *c, const char *version)
{
    ll_registry *r = ll_core_registry(c);
    json_t *rel = NULL;
    int error;
    if (!r)
        return -1;
    pthread_mutex_lock(&c->release_lock);
    if ((error = ll_release_get(&rel, c, version)) < 0)
        goto done;
    long long users = json_integer_value(json_object_get(rel, "tenants"));
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
    if ((error = unstore(c, rel)) < 0 || (error = ll_registry_release_delete(r, version)) < 0)
        goto done;
done:
    pthread_mutex_unlock(&c->release_lock);
    json_decref(rel);
    return error;
}

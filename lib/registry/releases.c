/* releases.c - the release catalogue in the registry's SQLite file:
 * uploaded releases (ll_release) and how many tenants carry each chart
 * version (ll_release_use).
 *
 * A releases row becomes an ll_release in release_from_row and nowhere
 * else; every query runs through reg_rows, lists into a reg_records array
 * (records.c).  The service (lib/core/releases.c) sorts the catalogue,
 * counts its users and makes the API's JSON.  Nothing here is kept
 * between calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/error.h"
#include "landlord/registry.h"
#include "registry_int.h"

#define RELEASE_COLS                                                                               \
    "version, tag, manifest_digest, chart_digest, config_digest, size, location, app_version, "    \
    "pushed_at"

/* A releases row (RELEASE_COLS) as a record; 0, or -1 out of memory. */
static int release_from_row(void *item, sqlite3_stmt *st)
{
    ll_release *rel = item;
    int oom = 0;
    rel->version = reg_dup_col(st, 0, &oom);
    rel->tag = reg_dup_col(st, 1, &oom);
    rel->digest = reg_dup_col(st, 2, &oom);
    rel->chart_digest = reg_dup_col(st, 3, &oom);
    rel->config_digest = reg_dup_col(st, 4, &oom);
    rel->size = sqlite3_column_int64(st, 5);
    rel->location = reg_dup_col(st, 6, &oom);
    rel->app_version = reg_dup_col(st, 7, &oom);
    rel->pushed_at = reg_dup_col(st, 8, &oom);
    return oom ? -1 : 0;
}

void ll_registry_release_clear(ll_release *rel)
{
    if (!rel)
        return;
    free(rel->version);
    free(rel->tag);
    free(rel->digest);
    free(rel->chart_digest);
    free(rel->config_digest);
    free(rel->location);
    free(rel->app_version);
    free(rel->pushed_at);
    memset(rel, 0, sizeof(*rel));
}

static void release_clear(void *item)
{
    ll_registry_release_clear(item);
}

void ll_registry_releases_free(ll_release *items, size_t n)
{
    reg_records_free(items, n, sizeof(*items), release_clear);
}

int ll_registry_release_put(ll_registry *r, const ll_release *rel)
{
    int error =
        reg_rows(r, "store release", NULL, NULL,
                 "INSERT INTO releases (" RELEASE_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 "sssssIsss", rel->version, rel->tag, rel->digest, rel->chart_digest,
                 rel->config_digest, rel->size, rel->location, rel->app_version, rel->pushed_at);
    return error < 0 ? error : 0;
}

/* reg_row_fn: the first row into the release payload points to. */
static int release_one(sqlite3_stmt *st, void *payload)
{
    ll_release *rel = payload;
    if (rel->version)
        return 0;
    return release_from_row(rel, st) < 0 ? ll_error_set(-1, "out of memory") : 0;
}

int ll_registry_release_get(ll_release *out, ll_registry *r, const char *version)
{
    int error;
    memset(out, 0, sizeof(*out));
    error = reg_rows(r, "read release", release_one, out,
                     "SELECT " RELEASE_COLS " FROM releases WHERE version = ?", "s", version);
    if (error == 0)
        error = ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version);
    if (error < 0) {
        ll_registry_release_clear(out);
        return error;
    }
    return 0;
}

int ll_registry_release_list(ll_release **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {
        .size = sizeof(ll_release), .from_row = release_from_row, .clear = release_clear};
    int error = reg_rows(r, "list releases", reg_collect, &l,
                         "SELECT " RELEASE_COLS " FROM releases", NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

int ll_registry_release_delete(ll_registry *r, const char *version)
{
    const char *p[] = {version};
    int n = reg_run(r, "DELETE FROM releases WHERE version = ?", 1, p);
    if (n < 0)
        return n;
    return n == 0 ? ll_error_set(LL_ENOTFOUND, "no release '%.64s'", version) : 0;
}

static int release_use_from_row(void *item, sqlite3_stmt *st)
{
    ll_release_use *u = item;
    int oom = 0;
    u->release = reg_dup_col(st, 0, &oom);
    u->count = sqlite3_column_int64(st, 1);
    return oom ? -1 : 0;
}

static void release_use_clear(void *item)
{
    free(((ll_release_use *)item)->release);
}

void ll_registry_release_uses_free(ll_release_use *uses, size_t n)
{
    reg_records_free(uses, n, sizeof(*uses), release_use_clear);
}

int ll_registry_release_users(ll_release_use **out, size_t *out_n, ll_registry *r)
{
    reg_records l = {.size = sizeof(ll_release_use),
                     .from_row = release_use_from_row,
                     .clear = release_use_clear};
    int error = reg_rows(r, "count releases in use", reg_collect, &l,
                         "SELECT coalesce(chart_version, release), count(*) FROM tenants "
                         "WHERE lifecycle != 'offboarded' GROUP BY 1",
                         NULL);
    return reg_records_finish((void **)out, out_n, &l, error);
}

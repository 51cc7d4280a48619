/* chart.c - reading a packaged Helm chart (see chart.h).
 *
 * One pass over the archive with libarchive, from memory: every entry's
 * path is checked (relative, no "..", one top folder, files and folders
 * only) and sizes are summed against the caps; <top>/Chart.yaml is kept
 * (capped at 1 MiB) and parsed with libyaml once the pass is done.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <archive.h>
#include <archive_entry.h>

#include "landlord/chart.h"
#include "landlord/error.h"
#include "landlord/template.h"

#define CHART_YAML_MAX (1u << 20)

static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int refuse(const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "%s", msg);
    ll_error_kind("invalid-chart");
    return LL_EINVALID;
}

/* A number of semver: digits, no leading zero unless "0". */
static const char *number(const char *p)
{
    const char *start = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == start || (p - start > 1 && *start == '0'))
        return NULL;
    return p;
}

/* Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading
 * zeros when numeric_rule. */
static const char *identifiers(const char *p, int numeric_rule)
{
    for (;;) {
        const char *start = p;
        int digits = 1;
        while (isalnum((unsigned char)*p) || *p == '-') {
            digits &= isdigit((unsigned char)*p) != 0;
            p++;
        }
        if (p == start)
            return NULL;
        if (numeric_rule && digits && p - start > 1 && *start == '0')
            return NULL;
        if (*p != '.')
            return p;
        p++;
    }
}

int ll_semver_valid(const char *v)
{
    const char *p = v;
    if (!p || strlen(p) > 128)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (!(p = number(p)))
            return 0;
        if (i < 2 && *p++ != '.')
            return 0;
    }
    if (*p == '-' && !(p = identifiers(p + 1, 1)))
        return 0;
    if (*p == '+' && !(p = identifiers(p + 1, 0)))
        return 0;
    return *p == '\0';
}

/* Checks one entry's path; *top gets the first path segment of the first
 * entry and must match for the others. */
static int check_path(const char *path, char *top, size_t top_cap)
{
    size_t n = strcspn(path, "/");
    if (!path[0] || path[0] == '/')
        return refuse("the chart archive holds an absolute or empty path '%.200s'", path);
    for (const char *p = path; *p;) {
        size_t seg = strcspn(p, "/");
        if (seg == 2 && p[0] == '.' && p[1] == '.')
            return refuse("the chart archive holds a path climbing out with '..': '%.200s'", path);
        p += seg;
        while (*p == '/')
            p++;
    }
    if (n == 0 || n >= top_cap)
        return refuse("the chart archive holds a path with a bad top folder: '%.200s'", path);
    if (!top[0]) {
        memcpy(top, path, n);
        top[n] = '\0';
    } else if (strlen(top) != n || strncmp(top, path, n) != 0) {
        return refuse("the chart archive holds files outside its one top folder: '%.200s'", path);
    }
    return 0;
}

int ll_chart_read(json_t **out_meta, const void *data, size_t len, const char *name)
{
    struct archive *a = archive_read_new();
    struct archive_entry *entry;
    char top[256] = "", *yaml = NULL;
    size_t yaml_len = 0, entries = 0;
    unsigned long long unpacked = 0;
    json_t *meta = NULL;
    int error = 0, rc;

    *out_meta = NULL;
    if (!a)
        return ll_error_set(-1, "out of memory");
    /* gzip only, tar only: what helm package makes. */
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
        error =
            refuse("the upload is not a gzip-compressed tar archive: %s", archive_error_string(a));
        goto done;
    }
    if (archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP) {
        error = refuse("the upload is not gzip-compressed%s", "");
        goto done;
    }
    while ((rc = archive_read_next_header(a, &entry)) == ARCHIVE_OK) {
        const char *path = archive_entry_pathname(entry);
        mode_t type = archive_entry_filetype(entry);
        if (++entries > LL_CHART_ENTRIES) {
            error = refuse("the chart archive holds more than %s entries", "10000");
            goto done;
        }
        if (!path || (error = check_path(path, top, sizeof(top))) < 0)
            goto done;
        if (type != AE_IFREG && type != AE_IFDIR) {
            error = refuse("the chart archive holds '%.200s', which is neither a file nor a folder",
                           path);
            goto done;
        }
        if (type != AE_IFREG)
            continue;
        la_int64_t size = archive_entry_size(entry);
        unpacked += size > 0 ? (unsigned long long)size : 0;
        if (unpacked > LL_CHART_UNPACKED) {
            error = refuse("the chart unpacks to more than %s", "64 MiB");
            goto done;
        }
        size_t tl = strlen(top);
        if (strncmp(path, top, tl) == 0 && strcmp(path + tl, "/Chart.yaml") == 0 && !yaml) {
            if (size < 0 || (unsigned long long)size > CHART_YAML_MAX) {
                error = refuse("%s is larger than 1 MiB", path);
                goto done;
            }
            yaml = malloc((size_t)size + 1);
            la_ssize_t got = yaml ? archive_read_data(a, yaml, (size_t)size) : -1;
            if (got != size) {
                error = refuse("cannot read Chart.yaml from the archive: %s",
                               yaml ? archive_error_string(a) : "out of memory");
                goto done;
            }
            yaml[size] = '\0';
            yaml_len = (size_t)size;
        }
    }
    if (rc != ARCHIVE_EOF) {
        error = refuse("the chart archive is damaged: %s", archive_error_string(a));
        goto done;
    }
    if (!yaml) {
        error = refuse("the chart archive has no %s/Chart.yaml", top[0] ? top : "<chart>");
        goto done;
    }
    if (ll_yaml_load_json(&meta, yaml, yaml_len) < 0) {
        error = refuse("Chart.yaml is not valid YAML: %s", ll_error_last()->message);
        goto done;
    }
    /* One document; the loader gives the documents as an array. */
    if (json_is_array(meta) && json_array_size(meta) == 1) {
        json_t *doc = json_incref(json_array_get(meta, 0));
        json_decref(meta);
        meta = doc;
    }
    if (!json_is_object(meta)) {
        error = refuse("Chart.yaml must be one mapping%s", "");
        goto done;
    }
    const char *api = json_string_value(json_object_get(meta, "apiVersion"));
    const char *cname = json_string_value(json_object_get(meta, "name"));
    const char *version = json_string_value(json_object_get(meta, "version"));
    if (!api || strcmp(api, "v2") != 0) {
        error = refuse("Chart.yaml apiVersion must be v2, not '%.32s'", api ? api : "(none)");
    } else if (!cname || strcmp(cname, name) != 0) {
        ll_error_set(LL_EINVALID, "the chart is '%.64s', not the tenant chart '%.64s'",
                     cname ? cname : "(no name)", name);
        ll_error_kind("invalid-chart");
        error = LL_EINVALID;
    } else if (!version || !ll_semver_valid(version)) {
        error = refuse("Chart.yaml version '%.64s' is not a semantic version (1.2.3)",
                       version ? version : "(none)");
    } else if (strcmp(top, cname) != 0) {
        error = refuse("the chart's top folder must be its name, not '%.64s'", top);
    }
done:
    archive_read_free(a);
    free(yaml);
    if (error < 0) {
        json_decref(meta);
        return error;
    }
    *out_meta = meta;
    return 0;
}

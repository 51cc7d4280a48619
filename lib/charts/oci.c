/* oci.c - Helm charts as OCI artifacts and the OCI image layout (see oci.h).
 *
 * JSON is built with jansson, whose objects keep insertion order: the
 * config keys go in the order of Helm's chart metadata struct, the manifest
 * keys in the order of the OCI structs, and annotations sorted by key (Go
 * marshals maps sorted), so the bytes are what Helm's own push would
 * produce, minus Go's escaping of <, > and &.
 *
 * The image layout is written file by file through temporary files and
 * renames, blobs first and index.json last, so a write that fails (a full
 * volume: LL_ENOSPACE) leaves the layout as it was, give or take
 * content-addressed blobs that nothing names.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "landlord/error.h"
#include "landlord/oci.h"
#include "landlord/storage.h"
#include "landlord/util.h"

void ll_oci_digest(char out[80], const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char hex[65];
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    ll_hex_encode(hex, md, n < 32 ? n : 32);
    memcpy(out, "sha256:", 7);
    memcpy(out + 7, hex, sizeof(hex));
}

/* Chart.yaml's metadata in Helm's field order, empty values left out. */
static json_t *config_of(const json_t *meta)
{
    static const char *const order[] = {
        "name",        "home",        "sources",     "version",      "description", "keywords",
        "maintainers", "icon",        "apiVersion",  "condition",    "tags",        "appVersion",
        "deprecated",  "annotations", "kubeVersion", "dependencies", "type",        NULL};
    json_t *c = json_object();
    for (const char *const *k = order; *k; k++) {
        json_t *v = json_object_get(meta, *k);
        if (!v || json_is_null(v) || json_is_false(v) ||
            (json_is_string(v) && !json_string_length(v)) ||
            (json_is_array(v) && !json_array_size(v)) ||
            (json_is_object(v) && !json_object_size(v)))
            continue;
        json_object_set(c, *k, v);
    }
    return c;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* org.opencontainers.image.authors from Chart.yaml's maintainers, as Helm
 * writes it: "name (email), name". */
static void add_authors(json_t *all, const json_t *meta)
{
    const json_t *maintainers = json_object_get(meta, "maintainers");
    json_t *m;
    size_t i;
    ll_buf b;

    if (!json_array_size(maintainers))
        return;
    ll_buf_init(&b, 64 * 1024);
    json_array_foreach(maintainers, i, m)
    {
        const char *mn = json_string_value(json_object_get(m, "name"));
        const char *me = json_string_value(json_object_get(m, "email"));
        ll_buf_printf(&b, "%s%s", i ? ", " : "", mn ? mn : "");
        if (me && me[0])
            ll_buf_printf(&b, " (%s)", me);
    }
    json_object_set_new(all, "org.opencontainers.image.authors", json_string(b.data ? b.data : ""));
    ll_buf_free(&b);
}

/* A copy of object all with its keys in sorted order (new, NULL when out
 * of memory); all is freed (steals). */
static json_t *sorted_by_key(json_t *all)
{
    json_t *sorted = json_object(), *v;
    size_t n = json_object_size(all), k = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys)), *key;

    if (!keys) {
        json_decref(all);
        json_decref(sorted);
        return NULL; /* the manifest's json_pack fails: out of memory */
    }
    json_object_foreach(all, key, v) keys[k++] = key;
    qsort(keys, n, sizeof(*keys), compare_keys);
    for (k = 0; k < n; k++)
        json_object_set(sorted, keys[k], json_object_get(all, keys[k]));
    free(keys);
    json_decref(all);
    return sorted;
}

/* Helm's manifest annotations, sorted by key. */
static json_t *annotations_of(const json_t *meta, const char *created)
{
    json_t *all = json_object(), *v;
    const char *key;
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *version = json_string_value(json_object_get(meta, "version"));
    const char *description = json_string_value(json_object_get(meta, "description"));
    const char *home = json_string_value(json_object_get(meta, "home"));
    const char *source = json_string_value(json_array_get(json_object_get(meta, "sources"), 0));

    json_object_foreach(json_object_get(meta, "annotations"), key, v)
    {
        if (json_is_string(v) && strcmp(key, "org.opencontainers.image.title") != 0 &&
            strcmp(key, "org.opencontainers.image.version") != 0)
            json_object_set(all, key, v);
    }
    json_object_set_new(all, "org.opencontainers.image.title", json_string(name ? name : ""));
    json_object_set_new(all, "org.opencontainers.image.version",
                        json_string(version ? version : ""));
    if (description && description[0])
        json_object_set_new(all, "org.opencontainers.image.description", json_string(description));
    if (home && home[0])
        json_object_set_new(all, "org.opencontainers.image.url", json_string(home));
    if (source && source[0])
        json_object_set_new(all, "org.opencontainers.image.source", json_string(source));
    add_authors(all, meta);
    if (!json_object_get(all, "org.opencontainers.image.created"))
        json_object_set_new(all, "org.opencontainers.image.created", json_string(created));
    return sorted_by_key(all);
}

int ll_oci_artifact_build(ll_oci_artifact *out, const json_t *meta, const void *tgz, size_t len,
                          const char *created)
{
    const char *version = json_string_value(json_object_get(meta, "version"));
    json_t *config = NULL, *manifest = NULL;
    int error = -1;

    memset(out, 0, sizeof(*out));
    if (!version)
        return ll_error_set(LL_EINVALID, "the chart has no version");
    config = config_of(meta);
    snprintf(out->tag, sizeof(out->tag), "%s", version);
    for (char *p = out->tag; *p; p++)
        if (*p == '+')
            *p = '_';
    out->config = json_dumps(config, JSON_COMPACT);
    if (!out->config)
        goto done;
    out->config_len = strlen(out->config);
    ll_oci_digest(out->config_digest, out->config, out->config_len);
    ll_oci_digest(out->layer_digest, tgz, len);
    out->layer_len = len;
    manifest = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}], s:o}", "schemaVersion",
                         2, "mediaType", LL_OCI_MANIFEST, "config", "mediaType", LL_OCI_CONFIG,
                         "digest", out->config_digest, "size", (json_int_t)out->config_len,
                         "layers", "mediaType", LL_OCI_CHART, "digest", out->layer_digest, "size",
                         (json_int_t)len, "annotations", annotations_of(meta, created));
    if (!manifest || !(out->manifest = json_dumps(manifest, JSON_COMPACT)))
        goto done;
    out->manifest_len = strlen(out->manifest);
    ll_oci_digest(out->manifest_digest, out->manifest, out->manifest_len);
    error = 0;
done:
    json_decref(config);
    json_decref(manifest);
    if (error < 0) {
        ll_oci_artifact_free(out);
        return ll_error_set(-1, "cannot build the chart's OCI manifest");
    }
    return 0;
}

void ll_oci_artifact_free(ll_oci_artifact *a)
{
    if (!a)
        return;
    free(a->config);
    free(a->manifest);
    memset(a, 0, sizeof(*a));
}

/* Sets the error for a write of path that failed with errno err: a full
 * volume is LL_ENOSPACE (and reported to storage.h). */
static int write_failed(const char *path, int err)
{
    int code = ll_error_of_errno(err);
    if (code != LL_ENOSPACE)
        return ll_error_set(code, "cannot write %s: %s", path, strerror(err));
    ll_error_set(LL_ENOSPACE,
                 "the data volume is full: the chart cannot be stored in the image layout (%s)",
                 strerror(err));
    ll_error_hint("free space on landlord's data volume; uploads are taken again as soon as "
                  "there is room, without a restart");
    ll_storage_full(path, ll_error_last()->message);
    return LL_ENOSPACE;
}

/* Writes data to path through a temporary file and a rename; a failure
 * leaves path as it was and no temporary file behind. */
static int write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[1200];
    FILE *f;
    int err = 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb")))
        return write_failed(tmp, errno);
    errno = 0;
    /* The first failure's errno is the one that says why (ENOSPC). */
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
        err = errno ? errno : EIO;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return write_failed(path, err);
    }
    return 0;
}

static int put_blob(const char *dir, const char *digest, const void *data, size_t len)
{
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, digest + 7);
    if (stat(path, &st) == 0 && (size_t)st.st_size == len)
        return 0; /* content-addressed: already there */
    return write_atomic(path, data, len);
}

static int read_index(json_t **out, const char *dir)
{
    char path[1200], *text = NULL;
    size_t len = 0;
    json_error_t e;
    snprintf(path, sizeof(path), "%s/index.json", dir);
    *out = NULL;
    if (access(path, F_OK) != 0) {
        *out = json_pack("{s:i, s:[]}", "schemaVersion", 2, "manifests");
        return 0;
    }
    int error = ll_read_file(&text, &len, path, 64 << 20);
    if (error < 0)
        return error;
    *out = json_loadb(text, len, 0, &e);
    free(text);
    if (!*out || !json_is_array(json_object_get(*out, "manifests"))) {
        json_decref(*out);
        *out = NULL;
        return ll_error_set(-1, "%s is not an OCI index: %s", path, e.text);
    }
    return 0;
}

int ll_oci_layout_put(const char *dir, const ll_oci_artifact *a, const void *tgz, size_t len)
{
    char path[1200];
    json_t *index = NULL, *m;
    size_t i;
    int error;

    snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
    if ((error = ll_mkdir_p(path)) < 0)
        return error;
    snprintf(path, sizeof(path), "%s/oci-layout", dir);
    if (access(path, F_OK) != 0 &&
        (error = write_atomic(path, "{\"imageLayoutVersion\":\"1.0.0\"}", 30)) < 0)
        return error;
    if ((error = put_blob(dir, a->layer_digest, tgz, len)) < 0 ||
        (error = put_blob(dir, a->config_digest, a->config, a->config_len)) < 0 ||
        (error = put_blob(dir, a->manifest_digest, a->manifest, a->manifest_len)) < 0 ||
        (error = read_index(&index, dir)) < 0)
        return error;
    json_t *list = json_object_get(index, "manifests");
    for (i = json_array_size(list); i-- > 0;) {
        m = json_array_get(list, i);
        const char *ref = json_string_value(json_object_get(json_object_get(m, "annotations"),
                                                            "org.opencontainers.image.ref.name"));
        if (ref && strcmp(ref, a->tag) == 0)
            json_array_remove(list, i);
    }
    json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", LL_OCI_MANIFEST,
                                          "digest", a->manifest_digest, "size",
                                          (json_int_t)a->manifest_len, "annotations",
                                          "org.opencontainers.image.ref.name", a->tag));
    char *text = json_dumps(index, JSON_COMPACT);
    json_decref(index);
    if (!text)
        return ll_error_set(-1, "out of memory");
    snprintf(path, sizeof(path), "%s/index.json", dir);
    error = write_atomic(path, text, strlen(text));
    free(text);
    return error;
}

int ll_oci_layout_get(json_t **out, const char *dir, const char *tag)
{
    json_t *index = NULL, *m;
    size_t i;
    int error;

    *out = NULL;
    if ((error = read_index(&index, dir)) < 0)
        return error;
    json_array_foreach(json_object_get(index, "manifests"), i, m)
    {
        const char *ref = json_string_value(json_object_get(json_object_get(m, "annotations"),
                                                            "org.opencontainers.image.ref.name"));
        if (ref && strcmp(ref, tag) == 0) {
            *out = json_incref(m);
            break;
        }
    }
    json_decref(index);
    return *out ? 0 : ll_error_set(LL_ENOTFOUND, "no chart tagged '%s' in %s", tag, dir);
}

int ll_oci_layout_untag(const char *dir, const char *tag)
{
    char path[1200];
    json_t *index = NULL, *m;
    int error, found = 0;

    if ((error = read_index(&index, dir)) < 0)
        return error;
    json_t *list = json_object_get(index, "manifests");
    for (size_t i = json_array_size(list); i-- > 0;) {
        m = json_array_get(list, i);
        const char *ref = json_string_value(json_object_get(json_object_get(m, "annotations"),
                                                            "org.opencontainers.image.ref.name"));
        if (ref && strcmp(ref, tag) == 0) {
            json_array_remove(list, i);
            found = 1;
        }
    }
    if (!found) {
        json_decref(index);
        return ll_error_set(LL_ENOTFOUND, "no chart tagged '%s' in %s", tag, dir);
    }
    char *text = json_dumps(index, JSON_COMPACT);
    json_decref(index);
    if (!text)
        return ll_error_set(-1, "out of memory");
    snprintf(path, sizeof(path), "%s/index.json", dir);
    error = write_atomic(path, text, strlen(text));
    free(text);
    return error;
}

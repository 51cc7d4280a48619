/* Unit tests of lib/charts/oci.c: the chart's OCI artifact as Helm pushes it, and
 * the OCI image layout on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "landlord/error.h"
#include "landlord/oci.h"
#include "landlord/util.h"
#include "support.h"

#define CREATED "2026-11-23T10:00:00Z"

static json_t *meta(const char *version)
{
    json_error_t e;
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"v2\",\"name\":\"helm-tenant-chart\",\"version\":\"%s\","
             "\"description\":\"A tenant\",\"home\":\"https://example.com\","
             "\"sources\":[\"https://git.example/chart\"],\"type\":\"application\","
             "\"maintainers\":[{\"name\":\"Ann\",\"email\":\"ann@example.com\"},{\"name\":\"Bo\"}],"
             "\"keywords\":[],\"appVersion\":\"2.0.1\","
             "\"annotations\":{\"zeta\":\"last\",\"org.opencontainers.image.title\":\"ignored\"}}",
             version);
    json_t *m = json_loads(text, 0, &e);
    assert_non_null(m);
    return m;
}

static void test_artifact_like_helm(void **state)
{
    (void)state;
    ll_oci_artifact a, b;
    char digest[80];
    json_t *m = meta("1.2.3+build.1");
    assert_int_equal(ll_oci_artifact_build(&a, m, "abc", 3, CREATED), 0);
    assert_string_equal(a.tag, "1.2.3_build.1");
    /* Helm's metadata order, empty values left out. */
    assert_string_equal(
        a.config, "{\"name\":\"helm-tenant-chart\",\"home\":\"https://example.com\","
                  "\"sources\":[\"https://git.example/chart\"],\"version\":\"1.2.3+build.1\","
                  "\"description\":\"A tenant\",\"maintainers\":[{\"name\":\"Ann\",\"email\":"
                  "\"ann@example.com\"},{\"name\":\"Bo\"}],\"apiVersion\":\"v2\","
                  "\"appVersion\":\"2.0.1\",\"annotations\":{\"zeta\":\"last\","
                  "\"org.opencontainers.image.title\":\"ignored\"},\"type\":\"application\"}");
    ll_oci_digest(digest, a.config, a.config_len);
    assert_string_equal(digest, a.config_digest);
    ll_oci_digest(digest, "abc", 3);
    assert_string_equal(digest, a.layer_digest);
    assert_string_equal(digest,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ll_oci_digest(digest, a.manifest, a.manifest_len);
    assert_string_equal(digest, a.manifest_digest);

    json_t *man = json_loadb(a.manifest, a.manifest_len, 0, NULL);
    assert_non_null(man);
    assert_int_equal(json_integer_value(json_object_get(man, "schemaVersion")), 2);
    assert_string_equal(json_string_value(json_object_get(man, "mediaType")), LL_OCI_MANIFEST);
    json_t *cfg = json_object_get(man, "config");
    assert_string_equal(json_string_value(json_object_get(cfg, "mediaType")), LL_OCI_CONFIG);
    assert_string_equal(json_string_value(json_object_get(cfg, "digest")), a.config_digest);
    assert_int_equal(json_integer_value(json_object_get(cfg, "size")), (json_int_t)a.config_len);
    json_t *layer = json_array_get(json_object_get(man, "layers"), 0);
    assert_int_equal(json_array_size(json_object_get(man, "layers")), 1);
    assert_string_equal(json_string_value(json_object_get(layer, "mediaType")), LL_OCI_CHART);
    assert_int_equal(json_integer_value(json_object_get(layer, "size")), 3);
    /* Annotations: Helm's, sorted; the chart's own kept except title. */
    json_t *ann = json_object_get(man, "annotations");
    const char *want[][2] = {
        {"org.opencontainers.image.authors", "Ann (ann@example.com), Bo"},
        {"org.opencontainers.image.created", CREATED},
        {"org.opencontainers.image.description", "A tenant"},
        {"org.opencontainers.image.source", "https://git.example/chart"},
        {"org.opencontainers.image.title", "helm-tenant-chart"},
        {"org.opencontainers.image.url", "https://example.com"},
        {"org.opencontainers.image.version", "1.2.3+build.1"},
        {"zeta", "last"},
    };
    assert_int_equal(json_object_size(ann), 8);
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(ann, key, v)
    {
        assert_string_equal(key, want[i][0]);
        assert_string_equal(json_string_value(v), want[i][1]);
        i++;
    }
    /* The same chart at the same time: the same bytes. */
    assert_int_equal(ll_oci_artifact_build(&b, m, "abc", 3, CREATED), 0);
    assert_string_equal(a.manifest_digest, b.manifest_digest);
    json_decref(man);
    json_decref(m);
    ll_oci_artifact_free(&a);
    ll_oci_artifact_free(&b);
}

static char *read_all(const char *path, size_t *len)
{
    char *text = NULL;
    if (ll_read_file(&text, len, path, 1 << 20) < 0)
        fail_msg("cannot read %s", path);
    return text;
}

static void expect_blob(const char *dir, const char *digest, const char *data, size_t len)
{
    char path[600], got[80];
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, digest + 7);
    char *text = read_all(path, &n);
    assert_int_equal(n, len);
    assert_memory_equal(text, data, len);
    ll_oci_digest(got, text, n);
    assert_string_equal(got, digest);
    free(text);
}

static void test_layout(void **state)
{
    (void)state;
    char dir[256], path[600];
    ll_oci_artifact a, b;
    json_t *m1 = meta("1.2.3"), *m2 = meta("1.2.4"), *d = NULL;
    size_t n = 0;

    assert_int_equal(ut_temp_dir(dir, sizeof(dir), "oci"), 0);
    strcat(dir, "/charts");
    assert_int_equal(ll_oci_artifact_build(&a, m1, "one", 3, CREATED), 0);
    assert_int_equal(ll_oci_artifact_build(&b, m2, "two!", 4, CREATED), 0);
    assert_int_equal(ll_oci_layout_get(&d, dir, "1.2.3"), LL_ENOTFOUND);
    assert_int_equal(ll_oci_layout_put(dir, &a, "one", 3), 0);
    assert_int_equal(ll_oci_layout_put(dir, &a, "one", 3), 0); /* again: same index */
    assert_int_equal(ll_oci_layout_put(dir, &b, "two!", 4), 0);
    expect_blob(dir, a.layer_digest, "one", 3);
    expect_blob(dir, a.config_digest, a.config, a.config_len);
    expect_blob(dir, a.manifest_digest, a.manifest, a.manifest_len);
    expect_blob(dir, b.layer_digest, "two!", 4);
    snprintf(path, sizeof(path), "%s/oci-layout", dir);
    char *layout = read_all(path, &n);
    assert_string_equal(layout, "{\"imageLayoutVersion\":\"1.0.0\"}");
    free(layout);
    snprintf(path, sizeof(path), "%s/index.json", dir);
    char *text = read_all(path, &n);
    json_t *index = json_loadb(text, n, 0, NULL);
    free(text);
    assert_int_equal(json_array_size(json_object_get(index, "manifests")), 2);
    json_decref(index);
    assert_int_equal(ll_oci_layout_get(&d, dir, "1.2.3"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "digest")), a.manifest_digest);
    assert_int_equal(json_integer_value(json_object_get(d, "size")), (json_int_t)a.manifest_len);
    assert_string_equal(json_string_value(json_object_get(d, "mediaType")), LL_OCI_MANIFEST);
    json_decref(d);
    json_decref(m1);
    json_decref(m2);
    ll_oci_artifact_free(&a);
    ll_oci_artifact_free(&b);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(ut_remove_tree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_artifact_like_helm),
        cmocka_unit_test(test_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of lib/chart.c: packaged charts made here with libarchive's
 * writer, good and bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "landlord/chart.h"
#include "landlord/error.h"

#define NAME "helm-tenant-chart"

static const char *CHART_YAML = "apiVersion: v2\n"
                                "name: helm-tenant-chart\n"
                                "description: A tenant\n"
                                "type: application\n"
                                "version: 1.2.3\n"
                                "appVersion: \"2.0.1\"\n";

typedef struct {
    const char *path;
    const char *content; /* NULL: a folder; "->x": a symlink to x */
} file;

/* A .tgz (or a plain tar when !gzip) of files into buf; returns its size. */
static size_t pack(char *buf, size_t cap, const file *files, size_t n, int gzip)
{
    struct archive *a = archive_write_new();
    size_t used = 0;
    if (gzip)
        archive_write_add_filter_gzip(a);
    archive_write_set_format_ustar(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, files[i].path);
        if (!files[i].content) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else if (strncmp(files[i].content, "->", 2) == 0) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, files[i].content + 2);
            archive_entry_set_perm(e, 0777);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)strlen(files[i].content));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (files[i].content && strncmp(files[i].content, "->", 2) != 0)
            archive_write_data(a, files[i].content, strlen(files[i].content));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return used;
}

static char buf[1 << 20];

static void expect_refused(const file *files, size_t n, int gzip, const char *words)
{
    json_t *meta = NULL;
    size_t len = pack(buf, sizeof(buf), files, n, gzip);
    int error = ll_chart_read(&meta, buf, len, NAME);
    if (error != LL_EINVALID || !strstr(ll_error_last()->message, words))
        fail_msg("expected a refusal saying '%s', got %d: %s", words, error,
                 ll_error_last()->message);
    assert_null(meta);
    assert_string_equal(ll_error_last()->kind, "invalid-chart");
}

static void test_a_good_chart(void **state)
{
    (void)state;
    file files[] = {{NAME "/Chart.yaml", CHART_YAML},
                    {NAME "/values.yaml", "replicaCount: 1\n"},
                    {NAME "/templates/", NULL},
                    {NAME "/templates/deployment.yaml", "kind: Deployment\n"}};
    json_t *meta = NULL;
    size_t len = pack(buf, sizeof(buf), files, 4, 1);
    assert_int_equal(ll_chart_read(&meta, buf, len, NAME), 0);
    assert_string_equal(json_string_value(json_object_get(meta, "name")), NAME);
    assert_string_equal(json_string_value(json_object_get(meta, "version")), "1.2.3");
    assert_string_equal(json_string_value(json_object_get(meta, "appVersion")), "2.0.1");
    assert_string_equal(json_string_value(json_object_get(meta, "apiVersion")), "v2");
    json_decref(meta);
}

static void test_not_gzip_or_not_tar(void **state)
{
    (void)state;
    file files[] = {{NAME "/Chart.yaml", CHART_YAML}};
    expect_refused(files, 1, 0, "not gzip");
    json_t *meta = NULL;
    const char junk[] = "this is not an archive at all, just text";
    assert_int_equal(ll_chart_read(&meta, junk, sizeof(junk), NAME), LL_EINVALID);
    assert_null(meta);
}

static void test_paths_that_escape(void **state)
{
    (void)state;
    file up[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/../../etc/passwd", "x\n"}};
    expect_refused(up, 2, 1, "'..'");
    file absolute[] = {{NAME "/Chart.yaml", CHART_YAML}, {"/etc/passwd", "x\n"}};
    expect_refused(absolute, 2, 1, "absolute");
    file link[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/evil", "->/etc/passwd"}};
    expect_refused(link, 2, 1, "neither a file nor a folder");
    file two_tops[] = {{NAME "/Chart.yaml", CHART_YAML}, {"other/values.yaml", "a: 1\n"}};
    expect_refused(two_tops, 2, 1, "outside its one top folder");
}

static void test_chart_yaml_rules(void **state)
{
    (void)state;
    file none[] = {{NAME "/values.yaml", "a: 1\n"}};
    expect_refused(none, 1, 1, "no " NAME "/Chart.yaml");
    file v1[] = {{NAME "/Chart.yaml", "apiVersion: v1\nname: helm-tenant-chart\nversion: 1.2.3\n"}};
    expect_refused(v1, 1, 1, "apiVersion must be v2");
    file other[] = {{"podinfo/Chart.yaml", "apiVersion: v2\nname: podinfo\nversion: 1.2.3\n"}};
    expect_refused(other, 1, 1, "not the tenant chart");
    file bad_version[] = {
        {NAME "/Chart.yaml", "apiVersion: v2\nname: helm-tenant-chart\nversion: 1.2\n"}};
    expect_refused(bad_version, 1, 1, "not a semantic version");
    file not_yaml[] = {{NAME "/Chart.yaml", "apiVersion: [v2\n"}};
    expect_refused(not_yaml, 1, 1, "not valid YAML");
    file not_mapping[] = {{NAME "/Chart.yaml", "- a\n- b\n"}};
    expect_refused(not_mapping, 1, 1, "one mapping");
    file wrong_top[] = {{"chart/Chart.yaml", CHART_YAML}};
    expect_refused(wrong_top, 1, 1, "top folder must be its name");
}

static void test_semver(void **state)
{
    (void)state;
    const char *good[] = {"0.0.1",
                          "1.2.3",
                          "10.20.30",
                          "1.0.0-alpha",
                          "1.0.0-alpha.1",
                          "1.0.0+20130313144700",
                          "1.0.0-beta+exp.sha.5114f85",
                          "1.0.0-0.3.7"};
    const char *bad[] = {"1",      "1.2",      "01.2.3", "1.02.3",  "1.2.03", "1.2.3-",
                         "1.2.3+", "1.2.3-01", "v1.2.3", "1.2.3.4", "",       "1.2.x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ll_semver_valid(good[i]))
            fail_msg("%s should be valid", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ll_semver_valid(bad[i]))
            fail_msg("%s should be refused", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_chart),
        cmocka_unit_test(test_not_gzip_or_not_tar),
        cmocka_unit_test(test_paths_that_escape),
        cmocka_unit_test(test_chart_yaml_rules),
        cmocka_unit_test(test_semver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

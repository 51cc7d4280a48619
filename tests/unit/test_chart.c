/* Unit tests of lib/charts/chart.c: packaged charts made here with libarchive's
 * writer, good and bad: paths, Chart.yaml rules, the caps, what follows
 * the tar's end marker and the gzip stream, versions. */
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

static int tar_format = ARCHIVE_FORMAT_TAR_USTAR; /* what pack() writes */

/* A .tgz (or a plain tar when !gzip) of files into buf; returns its size. */
static size_t pack(char *buf, size_t cap, const file *files, size_t n, int gzip)
{
    struct archive *a = archive_write_new();
    size_t used = 0;
    if (gzip)
        archive_write_add_filter_gzip(a);
    archive_write_set_format(a, tar_format);
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

/* gzip of data, then zeros zero bytes, then junk (may be NULL), as one
 * gzip member, into out; returns its size. */
static size_t gzip_of(char *out, size_t cap, const char *data, size_t len, size_t zeros,
                      const char *junk)
{
    static char zero_block[65536];
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    size_t used = 0;
    archive_write_add_filter_gzip(a);
    archive_write_set_format_raw(a);
    assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
    archive_entry_set_pathname(e, "data");
    archive_entry_set_filetype(e, AE_IFREG);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, data, len);
    for (size_t left = zeros; left > 0;) {
        size_t n = left < sizeof(zero_block) ? left : sizeof(zero_block);
        assert_int_equal(archive_write_data(a, zero_block, n), (la_ssize_t)n);
        left -= n;
    }
    if (junk)
        archive_write_data(a, junk, strlen(junk));
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    archive_entry_free(e);
    return used;
}

static char tar_buf[1 << 20], gz_buf[4 << 20];

static int read_with(const char *data, size_t len, const ll_chart_limits *lim)
{
    json_t *meta = NULL;
    int error = ll_chart_read_limited(&meta, data, len, NAME, lim);
    if (error == 0) {
        assert_non_null(meta);
        json_decref(meta);
    } else {
        assert_null(meta);
        assert_int_equal(error, LL_EINVALID);
        assert_string_equal(ll_error_last()->kind, "invalid-chart");
    }
    return error;
}

static void expect_message(const char *words)
{
    if (!strstr(ll_error_last()->message, words))
        fail_msg("expected a refusal saying '%s', got: %s", words, ll_error_last()->message);
}

static void test_caps(void **state)
{
    (void)state;
    static char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    file files[] = {{NAME "/Chart.yaml", CHART_YAML},
                    {NAME "/values.yaml", "a: 1\n"},
                    {NAME "/templates/", NULL},
                    {NAME "/templates/big.yaml", big}};
    size_t len = pack(buf, sizeof(buf), files, 4, 1);
    ll_chart_limits roomy = {1 << 20, 1 << 20, 100};
    assert_int_equal(read_with(buf, len, &roomy), 0);

    ll_chart_limits few = {1 << 20, 1 << 20, 3};
    assert_int_equal(read_with(buf, len, &few), LL_EINVALID);
    expect_message("more than 3 entries (chart-max-entries)");

    ll_chart_limits small_entry = {1 << 20, 2048, 100};
    assert_int_equal(read_with(buf, len, &small_entry), LL_EINVALID);
    expect_message("big.yaml' is larger than 2048 bytes (chart-max-entry-size)");

    /* The whole stream counts: headers and padding too (4 entries of a
     * ustar archive are well over 4 KiB). */
    ll_chart_limits small_stream = {4096, 1 << 20, 100};
    assert_int_equal(read_with(buf, len, &small_stream), LL_EINVALID);
    expect_message("unpacks to more than 4096 bytes (chart-max-unpacked)");
}

static void test_after_the_end_marker(void **state)
{
    (void)state;
    file files[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/values.yaml", "a: 1\n"}};
    size_t tar_len = pack(tar_buf, sizeof(tar_buf), files, 2, 0);
    ll_chart_limits lim = {1 << 20, 1 << 20, 100};
    size_t len;

    /* Zero padding (GNU tar pads to 10240-byte records) is fine. */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 10240, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), 0);

    /* Zeros past the cap: refused while inflating, not after. */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 3u << 20, NULL);
    assert_true(len < 64 * 1024);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("chart-max-unpacked");

    /* Anything else after the end marker, near it or far from it. */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 0, "hidden");
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("after the tar's end marker");
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 300000, "hidden");
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("after the tar's end marker");

    /* One zero block (where the end marker starts: the first all-zero
     * block), then another entry: refused too. */
    static const char zero512[512];
    size_t end = 0;
    while (end < tar_len && memcmp(tar_buf + end, zero512, 512) != 0)
        end += 512;
    assert_true(end > 0 && end < tar_len);
    file more[] = {
        {NAME "/Chart.yaml", "apiVersion: v2\nname: helm-tenant-chart\nversion: 9.9.9\n"}};
    char *two = malloc(2u << 20);
    assert_non_null(two);
    memcpy(two, tar_buf, end + 512);
    size_t more_len = pack(two + end + 512, (2u << 20) - end - 512, more, 1, 0);
    len = gzip_of(gz_buf, sizeof(gz_buf), two, end + 512 + more_len, 0, NULL);
    free(two);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("after the tar's end marker");

    /* Bytes after the gzip stream. */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 0, NULL);
    memcpy(gz_buf + len, "junk", 4);
    assert_int_equal(read_with(gz_buf, len + 4, &lim), LL_EINVALID);
    expect_message("4 bytes after the end of its gzip stream");

    /* Two gzip members make one stream (gzip and Helm read it so). */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, 512, 0, NULL);
    len += gzip_of(gz_buf + len, sizeof(gz_buf) - len, tar_buf + 512, tar_len - 512, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), 0);
    /* ... so a second member counts as data after the end marker. */
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, tar_len, 0, NULL);
    len += gzip_of(gz_buf + len, sizeof(gz_buf) - len, "x", 1, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("after the tar's end marker");
}

static void test_one_chart_yaml(void **state)
{
    (void)state;
    const char *other = "apiVersion: v2\nname: other-chart\nversion: 6.6.6\n";
    file twice[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/Chart.yaml", other}};
    expect_refused(twice, 2, 1, "Chart.yaml twice");
    file same_twice[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/Chart.yaml", CHART_YAML}};
    expect_refused(same_twice, 2, 1, "Chart.yaml twice");
    file dot[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/./Chart.yaml", other}};
    expect_refused(dot, 2, 1, "'.' or empty segment");
    file empty[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "//Chart.yaml", other}};
    expect_refused(empty, 2, 1, "'.' or empty segment");
    file backslash[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME "/x\\Chart.yaml", other}};
    expect_refused(backslash, 2, 1, "'\\'");
    file values_twice[] = {{NAME "/Chart.yaml", CHART_YAML},
                           {NAME "/values.yaml", "a: 1\n"},
                           {NAME "/values.yaml", "a: 2\n"}};
    expect_refused(values_twice, 3, 1, "values.yaml' twice");
    file top_file[] = {{NAME "/Chart.yaml", CHART_YAML}, {NAME, "x"}};
    expect_refused(top_file, 2, 1, "outside its top folder");

    /* A subchart's Chart.yaml is its own, and folders may repeat. */
    file sub[] = {{NAME "/", NULL},
                  {NAME "/Chart.yaml", CHART_YAML},
                  {NAME "/charts/", NULL},
                  {NAME "/charts/", NULL},
                  {NAME "/charts/db/Chart.yaml", "apiVersion: v2\nname: db\nversion: 0.1.0\n"}};
    json_t *meta = NULL;
    size_t len = pack(buf, sizeof(buf), sub, 5, 1);
    assert_int_equal(ll_chart_read(&meta, buf, len, NAME), 0);
    assert_string_equal(json_string_value(json_object_get(meta, "version")), "1.2.3");
    json_decref(meta);
}

static void test_hard_links(void **state)
{
    (void)state;
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    size_t used = 0;
    archive_write_add_filter_gzip(a);
    archive_write_set_format_ustar(a);
    assert_int_equal(archive_write_open_memory(a, buf, sizeof(buf), &used), ARCHIVE_OK);
    archive_entry_set_pathname(e, NAME "/Chart.yaml");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(CHART_YAML));
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_data(a, CHART_YAML, strlen(CHART_YAML));
    archive_entry_clear(e);
    archive_entry_set_pathname(e, NAME "/values.yaml");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_hardlink(e, "/etc/passwd");
    archive_entry_set_size(e, 0);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_close(a);
    archive_write_free(a);
    archive_entry_free(e);
    json_t *meta = NULL;
    assert_int_equal(ll_chart_read(&meta, buf, used, NAME), LL_EINVALID);
    expect_message("tar type '1', which is neither a file nor a folder");
}

/* A ustar header block: name, type flag, size; checksum set. */
static void raw_header(char out[512], const char *name, char type, size_t size)
{
    unsigned sum = 0;
    memset(out, 0, 512);
    snprintf(out, 100, "%s", name);
    memcpy(out + 100, "0000644", 8);
    memcpy(out + 108, "0000000", 8);
    memcpy(out + 116, "0000000", 8);
    snprintf(out + 124, 12, "%011o", (unsigned)(size & 07777777777u));
    memcpy(out + 136, "14543470000", 12);
    out[156] = type;
    memcpy(out + 257, "ustar", 6);
    memcpy(out + 263, "00", 2);
    memset(out + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)out[i];
    snprintf(out + 148, 8, "%06o", sum);
    out[155] = ' ';
}

/* Appends an entry (header and n bytes of body, padded) to the tar at
 * tar[at]; returns where the next one goes. */
static size_t raw_entry_n(char *tar, size_t at, const char *name, char type, const char *body,
                          size_t n)
{
    raw_header(tar + at, name, type, n);
    memset(tar + at + 512, 0, (n + 511) / 512 * 512);
    memcpy(tar + at + 512, body, n);
    return at + 512 + (n + 511) / 512 * 512;
}

static size_t raw_entry(char *tar, size_t at, const char *name, char type, const char *body)
{
    size_t n = strlen(body);
    raw_header(tar + at, name, type, n);
    memset(tar + at + 512, 0, (n + 511) / 512 * 512);
    memcpy(tar + at + 512, body, n);
    return at + 512 + (n + 511) / 512 * 512;
}

static void test_entry_types_helm_reads_otherwise(void **state)
{
    (void)state;
    ll_chart_limits lim = {1 << 20, 1 << 20, 100};
    const char *evil = "apiVersion: v2\nname: helm-tenant-chart\nversion: 6.6.6\n";
    /* GNU volume headers, Solaris ACLs, Sun pax headers: libarchive reads
     * them as part of the next entry, Go's archive/tar as entries of their
     * own (a file to Helm).  Devices and FIFOs, contiguous files, GNU dump
     * folders and multi-volume parts are refused alike. */
    const char types[] = {'V', 'A', 'X', 'D', 'M', 'N', '3', '4', '6', '7', 'E'};
    for (size_t i = 0; i < sizeof(types); i++) {
        memset(tar_buf, 0, 8192);
        size_t at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
        at = raw_entry(tar_buf, at, NAME "/Chart.yaml", types[i], evil);
        size_t len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
        assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
        char words[40];
        snprintf(words, sizeof(words), "tar type '%c'", types[i]);
        expect_message(words);
    }
    /* A volume header smuggling a second Chart.yaml past libarchive: its
     * body is, to libarchive, the header of a file whose data swallows
     * the Chart.yaml that Go's reader (and Helm) reads next. */
    {
        char pad[512];
        memset(tar_buf, 0, 8192);
        raw_header(pad, NAME "/pad", '0', 1024);
        size_t at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
        at = raw_entry_n(tar_buf, at, NAME "/v", 'V', pad, sizeof(pad));
        at = raw_entry(tar_buf, at, NAME "/Chart.yaml", '0', evil);
        size_t len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
        assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
        expect_message("tar type 'V'");
    }
    /* The same stream with a regular file: refused as Chart.yaml twice. */
    memset(tar_buf, 0, 8192);
    size_t at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
    at = raw_entry(tar_buf, at, NAME "/Chart.yaml", '0', evil);
    size_t len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("Chart.yaml twice");
    /* And with one: fine (old-style '\0' type flag too). */
    memset(tar_buf, 0, 8192);
    at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '\0', CHART_YAML);
    at = raw_entry(tar_buf, at, NAME "/values.yaml", '0', "a: 1\n");
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), 0);

    /* A folder given data by a pax "size": Go reads no body, libarchive
     * does. */
    memset(tar_buf, 0, 8192);
    at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
    at = raw_entry(tar_buf, at, "PaxHeaders/templates", 'x', "13 size=1024\n");
    at = raw_entry(tar_buf, at, NAME "/templates/", '5', "");
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 2048, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("folder whose pax header gives it data");
    /* A regular file with a trailing '/': a folder to libarchive, a file
     * to Go; with data, refused. */
    memset(tar_buf, 0, 8192);
    at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
    at = raw_entry(tar_buf, at, NAME "/values.yaml/", '0', "a: 1\n");
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("folder that declares data");
    /* Two long names for one entry (Go takes the last, libarchive the
     * first), or a long name and a pax path. */
    for (int mixed = 0; mixed < 2; mixed++) {
        memset(tar_buf, 0, 8192);
        at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
        if (mixed)
            at = raw_entry(tar_buf, at, "PaxHeaders/x", 'x', "28 path=helm-tenant-chart/a\n");
        else
            at = raw_entry(tar_buf, at, "././@LongLink", 'L', NAME "/a.yaml");
        at = raw_entry(tar_buf, at, "././@LongLink", 'L', NAME "/Chart.yaml");
        at = raw_entry(tar_buf, at, NAME "/b.yaml", '0', evil);
        len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
        assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
        expect_message("more than one pax or GNU long name header");
    }
    /* A GNU.sparse.name without a sparse map: the path to libarchive,
     * not to Go. */
    memset(tar_buf, 0, 8192);
    at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
    at = raw_entry(tar_buf, at, "PaxHeaders/b", 'x',
                   "45 GNU.sparse.name=helm-tenant-chart/zz.yaml\n");
    at = raw_entry(tar_buf, at, NAME "/b.yaml", '0', "a: 1\n");
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    expect_message("GNU sparse records");
    /* A malformed pax header. */
    memset(tar_buf, 0, 8192);
    at = raw_entry(tar_buf, 0, "PaxHeaders/Chart.yaml", 'x', "99 size=1\n");
    at = raw_entry(tar_buf, at, NAME "/Chart.yaml", '0', CHART_YAML);
    len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
    assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
    /* A pax "size" must be a decimal number that fits in 63 bits. */
    static const char *const bad_sizes[] = {"8 size=\n", "11 size=1x\n", "11 size=-1\n",
                                            "29 size=99999999999999999999\n"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        memset(tar_buf, 0, 8192);
        at = raw_entry(tar_buf, 0, NAME "/Chart.yaml", '0', CHART_YAML);
        at = raw_entry(tar_buf, at, "PaxHeaders/b", 'x', bad_sizes[i]);
        at = raw_entry(tar_buf, at, NAME "/b.yaml", '0', "a: 1\n");
        len = gzip_of(gz_buf, sizeof(gz_buf), tar_buf, at + 1024, 0, NULL);
        assert_int_equal(read_with(gz_buf, len, &lim), LL_EINVALID);
        expect_message("malformed pax header");
    }
}

static void test_pax_and_gnu_long_names(void **state)
{
    (void)state;
    char long_path[300];
    snprintf(long_path, sizeof(long_path), NAME "/templates/%0200d.yaml", 7);
    file files[] = {{NAME "/Chart.yaml", CHART_YAML}, {long_path, "kind: ConfigMap\n"}};
    const int formats[] = {ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE,
                           ARCHIVE_FORMAT_TAR_GNUTAR};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        tar_format = formats[i];
        json_t *meta = NULL;
        size_t len = pack(buf, sizeof(buf), files, 2, 1);
        if (ll_chart_read(&meta, buf, len, NAME) != 0)
            fail_msg("format %d: %s", formats[i], ll_error_last()->message);
        json_decref(meta);
        /* The same long path twice is still twice. */
        file twice[] = {{NAME "/Chart.yaml", CHART_YAML}, {long_path, "a"}, {long_path, "b"}};
        expect_refused(twice, 3, 1, "twice");
    }
    tar_format = ARCHIVE_FORMAT_TAR_USTAR;
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
                          "1.0.0-0.3.7",
                          "18446744073709551615.18446744073709551615.18446744073709551615",
                          "1.0.0-18446744073709551615",
                          "1.0.0+99999999999999999999999",
                          "1.0.0-alpha.99999999999999999999999x"};
    const char *bad[] = {"1",
                         "1.2",
                         "01.2.3",
                         "1.02.3",
                         "1.2.03",
                         "1.2.3-",
                         "1.2.3+",
                         "1.2.3-01",
                         "v1.2.3",
                         "1.2.3.4",
                         "",
                         "1.2.x",
                         "99999999999999999999999.0.0",
                         "18446744073709551616.0.0",
                         "0.18446744073709551616.0",
                         "0.0.18446744073709551616",
                         "1.0.0-18446744073709551616",
                         "1.0.0-alpha.99999999999999999999999"};
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
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_after_the_end_marker),
        cmocka_unit_test(test_one_chart_yaml),
        cmocka_unit_test(test_hard_links),
        cmocka_unit_test(test_entry_types_helm_reads_otherwise),
        cmocka_unit_test(test_pax_and_gnu_long_names),
        cmocka_unit_test(test_semver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

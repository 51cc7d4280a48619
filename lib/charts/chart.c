/* chart.c - reading a packaged Helm chart (see chart.h).
 *
 * One pass over the upload, in memory, through two libarchive readers in a
 * pipe: `gz` (the raw format behind the gzip filter) inflates the upload
 * block by block, and `tar` (tar formats, no filter) reads its entries
 * from what gz gave, through feed_read().  Every inflated byte is counted
 * against the unpacked cap as gz produces it, so a bomb stops at the cap:
 * nothing is inflated beyond it, and nothing but Chart.yaml is kept.  The
 * last two blocks handed to tar stay in `feed` (tar may have read ahead of
 * what it consumed), and every block handed to tar also goes through a
 * scanner that frames the tar as Go's archive/tar (Helm's reader) does
 * (chart_tar.c).
 *
 * Each entry is checked when its header is read: the entry count, the
 * size it declares, its path, its type.  Paths are held to what Helm's
 * loader (pkg/chart/loader/archive.go) makes of them: it drops the first
 * segment, splits on '\' when a name holds one, cleans "." and empty
 * segments, skips folders, and reads a file seen twice twice (for
 * Chart.yaml the last one's fields win).  So '\', "." and empty segments
 * are refused, and a file name seen twice is refused (kept as 64-bit
 * hashes: a collision can only refuse, never let a duplicate through):
 * exactly one Chart.yaml at the root.  When tar reaches the end marker,
 * the rest of the stream is read too, still counted: after the marker
 * only zeros (tar padding), and the upload must end where its last gzip
 * member ends.  Chart.yaml (capped at 1 MiB) is parsed with libyaml once
 * the pass is done.
 *
 * Pure: no state beyond the call; thread-safe.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <archive.h>
#include <archive_entry.h>

#include "landlord/chart.h"
#include "landlord/error.h"
#include "landlord/template.h"
#include "chart_tar.h"

#define CHART_YAML_MAX (1u << 20)
#define PATH_MAX_LEN   4096
#define FEED_CHUNK     (64u << 10)

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

/* --- semantic versions ---------------------------------------------------------------- */

/* 1 when the n digits at p make a number that fits in 64 bits unsigned. */
static int fits_u64(const char *p, size_t n)
{
    static const char max[] = "18446744073709551615";
    return n < sizeof(max) - 1 || (n == sizeof(max) - 1 && memcmp(p, max, n) <= 0);
}

/* A number of semver: digits, no leading zero unless "0", fitting in 64
 * bits. */
static const char *number(const char *p)
{
    const char *start = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == start || (p - start > 1 && *start == '0') || !fits_u64(start, (size_t)(p - start)))
        return NULL;
    return p;
}

/* Dot-separated identifiers of [0-9A-Za-z-]; numeric ones without leading
 * zeros and fitting in 64 bits when numeric_rule (pre-release). */
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
        if (numeric_rule && digits &&
            ((p - start > 1 && *start == '0') || !fits_u64(start, (size_t)(p - start))))
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

/* --- the inflated stream --------------------------------------------------------------- */

typedef struct feed {
    struct archive *gz;
    const char *block; /* what gz gave that is not handed to tar yet */
    size_t left;
    unsigned long long produced, cap; /* bytes gz inflated; the cap on them */
    unsigned long long handed;        /* bytes handed to tar */
    int over, eof, failed;            /* past the cap; gz at its end; gz failed */
    char error[LL_ERROR_MSG_MAX];     /* gz's message when failed */
    char *buf[2];                     /* the last two blocks handed to tar */
    size_t len[2];
    int cur;           /* buf[cur] is the last */
    ll_tar_scan frame; /* what tar is handed, framed as Helm frames it */
} feed;

/* Takes gz's next block into f->block; at the end sets f->eof.  -1 when gz
 * fails or the stream passes the cap (f->failed, f->over). */
static int inflate_next(feed *f)
{
    const void *p;
    size_t n = 0;
    la_int64_t offset;
    while (!n) {
        int rc = archive_read_data_block(f->gz, &p, &n, &offset);
        if (rc == ARCHIVE_EOF) {
            f->eof = 1;
            return 0;
        }
        if (rc < ARCHIVE_WARN) {
            f->failed = 1;
            snprintf(f->error, sizeof(f->error), "%s",
                     archive_error_string(f->gz) ?: "cannot inflate");
            return -1;
        }
    }
    f->produced += n;
    if (f->produced > f->cap) {
        f->over = 1;
        return -1;
    }
    f->block = p;
    f->left = n;
    return 0;
}

/* tar's read callback: the next inflated bytes, at most FEED_CHUNK, kept
 * in feed until two more calls. */
static la_ssize_t feed_read(struct archive *a, void *payload, const void **out)
{
    feed *f = payload;
    while (!f->left && !f->eof) {
        if (inflate_next(f) < 0) {
            archive_set_error(a, EILSEQ, "%s", f->over ? "past the unpacked cap" : f->error);
            return -1;
        }
    }
    if (!f->left)
        return 0;
    size_t n = f->left < FEED_CHUNK ? f->left : FEED_CHUNK;
    if (ll_tar_scan_feed(&f->frame, (const unsigned char *)f->block, n) < 0) {
        archive_set_error(a, EILSEQ, "%s", f->frame.why);
        return -1;
    }
    f->cur ^= 1;
    memcpy(f->buf[f->cur], f->block, n);
    f->len[f->cur] = n;
    f->block += n;
    f->left -= n;
    f->handed += n;
    *out = f->buf[f->cur];
    return (la_ssize_t)n;
}

static int all_zero(const char *p, size_t n)
{
    static const char zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        if (memcmp(p, zeros, k) != 0)
            return 0;
        p += k;
        n -= k;
    }
    return 1;
}

static int over_cap(const feed *f)
{
    return refuse("the chart archive unpacks to more than %llu bytes (chart-max-unpacked)", f->cap);
}

/* The refusal when tar failed: past the cap, framing Helm would read
 * otherwise, or what libarchive says, after what. */
static int read_failed(const feed *f, struct archive *tar, const char *what)
{
    if (f->over)
        return over_cap(f);
    if (f->frame.why[0])
        return refuse("the chart archive holds %s", f->frame.why);
    return refuse("%s: %s", what, archive_error_string(tar) ?: "unreadable");
}

/* Whether what tar read ahead past `consumed` bytes, in the two buffers
 * (the current one handed out after `last` bytes, the other after
 * `before`), is all zeros. */
static int read_ahead_zero(const feed *f, unsigned long long consumed, unsigned long long last,
                           unsigned long long before)
{
    if (consumed < last &&
        !all_zero(f->buf[f->cur ^ 1] + (consumed - before), (size_t)(last - consumed)))
        return 0;
    if (consumed > last)
        return all_zero(f->buf[f->cur] + (consumed - last), (size_t)(f->handed - consumed));
    return all_zero(f->buf[f->cur], f->len[f->cur]);
}

/* Inflates the rest of the gzip stream: 1 when it is all zeros, 0 when it
 * holds data, or the refusal when it is damaged or past the cap. */
static int stream_rest_zero(feed *f)
{
    for (;;) {
        if (!all_zero(f->block, f->left))
            return 0;
        f->left = 0;
        if (f->eof)
            return 1;
        if (inflate_next(f) < 0)
            return f->over ? over_cap(f)
                           : refuse("the chart archive's gzip stream is damaged: %s", f->error);
    }
}

/* Once tar reached its end marker, having consumed `consumed` bytes: what
 * it read ahead, and the rest of the stream, must be zeros; the upload
 * (len bytes) must end with the gzip stream. */
static int check_rest(feed *f, unsigned long long consumed, size_t len)
{
    unsigned long long last = f->handed - f->len[f->cur];
    unsigned long long before = last - f->len[f->cur ^ 1];
    int zero;
    if (f->frame.state != SCAN_END && (f->frame.state != SCAN_HEADER || f->frame.have))
        return refuse("the chart archive's tar stream ends inside an entry");
    if (consumed > f->handed || consumed < before)
        return refuse("the chart archive's end could not be told from its contents");
    zero = read_ahead_zero(f, consumed, last, before) ? stream_rest_zero(f) : 0;
    if (zero < 0)
        return zero;
    if (!zero)
        return refuse("the chart archive holds data after the tar's end marker (only zero "
                      "padding may follow it)");
    la_int64_t taken = archive_filter_bytes(f->gz, -1);
    if (taken < 0 || (unsigned long long)taken != len)
        return refuse("the upload holds %llu bytes after the end of its gzip stream",
                      taken < 0 ? 0ull : (unsigned long long)len - (unsigned long long)taken);
    return 0;
}

/* --- paths ----------------------------------------------------------------------------- */

/* Hashes of the names seen (as Helm names them: the path after the top
 * folder), open addressing; 0 marks a free slot. */
typedef struct seen {
    uint64_t *slots;
    size_t cap, count;
} seen;

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static int seen_has(const seen *st, uint64_t h)
{
    if (!st->cap)
        return 0;
    for (size_t j = h & (st->cap - 1); st->slots[j]; j = (j + 1) & (st->cap - 1))
        if (st->slots[j] == h)
            return 1;
    return 0;
}

/* 1 when added, 0 when seen before, -1 out of memory. */
static int seen_add(seen *st, uint64_t h)
{
    if (2 * (st->count + 1) > st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 256;
        uint64_t *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < st->cap; i++) {
            if (!st->slots[i])
                continue;
            size_t j = st->slots[i] & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = st->slots[i];
        }
        free(st->slots);
        st->slots = slots;
        st->cap = cap;
    }
    size_t j = h & (st->cap - 1);
    while (st->slots[j]) {
        if (st->slots[j] == h)
            return 0;
        j = (j + 1) & (st->cap - 1);
    }
    st->slots[j] = h;
    st->count++;
    return 1;
}

/* Checks one entry's path; *top gets the first path segment of the first
 * entry and must match for the others. */
static int check_path(const char *path, char *top, size_t top_cap)
{
    size_t n = strcspn(path, "/"), len = strlen(path);
    if (!path[0] || path[0] == '/')
        return refuse("the chart archive holds an absolute or empty path '%.200s'", path);
    if (len > PATH_MAX_LEN)
        return refuse("the chart archive holds a path longer than %d bytes", PATH_MAX_LEN);
    if (strchr(path, '\\'))
        return refuse("the chart archive holds a path with '\\', which Helm reads as a "
                      "separator: '%.200s'",
                      path);
    for (const char *p = path; *p;) {
        size_t seg = strcspn(p, "/");
        if (seg == 2 && p[0] == '.' && p[1] == '.')
            return refuse("the chart archive holds a path climbing out with '..': '%.200s'", path);
        if ((seg == 1 && p[0] == '.') || (seg == 0 && p[1]))
            return refuse("the chart archive holds a path with a '.' or empty segment, which "
                          "Helm cleans away: '%.200s'",
                          path);
        p += seg;
        if (*p == '/')
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

/* --- the archive ----------------------------------------------------------------------- */

/* One read of an upload: the two readers and what the entries told so
 * far.  Everything here is freed by reading_free(). */
typedef struct reading {
    const ll_chart_limits *lim;
    struct archive *tar;
    feed f;
    seen files, folders; /* names (as Helm names them) of files and folders */
    char top[256];       /* the top folder, from the first entry */
    char *yaml;          /* Chart.yaml, once read */
    size_t yaml_len;
    unsigned long long entries, declared; /* entries read; the sizes they declare */
} reading;

static void reading_free(reading *rd)
{
    archive_read_free(rd->tar);
    archive_read_free(rd->f.gz);
    free(rd->f.buf[0]);
    free(rd->f.buf[1]);
    free(rd->f.frame.pax);
    free(rd->files.slots);
    free(rd->folders.slots);
    free(rd->yaml);
}

/* Opens gz on the upload and tar on what gz inflates. */
static int open_archive(reading *rd, const void *data, size_t len)
{
    struct archive_entry *entry;
    feed *f = &rd->f;
    f->cap = rd->lim->unpacked;
    f->frame.pax_size = -1;
    f->gz = archive_read_new();
    rd->tar = archive_read_new();
    f->buf[0] = malloc(FEED_CHUNK);
    f->buf[1] = malloc(FEED_CHUNK);
    if (!f->gz || !rd->tar || !f->buf[0] || !f->buf[1])
        return ll_error_set(-1, "out of memory");
    /* gzip only, tar only: what helm package makes. */
    archive_read_support_filter_gzip(f->gz);
    archive_read_support_format_raw(f->gz);
    if (archive_read_open_memory(f->gz, data, len) != ARCHIVE_OK ||
        archive_read_next_header(f->gz, &entry) != ARCHIVE_OK)
        return refuse("the upload is not a gzip-compressed tar archive: %s",
                      archive_error_string(f->gz) ?: "empty");
    if (archive_filter_code(f->gz, 0) != ARCHIVE_FILTER_GZIP)
        return refuse("the upload is not gzip-compressed%s", "");
    archive_read_support_format_tar(rd->tar);
    archive_read_support_format_gnutar(rd->tar);
    if (archive_read_open(rd->tar, f, NULL, feed_read, NULL) != ARCHIVE_OK)
        return read_failed(f, rd->tar, "the upload is not a gzip-compressed tar archive");
    return 0;
}

/* The checks of an entry's header, in order: the entry count, its path,
 * its type, the size it declares and the sum of the sizes declared. */
static int check_entry(reading *rd, struct archive_entry *entry)
{
    const ll_chart_limits *lim = rd->lim;
    const char *path = archive_entry_pathname(entry);
    mode_t type = archive_entry_filetype(entry);
    la_int64_t size = archive_entry_size(entry);
    int error;

    if (++rd->entries > lim->entries)
        return refuse("the chart archive holds more than %llu entries (chart-max-entries)",
                      lim->entries);
    if (!path)
        return refuse("the chart archive holds an entry without a readable path%s", "");
    if ((error = check_path(path, rd->top, sizeof(rd->top))) < 0)
        return error;
    if ((type != AE_IFREG && type != AE_IFDIR) || archive_entry_hardlink(entry) ||
        archive_entry_sparse_count(entry) > 0)
        return refuse("the chart archive holds '%.200s', which is neither a file nor a "
                      "folder (links and sparse files are refused)",
                      path);
    if (type == AE_IFDIR && size > 0)
        /* A regular entry named with a trailing '/', or a folder given
         * data: Go's reader would read a file there. */
        return refuse("the chart archive holds a folder that declares data: '%.200s'", path);
    if (size < 0 || (unsigned long long)size > lim->entry_size)
        return refuse("the chart archive's '%.200s' is larger than %llu bytes "
                      "(chart-max-entry-size)",
                      path, lim->entry_size);
    rd->declared += (unsigned long long)size;
    if (rd->declared > lim->unpacked)
        return over_cap(&rd->f);
    return 0;
}

/* The name as Helm's loader gives it: the path after the top folder,
 * without a trailing '/'; *out_len 0 for the top folder itself. */
static const char *helm_name(size_t *out_len, const char *path, const char *top)
{
    size_t tl = strlen(top), rest_len = strlen(path) - tl;
    const char *rest = path + tl;
    if (*rest == '/') {
        rest++;
        rest_len--;
    }
    if (rest_len && rest[rest_len - 1] == '/')
        rest_len--;
    *out_len = rest_len;
    return rest;
}

/* Reads Chart.yaml's body (size bytes, capped) into rd->yaml. */
static int read_chart_yaml(reading *rd, const char *path, la_int64_t size)
{
    if ((unsigned long long)size > CHART_YAML_MAX)
        return refuse("%.200s is larger than 1 MiB", path);
    rd->yaml = malloc((size_t)size + 1);
    la_ssize_t got = rd->yaml ? archive_read_data(rd->tar, rd->yaml, (size_t)size) : -1;
    if (got != size)
        return rd->yaml ? read_failed(&rd->f, rd->tar, "cannot read Chart.yaml from the archive")
                        : ll_error_set(-1, "out of memory");
    rd->yaml[size] = '\0';
    rd->yaml_len = (size_t)size;
    return 0;
}

/* One entry: its checks, then its name (a file or a folder, never both,
 * never twice); Chart.yaml's body is read. */
static int take_entry(reading *rd, struct archive_entry *entry)
{
    const char *path = archive_entry_pathname(entry);
    mode_t type = archive_entry_filetype(entry);
    size_t rest_len;
    int error;

    if ((error = check_entry(rd, entry)) < 0)
        return error;
    const char *rest = helm_name(&rest_len, path, rd->top);
    if (!rest_len) {
        if (type == AE_IFREG)
            return refuse("the chart archive holds a file '%.200s' outside its top folder", path);
        return 0; /* the top folder itself */
    }
    /* Helm's loader skips folders, but a name must not be both. */
    uint64_t h = name_hash(rest, rest_len);
    if (seen_has(type == AE_IFREG ? &rd->folders : &rd->files, h))
        return refuse("the chart archive holds '%.200s' as a file and as a folder", path);
    if (type != AE_IFREG)
        return seen_add(&rd->folders, h) < 0 ? ll_error_set(-1, "out of memory") : 0;
    int is_chart_yaml = rest_len == 10 && memcmp(rest, "Chart.yaml", 10) == 0;
    int added = seen_add(&rd->files, h);
    if (added < 0)
        return ll_error_set(-1, "out of memory");
    if (!added)
        return is_chart_yaml ? refuse("the chart archive holds %s/Chart.yaml twice (Helm "
                                      "would read both): exactly one is allowed",
                                      rd->top)
                             : refuse("the chart archive holds '%.200s' twice", path);
    if (!is_chart_yaml)
        return 0;
    return read_chart_yaml(rd, path, archive_entry_size(entry));
}

/* Chart.yaml parsed: one mapping.  *out_meta gets a new reference. */
static int load_chart_yaml(json_t **out_meta, const char *yaml, size_t len)
{
    json_t *meta = NULL;
    if (ll_yaml_load_json(&meta, yaml, len) < 0)
        return refuse("Chart.yaml is not valid YAML: %s", ll_error_last()->message);
    /* One document; the loader gives the documents as an array. */
    if (json_is_array(meta) && json_array_size(meta) == 1) {
        json_t *doc = json_incref(json_array_get(meta, 0));
        json_decref(meta);
        meta = doc;
    }
    if (!json_is_object(meta)) {
        json_decref(meta);
        return refuse("Chart.yaml must be one mapping%s", "");
    }
    *out_meta = meta;
    return 0;
}

/* Chart.yaml's fields: apiVersion v2, the tenant chart's name, a semantic
 * version, and the top folder named after the chart.  meta is borrowed. */
static int check_meta(const json_t *meta, const char *name, const char *top)
{
    const char *api = json_string_value(json_object_get(meta, "apiVersion"));
    const char *cname = json_string_value(json_object_get(meta, "name"));
    const char *version = json_string_value(json_object_get(meta, "version"));
    if (!api || strcmp(api, "v2") != 0)
        return refuse("Chart.yaml apiVersion must be v2, not '%.32s'", api ? api : "(none)");
    if (!cname || strcmp(cname, name) != 0) {
        ll_error_set(LL_EINVALID, "the chart is '%.64s', not the tenant chart '%.64s'",
                     cname ? cname : "(no name)", name);
        ll_error_kind("invalid-chart");
        return LL_EINVALID;
    }
    if (!version || !ll_semver_valid(version))
        return refuse("Chart.yaml version '%.64s' is not a semantic version 2.0 (1.2.3, numbers "
                      "without leading zeros that fit in 64 bits)",
                      version ? version : "(none)");
    if (strcmp(top, cname) != 0)
        return refuse("the chart's top folder must be its name, not '%.64s'", top);
    return 0;
}

int ll_chart_read_limited(json_t **out_meta, const void *data, size_t len, const char *name,
                          const ll_chart_limits *lim)
{
    reading rd = {.lim = lim};
    struct archive_entry *entry;
    json_t *meta = NULL;
    int error, rc;

    *out_meta = NULL;
    if ((error = open_archive(&rd, data, len)) < 0)
        goto done;
    while ((rc = archive_read_next_header(rd.tar, &entry)) == ARCHIVE_OK)
        if ((error = take_entry(&rd, entry)) < 0)
            goto done;
    if (rc != ARCHIVE_EOF) {
        error = read_failed(&rd.f, rd.tar, "the chart archive is damaged");
        goto done;
    }
    if (rd.entries == 0) {
        error = refuse("the upload is not a tar archive with entries%s", "");
        goto done;
    }
    if ((error = check_rest(&rd.f, (unsigned long long)archive_filter_bytes(rd.tar, 0), len)) < 0)
        goto done;
    if (!rd.yaml) {
        error = refuse("the chart archive has no %s/Chart.yaml", rd.top[0] ? rd.top : "<chart>");
        goto done;
    }
    if ((error = load_chart_yaml(&meta, rd.yaml, rd.yaml_len)) < 0)
        goto done;
    error = check_meta(meta, name, rd.top);
done:
    reading_free(&rd);
    if (error < 0) {
        json_decref(meta);
        return error;
    }
    *out_meta = meta;
    return 0;
}

int ll_chart_read(json_t **out_meta, const void *data, size_t len, const char *name)
{
    ll_chart_limits lim = {LL_CHART_UNPACKED, LL_CHART_ENTRY_SIZE, LL_CHART_ENTRIES};
    return ll_chart_read_limited(out_meta, data, len, name, &lim);
}

/* chart.h - a packaged Helm chart (.tgz as `helm package` makes it), read
 * and checked before it is pushed anywhere.
 *
 * The archive is read with libarchive (gzip + tar) and Chart.yaml with
 * libyaml.  Refused, each with LL_EINVALID (kind "invalid-chart") and a
 * message naming the rule: not gzip, not tar; an uncompressed stream
 * longer than the unpacked cap (counted while inflating, whatever follows
 * the tar's end marker included), more entries than the entry cap, an
 * entry declaring more bytes than the entry size cap; anything but zeros
 * after the tar's end marker, or bytes after the end of the gzip stream;
 * an entry whose path is absolute, climbs out with "..", holds '\', "."
 * or an empty segment, or lies outside the one top folder; a link, a
 * sparse file, a folder with data, or any tar entry type but files,
 * folders, pax headers and GNU long names (Go's archive/tar, Helm's
 * reader, frames the others unlike libarchive), GNU sparse pax records,
 * more than one naming header per entry; a file name seen twice,
 * or as a file and a folder (as Helm names them), so exactly one
 * Chart.yaml at the chart's root; no <top>/Chart.yaml; Chart.yaml that
 * is not a mapping, apiVersion other than v2, a name other than the
 * expected one, a version that is not semantic versioning 2.0 with
 * numbers that fit in 64 bits.
 *
 * Ownership: pointer arguments are borrowed for the call; what a function
 * hands out is named in its comment.
 */
#ifndef LANDLORD_CHART_H
#define LANDLORD_CHART_H

#include <stddef.h>
#include <jansson.h>

/* The defaults of chart-max-entries, chart-max-unpacked and
 * chart-max-entry-size (Helm's own limit on one file is 5 MiB). */
#define LL_CHART_ENTRIES    10000
#define LL_CHART_UNPACKED   (64ull << 20)
#define LL_CHART_ENTRY_SIZE (5ull << 20)

typedef struct ll_chart_limits {
    unsigned long long unpacked;   /* bytes of the whole uncompressed stream */
    unsigned long long entry_size; /* bytes one entry may declare */
    unsigned long long entries;    /* entries (files and folders) */
} ll_chart_limits;

/* 1 when v is a semantic version 2.0 (MAJOR.MINOR.PATCH[-pre][+build], no
 * leading zeros in numbers) whose numbers (MAJOR, MINOR, PATCH and numeric
 * pre-release identifiers) fit in 64 bits unsigned, as Helm parses them. */
int ll_semver_valid(const char *v);

/* Reads the chart in data (len bytes) within limits.  name: the chart name
 * it must carry (e.g. "helm-tenant-chart").  *out_meta is Chart.yaml as
 * JSON (new reference): what the OCI config blob carries.  Returns 0,
 * LL_EINVALID (kind "invalid-chart"; the message names the rule and, for
 * a cap, the setting) or -1. */
int ll_chart_read_limited(json_t **out_meta, const void *data, size_t len, const char *name,
                          const ll_chart_limits *limits);

/* ll_chart_read_limited() with the default limits.  data is borrowed; *out_meta is the caller's
 * (json_decref). */
int ll_chart_read(json_t **out_meta, const void *data, size_t len, const char *name);

#endif

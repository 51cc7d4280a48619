/* chart.h - a packaged Helm chart (.tgz as `helm package` makes it), read
 * and checked before it is pushed anywhere.
 *
 * The archive is read with libarchive (gzip + tar) and Chart.yaml with
 * libyaml.  Refused, each with LL_EINVALID (kind "invalid-chart") and a
 * message saying what is wrong: not gzip, not tar, an entry whose path is
 * absolute, climbs out with "..", or is a link; more than LL_CHART_ENTRIES
 * entries or LL_CHART_UNPACKED bytes unpacked; files from more than one
 * top folder; no <top>/Chart.yaml; Chart.yaml that is not a mapping,
 * apiVersion other than v2, a name other than the expected one, a version
 * that is not semantic versioning 2.0.
 */
#ifndef LANDLORD_CHART_H
#define LANDLORD_CHART_H

#include <stddef.h>
#include <jansson.h>

#define LL_CHART_ENTRIES  10000
#define LL_CHART_UNPACKED (64u << 20)

/* 1 when v is a semantic version 2.0 (MAJOR.MINOR.PATCH[-pre][+build], no
 * leading zeros in numbers). */
int ll_semver_valid(const char *v);

/* Reads the chart in data (len bytes).  name: the chart name it must carry
 * (e.g. "helm-tenant-chart").  *out_meta is Chart.yaml as JSON (new
 * reference): what the OCI config blob carries. */
int ll_chart_read(json_t **out_meta, const void *data, size_t len, const char *name);

#endif

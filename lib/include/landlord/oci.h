/* oci.h - a Helm chart as an OCI artifact, as `helm push` makes it, and an
 * OCI image layout on disk (the embedded default's registry).
 *
 * The artifact (protocols.md section 1.1): a config blob
 * (application/vnd.cncf.helm.config.v1+json: Chart.yaml's metadata as JSON,
 * keys in Helm's order), one layer (the .tgz unchanged,
 * application/vnd.cncf.helm.chart.content.v1.tar+gzip) and an OCI image
 * manifest with Helm's org.opencontainers.image.* annotations.  The tag is
 * the version with '+' replaced by '_'.
 *
 * The layout (OCI image-layout 1.0.0): <dir>/oci-layout,
 * <dir>/blobs/sha256/<hex> and <dir>/index.json listing each manifest with
 * its tag in org.opencontainers.image.ref.name.  Files are written to a
 * temporary name and renamed, so a crash leaves no half blob or index.
 *
 * Ownership: pointer arguments are borrowed for the call (meta and tgz
 * too: ll_oci_artifact_build copies what it needs); an ll_oci_artifact owns
 * its bytes (ll_oci_artifact_free); `json_t **out` receives a new reference.
 */
#ifndef LANDLORD_OCI_H
#define LANDLORD_OCI_H

#include <stddef.h>
#include <jansson.h>

#define LL_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define LL_OCI_CONFIG   "application/vnd.cncf.helm.config.v1+json"
#define LL_OCI_CHART    "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

typedef struct ll_oci_artifact {
    char *config; /* the config blob */
    size_t config_len;
    char config_digest[80]; /* "sha256:<hex>" */
    char *manifest;         /* the manifest, exactly the bytes to push */
    size_t manifest_len;
    char manifest_digest[80];
    char layer_digest[80];
    size_t layer_len;
    char tag[136];
} ll_oci_artifact;

/* "sha256:<hex>" of data. */
void ll_oci_digest(char out[80], const void *data, size_t len);

/* Builds the artifact of a chart: meta is Chart.yaml as JSON
 * (ll_chart_read), tgz the archive, created the RFC 3339 time the
 * manifest's org.opencontainers.image.created carries (pinned by the
 * caller so that the same chart makes the same manifest). */
int ll_oci_artifact_build(ll_oci_artifact *out, const json_t *meta, const void *tgz, size_t len,
                          const char *created);
void ll_oci_artifact_free(ll_oci_artifact *a);

/* Stores the artifact (its blobs, the chart's bytes, and its tag in
 * index.json) in the layout at dir, created when missing.  A tag already
 * there is moved to this manifest. */
int ll_oci_layout_put(const char *dir, const ll_oci_artifact *a, const void *tgz, size_t len);

/* Removes tag from the layout's index (blobs stay: they are
 * content-addressed and may be shared).  LL_ENOTFOUND. */
int ll_oci_layout_untag(const char *dir, const char *tag);

/* The manifest descriptor tagged tag in the layout at dir (new reference):
 * {"mediaType", "digest", "size", "annotations"}.  LL_ENOTFOUND. */
int ll_oci_layout_get(json_t **out, const char *dir, const char *tag);

#endif

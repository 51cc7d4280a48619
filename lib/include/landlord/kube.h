/* kube.h - a client of the Kubernetes API: where the cluster is, requests,
 * and watch streams (libcurl + jansson).
 *
 * Where the cluster is, in this order:
 *   1. a kubeconfig file: opts->kubeconfig when set, else the first file
 *      named by $KUBECONFIG.  Its current-context (or opts->context) names
 *      a cluster (server, certificate-authority or -data) and a user (token,
 *      tokenFile, or client-certificate(-data) + client-key(-data)).  exec
 *      and auth-provider users are refused with a clear error;
 *      insecure-skip-tls-verify is refused (verification is always on).
 *   2. inside a pod: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 *      (IPv6 hosts in brackets), with ca.crt, token and namespace from the
 *      service-account folder.
 * The token file (tokenFile, or the service account's) is read again when it
 * changes, so rotated tokens are picked up.
 *
 * Requests: TLS verification on, connect and total timeouts, and retries
 * with backoff on 429, 500, 503, 504 and failed connections (Retry-After is
 * honoured, capped).  A non-2xx answer becomes an ll_error whose message
 * names the method, the path, the HTTP status and the Kubernetes Status
 * body's message and reason.  Codes: 401 LL_EAUTH, 403 LL_EFORBIDDEN, 404
 * LL_ENOTFOUND, 409 LL_ECONFLICT, 410 LL_EGONE, 400/422 LL_EINVALID, a body
 * that is not JSON LL_EMALFORMED, a timeout LL_ETIMEOUT, anything else
 * (unreachable, 5xx after retries) LL_EUPSTREAM.
 *
 * Thread-safe: requests may run on several threads at once.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; `json_t **out` receives a new reference
 * (json_decref).
 */
#ifndef LANDLORD_KUBE_H
#define LANDLORD_KUBE_H

#include <jansson.h>

typedef struct ll_kube ll_kube;

typedef struct ll_kube_options {
    const char *kubeconfig; /* a kubeconfig file, or NULL/"" for $KUBECONFIG, then in-cluster */
    const char *context;    /* a context to use instead of current-context, or NULL/"" */
    const char *sa_dir;     /* the service-account folder; NULL/"" for
                               /var/run/secrets/kubernetes.io/serviceaccount */
    int timeout_s;          /* connect + total time of one request (not watches); 0: 10 */
    int retries;            /* retries of 429/5xx/unreachable; 0: 3; -1: none */
} ll_kube_options;

/* Finds the cluster.  LL_ENOTFOUND when none is configured (no kubeconfig,
 * not in a pod); LL_EINVALID naming the file and what is wrong for a
 * kubeconfig that cannot be used.  Makes no request.  *out is new
 * (ll_kube_free); opts (may be NULL: defaults) is borrowed. */
int ll_kube_open(ll_kube **out, const ll_kube_options *opts);

/* Frees the handle, wiping keys and tokens.  NULL is fine. */
void ll_kube_free(ll_kube *k);

/* The server URL as configured: scheme://host:port[/prefix], no trailing
 * slash.  This and the two below are borrowed, valid as long as k. */
const char *ll_kube_server(const ll_kube *k);

/* The context's namespace, the pod's, or "default". */
const char *ll_kube_namespace(const ll_kube *k);

/* Where the configuration came from: "kubeconfig <path>" or "in-cluster". */
const char *ll_kube_source(const ll_kube *k);

/* GET path (with its query, e.g. "/api/v1/namespaces?limit=500"); *out is
 * the JSON body (new reference). */
int ll_kube_get(json_t **out, ll_kube *k, const char *path);

/* PATCH path with Content-Type application/merge-patch+json (patch is
 * borrowed); *out (out may be NULL) is the resulting object (new
 * reference). */
int ll_kube_merge_patch(json_t **out, ll_kube *k, const char *path, const json_t *patch);

/* One watch event: type is ADDED, MODIFIED, DELETED or BOOKMARK; object is
 * borrowed for the call.  Return 0 to go on, a negative code to stop the
 * watch (ll_kube_watch returns it). */
typedef int (*ll_kube_event_fn)(void *ctx, const char *type, json_t *object);

/* Streams GET path, where path carries watch=1 and the caller's
 * resourceVersion, allowWatchBookmarks and timeoutSeconds.  Calls fn for
 * each event as its line arrives (lines may span reads).  Returns 0 when the
 * server ended the stream, LL_EGONE for an HTTP 410 or an ERROR event with
 * code 410 (fn is not called for it: list again), LL_EUPSTREAM for another
 * ERROR event or a stream cut mid-line (a partial line is never passed on),
 * LL_EMALFORMED for a line that is not a JSON event, fn's negative value, or
 * LL_ETIMEOUT after ll_kube_cancel() or no byte for idle_s seconds (0: 330).
 * No retries: the caller lists and watches again.  ctx is borrowed, passed
 * to fn as it is. */
int ll_kube_watch(ll_kube *k, const char *path, int idle_s, ll_kube_event_fn fn, void *ctx);

/* Makes running requests and watches return soon, and later ones fail at
 * once with LL_ETIMEOUT (shutdown).  Safe from any thread. */
void ll_kube_cancel(ll_kube *k);

#endif

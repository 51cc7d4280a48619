/* watch.h - one Kubernetes collection followed by list + watch.
 *
 * An informer lists a collection (paged), hands the whole result to its
 * callback, then watches from the list's resourceVersion and hands over
 * every change as it arrives.  The server ending a watch means watching
 * again from the last resourceVersion seen (bookmarks included); 410 Gone
 * (in the stream or as HTTP) means listing again; any other failure (a cut
 * stream, a malformed line, the server unreachable) means pausing and
 * listing again: the list says when the cluster answers again and what
 * changed meanwhile.  Failed lists back off from 1 s doubling to 30 s.  Optional APIs
 * (tofu-controller's Terraform) are probed first: absent, the informer
 * reports an empty collection and probes again every minute.
 *
 * Each informer runs one thread; callbacks run on it.  The callback owns
 * nothing it is given: objects are borrowed for the call.
 */
#ifndef LANDLORD_WATCH_H
#define LANDLORD_WATCH_H

#include <jansson.h>

#include "landlord/error.h"
#include "landlord/kube.h"

typedef struct ll_informer ll_informer;

/* The collection changed.  type is "RESYNC" (objects maps every key to its
 * slim object: the whole collection, replacing what was known), or "ADDED",
 * "MODIFIED", "DELETED" (key and slim are the one object; slim of DELETED is
 * the last state). */
typedef void (*ll_informer_fn)(const char *type, const char *key, const json_t *slim,
                               const json_t *objects, void *payload);

typedef struct ll_informer_spec {
    const char *kind; /* e.g. "HelmRelease", for logs and status */
    const char *path; /* the collection, e.g. /apis/helm.toolkit.fluxcd.io/v2/helmreleases */
    const char *label_selector; /* or NULL */
    const char *field_selector; /* or NULL */
    const char *probe;          /* GET this first; 404 means the API is absent; or NULL */
    /* Keeps what callers need of an object (new reference). */
    json_t *(*slim)(const json_t *object);
    ll_informer_fn on_change;
    void *payload;
    /* Called on the informer's thread before each list: writes the
     * collection's path into out (cap bytes), e.g. at a version it asked
     * the cluster for.  A negative code fails that list (retried after a
     * pause, like a failed list).  NULL: path as given. */
    int (*resolve)(char *out, size_t cap, void *payload);
} ll_informer_spec;

/* Starts the informer's thread.  *out is new (ll_informer_stop); k is
 * borrowed and must outlive the informer; spec's strings are copied. */
int ll_informer_start(ll_informer **out, ll_kube *k, const ll_informer_spec *spec);

/* Stops the thread and frees (NULL is fine).  Call ll_kube_cancel() on its
 * client first so a running watch returns at once. */
void ll_informer_stop(ll_informer *inf);

/* Where an informer stands. */
typedef enum ll_watch_state {
    LL_WATCH_LISTING = 0, /* its first list is under way */
    LL_WATCH_SYNCED,      /* listed, and watching (or listing again after a 410) */
    LL_WATCH_FAILED,      /* the last list or watch failed; listing again after a pause */
} ll_watch_state;

/* What an informer reports of itself (/readyz's "watches", /metrics). */
typedef struct ll_watch_health {
    const char *kind; /* borrowed from the informer: valid until ll_informer_stop */
    ll_watch_state state;
    long long objects;            /* in the collection, as last listed and watched */
    long long restarts;           /* lists after the first: a watch expired with 410 or failed */
    int absent;                   /* the optional API is missing (an empty collection) */
    char error[LL_ERROR_MSG_MAX]; /* FAILED: the failure's message (may be ""); else "" */
} ll_watch_health;

/* inf's status, copied into *out (out->kind borrowed from inf). */
void ll_informer_health(ll_watch_health *out, ll_informer *inf);

/* 1 once the first list succeeded and no failure since the last one. */
int ll_informer_synced(ll_informer *inf);

#endif

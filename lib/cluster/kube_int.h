/* kube_int.h - kube.c's parsers of what a cluster sends, reachable without
 * a network or a file: the code ll_kube_open, ll_kube_get and ll_kube_watch
 * run on the bytes they read, for the unit tests and the fuzz harnesses
 * (tests/fuzz); private to lib/. */
#ifndef LANDLORD_KUBE_INT_H
#define LANDLORD_KUBE_INT_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/kube.h"

/* ll_kube_open on a kubeconfig whose text[0..len) was read from the file
 * kc (relative paths resolve against kc's folder; files they name are
 * read), with context (or NULL for current-context).  *out is new
 * (ll_kube_free). */
int ll_kube_open_kubeconfig_text(ll_kube **out, const char *kc, const char *text, size_t len,
                                 const char *context);

/* What ll_kube_get makes of an answer with status and body[0..len) to GET
 * path: the JSON of a 2xx (*out, new reference), else the error of the
 * Status in the body (LL_ENOTFOUND, LL_EGONE, ... with message, detail and
 * hint). */
int ll_kube_answer_parse(json_t **out, const char *path, long status, const char *body, size_t len);

/* What ll_kube_watch makes of a 200 watch stream body[0..len) arriving in
 * reads of chunk bytes (0: one read): fn gets each event; 0 at the end of
 * whole lines, else the error of a bad line, an error event or fn. */
int ll_kube_watch_parse(const char *path, const char *body, size_t len, size_t chunk,
                        ll_kube_event_fn fn, void *ctx);

#endif

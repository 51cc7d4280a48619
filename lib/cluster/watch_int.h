/* watch_int.h - what an informer (watch.c) does with the bytes of a list
 * page and of a watch stream, reachable without a cluster: for the unit
 * tests and the fuzz harnesses (tests/fuzz); private to lib/. */
#ifndef LANDLORD_WATCH_INT_H
#define LANDLORD_WATCH_INT_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/watch.h"

/* One page of a list (the JSON answer to GET <path>?limit=...): each item's
 * spec->slim goes into objects under its key ("ns/name"); rv and cont get
 * the page's metadata.resourceVersion and metadata.continue ("" when
 * none).  LL_EMALFORMED when the page has no items array. */
int ll_informer_take_page(json_t *objects, const ll_informer_spec *spec, const json_t *page,
                          char *rv, size_t rv_cap, char *cont, size_t cont_cap);

/* A 200 watch stream body[0..len), arriving in reads of chunk bytes (0:
 * one read), handled as a live watch handles it: each event goes to
 * spec->on_change; rv gets the last resourceVersion seen.  The error of
 * ll_kube_watch for the same bytes. */
int ll_informer_take_stream(const ll_informer_spec *spec, const char *body, size_t len,
                            size_t chunk, char *rv, size_t rv_cap);

#endif

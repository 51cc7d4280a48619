/* fuzz_watch.c - a Kubernetes watch stream as an informer reads it: kube.c
 * cuts the 200 body into lines (a line may span reads) and parses each as
 * an event, watch.c takes each event's resourceVersion, key and slim form
 * (status.c), which status.c's cache packs as text.  The first byte is
 * the size of curl's reads (1-255; 0: one read), the rest the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/log.h"
#include "landlord/status.h"
#include "cluster/watch_int.h"

/* What status.c keeps of each object: the slim packed as text, and read
 * back. */
static void keep(const json_t *slim)
{
    char *packed = slim ? ll_status_slim_pack(slim) : NULL;
    json_decref(packed ? ll_status_slim_unpack(packed) : NULL);
    free(packed);
}

static void on_change(const char *type, const char *key, const json_t *slim, const json_t *objects,
                      void *payload)
{
    const char *k;
    const json_t *v;
    keep(slim);
    json_object_foreach((json_t *)objects, k, v) keep(v);
    (void)type, (void)key, (void)payload;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ll_informer_spec spec = {"HelmRelease", "/apis/helm.toolkit.fluxcd.io/v2/helmreleases",
                             NULL,          NULL,
                             NULL,          ll_status_slim,
                             on_change,     NULL,
                             NULL};
    char rv[128];

    ll_log_threshold = LL_LOG_ERROR;
    if (size == 0)
        return 0;
    ll_informer_take_stream(&spec, (const char *)data + 1, size - 1, data[0], rv, sizeof(rv));
    return 0;
}

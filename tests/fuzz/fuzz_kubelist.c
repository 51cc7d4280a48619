/* fuzz_kubelist.c - an answer of the Kubernetes API to a GET, as a list
 * page reaches an informer: kube.c parses a 2xx as JSON and any other
 * status as a Status (message, reason, details.causes); watch.c takes the
 * items' keys and slim forms (status.c) and the page's resourceVersion and
 * continue token; status.c's cache packs each slim.  The first byte picks
 * the status, the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "cluster/kube_int.h"
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
    static const long statuses[] = {200, 200, 200, 201, 400, 401, 403, 404, 409, 410, 422, 500};
    ll_informer_spec spec = {"HelmRelease", "/apis/helm.toolkit.fluxcd.io/v2/helmreleases",
                             NULL,          NULL,
                             NULL,          ll_status_slim,
                             on_change,     NULL,
                             NULL};
    json_t *page = NULL, *objects;
    char rv[128], cont[2048];

    ll_log_threshold = LL_LOG_ERROR;
    if (size == 0)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    if (ll_kube_answer_parse(&page, spec.path, status, (const char *)data + 1, size - 1) == 0) {
        objects = json_object();
        if (ll_informer_take_page(objects, &spec, page, rv, sizeof(rv), cont, sizeof(cont)) == 0)
            on_change("RESYNC", NULL, NULL, objects, NULL);
        json_decref(objects);
        json_decref(page);
    }
    return 0;
}

/* fuzz_kubeconfig.c - ll_kube_open on any kubeconfig text: YAML, contexts,
 * clusters, users, base64 certificate and key data (checked with
 * libcrypto), tokens.  Relative file names resolve to a folder that does
 * not exist. */
#include <stdint.h>
#include <stdlib.h>

#include "cluster/kube_int.h"
#include "landlord/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ll_kube *k = NULL;
    ll_log_threshold = LL_LOG_ERROR;
    if (ll_kube_open_kubeconfig_text(&k, "/nonexistent/landlord-fuzz/kubeconfig",
                                     (const char *)data, size, NULL) == 0)
        ll_kube_free(k);
    return 0;
}

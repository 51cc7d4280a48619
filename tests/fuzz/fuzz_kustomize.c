/* fuzz_kustomize.c - the kustomization editor on any text (tier
 * kustomizations are edited by hand and by Flux image automation). */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/kustomize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t out_len = 0;
    int changed = 0;
    json_t *list = NULL;
    json_t *add = json_pack("[s, s]", "acme.yaml", "07");
    json_t *remove = json_pack("[s]", "beta.yaml");
    if (ll_kustomize_edit(&out, &out_len, &changed, (const char *)data, size, add, remove) == 0) {
        /* What it wrote must read back with acme.yaml in it. */
        if (ll_kustomize_resources(&list, out, out_len) != 0)
            abort();
        json_decref(list);
        free(out);
    }
    if (ll_kustomize_resources(&list, (const char *)data, size) == 0)
        json_decref(list);
    json_decref(add);
    json_decref(remove);
    return 0;
}

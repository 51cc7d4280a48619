/* fuzz_yaml.c - ll_yaml_load_json on any bytes (tier templates, tenant
 * files, kubeconfigs and Chart.yaml all go through it). */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *out = NULL;
    if (ll_yaml_load_json(&out, (const char *)data, size) == 0)
        json_decref(out);
    return 0;
}

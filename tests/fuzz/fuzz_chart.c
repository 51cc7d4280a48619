/* fuzz_chart.c - ll_chart_read on any upload (chart archives come from
 * callers of POST /api/v1/releases). */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/chart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *meta = NULL;
    if (ll_chart_read(&meta, data, size, "helm-tenant-chart") == 0)
        json_decref(meta);
    return 0;
}

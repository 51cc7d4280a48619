/* fuzz_template.c - ll_template_render with the input as the template (tier
 * templates come from the repository, which people edit by hand). */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t out_len = 0;
    json_t *values = json_pack("{s:{s:i}, s:s}", "apps", "replicas", 2, "note", "x");
    ll_render_input in = {"acme", "premium", "1.2", NULL, values};
    if (ll_template_render(&out, &out_len, (const char *)data, size, &in) == 0)
        free(out);
    json_decref(values);
    return 0;
}

/* fuzz_config.c - the config file (a YAML mapping of setting: value) on
 * any bytes, read from memory as ll_config_load_file reads a file. */
#include <stdint.h>
#include <stdlib.h>

#include "landlord/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ll_config cfg;
    ll_config_defaults(&cfg);
    ll_config_load_text(&cfg, "fuzz.yaml", (const char *)data, size);
    return 0;
}

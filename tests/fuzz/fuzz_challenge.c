/* fuzz_challenge.c - ll_oci_challenge_parse and ll_ociremote_parse_url on
 * any text: WWW-Authenticate values come from OCI registries, oci:// URLs
 * from configuration. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "landlord/ociremote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), host[300], base[600];
    ll_oci_challenge ch;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ll_oci_challenge_parse(&ch, text);
    ll_ociremote_parse_url(host, sizeof(host), base, sizeof(base), text);
    free(text);
    return 0;
}

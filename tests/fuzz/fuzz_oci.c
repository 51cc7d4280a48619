/* fuzz_oci.c - what an OCI registry answers, and a chart's metadata as it
 * becomes an OCI artifact.  The first byte picks:
 *   0: a token server's answer (token, access_token, expires_in);
 *   1: a manifest read back from the registry (layers, config digest);
 *   2: a registry error body ({"errors":[{"code","message"}]} or text);
 *   3: Chart.yaml (YAML, as ll_chart_read hands it over) built into the
 *      config blob and manifest that are pushed (oci.c).
 * The rest is the answer or the file. */
#include <stdint.h>
#include <stdlib.h>
#include <jansson.h>

#include "landlord/log.h"
#include "landlord/oci.h"
#include "landlord/template.h"
#include "charts/ociremote_int.h"

#define LAYER "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data + 1;
    char text[300], config[80], *tok = NULL;
    int64_t use_ms = 0;
    json_t *docs = NULL;
    ll_oci_artifact art;

    ll_log_threshold = LL_LOG_ERROR;
    if (size == 0)
        return 0;
    size--;
    switch (data[0] % 4) {
    case 0:
        if (ll_ociremote_token_answer(&tok, &use_ms, body, size) == 0 && use_ms <= 0)
            abort(); /* a token is always used for a while */
        free(tok);
        break;
    case 1:
        ll_ociremote_manifest_holds(config, sizeof(config), body, size, LAYER);
        break;
    case 2:
        ll_ociremote_error_text(text, sizeof(text), body, size);
        break;
    default:
        if (ll_yaml_load_json(&docs, body, size) == 0) {
            if (ll_oci_artifact_build(&art, json_array_get(docs, 0), "tgz", 3,
                                      "2026-01-01T00:00:00Z") == 0)
                ll_oci_artifact_free(&art);
            json_decref(docs);
        }
        break;
    }
    return 0;
}

/* fuzz_jwks.c - a JWKS document as jwt-jwks-file gives it: JSON, each key
 * (RSA n and e, EC P-256 x and y in base64url) built with OpenSSL and
 * written as PEM for libjwt; then a token naming each kid is checked
 * against the keys (lookup by alg and kid, libjwt reading the PEM). */
#include <stdint.h>
#include <stdlib.h>

#include "access/auth_int.h"
#include "landlord/config.h"
#include "landlord/log.h"

/* {"alg":"RS256","kid":"k1"}.{"sub":"x","exp":2000000100}.sig and the
 * same with {"alg":"ES256","kid":"ec-1"} and without a kid */
static const char *const tokens[] = {
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4IiwiZXhwIjoyMDAwMDAwMTAwfQ.c2ln",
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEifQ.eyJzdWIiOiJ4IiwiZXhwIjoyMDAwMDAwMTAwfQ.c2ln",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoyMDAwMDAwMTAwfQ.c2ln",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ll_config cfg;
    static int ready;
    ll_auth *a = NULL;
    ll_caller c;

    if (!ready) {
        ll_log_threshold = LL_LOG_ERROR;
        ll_config_defaults(&cfg);
        ready = 1;
    }
    if (ll_auth_open_jwks_text(&a, &cfg, (const char *)data, size, "fuzz.jwks") != 0)
        return 0;
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
        ll_auth_verify(&c, a, tokens[i], 2000000000LL);
    ll_auth_free(a);
    return 0;
}

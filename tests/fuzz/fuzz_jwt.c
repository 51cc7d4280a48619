/* fuzz_jwt.c - bearer tokens as ll_auth_verify reads them.  The first
 * byte's low bit picks the mode:
 *   0: the rest is the token's text (header decoding, malformed tokens,
 *      signatures that do not verify);
 *   1: the rest is a header and claims (JSON texts split at the first NUL
 *      byte; without one the header is {"alg":"HS256"}), which the
 *      harness encodes and signs with the HS256 secret the verifier holds,
 *      so the claims checks (exp, nbf, iss, aud, sub, scope, name, email)
 *      and the verified-token cache run on them.
 * The secret is written once to a temporary file (ll_auth_open reads
 * keys from files). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "landlord/auth.h"
#include "landlord/config.h"
#include "landlord/log.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NOW    2000000000LL

static ll_auth *auth;
static char secret_path[64];

static void cleanup(void)
{
    ll_auth_free(auth);
    unlink(secret_path);
}

static ll_auth *verifier(void)
{
    ll_config cfg;
    FILE *f;
    int fd;

    if (auth)
        return auth;
    ll_log_threshold = LL_LOG_ERROR;
    snprintf(secret_path, sizeof(secret_path), "/tmp/landlord-fuzz-jwt-XXXXXX");
    if ((fd = mkstemp(secret_path)) < 0 || !(f = fdopen(fd, "w")))
        abort();
    fputs(SECRET "\n", f);
    fclose(f);
    ll_config_defaults(&cfg);
    snprintf(cfg.jwt_secret_file, sizeof(cfg.jwt_secret_file), "%s", secret_path);
    snprintf(cfg.jwt_issuer, sizeof(cfg.jwt_issuer), "https://idp.example.test/");
    snprintf(cfg.jwt_audience, sizeof(cfg.jwt_audience), "landlord");
    cfg.jwt_cache_size = 16;
    if (ll_auth_open(&auth, &cfg) != 0)
        abort();
    atexit(cleanup);
    return auth;
}

/* base64url without padding of in[0..n) at out; returns the length. */
static size_t b64url(char *out, const uint8_t *in, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[k++] = abc[v >> 18 & 63];
        out[k++] = abc[v >> 12 & 63];
        if (i + 1 < n)
            out[k++] = abc[v >> 6 & 63];
        if (i + 2 < n)
            out[k++] = abc[v & 63];
    }
    return k;
}

static void signed_token(const ll_auth *a, const uint8_t *data, size_t size)
{
    static const char dflt[] = "{\"alg\":\"HS256\"}";
    const uint8_t *nul = memchr(data, 0, size), *head = (const uint8_t *)dflt, *claims = data;
    size_t head_len = sizeof(dflt) - 1, claims_len = size;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    ll_caller c;

    if (nul) {
        head = data;
        head_len = (size_t)(nul - data);
        claims = nul + 1;
        claims_len = size - head_len - 1;
    }
    char *tok = malloc(4 * (head_len + claims_len + 64) / 3 + 16);
    if (!tok)
        return;
    size_t n = b64url(tok, head, head_len);
    tok[n++] = '.';
    n += b64url(tok + n, claims, claims_len);
    if (!HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, n, mac,
              &mac_len))
        abort();
    tok[n++] = '.';
    n += b64url(tok + n, mac, mac_len);
    tok[n] = '\0';
    /* twice: the second may come from the cache, a little later */
    if (ll_auth_verify(&c, a, tok, NOW) == 0)
        ll_auth_verify(&c, a, tok, NOW + 45);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ll_auth *a = verifier();
    ll_caller c;

    if (size == 0 || size > 6000)
        return 0;
    if (data[0] & 1) {
        signed_token(a, data + 1, size - 1);
        return 0;
    }
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    ll_auth_verify(&c, a, text, NOW);
    free(text);
    return 0;
}

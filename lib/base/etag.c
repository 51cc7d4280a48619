/* etag.c - versions of what the API serves: a strong ETag made from the
 * parts a resource's version depends on, and If-Match's strong comparison.
 *
 * Pure functions (SHA-256 through OpenSSL's EVP, no state): the tenant
 * store stamps each tenant row with one, the core its tier views, and
 * preconditions compare against them.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "landlord/etag.h"
#include "landlord/util.h"

void ll_etag_of(char out[LL_ETAG_MAX], const char *const *parts, int n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char hex[33];

    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        for (int i = 0; i < n; i++) {
            const char *p = parts[i] ? parts[i] : "";
            EVP_DigestUpdate(ctx, p, strlen(p) + 1); /* the NUL separates parts */
        }
        EVP_DigestFinal_ex(ctx, md, &len);
    }
    EVP_MD_CTX_free(ctx);
    if (len < 16)
        memset(md, 0, 16);
    ll_hex_encode(hex, md, 16);
    snprintf(out, LL_ETAG_MAX, "\"%s\"", hex);
}

int ll_etag_matches(const char *if_match, const char *etag)
{
    const char *p = if_match;
    size_t n = strlen(etag);

    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/') {
            /* Weak tags never match If-Match (strong comparison). */
            const char *end = strchr(p + 3, '"');
            p = end ? end + 1 : p + strlen(p);
            continue;
        }
        if (*p != '"')
            return 0;
        const char *end = strchr(p + 1, '"');
        if (!end)
            return 0;
        if ((size_t)(end - p + 1) == n && strncmp(p, etag, n) == 0)
            return 1;
        p = end + 1;
    }
    return 0;
}

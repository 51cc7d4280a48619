/* sigv4.c - AWS Signature Version 4 (see aws.h).
 *
 * Four steps, as AWS describes them: the canonical request (method, the
 * normalised and URI-encoded path, the sorted query, the signed headers
 * lower-cased, trimmed and sorted, the payload's SHA-256), the string to
 * sign (algorithm, date, credential scope, SHA-256 of the canonical
 * request), the signing key (HMAC-SHA256 chained over date, region,
 * service and "aws4_request", keyed first with "AWS4" + secret) and the
 * signature.  Hashes and HMACs are OpenSSL's.  Pure: no I/O, no globals;
 * the intermediate texts are returned so the tests can hold each step to
 * the published vectors.  The secret and the derived keys are wiped.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "landlord/aws.h"
#include "landlord/error.h"
#include "landlord/util.h"

#define SIGV4_TEXT_MAX (1u << 20) /* canonical request of a JSON API call */

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s[0..n) URI-encoded (RFC 3986 unreserved kept, %XX upper case). */
static int uri_encode(ll_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (unreserved(c) ? ll_buf_add(b, &s[i], 1) < 0 : ll_buf_add(b, esc, 3) < 0)
            return -1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX escapes of s[0..n) into a new string. */
static char *uri_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t k = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

/* The canonical URI: segments "." dropped, ".." climbing (never above the
 * root), empty segments dropped, a trailing '/' kept; each segment encoded. */
static int canonical_uri(ll_buf *b, const char *path)
{
    const char *seg[256];
    size_t len[256], n = 0;
    const char *p = path && path[0] ? path : "/";
    size_t total = strlen(p);
    int trailing = total > 1 && p[total - 1] == '/';

    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t l = strcspn(p, "/");
        if (l == 1 && p[0] == '.') {
            /* nothing */
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (n)
                n--;
        } else {
            if (n == sizeof(seg) / sizeof(seg[0]))
                return ll_error_set(LL_EINVALID, "sigv4: the path has too many segments");
            seg[n] = p;
            len[n++] = l;
        }
        p += l;
    }
    if (n == 0)
        return ll_buf_adds(b, "/");
    for (size_t i = 0; i < n; i++) {
        if (ll_buf_adds(b, "/") < 0 || uri_encode(b, seg[i], len[i]) < 0)
            return -1;
    }
    return trailing ? ll_buf_adds(b, "/") : 0;
}

typedef struct pair {
    char *key, *value; /* encoded */
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Encodes s[0..n) after decoding it: an already-encoded query is not
 * encoded twice. */
static char *reencode(const char *s, size_t n)
{
    char *raw = uri_decode(s, n);
    ll_buf b;
    if (!raw)
        return NULL;
    ll_buf_init(&b, SIGV4_TEXT_MAX);
    if (uri_encode(&b, raw, strlen(raw)) < 0 || ll_buf_add(&b, "", 0) < 0) {
        free(raw);
        ll_buf_free(&b);
        return NULL;
    }
    free(raw);
    return ll_buf_steal(NULL, &b);
}

/* The canonical query: key=value pairs encoded and sorted by key, then value. */
static int canonical_query(ll_buf *b, const char *query)
{
    pair *pairs = NULL;
    size_t n = 0, cap = 0;
    int error = -1;
    const char *p = query ? query : "";

    while (*p) {
        size_t l = strcspn(p, "&");
        if (l) {
            const char *eq = memchr(p, '=', l);
            size_t kl = eq ? (size_t)(eq - p) : l;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                pair *np = ncap <= 4096 ? realloc(pairs, ncap * sizeof(*np)) : NULL;
                if (!np)
                    goto done;
                pairs = np;
                cap = ncap;
            }
            pairs[n].key = reencode(p, kl);
            pairs[n].value = reencode(eq ? eq + 1 : "", eq ? l - kl - 1 : 0);
            n++;
            if (!pairs[n - 1].key || !pairs[n - 1].value)
                goto done;
        }
        p += l;
        if (*p == '&')
            p++;
    }
    if (n)
        qsort(pairs, n, sizeof(*pairs), pair_cmp);
    for (size_t i = 0; i < n; i++) {
        if ((i && ll_buf_adds(b, "&") < 0) ||
            ll_buf_printf(b, "%s=%s", pairs[i].key, pairs[i].value) < 0)
            goto done;
    }
    error = 0;
done:
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(pairs);
    return error;
}

typedef struct hdr {
    char *name;  /* lower case */
    char *value; /* trimmed, runs of spaces collapsed */
    size_t order;
} hdr;

static int hdr_cmp(const void *a, const void *b)
{
    const hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s ? s : "");
    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static char *trim_dup(const char *s)
{
    size_t n = 0;
    char *d = malloc(strlen(s ? s : "") + 1);
    if (!d)
        return NULL;
    for (const char *p = s ? s : ""; *p; p++) {
        int space = *p == ' ' || *p == '\t';
        if (space && (n == 0 || d[n - 1] == ' '))
            continue;
        d[n++] = space ? ' ' : *p;
    }
    while (n && d[n - 1] == ' ')
        n--;
    d[n] = '\0';
    return d;
}

/* Canonical headers ("name:v1,v2\n" sorted) into b, the signed header list
 * ("a;b") into signed_list. */
static int canonical_headers(ll_buf *b, ll_buf *signed_list, const ll_sigv4_header *headers,
                             size_t n)
{
    hdr *h = calloc(n ? n : 1, sizeof(*h));
    int error = -1;
    if (!h)
        return ll_error_set(-1, "out of memory");
    for (size_t i = 0; i < n; i++) {
        h[i].name = lower_dup(headers[i].name);
        h[i].value = trim_dup(headers[i].value);
        h[i].order = i;
        if (!h[i].name || !h[i].value)
            goto done;
    }
    qsort(h, n, sizeof(*h), hdr_cmp);
    for (size_t i = 0; i < n; i++) {
        int first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
        int last = i + 1 == n || strcmp(h[i].name, h[i + 1].name) != 0;
        if (first) {
            if ((i && ll_buf_adds(signed_list, ";") < 0) ||
                ll_buf_adds(signed_list, h[i].name) < 0 || ll_buf_printf(b, "%s:", h[i].name) < 0)
                goto done;
        } else if (ll_buf_adds(b, ",") < 0) {
            goto done;
        }
        if (ll_buf_adds(b, h[i].value) < 0 || (last && ll_buf_adds(b, "\n") < 0))
            goto done;
    }
    error = 0;
done:
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    return error;
}

static void sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    ll_hex_encode(out, md, 32);
}

static int hmac(unsigned char out[32], const void *key, size_t key_len, const char *msg)
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &n) ||
        n != 32)
        return ll_error_set(-1, "sigv4: HMAC-SHA256 failed");
    return 0;
}

/* 1. the canonical request into canon; list gets the signed headers'
 * names (';'-separated, NUL-terminated). */
static int canonical_request(ll_buf *canon, ll_buf *list, const ll_sigv4_request *req)
{
    char payload_hash[65];

    sha256_hex(payload_hash, req->payload ? req->payload : "", req->payload_len);
    if (ll_buf_printf(canon, "%s\n", req->method) < 0 || canonical_uri(canon, req->path) < 0 ||
        ll_buf_adds(canon, "\n") < 0 || canonical_query(canon, req->query) < 0 ||
        ll_buf_adds(canon, "\n") < 0 ||
        canonical_headers(canon, list, req->headers, req->nheaders) < 0 ||
        ll_buf_add(list, "", 0) < 0 ||
        ll_buf_printf(canon, "\n%s\n%s", list->data, payload_hash) < 0)
        return -1;
    return 0;
}

/* 3. the signing key (from the secret, the date, region and service),
 * 4. the signature of string_to_sign in hex into sig[65].  The key and
 * the secret's copy are wiped. */
static int signature(char sig[65], const char *secret_access_key, const char *date,
                     const char *region, const char *service, const char *string_to_sign)
{
    unsigned char k[32], k2[32];
    size_t sl = strlen(secret_access_key);
    char *secret = malloc(sl + 5);
    int error = -1;

    if (!secret)
        goto done;
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, secret_access_key, sl + 1);
    if (hmac(k, secret, sl + 4, date) < 0 || hmac(k2, k, 32, region) < 0 ||
        hmac(k, k2, 32, service) < 0 || hmac(k2, k, 32, "aws4_request") < 0 ||
        hmac(k, k2, 32, string_to_sign) < 0)
        goto done;
    ll_hex_encode(sig, k, 32);
    error = 0;
done:
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(k2, sizeof(k2));
    if (secret) {
        OPENSSL_cleanse(secret, sl + 4);
        free(secret);
    }
    return error;
}

int ll_sigv4_sign(ll_sigv4 *out, const ll_sigv4_request *req, const char *access_key_id,
                  const char *secret_access_key, const char *region, const char *service,
                  const char *amz_date)
{
    ll_buf canon, sts, list, auth;
    char canon_hash[65], date[9], sig[65];
    int error = -1;

    memset(out, 0, sizeof(*out));
    if (!amz_date || strlen(amz_date) != 16 || amz_date[8] != 'T' || amz_date[15] != 'Z')
        return ll_error_set(LL_EINVALID, "sigv4: the date must look like 20150830T123600Z");
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    ll_buf_init(&canon, SIGV4_TEXT_MAX);
    ll_buf_init(&sts, 4096);
    ll_buf_init(&list, 64 * 1024);
    ll_buf_init(&auth, 64 * 1024);

    if (canonical_request(&canon, &list, req) < 0)
        goto done;
    /* 2. the string to sign */
    sha256_hex(canon_hash, canon.data, canon.len);
    if (ll_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date,
                      region, service, canon_hash) < 0)
        goto done;
    if (signature(sig, secret_access_key, date, region, service, sts.data) < 0)
        goto done;
    if (ll_buf_printf(&auth,
                      "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                      "Signature=%s",
                      access_key_id, date, region, service, list.data, sig) < 0)
        goto done;
    out->canonical_request = ll_buf_steal(NULL, &canon);
    out->string_to_sign = ll_buf_steal(NULL, &sts);
    out->authorization = ll_buf_steal(NULL, &auth);
    error = 0;
done:
    ll_buf_free(&canon);
    ll_buf_free(&sts);
    ll_buf_free(&list);
    ll_buf_free(&auth);
    if (error < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        return ll_error_set(LL_EINVALID, "sigv4: cannot sign the request: %s", why);
    }
    return 0;
}

void ll_sigv4_free(ll_sigv4 *s)
{
    if (!s)
        return;
    free(s->canonical_request);
    free(s->string_to_sign);
    free(s->authorization);
    memset(s, 0, sizeof(*s));
}

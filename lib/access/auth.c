/* auth.c - bearer tokens: keys, verification, scopes, local tokens.
 *
 * Keys.  Each configured key is bound to one algorithm when it is loaded:
 * the HS256 secret (a file; with nothing configured, <data>/jwt-secret,
 * made on first start), a PEM public key or certificate (RSA: RS256, EC
 * P-256: ES256), and the keys of a JWKS file, which OpenSSL turns into PEM
 * text at load because libjwt 1.10 reads PEM only.  Keys never change once
 * loaded, so verification needs no lock.
 *
 * Verification.  libjwt 1.10 checks signatures only, and an HS256 token
 * "signed" with an RSA public key's PEM text verifies against that key, so
 * the header is read first (libjwt without a key), only keys of the
 * header's algorithm (and kid, when the token names one) are tried, and the
 * verified token's algorithm must still be the key's.  The claims are then
 * decoded again with jansson's JSON_REJECT_DUPLICATES and checked here: exp
 * (required), nbf, iss, aud, sub.
 *
 * The verified-token cache.  Verifying costs two libjwt decodes (JSON
 * parses), an HMAC or signature check and a strict claims parse: most of
 * the CPU of a kept-answer read.  So a token that verified is kept, keyed by
 * the SHA-256 of its text (the token itself is never kept), with the caller
 * it made and its exp and nbf.  A hit is only a shortcut for the signature
 * and the claims that cannot change (keys, iss and aud are fixed for an
 * ll_auth's life): exp and nbf are checked again against the time of every
 * request, with the same leeway, and a token outside its window is refused
 * and dropped.  Failures are never kept.  The cache is set-associative
 * (CACHE_WAYS entries per set, the least recently used one replaced), sized
 * by jwt-cache-size entries (0: none), each allocated when first used, so
 * its memory is bounded whatever callers send and small while few tokens
 * are in use; it dies with the ll_auth, so new keys (a restart) start
 * with an empty one.
 *
 * Threads: ll_auth is read-only after ll_auth_open except for the cache,
 * which has its own mutex; the current caller is thread-local.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "landlord/auth.h"
#include "auth_int.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

#define SECRET_MIN 32
#define KEYS_MAX   64
#define CACHE_WAYS 4
/* The largest exp or nbf accepted: 9999-12-31T23:59:59Z. */
#define NUMERIC_DATE_MAX 253402300799LL

typedef struct key {
    jwt_alg_t alg;
    char kid[128];           /* "" when the key has none */
    unsigned char *material; /* the secret, or PEM text */
    size_t len;
} key;

/* One verified token: what it made and when it is valid. */
typedef struct cached {
    unsigned char digest[32]; /* SHA-256 of the token's text */
    unsigned long long used;  /* tick of the last use; 0: the slot is free */
    long long nbf;            /* LLONG_MIN when the token has none */
    ll_caller caller;         /* caller.exp is the token's exp */
} cached;

typedef struct tcache {
    pthread_mutex_t lock;
    EVP_MD *sha256;
    cached **slots; /* nsets * CACHE_WAYS, each allocated when first used */
    size_t nsets;
    unsigned long long tick, hits;
} tcache;

struct ll_auth {
    key keys[KEYS_MAX];
    size_t n;
    char issuer[256], audience[256];
    long leeway;
    tcache *cache; /* NULL when jwt-cache-size is 0; mutable behind a const ll_auth */
};

static __thread const ll_caller *current;

const ll_caller *ll_caller_current(void)
{
    return current;
}

void ll_caller_set_current(const ll_caller *c)
{
    current = c;
}

/* --- keys ------------------------------------------------------------------- */

static int add_key(ll_auth *a, jwt_alg_t alg, const char *kid, const void *material, size_t len)
{
    key *k;
    if (a->n == KEYS_MAX)
        return ll_error_set(LL_EINVALID, "more than %d token keys configured", KEYS_MAX);
    k = &a->keys[a->n];
    if (!(k->material = malloc(len + 1)))
        return ll_error_set(-1, "out of memory");
    memcpy(k->material, material, len);
    k->material[len] = '\0';
    k->len = len;
    k->alg = alg;
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    a->n++;
    return 0;
}

void ll_auth_secret_path(char *out, size_t cap, const ll_config *cfg)
{
    if (cfg->jwt_secret_file[0])
        snprintf(out, cap, "%s", cfg->jwt_secret_file);
    else if (!cfg->jwt_public_key_file[0] && !cfg->jwt_jwks_file[0])
        snprintf(out, cap, "%s/jwt-secret", cfg->data);
    else if (cap)
        out[0] = '\0';
}

/* Creates the embedded default secret when it does not exist yet: 32 random
 * bytes as 64 hex characters, mode 0600, written before anyone can read it. */
static int ensure_secret(const char *path, const char *data_dir)
{
    char hex[65];
    int fd, error;

    if (access(path, F_OK) == 0)
        return 0;
    if ((error = ll_mkdir_p(data_dir)) < 0)
        return error;
    if ((error = ll_random_hex(hex, 32)) < 0)
        return error;
    hex[64] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) /* made meanwhile by another landlord */
            return 0;
        return ll_error_set(LL_EINVALID, "cannot create the token secret %s: %s", path,
                            strerror(errno));
    }
    ssize_t w = write(fd, hex, 65);
    int ok = w == 65 && fsync(fd) == 0;
    close(fd);
    memset(hex, 0, sizeof(hex));
    if (!ok) {
        unlink(path);
        return ll_error_set(LL_EINVALID, "cannot write the token secret %s", path);
    }
    ll_log_info("msg=\"created the token secret (HS256) for local tokens\" path=%s", path);
    return 0;
}

/* Reads the secret: the file's bytes without trailing white space. */
static int read_secret(char **out, size_t *out_len, const char *path)
{
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    int error;

    *out = NULL;
    if ((error = ll_read_file(&data, &len, path, 64 * 1024)) < 0) {
        ll_error_hint("jwt-secret-file must name a readable file holding the secret");
        return error == LL_ENOTFOUND ? LL_EINVALID : error;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ' ||
                       data[len - 1] == '\t'))
        data[--len] = '\0';
    if (len < SECRET_MIN) {
        memset(data, 0, len);
        free(data);
        ll_error_set(LL_EINVALID, "the token secret in %s is %zu bytes; HS256 needs at least %d",
                     path, len, SECRET_MIN);
        ll_error_hint("write at least 32 random bytes, e.g. openssl rand -hex 32 > %s", path);
        return LL_EINVALID;
    }
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        ll_log_warn("msg=\"the token secret file is readable by others; chmod 600 it\" path=%s",
                    path);
    *out = data;
    *out_len = len;
    return 0;
}

/* The algorithm a public key is for: RS256 for RSA of 2048 bits or more,
 * ES256 for EC P-256. */
static int key_alg(jwt_alg_t *out, EVP_PKEY *pk, const char *what)
{
    char group[64] = "";
    size_t glen = 0;
    int id = EVP_PKEY_get_base_id(pk);

    if (id == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pk) < 2048)
            return ll_error_set(LL_EINVALID, "%s: RSA key of %d bits; at least 2048 are needed",
                                what, EVP_PKEY_get_bits(pk));
        *out = JWT_ALG_RS256;
        return 0;
    }
    if (id == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) == 1 &&
        strcmp(group, "prime256v1") == 0) {
        *out = JWT_ALG_ES256;
        return 0;
    }
    ll_error_set(LL_EINVALID, "%s: not an RSA or EC P-256 public key", what);
    ll_error_hint("tokens are verified with RS256 (RSA) or ES256 (EC P-256) keys");
    return LL_EINVALID;
}

/* The key as PEM SubjectPublicKeyInfo text (a new string). */
static int pem_of(char **out, size_t *out_len, EVP_PKEY *pk)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *mem;
    long n;
    int error = -1;

    *out = NULL;
    if (bio && PEM_write_bio_PUBKEY(bio, pk) == 1 && (n = BIO_get_mem_data(bio, &mem)) > 0 &&
        (*out = malloc((size_t)n + 1))) {
        memcpy(*out, mem, (size_t)n);
        (*out)[n] = '\0';
        *out_len = (size_t)n;
        error = 0;
    }
    BIO_free(bio);
    return error < 0 ? ll_error_set(-1, "cannot encode a public key as PEM") : 0;
}

static int load_public_key(ll_auth *a, const char *path)
{
    char *text = NULL, *pem = NULL;
    size_t len = 0, pem_len = 0;
    EVP_PKEY *pk = NULL;
    X509 *cert = NULL;
    BIO *bio = NULL;
    jwt_alg_t alg;
    int error;

    if ((error = ll_read_file(&text, &len, path, 256 * 1024)) < 0) {
        ll_error_hint("jwt-public-key-file must name a readable PEM file");
        return LL_EINVALID;
    }
    if (!(bio = BIO_new_mem_buf(text, (int)len))) {
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    if (!(pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL))) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(text, (int)len);
        if (bio && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
            pk = X509_get_pubkey(cert);
    }
    if (!pk) {
        error = ll_error_set(LL_EINVALID, "%s holds no PEM public key or certificate", path);
        ll_error_hint("write the key as -----BEGIN PUBLIC KEY----- (openssl pkey -pubout)");
        goto done;
    }
    if ((error = key_alg(&alg, pk, path)) < 0 || (error = pem_of(&pem, &pem_len, pk)) < 0)
        goto done;
    error = add_key(a, alg, NULL, pem, pem_len);
done:
    free(pem);
    free(text);
    EVP_PKEY_free(pk);
    X509_free(cert);
    BIO_free(bio);
    return error;
}

/* base64url (no padding) into out, which must have room for the padded
 * length's 3/4; returns the decoded length or -1. */
static int b64url_decode(unsigned char *out, size_t cap, const char *in, size_t n)
{
    char *std;
    size_t padded = (n + 3) / 4 * 4;
    int len, pad = (int)(padded - n);

    if (n % 4 == 1 || padded / 4 * 3 > cap)
        return -1;
    if (!(std = malloc(padded + 1)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(std);
            return -1;
        }
        std[i] = c;
    }
    memset(std + n, '=', (size_t)pad);
    std[padded] = '\0';
    len = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
    free(std);
    return len < 0 ? -1 : len - pad;
}

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *v = json_string_value(json_object_get(jwk, name));
    unsigned char buf[1024];
    int n;
    if (!v || (n = b64url_decode(buf, sizeof(buf), v, strlen(v))) <= 0)
        return NULL;
    return BN_bin2bn(buf, n, NULL);
}

/* Pushes an RSA JWK's n and e onto bld; *n and *e (new, the caller frees
 * them) must live until the builder makes its parameters.  -1 (with why,
 * when the key is at fault) when they cannot be pushed. */
static int rsa_params(BIGNUM **n, BIGNUM **e, OSSL_PARAM_BLD *bld, const json_t *jwk, char *why,
                      size_t why_cap)
{
    if (!(*n = jwk_bn(jwk, "n")) || !(*e = jwk_bn(jwk, "e"))) {
        snprintf(why, why_cap, "RSA key without a valid n and e");
        return -1;
    }
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, *n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, *e))
        return -1;
    return 0;
}

/* Pushes an EC P-256 JWK's curve and point (x, y) onto bld; the point is
 * built in point[65], which must live until the builder makes its
 * parameters.  -1 (with why, when the key is at fault) otherwise. */
static int ec_params(unsigned char point[65], OSSL_PARAM_BLD *bld, const json_t *jwk, char *why,
                     size_t why_cap)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *x = json_string_value(json_object_get(jwk, "x"));
    const char *y = json_string_value(json_object_get(jwk, "y"));
    unsigned char bx[48], by[48];

    if (!crv || strcmp(crv, "P-256") != 0) {
        snprintf(why, why_cap, "EC key on curve %.32s (only P-256 is supported)",
                 crv ? crv : "(none)");
        return -1;
    }
    point[0] = 4;
    if (!x || !y || b64url_decode(bx, sizeof(bx), x, strlen(x)) != 32 ||
        b64url_decode(by, sizeof(by), y, strlen(y)) != 32) {
        snprintf(why, why_cap, "EC key without a valid x and y");
        return -1;
    }
    memcpy(point + 1, bx, 32);
    memcpy(point + 33, by, 32);
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65))
        return -1;
    return 0;
}

/* One JWK (RSA, or EC P-256) as an EVP_PKEY; NULL with a message when it is
 * not usable. */
static EVP_PKEY *jwk_key(const json_t *jwk, char *why, size_t why_cap)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *n = NULL, *e = NULL;
    /* The builder keeps a pointer to the point until OSSL_PARAM_BLD_to_param:
     * it must live as long as this function. */
    unsigned char point[65];

    if (!bld)
        goto done;
    if (kty && strcmp(kty, "RSA") == 0) {
        if (rsa_params(&n, &e, bld, jwk, why, why_cap) < 0)
            goto done;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else if (kty && strcmp(kty, "EC") == 0) {
        if (ec_params(point, bld, jwk, why, why_cap) < 0)
            goto done;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else {
        snprintf(why, why_cap, "key type %.16s is not supported (RSA and EC only)",
                 kty ? kty : "(none)");
        goto done;
    }
    if (!(params = OSSL_PARAM_BLD_to_param(bld)) || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        snprintf(why, why_cap, "OpenSSL refused the key");
        pk = NULL;
    }
done:
    if (!pk && !why[0])
        snprintf(why, why_cap, "cannot build the key");
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return pk;
}

/* Adds the usable signing keys of a JWKS document (path names it in
 * messages); LL_EINVALID when it has none or a key's alg does not fit. */
static int jwks_keys(ll_auth *a, const json_t *doc, const char *path)
{
    const json_t *jwk;
    size_t i, before = a->n;
    int error = 0;

    json_array_foreach(json_object_get(doc, "keys"), i, jwk)
    {
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *alg_name = json_string_value(json_object_get(jwk, "alg"));
        char why[200] = "", *pem = NULL, what[1200];
        size_t pem_len = 0;
        jwt_alg_t alg;
        EVP_PKEY *pk;

        if (use && strcmp(use, "sig") != 0)
            continue;
        if (!(pk = jwk_key(jwk, why, sizeof(why)))) {
            ll_log_warn("msg=\"jwks: skipping a key\" path=%s kid=%.64s why=\"%s\"", path,
                        kid ? kid : "-", why);
            continue;
        }
        snprintf(what, sizeof(what), "%s key %.64s", path, kid ? kid : "(no kid)");
        error = key_alg(&alg, pk, what);
        if (error == 0 && alg_name && jwt_str_alg(alg_name) != alg)
            error = ll_error_set(LL_EINVALID, "%s: alg %.16s does not fit its key", what, alg_name);
        if (error == 0)
            error = pem_of(&pem, &pem_len, pk);
        EVP_PKEY_free(pk);
        if (error == 0)
            error = add_key(a, alg, kid, pem, pem_len);
        free(pem);
        if (error < 0)
            goto done;
    }
    if (a->n == before) {
        error = ll_error_set(LL_EINVALID, "%s: no usable signing key (RSA or EC P-256)", path);
        ll_error_hint("check the file's \"keys\"");
    }
done:
    return error;
}

static int jwks_refused(const char *path, const json_error_t *jerr)
{
    ll_error_set(LL_EINVALID, "%s: not a JWKS: %s (line %d)", path, jerr->text, jerr->line);
    ll_error_hint("jwt-jwks-file holds {\"keys\": [...]} as an identity provider publishes it");
    return LL_EINVALID;
}

static int load_jwks(ll_auth *a, const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int error;

    if (!doc)
        return jwks_refused(path, &jerr);
    error = jwks_keys(a, doc, path);
    json_decref(doc);
    return error;
}

/* --- the verified-token cache --------------------------------------------------- */

static void cache_free(tcache *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    EVP_MD_free(t->sha256);
    for (size_t i = 0; t->slots && i < t->nsets * CACHE_WAYS; i++)
        free(t->slots[i]);
    free(t->slots);
    free(t);
}

/* A cache of at least size entries (rounded up to whole sets). */
static int cache_new(tcache **out, size_t size)
{
    tcache *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return ll_error_set(-1, "out of memory");
    t->nsets = (size + CACHE_WAYS - 1) / CACHE_WAYS;
    pthread_mutex_init(&t->lock, NULL);
    if (!(t->slots = calloc(t->nsets * CACHE_WAYS, sizeof(*t->slots))) ||
        !(t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        cache_free(t);
        return ll_error_set(-1, "cannot make the token cache");
    }
    *out = t;
    return 0;
}

static int digest_of(unsigned char out[32], const tcache *t, const char *token, size_t n)
{
    unsigned int len = 0;
    return EVP_Digest(token, n, out, &len, t->sha256, NULL) == 1 && len == 32 ? 0 : -1;
}

/* The CACHE_WAYS slots (NULL: never used) where digest may be kept. */
static cached **cache_set(const tcache *t, const unsigned char digest[32])
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return &t->slots[(size_t)(h % t->nsets) * CACHE_WAYS];
}

/* a + b, held at LLONG_MAX or LLONG_MIN instead of overflowing. */
static long long add_sat(long long a, long long b)
{
    long long sum;
    if (__builtin_add_overflow(a, b, &sum))
        return b > 0 ? LLONG_MAX : LLONG_MIN;
    return sum;
}

/* Checks exp (required) and nbf (has_nbf) against now, with the leeway: 0,
 * or LL_EAUTH saying which failed.  The one rule for fresh and kept tokens.
 * The claims are NumericDates of at most NUMERIC_DATE_MAX (number_claim),
 * but the sums saturate anyway: no time sent by anyone may overflow them. */
static int time_window(long long exp, int has_nbf, long long nbf, long long now, long leeway)
{
    if (now > add_sat(exp, leeway))
        return ll_error_set(LL_EAUTH, "the token has expired");
    if (has_nbf && add_sat(now, leeway) < nbf)
        return ll_error_set(LL_EAUTH, "the token is not valid yet (nbf)");
    return 0;
}

/* 1 with *out filled when the token is kept and valid at now; 0 when it is
 * not kept; LL_EAUTH when it is kept and outside its time window (then it
 * is dropped). */
static int cache_get(ll_caller *out, const ll_auth *a, const unsigned char digest[32],
                     long long now)
{
    tcache *t = a->cache;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    cached **set = cache_set(t, digest);
    for (int i = 0; i < CACHE_WAYS; i++) {
        cached *e = set[i];
        if (!e || !e->used || memcmp(e->digest, digest, 32) != 0)
            continue;
        if ((rc = time_window(e->caller.exp, e->nbf != LLONG_MIN, e->nbf, now, a->leeway)) < 0) {
            memset(e, 0, sizeof(*e));
            break;
        }
        e->used = ++t->tick;
        t->hits++;
        memcpy(out, &e->caller, sizeof(*out));
        rc = 1;
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static unsigned long long last_use(const cached *e)
{
    return e ? e->used : 0;
}

/* Keeps a verified token in a free slot of its set, else in place of the
 * least recently used one. */
static void cache_put(const ll_auth *a, const unsigned char digest[32], const ll_caller *c,
                      long long nbf)
{
    tcache *t = a->cache;
    pthread_mutex_lock(&t->lock);
    cached **set = cache_set(t, digest), **slot = &set[0];
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (set[i] && set[i]->used && memcmp(set[i]->digest, digest, 32) == 0) {
            slot = &set[i]; /* kept meanwhile by another thread */
            break;
        }
        if (last_use(set[i]) < last_use(*slot)) /* a free slot, else the LRU */
            slot = &set[i];
    }
    if (!*slot && !(*slot = malloc(sizeof(**slot)))) {
        pthread_mutex_unlock(&t->lock);
        return; /* not kept: verified again next time */
    }
    cached *victim = *slot;
    memcpy(victim->digest, digest, 32);
    victim->used = ++t->tick;
    victim->nbf = nbf;
    memcpy(&victim->caller, c, sizeof(*c));
    pthread_mutex_unlock(&t->lock);
}

void ll_auth_cache_stats(const ll_auth *a, unsigned long long *hits, size_t *entries)
{
    tcache *t = a->cache;
    *hits = 0;
    *entries = 0;
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    *hits = t->hits;
    for (size_t i = 0; i < t->nsets * CACHE_WAYS; i++)
        *entries += t->slots[i] && t->slots[i]->used != 0;
    pthread_mutex_unlock(&t->lock);
}

/* A new ll_auth without keys, with cfg's issuer, audience, leeway and
 * cache. */
static int auth_new(ll_auth **out, const ll_config *cfg)
{
    ll_auth *a = calloc(1, sizeof(*a));
    int error;

    *out = NULL;
    if (!a)
        return ll_error_set(-1, "out of memory");
    snprintf(a->issuer, sizeof(a->issuer), "%s", cfg->jwt_issuer);
    snprintf(a->audience, sizeof(a->audience), "%s", cfg->jwt_audience);
    a->leeway = cfg->jwt_leeway;
    if (cfg->jwt_cache_size > 0 &&
        (error = cache_new(&a->cache, (size_t)cfg->jwt_cache_size)) < 0) {
        free(a);
        return error;
    }
    *out = a;
    return 0;
}

int ll_auth_open_jwks_text(ll_auth **out, const ll_config *cfg, const char *text, size_t len,
                           const char *what)
{
    json_error_t jerr;
    json_t *doc = NULL;
    ll_auth *a = NULL;
    int error;

    *out = NULL;
    if (!(doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
        return jwks_refused(what, &jerr);
    if ((error = auth_new(&a, cfg)) == 0 && (error = jwks_keys(a, doc, what)) == 0) {
        *out = a;
        a = NULL;
    }
    ll_auth_free(a);
    json_decref(doc);
    return error;
}

int ll_auth_open(ll_auth **out, const ll_config *cfg)
{
    ll_auth *a = NULL;
    char path[1100], *secret = NULL;
    size_t len = 0;
    int error = 0;

    *out = NULL;
    if ((error = auth_new(&a, cfg)) < 0)
        return error;
    ll_auth_secret_path(path, sizeof(path), cfg);
    if (path[0]) {
        if (!cfg->jwt_secret_file[0] && (error = ensure_secret(path, cfg->data)) < 0)
            goto fail;
        if ((error = read_secret(&secret, &len, path)) < 0)
            goto fail;
        error = add_key(a, JWT_ALG_HS256, NULL, secret, len);
        memset(secret, 0, len);
        free(secret);
        if (error < 0)
            goto fail;
    }
    if (cfg->jwt_public_key_file[0]) {
        if ((error = load_public_key(a, cfg->jwt_public_key_file)) < 0)
            goto fail;
    }
    if (cfg->jwt_jwks_file[0]) {
        if ((error = load_jwks(a, cfg->jwt_jwks_file)) < 0)
            goto fail;
    }
    *out = a;
    return 0;
fail:
    ll_auth_free(a);
    return error;
}

void ll_auth_describe(char *out, size_t cap, const ll_auth *a)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < a->n && n + 1 < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%s%s%s", i ? "," : "", jwt_alg_str(a->keys[i].alg),
                         a->keys[i].kid[0] ? ":" : "", a->keys[i].kid);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

void ll_auth_free(ll_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        memset(a->keys[i].material, 0, a->keys[i].len);
        free(a->keys[i].material);
    }
    cache_free(a->cache);
    free(a);
}

/* --- verification ---------------------------------------------------------------- */

static int bad(const char *why)
{
    return ll_error_set(LL_EAUTH, "%s", why);
}

/* A claim usable in a commit signature and a log line: 1..255 bytes, no
 * control characters, no angle brackets. */
static int clean_text(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int visible = 0;
    if (n == 0 || n > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            return 0;
        visible |= *p != ' ';
    }
    return visible; /* git refuses a name that is only blanks */
}

static int looks_like_email(const char *s)
{
    const char *at = s ? strchr(s, '@') : NULL;
    if (!clean_text(s) || !at || at == s || !at[1] || strchr(at + 1, '@'))
        return 0;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '\\' || *p == ',')
            return 0;
    return 1;
}

/* The claims of a verified token, decoded strictly (no duplicate keys). */
static int claims_of(json_t **out, const char *token)
{
    const char *p1 = strchr(token, '.'), *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    size_t n = p2 ? (size_t)(p2 - p1 - 1) : 0;
    unsigned char *buf = NULL;
    json_error_t jerr;
    int len;

    *out = NULL;
    if (!n || !(buf = malloc(n)))
        return bad("the token is malformed");
    len = b64url_decode(buf, n, p1 + 1, n);
    if (len > 0)
        *out = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return bad("the token's claims are not a JSON object without duplicate keys");
    }
    return 0;
}

/* A NumericDate claim (exp, nbf): 1 with *out set, 0 when it is absent and
 * not required, LL_EAUTH when it is not a number from 0 to the end of year
 * 9999 (a larger one is no date a token needs, and would overflow the
 * arithmetic on it; a real out of range of long long cannot even be
 * converted). */
static int number_claim(long long *out, const json_t *claims, const char *name, int required)
{
    const json_t *v = json_object_get(claims, name);
    if (!v) {
        if (required)
            return ll_error_set(LL_EAUTH, "the token has no %s claim", name);
        return 0;
    }
    if (!json_is_number(v))
        return ll_error_set(LL_EAUTH, "the token's %s claim is not a number", name);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > NUMERIC_DATE_MAX)
            goto range;
        *out = (long long)i;
    } else {
        double d = json_real_value(v);
        if (!(d >= 0 && d <= (double)NUMERIC_DATE_MAX)) /* NaN too */
            goto range;
        *out = (long long)d;
    }
    return 1;
range:
    return ll_error_set(
        LL_EAUTH, "the token's %s claim is out of range (a time from 1970 to year 9999)", name);
}

/* The token's iss and aud, when landlord is configured with an issuer and
 * an audience (aud: a string, or an array holding it). */
static int check_iss_aud(const ll_auth *a, const json_t *claims)
{
    if (a->issuer[0]) {
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (!iss || strcmp(iss, a->issuer) != 0)
            return bad("the token was issued by another issuer (iss)");
    }
    if (a->audience[0]) {
        int ok = 0;
        size_t i;
        json_t *v;
        const json_t *aud = json_object_get(claims, "aud");
        if (json_is_string(aud))
            ok = strcmp(json_string_value(aud), a->audience) == 0;
        json_array_foreach(aud, i, v) ok |=
            json_is_string(v) && strcmp(json_string_value(v), a->audience) == 0;
        if (!ok)
            return bad("the token is meant for another audience (aud)");
    }
    return 0;
}

/* Checks the claims at now and fills *out; *out_nbf is the nbf claim, or
 * LLONG_MIN when there is none. */
static int check_claims(ll_caller *out, long long *out_nbf, const ll_auth *a, const json_t *claims,
                        long long now)
{
    long long exp = 0, nbf = 0;
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const json_t *scope = json_object_get(claims, "scope");
    int rc, has_nbf;

    if ((rc = number_claim(&exp, claims, "exp", 1)) < 0)
        return rc;
    if ((has_nbf = number_claim(&nbf, claims, "nbf", 0)) < 0)
        return has_nbf;
    if ((rc = time_window(exp, has_nbf, nbf, now, a->leeway)) < 0)
        return rc;
    *out_nbf = has_nbf ? nbf : LLONG_MIN;
    if ((rc = check_iss_aud(a, claims)) < 0)
        return rc;
    if (!clean_text(sub))
        return bad("the token has no usable sub claim (1-255 characters, no control characters)");
    if (scope && (!json_is_string(scope) || json_string_length(scope) >= sizeof(out->scopes)))
        return bad("the token's scope claim is not a space-separated string");
    memset(out, 0, sizeof(*out));
    snprintf(out->sub, sizeof(out->sub), "%s", sub);
    snprintf(out->scopes, sizeof(out->scopes), "%s", scope ? json_string_value(scope) : "");
    if (strlen(out->scopes) != (scope ? json_string_length(scope) : 0))
        return bad("the token's scope claim holds a NUL character");
    const char *name = json_string_value(json_object_get(claims, "name"));
    const char *email = json_string_value(json_object_get(claims, "email"));
    if (clean_text(name))
        snprintf(out->name, sizeof(out->name), "%s", name);
    if (looks_like_email(email))
        snprintf(out->email, sizeof(out->email), "%s", email);
    out->exp = exp;
    return 0;
}

/* A token's shape: three base64url parts joined by two dots. */
static int check_shape(const char *token, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return bad("the token is malformed");
    }
    if (dots != 2)
        return bad("the token is malformed");
    return 0;
}

/* The header, unverified: which algorithm and key (kid, "" when it names
 * none) the token claims.  alg none and unknown algorithms are refused. */
static int read_header(jwt_alg_t *out_alg, char *kid, size_t kid_cap, const char *token)
{
    jwt_t *head = NULL;
    const char *alg_name, *k;
    jwt_alg_t alg;

    if (jwt_decode(&head, token, NULL, 0) != 0 || !head)
        return bad("the token is malformed");
    /* libjwt reports alg none for any token decoded without a key: the
     * header says which algorithm the token claims. */
    alg_name = jwt_get_header(head, "alg");
    alg = alg_name ? jwt_str_alg(alg_name) : JWT_ALG_INVAL;
    k = jwt_get_header(head, "kid");
    if (k)
        snprintf(kid, kid_cap, "%s", k);
    jwt_free(head);
    if (alg == JWT_ALG_NONE)
        return bad("unsigned tokens (alg none) are not accepted");
    if (alg == JWT_ALG_INVAL)
        return bad("the token's alg is missing or unknown");
    *out_alg = alg;
    return 0;
}

/* The signature, checked with the keys of alg (and kid) only; the verified
 * token's algorithm must still be the key's. */
static int check_signature(const ll_auth *a, const char *token, jwt_alg_t alg, const char *kid)
{
    jwt_t *jwt = NULL;
    int tried = 0, verified = 0, kid_known = 0;

    for (size_t i = 0; i < a->n; i++)
        kid_known |= kid[0] && strcmp(a->keys[i].kid, kid) == 0;
    for (size_t i = 0; i < a->n && !verified; i++) {
        const key *k = &a->keys[i];
        /* A key is only ever used for its own algorithm; a token naming a
         * kid is checked with that key (or, when no key has that kid, with
         * the keys that have none). */
        if (k->alg != alg)
            continue;
        if (kid[0] && (kid_known ? strcmp(k->kid, kid) != 0 : k->kid[0] != '\0'))
            continue;
        tried++;
        if (jwt_decode(&jwt, token, k->material, (int)k->len) == 0 && jwt &&
            jwt_get_alg(jwt) == k->alg)
            verified = 1;
        jwt_free(jwt);
        jwt = NULL;
    }
    if (!tried)
        return ll_error_set(LL_EAUTH, "no configured key verifies %s tokens%s",
                            jwt_alg_str(alg) ? jwt_alg_str(alg) : "such",
                            kid[0] ? " with that kid" : "");
    if (!verified)
        return bad("the token's signature does not verify");
    return 0;
}

int ll_auth_verify(ll_caller *out, const ll_auth *a, const char *token, long long now_s)
{
    json_t *claims = NULL;
    char kid[128] = "";
    size_t n = token ? strlen(token) : 0;
    unsigned char digest[32];
    long long nbf = LLONG_MIN;
    jwt_alg_t alg = JWT_ALG_INVAL;
    int error, keep = 0;

    if (n == 0)
        return bad("no bearer token");
    if (n > LL_TOKEN_MAX)
        return bad("the token is too long");
    if (a->cache && digest_of(digest, a->cache, token, n) == 0) {
        if ((error = cache_get(out, a, digest, now_s)) != 0)
            return error < 0 ? error : 0;
        keep = 1;
    }
    if ((error = check_shape(token, n)) < 0 ||
        (error = read_header(&alg, kid, sizeof(kid), token)) < 0 ||
        (error = check_signature(a, token, alg, kid)) < 0 ||
        (error = claims_of(&claims, token)) < 0)
        return error;
    error = check_claims(out, &nbf, a, claims, now_s);
    json_decref(claims);
    if (error == 0 && keep)
        cache_put(a, digest, out, nbf);
    return error;
}

int ll_caller_has_scope(const ll_caller *c, const char *scope)
{
    const char *p = c->scopes;
    size_t want = strlen(scope);
    while (*p) {
        size_t n = strcspn(p, " ");
        if ((n == 5 && strncmp(p, "admin", 5) == 0) || (n == want && strncmp(p, scope, n) == 0) ||
            (strcmp(scope, "tenants:read") == 0 && n == 13 && strncmp(p, "tenants:write", 13) == 0))
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

void ll_caller_author(char *name, size_t name_cap, char *email, size_t email_cap,
                      const ll_caller *c, const char *domain)
{
    snprintf(name, name_cap, "%s", c->name[0] ? c->name : c->sub);
    if (c->email[0]) {
        snprintf(email, email_cap, "%s", c->email);
        return;
    }
    if (looks_like_email(c->sub)) {
        snprintf(email, email_cap, "%s", c->sub);
        return;
    }
    size_t n = 0;
    for (const char *p = c->sub; *p && n + 1 < email_cap; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '+' || ch == '-';
        email[n++] = ok ? ch : '-';
    }
    snprintf(email + n, email_cap - n, "@%s", domain);
}

/* --- TLS ------------------------------------------------------------------------------ */

int ll_tls_load(char **out_cert, char **out_key, const char *cert_file, const char *key_file)
{
    char *cert = NULL, *keytext = NULL;
    size_t clen = 0, klen = 0;
    BIO *cb = NULL, *kb = NULL;
    X509 *x = NULL;
    EVP_PKEY *pk = NULL;
    int error;

    *out_cert = *out_key = NULL;
    if (!cert_file[0] || !key_file[0]) {
        ll_error_set(LL_EINVALID, "HTTPS needs both tls-cert-file and tls-key-file");
        ll_error_hint("set both, or neither to serve plain HTTP on a loopback address");
        return LL_EINVALID;
    }
    if ((error = ll_read_file(&cert, &clen, cert_file, 1024 * 1024)) < 0 ||
        (error = ll_read_file(&keytext, &klen, key_file, 1024 * 1024)) < 0) {
        ll_error_hint("tls-cert-file and tls-key-file must name readable PEM files");
        error = LL_EINVALID;
        goto done;
    }
    cb = BIO_new_mem_buf(cert, (int)clen);
    kb = BIO_new_mem_buf(keytext, (int)klen);
    if (!cb || !kb || !(x = PEM_read_bio_X509(cb, NULL, NULL, NULL))) {
        error = ll_error_set(LL_EINVALID, "%s holds no PEM certificate", cert_file);
        goto done;
    }
    if (!(pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL))) {
        error = ll_error_set(LL_EINVALID, "%s holds no unencrypted PEM private key", key_file);
        goto done;
    }
    if (X509_check_private_key(x, pk) != 1) {
        error = ll_error_set(LL_EINVALID, "the key in %s does not belong to the certificate in %s",
                             key_file, cert_file);
        goto done;
    }
    *out_cert = cert;
    *out_key = keytext;
    cert = keytext = NULL;
    error = 0;
done:
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(pk);
    free(cert);
    if (keytext) {
        memset(keytext, 0, klen);
        free(keytext);
    }
    return error;
}

/* --- local tokens -------------------------------------------------------------------- */

int ll_parse_duration(long *out, const char *text)
{
    char *end;
    long v, mult = 1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || v <= 0)
        goto bad;
    if (*end == 's')
        mult = 1;
    else if (*end == 'm')
        mult = 60;
    else if (*end == 'h')
        mult = 3600;
    else if (*end == 'd')
        mult = 86400;
    else if (*end)
        goto bad;
    if (*end && end[1])
        goto bad;
    if (v > 366L * 86400 / mult)
        goto bad;
    *out = v * mult;
    return 0;
bad:
    ll_error_set(LL_EINVALID, "'%.32s' is not a duration of at most 366 days", text);
    ll_error_hint("write 90s, 15m, 1h or 7d");
    return LL_EINVALID;
}

static int known_scope(const char *s, size_t n)
{
    const char *p = LL_SCOPES;
    while (*p) {
        size_t m = strcspn(p, " ");
        if (m == n && strncmp(p, s, n) == 0)
            return 1;
        p += m;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* Every scope of the space-separated list is a known one. */
static int check_scopes(const char *scopes)
{
    for (const char *p = scopes; *p;) {
        size_t n = strcspn(p, " ");
        if (n && !known_scope(p, n)) {
            ll_error_set(LL_EINVALID, "unknown scope '%.*s'", (int)(n > 64 ? 64 : n), p);
            ll_error_hint("scopes: %s", LL_SCOPES);
            return LL_EINVALID;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

/* A local token's claims onto jwt: sub, scope, iat, exp, jti, iss, aud,
 * name and email (the optional ones when given).  -1 when libjwt fails. */
static int add_grants(jwt_t *jwt, const ll_config *cfg, const char *sub, const char *scopes,
                      const char *name, const char *email, long long now, long ttl_s,
                      const char *jti)
{
    if (jwt_add_grant(jwt, "sub", sub) != 0 ||
        (scopes[0] && jwt_add_grant(jwt, "scope", scopes) != 0) ||
        jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)) != 0 ||
        jwt_add_grant(jwt, "jti", jti) != 0 ||
        (cfg->jwt_issuer[0] && jwt_add_grant(jwt, "iss", cfg->jwt_issuer) != 0) ||
        (cfg->jwt_audience[0] && jwt_add_grant(jwt, "aud", cfg->jwt_audience) != 0) ||
        (name && name[0] && jwt_add_grant(jwt, "name", name) != 0) ||
        (email && email[0] && jwt_add_grant(jwt, "email", email) != 0))
        return -1;
    return 0;
}

int ll_auth_mint(char **out, const ll_config *cfg, const char *sub, const char *scopes,
                 const char *name, const char *email, long ttl_s)
{
    char path[1100], jti[33], *secret = NULL;
    size_t len = 0;
    jwt_t *jwt = NULL;
    long long now = (long long)time(NULL);
    int error;

    *out = NULL;
    if ((error = check_scopes(scopes)) < 0)
        return error;
    if (!clean_text(sub))
        return ll_error_set(LL_EINVALID, "--sub must be 1-255 characters without control "
                                         "characters or angle brackets");
    ll_auth_secret_path(path, sizeof(path), cfg);
    if (!path[0]) {
        ll_error_set(LL_EINVALID, "no HS256 secret is configured: tokens come from the identity "
                                  "provider that owns jwt-public-key-file / jwt-jwks-file");
        ll_error_hint("set jwt-secret-file as well to mint local tokens");
        return LL_EINVALID;
    }
    if (!cfg->jwt_secret_file[0] && (error = ensure_secret(path, cfg->data)) < 0)
        return error;
    if ((error = read_secret(&secret, &len, path)) < 0)
        return error;
    if ((error = ll_random_hex(jti, 16)) < 0)
        goto done;
    error = -1;
    if (jwt_new(&jwt) != 0 || add_grants(jwt, cfg, sub, scopes, name, email, now, ttl_s, jti) < 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (unsigned char *)secret, (int)len) != 0 ||
        !(*out = jwt_encode_str(jwt))) {
        error = ll_error_set(-1, "cannot make the token");
        goto done;
    }
    error = 0;
done:
    jwt_free(jwt);
    memset(secret, 0, len);
    free(secret);
    return error;
}

/* auth_keys.c - bearer tokens: the keys, and opening an ll_auth.
 *
 * Each configured key is bound to one algorithm when it is loaded: the
 * HS256 secret (a file; with nothing configured, <data>/jwt-secret, made
 * on first start), a PEM public key or certificate (RSA: RS256, EC P-256:
 * ES256), and the keys of a JWKS file, which OpenSSL turns into PEM text
 * at load because libjwt 1.10 reads PEM only.  Keys never change once
 * loaded, so verification (auth.c) needs no lock.  The TLS certificate and
 * key of the listener are read here too.
 *
 * Threads: loading runs before serving; an ll_auth is read-only after
 * ll_auth_open except for its cache (auth.c).
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
#include "auth_keys.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

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
int ll_auth_ensure_secret(const char *path, const char *data_dir)
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
int ll_auth_read_secret(char **out, size_t *out_len, const char *path)
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

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *v = json_string_value(json_object_get(jwk, name));
    unsigned char buf[1024];
    int n;
    if (!v || (n = ll_auth_b64url_decode(buf, sizeof(buf), v, strlen(v))) <= 0)
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
    if (!x || !y || ll_auth_b64url_decode(bx, sizeof(bx), x, strlen(x)) != 32 ||
        ll_auth_b64url_decode(by, sizeof(by), y, strlen(y)) != 32) {
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

/* --- open ---------------------------------------------------------------------- */

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
        (error = ll_auth_cache_new(&a->cache, (size_t)cfg->jwt_cache_size)) < 0) {
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
        if (!cfg->jwt_secret_file[0] && (error = ll_auth_ensure_secret(path, cfg->data)) < 0)
            goto done;
        if ((error = ll_auth_read_secret(&secret, &len, path)) < 0)
            goto done;
        error = add_key(a, JWT_ALG_HS256, NULL, secret, len);
        memset(secret, 0, len);
        free(secret);
        if (error < 0)
            goto done;
    }
    if (cfg->jwt_public_key_file[0]) {
        if ((error = load_public_key(a, cfg->jwt_public_key_file)) < 0)
            goto done;
    }
    if (cfg->jwt_jwks_file[0]) {
        if ((error = load_jwks(a, cfg->jwt_jwks_file)) < 0)
            goto done;
    }
    *out = a;
    a = NULL;
    error = 0;
done:
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
    ll_auth_cache_free(a->cache);
    free(a);
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

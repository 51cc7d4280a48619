/* auth_keys.h - what the bearer-token files share (private to
 * lib/access): the ll_auth handle with its keys and verified-token cache,
 * and the helpers more than one of them uses.  auth_keys.c loads keys and
 * opens an ll_auth; auth.c verifies tokens, keeps the cache and decodes
 * base64url (for both); auth_mint.c makes local tokens.  Calls go one
 * way: auth_mint.c and auth_keys.c call auth.c, auth_mint.c calls
 * auth_keys.c. */
#ifndef LANDLORD_AUTH_KEYS_H
#define LANDLORD_AUTH_KEYS_H

#include <pthread.h>
#include <stddef.h>
#include <jwt.h>
#include <openssl/evp.h>

#include "landlord/auth.h"

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

/* A cache of size entries (0 < size), as a new tcache *out. */
int ll_auth_cache_new(tcache **out, size_t size);
/* Frees t (NULL: nothing). */
void ll_auth_cache_free(tcache *t);

/* base64url (no padding) of in[0..n) into out, which must have room for
 * the padded length's 3/4; returns the decoded length or -1. */
int ll_auth_b64url_decode(unsigned char *out, size_t cap, const char *in, size_t n);

/* Makes the HS256 secret at path (in data_dir, 0600) when it does not
 * exist yet. */
int ll_auth_ensure_secret(const char *path, const char *data_dir);

/* The secret at path (at least SECRET_MIN bytes, without its line break)
 * as a new buffer *out of *out_len bytes, which the caller wipes and
 * frees. */
int ll_auth_read_secret(char **out, size_t *out_len, const char *path);

/* A claim usable in a commit signature and a log line: 1..255 bytes, no
 * control characters, no angle brackets, not only blanks. */
int ll_auth_clean_text(const char *s);

#endif

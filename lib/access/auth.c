/* auth.c - bearer tokens: verification, the verified-token cache, scopes.
 *
 * Verification.  libjwt 1.10 checks signatures only, and an HS256 token
 * "signed" with an RSA public key's PEM text verifies against that key, so
 * the header is read first (libjwt without a key), only keys of the
 * header's algorithm (and kid, when the token names one) are tried, and the
 * verified token's algorithm must still be the key's.  The claims are then
 * decoded again with jansson's JSON_REJECT_DUPLICATES and checked here: exp
 * (required), nbf, iss, aud, sub.  The keys are loaded by auth_keys.c,
 * each bound to one algorithm.
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
#include "auth_keys.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

static __thread const ll_caller *current;

const ll_caller *ll_caller_current(void)
{
    return current;
}

void ll_caller_set_current(const ll_caller *c)
{
    current = c;
}

/* --- the verified-token cache --------------------------------------------------- */

void ll_auth_cache_free(tcache *t)
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
int ll_auth_cache_new(tcache **out, size_t size)
{
    tcache *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return ll_error_set(-1, "out of memory");
    t->nsets = (size + CACHE_WAYS - 1) / CACHE_WAYS;
    pthread_mutex_init(&t->lock, NULL);
    if (!(t->slots = calloc(t->nsets * CACHE_WAYS, sizeof(*t->slots))) ||
        !(t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        ll_auth_cache_free(t);
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

void ll_auth_cache_stats(unsigned long long *hits, size_t *entries, const ll_auth *a)
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

/* --- verification ---------------------------------------------------------------- */

/* base64url (no padding) into out, which must have room for the padded
 * length's 3/4; returns the decoded length or -1. */
int ll_auth_b64url_decode(unsigned char *out, size_t cap, const char *in, size_t n)
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

static int bad(const char *why)
{
    return ll_error_set(LL_EAUTH, "%s", why);
}

/* A claim usable in a commit signature and a log line: 1..255 bytes, no
 * control characters, no angle brackets. */
int ll_auth_clean_text(const char *s)
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
    if (!ll_auth_clean_text(s) || !at || at == s || !at[1] || strchr(at + 1, '@'))
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
    len = ll_auth_b64url_decode(buf, n, p1 + 1, n);
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
    int in_range;
    long long when = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if ((in_range = i >= 0 && i <= NUMERIC_DATE_MAX))
            when = (long long)i;
    } else {
        double d = json_real_value(v);
        if ((in_range = d >= 0 && d <= (double)NUMERIC_DATE_MAX)) /* false for NaN too */
            when = (long long)d;
    }
    if (!in_range)
        return ll_error_set(
            LL_EAUTH, "the token's %s claim is out of range (a time from 1970 to year 9999)", name);
    *out = when;
    return 1;
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
    if (!ll_auth_clean_text(sub))
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
    if (ll_auth_clean_text(name))
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

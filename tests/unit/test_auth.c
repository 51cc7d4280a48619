/* Unit tests of lib/access/auth.c, lib/access/ratelimit.c and the version helpers of
 * lib/registry/registry_auth.c: scopes, commit authors, durations, token checks
 * with a secret in a temp dir, the verified-token cache (time windows
 * checked on every hit, bounded, keyed by the whole token), token buckets,
 * If-Match. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jwt.h>

#include "access/auth_int.h"
#include "landlord/auth.h"
#include "landlord/config.h"
#include "landlord/error.h"
#include "landlord/ratelimit.h"
#include "landlord/registry.h"
#include "support.h"

static void test_scopes(void **state)
{
    ll_caller c = {0};
    snprintf(c.scopes, sizeof(c.scopes), "tenants:write  webhooks:write");
    assert_true(ll_caller_has_scope(&c, "tenants:write"));
    assert_true(ll_caller_has_scope(&c, "tenants:read")); /* write implies read */
    assert_true(ll_caller_has_scope(&c, "webhooks:write"));
    assert_false(ll_caller_has_scope(&c, "tiers:write"));
    assert_false(ll_caller_has_scope(&c, "admin"));
    assert_false(ll_caller_has_scope(&c, "tenants"));
    snprintf(c.scopes, sizeof(c.scopes), "tenants:read");
    assert_false(ll_caller_has_scope(&c, "tenants:write"));
    snprintf(c.scopes, sizeof(c.scopes), "admin");
    assert_true(ll_caller_has_scope(&c, "tiers:write"));
    assert_true(ll_caller_has_scope(&c, "admin"));
    snprintf(c.scopes, sizeof(c.scopes), "administrator");
    assert_false(ll_caller_has_scope(&c, "tiers:write"));
}

static void test_authors(void **state)
{
    ll_caller c = {0};
    char name[256], email[300];
    snprintf(c.sub, sizeof(c.sub), "auth0|1234 x");
    ll_caller_author(name, sizeof(name), email, sizeof(email), &c, "example.test");
    assert_string_equal(name, "auth0|1234 x");
    assert_string_equal(email, "auth0-1234-x@example.test");
    snprintf(c.sub, sizeof(c.sub), "ana@corp.test");
    ll_caller_author(name, sizeof(name), email, sizeof(email), &c, "example.test");
    assert_string_equal(email, "ana@corp.test");
    snprintf(c.name, sizeof(c.name), "Ana Lima");
    snprintf(c.email, sizeof(c.email), "ana.lima@corp.test");
    ll_caller_author(name, sizeof(name), email, sizeof(email), &c, "example.test");
    assert_string_equal(name, "Ana Lima");
    assert_string_equal(email, "ana.lima@corp.test");
}

static void test_durations(void **state)
{
    long v = 0;
    assert_int_equal(ll_parse_duration(&v, "90"), 0);
    assert_int_equal(v, 90);
    assert_int_equal(ll_parse_duration(&v, "15m"), 0);
    assert_int_equal(v, 900);
    assert_int_equal(ll_parse_duration(&v, "1h"), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(ll_parse_duration(&v, "7d"), 0);
    assert_int_equal(v, 7 * 86400);
    assert_int_equal(ll_parse_duration(&v, "367d"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "0"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "-5m"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "1hh"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "h"), LL_EINVALID);
    /* The bounds and units exactly: 366 days is the most in any unit. */
    assert_int_equal(ll_parse_duration(&v, "30s"), 0);
    assert_int_equal(v, 30);
    assert_int_equal(ll_parse_duration(&v, "366d"), 0);
    assert_int_equal(v, 366L * 86400);
    assert_int_equal(ll_parse_duration(&v, "8784h"), 0);
    assert_int_equal(ll_parse_duration(&v, "8785h"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "31622401"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "5x"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "5sx"), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, ""), LL_EINVALID);
    assert_int_equal(ll_parse_duration(&v, "99999999999999999999d"), LL_EINVALID);
    assert_int_equal(v, 366L * 86400); /* untouched by refusals */
    assert_non_null(strstr(ll_error_last()->hint, "90s"));
}

/* Mint with the embedded default secret in a temp data dir, verify, and
 * see the claim checks refuse what they must. */
static void test_mint_and_verify(void **state)
{
    char dir[64], path[300];
    ll_config cfg;
    ll_auth *a = NULL;
    ll_caller c;
    char *tok = NULL;
    struct stat st;
    long long now = (long long)time(NULL);

    assert_int_equal(ut_temp_dir(dir, sizeof(dir), "auth"), 0);
    ll_config_defaults(&cfg);
    snprintf(cfg.data, sizeof(cfg.data), "%s", dir);
    assert_int_equal(ll_auth_mint(&tok, &cfg, "me", "tenants:write", "Me", "me@x.test", 60), 0);
    snprintf(path, sizeof(path), "%s/jwt-secret", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ll_auth_open(&a, &cfg), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_string_equal(c.sub, "me");
    assert_string_equal(c.name, "Me");
    assert_string_equal(c.email, "me@x.test");
    assert_string_equal(c.scopes, "tenants:write");
    /* expired beyond the leeway (30 s), and within it */
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 60 + 31), LL_EAUTH);
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 60 + 29), 0);
    /* one flipped signature character, a cut token, garbage */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(ll_auth_verify(&c, a, tok, now), LL_EAUTH);
    tok[strlen(tok) / 2] = '\0';
    assert_int_equal(ll_auth_verify(&c, a, tok, now), LL_EAUTH);
    assert_int_equal(ll_auth_verify(&c, a, "a.b.c", now), LL_EAUTH);
    assert_int_equal(ll_auth_verify(&c, a, "", now), LL_EAUTH);
    assert_int_equal(ll_auth_verify(&c, a, "x y.z", now), LL_EAUTH);
    free(tok);
    tok = NULL;
    assert_int_equal(ll_auth_mint(&tok, &cfg, "me", "tenants:writ", NULL, NULL, 60), LL_EINVALID);
    assert_int_equal(ll_auth_mint(&tok, &cfg, "   ", "", NULL, NULL, 60), LL_EINVALID);
    ll_auth_free(a);
    assert_int_equal(ut_remove_tree(dir), 0);
}

static void test_short_secret_refused(void **state)
{
    char dir[64], path[300];
    ll_config cfg;
    ll_auth *a = NULL;
    FILE *f;

    assert_int_equal(ut_temp_dir(dir, sizeof(dir), "auth"), 0);
    snprintf(path, sizeof(path), "%s/short", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs("too-short\n", f);
    fclose(f);
    ll_config_defaults(&cfg);
    snprintf(cfg.jwt_secret_file, sizeof(cfg.jwt_secret_file), "%s", path);
    assert_int_equal(ll_auth_open(&a, &cfg), LL_EINVALID);
    assert_null(strstr(ll_error_last()->message, "too-short")); /* never echoed */
    assert_int_equal(ut_remove_tree(dir), 0);
}

/* --- the verified-token cache ------------------------------------------------------ */

#define CACHE_SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct cache_fixture {
    char dir[64], path[300];
    ll_config cfg;
} cache_fixture;

static void cache_setup(cache_fixture *fx, const char *secret, long cache_size)
{
    FILE *f;
    assert_int_equal(ut_temp_dir(fx->dir, sizeof(fx->dir), "auth"), 0);
    snprintf(fx->path, sizeof(fx->path), "%s/secret", fx->dir);
    assert_non_null(f = fopen(fx->path, "w"));
    fprintf(f, "%s\n", secret);
    fclose(f);
    chmod(fx->path, 0600);
    ll_config_defaults(&fx->cfg);
    snprintf(fx->cfg.jwt_secret_file, sizeof(fx->cfg.jwt_secret_file), "%s", fx->path);
    fx->cfg.jwt_cache_size = cache_size;
}

static void cache_teardown(cache_fixture *fx)
{
    assert_int_equal(ut_remove_tree(fx->dir), 0);
}

/* An HS256 token for sub with exp, and nbf unless it is 0 (a new string). */
static char *hs256(const char *secret, const char *sub, long long exp, long long nbf)
{
    jwt_t *jwt = NULL;
    char *out;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", sub), 0);
    assert_int_equal(jwt_add_grant(jwt, "scope", "tenants:read"), 0);
    assert_int_equal(jwt_add_grant_int(jwt, "exp", (long)exp), 0);
    if (nbf)
        assert_int_equal(jwt_add_grant_int(jwt, "nbf", (long)nbf), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)), 0);
    assert_non_null(out = jwt_encode_str(jwt));
    jwt_free(jwt);
    return out;
}

static unsigned long long cache_hits(const ll_auth *a, size_t *entries)
{
    unsigned long long hits = 0;
    size_t n = 0;
    ll_auth_cache_stats(&hits, &n, a);
    if (entries)
        *entries = n;
    return hits;
}

/* A kept token answers without verifying again, but exp is checked at the
 * time of every request: past it (and the leeway) it is refused and
 * dropped. */
static void test_token_cache_expiry(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;
    size_t n = 0;
    long long now = 2000000000LL;
    char *tok;

    cache_setup(&fx, CACHE_SECRET, 64);
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    tok = hs256(CACHE_SECRET, "kept", now + 60, 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(cache_hits(a, &n), 0);
    assert_int_equal(n, 1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 1), 0);
    assert_int_equal(cache_hits(a, NULL), 1); /* served from the cache... */
    assert_string_equal(c.sub, "kept");       /* ...as the caller it made */
    assert_string_equal(c.scopes, "tenants:read");
    assert_int_equal(c.exp, now + 60);
    /* within the leeway (30 s) after exp: still good; past it: refused */
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 60 + 30), 0);
    assert_int_equal(cache_hits(a, NULL), 2);
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 60 + 31), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token has expired");
    assert_int_equal(cache_hits(a, &n), 2);
    assert_int_equal(n, 0); /* dropped */
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 3600), LL_EAUTH);
    assert_int_equal(n, 0);
    free(tok);
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* nbf is checked on every hit too (a clock set back), and a token that is
 * not valid yet is never kept. */
static void test_token_cache_nbf(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;
    size_t n = 0;
    long long now = 2000000000LL;
    char *tok;

    cache_setup(&fx, CACHE_SECRET, 64);
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    tok = hs256(CACHE_SECRET, "later", now + 1000, now + 100);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token is not valid yet (nbf)");
    cache_hits(a, &n);
    assert_int_equal(n, 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 100), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 100), 0);
    assert_int_equal(cache_hits(a, &n), 1);
    assert_int_equal(n, 1);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), LL_EAUTH); /* clock set back */
    assert_string_equal(ll_error_last()->message, "the token is not valid yet (nbf)");
    assert_int_equal(cache_hits(a, &n), 1);
    assert_int_equal(n, 0);
    free(tok);
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* The cache is keyed by the whole token: a kept token with its signature
 * changed, or its claims changed under the same signature, is verified
 * (and refused), never taken for the kept one. */
static void test_token_cache_whole_token(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;
    long long now = 2000000000LL;
    char *tok, *other, *forged;

    cache_setup(&fx, CACHE_SECRET, 4); /* one set: every token meets the kept one */
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    tok = hs256(CACHE_SECRET, "kept", now + 60, 0);
    other = hs256(CACHE_SECRET, "admin-wannabe", now + 60, 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_non_null(forged = strdup(tok));
    size_t last = strlen(forged) - 2;
    forged[last] = forged[last] == 'A' ? 'B' : 'A';
    assert_int_equal(ll_auth_verify(&c, a, forged, now), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token's signature does not verify");
    /* other's header and claims with tok's signature */
    free(forged);
    assert_non_null(forged = malloc(strlen(other) + strlen(tok) + 1));
    const char *sig = strrchr(tok, '.');
    size_t head = (size_t)(strrchr(other, '.') - other);
    memcpy(forged, other, head);
    strcpy(forged + head, sig);
    assert_int_equal(ll_auth_verify(&c, a, forged, now), LL_EAUTH);
    assert_int_equal(cache_hits(a, NULL), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(cache_hits(a, NULL), 1);
    free(forged);
    free(other);
    free(tok);
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* However many tokens arrive, the cache holds at most jwt-cache-size of
 * them; with 0 it holds none and every token is verified. */
static void test_token_cache_bounded(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;
    size_t n = 0;
    long long now = 2000000000LL;
    char sub[32], *tok = NULL;

    cache_setup(&fx, CACHE_SECRET, 8);
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    for (int i = 0; i < 200; i++) {
        snprintf(sub, sizeof(sub), "caller-%d", i);
        free(tok);
        tok = hs256(CACHE_SECRET, sub, now + 60, 0);
        assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
        assert_string_equal(c.sub, sub);
        cache_hits(a, &n);
        assert_true(n >= 1 && n <= 8);
    }
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0); /* the newest is kept */
    assert_int_equal(cache_hits(a, NULL), 1);
    ll_auth_free(a);

    fx.cfg.jwt_cache_size = 0;
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(cache_hits(a, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now + 60 + 31), LL_EAUTH);
    free(tok);
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* Keys change by starting again with new ones: a token kept by the old
 * verifier means nothing to the new one. */
static void test_token_cache_new_key(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL, *b = NULL;
    ll_caller c;
    long long now = 2000000000LL;
    char *tok;

    cache_setup(&fx, CACHE_SECRET, 64);
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    tok = hs256(CACHE_SECRET, "kept", now + 60, 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, now), 0);
    assert_int_equal(cache_hits(a, NULL), 1);
    cache_teardown(&fx);
    cache_setup(&fx, "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", 64);
    assert_int_equal(ll_auth_open(&b, &fx.cfg), 0);
    assert_int_equal(ll_auth_verify(&c, b, tok, now), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token's signature does not verify");
    free(tok);
    ll_auth_free(a);
    ll_auth_free(b);
    cache_teardown(&fx);
}

static void test_token_buckets(void **state)
{
    ll_ratelimit *rl = NULL;
    int retry = 0;
    assert_int_equal(ll_ratelimit_new(&rl, 2.0, 3.0, 4), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ll_ratelimit_take(&retry, rl, "sub:a", 1000), 1);
    assert_int_equal(ll_ratelimit_take(&retry, rl, "sub:a", 1000), 0);
    assert_int_equal(retry, 1);
    assert_int_equal(ll_ratelimit_take(&retry, rl, "sub:b", 1000), 1); /* its own bucket */
    assert_int_equal(ll_ratelimit_take(&retry, rl, "sub:a", 1500), 1); /* 0.5 s: one token */
    assert_int_equal(ll_ratelimit_take(&retry, rl, "sub:a", 1500), 0);
    /* Many callers: the table stays bounded and idle buckets make room. */
    for (int i = 0; i < 1000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "sub:%d", i);
        assert_int_equal(ll_ratelimit_take(&retry, rl, k, 100000 + i * 10000), 1);
    }
    ll_ratelimit_free(rl);
}

static void test_if_match(void **state)
{
    char a[LL_ETAG_MAX], b[LL_ETAG_MAX];
    const char *p1[] = {"premium", "1.2", "{}"}, *p2[] = {"premium", "1.2", "{\"a\":1}"};
    ll_etag_of(a, p1, 3);
    ll_etag_of(b, p2, 3);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 34);
    assert_true(ll_etag_matches(a, a));
    assert_true(ll_etag_matches("*", a));
    char list[120];
    snprintf(list, sizeof(list), "\"x\", %s", a);
    assert_true(ll_etag_matches(list, a));
    snprintf(list, sizeof(list), "W/%s", a);
    assert_false(ll_etag_matches(list, a)); /* weak never matches */
    assert_false(ll_etag_matches(b, a));
    assert_false(ll_etag_matches("", a));
    assert_false(ll_etag_matches("garbage", a));
}

/* --- times sent by callers (issue 11: no undefined behaviour) ---------------------- */

/* An HS256 token whose claims are the JSON text claims (a new string). */
static char *hs256_json(const char *secret, const char *claims)
{
    jwt_t *jwt = NULL;
    char *out;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)), 0);
    assert_non_null(out = jwt_encode_str(jwt));
    jwt_free(jwt);
    return out;
}

/* exp and nbf are NumericDates from 1970 to the end of year 9999: beyond,
 * a signed token is refused (401) before any arithmetic on the time (exp
 * INT64_MAX plus the leeway overflowed; a real beyond int64_t cannot even
 * be converted).  Run under UBSan (the sanitizer build), this test is what
 * fails if a sum or a conversion is undefined. */
static void test_time_claims_out_of_range(void **state)
{
    static const struct {
        const char *claims;
        const char *refusal; /* NULL: accepted */
    } cases[] = {
        {"{\"sub\":\"x\",\"exp\":9223372036854775807}",
         "the token's exp claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":1e300}",
         "the token's exp claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":-1e300}",
         "the token's exp claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":-1}",
         "the token's exp claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":253402300800}",
         "the token's exp claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":2000000100,\"nbf\":9223372036854775807}",
         "the token's nbf claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":2000000100,\"nbf\":-9223372036854775808}",
         "the token's nbf claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":2000000100,\"nbf\":1e19}",
         "the token's nbf claim is out of range (a time from 1970 to year 9999)"},
        {"{\"sub\":\"x\",\"exp\":253402300799}", NULL}, /* the last second of 9999 */
        {"{\"sub\":\"x\",\"exp\":253402300799.0,\"nbf\":0}", NULL},
        {"{\"sub\":\"x\",\"exp\":2000000100.75}", NULL},
    };
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;

    cache_setup(&fx, CACHE_SECRET, 64);
    fx.cfg.jwt_leeway = 300; /* the largest allowed */
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = hs256_json(CACHE_SECRET, cases[i].claims);
        for (int twice = 0; twice < 2; twice++) { /* the second from the cache when kept */
            int rc = ll_auth_verify(&c, a, tok, 2000000000LL);
            if (cases[i].refusal) {
                assert_int_equal(rc, LL_EAUTH);
                assert_string_equal(ll_error_last()->message, cases[i].refusal);
            } else {
                assert_int_equal(rc, 0);
                assert_string_equal(c.sub, "x");
            }
        }
        free(tok);
    }
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* The time of the request comes from the caller of ll_auth_verify: at its
 * extremes the window's sums saturate instead of overflowing, fresh and
 * kept tokens alike. */
static void test_time_window_extremes(void **state)
{
    cache_fixture fx;
    ll_auth *a = NULL;
    ll_caller c;
    char *tok;

    cache_setup(&fx, CACHE_SECRET, 64);
    fx.cfg.jwt_leeway = 300;
    assert_int_equal(ll_auth_open(&a, &fx.cfg), 0);
    tok = hs256(CACHE_SECRET, "edge", 253402300799LL, 1000);
    assert_int_equal(ll_auth_verify(&c, a, tok, LLONG_MAX), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token has expired");
    assert_int_equal(ll_auth_verify(&c, a, tok, LLONG_MIN), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token is not valid yet (nbf)");
    assert_int_equal(ll_auth_verify(&c, a, tok, 2000000000LL), 0); /* kept now */
    assert_int_equal(ll_auth_verify(&c, a, tok, LLONG_MIN), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token is not valid yet (nbf)");
    assert_int_equal(ll_auth_verify(&c, a, tok, 2000000000LL), 0);
    assert_int_equal(ll_auth_verify(&c, a, tok, LLONG_MAX), LL_EAUTH);
    assert_string_equal(ll_error_last()->message, "the token has expired");
    free(tok);
    ll_auth_free(a);
    cache_teardown(&fx);
}

/* A JWKS document from memory (the fuzz harness's way in) loads like the
 * file: usable keys kept, others skipped, none usable refused. */
static void test_jwks_text(void **state)
{
    static const char ec[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec-1\","
                             "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                             "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
                             "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}";
    ll_config cfg;
    ll_auth *a = NULL;
    char keys[200];

    ll_config_defaults(&cfg);
    assert_int_equal(ll_auth_open_jwks_text(&a, &cfg, ec, strlen(ec), "mem.jwks"), 0);
    ll_auth_describe(keys, sizeof(keys), a);
    assert_string_equal(keys, "ES256:ec-1");
    ll_auth_free(a);
    assert_int_equal(ll_auth_open_jwks_text(&a, &cfg, "{\"keys\":[]}", 11, "mem.jwks"),
                     LL_EINVALID);
    assert_null(a);
    assert_string_equal(ll_error_last()->message,
                        "mem.jwks: no usable signing key (RSA or EC P-256)");
    assert_int_equal(ll_auth_open_jwks_text(&a, &cfg, "{\"keys\":1,\"keys\":2}", 19, "mem.jwks"),
                     LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "mem.jwks: not a JWKS: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_authors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_mint_and_verify),
        cmocka_unit_test(test_short_secret_refused),
        cmocka_unit_test(test_token_cache_expiry),
        cmocka_unit_test(test_token_cache_nbf),
        cmocka_unit_test(test_token_cache_whole_token),
        cmocka_unit_test(test_token_cache_bounded),
        cmocka_unit_test(test_token_cache_new_key),
        cmocka_unit_test(test_token_buckets),
        cmocka_unit_test(test_if_match),
        cmocka_unit_test(test_time_claims_out_of_range),
        cmocka_unit_test(test_time_window_extremes),
        cmocka_unit_test(test_jwks_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

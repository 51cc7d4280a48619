/* auth.h - bearer tokens (JWT) and what they allow.
 *
 * landlord verifies the tokens its callers send (Authorization: Bearer) with
 * libjwt against the keys configured: an HS256 secret, an RS256 or ES256
 * public key, or the keys of a JWKS file (chosen by the token's kid).  Each
 * key is bound to one algorithm and a token is only ever checked with keys
 * of the algorithm its header names; `none` never verifies.  exp is
 * required; exp and nbf are checked with a small leeway; iss and aud when
 * configured.  A verified token becomes an ll_caller: who (sub, and the name
 * and email claims when usable) and the scopes of its `scope` claim.
 *
 * Secrets and tokens never appear in messages: errors say what is wrong with
 * a token, never what it holds.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call (read, never kept or freed); `char *out, size_t cap`
 * buffers are the caller's.
 */
#ifndef LANDLORD_AUTH_H
#define LANDLORD_AUTH_H

#include <stddef.h>

#include "landlord/config.h"

typedef struct ll_auth ll_auth;

/* The scopes a token may carry (OAuth 2.0 access token `scope` claim). */
#define LL_SCOPES                                                                                  \
    "tenants:read tenants:write tiers:write releases:write rollouts:write "                        \
    "webhooks:write admin"

/* Longest token accepted, in bytes. */
#define LL_TOKEN_MAX 8192

/* An authenticated caller. */
typedef struct ll_caller {
    char sub[256];     /* the token's subject */
    char name[256];    /* the name claim when usable, else "" */
    char email[256];   /* the email claim when it looks like one, else "" */
    char scopes[1024]; /* the scope claim, space-separated ("" when none) */
    long long exp;     /* expiry, unix seconds */
} ll_caller;

/* Loads the keys cfg names (jwt-secret-file, jwt-public-key-file,
 * jwt-jwks-file).  With none of them set, the secret is <data>/jwt-secret,
 * created (32 random bytes as hex, mode 0600) when missing; the path is
 * logged, never the content.  Errors (unreadable or short secret, a key that
 * is neither RSA nor EC P-256, a JWKS without a usable key) are LL_EINVALID
 * with a hint.  *out: a new handle (ll_auth_free); cfg is read, not kept. */
int ll_auth_open(ll_auth **out, const ll_config *cfg);

void ll_auth_free(ll_auth *a);

/* "HS256,RS256:<kid>,...": the keys loaded, for the start-up log line. */
void ll_auth_describe(char *out, size_t cap, const ll_auth *a);

/* Verifies token (the text after "Bearer ") at now_s (unix seconds) and
 * fills *out.  LL_EAUTH with a message fit for a 401 body when it is
 * missing, malformed, signed by no configured key, of another algorithm
 * than its key, expired, not valid yet, or for another issuer or audience.
 * A token that verified is kept (by its SHA-256, up to jwt-cache-size of
 * them) and later served without the signature check, exp and nbf still
 * checked at now_s.  Safe from any thread. */
int ll_auth_verify(ll_caller *out, const ll_auth *a, const char *token, long long now_s);

/* The verified-token cache's counters: *hits, requests it answered, and
 * *entries, tokens it holds now (both 0 without a cache). */
void ll_auth_cache_stats(unsigned long long *hits, size_t *entries, const ll_auth *a);

/* 1 when the caller may use a route that needs scope: it carries the scope
 * or admin; tenants:write also allows tenants:read. */
int ll_caller_has_scope(const ll_caller *c, const char *scope);

/* The commit author for a caller: the name claim (else sub) and the email
 * claim (else <sub>@<domain>, with characters an address cannot hold in sub
 * replaced by '-'). */
void ll_caller_author(char *name, size_t name_cap, char *email, size_t email_cap,
                      const ll_caller *c, const char *domain);

/* The caller of the request this thread is handling (set by the HTTP layer
 * around each handler; borrowed), or NULL.  Use cases take the commit author
 * from it. */
const ll_caller *ll_caller_current(void);
void ll_caller_set_current(const ll_caller *c);

/* Where the HS256 secret is for cfg: jwt-secret-file, or <data>/jwt-secret
 * when no jwt-* key is configured; "" when only public keys are (then no
 * token can be minted here). */
void ll_auth_secret_path(char *out, size_t cap, const ll_config *cfg);

/* Mints an HS256 token with the secret of cfg (created like ll_auth_open
 * does when it is the embedded default): claims sub, scope (scopes joined
 * by spaces; each must be one of LL_SCOPES), iat, exp = now + ttl_s, jti,
 * and iss/aud when configured, name/email when given (may be NULL).
 * *out is a new string (caller frees). */
int ll_auth_mint(char **out, const ll_config *cfg, const char *sub, const char *scopes,
                 const char *name, const char *email, long ttl_s);

/* Reads the PEM certificate (chain) and private key files for HTTPS and
 * checks that the key belongs to the first certificate.  *out_cert and
 * *out_key are new NUL-terminated buffers (the key is the caller's to wipe
 * and free).  LL_EINVALID with a hint. */
int ll_tls_load(char **out_cert, char **out_key, const char *cert_file, const char *key_file);

/* Parses a duration: "90" or "90s", "15m", "2h", "7d".  LL_EINVALID. */
int ll_parse_duration(long *out, const char *text);

#endif

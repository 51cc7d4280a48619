/* auth_mint.c - local tokens: `landlord token` mints HS256 tokens with the
 * secret landlord verifies (jwt-secret-file, or <data>/jwt-secret made on
 * first use), for known scopes only, with a lifetime given as a duration
 * (ll_parse_duration: 90s, 15m, 1h, 7d; at most 366 days).
 *
 * Pure but for the secret file and the clock; reentrant.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jwt.h>

#include "landlord/auth.h"
#include "auth_keys.h"
#include "landlord/error.h"
#include "landlord/util.h"

/* --- local tokens -------------------------------------------------------------------- */

/* The seconds in a duration's unit (s, m, h or d; none is seconds), 0 for
 * anything else. */
static long unit_seconds(const char *unit)
{
    if (!unit[0])
        return 1;
    if (unit[1])
        return 0;
    switch (unit[0]) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    default:
        return 0;
    }
}

int ll_parse_duration(long *out, const char *text)
{
    char *end;
    long v, mult;
    errno = 0;
    v = strtol(text, &end, 10);
    mult = unit_seconds(end);
    if (errno || end == text || v <= 0 || !mult || v > 366L * 86400 / mult) {
        ll_error_set(LL_EINVALID, "'%.32s' is not a duration of at most 366 days", text);
        ll_error_hint("write 90s, 15m, 1h or 7d");
        return LL_EINVALID;
    }
    *out = v * mult;
    return 0;
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
    if (!ll_auth_clean_text(sub))
        return ll_error_set(LL_EINVALID, "--sub must be 1-255 characters without control "
                                         "characters or angle brackets");
    ll_auth_secret_path(path, sizeof(path), cfg);
    if (!path[0]) {
        ll_error_set(LL_EINVALID, "no HS256 secret is configured: tokens come from the identity "
                                  "provider that owns jwt-public-key-file / jwt-jwks-file");
        ll_error_hint("set jwt-secret-file as well to mint local tokens");
        return LL_EINVALID;
    }
    if (!cfg->jwt_secret_file[0] && (error = ll_auth_ensure_secret(path, cfg->data)) < 0)
        return error;
    if ((error = ll_auth_read_secret(&secret, &len, path)) < 0)
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

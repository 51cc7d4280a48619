/* admit.c - who may ask: a route's scope says whether a bearer token is
 * needed ("public": none; "metrics": none unless metrics-auth is 1);
 * lib/access/auth.c verifies it into an ll_caller; the caller must hold
 * the scope (403 otherwise) and stay within its token bucket
 * (lib/access/ratelimit.c, 429 with Retry-After).  A request without a
 * valid token is rate-limited by its client address before it is told
 * 401, so guessing tokens costs the guesser.
 *
 * Tokens never reach a log line or an error body: only the reason a token
 * was refused, and the caller's sub once it verified, are ever written.
 *
 * Threads: the limiter is made before the daemon starts and freed after
 * it stopped; ll_ratelimit is safe to share between the workers.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "landlord/error.h"
#include "landlord/ratelimit.h"
#include "admit.h"
#include "problem.h"
#include "routes.h"

static ll_ratelimit *limiter; /* per caller; NULL when rate-limit is 0 */

int ll_admit_start(const ll_config *cfg)
{
    if (cfg->rate_limit <= 0)
        return 0;
    return ll_ratelimit_new(&limiter, (double)cfg->rate_limit, (double)cfg->rate_limit_burst,
                            10000);
}

void ll_admit_stop(void)
{
    ll_ratelimit_free(limiter);
    limiter = NULL;
}

/* 401 with WWW-Authenticate (RFC 6750): why, never the token. */
static enum MHD_Result unauthorized(ll_req *req, const char *why, int had_token)
{
    if (had_token)
        snprintf(req->www_authenticate, sizeof(req->www_authenticate),
                 "Bearer realm=\"landlord\", error=\"invalid_token\", error_description=\"%.200s\"",
                 why);
    else
        snprintf(req->www_authenticate, sizeof(req->www_authenticate), "Bearer realm=\"landlord\"");
    return ll_reply_problem(req, 401, "unauthorized", why,
                            json_pack("{s:s}", "hint",
                                      "send Authorization: Bearer <token>; `landlord token` mints "
                                      "one from the server's secret"));
}

/* The caller's address, for rate-limiting requests without a valid token. */
static void client_addr(ll_req *req, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host,
                      sizeof(host));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host,
                      sizeof(host));
    }
    snprintf(out, cap, "ip:%s", host);
}

/* 1 when key may go on; else the 429 is answered. */
static int within_rate(ll_req *req, const char *key, enum MHD_Result *ret)
{
    int retry = 0;
    if (!limiter || ll_ratelimit_take(&retry, limiter, key, ll_monotonic_ms()))
        return 1;
    req->retry_after = retry;
    *ret = ll_reply_problem(req, 429, "too-many-requests",
                            "too many requests from this caller; slow down",
                            json_pack("{s:i}", "retry_after", retry));
    return 0;
}

/* Authenticates the request when its route needs a token, and checks the
 * scope and the caller's rate.  0: go on; else the answer was sent. */
int ll_admit(ll_req *req, enum MHD_Result *ret)
{
    const ll_config *cfg = ll_core_config(req->core);
    const char *scope = req->route->scope, *h;
    char key[300], detail[LL_ERROR_MSG_MAX];
    int error;

    if (strcmp(scope, "public") == 0 || (strcmp(scope, "metrics") == 0 && !cfg->metrics_auth))
        return 0;
    h = ll_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        client_addr(req, key, sizeof(key));
        if (within_rate(req, key, ret))
            *ret = unauthorized(req,
                                h ? "the Authorization header is not a bearer token"
                                  : "this route needs a bearer token",
                                h != NULL);
        return -1;
    }
    h += 7;
    while (*h == ' ')
        h++;
    error = ll_auth_verify(&req->caller, ll_core_auth(req->core), h, (long long)time(NULL));
    if (error < 0) {
        snprintf(detail, sizeof(detail), "%s", ll_error_last()->message);
        client_addr(req, key, sizeof(key));
        if (within_rate(req, key, ret))
            *ret = unauthorized(req, detail, 1);
        return -1;
    }
    req->authenticated = 1;
    if (strcmp(scope, "metrics") != 0 && !ll_caller_has_scope(&req->caller, scope)) {
        snprintf(detail, sizeof(detail), "this route needs the scope %s, which the token lacks",
                 scope);
        snprintf(req->www_authenticate, sizeof(req->www_authenticate),
                 "Bearer realm=\"landlord\", error=\"insufficient_scope\", scope=\"%s\"", scope);
        *ret = ll_reply_problem(req, 403, "forbidden", detail, json_pack("{s:s}", "scope", scope));
        return -1;
    }
    if (ll_caller_has_scope(&req->caller, "admin"))
        return 0; /* the operator: not rate-limited */
    snprintf(key, sizeof(key), "sub:%s", req->caller.sub);
    if (!within_rate(req, key, ret))
        return -1;
    return 0;
}

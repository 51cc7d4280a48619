/* routes.c - the one declarative route table.
 *
 * Follow a request from here: method + pattern lead to a handler in
 * handlers/, and the scope column says what a caller's bearer token must
 * carry (http.c enforces it before the body is read): "public" needs no
 * token, "metrics" none unless metrics-auth is 1 (then any valid token),
 * anything else that scope (admin allows everything; tenants:write also
 * allows tenants:read).
 * tests/api/test_openapi.py holds this table equal to openapi/openapi.yaml.
 */
#include <stdio.h>
#include <string.h>

#include "handlers/handlers.h"
#include "routes.h"

const ll_route ll_routes[] = {
    {"GET", "/", h_root_get, "public", LL_BODY_JSON},
    {"GET", "/healthz", h_healthz_get, "public", LL_BODY_JSON},
    {"GET", "/readyz", h_readyz_get, "public", LL_BODY_JSON},
    {"GET", "/openapi.yaml", h_openapi_get, "public", LL_BODY_JSON},
    {"GET", "/api/v1/tenants", h_tenants_list, "tenants:read", LL_BODY_JSON},
    {"POST", "/api/v1/tenants", h_tenants_create, "tenants:write", LL_BODY_JSON},
    {"GET", "/api/v1/tenants/{id}", h_tenants_get, "tenants:read", LL_BODY_JSON},
    {"PATCH", "/api/v1/tenants/{id}", h_tenants_update, "tenants:write", LL_BODY_JSON},
    {"DELETE", "/api/v1/tenants/{id}", h_tenants_delete, "tenants:write", LL_BODY_JSON},
    {"GET", "/api/v1/tenants/{id}/history", h_tenants_history, "tenants:read", LL_BODY_JSON},
    {"GET", "/api/v1/tiers", h_tiers_list, "tenants:read", LL_BODY_JSON},
    {"GET", "/api/v1/tiers/{name}", h_tiers_get, "tenants:read", LL_BODY_JSON},
    {"PUT", "/api/v1/tiers/{name}", h_tiers_put, "tiers:write", LL_BODY_JSON},
    {"DELETE", "/api/v1/tiers/{name}", h_tiers_delete, "tiers:write", LL_BODY_JSON},
    {"GET", "/api/v1/audit", h_audit_list, "admin", LL_BODY_JSON},
    {"GET", "/api/v1/operations/{id}", h_operations_get, "tenants:read", LL_BODY_JSON},
    {"GET", "/api/v1/releases", h_releases_list, "tenants:read", LL_BODY_JSON},
    {"POST", "/api/v1/releases", h_releases_create, "releases:write", LL_BODY_CHART},
    {"GET", "/api/v1/releases/{version}", h_releases_get, "tenants:read", LL_BODY_JSON},
    {"DELETE", "/api/v1/releases/{version}", h_releases_delete, "releases:write", LL_BODY_JSON},
    {"GET", "/api/v1/rollouts", h_rollouts_list, "tenants:read", LL_BODY_JSON},
    {"POST", "/api/v1/rollouts", h_rollouts_create, "rollouts:write", LL_BODY_JSON},
    {"GET", "/api/v1/rollouts/{id}", h_rollouts_get, "tenants:read", LL_BODY_JSON},
    {"POST", "/api/v1/rollouts/{id}/pause", h_rollouts_pause, "rollouts:write", LL_BODY_JSON},
    {"POST", "/api/v1/rollouts/{id}/resume", h_rollouts_resume, "rollouts:write", LL_BODY_JSON},
    {"POST", "/api/v1/rollouts/{id}/abort", h_rollouts_abort, "rollouts:write", LL_BODY_JSON},
    {"POST", "/api/v1/rollouts/{id}/rollback", h_rollouts_rollback, "rollouts:write", LL_BODY_JSON},
    {"GET", "/api/v1/events", h_events_stream, "tenants:read", LL_BODY_JSON},
    {"GET", "/api/v1/webhooks", h_webhooks_list, "webhooks:write", LL_BODY_JSON},
    {"POST", "/api/v1/webhooks", h_webhooks_create, "webhooks:write", LL_BODY_JSON},
    {"GET", "/api/v1/webhooks/{id}", h_webhooks_get, "webhooks:write", LL_BODY_JSON},
    {"DELETE", "/api/v1/webhooks/{id}", h_webhooks_delete, "webhooks:write", LL_BODY_JSON},
    {"GET", "/api/v1/webhooks/{id}/deliveries", h_webhooks_deliveries, "webhooks:write",
     LL_BODY_JSON},
    {"GET", "/metrics", h_metrics_get, "metrics", LL_BODY_JSON},
    {NULL, NULL, NULL, NULL, LL_BODY_JSON},
};

/* Longest path routed; longer ones are 404. */
#define PATH_MAX_ROUTED 2047

static int match(const char *pattern, const char *path, const char **params, int *nparams);

ll_body_kind ll_route_body_kind(const char *method, const char *path)
{
    const char *params[LL_MAX_PARAMS];
    int nparams = 0;
    if (strlen(path) > PATH_MAX_ROUTED)
        return LL_BODY_JSON;
    for (const ll_route *r = ll_routes; r->method; r++) {
        if (strcmp(r->method, method) == 0 && match(r->pattern, path, params, &nparams))
            return r->body;
    }
    return LL_BODY_JSON;
}

/* Matches path against pattern segment by segment, without changing it;
 * captures {name} values into params (pointers into path, each running to
 * the end of path: the caller cuts them at their '/'). */
static int match(const char *pattern, const char *path, const char **params, int *nparams)
{
    const char *p = pattern;
    const char *s = path;
    int n = 0;

    if (strcmp(pattern, "/") == 0)
        return strcmp(path, "/") == 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pend = strchr(p, '/');
        const char *send = strchr(s, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        if (plen > 1 && p[0] == '{') {
            if (slen == 0 || n == LL_MAX_PARAMS)
                return 0;
            params[n++] = s;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    if (*p || *s)
        return 0;
    *nparams = n;
    return 1;
}

const ll_route *ll_route_match(ll_req *req, const char *method, const char *path,
                               unsigned *out_status, char *allow, size_t allow_cap)
{
    const char *params[LL_MAX_PARAMS];
    const ll_route *found = NULL;
    int nparams = 0, head = strcmp(method, "HEAD") == 0;
    size_t used = 0;

    allow[0] = '\0';
    *out_status = 404;
    if (strlen(path) > PATH_MAX_ROUTED)
        return NULL;
    /* The first route of this method (HEAD: GET's) whose pattern matches. */
    for (const ll_route *r = ll_routes; r->method && !found; r++) {
        if ((strcmp(r->method, method) == 0 || (head && strcmp(r->method, "GET") == 0)) &&
            match(r->pattern, path, params, &nparams))
            found = r;
    }
    if (!found) {
        /* 405 with the methods the path takes, or 404. */
        for (const ll_route *r = ll_routes; r->method; r++) {
            if (!match(r->pattern, path, params, &nparams))
                continue;
            *out_status = 405;
            if (!strstr(allow, r->method)) {
                int w =
                    snprintf(allow + used, allow_cap - used, "%s%s", used ? ", " : "", r->method);
                if (w > 0 && (size_t)w < allow_cap - used)
                    used += (size_t)w;
            }
        }
        return NULL;
    }
    /* Capture into req->segments, a copy of the path that lives as long as
     * the request (req->path stays whole for messages and logs). */
    match(found->pattern, req->segments, req->params, &req->nparams);
    for (int i = 0; i < req->nparams; i++) {
        char *slash = strchr((char *)req->params[i], '/');
        if (slash)
            *slash = '\0';
    }
    *out_status = 200;
    return found;
}

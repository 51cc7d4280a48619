/* routes.h - THE route table: every route's method, path pattern, handler and
 * required scope.  Patterns are literal segments and {name} captures. */
#ifndef LANDLORD_SERVER_ROUTES_H
#define LANDLORD_SERVER_ROUTES_H

#include <stddef.h>

#include "request.h"

/* Which cap a route's body has. */
typedef enum {
    LL_BODY_JSON = 0, /* http-max-body (the default) */
    LL_BODY_CHART     /* release-max-size: a chart archive */
} ll_body_kind;

struct ll_route {
    const char *method;
    const char *pattern;
    ll_handler handler;
    const char *scope; /* "public", "metrics" or an OAuth scope such as "tenants:read" */
    ll_body_kind body;
};

/* Terminated by an entry whose method is NULL. */
extern const ll_route ll_routes[];

/* The body kind of the route method + path would take (without touching
 * path); LL_BODY_JSON when none matches. */
ll_body_kind ll_route_body_kind(const char *method, const char *path);

/* Finds the route for method and path, filling req->params.  NULL when none:
 * *out_status is then 404, or 405 with allow holding the methods the path
 * takes ("GET, POST"). */
const ll_route *ll_route_match(ll_req *req, const char *method, const char *path,
                               unsigned *out_status, char *allow, size_t allow_cap);

#endif

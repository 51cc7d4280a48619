/* routes.h - THE route table: every route's method, path pattern, handler and
 * required scope.  Patterns are literal segments and {name} captures. */
#ifndef LANDLORD_SERVER_ROUTES_H
#define LANDLORD_SERVER_ROUTES_H

#include <stddef.h>

#include "http.h"

struct ll_route {
    const char *method;
    const char *pattern;
    ll_handler handler;
    const char *scope; /* "public" or an OAuth scope such as "tenants:read" */
};

/* Terminated by an entry whose method is NULL. */
extern const ll_route ll_routes[];

/* Finds the route for method and path, filling req->params.  NULL when none:
 * *out_status is then 404, or 405 with allow holding the methods the path
 * takes ("GET, POST"). */
const ll_route *ll_route_match(ll_req *req, const char *method, const char *path,
                               unsigned *out_status, char *allow, size_t allow_cap);

#endif

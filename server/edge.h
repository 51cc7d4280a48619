/* edge.h - the HTTP edge (edge.c): deadlines for request headers, room
 * kept for requests, strict framing.  http.c calls these from its
 * libmicrohttpd callbacks. */
#ifndef LANDLORD_SERVER_EDGE_H
#define LANDLORD_SERVER_EDGE_H

#include <stddef.h>
#include <microhttpd.h>

#include "landlord/config.h"

/* Sizes the edge for cfg before the daemon starts: 0, or LL_EINVALID when
 * http-pending-limit leaves no room for requests (message and hint set). */
int ll_edge_init(const ll_config *cfg);

/* Frees what ll_edge_init made, once the daemon has stopped. */
void ll_edge_free(void);

/* MHD_OPTION_NOTIFY_CONNECTION: a connection's slot is made ("started") and
 * freed ("closed"); a new one may close older ones to make room. */
void ll_edge_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);

/* A request's header is complete (the access handler's first call): the
 * connection has no deadline while the request is served. */
void ll_edge_serving(struct MHD_Connection *conn);

/* A request ended (MHD_OPTION_NOTIFY_COMPLETED): the connection's next
 * header has http-connection-timeout + http-header-timeout. */
void ll_edge_idle(struct MHD_Connection *conn);

/* Closes the connections past their deadline; call it often (every 20 ms). */
void ll_edge_reap(void);

/* The framing rule the request on conn breaks (its method and version as
 * the access handler got them), or NULL when it is sound.  header (of
 * header_cap bytes) gets the name of the header at fault, or "" when it
 * cannot be shown.  Returns a static string. */
const char *ll_edge_framing(struct MHD_Connection *conn, const char *method, const char *version,
                            char *header, size_t header_cap);

#endif

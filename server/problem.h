/* problem.h - application/problem+json replies (RFC 9457).  The only place
 * where error codes become HTTP statuses. */
#ifndef LANDLORD_SERVER_PROBLEM_H
#define LANDLORD_SERVER_PROBLEM_H

#include "request.h"

/* Sends a problem.  type is the class name ("invalid-request"); the type
 * member becomes "urn:landlord:problem:<class>".  extra's members (may be
 * NULL; stolen) are merged into the body. */
enum MHD_Result ll_reply_problem(ll_req *req, unsigned status, const char *type, const char *detail,
                                 json_t *extra);

/* Sends the problem for ll_error_last() with the code err. */
enum MHD_Result ll_reply_error(ll_req *req, int err);

/* Sends the problem for err with extra members (stolen). */
enum MHD_Result ll_reply_error_with(ll_req *req, int err, json_t *extra);

#endif

/* auth_int.h - auth.c's parser of a JWKS document without a file, for the
 * unit tests and the fuzz harnesses (tests/fuzz); private to lib/. */
#ifndef LANDLORD_AUTH_INT_H
#define LANDLORD_AUTH_INT_H

#include <stddef.h>

#include "landlord/auth.h"

/* An ll_auth whose keys are the usable signing keys of the JWKS document
 * text[0..len) (what names it in messages), with cfg's issuer, audience,
 * leeway and cache; cfg's key files are not read.  The same checks as
 * jwt-jwks-file in ll_auth_open: LL_EINVALID with a hint.  *out is new
 * (ll_auth_free). */
int ll_auth_open_jwks_text(ll_auth **out, const ll_config *cfg, const char *text, size_t len,
                           const char *what);

#endif

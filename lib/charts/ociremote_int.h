/* ociremote_int.h - ociremote.c's parsers of what a registry answers,
 * reachable without a network: the code a push runs on the bytes it reads,
 * for the unit tests and the fuzz harnesses (tests/fuzz); private to lib/. */
#ifndef LANDLORD_OCIREMOTE_INT_H
#define LANDLORD_OCIREMOTE_INT_H

#include <stddef.h>
#include <stdint.h>

/* A token server's 200 answer body[0..len) (distribution's token spec):
 * *out the token ("token", else "access_token"; a new string the caller
 * wipes and frees) and *out_use_ms how long to use it: expires_in (60 s
 * when absent, at most a day) less min(half of it, 30 s).  LL_ENOTFOUND
 * without a token, LL_EMALFORMED for a token with blanks or control
 * characters (it would break the header). */
int ll_ociremote_token_answer(char **out, int64_t *out_use_ms, const char *body, size_t len);

/* 1 when the manifest body[0..len) has a chart layer (Helm's media type,
 * or application/tar+gzip) of digest layer_digest and a config digest;
 * config (cap bytes) gets the config digest ("" when none). */
int ll_ociremote_manifest_holds(char *config, size_t cap, const char *body, size_t len,
                                const char *layer_digest);

/* "CODE: message" of a registry's error body[0..len), its text when it is
 * short and not JSON (ECR's "Not Authorized"), else "". */
void ll_ociremote_error_text(char *out, size_t cap, const char *body, size_t len);

#endif

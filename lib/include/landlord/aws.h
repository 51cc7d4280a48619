/* aws.h - AWS authentication for Amazon ECR: Signature Version 4, the
 * SDKs' credential chain, and the two ECR API actions landlord calls.
 *
 * SigV4 (sigv4.c) is a pure function, checked against AWS's published
 * test suite (tests/unit/test_aws.c).  Credentials (aws.c) come, in the
 * order the SDKs try them, from the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), from a web identity (IRSA:
 * AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, exchanged with STS
 * AssumeRoleWithWebIdentity) or from the EKS Pod Identity agent
 * (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 * or AWS_CONTAINER_AUTHORIZATION_TOKEN).  Endpoints follow the SDKs'
 * overrides AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL;
 * AWS_CA_BUNDLE names extra CAs for them.  Temporary credentials and the
 * ECR authorization token are cached and fetched again before they expire.
 *
 * Secrets never reach a log line or an error message.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call (read, never kept or freed); `char *out, size_t cap`
 * buffers are the caller's.
 */
#ifndef LANDLORD_AWS_H
#define LANDLORD_AWS_H

#include <stddef.h>
#include <stdint.h>

/* --- Signature Version 4 (sigv4.c) --- */

typedef struct ll_sigv4_header {
    const char *name;
    const char *value;
} ll_sigv4_header;

typedef struct ll_sigv4_request {
    const char *method;             /* "POST" */
    const char *path;               /* the path as sent, e.g. "/" */
    const char *query;              /* the query as sent, without '?'; NULL or "" for none */
    const ll_sigv4_header *headers; /* every header to sign, host and x-amz-date included */
    size_t nheaders;
    const void *payload;
    size_t payload_len;
} ll_sigv4_request;

typedef struct ll_sigv4 {
    char *canonical_request;
    char *string_to_sign;
    char *authorization; /* the Authorization header's value */
} ll_sigv4;

/* Signs req: amz_date is the request's X-Amz-Date ("20150830T123600Z"),
 * region and service the credential scope's.  Header names are compared
 * without case, values trimmed with inner runs of spaces collapsed, repeated
 * headers joined with ',' in the order given; the path is normalised ("."
 * and ".." segments, repeated '/') and URI-encoded, the query sorted and
 * URI-encoded.  out's strings are new (ll_sigv4_free). */
int ll_sigv4_sign(ll_sigv4 *out, const ll_sigv4_request *req, const char *access_key_id,
                  const char *secret_access_key, const char *region, const char *service,
                  const char *amz_date);
void ll_sigv4_free(ll_sigv4 *s);

/* --- credentials and ECR (aws.c) --- */

/* 1 when host is an ECR registry (<account>.dkr.ecr.<region>.amazonaws.com,
 * or .amazonaws.com.cn); region (cap bytes) gets its region. */
int ll_ecr_host_region(char *region, size_t cap, const char *host);

typedef struct ll_aws ll_aws;

typedef struct ll_aws_options {
    const char *region; /* required */
    int timeout_s;      /* per call to STS, the Pod Identity agent or ECR; default 30 */
} ll_aws_options;

/* Reads the AWS_* environment once (token files are read again on every
 * exchange: kubelet rotates them).  Never fails for missing credentials:
 * that is reported by the first call needing them.  LL_EINVALID for an
 * endpoint override that is not https (http only to a loopback address).  *out: a new handle
 * (ll_aws_free); opts is read, not kept. */
int ll_aws_open(ll_aws **out, const ll_aws_options *opts);
void ll_aws_free(ll_aws *a);

/* Where credentials come from: "environment", "web-identity",
 * "pod-identity" or "none" (borrowed). */
const char *ll_aws_credential_source(const ll_aws *a);

/* The registry's Basic credential: ECR's authorizationToken (base64 of
 * "AWS:<password>"), from a cache refreshed before expiresAt; fresh 1
 * forces GetAuthorizationToken.  *out is a new string the caller wipes and
 * frees.  LL_EUPSTREAM (AWS refused: the message names the call, the HTTP
 * status and the error type), LL_EAUTH (no credentials found). */
int ll_ecr_authorization(char **out, ll_aws *a, int fresh);

/* CreateRepository (tag immutability IMMUTABLE, encryption AES256); a
 * repository that exists already is success. */
int ll_ecr_create_repository(ll_aws *a, const char *name);

#endif

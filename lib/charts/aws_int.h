/* aws_int.h - aws.c's parsers of what AWS answers (STS, the Pod Identity
 * agent, ECR), reachable without a network: the code a fetch runs on the
 * bytes it reads, for the unit tests and the fuzz harnesses (tests/fuzz);
 * private to lib/. */
#ifndef LANDLORD_AWS_INT_H
#define LANDLORD_AWS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "landlord/aws.h"

typedef enum {
    LL_AWS_WEB_IDENTITY,          /* STS AssumeRoleWithWebIdentity (JSON) */
    LL_AWS_POD_IDENTITY,          /* the Pod Identity agent */
    LL_AWS_ECR_TOKEN,             /* ECR GetAuthorizationToken */
    LL_AWS_ECR_CREATE_REPOSITORY, /* ECR CreateRepository */
} ll_aws_answer;

/* Takes an answer of kind (status, the X-Amzn-Errortype header errtype or
 * NULL, body[0..len)) as the fetch that asked would: credentials and the
 * ECR token are kept in a (and used by later calls until they are due),
 * a refusal is LL_EUPSTREAM with its message. */
int ll_aws_take_answer(ll_aws *a, ll_aws_answer kind, long status, const char *errtype,
                       const char *body, size_t len);

/* When a credential or token that expires at expires (epoch seconds) is
 * fetched again, seen at now: min(5 min, half its remaining life) before
 * it expires, or now when it has expired.  Any two values: no overflow. */
int64_t ll_aws_refresh_time(int64_t now, int64_t expires);

#endif

/* fuzz_aws.c - what AWS answers: STS AssumeRoleWithWebIdentity (JSON), the
 * EKS Pod Identity agent, ECR GetAuthorizationToken and CreateRepository,
 * errors included.  The first byte picks the answer's kind (low 2 bits)
 * and status (200, 400, 403, 500, from the next 2 bits; bit 4 adds an
 * X-Amzn-Errortype header); the rest is the body.  Each input gets a fresh
 * client (region us-east-1, no credentials configured). */
#include <stdint.h>
#include <stdlib.h>

#include "charts/aws_int.h"
#include "landlord/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 403, 500};
    ll_aws_options opts = {.region = "us-east-1", .timeout_s = 5};
    ll_aws *a = NULL;

    ll_log_threshold = LL_LOG_ERROR;
    if (size == 0 || ll_aws_open(&a, &opts) != 0)
        return 0;
    ll_aws_take_answer(a, (ll_aws_answer)(data[0] & 3), statuses[(data[0] >> 2) & 3],
                       data[0] & 16 ? "com.amazonaws.ecr#RepositoryAlreadyExistsException:x" : NULL,
                       (const char *)data + 1, size - 1);
    ll_aws_free(a);
    return 0;
}

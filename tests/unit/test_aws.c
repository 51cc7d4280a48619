/* Unit tests of lib/charts/sigv4.c and the pure parts of lib/charts/aws.c: Signature
 * Version 4 against AWS's published test suite (aws-sig-v4-test-suite:
 * credentials AKIDEXAMPLE, region us-east-1, service "service", 20150830T123600Z),
 * each case checked at every step (canonical request, string to sign,
 * Authorization header); and the recognition of ECR registry hosts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "charts/aws_int.h"
#include "landlord/aws.h"
#include "landlord/error.h"

#define AKID   "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE   "20150830T123600Z"
#define SCOPE  "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
#define CRED   "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
#define EMPTY  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HOST                                                                                       \
    {                                                                                              \
        "Host", "example.amazonaws.com"                                                            \
    }
#define XDATE                                                                                      \
    {                                                                                              \
        "X-Amz-Date", DATE                                                                         \
    }
#define TOKEN                                                                                      \
    "AQoDYXdzEPT//////////"                                                                        \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"                     \
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/"                                                         \
    "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7W"                                    \
    "Z0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"          \
    "scqKmlzm8F"                                                                                   \
    "DrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
#define UNRESERVED "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

typedef struct vector {
    const char *name;
    const char *method, *path, *query;
    ll_sigv4_header headers[8];
    const char *body;
    const char *canonical;      /* the suite's .creq */
    const char *string_to_sign; /* .sts */
    const char *authorization;  /* .authz */
} vector;

/* The request of each case as its .req file gives it, and the three
 * expected texts. */
static const vector vectors[] = {
    {"get-vanilla",
     "GET",
     "/",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {HOST, XDATE},
     "",
     "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-key",
     "GET",
     "/",
     "Param1=value2&Param1=Value1",
     {HOST, XDATE},
     "",
     "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-order-value",
     "GET",
     "/",
     "Param1=value2&Param1=value1",
     {HOST, XDATE},
     "",
     "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/",
     UNRESERVED "=" UNRESERVED,
     {HOST, XDATE},
     "",
     "GET\n/\n" UNRESERVED "=" UNRESERVED "\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-unreserved",
     "GET",
     "/" UNRESERVED,
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/" UNRESERVED "\n\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-space",
     "GET",
     "/example space/",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    {"get-header-value-trim",
     "GET",
     "/",
     NULL,
     {HOST, {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b "
     "c\"\nx-amz-date:" DATE "\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY,
     SCOPE "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
     CRED "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
          "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     NULL,
     {HOST, {"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:" DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY,
     SCOPE "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
     CRED "SignedHeaders=host;my-header1;x-amz-date, "
          "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-order",
     "GET",
     "/",
     NULL,
     {HOST,
      {"My-Header1", "value4"},
      {"My-Header1", "value1"},
      {"My-Header1", "value3"},
      {"My-Header1", "value2"},
      XDATE},
     "",
     "GET\n/"
     "\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:" DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY,
     SCOPE "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
     CRED "SignedHeaders=host;my-header1;x-amz-date, "
          "Signature=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"post-vanilla",
     "POST",
     "/",
     NULL,
     {HOST, XDATE},
     "",
     "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-vanilla-query",
     "POST",
     "/",
     "Param1=value1",
     {HOST, XDATE},
     "",
     "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:" DATE
     "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-header-key-case",
     "POST",
     "/",
     NULL,
     {{"host", "example.amazonaws.com"}, XDATE},
     "",
     "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-sort",
     "POST",
     "/",
     NULL,
     {HOST, {"My-Header1", "value1"}, XDATE},
     "",
     "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:" DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY,
     SCOPE "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
     CRED "SignedHeaders=host;my-header1;x-amz-date, "
          "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
    {"post-header-value-case",
     "POST",
     "/",
     NULL,
     {HOST, {"My-Header1", "VALUE1"}, XDATE},
     "",
     "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:" DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY,
     SCOPE "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
     CRED "SignedHeaders=host;my-header1;x-amz-date, "
          "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     NULL,
     {{"Content-Type", "application/x-www-form-urlencoded"}, HOST, XDATE},
     "Param1=value1",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
     "x-amz-date:" DATE "\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     SCOPE "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     CRED "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-sts-header-before",
     "POST",
     "/",
     NULL,
     {HOST, XDATE, {"X-Amz-Security-Token", TOKEN}},
     "",
     "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\nx-amz-security-token:" TOKEN
     "\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY,
     SCOPE "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
     CRED "SignedHeaders=host;x-amz-date;x-amz-security-token, "
          "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    {"normalize-path/get-relative",
     "GET",
     "/example/..",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-relative-relative",
     "GET",
     "/example1/example2/../..",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash",
     "GET",
     "//",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash-dot-slash",
     "GET",
     "/./",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash-pointless-dot",
     "GET",
     "/./example",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
    {"normalize-path/get-slashes",
     "GET",
     "//example//",
     NULL,
     {HOST, XDATE},
     "",
     "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:" DATE "\n\nhost;x-amz-date\n" EMPTY,
     SCOPE "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
     CRED "SignedHeaders=host;x-amz-date, "
          "Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
};

static void test_sigv4_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector *v = &vectors[i];
        size_t n = 0;
        while (n < 8 && v->headers[n].name)
            n++;
        ll_sigv4_request req = {v->method, v->path, v->query,       v->headers,
                                n,         v->body, strlen(v->body)};
        ll_sigv4 s;
        print_message("case %s\n", v->name);
        assert_int_equal(ll_sigv4_sign(&s, &req, AKID, SECRET, "us-east-1", "service", DATE), 0);
        assert_string_equal(s.canonical_request, v->canonical);
        assert_string_equal(s.string_to_sign, v->string_to_sign);
        assert_string_equal(s.authorization, v->authorization);
        ll_sigv4_free(&s);
    }
}

/* An ECR JSON 1.1 call: the shape landlord sends, signed the same way. */
static void test_sigv4_ecr_call_shape(void **state)
{
    (void)state;
    ll_sigv4_header h[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"Host", "api.ecr.eu-west-1.amazonaws.com"},
        {"X-Amz-Date", DATE},
        {"X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"},
    };
    ll_sigv4_request req = {"POST", "/", NULL, h, 4, "{}", 2};
    ll_sigv4 s;
    assert_int_equal(ll_sigv4_sign(&s, &req, AKID, SECRET, "eu-west-1", "ecr", DATE), 0);
    assert_non_null(strstr(s.authorization, "Credential=AKIDEXAMPLE/20150830/eu-west-1/ecr/"
                                            "aws4_request, SignedHeaders=content-type;host;"
                                            "x-amz-date;x-amz-target, Signature="));
    assert_null(strstr(s.authorization, SECRET));
    assert_null(strstr(s.canonical_request, SECRET));
    ll_sigv4_free(&s);
    /* A malformed date is refused, not signed. */
    assert_int_equal(ll_sigv4_sign(&s, &req, AKID, SECRET, "eu-west-1", "ecr", "2015-08-30"),
                     LL_EINVALID);
}

static void test_ecr_hosts(void **state)
{
    (void)state;
    char region[64];
    assert_int_equal(
        ll_ecr_host_region(region, sizeof(region), "123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        1);
    assert_string_equal(region, "us-east-1");
    assert_int_equal(ll_ecr_host_region(region, sizeof(region),
                                        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
                     1);
    assert_string_equal(region, "cn-north-1");
    assert_int_equal(ll_ecr_host_region(region, sizeof(region),
                                        "123456789012.dkr.ecr.eu-west-3.amazonaws.com:443"),
                     1);
    assert_string_equal(region, "eu-west-3");
    const char *not_ecr[] = {"registry.example",
                             "127.0.0.1:5000",
                             "dkr.ecr.us-east-1.amazonaws.com",
                             "12345.dkr.ecr.us-east-1.amazonaws.com",
                             "123456789012.dkr.ecr..amazonaws.com",
                             "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
                             "123456789012.dkr.ecr.us_east_1.amazonaws.com",
                             "public.ecr.aws",
                             NULL};
    for (const char **h = not_ecr; *h; h++)
        assert_int_equal(ll_ecr_host_region(region, sizeof(region), *h), 0);
}

/* When credentials and tokens are fetched again, at any times at all. */
static void test_refresh_time(void **state)
{
    assert_int_equal(ll_aws_refresh_time(1000, 1000 + 3600), 1000 + 3600 - 300);
    assert_int_equal(ll_aws_refresh_time(1000, 1000 + 100), 1000 + 50);
    assert_int_equal(ll_aws_refresh_time(1000, 900), 1000);
    assert_int_equal(ll_aws_refresh_time(INT64_MIN, INT64_MAX), INT64_MAX - 300);
    assert_int_equal(ll_aws_refresh_time(INT64_MAX, INT64_MIN), INT64_MAX);
    assert_int_equal(ll_aws_refresh_time(0, INT64_MIN), 0);
}

#define STS_ANSWER                                                                                 \
    "{\"AssumeRoleWithWebIdentityResponse\":{\"AssumeRoleWithWebIdentityResult\":{"                \
    "\"Credentials\":{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"s\",\"SessionToken\":"        \
    "\"t\",\"Expiration\":%s}}}}"

/* Answers of STS, the Pod Identity agent and ECR (the fuzz harness's way
 * in): expirations out of any range are no expiration (STS) or an hour
 * (ECR), never a conversion or a sum that overflows; a kept ECR token is
 * served without a call. */
static void test_answers(void **state)
{
    static const char *expirations[] = {"1514862300",
                                        "1e300",
                                        "-1e300",
                                        "9223372036854775807",
                                        "-9223372036854775808",
                                        "\"2026-08-20T16:00:00Z\"",
                                        "\"9999-12-31T23:59:59+23:59\""};
    ll_aws_options opts = {.region = "us-east-1"};
    ll_aws *a = NULL;
    char body[512], *tok = NULL;

    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_ROLE_ARN");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_ECR");
    unsetenv("AWS_ENDPOINT_URL_STS");
    assert_int_equal(ll_aws_open(&a, &opts), 0);
    for (size_t i = 0; i < sizeof(expirations) / sizeof(expirations[0]); i++) {
        snprintf(body, sizeof(body), STS_ANSWER, expirations[i]);
        assert_int_equal(ll_aws_take_answer(a, LL_AWS_WEB_IDENTITY, 200, NULL, body, strlen(body)),
                         0);
        snprintf(body, sizeof(body),
                 "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
                 "\"Expiration\":%s}",
                 expirations[i]);
        assert_int_equal(ll_aws_take_answer(a, LL_AWS_POD_IDENTITY, 200, NULL, body, strlen(body)),
                         0);
        snprintf(body, sizeof(body),
                 "{\"authorizationData\":[{\"authorizationToken\":\"QVdTOnB3\",\"expiresAt\":%s}]}",
                 expirations[i]);
        assert_int_equal(ll_aws_take_answer(a, LL_AWS_ECR_TOKEN, 200, NULL, body, strlen(body)), 0);
    }
    /* the last token answer (expiresAt unusable: an hour) is served as is */
    assert_int_equal(ll_ecr_authorization(&tok, a, 0), 0);
    assert_string_equal(tok, "QVdTOnB3");
    free(tok);
    assert_int_equal(ll_aws_take_answer(a, LL_AWS_ECR_TOKEN, 200, NULL, "{}", 2), LL_EUPSTREAM);
    assert_int_equal(ll_aws_take_answer(a, LL_AWS_WEB_IDENTITY, 403, NULL,
                                        "{\"Error\":{\"Code\":\"AccessDenied\"}}", 33),
                     LL_EUPSTREAM);
    assert_non_null(strstr(ll_error_last()->message, "403 AccessDenied"));
    assert_int_equal(ll_aws_take_answer(a, LL_AWS_ECR_CREATE_REPOSITORY, 400,
                                        "RepositoryAlreadyExistsException:http://x", "", 0),
                     0);
    ll_aws_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigv4_suite), cmocka_unit_test(test_sigv4_ecr_call_shape),
        cmocka_unit_test(test_ecr_hosts),   cmocka_unit_test(test_refresh_time),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

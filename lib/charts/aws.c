/* aws.c - credentials and the ECR API (see aws.h).
 *
 * ll_aws_open() reads the AWS_* environment once and picks the first
 * credential source that is configured, in the SDKs' order: environment
 * keys, web identity (IRSA), the Pod Identity agent.  Temporary credentials
 * (STS, Pod Identity) and ECR's authorization token are cached and fetched
 * again once less than min(5 min, half their lifetime) remains; token files
 * are read again on every fetch because kubelet rotates them.
 *
 * Every exchange runs on its own curl easy handle on the caller's thread
 * (they are rare: one per token lifetime).  Mutexes: token_lock guards the
 * ECR token and is taken before cred_lock, which guards the credentials; a
 * fetch runs under its lock, so concurrent callers wait for one fetch
 * instead of making several.
 *
 * ECR calls use the AWS JSON 1.1 protocol: POST / with X-Amz-Target,
 * signed with SigV4 (sigv4.c) over content-type, host, x-amz-date,
 * x-amz-target and, for temporary credentials, x-amz-security-token.
 * Secrets, tokens and AWS error messages that could echo them never reach
 * an error message or a log line.
 */
#define _GNU_SOURCE /* timegm */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "landlord/aws.h"
#include "aws_int.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/util.h"

#define AWS_BODY_MAX    (1u << 20)
#define AWS_TOKEN_MAX   (64u << 10) /* a web identity or Pod Identity token file */
#define REFRESH_MAX_S   300
#define ECR_TARGET      "AmazonEC2ContainerRegistry_V20150921."
#define DEFAULT_TIMEOUT 30
#define EPOCH_MAX       253402300799LL /* 9999-12-31T23:59:59Z */

typedef struct creds {
    char *akid, *secret, *token; /* token NULL for long-term keys */
    int64_t expires;             /* epoch seconds; 0 = does not expire */
    int64_t refresh_at;
} creds;

struct ll_aws {
    char region[64];
    int timeout_s;
    char *ecr_endpoint, *ecr_host; /* scheme://host[:port] and host[:port] */
    char *sts_endpoint;
    char *ca_bundle;
    const char *source;
    char *role_arn, *session_name, *wi_token_file;
    char *pod_uri, *pod_token_file, *pod_token;

    pthread_mutex_t cred_lock; /* guards cur */
    creds cur;
    pthread_mutex_t token_lock; /* guards ecr_token, ecr_refresh_at */
    char *ecr_token;
    int64_t ecr_refresh_at;
};

/* --- small helpers ------------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void creds_clear(creds *c)
{
    wipe_free(c->akid);
    wipe_free(c->secret);
    wipe_free(c->token);
    memset(c, 0, sizeof(*c));
}

static int creds_copy(creds *dst, const creds *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->akid = strdup(src->akid ? src->akid : "");
    dst->secret = strdup(src->secret ? src->secret : "");
    dst->token = src->token ? strdup(src->token) : NULL;
    dst->expires = src->expires;
    dst->refresh_at = src->refresh_at;
    if (!dst->akid || !dst->secret || (src->token && !dst->token)) {
        creds_clear(dst);
        return ll_error_set(-1, "out of memory");
    }
    return 0;
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? strdup(v) : NULL;
}

int64_t ll_aws_refresh_time(int64_t now, int64_t expires)
{
    int64_t life, margin;
    if (__builtin_sub_overflow(expires, now, &life))
        life = expires > now ? INT64_MAX : INT64_MIN;
    margin = life / 2;
    if (margin > REFRESH_MAX_S)
        margin = REFRESH_MAX_S;
    /* margin > 0: now < expires - margin < expires, no overflow */
    return margin > 0 ? expires - margin : now;
}

/* An expiry sent as a JSON number of epoch seconds (a real is truncated);
 * 0 when it is not a number from 1970 to the end of year 9999 (a double
 * beyond int64_t cannot even be converted). */
static int64_t epoch_number(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i > 0 && i <= EPOCH_MAX ? (int64_t)i : 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d > 0 && d <= (double)EPOCH_MAX ? (int64_t)d : 0; /* NaN: 0 */
    }
    return 0;
}

/* 1 for an address that never leaves the machine (or the node, for the
 * link-local addresses of the ECS and EKS credential agents when allowed). */
static int local_host(const char *host, int agent)
{
    if (!strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
        !strcmp(host, "[::1]"))
        return 1;
    return agent && (!strcmp(host, "169.254.170.2") || !strcmp(host, "169.254.170.23") ||
                     !strcasecmp(host, "fd00:ec2::23") || !strcasecmp(host, "[fd00:ec2::23]"));
}

/* Checks an endpoint URL: http(s), no credentials, http only to a local
 * address.  *host_out (when not NULL) is "host[:port]" as sent in Host. */
static int check_endpoint(const char *what, const char *url, int agent, char **host_out)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
    int error = LL_EINVALID;

    if (!u)
        return ll_error_set(-1, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        ll_error_set(LL_EINVALID, "%s '%.200s' is not a URL", what, url);
        goto done;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
        ll_error_set(LL_EINVALID, "%s must not carry credentials", what);
        goto done;
    }
    if (strcmp(scheme, "https") != 0 && !(strcmp(scheme, "http") == 0 && local_host(host, agent))) {
        ll_error_set(LL_EINVALID, "%s '%.200s' must be https (http only to this machine)", what,
                     url);
        goto done;
    }
    if (host_out) {
        size_t n = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
        if (!(*host_out = malloc(n))) {
            error = ll_error_set(-1, "out of memory");
            goto done;
        }
        snprintf(*host_out, n, "%s%s%s", host, port ? ":" : "", port ? port : "");
    }
    error = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_url_cleanup(u);
    return error;
}

/* Drops trailing '/' from a new copy of url. */
static char *strip_slash(const char *url)
{
    char *s = strdup(url);
    size_t n = s ? strlen(s) : 0;
    while (n > 8 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

int ll_ecr_host_region(char *region, size_t cap, const char *host)
{
    /* <12 digits>.dkr.ecr.<region>.amazonaws.com[.cn][:port] */
    const char *p = host, *r, *end;
    size_t n = 0;
    while (isdigit((unsigned char)p[n]))
        n++;
    if (n != 12 || strncmp(p + n, ".dkr.ecr.", 9) != 0)
        return 0;
    r = p + n + 9;
    end = strstr(r, ".amazonaws.com");
    if (!end || end == r || (size_t)(end - r) >= cap)
        return 0;
    const char *tail = end + strlen(".amazonaws.com");
    if (!strncmp(tail, ".cn", 3))
        tail += 3;
    if (*tail && *tail != ':')
        return 0;
    for (const char *q = r; q < end; q++)
        if (!(islower((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '-'))
            return 0;
    memcpy(region, r, (size_t)(end - r));
    region[end - r] = '\0';
    return 1;
}

/* --- open ------------------------------------------------------------------------- */

/* The endpoint of a service: its AWS_ENDPOINT_URL_<SERVICE> override, the
 * global AWS_ENDPOINT_URL, else https://<prefix><region>.amazonaws.com. */
static char *endpoint_of(const char *service_var, const char *prefix, const char *region)
{
    char *v = env_dup(service_var);
    if (!v)
        v = env_dup("AWS_ENDPOINT_URL");
    if (v) {
        char *s = strip_slash(v);
        free(v);
        return s;
    }
    size_t n = strlen(prefix) + strlen(region) + 32;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "https://%s%s.amazonaws.com%s", prefix, region,
                 strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    return s;
}

int ll_aws_open(ll_aws **out, const ll_aws_options *opts)
{
    ll_aws *a = calloc(1, sizeof(*a));
    int error = -1;

    *out = NULL;
    if (!a)
        return ll_error_set(-1, "out of memory");
    pthread_mutex_init(&a->cred_lock, NULL);
    pthread_mutex_init(&a->token_lock, NULL);
    if (!opts->region || !opts->region[0]) {
        error = ll_error_set(LL_EINVALID, "aws: no region");
        ll_error_hint("set aws-region (or AWS_REGION)");
        goto done;
    }
    snprintf(a->region, sizeof(a->region), "%s", opts->region);
    a->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : DEFAULT_TIMEOUT;
    a->ca_bundle = env_dup("AWS_CA_BUNDLE");
    if (!(a->ecr_endpoint = endpoint_of("AWS_ENDPOINT_URL_ECR", "api.ecr.", a->region)) ||
        !(a->sts_endpoint = endpoint_of("AWS_ENDPOINT_URL_STS", "sts.", a->region)))
        goto done;
    if ((error = check_endpoint("the ECR endpoint", a->ecr_endpoint, 0, &a->ecr_host)) < 0 ||
        (error = check_endpoint("the STS endpoint", a->sts_endpoint, 0, NULL)) < 0)
        goto done;

    /* The SDKs' order: environment, web identity, container (Pod Identity). */
    char *akid = env_dup("AWS_ACCESS_KEY_ID"), *secret = env_dup("AWS_SECRET_ACCESS_KEY");
    a->role_arn = env_dup("AWS_ROLE_ARN");
    a->wi_token_file = env_dup("AWS_WEB_IDENTITY_TOKEN_FILE");
    a->pod_uri = env_dup("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (akid && secret) {
        a->cur.akid = akid;
        a->cur.secret = secret;
        a->cur.token = env_dup("AWS_SESSION_TOKEN");
        a->source = "environment";
    } else {
        wipe_free(akid);
        wipe_free(secret);
        if (a->role_arn && a->wi_token_file) {
            a->session_name = env_dup("AWS_ROLE_SESSION_NAME");
            if (!a->session_name)
                a->session_name = strdup("landlord");
            a->source = "web-identity";
        } else if (a->pod_uri) {
            if ((error =
                     check_endpoint("AWS_CONTAINER_CREDENTIALS_FULL_URI", a->pod_uri, 1, NULL)) < 0)
                goto done;
            a->pod_token_file = env_dup("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
            a->pod_token = env_dup("AWS_CONTAINER_AUTHORIZATION_TOKEN");
            a->source = "pod-identity";
        } else {
            a->source = "none";
        }
    }
    ll_log_info("msg=\"aws credentials\" source=%s region=%s ecr=%s", a->source, a->region,
                a->ecr_host);
    *out = a;
    a = NULL;
    error = 0;
done:
    ll_aws_free(a);
    return error;
}

void ll_aws_free(ll_aws *a)
{
    if (!a)
        return;
    free(a->ecr_endpoint);
    free(a->ecr_host);
    free(a->sts_endpoint);
    free(a->ca_bundle);
    free(a->role_arn);
    free(a->session_name);
    free(a->wi_token_file);
    free(a->pod_uri);
    free(a->pod_token_file);
    wipe_free(a->pod_token);
    creds_clear(&a->cur);
    wipe_free(a->ecr_token);
    pthread_mutex_destroy(&a->cred_lock);
    pthread_mutex_destroy(&a->token_lock);
    free(a);
}

const char *ll_aws_credential_source(const ll_aws *a)
{
    return a->source;
}

/* --- HTTP ----------------------------------------------------------------------- */

typedef struct resp {
    long status;
    ll_buf body;
    char errtype[128]; /* X-Amzn-Errortype */
} resp;

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    resp *r = payload;
    return ll_buf_add(&r->body, data, size * n) < 0 ? 0 : size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *payload)
{
    resp *r = payload;
    size_t len = size * n;
    static const char name[] = "x-amzn-errortype:";
    if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        const char *v = data + sizeof(name) - 1;
        size_t vl = len - (sizeof(name) - 1);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(r->errtype, sizeof(r->errtype), "%.*s", (int)vl, v);
    }
    return len;
}

/* One exchange.  what names it in messages ("sts AssumeRoleWithWebIdentity
 * at sts.us-east-1.amazonaws.com"); a transport failure is LL_EUPSTREAM. */
static int http(resp *r, ll_aws *a, const char *what, const char *url, struct curl_slist *headers,
                const char *body, size_t body_len)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    ll_buf_init(&r->body, AWS_BODY_MAX);
    if (!h)
        return ll_error_set(-1, "out of memory");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "landlord");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (a->ca_bundle)
        curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_bundle);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)a->timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)a->timeout_s);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        ll_error_set(LL_EUPSTREAM, "%s: %s", what, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        ll_error_hint("check that the endpoint is reachable (AWS_ENDPOINT_URL_* overrides it)");
        return LL_EUPSTREAM;
    }
    return 0;
}

static void resp_free(resp *r)
{
    if (r->body.data)
        OPENSSL_cleanse(r->body.data, r->body.len);
    ll_buf_free(&r->body);
}

static int add_header(struct curl_slist **list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **list, const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    struct curl_slist *l = n < 0 ? NULL : curl_slist_append(*list, line);
    if (line) {
        OPENSSL_cleanse(line, strlen(line));
        free(line);
    }
    if (!l)
        return ll_error_set(-1, "out of memory");
    *list = l;
    return 0;
}

/* Frees a header list whose lines may hold secrets. */
static void wipe_headers(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

/* AWS's error message, when it cannot carry a secret: its first line, at
 * most 200 bytes, and never the text of a signature mismatch (which quotes
 * the canonical request, session token included). */
static void safe_message(char *out, size_t cap, const char *msg, const creds *c)
{
    out[0] = '\0';
    if (!msg || strstr(msg, "Canonical String") || strstr(msg, "String-to-Sign"))
        return;
    if ((c && c->secret && c->secret[0] && strstr(msg, c->secret)) ||
        (c && c->token && c->token[0] && strstr(msg, c->token)))
        return;
    size_t n = strcspn(msg, "\r\n");
    if (n > 200)
        n = 200;
    snprintf(out, cap, "%.*s", (int)n, msg);
}

/* Strips "namespace#" and ":suffix" from an error type (AWS JSON protocols). */
static void bare_type(char *out, size_t cap, const char *type)
{
    const char *hash = strrchr(type, '#');
    const char *t = hash ? hash + 1 : type;
    size_t n = strcspn(t, ":");
    snprintf(out, cap, "%.*s", (int)(n < 100 ? n : 100), t);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* Reads a token file: surrounding whitespace dropped, no control bytes. */
static int read_token_file(char **out, const char *what, const char *path)
{
    char *text = NULL, *p;
    size_t len = 0;
    int error;
    *out = NULL;
    if ((error = ll_read_file(&text, &len, path, AWS_TOKEN_MAX)) < 0) {
        char why[LL_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", ll_error_last()->message);
        ll_error_set(LL_EAUTH, "aws: cannot read the %s: %s", what, why);
        return LL_EAUTH;
    }
    while (len && isspace((unsigned char)text[len - 1]))
        text[--len] = '\0';
    for (p = text; *p && isspace((unsigned char)*p); p++)
        ;
    memmove(text, p, strlen(p) + 1);
    for (p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            wipe_free(text);
            return ll_error_set(LL_EAUTH, "aws: the %s %s holds control characters", what, path);
        }
    }
    if (!text[0]) {
        free(text);
        return ll_error_set(LL_EAUTH, "aws: the %s %s is empty", what, path);
    }
    *out = text;
    return 0;
}

/* Parses an RFC 3339 time ("2026-08-20T16:00:00Z", fraction and offset
 * allowed) to epoch seconds; 0 when it is not one. */
static int64_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    int64_t t, off = 0;
    if (!p)
        return 0;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
        p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
        off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        off = *p == '+' ? off : -off;
    } else if (*p != 'Z' && *p != 'z') {
        return 0;
    }
    t = (int64_t)timegm(&tm);
    return t - off;
}

/* --- credential sources ------------------------------------------------------------- */

/* Stores fresh temporary credentials from a JSON object (keys named by the
 * caller) in a->cur. */
static int take_creds(ll_aws *a, const json_t *o, const char *token_key, int64_t expires,
                      const char *what)
{
    const char *akid = json_string_value(json_object_get(o, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(o, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(o, token_key));
    if (!akid || !akid[0] || !secret || !secret[0])
        return ll_error_set(LL_EUPSTREAM,
                            "%s: the answer carries no AccessKeyId and "
                            "SecretAccessKey",
                            what);
    creds_clear(&a->cur);
    a->cur.akid = strdup(akid);
    a->cur.secret = strdup(secret);
    a->cur.token = token && token[0] ? strdup(token) : NULL;
    a->cur.expires = expires;
    a->cur.refresh_at = expires ? ll_aws_refresh_time(now_s(), expires) : 0;
    if (!a->cur.akid || !a->cur.secret || (token && token[0] && !a->cur.token)) {
        creds_clear(&a->cur);
        return ll_error_set(-1, "out of memory");
    }
    return 0;
}

static int escape_into(ll_buf *b, const char *key, const char *value)
{
    char *e = curl_easy_escape(NULL, value, 0);
    int error = e ? ll_buf_printf(b, "&%s=%s", key, e) : ll_error_set(-1, "out of memory");
    if (e) {
        OPENSSL_cleanse(e, strlen(e));
        curl_free(e);
    }
    return error;
}

/* The answer of STS AssumeRoleWithWebIdentity (status, body[0..len)):
 * fresh credentials in a->cur, or LL_EUPSTREAM.  Called with cred_lock
 * held (or before any thread shares a). */
static int web_identity_answer(ll_aws *a, const char *what, long status, const char *body,
                               size_t len)
{
    char msg[256];
    json_t *doc = NULL;
    int error;

    doc = json_loadb(body, len, 0, NULL);
    if (status < 200 || status > 299) {
        json_t *e = json_object_get(doc, "Error");
        const char *code = json_string_value(json_object_get(e, "Code"));
        safe_message(msg, sizeof(msg), json_string_value(json_object_get(e, "Message")), NULL);
        error = ll_error_set(LL_EUPSTREAM, "%s: %ld %s%s%s", what, status,
                             code ? code : "(no error code)", msg[0] ? ": " : "", msg);
        ll_error_hint("check AWS_ROLE_ARN, the role's trust policy for this service account, and "
                      "the token file");
        goto done;
    }
    json_t *res = json_object_get(json_object_get(doc, "AssumeRoleWithWebIdentityResponse"),
                                  "AssumeRoleWithWebIdentityResult");
    json_t *c = json_object_get(res, "Credentials");
    json_t *exp = json_object_get(c, "Expiration");
    int64_t expires =
        json_is_number(exp) ? epoch_number(exp) : parse_rfc3339(json_string_value(exp));
    if (!c) {
        error = ll_error_set(LL_EUPSTREAM,
                             "%s: %ld answer is not a JSON "
                             "AssumeRoleWithWebIdentityResponse",
                             what, status);
        goto done;
    }
    error = take_creds(a, c, "SessionToken", expires, what);
done:
    json_decref(doc);
    return error;
}

/* STS AssumeRoleWithWebIdentity (unsigned: the token is the credential),
 * JSON answer. */
static int fetch_web_identity(ll_aws *a)
{
    char what[300], *jwt = NULL;
    struct curl_slist *headers = NULL;
    ll_buf form;
    resp r = {0};
    int error;

    snprintf(what, sizeof(what), "sts AssumeRoleWithWebIdentity at %s", a->sts_endpoint);
    ll_buf_init(&form, AWS_BODY_MAX);
    if ((error = read_token_file(&jwt, "web identity token file", a->wi_token_file)) < 0) {
        ll_error_hint("AWS_WEB_IDENTITY_TOKEN_FILE must name the projected service account token");
        goto done;
    }
    if ((error = ll_buf_adds(&form, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15")) < 0 ||
        (error = escape_into(&form, "RoleArn", a->role_arn)) < 0 ||
        (error = escape_into(&form, "RoleSessionName", a->session_name)) < 0 ||
        (error = escape_into(&form, "WebIdentityToken", jwt)) < 0 ||
        (error = add_header(&headers, "Content-Type: application/x-www-form-urlencoded")) < 0 ||
        (error = add_header(&headers, "Accept: application/json")) < 0 ||
        (error = add_header(&headers, "Expect:")) < 0)
        goto done;
    char url[1100];
    snprintf(url, sizeof(url), "%s/", a->sts_endpoint);
    if ((error = http(&r, a, what, url, headers, form.data, form.len)) < 0)
        goto done;
    error = web_identity_answer(a, what, r.status, r.body.data ? r.body.data : "", r.body.len);
done:
    resp_free(&r);
    wipe_headers(headers);
    if (form.data)
        OPENSSL_cleanse(form.data, form.len);
    ll_buf_free(&form);
    wipe_free(jwt);
    return error;
}

/* The Pod Identity agent's answer (status, body[0..len)): fresh
 * credentials in a->cur, or LL_EUPSTREAM.  Called with cred_lock held (or
 * before any thread shares a). */
static int pod_identity_answer(ll_aws *a, const char *what, long status, const char *body,
                               size_t len)
{
    char msg[256];
    json_t *doc = NULL;
    int error;

    doc = json_loadb(body, len, 0, NULL);
    if (status < 200 || status > 299) {
        const char *code = json_string_value(json_object_get(doc, "code"));
        safe_message(msg, sizeof(msg), json_string_value(json_object_get(doc, "message")), NULL);
        error = ll_error_set(LL_EUPSTREAM, "%s: %ld%s%s%s%s", what, status, code ? " " : "",
                             code ? code : "", msg[0] ? ": " : "", msg);
        ll_error_hint("check the pod identity association and "
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        goto done;
    }
    if (!json_is_object(doc)) {
        error = ll_error_set(LL_EUPSTREAM, "%s: %ld answer is not JSON", what, status);
        goto done;
    }
    error = take_creds(a, doc, "Token",
                       parse_rfc3339(json_string_value(json_object_get(doc, "Expiration"))), what);
done:
    json_decref(doc);
    return error;
}

/* The Pod Identity (container credentials) agent: GET with the token as
 * Authorization, no "Bearer". */
static int fetch_pod_identity(ll_aws *a)
{
    char what[300], *token = NULL;
    struct curl_slist *headers = NULL;
    resp r = {0};
    int error;

    snprintf(what, sizeof(what), "pod identity agent at %s", a->pod_uri);
    if (a->pod_token_file) {
        if ((error = read_token_file(&token, "pod identity token file", a->pod_token_file)) < 0)
            goto done;
    } else if (a->pod_token) {
        if (!(token = strdup(a->pod_token))) {
            error = ll_error_set(-1, "out of memory");
            goto done;
        }
    }
    if ((token && (error = add_header(&headers, "Authorization: %s", token)) < 0) ||
        (error = add_header(&headers, "Accept: application/json")) < 0)
        goto done;
    if ((error = http(&r, a, what, a->pod_uri, headers, NULL, 0)) < 0)
        goto done;
    error = pod_identity_answer(a, what, r.status, r.body.data ? r.body.data : "", r.body.len);
done:
    resp_free(&r);
    wipe_headers(headers);
    wipe_free(token);
    return error;
}

/* A copy of the current credentials (the caller creds_clear()s it),
 * fetched again when due. */
static int get_creds(creds *out, ll_aws *a)
{
    int error = 0;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&a->cred_lock);
    if (!strcmp(a->source, "none")) {
        error = ll_error_set(LL_EAUTH, "aws: no credentials found for ECR");
        ll_error_hint("give landlord AWS credentials: AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY, IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) "
                      "or EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)");
    } else if (strcmp(a->source, "environment") != 0 &&
               (!a->cur.akid || now_s() >= a->cur.refresh_at)) {
        int64_t t0 = ll_monotonic_ms();
        error = !strcmp(a->source, "web-identity") ? fetch_web_identity(a) : fetch_pod_identity(a);
        if (error == 0) {
            ll_log_info("msg=\"aws credentials fetched\" source=%s expires_in_s=%lld ms=%lld",
                        a->source, (long long)(a->cur.expires ? a->cur.expires - now_s() : 0),
                        (long long)(ll_monotonic_ms() - t0));
        }
    }
    if (error == 0)
        error = creds_copy(out, &a->cur);
    pthread_mutex_unlock(&a->cred_lock);
    return error;
}

/* --- ECR ----------------------------------------------------------------------------- */

static void amz_date(char out[17])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* An ECR JSON 1.1 answer (status, the X-Amzn-Errortype header errtype,
 * body[0..len)) to action, signed with credentials c (whose secrets must
 * never be quoted): *out (may be NULL) the JSON, *type (cap 128) the error
 * type of a refusal (LL_EUPSTREAM), "" otherwise. */
static int ecr_answer(json_t **out, char *type, const ll_aws *a, const char *what,
                      const char *action, long status, const char *errtype, const char *body,
                      size_t len, const creds *c)
{
    char msg[256];
    json_t *doc = NULL;
    int error;

    if (out)
        *out = NULL;
    type[0] = '\0';
    doc = json_loadb(body, len, 0, NULL);
    if (status < 200 || status > 299) {
        const char *t = json_string_value(json_object_get(doc, "__type"));
        const char *m = json_string_value(json_object_get(doc, "message"));
        bare_type(type, 128, errtype[0] ? errtype : t ? t : "");
        safe_message(msg, sizeof(msg), m ? m : json_string_value(json_object_get(doc, "Message")),
                     c);
        error = ll_error_set(LL_EUPSTREAM, "%s: %ld %s%s%s", what, status,
                             type[0] ? type : "(no error type)", msg[0] ? ": " : "", msg);
        if (!strcmp(type, "InvalidSignatureException") ||
            !strcmp(type, "UnrecognizedClientException") ||
            !strcmp(type, "ExpiredTokenException") || !strcmp(type, "SignatureDoesNotMatch") ||
            !strcmp(type, "IncompleteSignature"))
            ll_error_hint("AWS refused landlord's credentials (source: %s): check them and the "
                          "clock",
                          a->source);
        else if (!strcmp(type, "AccessDeniedException"))
            ll_error_hint("allow ecr:%s to landlord's AWS identity", action);
        goto done;
    }
    if (out && !(*out = json_incref(doc))) {
        error = ll_error_set(LL_EUPSTREAM, "%s: %ld answer is not JSON", what, status);
        goto done;
    }
    error = 0;
done:
    json_decref(doc);
    return error;
}

/* One JSON 1.1 call.  *out (may be NULL) the answer; *type (cap 128) the
 * error type of a refusal (LL_EUPSTREAM), "" otherwise. */
static int ecr_call(json_t **out, char *type, ll_aws *a, const char *action, const char *body)
{
    char date[17], target[128], what[300], url[1100];
    struct curl_slist *headers = NULL;
    ll_sigv4 sig = {0};
    creds c = {0};
    resp r = {0};
    int error;

    if (out)
        *out = NULL;
    type[0] = '\0';
    snprintf(what, sizeof(what), "ecr %s at %s", action, a->ecr_host);
    if ((error = get_creds(&c, a)) < 0)
        goto done;
    amz_date(date);
    snprintf(target, sizeof(target), ECR_TARGET "%s", action);
    ll_sigv4_header h[5] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"Host", a->ecr_host},
        {"X-Amz-Date", date},
        {"X-Amz-Target", target},
        {"X-Amz-Security-Token", c.token},
    };
    ll_sigv4_request req = {"POST", "/", NULL, h, c.token ? 5 : 4, body, strlen(body)};
    if ((error = ll_sigv4_sign(&sig, &req, c.akid, c.secret, a->region, "ecr", date)) < 0 ||
        (error = add_header(&headers, "Host: %s", a->ecr_host)) < 0 ||
        (error = add_header(&headers, "Content-Type: application/x-amz-json-1.1")) < 0 ||
        (error = add_header(&headers, "X-Amz-Date: %s", date)) < 0 ||
        (error = add_header(&headers, "X-Amz-Target: %s", target)) < 0 ||
        (c.token && (error = add_header(&headers, "X-Amz-Security-Token: %s", c.token)) < 0) ||
        (error = add_header(&headers, "Authorization: %s", sig.authorization)) < 0 ||
        (error = add_header(&headers, "Accept: application/json")) < 0 ||
        (error = add_header(&headers, "Expect:")) < 0)
        goto done;
    snprintf(url, sizeof(url), "%s/", a->ecr_endpoint);
    if ((error = http(&r, a, what, url, headers, body, strlen(body))) < 0)
        goto done;
    error = ecr_answer(out, type, a, what, action, r.status, r.errtype,
                       r.body.data ? r.body.data : "", r.body.len, &c);
done:
    resp_free(&r);
    wipe_headers(headers);
    ll_sigv4_free(&sig);
    creds_clear(&c);
    return error;
}

static int base64_text(const char *s)
{
    if (!s || !s[0])
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '/' || *p == '='))
            return 0;
    return 1;
}

/* Keeps the token of a GetAuthorizationToken answer and when to fetch it
 * again (expiresAt, else an hour).  Called with token_lock held. */
static int ecr_token_take(ll_aws *a, const json_t *doc)
{
    json_t *d = json_array_get(json_object_get(doc, "authorizationData"), 0);
    const char *tok = json_string_value(json_object_get(d, "authorizationToken"));
    int64_t expires = epoch_number(json_object_get(d, "expiresAt"));

    if (!base64_text(tok))
        return ll_error_set(LL_EUPSTREAM,
                            "ecr GetAuthorizationToken at %s: the answer has "
                            "no authorizationData[0].authorizationToken",
                            a->ecr_host);
    if (!expires)
        expires = now_s() + 3600;
    wipe_free(a->ecr_token);
    if (!(a->ecr_token = strdup(tok)))
        return ll_error_set(-1, "out of memory");
    a->ecr_refresh_at = ll_aws_refresh_time(now_s(), expires);
    return 0;
}

int ll_ecr_authorization(char **out, ll_aws *a, int fresh)
{
    char type[128];
    json_t *doc = NULL;
    int error = 0;

    *out = NULL;
    pthread_mutex_lock(&a->token_lock);
    if (fresh || !a->ecr_token || now_s() >= a->ecr_refresh_at) {
        int64_t t0 = ll_monotonic_ms();
        if ((error = ecr_call(&doc, type, a, "GetAuthorizationToken", "{}")) < 0)
            goto done;
        if ((error = ecr_token_take(a, doc)) < 0)
            goto done;
        ll_log_info("msg=\"ecr authorization token fetched\" refresh_in_s=%lld ms=%lld",
                    (long long)(a->ecr_refresh_at - now_s()), (long long)(ll_monotonic_ms() - t0));
    }
    if (!(*out = strdup(a->ecr_token)))
        error = ll_error_set(-1, "out of memory");
done:
    json_decref(doc);
    pthread_mutex_unlock(&a->token_lock);
    return error;
}

int ll_ecr_create_repository(ll_aws *a, const char *name)
{
    char type[128];
    json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "repositoryName", name, "imageTagMutability",
                             "IMMUTABLE", "encryptionConfiguration", "encryptionType", "AES256");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int error;

    json_decref(body);
    if (!text)
        return ll_error_set(-1, "out of memory");
    error = ecr_call(NULL, type, a, "CreateRepository", text);
    free(text);
    if (error == LL_EUPSTREAM && !strcmp(type, "RepositoryAlreadyExistsException"))
        error = 0;
    else if (error == 0)
        ll_log_info("msg=\"ecr repository created\" repository=%s", name);
    return error;
}

/* --- without a network (aws_int.h) ------------------------------------------------------ */

int ll_aws_take_answer(ll_aws *a, ll_aws_answer kind, long status, const char *errtype,
                       const char *body, size_t len)
{
    char type[128], what[300];
    json_t *doc = NULL;
    creds none = {0};
    int error;

    switch (kind) {
    case LL_AWS_WEB_IDENTITY:
    case LL_AWS_POD_IDENTITY:
        snprintf(what, sizeof(what), "%s",
                 kind == LL_AWS_WEB_IDENTITY ? "sts AssumeRoleWithWebIdentity"
                                             : "pod identity agent");
        pthread_mutex_lock(&a->cred_lock);
        error = kind == LL_AWS_WEB_IDENTITY ? web_identity_answer(a, what, status, body, len)
                                            : pod_identity_answer(a, what, status, body, len);
        pthread_mutex_unlock(&a->cred_lock);
        return error;
    case LL_AWS_ECR_TOKEN:
        snprintf(what, sizeof(what), "ecr GetAuthorizationToken at %s", a->ecr_host);
        if ((error = ecr_answer(&doc, type, a, what, "GetAuthorizationToken", status,
                                errtype ? errtype : "", body, len, &none)) == 0) {
            pthread_mutex_lock(&a->token_lock);
            error = ecr_token_take(a, doc);
            pthread_mutex_unlock(&a->token_lock);
        }
        json_decref(doc);
        return error;
    case LL_AWS_ECR_CREATE_REPOSITORY:
    default:
        snprintf(what, sizeof(what), "ecr CreateRepository at %s", a->ecr_host);
        error = ecr_answer(NULL, type, a, what, "CreateRepository", status, errtype ? errtype : "",
                           body, len, &none);
        return error == LL_EUPSTREAM && !strcmp(type, "RepositoryAlreadyExistsException") ? 0
                                                                                          : error;
    }
}

/* ociremote.c - the OCI Distribution push client (see ociremote.h).
 *
 * One operation (a push or a delete) is an `op`: the thread's curl handle,
 * the repository, the token scope it needs, and a request counter.  Every
 * request goes through send(): it adds the credentials the registry's
 * challenge asked for (only to the registry's own origin), and on a 401
 * learns the challenge, fetches fresh credentials and tries once more.  The
 * challenge is learnt once per process from GET /v2/ (or from any 401), so
 * later operations send credentials at once.
 *
 * Bodies live in memory (a chart is at most release-max-size), so a retry
 * simply sends them again.  What a registry answers is kept in capped
 * buffers: 64 KiB of an error, 4 MiB of a manifest, 1 MiB of a token.
 *
 * Locks: `lock` guards the challenge and the token cache and may be held
 * while a token is fetched (so concurrent operations wait for one fetch);
 * `health_lock` guards the last outcome and is never held across I/O, so
 * /readyz never waits for the network.
 */
#define _GNU_SOURCE /* vasprintf */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "landlord/aws.h"
#include "landlord/error.h"
#include "landlord/log.h"
#include "landlord/oci.h"
#include "landlord/ociremote.h"
#include "ociremote_int.h"
#include "landlord/util.h"

#define ERROR_KEEP       (64u << 10)
#define MANIFEST_KEEP    (4u << 20)
#define TOKEN_KEEP       (1u << 20)
#define TOKENS           8
#define TOKEN_MARGIN_S   30
#define TOKEN_LIFE_MAX_S 86400
#define REPO_MAX         255
#define MANIFEST_ACCEPT                                                                            \
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "        \
    "application/vnd.docker.distribution.manifest.v2+json, "                                       \
    "application/vnd.docker.distribution.manifest.list.v2+json"

enum { SCHEME_UNKNOWN = 0, SCHEME_NONE, SCHEME_BASIC, SCHEME_BEARER };

typedef struct token {
    char *scope;
    char *value;
    int64_t refresh_ms; /* wall clock */
} token;

struct ll_ociremote {
    char url[1100];
    char host[300]; /* host[:port] */
    char base[600]; /* "" or "a/b" */
    char origin[320];
    int plain_http;
    char *ca_file;
    int timeout_s;
    char *basic; /* "Basic <base64(user:password)>", or NULL */
    ll_aws *aws; /* ECR, or NULL */
    pthread_key_t handle_key;

    pthread_mutex_t lock;
    int scheme;
    char *realm, *service;
    token tokens[TOKENS];
    unsigned next_token;

    pthread_mutex_t health_lock;
    int health; /* -1 unknown, 0 failed, 1 ok */
    char health_error[LL_ERROR_MSG_MAX];
    char health_at[32];
};

typedef struct op {
    ll_ociremote *r;
    CURL *h;
    char repo[REPO_MAX + 1];
    char scope[REPO_MAX + 64];
    int requests;
    int repo_created;
} op;

typedef struct request {
    const char *method;
    const char *url;
    const char *accept;
    const char *content_type;
    const void *body;
    size_t body_len;
    size_t keep; /* bytes of the answer kept */
} request;

typedef struct reply {
    long status;
    char location[4096];
    char digest[80];
    char challenge[2048];
    ll_buf body;
    size_t keep;
} reply;

/* --- names and URLs ------------------------------------------------------------- */

/* One component of the OCI name grammar: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_ok(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])))
            i++;
        if (i == start)
            return 0;
        if (i == n)
            return 1;
        if (s[i] == '.')
            i++;
        else if (s[i] == '_')
            i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
        else if (s[i] == '-')
            while (i < n && s[i] == '-')
                i++;
        else
            return 0;
    }
}

/* The host part h[0..hl) of url: a name or IPv4 address, or [IPv6]; then
 * an optional :port (1-65535). */
static int check_host(const char *h, size_t hl, const char *url)
{
    const char *p = h;
    if (*p == '[') {
        while (p < h + hl && *p != ']')
            p++;
        if (p == h + hl)
            return ll_error_set(LL_EINVALID, "'%.200s' has an unclosed [ in its host", url);
        p++;
    } else {
        while (p < h + hl && (isalnum((unsigned char)*p) || *p == '.' || *p == '-'))
            p++;
    }
    if (p == h || (p < h + hl && *p != ':'))
        return ll_error_set(LL_EINVALID, "'%.200s' has a bad host", url);
    if (p < h + hl) {
        const char *port = ++p;
        long v = 0;
        while (p < h + hl && isdigit((unsigned char)*p) && v <= 65535)
            v = v * 10 + (*p++ - '0');
        if (p == port || p != h + hl || v < 1 || v > 65535)
            return ll_error_set(LL_EINVALID, "'%.200s' has a bad port", url);
    }
    return 0;
}

/* The base path after the host (p, in url): components separated by single
 * '/', any outer '/' dropped, into base. */
static int parse_base(char *base, size_t base_cap, const char *p, const char *url)
{
    while (*p == '/')
        p++;
    size_t bl = strlen(p);
    while (bl && p[bl - 1] == '/')
        bl--;
    if (bl >= base_cap || bl > REPO_MAX - 64)
        return ll_error_set(LL_EINVALID, "'%.200s' has a path longer than %d characters", url,
                            REPO_MAX - 64);
    for (size_t i = 0; i < bl;) {
        size_t n = 0;
        while (i + n < bl && p[i + n] != '/')
            n++;
        if (!component_ok(p + i, n))
            return ll_error_set(LL_EINVALID,
                                "'%.200s': path component '%.*s' is not a repository name "
                                "component (lower-case letters and digits, separated by '.', "
                                "'_', '__' or '-')",
                                url, (int)n, p + i);
        i += n + 1;
    }
    memcpy(base, p, bl);
    base[bl] = '\0';
    return 0;
}

int ll_ociremote_parse_url(char *host, size_t host_cap, char *base, size_t base_cap,
                           const char *url)
{
    const char *h, *slash;
    size_t hl;
    int error;

    if (!url || strncmp(url, "oci://", 6) != 0)
        return ll_error_set(LL_EINVALID, "'%.200s' is not an oci:// URL", url ? url : "");
    h = url + 6;
    slash = strchr(h, '/');
    hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= host_cap)
        return ll_error_set(LL_EINVALID, "'%.200s' has no host (oci://host[:port]/path)", url);
    if ((error = check_host(h, hl, url)) < 0)
        return error;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return parse_base(base, base_cap, slash ? slash : h + hl, url);
}

static int loopback(const char *host)
{
    /* host may carry :port */
    if (!strncmp(host, "[::1]", 5))
        return 1;
    size_t n = strcspn(host, ":");
    if (n == 9 && !strncmp(host, "localhost", 9))
        return 1;
    if (strncmp(host, "127.", 4) != 0)
        return 0;
    for (size_t i = 4; i < n; i++)
        if (!isdigit((unsigned char)host[i]) && host[i] != '.')
            return 0;
    return 1;
}

/* --- the challenge ------------------------------------------------------------------ */

static int token_char(char c)
{
    /* (strchr would match the terminator: c must not be '\0') */
    return c && (isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A parameter's value at *pp, a quoted string (with backslash escapes) or
 * a token (which may hold '/' and ':'), into value[cap] (*out_len bytes);
 * *pp moves past it.  name is the parameter's, for messages. */
static int param_value(char *value, size_t cap, size_t *out_len, const char **pp, const char *name)
{
    const char *p = *pp;
    size_t vl = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1])
                p++;
            if (vl + 1 >= cap)
                return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
            value[vl++] = *p;
        }
        if (*p != '"')
            return ll_error_set(LL_EINVALID, "challenge parameter %s is not closed", name);
        p++;
    } else {
        while (token_char(*p) || *p == '/' || *p == ':') {
            if (vl + 1 >= cap)
                return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
            value[vl++] = *p++;
        }
    }
    value[vl] = '\0';
    *out_len = vl;
    *pp = p;
    return 0;
}

/* Keeps the parameters landlord uses (realm, service, scope) in out; the
 * others are ignored. */
static int keep_param(ll_oci_challenge *out, const char *name, const char *value, size_t vl)
{
    static const struct {
        const char *name;
        size_t offset, cap;
    } kept[] = {
        {"realm", offsetof(ll_oci_challenge, realm), sizeof(((ll_oci_challenge *)0)->realm)},
        {"service", offsetof(ll_oci_challenge, service), sizeof(((ll_oci_challenge *)0)->service)},
        {"scope", offsetof(ll_oci_challenge, scope), sizeof(((ll_oci_challenge *)0)->scope)},
    };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        if (strcmp(name, kept[i].name) != 0)
            continue;
        if (vl >= kept[i].cap)
            return ll_error_set(LL_EINVALID, "challenge parameter %s is too long", name);
        memcpy((char *)out + kept[i].offset, value, vl + 1);
        return 0;
    }
    return 0;
}

int ll_oci_challenge_parse(ll_oci_challenge *out, const char *v)
{
    const char *p = v ? v : "";
    size_t n = 0;
    int error;

    memset(out, 0, sizeof(*out));
    p = skip_blanks(p);
    while (token_char(*p) && n + 1 < sizeof(out->scheme))
        out->scheme[n++] = (char)tolower((unsigned char)*p++);
    if (!n || (*p && *p != ' ' && *p != '\t'))
        return ll_error_set(LL_EINVALID, "not an authentication challenge");
    for (;;) {
        char name[32], value[1024];
        size_t nl = 0, vl = 0;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return 0;
        while (token_char(*p) && nl + 1 < sizeof(name))
            name[nl++] = (char)tolower((unsigned char)*p++);
        name[nl] = '\0';
        p = skip_blanks(p);
        if (!nl || *p != '=')
            return 0; /* another challenge, or a token68: nothing more we use */
        p = skip_blanks(p + 1);
        if ((error = param_value(value, sizeof(value), &vl, &p, name)) < 0 ||
            (error = keep_param(out, name, value, vl)) < 0)
            return error;
    }
}

/* --- what a registry answers (ociremote_int.h) ------------------------------------ */

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int ll_ociremote_token_answer(char **out, int64_t *out_use_ms, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    int error = 0;

    *out = NULL;
    *out_use_ms = 0;
    if (!tok || !tok[0])
        tok = json_string_value(json_object_get(doc, "access_token"));
    if (!tok || !tok[0]) {
        error = ll_error_set(LL_ENOTFOUND, "the token server's answer has no token");
        goto done;
    }
    for (const char *p = tok; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            error = ll_error_set(LL_EMALFORMED, "the token server sent a token with control "
                                                "characters");
            goto done;
        }
    }
    /* expires_in: the token spec's default is 60 s; a lifetime beyond a
     * day is taken as a day (a token is fetched again at least daily, and
     * no sum below can overflow whatever the server sent). */
    json_int_t expires_in = json_integer_value(json_object_get(doc, "expires_in"));
    if (expires_in <= 0)
        expires_in = 60;
    if (expires_in > TOKEN_LIFE_MAX_S)
        expires_in = TOKEN_LIFE_MAX_S;
    int64_t margin = expires_in / 2 < TOKEN_MARGIN_S ? expires_in / 2 : TOKEN_MARGIN_S;
    *out_use_ms = (int64_t)(expires_in - margin) * 1000;
    if (!(*out = strdup(tok)))
        error = ll_error_set(-1, "out of memory");
done:
    json_decref(doc);
    return error;
}

int ll_ociremote_manifest_holds(char *config, size_t cap, const char *body, size_t len,
                                const char *layer_digest)
{
    json_t *m = json_loadb(body, len, 0, NULL), *layer;
    size_t i;
    int same = 0;

    json_array_foreach(json_object_get(m, "layers"), i, layer)
    {
        const char *mt = json_string_value(json_object_get(layer, "mediaType"));
        const char *d = json_string_value(json_object_get(layer, "digest"));
        if (mt && d && (!strcmp(mt, LL_OCI_CHART) || !strcmp(mt, "application/tar+gzip")) &&
            !strcmp(d, layer_digest))
            same = 1;
    }
    const char *cfg = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    if (cap)
        snprintf(config, cap, "%s", cfg ? cfg : "");
    json_decref(m);
    return same && cfg;
}

void ll_ociremote_error_text(char *out, size_t cap, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *e = json_array_get(json_object_get(doc, "errors"), 0);
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    out[0] = '\0';
    if (code)
        snprintf(out, cap, "%.64s%s%.200s", code, msg ? ": " : "", msg ? msg : "");
    else if (len && len < 200) {
        /* ECR answers 401 in text/plain ("Not Authorized") */
        size_t i, k = 0;
        for (i = 0; i < len && k + 1 < cap; i++)
            out[k++] = (unsigned char)body[i] < 0x20 ? ' ' : body[i];
        out[k] = '\0';
    }
    json_decref(doc);
}

/* --- open ---------------------------------------------------------------------------- */

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static char *basic_credential(const char *user, const char *password)
{
    size_t ul = strlen(user), pl = strlen(password ? password : "");
    unsigned char *raw = malloc(ul + pl + 2);
    char *out = malloc(6 + 4 * ((ul + pl + 3) / 3) + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    memcpy(raw, user, ul);
    raw[ul] = ':';
    memcpy(raw + ul + 1, password ? password : "", pl);
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)(ul + pl + 1));
    OPENSSL_cleanse(raw, ul + pl + 2);
    free(raw);
    return out;
}

/* The transport: plain HTTP only to this machine, the origin, the timeout
 * and the CA file. */
static int open_transport(ll_ociremote *r, const ll_ociremote_options *o)
{
    r->plain_http = o->plain_http != 0;
    if (r->plain_http && !loopback(r->host)) {
        ll_error_set(LL_EINVALID,
                     "oci-plain-http is only allowed for a registry on this machine, not %s",
                     r->host);
        ll_error_hint("use https (verification is always on; oci-ca-file adds a CA), or run the "
                      "registry on 127.0.0.1, ::1 or localhost");
        return LL_EINVALID;
    }
    snprintf(r->origin, sizeof(r->origin), "%s://%s", r->plain_http ? "http" : "https", r->host);
    r->timeout_s = o->timeout_s > 0 ? o->timeout_s : 60;
    if (o->ca_file && o->ca_file[0] && !(r->ca_file = strdup(o->ca_file)))
        return ll_error_set(-1, "out of memory");
    return 0;
}

/* The credentials: ECR (an ECR host, or oci-auth ecr) through the AWS
 * credential chain, else Basic when a username is configured, else none. */
static int open_credentials(ll_ociremote *r, const ll_ociremote_options *o)
{
    char region[64] = "";
    int ecr = ll_ecr_host_region(region, sizeof(region), r->host);

    if (o->auth && o->auth[0] && strcmp(o->auth, "auto") != 0 && strcmp(o->auth, "ecr") != 0)
        return ll_error_set(LL_EINVALID, "oci-auth '%s' is not auto or ecr", o->auth);
    if (ecr || (o->auth && !strcmp(o->auth, "ecr"))) {
        const char *rg = o->aws_region && o->aws_region[0] ? o->aws_region
                         : region[0]                       ? region
                         : getenv("AWS_REGION")            ? getenv("AWS_REGION")
                                                           : getenv("AWS_DEFAULT_REGION");
        ll_aws_options ao = {.region = rg, .timeout_s = r->timeout_s};
        int error = ll_aws_open(&r->aws, &ao);
        if (error < 0)
            return error;
        if (o->username && o->username[0])
            ll_log_warn("msg=\"oci-username ignored: ECR authenticates with AWS credentials\"");
    } else if (o->username && o->username[0]) {
        if (strchr(o->username, ':'))
            return ll_error_set(LL_EINVALID, "oci-username must not contain ':'");
        if (!(r->basic = basic_credential(o->username, o->password)))
            return ll_error_set(-1, "out of memory");
    }
    return 0;
}

int ll_ociremote_open(ll_ociremote **out, const ll_ociremote_options *o)
{
    ll_ociremote *r = calloc(1, sizeof(*r));
    int error;

    *out = NULL;
    if (!r)
        return ll_error_set(-1, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->health_lock, NULL);
    pthread_key_create(&r->handle_key, handle_free);
    r->health = -1;
    if ((error = ll_ociremote_parse_url(r->host, sizeof(r->host), r->base, sizeof(r->base),
                                        o->url)) < 0) {
        ll_error_hint("write oci-url as oci://host[:port]/path, e.g. "
                      "oci://123456789012.dkr.ecr.us-east-1.amazonaws.com/charts");
        goto fail;
    }
    snprintf(r->url, sizeof(r->url), "%s", o->url);
    if ((error = open_transport(r, o)) < 0 || (error = open_credentials(r, o)) < 0)
        goto fail;
    ll_log_info("msg=\"charts go to an OCI registry\" registry=%s base=%s auth=%s%s%s", r->host,
                r->base[0] ? r->base : "/",
                r->aws     ? "ecr"
                : r->basic ? "basic"
                           : "none",
                r->plain_http ? " transport=http" : "", r->ca_file ? " ca_file=set" : "");
    *out = r;
    return 0;
fail:
    ll_ociremote_free(r);
    return error;
}

void ll_ociremote_free(ll_ociremote *r)
{
    CURL *h;
    if (!r)
        return;
    if ((h = pthread_getspecific(r->handle_key))) {
        curl_easy_cleanup(h);
        pthread_setspecific(r->handle_key, NULL);
    }
    pthread_key_delete(r->handle_key);
    ll_aws_free(r->aws);
    free(r->ca_file);
    if (r->basic) {
        OPENSSL_cleanse(r->basic, strlen(r->basic));
        free(r->basic);
    }
    free(r->realm);
    free(r->service);
    for (int i = 0; i < TOKENS; i++) {
        free(r->tokens[i].scope);
        if (r->tokens[i].value) {
            OPENSSL_cleanse(r->tokens[i].value, strlen(r->tokens[i].value));
            free(r->tokens[i].value);
        }
    }
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->health_lock);
    free(r);
}

static void repository(char *out, size_t cap, const ll_ociremote *r, const char *chart)
{
    /* the base is at most REPO_MAX - 64 bytes (parse_url), a chart name 63 */
    snprintf(out, cap, "%.191s%s%.63s", r->base, r->base[0] ? "/" : "", chart);
}

void ll_ociremote_reference(char *out, size_t cap, const ll_ociremote *r, const char *chart,
                            const char *tag)
{
    char repo[REPO_MAX + 1];
    repository(repo, sizeof(repo), r, chart);
    snprintf(out, cap, "%s/%s:%s", r->host, repo, tag);
}

int ll_ociremote_owns(const ll_ociremote *r, const char *location)
{
    size_t hl = strlen(r->host), bl = strlen(r->base);
    if (!location || strncmp(location, r->host, hl) != 0 || location[hl] != '/')
        return 0;
    return bl == 0 ||
           (strncmp(location + hl + 1, r->base, bl) == 0 && location[hl + 1 + bl] == '/');
}

/* --- health ------------------------------------------------------------------------------ */

static void record(ll_ociremote *r, int ok)
{
    pthread_mutex_lock(&r->health_lock);
    r->health = ok;
    if (ok)
        r->health_error[0] = '\0';
    else
        snprintf(r->health_error, sizeof(r->health_error), "%s", ll_error_last()->message);
    ll_now_rfc3339(r->health_at);
    pthread_mutex_unlock(&r->health_lock);
}

json_t *ll_ociremote_health(ll_ociremote *r)
{
    const char *auth;
    pthread_mutex_lock(&r->lock);
    auth = r->aws                       ? "ecr"
           : r->scheme == SCHEME_BASIC  ? "basic"
           : r->scheme == SCHEME_BEARER ? "bearer"
           : r->scheme == SCHEME_NONE   ? "none"
                                        : "unknown";
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_lock(&r->health_lock);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "status",
                          r->health < 0 ? "unknown"
                          : r->health   ? "ok"
                                        : "failed",
                          "registry", r->host, "url", r->url, "auth", auth);
    if (r->aws)
        json_object_set_new(j, "credentials", json_string(ll_aws_credential_source(r->aws)));
    if (r->health == 0)
        json_object_set_new(j, "error", json_string(r->health_error));
    if (r->health >= 0)
        json_object_set_new(j, "checked_at", json_string(r->health_at));
    pthread_mutex_unlock(&r->health_lock);
    return j;
}

/* --- one HTTP exchange ------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    reply *rp = payload;
    size_t len = size * n, room = rp->body.len < rp->keep ? rp->keep - rp->body.len : 0;
    if (room && ll_buf_add(&rp->body, data, len < room ? len : room) < 0)
        return 0;
    return len;
}

/* Copies a header's value (trimmed) when the line is `name: value`. */
static int header_value(char *out, size_t cap, const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
    return 1;
}

static size_t on_header(char *data, size_t size, size_t n, void *payload)
{
    reply *rp = payload;
    size_t len = size * n;
    char tmp[sizeof(rp->challenge)];
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new answer (after a 100 Continue): forget the last one's headers */
        rp->location[0] = rp->digest[0] = rp->challenge[0] = '\0';
        return len;
    }
    header_value(rp->location, sizeof(rp->location), data, len, "location");
    header_value(rp->digest, sizeof(rp->digest), data, len, "docker-content-digest");
    if (!rp->challenge[0] && header_value(tmp, sizeof(tmp), data, len, "www-authenticate"))
        memcpy(rp->challenge, tmp, sizeof(tmp));
    return len;
}

static void reply_init(reply *rp, size_t keep)
{
    memset(rp, 0, sizeof(*rp));
    rp->keep = keep ? keep : ERROR_KEEP;
    ll_buf_init(&rp->body, rp->keep);
}

static void reply_free(reply *rp)
{
    ll_buf_free(&rp->body);
}

/* The path of url, without origin or query: what messages and logs show
 * (an upload URL's query carries the registry's state token). */
static void path_of(char *out, size_t cap, const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : url;
    if (!p)
        p = "/";
    size_t n = strcspn(p, "?#");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static CURL *thread_handle(ll_ociremote *r)
{
    CURL *h = pthread_getspecific(r->handle_key);
    if (!h && (h = curl_easy_init()))
        pthread_setspecific(r->handle_key, h);
    return h;
}

static int add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* Sends q once, with the Authorization header auth (or none). */
static int perform(op *o, const request *q, const char *auth, reply *rp)
{
    ll_ociremote *r = o->r;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "", line[300], path[600];
    int64_t t0 = ll_monotonic_ms();
    CURL *h = o->h;
    CURLcode rc;

    curl_easy_reset(h);
    /* No Expect: 100-continue; an empty Content-Type drops curl's form type. */
    snprintf(line, sizeof(line), "Content-Type:%s%s", q->content_type ? " " : "",
             q->content_type ? q->content_type : "");
    if (add(&headers, "Expect:") < 0 || add(&headers, line) < 0 ||
        (auth && add(&headers, auth) < 0))
        goto oom;
    if (q->accept) {
        snprintf(line, sizeof(line), "Accept: %s", q->accept);
        if (add(&headers, line) < 0)
            goto oom;
    }
    curl_easy_setopt(h, CURLOPT_URL, q->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, r->plain_http ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "landlord");
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (r->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)r->timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)r->timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)r->timeout_s * 10);
    if (!strcmp(q->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(q->method, "POST") || !strcmp(q->method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        if (!strcmp(q->method, "PUT"))
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rp);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rp->status);
    curl_slist_free_all(headers);
    o->requests++;
    path_of(path, sizeof(path), q->url);
    ll_log_debug("msg=\"registry request\" method=%s path=%s status=%ld ms=%lld", q->method, path,
                 rp->status, (long long)(ll_monotonic_ms() - t0));
    if (rc != CURLE_OK) {
        ll_error_set(LL_EUPSTREAM, "oci registry %s: %s %s: %s", r->host, q->method, path,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
            rc == CURLE_SSL_CONNECT_ERROR)
            ll_error_hint("the registry's TLS certificate was not accepted: give its CA in "
                          "oci-ca-file");
        else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
            ll_error_hint("the registry sent an http:// URL; landlord only follows https "
                          "unless oci-plain-http is set");
        else
            ll_error_hint("check oci-url and that the registry is reachable");
        return LL_EUPSTREAM;
    }
    return 0;
oom:
    curl_slist_free_all(headers);
    return ll_error_set(-1, "out of memory");
}

/* "CODE: message" of a registry error body, when it has one. */
static void error_text(char *out, size_t cap, const reply *rp)
{
    ll_ociremote_error_text(out, cap, rp->body.data ? rp->body.data : "", rp->body.len);
}

static int error_code_is(const reply *rp, const char *code)
{
    json_t *doc = json_loadb(rp->body.data ? rp->body.data : "", rp->body.len, 0, NULL);
    const char *c = json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "code"));
    int is = c && !strcmp(c, code);
    json_decref(doc);
    return is;
}

/* The error for an answer that is not what step expects. */
static int http_error(op *o, const request *q, const reply *rp)
{
    char path[600], text[300];
    ll_ociremote *r = o->r;
    path_of(path, sizeof(path), q->url);
    error_text(text, sizeof(text), rp);
    ll_error_set(LL_EUPSTREAM, "oci registry %s: %s %s: %ld%s%s", r->host, q->method, path,
                 rp->status, text[0] ? " " : "", text);
    if (rp->status == 401)
        ll_error_hint(r->aws ? "the registry refused the ECR token: check the AWS identity's ECR "
                               "permissions"
                      : r->basic ? "the registry refused the credentials: check oci-username and "
                                   "oci-password-file"
                                 : "the registry wants credentials: set oci-username and "
                                   "oci-password-file");
    else if (rp->status == 403)
        ll_error_hint("the registry denied landlord this action on %s", o->repo);
    else if (rp->status == 404 && error_code_is(rp, "NAME_UNKNOWN"))
        ll_error_hint("the repository %s does not exist and this registry does not create "
                      "repositories on push",
                      o->repo);
    else if (rp->status >= 500)
        ll_error_hint("the registry failed; nothing was recorded, upload again later");
    return LL_EUPSTREAM;
}

/* --- credentials ---------------------------------------------------------------------------- */

/* Learns the challenge of a 401.  1 when landlord can answer it. */
static int learn(op *o, const reply *rp)
{
    ll_ociremote *r = o->r;
    ll_oci_challenge ch;
    int can = 0;

    if (ll_oci_challenge_parse(&ch, rp->challenge) < 0)
        return 0;
    pthread_mutex_lock(&r->lock);
    if (!strcmp(ch.scheme, "basic")) {
        r->scheme = SCHEME_BASIC;
        can = r->aws || r->basic;
    } else if (!strcmp(ch.scheme, "bearer") && ch.realm[0]) {
        char *realm = strdup(ch.realm), *service = strdup(ch.service);
        if (realm && service) {
            free(r->realm);
            free(r->service);
            r->realm = realm;
            r->service = service;
            r->scheme = SCHEME_BEARER;
            can = 1;
        } else {
            free(realm);
            free(service);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return can;
}

static token *cached_token(ll_ociremote *r, const char *scope)
{
    for (int i = 0; i < TOKENS; i++)
        if (r->tokens[i].scope && !strcmp(r->tokens[i].scope, scope))
            return &r->tokens[i];
    return NULL;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* GET <realm>?service=..&scope=.. with the Basic credential (when one is
 * configured); stores the token for o->scope.  Called with r->lock held. */
static int fetch_token(op *o)
{
    ll_ociremote *r = o->r;
    char *svc = curl_easy_escape(o->h, r->service ? r->service : "", 0);
    char *scope = curl_easy_escape(o->h, o->scope, 0);
    char *url = NULL, *auth = NULL, *tok = NULL, path[600], text[300];
    int64_t use_ms = 0;
    reply rp;
    int error;

    reply_init(&rp, TOKEN_KEEP);
    if (!svc || !scope ||
        asprintf(&url, "%s%sservice=%s&scope=%s", r->realm, strchr(r->realm, '?') ? "&" : "?", svc,
                 scope) < 0) {
        url = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    request q = {"GET", url, "application/json", NULL, NULL, 0, TOKEN_KEEP};
    if (r->basic && asprintf(&auth, "Authorization: %s", r->basic) < 0) {
        auth = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    if ((error = perform(o, &q, auth, &rp)) < 0)
        goto done;
    path_of(path, sizeof(path), url);
    error = rp.status == 200 ? ll_ociremote_token_answer(
                                   &tok, &use_ms, rp.body.data ? rp.body.data : "", rp.body.len)
                             : LL_ENOTFOUND;
    if (error == LL_ENOTFOUND) {
        error_text(text, sizeof(text), &rp);
        error = ll_error_set(LL_EUPSTREAM,
                             "oci registry %s: the token server %s refused scope %s: %ld%s%s",
                             r->host, path, o->scope, rp.status, text[0] ? " " : "", text);
        ll_error_hint(rp.status == 401 ? "the token server refused the credentials: check "
                                         "oci-username and oci-password-file"
                                       : "check the registry's token service");
        goto done;
    }
    if (error == LL_EMALFORMED) {
        error = ll_error_set(LL_EUPSTREAM,
                             "oci registry %s: the token server %s sent a "
                             "token with control characters",
                             r->host, path);
        goto done;
    }
    if (error < 0)
        goto done;
    token *t = cached_token(r, o->scope);
    if (!t) {
        t = &r->tokens[r->next_token++ % TOKENS];
        free(t->scope);
        t->scope = strdup(o->scope);
    }
    wipe_free(t->value);
    t->value = tok;
    tok = NULL;
    t->refresh_ms = wall_ms() + use_ms;
    if (!t->scope) {
        wipe_free(t->value);
        t->value = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    ll_log_debug("msg=\"registry token fetched\" registry=%s scope=%s use_s=%lld", r->host,
                 o->scope, (long long)(use_ms / 1000));
    error = 0;
done:
    wipe_free(tok);
    if (rp.body.data)
        OPENSSL_cleanse(rp.body.data, rp.body.len);
    reply_free(&rp);
    curl_free(svc);
    curl_free(scope);
    free(url);
    if (auth) {
        OPENSSL_cleanse(auth, strlen(auth));
        free(auth);
    }
    return error;
}

/* Keeps the last error's message, detail and hint under another code: a
 * failure to obtain registry credentials is the upstream's, never a 401 of
 * landlord's own API. */
static int recode(int error, int code)
{
    ll_error e = *ll_error_last();
    if (error >= 0 || error == LL_ERROR)
        return error;
    ll_error_set(code, "%s", e.message);
    if (e.detail[0])
        ll_error_detail("%s", e.detail);
    if (e.hint[0])
        ll_error_hint("%s", e.hint);
    return code;
}

/* The Authorization header line for the next request to the registry
 * (a new string the caller wipes), or NULL.  fresh: the last one was
 * refused, fetch new credentials. */
static int auth_line(char **out, op *o, int fresh)
{
    ll_ociremote *r = o->r;
    char *secret = NULL;
    int error = 0;

    *out = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->scheme == SCHEME_BASIC && r->aws) {
        pthread_mutex_unlock(&r->lock);
        if ((error = ll_ecr_authorization(&secret, r->aws, fresh)) < 0)
            return recode(error, LL_EUPSTREAM);
        if (asprintf(out, "Authorization: Basic %s", secret) < 0)
            *out = NULL;
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
        return *out ? 0 : ll_error_set(-1, "out of memory");
    }
    if (r->scheme == SCHEME_BASIC && r->basic) {
        if (asprintf(out, "Authorization: %s", r->basic) < 0)
            *out = NULL;
    } else if (r->scheme == SCHEME_BEARER) {
        token *t = cached_token(r, o->scope);
        if (fresh || !t || !t->value || wall_ms() >= t->refresh_ms) {
            if ((error = fetch_token(o)) == 0)
                t = cached_token(r, o->scope);
        }
        if (error == 0 && t && t->value && asprintf(out, "Authorization: Bearer %s", t->value) < 0)
            *out = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return error;
}

static int scheme_of(ll_ociremote *r)
{
    pthread_mutex_lock(&r->lock);
    int s = r->scheme;
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* 1 when url is on the registry's own origin (credentials may go there). */
static int same_origin(const ll_ociremote *r, const char *url)
{
    size_t n = strlen(r->origin);
    return strncmp(url, r->origin, n) == 0 && (url[n] == '/' || url[n] == '\0' || url[n] == '?');
}

/* One request with the registry's authentication: a 401 is answered once
 * (after learning its challenge), and on ECR a 403 once with a fresh token
 * (ECR answers an expired token with 403 DENIED). */
static int send_request(op *o, const request *q, reply *rp)
{
    int same = same_origin(o->r, q->url), error = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *auth = NULL;
        if (attempt) {
            reply_free(rp);
            reply_init(rp, q->keep);
        }
        if (same && (error = auth_line(&auth, o, attempt)) < 0)
            return error;
        error = perform(o, q, auth, rp);
        int sent = auth != NULL;
        wipe_free(auth);
        if (error < 0)
            return error;
        if (!same || attempt)
            break;
        if (rp->status == 401) {
            if (!learn(o, rp))
                break;
            /* A Basic credential that was refused is refused again. */
            if (sent && o->r->basic && !o->r->aws && scheme_of(o->r) == SCHEME_BASIC)
                break;
            continue;
        }
        if (!(rp->status == 403 && sent && o->r->aws))
            break;
    }
    return 0;
}

/* --- the push ------------------------------------------------------------------------------- */

static int op_init(op *o, ll_ociremote *r, const char *chart, const char *actions)
{
    memset(o, 0, sizeof(*o));
    o->r = r;
    repository(o->repo, sizeof(o->repo), r, chart);
    snprintf(o->scope, sizeof(o->scope), "repository:%s:%s", o->repo, actions);
    if (!(o->h = thread_handle(r)))
        return ll_error_set(-1, "out of memory");
    return 0;
}

/* GET /v2/ once per process: which challenge the registry sends. */
static int probe(op *o)
{
    ll_ociremote *r = o->r;
    char url[400];
    reply rp;
    int error, known;

    known = scheme_of(r) != SCHEME_UNKNOWN;
    if (known)
        return 0;
    snprintf(url, sizeof(url), "%s/v2/", r->origin);
    request q = {"GET", url, "application/json", NULL, NULL, 0, ERROR_KEEP};
    reply_init(&rp, ERROR_KEEP);
    if ((error = perform(o, &q, NULL, &rp)) == 0) {
        if (rp.status == 200) {
            pthread_mutex_lock(&r->lock);
            r->scheme = SCHEME_NONE;
            pthread_mutex_unlock(&r->lock);
        } else if (rp.status == 401) {
            if (!learn(o, &rp)) {
                int sch = scheme_of(r);
                ll_error_set(LL_EUPSTREAM, "oci registry %s: GET /v2/: 401 asks for %s", r->host,
                             sch == SCHEME_BASIC ? "a user name and password"
                                                 : "an authentication landlord cannot answer");
                ll_error_hint("set oci-username and oci-password-file");
                error = LL_EUPSTREAM;
            }
        } else {
            error = http_error(o, &q, &rp);
            ll_error_hint("is %s an OCI registry? GET /v2/ should answer 200 or 401", r->host);
        }
    }
    reply_free(&rp);
    return error;
}

/* The manifest the tag points to (digest from the HEAD, "" when the
 * registry sent none) holds the chart when its chart layer is ours: adopt
 * it (*out gets its digests) or LL_ECONFLICT. */
static int compare_existing(ll_ociremote_pushed *out, op *o, const char *digest,
                            const ll_oci_artifact *a)
{
    char url[1200], got[80], cfg[80];
    reply rp;
    int error, same = 0;

    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", o->r->origin, o->repo,
             digest[0] ? digest : a->tag);
    request q = {"GET", url, MANIFEST_ACCEPT, NULL, NULL, 0, MANIFEST_KEEP};
    reply_init(&rp, MANIFEST_KEEP);
    if ((error = send_request(o, &q, &rp)) < 0)
        goto done;
    if (rp.status != 200) {
        error = http_error(o, &q, &rp);
        goto done;
    }
    ll_oci_digest(got, rp.body.data ? rp.body.data : "", rp.body.len);
    same = ll_ociremote_manifest_holds(cfg, sizeof(cfg), rp.body.data ? rp.body.data : "",
                                       rp.body.len, a->layer_digest);
    if (digest[0] && strcmp(got, digest) != 0) {
        error = ll_error_set(LL_EUPSTREAM,
                             "oci registry %s: manifest %s:%s has digest %s, not the "
                             "%s its HEAD announced",
                             o->r->host, o->repo, a->tag, got, digest);
        goto done;
    }
    if (!same) {
        error = ll_error_set(LL_ECONFLICT,
                             "the registry %s already holds %s:%s with another chart (manifest "
                             "%s); a version is immutable",
                             o->r->host, o->repo, a->tag, got);
        ll_error_hint("upload the chart under a new version");
        goto done;
    }
    snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", got);
    snprintf(out->config_digest, sizeof(out->config_digest), "%s", cfg);
    out->pushed = 0;
    error = 0;
done:
    reply_free(&rp);
    return error;
}

/* Resolves a Location against the URL it answered (relative or absolute). */
static int resolve(char **out, const char *base, const char *location)
{
    CURLU *u = curl_url();
    int error = 0;
    *out = NULL;
    if (!u)
        return ll_error_set(-1, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK) {
        error = ll_error_set(LL_EUPSTREAM, "the registry's upload Location is not a URL");
    } else {
        char *s = NULL;
        if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
            error = ll_error_set(-1, "out of memory");
        else if (!(*out = strdup(s)))
            error = ll_error_set(-1, "out of memory");
        curl_free(s);
    }
    curl_url_cleanup(u);
    return error;
}

/* HEAD the blob; when missing POST an upload and PUT it whole.  *uploaded
 * counts uploads. */
static int push_blob(op *o, const char *digest, const void *data, size_t len, int *uploaded)
{
    ll_ociremote *r = o->r;
    char url[1200], *put = NULL, *loc = NULL;
    reply rp;
    int error;

    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->origin, o->repo, digest);
    request head = {"HEAD", url, NULL, NULL, NULL, 0, ERROR_KEEP};
    reply_init(&rp, ERROR_KEEP);
    if ((error = send_request(o, &head, &rp)) < 0)
        goto done;
    if (rp.status == 200 || (rp.status >= 300 && rp.status < 400))
        goto done; /* there already (a 3xx: a registry redirecting to its storage) */
    if (rp.status != 404) {
        error = http_error(o, &head, &rp);
        goto done;
    }
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", r->origin, o->repo);
    request post = {"POST", url, NULL, NULL, "", 0, ERROR_KEEP};
    for (;;) {
        reply_free(&rp);
        reply_init(&rp, ERROR_KEEP);
        if ((error = send_request(o, &post, &rp)) < 0)
            goto done;
        if (rp.status == 404 && r->aws && !o->repo_created && error_code_is(&rp, "NAME_UNKNOWN")) {
            /* ECR does not create repositories on push. */
            if ((error = ll_ecr_create_repository(r->aws, o->repo)) < 0) {
                error = recode(error, LL_EUPSTREAM);
                goto done;
            }
            o->repo_created = 1;
            continue;
        }
        break;
    }
    if (rp.status != 202 || !rp.location[0]) {
        error = rp.status == 202 ? ll_error_set(LL_EUPSTREAM,
                                                "oci registry %s: POST /v2/%s/blobs/uploads/: 202 "
                                                "without Location",
                                                r->host, o->repo)
                                 : http_error(o, &post, &rp);
        goto done;
    }
    if ((error = resolve(&loc, url, rp.location)) < 0)
        goto done;
    if (asprintf(&put, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest) < 0) {
        put = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    request q = {"PUT", put, NULL, "application/octet-stream", data, len, ERROR_KEEP};
    reply_free(&rp);
    reply_init(&rp, ERROR_KEEP);
    if ((error = send_request(o, &q, &rp)) < 0)
        goto done;
    if (rp.status != 201) {
        error = http_error(o, &q, &rp);
        goto done;
    }
    if (rp.digest[0] && strcmp(rp.digest, digest) != 0) {
        error = ll_error_set(LL_EUPSTREAM,
                             "oci registry %s: the blob upload answered digest %s, "
                             "not %s",
                             r->host, rp.digest, digest);
        goto done;
    }
    (*uploaded)++;
done:
    reply_free(&rp);
    free(put);
    free(loc);
    return error;
}

int ll_ociremote_push(ll_ociremote_pushed *out, ll_ociremote *r, const char *chart,
                      const ll_oci_artifact *a, const void *tgz, size_t len)
{
    char url[1200];
    int64_t t0 = ll_monotonic_ms();
    reply rp;
    op o;
    int error;

    memset(out, 0, sizeof(*out));
    reply_init(&rp, ERROR_KEEP);
    if ((error = op_init(&o, r, chart, "pull,push")) < 0 || (error = probe(&o)) < 0)
        goto done;

    /* 1. the tag: there already? */
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->origin, o.repo, a->tag);
    request head = {"HEAD", url, MANIFEST_ACCEPT, NULL, NULL, 0, ERROR_KEEP};
    if ((error = send_request(&o, &head, &rp)) < 0)
        goto done;
    if (rp.status == 200) {
        if (!strcmp(rp.digest, a->manifest_digest)) {
            snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", a->manifest_digest);
            snprintf(out->config_digest, sizeof(out->config_digest), "%s", a->config_digest);
        } else {
            char existing[80];
            snprintf(existing, sizeof(existing), "%s", rp.digest);
            error = compare_existing(out, &o, existing, a);
        }
        goto done;
    }
    if (rp.status != 404) {
        error = http_error(&o, &head, &rp);
        goto done;
    }

    /* 2. the blobs, 3. the manifest */
    if ((error = push_blob(&o, a->config_digest, a->config, a->config_len, &out->blobs_uploaded)) <
            0 ||
        (error = push_blob(&o, a->layer_digest, tgz, len, &out->blobs_uploaded)) < 0)
        goto done;
    request put = {"PUT", url, NULL, LL_OCI_MANIFEST, a->manifest, a->manifest_len, ERROR_KEEP};
    reply_free(&rp);
    reply_init(&rp, ERROR_KEEP);
    if ((error = send_request(&o, &put, &rp)) < 0)
        goto done;
    if (rp.status != 201 && rp.status != 200) {
        error = http_error(&o, &put, &rp);
        goto done;
    }
    if (rp.digest[0] && strcmp(rp.digest, a->manifest_digest) != 0) {
        error = ll_error_set(LL_EUPSTREAM,
                             "oci registry %s: the manifest PUT answered digest %s, "
                             "not %s",
                             r->host, rp.digest, a->manifest_digest);
        goto done;
    }
    snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", a->manifest_digest);
    snprintf(out->config_digest, sizeof(out->config_digest), "%s", a->config_digest);
    out->pushed = 1;
done:
    out->requests = o.requests;
    reply_free(&rp);
    if (error == 0 || error == LL_ECONFLICT) {
        record(r, 1);
        ll_log_info("msg=\"chart %s\" registry=%s repository=%s tag=%s digest=%s blobs_uploaded=%d "
                    "requests=%d ms=%lld",
                    error         ? "conflicts with the registry"
                    : out->pushed ? "pushed"
                                  : "already there",
                    r->host, o.repo, a->tag, error ? "-" : out->manifest_digest,
                    out->blobs_uploaded, out->requests, (long long)(ll_monotonic_ms() - t0));
    } else {
        record(r, 0);
        ll_log_warn("msg=\"chart push failed\" registry=%s repository=%s tag=%s requests=%d "
                    "error=\"%s\"",
                    r->host, o.repo, a->tag, o.requests, ll_error_last()->message);
    }
    return error;
}

int ll_ociremote_delete(ll_ociremote *r, const char *chart, const char *digest)
{
    char url[1200];
    reply rp;
    op o;
    int error;

    reply_init(&rp, ERROR_KEEP);
    if ((error = op_init(&o, r, chart, "delete")) < 0 || (error = probe(&o)) < 0)
        goto done;
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->origin, o.repo, digest);
    request del = {"DELETE", url, NULL, NULL, NULL, 0, ERROR_KEEP};
    if ((error = send_request(&o, &del, &rp)) < 0)
        goto done;
    if (rp.status == 202 || rp.status == 200 || rp.status == 204 || rp.status == 404) {
        ll_log_info("msg=\"chart deleted from the registry\" registry=%s repository=%s digest=%s "
                    "status=%ld",
                    r->host, o.repo, digest, rp.status);
        goto done;
    }
    error = http_error(&o, &del, &rp);
    if (rp.status == 405 || error_code_is(&rp, "UNSUPPORTED"))
        ll_error_hint("the registry refuses deletes (CNCF Distribution: storage.delete.enabled: "
                      "true); the release stays in the catalogue");
done:
    reply_free(&rp);
    record(r, error == 0);
    return error;
}

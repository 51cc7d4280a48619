/* ociremote_req.c - one request to an OCI registry, with its credentials.
 *
 * ll_ocireq_perform() sends a request once on the thread's curl handle
 * (timeouts, the CA file, plain HTTP only where open allowed it) and keeps
 * capped buffers of what the registry answers: 64 KiB of an error, 4 MiB
 * of a manifest, 1 MiB of a token.  ll_ocireq_send() adds the credentials
 * the registry's challenge asked for (only to the registry's own origin),
 * and on a 401 learns the challenge, fetches fresh credentials and tries
 * once more.  The challenge is learnt once per process from GET /v2/ (or
 * from any 401), so later operations send credentials at once.  Bearer
 * tokens are cached per scope (TOKENS of them), used until a margin before
 * they expire, and wiped when dropped.  On ECR the credentials come from
 * the AWS chain (aws.c).
 *
 * Locks: r->lock guards the challenge and the token cache and may be held
 * while a token is fetched (so concurrent operations wait for one fetch).
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
#include "ociremote_req.h"
#include "landlord/util.h"

/* Wipes a secret before freeing it (NULL: nothing). */
static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* --- one HTTP exchange ------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    oci_reply *rp = payload;
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
    oci_reply *rp = payload;
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

void ll_ocireq_reply_init(oci_reply *rp, size_t keep)
{
    memset(rp, 0, sizeof(*rp));
    rp->keep = keep ? keep : ERROR_KEEP;
    ll_buf_init(&rp->body, rp->keep);
}

void ll_ocireq_reply_free(oci_reply *rp)
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

CURL *ll_ocireq_handle(ll_ociremote *r)
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
/* The request's headers: no Expect: 100-continue, its Content-Type (an
 * empty one drops curl's form type), the credentials auth (or none) and
 * Accept.  *out is a new list. */
static int request_headers(struct curl_slist **out, const oci_request *q, const char *auth)
{
    struct curl_slist *headers = NULL;
    char line[300];

    snprintf(line, sizeof(line), "Content-Type:%s%s", q->content_type ? " " : "",
             q->content_type ? q->content_type : "");
    if (add(&headers, "Expect:") < 0 || add(&headers, line) < 0 ||
        (auth && add(&headers, auth) < 0))
        goto done;
    if (q->accept) {
        snprintf(line, sizeof(line), "Accept: %s", q->accept);
        if (add(&headers, line) < 0)
            goto done;
    }
    *out = headers;
    return 0;
done:
    curl_slist_free_all(headers);
    return ll_error_set(-1, "out of memory");
}

/* The method and body of q on h (GET is curl's default). */
static void set_method(CURL *h, const oci_request *q)
{
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
}

/* LL_EUPSTREAM for a request curl could not complete (rc, errbuf), with a
 * hint for the usual causes. */
static int exchange_failed(const ll_ociremote *r, const oci_request *q, const char *path,
                           CURLcode rc, const char *errbuf)
{
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

int ll_ocireq_perform(oci_op *o, const oci_request *q, const char *auth, oci_reply *rp)
{
    ll_ociremote *r = o->r;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "", path[600];
    int64_t t0 = ll_monotonic_ms();
    CURL *h = o->h;
    CURLcode rc;
    int error;

    curl_easy_reset(h);
    if ((error = request_headers(&headers, q, auth)) < 0)
        return error;
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
    set_method(h, q);
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
    if (rc != CURLE_OK)
        return exchange_failed(r, q, path, rc, errbuf);
    return 0;
}

/* "CODE: message" of a registry error body, when it has one. */
static void error_text(char *out, size_t cap, const oci_reply *rp)
{
    ll_ociremote_error_text(out, cap, rp->body.data ? rp->body.data : "", rp->body.len);
}

int ll_ocireq_error_code_is(const oci_reply *rp, const char *code)
{
    json_t *doc = json_loadb(rp->body.data ? rp->body.data : "", rp->body.len, 0, NULL);
    const char *c = json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "code"));
    int is = c && !strcmp(c, code);
    json_decref(doc);
    return is;
}

/* The error for an answer that is not what step expects. */
int ll_ocireq_http_error(oci_op *o, const oci_request *q, const oci_reply *rp)
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
    else if (rp->status == 404 && ll_ocireq_error_code_is(rp, "NAME_UNKNOWN"))
        ll_error_hint("the repository %s does not exist and this registry does not create "
                      "repositories on push",
                      o->repo);
    else if (rp->status >= 500)
        ll_error_hint("the registry failed; nothing was recorded, upload again later");
    return LL_EUPSTREAM;
}

/* --- credentials ---------------------------------------------------------------------------- */

/* Learns the challenge of a 401.  1 when landlord can answer it. */
int ll_ocireq_learn(oci_op *o, const oci_reply *rp)
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

static oci_token *cached_token(ll_ociremote *r, const char *scope)
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
/* Keeps token tok (steals it) for scope in r's cache, in scope's slot or
 * the next one round, to be used for use_ms from now.  Under r->lock. */
static int keep_token(ll_ociremote *r, const char *scope, char *tok, int64_t use_ms)
{
    oci_token *t = cached_token(r, scope);
    if (!t) {
        t = &r->tokens[r->next_token++ % TOKENS];
        free(t->scope);
        t->scope = strdup(scope);
    }
    wipe_free(t->value);
    t->value = tok;
    t->refresh_ms = wall_ms() + use_ms;
    if (!t->scope) {
        wipe_free(t->value);
        t->value = NULL;
        return ll_error_set(-1, "out of memory");
    }
    return 0;
}

static int fetch_token(oci_op *o)
{
    ll_ociremote *r = o->r;
    char *svc = curl_easy_escape(o->h, r->service ? r->service : "", 0);
    char *scope = curl_easy_escape(o->h, o->scope, 0);
    char *url = NULL, *auth = NULL, *tok = NULL, path[600], text[300];
    int64_t use_ms = 0;
    oci_reply rp;
    int error;

    ll_ocireq_reply_init(&rp, TOKEN_KEEP);
    if (!svc || !scope ||
        asprintf(&url, "%s%sservice=%s&scope=%s", r->realm, strchr(r->realm, '?') ? "&" : "?", svc,
                 scope) < 0) {
        url = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    oci_request q = {"GET", url, "application/json", NULL, NULL, 0, TOKEN_KEEP};
    if (r->basic && asprintf(&auth, "Authorization: %s", r->basic) < 0) {
        auth = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    if ((error = ll_ocireq_perform(o, &q, auth, &rp)) < 0)
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
    error = keep_token(r, o->scope, tok, use_ms);
    tok = NULL;
    if (error < 0)
        goto done;
    ll_log_debug("msg=\"registry token fetched\" registry=%s scope=%s use_s=%lld", r->host,
                 o->scope, (long long)(use_ms / 1000));
    error = 0;
done:
    wipe_free(tok);
    if (rp.body.data)
        OPENSSL_cleanse(rp.body.data, rp.body.len);
    ll_ocireq_reply_free(&rp);
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
int ll_ocireq_recode(int error, int code)
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
static int auth_line(char **out, oci_op *o, int fresh)
{
    ll_ociremote *r = o->r;
    char *secret = NULL;
    int error = 0;

    *out = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->scheme == SCHEME_BASIC && r->aws) {
        pthread_mutex_unlock(&r->lock);
        if ((error = ll_ecr_authorization(&secret, r->aws, fresh)) < 0)
            return ll_ocireq_recode(error, LL_EUPSTREAM);
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
        oci_token *t = cached_token(r, o->scope);
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

int ll_ocireq_scheme(ll_ociremote *r)
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
int ll_ocireq_send(oci_op *o, const oci_request *q, oci_reply *rp)
{
    int same = same_origin(o->r, q->url), error = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *auth = NULL;
        if (attempt) {
            ll_ocireq_reply_free(rp);
            ll_ocireq_reply_init(rp, q->keep);
        }
        if (same && (error = auth_line(&auth, o, attempt)) < 0)
            return error;
        error = ll_ocireq_perform(o, q, auth, rp);
        int sent = auth != NULL;
        wipe_free(auth);
        if (error < 0)
            return error;
        if (!same || attempt)
            break;
        if (rp->status == 401) {
            if (!ll_ocireq_learn(o, rp))
                break;
            /* A Basic credential that was refused is refused again. */
            if (sent && o->r->basic && !o->r->aws && ll_ocireq_scheme(o->r) == SCHEME_BASIC)
                break;
            continue;
        }
        if (!(rp->status == 403 && sent && o->r->aws))
            break;
    }
    return 0;
}

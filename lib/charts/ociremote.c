/* ociremote.c - the OCI Distribution push client (see ociremote.h).
 *
 * One operation (a push or a delete) is an `oci_op`: the thread's curl
 * handle, the repository, the token scope it needs, and a request counter.
 * Every request goes through ll_ocireq_send() (ociremote_req.c: the
 * registry's authentication, answered as its challenge asks); the parsers
 * of what comes back are in ociremote_parse.c.
 *
 * Bodies live in memory (a chart is at most release-max-size), so a retry
 * simply sends them again.
 *
 * Locks: `lock` guards the challenge and the token cache (ociremote_req.c);
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
#include "ociremote_req.h"
#include "landlord/util.h"

/* --- open ---------------------------------------------------------------------------- */

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
        goto done;
    }
    snprintf(r->url, sizeof(r->url), "%s", o->url);
    if ((error = open_transport(r, o)) < 0 || (error = open_credentials(r, o)) < 0)
        goto done;
    ll_log_info("msg=\"charts go to an OCI registry\" registry=%s base=%s auth=%s%s%s", r->host,
                r->base[0] ? r->base : "/",
                r->aws     ? "ecr"
                : r->basic ? "basic"
                           : "none",
                r->plain_http ? " transport=http" : "", r->ca_file ? " ca_file=set" : "");
    *out = r;
    r = NULL;
    error = 0;
done:
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

/* --- the push ------------------------------------------------------------------------------- */

static int op_init(oci_op *o, ll_ociremote *r, const char *chart, const char *actions)
{
    memset(o, 0, sizeof(*o));
    o->r = r;
    repository(o->repo, sizeof(o->repo), r, chart);
    snprintf(o->scope, sizeof(o->scope), "repository:%s:%s", o->repo, actions);
    if (!(o->h = ll_ocireq_handle(r)))
        return ll_error_set(-1, "out of memory");
    return 0;
}

/* GET /v2/ once per process: which challenge the registry sends. */
static int probe(oci_op *o)
{
    ll_ociremote *r = o->r;
    char url[400];
    oci_reply rp;
    int error, known;

    known = ll_ocireq_scheme(r) != SCHEME_UNKNOWN;
    if (known)
        return 0;
    snprintf(url, sizeof(url), "%s/v2/", r->origin);
    oci_request q = {"GET", url, "application/json", NULL, NULL, 0, ERROR_KEEP};
    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    if ((error = ll_ocireq_perform(o, &q, NULL, &rp)) == 0) {
        if (rp.status == 200) {
            pthread_mutex_lock(&r->lock);
            r->scheme = SCHEME_NONE;
            pthread_mutex_unlock(&r->lock);
        } else if (rp.status == 401) {
            if (!ll_ocireq_learn(o, &rp)) {
                int sch = ll_ocireq_scheme(r);
                ll_error_set(LL_EUPSTREAM, "oci registry %s: GET /v2/: 401 asks for %s", r->host,
                             sch == SCHEME_BASIC ? "a user name and password"
                                                 : "an authentication landlord cannot answer");
                ll_error_hint("set oci-username and oci-password-file");
                error = LL_EUPSTREAM;
            }
        } else {
            error = ll_ocireq_http_error(o, &q, &rp);
            ll_error_hint("is %s an OCI registry? GET /v2/ should answer 200 or 401", r->host);
        }
    }
    ll_ocireq_reply_free(&rp);
    return error;
}

/* The manifest the tag points to (digest from the HEAD, "" when the
 * registry sent none) holds the chart when its chart layer is ours: adopt
 * it (*out gets its digests) or LL_ECONFLICT. */
static int compare_existing(ll_ociremote_pushed *out, oci_op *o, const char *digest,
                            const ll_oci_artifact *a)
{
    char url[1200], got[80], cfg[80];
    oci_reply rp;
    int error, same = 0;

    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", o->r->origin, o->repo,
             digest[0] ? digest : a->tag);
    oci_request q = {"GET", url, MANIFEST_ACCEPT, NULL, NULL, 0, MANIFEST_KEEP};
    ll_ocireq_reply_init(&rp, MANIFEST_KEEP);
    if ((error = ll_ocireq_send(o, &q, &rp)) < 0)
        goto done;
    if (rp.status != 200) {
        error = ll_ocireq_http_error(o, &q, &rp);
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
    ll_ocireq_reply_free(&rp);
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
/* HEAD of the blob at url: 1 when the registry has it (200, or a 3xx: a
 * registry redirecting to its storage), 0 when it has not (404). */
static int blob_exists(oci_op *o, const char *url)
{
    oci_request head = {"HEAD", url, NULL, NULL, NULL, 0, ERROR_KEEP};
    oci_reply rp;
    int error;

    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    if ((error = ll_ocireq_send(o, &head, &rp)) < 0)
        goto done;
    if (rp.status == 200 || (rp.status >= 300 && rp.status < 400))
        error = 1;
    else if (rp.status != 404)
        error = ll_ocireq_http_error(o, &head, &rp);
done:
    ll_ocireq_reply_free(&rp);
    return error;
}

/* Starts an upload (POST .../blobs/uploads/; on ECR, the repository is
 * created first when the registry does not know it): *out_loc is the
 * upload's absolute URL (new). */
static int start_upload(char **out_loc, oci_op *o)
{
    ll_ociremote *r = o->r;
    char url[1200];
    oci_reply rp;
    int error;

    snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", r->origin, o->repo);
    oci_request post = {"POST", url, NULL, NULL, "", 0, ERROR_KEEP};
    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    for (;;) {
        ll_ocireq_reply_free(&rp);
        ll_ocireq_reply_init(&rp, ERROR_KEEP);
        if ((error = ll_ocireq_send(o, &post, &rp)) < 0)
            goto done;
        if (rp.status == 404 && r->aws && !o->repo_created &&
            ll_ocireq_error_code_is(&rp, "NAME_UNKNOWN")) {
            /* ECR does not create repositories on push. */
            if ((error = ll_ecr_create_repository(r->aws, o->repo)) < 0) {
                error = ll_ocireq_recode(error, LL_EUPSTREAM);
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
                                 : ll_ocireq_http_error(o, &post, &rp);
        goto done;
    }
    error = resolve(out_loc, url, rp.location);
done:
    ll_ocireq_reply_free(&rp);
    return error;
}

static int push_blob(oci_op *o, const char *digest, const void *data, size_t len, int *uploaded)
{
    ll_ociremote *r = o->r;
    char url[1200], *put = NULL, *loc = NULL;
    oci_reply rp;
    int error;

    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", r->origin, o->repo, digest);
    if ((error = blob_exists(o, url)) != 0) {
        error = error > 0 ? 0 : error; /* there already */
        goto done;
    }
    if ((error = start_upload(&loc, o)) < 0)
        goto done;
    if (asprintf(&put, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest) < 0) {
        put = NULL;
        error = ll_error_set(-1, "out of memory");
        goto done;
    }
    oci_request q = {"PUT", put, NULL, "application/octet-stream", data, len, ERROR_KEEP};
    if ((error = ll_ocireq_send(o, &q, &rp)) < 0)
        goto done;
    if (rp.status != 201) {
        error = ll_ocireq_http_error(o, &q, &rp);
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
    ll_ocireq_reply_free(&rp);
    free(put);
    free(loc);
    return error;
}

int ll_ociremote_push(ll_ociremote_pushed *out, ll_ociremote *r, const char *chart,
                      const ll_oci_artifact *a, const void *tgz, size_t len)
{
    char url[1200];
    int64_t t0 = ll_monotonic_ms();
    oci_reply rp;
    oci_op o;
    int error;

    memset(out, 0, sizeof(*out));
    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    if ((error = op_init(&o, r, chart, "pull,push")) < 0 || (error = probe(&o)) < 0)
        goto done;

    /* 1. the tag: there already? */
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->origin, o.repo, a->tag);
    oci_request head = {"HEAD", url, MANIFEST_ACCEPT, NULL, NULL, 0, ERROR_KEEP};
    if ((error = ll_ocireq_send(&o, &head, &rp)) < 0)
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
        error = ll_ocireq_http_error(&o, &head, &rp);
        goto done;
    }

    /* 2. the blobs, 3. the manifest */
    if ((error = push_blob(&o, a->config_digest, a->config, a->config_len, &out->blobs_uploaded)) <
            0 ||
        (error = push_blob(&o, a->layer_digest, tgz, len, &out->blobs_uploaded)) < 0)
        goto done;
    oci_request put = {"PUT", url, NULL, LL_OCI_MANIFEST, a->manifest, a->manifest_len, ERROR_KEEP};
    ll_ocireq_reply_free(&rp);
    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    if ((error = ll_ocireq_send(&o, &put, &rp)) < 0)
        goto done;
    if (rp.status != 201 && rp.status != 200) {
        error = ll_ocireq_http_error(&o, &put, &rp);
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
    ll_ocireq_reply_free(&rp);
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
    oci_reply rp;
    oci_op o;
    int error;

    ll_ocireq_reply_init(&rp, ERROR_KEEP);
    if ((error = op_init(&o, r, chart, "delete")) < 0 || (error = probe(&o)) < 0)
        goto done;
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", r->origin, o.repo, digest);
    oci_request del = {"DELETE", url, NULL, NULL, NULL, 0, ERROR_KEEP};
    if ((error = ll_ocireq_send(&o, &del, &rp)) < 0)
        goto done;
    if (rp.status == 202 || rp.status == 200 || rp.status == 204 || rp.status == 404) {
        ll_log_info("msg=\"chart deleted from the registry\" registry=%s repository=%s digest=%s "
                    "status=%ld",
                    r->host, o.repo, digest, rp.status);
        goto done;
    }
    error = ll_ocireq_http_error(&o, &del, &rp);
    if (rp.status == 405 || ll_ocireq_error_code_is(&rp, "UNSUPPORTED"))
        ll_error_hint("the registry refuses deletes (CNCF Distribution: storage.delete.enabled: "
                      "true); the release stays in the catalogue");
done:
    ll_ocireq_reply_free(&rp);
    record(r, error == 0);
    return error;
}

/* kube.c - the Kubernetes API client's requests (see kube.h); the handle
 * (where the cluster is and how to reach it) is made and freed by
 * kubeconfig.c.
 *
 * Each transfer (each retry too) runs on its own curl easy handle on the
 * caller's thread, so any number of threads may share one ll_kube.  The
 * handle is immutable after open except for the bearer token read from a
 * file (read again when the file's inode, size or mtime changes; guarded by
 * lock) and the cancel flag (atomic), which the progress callback of every
 * transfer checks.
 *
 * A watch is one long GET: curl hands the chunked body to a write callback
 * that cuts it into lines (a line may span reads; one line is capped),
 * parses each as a {"type","object"} event and calls the caller's function
 * before the next byte is read.
 *
 * Tokens and keys never reach a log line or an error message.
 */
#define _GNU_SOURCE /* asprintf, vasprintf */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "landlord/error.h"
#include "landlord/kube.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "kube_int.h"

#define DEFAULT_IDLE_S    330
#define BODY_MAX          (256u << 20) /* a list page of large objects */
#define ERROR_BODY_MAX    (64u << 10)  /* what is kept of a non-2xx answer */
#define WATCH_LINE_MAX    (16u << 20)  /* one watch event */
#define BACKOFF_FIRST_MS  200
#define BACKOFF_MAX_MS    10000
#define RETRY_AFTER_MAX_S 10
#define PAUSE_SLICE_MS    50

/* --- small helpers -------------------------------------------------------- */

/* Copies s into out as one printable line (control bytes become spaces). */
static void one_line(char *out, size_t cap, const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n && i + 1 < cap && s[i]; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    out[i] = '\0';
}

/* The length of path without its query, for messages and logs. */
static int bare_len(const char *path)
{
    size_t n = strcspn(path, "?");
    return n > 1024 ? 1024 : (int)n;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The Authorization header for the next request (a new string the caller
 * wipes and frees), or NULL without a token.  Reads the token file again
 * when it changed; when that fails the token known so far is kept. */
static char *auth_header(ll_kube *k)
{
    struct stat st;
    char *fresh = NULL, *header = NULL;

    pthread_mutex_lock(&k->lock);
    if (k->token_path && stat(k->token_path, &st) == 0 && !same_file(&st, &k->token_st)) {
        if (kube_read_token(&fresh, &st, k->token_path) == 0) {
            if (k->token) {
                explicit_bzero(k->token, strlen(k->token));
                free(k->token);
            }
            k->token = fresh;
            k->token_st = st;
        } else {
            ll_log_warn("msg=\"kubernetes token not read again\" path=%s error=\"%s\"",
                        k->token_path, ll_error_last()->message);
        }
    }
    if (k->token && asprintf(&header, "Authorization: Bearer %s", k->token) < 0)
        header = NULL;
    pthread_mutex_unlock(&k->lock);
    return header;
}

/* --- transfers ---------------------------------------------------------------- */

typedef struct xfer {
    ll_kube *k;
    CURL *h;
    const char *verb; /* "GET", "PATCH" or "watch", for messages */
    const char *path;
    long status;
    ll_buf body;  /* the answer (a non-2xx one is cut at ERROR_BODY_MAX) */
    int stop;     /* a code the write callback stopped the transfer with */
    int watching; /* a 2xx answer is a stream of events */
    ll_buf line;  /* the event line read so far */
    long events;  /* lines seen */
    ll_kube_event_fn fn;
    void *ctx;
} xfer;

static void xfer_init(xfer *x, ll_kube *k, const char *verb, const char *path)
{
    memset(x, 0, sizeof(*x));
    x->k = k;
    x->verb = verb;
    x->path = path;
    ll_buf_init(&x->body, BODY_MAX);
    ll_buf_init(&x->line, WATCH_LINE_MAX);
}

static void xfer_free(xfer *x)
{
    ll_buf_free(&x->body);
    ll_buf_free(&x->line);
}

static int is_2xx(long status)
{
    return status >= 200 && status < 300;
}

static int cancelled(ll_kube *k)
{
    return atomic_load(&k->cancelled) != 0;
}

/* 1 when the stream stopped inside a line (more than whitespace). */
static int partial_line(const xfer *x)
{
    for (size_t i = 0; i < x->line.len; i++) {
        if (!isspace((unsigned char)x->line.data[i]))
            return 1;
    }
    return 0;
}

static int cancelled_error(const xfer *x)
{
    return ll_error_set(LL_ETIMEOUT, "kubernetes: %s %.*s: cancelled (shutting down)", x->verb,
                        bare_len(x->path), x->path);
}

/* "<message> (reason <reason>)" of a Kubernetes Status, on one line. */
static void status_text(char *out, size_t cap, const json_t *status)
{
    /* room left in an error message for " (reason ...)" */
    char msg[LL_ERROR_MSG_MAX - 96] = "";
    const char *m = kube_str(status, "message"), *reason = kube_str(status, "reason");

    if (m)
        one_line(msg, sizeof(msg), m, strlen(m));
    if (m && reason)
        snprintf(out, cap, "%s (reason %.64s)", msg, reason);
    else if (reason)
        snprintf(out, cap, "reason %.64s", reason);
    else
        snprintf(out, cap, "%s", msg);
}

/* A watch line: an event for fn, a 410, an error event or garbage. */
static int watch_line(xfer *x, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *ev = NULL, *obj;
    const char *type;
    char text[LL_ERROR_MSG_MAX];
    int error = 0, plen = bare_len(x->path);

    while (len && isspace((unsigned char)line[len - 1]))
        len--;
    if (!len)
        return 0;
    x->events++;
    ev = json_loadb(line, len, 0, &jerr);
    type = kube_str(ev, "type");
    obj = json_object_get(ev, "object");
    if (!type || !json_is_object(obj)) {
        error =
            ll_error_set(LL_EMALFORMED, "kubernetes: watch %.*s: line %ld is not a watch event: %s",
                         plen, x->path, x->events, ev ? "no type and object" : jerr.text);
        goto done;
    }
    if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *reason = kube_str(obj, "reason");
        status_text(text, sizeof(text), obj);
        if (code == 410 || (reason && (!strcmp(reason, "Expired") || !strcmp(reason, "Gone")))) {
            error =
                ll_error_set(LL_EGONE, "kubernetes: watch %.*s: 410 Gone: %s", plen, x->path, text);
            ll_error_hint("list again and watch from the new list's resourceVersion");
        } else {
            error =
                ll_error_set(LL_EUPSTREAM, "kubernetes: watch %.*s: error event (code %lld): %s",
                             plen, x->path, (long long)code, text);
        }
    } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") || !strcmp(type, "DELETED") ||
               !strcmp(type, "BOOKMARK")) {
        error = x->fn(x->ctx, type, obj);
        error = error < 0 ? error : 0;
    } else {
        ll_log_warn("msg=\"kubernetes watch event of unknown type skipped\" path=%.*s line=%ld",
                    plen, x->path, x->events);
    }
done:
    json_decref(ev);
    return error;
}

static int line_add(xfer *x, const char *data, size_t len)
{
    if (ll_buf_add(&x->line, data, len) < 0)
        return ll_error_set(LL_EMALFORMED,
                            "kubernetes: watch %.*s: an event line is longer than %u bytes",
                            bare_len(x->path), x->path, WATCH_LINE_MAX);
    return 0;
}

/* Cuts data into lines; the rest waits in x->line for the next read. */
static int watch_feed(xfer *x, const char *data, size_t len)
{
    const char *nl;
    int error;

    while (len && (nl = memchr(data, '\n', len))) {
        size_t part = (size_t)(nl - data);
        if (x->line.len) {
            if ((error = line_add(x, data, part)) < 0)
                return error;
            error = watch_line(x, x->line.data, x->line.len);
            x->line.len = 0;
            x->line.data[0] = '\0';
        } else {
            error = watch_line(x, data, part);
        }
        if (error < 0)
            return error;
        data = nl + 1;
        len -= part + 1;
    }
    return len ? line_add(x, data, len) : 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *payload)
{
    xfer *x = payload;
    size_t len = size * n;
    int error;

    if (!x->status)
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->watching && is_2xx(x->status)) {
        if ((error = watch_feed(x, data, len)) < 0) {
            x->stop = error;
            return 0;
        }
        return len;
    }
    if (!is_2xx(x->status)) {
        /* Only the Status message matters: keep the start. */
        size_t room = x->body.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - x->body.len : 0;
        if (ll_buf_add(&x->body, data, len < room ? len : room) < 0) {
            x->stop = LL_ERROR;
            return 0;
        }
        return len;
    }
    if ((error = ll_buf_add(&x->body, data, len)) < 0) {
        x->stop = error == LL_EINVALID ? LL_EUPSTREAM : error;
        ll_error_set(x->stop, "kubernetes: %s %.*s: the answer is larger than %u bytes", x->verb,
                     bare_len(x->path), x->path, BODY_MAX);
        return 0;
    }
    return len;
}

static int on_progress(void *payload, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    return cancelled(payload);
}

static int add_header(struct curl_slist **list, const char *header)
{
    struct curl_slist *l = curl_slist_append(*list, header);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* Runs one HTTP exchange.  x->status is the answer's status (0 when none
 * came); errbuf says what curl saw. */
static CURLcode perform(xfer *x, const char *body, size_t body_len, int idle_s,
                        char errbuf[CURL_ERROR_SIZE])
{
    ll_kube *k = x->k;
    struct curl_slist *headers = NULL;
    struct curl_blob ca = {k->ca, k->ca_len, CURL_BLOB_NOCOPY};
    struct curl_blob cert = {k->cert, k->cert_len, CURL_BLOB_NOCOPY};
    struct curl_blob key = {k->key, k->key_len, CURL_BLOB_NOCOPY};
    char *url = NULL, *auth = auth_header(k);
    CURLcode rc = CURLE_OUT_OF_MEMORY;

    snprintf(errbuf, CURL_ERROR_SIZE, "out of memory");
    if (!(url = kube_dup_printf("%s%s", k->server, x->path)) || !(x->h = curl_easy_init()) ||
        add_header(&headers, "Accept: application/json") < 0 ||
        add_header(&headers, "Expect:") < 0 || (auth && add_header(&headers, auth) < 0) ||
        (body && add_header(&headers, "Content-Type: application/merge-patch+json") < 0))
        goto done;
    errbuf[0] = '\0';

    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "landlord");
    curl_easy_setopt(x->h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (k->ca) {
        /* Only the cluster's CA: the blob replaces CAINFO, CAPATH must go too. */
        curl_easy_setopt(x->h, CURLOPT_CAINFO_BLOB, &ca);
        curl_easy_setopt(x->h, CURLOPT_CAPATH, NULL);
    }
    if (k->cert) {
        curl_easy_setopt(x->h, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(x->h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(x->h, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(x->h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT, (long)k->timeout_s);
    if (idle_s > 0) {
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT, 0L);
        curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, (long)idle_s);
        curl_easy_setopt(x->h, CURLOPT_TCP_KEEPALIVE, 1L);
    } else {
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT, (long)k->timeout_s);
    }
    if (body) {
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PATCH");
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, k);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);

    rc = curl_easy_perform(x->h);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (!errbuf[0])
        snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
done:
    curl_slist_free_all(headers);
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(url);
    return rc;
}

static const char *status_phrase(long status)
{
    switch (status) {
    case 400:
        return " Bad Request";
    case 401:
        return " Unauthorized";
    case 403:
        return " Forbidden";
    case 404:
        return " Not Found";
    case 405:
        return " Method Not Allowed";
    case 409:
        return " Conflict";
    case 410:
        return " Gone";
    case 415:
        return " Unsupported Media Type";
    case 422:
        return " Unprocessable Entity";
    case 429:
        return " Too Many Requests";
    case 500:
        return " Internal Server Error";
    case 502:
        return " Bad Gateway";
    case 503:
        return " Service Unavailable";
    case 504:
        return " Gateway Timeout";
    default:
        return "";
    }
}

static int status_code(long status)
{
    switch (status) {
    case 400:
    case 422:
        return LL_EINVALID;
    case 401:
        return LL_EAUTH;
    case 403:
        return LL_EFORBIDDEN;
    case 404:
        return LL_ENOTFOUND;
    case 409:
        return LL_ECONFLICT;
    case 410:
        return LL_EGONE;
    default:
        return LL_EUPSTREAM;
    }
}

/* Sets the error for a non-2xx answer from its Status body. */
static int http_error(const xfer *x)
{
    json_t *st = json_loadb(x->body.data ? x->body.data : "", x->body.len, 0, NULL);
    int code = status_code(x->status), plen = bare_len(x->path);
    char text[LL_ERROR_MSG_MAX] = "";
    const char *kind = kube_str(st, "kind");

    if (kind && strcmp(kind, "Status") == 0)
        status_text(text, sizeof(text), st);
    if (text[0])
        ll_error_set(code, "kubernetes: %s %.*s: %ld%s: %s", x->verb, plen, x->path, x->status,
                     status_phrase(x->status), text);
    else
        ll_error_set(code, "kubernetes: %s %.*s: %ld%s", x->verb, plen, x->path, x->status,
                     status_phrase(x->status));

    if (kind && strcmp(kind, "Status") == 0) {
        /* 422: which fields, from details.causes. */
        json_t *causes = json_object_get(json_object_get(st, "details"), "causes"), *c;
        char detail[LL_ERROR_MSG_MAX] = "";
        size_t i, used = 0;
        json_array_foreach(causes, i, c)
        {
            const char *field = kube_str(c, "field"), *m = kube_str(c, "message");
            int n = snprintf(detail + used, sizeof(detail) - used, "%s%s: %s", used ? "; " : "",
                             field ? field : "?", m ? m : "?");
            if (n < 0 || (size_t)n >= sizeof(detail) - used)
                break;
            used += (size_t)n;
        }
        if (used) {
            one_line(text, sizeof(text), detail, used);
            ll_error_detail("%s", text);
        }
    } else if (x->body.len) {
        one_line(text, 200, x->body.data, x->body.len);
        ll_error_detail("the answer is not a Kubernetes Status: %s", text);
    }

    switch (code) {
    case LL_EAUTH:
        ll_error_hint("the cluster refused the credentials: check the kubeconfig user or the "
                      "service account token");
        break;
    case LL_EFORBIDDEN:
        ll_error_hint("grant landlord's user or service account this permission (RBAC)");
        break;
    case LL_EGONE:
        ll_error_hint("list again and watch from the new list's resourceVersion");
        break;
    default:
        break;
    }
    json_decref(st);
    return code;
}

/* Sets the error for a transfer that got no complete answer. */
static int transfer_error(const xfer *x, CURLcode rc, const char *errbuf, int idle_s)
{
    int plen = bare_len(x->path);

    if (rc == CURLE_OPERATION_TIMEDOUT) {
        if (idle_s > 0)
            return ll_error_set(LL_ETIMEOUT, "kubernetes: %s %.*s: no data for %d s (%s)", x->verb,
                                plen, x->path, idle_s, errbuf);
        return ll_error_set(LL_ETIMEOUT, "kubernetes: %s %.*s: %s", x->verb, plen, x->path, errbuf);
    }
    ll_error_set(LL_EUPSTREAM, "kubernetes: %s %.*s: %s: %s", x->verb, plen, x->path, x->k->server,
                 errbuf);
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
        rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CONNECT_ERROR)
        ll_error_hint("check the cluster's certificate-authority and the client certificate");
    else
        ll_error_hint("check the server address and that the cluster is reachable");
    return LL_EUPSTREAM;
}

static int retry_status(long status)
{
    return status == 429 || status == 500 || status == 503 || status == 504;
}

static int retry_transport(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return 1;
    default:
        return 0;
    }
}

/* Sleeps ms in slices; -1 when cancelled meanwhile. */
static int pause_ms(ll_kube *k, long ms)
{
    int64_t end = ll_monotonic_ms() + ms, left;
    while (!cancelled(k) && (left = end - ll_monotonic_ms()) > 0) {
        long slice = left < PAUSE_SLICE_MS ? (long)left : PAUSE_SLICE_MS;
        struct timespec ts = {0, slice * 1000000L};
        nanosleep(&ts, NULL);
    }
    return cancelled(k) ? -1 : 0;
}

/* The wait before retry number attempt+1: 200 ms doubling, plus up to half
 * again at random; Retry-After when the server gave one (capped). */
static long backoff_ms(int attempt, curl_off_t retry_after_s)
{
    long base = BACKOFF_FIRST_MS;
    unsigned int r = 0;

    if (retry_after_s > 0)
        return (long)(retry_after_s < RETRY_AFTER_MAX_S ? retry_after_s : RETRY_AFTER_MAX_S) * 1000;
    for (int i = 0; i < attempt && base < BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (unsigned int)ll_monotonic_ms();
    return base + (long)(r % (unsigned int)(base / 2 + 1));
}

static int check_path(const char *verb, const char *path)
{
    if (!path || path[0] != '/')
        return ll_error_set(LL_EINVALID,
                            "kubernetes: %s: the path \"%.200s\" does not start with /", verb,
                            path ? path : "");
    return 0;
}

/* The JSON of a 2xx answer (a new reference), or LL_EMALFORMED. */
static int json_answer(json_t **out, const xfer *x)
{
    json_error_t jerr;
    if (!(*out = json_loadb(x->body.data ? x->body.data : "", x->body.len, 0, &jerr)))
        return ll_error_set(LL_EMALFORMED, "kubernetes: %s %.*s: %ld answer is not JSON: %s",
                            x->verb, bare_len(x->path), x->path, x->status, jerr.text);
    return 0;
}

/* A request with retries; *out (when out is not NULL) is the JSON answer. */
static int request(json_t **out, ll_kube *k, const char *verb, const char *path, const char *body,
                   size_t body_len)
{
    char errbuf[CURL_ERROR_SIZE];
    json_t *json = NULL;
    int error = 0, again;
    long status, wait;
    xfer x;

    if ((error = check_path(verb, path)) < 0)
        return error;
    for (int attempt = 0;; attempt++) {
        curl_off_t retry_after = 0;
        CURLcode rc;

        xfer_init(&x, k, verb, path);
        again = 0;
        if (cancelled(k)) {
            error = cancelled_error(&x);
            break;
        }
        rc = perform(&x, body, body_len, 0, errbuf);
        if (x.stop) {
            error = x.stop;
        } else if (cancelled(k)) {
            error = cancelled_error(&x);
        } else if (rc != CURLE_OK) {
            error = transfer_error(&x, rc, errbuf, 0);
            again = retry_transport(rc);
        } else if (!is_2xx(x.status)) {
            error = http_error(&x);
            again = retry_status(x.status);
            curl_easy_getinfo(x.h, CURLINFO_RETRY_AFTER, &retry_after);
        } else {
            error = json_answer(&json, &x);
        }
        status = x.status;
        curl_easy_cleanup(x.h);
        xfer_free(&x);
        if (error == 0 || !again || attempt >= k->retries)
            break;
        wait = backoff_ms(attempt, retry_after);
        ll_log_warn("msg=\"kubernetes request retried\" method=%s path=%.*s status=%ld attempt=%d "
                    "wait_ms=%ld",
                    verb, bare_len(path), path, status, attempt + 1, wait);
        if (pause_ms(k, wait) < 0) {
            error = cancelled_error(&x);
            again = 0;
            break;
        }
    }
    if (error < 0 && again && k->retries > 0)
        ll_error_detail("gave up after %d attempts", k->retries + 1);
    if (error == 0 && out)
        *out = json;
    else
        json_decref(json);
    return error;
}

int ll_kube_get(json_t **out, ll_kube *k, const char *path)
{
    *out = NULL;
    return request(out, k, "GET", path, NULL, 0);
}

int ll_kube_merge_patch(json_t **out, ll_kube *k, const char *path, const json_t *patch)
{
    char *body = NULL;
    int error;

    if (out)
        *out = NULL;
    if (!(body = json_dumps(patch, JSON_COMPACT)))
        return ll_error_set(LL_EINVALID, "kubernetes: PATCH %.*s: the patch is not a JSON value",
                            path ? bare_len(path) : 0, path ? path : "");
    error = request(out, k, "PATCH", path, body, strlen(body));
    free(body);
    return error;
}

int ll_kube_watch(ll_kube *k, const char *path, int idle_s, ll_kube_event_fn fn, void *ctx)
{
    char errbuf[CURL_ERROR_SIZE];
    int error;
    CURLcode rc;
    xfer x;

    if ((error = check_path("watch", path)) < 0)
        return error;
    if (!fn)
        return ll_error_set(LL_EINVALID, "kubernetes: watch %.*s: no event function",
                            bare_len(path), path);
    if (idle_s <= 0)
        idle_s = DEFAULT_IDLE_S;
    xfer_init(&x, k, "watch", path);
    x.watching = 1;
    x.fn = fn;
    x.ctx = ctx;
    if (cancelled(k)) {
        error = cancelled_error(&x);
        goto done;
    }
    rc = perform(&x, NULL, 0, idle_s, errbuf);
    if (x.stop) {
        error = x.stop; /* fn's code, a 410 or another error event, a bad line */
    } else if (cancelled(k)) {
        error = cancelled_error(&x);
    } else if (x.status && !is_2xx(x.status)) {
        error = http_error(&x);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        error = transfer_error(&x, rc, errbuf, idle_s);
    } else if (partial_line(&x)) {
        /* Never pass a partial event on: the caller lists again. */
        error = ll_error_set(LL_EUPSTREAM, "kubernetes: watch %.*s: watch stream cut mid-event%s%s",
                             bare_len(path), path, rc == CURLE_OK ? "" : ": ",
                             rc == CURLE_OK ? "" : errbuf);
    } else if (rc != CURLE_OK) {
        error = transfer_error(&x, rc, errbuf, idle_s);
    } else {
        error = 0;
    }
done:
    curl_easy_cleanup(x.h);
    xfer_free(&x);
    return error;
}

/* --- without a network (kube_int.h) ---------------------------------------------- */

/* An xfer as perform() starts one, its answer's status already known. */
static void xfer_fake(xfer *x, const char *verb, const char *path, long status)
{
    xfer_init(x, NULL, verb, path);
    x->status = status;
}

int ll_kube_answer_parse(json_t **out, const char *path, long status, const char *body, size_t len)
{
    xfer x;
    int error;

    *out = NULL;
    xfer_fake(&x, "GET", path, status);
    if (is_2xx(status)) {
        if ((error = ll_buf_add(&x.body, body, len)) < 0)
            error = ll_error_set(LL_EUPSTREAM,
                                 "kubernetes: GET %.*s: the answer is larger than "
                                 "%u bytes",
                                 bare_len(path), path, BODY_MAX);
        else
            error = json_answer(out, &x);
    } else {
        error = ll_buf_add(&x.body, body, len < ERROR_BODY_MAX ? len : ERROR_BODY_MAX) < 0
                    ? LL_ERROR
                    : http_error(&x);
    }
    xfer_free(&x);
    return error;
}

int ll_kube_watch_parse(const char *path, const char *body, size_t len, size_t chunk,
                        ll_kube_event_fn fn, void *ctx)
{
    xfer x;
    int error = 0;

    xfer_fake(&x, "watch", path, 200);
    x.watching = 1;
    x.fn = fn;
    x.ctx = ctx;
    if (!chunk)
        chunk = len ? len : 1;
    for (size_t at = 0; at < len && error == 0; at += chunk)
        error = watch_feed(&x, body + at, len - at < chunk ? len - at : chunk);
    if (error == 0 && partial_line(&x))
        error = ll_error_set(LL_EUPSTREAM, "kubernetes: watch %.*s: watch stream cut mid-event",
                             bare_len(path), path);
    xfer_free(&x);
    return error;
}

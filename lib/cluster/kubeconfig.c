/* kubeconfig.c - the Kubernetes client's handle: where the cluster is and
 * how to reach it (ll_kube_open, ll_kube_free and the accessors; see
 * kube.h).  kube.c makes the requests.
 *
 * The cluster is found once: a kubeconfig (read with ll_yaml_load_json;
 * relative paths resolve against its folder, as kubectl does), else the
 * first file of $KUBECONFIG, else the pod's service account.  Certificates
 * and keys are read and checked here, with libcrypto, so a bad file fails
 * at start naming the kubeconfig rather than at the first request; they
 * stay in the handle as PEM and reach curl as blobs (kube.c).  A bearer
 * token read from a file is read here first and again by kube.c when the
 * file changes (kube_read_token).
 *
 * Runs on the opening thread; what it fills is immutable afterwards
 * (struct ll_kube in kube_int.h).  Tokens and keys never reach a log line
 * or an error message.
 */
#define _GNU_SOURCE /* vasprintf */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "landlord/error.h"
#include "landlord/kube.h"
#include "landlord/log.h"
#include "landlord/template.h"
#include "landlord/util.h"
#include "kube_int.h"

#define DEFAULT_SA_DIR    "/var/run/secrets/kubernetes.io/serviceaccount"
#define DEFAULT_TIMEOUT_S 10
#define DEFAULT_RETRIES   3
#define KUBECONFIG_MAX    (16u << 20)
#define PEM_MAX           (4u << 20)
#define TOKEN_MAX         (64u << 10)

/* --- small helpers -------------------------------------------------------- */

char *kube_dup_printf(const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0)
        p = NULL;
    va_end(ap);
    if (!p)
        ll_error_set(LL_ERROR, "out of memory");
    return p;
}

const char *kube_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && s[0] ? s : NULL;
}

static char *dup_str(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        ll_error_set(LL_ERROR, "out of memory");
    return p;
}

/* Keeps the code of the error last set and puts "<prefix>: " before its
 * message (the message is copied first: it is the buffer being written). */
static int wrap_error(int code, const char *prefix)
{
    char msg[LL_ERROR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", ll_error_last()->message);
    return ll_error_set(code, "%s: %s", prefix, msg);
}

/* --- PEM material ----------------------------------------------------------- */

/* Decodes standard base64 (whitespace allowed, padding required) into a new
 * NUL-terminated buffer. */
static int b64_decode(char **out, size_t *out_len, const char *in)
{
    size_t n = strlen(in), m = 0, pad = 0;
    char *clean = NULL;
    unsigned char *bin = NULL;
    int got, error = LL_EINVALID;

    if (!(clean = malloc(n + 1)))
        return ll_error_set(LL_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!isspace((unsigned char)in[i]))
            clean[m++] = in[i];
    }
    if (m == 0 || m % 4 || m > INT_MAX)
        goto done;
    pad = (clean[m - 1] == '=') + (clean[m - 2] == '=');
    if (!(bin = malloc(m / 4 * 3 + 1))) {
        error = ll_error_set(LL_ERROR, "out of memory");
        goto done;
    }
    if ((got = EVP_DecodeBlock(bin, (const unsigned char *)clean, (int)m)) < (int)pad)
        goto done;
    bin[got - pad] = '\0';
    *out = (char *)bin;
    *out_len = (size_t)got - pad;
    bin = NULL;
    error = 0;
done:
    free(clean);
    free(bin);
    return error;
}

/* 0 when pem holds at least one certificate and nothing unreadable. */
static int check_certs(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x;
    int n = 0;

    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        X509_free(x);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the input is an error too; curl reads this queue */
    return n > 0 ? 0 : -1;
}

/* 0 when key is a PEM private key that belongs to the PEM certificate. */
static int check_pair(const char *cert, size_t cert_len, const char *key, size_t key_len,
                      const char **why)
{
    BIO *cb = BIO_new_mem_buf(cert, (int)cert_len), *kb = BIO_new_mem_buf(key, (int)key_len);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pkey = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = -1;

    if (!x)
        *why = "the client certificate is not a PEM certificate";
    else if (!pkey)
        *why = "the client key is not a PEM private key (encrypted keys are not supported)";
    else if (X509_check_private_key(x, pkey) != 1)
        *why = "the client key does not belong to the client certificate";
    else
        ok = 0;
    EVP_PKEY_free(pkey);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    return ok;
}

/* Resolves path against dir (kubectl resolves kubeconfig paths against the
 * kubeconfig's folder).  Returns a new string. */
static char *resolve(const char *dir, const char *path)
{
    return path[0] == '/' ? dup_str(path) : kube_dup_printf("%s/%s", dir, path);
}

/* Reads obj's "<name>-data" (base64) or "<name>" (a file) into out, or
 * leaves it NULL when neither is set.  what names obj in messages. */
static int load_pem(char **out, size_t *out_len, const char *kc, const char *what,
                    const json_t *obj, const char *name, const char *dir)
{
    char data_key[64], *file = NULL;
    const char *data, *path;
    int error;

    snprintf(data_key, sizeof(data_key), "%s-data", name);
    data = kube_str(obj, data_key);
    path = kube_str(obj, name);
    if (data && path) {
        ll_error_set(LL_EINVALID, "kubeconfig %s: %s sets both %s and %s", kc, what, name,
                     data_key);
        ll_error_hint("keep one of them");
        return LL_EINVALID;
    }
    if (data) {
        if ((error = b64_decode(out, out_len, data)) == LL_EINVALID)
            ll_error_set(LL_EINVALID, "kubeconfig %s: %s: %s is not valid base64", kc, what,
                         data_key);
        return error;
    }
    if (!path)
        return 0;
    if (!(file = resolve(dir, path)))
        return LL_ERROR;
    if ((error = ll_read_file(out, out_len, file, PEM_MAX)) < 0) {
        char prefix[600];
        snprintf(prefix, sizeof(prefix), "kubeconfig %s: %s: %s", kc, what, name);
        error = wrap_error(LL_EINVALID, prefix);
    }
    free(file);
    return error;
}

/* --- the bearer token ----------------------------------------------------- */

/* Reads a token file: surrounding whitespace dropped, no control bytes
 * (they would break the header), not empty.  Error codes: LL_ENOTFOUND,
 * LL_EINVALID, -1. */
int kube_read_token(char **out, struct stat *st, const char *path)
{
    char *text = NULL, *start;
    size_t len;
    int error;

    if (stat(path, st) < 0)
        return ll_error_set(errno == ENOENT ? LL_ENOTFOUND : LL_ERROR, "cannot read token %s: %s",
                            path, strerror(errno));
    if ((error = ll_read_file(&text, &len, path, TOKEN_MAX)) < 0)
        return error;
    for (start = text; *start && isspace((unsigned char)*start); start++)
        ;
    while (len > (size_t)(start - text) && isspace((unsigned char)text[len - 1]))
        text[--len] = '\0';
    for (const char *p = start; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            free(text);
            return ll_error_set(LL_EINVALID, "token %s holds control characters", path);
        }
    }
    if (!*start) {
        free(text);
        return ll_error_set(LL_EINVALID, "token %s is empty", path);
    }
    memmove(text, start, strlen(start) + 1);
    *out = text;
    return 0;
}

/* --- finding the cluster ---------------------------------------------------- */

/* The entry of cfg[list] whose name is name, or NULL. */
static json_t *named(const json_t *cfg, const char *list, const char *name)
{
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(cfg, list), i, entry)
    {
        const char *n = json_string_value(json_object_get(entry, "name"));
        if (n && strcmp(n, name) == 0)
            return entry;
    }
    return NULL;
}

static int truthy(const json_t *v)
{
    const char *s = json_string_value(v);
    return json_is_true(v) || (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
                                     strcasecmp(s, "on") == 0));
}

static int kc_refuse(const char *kc, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int kc_refuse(const char *kc, const char *hint, const char *fmt, ...)
{
    char msg[LL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ll_error_set(LL_EINVALID, "kubeconfig %s: %s", kc, msg);
    if (hint)
        ll_error_hint("%s", hint);
    return LL_EINVALID;
}

static int kc_cluster(ll_kube *k, const char *kc, const char *dir, const json_t *cfg,
                      const char *name)
{
    const json_t *entry = named(cfg, "clusters", name), *cluster;
    char what[300];
    const char *server;
    size_t n;
    int error;

    if (!entry)
        return kc_refuse(kc, "fix the context's cluster or add the cluster to clusters",
                         "cluster \"%s\" is not in clusters", name);
    cluster = json_object_get(entry, "cluster");
    if (truthy(json_object_get(cluster, "insecure-skip-tls-verify")))
        return kc_refuse(kc,
                         "remove insecure-skip-tls-verify and give certificate-authority or "
                         "certificate-authority-data",
                         "cluster \"%s\" sets insecure-skip-tls-verify: landlord always verifies "
                         "the server's certificate",
                         name);
    if (!(server = kube_str(cluster, "server")))
        return kc_refuse(kc, "set the cluster's server to the API server's https:// URL",
                         "cluster \"%s\" has no server", name);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return kc_refuse(kc, "write the server as https://host:port",
                         "cluster \"%s\": server \"%.200s\" is not an http:// or https:// URL",
                         name, server);
    for (n = strlen(server); n > 8 && server[n - 1] == '/'; n--)
        ;
    if (!(k->server = strndup(server, n)))
        return ll_error_set(LL_ERROR, "out of memory");

    snprintf(what, sizeof(what), "cluster \"%s\"", name);
    if ((error = load_pem(&k->ca, &k->ca_len, kc, what, cluster, "certificate-authority", dir)) < 0)
        return error;
    if (k->ca && check_certs(k->ca, k->ca_len) < 0)
        return kc_refuse(kc, "give the PEM certificate of the cluster's CA",
                         "cluster \"%s\": certificate-authority holds no PEM certificate", name);
    return 0;
}

/* Refuses the kinds of user landlord does not support: exec plugins,
 * auth-providers, basic authentication. */
static int kc_user_supported(const char *kc, const json_t *user, const char *name)
{
    if (json_object_get(user, "exec"))
        return kc_refuse(kc,
                         "give the user a token, a tokenFile or a client certificate and key "
                         "(for example a service account token)",
                         "user \"%s\": exec credential plugins are not supported; use a token, "
                         "tokenFile or client certificate",
                         name);
    if (json_object_get(user, "auth-provider"))
        return kc_refuse(kc, "give the user a token, a tokenFile or a client certificate and key",
                         "user \"%s\": auth-provider is not supported; use a token, tokenFile or "
                         "client certificate",
                         name);
    if (kube_str(user, "username") || kube_str(user, "password"))
        return kc_refuse(kc, "give the user a token, a tokenFile or a client certificate and key",
                         "user \"%s\": basic authentication (username, password) is not supported",
                         name);
    return 0;
}

/* The user's client certificate and key into k: both or neither, and a
 * matching pair. */
static int kc_user_cert(ll_kube *k, const char *kc, const char *dir, const json_t *user,
                        const char *name)
{
    const char *why = NULL;
    char what[300];
    int error;

    snprintf(what, sizeof(what), "user \"%s\"", name);
    if ((error = load_pem(&k->cert, &k->cert_len, kc, what, user, "client-certificate", dir)) < 0 ||
        (error = load_pem(&k->key, &k->key_len, kc, what, user, "client-key", dir)) < 0)
        return error;
    if (!k->cert != !k->key)
        return kc_refuse(kc, "give both the client certificate and its key",
                         "user \"%s\" has a client %s without a client %s", name,
                         k->cert ? "certificate" : "key", k->cert ? "key" : "certificate");
    if (k->cert && check_pair(k->cert, k->cert_len, k->key, k->key_len, &why) < 0)
        return kc_refuse(kc, NULL, "user \"%s\": %s", name, why);
    return 0;
}

/* The user's token into k.  client-go: a readable tokenFile wins over
 * token, which is the fallback. */
static int kc_user_token(ll_kube *k, const char *kc, const char *dir, const json_t *user,
                         const char *name)
{
    const char *token = kube_str(user, "token"), *token_file = kube_str(user, "tokenFile");
    char *fresh = NULL;
    int error;

    for (const char *p = token; p && *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return kc_refuse(kc, NULL, "user \"%s\": the token holds control characters", name);
    }
    if (token && !(k->token = dup_str(token)))
        return LL_ERROR;
    if (!token_file)
        return 0;
    if (!(k->token_path = resolve(dir, token_file)))
        return LL_ERROR;
    if ((error = kube_read_token(&fresh, &k->token_st, k->token_path)) < 0) {
        if (!k->token) {
            char prefix[400];
            snprintf(prefix, sizeof(prefix), "kubeconfig %s: user \"%s\": tokenFile", kc, name);
            return wrap_error(LL_EINVALID, prefix);
        }
        ll_log_warn("msg=\"kubernetes tokenFile unreadable, using token\" path=%s", k->token_path);
    } else {
        free(k->token);
        k->token = fresh;
    }
    return 0;
}

static int kc_user(ll_kube *k, const char *kc, const char *dir, const json_t *cfg, const char *name)
{
    const json_t *entry = named(cfg, "users", name), *user;
    int error;

    if (!entry)
        return kc_refuse(kc, "fix the context's user or add the user to users",
                         "user \"%s\" is not in users", name);
    user = json_object_get(entry, "user");
    if ((error = kc_user_supported(kc, user, name)) < 0 ||
        (error = kc_user_cert(k, kc, dir, user, name)) < 0)
        return error;
    return kc_user_token(k, kc, dir, user, name);
}

/* Fills k from the kubeconfig text[0..len) read from the file kc (whose
 * folder relative paths resolve against). */
static int kubeconfig_text(ll_kube *k, const char *kc, const char *text, size_t len,
                           const char *want_context)
{
    char *dir = NULL, *slash;
    json_t *docs = NULL, *cfg;
    const json_t *ctx;
    const char *ctx_name, *cluster, *user, *ns;
    int error;

    if ((error = ll_yaml_load_json(&docs, text, len)) < 0) {
        char prefix[400];
        snprintf(prefix, sizeof(prefix), "kubeconfig %s", kc);
        error = wrap_error(LL_EINVALID, prefix);
        goto done;
    }
    cfg = json_array_get(docs, 0);
    if (!json_is_object(cfg)) {
        error = kc_refuse(kc, NULL, "not a kubeconfig (the first document is not a mapping)");
        goto done;
    }
    if (!(dir = dup_str(kc))) {
        error = LL_ERROR;
        goto done;
    }
    if (!(slash = strrchr(dir, '/')))
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    ctx_name = want_context && want_context[0] ? want_context : kube_str(cfg, "current-context");
    if (!ctx_name) {
        error = kc_refuse(kc,
                          "set current-context (kubectl config use-context NAME) or choose a "
                          "context",
                          "no current-context is set and no context was chosen");
        goto done;
    }
    if (!(ctx = named(cfg, "contexts", ctx_name))) {
        error = kc_refuse(kc, "choose one of the file's contexts",
                          "context \"%s\" is not in contexts", ctx_name);
        goto done;
    }
    ctx = json_object_get(ctx, "context");
    if (!(cluster = kube_str(ctx, "cluster"))) {
        error =
            kc_refuse(kc, "set the context's cluster", "context \"%s\" names no cluster", ctx_name);
        goto done;
    }
    if ((error = kc_cluster(k, kc, dir, cfg, cluster)) < 0)
        goto done;
    /* A context without a user talks to the cluster anonymously, as kubectl does. */
    if ((user = kube_str(ctx, "user")) && (error = kc_user(k, kc, dir, cfg, user)) < 0)
        goto done;
    ns = kube_str(ctx, "namespace");
    if (!(k->ns = dup_str(ns ? ns : "default")) ||
        !(k->source = kube_dup_printf("kubeconfig %s", kc))) {
        error = LL_ERROR;
        goto done;
    }
    error = 0;
done:
    json_decref(docs);
    free(dir);
    return error;
}

static int from_kubeconfig(ll_kube *k, const char *kc, const char *want_context)
{
    char *text = NULL;
    size_t len;
    int error;

    if ((error = ll_read_file(&text, &len, kc, KUBECONFIG_MAX)) < 0) {
        error = wrap_error(LL_EINVALID, "kubeconfig");
        ll_error_hint("point kubeconfig or $KUBECONFIG at a readable kubeconfig file");
        return error;
    }
    error = kubeconfig_text(k, kc, text, len, want_context);
    free(text);
    return error;
}

static int from_pod(ll_kube *k, const char *host, const char *port, const char *sa_dir)
{
    char *path = NULL, *text = NULL;
    size_t len;
    int error = LL_ERROR;

    /* net.JoinHostPort, as client-go: an IPv6 address goes in brackets. */
    if (strchr(host, ':') && host[0] != '[')
        k->server = kube_dup_printf("https://[%s]:%s", host, port);
    else
        k->server = kube_dup_printf("https://%s:%s", host, port);
    if (!k->server || !(k->source = dup_str("in-cluster")))
        goto done;

    if (!(k->token_path = kube_dup_printf("%s/token", sa_dir)))
        goto done;
    if ((error = kube_read_token(&k->token, &k->token_st, k->token_path)) < 0) {
        error = wrap_error(LL_EINVALID, "in-cluster");
        ll_error_hint("mount a service account token (automountServiceAccountToken) or give a "
                      "kubeconfig");
        goto done;
    }

    if (!(path = kube_dup_printf("%s/ca.crt", sa_dir))) {
        error = LL_ERROR;
        goto done;
    }
    error = ll_read_file(&k->ca, &k->ca_len, path, PEM_MAX);
    if (error == LL_ENOTFOUND) {
        /* client-go goes on with the system's CAs. */
        ll_log_warn("msg=\"no service account CA, using the system's\" path=%s", path);
    } else if (error < 0) {
        error = wrap_error(LL_EINVALID, "in-cluster");
        goto done;
    } else if (check_certs(k->ca, k->ca_len) < 0) {
        error = ll_error_set(LL_EINVALID, "in-cluster: %s holds no PEM certificate", path);
        goto done;
    }

    free(path);
    if (!(path = kube_dup_printf("%s/namespace", sa_dir))) {
        error = LL_ERROR;
        goto done;
    }
    if (ll_read_file(&text, &len, path, 4096) == 0) {
        while (len && isspace((unsigned char)text[len - 1]))
            text[--len] = '\0';
    }
    if (!(k->ns = dup_str(text && text[0] ? text : "default"))) {
        error = LL_ERROR;
        goto done;
    }
    error = 0;
done:
    free(path);
    free(text);
    return error;
}

/* The first file of a ':'-separated list that exists (a new string), or NULL. */
static char *first_existing(const char *list)
{
    const char *p = list;
    struct stat st;

    while (p && *p) {
        size_t n = strcspn(p, ":");
        if (n > 0 && n < PATH_MAX) {
            char path[PATH_MAX];
            memcpy(path, p, n);
            path[n] = '\0';
            if (stat(path, &st) == 0)
                return strdup(path);
        }
        p += n + (p[n] == ':');
    }
    return NULL;
}

/* A new handle without a cluster yet. */
static ll_kube *kube_new(const ll_kube_options *opts)
{
    ll_kube *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    pthread_mutex_init(&k->lock, NULL);
    atomic_init(&k->cancelled, 0);
    k->timeout_s = opts->timeout_s > 0 ? opts->timeout_s : DEFAULT_TIMEOUT_S;
    k->retries = opts->retries == 0 ? DEFAULT_RETRIES : opts->retries < 0 ? 0 : opts->retries;
    return k;
}

int ll_kube_open_kubeconfig_text(ll_kube **out, const char *kc, const char *text, size_t len,
                                 const char *context)
{
    static const ll_kube_options defaults = {0};
    ll_kube *k = kube_new(&defaults);
    int error;

    *out = NULL;
    if (!k)
        return ll_error_set(LL_ERROR, "out of memory");
    if ((error = kubeconfig_text(k, kc, text, len, context)) < 0) {
        ll_kube_free(k);
        return error;
    }
    *out = k;
    return 0;
}

int ll_kube_open(ll_kube **out, const ll_kube_options *opts)
{
    static const ll_kube_options defaults = {0};
    ll_kube *k = NULL;
    char *kc = NULL;
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    int error;

    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (!(k = kube_new(opts)))
        return ll_error_set(LL_ERROR, "out of memory");

    if (opts->kubeconfig && opts->kubeconfig[0])
        kc = dup_str(opts->kubeconfig);
    else
        kc = first_existing(getenv("KUBECONFIG"));
    if (!kc && opts->kubeconfig && opts->kubeconfig[0])
        error = LL_ERROR;
    else if (kc)
        error = from_kubeconfig(k, kc, opts->context);
    else if (host && host[0] && port && port[0])
        error = from_pod(k, host, port,
                         opts->sa_dir && opts->sa_dir[0] ? opts->sa_dir : DEFAULT_SA_DIR);
    else {
        error = ll_error_set(LL_ENOTFOUND, "kubernetes: no cluster configured (no kubeconfig, "
                                           "$KUBECONFIG names no file, not in a pod)");
        ll_error_hint("set the kubeconfig setting or $KUBECONFIG, or run landlord in a pod "
                      "with a service account");
    }
    free(kc);
    if (error < 0) {
        ll_kube_free(k);
        return error;
    }
    *out = k;
    return 0;
}

static void wipe_free(char *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
    free(p);
}

void ll_kube_free(ll_kube *k)
{
    if (!k)
        return;
    free(k->server);
    free(k->ns);
    free(k->source);
    free(k->ca);
    free(k->cert);
    wipe_free(k->key, k->key_len);
    free(k->token_path);
    wipe_free(k->token, k->token ? strlen(k->token) : 0);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const char *ll_kube_server(const ll_kube *k)
{
    return k->server;
}

const char *ll_kube_namespace(const ll_kube *k)
{
    return k->ns;
}

const char *ll_kube_source(const ll_kube *k)
{
    return k->source;
}

void ll_kube_cancel(ll_kube *k)
{
    atomic_store(&k->cancelled, 1);
}

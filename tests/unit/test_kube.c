/* Unit tests of lib/cluster/kube.c: finding the cluster (kubeconfig files, in-cluster
 * service accounts, refusals) and the HTTP behaviour against a loopback
 * server in this process that plays scripted raw HTTP/1.1 answers, one per
 * connection, and records each request. */
#define _GNU_SOURCE /* vasprintf, strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cluster/kube_int.h"
#include "landlord/error.h"
#include "landlord/kube.h"
#include "landlord/log.h"
#include "landlord/util.h"
#include "support.h"

static char dir[64];

/* --- files, text ------------------------------------------------------------ */

/* Strings that live until the test ends (freed by teardown). */
#define POOL_MAX 512
static char *pool[POOL_MAX];
static int npool;

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, f);
    assert_true(vasprintf(&p, f, ap) >= 0);
    va_end(ap);
    assert_true(npool < POOL_MAX);
    pool[npool++] = p;
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static const char *b64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    assert_non_null(out);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    assert_true(npool < POOL_MAX);
    pool[npool++] = out;
    return out;
}

/* A throwaway self-signed certificate and its EC key, as PEM. */
static void make_cert(const char **cert, const char **key, const char *cn)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    X509_NAME *name;
    char *p;
    long n;

    assert_non_null(pkey);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509(cb, x), 1);
    assert_int_equal(PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(cb, &p);
    *cert = fmt("%.*s", (int)n, p);
    n = BIO_get_mem_data(kb, &p);
    *key = fmt("%.*s", (int)n, p);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static int setup(void **state)
{
    if (ut_temp_dir(dir, sizeof(dir), "kube") < 0)
        return -1;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < npool; i++)
        free(pool[i]);
    npool = 0;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    return ut_remove_tree(dir);
}

/* A kubeconfig with one context "main" over cluster "c1" and user "u1";
 * cluster and user are the YAML bodies of their mappings (indented 4). */
static const char *kubeconfig(const char *name, const char *cluster, const char *user)
{
    const char *path = fmt("%s/%s", dir, name);
    write_file(path, fmt("apiVersion: v1\n"
                         "kind: Config\n"
                         "current-context: main\n"
                         "contexts:\n"
                         "- name: main\n"
                         "  context:\n"
                         "    cluster: c1\n"
                         "    user: u1\n"
                         "clusters:\n"
                         "- name: c1\n"
                         "  cluster:\n"
                         "%s"
                         "users:\n"
                         "- name: u1\n"
                         "  user:\n"
                         "%s",
                         cluster, user));
    return path;
}

/* --- finding the cluster ---------------------------------------------------- */

static void test_kubeconfig_contexts(void **state)
{
    const char *path = fmt("%s/config", dir);
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    write_file(path, "apiVersion: v1\n"
                     "kind: Config\n"
                     "current-context: b\n"
                     "contexts:\n"
                     "- name: a\n"
                     "  context: {cluster: one, user: alice}\n"
                     "- name: b\n"
                     "  context: {cluster: two, user: bob, namespace: team-b}\n"
                     "clusters:\n"
                     "- name: one\n"
                     "  cluster: {server: 'https://one.example:6443'}\n"
                     "- name: two\n"
                     "  cluster: {server: 'https://two.example:443/'}\n"
                     "users:\n"
                     "- name: alice\n"
                     "  user: {token: alice-token}\n"
                     "- name: bob\n"
                     "  user: {token: bob-token}\n");
    o.kubeconfig = path;
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://two.example:443");
    assert_string_equal(ll_kube_namespace(k), "team-b");
    assert_string_equal(ll_kube_source(k), fmt("kubeconfig %s", path));
    ll_kube_free(k);

    /* The context option wins over current-context; no namespace: default. */
    o.context = "a";
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://one.example:6443");
    assert_string_equal(ll_kube_namespace(k), "default");
    ll_kube_free(k);

    o.context = "nope";
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_null(k);
    assert_non_null(strstr(ll_error_last()->message, path));
    assert_non_null(strstr(ll_error_last()->message, "context \"nope\""));
}

static void test_kubeconfig_certificates(void **state)
{
    const char *ca, *ca_key, *cert, *key, *other_cert, *other_key;
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    make_cert(&ca, &ca_key, "test-ca");
    make_cert(&cert, &key, "landlord");
    make_cert(&other_cert, &other_key, "someone-else");

    /* Inline base64 data. */
    o.kubeconfig = kubeconfig("inline", "    server: https://10.1.2.3:6443\n",
                              fmt("    client-certificate-data: %s\n"
                                  "    client-key-data: %s\n",
                                  b64(cert), b64(key)));
    assert_int_equal(ll_kube_open(&k, &o), 0);
    ll_kube_free(k);
    o.kubeconfig = kubeconfig("inline-ca",
                              fmt("    server: https://10.1.2.3:6443\n"
                                  "    certificate-authority-data: %s\n",
                                  b64(ca)),
                              fmt("    client-certificate-data: %s\n"
                                  "    client-key-data: %s\n",
                                  b64(cert), b64(key)));
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://10.1.2.3:6443");
    ll_kube_free(k);

    /* Files named relative to the kubeconfig's folder, not the working one. */
    assert_int_equal(ll_mkdir_p(fmt("%s/sub/pki", dir)), 0);
    write_file(fmt("%s/sub/pki/ca.crt", dir), ca);
    write_file(fmt("%s/sub/pki/client.crt", dir), cert);
    write_file(fmt("%s/sub/pki/client.key", dir), key);
    o.kubeconfig = kubeconfig("sub/config",
                              "    server: https://10.1.2.3:6443\n"
                              "    certificate-authority: pki/ca.crt\n",
                              "    client-certificate: pki/client.crt\n"
                              "    client-key: pki/client.key\n");
    assert_int_equal(ll_kube_open(&k, &o), 0);
    ll_kube_free(k);

    o.kubeconfig = kubeconfig("sub/missing",
                              "    server: https://10.1.2.3:6443\n"
                              "    certificate-authority: pki/missing.crt\n",
                              "    token: t\n");
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, o.kubeconfig));
    assert_non_null(strstr(ll_error_last()->message, fmt("%s/sub/pki/missing.crt", dir)));

    /* A key of another certificate, bad base64, a CA that is no certificate. */
    o.kubeconfig = kubeconfig("mismatch", "    server: https://10.1.2.3:6443\n",
                              fmt("    client-certificate-data: %s\n"
                                  "    client-key-data: %s\n",
                                  b64(cert), b64(other_key)));
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "does not belong"));
    assert_non_null(strstr(ll_error_last()->message, o.kubeconfig));
    o.kubeconfig = kubeconfig("badb64", "    server: https://10.1.2.3:6443\n",
                              fmt("    client-certificate-data: '%s'\n"
                                  "    client-key-data: '!!not base64!!'\n",
                                  b64(cert)));
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "client-key-data is not valid base64"));
    o.kubeconfig = kubeconfig("badca",
                              fmt("    server: https://10.1.2.3:6443\n"
                                  "    certificate-authority-data: %s\n",
                                  b64("hello")),
                              "    token: t\n");
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "no PEM certificate"));
    o.kubeconfig = kubeconfig("halfpair", "    server: https://10.1.2.3:6443\n",
                              fmt("    client-certificate-data: %s\n", b64(cert)));
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, "without a client key"));
}

static void test_kubeconfig_env(void **state)
{
    const char *one = kubeconfig("one", "    server: https://one:6443\n", "    token: t\n");
    const char *two = kubeconfig("two", "    server: https://two:6443\n", "    token: t\n");
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    /* The first file of $KUBECONFIG that exists. */
    setenv("KUBECONFIG", fmt("%s/absent::%s:%s", dir, two, one), 1);
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://two:6443");
    assert_string_equal(ll_kube_source(k), fmt("kubeconfig %s", two));
    ll_kube_free(k);

    /* The option wins over $KUBECONFIG, and over a pod's environment. */
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    o.kubeconfig = one;
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://one:6443");
    ll_kube_free(k);

    /* A named kubeconfig that does not exist is an error, not a fallback. */
    o.kubeconfig = fmt("%s/absent", dir);
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, o.kubeconfig));

    /* Nothing configured at all. */
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    setenv("KUBECONFIG", fmt("%s/absent:%s/absent2", dir, dir), 1);
    o.kubeconfig = NULL;
    o.sa_dir = dir;
    assert_int_equal(ll_kube_open(&k, &o), LL_ENOTFOUND);
    assert_null(k);
    assert_true(ll_error_last()->hint[0] != '\0');
    unsetenv("KUBECONFIG");
    assert_int_equal(ll_kube_open(&k, NULL), LL_ENOTFOUND);
}

static void test_in_cluster(void **state)
{
    const char *sa = fmt("%s/sa", dir), *ca, *ca_key;
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    make_cert(&ca, &ca_key, "cluster-ca");
    assert_int_equal(ll_mkdir_p(sa), 0);
    write_file(fmt("%s/token", sa), "pod-token\n");
    write_file(fmt("%s/ca.crt", sa), ca);
    write_file(fmt("%s/namespace", sa), "tenants\n");
    o.sa_dir = sa;
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://10.96.0.1:443");
    assert_string_equal(ll_kube_namespace(k), "tenants");
    assert_string_equal(ll_kube_source(k), "in-cluster");
    ll_kube_free(k);

    /* IPv6 in brackets; no namespace file: default. */
    setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
    unlink(fmt("%s/namespace", sa));
    assert_int_equal(ll_kube_open(&k, &o), 0);
    assert_string_equal(ll_kube_server(k), "https://[fd00:10:96::1]:443");
    assert_string_equal(ll_kube_namespace(k), "default");
    ll_kube_free(k);

    /* No token mounted. */
    unlink(fmt("%s/token", sa));
    assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->message, fmt("%s/token", sa)));
    assert_true(ll_error_last()->hint[0] != '\0');
}

static void test_kubeconfig_refused(void **state)
{
    static const struct {
        const char *text, *words;
    } cases[] = {
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
         "users:\n- name: u\n  user:\n    exec:\n      apiVersion: "
         "client.authentication.k8s.io/v1beta1\n      command: aws\n",
         "exec credential plugins are not supported; use a token, tokenFile or client "
         "certificate"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
         "users:\n- name: u\n  user:\n    auth-provider: {name: gcp}\n",
         "auth-provider is not supported"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x', insecure-skip-tls-verify: true}\n"
         "users:\n- name: u\n  user: {token: t}\n",
         "insecure-skip-tls-verify"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: other\n  cluster: {server: 'https://x'}\n"
         "users:\n- name: u\n  user: {token: t}\n",
         "cluster \"c\" is not in clusters"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {certificate-authority: ca.crt}\n"
         "users:\n- name: u\n  user: {token: t}\n",
         "cluster \"c\" has no server"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers: []\n",
         "user \"u\" is not in users"},
        {"contexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n",
         "no current-context"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {user: u}\n",
         "names no cluster"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c}\n"
         "clusters:\n- name: c\n  cluster: {server: 'x:6443'}\n",
         "not an http:// or https:// URL"},
        {"current-context: main\ncontexts:\n- name: main\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
         "users:\n- name: u\n  user: {username: admin, password: secret}\n",
         "basic authentication"},
        {"- just\n- a list\n", "not a kubeconfig"},
        {"key: [unclosed\n", "yaml"},
    };
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const ll_error *e;
        o.kubeconfig = fmt("%s/refused-%zu", dir, i);
        write_file(o.kubeconfig, cases[i].text);
        assert_int_equal(ll_kube_open(&k, &o), LL_EINVALID);
        assert_null(k);
        e = ll_error_last();
        if (!strstr(e->message, o.kubeconfig) || !strstr(e->message, cases[i].words))
            fail_msg("case %zu: '%s' lacks '%s' or the path", i, e->message, cases[i].words);
        if (i < 10 && !e->hint[0])
            fail_msg("case %zu: no hint", i);
        if (strstr(e->message, "secret"))
            fail_msg("case %zu: the password is in the message", i);
    }
}

/* --- a loopback server ------------------------------------------------------ */

#define MAX_STEPS 4
#define MAX_PARTS 8
#define REQ_MAX   16384

typedef struct step {
    const char *parts[MAX_PARTS]; /* written in order, pause_ms apart */
    int pause_ms;
    int hold; /* then wait for the client to hang up */
} step;

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    const step *steps;
    int nsteps;
    char requests[MAX_STEPS][REQ_MAX];
    int served;
} server;

static server srv;

/* A step that writes these parts and closes. */
#define SEND(...)                                                                                  \
    {                                                                                              \
        .parts = { __VA_ARGS__ }                                                                   \
    }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads the request head and its Content-Length body into out. */
static void read_request(int c, char *out, size_t cap)
{
    size_t len = 0, want = 0;
    char *end = NULL;
    ssize_t r;

    while (len + 1 < cap) {
        if ((r = recv(c, out + len, cap - 1 - len, 0)) <= 0)
            break;
        len += (size_t)r;
        out[len] = '\0';
        if (!end && (end = strstr(out, "\r\n\r\n"))) {
            const char *cl = strcasestr(out, "\r\nContent-Length:");
            want = (size_t)(end + 4 - out) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (end && len >= want)
            break;
    }
    out[len] = '\0';
}

static void *serve(void *arg)
{
    server *s = arg;
    struct timeval tv = {5, 0};

    for (int i = 0; i < s->nsteps; i++) {
        struct pollfd p = {s->fd, POLLIN, 0};
        int c;
        if (poll(&p, 1, 10000) <= 0 || (c = accept(s->fd, NULL, NULL)) < 0)
            break;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        read_request(c, s->requests[i], REQ_MAX);
        for (int j = 0; j < MAX_PARTS && s->steps[i].parts[j]; j++) {
            if (j && s->steps[i].pause_ms)
                sleep_ms(s->steps[i].pause_ms);
            send(c, s->steps[i].parts[j], strlen(s->steps[i].parts[j]), MSG_NOSIGNAL);
        }
        if (s->steps[i].hold) {
            char b[256];
            while (recv(c, b, sizeof(b), 0) > 0)
                ;
        }
        close(c);
        __atomic_store_n(&s->served, i + 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void start_server(const step *steps, int nsteps)
{
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);

    memset(&srv, 0, sizeof(srv));
    srv.steps = steps;
    srv.nsteps = nsteps;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv.fd, 8), 0);
    assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&a, &alen), 0);
    srv.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&srv.thread, NULL, serve, &srv), 0);
}

/* Waits for the server thread; returns how many connections it served. */
static int stop_server(void)
{
    shutdown(srv.fd, SHUT_RDWR);
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    return srv.served;
}

/* A complete answer with a Content-Length body. */
static const char *answer(const char *status, const char *headers, const char *body)
{
    return fmt("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
               "Connection: close\r\n\r\n%s",
               status, strlen(body), headers, body);
}

static const char *chunk(const char *data)
{
    return fmt("%zx\r\n%s\r\n", strlen(data), data);
}

#define WATCH_HEAD                                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"          \
    "Connection: close\r\n\r\n"
#define LAST_CHUNK "0\r\n\r\n"

/* The Status bodies a real apiserver sends (tests/../kube-golden). */
#define STATUS_403                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"helmreleases.helm.toolkit.fluxcd.io is forbidden: User \\\"flux-reader\\\" "    \
    "cannot list resource \\\"helmreleases\\\" in API group \\\"helm.toolkit.fluxcd.io\\\" in "    \
    "the namespace \\\"default\\\"\",\"reason\":\"Forbidden\",\"details\":{\"group\":"             \
    "\"helm.toolkit.fluxcd.io\",\"kind\":\"helmreleases\"},\"code\":403}"
#define STATUS_401                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}"
#define STATUS_404                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"helmreleases.helm.toolkit.fluxcd.io \\\"nope\\\" not found\",\"reason\":"       \
    "\"NotFound\",\"details\":{\"name\":\"nope\",\"group\":\"helm.toolkit.fluxcd.io\",\"kind\":"   \
    "\"helmreleases\"},\"code\":404}"
#define STATUS_409                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"Operation cannot be fulfilled: the object has been modified\",\"reason\":"      \
    "\"Conflict\",\"code\":409}"
#define STATUS_410                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"too old resource version: 1 (208)\",\"reason\":\"Expired\",\"code\":410}"
#define STATUS_422                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"HelmRelease.helm.toolkit.fluxcd.io \\\"second\\\" is invalid: "                 \
    "[status.history[0].digest: Required value]\",\"reason\":\"Invalid\",\"details\":{\"name\":"   \
    "\"second\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\","    \
    "\"field\":\"status.history[0].digest\"}]},\"code\":422}"
#define STATUS_429                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"Too many requests, please try again later.\",\"reason\":\"TooManyRequests\","   \
    "\"code\":429}"
#define STATUS_500                                                                                 \
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","           \
    "\"message\":\"etcdserver: request timed out\",\"reason\":\"InternalError\",\"code\":500}"
#define WATCH_410_LINE                                                                             \
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"   \
    "\"status\":\"Failure\",\"message\":\"too old resource version: 1 (208)\",\"reason\":"         \
    "\"Expired\",\"code\":410}}\n"

static const char *event(const char *type, const char *name, const char *rv)
{
    if (strcmp(type, "BOOKMARK") == 0)
        return fmt("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"HelmRelease\",\"apiVersion\":"
                   "\"helm.toolkit.fluxcd.io/v2\",\"metadata\":{\"resourceVersion\":\"%s\"}}}\n",
                   rv);
    return fmt("{\"type\":\"%s\",\"object\":{\"apiVersion\":\"helm.toolkit.fluxcd.io/v2\",\"kind\":"
               "\"HelmRelease\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\","
               "\"resourceVersion\":\"%s\"},\"spec\":{\"interval\":\"1m\"}}}\n",
               type, name, rv);
}

/* A kubeconfig for the loopback server, with tokenFile "token" (relative:
 * the kubeconfig's folder) holding token. */
static ll_kube *open_loopback(const char *token, int retries)
{
    ll_kube *k = NULL;
    ll_kube_options o = {0};

    write_file(fmt("%s/token", dir), token);
    o.kubeconfig = kubeconfig("loopback", fmt("    server: http://127.0.0.1:%d\n", srv.port),
                              "    tokenFile: token\n");
    o.timeout_s = 5;
    o.retries = retries;
    assert_int_equal(ll_kube_open(&k, &o), 0);
    return k;
}

static int64_t elapsed_ms(int64_t since)
{
    return ll_monotonic_ms() - since;
}

/* --- requests ------------------------------------------------------------------ */

static void test_get(void **state)
{
    step steps[] = {SEND(answer("200 OK", "", "{\"kind\":\"NamespaceList\",\"items\":[]}"))};
    json_t *out = NULL;
    ll_kube *k;

    start_server(steps, 1);
    k = open_loopback("tok-1\n", 0);
    assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces?limit=500"), 0);
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "NamespaceList");
    json_decref(out);
    ll_kube_free(k);
    assert_int_equal(stop_server(), 1);
    assert_non_null(strstr(srv.requests[0], "GET /api/v1/namespaces?limit=500 HTTP/1.1\r\n"));
    assert_non_null(strstr(srv.requests[0], "\r\nAuthorization: Bearer tok-1\r\n"));
    assert_non_null(strstr(srv.requests[0], "\r\nAccept: application/json\r\n"));
    assert_non_null(strstr(srv.requests[0], "\r\nUser-Agent: landlord\r\n"));
}

static void test_http_errors(void **state)
{
    static const struct {
        const char *status, *body;
        int code;
        const char *words;
    } cases[] = {
        {"403 Forbidden", STATUS_403, LL_EFORBIDDEN,
         "kubernetes: GET /apis/helm.toolkit.fluxcd.io/v2/helmreleases: 403 Forbidden: "
         "helmreleases.helm.toolkit.fluxcd.io is forbidden: User \"flux-reader\" cannot list "
         "resource \"helmreleases\" in API group \"helm.toolkit.fluxcd.io\" in the namespace "
         "\"default\" (reason Forbidden)"},
        {"401 Unauthorized", STATUS_401, LL_EAUTH, "401 Unauthorized: Unauthorized"},
        {"404 Not Found", STATUS_404, LL_ENOTFOUND, "\"nope\" not found (reason NotFound)"},
        {"409 Conflict", STATUS_409, LL_ECONFLICT, "has been modified (reason Conflict)"},
        {"410 Gone", STATUS_410, LL_EGONE, "too old resource version"},
        {"422 Unprocessable Entity", STATUS_422, LL_EINVALID, "is invalid"},
        {"400 Bad Request", "{\"kind\":\"Status\",\"reason\":\"BadRequest\",\"code\":400}",
         LL_EINVALID, "400 Bad Request: reason BadRequest"},
        {"405 Method Not Allowed", "<html>nope</html>", LL_EUPSTREAM, "405 Method Not Allowed"},
        {"200 OK", "<html>not json</html>", LL_EMALFORMED, "not JSON"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        step steps[] = {SEND(answer(cases[i].status, "", cases[i].body))};
        json_t *out = NULL;
        const ll_error *e;
        ll_kube *k;

        start_server(steps, 1);
        k = open_loopback("secret-token", 0);
        assert_int_equal(
            ll_kube_get(&out, k, "/apis/helm.toolkit.fluxcd.io/v2/helmreleases?limit=5"),
            cases[i].code);
        assert_null(out);
        e = ll_error_last();
        if (!strstr(e->message, cases[i].words))
            fail_msg("case %zu: '%s' lacks '%s'", i, e->message, cases[i].words);
        if (strstr(e->message, "limit=5") || strstr(e->message, "secret-token") ||
            strstr(e->detail, "secret-token"))
            fail_msg("case %zu: '%s' carries the query or the token", i, e->message);
        ll_kube_free(k);
        /* 4xx are not retried. */
        assert_int_equal(stop_server(), 1);
    }
    /* 422: the causes go to the detail. */
    {
        step steps[] = {SEND(answer("422 Unprocessable Entity", "", STATUS_422))};
        json_t *patch = json_pack("{s:{s:[{}]}}", "status", "history"), *out = NULL;
        ll_kube *k;
        start_server(steps, 1);
        k = open_loopback("t", 0);
        assert_int_equal(ll_kube_merge_patch(&out, k, "/x/status", patch), LL_EINVALID);
        assert_non_null(
            strstr(ll_error_last()->detail, "status.history[0].digest: Required value"));
        json_decref(patch);
        ll_kube_free(k);
        assert_int_equal(stop_server(), 1);
    }
}

static void test_retries(void **state)
{
    json_t *out = NULL;
    int64_t t0;
    ll_kube *k;

    /* 429 with Retry-After: 1, then 200. */
    {
        step steps[] = {SEND(answer("429 Too Many Requests", "Retry-After: 1\r\n", STATUS_429)),
                        SEND(answer("200 OK", "", "{\"ok\":1}"))};
        start_server(steps, 2);
        k = open_loopback("t", 0);
        t0 = ll_monotonic_ms();
        assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces"), 0);
        assert_true(elapsed_ms(t0) >= 900);
        assert_int_equal(json_integer_value(json_object_get(out, "ok")), 1);
        json_decref(out);
        ll_kube_free(k);
        assert_int_equal(stop_server(), 2);
    }
    /* 500 twice, then 200: 200 ms, then 400 ms (plus jitter). */
    {
        step steps[] = {SEND(answer("500 Internal Server Error", "", STATUS_500)),
                        SEND(answer("500 Internal Server Error", "", STATUS_500)),
                        SEND(answer("200 OK", "", "{\"ok\":2}"))};
        start_server(steps, 3);
        k = open_loopback("t", 0);
        t0 = ll_monotonic_ms();
        assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces"), 0);
        assert_true(elapsed_ms(t0) >= 600);
        assert_int_equal(json_integer_value(json_object_get(out, "ok")), 2);
        json_decref(out);
        ll_kube_free(k);
        assert_int_equal(stop_server(), 3);
    }
    /* retries -1: a 503 fails at once. */
    {
        step steps[] = {SEND(answer("503 Service Unavailable", "", "{}"))};
        start_server(steps, 1);
        k = open_loopback("t", -1);
        assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces"), LL_EUPSTREAM);
        assert_non_null(strstr(ll_error_last()->message, "503 Service Unavailable"));
        ll_kube_free(k);
        assert_int_equal(stop_server(), 1);
    }
    /* Retries run out: the last answer's error, after retries + 1 attempts. */
    {
        step steps[] = {SEND(answer("504 Gateway Timeout", "", STATUS_500)),
                        SEND(answer("504 Gateway Timeout", "", STATUS_500))};
        start_server(steps, 2);
        k = open_loopback("t", 1);
        assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces"), LL_EUPSTREAM);
        assert_non_null(strstr(ll_error_last()->message, "etcdserver: request timed out"));
        assert_non_null(strstr(ll_error_last()->detail, "2 attempts"));
        ll_kube_free(k);
        assert_int_equal(stop_server(), 2);
    }
    /* Nobody listening: connection failures are retried, then LL_EUPSTREAM. */
    {
        step none[] = {SEND(NULL)};
        start_server(none, 0);
        assert_int_equal(stop_server(), 0); /* the port is free again */
        k = open_loopback("t", 1);
        t0 = ll_monotonic_ms();
        assert_int_equal(ll_kube_get(&out, k, "/api/v1/namespaces"), LL_EUPSTREAM);
        assert_true(elapsed_ms(t0) >= 200);
        assert_non_null(strstr(ll_error_last()->message, fmt("http://127.0.0.1:%d", srv.port)));
        assert_true(ll_error_last()->hint[0] != '\0');
        ll_kube_free(k);
    }
}

static void test_merge_patch(void **state)
{
    step steps[] = {SEND(answer("200 OK", "",
                                "{\"kind\":\"HelmRelease\",\"metadata\":{\"name\":\"demo\","
                                "\"annotations\":{\"a\":\"b\"}}}")),
                    SEND(answer("200 OK", "", "{\"kind\":\"HelmRelease\"}"))};
    json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "annotations", "a", "b"), *out = NULL;
    const char *path = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/default/helmreleases/demo";
    ll_kube *k;

    start_server(steps, 2);
    k = open_loopback("patch-token", 0);
    assert_int_equal(ll_kube_merge_patch(&out, k, path, patch), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "metadata"), "name")), "demo");
    json_decref(out);
    assert_int_equal(ll_kube_merge_patch(NULL, k, path, patch), 0);
    json_decref(patch);
    ll_kube_free(k);
    assert_int_equal(stop_server(), 2);
    assert_non_null(strstr(srv.requests[0], fmt("PATCH %s HTTP/1.1\r\n", path)));
    assert_non_null(strstr(srv.requests[0], "\r\nContent-Type: application/merge-patch+json\r\n"));
    assert_non_null(strstr(srv.requests[0], "\r\nAuthorization: Bearer patch-token\r\n"));
    assert_non_null(
        strstr(srv.requests[0], "\r\n\r\n{\"metadata\":{\"annotations\":{\"a\":\"b\"}}}"));
}

static void test_token_rotation(void **state)
{
    step steps[] = {SEND(answer("200 OK", "", "{}")), SEND(answer("200 OK", "", "{}"))};
    json_t *out = NULL;
    ll_kube *k;

    start_server(steps, 2);
    k = open_loopback("first-token\n", 0);
    assert_int_equal(ll_kube_get(&out, k, "/api"), 0);
    json_decref(out);
    write_file(fmt("%s/token", dir), "second-token-after-rotation\n");
    assert_int_equal(ll_kube_get(&out, k, "/api"), 0);
    json_decref(out);
    ll_kube_free(k);
    assert_int_equal(stop_server(), 2);
    assert_non_null(strstr(srv.requests[0], "\r\nAuthorization: Bearer first-token\r\n"));
    assert_non_null(
        strstr(srv.requests[1], "\r\nAuthorization: Bearer second-token-after-rotation\r\n"));
}

/* --- watches -------------------------------------------------------------------- */

typedef struct seen {
    int n;
    char types[8][16];
    char names[8][64];
    char rvs[8][16];
    int stop_at; /* return LL_ECONFLICT at this event (1-based), 0: never */
} seen;

static int on_event(void *ctx, const char *type, json_t *object)
{
    seen *s = ctx;
    json_t *meta = json_object_get(object, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));

    assert_true(s->n < 8);
    snprintf(s->types[s->n], sizeof(s->types[0]), "%s", type);
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name ? name : "");
    snprintf(s->rvs[s->n], sizeof(s->rvs[0]), "%s", rv ? rv : "");
    s->n++;
    return s->stop_at == s->n ? LL_ECONFLICT : 0;
}

static const char *WATCH_PATH = "/apis/helm.toolkit.fluxcd.io/v2/helmreleases?watch=1&"
                                "resourceVersion=210&allowWatchBookmarks=true&timeoutSeconds=300";

static void test_watch_events(void **state)
{
    const char *modified = event("MODIFIED", "demo", "212");
    size_t half = strlen(modified) / 2;
    /* One event line split across two chunks, written 100 ms apart; another
     * chunk carries two lines. */
    step steps[] = {{.parts = {WATCH_HEAD, chunk(event("ADDED", "demo", "211")),
                               chunk(fmt("%.*s", (int)half, modified)), chunk(modified + half),
                               chunk(fmt("%s%s", event("BOOKMARK", "", "300"),
                                         event("DELETED", "demo", "301"))),
                               LAST_CHUNK},
                     .pause_ms = 100}};
    seen s = {0};
    ll_kube *k;

    start_server(steps, 1);
    k = open_loopback("t", 0);
    assert_int_equal(ll_kube_watch(k, WATCH_PATH, 5, on_event, &s), 0);
    ll_kube_free(k);
    assert_int_equal(stop_server(), 1);
    assert_non_null(strstr(srv.requests[0], fmt("GET %s HTTP/1.1\r\n", WATCH_PATH)));
    assert_int_equal(s.n, 4);
    assert_string_equal(s.types[0], "ADDED");
    assert_string_equal(s.types[1], "MODIFIED");
    assert_string_equal(s.types[2], "BOOKMARK");
    assert_string_equal(s.types[3], "DELETED");
    assert_string_equal(s.names[1], "demo");
    assert_string_equal(s.rvs[0], "211");
    assert_string_equal(s.rvs[1], "212");
    assert_string_equal(s.rvs[2], "300");
    assert_string_equal(s.rvs[3], "301");
}

static void test_watch_failures(void **state)
{
    static const struct {
        const char *what;
        int code, events;
        const char *words;
    } cases[] = {
        {"error event 410", LL_EGONE, 1, "too old resource version: 1 (208) (reason Expired)"},
        {"http 410", LL_EGONE, 0, "410 Gone"},
        {"cut mid-line", LL_EUPSTREAM, 1, "watch stream cut mid-event"},
        {"not json", LL_EMALFORMED, 1, "line 2 is not a watch event"},
        {"other error event", LL_EUPSTREAM, 0, "error event (code 500)"},
        {"fn stops", LL_ECONFLICT, 2, NULL},
        {"http 403", LL_EFORBIDDEN, 0, "watch /apis/helm.toolkit.fluxcd.io/v2/helmreleases: 403"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *added = chunk(event("ADDED", "a", "1"));
        const char *modified = event("MODIFIED", "b", "2");
        step steps[1] = {SEND(NULL)};
        seen s = {0};
        ll_kube *k;

        switch (i) {
        case 0:
            steps[0] = (step)SEND(WATCH_HEAD, added, chunk(WATCH_410_LINE), LAST_CHUNK);
            break;
        case 1:
            steps[0] = (step)SEND(answer("410 Gone", "", STATUS_410));
            break;
        case 2: /* the server goes away inside the second event */
            steps[0] = (step)SEND(WATCH_HEAD, added, chunk(fmt("%.40s", modified)));
            break;
        case 3:
            steps[0] = (step)SEND(WATCH_HEAD, added, chunk("this is not json\n"), LAST_CHUNK);
            break;
        case 4:
            steps[0] = (step)SEND(
                WATCH_HEAD,
                chunk("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"message\":\"internal "
                      "error\",\"reason\":\"InternalError\",\"code\":500}}\n"),
                LAST_CHUNK);
            break;
        case 5:
            s.stop_at = 2;
            steps[0] = (step)SEND(WATCH_HEAD, added, chunk(modified),
                                  chunk(event("DELETED", "c", "3")), LAST_CHUNK);
            break;
        case 6:
            steps[0] = (step)SEND(answer("403 Forbidden", "", STATUS_403));
            break;
        }
        start_server(steps, 1);
        k = open_loopback("t", 0);
        assert_int_equal(ll_kube_watch(k, WATCH_PATH, 5, on_event, &s), cases[i].code);
        if (cases[i].words && !strstr(ll_error_last()->message, cases[i].words))
            fail_msg("%s: '%s' lacks '%s'", cases[i].what, ll_error_last()->message,
                     cases[i].words);
        if (s.n != cases[i].events)
            fail_msg("%s: %d events seen, not %d", cases[i].what, s.n, cases[i].events);
        if (s.n >= 1)
            assert_string_equal(s.names[0], "a");
        ll_kube_free(k);
        assert_int_equal(stop_server(), 1);
    }
}

static void *cancel_later(void *arg)
{
    sleep_ms(300);
    ll_kube_cancel(arg);
    return NULL;
}

static void test_watch_cancel_and_idle(void **state)
{
    step quiet[] = {{.parts = {WATCH_HEAD}, .hold = 1}};
    step silent[] = {{.hold = 1}};
    json_t *out = NULL;
    pthread_t t;
    seen s = {0};
    int64_t t0, ms;
    ll_kube *k;

    /* Cancelled from another thread while nothing arrives. */
    start_server(quiet, 1);
    k = open_loopback("t", 0);
    t0 = ll_monotonic_ms();
    assert_int_equal(pthread_create(&t, NULL, cancel_later, k), 0);
    assert_int_equal(ll_kube_watch(k, WATCH_PATH, 60, on_event, &s), LL_ETIMEOUT);
    ms = elapsed_ms(t0);
    pthread_join(t, NULL);
    if (ms < 250 || ms > 2500)
        fail_msg("the cancelled watch ended after %lld ms", (long long)ms);
    assert_non_null(strstr(ll_error_last()->message, "cancelled"));
    assert_int_equal(s.n, 0);
    assert_int_equal(stop_server(), 1);
    /* Later requests fail at once, without a connection. */
    t0 = ll_monotonic_ms();
    assert_int_equal(ll_kube_get(&out, k, "/api"), LL_ETIMEOUT);
    assert_int_equal(ll_kube_watch(k, WATCH_PATH, 60, on_event, &s), LL_ETIMEOUT);
    assert_true(elapsed_ms(t0) < 100);
    ll_kube_free(k);

    /* idle_s 1 and a server that never answers. */
    start_server(silent, 1);
    k = open_loopback("t", 0);
    t0 = ll_monotonic_ms();
    assert_int_equal(ll_kube_watch(k, WATCH_PATH, 1, on_event, &s), LL_ETIMEOUT);
    ms = elapsed_ms(t0);
    if (ms < 900 || ms > 4000)
        fail_msg("the idle watch ended after %lld ms", (long long)ms);
    assert_non_null(strstr(ll_error_last()->message, "no data for 1 s"));
    ll_kube_free(k);
    assert_int_equal(stop_server(), 1);
}

/* --- the parsers without a network (kube_int.h, the fuzz harnesses' way in) --- */

/* The same stream read in pieces of every size gives the same events: a
 * line cut anywhere, CRLF and blank lines included. */
static void test_watch_parse_chunks(void **state)
{
    const char *stream = fmt("%s\r\n\n%s%s", event("ADDED", "a", "11"),
                             event("MODIFIED", "a", "12"), event("BOOKMARK", "", "13"));
    size_t len = strlen(stream);

    for (size_t chunk = 0; chunk <= len; chunk++) {
        seen s = {0};
        assert_int_equal(ll_kube_watch_parse("/w", stream, len, chunk, on_event, &s), 0);
        assert_int_equal(s.n, 3);
        assert_string_equal(s.types[1], "MODIFIED");
        assert_string_equal(s.rvs[2], "13");
    }
    seen s = {0};
    assert_int_equal(ll_kube_watch_parse("/w", stream, len - 5, 7, on_event, &s), LL_EUPSTREAM);
    assert_non_null(strstr(ll_error_last()->message, "watch stream cut mid-event"));
    assert_int_equal(s.n, 2); /* never a partial event */
}

/* Answers to a GET: a 2xx is JSON, a Status is its error, whatever the
 * body. */
static void test_answer_parse(void **state)
{
    json_t *doc = NULL;
    assert_int_equal(ll_kube_answer_parse(&doc, "/x", 200, "{\"items\":[]}", 12), 0);
    assert_true(json_is_array(json_object_get(doc, "items")));
    json_decref(doc);
    assert_int_equal(ll_kube_answer_parse(&doc, "/x", 200, "{\"items\"", 8), LL_EMALFORMED);
    assert_null(doc);
    assert_int_equal(ll_kube_answer_parse(&doc, "/x", 410, STATUS_410, strlen(STATUS_410)),
                     LL_EGONE);
    assert_non_null(strstr(ll_error_last()->message, "too old resource version"));
    assert_int_equal(ll_kube_answer_parse(&doc, "/x", 422, STATUS_422, strlen(STATUS_422)),
                     LL_EINVALID);
    assert_non_null(strstr(ll_error_last()->detail, "status.history[0].digest: Required value"));
    assert_int_equal(ll_kube_answer_parse(&doc, "/x", 503, "\x01\xff", 2), LL_EUPSTREAM);
}

/* A kubeconfig from memory: the same checks as from a file. */
static void test_kubeconfig_text(void **state)
{
    static const char good[] =
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://k.test:6443/'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n";
    ll_kube *k = NULL;

    assert_int_equal(ll_kube_open_kubeconfig_text(&k, "/nowhere/kc", good, strlen(good), NULL), 0);
    assert_string_equal(ll_kube_server(k), "https://k.test:6443");
    assert_string_equal(ll_kube_namespace(k), "ns");
    ll_kube_free(k);
    assert_int_equal(ll_kube_open_kubeconfig_text(&k, "/nowhere/kc", good, strlen(good), "other"),
                     LL_EINVALID);
    assert_null(k);
    assert_non_null(strstr(ll_error_last()->message, "context \"other\" is not in contexts"));
    assert_int_equal(ll_kube_open_kubeconfig_text(&k, "/nowhere/kc", "[", 1, NULL), LL_EINVALID);
    assert_null(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kubeconfig_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_cancel_and_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_parse_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig_text, setup, teardown),
    };
    int failed;

    ll_log_threshold = LL_LOG_ERROR;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}

/* kube_int.h - the Kubernetes client's insides, private to lib/: the handle
 * that kubeconfig.c fills and kube.c uses, what both share, and the
 * parsers of what a cluster sends, reachable without a network or a file:
 * the code ll_kube_open, ll_kube_get and ll_kube_watch run on the bytes
 * they read, for the unit tests and the fuzz harnesses (tests/fuzz). */
#ifndef LANDLORD_KUBE_INT_H
#define LANDLORD_KUBE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>
#include <jansson.h>

#include "landlord/kube.h"

/* Filled by ll_kube_open (kubeconfig.c), immutable afterwards but for the
 * token (under lock) and the cancel flag. */
struct ll_kube {
    char *server; /* scheme://host:port[/prefix], no trailing slash */
    char *ns;
    char *source;
    char *ca; /* PEM bundle, or NULL for the system's */
    size_t ca_len;
    char *cert; /* client certificate and key (PEM), or NULL */
    size_t cert_len;
    char *key;
    size_t key_len;
    char *token_path; /* read again when it changes, or NULL */
    int timeout_s;
    int retries;
    atomic_int cancelled;

    pthread_mutex_t lock; /* guards token and token_st */
    char *token;          /* NULL: no bearer token */
    struct stat token_st; /* token_path as it was when token was read */
};

/* A new string from printf-style arguments (NULL, and the error set, when
 * out of memory). */
char *kube_dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* obj's member key when it is a non-empty string (borrowed), else NULL. */
const char *kube_str(const json_t *obj, const char *key);

/* Reads a token file into *out (new string; the caller wipes and frees):
 * surrounding whitespace dropped, no control bytes (they would break the
 * header), not empty; st gets the file's stat.  LL_ENOTFOUND, LL_EINVALID,
 * -1. */
int kube_read_token(char **out, struct stat *st, const char *path);

/* ll_kube_open on a kubeconfig whose text[0..len) was read from the file
 * kc (relative paths resolve against kc's folder; files they name are
 * read), with context (or NULL for current-context).  *out is new
 * (ll_kube_free). */
int ll_kube_open_kubeconfig_text(ll_kube **out, const char *kc, const char *text, size_t len,
                                 const char *context);

/* What ll_kube_get makes of an answer with status and body[0..len) to GET
 * path: the JSON of a 2xx (*out, new reference), else the error of the
 * Status in the body (LL_ENOTFOUND, LL_EGONE, ... with message, detail and
 * hint). */
int ll_kube_answer_parse(json_t **out, const char *path, long status, const char *body, size_t len);

/* What ll_kube_watch makes of a 200 watch stream body[0..len) arriving in
 * reads of chunk bytes (0: one read): fn gets each event; 0 at the end of
 * whole lines, else the error of a bad line, an error event or fn. */
int ll_kube_watch_parse(const char *path, const char *body, size_t len, size_t chunk,
                        ll_kube_event_fn fn, void *ctx);

#endif

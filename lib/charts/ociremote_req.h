/* ociremote_req.h - what the OCI push client's files share (private to
 * lib/charts): the client's handle, one operation, one request and its
 * reply, and the exchange with the registry's authentication
 * (ociremote_req.c) that the push and delete (ociremote.c) are made of. */
#ifndef LANDLORD_OCIREMOTE_REQ_H
#define LANDLORD_OCIREMOTE_REQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

#include "landlord/aws.h"
#include "landlord/error.h"
#include "landlord/ociremote.h"
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

typedef struct oci_token {
    char *scope;
    char *value;
    int64_t refresh_ms; /* wall clock */
} oci_token;

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
    oci_token tokens[TOKENS];
    unsigned next_token;

    pthread_mutex_t health_lock;
    int health; /* -1 unknown, 0 failed, 1 ok */
    char health_error[LL_ERROR_MSG_MAX];
    char health_at[32];
};

/* One operation (a push or a delete): the thread's curl handle, the
 * repository, the token scope it needs, and a request counter. */
typedef struct oci_op {
    ll_ociremote *r;
    CURL *h;
    char repo[REPO_MAX + 1];
    char scope[REPO_MAX + 64];
    int requests;
    int repo_created;
} oci_op;

/* One request; every pointer borrowed. */
typedef struct oci_request {
    const char *method;
    const char *url;
    const char *accept;
    const char *content_type;
    const void *body;
    size_t body_len;
    size_t keep; /* bytes of the answer kept */
} oci_request;

/* What the registry answered: status, the headers used, the body (at most
 * keep bytes of it). */
typedef struct oci_reply {
    long status;
    char location[4096];
    char digest[80];
    char challenge[2048];
    ll_buf body;
    size_t keep;
} oci_reply;

/* An empty reply keeping at most keep bytes of the body; freed with
 * ll_ocireq_reply_free(), which may be called again. */
void ll_ocireq_reply_init(oci_reply *rp, size_t keep);
void ll_ocireq_reply_free(oci_reply *rp);

/* This thread's curl handle for r (made on first use, freed when the
 * thread ends); NULL when curl cannot make one. */
CURL *ll_ocireq_handle(ll_ociremote *r);

/* Sends q once, with the Authorization header auth (or none), into *rp
 * (initialised by the caller).  LL_EUPSTREAM when the exchange fails. */
int ll_ocireq_perform(oci_op *o, const oci_request *q, const char *auth, oci_reply *rp);

/* One request with the registry's authentication: a 401 is answered once
 * (after learning its challenge), and on ECR a 403 once with a fresh token
 * (ECR answers an expired token with 403 DENIED).  *rp as for perform. */
int ll_ocireq_send(oci_op *o, const oci_request *q, oci_reply *rp);

/* Learns the challenge of a 401.  1 when landlord can answer it. */
int ll_ocireq_learn(oci_op *o, const oci_reply *rp);

/* The scheme learnt (SCHEME_*), under r's lock. */
int ll_ocireq_scheme(ll_ociremote *r);

/* Keeps the last error's message, detail and hint under another code: a
 * failure to obtain registry credentials is the upstream's, never a 401 of
 * landlord's own API.  Returns code when error is negative, else error. */
int ll_ocireq_recode(int error, int code);

/* 1 when the registry's error body names code. */
int ll_ocireq_error_code_is(const oci_reply *rp, const char *code);

/* The error for an answer that is not what q expects. */
int ll_ocireq_http_error(oci_op *o, const oci_request *q, const oci_reply *rp);

#endif

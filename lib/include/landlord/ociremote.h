/* ociremote.h - pushing Helm charts to an OCI Distribution registry (Amazon
 * ECR included) the way `helm push` does, and deleting them.
 *
 * The registry is named by an oci:// URL as Helm takes it:
 * oci://host[:port][/base/path]; a chart lands in repository
 * <base path>/<chart name> under the tag oci.c computed (version with '+'
 * as '_').  HTTPS with verification always on (plus an optional CA file);
 * plain HTTP only on request and only to this machine.
 *
 * A push (protocols.md sections 1.2-1.4): probe GET /v2/ once to learn the
 * registry's challenge; HEAD the manifest by tag (the same digest: nothing
 * to do; another manifest: the same chart layer is adopted, another chart
 * is LL_ECONFLICT); HEAD each blob and upload the missing ones (POST, then
 * a monolithic PUT to the Location, relative or absolute, with ?digest=);
 * PUT the manifest with its media type and check Docker-Content-Digest.
 * Challenges are answered with Basic credentials, with a bearer token from
 * the challenge's realm (cached per scope until shortly before it
 * expires), or on ECR with the GetAuthorizationToken token; ECR
 * repositories are created when a push finds them missing.
 *
 * Threads: any thread may call; each thread keeps one curl easy handle
 * (CURLOPT_NOSIGNAL, connections kept alive across calls), freed when the
 * thread ends.  Shared state (challenge, tokens, health) is under mutexes.
 * Credentials and tokens never reach a log line, an error message or a URL.
 *
 * Ownership, unless a prototype says otherwise: pointer arguments are
 * borrowed for the call; `out` records and buffers are the caller's and
 * hold no heap memory.
 */
#ifndef LANDLORD_OCIREMOTE_H
#define LANDLORD_OCIREMOTE_H

#include <stddef.h>
#include <jansson.h>

#include "landlord/oci.h"

typedef struct ll_ociremote ll_ociremote;

typedef struct ll_ociremote_options {
    const char *url;        /* oci://host[:port][/base/path] */
    const char *username;   /* for Basic auth or the token server; NULL or "": anonymous */
    const char *password;   /* borrowed; copied into a Basic credential */
    const char *ca_file;    /* extra PEM CAs, or NULL */
    int plain_http;         /* 1: http:// (a loopback host only) */
    const char *auth;       /* "auto" (ECR by host name, else challenges) or "ecr" */
    const char *aws_region; /* ECR: "" = from the host, else $AWS_REGION, $AWS_DEFAULT_REGION */
    int timeout_s;          /* to connect, and without progress; default 60 */
} ll_ociremote_options;

/* Splits an oci:// URL: host (with :port) and the base path without
 * leading or trailing '/' ("" when none).  LL_EINVALID with the reason: not
 * oci://, a bad host or port, a path component the OCI name grammar
 * refuses ([a-z0-9]+ separated by '.', '_', '__' or dashes). */
int ll_ociremote_parse_url(char *host, size_t host_cap, char *base, size_t base_cap,
                           const char *url);

/* A WWW-Authenticate challenge: scheme (lower case) and the parameters
 * the token flow needs. */
typedef struct ll_oci_challenge {
    char scheme[16];
    char realm[1024];
    char service[256];
    char scope[512];
} ll_oci_challenge;

/* Parses `Scheme k="v", k2=v2`; LL_EINVALID when it is not one or a value
 * does not fit. */
int ll_oci_challenge_parse(ll_oci_challenge *out, const char *value);

/* Checks the options and opens the client (no network yet; ECR: the AWS
 * credential chain).  LL_EINVALID with a hint for a bad URL, plain HTTP to
 * another machine, ECR without a region.  *out: a new handle (ll_ociremote_free); opts' strings are
 * copied. */
int ll_ociremote_open(ll_ociremote **out, const ll_ociremote_options *opts);
void ll_ociremote_free(ll_ociremote *r);

/* "host[:port]/base/<chart>:<tag>", as `helm push` prints it. */
void ll_ociremote_reference(char *out, size_t cap, const ll_ociremote *r, const char *chart,
                            const char *tag);

/* 1 when location (a release's) names a repository of this registry. */
int ll_ociremote_owns(const ll_ociremote *r, const char *location);

typedef struct ll_ociremote_pushed {
    char manifest_digest[80]; /* what the tag points to now */
    char config_digest[80];
    int pushed;         /* 0: the registry held this chart under the tag already */
    int blobs_uploaded; /* blobs that were missing */
    int requests;       /* HTTP requests made to the registry */
} ll_ociremote_pushed;

/* Pushes artifact a (its chart bytes tgz, len) as <base>/<chart>:<a->tag>.
 * The tag already there: with the same manifest or the same chart layer it
 * is kept (pushed 0, its digests in *out); with another chart,
 * LL_ECONFLICT.  Any registry or network failure is LL_EUPSTREAM with a
 * message naming the registry host, the request and the status. */
int ll_ociremote_push(ll_ociremote_pushed *out, ll_ociremote *r, const char *chart,
                      const ll_oci_artifact *a, const void *tgz, size_t len);

/* Deletes manifest digest from <base>/<chart> (its tags go with it).  A
 * manifest already gone is success.  A registry that refuses deletes
 * (distribution without storage.delete.enabled: 405 UNSUPPORTED) is
 * LL_EUPSTREAM with a hint. */
int ll_ociremote_delete(ll_ociremote *r, const char *chart, const char *digest);

/* For /readyz (new reference): {"status": "ok"|"failed"|"unknown",
 * "registry", "url", "auth", "credentials"? (ECR: where AWS credentials
 * come from), "error"?, "checked_at"?} from the last exchange (no request
 * is made).  New reference. */
json_t *ll_ociremote_health(ll_ociremote *r);

#endif

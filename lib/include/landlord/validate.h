/* validate.h - rules for ids, releases and chart values taken from requests.
 *
 * Every function returns 0 or LL_EINVALID with a message and the field at
 * fault set through ll_error_set()/ll_error_field().
 *
 * Ownership: every argument is borrowed for the call; `char *out, size_t
 * cap` buffers are the caller's.
 */
#ifndef LANDLORD_VALIDATE_H
#define LANDLORD_VALIDATE_H

#include <stddef.h>
#include <jansson.h>

#define LL_TENANT_ID_MAX    40
#define LL_VALUES_DEPTH_MAX 16

/* A DNS-1123 label of 1..max characters: [a-z0-9]([-a-z0-9]*[a-z0-9])?.
 * field names the request field for the error. */
int ll_validate_label(const char *s, size_t max, const char *field);

/* A tenant id: a DNS-1123 label of at most LL_TENANT_ID_MAX characters that is
 * not "default", "flux-system" or "kube-*" (always reserved: ids of every
 * tenant, adopted ones included, are held to this).  The reserved-namespaces
 * list, pool environment names and the cluster's namespaces are checked by
 * the core when an id is taken (ids.c), which knows them. */
int ll_validate_tenant_id(const char *id);

/* The default of the reserved-namespaces setting: namespaces a Kubernetes
 * (EKS) platform runs in or is likely to install into.  Entries are names,
 * "prefix*" or "*suffix". */
#define LL_RESERVED_NAMESPACES_DEFAULT                                                             \
    "kube-*,default,flux-system,landlord,*-system,cert-manager,ingress-*,*-ingress,monitoring,"    \
    "logging,observability,amazon-*,aws-*,eks-*,karpenter,external-dns,external-secrets,istio-*,"  \
    "linkerd*,kyverno,velero,argocd,argo,argo-*,prometheus*,grafana*,loki,tempo,jaeger,"           \
    "opentelemetry*,tigera-operator,calico-*,cilium*,keda,vault,kubecost,knative-*,tekton-*,gitea"

/* Checks a reserved-namespaces value: comma-separated entries, each a
 * DNS-1123 label ("monitoring"), a prefix of one followed by '*'
 * ("kube-*"), or '*' followed by a suffix of one ("*-system"); spaces
 * around entries are ignored; "" reserves nothing beyond the always
 * reserved names.  0 or LL_EINVALID (message names the entry). */
int ll_validate_reserved_list(const char *list);

/* 1 when name matches an entry of list (a valid reserved-namespaces value);
 * the entry it matched is copied into match (cap bytes, may be 0).  0 when
 * none does. */
int ll_reserved_match(char *match, size_t cap, const char *list, const char *name);

/* A release: "1.2.3" (pinned), "1.2" or "1.2.x" (floating on the patch). */
int ll_validate_release(const char *release);

/* The chart version expression for a valid release: "1.2" and "1.2.x" give
 * "1.2.x", "1.2.3" gives "1.2.3".  out has room for cap bytes. */
int ll_release_expr(char *out, size_t cap, const char *release);

/* 1 when a valid release pins an exact version ("1.2.3"), 0 when it
 * floats ("1.2", "1.2.x"). */
int ll_release_pinned(const char *release);

/* Compares semantic versions: numbers, then a pre-release before none, then
 * pre-releases as text; build metadata is ignored.  <0, 0, >0. */
int ll_semver_cmp(const char *a, const char *b);

/* Chart value overrides: a JSON object, nested at most LL_VALUES_DEPTH_MAX
 * deep, with no "${" in any key or string (Flux's postBuild substitution would
 * expand it). */
int ll_validate_values(const json_t *values);

#endif

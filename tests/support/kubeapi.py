"""A stand-in Kubernetes API server for the tests: the parts of the
kube-apiserver protocol that landlord uses, for Namespaces and the Flux
custom resources, in process, on 127.0.0.1.

Python 3 standard library + python3-yaml only.  Shapes follow responses
captured from a real kube-apiserver with the real Flux CRDs
(shared/reference/kube-golden): Status error bodies, list metadata, watch
event lines, managedFields, CRD status defaults, Go's JSON escaping of < > &.

    from kubeapi import KubeAPI

    with KubeAPI(tls=True, tokens={"good-token": "admin"}) as api:
        api.url                      # https://localhost:PORT
        api.kubeconfig(path)         # a kubeconfig for it (token good-token)
        api.put({...})               # state for the test, emits watch events
        api.get("HelmRelease", "flux-system", "acme-premium")

Served resources (group/version: plural; `Kind`):
  v1: namespaces (cluster-scoped), events (fieldSelector involvedObject.kind,
      .name, .namespace, .uid, reason, type, source too)
  helm.toolkit.fluxcd.io/v2 and /v2beta1 (same storage): helmreleases
  kustomize.toolkit.fluxcd.io/v1: kustomizations
  source.toolkit.fluxcd.io/v1: gitrepositories, helmrepositories, helmcharts
  infra.contrib.fluxcd.io/v1alpha2: terraforms (only with terraform=True;
      otherwise the group answers 404 like a server without the CRD)

HTTP API: discovery (/api, /api/v1, /apis, /apis/G, /apis/G/V), /version,
/healthz /readyz /livez; per resource list (namespaced and all-namespaces),
watch, get, create (POST, JSON or YAML), update (PUT, resourceVersion
required for custom resources), patch (merge-patch, json-patch; strategic
merge only for Namespaces; anything else 415) on the object and on /status,
delete (finalizers and Namespace termination honoured), deletecollection.
Lists: limit/continue (tokens in the real format, 410 when expired),
labelSelector (=, ==, !=, exists, !key, in, notin), fieldSelector
(metadata.name, metadata.namespace, status.phase for Namespaces; =, ==, !=).
Watches: resourceVersion replay from a bounded history, ADDED for the current
state when resourceVersion is absent or "0", BOOKMARK (allowWatchBookmarks)
every bookmark_interval seconds, timeoutSeconds, selectors (an object leaving
the selection is sent as DELETED, one entering it as ADDED, like the watch
cache), ERROR 410 Expired in the stream for a resourceVersion older than the
history (or HTTP 410 with watch_expired="http").

Details that follow the real server: custom resources are written with
sorted keys (Go maps), built-in ones (Namespace, Event) in struct order, and
typed lists carry no kind/apiVersion on their items; a custom resource list
always has "continue" ("" at the end), remainingItemCount when paging without
selectors; create drops .status (status subresource) and the CRD default
{"observedGeneration": -1} applies; only changes outside metadata and status
bump metadata.generation; a write that changes nothing gets no new
resourceVersion and no event; removing the last finalizer of an object being
deleted deletes it (a DELETED event, no MODIFIED); deleting a Namespace
deletes what is in it; creating in a missing Namespace is 404, in a
Terminating one 403; managedFields record the manager (fieldManager, else the
User-Agent's product) per operation and subresource.  Headers: Audit-Id,
Cache-Control: no-cache, private, X-Kubernetes-Pf-*; a body over 2 KiB goes
chunked (Go's net/http), gzip from 128 KiB when the client accepts it.

KubeAPI(tls=True, tokens=None, forbid=None, terraform=False, anonymous=False,
        history_size=1000, bookmark_interval=1.0, namespace_delete_delay=0.2,
        continue_ttl=300.0, watch_expired="event", max_watch_seconds=1800,
        namespaces=("default", "kube-system", "kube-public",
                    "kube-node-lease", "flux-system"),
        not_found_body="text", port=None, version="1.31", rbac=None,
        helm_versions=None)
    helm_versions: None (HelmRelease served at v2 and v2beta1), or the only
        versions served, the first the storage one (["v2"]: a current Flux);
        discovery (/apis, /apis/helm.toolkit.fluxcd.io) says the same.
    tokens: {token: user}; None disables authentication (every request is
        user "admin").  An unknown or missing token: 401 (golden body); a
        missing token with anonymous=True is system:anonymous, who may only
        read /version, /healthz, /readyz, /livez (403 otherwise).
    forbid: {token or user: [rule, ...]}: 403 (golden shape) for matching
        requests.  A rule is "*", "<plural>" (every verb, subresources too),
        "<plural>/status", or "<verb> <plural>[/status]" (verb one of get
        list watch create update patch delete deletecollection, or *).
    rbac: None, or a list of RBAC objects (ClusterRole, Role, ClusterRoleBinding,
        RoleBinding, as applied): every authenticated request is then
        authorized as kube-apiserver's RBAC authorizer would, on the request
        attributes it derives (request_info(): list vs get by name, watch,
        fieldSelector metadata.name as the name, patch, subresources,
        non-resource URLs); the built-in system:discovery and
        system:public-info-viewer let every authenticated user GET /api*,
        /apis*, /version and the health URLs.  A token's user named
        system:serviceaccount:<ns>:<name> is that service account (groups
        system:serviceaccounts[:<ns>]).  A request no rule allows gets the
        golden 403, whether or not the stand-in serves the resource;
        .rbac.used counts (role id, rule index, verb) per allowed request
        and .rbac.denied lists the refused ones.
    tls: HTTPS with the test CA of gitserver.py and a certificate for DNS
        name localhost (url is https://localhost:PORT); client certificates
        signed by that CA are accepted too (user = certificate CN).
    not_found_body: an unknown path (a group or resource not served) gets
        "text": Go's http.NotFound ("404 page not found", text/plain), as the
        real server answers; "status": a NotFound Status instead.
    namespace_delete_delay: seconds a deleted Namespace stays Terminating
        once nothing is left in it; None: until finish_namespace().

Lifecycle and fixtures:
  .start() / .stop() / context manager; .url, .port, .host, .ca_file
  .kubeconfig(path, token=None, token_file=None, namespace=None,
              client_cert=None, ca_data=False, context="standin")
      writes a kubeconfig (cluster server + certificate-authority, user token,
      tokenFile or client-certificate/-key, context namespace); token=None
      uses the first configured token.  Returns path.
  .write_token_file(token, path=None)   a 0600 file holding token; its path.
  .client_cert(user)                    (cert_file, key_file) signed by the CA
  .set_tokens({token: user}), .add_token(token, user), .remove_token(token)
  .set_forbid({token or user: [rules]})

State (thread-safe; every write gets a new resourceVersion and emits the same
watch events as an API write).  kind is a plural, a Kind, a singular or a
short name ("helmreleases", "HelmRelease", "hr"); ns is ignored for
Namespaces (get("Namespace", "acme") works too):
  .put(obj, manager="test")             create or replace (no validation):
                                        spec/labels/annotations/finalizers
                                        from obj, status too when obj has one;
                                        generation bumps when spec changes.
  .create(obj, manager=...)             like POST (validation, 409, ...)
  .apply(obj, manager=...)              create, or update everything but
                                        status and identity (what a GitOps
                                        applier does); returns (obj, "created"
                                        | "configured" | "unchanged")
  .get(kind, ns, name=None)             a copy, or None
  .objects(kind, ns=None, copy=True)    copies, in key order (copy=False: the
                                        stored objects, faster, read-only)
  .patch(kind, ns, name, patch, manager=...)          merge-patch the object
  .patch_status(kind, ns, name, status_patch, manager=...)
                                        merge-patch .status (no generation bump)
  .set_status(kind, ns, name, status, manager=...)    replace .status
  .delete(kind, ns, name)               like DELETE: finalizers -> deletion
                                        timestamp; Namespaces -> Terminating
  .remove_finalizer(kind, ns, name, finalizer)
  .finish_namespace(name)               a Terminating Namespace vanishes now
  .resource_version                     the current one (a string)
  .add_listener(fn) / .remove_listener(fn)
                                        fn(type, plural, obj) after each write
                                        (under the lock: be quick)
  The write methods raise ApiError (.code, .reason, .status dict).

Helpers: clone(obj) (a fast deep copy of JSON data), wait_until(fn,
timeout=10, interval=0.01, msg=None) (fn's first true value, else
AssertionError), dumps(obj, sort=False) (JSON bytes as the apiserver writes).

Faults:
  .go_down(hang=False)    refuse connections (listener closed) and cut every
                          open connection and watch; hang=True: keep
                          accepting, answer nothing until come_back()
  .come_back()            listen again on the same port
  .cut_watches(mid_object=False, clean=False)
                          end every open watch stream: abruptly (no last
                          chunk), after half an event line with mid_object,
                          or cleanly (last chunk) with clean=True
  .send_malformed(line="this is not json")   a non-JSON line into every watch
  .fail_next(n=1, status=500, retry_after=None, reason=None, message=None,
             match=None, plain=False)
                          the next n matching requests (after authentication)
                          get that status as a Status body (plain=True: Go's
                          text/plain http.Error body, as API priority and
                          fairness sends its 429).  match: None, a verb
                          ("list", "watch", "patch", ...), a plural, or
                          fn(method, path, verb) -> bool
  .compact()              drop the watch history and the list snapshots: old
                          resourceVersions and continue tokens get 410

Observation:
  .request_count(verb=None, kind=None, path=None, status=None)
  .requests               the last 200,000 requests, dicts {method, path, query,
                          verb, plural, namespace, name, subresource, status
                          (0: connection cut), user}; a watch is logged when
                          it ends
  .watch_count(kind=None) watch streams opened so far
  .open_watches(kind=None)
  .reset_counts()
"""

import base64
import collections
import copy
import gzip
import http.server
import json
import os
import queue
import random
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import common  # noqa: E402
import gitserver  # noqa: E402  (test CA and localhost certificate)

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None


# -- resources -----------------------------------------------------------------


class Resource:
    """One served kind."""

    def __init__(self, group, versions, plural, kind, singular, namespaced=True, short_names=(),
                 categories=(), crd=True, spec_defaults=(), required=None, cel=False):
        self.group = group
        self.versions = list(versions)
        self.plural = plural
        self.kind = kind
        self.singular = singular
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.crd = crd
        self.spec_defaults = list(spec_defaults)
        self.required = required or {}
        self.cel = cel

    @property
    def storage_version(self):
        return self.versions[0]

    def api_version(self, version=None):
        v = version or self.storage_version
        return "%s/%s" % (self.group, v) if self.group else v

    @property
    def qualified(self):
        """plural.group, as in error messages (GroupResource.String())."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def qualified_kind(self):
        return "%s.%s" % (self.kind, self.group) if self.group else self.kind

    def __repr__(self):
        return "<Resource %s>" % self.qualified


_COND_REQ = ["lastTransitionTime", "message", "reason", "status", "type"]

RESOURCES = [
    Resource("", ["v1"], "namespaces", "Namespace", "namespace", namespaced=False, short_names=["ns"], crd=False),
    Resource("", ["v1"], "events", "Event", "event", short_names=["ev"], crd=False),
    Resource(
        "helm.toolkit.fluxcd.io", ["v2", "v2beta1"], "helmreleases", "HelmRelease", "helmrelease",
        short_names=["hr"], categories=["all", "fluxcd", "fluxcd-appliers"],
        spec_defaults=[("spec.chart.spec.reconcileStrategy", "ChartVersion"), ("spec.chart.spec.version", "*"),
                       ("spec.chart.spec.verify.provider", "cosign"), ("spec.uninstall.deletionPropagation", "background")],
        required={
            "spec": ["interval"], "spec.chart": ["spec"], "spec.chart.spec": ["chart", "sourceRef"],
            "spec.chart.spec.sourceRef": ["kind", "name"], "spec.chartRef": ["kind", "name"],
            "spec.dependsOn[]": ["name"], "spec.valuesFrom[]": ["kind", "name"],
            "status.conditions[]": _COND_REQ,
            "status.history[]": ["chartName", "chartVersion", "configDigest", "digest", "firstDeployed",
                                 "lastDeployed", "name", "namespace", "status", "version"],
            "status.inventory": ["entries"], "status.inventory.entries[]": ["id", "v"],
        },
        cel=True,
    ),
    Resource(
        "kustomize.toolkit.fluxcd.io", ["v1"], "kustomizations", "Kustomization", "kustomization",
        short_names=["ks"], categories=["all", "fluxcd", "fluxcd-appliers"],
        spec_defaults=[("spec.force", False)],
        required={
            "spec": ["interval", "prune", "sourceRef"], "spec.sourceRef": ["kind", "name"],
            "spec.dependsOn[]": ["name"], "spec.healthChecks[]": ["kind", "name"],
            "status.conditions[]": _COND_REQ,
            "status.history[]": ["digest", "firstReconciled", "lastReconciled", "lastReconciledDuration",
                                 "lastReconciledStatus", "totalReconciliations"],
            "status.inventory": ["entries"], "status.inventory.entries[]": ["id", "v"],
        },
        cel=True,
    ),
    Resource(
        "source.toolkit.fluxcd.io", ["v1"], "gitrepositories", "GitRepository", "gitrepository",
        short_names=["gitrepo"], categories=["all", "fluxcd", "fluxcd-sources"],
        spec_defaults=[("spec.timeout", "60s"), ("spec.verify.mode", "HEAD")],
        required={
            "spec": ["interval", "url"], "spec.secretRef": ["name"],
            "status.artifact": ["digest", "lastUpdateTime", "path", "revision", "url"],
            "status.conditions[]": _COND_REQ,
        },
        cel=True,
    ),
    Resource(
        "source.toolkit.fluxcd.io", ["v1"], "helmrepositories", "HelmRepository", "helmrepository",
        short_names=["helmrepo"], categories=["all", "fluxcd", "fluxcd-sources"],
        spec_defaults=[("spec.provider", "generic")],
        required={"spec": ["url"], "status.conditions[]": _COND_REQ,
                  "status.artifact": ["digest", "lastUpdateTime", "path", "revision", "url"]},
    ),
    Resource(
        "source.toolkit.fluxcd.io", ["v1"], "helmcharts", "HelmChart", "helmchart",
        short_names=["hc"], categories=["all", "fluxcd", "fluxcd-sources"],
        spec_defaults=[("spec.reconcileStrategy", "ChartVersion"), ("spec.version", "*")],
        required={"spec": ["chart", "interval", "sourceRef"], "spec.sourceRef": ["kind", "name"],
                  "status.conditions[]": _COND_REQ,
                  "status.artifact": ["digest", "lastUpdateTime", "path", "revision", "url"]},
        cel=True,
    ),
]

TERRAFORM = Resource("infra.contrib.fluxcd.io", ["v1alpha2"], "terraforms", "Terraform", "terraform",
                     short_names=["tf"], categories=["all"], required={"status.conditions[]": _COND_REQ})

VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]

# Fixed per-server flow-control uids (the real server sends its own).
_PF_FLOWSCHEMA = "8f3ad1c4-4a4e-4c3f-9b54-d1f6a2e0c1b7"
_PF_PRIORITY = "0d4c2b8e-1f7e-4b38-a9c4-6a0e3f5d2c91"

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def clone(o):
    """A deep copy of JSON data (dicts, lists, scalars): several times faster
    than copy.deepcopy."""
    if isinstance(o, dict):
        return {k: clone(v) if isinstance(v, (dict, list)) else v for k, v in o.items()}
    if isinstance(o, list):
        return [clone(v) if isinstance(v, (dict, list)) else v for v in o]
    return o


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def dumps(obj, sort=False):
    """JSON as the apiserver writes it: compact, Go's HTML escaping, UTF-8."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort)
    for a, b in _GO_ESCAPES:
        s = s.replace(a, b)
    return s.encode("utf-8")


def wait_until(fn, timeout=10.0, interval=0.01, msg=None):
    """Calls fn until it returns something true; returns that.  Raises
    AssertionError after timeout."""
    return common.poll(fn, timeout, interval, msg)


# -- errors ----------------------------------------------------------------------


class ApiError(Exception):
    """A Kubernetes Status error."""

    def __init__(self, code, reason, message, details=None, headers=None, list_continue=None, plain=None):
        super().__init__("%d %s: %s" % (code, reason, message))
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.list_continue = list_continue
        self.plain = plain  # a text/plain body instead of a Status

    @property
    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
        if self.list_continue:
            st["metadata"] = {"continue": self.list_continue}
        st["status"] = "Failure"
        if self.message is not None:
            st["message"] = self.message
        if self.reason:
            st["reason"] = self.reason
        if self.details is not None:
            st["details"] = _ordered_details(self.details)
        st["code"] = self.code
        return st


def _ordered_details(d):
    out = {}
    for k in ("name", "group", "kind", "uid", "causes", "retryAfterSeconds"):
        if k in d and d[k] not in ("", None):
            if k == "causes":
                out[k] = [{kk: c[kk] for kk in ("reason", "message", "field") if c.get(kk)} for c in d[k]]
            else:
                out[k] = d[k]
    return out


def _gr_details(res, name=None):
    d = {}
    if name:
        d["name"] = name
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return d


def err_not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _gr_details(res, name))


def err_already_exists(res, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, name), _gr_details(res, name))


def err_conflict(res, name):
    return ApiError(
        409, "Conflict",
        'Operation cannot be fulfilled on %s "%s": the object has been modified; please apply your changes '
        "to the latest version and try again" % (res.qualified, name),
        _gr_details(res, name),
    )


def err_bad_request(message):
    return ApiError(400, "BadRequest", message)


def err_invalid(res, name, causes):
    """causes: [(reason, field, body)] -> 422 as apimachinery NewInvalid."""
    texts = ["%s: %s" % (f, body) for (_, f, body) in causes]
    if not texts:
        msg = '%s "%s" is invalid' % (res.qualified_kind, name)
    elif len(texts) == 1:
        msg = '%s "%s" is invalid: %s' % (res.qualified_kind, name, texts[0])
    else:
        msg = '%s "%s" is invalid: [%s]' % (res.qualified_kind, name, ", ".join(texts))
    details = {"name": name, "group": res.group, "kind": res.kind,
               "causes": [{"reason": r, "message": body, "field": f} for (r, f, body) in causes]}
    return ApiError(422, "Invalid", msg, details)


def err_forbidden(res, user, verb, ns, name=None, sub=None, path=None):
    if res is None:
        msg = 'forbidden: User "%s" cannot %s path "%s"' % (user, verb, path)
        return ApiError(403, "Forbidden", msg, {})
    resource = res.plural + ("/" + sub if sub else "")
    if ns:
        why = 'User "%s" cannot %s resource "%s" in API group "%s" in the namespace "%s"' % (
            user, verb, resource, res.group, ns)
    else:
        why = 'User "%s" cannot %s resource "%s" in API group "%s" at the cluster scope' % (user, verb, resource, res.group)
    if name:
        msg = '%s "%s" is forbidden: %s' % (res.qualified, name, why)
    else:
        msg = "%s is forbidden: %s" % (res.qualified, why)
    return ApiError(403, "Forbidden", msg, _gr_details(res, name))


def err_unsupported_media(res):
    types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    if not res.crd:
        types.append("application/strategic-merge-patch+json")
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: " + ", ".join(types))


def err_expired(message, list_continue=None):
    return ApiError(410, "Expired", message, None, list_continue=list_continue)


def err_method_not_allowed():
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource version is too old"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected failure"),
    502: ("", "the server responded with status 502"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
}


def status_error(code, reason=None, message=None, retry_after=None):
    r, m = _REASONS.get(code, ("", "the server responded with status %d" % code))
    details = None
    if code == 500:
        details = {"causes": [{"message": "injected failure"}]} if message is None else None
    if retry_after is not None and code in (429, 503, 504):
        details = dict(details or {})
        details["retryAfterSeconds"] = int(retry_after)
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
    return ApiError(code, reason if reason is not None else r, message if message is not None else m, details, headers)


# -- selectors -------------------------------------------------------------------


def parse_label_selector(s):
    """[(key, op, value-or-set)]; op in = != in notin exists !.  Raises
    ApiError 400 on a bad selector."""
    reqs = []
    if not s:
        return reqs
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    key_re = r"([A-Za-z0-9][-A-Za-z0-9_./]*)"
    for p in parts:
        p = p.strip()
        if not p:
            raise err_bad_request("unable to parse requirement: found '', expected: identifier")
        m = re.fullmatch(key_re + r"\s+(in|notin)\s*\(([^()]*)\)", p)
        if m:
            vals = set(v.strip() for v in m.group(3).split(",") if v.strip() != "" or True)
            vals = set(v for v in vals)
            for v in vals:
                _check_label_value(m.group(1), v)
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(r"!\s*" + key_re, p)
        if m:
            reqs.append((m.group(1), "!", None))
            continue
        m = re.fullmatch(key_re + r"\s*(==|=|!=)\s*([^\s=!(),]*)", p)
        if m:
            _check_label_value(m.group(1), m.group(3))
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        m = re.fullmatch(key_re, p)
        if m:
            reqs.append((m.group(1), "exists", None))
            continue
        raise err_bad_request("unable to parse requirement: found '%s', expected: identifier" % p)
    return reqs


def _check_label_value(key, v):
    if len(v) > 63 or not LABEL_VALUE.match(v):
        raise err_bad_request(
            "unable to parse requirement: values[0][%s]: Invalid value: \"%s\": a valid label must be an empty "
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')" % (key, v))


def label_match(labels, reqs):
    labels = labels or {}
    for key, op, val in reqs:
        has = key in labels
        v = labels.get(key)
        if op == "=":
            ok = has and v == val
        elif op == "!=":
            ok = not has or v != val
        elif op == "in":
            ok = has and v in val
        elif op == "notin":
            ok = not has or v not in val
        elif op == "exists":
            ok = has
        else:
            ok = not has
        if not ok:
            return False
    return True


def parse_field_selector(s, res):
    reqs = []
    if not s:
        return reqs
    allowed = {"metadata.name", "metadata.namespace"}
    if res.plural == "namespaces":
        allowed.add("status.phase")
    if res.plural == "events":
        allowed |= EVENT_FIELDS
    for p in s.split(","):
        p = p.strip()
        if not p:
            continue
        m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", p)
        if not m:
            raise err_bad_request("invalid selector: '%s'; can't understand '%s'" % (s, p))
        f = m.group(1).strip()
        if f not in allowed:
            raise err_bad_request("field label not supported: %s" % f)
        reqs.append((f, "!=" if m.group(2) == "!=" else "=", m.group(3).strip()))
    return reqs


EVENT_FIELDS = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                "reason", "reportingComponent", "source", "type"}


def field_match(obj, reqs):
    md = obj.get("metadata", {})
    for f, op, val in reqs:
        if f == "metadata.name":
            v = md.get("name", "")
        elif f == "metadata.namespace":
            v = md.get("namespace", "")
        elif f == "status.phase":
            v = (obj.get("status") or {}).get("phase", "")
        elif f.startswith("involvedObject."):
            v = (obj.get("involvedObject") or {}).get(f.split(".", 1)[1], "")
        elif f == "source":
            v = (obj.get("source") or {}).get("component", "")
        else:
            v = obj.get(f, "")
        if (v == val) != (op == "="):
            return False
    return True


# -- patches -------------------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return clone(patch)
    out = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class _PatchError(Exception):
    pass


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise _PatchError("doc is missing path: /%s" % "/".join(parts))
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise _PatchError("doc is missing path: /%s" % "/".join(parts))
        else:
            raise _PatchError("doc is missing path: /%s" % "/".join(parts))
    return cur


def json_patch(doc, ops):
    """RFC 6902."""
    doc = clone(doc)
    if not isinstance(ops, list):
        raise _PatchError("json patch must be a list of operations")

    def add(parts, value):
        nonlocal doc
        if not parts:
            doc = value
            return
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict):
            parent[last] = value
        elif isinstance(parent, list):
            if last == "-":
                parent.append(value)
            else:
                try:
                    i = int(last)
                except ValueError:
                    raise _PatchError("invalid index %r" % last)
                if i < 0 or i > len(parent):
                    raise _PatchError("index out of range")
                parent.insert(i, value)
        else:
            raise _PatchError("doc is missing path")

    def remove(parts):
        if not parts:
            raise _PatchError("cannot remove the root")
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, dict):
            if last not in parent:
                raise _PatchError("Unable to remove nonexistent key: %s: missing value" % last)
            return parent.pop(last)
        if isinstance(parent, list):
            try:
                return parent.pop(int(last))
            except (ValueError, IndexError):
                raise _PatchError("Unable to remove index %s" % last)
        raise _PatchError("doc is missing path")

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _PatchError("invalid operation %r" % (op,))
        kind = op["op"]
        parts = _ptr(op["path"])
        if kind == "add":
            add(parts, clone(op.get("value")))
        elif kind == "remove":
            remove(parts)
        elif kind == "replace":
            _walk(doc, parts)
            if parts:
                remove(parts)
            add(parts, clone(op.get("value")))
        elif kind in ("move", "copy"):
            src = _ptr(op.get("from", ""))
            value = clone(_walk(doc, src))
            if kind == "move":
                remove(src)
            add(parts, value)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise _PatchError("testing value %s failed: test failed" % op["path"])
        else:
            raise _PatchError("Unexpected kind: %s" % kind)
    return doc


# -- object shapes ----------------------------------------------------------------------

_META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
               "ownerReferences", "finalizers", "managedFields"]
_MF_ORDER = ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"]
_NS_COND_ORDER = ["type", "status", "lastTransitionTime", "reason", "message"]


def _ordered(d, keys):
    out = {k: d[k] for k in keys if k in d}
    for k in sorted(d):
        if k not in out:
            out[k] = d[k]
    return out


def _sorted_map(d):
    return {k: d[k] for k in sorted(d)} if isinstance(d, dict) else d


def typed_namespace(obj, with_type=True):
    """A Namespace in the field order of the Go struct (built-in types are
    not sorted like custom resources)."""
    o = {}
    if with_type:
        o["kind"] = "Namespace"
        o["apiVersion"] = "v1"
    md = dict(obj.get("metadata", {}))
    for k in ("labels", "annotations"):
        if k in md:
            md[k] = _sorted_map(md[k])
    if "managedFields" in md:
        md["managedFields"] = [_ordered(e, _MF_ORDER) for e in md["managedFields"]]
    o["metadata"] = _ordered(md, _META_ORDER)
    o["spec"] = obj.get("spec", {})
    st = dict(obj.get("status", {}))
    if "conditions" in st:
        st["conditions"] = [_ordered(c, _NS_COND_ORDER) for c in st["conditions"]]
    o["status"] = _ordered(st, ["phase", "conditions"])
    return o


_EVENT_ORDER = ["kind", "apiVersion", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp",
                "lastTimestamp", "count", "type", "eventTime", "series", "action", "related", "reportingComponent",
                "reportingInstance"]
_OBJREF_ORDER = ["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"]


def typed_event(obj, with_type=True):
    """An Event in the field order of the Go struct."""
    o = dict(obj)
    o["kind"], o["apiVersion"] = "Event", "v1"
    md = dict(o.get("metadata", {}))
    for k in ("labels", "annotations"):
        if k in md:
            md[k] = _sorted_map(md[k])
    if "managedFields" in md:
        md["managedFields"] = [_ordered(e, _MF_ORDER) for e in md["managedFields"]]
    o["metadata"] = _ordered(md, _META_ORDER)
    if isinstance(o.get("involvedObject"), dict):
        o["involvedObject"] = _ordered(o["involvedObject"], _OBJREF_ORDER)
    o.setdefault("involvedObject", {})
    o.setdefault("source", {})
    o.setdefault("firstTimestamp", None)
    o.setdefault("lastTimestamp", None)
    o.setdefault("eventTime", None)
    o.setdefault("reportingComponent", "")
    o.setdefault("reportingInstance", "")
    o = _ordered(o, _EVENT_ORDER)
    if not with_type:
        o.pop("kind")
        o.pop("apiVersion")
    return o


def typed(res, obj, with_type=True):
    return typed_namespace(obj, with_type) if res.plural == "namespaces" else typed_event(obj, with_type)


def _fields_v1(d, top=True):
    out = {}
    if not top:
        out["."] = {}
    for k in sorted(d):
        v = d[k]
        if isinstance(v, dict) and v:
            out["f:" + k] = _fields_v1(v, False)
        else:
            out["f:" + k] = {}
    return out


def _deep_union(a, b):
    out = clone(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _deep_union(out[k], v)
        else:
            out[k] = clone(v)
    return {k: out[k] for k in sorted(out)}


def _managed_fields_for(body, subresource):
    """fieldsV1 of what a write sets (simplified: the body's fields)."""
    if subresource == "status":
        st = body.get("status")
        if not isinstance(st, dict):
            return {}
        f = _fields_v1({"status": st})
        f["f:status"].pop(".", None)
        return f
    d = {}
    md = body.get("metadata") or {}
    mdd = {k: md[k] for k in ("labels", "annotations", "finalizers", "ownerReferences") if k in md}
    if mdd:
        d["metadata"] = mdd
    for k, v in body.items():
        if k not in ("apiVersion", "kind", "metadata", "status"):
            d[k] = v
    return _fields_v1(d) if d else {}


def _set_path_default(obj, path, value):
    parts = path.split(".")
    cur = obj
    for p in parts[:-1]:
        if not isinstance(cur, dict) or p not in cur or not isinstance(cur[p], dict):
            return
        cur = cur[p]
    if parts[-1] not in cur:
        cur[parts[-1]] = clone(value)


def _validate(res, obj):
    """Structural checks from the CRD schemas: required fields, condition
    status enum, the HelmRelease chart/chartRef rule.  [(reason, field, body)]."""
    causes = []
    md = obj.get("metadata") or {}
    name = md.get("name", "")
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    elif res.plural == "namespaces":
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            causes.append(("FieldValueInvalid", "metadata.name",
                           'Invalid value: "%s": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                           "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                           "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')" % name))
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        causes.append(("FieldValueInvalid", "metadata.name",
                       'Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                       "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
                       "'example.com', regex used for validation is "
                       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')" % name))
    for k in ("labels", "annotations"):
        v = md.get(k)
        if v is not None and (not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values())):
            causes.append(("FieldValueTypeInvalid", "metadata." + k, "Invalid value: must be a map of strings"))
    if isinstance(md.get("labels"), dict):
        for lk, lv in sorted(md["labels"].items()):
            if isinstance(lv, str) and (len(lv) > 63 or not LABEL_VALUE.match(lv)):
                causes.append(("FieldValueInvalid", "metadata.labels",
                               'Invalid value: "%s": a valid label must be an empty string or consist of alphanumeric '
                               "characters, '-', '_' or '.', and must start and end with an alphanumeric character" % lv))

    for pattern in sorted(res.required):
        _check_required(obj, "", pattern.split("."), res.required[pattern], causes)
    st = obj.get("status")
    if isinstance(st, dict) and isinstance(st.get("conditions"), list):
        for i, c in enumerate(st["conditions"]):
            if isinstance(c, dict) and "status" in c and c["status"] not in ("True", "False", "Unknown"):
                causes.append(("FieldValueNotSupported", "status.conditions[%d].status" % i,
                               'Unsupported value: "%s": supported values: "True", "False", "Unknown"' % c["status"]))
    cel = []
    if res.plural == "helmreleases" and isinstance(obj.get("spec"), dict):
        spec = obj["spec"]
        if ("chart" in spec) == ("chartRef" in spec):
            cel.append(("FieldValueInvalid", "spec", 'Invalid value: "object": either chart or chartRef must be set'))
    if causes and res.cel:
        causes.append(("FieldValueInvalid", "<nil>",
                       'Invalid value: "null": some validation rules were not checked because the object was invalid; '
                       "correct the existing errors to complete validation"))
    elif not causes:
        causes = cel
    return causes


def _check_required(node, here, parts, required, causes):
    """Walks parts ("status", "history[]") from node; at the end checks
    that every key of required is present."""
    if not parts:
        if not isinstance(node, dict):
            causes.append(("FieldValueTypeInvalid", here, 'Invalid value: "%s": %s in body must be of type object: "%s"'
                           % (_type_name(node), here, _type_name(node))))
            return
        for r in required:
            if r not in node:
                causes.append(("FieldValueRequired", "%s.%s" % (here, r), "Required value"))
        return
    key = parts[0]
    is_list = key.endswith("[]")
    k = key[:-2] if is_list else key
    if not isinstance(node, dict) or k not in node or node[k] is None:
        return
    child = node[k]
    path = "%s.%s" % (here, k) if here else k
    if is_list:
        if isinstance(child, list):
            for i, item in enumerate(child):
                _check_required(item, "%s[%d]" % (path, i), parts[1:], required, causes)
    else:
        _check_required(child, path, parts[1:], required, causes)


def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if v is None:
        return "null"
    return "object"


def _spec_part(obj):
    """What bumps generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same_ignoring_time(a, b):
    """a == b but for resourceVersion and managedFields times."""
    if a.keys() != b.keys() or any(a[k] != b[k] for k in a if k != "metadata"):
        return False
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    for k in set(ma) | set(mb):
        if k == "resourceVersion":
            continue
        if k == "managedFields":
            def strip(m):
                return [{kk: vv for kk, vv in e.items() if kk != "time"} for e in m.get("managedFields") or []]
            if strip(ma) != strip(mb):
                return False
        elif ma.get(k) != mb.get(k):
            return False
    return True


def _manager_from(handler, query):
    fm = query.get("fieldManager")
    if fm:
        return fm
    ua = handler.headers.get("User-Agent") if handler is not None else None
    if not ua:
        return "unknown"
    return ua.split("/")[0].split(" ")[0] or "unknown"


# -- watches ------------------------------------------------------------------------------


class _Watcher:
    def __init__(self, res, version, ns, labels, fields, bookmarks):
        self.res = res
        self.version = version
        self.ns = ns
        self.labels = labels
        self.fields = fields
        self.bookmarks = bookmarks
        self.q = queue.Queue()
        self.conn = None

    def matches(self, obj):
        if obj is None:
            return False
        md = obj.get("metadata", {})
        if self.ns and md.get("namespace") != self.ns:
            return False
        return label_match(md.get("labels"), self.labels) and field_match(obj, self.fields)

    def event_for(self, etype, obj, prev):
        """The event this watcher sees for a change (the watch cache's
        rules), or None."""
        if etype == "ADDED":
            return ("ADDED", obj) if self.matches(obj) else None
        if etype == "DELETED":
            return ("DELETED", obj) if self.matches(prev if prev is not None else obj) else None
        new_m, old_m = self.matches(obj), self.matches(prev)
        if new_m and old_m:
            return ("MODIFIED", obj)
        if new_m:
            return ("ADDED", obj)
        if old_m:
            return ("DELETED", obj)
        return None


# -- the HTTP side ------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    block_on_close = False

    def __init__(self, addr, handler, api):
        self.api = api
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        api = self.api
        sock = request
        if api._ssl_ctx is not None:
            try:
                request.settimeout(10)
                sock = api._ssl_ctx.wrap_socket(request, server_side=True)
                sock.settimeout(None)
            except (ssl.SSLError, OSError):
                try:
                    request.close()
                except OSError:
                    pass
                return
        try:
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            if sock is not request:
                try:
                    sock.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300

    def setup(self):
        super().setup()
        self.server.api._conn_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.server.api._conn_closed(self.connection)

    def send_response(self, code, message=None):
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, fmt, *args):
        pass

    def _go(self):
        try:
            self.server.api._handle(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _go


class _Abort(Exception):
    pass


# -- RBAC ----------------------------------------------------------------------------------------


def request_info(method, path, query):
    """The attributes the apiserver authorizes a request by, as
    k8s.io/apiserver's RequestInfoFactory derives them (the subset landlord
    can reach: /api and /apis prefixes, no /watch/ legacy prefix):
    {"resource_request": bool, "verb", "path", "api_group", "api_version",
    "namespace", "resource", "subresource", "name"}.

    /apis/<group>/<version>, /apis/<group>, /apis, /api, /version and the
    health URLs are non-resource requests (verb: the method, lower case).
    A resource GET without a name is list, or watch with watch=1|true; a
    list or watch with fieldSelector metadata.name=<n> is authorized as a
    request for the name n (so RBAC resourceNames can allow it); DELETE
    without a name is deletecollection."""
    parts = [p for p in path.split("/") if p]
    info = {"resource_request": False, "verb": method.lower(), "path": path, "api_group": "",
            "api_version": "", "namespace": "", "resource": "", "subresource": "", "name": ""}
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return info
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return info
        info["api_group"], rest = rest[0], rest[1:]
    info["resource_request"] = True
    info["api_version"], rest = rest[0], rest[1:]
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, "")
    if rest and rest[0] == "namespaces":
        if len(rest) > 1:
            info["namespace"] = rest[1]
            if len(rest) > 2 and rest[2] not in ("status", "finalize"):
                rest = rest[2:]
    if len(rest) >= 3:
        info["subresource"] = rest[2]
    if len(rest) >= 2:
        info["name"] = rest[1]
    if rest:
        info["resource"] = rest[0]
    if not info["name"] and verb == "get":
        w = str(query.get("watch", "")).lower()
        verb = "watch" if w in ("1", "t", "true") else "list"
        for term in (query.get("fieldSelector") or "").split(","):
            for op in ("==", "="):
                if op in term:
                    k, _, v = term.partition(op)
                    if k.strip() == "metadata.name" and "!" not in k and v.strip():
                        info["name"] = v.strip()
                    break
    if not info["name"] and verb == "delete":
        verb = "deletecollection"
    info["verb"] = verb
    return info


# The built-in ClusterRoles every authenticated user is bound to (their
# bindings name the group system:authenticated): system:discovery and
# system:public-info-viewer, as kube-apiserver 1.14+ bootstraps them.
BUILTIN_NON_RESOURCE = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version",
                        "/version/", "/openapi", "/openapi/*")


def _rule_allows(rule, info):
    """rbac/v1 PolicyRule semantics (k8s.io/kubernetes plugin/pkg/auth/
    authorizer/rbac: VerbMatches, APIGroupMatches, ResourceMatches,
    ResourceNameMatches, NonResourceURLMatches)."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and info["verb"] not in verbs:
        return False
    if not info["resource_request"]:
        for u in rule.get("nonResourceURLs") or []:
            if u == "*" or u == info["path"] or (u.endswith("*") and info["path"].startswith(u[:-1])):
                return True
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and info["api_group"] not in groups:
        return False
    combined = info["resource"] + ("/" + info["subresource"] if info["subresource"] else "")
    ok = False
    for r in rule.get("resources") or []:
        if r == "*" or r == combined or (info["subresource"] and r == "*/" + info["subresource"]):
            ok = True
            break
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or info["name"] in names


def _groups_of(user):
    """The groups the apiserver gives a token's user: service accounts
    system:serviceaccounts and system:serviceaccounts:<ns>; everyone
    authenticated system:authenticated."""
    groups = ["system:authenticated"]
    if user.startswith("system:serviceaccount:") and user.count(":") == 3:
        groups += ["system:serviceaccounts", "system:serviceaccounts:" + user.split(":")[2]]
    return groups


def _subject_matches(subject, user, groups, binding_ns):
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user
    if kind == "Group":
        return subject.get("name") in groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user == "system:serviceaccount:%s:%s" % (ns, subject.get("name"))
    return False


class RBAC:
    """The RBAC authorizer over a fixed set of ClusterRoles, Roles and their
    bindings (objects as kubectl would apply them), plus the built-in
    discovery roles of every authenticated user.  allows() answers one
    request and records which rule allowed it, with which verb."""

    def __init__(self, objects):
        self.cluster_roles, self.roles, self.crbs, self.rbs = {}, {}, [], []
        for o in objects:
            kind, md = o.get("kind"), o.get("metadata") or {}
            if kind == "ClusterRole":
                self.cluster_roles[md["name"]] = o
            elif kind == "Role":
                self.roles[(md["namespace"], md["name"])] = o
            elif kind == "ClusterRoleBinding":
                self.crbs.append(o)
            elif kind == "RoleBinding":
                self.rbs.append(o)
            else:
                raise ValueError("not an RBAC object: %s" % kind)
        self._lock = threading.Lock()
        self.used = collections.Counter()  # (role id, rule index, verb) -> requests allowed
        self.denied = []  # request infos refused, with the user

    def rules(self):
        """Every rule of every role some binding grants: [(role id, index,
        rule)], role id "ClusterRole/<name>" or "Role/<ns>/<name>"."""
        out = []
        for rid, role in self._bound_roles():
            for i, rule in enumerate(role.get("rules") or []):
                out.append((rid, i, rule))
        return out

    def _bound_roles(self):
        seen = {}
        for b in self.crbs:
            ref = b.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole" and ref.get("name") in self.cluster_roles:
                seen["ClusterRole/" + ref["name"]] = self.cluster_roles[ref["name"]]
        for b in self.rbs:
            ref, ns = b.get("roleRef") or {}, b["metadata"]["namespace"]
            if ref.get("kind") == "Role" and (ns, ref.get("name")) in self.roles:
                seen["Role/%s/%s" % (ns, ref["name"])] = self.roles[(ns, ref["name"])]
            elif ref.get("kind") == "ClusterRole" and ref.get("name") in self.cluster_roles:
                seen["ClusterRole/" + ref["name"]] = self.cluster_roles[ref["name"]]
        return sorted(seen.items())

    def _applicable(self, user, groups, namespace):
        """[(role id, role)] that apply to user in namespace ("" = the
        cluster scope): ClusterRoleBindings everywhere, RoleBindings in
        their own namespace only."""
        out = []
        for b in self.crbs:
            ref = b.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole" and ref.get("name") in self.cluster_roles and any(
                    _subject_matches(s, user, groups, "") for s in b.get("subjects") or []):
                out.append(("ClusterRole/" + ref["name"], self.cluster_roles[ref["name"]]))
        if namespace:
            for b in self.rbs:
                ns, ref = b["metadata"]["namespace"], b.get("roleRef") or {}
                if ns != namespace or not any(_subject_matches(s, user, groups, ns) for s in b.get("subjects") or []):
                    continue
                if ref.get("kind") == "Role" and (ns, ref.get("name")) in self.roles:
                    out.append(("Role/%s/%s" % (ns, ref["name"]), self.roles[(ns, ref["name"])]))
                elif ref.get("kind") == "ClusterRole" and ref.get("name") in self.cluster_roles:
                    out.append(("ClusterRole/" + ref["name"], self.cluster_roles[ref["name"]]))
        return out

    def allows(self, user, info):
        groups = _groups_of(user)
        if not info["resource_request"] and info["verb"] == "get" and "system:authenticated" in groups and \
                _rule_allows({"verbs": ["get"], "nonResourceURLs": list(BUILTIN_NON_RESOURCE)}, info):
            with self._lock:
                self.used[("system:discovery", 0, "get")] += 1
            return True
        for rid, role in self._applicable(user, groups, info["namespace"]):
            for i, rule in enumerate(role.get("rules") or []):
                if _rule_allows(rule, info):
                    with self._lock:
                        self.used[(rid, i, info["verb"])] += 1
                    return True
        with self._lock:
            self.denied.append(dict(info, user=user))
        return False


def err_forbidden_info(info, user):
    """The apiserver's 403 for a request RBAC refused, from its request
    info (the resource need not be one this stand-in serves)."""
    if not info["resource_request"]:
        return err_forbidden(None, user, info["verb"], None, path=info["path"])
    res = Resource(info["api_group"], [info["api_version"]], info["resource"], info["resource"], info["resource"])
    return err_forbidden(res, user, info["verb"], info["namespace"] or None, info["name"] or None,
                         info["subresource"] or None)


# -- the server ----------------------------------------------------------------------------------


def _with_versions(res, versions):
    """A copy of res served at versions only (the first is the storage version)."""
    r = copy.copy(res)
    r.versions = list(versions)
    return r


class KubeAPI:
    def __init__(self, tls=True, tokens=None, forbid=None, terraform=False, anonymous=False, history_size=1000,
                 bookmark_interval=1.0, namespace_delete_delay=0.2, continue_ttl=300.0, watch_expired="event",
                 max_watch_seconds=1800, namespaces=("default", "kube-system", "kube-public", "kube-node-lease",
                                                     "flux-system"),
                 not_found_body="text", port=None, version="1.31", rbac=None, helm_versions=None):
        self.tls = bool(tls)
        self.host = "localhost" if self.tls else "127.0.0.1"
        self.port = port
        self.tokens = None if tokens is None else dict(tokens)
        self.forbid = dict(forbid or {})
        self.rbac = RBAC(rbac) if rbac is not None else None
        self.anonymous = anonymous
        self.history_size = history_size
        self.bookmark_interval = bookmark_interval
        self.namespace_delete_delay = namespace_delete_delay
        self.continue_ttl = continue_ttl
        self.watch_expired = watch_expired
        self.max_watch_seconds = max_watch_seconds
        self.not_found_body = not_found_body
        self.kube_version = version
        self.resources = list(RESOURCES) + ([TERRAFORM] if terraform else [])
        if helm_versions is not None:
            # A cluster whose Flux serves only these HelmRelease versions
            # (a current Flux serves v2 alone).
            self.resources = [_with_versions(r, helm_versions) if r.plural == "helmreleases" else r
                              for r in self.resources]
        self.terraform = terraform
        self._by_path = {}
        for r in self.resources:
            for v in r.versions:
                self._by_path[(r.group, v, r.plural)] = r
        self._lock = threading.RLock()
        self._objs = {r.plural: {} for r in self.resources}
        self._rv = 100
        self._history = collections.deque()
        self._floor = self._rv  # events after this rv are all in the history
        self._watchers = set()
        self._snapshots = collections.OrderedDict()
        self._listeners = []
        self._applied = {}  # (plural, key) -> fields apply() set last time
        self._terminating = {}  # namespace -> time after which it may vanish (None: wait for finish)
        self._faults = []
        self.requests = collections.deque(maxlen=200000)
        self._watch_counts = collections.Counter()
        self._conns = set()
        self._conn_lock = threading.Lock()
        self._down = False
        self._hang = threading.Event()
        self._hang.set()
        self._httpd = None
        self._thread = None
        self._reaper = None
        self._stopping = threading.Event()
        self.root = common.make_temp_dir("kubeapi-")
        self.ca_file = self.cert_file = self.key_file = None
        self._ca_key = None
        self._ssl_ctx = None
        if self.tls:
            self.ca_file, self.cert_file, self.key_file = gitserver._make_certs()
            self._ca_key = os.path.join(os.path.dirname(self.ca_file), "ca.key")
        self._client_certs = {}
        self._token_files = 0
        for ns in namespaces:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, manager="kube-apiserver")

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    @property
    def resource_version(self):
        with self._lock:
            return str(self._rv)

    def start(self):
        if self._httpd is not None:
            return self
        if self.tls and self._ssl_ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert_file, self.key_file)
            ctx.load_verify_locations(self.ca_file)
            ctx.verify_mode = ssl.CERT_OPTIONAL
            self._ssl_ctx = ctx
        self._listen(self.port or 0)
        self._stopping.clear()
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_loop, name="kubeapi-reaper", daemon=True)
            self._reaper.start()
        common.track(self, self.stop)
        return self

    def _listen(self, port):
        deadline = time.monotonic() + 10
        while True:
            try:
                httpd = _Server(("127.0.0.1", port), _Handler, self)
                break
            except OSError:
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = common.serve_in_thread(httpd, "kubeapi-%d" % self.port, poll_interval=0.05)

    def _unlisten(self):
        httpd, self._httpd = self._httpd, None
        thread, self._thread = self._thread, None
        common.stop_serving(httpd, thread)

    def stop(self):
        self._stopping.set()
        self._hang.set()
        self._unlisten()
        self._abort_all()
        common.untrack(self)

    def go_down(self, hang=False):
        """An outage: with hang=False the port refuses connections; with
        hang=True connections are accepted but get no answer until
        come_back().  Every open connection (watches too) is cut."""
        self._down = True
        if hang:
            self._hang.clear()
        else:
            self._unlisten()
        self._abort_all()

    def come_back(self):
        if self._httpd is None and not self._stopping.is_set():
            self._listen(self.port)
        self._down = False
        self._hang.set()

    @property
    def down(self):
        return self._down

    def _conn_opened(self, c):
        with self._conn_lock:
            self._conns.add(c)

    def _conn_closed(self, c):
        with self._conn_lock:
            self._conns.discard(c)

    def _abort_all(self):
        with self._lock:
            for w in list(self._watchers):
                w.q.put(("abort",))
        with self._conn_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- credentials ------------------------------------------------------------------------

    def set_tokens(self, tokens):
        self.tokens = None if tokens is None else dict(tokens)

    def add_token(self, token, user):
        if self.tokens is None:
            self.tokens = {}
        self.tokens[token] = user

    def remove_token(self, token):
        if self.tokens:
            self.tokens.pop(token, None)

    def set_forbid(self, forbid):
        self.forbid = dict(forbid or {})

    def write_token_file(self, token, path=None):
        self._token_files += 1
        path = path or os.path.join(self.root, "token.%d" % self._token_files)
        os.replace(common.write_private(path + ".tmp", token), path)
        return path

    def client_cert(self, user, groups=()):
        """A client certificate for user (CN) signed by the test CA:
        (cert_file, key_file)."""
        if not self.tls:
            raise RuntimeError("client certificates need tls=True")
        if user in self._client_certs:
            return self._client_certs[user]
        d = os.path.join(self.root, "client-%d" % len(self._client_certs))
        os.makedirs(d)
        key, csr, pem = os.path.join(d, "key.pem"), os.path.join(d, "csr.pem"), os.path.join(d, "cert.pem")
        ext = os.path.join(d, "ext")
        subj = "".join("/O=%s" % g for g in groups) + "/CN=%s" % user
        common.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", key, "-out", csr, "-subj", subj])
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        common.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self._ca_key,
                    "-CAcreateserial", "-CAserial", os.path.join(d, "serial"), "-out", pem, "-days", "30",
                    "-sha256", "-extfile", ext])
        os.chmod(key, 0o600)
        self._client_certs[user] = (pem, key)
        return pem, key

    def kubeconfig(self, path, token=None, token_file=None, namespace=None, client_cert=None, ca_data=False,
                   context="standin"):
        """Writes a kubeconfig for this server and returns path."""
        cluster = {"server": self.url}
        if self.tls:
            if ca_data:
                with open(self.ca_file, "rb") as f:
                    cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
            else:
                cluster["certificate-authority"] = self.ca_file
        user = {}
        if client_cert:
            cert, key = self.client_cert(client_cert)
            user["client-certificate"] = cert
            user["client-key"] = key
        elif token_file:
            user["tokenFile"] = token_file
        else:
            if token is None and self.tokens:
                token = next(iter(self.tokens))
            if token is not None:
                user["token"] = token
        ctx = {"cluster": context, "user": context + "-user"}
        if namespace:
            ctx["namespace"] = namespace
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context + "-user", "user": user}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
            "preferences": {},
        }
        with open(path, "w") as f:
            if yaml is not None:
                yaml.safe_dump(cfg, f, default_flow_style=False, sort_keys=False)
            else:
                json.dump(cfg, f, indent=2)
        return path

    # -- faults ---------------------------------------------------------------------------------------

    def cut_watches(self, mid_object=False, clean=False):
        with self._lock:
            for w in list(self._watchers):
                w.q.put(("close",) if clean else ("cut", mid_object))

    def send_malformed(self, line="this is not json"):
        with self._lock:
            for w in list(self._watchers):
                w.q.put(("raw", line))

    def fail_next(self, n=1, status=500, retry_after=None, reason=None, message=None, match=None, plain=False):
        with self._lock:
            self._faults.append({"n": n, "status": status, "retry_after": retry_after, "reason": reason,
                                 "message": message, "match": match, "plain": plain})

    def compact(self):
        """Forget the watch history and list snapshots (etcd compaction)."""
        with self._lock:
            self._history.clear()
            self._floor = self._rv
            self._snapshots.clear()

    def _take_fault(self, method, path, verb, plural):
        with self._lock:
            for f in self._faults:
                m = f["match"]
                if m is None:
                    ok = True
                elif callable(m):
                    ok = m(method, path, verb)
                else:
                    ok = m in (verb, plural)
                if ok:
                    f["n"] -= 1
                    if f["n"] <= 0:
                        self._faults.remove(f)
                    return f
        return None

    # -- counters ----------------------------------------------------------------------------------------

    def request_count(self, verb=None, kind=None, path=None, status=None):
        plural = self._res(kind).plural if kind else None
        with self._lock:
            return sum(1 for r in self.requests
                       if (verb is None or r["verb"] == verb) and (plural is None or r["plural"] == plural)
                       and (path is None or r["path"] == path) and (status is None or r["status"] == status))

    def watch_count(self, kind=None):
        with self._lock:
            if kind is None:
                return sum(self._watch_counts.values())
            return self._watch_counts[self._res(kind).plural]

    def open_watches(self, kind=None):
        plural = self._res(kind).plural if kind else None
        with self._lock:
            return sum(1 for w in self._watchers if plural is None or w.res.plural == plural)

    def reset_counts(self):
        with self._lock:
            self.requests.clear()
            self._watch_counts.clear()

    # -- state -------------------------------------------------------------------------------------------------

    def _res(self, kind):
        if isinstance(kind, Resource):
            return kind
        k = str(kind)
        for r in self.resources:
            if k in (r.plural, r.kind, r.singular) or k in r.short_names or k.lower() in (r.plural, r.singular):
                return r
        if k in ("terraforms", "Terraform", "terraform", "tf"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        raise KeyError("unknown kind %r" % kind)

    def _res_for_obj(self, obj):
        api_version = obj.get("apiVersion", "")
        kind = obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        for r in self.resources:
            if r.kind == kind and r.group == group and version in r.versions:
                return r
        raise ApiError(404, "NotFound", 'no matches for kind "%s" in version "%s"' % (kind, api_version), {})

    def _key(self, res, ns, name):
        return "%s/%s" % (ns, name) if res.namespaced else name

    def _nsname(self, res, ns, name):
        if not res.namespaced:
            return None, (name if name is not None else ns)
        return ns, name

    def add_listener(self, fn):
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn):
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _commit(self, res, etype, obj, prev):
        """Stores obj (None for a deletion of prev) with a new
        resourceVersion, records the event, feeds watchers.  Under the lock."""
        self._rv += 1
        rv = str(self._rv)
        if etype == "DELETED":
            obj = clone(prev)
            obj["metadata"]["resourceVersion"] = rv
            self._objs[res.plural].pop(self._obj_key(res, prev), None)
        else:
            obj["metadata"]["resourceVersion"] = rv
            self._objs[res.plural][self._obj_key(res, obj)] = obj
        self._history.append((self._rv, res.plural, etype, obj, prev))
        while len(self._history) > self.history_size:
            old = self._history.popleft()
            self._floor = old[0]
        for w in list(self._watchers):
            if w.res.plural != res.plural:
                continue
            ev = w.event_for(etype, obj, prev)
            if ev is not None:
                w.q.put(("event",) + ev)
        for fn in list(self._listeners):
            try:
                fn(etype, res.plural, clone(obj))
            except Exception:
                pass
        return obj

    def _obj_key(self, res, obj):
        md = obj["metadata"]
        return self._key(res, md.get("namespace", ""), md["name"])

    def _lookup(self, res, ns, name):
        return self._objs[res.plural].get(self._key(res, ns, name))

    def _new_meta(self, res, md, manager, body, now):
        out = {"name": md["name"]}
        if res.namespaced:
            out["namespace"] = md["namespace"]
        out["uid"] = str(uuid.uuid4())
        out["resourceVersion"] = ""
        if res.crd:
            out["generation"] = 1
        out["creationTimestamp"] = now
        for k in ("labels", "annotations"):
            if md.get(k):
                out[k] = dict(md[k])
        if res.plural == "namespaces":
            out.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        for k in ("ownerReferences", "finalizers"):
            if md.get(k):
                out[k] = list(md[k])
        fields = _managed_fields_for(body, None)
        if fields:
            out["managedFields"] = [{"apiVersion": res.api_version(), "fieldsType": "FieldsV1", "fieldsV1": fields,
                                     "manager": manager, "operation": "Update", "time": now}]
        return out

    def _prepare_create(self, res, body, ns, manager, check_ns=True, keep_status=False):
        """Validates a create and returns the object to store (no commit)."""
        if not isinstance(body, dict):
            raise err_bad_request("the object provided is unrecognized")
        if not body.get("kind"):
            raise err_bad_request("Object 'Kind' is missing in '%s'" % dumps(body).decode())
        if body.get("kind") != res.kind:
            raise err_bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                                  % (body.get("kind"), res.kind))
        group, _, version = (body.get("apiVersion") or "").rpartition("/")
        if group != res.group or version not in res.versions:
            raise err_bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                                  % (body.get("apiVersion"), res.api_version()))
        md = dict(body.get("metadata") or {})
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        now = now_rfc3339()
        obj = {"apiVersion": res.api_version(), "kind": res.kind}
        for k, v in body.items():
            if k not in ("apiVersion", "kind", "metadata", "status"):
                obj[k] = clone(v)
        causes = _validate(res, dict(obj, metadata=md))
        if causes:
            raise err_invalid(res, md.get("name", ""), causes)
        obj["metadata"] = self._new_meta(res, md, manager, body, now)
        if res.plural == "namespaces":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif res.crd:
            if keep_status and isinstance(body.get("status"), dict):
                obj["status"] = clone(body["status"])
            else:
                obj["status"] = {"observedGeneration": -1}
        for path, value in res.spec_defaults:
            _set_path_default(obj, path, value)
        if check_ns and res.namespaced:
            nso = self._objs["namespaces"].get(md["namespace"])
            if nso is None:
                raise err_not_found(self._res("namespaces"), md["namespace"])
            if nso["metadata"].get("deletionTimestamp"):
                e = ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create new content in namespace %s "
                             "because it is being terminated" % (res.qualified, md["name"], md["namespace"]),
                             dict(_gr_details(res, md["name"]), causes=[{
                                 "reason": "NamespaceTerminating",
                                 "message": "namespace %s is being terminated" % md["namespace"],
                                 "field": "metadata.namespace"}]))
                raise e
        if self._lookup(res, md.get("namespace"), md["name"]) is not None:
            raise err_already_exists(res, md["name"])
        return obj

    def _prepare_update(self, res, cur, patched, sub, manager, body_for_fields):
        """The object an update/patch would store, under the strategies of
        the real server; None when nothing changes."""
        name = cur["metadata"]["name"]
        if not isinstance(patched, dict):
            raise err_bad_request("the object provided is unrecognized")
        pmd = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
        if pmd.get("name", name) != name:
            raise err_bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (pmd.get("name"), name))
        if res.namespaced and pmd.get("namespace", cur["metadata"]["namespace"]) != cur["metadata"]["namespace"]:
            raise err_bad_request("the namespace of the provided object does not match the namespace sent on the request")
        prv = pmd.get("resourceVersion")
        if prv not in (None, "") and prv != cur["metadata"]["resourceVersion"]:
            raise err_conflict(res, name)
        if sub == "status":
            new = clone(cur)
            if "status" in patched:
                new["status"] = clone(patched["status"])
            else:
                new.pop("status", None)
        else:
            new = {k: clone(v) for k, v in patched.items() if k not in ("status",)}
            new["apiVersion"] = res.api_version()
            new["kind"] = res.kind
            md = dict(cur["metadata"])
            for k in ("labels", "annotations", "ownerReferences", "finalizers"):
                if pmd.get(k):
                    md[k] = clone(pmd[k])
                else:
                    md.pop(k, None)
            if res.plural == "namespaces":
                md.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new["metadata"] = md
            if "status" in cur:
                new["status"] = clone(cur["status"])
            if res.plural == "namespaces":
                new["spec"] = clone(cur.get("spec", {}))
            if cur["metadata"].get("deletionTimestamp"):
                added = [f for f in md.get("finalizers", []) if f not in cur["metadata"].get("finalizers", [])]
                if added:
                    raise err_invalid(res, name, [("FieldValueForbidden", "metadata.finalizers",
                                                   "Forbidden: no new finalizers can be added if the object is being "
                                                   "deleted, found new finalizers []string{%s}"
                                                   % ", ".join('"%s"' % f for f in added))])
            for path, value in res.spec_defaults:
                _set_path_default(new, path, value)
            if res.crd and _spec_part(new) != _spec_part(cur):
                md["generation"] = cur["metadata"].get("generation", 1) + 1
        causes = _validate(res, new)
        if causes:
            raise err_invalid(res, name, causes)
        if _same_ignoring_time(new, cur):
            return None
        fields = _managed_fields_for(body_for_fields, sub)
        if fields:
            mfs = [dict(e) for e in cur["metadata"].get("managedFields", [])]
            now = now_rfc3339()
            for e in mfs:
                if e.get("manager") == manager and e.get("operation") == "Update" and e.get("subresource") == sub:
                    e["fieldsV1"] = _deep_union(e.get("fieldsV1", {}), fields)
                    e["time"] = now
                    break
            else:
                e = {"apiVersion": res.api_version(), "fieldsType": "FieldsV1", "fieldsV1": fields,
                     "manager": manager, "operation": "Update", "time": now}
                if sub:
                    e["subresource"] = sub
                mfs.append(e)
            new["metadata"]["managedFields"] = mfs
        return new

    def _store_update(self, res, cur, new):
        """Commits an update; an object being deleted whose finalizers are
        all gone is deleted instead.  Returns the stored (or last) object."""
        md = new["metadata"]
        if md.get("deletionTimestamp") and not md.get("finalizers") and res.plural != "namespaces":
            return self._commit(res, "DELETED", None, new)
        return self._commit(res, "MODIFIED", new, cur)

    def _delete_obj(self, res, cur, preconditions=None):
        """DELETE semantics.  Returns (object or None, status dict or None)."""
        md = cur["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != md.get("uid"):
                raise ApiError(409, "Conflict",
                               'Operation cannot be fulfilled on %s "%s": Precondition failed: UID in precondition: %s, '
                               "UID in object meta: %s" % (res.qualified, md["name"], preconditions["uid"], md.get("uid")),
                               _gr_details(res, md["name"]))
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != md.get("resourceVersion"):
                raise ApiError(409, "Conflict",
                               'Operation cannot be fulfilled on %s "%s": Precondition failed: ResourceVersion in '
                               "precondition: %s, ResourceVersion in object meta: %s"
                               % (res.qualified, md["name"], preconditions["resourceVersion"], md.get("resourceVersion")),
                               _gr_details(res, md["name"]))
        if res.plural == "namespaces":
            name = md["name"]
            if md.get("deletionTimestamp"):
                return cur, None
            new = clone(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating", "conditions": self._ns_conditions(name)}
            stored = self._commit(res, "MODIFIED", new, cur)
            self._terminating[name] = (None if self.namespace_delete_delay is None
                                       else time.monotonic() + self.namespace_delete_delay)
            for r in self.resources:
                if r.namespaced:
                    for o in [o for o in self._objs[r.plural].values() if o["metadata"].get("namespace") == name]:
                        self._delete_obj(r, o)
            return stored, None
        if md.get("finalizers"):
            if md.get("deletionTimestamp"):
                return cur, None
            new = clone(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if new["metadata"].get("generation"):
                new["metadata"]["generation"] += 1
            return self._commit(res, "MODIFIED", new, cur), None
        self._commit(res, "DELETED", None, cur)
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
              "details": _ordered_details(dict(_gr_details(res, md["name"]), uid=md.get("uid")))}
        return None, st

    def _ns_conditions(self, name):
        remaining = collections.Counter()
        finalizers = collections.Counter()
        for r in self.resources:
            if not r.namespaced:
                continue
            for o in self._objs[r.plural].values():
                if o["metadata"].get("namespace") == name:
                    remaining[r.qualified] += 1
                    for f in o["metadata"].get("finalizers", []):
                        finalizers[f] += 1
        now = now_rfc3339()
        conds = [
            {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "lastTransitionTime": now,
             "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"},
            {"type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False", "lastTransitionTime": now,
             "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed"},
            {"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": now,
             "reason": "ContentDeleted", "message": "All content successfully deleted, may be waiting on finalization"},
        ]
        if remaining:
            conds.append({"type": "NamespaceContentRemaining", "status": "True", "lastTransitionTime": now,
                          "reason": "SomeResourcesRemain", "message": "Some resources are remaining: " + ", ".join(
                              "%s has %d resource instances" % (k, v) for k, v in sorted(remaining.items()))})
        else:
            conds.append({"type": "NamespaceContentRemaining", "status": "False", "lastTransitionTime": now,
                          "reason": "ContentRemoved", "message": "All content successfully removed"})
        if finalizers:
            conds.append({"type": "NamespaceFinalizersRemaining", "status": "True", "lastTransitionTime": now,
                          "reason": "SomeFinalizersRemain",
                          "message": "Some content in the namespace has finalizers remaining: " + ", ".join(
                              "%s in %d resource instances" % (k, v) for k, v in sorted(finalizers.items()))})
        else:
            conds.append({"type": "NamespaceFinalizersRemaining", "status": "False", "lastTransitionTime": now,
                          "reason": "ContentHasNoFinalizers", "message": "All content-preserving finalizers finished"})
        return conds

    def _reap_loop(self):
        while not self._stopping.wait(0.02):
            with self._lock:
                for name, due in list(self._terminating.items()):
                    ns = self._objs["namespaces"].get(name)
                    if ns is None:
                        self._terminating.pop(name, None)
                        continue
                    conds = self._ns_conditions(name)
                    empty = conds[3]["status"] == "False"
                    if [(c["type"], c["status"], c["message"]) for c in conds] != [
                            (c["type"], c["status"], c["message"]) for c in ns["status"].get("conditions", [])]:
                        new = clone(ns)
                        new["status"]["conditions"] = conds
                        ns = self._commit(self._res("namespaces"), "MODIFIED", new, ns)
                    if empty and due is not None and time.monotonic() >= due:
                        self._terminating.pop(name, None)
                        self._commit(self._res("namespaces"), "DELETED", None, ns)

    def finish_namespace(self, name):
        """A Terminating Namespace disappears now, with anything left in it."""
        with self._lock:
            res = self._res("namespaces")
            ns = self._objs["namespaces"].get(name)
            if ns is None:
                return
            for r in self.resources:
                if r.namespaced:
                    for o in [o for o in self._objs[r.plural].values() if o["metadata"].get("namespace") == name]:
                        self._commit(r, "DELETED", None, o)
            self._terminating.pop(name, None)
            self._commit(res, "DELETED", None, self._objs["namespaces"][name])

    # direct access -------------------------------------------------------------------------------------------

    def get(self, kind, ns, name=None):
        res = self._res(kind)
        ns, name = self._nsname(res, ns, name)
        with self._lock:
            o = self._lookup(res, ns, name)
            return clone(o) if o is not None else None

    def objects(self, kind, ns=None, copy=True):
        """The objects of a kind (in one namespace), in key order.  copy=False
        returns the stored objects themselves: faster, but read-only."""
        res = self._res(kind)
        with self._lock:
            d = self._objs[res.plural]
            out = [d[k] for k in sorted(d)
                   if ns is None or not res.namespaced or d[k]["metadata"].get("namespace") == ns]
        return [clone(o) for o in out] if copy else out

    def put(self, obj, manager="test"):
        """Creates or replaces, without validation."""
        res = self._res_for_obj(obj)
        md = obj.get("metadata") or {}
        ns = md.get("namespace", "default") if res.namespaced else None
        with self._lock:
            cur = self._lookup(res, ns, md["name"])
            if cur is None:
                body = clone(obj)
                body.setdefault("metadata", {})
                if res.namespaced:
                    body["metadata"]["namespace"] = ns
                new = self._prepare_create_unchecked(res, body, manager)
                return clone(self._commit(res, "ADDED", new, None))
            new = clone(cur)
            for k in list(new):
                if k not in ("apiVersion", "kind", "metadata", "status"):
                    del new[k]
            for k, v in obj.items():
                if k not in ("apiVersion", "kind", "metadata", "status"):
                    new[k] = clone(v)
            if "status" in obj:
                new["status"] = clone(obj["status"])
            for k in ("labels", "annotations", "finalizers", "ownerReferences"):
                if md.get(k):
                    new["metadata"][k] = clone(md[k])
                else:
                    new["metadata"].pop(k, None)
            if res.plural == "namespaces":
                new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
                new["spec"] = cur.get("spec", {})
            if res.crd and _spec_part(new) != _spec_part(cur):
                new["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
            if new == cur:
                return clone(cur)
            return clone(self._store_update(res, cur, new))

    def _prepare_create_unchecked(self, res, body, manager):
        md = body["metadata"]
        now = now_rfc3339()
        obj = {"apiVersion": res.api_version(), "kind": res.kind}
        for k, v in body.items():
            if k not in ("apiVersion", "kind", "metadata"):
                obj[k] = clone(v)
        obj["metadata"] = self._new_meta(res, md, manager, body, now)
        if res.plural == "namespaces":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif res.crd and "status" not in obj:
            obj["status"] = {"observedGeneration": -1}
        for path, value in res.spec_defaults:
            _set_path_default(obj, path, value)
        return obj

    def validate(self, obj):
        """Raises the ApiError (422 Invalid, 404 for a kind not served) a
        create of obj would get from the schema checks."""
        res = self._res_for_obj(obj)
        causes = _validate(res, obj)
        if causes:
            raise err_invalid(res, (obj.get("metadata") or {}).get("name", ""), causes)

    def create(self, obj, manager="test", dry_run=False):
        res = self._res_for_obj(obj)
        ns = (obj.get("metadata") or {}).get("namespace") if res.namespaced else None
        with self._lock:
            new = self._prepare_create(res, clone(obj), ns, manager)
            if dry_run:
                return new
            return clone(self._commit(res, "ADDED", new, None))

    def apply(self, obj, manager="kustomize-controller"):
        """Create, or update the object the way a server-side applier does:
        labels, annotations and top-level spec fields that obj sets are
        taken from obj; those this manager applied before and obj no longer
        has are removed; anything set by others (and status) stays.
        Returns (obj, "created" | "configured" | "unchanged")."""
        res = self._res_for_obj(obj)
        md = obj.get("metadata") or {}
        ns = (md.get("namespace") or "default") if res.namespaced else None
        with self._lock:
            key = (res.plural, self._key(res, ns, md.get("name")))
            mine = {"labels": set((md.get("labels") or {}).keys()),
                    "annotations": set((md.get("annotations") or {}).keys()),
                    "spec": set((obj.get("spec") or {}).keys()) if isinstance(obj.get("spec"), dict) else set()}
            cur = self._lookup(res, ns, md.get("name"))
            if cur is None:
                new = self._prepare_create(res, clone(obj), ns, manager)
                self._applied[key] = mine
                return clone(self._commit(res, "ADDED", new, None)), "created"
            before = self._applied.get(key, {"labels": set(), "annotations": set(), "spec": set()})
            patched = clone(obj)
            pmd = patched["metadata"] = dict(md)
            for field in ("labels", "annotations"):
                merged = {k: v for k, v in (cur["metadata"].get(field) or {}).items()
                          if k not in before[field] or k in mine[field]}
                merged.update(md.get(field) or {})
                if merged:
                    pmd[field] = merged
                else:
                    pmd.pop(field, None)
            if isinstance(cur.get("spec"), dict) and isinstance(patched.get("spec"), dict):
                spec = {k: v for k, v in cur["spec"].items() if k not in before["spec"] and k not in mine["spec"]}
                spec.update(patched["spec"])
                patched["spec"] = spec
            for k in ("finalizers", "ownerReferences"):
                if cur["metadata"].get(k) and k not in md:
                    pmd[k] = list(cur["metadata"][k])
            new = self._prepare_update(res, cur, patched, None, manager, obj)
            self._applied[key] = mine
            if new is None:
                return clone(cur), "unchanged"
            return clone(self._store_update(res, cur, new)), "configured"

    def patch(self, kind, ns, name, patch, manager="test", subresource=None):
        res = self._res(kind)
        ns, name = self._nsname(res, ns, name)
        with self._lock:
            cur = self._lookup(res, ns, name)
            if cur is None:
                raise err_not_found(res, name)
            patched = merge_patch(cur, patch)
            new = self._prepare_update(res, cur, patched, subresource, manager, patch)
            if new is None:
                return clone(cur)
            return clone(self._store_update(res, cur, new))

    def patch_status(self, kind, ns, name, status_patch, manager="test"):
        return self.patch(kind, ns, name, {"status": status_patch}, manager=manager, subresource="status")

    def set_status(self, kind, ns, name, status, manager="test"):
        res = self._res(kind)
        ns, name = self._nsname(res, ns, name)
        with self._lock:
            cur = self._lookup(res, ns, name)
            if cur is None:
                raise err_not_found(res, name)
            patched = clone(cur)
            patched["status"] = clone(status)
            new = self._prepare_update(res, cur, patched, "status", manager, {"status": status})
            if new is None:
                return clone(cur)
            return clone(self._store_update(res, cur, new))

    def delete(self, kind, ns, name=None):
        res = self._res(kind)
        ns, name = self._nsname(res, ns, name)
        with self._lock:
            cur = self._lookup(res, ns, name)
            if cur is None:
                return None
            obj, _ = self._delete_obj(res, cur)
            return clone(obj) if obj is not None else None

    def remove_finalizer(self, kind, ns, name, finalizer):
        res = self._res(kind)
        ns, name = self._nsname(res, ns, name)
        with self._lock:
            cur = self._lookup(res, ns, name)
            if cur is None:
                return None
            fins = [f for f in cur["metadata"].get("finalizers", []) if f != finalizer]
            return self.patch(res, ns, name, {"metadata": {"finalizers": fins or None}}, manager="test")

    # -- HTTP handling ------------------------------------------------------------------------------------------------

    def _handle(self, h):
        if not self._hang.is_set():
            self._hang.wait()
            h.close_connection = True
            return
        if self._down:
            h.close_connection = True
            return
        url = urllib.parse.urlsplit(h.path)
        path = url.path
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        method = h.command
        entry = {"method": method, "path": path, "query": url.query, "verb": None, "plural": None,
                 "namespace": None, "name": None, "subresource": None, "status": None, "user": None}
        try:
            body = self._read_body(h)
            route = self._route(method, path, query)
            entry.update({k: route.get(k) for k in ("verb", "namespace", "name", "subresource")})
            entry["plural"] = route["res"].plural if route.get("res") else None
            user, token = self._authenticate(h, route)
            entry["user"] = user
            fault = self._take_fault(method, path, route.get("verb"), entry["plural"])
            if fault is not None:
                e = status_error(fault["status"], fault["reason"], fault["message"], fault["retry_after"])
                if fault["plain"]:
                    e.plain = (e.message or "") + "\n"
                raise e
            self._authorize(user, token, route, path, method, query)
            if route["kind"] == "notfound":
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {},
                               plain="404 page not found\n" if self.not_found_body == "text" else None)
            code, out, sort, extra = self._dispatch(h, route, query, body)
            if code is None:  # a watch: already streamed
                entry["status"] = 200
                return
            entry["status"] = code
            self._send(h, code, out, sort=sort, headers=extra)
        except ApiError as e:
            entry["status"] = e.code
            if e.plain is not None:
                self._send_plain(h, e.code, e.plain, e.headers)
            else:
                self._send(h, e.code, e.status, headers=e.headers)
        except _Abort:
            entry["status"] = 0
            h.close_connection = True
        finally:
            with self._lock:
                self.requests.append(entry)

    def _read_body(self, h):
        te = (h.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            data = b""
            while True:
                line = h.rfile.readline()
                if not line:
                    raise _Abort()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        t = h.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return data
                data += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _authenticate(self, h, route):
        if self.tokens is None:
            return "admin", None
        auth = h.headers.get("Authorization")
        if auth:
            parts = auth.split(" ", 1)
            if len(parts) == 2 and parts[0].lower() == "bearer":
                token = parts[1].strip()
                user = self.tokens.get(token)
                if user is not None:
                    return user, token
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if self._ssl_ctx is not None:
            try:
                cert = h.connection.getpeercert()
            except (AttributeError, ValueError):
                cert = None
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return v, None
        if self.anonymous:
            return "system:anonymous", None
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _authorize(self, user, token, route, path, method="GET", query=None):
        if user == "system:anonymous":
            if path.rstrip("/") in ("/version", "/healthz", "/readyz", "/livez"):
                return
            if route.get("res") is not None:
                raise err_forbidden(route["res"], user, route["verb"], route.get("namespace"), route.get("name"),
                                    route.get("subresource"))
            raise err_forbidden(None, user, "get", None, path=path)
        if self.rbac is not None:
            info = request_info(method, path, query or {})
            if not self.rbac.allows(user, info):
                raise err_forbidden_info(info, user)
        res = route.get("res")
        if res is None:
            return
        rules = list(self.forbid.get(token, []) if token else []) + list(self.forbid.get(user, []))
        verb, sub = route["verb"], route.get("subresource")
        for rule in rules:
            rv, _, rr = rule.partition(" ") if " " in rule else ("*", "", rule)
            if rv not in ("*", verb):
                continue
            rres, _, rsub = rr.partition("/")
            if rr == "*" or (rres == res.plural and (not rsub or rsub == sub)):
                raise err_forbidden(res, user, verb, route.get("namespace"), route.get("name"), sub)

    def _route(self, method, path, query):
        """{kind: discovery|resource|notfound|health, ...}."""
        parts = [p for p in path.split("/") if p]
        r = {"kind": "notfound", "verb": "get"}
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            r["kind"] = "method"
            return r
        if not parts:
            r.update(kind="discovery", what="root")
            return r
        if parts[0] in ("version", "healthz", "readyz", "livez") and len(parts) == 1:
            r.update(kind="discovery", what=parts[0])
            return r
        if parts[0] == "api":
            if len(parts) == 1:
                r.update(kind="discovery", what="api")
                return r
            if parts[1] != "v1":
                return r
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                r.update(kind="discovery", what="apis")
                return r
            group = parts[1]
            if len(parts) == 2:
                if any(x.group == group for x in self.resources):
                    r.update(kind="discovery", what="group", group=group)
                return r
            version, rest = parts[2], parts[3:]
        else:
            return r
        if not rest:
            if any(x.group == group and version in x.versions for x in self.resources):
                r.update(kind="discovery", what="groupversion", group=group, version=version)
            return r
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        res = self._by_path.get((group, version, plural))
        if res is None or (ns is not None and not res.namespaced) or len(rest) > 3:
            return r
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub != "status" and not (res.plural == "namespaces" and sub == "finalize"):
            return r
        watch = query.get("watch", "") in ("1", "true", "True")
        if method == "GET":
            verb = "get" if name else ("watch" if watch else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        else:
            verb = "delete" if name else "deletecollection"
        r.update(kind="resource", res=res, version=version, namespace=ns, name=name, subresource=sub, verb=verb)
        return r

    def _dispatch(self, h, route, query, body):
        kind = route["kind"]
        if kind == "method":
            raise err_method_not_allowed()
        if kind == "discovery":
            if h.command != "GET":
                raise err_method_not_allowed()
            return self._discovery(route)
        res, version, ns, name, sub, verb = (route["res"], route["version"], route["namespace"], route["name"],
                                             route["subresource"], route["verb"])
        if verb == "watch":
            self._watch(h, res, version, ns, query)
            return None, None, False, None
        if verb == "list":
            return 200, self._list(res, version, ns, query), res.crd, None
        if verb == "get":
            with self._lock:
                o = self._lookup(res, ns, name)
                if o is None:
                    raise err_not_found(res, name)
                return 200, self._out(res, version, o), res.crd, None
        dry = query.get("dryRun") == "All"
        manager = _manager_from(h, query)
        if verb == "create":
            if name:
                raise err_method_not_allowed()
            obj = self._parse_body(h, body, res)
            with self._lock:
                new = self._prepare_create(res, obj, ns, manager)
                if not dry:
                    new = self._commit(res, "ADDED", new, None)
                return 201, self._out(res, version, new), res.crd, None
        if verb in ("patch", "update"):
            with self._lock:
                cur = self._lookup(res, ns, name)
                if cur is None:
                    raise err_not_found(res, name)
                cur_v = self._out(res, version, cur)
                if verb == "patch":
                    ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                    try:
                        patch = json.loads(body.decode("utf-8") or "null")
                    except (ValueError, UnicodeDecodeError) as e:
                        if ctype not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
                            raise err_unsupported_media(res)
                        raise err_bad_request("error decoding patch: %s" % e)
                    if ctype == MERGE_PATCH or (ctype == STRATEGIC_PATCH and not res.crd):
                        if not isinstance(patch, dict):
                            raise err_bad_request("error decoding patch: a merge patch must be a JSON object")
                        patched = merge_patch(cur_v, patch)
                        fields_body = patch
                    elif ctype == JSON_PATCH:
                        try:
                            patched = json_patch(cur_v, patch)
                        except _PatchError as e:
                            raise ApiError(422, "Invalid", str(e))
                        fields_body = patched
                    else:
                        raise err_unsupported_media(res)
                else:
                    patched = self._parse_body(h, body, res)
                    fields_body = patched
                    prv = (patched.get("metadata") or {}).get("resourceVersion") if isinstance(patched, dict) else None
                    if res.crd and not prv:
                        raise err_invalid(res, name, [("FieldValueInvalid", "metadata.resourceVersion",
                                                       "Invalid value: 0x0: must be specified for an update")])
                new = self._prepare_update(res, cur, patched, sub, manager, fields_body)
                if new is None or dry:
                    return 200, self._out(res, version, new or cur), res.crd, None
                stored = self._store_update(res, cur, new)
                return 200, self._out(res, version, stored), res.crd, None
        if verb == "delete":
            pre = None
            if body:
                try:
                    opts = json.loads(body.decode("utf-8"))
                    pre = opts.get("preconditions") if isinstance(opts, dict) else None
                except ValueError:
                    raise err_bad_request("the body of the request could not be decoded")
            with self._lock:
                cur = self._lookup(res, ns, name)
                if cur is None:
                    raise err_not_found(res, name)
                if dry:
                    return 200, self._out(res, version, cur), res.crd, None
                obj, st = self._delete_obj(res, cur, pre)
                if st is not None:
                    return 200, st, False, None
                return 200, self._out(res, version, obj), res.crd, None
        if verb == "deletecollection":
            lst = self._list(res, version, ns, query)
            with self._lock:
                for item in lst["items"]:
                    md = item["metadata"]
                    cur = self._lookup(res, md.get("namespace"), md["name"])
                    if cur is not None:
                        self._delete_obj(res, cur)
            return 200, lst, res.crd, None
        raise err_method_not_allowed()

    def _parse_body(self, h, body, res):
        ctype = (h.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        try:
            if ctype in ("application/json", ""):
                return json.loads(body.decode("utf-8"))
            if ctype in ("application/yaml", "application/x-yaml", "text/yaml") and yaml is not None:
                return yaml.safe_load(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, Exception) as e:
            raise err_bad_request("the object provided is unrecognized (%s)" % str(e).splitlines()[0])
        types = ["application/json", "application/yaml"] + ([] if res.crd else ["application/vnd.kubernetes.protobuf"])
        raise ApiError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media types include: "
                       + ", ".join(types))

    def _out(self, res, version, obj, with_type=True):
        """obj as served at version (a copy)."""
        if not res.crd:
            return typed(res, obj, with_type=with_type)
        o = clone(obj)
        o["apiVersion"] = res.api_version(version)
        return o

    # lists ---------------------------------------------------------------------------------------------------

    def _list(self, res, version, ns, query):
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), res)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise err_bad_request("limit: Invalid value: %r" % query.get("limit"))
        cont = query.get("continue") or ""
        prefix = "%s/" % ns if ns else ""
        with self._lock:
            start = ""
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)).decode("utf-8"))
                    if tok.get("v") != "meta.k8s.io/v1" or not isinstance(tok.get("rv"), int):
                        raise ValueError("bad version")
                    tok_rv = tok["rv"]
                    start = prefix + tok.get("start", "")
                except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
                    raise err_bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                          "(version meta.k8s.io/v1)")
                if tok_rv == -1:
                    items, list_rv = self._sorted_items(res), self._rv
                else:
                    snap = self._snapshots.get((res.plural, tok_rv))
                    if snap is None or time.monotonic() - snap[0] > self.continue_ttl:
                        newtok = self._token(-1, start[len(prefix):])
                        raise err_expired(
                            "The provided continue parameter is too old to display a consistent list result. You can "
                            "start a new list without the continue parameter, or use the continue token in this "
                            "response to retrieve the remainder of the results. Continuing with the provided token "
                            "results in an inconsistent list - objects that were created, modified, or deleted "
                            "between the time the first chunk was returned and now may show up in the list.",
                            list_continue=newtok)
                    items, list_rv = snap[1], tok_rv
            else:
                items, list_rv = self._sorted_items(res), self._rv
            out, more, remaining, last = [], False, 0, None
            for key, o in items:
                if ns and o["metadata"].get("namespace") != ns:
                    continue
                if start and key < start:
                    continue
                if not label_match(o["metadata"].get("labels"), labels) or not field_match(o, fields):
                    continue
                if limit and len(out) >= limit:
                    more = True
                    remaining += 1
                    continue
                out.append(o)
                last = key
            token = ""
            if more:
                if (res.plural, list_rv) not in self._snapshots:
                    self._snapshots[(res.plural, list_rv)] = (time.monotonic(), items)
                    while len(self._snapshots) > 64:
                        self._snapshots.popitem(last=False)
                token = self._token(list_rv, last[len(prefix):] + "\x00")
            if not res.crd:
                meta = {"resourceVersion": str(list_rv)}
                if token:
                    meta["continue"] = token
                    if not labels and not fields:
                        meta["remainingItemCount"] = remaining
                return {"kind": res.kind + "List", "apiVersion": "v1", "metadata": meta,
                        "items": [self._out(res, version, o, with_type=False) for o in out]}
            meta = {"continue": token, "resourceVersion": str(list_rv)}
            if token and not labels and not fields:
                meta["remainingItemCount"] = remaining
            return {"apiVersion": res.api_version(version), "items": [self._out(res, version, o) for o in out],
                    "kind": res.kind + "List", "metadata": meta}

    def _sorted_items(self, res):
        d = self._objs[res.plural]
        return [(k, d[k]) for k in sorted(d)]

    @staticmethod
    def _token(rv, start):
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode().rstrip("=")

    # watches -------------------------------------------------------------------------------------------------

    def _watch(self, h, res, version, ns, query):
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), res)
        rv_param = query.get("resourceVersion", "")
        try:
            timeout = float(query.get("timeoutSeconds")) if query.get("timeoutSeconds") else self.max_watch_seconds
        except ValueError:
            raise err_bad_request("timeoutSeconds: Invalid value: %r" % query.get("timeoutSeconds"))
        bookmarks = query.get("allowWatchBookmarks", "") in ("1", "true", "True")
        w = _Watcher(res, version, ns, labels, fields, bookmarks)
        with self._lock:
            if rv_param not in ("", "0"):
                try:
                    rv = int(rv_param)
                    if rv < 0:
                        raise ValueError
                except ValueError:
                    raise err_bad_request('resourceVersion: Invalid value: "%s": strconv.ParseUint: parsing "%s": '
                                          "invalid syntax" % (rv_param, rv_param))
                if rv < self._floor:
                    msg = "too old resource version: %d (%d)" % (rv, self._floor)
                    if self.watch_expired == "http":
                        raise err_expired(msg)
                    w.q.put(("event", "ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                 "status": "Failure", "message": msg, "reason": "Expired",
                                                 "code": 410}))
                    w.q.put(("close",))
                else:
                    for (erv, plural, etype, obj, prev) in self._history:
                        if erv > rv and plural == res.plural:
                            ev = w.event_for(etype, obj, prev)
                            if ev is not None:
                                w.q.put(("event",) + ev)
                    self._watchers.add(w)
            else:
                for _, o in self._sorted_items(res):
                    if w.matches(o):
                        w.q.put(("event", "ADDED", o))
                self._watchers.add(w)
            self._watch_counts[res.plural] += 1
        try:
            self._stream(h, w, res, version, timeout)
        finally:
            with self._lock:
                self._watchers.discard(w)

    def _stream(self, h, w, res, version, timeout):
        h.send_response(200)
        self._std_headers(h)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        conn = h.connection

        def chunk(data):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        def abort():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            h.close_connection = True
            raise _Abort()

        deadline = time.monotonic() + timeout
        next_bm = time.monotonic() + self.bookmark_interval if w.bookmarks and self.bookmark_interval else None
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = deadline - now
            if next_bm is not None:
                wait = min(wait, max(0.0, next_bm - now))
            try:
                item = w.q.get(timeout=wait)
            except queue.Empty:
                if next_bm is not None and time.monotonic() >= next_bm:
                    with self._lock:
                        rv = str(self._rv)
                    chunk(self._event_line("BOOKMARK", self._bookmark(res, version, rv), res))
                    next_bm = time.monotonic() + self.bookmark_interval
                continue
            if item[0] == "event":
                _, etype, obj = item
                if etype == "ERROR":
                    chunk(b'{"type":"ERROR","object":' + dumps(obj) + b"}\n")
                else:
                    chunk(self._event_line(etype, self._out(res, version, obj), res))
            elif item[0] == "raw":
                chunk(item[1].encode("utf-8") + b"\n")
            elif item[0] == "cut":
                if item[1]:
                    with self._lock:
                        rv = str(self._rv)
                    line = self._event_line("BOOKMARK", self._bookmark(res, version, rv), res)
                    chunk(line[: len(line) // 2])
                abort()
            elif item[0] == "abort":
                abort()
            elif item[0] == "close":
                break
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def _bookmark(self, res, version, rv):
        if res.plural == "namespaces":
            return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"resourceVersion": rv, "creationTimestamp": None},
                    "spec": {}, "status": {}}
        if res.plural == "events":
            return {"kind": "Event", "apiVersion": "v1", "metadata": {"resourceVersion": rv, "creationTimestamp": None},
                    "involvedObject": {}, "source": {}, "firstTimestamp": None, "lastTimestamp": None,
                    "eventTime": None, "reportingComponent": "", "reportingInstance": ""}
        return {"apiVersion": res.api_version(version), "kind": res.kind, "metadata": {"resourceVersion": rv}}

    def _event_line(self, etype, obj, res):
        if not res.crd and "kind" not in obj:
            obj = typed(res, obj)
        return b'{"type":"' + etype.encode() + b'","object":' + dumps(obj, sort=res.crd) + b"}\n"

    # discovery -------------------------------------------------------------------------------------------------------

    def _discovery(self, route):
        what = route["what"]
        if what in ("healthz", "readyz", "livez"):
            return 200, b"ok", False, {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
        if what == "version":
            minor = self.kube_version.split(".")[1]
            return 200, {"major": self.kube_version.split(".")[0], "minor": minor,
                         "gitVersion": "v%s.4" % self.kube_version, "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
                         "gitTreeState": "clean", "buildDate": "2024-12-10T11:37:04Z", "goVersion": "go1.22.9",
                         "compiler": "gc", "platform": "linux/amd64"}, False, None
        if what == "root":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for g in self._groups():
                paths.append("/apis/" + g)
                for v in self._group_versions(g):
                    paths.append("/apis/%s/%s" % (g, v))
            return 200, {"paths": sorted(paths)}, False, None
        if what == "api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.port}]}, False, None
        if what == "apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [self._group_obj(g, typed=False) for g in self._groups()]}, False, None
        if what == "group":
            return 200, self._group_obj(route["group"], typed=True), False, None
        group, version = route["group"], route["version"]
        gv = "%s/%s" % (group, version) if group else version
        resources = []
        for r in self.resources:
            if r.group != group or version not in r.versions:
                continue
            e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": list(VERBS)}
            if r.short_names:
                e["shortNames"] = r.short_names
            if r.categories:
                e["categories"] = r.categories
            e["storageVersionHash"] = base64.b64encode(("%s/%s" % (r.group, r.plural)).encode()[:8]).decode()
            resources.append(e)
            if r.plural != "events":
                resources.append({"name": r.plural + "/status", "singularName": "", "namespaced": r.namespaced,
                                  "kind": r.kind, "verbs": ["get", "patch", "update"]})
            if r.plural == "namespaces":
                resources.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False,
                                  "kind": "Namespace", "verbs": ["update"]})
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}, False, None

    def _groups(self):
        out = []
        for r in self.resources:
            if r.group and r.group not in out:
                out.append(r.group)
        return out

    def _group_versions(self, g):
        out = []
        for r in self.resources:
            if r.group == g:
                for v in r.versions:
                    if v not in out:
                        out.append(v)
        return out

    def _group_obj(self, g, typed):
        vs = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in self._group_versions(g)]
        o = {}
        if typed:
            o["kind"] = "APIGroup"
            o["apiVersion"] = "v1"
        o["name"] = g
        o["versions"] = vs
        o["preferredVersion"] = vs[0]
        return o

    # responses -------------------------------------------------------------------------------------------------------

    def _std_headers(self, h):
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("X-Kubernetes-Pf-Flowschema-Uid", _PF_FLOWSCHEMA)
        h.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", _PF_PRIORITY)

    def _send(self, h, code, obj, sort=False, headers=None):
        headers = dict(headers or {})
        ctype = headers.pop("Content-Type", "application/json")
        if isinstance(obj, (bytes, bytearray)):
            data = bytes(obj)
        else:
            data = dumps(obj, sort=sort) + b"\n"
        h.send_response(code)
        self._std_headers(h)
        h.send_header("Content-Type", ctype)
        for k, v in headers.items():
            h.send_header(k, v)
        if "gzip" in (h.headers.get("Accept-Encoding") or "") and len(data) >= 128 * 1024:
            data = gzip.compress(data, 1)
            h.send_header("Content-Encoding", "gzip")
        if h.command == "HEAD":
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            return
        if len(data) > 2048:
            # Go's net/http: a handler that writes more than its 2 KiB buffer
            # gets a chunked response.
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for i in range(0, len(data), 32768):
                part = data[i:i + 32768]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            h.wfile.write(b"0\r\n\r\n")
        else:
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        h.wfile.flush()

    def _send_plain(self, h, code, text, headers=None):
        data = text.encode("utf-8")
        h.send_response(code)
        self._std_headers(h)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def __repr__(self):
        return "<KubeAPI %s>" % (self.url if self.port else "(not started)")

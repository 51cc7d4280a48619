"""A Flux simulator for the tests: source-controller, kustomize-controller and
helm-controller reduced to what landlord observes, writing the statuses the
real controllers write (shared/reference/protocols.md section 4) into a
KubeAPI stand-in (kubeapi.py).

Python 3 standard library + python3-yaml; the git CLI for fetching.

    api = KubeAPI(...).start()
    sim = FluxSim(api, gs.authed_url("gitops"), git_env=gs.git_env()).start()
    sha = gs.commit_files("gitops", [{...}])
    sim.wait_applied(sha)
    sim.wait_release("flux-system", "acme-premium", version="1.2.3")
    sim.stop()

FluxSim(api, git_url, branch="main", root="application-plane/production",
        tenants_path=None, chart_versions=("0.0.1", "1.2.0", "1.2.3"),
        delays=None, poll_interval=0.2, retry_interval=0.5, git_env=None,
        namespace="flux-system", source_name="flux-system",
        kustomization_name="dataplane-tenants", chart_url=None,
        substitute=None, concurrency=4, ks_interval=30.0)
    git_url: what `git fetch` uses; may carry user:password (the
        GitRepository's spec.url shows it without them).  git_env: extra
        environment for git (e.g. GitServer.git_env(), which has the CA).
    tenants_path: the Kustomization's path (default <root>/tenants).
    chart_versions: the tags of the chart in the registry; a list, or a
        callable(chart_name) -> list (e.g. reading a real registry).
    delays: seconds between status transitions, a dict with keys "fetch"
        (GitRepository Reconciling -> Ready), "build" (Kustomization
        Progressing -> applied), "prereq" (HelmRelease "Fulfilling
        prerequisites" -> "Running 'install' action"), "install" (running ->
        succeeded/failed), "uninstall" (deletion -> finalizer removed).
        Default 0.05 each; a number sets all.
    substitute: {var: value} for the Kustomization's postBuild.substitute:
        ${var}, ${var:=default}, ${var:-default} are expanded in the built
        manifests ($${var} stays a literal ${var}); None: no postBuild.

Objects it creates at start (if missing), in `namespace`: GitRepository
`source_name` (url, ref.branch, interval 1m0s, secretRef), Kustomization
`kustomization_name` (path ./<tenants_path>, prune true, sourceRef, interval
1m0s), HelmRepository helm-tenant-chart (type oci).

What it does, in a loop (every poll_interval, and at once when a watched
object changes):
  source    fetches the branch into a bare mirror when due (poll_interval)
            or when the GitRepository's reconcile.fluxcd.io/requestedAt
            changes (then status.lastHandledReconcileAt echoes it); a new
            commit goes Reconciling/ArtifactOutdated -> Ready True Succeeded
            "stored artifact for revision 'main@sha1:<sha>'" with
            status.artifact; a failed fetch: Ready False + FetchFailed
            (GitOperationFailed or AuthenticationFailed).
  kustomize on a new artifact revision (or requestedAt, a spec change,
            ks_interval): builds <tenants_path>/kustomization.yaml
            (resources: files with YAML documents, folders with their own
            kustomization.yaml, any depth; `namespace:` honoured; duplicate
            ids and missing files fail the build like kustomize), keeps
            HelmReleases (v2, v2beta1), Namespaces, Kustomizations,
            GitRepositories, HelmRepositories, HelmCharts (and Terraforms
            when the stand-in serves them: otherwise the apply fails with
            "no matches for kind"), skips other kinds (ConfigMaps ...).
            Status: Reconciling/Progressing "Building manifests for revision
            ..." + Ready Unknown; then applies (Namespaces first; labels
            kustomize.toolkit.fluxcd.io/name and /namespace added), prunes
            what left the inventory (HelmReleases go through their
            finalizer, Namespaces through Terminating), and ends Ready True
            ReconciliationSucceeded "Applied revision: main@sha1:<sha>" with
            lastAppliedRevision, lastAttemptedRevision, inventory; or Ready
            False BuildFailed / ReconciliationFailed with
            lastAttemptedRevision only.
  helm      for each HelmRelease needing work (generation !=
            observedGeneration, requestedAt/forceAt/resetAt not handled, a
            newer chart version matching its range, deletion): finalizer
            finalizers.fluxcd.io added; "Fulfilling prerequisites"; version
            resolved against chart_versions (exact, x/* wildcards, ~ ^ < > =
            ranges, ||); no match: Ready False SourceNotReady "HelmChart
            '<ns>/<ns>-<name>' is not ready: chart pull error: ..." and
            retries every retry_interval; else "Running 'install' action
            with timeout of 5m0s" (or upgrade) -> Ready True
            InstallSucceeded/UpgradeSucceeded with history[0] deployed, or
            (fail_install) InstallFailed/UpgradeFailed + Stalled
            RetriesExceeded.  The HelmChart <src ns>/<ns>-<name> is kept in
            step.  Deleted HelmReleases lose their finalizer after
            delays["uninstall"].
  events    core Events like the controllers record: NewArtifact (and fetch
            failures) on the GitRepository, ReconciliationSucceeded /
            BuildFailed / ReconciliationFailed on the Kustomization,
            InstallSucceeded / UpgradeSucceeded / InstallFailed /
            UpgradeFailed / SourceNotReady on HelmReleases (involvedObject
            set, so fieldSelector=involvedObject.name=... finds them).
  While the stand-in is down (go_down) the controllers do nothing.

Methods:
  .start() / .stop() / context manager
  .set_chart_versions(versions)     versions list or callable; wakes the loop
  .fail_install(names=None, versions=None, predicate=None,
                message="context deadline exceeded", actions=("install", "upgrade"))
                                    releases that fail from now on: HelmRelease
                                    name, "ns/name", or landlord.dev/tenant
                                    label in names; or resolved version in
                                    versions; or predicate(hr, version) true
  .clear_failures()
  .pause() / .resume()              stop/restart every controller
  .reconcile_now()                  fetch and apply at once
  .wait_applied(sha, timeout=10)    until the Kustomization applied that
                                    commit (Ready True); returns it; raises
                                    AssertionError (with the Ready message)
                                    on timeout or when that commit failed
  .wait_release(ns, name, version=None, timeout=10)
                                    until the HelmRelease is Ready at version
  .wait_helmrelease(ns, name, predicate, timeout=10)
                                    until predicate(hr or None); returns it
  .wait_idle(timeout=10)            until no HelmRelease needs work (one
                                    waiting for its chart version counts as
                                    idle)
  .head                             the last fetched sha (or None)
  .resolve(constraint)              the version a range resolves to now
"""

import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import yaml  # noqa: E402

import common  # noqa: E402
from kubeapi import ApiError, clone, now_rfc3339  # noqa: E402

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FORCE_AT = "reconcile.fluxcd.io/forceAt"
RESET_AT = "reconcile.fluxcd.io/resetAt"
HR_FINALIZER = "finalizers.fluxcd.io"
DEFAULT_DELAYS = {"fetch": 0.05, "build": 0.05, "prereq": 0.05, "install": 0.05, "uninstall": 0.05}
APPLIED_KINDS = {"Namespace", "HelmRelease", "Kustomization", "GitRepository", "HelmRepository", "HelmChart",
                 "Terraform"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}


# -- semver -------------------------------------------------------------------------

_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")
_STRICT = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def parse_version(v):
    """(major, minor, patch, prerelease-tuple) or None."""
    m = _SEMVER.match(v.strip())
    if not m or m.group(2) is None or m.group(3) is None:
        return None
    pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in m.group(4).split(".")) if m.group(4) else ()
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)


def _vkey(v):
    # A release sorts after its prereleases.
    return (v[0], v[1], v[2], 1 if not v[3] else 0, v[3])


def _partial(s):
    """'1.2.x' -> ([1, 2, None], pre)."""
    s = s.strip()
    if s in ("", "*", "x", "X"):
        return [None, None, None], ()
    m = re.match(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$", s)
    if not m:
        raise ValueError("improper constraint: %s" % s)
    parts = []
    for g in m.group(1, 2, 3):
        parts.append(None if g is None or g in ("x", "X", "*") else int(g))
    # anything after a wildcard is a wildcard
    for i in range(3):
        if parts[i] is None:
            parts[i + 1:] = [None] * (2 - i)
            break
    pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in m.group(4).split(".")) if m.group(4) else ()
    return parts, pre


def _lo(parts, pre=()):
    return (parts[0] or 0, parts[1] or 0, parts[2] or 0, pre)


def _bump(parts):
    """The first version above a wildcard range."""
    if parts[0] is None:
        return None
    if parts[1] is None:
        return (parts[0] + 1, 0, 0, ((0, 0),))
    if parts[2] is None:
        return (parts[0], parts[1] + 1, 0, ((0, 0),))
    return None


def _cmp(a, b):
    ka, kb = _vkey(a), _vkey(b)
    return (ka > kb) - (ka < kb)


def _one(op, s):
    """A predicate for one comparison."""
    parts, pre = _partial(s)
    lo = _lo(parts, pre)
    hi = _bump(parts)
    wild = None in parts
    if op in ("", "="):
        if not wild:
            return lambda v: _cmp(v, lo) == 0
        return lambda v: _cmp(v, lo) >= 0 and (hi is None or _cmp(v, hi) < 0)
    if op == "!=":
        if not wild:
            return lambda v: _cmp(v, lo) != 0
        return lambda v: not (_cmp(v, lo) >= 0 and (hi is None or _cmp(v, hi) < 0))
    if op == ">":
        if wild:
            return (lambda v: False) if hi is None else (lambda v: _cmp(v, hi) >= 0)
        return lambda v: _cmp(v, lo) > 0
    if op == ">=":
        return lambda v: _cmp(v, lo) >= 0
    if op == "<":
        return lambda v: _cmp(v, lo) < 0
    if op == "<=":
        if wild:
            return (lambda v: True) if hi is None else (lambda v: _cmp(v, hi) < 0)
        return lambda v: _cmp(v, lo) <= 0
    if op == "~":
        if parts[1] is None:
            up = (lo[0] + 1, 0, 0, ((0, 0),))
        else:
            up = (lo[0], lo[1] + 1, 0, ((0, 0),))
        return lambda v: _cmp(v, lo) >= 0 and _cmp(v, up) < 0
    if op == "^":
        if lo[0] > 0 or parts[1] is None:
            up = (lo[0] + 1, 0, 0, ((0, 0),))
        elif lo[1] > 0 or parts[2] is None:
            up = (0, lo[1] + 1, 0, ((0, 0),))
        else:
            up = (0, 0, lo[2] + 1, ((0, 0),))
        return lambda v: _cmp(v, lo) >= 0 and _cmp(v, up) < 0
    raise ValueError("improper constraint: %s%s" % (op, s))


def constraint(expr):
    """A predicate over parsed versions for a Masterminds-style constraint
    (what Helm and Flux use).  Prereleases match only when the constraint
    names one."""
    alts = []
    any_pre = "-" in expr
    for alt in expr.split("||"):
        alt = alt.strip()
        alt = re.sub(r"(\S+)\s+-\s+(\S+)", r">=\1 <=\2", alt)
        toks = [t for t in re.split(r"[,\s]+", re.sub(r"(>=|<=|!=|[<>=~^])\s+", r"\1", alt)) if t]
        preds = []
        for t in toks or ["*"]:
            m = re.match(r"^(>=|<=|!=|=|<|>|~>|~|\^)?(.*)$", t)
            op = (m.group(1) or "").replace("~>", "~")
            preds.append(_one(op, m.group(2)))
        alts.append(preds)

    def match(v):
        if v[3] and not any_pre:
            return False
        return any(all(p(v) for p in preds) for preds in alts)
    return match


def resolve_version(expr, versions):
    """The highest of versions matching expr (a string), or None."""
    expr = (expr or "*").strip() or "*"
    try:
        pred = constraint(expr)
    except ValueError:
        return None
    best = None
    for s in versions:
        v = parse_version(s)
        if v is None or not pred(v):
            continue
        if best is None or _cmp(v, best[0]) > 0:
            best = (v, s)
    return best[1] if best else None


def is_exact(expr):
    return bool(_STRICT.match((expr or "").strip()))


# -- conditions -----------------------------------------------------------------------


def set_condition(conds, ctype, status, reason, message, generation=None):
    """kstatus setter on a copy of conds: lastTransitionTime changes only
    with status; setting Reconciling deletes Stalled and the other way
    round; Reconciling/Stalled first, then Ready, then the rest."""
    conds = list(conds or [])
    prev = next((c for c in conds if c.get("type") == ctype), None)
    conds = [c for c in conds if c.get("type") != ctype]
    c = {"type": ctype, "status": status, "reason": reason, "message": message,
         "lastTransitionTime": now_rfc3339()}
    if generation is not None:
        c["observedGeneration"] = generation
    if prev is not None and prev.get("status") == status and prev.get("lastTransitionTime"):
        c["lastTransitionTime"] = prev["lastTransitionTime"]
    if ctype == "Reconciling":
        conds = [x for x in conds if x.get("type") != "Stalled"]
    if ctype == "Stalled":
        conds = [x for x in conds if x.get("type") != "Reconciling"]
    conds.append(c)
    order = {"Reconciling": 0, "Stalled": 1, "Ready": 2}
    conds.sort(key=lambda x: order.get(x.get("type"), 3))
    return conds


_merge_cond = set_condition


def _drop(conds, *types):
    return [c for c in conds or [] if c.get("type") not in types]


def cond(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _sha256(data):
    if not isinstance(data, bytes):
        data = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- postBuild substitution --------------------------------------------------------------

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])([^}]*))?\}")


def envsubst(text, variables):
    def rep(m):
        if m.group(0) == "$${":
            return "${"
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name in variables and (variables[name] != "" or not op or not op.startswith(":")):
            return str(variables[name])
        return default if op else ""
    return _VAR.sub(rep, text)


def _subst_obj(o, variables):
    if isinstance(o, str):
        return envsubst(o, variables)
    if isinstance(o, dict):
        return {k: _subst_obj(v, variables) for k, v in o.items()}
    if isinstance(o, list):
        return [_subst_obj(v, variables) for v in o]
    return o


# -- the build ---------------------------------------------------------------------------


class BuildError(Exception):
    pass


def _norm(p):
    p = os.path.normpath(p).replace("\\", "/")
    return "" if p == "." else p


def kustomize_build(files, path, tmp="/tmp/kustomization-0"):
    """files: {repo path: bytes}; path: the folder to build.  The objects, in
    kustomize's order of resources.  Raises BuildError with kustomize-like
    messages."""
    seen = {}

    def kfile(d):
        for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
            p = _norm(d + "/" + n) if d else n
            if p in files:
                return p
        return None

    def is_dir(d):
        pre = d + "/"
        return any(f.startswith(pre) for f in files)

    def build_dir(d, depth):
        if depth > 30:
            raise BuildError("cycle detected in %s" % d)
        k = kfile(d)
        if k is None:
            raise BuildError("unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' "
                             "in directory '%s/%s'" % (tmp, d))
        try:
            kz = yaml.safe_load(files[k].decode("utf-8")) or {}
        except yaml.YAMLError as e:
            raise BuildError("failed to decode %s: %s" % (k, str(e).replace("\n", " ")))
        if not isinstance(kz, dict):
            raise BuildError("invalid Kustomization: %s is not a map" % k)
        out = []
        for entry in kz.get("resources") or []:
            if not isinstance(entry, str):
                raise BuildError("invalid Kustomization: resources entry %r is not a string" % (entry,))
            p = _norm(d + "/" + entry)
            try:
                if p in files:
                    docs = load_docs(p, files[p])
                    ids = set()
                    for o in docs:
                        rid = resid(o)
                        if rid in seen or rid in ids:
                            raise BuildError("may not add resource with an already registered id: %s" % rid)
                        ids.add(rid)
                    for o in docs:
                        seen[resid(o)] = p
                    out.extend(docs)
                elif is_dir(p):
                    out.extend(build_dir(p, depth + 1))
                else:
                    raise BuildError("open %s/%s: no such file or directory" % (tmp, p))
            except BuildError as e:
                raise BuildError("accumulating resources: accumulation err='accumulating resources from '%s': %s'"
                                 % (entry, e))
        ns = kz.get("namespace")
        if ns:
            for o in out:
                if o.get("kind") not in CLUSTER_SCOPED:
                    o.setdefault("metadata", {})["namespace"] = ns
        return out

    return build_dir(_norm(path), 0)


def load_docs(path, data):
    try:
        docs = list(yaml.safe_load_all(data.decode("utf-8")))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BuildError("failed to decode %s: %s" % (path, str(e).replace("\n", " ")))
    out = []
    for d in docs:
        if d is None:
            continue
        if not isinstance(d, dict) or not d.get("kind") or not d.get("apiVersion"):
            raise BuildError("missing Resource metadata in %s" % path)
        if not (d.get("metadata") or {}).get("name"):
            raise BuildError("missing metadata.name in object %s in %s" % (d.get("kind"), path))
        out.append(d)
    return out


def resid(o):
    group, _, version = o.get("apiVersion", "").rpartition("/")
    md = o.get("metadata") or {}
    return "%s.%s.%s/%s.%s" % (o.get("kind"), version, group or "[noGrp]", md.get("name"),
                               md.get("namespace") or "[noNs]")


def inventory_id(o):
    group = o.get("apiVersion", "").rpartition("/")[0]
    md = o.get("metadata") or {}
    return "%s_%s_%s_%s" % (md.get("namespace", "") if o.get("kind") not in CLUSTER_SCOPED else "",
                            md.get("name"), group, o.get("kind"))


# -- the simulator -----------------------------------------------------------------------------


class FluxSim:
    def __init__(self, api, git_url, branch="main", root="application-plane/production", tenants_path=None,
                 chart_versions=("0.0.1", "1.2.0", "1.2.3"), delays=None, poll_interval=0.2, retry_interval=0.5,
                 git_env=None, namespace="flux-system", source_name="flux-system",
                 kustomization_name="dataplane-tenants", chart_url=None, substitute=None, concurrency=4,
                 ks_interval=30.0):
        self.api = api
        self.git_url = git_url
        self.branch = branch
        self.root = root.strip("/")
        self.tenants_path = (tenants_path or self.root + "/tenants").strip("/")
        if tenants_path and tenants_path.startswith("./"):
            self.tenants_path = tenants_path[2:].strip("/")
        self._versions = chart_versions if callable(chart_versions) else list(chart_versions)
        if delays is None:
            self.delays = dict(DEFAULT_DELAYS)
        elif isinstance(delays, (int, float)):
            self.delays = {k: float(delays) for k in DEFAULT_DELAYS}
        else:
            self.delays = dict(DEFAULT_DELAYS)
            self.delays.update(delays)
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.git_env = dict(git_env or {})
        self.namespace = namespace
        self.source_name = source_name
        self.kustomization_name = kustomization_name
        self.chart_url = chart_url or "oci://registry.local/charts"
        self.substitute = substitute
        self.concurrency = concurrency
        self.ks_interval = ks_interval
        self.head = None
        self._failures = []
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._work = queue.Queue()
        self._inflight = set()
        self._inflight_lock = threading.Lock()
        self._retry_at = {}
        self._dirty = set()
        self._next_full_scan = 0.0
        self._next_fetch = 0.0
        self._next_ks = 0.0
        self._threads = []
        self._tmp = None
        self._mirror = None
        self._build_cache = None
        self.errors = []  # unexpected exceptions in the controllers (for debugging)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self._tmp = tempfile.mkdtemp(prefix="fluxsim-")
        self._mirror = os.path.join(self._tmp, "mirror.git")
        self._git(["init", "-q", "--bare", self._mirror])
        self._ensure_objects()
        self._stop.clear()
        self.api.add_listener(self._on_event)
        t = threading.Thread(target=self._loop, name="fluxsim-loop", daemon=True)
        t.start()
        self._threads = [t]
        for i in range(self.concurrency):
            w = threading.Thread(target=self._worker, name="fluxsim-helm-%d" % i, daemon=True)
            w.start()
            self._threads.append(w)
        self._wake.set()
        return self

    def stop(self):
        self._stop.set()
        self._wake.set()
        self._paused.clear()
        for _ in range(self.concurrency):
            self._work.put(None)
        for t in self._threads:
            t.join(10)
        self._threads = []
        self.api.remove_listener(self._on_event)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def pause(self):
        self._paused.set()

    def resume(self):
        self._paused.clear()
        self._next_full_scan = 0.0
        self._wake.set()

    def reconcile_now(self):
        self._next_fetch = 0.0
        self._next_ks = 0.0
        self._next_full_scan = 0.0
        self._retry_at.clear()
        self._wake.set()

    def set_chart_versions(self, versions):
        self._versions = versions if callable(versions) else list(versions)
        self._retry_at.clear()
        self._next_full_scan = 0.0
        self._wake.set()

    def fail_install(self, names=None, versions=None, predicate=None, message="context deadline exceeded",
                     actions=("install", "upgrade")):
        self._failures.append({"names": set(names or ()), "versions": set(versions or ()), "predicate": predicate,
                               "message": message, "actions": set(actions)})

    def clear_failures(self):
        self._failures = []

    def chart_versions(self, chart):
        v = self._versions
        return list(v(chart)) if callable(v) else list(v)

    def resolve(self, expr, chart="helm-tenant-chart"):
        return resolve_version(expr, self.chart_versions(chart))

    # -- waiting ----------------------------------------------------------------------------------

    def wait_applied(self, sha, timeout=10.0, fail_fast=True):
        deadline = time.monotonic() + timeout
        while True:
            ks = self.api.get("Kustomization", self.namespace, self.kustomization_name)
            st = (ks or {}).get("status") or {}
            ready = cond(ks, "Ready") or {}
            if (st.get("lastAppliedRevision") or "").endswith(sha) and ready.get("status") == "True":
                return ks
            if (fail_fast and (st.get("lastAttemptedRevision") or "").endswith(sha) and ready.get("status") == "False"
                    and not (st.get("lastAppliedRevision") or "").endswith(sha)):
                raise AssertionError("commit %s failed to apply: %s: %s" % (sha, ready.get("reason"), ready.get("message")))
            if time.monotonic() > deadline:
                gr = self.api.get("GitRepository", self.namespace, self.source_name)
                raise AssertionError("commit %s not applied within %.1f s; GitRepository Ready: %s; Kustomization "
                                     "status: %s; errors: %s" % (sha, timeout, cond(gr, "Ready"), st, self.errors[-3:]))
            time.sleep(0.01)

    def wait_helmrelease(self, ns, name, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            hr = self.api.get("HelmRelease", ns, name)
            if predicate(hr):
                return hr
            if time.monotonic() > deadline:
                raise AssertionError("HelmRelease %s/%s: condition not met within %.1f s; now: %s"
                                     % (ns, name, timeout, json.dumps((hr or {}).get("status"))))
            time.sleep(0.01)

    def wait_release(self, ns, name, version=None, timeout=10.0):
        def ok(hr):
            if hr is None:
                return False
            st = hr.get("status") or {}
            r = cond(hr, "Ready") or {}
            h = (st.get("history") or [{}])[0]
            return (r.get("status") == "True" and st.get("observedGeneration") == hr["metadata"].get("generation")
                    and cond(hr, "Reconciling") is None
                    and (version is None or (h.get("chartVersion") == version and h.get("status") == "deployed")))
        return self.wait_helmrelease(ns, name, ok, timeout)

    def wait_idle(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            busy = [hr["metadata"]["name"] for hr in self.api.objects("HelmRelease", copy=False)
                    if self._needs_work(hr, True) and not self._waiting_for_chart(hr)]
            with self._inflight_lock:
                busy += list(self._inflight)
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError("Flux not idle within %.1f s: %s" % (timeout, busy))
            time.sleep(0.02)

    # -- plumbing -----------------------------------------------------------------------------------

    def _on_event(self, etype, plural, obj):
        if plural == "helmreleases":
            md = obj.get("metadata") or {}
            with self._inflight_lock:
                self._dirty.add((md.get("namespace"), md.get("name")))
        if plural in ("helmreleases", "gitrepositories", "kustomizations"):
            self._wake.set()

    def _active(self):
        return not self._stop.is_set() and not self._paused.is_set() and not self.api.down

    def _sleep(self, key):
        d = self.delays.get(key, 0)
        if d:
            self._stop.wait(d)

    def _git_environ(self):
        env = common.git_env()
        env.update(self.git_env)
        return env

    def _git(self, args, input=None, check=True, timeout=60):
        p = subprocess.run(["git"] + args, env=self._git_environ(), input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=None if input is not None else subprocess.DEVNULL,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("git %s: %s" % (args[0], p.stderr.decode("utf-8", "replace")))
        return p

    @property
    def public_url(self):
        u = urllib.parse.urlsplit(self.git_url)
        if "@" in u.netloc:
            u = u._replace(netloc=u.netloc.rsplit("@", 1)[1])
        return urllib.parse.urlunsplit(u)

    def _ensure_objects(self):
        api, ns = self.api, self.namespace
        if api.get("Namespace", ns) is None:
            api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if api.get("GitRepository", ns, self.source_name) is None:
            api.create({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                        "metadata": {"name": self.source_name, "namespace": ns},
                        "spec": {"interval": "1m0s", "ref": {"branch": self.branch},
                                 "secretRef": {"name": self.source_name}, "url": self.public_url}},
                       manager="flux")
        if api.get("Kustomization", ns, self.kustomization_name) is None:
            spec = {"interval": "1m0s", "path": "./" + self.tenants_path, "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": self.source_name}}
            if self.substitute is not None:
                spec["postBuild"] = {"substitute": dict(self.substitute)}
            api.create({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                        "metadata": {"name": self.kustomization_name, "namespace": ns}, "spec": spec},
                       manager="flux")
        if api.get("HelmRepository", ns, "helm-tenant-chart") is None:
            api.create({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                        "metadata": {"name": "helm-tenant-chart", "namespace": ns},
                        "spec": {"interval": "1m0s", "type": "oci", "url": self.chart_url}}, manager="flux")
            api.set_status("HelmRepository", ns, "helm-tenant-chart", {
                "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                "message": "Helm repository is Ready", "observedGeneration": 1,
                                "lastTransitionTime": now_rfc3339()}],
                "observedGeneration": 1, "url": self.chart_url}, manager="source-controller")

    def _loop(self):
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if not self._active():
                continue
            for step in (self._source_step, self._kustomize_step, self._helm_scan):
                if not self._active():
                    break
                try:
                    step()
                except ApiError as e:
                    self.errors.append("%s: %s" % (step.__name__, e))
                except Exception as e:  # keep the controllers alive; tests see .errors
                    self.errors.append("%s: %r" % (step.__name__, e))

    def _emit(self, obj, etype, reason, message, component):
        """A core Event about obj, as the controllers record them."""
        if obj is None:
            return
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        now = now_rfc3339()
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": "%s.%x" % (md["name"], time.time_ns()), "namespace": ns},
              "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": md["name"], "uid": md.get("uid"),
                                 "apiVersion": obj["apiVersion"], "resourceVersion": md.get("resourceVersion")},
              "reason": reason, "message": message, "source": {"component": component},
              "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": etype,
              "reportingComponent": component, "reportingInstance": component + "-fluxsim"}
        try:
            self.api.create(ev, manager=component)
        except ApiError:
            pass

    # -- source-controller ---------------------------------------------------------------------------

    def _source_step(self):
        api, ns = self.api, self.namespace
        gr = api.get("GitRepository", ns, self.source_name)
        if gr is None or (gr.get("spec") or {}).get("suspend"):
            return
        st = gr.get("status") or {}
        req = (gr["metadata"].get("annotations") or {}).get(REQUESTED_AT)
        gen = gr["metadata"].get("generation")
        now = time.monotonic()
        pending_req = req is not None and req != st.get("lastHandledReconcileAt")
        if not (now >= self._next_fetch or pending_req or gen != st.get("observedGeneration")):
            return
        self._next_fetch = now + self.poll_interval
        spec = gr.get("spec") or {}
        branch = (spec.get("ref") or {}).get("branch") or self.branch
        rev_name = branch
        sha, err = self._fetch(branch)
        conds = st.get("conditions") or []
        if err is not None:
            reason = "AuthenticationFailed" if re.search(r"(?i)authentication|401|403|could not read username", err) \
                else "GitOperationFailed"
            msg = "failed to checkout and determine revision: unable to clone '%s': %s" % (self.public_url, err)
            new = dict(st)
            c = _merge_cond(conds, "FetchFailed", "True", reason, msg, gen)
            c = _merge_cond(c, "Ready", "False", reason, msg, gen)
            new["conditions"] = _drop(c, "Reconciling", "ArtifactOutdated")
            new["observedGeneration"] = gen
            if pending_req:
                new["lastHandledReconcileAt"] = req
            if new != st:
                o = api.set_status("GitRepository", ns, self.source_name, new, manager="source-controller")
                if (cond(gr, "Ready") or {}).get("message") != msg:
                    self._emit(o, "Warning", reason, msg, "source-controller")
            return
        self.head = sha
        rev = "%s@sha1:%s" % (rev_name, sha)
        art = st.get("artifact") or {}
        if art.get("revision") == rev and not pending_req and gen == st.get("observedGeneration") \
                and (cond(gr, "Ready") or {}).get("status") == "True":
            return
        if art.get("revision") != rev:
            msg = "building artifact: new upstream revision '%s'" % rev
            new = dict(st)
            c = _merge_cond(conds, "Reconciling", "True", "ProgressingWithRetry" if art else "Progressing", msg, gen)
            c = _merge_cond(c, "ArtifactOutdated", "True", "NewRevision", "new upstream revision '%s'" % rev, gen)
            c = _merge_cond(c, "Ready", "Unknown", "Progressing", msg, gen)
            new["conditions"] = _drop(c, "FetchFailed")
            api.set_status("GitRepository", ns, self.source_name, new, manager="source-controller")
            self._sleep("fetch")
            gr = api.get("GitRepository", ns, self.source_name)
            if gr is None:
                return
            st = gr.get("status") or {}
            conds = st.get("conditions") or []
        path = "gitrepository/%s/%s/%s.tar.gz" % (ns, self.source_name, sha)
        msg = "stored artifact for revision '%s'" % rev
        new = dict(st)
        new["artifact"] = {
            "digest": _sha256(sha.encode()), "lastUpdateTime": now_rfc3339(), "path": path, "revision": rev,
            "size": 1024, "url": "http://source-controller.flux-system.svc.cluster.local./" + path}
        c = _drop(conds, "Reconciling", "ArtifactOutdated", "FetchFailed", "Stalled")
        c = _merge_cond(c, "ArtifactInStorage", "True", "Succeeded", msg, gen)
        c = _merge_cond(c, "Ready", "True", "Succeeded", msg, gen)
        new["conditions"] = c
        new["observedGeneration"] = gen
        if req is not None:
            new["lastHandledReconcileAt"] = req
        o = api.set_status("GitRepository", ns, self.source_name, new, manager="source-controller")
        if art.get("revision") != rev:
            subject = self._git(["--git-dir", self._mirror, "log", "-1", "--format=%s", sha],
                                check=False).stdout.decode("utf-8", "replace").strip()
            self._emit(o, "Normal", "NewArtifact", "stored artifact for commit '%s'" % subject, "source-controller")

    def _fetch(self, branch):
        p = self._git(["--git-dir", self._mirror, "fetch", "-q", "--force", "--no-tags", self.git_url,
                       "+refs/heads/%s:refs/heads/%s" % (branch, branch)], check=False)
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            text = err[-1] if err else "git fetch failed"
            text = re.sub(r"^fatal: ", "", text)
            if "couldn't find remote ref" in text:
                text = "couldn't find remote ref \"refs/heads/%s\"" % branch
            u = urllib.parse.urlsplit(self.git_url)
            if u.password:
                text = text.replace(u.password, "***")
            text = text.replace(self.git_url, self.public_url)
            return None, text
        q = self._git(["--git-dir", self._mirror, "rev-parse", "refs/heads/" + branch], check=False)
        if q.returncode != 0:
            return None, "couldn't find remote ref \"refs/heads/%s\"" % branch
        return q.stdout.decode().strip(), None

    def _blob_entries(self, sha, path):
        """[(repo path, blob id)] of the files under path at sha ([] when
        there is no such tree)."""
        p = self._git(["--git-dir", self._mirror, "ls-tree", "-r", "-z", sha, "--", path], check=False)
        if p.returncode != 0:
            return []
        entries = []
        for rec in p.stdout.split(b"\0"):
            if not rec:
                continue
            meta, name = rec.split(b"\t", 1)
            mode, typ, oid = meta.split(b" ")
            if typ == b"blob":
                entries.append((name.decode("utf-8", "replace"), oid.decode()))
        return entries

    def _read_blobs(self, oids):
        """{blob id: bytes} of oids (a list), read with one cat-file --batch."""
        if not oids:
            return {}
        q = self._git(["--git-dir", self._mirror, "cat-file", "--batch"], input=("\n".join(oids) + "\n").encode())
        out, data, pos = {}, q.stdout, 0
        for oid in oids:
            nl = data.index(b"\n", pos)
            size = int(data[pos:nl].split(b" ")[2])
            out[oid] = data[nl + 1:nl + 1 + size]
            pos = nl + 1 + size + 1
        return out

    def _files(self, sha, path):
        """{repo path: bytes} for the tree under path at sha (one cat-file)."""
        entries = self._blob_entries(sha, path)
        blobs = self._read_blobs([oid for _, oid in entries])
        return {name: blobs[oid] for name, oid in entries}

    # -- kustomize-controller ---------------------------------------------------------------------------

    def _kustomize_step(self):
        api, ns = self.api, self.namespace
        ks = api.get("Kustomization", ns, self.kustomization_name)
        if ks is None or (ks.get("spec") or {}).get("suspend"):
            return
        spec = ks.get("spec") or {}
        src = spec.get("sourceRef") or {}
        gr = api.get("GitRepository", src.get("namespace") or ns, src.get("name") or self.source_name)
        art = ((gr or {}).get("status") or {}).get("artifact") or {}
        rev = art.get("revision")
        st = ks.get("status") or {}
        gen = ks["metadata"].get("generation")
        req = (ks["metadata"].get("annotations") or {}).get(REQUESTED_AT)
        pending_req = req is not None and req != st.get("lastHandledReconcileAt")
        if rev is None:
            if pending_req or gen != st.get("observedGeneration"):
                new = dict(st)
                new["conditions"] = _merge_cond(st.get("conditions"), "Ready", "False", "ArtifactFailed",
                                                "Source artifact not found, retrying in 30s", gen)
                new["observedGeneration"] = gen
                if pending_req:
                    new["lastHandledReconcileAt"] = req
                if new != st:
                    api.set_status("Kustomization", ns, self.kustomization_name, new, manager="kustomize-controller")
            return
        now = time.monotonic()
        due = (rev != st.get("lastAttemptedRevision") or pending_req or gen != st.get("observedGeneration")
               or now >= self._next_ks)
        if not due:
            return
        failed = (cond(ks, "Ready") or {}).get("status") == "False"
        self._next_ks = now + (self.retry_interval if failed else (self.ks_interval or 1e9))
        sha = rev.rsplit(":", 1)[-1]
        path = spec.get("path") or ""
        if path.startswith("./"):
            path = path[2:]
        path = _norm(path.strip("/") or ".")
        timeout = spec.get("timeout") or spec.get("interval") or "1m0s"
        # Progressing
        new = dict(st)
        c = _merge_cond(st.get("conditions"), "Reconciling", "True", "Progressing",
                        "Building manifests for revision %s with a timeout of %s" % (rev, timeout), gen)
        c = _merge_cond(c, "Ready", "Unknown", "Progressing", "Reconciliation in progress", gen)
        new["conditions"] = c
        new["lastAttemptedRevision"] = rev
        api.set_status("Kustomization", ns, self.kustomization_name, new, manager="kustomize-controller")
        self._sleep("build")
        started = time.monotonic()
        try:
            objs = self._build(sha, path, spec)
            inventory = self._apply(objs, st)
        except BuildError as e:
            self._ks_fail(gen, rev, req, "BuildFailed", "kustomize build failed: %s" % e)
            return
        except _ApplyError as e:
            self._ks_fail(gen, rev, req, "ReconciliationFailed", str(e))
            return
        ks = api.get("Kustomization", ns, self.kustomization_name) or ks
        st = ks.get("status") or {}
        new = dict(st)
        c = _drop(st.get("conditions"), "Reconciling", "Stalled")
        c = _merge_cond(c, "Ready", "True", "ReconciliationSucceeded", "Applied revision: %s" % rev, gen)
        new["conditions"] = c
        new["lastAppliedRevision"] = rev
        new["lastAttemptedRevision"] = rev
        new["observedGeneration"] = gen
        new["inventory"] = {"entries": inventory}
        if req is not None:
            new["lastHandledReconcileAt"] = req
        digest = _sha256(json.dumps(inventory, sort_keys=True).encode())
        hist = [h for h in (st.get("history") or []) if h.get("digest") != digest]
        old = next((h for h in (st.get("history") or []) if h.get("digest") == digest), None)
        now_s = now_rfc3339()
        entry = {"digest": digest, "firstReconciled": (old or {}).get("firstReconciled", now_s),
                 "lastReconciled": now_s, "lastReconciledDuration": "%.3fs" % (time.monotonic() - started),
                 "lastReconciledStatus": "ReconciliationSucceeded",
                 "totalReconciliations": (old or {}).get("totalReconciliations", 0) + 1,
                 "metadata": {"revision": rev}}
        new["history"] = ([entry] + hist)[:5]
        o = api.set_status("Kustomization", ns, self.kustomization_name, new, manager="kustomize-controller")
        self._emit(o, "Normal", "ReconciliationSucceeded", "Reconciliation finished in %dms, next run in %s"
                   % ((time.monotonic() - started) * 1000, spec.get("interval", "1m0s")), "kustomize-controller")

    def _ks_fail(self, gen, rev, req, reason, msg):
        api, ns = self.api, self.namespace
        ks = api.get("Kustomization", ns, self.kustomization_name)
        if ks is None:
            return
        st = ks.get("status") or {}
        before = cond(ks, "Ready") or {}
        new = dict(st)
        c = _drop(st.get("conditions"), "Reconciling")
        c = _merge_cond(c, "Ready", "False", reason, msg, gen)
        new["conditions"] = c
        new["lastAttemptedRevision"] = rev
        new["observedGeneration"] = gen
        if req is not None:
            new["lastHandledReconcileAt"] = req
        o = api.set_status("Kustomization", ns, self.kustomization_name, new, manager="kustomize-controller")
        if st.get("lastAttemptedRevision") != rev or before.get("message") != msg or before.get("status") != "False":
            self._emit(o, "Warning", reason, msg, "kustomize-controller")

    def _build(self, sha, path, spec):
        if self._build_cache and self._build_cache[0] == (sha, path):
            objs = clone(self._build_cache[1])
        else:
            files = self._files(sha, path or ".")
            objs = kustomize_build(files, path)
            self._build_cache = ((sha, path), clone(objs))
        variables = ((spec.get("postBuild") or {}).get("substitute"))
        if variables is not None:
            objs = [o if ((o.get("metadata") or {}).get("annotations") or {}).get(
                "kustomize.toolkit.fluxcd.io/substitute") == "disabled" else _subst_obj(o, variables) for o in objs]
        return objs

    def _apply(self, objs, st):
        api = self.api
        ks_labels = {"kustomize.toolkit.fluxcd.io/name": self.kustomization_name,
                     "kustomize.toolkit.fluxcd.io/namespace": self.namespace}
        keep = []
        for o in objs:
            kind = o.get("kind")
            if kind not in APPLIED_KINDS:
                continue  # ConfigMaps etc.: not stored by the stand-in
            try:
                api._res_for_obj(o)
            except ApiError:
                raise _ApplyError('%s/%s dry-run failed: no matches for kind "%s" in version "%s"'
                                  % (kind, _obj_path(o), kind, o.get("apiVersion")))
            if kind not in CLUSTER_SCOPED and not (o.get("metadata") or {}).get("namespace"):
                raise _ApplyError("%s/%s namespace not specified" % (kind, o["metadata"]["name"]))
            o = clone(o)
            labels = dict(o["metadata"].get("labels") or {})
            labels.update(ks_labels)
            o["metadata"]["labels"] = labels
            keep.append(o)
        # dry run: every object must be valid before anything is applied
        for o in keep:
            try:
                api.validate(o)
            except ApiError as e:
                raise _ApplyError("%s/%s dry-run failed (%s): %s" % (o["kind"], _obj_path(o), e.reason, e.message))
        keep.sort(key=lambda o: 0 if o["kind"] == "Namespace" else 1)
        inventory = []
        for o in keep:
            try:
                api.apply(o, manager="kustomize-controller")
            except ApiError as e:
                raise _ApplyError("%s/%s apply failed (%s): %s" % (o["kind"], _obj_path(o), e.reason, e.message))
            inventory.append({"id": inventory_id(o), "v": o["apiVersion"].rpartition("/")[2]})
        # prune what left the inventory
        now_ids = set(e["id"] for e in inventory)
        old = [e for e in ((st.get("inventory") or {}).get("entries") or []) if e.get("id") not in now_ids]
        old.sort(key=lambda e: 1 if e["id"].endswith("__Namespace") else 0)
        for e in old:
            parts = e["id"].split("_")
            if len(parts) != 4:
                continue
            ons, name, group, kind = parts
            try:
                res = next(r for r in api.resources if r.kind == kind and r.group == group)
            except StopIteration:
                continue
            cur = api.get(res.plural, ons or None, name)
            if cur is None:
                continue
            lab = cur["metadata"].get("labels") or {}
            if lab.get("kustomize.toolkit.fluxcd.io/name") != self.kustomization_name:
                continue
            api.delete(res.plural, ons or None, name)
        return sorted(inventory, key=lambda e: e["id"])

    # -- helm-controller ---------------------------------------------------------------------------------

    def _helm_scan(self):
        """The HelmReleases that changed since the last scan; all of them
        every retry_interval (retries, new chart versions)."""
        now = time.monotonic()
        with self._inflight_lock:
            dirty, self._dirty = self._dirty, set()
        if now >= self._next_full_scan:
            self._next_full_scan = now + self.retry_interval
            hrs = self.api.objects("HelmRelease", copy=False)
        else:
            hrs = [o for o in (self.api.get("HelmRelease", ns, n) for ns, n in sorted(dirty)) if o is not None]
        for hr in hrs:
            if self._needs_work(hr):
                key = (hr["metadata"]["namespace"], hr["metadata"]["name"])
                with self._inflight_lock:
                    if key in self._inflight:
                        self._dirty.add(key)  # look again when that reconcile is done
                        continue
                    self._inflight.add(key)
                self._work.put(key)

    def _needs_work(self, hr, ignore_retry=False):
        md = hr["metadata"]
        if md.get("deletionTimestamp"):
            return HR_FINALIZER in (md.get("finalizers") or [])
        spec = hr.get("spec") or {}
        if spec.get("suspend"):
            return False
        st = hr.get("status") or {}
        ann = md.get("annotations") or {}
        gen = md.get("generation")
        if ann.get(REQUESTED_AT) is not None and ann.get(REQUESTED_AT) != st.get("lastHandledReconcileAt"):
            return True
        if ann.get(RESET_AT) is not None and ann.get(RESET_AT) != st.get("lastHandledResetAt"):
            return True
        if ann.get(FORCE_AT) is not None and ann.get(FORCE_AT) != st.get("lastHandledForceAt"):
            return True
        if gen != st.get("observedGeneration"):
            ready = cond(hr, "Ready") or {}
            if ready.get("reason") == "SourceNotReady" and not ignore_retry:
                at = self._retry_at.get((md["namespace"], md["name"]))
                return at is None or time.monotonic() >= at
            return True
        if cond(hr, "Stalled") is not None:
            return False
        ready = cond(hr, "Ready") or {}
        hist = st.get("history") or []
        if ready.get("status") == "True" and hist and hist[0].get("status") == "deployed":
            chart = self._chart_spec(hr)
            want = self.resolve(chart.get("version", "*"), chart.get("chart", ""))
            if want is not None and want != hist[0].get("chartVersion"):
                return True
        return False

    def _worker(self):
        while True:
            key = self._work.get()
            if key is None:
                return
            try:
                while self._paused.is_set() and not self._stop.is_set():
                    time.sleep(0.02)
                if self._active():
                    self._reconcile_hr(*key)
            except ApiError as e:
                self.errors.append("helm %s/%s: %s" % (key[0], key[1], e))
            except Exception as e:
                self.errors.append("helm %s/%s: %r" % (key[0], key[1], e))
            finally:
                with self._inflight_lock:
                    self._inflight.discard(key)
                self._wake.set()

    @staticmethod
    def _waiting_for_chart(hr):
        return ((cond(hr, "Ready") or {}).get("reason") == "SourceNotReady"
                and not hr["metadata"].get("deletionTimestamp"))

    @staticmethod
    def _chart_spec(hr):
        spec = hr.get("spec") or {}
        chart = (spec.get("chart") or {}).get("spec")
        if chart:
            return chart
        ref = spec.get("chartRef") or {}
        return {"chart": ref.get("name", ""), "version": "*", "sourceRef": ref}

    def _status_write(self, ns, name, fn):
        """Reads the HelmRelease, lets fn(status, hr) change a copy of its
        status, writes it.  Returns the new object (None if it is gone)."""
        hr = self.api.get("HelmRelease", ns, name)
        if hr is None:
            return None
        st = clone(hr.get("status") or {})
        fn(st, hr)
        try:
            return self.api.set_status("HelmRelease", ns, name, st, manager="helm-controller")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def _failure_for(self, hr, version, action):
        md = hr["metadata"]
        names = {md["name"], "%s/%s" % (md["namespace"], md["name"])}
        tenant = (md.get("labels") or {}).get("landlord.dev/tenant")
        if tenant:
            names.add(tenant)
        for f in self._failures:
            if action not in f["actions"]:
                continue
            if (f["names"] & names) or version in f["versions"] or (f["predicate"] and f["predicate"](hr, version)):
                return f["message"]
        return None

    def _reconcile_hr(self, ns, name):
        api = self.api
        hr = api.get("HelmRelease", ns, name)
        if hr is None or not self._needs_work(hr, ignore_retry=True):
            return
        md, spec = hr["metadata"], hr.get("spec") or {}
        if md.get("deletionTimestamp"):
            self._sleep("uninstall")
            chart = self._chart_spec(hr)
            src_ns = (chart.get("sourceRef") or {}).get("namespace") or ns
            api.delete("HelmChart", src_ns, "%s-%s" % (ns, name))
            api.remove_finalizer("HelmRelease", ns, name, HR_FINALIZER)
            return
        if HR_FINALIZER not in (md.get("finalizers") or []):
            hr = api.patch("HelmRelease", ns, name, {"metadata": {"finalizers": (md.get("finalizers") or []) + [HR_FINALIZER]}},
                           manager="helm-controller")
            md = hr["metadata"]
        gen = md.get("generation")
        ann = md.get("annotations") or {}
        req, reset, force = ann.get(REQUESTED_AT), ann.get(RESET_AT), ann.get(FORCE_AT)
        st = hr.get("status") or {}
        chart = self._chart_spec(hr)
        chart_name = chart.get("chart", "")
        src = chart.get("sourceRef") or {}
        src_ns = src.get("namespace") or ns
        helm_chart = "%s/%s-%s" % (src_ns, ns, name)
        release_ns = spec.get("targetNamespace") or ns
        release_name = spec.get("releaseName") or (
            "%s-%s" % (spec["targetNamespace"], name) if spec.get("targetNamespace") else name)
        storage_ns = spec.get("storageNamespace") or release_ns
        hist = st.get("history") or []
        deployed = hist[0] if hist and hist[0].get("status") == "deployed" else None
        constraint_s = str(chart.get("version", "*"))
        version = self.resolve(constraint_s, chart_name)
        waiting = (cond(hr, "Ready") or {}).get("reason") == "SourceNotReady"
        reset_pending = reset is not None and reset != st.get("lastHandledResetAt")
        force_pending = force is not None and force != st.get("lastHandledForceAt")
        gen_changed = gen != st.get("observedGeneration")
        new_chart = deployed is not None and version is not None and version != deployed.get("chartVersion")
        stalled = cond(hr, "Stalled") is not None and not gen_changed and not reset_pending

        def handled(s):
            if req is not None:
                s["lastHandledReconcileAt"] = req
            if reset is not None:
                s["lastHandledResetAt"] = reset
            if force is not None:
                s["lastHandledForceAt"] = force

        if stalled or not (gen_changed or new_chart or reset_pending or force_pending or waiting):
            # only a reconcile request: nothing to release
            self._status_write(ns, name, lambda s, o: handled(s))
            return

        # 1. prerequisites
        if not waiting:
            def prereq(s, o):
                s["conditions"] = _merge_cond(s.get("conditions"), "Reconciling", "True", "Progressing",
                                              "Fulfilling prerequisites", gen)
                if not waiting:
                    s["conditions"] = _merge_cond(s["conditions"], "Ready", "Unknown", "Progressing",
                                                  "reconciliation in progress", gen)
                s["helmChart"] = helm_chart
            self._status_write(ns, name, prereq)
            self._sleep("prereq")
        self._sync_helmchart(src_ns, ns, name, chart, version, constraint_s)
        if version is None:
            if is_exact(constraint_s):
                err = "failed to download chart for remote reference: failed to get '%s/%s:%s': not found" % (
                    self.chart_url, chart_name, constraint_s)
            else:
                err = "failed to get chart version for remote reference: could not locate a version matching " \
                      "provided version string %s" % constraint_s
            msg = "HelmChart '%s' is not ready: chart pull error: %s" % (helm_chart, err)

            def notready(s, o):
                c = _merge_cond(s.get("conditions"), "Reconciling", "True", "Progressing", "Fulfilling prerequisites", gen)
                s["conditions"] = _merge_cond(c, "Ready", "False", "SourceNotReady", msg, gen)
                s["helmChart"] = helm_chart
                handled(s)
            o = self._status_write(ns, name, notready)
            if not waiting:
                self._emit(o, "Warning", "SourceNotReady", msg, "helm-controller")
            self._retry_at[(ns, name)] = time.monotonic() + self.retry_interval
            return
        self._retry_at.pop((ns, name), None)
        action = "upgrade" if deployed is not None else "install"
        values = spec.get("values") or {}
        config_digest = _sha256(values)
        msg_run = "Running '%s' action with timeout of 5m0s" % action

        def running(s, o):
            c = _merge_cond(s.get("conditions"), "Reconciling", "True", "Progressing", msg_run, gen)
            s["conditions"] = _merge_cond(c, "Ready", "Unknown", "Progressing", msg_run, gen)
            s["helmChart"] = helm_chart
            s["storageNamespace"] = storage_ns
            s["lastAttemptedGeneration"] = gen
            s["lastAttemptedRevision"] = version
            s["lastAttemptedReleaseAction"] = action
            s["lastAttemptedConfigDigest"] = config_digest
        self._status_write(ns, name, running)
        t0 = time.monotonic()
        self._sleep("install")
        failure = self._failure_for(hr, version, action)
        relno = max([h.get("version", 0) for h in hist] + [0]) + 1
        now_s = now_rfc3339()
        entry = {"name": release_name, "namespace": release_ns, "version": relno, "action": action,
                 "chartName": chart_name, "chartVersion": version, "appVersion": version,
                 "configDigest": config_digest,
                 "digest": _sha256(("%s/%s.v%d/%s" % (release_ns, release_name, relno, version)).encode()),
                 "firstDeployed": (hist[-1].get("firstDeployed") if hist else None) or now_s,
                 "lastDeployed": now_s}
        Action = action.capitalize()

        if failure is None:
            msg = "Helm %s succeeded for release %s/%s.v%d with chart %s@%s" % (
                action, release_ns, release_name, relno, chart_name, version)
            entry["status"] = "deployed"

            def done(s, o):
                c = _drop(s.get("conditions"), "Reconciling", "Stalled")
                c = _merge_cond(c, "Ready", "True", Action + "Succeeded", msg, gen)
                c = _merge_cond(c, "Released", "True", Action + "Succeeded", msg, gen)
                s["conditions"] = c
                old = [dict(h) for h in (s.get("history") or [])]
                for h in old:
                    if h.get("status") == "deployed":
                        h["status"] = "superseded"
                # kept up to the previous successful release
                keep = []
                for h in old:
                    keep.append(h)
                    if h.get("status") == "superseded":
                        break
                s["history"] = [entry] + keep[:4]
                s["observedGeneration"] = gen
                s["lastAttemptedReleaseActionDuration"] = "%.3fs" % (time.monotonic() - t0)
                for k in ("failures", "installFailures", "upgradeFailures"):
                    s.pop(k, None)
                handled(s)
            self._emit(self._status_write(ns, name, done), "Normal", Action + "Succeeded", msg, "helm-controller")
        else:
            msg = "Helm %s failed for release %s/%s with chart %s@%s: %s" % (
                action, release_ns, release_name, chart_name, version, failure)
            entry["status"] = "failed"

            def failed(s, o):
                c = _drop(s.get("conditions"), "Reconciling")
                c = _merge_cond(c, "Stalled", "True", "RetriesExceeded",
                                "Failed to %s after 1 attempt(s)" % action, gen)
                c = _merge_cond(c, "Ready", "False", Action + "Failed", msg, gen)
                c = _merge_cond(c, "Released", "False", Action + "Failed", msg, gen)
                s["conditions"] = c
                s["history"] = [entry] + [dict(h) for h in (s.get("history") or [])][:4]
                s["observedGeneration"] = gen
                s["failures"] = s.get("failures", 0) + 1
                key = action + "Failures"
                s[key] = s.get(key, 0) + 1
                handled(s)
            self._emit(self._status_write(ns, name, failed), "Warning", Action + "Failed", msg, "helm-controller")

    def _sync_helmchart(self, src_ns, ns, name, chart, version, constraint_s):
        api = self.api
        hc_name = "%s-%s" % (ns, name)
        if api.get("Namespace", src_ns) is None:
            return
        src = chart.get("sourceRef") or {}
        obj = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
               "metadata": {"name": hc_name, "namespace": src_ns},
               "spec": {"chart": chart.get("chart", ""), "interval": "1m0s", "reconcileStrategy": "ChartVersion",
                        "sourceRef": {"kind": src.get("kind", "HelmRepository"), "name": src.get("name", "")},
                        "version": constraint_s}}
        try:
            hc, _ = api.apply(obj, manager="helm-controller")
        except ApiError:
            return
        gen = hc["metadata"].get("generation")
        st = dict(hc.get("status") or {})
        if version is None:
            if is_exact(constraint_s):
                err = "failed to download chart for remote reference: failed to get '%s/%s:%s': not found" % (
                    self.chart_url, chart.get("chart", ""), constraint_s)
            else:
                err = "failed to get chart version for remote reference: could not locate a version matching " \
                      "provided version string %s" % constraint_s
            c = _merge_cond(st.get("conditions"), "FetchFailed", "True", "ChartPullError", err, gen)
            st["conditions"] = _merge_cond(c, "Ready", "False", "ChartPullError", err, gen)
        else:
            msg = "pulled '%s' chart with version '%s'" % (chart.get("chart", ""), version)
            c = _drop(st.get("conditions"), "FetchFailed", "Reconciling")
            c = _merge_cond(c, "ArtifactInStorage", "True", "ChartPullSucceeded", msg, gen)
            st["conditions"] = _merge_cond(c, "Ready", "True", "ChartPullSucceeded", msg, gen)
            path = "helmchart/%s/%s/%s-%s.tgz" % (src_ns, hc_name, chart.get("chart", ""), version)
            st["artifact"] = {"digest": _sha256(path.encode()), "lastUpdateTime": now_rfc3339(), "path": path,
                              "revision": version, "size": 4096,
                              "url": "http://source-controller.flux-system.svc.cluster.local./" + path}
            st["observedChartName"] = chart.get("chart", "")
        st["observedGeneration"] = gen
        if st != (hc.get("status") or {}):
            api.set_status("HelmChart", src_ns, hc_name, st, manager="source-controller")


class _ApplyError(Exception):
    pass


def _obj_path(o):
    md = o.get("metadata") or {}
    return "%s/%s" % (md["namespace"], md["name"]) if md.get("namespace") else md.get("name", "")

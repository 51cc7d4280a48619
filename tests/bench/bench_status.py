#!/usr/bin/env python3
"""Observed-state benchmark: landlord following a cluster with thousands of
tenants (the stand-in Kubernetes API of tests/support/kubeapi.py), as
figures and ratios.  Prints; asserts nothing.

Figures:
  latency   a HelmRelease of a tenant turns Ready in the API server ->
            a `GET /api/v1/tenants/{id}?wait=ready` already waiting answers
            `ready` (p50, p99), with N tenants watched
  memory    landlord's RSS with N tenants watched, and after more
            HelmReleases are added until M objects are watched
  reads     `GET /api/v1/tenants/{id}` with wrk (64 keep-alive connections,
            a bearer token on every request) against nginx serving the same
            JSON from a file (sent the same requests), in pairs measured back
            to back: both quiet, then both while a thread keeps changing
            HelmRelease statuses in the stand-in (on the same cores), so each
            ratio compares the two under the same load; --rounds pairs each

Usage:
    LANDLORD_BIN=build/landlord tests/bench/bench_status.py [--tenants 10000]
        [--objects 100000] [--samples 50] [--rounds 3] [--quick]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import bench_gitops  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import Server, free_port  # noqa: E402
import harness  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402

TIERS = bench_gitops.TIERS
KS_LABELS = {"kustomize.toolkit.fluxcd.io/name": "dataplane-tenants",
             "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def helmrelease(name, generation=1, ready=True):
    conds = ([{"type": "Ready", "status": "True", "reason": "InstallSucceeded", "observedGeneration": generation,
               "lastTransitionTime": "2026-11-23T10:00:00Z",
               "message": "Helm install succeeded for release %s with chart helm-tenant-chart@0.0.1" % name},
              {"type": "Released", "status": "True", "reason": "InstallSucceeded",
               "lastTransitionTime": "2026-11-23T10:00:00Z", "message": "installed"}]
             if ready else
             [{"type": "Reconciling", "status": "True", "reason": "Progressing",
               "lastTransitionTime": "2026-11-23T10:00:00Z",
               "message": "Running 'upgrade' action with timeout of 5m0s"},
              {"type": "Ready", "status": "Unknown", "reason": "Progressing",
               "lastTransitionTime": "2026-11-23T10:00:00Z",
               "message": "Running 'upgrade' action with timeout of 5m0s"}])
    return {"observedGeneration": generation, "lastAttemptedRevision": "0.0.1", "conditions": conds,
            "history": [{"name": name, "namespace": "flux-system", "version": 1, "status": "deployed",
                         "chartName": "helm-tenant-chart", "chartVersion": "0.0.1",
                         "digest": "sha256:" + "0" * 64, "configDigest": "sha256:" + "1" * 64,
                         "firstDeployed": "2026-11-23T10:00:00Z", "lastDeployed": "2026-11-23T10:00:00Z"}]}


def hr_object(name, spec=None):
    """A HelmRelease as the cluster holds it: with the spec its file declares
    (what kustomize-controller applied), or a made-up one."""
    spec = spec or {"interval": "1m0s", "chart": {"spec": {"chart": "helm-tenant-chart", "version": "0.0.x",
                                                           "sourceRef": {"kind": "HelmRepository",
                                                                         "name": "helm-tenant-chart"}}}}
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "flux-system", "generation": 1, "labels": dict(KS_LABELS)},
            "spec": spec, "status": helmrelease(name)}


def tier_specs():
    """Each tier's HelmRelease spec as bench_gitops.make_repo renders it,
    with TENANT standing for the id."""
    files = bench_gitops.seed_files()
    out = {}
    for t in TIERS:
        text = files[bench_gitops.ROOT + "/tier-templates/%s_tenant_template.yaml" % t].decode()
        text = text.replace("{TIER}", t).replace("{RELEASE_VERSION}", "0.0.x")
        out[t] = text
    return out


def file_spec(tmpl, tid):
    for doc in yaml.safe_load_all(tmpl.replace("{TENANT_ID}", tid)):
        if doc and doc.get("kind") == "HelmRelease":
            return doc["spec"]
    return None


def populate(api, n, head):
    """The Flux objects of a cluster where every tenant is ready at head."""
    rev = "main@sha1:" + head
    api.put({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
             "metadata": {"name": "flux-system", "namespace": "flux-system", "generation": 1},
             "spec": {"url": "http://git.example/gitops.git", "interval": "1m0s", "ref": {"branch": "main"}},
             "status": {"observedGeneration": 1, "artifact": {"revision": rev},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                        "lastTransitionTime": "2026-11-23T10:00:00Z",
                                        "message": "stored artifact for revision '%s'" % rev}]}})
    api.put({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
             "metadata": {"name": "dataplane-tenants", "namespace": "flux-system", "generation": 1},
             "spec": {"interval": "1m0s", "path": "./application-plane/production/tenants", "prune": True,
                      "sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
             "status": {"observedGeneration": 1, "lastAppliedRevision": rev, "lastAttemptedRevision": rev,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                        "lastTransitionTime": "2026-11-23T10:00:00Z",
                                        "message": "Applied revision: " + rev}]}})
    specs = tier_specs()
    for i in range(n):
        tid = "pre%06d" % i
        tier = TIERS[i % 3]
        api.put(hr_object("%s-%s" % (tid, tier), file_spec(specs[tier], tid)))
        if tier != "basic":
            api.put({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": tid, "labels": dict(KS_LABELS)}, "status": {"phase": "Active"}})


def wait_for(fn, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    sys.exit("timed out waiting for " + what)


def ready_count(s):
    text = s.get("/metrics").body.decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("landlord_tenants{") and 'state="ready"' in line)


def latency(s, api, samples, n):
    """HelmRelease Ready in the API server -> a waiting GET answers ready."""
    out = []
    for k in range(samples):
        i = 3 * random.randrange(1, min(1000, n // 3))  # basic tenants: one object each
        tid, name = "pre%06d" % i, "pre%06d-basic" % i
        api.set_status("helmreleases", "flux-system", name, helmrelease(name, ready=False))
        wait_for(lambda: s.get("/api/v1/tenants/" + tid).json["state"] != "ready", 10, "not ready")
        box = {}

        def waiter():
            r = s.get("/api/v1/tenants/%s?wait=ready&timeout=30" % tid, timeout=60)
            box["t"] = time.perf_counter()
            box["state"] = r.json.get("state")

        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.05)  # the GET is parked on the server
        t0 = time.perf_counter()
        api.set_status("helmreleases", "flux-system", name, helmrelease(name, ready=True))
        th.join()
        if box.get("state") != "ready":
            print("  sample %d: answered %r" % (k, box.get("state")))
            continue
        out.append((box["t"] - t0) * 1000)
    return out


def wrk_get(url, seconds, token=None):
    auth = ["-H", "Authorization: Bearer " + token] if token else []
    p = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % seconds] + auth + [url], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return float("nan")


class Nginx:
    """nginx serving body from a file (the baseline for reads), running
    until stop()."""

    def __init__(self, body):
        self.proc = None
        self.dir = None
        self.url = None
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not nginx:
            return
        self.dir = tempfile.mkdtemp(prefix="landlord-nginx-")
        with open(os.path.join(self.dir, "tenant.json"), "wb") as f:
            f.write(body)
        port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("daemon off; worker_processes 2; pid %s/nginx.pid; error_log %s/error.log;\n"
                    "events { worker_connections 1024; }\n"
                    "http { access_log off; keepalive_requests 1000000;\n"
                    "  server { listen 127.0.0.1:%d; root %s; default_type application/json; } }\n"
                    % (self.dir, self.dir, port, self.dir))
        self.proc = subprocess.Popen([nginx, "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        self.url = "http://127.0.0.1:%d/tenant.json" % port

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Churn:
    """A thread flipping HelmRelease statuses in the stand-in as fast as it
    can (basic tenants other than the one read), counting the changes."""

    def __init__(self, api, tenants):
        self.api = api
        self.tenants = tenants
        self.stop_ev = threading.Event()
        self.changes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = self.tenants
        while not self.stop_ev.is_set():
            i = 3 * random.randrange(min(1000, n // 6), n // 3)
            name = "pre%06d-basic" % i
            self.api.set_status("helmreleases", "flux-system", name, helmrelease(name, ready=self.changes % 2 == 0))
            self.changes += 1

    def measure(self, fn):
        """fn() while the churn runs, and the changes per second meanwhile."""
        c0, t0 = self.changes, time.time()
        v = fn()
        return v, (self.changes - c0) / (time.time() - t0)

    def stop(self):
        self.stop_ev.set()
        self.thread.join()


def reads(s, api, tenants, seconds, rounds):
    """wrk on one tenant's GET against nginx serving the same JSON, quiet
    and while statuses change; each condition's pair measured back to back
    under the same load, so each ratio compares like with like."""
    url = "http://127.0.0.1:%d/api/v1/tenants/pre000001" % s.port
    tok = s.admin_token
    body = s.get("/api/v1/tenants/pre000001").body
    ng = Nginx(body)
    rows = []
    try:
        if not ng.url:
            print("  (nginx not installed: no baseline; apt-get install -y nginx-light)")
        for k in range(rounds):
            quiet = wrk_get(url, seconds, tok)
            quiet_base = wrk_get(ng.url, seconds, tok) if ng.url else float("nan")
            churn = Churn(api, tenants)
            try:
                busy, rate = churn.measure(lambda: wrk_get(url, seconds, tok))
                busy_base, base_rate = churn.measure(
                    lambda: wrk_get(ng.url, seconds, tok) if ng.url else float("nan"))
            finally:
                churn.stop()
            rows.append((quiet, quiet_base, busy, rate, busy_base, base_rate))
            print("  round %d: quiet %.0f vs nginx %.0f req/s (%.2fx); with status changes %.0f req/s "
                  "(%.0f changes/s) vs nginx %.0f req/s (%.0f changes/s) (%.2fx)"
                  % (k + 1, quiet, quiet_base, quiet / quiet_base, busy, rate, busy_base, base_rate,
                     busy / busy_base))
    finally:
        ng.stop()
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    qr = statistics.median(r[0] / r[1] for r in rows)
    br = statistics.median(r[2] / r[4] for r in rows)
    print("GET /api/v1/tenants/{id}, 64 connections, bearer token, median of %d rounds: quiet %.0f req/s vs "
          "nginx %.0f: %.2fx; while %.0f status changes/s arrive (the stand-in, on the same cores) %.0f req/s "
          "vs nginx under the same churn %.0f: %.2fx (target >= 0.5 both)"
          % (len(rows), med(0), med(1), qr, med(3), med(2), med(4), br))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=10000)
    ap.add_argument("--objects", type=int, default=100000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0, help="rounds of read measurements (default 3, 1 with --quick)")
    args = ap.parse_args()
    seconds = 5 if args.quick else 10
    args.rounds = args.rounds or (1 if args.quick else 3)
    harness.START_TIMEOUT = 900

    print("load average at start: %.2f %.2f %.2f (%d cores)" % (os.getloadavg() + (os.cpu_count(),)))
    gs = GitServer().start()
    api = KubeAPI(tls=True, tokens={"bench-token": "landlord"}, history_size=200000).start()
    work = tempfile.mkdtemp(prefix="landlord-bench-")
    s = None
    try:
        pw = gs.write_password_file("s3cret")
        bench_gitops.make_repo(gs, "r", args.tenants)
        head = subprocess.run(["git", "--git-dir", gs.path("r"), "rev-parse", "main"], capture_output=True,
                              text=True, check=True).stdout.strip()
        t0 = time.time()
        populate(api, args.tenants, head)
        print("stand-in populated with %d tenants' objects in %.1f s" % (args.tenants, time.time() - t0))
        kc = os.path.join(work, "kubeconfig")
        api.kubeconfig(kc, token="bench-token")
        s = Server(args=["--git-url", gs.url("r"), "--git-username", "landlord", "--git-password-file", pw,
                         "--kubeconfig", kc, "--log-level", "warn", "--http-threads", "4",
                         "--flux-reconcile-now", "0"])
        s.start_timeout = 900
        t0 = time.time()
        s.start()
        wait_for(lambda: ready_count(s) >= args.tenants, 600, "every tenant ready")
        print("landlord start until every tenant reads ready: %.1f s" % (time.time() - t0))
        print("RSS with %d tenants watched (%d objects): %.1f MB"
              % (args.tenants, len(api.objects("helmreleases", copy=False))
                 + len(api.objects("namespaces", copy=False)), rss_mb(s.proc.pid)))

        lat = latency(s, api, 10 if args.quick else args.samples, args.tenants)
        if lat:
            print("HelmRelease Ready -> API reads ready (%d tenants watched): p50 %.1f ms, p99 %.1f ms "
                  "(target p99 <= 100 ms)" % (args.tenants, statistics.median(lat), pct(lat, 99)))

        reads(s, api, args.tenants, seconds, args.rounds)

        # More watched objects (HelmReleases no tenant declares).
        extra = args.objects - args.tenants - args.tenants * 2 // 3
        t0 = time.time()
        for i in range(max(0, extra)):
            api.put(hr_object("other%06d" % i))
        watched = args.tenants + args.tenants * 2 // 3 + max(0, extra)

        def seen():
            kube = s.get("/readyz").json["checks"]["kube"]
            hr = [w for w in kube["watches"] if w["kind"] == "HelmRelease"][0]
            return hr["objects"] >= args.tenants + max(0, extra)

        wait_for(seen, 900, "every object watched")
        print("RSS with %d tenants and %d objects watched: %.1f MB (target <= 100 MB; %.0f s to add them)"
              % (args.tenants, watched, rss_mb(s.proc.pid), time.time() - t0))
    finally:
        if s:
            s.stop()
        api.stop()
        gs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Observed state end to end: landlord pushing to a real Git server
(tests/support/gitserver.py), a Flux simulator (tests/support/fluxsim.py)
reconciling what it pushed into a stand-in Kubernetes API
(tests/support/kubeapi.py), and landlord following Flux through that API.

Covers (issue 4, docs/api.md "Observed state", "Events and webhooks"):
  - onboarding reaches `ready` (reason, message, observed commits and charts,
    objects, state_since; `?wait=ready`), a pinned release, a failed install
    and a missing chart version (`failed`, `?wait=ready` answering early), an
    update (`updating`, never `provisioning`, then `ready` at the new commit),
    offboarding (`offboarding` while the objects exist, then `offboarded`),
    the `reconcile.fluxcd.io/requestedAt` annotation after each push and
    when Flux handled it, HelmReleases watched as v2beta1;
  - faults of the Kubernetes API: a watch expired after compaction (410, list
    again), the API down at start then up, down then back, a malformed watch
    line, an unknown token (401), a token without permission (403), a rotated
    token file; landlord never crashes and recovers without a restart;
  - Server-Sent Events (`/api/v1/events`: live, `Last-Event-ID`, `?after=`,
    `?tenant=`, bad input), webhooks (subscription, secret shown once, signed
    deliveries, retries after 1 and 2 s, a failure reaching its webhook, a
    receiver that never answers,
    bad input, delete) and `/metrics`;
  - no cluster configured: `unknown` "no cluster configured", `/readyz` kube
    `not-configured`, `?wait=ready` answering at once.
"""

import hashlib
import hmac
import http.server
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from common import poll  # noqa: E402
from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import HEX40, RFC3339_MS, LandlordTestCase, Server, make_temp_dir, onboard  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402

USER = "landlord"
PASSWORD = "s3cret"
CHARTS = ["0.0.1", "1.2.3"]
FLUX_NS = "flux-system"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
WATCHED = ("GitRepository", "Kustomization", "HelmRelease", "Namespace")
READY_TIMEOUT = 30  # ?wait=ready&timeout=... for a tenant that must get ready
RECOVER_TIMEOUT = 20.0  # seconds landlord may take to follow the API again after a fault

GS = None
_repos = itertools.count(1)


def setUpModule():
    global GS
    GS = GitServer(users={USER: PASSWORD}).start()


def tearDownModule():
    if GS is not None:
        GS.stop()
        GS.cleanup()


class Stack:
    """A Git repository on GS, a KubeAPI stand-in, landlord following it and a
    FluxSim reconciling the repository into it (started after landlord, which
    seeds the repository).  kube_token: the token landlord's kubeconfig
    carries (default the first known one); token_file: use a tokenFile
    instead; sim=False: no Flux."""

    def __init__(self, tokens=None, kube_token=None, token_file=None, sim=True, bookmark_interval=1.0,
                 landlord_args=(), forbid=None, api_down=False, terraform=False, helm_versions=None):
        self.repo = "gitops-%d" % next(_repos)
        GS.create_repo(self.repo)
        self.api = KubeAPI(tls=True, tokens=tokens or {"tok-1": "landlord"}, forbid=forbid,
                           bookmark_interval=bookmark_interval, terraform=terraform,
                           helm_versions=helm_versions).start()
        self.dir = make_temp_dir("landlord-status-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        if token_file:
            self.api.kubeconfig(self.kubeconfig, token_file=token_file)
        else:
            self.api.kubeconfig(self.kubeconfig, token=kube_token)
        pw = GS.write_password_file(PASSWORD)
        if api_down:
            self.api.go_down()
        self.server = Server(args=["--git-url", GS.url(self.repo), "--git-username", USER,
                                   "--git-password-file", pw, "--kubeconfig", self.kubeconfig,
                                   "--git-poll-interval", "1"] + list(landlord_args),
                             webhook_allow="127.0.0.0/8")  # the webhook receivers are on loopback
        self.sim = None
        self.server.start()
        if api_down:
            self.api.come_back() if sim else None
        if sim:
            self.sim = FluxSim(self.api, GS.authed_url(self.repo), git_env=GS.git_env(),
                               chart_versions=CHARTS).start()

    def stop(self):
        """Stops everything; returns landlord's exit code."""
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        code = self.server.stop()
        self.server.kill()
        self.api.stop()
        return code

    def kube_check(self):
        return self.server.get("/readyz").json["checks"]["kube"]

    def wait_kube_ok(self, timeout=RECOVER_TIMEOUT):
        last = {}

        def ok():
            k = last["k"] = self.kube_check()
            synced = all(w["synced"] for w in k.get("watches") or [])
            return k if k["status"] == "ok" and synced and k.get("watches") else None
        try:
            return poll(ok, timeout)
        except AssertionError:
            raise AssertionError("/readyz kube check not ok with every watch synced within %.0f s "
                                 "(%d watches open in the stand-in): %s"
                                 % (timeout, self.api.open_watches(), json.dumps(last.get("k"), indent=1)))


class StatusTestCase(LandlordTestCase):
    """Helpers shared by the classes below."""

    @classmethod
    def start_stack(cls, **kw):
        st = Stack(**kw)
        if "_shared_servers" not in cls.__dict__:
            cls._shared_servers = []
        cls._shared_servers.append(st.server)
        return st

    def new_stack(self, **kw):
        st = Stack(**kw)

        def stop():
            self.assertEqual(st.stop(), 0, "landlord exits 0 on SIGTERM")
        self.addCleanup(stop)
        return st

    def tenant(self, server, tid):
        return self.assertJson(server.get("/api/v1/tenants/" + tid), 200)

    def onboard_ok(self, server, tid, tier="premium", **kw):
        r = onboard(server, tid, tier, **kw)
        t = self.assertJson(r, 201, "onboard %s" % tid)
        self.assertRegex(t["commit"] or "", HEX40)
        return t

    def wait_ready(self, server, tid, timeout=READY_TIMEOUT):
        """GET ?wait=ready; returns (tenant, seconds it took)."""
        t0 = time.monotonic()
        r = server.get("/api/v1/tenants/%s?wait=ready&timeout=%d" % (tid, timeout), timeout=timeout + 30)
        took = time.monotonic() - t0
        return self.assertJson(r, 200, "wait=ready %s" % tid), took

    def assertReady(self, server, tid, commit=None, chart=None, timeout=READY_TIMEOUT):
        t, took = self.wait_ready(server, tid, timeout)
        self.assertEqual(t["state"], "ready", "%s after %.1f s: %s" % (tid, took, json.dumps(t, indent=1)))
        obs = t.get("observed") or {}
        if commit is not None:
            self.assertEqual(obs.get("desired_commit"), commit, json.dumps(t, indent=1))
            self.assertEqual(obs.get("applied_commit"), commit, json.dumps(t, indent=1))
        if chart is not None:
            self.assertEqual(obs.get("deployed_chart"), chart, json.dumps(t, indent=1))
        return t

    def wait_state(self, server, tid, states, timeout=RECOVER_TIMEOUT):
        states = (states,) if isinstance(states, str) else tuple(states)
        last = {}

        def ok():
            last["t"] = self.tenant(server, tid)
            return last["t"] if last["t"]["state"] in states else None
        try:
            return poll(ok, timeout, 0.05, "tenant %s in %s" % (tid, states))
        except AssertionError:
            t = last.get("t") or {}
            raise AssertionError("tenant %s did not reach %s within %.0f s; it is %s (%s: %s)"
                                 % (tid, states, timeout, t.get("state"), t.get("state_reason"),
                                    t.get("state_message")))


# -- the tenant lifecycle --------------------------------------------------------------------------------


class SharedStackTestCase(StatusTestCase):
    """One stack for the whole class: cls.st, its landlord cls.s, which must
    exit 0 on SIGTERM once the class is done."""

    @classmethod
    def setUpClass(cls):
        cls.st = cls.start_stack()
        cls.s = cls.st.server

    @classmethod
    def tearDownClass(cls):
        code = cls.st.stop()
        cls._shared_servers = []
        assert code == 0, "landlord did not exit 0 on SIGTERM: %r" % code


class LifecycleTest(SharedStackTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = cls.st.api
        cls.sim = cls.st.sim

    def test_onboarding_reaches_ready(self):
        t0 = self.onboard_ok(self.s, "acme", "premium")
        commit = t0["commit"]
        t, took = self.wait_ready(self.s, "acme")
        ctx = json.dumps(t, indent=1)
        self.assertEqual(t["state"], "ready", ctx)
        self.assertLess(took, 20, "wait=ready answered once ready, not at the timeout")
        self.assertEqual(t["state_reason"], "InstallSucceeded", ctx)
        self.assertIn("acme-premium", t.get("state_message") or "", ctx)
        self.assertRegex(t.get("state_since") or "", RFC3339_MS, ctx)
        obs = t["observed"]
        self.assertEqual(obs["desired_commit"], commit, ctx)
        self.assertEqual(obs["applied_commit"], commit, ctx)
        self.assertEqual(obs["fetched_commit"], commit, ctx)
        self.assertEqual(obs["desired_chart"], "0.0.x", ctx)
        self.assertEqual(obs["deployed_chart"], "0.0.1", ctx)
        objs = {(o["kind"], o["key"]): o for o in obs["objects"]}
        self.assertEqual(set(objs), {("Namespace", "acme"), ("HelmRelease", "flux-system/acme-premium")}, ctx)
        for o in objs.values():
            self.assertEqual(o["state"], "ready", ctx)
        hr = objs[("HelmRelease", "flux-system/acme-premium")]
        self.assertEqual(hr.get("desired_chart"), "0.0.x", ctx)
        self.assertEqual(hr.get("deployed_chart"), "0.0.1", ctx)
        self.assertEqual(hr.get("generation"), hr.get("observed_generation"), ctx)
        # What landlord reports is what the cluster has.
        self.assertIsNotNone(self.api.get("Namespace", None, "acme"))
        live = self.api.get("HelmRelease", FLUX_NS, "acme-premium")
        self.assertEqual(live["status"]["history"][0]["chartVersion"], "0.0.1")
        # A plain GET agrees, and lists filter on the observed state.
        self.assertEqual(self.tenant(self.s, "acme")["state"], "ready")
        items = self.assertJson(self.s.get("/api/v1/tenants?state=ready&limit=500"), 200)["items"]
        self.assertIn("acme", [i["id"] for i in items])

    def test_pinned_release(self):
        t0 = self.onboard_ok(self.s, "pinned", "basic", release="1.2.3")
        t = self.assertReady(self.s, "pinned", commit=t0["commit"], chart="1.2.3")
        self.assertEqual(t["observed"]["desired_chart"], "1.2.3")
        kinds = [(o["kind"], o["key"]) for o in t["observed"]["objects"]]
        self.assertEqual(kinds, [("HelmRelease", "flux-system/pinned-basic")],
                         "basic declares only a HelmRelease")
        self.sim.wait_release(FLUX_NS, "pinned-basic", version="1.2.3")

    def test_failed_install(self):
        message = "simulated failure: quota exhausted 7f3a"
        self.sim.fail_install(names=["boom"], message=message)
        self.onboard_ok(self.s, "boom", "premium")
        t, took = self.wait_ready(self.s, "boom")
        ctx = json.dumps(t, indent=1)
        self.assertEqual(t["state"], "failed", ctx)
        self.assertLess(took, 20, "wait=ready answers as soon as the tenant failed")
        self.assertEqual(t["state_reason"], "InstallFailed", ctx)
        self.assertIn(message, t.get("state_message") or "", ctx)
        self.assertIn("boom-premium", t.get("state_message") or "", "the message names the object")

    def test_missing_chart_version(self):
        self.onboard_ok(self.s, "nochart", "basic", release="9.9")
        t, took = self.wait_ready(self.s, "nochart")
        ctx = json.dumps(t, indent=1)
        self.assertEqual(t["state"], "failed", ctx)
        self.assertLess(took, 20, "wait=ready answers as soon as the tenant failed")
        self.assertEqual(t["state_reason"], "SourceNotReady", ctx)
        self.assertEqual(t["observed"]["desired_chart"], "9.9.x", ctx)
        self.assertIsNone(t["observed"]["deployed_chart"], ctx)

    def test_update_then_ready_at_the_new_commit(self):
        t0 = self.onboard_ok(self.s, "upd", "premium")
        self.assertReady(self.s, "upd", commit=t0["commit"], chart="0.0.1")
        stream = EventStream(self.s, "/api/v1/events?tenant=upd")
        self.addCleanup(stream.close)
        r = self.s.request("PATCH", "/api/v1/tenants/upd", json_body={"values": {"replicaCount": 3}})
        t1 = self.assertJson(r, 200)
        self.assertNotEqual(t1["commit"], t0["commit"])
        self.assertIn(t1["state"], ("updating", "ready"), json.dumps(t1, indent=1))
        t = self.assertReady(self.s, "upd", commit=t1["commit"], chart="0.0.1")
        self.assertEqual(t["state_reason"], "UpgradeSucceeded", json.dumps(t, indent=1))
        live = self.api.get("HelmRelease", FLUX_NS, "upd-premium")
        self.assertEqual(live["spec"]["values"].get("replicaCount"), 3)
        # Every transition after the change is updating or ready, never
        # provisioning (the release was installed before); a tenant that
        # went straight back to ready made no transition at all.
        evs = []
        while True:
            e = stream.next(2.0)
            if e is None:
                break
            evs.append(e["data"]["data"])
            if evs[-1]["state"] == "ready":
                break
        states = [d["state"] for d in evs]
        self.assertTrue(set(states) <= {"updating", "ready"}, states)
        if evs:
            self.assertEqual(evs[0]["previous"], "ready", evs)
            self.assertEqual(states[-1], "ready", evs)
            self.assertEqual(evs[-1]["desired_commit"], t1["commit"], evs)
            self.assertEqual(evs[-1]["applied_commit"], t1["commit"], evs)

    def test_offboarding_until_the_objects_are_gone(self):
        self.onboard_ok(self.s, "bye", "premium")
        self.assertReady(self.s, "bye")
        self.sim.pause()
        try:
            r = self.s.delete("/api/v1/tenants/bye")
            t = self.assertJson(r, 200)
            self.assertEqual(t["state"], "offboarding", json.dumps(t, indent=1))
            time.sleep(0.5)
            t = self.tenant(self.s, "bye")
            self.assertEqual(t["state"], "offboarding", "Flux has not pruned anything yet")
            self.assertIsNotNone(self.api.get("HelmRelease", FLUX_NS, "bye-premium"))
        finally:
            self.sim.resume()
        seen = []

        def done():
            t = self.tenant(self.s, "bye")
            seen.append(t["state"])
            if t["state"] == "offboarded":
                return t
            return None
        poll(done, 20, msg="offboarded once Flux pruned the objects")
        # Landlord saw them go, so the stand-in no longer has them.
        self.assertIsNone(self.api.get("HelmRelease", FLUX_NS, "bye-premium"))
        self.assertIsNone(self.api.get("Namespace", None, "bye"))
        self.assertEqual(set(seen) - {"offboarding", "offboarded"}, set(), seen)

    def test_offboarded_tenants_are_forgotten_and_still_read_offboarded(self):
        """Issue 10: the follower keeps no record of a tenant that is
        offboarded and read so (else every tenant ever onboarded would stay
        in memory); such a tenant still reads offboarded, with its time, from
        its registry row, and one onboarded again is followed anew."""
        st = self.new_stack(landlord_args=["--log-level", "debug"])
        s, n = st.server, 72
        ids = ["gone-%02d" % i for i in range(n)]

        def each(fn):
            threads = [threading.Thread(target=fn, args=(ids[k::8],)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        def onboard_all(part):
            for tid in part:
                self.assertEqual(onboard(s, tid, "basic").status, 201, tid)

        def offboard_all(part):
            for tid in part:
                self.assertEqual(s.delete("/api/v1/tenants/" + tid).status, 200, tid)

        each(onboard_all)
        for tid in ids:
            self.assertReady(s, tid)
        each(offboard_all)
        poll(lambda: "forgot offboarded tenants" in s.stderr_text(), READY_TIMEOUT,
             msg="the follower forgets the offboarded tenants")
        forgot = re.search(r'msg="forgot offboarded tenants" count=(\d+)', s.stderr_text())
        self.assertGreaterEqual(int(forgot.group(1)), 64, forgot.group(0))
        for tid in ids:
            t = self.wait_state(s, tid, ("offboarded",))
            self.assertEqual((t["state"], t["state_reason"], t["state_message"]),
                             ("offboarded", "Deleted", "the tenant's objects are gone"), json.dumps(t, indent=1))
            self.assertRegex(t["state_since"] or "", RFC3339_MS, json.dumps(t, indent=1))
        listed = self.assertJson(s.get("/api/v1/tenants?state=offboarded&limit=200"), 200)
        self.assertEqual({t["id"] for t in listed["items"]} & set(ids), set(ids))
        # back again: followed anew, and ready
        self.onboard_ok(s, ids[0], "basic")
        self.assertReady(s, ids[0])

    def test_reconcile_requested_after_each_push(self):
        self.onboard_ok(self.s, "poke1", "basic")

        def annotation():
            gr = self.api.get("GitRepository", FLUX_NS, "flux-system") or {}
            return ((gr.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_AT)
        first = poll(annotation, 10, msg="GitRepository annotated with %s" % REQUESTED_AT)
        self.onboard_ok(self.s, "poke2", "basic")
        second = poll(lambda: annotation() if annotation() != first else None, 10,
                      msg="a new %s after the next push" % REQUESTED_AT)
        self.assertNotEqual(first, second)
        # When Flux handled it shows on /readyz (lastHandledReconcileAt).
        def handled():
            rec = self.s.get("/readyz").json["checks"]["kube"].get("reconcile") or {}
            return rec if rec.get("requested_at") and rec.get("handled_at") == rec["requested_at"] else None
        rec = poll(handled, 10, msg="/readyz shows the reconcile request handled")
        gr = self.api.get("GitRepository", FLUX_NS, "flux-system")
        self.assertEqual(gr["status"].get("lastHandledReconcileAt"), rec["handled_at"])

    def test_helmrelease_v2beta1(self):
        """With --flux-helm-version v2beta1 (a reference-shaped repository's
        templates), landlord watches that version and tenants still get
        ready."""
        st = self.new_stack(landlord_args=["--flux-helm-version", "v2beta1"])
        t = self.onboard_ok(st.server, "beta1", "premium")
        self.assertReady(st.server, "beta1", commit=t["commit"], chart="0.0.1")
        paths = [str(r) for r in st.api.requests]
        self.assertTrue(any("/apis/helm.toolkit.fluxcd.io/v2beta1/helmreleases" in p for p in paths),
                        "landlord listed or watched v2beta1 HelmReleases")
        self.assertFalse(any("/apis/helm.toolkit.fluxcd.io/v2/helmreleases" in p for p in paths),
                         "and not v2")

    def test_helmrelease_version_the_cluster_serves(self):
        """Asked for v2beta1 (a reference-shaped repository) by a cluster whose
        Flux serves only v2, landlord watches v2 (API discovery), tenants get
        ready, /readyz says which version it watches; a tier whose template
        declares v2beta1 is reported on /readyz and on the tier, with the fix."""
        st = self.new_stack(landlord_args=["--flux-helm-version", "v2beta1"], helm_versions=["v2"])
        t = self.onboard_ok(st.server, "served", "premium")
        self.assertReady(st.server, "served", commit=t["commit"], chart="0.0.1")
        paths = [str(r) for r in st.api.requests]
        self.assertTrue(any("/apis/helm.toolkit.fluxcd.io/v2/helmreleases" in p for p in paths),
                        "landlord listed or watched v2 HelmReleases")
        self.assertFalse(any("/apis/helm.toolkit.fluxcd.io/v2beta1/helmreleases" in p for p in paths),
                         "and never the version the cluster does not serve")
        ready = self.assertJson(st.server.get("/readyz"), 200)
        self.assertEqual(ready["checks"]["kube"]["helmreleases"], {"version": "v2", "served": ["v2"]})
        self.assertEqual(ready["checks"]["tiers"], {"status": "ok"})
        self.assertEqual(self.assertJson(st.server.get("/api/v1/tiers/premium"), 200)["cluster"],
                         {"status": "served"})
        # A tier written for v2beta1: Flux could not apply it here.
        tmpl = self.assertJson(st.server.get("/api/v1/tiers/premium"), 200)["template"]
        old = tmpl.replace("helm.toolkit.fluxcd.io/v2\n", "helm.toolkit.fluxcd.io/v2beta1\n").replace("premium", "legacy")
        self.assertIn("helm.toolkit.fluxcd.io/v2beta1", old)
        self.assertJson(st.server.request("PUT", "/api/v1/tiers/legacy", json_body={"template": old}), 201)
        tier = self.assertJson(st.server.get("/api/v1/tiers/legacy"), 200)
        self.assertEqual(tier["cluster"]["status"], "unserved")
        self.assertIn("helm.toolkit.fluxcd.io/v2beta1", tier["cluster"]["error"])
        self.assertIn("change the template's apiVersion to helm.toolkit.fluxcd.io/v2", tier["cluster"]["error"])
        r = st.server.get("/readyz")
        self.assertEqual(r.json["status"], "degraded")
        self.assertEqual(r.json["checks"]["tiers"]["status"], "failed")
        self.assertEqual([(v["tier"], v["rule"]) for v in r.json["checks"]["tiers"]["violations"]],
                         [("legacy", "api-version")])

    def test_metrics(self):
        self.onboard_ok(self.s, "metered", "premium")
        self.assertReady(self.s, "metered")

        def consistent():
            items = self.assertJson(self.s.get("/api/v1/tenants?limit=500"), 200)["items"]
            want = {}
            for i in items:
                want[(i["tier"], i["state"])] = want.get((i["tier"], i["state"]), 0) + 1
            r = self.s.get("/metrics")
            got = {}
            for m in re.finditer(r'^landlord_tenants\{tier="([^"]+)",state="([^"]+)"\} (\d+)$',
                                 r.body.decode(), re.M):
                if int(m.group(3)):
                    got[(m.group(1), m.group(2))] = int(m.group(3))
            return (r, got) if got == want else None
        r, got = poll(consistent, 10, 0.2, "landlord_tenants matches the tenants listed")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.content_type, "text/plain")
        self.assertGreaterEqual(got.get(("premium", "ready"), 0), 1)
        text = r.body.decode()
        m = re.search(r"^landlord_git_push_seconds_count (\d+)$", text, re.M)
        self.assertTrue(m and int(m.group(1)) > 0, text)
        for kind in WATCHED:
            self.assertRegex(text, r'(?m)^landlord_watch_restarts_total\{kind="%s"\} \d+$' % kind)
        self.assertRegex(text, r"(?m)^landlord_webhook_deliveries_total \d+$")


# -- faults of the Kubernetes API ----------------------------------------------------------------------


class ChartTerraformTest(StatusTestCase):
    """The reference's tenant chart makes a Terraform (tofu-controller) per
    tenant; helm-controller labels it with its HelmRelease.  The tenant is
    ready only when it is."""

    def test_terraform_made_by_the_chart(self):
        st = self.new_stack(terraform=True)
        s = st.server
        st.wait_kube_ok()
        ws = {w["kind"]: w for w in st.kube_check()["watches"]}
        self.assertIn("ChartTerraform", ws)
        self.assertFalse(ws["ChartTerraform"].get("absent"), ws)
        self.onboard_ok(s, "tfco", "premium")
        self.assertReady(s, "tfco")
        labels = {"helm.toolkit.fluxcd.io/name": "tfco-premium",
                  "helm.toolkit.fluxcd.io/namespace": FLUX_NS, "app.kubernetes.io/managed-by": "Helm"}

        def tf_status(ready, reason, message):
            return {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": message,
                 "lastTransitionTime": "2026-12-06T10:00:00Z"}]}
        # Another release's Terraform changes nothing for tfco.
        st.api.put({"apiVersion": "infra.contrib.fluxcd.io/v1alpha2", "kind": "Terraform",
                    "metadata": {"name": "other", "namespace": "other", "generation": 1,
                                 "labels": dict(labels, **{"helm.toolkit.fluxcd.io/name": "nobody"})},
                    "spec": {"path": "./tf"}, "status": tf_status("False", "TFExecApplyFailed", "x")})
        st.api.put({"apiVersion": "infra.contrib.fluxcd.io/v1alpha2", "kind": "Terraform",
                    "metadata": {"name": "tfco", "namespace": "tfco", "generation": 1, "labels": labels},
                    "spec": {"path": "./tf"},
                    "status": tf_status("Unknown", "Progressing", "Reconciliation in progress")})
        t = self.wait_state(s, "tfco", "updating")
        objs = {(o["kind"], o["key"]): o for o in t["observed"]["objects"]}
        self.assertIn(("Terraform", "tfco/tfco"), objs, json.dumps(t, indent=1))
        self.assertNotIn(("Terraform", "other/other"), objs)
        st.api.set_status("Terraform", "tfco", "tfco",
                          tf_status("True", "TerraformAppliedSucceed", "Applied successfully: main@sha1:abc"))
        t = self.wait_state(s, "tfco", "ready")
        self.assertEqual(t["state_reason"], "InstallSucceeded", "the HelmRelease speaks among equals")
        st.api.set_status("Terraform", "tfco", "tfco",
                          tf_status("False", "TFExecApplyFailed", "error creating SQS queue: denied"))
        t = self.wait_state(s, "tfco", "failed")
        self.assertEqual(t["state_reason"], "TFExecApplyFailed", json.dumps(t, indent=1))
        self.assertIn("error creating SQS queue", t["state_message"])
        self.assertIn("Terraform tfco/tfco", t["state_message"])
        st.api.delete("Terraform", "tfco", "tfco")
        t = self.wait_state(s, "tfco", "ready")
        self.assertNotIn(("Terraform", "tfco/tfco"), {(o["kind"], o["key"]) for o in t["observed"]["objects"]})


class KubeFaultTest(StatusTestCase):
    """Each test has its own stack: a fault that landlord does not get over
    must not fail the others."""

    def test_watch_expired_lists_again(self):
        # No bookmarks, so landlord's positions stay where its last event
        # left them and are all older than the compaction.
        st = self.new_stack(bookmark_interval=None)
        t = self.onboard_ok(st.server, "before")
        self.assertReady(st.server, "before", commit=t["commit"])
        st.wait_kube_ok()
        lists = {k: st.api.request_count(verb="list", kind=k) for k in WATCHED}
        # A write landlord does not watch, then etcd compacts past it.
        st.api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch-410"}})
        st.api.compact()
        st.api.cut_watches()

        def restarted():
            ws = {w["kind"]: w for w in st.kube_check()["watches"]}
            return ws if all(ws[k]["restarts"] > 0 and ws[k]["synced"] for k in WATCHED) else None
        poll(restarted, RECOVER_TIMEOUT, msg="every watch expired (410), listed again and synced")
        for k in WATCHED:
            self.assertGreater(st.api.request_count(verb="list", kind=k), lists[k], "list %s again" % k)
        text = st.server.get("/metrics").body.decode()
        m = re.search(r'(?m)^landlord_watch_restarts_total\{kind="HelmRelease"\} (\d+)$', text)
        self.assertTrue(m and int(m.group(1)) >= 1, text)
        # Later changes are still followed.
        t = self.onboard_ok(st.server, "after")
        self.assertReady(st.server, "after", commit=t["commit"], timeout=RECOVER_TIMEOUT)
        self.assertEqual(self.tenant(st.server, "before")["state"], "ready")
        st.wait_kube_ok()

    def test_api_down_then_back(self):
        st = self.new_stack()
        t = self.onboard_ok(st.server, "steady")
        self.assertReady(st.server, "steady", commit=t["commit"])
        st.api.go_down()
        try:
            def degraded():
                r = st.server.get("/readyz")
                return r if r.json["checks"]["kube"]["status"] == "degraded" else None
            r = poll(degraded, 10, msg="/readyz kube degraded while the API is down")
            self.assertEqual(r.status, 200, "the registry works: the API still takes writes")
            self.assertEqual(r.json["status"], "degraded", r.json)
            kube = r.json["checks"]["kube"]
            errors = [kube.get("error")] + [w.get("error") for w in kube.get("watches") or []]
            self.assertTrue(any(errors), kube)
            t = self.wait_state(st.server, "steady", "unknown", 10)
            self.assertTrue(t.get("state_reason"), t)
            # Lists filter on the state that GET shows.
            for state, present in (("unknown", True), ("ready", False)):
                r = st.server.get("/api/v1/tenants?limit=500&state=" + state)
                items = self.assertJson(r, 200)["items"]
                self.assertEqual("steady" in [i["id"] for i in items], present, (state, items))
            # Writes are still taken meanwhile, and landlord keeps answering.
            self.onboard_ok(st.server, "during")
            self.assertEqual(st.server.get("/healthz").status, 200)
            time.sleep(1.0)
            self.assertTrue(st.server.running, "landlord is still running")
        finally:
            st.api.come_back()
        self.wait_state(st.server, "steady", "ready")
        self.assertReady(st.server, "during", timeout=RECOVER_TIMEOUT)
        st.wait_kube_ok()
        self.assertTrue(st.server.running)

    def test_malformed_watch_line(self):
        st = self.new_stack()
        t = self.onboard_ok(st.server, "first")
        self.assertReady(st.server, "first", commit=t["commit"])
        watches = st.api.watch_count()
        st.api.send_malformed()
        poll(lambda: st.api.watch_count() > watches, 10, msg="landlord watches again")
        self.assertTrue(st.server.running, "a malformed line does not crash landlord")
        t = self.onboard_ok(st.server, "second")
        self.assertReady(st.server, "second", commit=t["commit"], timeout=RECOVER_TIMEOUT)
        self.assertEqual(self.tenant(st.server, "first")["state"], "ready")
        st.wait_kube_ok()

    def test_api_down_at_start_then_up(self):
        st = self.new_stack(api_down=True, sim=False)

        def degraded():
            k = st.kube_check()
            return k if k["status"] == "degraded" and k.get("error") else None
        poll(degraded, 10, msg="/readyz kube degraded while the API never answered")
        self.onboard_ok(st.server, "early")
        t = self.tenant(st.server, "early")
        self.assertEqual(t["state"], "unknown", t)
        self.assertTrue(t.get("state_reason"), t)
        st.api.come_back()
        st.sim = FluxSim(st.api, GS.authed_url(st.repo), git_env=GS.git_env(), chart_versions=CHARTS).start()
        st.wait_kube_ok(timeout=45)
        self.assertReady(st.server, "early")

    def test_forbidden(self):
        st = self.new_stack(forbid={"tok-1": ["helmreleases"]}, sim=False)

        def refused():
            k = st.kube_check()
            errors = [k.get("error")] + [w.get("error") for w in k.get("watches") or []]
            text = " ".join(str(e) for e in errors)
            return k if k["status"] == "degraded" and re.search(r"403|forbidden", text, re.I) else None
        k = poll(refused, 10, msg="/readyz kube degraded with an error saying 403 Forbidden")
        hr = [w for w in k["watches"] if w["kind"] == "HelmRelease"][0]
        self.assertFalse(hr["synced"], k)
        self.assertRegex(hr["error"] or "", re.compile(r"helmreleases", re.I))

    def test_unknown_token(self):
        st = self.new_stack(tokens={"good-token": "landlord"}, kube_token="not-a-known-token", sim=False)

        def rejected():
            k = st.kube_check()
            errors = [k.get("error")] + [w.get("error") for w in k.get("watches") or []]
            text = " ".join(str(e) for e in errors)
            return k if k["status"] == "degraded" and re.search(r"401|unauthori[sz]ed", text, re.I) else None
        poll(rejected, 10, msg="/readyz kube degraded with an error saying 401 Unauthorized")
        self.onboard_ok(st.server, "locked")
        t = self.tenant(st.server, "locked")
        self.assertEqual(t["state"], "unknown", t)
        self.assertTrue(t.get("state_reason"), t)
        self.assertTrue(st.server.running)
        self.assertGreater(st.api.request_count(status=401), 0)
        self.assertEqual(st.api.request_count(status=200), 0)

    def test_token_file_rotation(self):
        api_tokens = {"tok-a": "landlord-a"}
        holder = make_temp_dir("landlord-token-")
        token_file = os.path.join(holder, "token")
        with open(token_file, "w") as f:
            f.write("tok-a")
        st = self.new_stack(tokens=api_tokens, token_file=token_file)
        t = self.onboard_ok(st.server, "rot1")
        self.assertReady(st.server, "rot1", commit=t["commit"])
        st.wait_kube_ok()
        # Rotate: the file gets the new token, the API forgets the old one.
        st.api.write_token_file("tok-b", path=token_file)
        st.api.set_tokens({"tok-b": "landlord-b"})
        st.api.cut_watches()
        t = self.onboard_ok(st.server, "rot2")
        # The push is followed by a PATCH on the GitRepository (reconcile
        # now), made with the new token.
        poll(lambda: [r for r in list(st.api.requests) if r["user"] == "landlord-b" and r["status"] == 200
                      and r["verb"] == "patch"], 10, msg="landlord talks to the API with the new token")
        self.assertReady(st.server, "rot2", commit=t["commit"], timeout=RECOVER_TIMEOUT)
        st.wait_kube_ok()
        self.assertEqual(self.tenant(st.server, "rot1")["state"], "ready")


# -- no cluster ----------------------------------------------------------------------------------------


class NoClusterTest(StatusTestCase):
    @classmethod
    def setUpClass(cls):
        cls.repo = "gitops-%d" % next(_repos)
        GS.create_repo(cls.repo)
        pw = GS.write_password_file(PASSWORD)
        sa = make_temp_dir("landlord-no-sa-")
        saved = os.environ.pop("KUBECONFIG", None)
        try:
            cls.s = cls.start_shared(args=["--git-url", GS.url(cls.repo), "--git-username", USER,
                                           "--git-password-file", pw, "--kube-service-account-dir", sa])
        finally:
            if saved is not None:
                os.environ["KUBECONFIG"] = saved

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    def test_state_unknown_and_wait_answers_at_once(self):
        r = self.s.get("/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ready", r.json)
        self.assertEqual(r.json["checks"]["kube"]["status"], "not-configured", r.json)
        self.onboard_ok(self.s, "lonely", "premium")
        t, took = self.wait_ready(self.s, "lonely")
        self.assertLess(took, 2.0, "no cluster: ?wait=ready answers at once")
        self.assertEqual(t["state"], "unknown", t)
        self.assertEqual(t["state_reason"], "no cluster configured", t)
        t = self.tenant(self.s, "lonely")
        self.assertEqual((t["state"], t["state_reason"]), ("unknown", "no cluster configured"))


# -- Server-Sent Events -----------------------------------------------------------------------------------


class EventStream:
    """GET path as a Server-Sent Events stream on a raw socket (chunked
    transfer decoded by hand).  .status, .headers; .next(timeout) -> event
    dict {id, event, data} or None; .until(pred, timeout) -> the events read
    up to the first matching one."""

    def __init__(self, server, path, headers=None):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Accept: text/event-stream"]
        hdrs = dict(server.auth_headers())
        hdrs.update(headers or {})
        lines += ["%s: %s" % kv for kv in hdrs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.text = b""
        self.closed = False
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(10):
                raise AssertionError("no response head: %r" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        head = head.decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {}
        for h in head[1:]:
            k, v = h.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.comments = []

    def _recv(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not d:
            self.closed = True
            return False
        self.raw += d
        return True

    def _decode(self):
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if len(self.raw) < i + 2 + size + 2:
                return
            self.text += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def body(self, timeout=5):
        """The whole body of a non-stream answer."""
        deadline = time.monotonic() + timeout
        n = int(self.headers.get("content-length", "-1"))
        while not self.closed and (n < 0 or len(self.raw) < n) and time.monotonic() < deadline:
            self._recv(deadline - time.monotonic())
        self._decode()
        return self.text

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            self._decode()
            self.text = self.text.replace(b"\r\n", b"\n")
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                ev = {}
                for line in block.decode("utf-8").split("\n"):
                    if line.startswith(":"):
                        self.comments.append(line)
                        continue
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                    return ev
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self._recv(left)

    def until(self, pred, timeout):
        got = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.0, deadline - time.monotonic()))
            if ev is None:
                seen = [(e["id"], e["event"], e["data"].get("tenant")) for e in got]
                raise AssertionError("no matching event within %.0f s; got %s" % (timeout, seen))
            got.append(ev)
            if pred(ev):
                return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def is_ready(tid):
    return lambda e: e["event"] == "tenant.ready" and e["data"]["data"]["tenant"] == tid


class EventsTest(SharedStackTestCase):
    def stream(self, path="/api/v1/events", headers=None):
        es = EventStream(self.s, path, headers)
        self.addCleanup(es.close)
        return es

    def assertEventShape(self, ev):
        ctx = json.dumps(ev, indent=1)
        self.assertRegex(ev["id"], r"^\d+$", ctx)
        self.assertEqual(ev["event"], "tenant." + ev["data"]["data"]["state"], ctx)
        self.assertEqual(ev["data"]["id"], int(ev["id"]), ctx)
        self.assertEqual(ev["data"]["type"], ev["event"], ctx)
        d = ev["data"]["data"]
        for k in ("tenant", "state", "previous", "reason", "message", "desired_commit", "applied_commit",
                  "deployed_chart", "at"):
            self.assertIn(k, d, ctx)
        self.assertRegex(d["at"], RFC3339_MS, ctx)

    def test_live_stream_and_resume(self):
        live = self.stream()
        self.assertEqual(live.status, 200)
        self.assertEqual(live.headers.get("content-type", "").split(";")[0], "text/event-stream")
        t = self.onboard_ok(self.s, "sse1", "premium")
        evs = [e for e in live.until(is_ready("sse1"), READY_TIMEOUT) if e["data"]["tenant"] == "sse1"]
        for e in evs:
            self.assertEventShape(e)
        self.assertEqual(evs[0]["event"], "tenant.provisioning", evs)
        self.assertIsNone(evs[0]["data"]["data"]["previous"], evs[0])
        ready = evs[-1]["data"]["data"]
        self.assertEqual(ready["previous"], evs[-2]["data"]["data"]["state"])
        self.assertEqual(ready["reason"], "InstallSucceeded")
        self.assertEqual(ready["desired_commit"], t["commit"])
        self.assertEqual(ready["applied_commit"], t["commit"])
        self.assertEqual(ready["deployed_chart"], "0.0.1")
        ids = [int(e["id"]) for e in evs]
        self.assertEqual(ids, sorted(set(ids)), "ids increase")
        # The state in the registry agrees with the last event.
        self.assertEqual(self.tenant(self.s, "sse1")["state"], "ready")

        # A browser's reconnect: everything after that id, not that one.
        first = ids[0]
        again = self.stream(headers={"Last-Event-ID": str(first)})
        self.assertEqual(again.status, 200)
        resumed = again.until(is_ready("sse1"), 10)
        self.assertTrue(all(int(e["id"]) > first for e in resumed), [e["id"] for e in resumed])
        self.assertEqual([int(e["id"]) for e in resumed if e["data"]["tenant"] == "sse1"], ids[1:])
        self.assertEqual(int(resumed[0]["id"]), first + 1, "nothing after the id is skipped")

    def test_replay_and_tenant_filter(self):
        self.onboard_ok(self.s, "sse2", "basic")
        self.assertReady(self.s, "sse2")
        replay = self.stream("/api/v1/events?after=0")
        self.assertEqual(replay.status, 200)
        evs = replay.until(is_ready("sse2"), 10)
        self.assertEqual(int(evs[0]["id"]), 1, "after=0 starts with the first event kept")
        ids = [int(e["id"]) for e in evs]
        self.assertEqual(ids, list(range(1, len(ids) + 1)), "every event, in order")
        self.assertIn("tenant.provisioning", [e["event"] for e in evs if e["data"]["tenant"] == "sse2"])

        # ?tenant= keeps one tenant's events, from the replay and live.
        only = self.stream("/api/v1/events?after=0&tenant=sse3")
        self.assertEqual(only.status, 200)
        live = self.stream("/api/v1/events?tenant=sse3")
        self.onboard_ok(self.s, "sse4", "basic")
        self.assertReady(self.s, "sse4")
        self.onboard_ok(self.s, "sse3", "basic")
        for es in (only, live):
            got = es.until(is_ready("sse3"), READY_TIMEOUT)
            self.assertEqual({e["data"]["tenant"] for e in got}, {"sse3"})
            self.assertEqual(got[0]["event"], "tenant.provisioning")

    def test_commits_in_events_are_shas_or_null(self):
        # A cluster without Flux yet: nothing applied, nothing fetched.
        st = self.new_stack(sim=False)
        st.wait_kube_ok()
        t0 = self.onboard_ok(st.server, "early", "basic")
        es = EventStream(st.server, "/api/v1/events?after=0&tenant=early")
        self.addCleanup(es.close)
        ev = poll(lambda: es.next(1), 10, msg="an event for the tenant")
        t = poll(lambda: [t for t in [self.tenant(st.server, "early")]
                          if t["observed"]["desired_commit"] == t0["commit"]], 10,
                 msg="observed.desired_commit is the pushed commit")[0]
        self.assertEqual(t["state"], "provisioning", t)
        self.assertIsNone(t["observed"]["applied_commit"], t)
        self.assertIsNone(t["observed"]["fetched_commit"], t)
        d = ev["data"]["data"]
        self.assertEqual(ev["event"], "tenant.provisioning", ev)
        for k in ("desired_commit", "applied_commit"):
            self.assertTrue(d[k] is None or HEX40.match(d[k]), "%s is a sha or null: %r" % (k, d))
        self.assertIsNone(d["applied_commit"], "nothing was applied (observed.applied_commit is null)")

    def test_bad_resume_points(self):
        for path, headers in (("/api/v1/events", {"Last-Event-ID": "x"}),
                              ("/api/v1/events", {"Last-Event-ID": "-3"}),
                              ("/api/v1/events?after=-1", None),
                              ("/api/v1/events?after=abc", None),
                              ("/api/v1/events?tenant=Not_An_Id", None)):
            r = self.s.get(path, headers=headers, timeout=5)
            self.assertProblem(r, 422, "invalid-request", msg="%s %s" % (path, headers))


# -- webhooks --------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST (time, path,
    headers, body) and answers status(n) for the n-th POST (from 1).  With
    `tenant`, events about other tenants (left over from earlier tests of
    the same server) are answered 200 and neither recorded nor counted."""

    def __init__(self, status=lambda n: 200, tenant=None):
        rec = self
        self.posts = []
        self.lock = threading.Lock()
        self.status = status
        self.tenant = tenant

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if rec.tenant is not None and not rec.about(body):
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with rec.lock:
                    rec.posts.append({"at": time.monotonic(), "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                    code = rec.status(len(rec.posts))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def about(self, body):
        try:
            return json.loads(body)["data"]["tenant"] == self.tenant
        except (ValueError, KeyError, TypeError):
            return True

    def snapshot(self):
        with self.lock:
            return list(self.posts)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Hole:
    """Accepts connections and never answers (holds them until stop)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d/hook" % self.sock.getsockname()[1]
        self.conns = []
        self.accepted = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.append(time.monotonic())

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


def verify_signature(header, secret, body):
    """(t, ok) for a Landlord-Signature header."""
    m = re.match(r"^t=(\d+),v1=([0-9a-f]{64})$", header or "")
    if not m:
        return None, False
    mac = hmac.new(secret.encode(), m.group(1).encode() + b"." + body, hashlib.sha256).hexdigest()
    return int(m.group(1)), hmac.compare_digest(mac, m.group(2))


class WebhooksTest(SharedStackTestCase):
    SECRET = "whsec-0123456789abcdef-test"

    def subscribe(self, body):
        r = self.s.post_json("/api/v1/webhooks", body)
        hook = self.assertJson(r, 201, "subscribe %s" % body)
        self.assertEqual(r.header("Location"), "/api/v1/webhooks/%d" % hook["id"])
        self.addCleanup(self.s.delete, "/api/v1/webhooks/%d" % hook["id"])
        return hook

    def test_failure_reaches_the_webhook(self):
        rx = Receiver()
        self.addCleanup(rx.stop)
        hook = self.subscribe({"url": rx.url, "secret": self.SECRET, "event_types": ["tenant.failed"]})
        self.st.sim.fail_install(names=["doomed-premium"], message="image pull back-off")
        self.addCleanup(self.st.sim.clear_failures)
        self.onboard_ok(self.s, "doomed", "premium")

        def failed():
            got = [p for p in rx.snapshot() if json.loads(p["body"])["data"]["tenant"] == "doomed"]
            return got or None
        got = poll(failed, 20, msg="tenant.failed delivered")
        body = json.loads(got[0]["body"])
        self.assertEqual(body["type"], "tenant.failed")
        self.assertEqual(body["data"]["state"], "failed")
        self.assertEqual(body["data"]["reason"], "InstallFailed")
        self.assertIn("image pull back-off", body["data"]["message"])
        self.assertSigned(got[0], hook)

    def deliveries(self, hook_id):
        return self.assertJson(self.s.get("/api/v1/webhooks/%d/deliveries" % hook_id), 200)["items"]

    def test_signed_deliveries_and_retries(self):
        # A tenant an earlier test onboarded (silent2) turning ready after the
        # subscription below would be delivered too: let them settle first.
        poll(lambda: all(t["state"] in ("ready", "failed")
                         for t in self.s.get("/api/v1/tenants?limit=500").json["items"]),
             READY_TIMEOUT, msg="the tenants of earlier tests settled")
        flaky = Receiver(lambda n: 500 if n <= 2 else 200, tenant="hooked")
        self.addCleanup(flaky.stop)
        good = Receiver()
        self.addCleanup(good.stop)
        hook = self.subscribe({"url": flaky.url, "secret": self.SECRET, "event_types": ["tenant.ready"],
                               "description": "flaky"})
        self.assertEqual(hook["secret"], self.SECRET, "the secret is shown once, at creation")
        self.assertEqual(hook["event_types"], ["tenant.ready"])
        all_hook = self.subscribe({"url": good.url, "secret": self.SECRET})
        self.assertEqual(all_hook["event_types"], ["tenant.*"])
        for r in (self.s.get("/api/v1/webhooks"), self.s.get("/api/v1/webhooks/%d" % hook["id"])):
            self.assertJson(r, 200)
            self.assertNotIn(self.SECRET.encode(), r.body)
            self.assertNotIn(b'"secret"', r.body)
        listed = [h["id"] for h in self.s.get("/api/v1/webhooks").json["items"]]
        self.assertIn(hook["id"], listed)
        self.assertIn(all_hook["id"], listed)

        self.onboard_ok(self.s, "hooked", "premium")
        self.assertReady(self.s, "hooked")

        # The tenant.* subscriber gets provisioning and ready, signed.
        def both():
            got = [p for p in good.snapshot() if json.loads(p["body"])["data"]["tenant"] == "hooked"]
            return got if {json.loads(p["body"])["type"] for p in got} >= {"tenant.provisioning",
                                                                             "tenant.ready"} else None
        got = poll(both, 10, msg="tenant.provisioning and tenant.ready delivered")
        for p in got:
            self.assertSigned(p, all_hook)

        # The flaky one: 500, 500 (after 1 s), 200 (after 2 more s).
        posts = poll(lambda: flaky.snapshot() if len(flaky.snapshot()) >= 3 else None, 15,
                     msg="three attempts at the flaky receiver")
        bodies = [json.loads(p["body"]) for p in posts]
        self.assertTrue(all(b["type"] == "tenant.ready" for b in bodies), bodies)
        self.assertEqual({b["id"] for b in bodies[:3]}, {bodies[0]["id"]}, "the same event, retried")
        gaps = [posts[1]["at"] - posts[0]["at"], posts[2]["at"] - posts[1]["at"]]
        self.assertGreater(gaps[0], 0.8, gaps)
        self.assertLess(gaps[0], 3.0, gaps)
        self.assertGreater(gaps[1], 1.8, gaps)
        self.assertLess(gaps[1], 4.5, gaps)
        for p in posts[:3]:
            self.assertSigned(p, hook)
        delivery_ids = {p["headers"].get("landlord-delivery") for p in posts[:3]}
        self.assertEqual(len(delivery_ids), 1, "one delivery, attempted three times")

        # The log may also hold deliveries about tenants of earlier tests.
        def delivered():
            # Only this tenant's event: a tenant of an earlier test (doomed,
            # once its failure is cleared) may turn ready meanwhile too.
            items = [d for d in self.deliveries(hook["id"]) if d["event"] == bodies[0]["id"]]
            return items if items and items[0]["state"] == "delivered" else None
        items = poll(delivered, 5, msg="the delivery log says delivered")
        self.assertEqual(len(items), 1, items)
        d = items[0]
        self.assertEqual(str(d["id"]), delivery_ids.pop())
        self.assertEqual(d["attempts"], 3, d)
        self.assertEqual(d["event_type"], "tenant.ready", d)
        self.assertEqual(d["event"], bodies[0]["id"], d)
        self.assertEqual(d["last_status"], 200, d)
        self.assertEqual(len(posts), 3, "nothing after a 2xx")
        text = self.s.get("/metrics").body.decode()
        m = re.search(r"(?m)^landlord_webhook_deliveries_total (\d+)$", text)
        self.assertTrue(m and int(m.group(1)) >= 3, text)

    def assertSigned(self, post, hook):
        body = json.loads(post["body"])
        h = post["headers"]
        ctx = json.dumps({"headers": h, "body": body}, indent=1)
        self.assertEqual(h.get("landlord-event"), body["type"], ctx)
        self.assertRegex(h.get("landlord-delivery") or "", r"^\d+$", ctx)
        self.assertEqual(h.get("content-type", "").split(";")[0], "application/json", ctx)
        t, ok = verify_signature(h.get("landlord-signature"), self.SECRET, post["body"])
        self.assertTrue(ok, "Landlord-Signature is HMAC-SHA256(secret, t.body): " + ctx)
        self.assertLess(abs(time.time() - t), 60, ctx)
        for k in ("id", "type", "created_at", "data"):
            self.assertIn(k, body, ctx)
        self.assertEqual(body["type"], "tenant." + body["data"]["state"], ctx)
        if not {"*", "tenant.*"} & set(hook["event_types"]):
            self.assertIn(body["type"], hook["event_types"], ctx)

    def test_receiver_that_never_answers(self):
        hole = Hole()
        self.addCleanup(hole.stop)
        hook = self.subscribe({"url": hole.url, "event_types": ["tenant.provisioning"]})
        self.assertRegex(hook["secret"], r"^\S{16,}$", "a generated secret is shown once")
        self.onboard_ok(self.s, "silent", "basic")
        poll(lambda: hole.accepted, 10, msg="landlord connects to the receiver")
        accepted = hole.accepted[0]
        # Deliveries never hold a request: a write (pushed) and reads all
        # answer while the delivery still hangs (it times out after 5 s).
        # The bounds leave room for a slow sanitizer build on a busy machine.
        r = onboard(self.s, "silent2", "basic")
        self.assertEqual(r.status, 201, r)
        self.assertLess(time.monotonic() - accepted, 4.5, "a write while a delivery hangs")
        while time.monotonic() - accepted < 4.0:
            for path in ("/api/v1/tenants/silent", "/api/v1/webhooks", "/healthz", "/metrics"):
                t0 = time.monotonic()
                r = self.s.get(path, timeout=5)
                self.assertEqual(r.status, 200, r)
                self.assertLess(time.monotonic() - t0, 2.0, "%s while a delivery hangs" % path)
            time.sleep(0.2)

        def errored():
            items = self.deliveries(hook["id"])
            return items[-1] if items and items[-1].get("last_error") else None
        d = poll(errored, 10, msg="the delivery records the timeout")
        took = time.monotonic() - accepted
        self.assertGreater(took, 4.0, "landlord waits 5 s for an answer")
        self.assertLess(took, 12.0)
        self.assertIn(d["state"], ("pending",), d)
        self.assertGreaterEqual(d["attempts"], 1, d)
        self.assertRegex(d["last_error"], r"(?i)time[d ]*out", d)
        self.assertIsNone(d.get("last_status"), d)

    def test_bad_subscriptions_store_nothing(self):
        before = self.assertJson(self.s.get("/api/v1/webhooks"), 200)
        ok_url = "http://127.0.0.1:9/hook"
        cases = [
            ({"url": "ftp://x/"}, "url"),
            ({"url": "http://user:pw@host/"}, "url"),
            ({"url": "not a url"}, "url"),
            ({"url": "/relative/path"}, "url"),
            ({}, "url"),
            ({"url": ok_url, "event_types": ["tenant.exploded"]}, "event_types"),
            ({"url": ok_url, "event_types": ["order.created"]}, "event_types"),
            ({"url": ok_url, "event_types": []}, "event_types"),
            ({"url": ok_url, "secret": "short"}, "secret"),
            ({"url": ok_url, "secret": "has spaces in it, sixteen+"}, "secret"),
            ({"url": ok_url, "colour": "red"}, "colour"),
            ({"url": 42}, "url"),
        ]
        for body, field in cases:
            r = self.s.post_json("/api/v1/webhooks", body)
            self.assertProblem(r, 422, "invalid-request", field=field, msg=json.dumps(body))
        r = self.s.request("POST", "/api/v1/webhooks", body=b"{not json", headers={"Content-Type":
                                                                                   "application/json"})
        self.assertProblem(r, 400, "malformed-request")
        self.assertEqual(self.assertJson(self.s.get("/api/v1/webhooks"), 200), before, "nothing stored")

    def test_delete(self):
        r = self.s.post_json("/api/v1/webhooks", {"url": "https://127.0.0.1:9/hook"})
        hook = self.assertJson(r, 201)
        path = "/api/v1/webhooks/%d" % hook["id"]
        self.assertEqual(self.assertJson(self.s.get(path), 200)["url"], "https://127.0.0.1:9/hook")
        r = self.s.delete(path)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertProblem(self.s.delete(path), 404, "not-found")
        self.assertProblem(self.s.get(path), 404, "not-found")
        self.assertProblem(self.s.get(path + "/deliveries"), 404, "not-found")
        self.assertNotIn(hook["id"], [h["id"] for h in self.s.get("/api/v1/webhooks").json["items"]])
        self.assertProblem(self.s.get("/api/v1/webhooks/nope"), 404, "not-found")


if __name__ == "__main__":
    unittest.main()

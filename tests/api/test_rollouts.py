"""Rollouts (issue 5, items 5-7): pinning, rollouts by tier in health-gated
waves, pause/resume/abort, rollback, pools following their tiers, a restart
mid-rollout; end to end with landlord pushing to a real Git server
(tests/support/gitserver.py), the Flux simulator (tests/support/fluxsim.py)
reconciling into the Kubernetes API stand-in (tests/support/kubeapi.py),
and charts uploaded through POST /api/v1/releases (the simulator's chart
versions are the tags of landlord's OCI image layout).

Covers (docs/api.md "Rollouts", "What a tenant runs"):
  - an upload never moves a tenant: files keep their exact versions, the
    cluster keeps running the old one; floating tenants onboarded later get
    the newest upload on their line, then their tier's version;
  - PATCH pins (the file gets the version) and unpins (the tier's version);
  - a good version passes every wave: one commit per wave touching exactly
    that wave's tenants (and pool-1 with the basic tier's first wave),
    pinned tenants skipped and untouched, every tenant `ready` at the new
    version, rollout.* events in the registry and on /api/v1/events,
    the tiers' versions;
  - a version whose install fails stops at wave 1 and rolls back in one
    commit: the wave's tenants read `ready` at the old version again, later
    waves' tenants were never touched;
  - pause (nothing more happens), a tenant pinned meanwhile skipped by its
    wave and unpinned to its tier's new version, resume, abort, the
    rollback action, on_failure pause;
  - landlord killed mid-rollout continues after a restart, each wave
    committed once;
  - bad input (a version never uploaded, unknown tiers or tenants, bad
    waves, overlapping rollouts, no cluster) changes nothing in the registry
    or the repository.
"""

import itertools
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

import common  # noqa: E402
from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import HEX40, PROD, LandlordTestCase, Server, archive, make_temp_dir, onboard  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402
from test_openapi import load_spec, validate  # noqa: E402  (tests/api: this file's folder)

USER = "landlord"
PASSWORD = "s3cret"
NAME = "helm-tenant-chart"
GZIP = {"Content-Type": "application/gzip"}
TIMEOUT = 60.0

GS = None
_repos = itertools.count(1)


def setUpModule():
    global GS
    GS = GitServer(users={USER: PASSWORD}).start()


def tearDownModule():
    if GS is not None:
        GS.stop()
        GS.cleanup()


def poll(fn, timeout=TIMEOUT, interval=0.1, msg=None):
    return common.poll(fn, timeout, interval, msg, show=lambda v: json.dumps(v, indent=1)[:4000])


def chart(version):
    return archive({NAME + "/Chart.yaml": ("apiVersion: v2\nname: %s\nversion: %s\n" % (NAME, version)).encode(),
                    NAME + "/values.yaml": b"replicaCount: 1\n"})


def layout_versions(data_dir):
    """What the simulator's registry holds: the tags of landlord's OCI image
    layout (what POST /api/v1/releases stored)."""
    def versions(_chart):
        try:
            with open(os.path.join(data_dir, "oci", NAME, "index.json")) as f:
                index = json.load(f)
        except (OSError, ValueError):
            return []
        return [m["annotations"]["org.opencontainers.image.ref.name"] for m in index.get("manifests", [])]
    return versions


def file_version(server, path, rev="main"):
    """The chart version the HelmRelease in a file of the remote asks for."""
    for doc in yaml.safe_load_all(server_show(server, path, rev)):
        if doc and doc.get("kind") == "HelmRelease":
            return doc["spec"]["chart"]["spec"]["version"]
    return None


def server_show(server, path, rev="main"):
    return server.git("show", "%s:%s" % (rev, path))


def tenant_file(tier, tid):
    return "%s/tenants/%s/%s.yaml" % (PROD, tier, tid)


POOL = PROD + "/pooled-envs/pool-1.yaml"


class Stack:
    """A repository on GS, the Kubernetes stand-in, landlord following it, and
    the Flux simulator whose chart versions are landlord's uploads."""

    def __init__(self, landlord_args=(), sim=True):
        self.repo = "gitops-r%d" % next(_repos)
        GS.create_repo(self.repo)
        self.api = KubeAPI(tls=True, tokens={"tok-1": "landlord"}).start()
        self.dir = make_temp_dir("landlord-rollouts-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.api.kubeconfig(self.kubeconfig)
        pw = GS.write_password_file(PASSWORD)
        self.server = Server(args=["--git-url", GS.url(self.repo), "--git-username", USER,
                                   "--git-password-file", pw, "--kubeconfig", self.kubeconfig,
                                   "--git-poll-interval", "1"] + list(landlord_args))
        self.server.start()
        # The remote's history, as the git CLI sees it (Server.git reads
        # server.remote, the embedded default; point it at the real one).
        self.server.remote = GS.path(self.repo)
        self.sim = FluxSim(self.api, GS.authed_url(self.repo), git_env=GS.git_env(),
                           chart_versions=layout_versions(self.server.data)).start() if sim else None

    def stop(self):
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
        code = self.server.stop()
        self.server.kill()
        self.api.stop()
        return code


class RolloutTestCase(LandlordTestCase):
    """Helpers over one landlord (self.s)."""

    def upload(self, version):
        r = self.s.request("POST", "/api/v1/releases", body=chart(version), headers=GZIP)
        self.assertIn(r.status, (200, 201), r)
        return r.json

    def onboard_ok(self, tid, tier, **kw):
        t = self.assertJson(onboard(self.s, tid, tier, **kw), 201, "onboard %s" % tid)
        self.assertRegex(t["commit"] or "", HEX40)
        return t

    def tenant(self, tid):
        return self.assertJson(self.s.get("/api/v1/tenants/" + tid), 200)

    def rollout(self, rid):
        return self.assertJson(self.s.get("/api/v1/rollouts/%d" % rid), 200)

    def start_rollout(self, body):
        r = self.s.post_json("/api/v1/rollouts", body)
        ro = self.assertJson(r, 201, "POST /api/v1/rollouts %s" % json.dumps(body))
        self.assertEqual(r.header("Location"), "/api/v1/rollouts/%d" % ro["id"])
        return ro

    def wait_rollout(self, rid, states, timeout=TIMEOUT):
        states = (states,) if isinstance(states, str) else tuple(states)
        last = {}

        def done():
            last["ro"] = self.rollout(rid)
            return last["ro"] if last["ro"]["state"] in states else None
        try:
            return poll(done, timeout)
        except AssertionError:
            raise AssertionError("rollout %d not %s within %.0f s: %s" % (
                rid, states, timeout, json.dumps(last.get("ro"), indent=1)[:6000]))

    def wait_wave(self, rid, wave, states, timeout=TIMEOUT):
        states = (states,) if isinstance(states, str) else tuple(states)
        return poll(lambda: (lambda ro: ro if ro["waves"][wave - 1]["state"] in states else None)(
            self.rollout(rid)), timeout, msg="rollout %d wave %d in %s" % (rid, wave, states))

    def wait_ready_at(self, tid, version, timeout=TIMEOUT):
        def ok():
            t = self.tenant(tid)
            obs = t.get("observed") or {}
            return t if t["state"] == "ready" and obs.get("deployed_chart") == version else None
        try:
            return poll(ok, timeout)
        except AssertionError:
            raise AssertionError("%s not ready at %s: %s" % (tid, version, json.dumps(self.tenant(tid), indent=1)))

    def unchanged(self):
        """What a refused request must leave as it is: the repository, the
        rollouts, the outbox, and the tenants' desired state (not what the
        status follower observes meanwhile)."""
        snap = self.s.snapshot(["rollouts", "rollout_waves", "rollout_tenants", "rollout_pools", "tier_versions",
                                "operations", "tenants"])
        snap["operations"] = [(o["id"], o["kind"], o["payload"]) for o in snap["operations"]]
        snap["tenants"] = [(t["id"], t["tier"], t["release"], t["chart_version"], t["values_json"], t["lifecycle"])
                           for t in snap["tenants"]]
        return (self.s.head(), snap)

    def assertRefused(self, body, status, field=None, ptype=None):
        before = self.unchanged()
        p = self.assertProblem(self.s.post_json("/api/v1/rollouts", body), status,
                               ptype or ("invalid-request" if status == 422 else "conflict"), field,
                               msg=json.dumps(body))
        self.assertEqual(self.unchanged(), before, "a refused rollout changes nothing: %s" % json.dumps(body))
        return p

    def rollout_commits(self, since=None):
        """Commits of the remote whose message names a rollout, oldest first:
        [(sha, subject)]."""
        rng = "%s..main" % since if since else "main"
        out = self.s.git("log", "--reverse", "--format=%H %s", rng).split("\n")
        return [tuple(line.split(" ", 1)) for line in out if line and " rollout " in line.lower()]

    def changed(self, sha):
        return sorted(self.s.changed_files(sha))


# -- without a cluster: pinning, upload never moves, bad input ------------------------------------------


class WithoutCluster(RolloutTestCase):
    @classmethod
    def setUpClass(cls):
        cls.repo = "gitops-nc%d" % next(_repos)
        GS.create_repo(cls.repo)
        pw = GS.write_password_file(PASSWORD)
        sa = make_temp_dir("landlord-no-sa-")
        saved = os.environ.pop("KUBECONFIG", None)
        try:
            cls.s = cls.start_shared(args=["--git-url", GS.url(cls.repo), "--git-username", USER,
                                           "--git-password-file", pw, "--kube-service-account-dir", sa],
                                     webhook_allow="127.0.0.0/8")  # test_4's hooks are on loopback
        finally:
            if saved is not None:
                os.environ["KUBECONFIG"] = saved
        cls.s.remote = GS.path(cls.repo)

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    def test_1_upload_never_moves_and_pinning(self):
        # No release uploaded: floating tenants carry the range, as always.
        t = self.onboard_ok("early", "basic")
        self.assertEqual((t["release"], t["chart_version"], t["pinned"]), ("0.0", "0.0.x", False))
        self.assertEqual(file_version(self.s, tenant_file("basic", "early")), "0.0.x")
        head = self.s.head()
        self.upload("0.0.1")
        self.upload("0.0.2")
        self.assertEqual(self.s.head(), head, "an upload makes no commit")
        self.assertEqual(self.tenant("early")["chart_version"], "0.0.x")
        # Onboarded now: the newest upload on its line, exactly.
        t = self.onboard_ok("later", "basic")
        self.assertEqual((t["release"], t["chart_version"]), ("0.0", "0.0.2"))
        self.assertEqual(file_version(self.s, tenant_file("basic", "later")), "0.0.2")
        # An exact release pins: the file carries it.
        t = self.onboard_ok("pinned", "premium", release="0.0.1")
        self.assertEqual((t["chart_version"], t["pinned"]), ("0.0.1", True))
        # PATCH pins and unpins; values alone keep the version.
        r = self.s.request("PATCH", "/api/v1/tenants/later", json_body={"release": "0.0.1"})
        t = self.assertJson(r, 200)
        self.assertEqual((t["release"], t["chart_version"], t["pinned"]), ("0.0.1", "0.0.1", True))
        self.assertEqual(file_version(self.s, tenant_file("basic", "later")), "0.0.1")
        self.upload("0.0.3")
        t = self.assertJson(self.s.request("PATCH", "/api/v1/tenants/later", json_body={"values": {"a": 1}}), 200)
        self.assertEqual(t["chart_version"], "0.0.1", "values alone keep the version")
        t = self.assertJson(self.s.request("PATCH", "/api/v1/tenants/later", json_body={"release": "0.0.x"}), 200)
        self.assertEqual((t["release"], t["chart_version"], t["pinned"]), ("0.0.x", "0.0.3", False))
        self.assertEqual(file_version(self.s, tenant_file("basic", "later")), "0.0.3")
        t = self.assertJson(self.s.request("PATCH", "/api/v1/tenants/early", json_body={"values": {"b": 2}}), 200)
        self.assertEqual(t["chart_version"], "0.0.x", "a floating tenant is not moved by a values change")
        # The catalogue counts what files carry; a used version stays.
        counts = {r["version"]: r["tenants"] for r in self.assertJson(self.s.get("/api/v1/releases"), 200)["items"]}
        self.assertEqual((counts["0.0.1"], counts["0.0.2"], counts["0.0.3"]), (1, 0, 2),
                         "pinned on 0.0.1; later on 0.0.3; early's 0.0.x runs the newest")
        self.assertProblem(self.s.delete("/api/v1/releases/0.0.1"), 409, "conflict")
        tiers = self.assertJson(self.s.get("/api/v1/tiers"), 200)["items"]
        self.assertEqual({t["name"]: t["version"] for t in tiers},
                         {"basic": None, "premium": None, "advanced": None})

    def test_2_no_cluster_refused(self):
        self.upload("0.0.4")
        self.onboard_ok("nc1", "premium")
        p = self.assertRefused({"version": "0.0.4", "tiers": ["premium"]}, 409)
        self.assertIn("no cluster", p["detail"])
        self.assertEqual(self.assertJson(self.s.get("/api/v1/rollouts"), 200),
                         {"items": [], "next_cursor": None})

    def test_3_bad_input_changes_nothing(self):
        self.onboard_ok("bi1", "basic")
        self.onboard_ok("bi2", "basic")
        self.upload("0.0.5")
        cases = [
            ({"version": "9.9.9", "tiers": ["basic"]}, "version"),
            ({"version": "0.0", "tiers": ["basic"]}, "version"),
            ({"version": 5, "tiers": ["basic"]}, "version"),
            ({"tiers": ["basic"]}, "version"),
            ({"version": "0.0.5"}, "tiers"),
            ({"version": "0.0.5", "tiers": ["basic"], "tenants": ["bi1"]}, "tenants"),
            ({"version": "0.0.5", "tiers": ["gold"]}, "tiers"),
            ({"version": "0.0.5", "tiers": []}, "tiers"),
            ({"version": "0.0.5", "tiers": ["basic", "basic"]}, "tiers"),
            ({"version": "0.0.5", "tenants": ["nobody"]}, "tenants"),
            ({"version": "0.0.5", "tenants": ["Bad!"]}, "tenants"),
            ({"version": "0.0.5", "tiers": ["basic"], "colour": "red"}, "colour"),
            ({"version": "0.0.5", "tiers": ["basic"], "on_failure": "panic"}, "on_failure"),
            ({"version": "0.0.5", "tiers": ["basic"], "wave_timeout_seconds": 0}, "wave_timeout_seconds"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": []}, "waves"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": {"percent": 100}}, "waves"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 0}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 101}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": "50"}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 50, "tiers": ["basic"]}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"soak_seconds": 5}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 100, "soak_seconds": -1}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 100, "speed": 2}]}, "waves[0].speed"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"tiers": ["premium"]}]}, "waves[0]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"tenants": ["bi1"]}]}, "waves"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"tenants": ["bi1"]}, {"tenants": ["bi1"]}]},
             "waves[1]"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 10}]}, "waves"),
            ({"version": "0.0.5", "tiers": ["basic"], "waves": [{"percent": 100}] * 21}, "waves"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                self.assertRefused(body, 422, field)
        before = self.unchanged()
        for raw, status, ptype in ((b'{"version": "0.0.5", "version": "0.0.4", "tiers": ["basic"]}', 400,
                                    "malformed-request"),
                                   (b'{"version": ', 400, "malformed-request"),
                                   (b'["0.0.5"]', 422, "invalid-request")):
            self.assertProblem(self.s.request("POST", "/api/v1/rollouts", body=raw,
                                              headers={"Content-Type": "application/json"}), status, ptype)
        self.assertProblem(self.s.request("POST", "/api/v1/rollouts", body=b"{}"), 415, "unsupported-media-type")
        self.assertEqual(self.unchanged(), before)
        self.assertProblem(self.s.get("/api/v1/rollouts/77"), 404, "not-found")
        self.assertProblem(self.s.get("/api/v1/rollouts/x"), 404, "not-found")
        self.assertProblem(self.s.post_json("/api/v1/rollouts/77/pause", {}), 404, "not-found")
        self.assertProblem(self.s.get("/api/v1/rollouts?limit=0"), 422, "invalid-request", "limit")
        self.assertProblem(self.s.get("/api/v1/rollouts?cursor=abc"), 422, "invalid-request", "cursor")

    def test_4_webhooks_take_rollout_events(self):
        for types in (["rollout.*"], ["rollout.failed", "rollout.succeeded", "tenant.ready"], ["*"]):
            r = self.s.post_json("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": types})
            hook = self.assertJson(r, 201)
            self.assertEqual(self.s.delete("/api/v1/webhooks/%d" % hook["id"]).status, 204)
        self.assertProblem(self.s.post_json("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook",
                                                                 "event_types": ["rollout.exploded"]}),
                           422, "invalid-request", "event_types")


# -- with the cluster stand-in and the Flux simulator ---------------------------------------------------


class EndToEnd(RolloutTestCase):
    """One landlord, cluster and simulator; the tests run in name order and
    build on each other's versions (0.0.1 -> 0.0.2 good -> 0.0.3 bad ...)."""

    @classmethod
    def setUpClass(cls):
        cls.st = Stack(landlord_args=["--rollout-wave-timeout", "45"])
        cls._shared_servers = [cls.st.server]
        cls.s = cls.st.server
        cls.sim = cls.st.sim

    @classmethod
    def tearDownClass(cls):
        code = cls.st.stop()
        assert code == 0, "landlord did not exit 0 on SIGTERM: %r" % code

    def ready_all(self, version, ids):
        for tid in ids:
            self.wait_ready_at(tid, version)

    def test_0_fleet_runs_0_0_1(self):
        cls = type(self)
        self.upload("0.0.1")
        cls.fleet = {"basic": ["b1", "b2", "b3"], "premium": ["p1", "p2"], "advanced": ["a1"]}
        for tier, ids in cls.fleet.items():
            for tid in ids:
                t = self.onboard_ok(tid, tier)
                self.assertEqual(t["chart_version"], "0.0.1")
        self.onboard_ok("pp", "premium", release="0.0.1")  # pinned
        everyone = [t for ids in cls.fleet.values() for t in ids] + ["pp"]
        self.ready_all("0.0.1", everyone)
        # An upload moves nobody: no commit, every HelmRelease stays at 0.0.1.
        head = self.s.head()
        self.upload("0.0.2")
        time.sleep(1.0)  # the simulator would move range-following releases now
        self.assertEqual(self.s.head(), head)
        for tid in everyone:
            t = self.tenant(tid)
            self.assertEqual((t["state"], t["observed"]["deployed_chart"]), ("ready", "0.0.1"), tid)

    def test_1_good_version_passes_every_wave(self):
        fleet = type(self).fleet
        head = self.s.head()
        pp_before = server_show(self.s, tenant_file("premium", "pp"))
        ro = self.start_rollout({"version": "0.0.2", "tiers": ["basic", "premium", "advanced"],
                                 "waves": [{"tiers": ["basic"]}, {"tiers": ["premium"], "soak_seconds": 1},
                                           {"percent": 100}]})
        self.assertEqual((ro["state"], ro["version"], ro["on_failure"]), ("running", "0.0.2", "rollback"))
        self.assertEqual([w["wave"] for w in ro["waves"]], [1, 2, 3])
        by_id = {t["id"]: t for t in ro["tenants"]}
        self.assertEqual({t: by_id[t]["wave"] for ids in fleet.values() for t in ids},
                         {"b1": 1, "b2": 1, "b3": 1, "p1": 2, "p2": 2, "a1": 3})
        self.assertEqual((by_id["pp"]["state"], by_id["pp"]["wave"], by_id["pp"]["reason"]),
                         ("skipped", None, "pinned to 0.0.1"))
        # The engine may have started wave 1 before the answer was built.
        self.assertIn(ro["pools"][0].get("state"), ("pending", "moved"), ro["pools"])
        self.assertEqual([dict(p, state=None) for p in ro["pools"]],
                         [{"pool": "pool-1", "wave": 1, "from": "0.0.x", "to": "0.0.2", "state": None}])
        spec = load_spec()
        validate(spec, spec["components"]["schemas"]["Rollout"], ro)
        ro = self.wait_rollout(ro["id"], ("succeeded", "paused", "rolled_back", "failed"))
        self.assertEqual(ro["state"], "succeeded", json.dumps(ro, indent=1))
        self.assertEqual([w["state"] for w in ro["waves"]], ["succeeded"] * 3)
        self.assertEqual(ro["counts"], {"pending": 0, "updating": 0, "ready": 6, "failed": 0, "skipped": 1,
                                        "rolled_back": 0})
        # One commit per wave, in order, each touching exactly its tenants
        # (pool-1 with the basic tier's first wave).
        commits = self.rollout_commits(head)
        self.assertEqual([c[0] for c in commits], [w["commit"] for w in ro["waves"]], commits)
        want = [[tenant_file("basic", t) for t in fleet["basic"]] + [POOL],
                [tenant_file("premium", t) for t in fleet["premium"]],
                [tenant_file("advanced", t) for t in fleet["advanced"]]]
        for (sha, subject), files in zip(commits, want):
            self.assertEqual(self.changed(sha), sorted(files), subject)
        for tier, ids in fleet.items():
            for tid in ids:
                self.assertEqual(file_version(self.s, tenant_file(tier, tid)), "0.0.2", tid)
                t = self.wait_ready_at(tid, "0.0.2")
                self.assertEqual((t["chart_version"], t["release"]), ("0.0.2", "0.0"))
                self.assertIn("rollout", [c["operation"] for c in t["commits"]])
        self.assertEqual(file_version(self.s, POOL), "0.0.2")
        self.assertEqual(server_show(self.s, tenant_file("premium", "pp")), pp_before, "pinned: untouched")
        self.assertEqual(self.tenant("pp")["observed"]["deployed_chart"], "0.0.1")
        # Only the chart version changed in each file.
        diff = self.s.git("diff", head, "main", "--", tenant_file("premium", "p1"))
        self.assertEqual([l for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")],
                         ['-      version: "0.0.1"', '+      version: "0.0.2"'], diff)
        # The tiers run 0.0.2 now: a floating tenant onboarded later starts there.
        tiers = {t["name"]: t["version"] for t in self.assertJson(self.s.get("/api/v1/tiers"), 200)["items"]}
        self.assertEqual(tiers, {"basic": "0.0.2", "premium": "0.0.2", "advanced": "0.0.2"})
        self.upload("0.0.3")
        t = self.onboard_ok("b4", "basic")
        self.assertEqual(t["chart_version"], "0.0.2", "the tier's version, not the newest upload")
        fleet["basic"].append("b4")
        self.wait_ready_at("b4", "0.0.2")
        # Events: in the registry, and on the stream.
        types = [e["type"] for e in self.s.rows("events")
                 if e["type"].startswith("rollout.") and json.loads(e["data"]).get("rollout") == ro["id"]]
        self.assertEqual([t for t in types if t != "rollout.tenant_ready"],
                         ["rollout.started", "rollout.wave_started", "rollout.wave_succeeded",
                          "rollout.wave_started", "rollout.wave_succeeded", "rollout.wave_started",
                          "rollout.wave_succeeded", "rollout.succeeded"])
        self.assertEqual(types.count("rollout.tenant_ready"), 6)
        # Each wave_started event says what its wave moved (added by the
        # registry to the engine's event), with the rollout and when.
        started = [json.loads(e["data"]) for e in self.s.rows("events")
                   if e["type"] == "rollout.wave_started" and json.loads(e["data"]).get("rollout") == ro["id"]]
        self.assertEqual([d["wave"] for d in started], [1, 2, 3])
        for d in started:
            self.assertEqual(d["version"], ro["version"])
            self.assertIsInstance(d["tenants"], int)
            self.assertEqual(d["skipped"], 0)
            self.assertIsInstance(d["operation"], int)
            self.assertRegex(d["at"], r"^\d{4}-\d{2}-\d{2}T")
        streamed = read_events(self.s, "/api/v1/events?after=0",
                               lambda e: e["event"] == "rollout.succeeded")
        mine = [e for e in streamed if e["event"].startswith("rollout.") and e["data"]["data"]["rollout"] == ro["id"]]
        self.assertEqual(mine[0]["event"], "rollout.started")
        self.assertEqual(mine[-1]["event"], "rollout.succeeded")
        ready = [e for e in mine if e["event"] == "rollout.tenant_ready"]
        self.assertEqual(sorted(e["data"]["tenant"] for e in ready), ["a1", "b1", "b2", "b3", "p1", "p2"])
        validate(spec, spec["components"]["schemas"]["Rollout"], ro)
        validate(spec, spec["components"]["schemas"]["Tenant"], self.tenant("b1"))
        # The list shows it, without the tenants.
        items = self.assertJson(self.s.get("/api/v1/rollouts"), 200)["items"]
        for item in items:
            validate(spec, spec["components"]["schemas"]["Rollout"], item)
        self.assertEqual(items[0]["id"], ro["id"])
        self.assertNotIn("tenants", items[0])

    def test_2_failed_install_rolls_back_in_one_commit(self):
        fleet = type(self).fleet
        self.sim.fail_install(versions=["0.0.3"], message="install hook failed: 0.0.3 is broken")
        head = self.s.head()
        untouched = {tid: server_show(self.s, tenant_file(tier, tid))
                     for tier in ("premium", "advanced") for tid in fleet[tier]}
        ro = self.start_rollout({"version": "0.0.3", "tiers": ["basic", "premium", "advanced"],
                                 "waves": [{"tiers": ["basic"]}, {"percent": 50}, {"percent": 100}]})
        ro = self.wait_rollout(ro["id"], ("rolled_back", "succeeded", "failed", "paused"))
        self.assertEqual(ro["state"], "rolled_back", json.dumps(ro, indent=1))
        self.assertEqual([w["state"] for w in ro["waves"]], ["failed", "pending", "pending"])
        self.assertIn("failed", ro["waves"][0]["error"])
        self.assertIn("0.0.3 is broken", ro["waves"][0]["error"])
        self.assertIn("wave 1", ro["reason"])
        self.assertRegex(ro["rollback"]["commit"] or "", HEX40)
        # Two commits: the wave, then the rollback returning all of it at once.
        commits = self.rollout_commits(head)
        self.assertEqual([c[0] for c in commits], [ro["waves"][0]["commit"], ro["rollback"]["commit"]], commits)
        basic_files = sorted([tenant_file("basic", t) for t in fleet["basic"]] + [POOL])
        self.assertEqual(self.changed(commits[0][0]), basic_files)
        self.assertEqual(self.changed(commits[1][0]), basic_files)
        for tid in fleet["basic"]:
            self.assertEqual(file_version(self.s, tenant_file("basic", tid)), "0.0.2")
            t = self.wait_ready_at(tid, "0.0.2")
            self.assertEqual(t["chart_version"], "0.0.2")
        self.assertEqual(file_version(self.s, POOL), "0.0.2")
        for tier in ("premium", "advanced"):
            for tid in fleet[tier]:
                self.assertEqual(server_show(self.s, tenant_file(tier, tid)), untouched[tid],
                                 "later waves were never touched")
                self.assertEqual(self.tenant(tid)["observed"]["deployed_chart"], "0.0.2")
        states = {t["id"]: t["state"] for t in ro["tenants"]}
        self.assertEqual({t: states[t] for t in fleet["basic"]}, {t: "rolled_back" for t in fleet["basic"]})
        self.assertEqual({states[t] for t in fleet["premium"] + fleet["advanced"]}, {"pending"})
        types = [e["type"] for e in self.s.rows("events")
                 if e["type"].startswith("rollout.") and json.loads(e["data"]).get("rollout") == ro["id"]]
        for want in ("rollout.tenant_failed", "rollout.failed", "rollout.rolling_back", "rollout.rolled_back"):
            self.assertIn(want, types)
        self.assertEqual(types[-1], "rollout.rolled_back")
        # The tiers still run 0.0.2.
        self.assertEqual(self.assertJson(self.s.get("/api/v1/tiers/basic"), 200)["version"], "0.0.2")
        self.sim.clear_failures()

    def test_3_pause_resume_abort_and_overlap(self):
        self.upload("0.0.4")
        ro = self.start_rollout({"version": "0.0.4", "tiers": ["premium"],
                                 "waves": [{"tenants": ["p1"], "soak_seconds": 2}, {"percent": 100}]})
        rid = ro["id"]
        self.wait_wave(rid, 1, ("soaking", "succeeded"))
        ro = self.assertJson(self.s.post_json("/api/v1/rollouts/%d/pause" % rid, {"reason": "lunch"}), 200)
        self.assertEqual(ro["state"], "paused")
        self.assertIn("lunch", ro["reason"])
        # Overlapping tenants: refused while it is active (paused counts),
        # nothing changes.
        p = self.assertRefused({"version": "0.0.4", "tenants": ["b1", "p2"]}, 409, "tenants")
        self.assertIn("rollout %d" % rid, p["detail"])
        self.assertProblem(self.s.post_json("/api/v1/rollouts/%d/pause" % rid, {}), 409, "conflict")
        head = self.s.head()
        time.sleep(3.5)  # past the soak: a paused rollout starts nothing
        ro = self.rollout(rid)
        self.assertEqual((ro["state"], ro["waves"][1]["state"]), ("paused", "pending"))
        self.assertEqual(self.s.head(), head)
        self.assertEqual(file_version(self.s, tenant_file("premium", "p2")), "0.0.2")
        # Pinned meanwhile: its wave skips it.
        t = self.assertJson(self.s.request("PATCH", "/api/v1/tenants/p2", json_body={"release": "0.0.2"}), 200)
        self.assertEqual((t["pinned"], t["chart_version"]), (True, "0.0.2"))
        r = self.s.request("POST", "/api/v1/rollouts/%d/resume" % rid)  # no body at all
        self.assertEqual(self.assertJson(r, 200)["state"], "running")
        ro = self.wait_rollout(rid, ("succeeded", "rolled_back", "paused", "failed"))
        self.assertEqual(ro["state"], "succeeded", json.dumps(ro, indent=1))
        p2 = [t for t in ro["tenants"] if t["id"] == "p2"][0]
        self.assertEqual((p2["state"], p2["wave"], p2["reason"]),
                         ("skipped", 2, "pinned to 0.0.2 since the rollout began"))
        self.assertEqual(file_version(self.s, tenant_file("premium", "p2")), "0.0.2")
        # Unpinned: the file gets the version its tier runs now.
        self.assertEqual(self.assertJson(self.s.get("/api/v1/tiers/premium"), 200)["version"], "0.0.4")
        t = self.assertJson(self.s.request("PATCH", "/api/v1/tenants/p2", json_body={"release": "0.0"}), 200)
        self.assertEqual((t["pinned"], t["chart_version"]), (False, "0.0.4"))
        self.wait_ready_at("p2", "0.0.4")
        self.assertProblem(self.s.post_json("/api/v1/rollouts/%d/resume" % rid, {}), 409, "conflict")
        self.assertProblem(self.s.post_json("/api/v1/rollouts/%d/abort" % rid, {}), 409, "conflict")
        self.assertProblem(self.s.post_json("/api/v1/rollouts/%d/pause" % rid, {"why": 1}), 422,
                           "invalid-request", "why")
        # Abort: stops for good, moved tenants stay, the rest never move.
        self.upload("0.0.5")
        ro = self.start_rollout({"version": "0.0.5", "tiers": ["premium"],
                                 "waves": [{"tenants": ["p1"], "soak_seconds": 60}, {"percent": 100}]})
        self.wait_wave(ro["id"], 1, "soaking")
        ro = self.assertJson(self.s.post_json("/api/v1/rollouts/%d/abort" % ro["id"], {}), 200)
        self.assertEqual(ro["state"], "aborted")
        self.assertIsNotNone(ro["finished_at"])
        head = self.s.head()
        time.sleep(0.6)
        self.assertEqual(self.s.head(), head)
        self.assertEqual(file_version(self.s, tenant_file("premium", "p1")), "0.0.5")
        self.assertEqual(file_version(self.s, tenant_file("premium", "p2")), "0.0.4")
        self.assertProblem(self.s.post_json("/api/v1/rollouts/%d/rollback" % ro["id"], {}), 409, "conflict")
        # The rollback action: every tenant moved so far returns, in one commit.
        ro = self.start_rollout({"version": "0.0.5", "tenants": ["p2"], "waves": [{"percent": 100,
                                                                                     "soak_seconds": 60}]})
        self.wait_wave(ro["id"], 1, "soaking")
        before = self.s.head()
        ro = self.assertJson(self.s.post_json("/api/v1/rollouts/%d/rollback" % ro["id"], {"reason": "oops"}), 200)
        self.assertIn(ro["state"], ("rolling_back", "rolled_back"))
        ro = self.wait_rollout(ro["id"], "rolled_back")
        self.assertEqual(len(self.rollout_commits(before)), 1)
        self.assertEqual(file_version(self.s, tenant_file("premium", "p2")), "0.0.4")
        self.wait_ready_at("p2", "0.0.4")
        self.assertEqual(ro["pools"], [], "a rollout of named tenants moves no pool")

    def test_4_on_failure_pause(self):
        self.upload("0.0.6")
        self.sim.fail_install(versions=["0.0.6"])
        try:
            ro = self.start_rollout({"version": "0.0.6", "tenants": ["a1"], "on_failure": "pause"})
            ro = self.wait_rollout(ro["id"], ("paused", "rolled_back", "succeeded"))
            self.assertEqual(ro["state"], "paused")
            self.assertEqual(ro["waves"][0]["state"], "failed")
            self.assertEqual({t["id"]: t["state"] for t in ro["tenants"]}, {"a1": "failed"})
            self.assertEqual(file_version(self.s, tenant_file("advanced", "a1")), "0.0.6", "left where it failed")
            self.assertEqual(self.tenant("a1")["state"], "failed")
            # Release a version an active rollout needs: refused.
            self.assertProblem(self.s.delete("/api/v1/releases/0.0.6"), 409, "conflict")
            ro = self.assertJson(self.s.post_json("/api/v1/rollouts/%d/rollback" % ro["id"], {}), 200)
            ro = self.wait_rollout(ro["id"], "rolled_back")
            self.wait_ready_at("a1", "0.0.2")
        finally:
            self.sim.clear_failures()


class Restart(RolloutTestCase):
    """landlord killed mid-rollout continues where it was after a restart."""

    def test_restart_continues(self):
        st = Stack()
        self.s = st.server
        self._shared_servers = [st.server]
        try:
            self.upload("1.0.0")
            ids = ["r%d" % i for i in range(4)]
            for tid in ids:
                self.onboard_ok(tid, "premium", release="1.0")
            for tid in ids:
                self.wait_ready_at(tid, "1.0.0")
            self.upload("1.0.1")
            head = self.s.head()
            ro = self.start_rollout({"version": "1.0.1", "tiers": ["premium"],
                                     "waves": [{"percent": 50, "soak_seconds": 3}, {"percent": 100}]})
            self.wait_wave(ro["id"], 1, "soaking")
            # kill -9 while wave 1 soaks, then start again on the same data.
            st.server.stop(signal.SIGKILL)
            st.server.start()
            ro = self.wait_rollout(ro["id"], ("succeeded", "paused", "rolled_back", "failed"))
            self.assertEqual(ro["state"], "succeeded", json.dumps(ro, indent=1))
            commits = self.rollout_commits(head)
            self.assertEqual([c[0] for c in commits], [w["commit"] for w in ro["waves"]],
                             "each wave committed exactly once")
            for tid in ids:
                self.wait_ready_at(tid, "1.0.1")
        finally:
            self.assertEqual(st.stop(), 0)


def dechunk(raw):
    """The body of a chunked HTTP response so far (head stripped), and
    whether it is complete."""
    body, pos = b"", 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return body, False
        size = int(raw[pos:eol].split(b";")[0] or b"0", 16)
        if size == 0:
            return body, True
        if len(raw) < eol + 2 + size + 2:
            return body, False
        body += raw[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def read_events(server, path, stop, timeout=10.0):
    """Reads Server-Sent Events from path until stop(event) is true or the
    stream idles for timeout: [{"id", "event", "data"}]."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    events = []
    try:
        auth = "".join("%s: %s\r\n" % kv for kv in server.auth_headers().items())
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n"
                   % (path, auth)).encode())
        raw = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            raw += chunk
            if b"\r\n\r\n" not in raw:
                continue
            body, _ = dechunk(raw.split(b"\r\n\r\n", 1)[1])
            events = []
            for block in body.decode("utf-8").split("\n\n")[:-1]:
                e = {}
                for line in block.split("\n"):
                    if line.startswith("id: "):
                        e["id"] = line[4:]
                    elif line.startswith("event: "):
                        e["event"] = line[7:]
                    elif line.startswith("data: "):
                        e["data"] = json.loads(line[6:])
                if "data" in e:
                    events.append(e)
            if any(stop(e) for e in events):
                break
    finally:
        s.close()
    return events


if __name__ == "__main__":
    unittest.main()

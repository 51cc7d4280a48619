"""Soak (issue 10: landlord must run for months without growing).  One
landlord against a real Git server (git http-backend behind lighttpd, basic
auth) takes 2,000 mixed writes from 24 keep-alive clients: onboardings,
changes of tier, values and release, offboardings and re-onboardings of
offboarded ids, some answered at once (?wait=0), while a foreign writer
pushes a commit now and then with the git CLI, so that landlord fetches and
rebuilds its batches on it.  Then SIGTERM.

Asserted: exit code 0; nothing from a sanitizer in its stderr (in the
ASan+UBSan build: no leak at exit, e.g. the per-push leak of libgit2's
git_remote_lookup fixed in 9ec9181; in the release build only the exit code
says something); every acknowledged operation was pushed in exactly one
commit, in order; the repository (read with the git CLI) holds exactly the
files of the tenants the registry has not offboarded, each listed once in
its tier's kustomization, rendered with the tier, release and values the
clients last set; no foreign commit or file lost.

LANDLORD_STORM_SEED replays the clients' random choices; LANDLORD_SOAK_OPS
changes the number of writes (default 2000)."""

import collections
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import GitServerTestCase, git, sanitized_build, tenant_path  # noqa: E402
from storm import (  # noqa: E402
    ForeignWriter,
    KeepAlive,
    check_foreign_kept,
    check_repo_and_registry,
    check_trailers,
    commit_trailers,
    list_tenants,
    op_id_of,
    read_blobs,
    release_expr,
    storm_seed,
    wait_quiet,
)

TIERS = ("basic", "premium", "advanced")
RELEASES = ("0.0", "1.2", "1.4.2", "2.0.x")
USER, PASSWORD = "landlord", "soak-Pa55"
OPS = int(os.environ.get("LANDLORD_SOAK_OPS", "2000"))
CLIENTS = 24
POOL = 8  # tenant ids per client: small, so that ids come back again and again
NO_WAIT = 0.4  # share of writes sent with ?wait=0 (answered 202 at once)
EXPECTED = {"POST": (201, 202), "PATCH": (200, 202), "DELETE": (200, 202)}


class Budget:
    """The writes left to send, shared by the clients."""

    def __init__(self, n):
        self.left = n
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class Client(threading.Thread):
    """One keep-alive connection writing to its own POOL tenant ids, with a
    model of what each of them should end as.  Only the answers change the
    model: an answer outside EXPECTED, or a request without an answer, is
    recorded in `bad` (the test fails on it) and changes nothing."""

    def __init__(self, n, port, budget, seed):
        super().__init__(daemon=True)
        self.n = n
        self.http = KeepAlive(port)
        self.budget = budget
        self.rng = random.Random(seed)
        self.ids = ["sk%d-%02d" % (n, i) for i in range(POOL)]
        self.model = {}  # id -> {"tier", "release", "values", "live", "pending_offboard"}
        self.acked = []  # (op id, kind, tenant, status)
        self.bad = []
        self.kinds = collections.Counter()
        self.statuses = collections.Counter()
        self.values_serial = 0

    def run(self):
        try:
            while self.budget.take():
                self.one()
        except BaseException as e:  # reported by the test
            self.bad.append(("client crashed", repr(e)))
        finally:
            self.http.close()

    def landed(self, op):
        """Whether operation op has left the queue (read on this connection)."""
        status, _, js = self.http.request("GET", "/api/v1/operations/%d" % op)
        if status != 200:
            self.bad.append(("GET operation", op, status, js))
            return True
        return js.get("state") != "queued"

    def choose(self):
        """(kind, method, path, body) of the next write."""
        rng = self.rng
        while True:
            tid = rng.choice(self.ids)
            m = self.model.get(tid)
            if m is None or not m["live"]:
                # an offboarding still queued holds the id (409): another one
                if m and m["pending_offboard"]:
                    if not self.landed(m["pending_offboard"]):
                        time.sleep(0.005)
                        continue
                    m["pending_offboard"] = None
                body = {"id": tid, "tier": rng.choice(TIERS)}
                if rng.random() < 0.5:
                    body["release"] = rng.choice(RELEASES)
                if rng.random() < 0.5:
                    body["values"] = self.new_values()
                return ("reonboard" if m else "onboard"), "POST", "/api/v1/tenants", body
            if rng.random() < 0.25:
                return "offboard", "DELETE", "/api/v1/tenants/" + tid, None
            what = rng.choice(("tier", "values", "release", "tier+values"))
            body = {}
            if "tier" in what:
                body["tier"] = rng.choice([t for t in TIERS if t != m["tier"]])
            if "values" in what:
                body["values"] = self.new_values()
            if what == "release":
                body["release"] = rng.choice([r for r in RELEASES if r != m["release"]])
            return "patch-" + what, "PATCH", "/api/v1/tenants/" + tid, body

    def new_values(self):
        self.values_serial += 1
        v = {"extra": {"client": self.n, "serial": self.values_serial}}
        if self.rng.random() < 0.5:
            v["apps"] = {"consumer": {"image": {"tag": "1.%d" % self.values_serial}}}
        return v

    def one(self):
        kind, method, path, body = self.choose()
        tid = body["id"] if method == "POST" else path.rsplit("/", 1)[1]
        if self.rng.random() < NO_WAIT:
            path += "?wait=0"
        try:
            status, headers, js = self.http.request(method, path, body)
        except Exception as e:
            self.bad.append((method, path, body, "no answer: %r" % e))
            return
        self.statuses[status] += 1
        if status not in EXPECTED[method]:
            self.bad.append((method, path, body, status, js))
            return
        op = op_id_of(status, headers, js)
        if not isinstance(op, int):
            self.bad.append((method, path, body, status, "no operation id", js))
            return
        self.kinds[kind] += 1
        self.acked.append((op, kind, tid, status))
        m = self.model.setdefault(tid, {"pending_offboard": None})
        if method == "POST":
            m.update(tier=body["tier"], release=body.get("release", "0.0"), values=body.get("values", {}),
                     live=True)
        elif method == "PATCH":
            m.update({k: v for k, v in body.items()})
        else:
            m["live"] = False
            m["pending_offboard"] = op if status == 202 else None


class Soak(GitServerTestCase):
    git_user, git_password = USER, PASSWORD

    def test_soak_mixed_writes_then_sigterm(self):
        seed = storm_seed()
        msg = "LANDLORD_STORM_SEED=%d" % seed
        asan = sanitized_build()
        sys.stderr.write("\n[soak] %s, %s build\n" % (msg, "ASan+UBSan" if asan else "release"))
        env = {}
        self.gs.create_repo("soak")
        s = self.start_server(args=["--git-url", self.gs.url("soak"), "--git-username", USER,
                                    "--git-password-file", self.pwfile], env=env)
        bare = self.gs.path("soak")
        self.assertRegex(git(bare, "rev-parse", "main").strip(), r"^[0-9a-f]{40}$",
                         "landlord did not seed the empty remote")

        # a foreign commit every few seconds, now and then two close together
        fw = ForeignWriter(bare, push_url=self.gs.authed_url("soak"), burst=2, pause=(0.01, 0.05),
                           gap=(2.0, 4.0), seed=seed)
        budget = Budget(OPS)
        clients = [Client(n, s.port, budget, seed * 100 + n) for n in range(CLIENTS)]
        rss = {}
        t0 = time.monotonic()
        fw.start()
        try:
            for c in clients:
                c.start()
            # landlord's RSS once it has warmed up (a tenth of the writes) and at the end
            while any(c.is_alive() for c in clients) and time.monotonic() - t0 < 600:
                if "warm" not in rss and budget.left <= OPS - OPS // 10:
                    rss["warm"] = s.rss_kb()
                time.sleep(0.05)
            for c in clients:
                c.join(1)
                self.assertFalse(c.is_alive(), "client %d did not finish (%s)" % (c.n, msg))
            elapsed = time.monotonic() - t0
            bad = [b for c in clients for b in c.bad]
            self.assertEqual(bad[:5], [], "%d writes not answered as expected (%s)" % (len(bad), msg))
            self.assertTrue(fw.is_alive(), "the foreign writer stopped early: %r" % (fw.error,))
        finally:
            fw.finish()
        acked = [a for c in clients for a in c.acked]
        self.assertEqual(len(acked), OPS)
        ops = wait_quiet(self, s, [a[0] for a in acked], timeout=120)
        rss["end"] = s.rss_kb()
        kinds = sum((c.kinds for c in clients), collections.Counter())
        statuses = sum((c.statuses for c in clients), collections.Counter())
        opened = sum(c.http.opened for c in clients)

        # each acknowledged operation in exactly one commit, in id order, and
        # the one the operation records
        for op, kind, tid, _ in acked:
            want = "onboard" if kind.endswith("onboard") else "update" if kind.startswith("patch") else kind
            self.assertEqual((ops[op]["kind"], ops[op]["tenant"]), (want, tid), msg)
        where = check_trailers(self, bare, ops)
        wrong = {i: (o["commit"], where[i]) for i, o in ops.items() if o["commit"] != where[i]}
        self.assertEqual(wrong, {}, "operations recording another commit than the one naming them")

        # the repository holds exactly the registry's tenants, listed once
        live, files = check_repo_and_registry(self, s, bare)
        # and the registry holds what the clients last set
        registry = {t["id"]: t for t in list_tenants(s)}
        model = {tid: m for c in clients for tid, m in c.model.items()}
        for tid, m in sorted(model.items()):
            t = registry.get(tid)
            self.assertIsNotNone(t, "tenant %s is not in the registry" % tid)
            got = (t["state"] == "offboarded", t["tier"], t["release"], t["values"])
            self.assertEqual(got, (not m["live"], m["tier"], m["release"], m["values"]),
                             "tenant %s is not what its client last set (%s)" % (tid, msg))
        self.assertEqual(sorted(live), sorted(tid for tid, m in model.items() if m["live"]))
        # each live tenant's file carries its release and values
        texts = read_blobs(bare, "main", [tenant_path(model[tid]["tier"], tid) for tid in live])
        for tid in live:
            m = model[tid]
            docs = [d for d in yaml.safe_load_all(texts[tenant_path(m["tier"], tid)]) if d]
            hr = [d for d in docs if d.get("kind") == "HelmRelease"][0]
            self.assertEqual(hr["spec"]["chart"]["spec"]["version"], release_expr(m["release"]), tid)
            for key, v in m["values"].items():
                if key == "extra":
                    self.assertEqual(hr["spec"]["values"].get("extra"), v, tid)
            if "apps" in m["values"]:
                self.assertEqual(hr["spec"]["values"]["apps"]["consumer"]["image"]["tag"],
                                 m["values"]["apps"]["consumer"]["image"]["tag"], tid)

        # the foreign commits are all there, and landlord rebuilt on them
        on_foreign = check_foreign_kept(self, bare, fw)
        self.assertGreaterEqual(len(fw.pushed), 3, "too few foreign commits landed during the soak")
        self.assertTrue(on_foreign, "landlord never built a commit on a foreign head")

        # the mix really was mixed, on kept-alive connections
        for k in ("onboard", "reonboard", "offboard", "patch-tier", "patch-values", "patch-release"):
            self.assertGreater(kinds[k], OPS // 50, "too few %s writes: %r" % (k, kinds))
        self.assertGreater(statuses[202], OPS // 10, statuses)
        self.assertLessEqual(opened, CLIENTS * 2, "connections were not kept alive")

        commits = len(commit_trailers(bare))
        code = s.stop(timeout=120)
        sys.stderr.write(
            "[soak] %d writes in %.1f s (%.0f/s) from %d clients on %d connections: %s; answers %s; "
            "%d landlord commits, %d on a foreign head; %d foreign commits (%d foreign pushes refused); "
            "RSS %s KiB after %d writes, %s KiB at the end; exit %r\n"
            % (OPS, elapsed, OPS / elapsed, CLIENTS, opened, dict(sorted(kinds.items())),
               dict(sorted(statuses.items())), commits, len(on_foreign), len(fw.pushed), fw.rejections,
               rss.get("warm"), OPS // 10, rss.get("end"), code))
        self.assertSanitizerClean(s, "after %d writes and SIGTERM" % OPS)
        self.assertEqual(code, 0, "landlord did not exit 0 on SIGTERM")


if __name__ == "__main__":
    unittest.main()

"""A full data volume: writes answer 503 storage-full (problem+json with
Retry-After) and change nothing, reads go on, /readyz says so, operations
acknowledged before the volume filled stay queued and are pushed exactly
once after space is freed, and landlord takes writes again without a
restart.

landlord runs on a real small filesystem that the test fills and frees: a
tmpfs mounted in a user + mount namespace of its own (`unshare --user
--map-root-user --mount`, no root needed), whose files the test reaches
through /proc/<pid>/root.  SQLite resolves that magic link to the path
outside, where the volume is not mounted, so the registry is read by
sqlite3 inside landlord's namespaces (`nsenter`).  The GitOps remote is a
bare repository outside the volume, so what reached it can be read with
the git CLI whatever the volume holds.  Without user namespaces the tests
fail (they never skip).
"""

import errno
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import time
import unittest

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support")
sys.path.insert(0, SUPPORT)

from harness import (  # noqa: E402
    PROBLEM,
    LandlordTestCase,
    Server,
    git,
    make_temp_dir,
    onboard,
    tenant_path,
)
from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402
from test_releases import GZIP, chart  # noqa: E402

VOLUME_KB = 16 * 1024  # the data volume: registry, clone, chart layout
CLONE_KB = 4 * 1024  # landlord's clone on a volume of its own (CloneFull)
WAIT_S = 90  # the writer backs off up to 30 s between retries


def namespace_problem():
    """None when a tmpfs can be mounted in a new user + mount namespace
    here, and entered again with nsenter, else why not."""
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            return "%s(1) (util-linux) is not installed" % tool
    d = make_temp_dir("landlord-ns-")
    q = shlex.quote(d)
    p = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         "mount -t tmpfs -o size=1m tmpfs %s && echo ok > %s/x && exec sleep 30" % (q, q)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists("/proc/%d/root%s/x" % (p.pid, d)):
            if p.poll() is not None or time.monotonic() > deadline:
                return "unshare --user --map-root-user --mount + mount -t tmpfs failed: %s" % (
                    p.stderr.read().decode("utf-8", "replace").strip() or "exit %r" % p.poll())
            time.sleep(0.01)
        e = subprocess.run(["nsenter", "-t", str(p.pid), "-U", "-m", "--preserve-credentials",
                            "cat", os.path.join(d, "x")],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        if e.stdout.strip() != b"ok":
            return "nsenter -U -m into that namespace failed: %s" % e.stdout.decode("utf-8", "replace")
    finally:
        p.kill()
        p.wait()
        p.stderr.close()
    return None


def tmpfs_wrap(mounts):
    """A Server wrap: landlord runs in its own user + mount namespace where
    each (dir, size in KiB) of mounts is a new, empty tmpfs."""
    steps = ["mkdir -p %s && mount -t tmpfs -o size=%dk tmpfs %s" % (shlex.quote(d), kb, shlex.quote(d))
             for d, kb in mounts]
    script = " && ".join(steps + ['exec "$@"'])

    def wrap(cmd):
        return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "landlord"] + cmd
    return wrap


def inside(server, path):
    """path as landlord sees it, from outside its mount namespace."""
    return "/proc/%d/root%s" % (server.proc.pid, os.path.abspath(path))


def fill(directory):
    """Writes a filler file into directory until its filesystem has no byte
    left; returns the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    st = os.statvfs(directory)
    assert st.f_bavail == 0, "the volume at %s still has %d blocks free" % (directory, st.f_bavail)
    return path


# Reads the registry inside landlord's namespaces: {table: [rows]} pickled.
READER = """
import pickle, sys
sys.path.insert(0, sys.argv[1])
import harness
sys.stdout.buffer.write(pickle.dumps(harness.registry_snapshot(sys.argv[2], sys.argv[3:] or None)))
"""


def registry_of(server, tables=()):
    """registry_snapshot() of server's registry (tables: all but the audit
    log when none are named), read where landlord sees its data dir."""
    p = subprocess.run(
        ["nsenter", "-t", str(server.proc.pid), "-U", "-m", "--preserve-credentials",
         sys.executable, "-c", READER, SUPPORT,
         os.path.join(server.data, "landlord.db")] + list(tables),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("cannot read the registry: %s" % p.stderr.decode("utf-8", "replace"))
    return pickle.loads(p.stdout)


def pushed_operation_ids(remote):
    """The operation ids named by Landlord-Operations: trailers on the
    remote's branch, oldest first, one entry per naming."""
    out = git(remote, "log", "--reverse", "--format=%B%x00", "main")
    ids = []
    for msg in out.split("\x00"):
        for line in msg.splitlines():
            if line.startswith("Landlord-Operations:"):
                ids += [int(x) for x in line.split(":", 1)[1].split()]
    return ids


def remote_state(remote):
    return git(remote, "for-each-ref", "--format=%(refname) %(objectname)")


class DiskFullCase(LandlordTestCase):
    @classmethod
    def setUpClass(cls):
        why = namespace_problem()
        if why:
            raise AssertionError(
                "cannot run landlord on a filesystem the test fills: %s.  These tests need "
                "unprivileged user namespaces (or root) and util-linux's unshare; they do "
                "not skip." % why)

    def start(self, mounts, args=None):
        """landlord on tmpfs volumes (data dir first, "DATA" in a path
        names it), pushing to a bare remote outside them unless args say
        where to."""
        remote = None
        if args is None:
            remote = os.path.join(make_temp_dir("landlord-remote-"), "remote.git")
            git(remote, "init", "--bare", "-q", "-b", "main")
            args = ["--git-url", remote]
        data = make_temp_dir("landlord-data-")
        s = Server(data=data, args=args, webhook_allow="127.0.0.0/8",  # hooks on loopback
                   wrap=tmpfs_wrap([(m.replace("DATA", data, 1), kb) for m, kb in mounts]))
        s.remote = remote
        self.addCleanup(s.kill)
        s.start()
        return s

    def snapshot(self, s):
        # Everything but the audit log, which records refusals by design
        # (and cannot record them while the volume is full).
        return registry_of(s)

    def operations(self, s):
        return registry_of(s, ["operations"])["operations"]

    def wait_pushed(self, s, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ops = self.operations(s)
            if ops and all(o["state"] != "queued" for o in ops):
                return ops
            time.sleep(0.2)
        self.fail("operations still queued %ds after space was freed: %r"
                  % (timeout, self.operations(s)))

    def wait_ready(self, s, check, timeout=WAIT_S):
        """Polls /readyz until check(answer json) holds; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = s.get("/readyz")
            self.assertEqual(r.status, 200, r)
            last = r.json
            if check(last):
                return last
            time.sleep(0.1)
        self.fail("/readyz never showed what was expected: %r" % last)

    def assertStorageFull(self, r):
        p = self.assertProblem(r, 503, "storage-full")
        self.assertTrue(p["detail"].startswith("the data volume is full: "), p)
        self.assertIn("free space", p.get("hint", ""), p)
        retry = r.header("Retry-After")
        self.assertIsNotNone(retry, r)
        self.assertGreater(int(retry), 0, r)
        return p

    def assertReads(self, s, present):
        r = s.get("/api/v1/tenants")
        self.assertEqual(r.status, 200, r)
        ids = {t["id"] for t in r.json["items"]}
        self.assertTrue(set(present) <= ids, (present, ids))
        for t in present:
            self.assertEqual(s.get("/api/v1/tenants/" + t).status, 200)
        self.assertEqual(s.get("/api/v1/tiers").status, 200)
        self.assertEqual(s.get("/api/v1/operations/1").status, 200)
        self.assertEqual(s.get("/api/v1/audit").status, 200)
        self.assertEqual(s.get("/metrics").status, 200)
        self.assertEqual(s.get("/healthz").status, 200)

    def assertPushedOnce(self, s, ops):
        named = pushed_operation_ids(s.remote)
        self.assertEqual(len(named), len(set(named)), "an operation was pushed twice: %r" % named)
        self.assertEqual(sorted(named), sorted(o["id"] for o in ops if o["state"] == "pushed"))
        self.assertEqual([o["state"] for o in ops], ["pushed"] * len(ops), ops)


class VolumeFull(DiskFullCase):
    def test_writes_are_refused_nothing_changes_and_queued_work_lands(self):
        s = self.start([("DATA", VOLUME_KB)])
        data = inside(s, s.data)
        self.assertEqual(onboard(s, "before", "basic").status, 201)

        # Acknowledged while the remote is away: queued in the outbox.
        away = s.remote + ".away"
        os.rename(s.remote, away)
        for t in ("queued-1", "queued-2"):
            r = onboard(s, t, "premium")
            self.assertEqual(r.status, 202, r)
        filler = fill(data)
        os.rename(away, s.remote)
        # The writer gets the remote back but cannot write the objects.
        ready = self.wait_ready(s, lambda j: j["checks"]["storage"]["status"] == "full")
        self.assertEqual(ready["status"], "degraded")

        before = self.snapshot(s)
        remote_before = remote_state(s.remote)
        r = onboard(s, "refused", "basic")
        p = self.assertStorageFull(r)
        self.assertNotIn("SELECT", p["detail"])
        r = s.post_json("/api/v1/tenants", {"id": "keyed", "tier": "basic"},
                        headers={"Idempotency-Key": "disk-full-1"})
        self.assertStorageFull(r)
        p = self.assertStorageFull(s.request("POST", "/api/v1/releases", body=chart("1.0.0"), headers=GZIP))
        self.assertIn("image layout", p["detail"])
        self.assertStorageFull(s.request("PATCH", "/api/v1/tenants/before",
                                         json_body={"values": {"extra": {"k": "v"}}}))
        self.assertStorageFull(s.delete("/api/v1/tenants/before"))
        self.assertStorageFull(s.post_json("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}))

        # Reads go on; /readyz names the condition.
        self.assertReads(s, ["before", "queued-1", "queued-2"])
        self.assertEqual(s.get("/api/v1/tenants/refused").status, 404)
        ready = s.get("/readyz")
        self.assertEqual(ready.status, 200, ready)
        self.assertEqual(ready.json["status"], "degraded")
        self.assertEqual(ready.json["checks"]["storage"]["status"], "full")
        self.assertIn("the data volume is full", ready.json["checks"]["storage"]["error"])
        self.assertEqual(ready.json["checks"]["registry"]["status"], "ok")

        # Nothing of the refused writes: registry, outbox, repository.
        time.sleep(1.0)  # the writer retries meanwhile
        self.assertEqual(self.snapshot(s), before)
        self.assertEqual(remote_state(s.remote), remote_before)
        queued = [o for o in before["operations"] if o["state"] == "queued"]
        self.assertEqual([o["tenant_id"] for o in queued], ["queued-1", "queued-2"])
        self.assertNotIn("refused", {t["id"] for t in before["tenants"]})
        self.assertFalse(os.path.exists(os.path.join(data, "oci", "helm-tenant-chart", "index.json")))

        # Space returns: no restart, the queued work lands exactly once and
        # the refused writes go through when sent again.
        os.unlink(filler)
        pid = s.proc.pid
        ops = self.wait_pushed(s)
        self.assertPushedOnce(s, ops)
        tree = git(s.remote, "ls-tree", "-r", "--name-only", "main")
        for t in ("queued-1", "queued-2"):
            self.assertIn(tenant_path("premium", t), tree)
        self.assertNotIn("refused", tree)
        r = onboard(s, "refused", "basic")
        self.assertEqual(r.status, 201, r)
        r = s.post_json("/api/v1/tenants", {"id": "keyed", "tier": "basic"},
                        headers={"Idempotency-Key": "disk-full-1"})
        self.assertEqual(r.status, 201, r)
        again = s.post_json("/api/v1/tenants", {"id": "keyed", "tier": "basic"},
                            headers={"Idempotency-Key": "disk-full-1"})
        self.assertEqual((again.status, again.header("Idempotent-Replayed")), (201, "true"), again)
        self.assertEqual(s.request("POST", "/api/v1/releases", body=chart("1.0.0"), headers=GZIP).status, 201)
        self.assertEqual(s.post_json("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}).status, 201)
        ready = self.wait_ready(s, lambda j: j["status"] == "ready")
        self.assertEqual(ready["checks"]["storage"], {"status": "ok"})
        self.assertEqual(s.proc.pid, pid)
        self.assertTrue(s.running)
        self.assertPushedOnce(s, self.wait_pushed(s))
        self.assertEqual(s.stop(), 0, "landlord exits 0 on SIGTERM (and, under ASan, leaks nothing)")


class CloneFull(DiskFullCase):
    def test_writes_queue_while_the_clone_cannot_grow_and_land_after(self):
        # The clone on a volume of its own: the registry still takes writes,
        # so they are acknowledged (202, queued) while no object can be written.
        s = self.start([("DATA", VOLUME_KB), ("DATA/work.git", CLONE_KB)])
        clone = inside(s, os.path.join(s.data, "work.git"))
        self.assertEqual(onboard(s, "early", "basic").status, 201)
        head = git(s.remote, "rev-parse", "main").strip()
        filler = fill(clone)

        accepted = []
        for t in ("late-1", "late-2", "late-3"):
            r = onboard(s, t, "premium")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["sync"], "pending", r)
            accepted.append(r.json["operation"])
        ready = self.wait_ready(s, lambda j: j["checks"]["storage"]["status"] == "full")
        self.assertEqual(ready["status"], "degraded")
        self.assertEqual(ready["checks"]["git"]["status"], "degraded")
        self.assertIn(os.strerror(errno.ENOSPC), ready["checks"]["git"]["error"])
        self.assertReads(s, ["early", "late-1", "late-2", "late-3"])

        time.sleep(1.0)  # the writer retries meanwhile
        self.assertEqual(git(s.remote, "rev-parse", "main").strip(), head)
        ops = {o["id"]: o for o in self.operations(s)}
        for op in accepted:
            self.assertEqual(ops[op]["state"], "queued", ops[op])
            self.assertGreaterEqual(ops[op]["attempts"], 1, ops[op])
            self.assertIn(os.strerror(errno.ENOSPC), ops[op]["last_error"] or "", ops[op])

        os.unlink(filler)
        ops = self.wait_pushed(s)
        self.assertPushedOnce(s, ops)
        tree = git(s.remote, "ls-tree", "-r", "--name-only", "main")
        for t in ("late-1", "late-2", "late-3"):
            self.assertIn(tenant_path("premium", t), tree)
        self.wait_ready(s, lambda j: j["status"] == "ready" and j["checks"]["storage"]["status"] == "ok")
        self.assertEqual(onboard(s, "after", "basic").status, 201)
        self.assertPushedOnce(s, self.wait_pushed(s))
        self.assertEqual(s.stop(), 0, "landlord exits 0 on SIGTERM (and, under ASan, leaks nothing)")


class EventsWhileFull(DiskFullCase):
    def test_state_changes_are_stored_once_space_returns(self):
        # Observed state from a cluster (the stand-in and the Flux
        # simulator): a tenant's state changes while the volume is full.
        gs = GitServer(users={"landlord": "pw"}).start()
        self.addCleanup(gs.cleanup)
        self.addCleanup(gs.stop)
        gs.create_repo("gitops")
        api = KubeAPI(tls=True, tokens={"tok-1": "landlord"}).start()
        self.addCleanup(api.stop)
        kubeconfig = api.kubeconfig(os.path.join(make_temp_dir("landlord-kube-"), "kubeconfig"))
        s = self.start([("DATA", VOLUME_KB)],
                       args=["--git-url", gs.url("gitops"), "--git-username", "landlord",
                             "--git-password-file", gs.write_password_file("pw"),
                             "--kubeconfig", kubeconfig])
        sim = FluxSim(api, gs.authed_url("gitops"), git_env=gs.git_env(), chart_versions=["0.0.1"]).start()
        self.addCleanup(sim.stop)
        self.assertEqual(onboard(s, "ev", "premium").status, 201)
        t = s.get("/api/v1/tenants/ev?wait=ready&timeout=30", timeout=60).json
        self.assertEqual(t["state"], "ready", t)
        sim.stop()  # the statuses stay as they are, but for what the test sets

        def events():
            return [e["type"] for e in registry_of(s, ["events"])["events"] if e["tenant_id"] == "ev"]
        before = events()
        self.assertEqual(before[-1], "tenant.ready", before)
        filler = fill(inside(s, s.data))
        hr = api.get("HelmRelease", "flux-system", "ev-premium")
        status = hr["status"]
        for c in status["conditions"]:
            if c["type"] == "Ready":
                c.update(status="False", reason="UpgradeFailed", message="disk test: upgrade failed")
        api.set_status("HelmRelease", "flux-system", "ev-premium", status, manager="helm-controller")
        deadline = time.monotonic() + 30
        while s.get("/api/v1/tenants/ev").json["state"] == "ready":
            self.assertLess(time.monotonic(), deadline, "the tenant never left ready")
            time.sleep(0.1)
        state = s.get("/api/v1/tenants/ev").json["state"]
        # Shown at once (from memory), but not stored while the volume is full.
        time.sleep(1.0)
        self.assertEqual(events(), before)
        self.assertEqual(s.get("/readyz").json["checks"]["storage"]["status"], "full")

        os.unlink(filler)
        deadline = time.monotonic() + 30
        while events() == before:
            self.assertLess(time.monotonic(), deadline, "the state change was never stored")
            time.sleep(0.2)
        self.assertEqual(events(), before + ["tenant." + state])
        self.wait_ready(s, lambda j: j["checks"]["storage"]["status"] == "ok")
        self.assertEqual(s.stop(), 0, "landlord exits 0 on SIGTERM (and, under ASan, leaks nothing)")


if __name__ == "__main__":
    unittest.main()

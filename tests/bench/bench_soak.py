#!/usr/bin/env python3
"""Soak benchmark (issue 10: landlord must run for months without growing).

A Git server (git http-backend behind lighttpd, basic auth) holding a
repository of --tenants tenants (built with git fast-import, as in
bench_gitops.py); landlord on it; --clients keep-alive clients, each
cycling through onboard -> change -> offboard of ids of its own (the change
rotates tier, values, release), every write waiting for its push (the
server's write-wait), until --ops writes are answered.

Every --every writes (and at 5,000) a row: writes answered, throughput and
p50/p99 latency of the interval, non-2xx answers, landlord's RSS
(/proc/<pid>/status VmRSS), the data dir's size (du), the objects of
landlord's clone (<data>/work.git, git count-objects -v: loose + packed,
their size), the CPU that landlord and this program used in the interval
(percent of one core) and how busy the whole machine was (percent of all
cores), and the 1-minute load average.  At the end: the data dir against a
`git gc`-ed mirror clone of the same remote plus the registry files; RSS
after --idle seconds without requests; and the issue's criterion, RSS
after 50,000 writes / RSS after 5,000 (or after the last row when the run
is shorter).

--fault remote-down: after --fault-at writes, lighttpd is stopped for
--down seconds while the clients keep writing (answers turn 202: queued in
SQLite; landlord runs with --write-wait 1 unless told otherwise so they
keep coming); RSS and the queue are printed every 2 s of the outage; once
lighttpd is back, the time until every operation queued before its return
is pushed (read from the registry) is printed.

--cluster: landlord also follows a cluster while the soak writes.  The
stand-in Kubernetes API (tests/support/kubeapi.py, TLS, a bearer token) is
populated with the Flux objects of the --tenants tenants already in the
repository, Ready at its head (GitRepository, Kustomization, one
HelmRelease per tenant and a Namespace per siloed tenant, as
bench_status.py's populate); the Flux simulator (tests/support/fluxsim.py,
--sim-delay seconds between status transitions, 0 by default) follows the
git server and the stand-in, so every commit of the soak is fetched, built
and applied (HelmReleases and Namespaces created and pruned, HelmReleases
installed, upgraded and uninstalled by the simulated helm-controller); and
landlord starts with --kubeconfig once the simulator has applied the head,
and the load starts once landlord reads every tenant `ready`.  The
simulator runs in this process: the "me" CPU column counts it and the
stand-in.  Each row then also shows, from landlord's /metrics, the tenants
that read `ready` and those in any other state but `offboarded`; how far
behind the simulator is (commits of the remote not yet applied by the
Kustomization, and the age of the oldest of them); what changed in the
stand-in in the interval (HelmReleases created / deleted / modified,
Namespaces created + deleted); landlord's watch restarts; and landlord's
RSS split into anonymous and file-backed memory, with the part of the
latter that maps its clone's pack files (libgit2 maps packs; pages of them
it reads count in VmRSS).  At the end,
the time until the simulator applied the last commit and landlord read
every live tenant `ready`.  To keep up on 2 cores the simulator parses
each file once (by content, with libyaml) and skips re-applying objects
whose desired form has not changed since it last applied them and that
still exist (what a server-side apply would find unchanged); it still
builds the whole Kustomization at every commit it fetches, so with fast
writers it applies only some of the commits (the newest when it comes
round), as Flux does.

Prints figures; asserts nothing.  Usage:
    LANDLORD_BIN=build/landlord /usr/bin/python3 tests/bench/bench_soak.py [--ops 100000]
        [--clients 64] [--tenants 10000] [--layout flat|sharded] [--every 10000] [--idle 20]
        [--gc plain|aggressive] [--fault remote-down] [--down 30] [--fault-at N] [--write-wait S]
        [--cluster [--sim-delay S] [--sim-poll S] [--kube-history N]]
"""

import argparse
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

from bench_gitops import TIERS, make_repo, pct  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import Server, proc_rss_kb  # noqa: E402
from storm import KeepAlive, op_id_of  # noqa: E402

RELEASES = ("0.0", "1.2", "1.4.2", "2.0.x")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- what is measured ------------------------------------------------------------


def du_kb(*paths):
    paths = [p for p in paths if os.path.exists(p)]
    if not paths:
        return 0
    out = subprocess.run(["du", "-sk", "-c"] + paths, capture_output=True, text=True).stdout
    return int(out.splitlines()[-1].split()[0])


def file_kb(path):
    try:
        return os.path.getsize(path) / 1024.0
    except OSError:
        return 0.0


def count_objects(git_dir):
    """{count, size, in-pack, size-pack, ...} of git count-objects -v (KiB
    for the sizes)."""
    out = subprocess.run(["git", "--git-dir", git_dir, "count-objects", "-v"], capture_output=True,
                         text=True).stdout
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        try:
            res[k.strip()] = int(v.strip())
        except ValueError:
            pass
    return res


def proc_cpu_s(pid):
    """utime + stime of a process, in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def host_cpu():
    """(busy, total) jiffies of the whole machine (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def registry_files(data):
    return [os.path.join(data, n) for n in sorted(os.listdir(data)) if n.startswith("landlord.db")]


def vacuumed_kb(db):
    """The size of the registry copied with VACUUM INTO: its live data,
    without free pages or a WAL."""
    tmp = tempfile.mkdtemp(prefix="landlord-soak-db-")
    try:
        out = os.path.join(tmp, "copy.db")
        conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
        try:
            conn.execute("VACUUM INTO ?", (out,))
        finally:
            conn.close()
        return file_kb(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def queued_up_to(db, last_id):
    """Operations with id <= last_id still queued (read-only, from the
    registry)."""
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM operations WHERE state = 'queued' AND id <= ?",
                            (last_id,)).fetchone()[0]
    finally:
        conn.close()


def readyz_queued(s):
    try:
        r = s.get("/readyz", timeout=10)
        git = (r.json or {}).get("checks", {}).get("git", {}) or {}
        return git.get("queued"), git.get("status")
    except OSError:
        return None, None


# -- the load ------------------------------------------------------------------------


class Load:
    """clients threads, each on one keep-alive connection, cycling through
    onboard -> change -> offboard of its own ids until ops writes have been
    sent.  Each answer is recorded as (monotonic end, latency ms, ok)."""

    def __init__(self, port, clients, ops):
        self.port = port
        self.ops = ops
        self.lock = threading.Lock()
        self.sent = 0
        self.done = 0
        self.answers = []  # (end, ms, ok)
        self.statuses = {}
        self.max_op = 0
        self.opened = 0
        self.threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join()

    @property
    def running(self):
        return any(t.is_alive() for t in self.threads)

    def take(self):
        with self.lock:
            if self.sent >= self.ops:
                return False
            self.sent += 1
            return True

    def client(self, n):
        http = KeepAlive(self.port, timeout=600)
        k = 0
        try:
            while True:
                k += 1
                tid = "soak%02d-%d" % (n, k)
                tier = TIERS[k % 3]
                change = ({"tier": TIERS[(k + 1) % 3]}, {"values": {"extra": {"client": n, "k": k}}},
                          {"release": RELEASES[k % len(RELEASES)]})[k % 3]
                for method, path, body in (("POST", "/api/v1/tenants", {"id": tid, "tier": tier}),
                                           ("PATCH", "/api/v1/tenants/" + tid, change),
                                           ("DELETE", "/api/v1/tenants/" + tid, None)):
                    if not self.take():
                        return
                    t0 = time.monotonic()
                    op = None
                    try:
                        status, headers, js = http.request(method, path, body)
                        if status in (200, 201, 202):
                            op = op_id_of(status, headers, js)
                    except Exception:
                        status = None
                    t1 = time.monotonic()
                    with self.lock:
                        self.done += 1
                        self.answers.append((t1, (t1 - t0) * 1000.0, status in (200, 201, 202)))
                        self.statuses[status] = self.statuses.get(status, 0) + 1
                        if op and op > self.max_op:
                            self.max_op = op
        finally:
            with self.lock:
                self.opened += http.opened
            http.close()


# -- the run ------------------------------------------------------------------------


class Sampler:
    """Rows of the table: each covers the answers since the previous row."""

    HEADER = ("%8s %7s %7s %7s %6s %7s %8s %12s %17s %17s %10s %5s %5s"
              % ("writes", "ops/s", "p50 ms", "p99 ms", "non2xx", "RSS MB", "data MB", "db+wal MB",
                 "objects loose+pk", "KB loose+pack", "CPU ll/me", "host", "load"))

    def __init__(self, s, load):
        self.s = s
        self.load = load
        self.pid = s.proc.pid
        self.prev_i = 0
        self.prev_t = time.monotonic()
        self.prev_cpu = (proc_cpu_s(self.pid), self_cpu_s(), host_cpu())
        self.rss = {}
        self.extra = None  # --cluster: more columns

    def row(self, label):
        with self.load.lock:
            answers = self.load.answers[self.prev_i:]
            self.prev_i = len(self.load.answers)
        now = time.monotonic()
        rss = proc_rss_kb(self.pid) or 0
        self.rss[label] = rss
        data = du_kb(self.s.data)
        co = count_objects(os.path.join(self.s.data, "work.git"))
        cpu = (proc_cpu_s(self.pid), self_cpu_s(), host_cpu())
        dt = max(1e-6, now - self.prev_t)
        ll = (cpu[0] - self.prev_cpu[0]) / dt * 100
        me = (cpu[1] - self.prev_cpu[1]) / dt * 100
        busy = cpu[2][0] - self.prev_cpu[2][0]
        total = max(1, cpu[2][1] - self.prev_cpu[2][1])
        lat = [a[1] for a in answers]
        bad = sum(1 for a in answers if not a[2])
        span = (answers[-1][0] - self.prev_t) if answers else dt
        rate = len(answers) / max(1e-6, span)
        db, wal = (file_kb(self.s.db + suffix) for suffix in ("", "-wal"))
        line = ("%8s %7.0f %7.1f %7.1f %6d %7.1f %8.1f %12s %17s %17s %10s %4.0f%% %5.2f"
              % (label, rate, pct(lat, 50) if lat else float("nan"), pct(lat, 99) if lat else float("nan"),
                 bad, rss / 1024.0, data / 1024.0, "%.1f+%.1f" % (db / 1024.0, wal / 1024.0),
                 "%d+%d" % (co.get("count", 0), co.get("in-pack", 0)),
                 "%d+%d" % (co.get("size", 0), co.get("size-pack", 0)),
                 "%.0f/%.0f%%" % (ll, me), busy * 100.0 / total, os.getloadavg()[0]))
        if self.extra is not None:
            line += self.extra()
        print(line, flush=True)
        self.prev_t, self.prev_cpu = now, cpu
        return rss


def gc_clone_kb(gs, repo, how):
    """du of a mirror clone of the remote after git gc (plain or
    aggressive), and the seconds it took."""
    tmp = tempfile.mkdtemp(prefix="landlord-soak-gc-")
    try:
        mirror = os.path.join(tmp, "mirror.git")
        t0 = time.monotonic()
        gs.git_cli("clone", "-q", "--mirror", gs.authed_url(repo), mirror, timeout=3600)
        gs.git_cli("--git-dir", mirror, "gc", "-q", *(["--aggressive"] if how == "aggressive" else []),
                   timeout=3600)
        return du_kb(mirror), time.monotonic() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Outage:
    """--fault remote-down, stepped by the main loop so that rows go on:
    lighttpd is stopped, RSS and the queue are printed every 2 s, lighttpd
    is started again after `seconds`, and the time until every operation
    acknowledged before that is pushed (read from the registry) is printed."""

    def __init__(self, gs, s, load, seconds):
        self.gs, self.s, self.load, self.seconds = gs, s, load, seconds
        self.phase = "before"
        self.t_down = self.t_up = self.next_print = None
        self.rss0 = self.peak = 0
        self.last_op = None
        self.drained_after = None

    def step(self, fault_at):
        now = time.monotonic()
        if self.phase == "before" and self.load.done >= fault_at:
            print("-- remote down: lighttpd stopped after %d writes (%s)" % (self.load.done, uptime()), flush=True)
            self.rss0 = self.peak = proc_rss_kb(self.s.proc.pid) or 0
            self.gs.stop()
            self.t_down, self.next_print, self.phase = now, now + 2.0, "down"
        elif self.phase == "down" and now >= self.next_print:
            rss = proc_rss_kb(self.s.proc.pid) or 0
            self.peak = max(self.peak, rss)
            q, status = readyz_queued(self.s)
            print("   down +%4.1f s: writes %6d, queued %s (git %s), RSS %.1f MB"
                  % (now - self.t_down, self.load.done, q, status, rss / 1024.0), flush=True)
            self.next_print += 2.0
            if now - self.t_down >= self.seconds - 0.01:
                self.gs.restart()
                self.t_up = time.monotonic()
                with self.load.lock:
                    self.last_op = self.load.max_op
                print("-- remote back after %.1f s: %s operations queued (ids up to %d acknowledged), RSS %.1f MB "
                      "before the outage, peak %.1f MB during it"
                      % (self.t_up - self.t_down, q, self.last_op, self.rss0 / 1024.0, self.peak / 1024.0),
                      flush=True)
                self.phase = "draining"
        elif self.phase == "draining" and queued_up_to(self.s.db, self.last_op) == 0:
            self.drained_after = time.monotonic() - self.t_up
            print("-- every operation acknowledged while the remote was down (ids <= %d) pushed %.1f s after it "
                  "came back" % (self.last_op, self.drained_after), flush=True)
            self.phase = "after"


# -- --cluster: the stand-in Kubernetes API and the Flux simulator ---------------------------------

# Every release the load asks for resolves (0.0 -> 0.0.x, 1.2 -> 1.2.x, 1.4.2, 2.0.x); 0.0.1 is
# what the populated HelmReleases run, and stays the newest 0.0.x so none of them is upgraded.
CHART_VERSIONS = ("0.0.1", "1.2.3", "1.4.2", "2.0.0")


class _ParseOnce:
    """Stands in for the yaml module inside fluxsim (its kustomize_build and
    load_docs call yaml.safe_load / safe_load_all): each distinct text is
    parsed once, with libyaml when PyYAML has it, and handed out as fresh
    copies.  sweep() forgets the texts not asked for since the last sweep."""

    def __init__(self, yaml):
        self.yaml = yaml
        self.YAMLError = yaml.YAMLError
        self.loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.cache = {}
        self.used = set()
        self.lock = threading.Lock()

    def _parsed(self, text, many):
        key = (many, text)
        with self.lock:
            hit = self.cache.get(key)
            self.used.add(key)
        if hit is None:
            hit = list(self.yaml.load_all(text, Loader=self.loader)) if many else \
                self.yaml.load(text, Loader=self.loader)
            with self.lock:
                self.cache[key] = hit
        return hit

    def safe_load(self, text):
        from kubeapi import clone
        return clone(self._parsed(text, False))

    def safe_load_all(self, text):
        from kubeapi import clone
        return iter([clone(d) for d in self._parsed(text, True)])

    def sweep(self):
        with self.lock:
            self.cache = {k: v for k, v in self.cache.items() if k in self.used}
            self.used = set()


class _ApplyOnce:
    """The stand-in as the simulator sees it: kustomize-controller's apply
    (and its dry-run validation) of an object whose desired form is the one
    it applied last time, and which still exists and is not being deleted,
    answers "unchanged" without the stand-in doing the work (what a
    server-side apply would find: nobody else edits these objects here);
    everything else goes to the stand-in."""

    def __init__(self, api):
        self._api = api
        self._last = {}
        self._seen = set()
        self.skipped = 0

    def __getattr__(self, name):
        return getattr(self._api, name)

    def _current_if_same(self, obj):
        md = obj.get("metadata") or {}
        key = (obj.get("kind"), md.get("namespace"), md.get("name"))
        if self._last.get(key) != obj:
            return key, None
        api = self._api
        res = api._res_for_obj(obj)
        with api._lock:
            cur = api._lookup(res, md.get("namespace") if res.namespaced else None, md.get("name"))
            if cur is None or cur["metadata"].get("deletionTimestamp"):
                return key, None
            from kubeapi import clone
            return key, clone(cur)

    def validate(self, obj):
        if self._current_if_same(obj)[1] is None:
            self._api.validate(obj)

    def apply(self, obj, manager="kustomize-controller"):
        if manager != "kustomize-controller":
            return self._api.apply(obj, manager=manager)
        key, cur = self._current_if_same(obj)
        self._seen.add(key)
        if cur is not None:
            self.skipped += 1
            return cur, "unchanged"
        from kubeapi import clone
        out = self._api.apply(obj, manager=manager)
        self._last[key] = clone(obj)
        return out

    def sweep(self):
        self._last = {k: v for k, v in self._last.items() if k in self._seen}
        self._seen = set()


def _sim_class():
    import fluxsim

    class SoakFluxSim(fluxsim.FluxSim):
        """FluxSim that reads from git only the blobs it has not read yet,
        parses each file once, and applies only what changed (see
        _ParseOnce, _ApplyOnce); builds and applies counted."""

        def __init__(self, api, *a, **kw):
            self.once = _ApplyOnce(api)
            super().__init__(self.once, *a, **kw)
            self.blobs = {}
            self.builds = 0
            self.build_s = 0.0

        def _files(self, sha, path):
            entries = self._blob_entries(sha, path)
            self.blobs.update(self._read_blobs(sorted(set(oid for _, oid in entries if oid not in self.blobs))))
            keep = set(oid for _, oid in entries)
            self.blobs = {oid: b for oid, b in self.blobs.items() if oid in keep}
            return {name: self.blobs[oid] for name, oid in entries}

        def _build(self, sha, path, spec):
            t0 = time.monotonic()
            try:
                return super()._build(sha, path, spec)
            finally:
                fluxsim.yaml.sweep()
                self.builds += 1
                self.build_s += time.monotonic() - t0

        def _apply(self, objs, st):
            try:
                return super()._apply(objs, st)
            finally:
                self.once.sweep()

    return fluxsim, SoakFluxSim


def _counting_api_class():
    from kubeapi import KubeAPI

    class CountingKubeAPI(KubeAPI):
        """The stand-in, counting what it stores: (plural, event type)."""

        def __init__(self, *a, **kw):
            self.counts = {}
            super().__init__(*a, **kw)

        def _commit(self, res, etype, obj, prev):
            k = (res.plural, etype)
            self.counts[k] = self.counts.get(k, 0) + 1
            return super()._commit(res, etype, obj, prev)

    return CountingKubeAPI


def tenant_texts(n):
    """(id, tier, file text) of the tenants bench_gitops.make_repo writes."""
    from bench_gitops import ROOT, seed_files
    files = seed_files()
    tmpl = {t: files[ROOT + "/tier-templates/%s_tenant_template.yaml" % t].decode() for t in TIERS}
    for i in range(n):
        tid = "pre%06d" % i
        tier = TIERS[i % 3]
        yield tid, tier, (tmpl[tier].replace("{TENANT_ID}", tid).replace("{TIER}", tier)
                          .replace("{RELEASE_VERSION}", "0.0.x"))


def rss_parts_kb(pid):
    """(RssAnon, RssFile, Rss of the mappings of landlord's clone's pack
    files and their indexes) in KiB, from /proc/<pid>/status and smaps."""
    anon = file_ = pack = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith("RssFile:"):
                    file_ = int(line.split()[1])
        in_pack = False
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    in_pack = "/objects/pack/" in line
                elif in_pack and line.startswith("Rss:"):
                    pack += int(line.split()[1])
    except OSError:
        pass
    return anon, file_, pack


def metrics(s):
    """(tenants reading ready, tenants in any other state but offboarded,
    watch restarts) from landlord's /metrics."""
    ready = other = restarts = 0
    try:
        text = s.get("/metrics", timeout=30).body.decode()
    except OSError:
        return None, None, None
    for line in text.splitlines():
        if line.startswith("landlord_tenants{"):
            n = int(line.rsplit(" ", 1)[1])
            if 'state="ready"' in line:
                ready += n
            elif 'state="offboarded"' not in line:
                other += n
        elif line.startswith("landlord_watch_restarts_total{"):
            restarts += int(line.rsplit(" ", 1)[1])
    return ready, other, restarts


class Cluster:
    """--cluster: the stand-in Kubernetes API populated with the Flux
    objects of the tenants already in the repository, Ready at its head, and
    the Flux simulator following the git server and the stand-in."""

    HEADER = " %6s %6s %7s %6s %17s %7s %4s %21s" % ("ready", "other", "behind", "lag s", "HR +/-/~", "ns +/-",
                                                      "wrst", "RSS anon+file(pack)")

    def __init__(self, gs, repo, args):
        self.gs, self.repo, self.args = gs, repo, args
        self.api = self.sim = None
        self.dir = tempfile.mkdtemp(prefix="landlord-soak-kube-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.prev_counts = self.base_counts = {}

    def head(self):
        return subprocess.run(["git", "--git-dir", self.gs.path(self.repo), "rev-parse", "main"],
                              capture_output=True, text=True, check=True).stdout.strip()

    def applied(self):
        ks = self.api.get("Kustomization", "flux-system", "dataplane-tenants")
        rev = ((ks or {}).get("status") or {}).get("lastAppliedRevision") or ""
        return rev.rsplit(":", 1)[-1]

    def start(self):
        import yaml
        from bench_status import helmrelease, KS_LABELS
        fluxsim, SoakFluxSim = _sim_class()
        parse = fluxsim.yaml = _ParseOnce(yaml)
        self.api = _counting_api_class()(tls=True, tokens={"soak-token": "landlord"},
                                         history_size=self.args.kube_history).start()
        self.api.kubeconfig(self.kubeconfig, token="soak-token")
        t0 = time.monotonic()
        head = self.head()
        objects = 0  # the GitRepository and the Kustomization: the simulator makes them, Ready at head
        for tid, tier, text in tenant_texts(self.args.tenants):
            for doc in parse.safe_load_all(text):
                if not doc:
                    continue
                md = doc.setdefault("metadata", {})
                md.setdefault("labels", {}).update(KS_LABELS)
                if doc.get("kind") == "HelmRelease":
                    doc["status"] = helmrelease(md["name"])
                self.api.put(doc)
                objects += 1
        t1 = time.monotonic()
        self.sim = SoakFluxSim(self.api, self.gs.authed_url(self.repo), git_env=self.gs.git_env(),
                               delays=self.args.sim_delay, poll_interval=self.args.sim_poll,
                               retry_interval=1.0, chart_versions=CHART_VERSIONS).start()
        deadline = time.monotonic() + 900
        while not (self.applied() == head and self.sim.builds):
            if time.monotonic() > deadline:
                sys.exit("the simulator did not apply %s in 900 s: %s" % (head, self.sim.errors[-3:]))
            time.sleep(0.2)
        self.sim.wait_idle(timeout=900)
        print("stand-in populated with %d objects of %d tenants in %.1f s; the simulator applied the head in "
              "%.1f s (delays %s s, poll %s s)" % (objects, self.args.tenants, t1 - t0, time.monotonic() - t1,
                                                   self.args.sim_delay, self.args.sim_poll), flush=True)
        self.prev_counts = dict(self.api.counts)
        self.base_counts = dict(self.api.counts)
        return self

    def wait_ready(self, s, n, timeout=900):
        t0 = time.monotonic()
        while True:
            ready, other, _ = metrics(s)
            if ready is not None and ready >= n:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                sys.exit("landlord did not read %d tenants ready in %d s (ready %s, other %s)"
                         % (n, timeout, ready, other))
            time.sleep(0.5)

    def behind(self):
        """(commits of the remote the Kustomization has not applied, age in
        seconds of the oldest of them)."""
        applied = self.applied()
        out = subprocess.run(["git", "--git-dir", self.gs.path(self.repo), "log", "--format=%ct",
                              "%s..main" % applied if applied else "main"],
                             capture_output=True, text=True).stdout.split()
        if not out:
            return 0, 0.0
        return len(out), max(0.0, time.time() - int(out[-1]))

    def row(self, s):
        ready, other, restarts = metrics(s)
        n, age = self.behind()
        c = dict(self.api.counts)
        d = {k: v - self.prev_counts.get(k, 0) for k, v in c.items()}
        self.prev_counts = c
        hr = "%d/%d/%d" % (d.get(("helmreleases", "ADDED"), 0), d.get(("helmreleases", "DELETED"), 0),
                           d.get(("helmreleases", "MODIFIED"), 0))
        ns = "%d/%d" % (d.get(("namespaces", "ADDED"), 0), d.get(("namespaces", "DELETED"), 0))
        anon, file_, pack = rss_parts_kb(s.proc.pid)
        return " %6s %6s %7d %6.1f %17s %7s %4s %21s" % (ready, other, n, age, hr, ns, restarts, "%.1f+%.1f(%.1f)" % (
            anon / 1024.0, file_ / 1024.0, pack / 1024.0))

    def catch_up(self, s, timeout=900):
        """After the writes: until the simulator applied the remote's head
        and landlord reads every tenant that is not offboarded ready."""
        t0 = time.monotonic()
        head = self.head()
        t_applied = None
        while time.monotonic() - t0 < timeout:
            if t_applied is None and self.applied() == head:
                t_applied = time.monotonic() - t0
            ready, other, restarts = metrics(s)
            if t_applied is not None and other == 0:
                return t_applied, time.monotonic() - t0, ready, restarts
            time.sleep(0.5)
        ready, other, restarts = metrics(s)
        print("after %d s: simulator applied the head: %s; landlord: %s ready, %s in other states"
              % (timeout, t_applied is not None, ready, other))
        return t_applied, None, ready, restarts

    def totals(self):
        c = {k: v - self.base_counts.get(k, 0) for k, v in self.api.counts.items()}
        return ("stand-in, since the population was applied: %d HelmReleases created, %d deleted, %d modified; %d Namespaces created, %d deleted; "
                "%d events in all; simulator: %d builds (%.1f s), %d applies skipped as unchanged, %d errors%s"
                % (c.get(("helmreleases", "ADDED"), 0), c.get(("helmreleases", "DELETED"), 0),
                   c.get(("helmreleases", "MODIFIED"), 0), c.get(("namespaces", "ADDED"), 0),
                   c.get(("namespaces", "DELETED"), 0), sum(c.values()), self.sim.builds, self.sim.build_s,
                   self.sim.once.skipped, len(self.sim.errors),
                   (" (last: %s)" % self.sim.errors[-1]) if self.sim.errors else ""))

    def stop(self):
        if self.sim is not None:
            self.sim.stop()
        if self.api is not None:
            self.api.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--tenants", type=int, default=10000, help="tenants already in the repository")
    ap.add_argument("--layout", default="flat", choices=["flat", "sharded"])
    ap.add_argument("--every", type=int, default=10000, help="writes per row")
    ap.add_argument("--idle", type=float, default=20, help="seconds without requests before the last RSS")
    ap.add_argument("--gc", default="plain", choices=["plain", "aggressive"],
                    help="git gc of the mirror clone the data dir is compared with")
    ap.add_argument("--fault", choices=["remote-down"])
    ap.add_argument("--down", type=float, default=30, help="seconds the remote stays down")
    ap.add_argument("--fault-at", type=int, help="writes before the remote goes down (default ops/2)")
    ap.add_argument("--write-wait", type=int,
                    help="landlord's --write-wait (default: landlord's own, 10; 1 with --fault)")
    ap.add_argument("--cluster", action="store_true",
                    help="landlord follows the stand-in Kubernetes API, which the Flux simulator keeps in step "
                         "with the repository")
    ap.add_argument("--sim-delay", type=float, default=0,
                    help="--cluster: seconds between the simulator's status transitions")
    ap.add_argument("--sim-poll", type=float, default=0.1, help="--cluster: the simulator's poll interval")
    ap.add_argument("--kube-history", type=int, default=50000,
                    help="--cluster: events the stand-in keeps for watches to resume from")
    args = ap.parse_args()
    write_wait = args.write_wait if args.write_wait is not None else (1 if args.fault else None)
    fault_at = args.fault_at if args.fault_at is not None else args.ops // 2

    import harness
    harness.START_TIMEOUT = 900

    print("bench_soak: %d writes, %d clients, %d tenants in the repository, layout %s%s"
          % (args.ops, args.clients, args.tenants, args.layout,
             ", fault %s for %.0f s after %d writes" % (args.fault, args.down, fault_at) if args.fault else ""))
    print("landlord: %s; write-wait %s" % (harness.landlord_bin(), write_wait if write_wait is not None else
                                           "default"))
    if args.cluster:
        print("cluster: the stand-in Kubernetes API (TLS, bearer token) and the Flux simulator in this process "
              "(the \"me\" CPU column counts them)")
    print("start: %s" % uptime(), flush=True)
    gs = GitServer().start()
    pw = gs.write_password_file("s3cret")
    s = None
    cluster = None
    try:
        t0 = time.monotonic()
        make_repo(gs, "soak", args.tenants, args.layout)
        t1 = time.monotonic()
        extra = ["--write-wait", str(write_wait)] if write_wait is not None else []
        if args.cluster:
            cluster = Cluster(gs, "soak", args).start()
            extra += ["--kubeconfig", cluster.kubeconfig]
            t1 = time.monotonic()
        s = Server(args=["--git-url", gs.url("soak"), "--git-username", "landlord", "--git-password-file", pw,
                         "--log-level", "warn", "--git-layout", args.layout, "--http-threads", "8"] + extra)
        s.start()
        t2 = time.monotonic()
        if cluster is None:
            print("repository built in %.1f s; landlord started (clone + adoption) in %.1f s, RSS %.1f MB, "
                  "data dir %.1f MB\n" % (t1 - t0, t2 - t1, (s.rss_kb() or 0) / 1024.0, du_kb(s.data) / 1024.0))
        else:
            rss0 = s.rss_kb() or 0
            ready_s = cluster.wait_ready(s, args.tenants)
            print("repository built and the cluster ready in %.1f s; landlord started (clone + adoption) in %.1f s, "
                  "RSS %.1f MB; every tenant read ready %.1f s later, RSS %.1f MB, data dir %.1f MB\n"
                  % (t1 - t0, t2 - t1, rss0 / 1024.0, ready_s, (s.rss_kb() or 0) / 1024.0, du_kb(s.data) / 1024.0))

        load = Load(s.port, args.clients, args.ops)
        sampler = Sampler(s, load)
        if cluster is not None:
            sampler.extra = lambda: cluster.row(s)
        else:
            sampler.extra = lambda: " %21s" % ("%.1f+%.1f(%.1f)" % tuple(v / 1024.0 for v in rss_parts_kb(s.proc.pid)))
        marks = sorted(set(range(args.every, args.ops + 1, args.every)) | ({5000} if args.ops >= 5000 else set()))
        if not marks or marks[-1] != args.ops:
            marks.append(args.ops)
        print(Sampler.HEADER + (Cluster.HEADER if cluster is not None else " %21s" % "RSS anon+file(pack)"),
              flush=True)
        t_load = time.monotonic()
        load.start()
        fault = Outage(gs, s, load, args.down) if args.fault else None
        while marks:
            time.sleep(0.02)
            done = load.done
            if fault:
                fault.step(fault_at)
            if done >= marks[0]:
                sampler.row(str(marks.pop(0)))
            elif not load.running and load.done < marks[0]:
                sampler.row("%d (end)" % load.done)
                break
        load.join()
        wall = time.monotonic() - t_load
        t_q = time.monotonic()
        while fault and fault.phase in ("down", "draining"):  # the outage outlasted the writes
            fault.step(fault_at)
            time.sleep(0.05)
        # what is still queued (202 answers) lands before the end figures
        while True:
            q, status = readyz_queued(s)
            if q == 0:
                break
            if time.monotonic() - t_q > 600:
                print("still %s operations queued after 600 s (git %s)" % (q, status))
                break
            time.sleep(0.1)
        codes = dict(sorted(((str(k), v) for k, v in load.statuses.items())))
        print("\n%d writes in %.1f s (%.0f/s), answers %s, %d connections for %d clients; queue empty %.1f s "
              "after the last answer" % (load.done, wall, load.done / wall, codes, load.opened, args.clients,
                                         time.monotonic() - t_q))
        print("end: %s" % uptime(), flush=True)
        if cluster is not None:
            behind, age = cluster.behind()
            t_applied, t_ready, ready, restarts = cluster.catch_up(s)
            print("cluster: at the end the simulator was %d commits behind (the oldest %.0f s old); it applied the "
                  "last commit %s after the queue emptied, and landlord read every tenant that is not offboarded "
                  "ready (%s) %s after; watch restarts %s" % (
                      behind, age, "%.1f s" % t_applied if t_applied is not None else "not",
                      ready, "%.1f s" % t_ready if t_ready is not None else "never", restarts))
            print(cluster.totals())
            print("after the catch-up: %s" % uptime(), flush=True)

        # the data dir against a gc-ed clone of the remote + the registry
        data = du_kb(s.data)
        work = du_kb(os.path.join(s.data, "work.git"))
        reg = du_kb(*registry_files(s.data))
        print("registry files: %s" % ", ".join("%s %.1f MB" % (os.path.basename(f), file_kb(f) / 1024.0)
                                              for f in registry_files(s.data)))
        gc_kb, gc_s = gc_clone_kb(gs, "soak", args.gc)
        co = count_objects(os.path.join(s.data, "work.git"))
        print("data dir %.1f MB (clone work.git %.1f MB: %d loose objects %.1f MB, %d packed %.1f MB; registry "
              "%.1f MB; other %.1f MB)" % (data / 1024.0, work / 1024.0, co.get("count", 0),
                                          co.get("size", 0) / 1024.0, co.get("in-pack", 0),
                                          co.get("size-pack", 0) / 1024.0, reg / 1024.0,
                                          (data - work - reg) / 1024.0))
        print("git gc%s-ed mirror clone of the remote %.1f MB (%.0f s) + registry %.1f MB = %.1f MB; data dir / "
              "that = %.2fx  (target <= 2x after 50,000 writes)"
              % (" --aggressive" if args.gc == "aggressive" else "", gc_kb / 1024.0, gc_s, reg / 1024.0,
                 (gc_kb + reg) / 1024.0, data / float(gc_kb + reg)))
        vac = vacuumed_kb(s.db)
        print("the same with the registry as VACUUM INTO copies it (%.1f MB: its rows, no WAL): %.1f MB; data dir "
              "/ that = %.2fx" % (vac / 1024.0, (gc_kb + vac) / 1024.0, data / float(gc_kb + vac)))

        # RSS after idling, and the criterion
        rss_end = s.rss_kb()
        parts_end = rss_parts_kb(s.proc.pid)
        time.sleep(args.idle)
        rss_idle = s.rss_kb()
        print("RSS at the end %.1f MB, after %.0f s idle %.1f MB" % (rss_end / 1024.0, args.idle,
                                                                     rss_idle / 1024.0))
        print("  anon+file(pack mappings) MB: at the end %s, after idle %s" % tuple(
            "%.1f+%.1f(%.1f)" % tuple(v / 1024.0 for v in p) for p in (parts_end, rss_parts_kb(s.proc.pid))))
        if "5000" in sampler.rss:
            later = "50000" if "50000" in sampler.rss else max(
                (k for k in sampler.rss if k.isdigit()), key=int)
            print("RSS after %s writes / after 5,000: %.1f / %.1f MB = %.3f  (target <= 1.10 at 50,000%s)"
                  % (later, sampler.rss[later] / 1024.0, sampler.rss["5000"] / 1024.0,
                     sampler.rss[later] / float(sampler.rss["5000"]),
                     "" if later == "50000" else "; this run ends before 50,000"))
        code = s.stop(timeout=60)
        print("landlord exit code on SIGTERM: %r" % code)
    finally:
        if s is not None:
            s.kill()
        if cluster is not None:
            cluster.stop()
        gs.stop()
        gs.cleanup()


if __name__ == "__main__":
    main()

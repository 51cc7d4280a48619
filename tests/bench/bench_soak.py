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

Prints figures; asserts nothing.  Usage:
    LANDLORD_BIN=build/landlord /usr/bin/python3 tests/bench/bench_soak.py [--ops 100000]
        [--clients 64] [--tenants 10000] [--layout flat|sharded] [--every 10000] [--idle 20]
        [--gc plain|aggressive] [--fault remote-down] [--down 30] [--fault-at N] [--write-wait S]
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
        print("%8s %7.0f %7.1f %7.1f %6d %7.1f %8.1f %12s %17s %17s %10s %4.0f%% %5.2f"
              % (label, rate, pct(lat, 50) if lat else float("nan"), pct(lat, 99) if lat else float("nan"),
                 bad, rss / 1024.0, data / 1024.0, "%.1f+%.1f" % (db / 1024.0, wal / 1024.0),
                 "%d+%d" % (co.get("count", 0), co.get("in-pack", 0)),
                 "%d+%d" % (co.get("size", 0), co.get("size-pack", 0)),
                 "%.0f/%.0f%%" % (ll, me), busy * 100.0 / total, os.getloadavg()[0]), flush=True)
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
    print("start: %s" % uptime(), flush=True)
    gs = GitServer().start()
    pw = gs.write_password_file("s3cret")
    s = None
    try:
        t0 = time.monotonic()
        make_repo(gs, "soak", args.tenants, args.layout)
        t1 = time.monotonic()
        extra = ["--write-wait", str(write_wait)] if write_wait is not None else []
        s = Server(args=["--git-url", gs.url("soak"), "--git-username", "landlord", "--git-password-file", pw,
                         "--log-level", "warn", "--git-layout", args.layout, "--http-threads", "8"] + extra)
        s.start()
        t2 = time.monotonic()
        print("repository built in %.1f s; landlord started (clone + adoption) in %.1f s, RSS %.1f MB, "
              "data dir %.1f MB\n" % (t1 - t0, t2 - t1, (s.rss_kb() or 0) / 1024.0, du_kb(s.data) / 1024.0))

        load = Load(s.port, args.clients, args.ops)
        sampler = Sampler(s, load)
        marks = sorted(set(range(args.every, args.ops + 1, args.every)) | ({5000} if args.ops >= 5000 else set()))
        if not marks or marks[-1] != args.ops:
            marks.append(args.ops)
        print(Sampler.HEADER, flush=True)
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
        time.sleep(args.idle)
        rss_idle = s.rss_kb()
        print("RSS at the end %.1f MB, after %.0f s idle %.1f MB" % (rss_end / 1024.0, args.idle,
                                                                     rss_idle / 1024.0))
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
        gs.stop()
        gs.cleanup()


if __name__ == "__main__":
    main()

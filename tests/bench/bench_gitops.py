#!/usr/bin/env python3
"""GitOps writer benchmark against a real Git server (git http-backend behind
lighttpd, basic auth), as ratios to floors measured in the same run.

Figures:
  floor      a bare `git push` (git CLI) of one prepared commit to the server
  reference  the reference's onboarding procedure (clone, cp, sed, printf,
             commit, push) against a repository of the same size
  commit     one onboarding (durable + committed + pushed), 1 client, at
             100 / 1,000 / 10,000 / 100,000 tenants already in the repo
  load       throughput and p50/p99 latency with 1, 8 and 64 clients at
             1,000 and 10,000 tenants
  batch      the git CLI pushing a commit of 64 new tenants to the same
             repository: a full batch's cost at the server, so 64 / that
             time bounds the 64-client throughput

Prints figures; asserts nothing.  Usage:
    tests/bench/bench_gitops.py [--sizes 100,1000,10000,100000] [--quick] [--layout sharded]
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

from gitserver import GitServer  # noqa: E402
from harness import SOURCE_DIR, Server  # noqa: E402

ROOT = "application-plane/production"
TIERS = ["basic", "premium", "advanced"]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def seed_files():
    files = {}
    seed = os.path.join(SOURCE_DIR, "lib", "seed")
    for dirpath, _, names in os.walk(seed):
        for n in names:
            full = os.path.join(dirpath, n)
            files[ROOT + "/" + os.path.relpath(full, seed)] = open(full, "rb").read()
    env = files[ROOT + "/tier-templates/basic_env_template.yaml"].decode()
    files[ROOT + "/pooled-envs/pool-1.yaml"] = (
        env.replace("{ENVIRONMENT_ID}", "pool-1").replace("{RELEASE_VERSION}", "0.0.x").encode())
    return files


def fast_import(git_dir, files, message):
    """Writes files as one commit on main of the bare repository git_dir."""
    p = subprocess.Popen(["git", "--git-dir", git_dir, "fast-import", "--quiet"],
                         stdin=subprocess.PIPE)
    w = p.stdin.write
    paths = sorted(files)
    for i, path in enumerate(paths, 1):
        data = files[path]
        w(b"blob\nmark :%d\ndata %d\n" % (i, len(data)))
        w(data)
        w(b"\n")
    msg = message.encode()
    w(b"commit refs/heads/main\ncommitter seed <seed@example.com> 1700000000 +0000\n")
    w(b"data %d\n%s\n" % (len(msg), msg))
    for i, path in enumerate(paths, 1):
        w(b"M 100644 :%d %s\n" % (i, path.encode()))
    w(b"done\n")
    p.stdin.close()
    if p.wait() != 0:
        sys.exit("git fast-import failed")


def kustomization(entries):
    body = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    if not entries:
        return (body + "resources: []\n").encode()
    return (body + "resources:\n" + "".join('  - "%s"\n' % e for e in entries)).encode()


def make_repo(gs, name, n, layout="flat"):
    """A repository laid out like landlord's default (or its sharded layout,
    tenants/<tier>/<xx>/<id>.yaml) with n tenants spread over the three
    tiers."""
    gs.create_repo(name)
    files = seed_files()
    tmpl = {t: files[ROOT + "/tier-templates/%s_tenant_template.yaml" % t].decode() for t in TIERS}
    lists = {}
    for i in range(n):
        tid = "pre%06d" % i
        tier = TIERS[i % 3]
        text = (tmpl[tier].replace("{TENANT_ID}", tid).replace("{TIER}", tier)
                .replace("{RELEASE_VERSION}", "0.0.x"))
        folder = "%s/tenants/%s" % (ROOT, tier)
        if layout == "sharded":
            shard = hashlib.sha256(tid.encode()).hexdigest()[:2]
            lists.setdefault(folder, {}).setdefault(shard, None)
            folder += "/" + shard
        files["%s/%s.yaml" % (folder, tid)] = text.encode()
        lists.setdefault(folder, {})[tid + ".yaml"] = None
    for t in TIERS:
        lists.setdefault("%s/tenants/%s" % (ROOT, t), {})
    for folder, entries in lists.items():
        files[folder + "/kustomization.yaml"] = kustomization(list(entries))
    fast_import(gs.path(name), files, "%d tenants" % n)


def timed_pushes(gs, name, rounds, change):
    """Clones the repository `name`, then `rounds` times: change(work, i)
    edits the work tree and returns a commit message; everything is
    committed (as bench <b@example.com>) and pushed.  The push times in ms."""
    work = tempfile.mkdtemp(prefix="landlord-bench-")
    times = []
    try:
        gs.git_cli("clone", "-q", gs.authed_url(name), work)
        for i in range(rounds):
            msg = change(work, i)
            gs.git_cli("-C", work, "add", "-A")
            gs.git_cli("-C", work, "-c", "user.name=bench", "-c", "user.email=b@example.com",
                       "commit", "-q", "-m", msg)
            t0 = time.perf_counter()
            gs.git_cli("-C", work, "push", "-q", "origin", "main")
            times.append((time.perf_counter() - t0) * 1000)
        return times
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _small_file(name_fmt, msg_fmt):
    def change(work, i):
        with open(os.path.join(work, name_fmt % i), "w") as f:
            f.write("%d\n" % i)
        return msg_fmt % i
    return change


def floor_push(gs, rounds):
    gs.create_repo("floor", seed={"README": "floor\n"})
    return timed_pushes(gs, "floor", rounds, _small_file("f%d.txt", "c%d"))


def floor_push_at(gs, name, rounds):
    """The git CLI pushing one small commit at a time to the repository
    `name` itself: what the server's receive-pack costs at that size (its
    connectivity check walks the parent's trees, so it grows with the
    repository whoever pushes)."""
    return timed_pushes(gs, name, rounds, _small_file("floor-%d.txt", "floor %d"))


def batch_floor(gs, name, layout, rounds, per_commit=64):
    """The git CLI pushing commits of per_commit new tenants (spread over the
    three tiers, each file listed in its kustomization as landlord lists it)
    to the repository `name`: what the server's receive-pack costs for one
    full batch at that size.  With 64 clients a batch holds at most 64
    onboardings, so 64 / this time bounds any writer's throughput there."""

    def change(work, r):
        lists = {}
        for i in range(per_commit):
            tid = "floor%02d-%03d" % (r, i)
            tier = TIERS[i % 3]
            folder = "%s/tenants/%s" % (ROOT, tier)
            if layout == "sharded":
                shard = hashlib.sha256(tid.encode()).hexdigest()[:2]
                lists.setdefault(folder, []).append(shard)
                folder += "/" + shard
            lists.setdefault(folder, []).append(tid + ".yaml")
            os.makedirs(os.path.join(work, folder), exist_ok=True)
            with open(os.path.join(work, folder, tid + ".yaml"), "w") as f:
                f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n" % tid)
        for folder, entries in lists.items():
            kp = os.path.join(work, folder, "kustomization.yaml")
            text = open(kp).read() if os.path.exists(kp) else ""
            have = {line.strip()[2:].strip('"') for line in text.splitlines() if line.strip().startswith("- ")}
            new = [e for e in dict.fromkeys(entries) if e not in have]
            if not new:
                continue
            body = text.replace("resources: []\n", "resources:\n") if text else \
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
            with open(kp, "w") as f:
                f.write(body + "".join('  - "%s"\n' % e for e in new))
        return "floor batch %d" % r

    return timed_pushes(gs, name, rounds, change)


def reference_onboard(gs, name, rounds):
    """The reference's procedure, one onboarding at a time."""
    times = []
    for i in range(rounds):
        work = tempfile.mkdtemp(prefix="landlord-ref-")
        try:
            t0 = time.perf_counter()
            gs.git_cli("clone", "-q", gs.authed_url(name), work)
            tier_dir = os.path.join(work, ROOT, "tenants", "basic")
            tid = "ref%04d" % i
            shutil.copy(os.path.join(work, ROOT, "tier-templates", "basic_tenant_template.yaml"),
                        os.path.join(tier_dir, tid + ".yaml"))
            subprocess.run(["sed", "-i", "-e", "s/{TENANT_ID}/%s/g" % tid, "-e",
                            "s/{RELEASE_VERSION}/0.0/g", os.path.join(tier_dir, tid + ".yaml")],
                           check=True)
            with open(os.path.join(tier_dir, "kustomization.yaml"), "a") as f:
                f.write("\n  - %s.yaml" % tid)
            gs.git_cli("-C", work, "add", "-A")
            gs.git_cli("-C", work, "-c", "user.name=admin", "-c", "user.email=admin@example.com",
                       "commit", "-q", "-m", "Adding new tenant %s in tier basic" % tid)
            gs.git_cli("-C", work, "push", "-q", "origin", "main")
            times.append((time.perf_counter() - t0) * 1000)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return times


def start_landlord(gs, name, pw, layout):
    s = Server(args=["--git-url", gs.url(name), "--git-username", "landlord",
                     "--git-password-file", pw, "--log-level", "warn", "--git-layout", layout,
                     "--http-threads", "80", "--write-wait", "60"])
    s.start_timeout = 900
    return s.start()


def onboard_load(s, prefix, clients, total):
    lat, errors = [], []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            r = s.post_json("/api/v1/tenants", {"id": "%s%05d" % (prefix, i), "tier": TIERS[i % 3]},
                            timeout=120)
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                if r.status != 201:
                    errors.append(r.status)
                lat.append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return total / wall, lat, errors


def wrk_load(s, clients, seconds, tag):
    """wrk with tests/bench/onboard.lua: clients keep-alive connections, each
    onboarding new tenants back to back.  Returns (tenants/s, p50 ms, p99 ms,
    non-201 count)."""
    out = subprocess.run(["wrk", "-t%d" % min(2, clients), "-c%d" % clients, "-d%ds" % seconds, "--latency",
                          "--timeout", "60s", "-s", os.path.join(HERE, "onboard.lua"),
                          "http://127.0.0.1:%d" % s.port, "--", tag, s.admin_token], capture_output=True,
                         text=True)

    def ms(label):
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == label:
                v = parts[1]
                for unit, f in (("ms", 1.0), ("us", 0.001), ("s", 1000.0)):
                    if v.endswith(unit):
                        return float(v[: -len(unit)]) * f
        return float("nan")

    rps = float("nan")
    for line in out.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
    return rps, ms("50%"), ms("99%"), out.stderr.count("status ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--load-sizes", default="1000,10000")
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--layout", default="flat", choices=["flat", "sharded"],
                    help="the repositories' layout and landlord's --git-layout")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    load_sizes = [int(x) for x in args.load_sizes.split(",") if x]
    samples = 8 if args.quick else 20

    import harness
    harness.START_TIMEOUT = 900

    gs = GitServer().start()
    pw = gs.write_password_file("s3cret")
    try:
        floor = floor_push(gs, samples)
        f50 = statistics.median(floor)
        print("layout: %s" % args.layout)
        print("floor: bare git push of one commit over HTTP: p50 %.1f ms, p99 %.1f ms"
              % (f50, pct(floor, 99)))
        commit_cost, floor_at = {}, {}
        for n in sorted(set(sizes) | set(load_sizes)):
            name = "r%d" % n
            t0 = time.perf_counter()
            make_repo(gs, name, n, args.layout)
            size_floor = statistics.median(floor_push_at(gs, name, samples)) if n in sizes else None
            t1 = time.perf_counter()
            s = start_landlord(gs, name, pw, args.layout)
            t2 = time.perf_counter()
            print("\n== %d tenants in the repo (built in %.1f s; landlord start incl. clone and "
                  "adoption %.1f s)" % (n, t1 - t0, t2 - t1))
            try:
                if n in sizes:
                    lat = []
                    for i in range(samples):
                        t = time.perf_counter()
                        r = s.post_json("/api/v1/tenants", {"id": "one%05d" % i, "tier": "basic"},
                                        timeout=120)
                        lat.append((time.perf_counter() - t) * 1000)
                        if r.status != 201:
                            print("  onboarding answered %d: %r" % (r.status, r))
                    commit_cost[n] = statistics.median(lat)
                    floor_at[n] = size_floor
                    print("commit+push, 1 client: p50 %.1f ms, p99 %.1f ms  (%.2fx floor)"
                          % (commit_cost[n], pct(lat, 99), commit_cost[n] / f50))
                    print("git CLI push of one commit to this repository: p50 %.1f ms; landlord's "
                          "commit+push is %.2fx it" % (size_floor, commit_cost[n] / size_floor))
                if n in load_sizes:
                    for clients in (1, 8, 64):
                        if shutil.which("wrk"):
                            tps, p50, p99, bad = wrk_load(s, clients, 5 if args.quick else 10,
                                                          "n%dc%d" % (n, clients))
                        else:
                            total = {1: samples * 2, 8: 200, 64: 1000}[clients]
                            tps, lat, errors = onboard_load(s, "c%dx" % clients, clients, total)
                            p50, p99, bad = statistics.median(lat), pct(lat, 99), len(errors)
                        print("load, %2d clients: %.0f tenants/s, p50 %.1f ms, p99 %.1f ms, "
                              "non-201: %d  (p50 %.2fx floor)" % (clients, tps, p50, p99, bad,
                                                                  p50 / f50))
            finally:
                s.stop()
            if n in load_sizes:
                bf = batch_floor(gs, name, args.layout, 5 if args.quick else 10)
                b50 = statistics.median(bf)
                print("git CLI push of one 64-tenant commit to this repository: p50 %.1f ms, so no "
                      "writer exceeds %.0f tenants/s at 64 clients here" % (b50, 64000.0 / b50))
                ref = reference_onboard(gs, name, 3 if args.quick else 5)
                r50 = statistics.median(ref)
                print("reference procedure (clone, cp, sed, printf, commit, push): p50 %.0f ms "
                      "= %.1f onboardings/s" % (r50, 1000.0 / r50))
        if len(commit_cost) > 1:
            lo = min(commit_cost)
            print("\ncommit+push cost relative to %d tenants: %s" % (lo, ", ".join(
                "%d: %.2fx" % (n, commit_cost[n] / commit_cost[lo]) for n in sorted(commit_cost))))
            print("git CLI push to the repository itself, relative to %d tenants: %s" % (lo, ", ".join(
                "%d: %.2fx" % (n, floor_at[n] / floor_at[lo]) for n in sorted(floor_at))))
    finally:
        gs.stop()


if __name__ == "__main__":
    main()

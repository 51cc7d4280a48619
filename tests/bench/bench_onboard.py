#!/usr/bin/env python3
"""Onboarding latency against the embedded default remote, as ratios to a
baseline measured in the same run: a bare `git push` (git CLI) of one
prepared commit to a bare repository of the same kind.

Prints figures; asserts nothing.  Usage:
    tests/bench/bench_onboard.py [--n 200] [--bin build/landlord]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import Server  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def bare_push_ms(rounds):
    """Times `git push` of one new commit to a bare repository, rounds times."""
    tmp = tempfile.mkdtemp(prefix="landlord-bench-")
    try:
        remote = os.path.join(tmp, "remote.git")
        work = os.path.join(tmp, "work")
        env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
                   GIT_COMMITTER_EMAIL="b@b", GIT_CONFIG_NOSYSTEM="1", HOME=tmp)
        run = lambda *a, **kw: subprocess.run(a, check=True, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, **kw)
        run("git", "init", "-q", "--bare", "-b", "main", remote)
        run("git", "init", "-q", "-b", "main", work)
        run("git", "-C", work, "remote", "add", "origin", remote)
        times = []
        for i in range(rounds):
            with open(os.path.join(work, "t%d.yaml" % i), "w") as f:
                f.write("n: %d\n" % i)
            run("git", "-C", work, "add", "-A")
            run("git", "-C", work, "commit", "-q", "-m", "c%d" % i)
            t0 = time.perf_counter()
            run("git", "-C", work, "push", "-q", "origin", "main")
            times.append((time.perf_counter() - t0) * 1000)
        return times
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--bin")
    args = ap.parse_args()
    if args.bin:
        os.environ["LANDLORD_BIN"] = os.path.abspath(args.bin)

    base = bare_push_ms(max(20, args.n // 4))
    s = Server().start()
    try:
        lat = []
        for i in range(args.n):
            t0 = time.perf_counter()
            r = s.post_json("/api/v1/tenants", {"id": "t%05d" % i, "tier": "basic"})
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status != 201:
                sys.exit("onboarding %d answered %d: %r" % (i, r.status, r))
    finally:
        s.stop()
    b50 = statistics.median(base)
    print("baseline: bare git push of one commit (git CLI, local bare repo): p50 %.2f ms, p99 %.2f ms"
          % (b50, pct(base, 99)))
    print("landlord: onboarding, 1 client, durable in SQLite and pushed: n=%d p50 %.2f ms, p99 %.2f ms"
          % (args.n, statistics.median(lat), pct(lat, 99)))
    print("ratio p50 onboarding / bare push: %.2f" % (statistics.median(lat) / b50))
    print(json.dumps({"baseline_push_p50_ms": round(b50, 3), "onboard_p50_ms": round(statistics.median(lat), 3),
                      "onboard_p99_ms": round(pct(lat, 99), 3), "ratio_p50": round(statistics.median(lat) / b50, 3)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rollout benchmark: one version rolled out to N tenants (1,000) in 4 waves,
the Flux simulator reporting instantly (zero delays), as figures and ratios
to baselines measured in the same run.  Prints; asserts nothing.

Everything runs on 127.0.0.1: a Git server (lighttpd + git http-backend),
the Kubernetes API stand-in, the Flux simulator and landlord
(tests/support/).  N tenants spread over the three default tiers are
onboarded through the API after 0.0.1 is uploaded (so every file carries
0.0.1), then 0.0.2 is uploaded and rolled out in 4 waves of N/4 tenants
(explicit lists), no soak.

Per wave:
  commits   commits the wave made in the GitOps repository (want 1)
  commit    wave started -> its commit pushed (landlord: one outbox
            operation, N/4 files edited in place, one commit, one push)
            against the baseline: the git CLI committing the same N/4 file
            changes in a clone and pushing them to the same server
  ready     pushed -> landlord saw every tenant of the wave ready at the
            version, against the baseline: pushed -> every HelmRelease of
            the wave Ready at the version in the stand-in (what the
            simulator did, read directly from the API server)
  wall      wave started -> wave succeeded

Usage:
    LANDLORD_BIN=build/landlord tests/bench/bench_rollout.py [--tenants 1000] [--waves 4]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "api"))

from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import Server, make_temp_dir  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402
from test_rollouts import chart, layout_versions  # noqa: E402

ROOT = "application-plane/production"
TIERS = ["basic", "premium", "advanced"]
USER, PASSWORD = "landlord", "s3cret"


def ts(s):
    """Seconds since the epoch of an RFC 3339 UTC stamp with milliseconds."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def onboard_all(s, ids, clients=32):
    lock = threading.Lock()
    it = iter(ids)
    errors = []

    def worker():
        while True:
            with lock:
                tid = next(it, None)
            if tid is None:
                return
            r = s.post_json("/api/v1/tenants", {"id": tid, "tier": TIERS[int(tid[1:]) % 3]}, timeout=120)
            if r.status != 201:
                with lock:
                    errors.append((tid, r.status))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("onboarding failed: %r" % errors[:5])


def hr_name(tid):
    return "%s-%s" % (tid, TIERS[int(tid[1:]) % 3])


def hr_ready_at(hr, version):
    st = (hr or {}).get("status") or {}
    hist = st.get("history") or []
    ready = [c for c in st.get("conditions") or [] if c.get("type") == "Ready"]
    return bool(hist and hist[0].get("chartVersion") == version and ready and ready[0].get("status") == "True"
                and st.get("observedGeneration") == hr["metadata"].get("generation"))


def wait_all_ready(api, ids, version, timeout, stop=None):
    """Wall-clock time when every HelmRelease of ids is Ready at version
    (polled in the stand-in every 5 ms), or None."""
    names = {hr_name(t) for t in ids}
    deadline = time.time() + timeout
    while time.time() < deadline and not (stop and stop.is_set()):
        ok = 0
        for hr in api.objects("HelmRelease", "flux-system", copy=False):
            if hr["metadata"]["name"] in names and hr_ready_at(hr, version):
                ok += 1
        if ok == len(names):
            return time.time()
        time.sleep(0.005)
    return None


def cli_commit_push(gs, repo, files, version, tag):
    """The git CLI: clone, edit files' chart version to a unique version,
    then time `git commit -a` + `git push` of that one commit (ms)."""
    work = tempfile.mkdtemp(prefix="landlord-bench-")
    try:
        gs.git_cli("clone", "-q", gs.authed_url(repo), work)
        gs.git_cli("-C", work, "config", "user.email", "b@example.com")
        gs.git_cli("-C", work, "config", "user.name", "bench")
        gs.git_cli("-C", work, "checkout", "-q", "-b", "baseline-%s" % tag)
        for path in files:
            full = os.path.join(work, path)
            with open(full) as f:
                text = f.read()
            with open(full, "w") as f:
                f.write(text.replace('version: "%s"' % version, 'version: "%s-b%s"' % (version, tag)))
        t0 = time.perf_counter()
        gs.git_cli("-C", work, "commit", "-q", "-a", "-m", "baseline %s" % tag)
        gs.git_cli("-C", work, "push", "-q", "origin", "HEAD")
        return (time.perf_counter() - t0) * 1000
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--waves", type=int, default=4)
    args = ap.parse_args()
    n, nw = args.tenants, args.waves

    gs = GitServer(users={USER: PASSWORD}).start()
    api = KubeAPI(tls=True, tokens={"tok-1": "landlord"}).start()
    sim = s = None
    try:
        gs.create_repo("gitops")
        d = make_temp_dir("landlord-bench-rollout-")
        kubeconfig = os.path.join(d, "kubeconfig")
        api.kubeconfig(kubeconfig)
        pw = gs.write_password_file(PASSWORD)
        s = Server(args=["--git-url", gs.url("gitops"), "--git-username", USER, "--git-password-file", pw,
                         "--kubeconfig", kubeconfig, "--log-level", os.environ.get("BENCH_LOG", "warn"), "--http-threads", "16",
                         "--write-wait", "120", "--rollout-wave-timeout", "900"])
        s.start()
        s.remote = gs.path("gitops")
        sim = FluxSim(api, gs.authed_url("gitops"), git_env=gs.git_env(), delays=0, poll_interval=0.05,
                      chart_versions=layout_versions(s.data)).start()
        r = s.request("POST", "/api/v1/releases", body=chart("0.0.1"), headers={"Content-Type": "application/gzip"})
        assert r.status == 201, r
        ids = ["t%05d" % i for i in range(n)]
        t0 = time.time()
        onboard_all(s, ids)
        print("onboarded %d tenants in %.1f s" % (n, time.time() - t0), flush=True)
        if wait_all_ready(api, ids, "0.0.1", 600) is None:
            sys.exit("the simulator did not install every tenant at 0.0.1")
        # landlord must see them ready too before the rollout starts.
        deadline = time.time() + 300
        while time.time() < deadline:
            ready = sum(1 for t in s.rows("tenants") if t["observed_state"] == "ready")
            if ready == n:
                break
            time.sleep(0.2)
        print("every tenant ready at 0.0.1 after %.1f s" % (time.time() - t0), flush=True)
        r = s.request("POST", "/api/v1/releases", body=chart("0.0.2"), headers={"Content-Type": "application/gzip"})
        assert r.status == 201, r

        per = (n + nw - 1) // nw
        groups = [ids[i:i + per] for i in range(0, n, per)]
        head = s.head()
        r = s.post_json("/api/v1/rollouts", {"version": "0.0.2", "tiers": TIERS,
                                             "waves": [{"tenants": g} for g in groups]}, timeout=120)
        assert r.status == 201, r
        rid = r.json["id"]
        t_created = time.time()

        # Baseline "ready": the simulator's own apply, watched in the stand-in.
        sim_ready = {}
        stop = threading.Event()

        def watch():
            for w, g in enumerate(groups, 1):
                t = wait_all_ready(api, g, "0.0.2", 900, stop)
                if t is None:
                    return
                sim_ready[w] = t
        watcher = threading.Thread(target=watch)
        watcher.start()
        while True:
            ro = s.get("/api/v1/rollouts?limit=1").json["items"][0]
            if ro["state"] not in ("running",):
                break
            time.sleep(0.02)
        stop.set()
        watcher.join()
        total = time.time() - t_created
        if ro["state"] != "succeeded":
            sys.exit("rollout ended %s: %s" % (ro["state"], json.dumps(ro, indent=1)[:3000]))

        # Commits per wave, and the git CLI doing the same commit+push.
        log = s.git("log", "--reverse", "--format=%H %s", "%s..main" % head).split("\n")
        subjects = [line.split(" ", 1) for line in log if line]
        print()
        print("rollout of 0.0.2 to %d tenants in %d waves (simulator delays 0): %.2f s from POST to "
              "succeeded" % (n, nw, total))
        print("%-5s %-8s %-8s %-22s %-26s %-10s" % ("wave", "tenants", "commits", "commit+push ms (CLI, x)",
                                                    "pushed->ready ms (sim, x)", "wall ms"))
        ratios_c, ratios_r = [], []
        for w in ro["waves"]:
            k = w["wave"]
            commits = sum(1 for sha, subj in subjects if "rollout %d wave %d:" % (rid, k) in subj)
            files = sorted(s.changed_files(w["commit"]))
            cli = cli_commit_push(gs, "gitops", files, "0.0.2", str(k))
            commit_ms = (ts(w["pushed_at"]) - ts(w["started_at"])) * 1000
            ready_ms = (ts(w["ready_at"]) - ts(w["pushed_at"])) * 1000
            sim_ms = (sim_ready[k] - ts(w["pushed_at"])) * 1000 if k in sim_ready else float("nan")
            wall_ms = (ts(w["finished_at"]) - ts(w["started_at"])) * 1000
            ratios_c.append(commit_ms / cli)
            ratios_r.append(ready_ms / sim_ms if sim_ms > 0 else float("nan"))
            print("%-5d %-8d %-8d %6.0f (%5.0f, %4.2fx)     %7.0f (%6.0f, %5.2fx)       %7.0f" % (
                k, w["counts"]["ready"], commits, commit_ms, cli, commit_ms / cli, ready_ms, sim_ms,
                ready_ms / sim_ms if sim_ms > 0 else float("nan"), wall_ms))
        print("median: commit+push %.2fx the git CLI's; pushed->ready %.2fx the simulator's own apply" % (
            statistics.median(ratios_c), statistics.median(ratios_r)))
        print("commits made by the rollout: %d (waves: %d)" % (
            sum(1 for _, subj in subjects if "rollout %d " % rid in subj), nw))
    finally:
        if sim is not None:
            sim.stop()
        if s is not None and os.environ.get("BENCH_LOG"):
            sys.stderr.write(s.stderr_text())
        if s is not None:
            s.stop()
            s.kill()
        api.stop()
        gs.stop()
        gs.cleanup()


if __name__ == "__main__":
    main()

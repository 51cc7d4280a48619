"""Storms against a real Git server (git http-backend behind lighttpd, basic
auth): a foreign writer pushing every few milliseconds while 500 onboardings
run from 16 clients; SIGTERM in the middle of a storm; SIGKILL at random
moments during storms of onboardings and offboardings.  After each, the
invariants: every acknowledged operation landed exactly once and in
operation order, no duplicate kustomization entry, no partial file, no
foreign change lost, and the registry and the repository agree.

Set LANDLORD_STORM_SEED to replay the random moments of a failed run."""

import collections
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import GitServerTestCase, git, tenant_path  # noqa: E402
from storm import (  # noqa: E402
    POOL_FILE,
    Clients,
    ForeignWriter,
    check_repo_and_registry,
    check_trailers,
    commit_trailers,
    is_ancestor,
    read_blobs,
    storm_seed,
    wait_quiet,
)

TIERS = ("basic", "premium", "advanced")
USER, PASSWORD = "landlord", "storm-Pa55"


class Storm(GitServerTestCase):
    git_user, git_password = USER, PASSWORD

    # -- helpers --------------------------------------------------------------

    def landlord(self, repo, *extra):
        """A landlord on the lighttpd repository `repo` (created empty here;
        landlord seeds it)."""
        self.gs.create_repo(repo)
        args = [
            "--git-url", self.gs.url(repo),
            "--git-username", USER,
            "--git-password-file", self.pwfile,
        ] + list(extra)
        s = self.start_server(args=args)
        bare = self.gs.path(repo)
        self.assertRegex(git(bare, "rev-parse", "main").strip(), r"^[0-9a-f]{40}$",
                         "landlord did not seed the empty remote")
        return s, bare

    def wait_quiet(self, s, acked_ops, timeout=60):
        """Every acknowledged operation out of the queue (and, per /readyz,
        nothing else queued); returns {op id: operation}."""
        return wait_quiet(self, s, acked_ops, timeout)

    def assertAnswers(self, results, allowed):
        bad = [r for r in results if r["status"] is not None and r["status"] not in allowed]
        self.assertEqual(bad[:5], [], "%d answers outside %r" % (len(bad), allowed))
        for r in results:
            if r["status"] in (200, 201, 202):
                self.assertIsInstance(r["op"], int, "acknowledged write without an operation id: %r" % r)

    # -- a foreign writer and 500 onboardings ---------------------------------------

    def test_foreign_writer_and_500_onboardings(self):
        s, bare = self.landlord("foreign")
        # the foreign writer pushes over HTTP through the same lighttpd
        fw = ForeignWriter(bare, push_url=self.gs.authed_url("foreign"), seed=storm_seed())
        fw.start()
        ids = ["st-%03d" % i for i in range(500)]
        tier_of = {tid: TIERS[i % 3] for i, tid in enumerate(ids)}
        # most clients do not wait for the push (202 at once, so landlord
        # batches); every 20th request waits (201, or 202 past write-wait)
        jobs = [("POST", "/api/v1/tenants" + ("" if i % 20 == 0 else "?wait=0"),
                 {"id": tid, "tier": tier_of[tid]}, tid) for i, tid in enumerate(ids)]
        try:
            while len(fw.pushed) < 3 and fw.is_alive():  # the foreign writer is under way
                time.sleep(0.01)
            t0 = time.monotonic()
            res = []
            # In two halves, with a foreign commit landing between them, so
            # that foreign commits surely sit between landlord's (a fast
            # landlord could otherwise land everything in one gap).
            for half in (jobs[:250], jobs[250:]):
                if res:
                    seen = len(fw.pushed)
                    while len(fw.pushed) == seen and fw.is_alive():
                        time.sleep(0.01)
                clients = Clients(s.port, half, n=16).start()
                self.assertTrue(clients.join(120), "clients did not finish")
                part = clients.results
                self.assertEqual([r for r in part if r["error"]][:3], [], "requests that got no answer")
                self.assertAnswers(part, (201, 202))
                # landlord must land everything while the foreign writer keeps pushing
                self.wait_quiet(s, [r["op"] for r in part], timeout=90)
                res += part
            self.assertEqual(len(res), 500)
            ops = self.wait_quiet(s, [r["op"] for r in res], timeout=90)
            elapsed = time.monotonic() - t0
            self.assertTrue(fw.is_alive(), "the foreign writer stopped early: %r" % (fw.error,))
        finally:
            fw.finish()
        self.assertEqual(len(ops), 500, "500 onboardings must be 500 operations")
        sys.stderr.write("\n[storm] 500 onboardings pushed in %.1f s (%s) against %d foreign commits "
                         "(%d foreign pushes refused)\n"
                         % (elapsed, dict(collections.Counter(r["status"] for r in res)), len(fw.pushed),
                            fw.rejections))

        # every foreign commit is in main's history
        self.assertGreater(len(fw.pushed), 3)
        lost = [sha for sha in fw.pushed if not is_ancestor(bare, sha, "main")]
        self.assertEqual(lost, [], "foreign commits not in main's history (git merge-base --is-ancestor)")
        history = set(git(bare, "rev-list", "main").split())
        # no foreign file reverted: main holds what the foreign writer last wrote
        got = read_blobs(bare, "main", sorted(fw.expected))
        reverted = [path for path in sorted(fw.expected) if got[path] != fw.expected[path]]
        self.assertEqual(reverted, [], "foreign files reverted or lost")
        self.assertIn("# foreign edit 1\n", got[POOL_FILE])
        # landlord really raced the foreign writer: foreign commits sit
        # between landlord's commits, and landlord rebuilt on top of them
        trailers = commit_trailers(bare)
        first_parent = git(bare, "rev-list", "--reverse", "--first-parent", "main").split()
        ll = [first_parent.index(sha) for sha, _ in trailers if sha in first_parent]
        self.assertEqual(len(ll), len(trailers), "landlord commits off main's first-parent line")
        foreign = set(fw.pushed)
        between = [sha for sha in first_parent[min(ll):max(ll)] if sha in foreign]
        self.assertTrue(between, "no foreign commit landed while landlord was pushing")
        on_foreign = [i for i in ll if first_parent[i - 1] in foreign]
        self.assertGreater(len(on_foreign), 1, "landlord never built a commit on a foreign head")

        # every tenant present exactly once, listed once, valid; registry = repo
        live, files = check_repo_and_registry(self, s, bare)
        self.assertEqual(sorted(files), sorted((tier_of[t], t) for t in ids))
        self.assertEqual(sorted(live), ids)
        # each operation exactly once in a trailer, in id order; its commit
        # (recorded by the operation) is in main and carries the tenant file
        where = check_trailers(self, bare, ops)
        by_commit = collections.defaultdict(list)
        for i, op in ops.items():
            self.assertEqual(op["commit"], where[i], "operation %d records another commit" % i)
            by_commit[op["commit"]].append(op["tenant"])
        for sha, tenants in by_commit.items():
            self.assertIn(sha, history)
            tree = set(git(bare, "ls-tree", "-r", "--name-only", sha).splitlines())
            missing = [t for t in tenants if tenant_path(tier_of[t], t) not in tree]
            self.assertEqual(missing, [], "commit %s does not carry its tenants" % sha)
        self.assertLess(len(by_commit), 250, "500 onboardings under load must batch into fewer commits")

    # -- SIGTERM in the middle of a storm ------------------------------------------------

    def test_sigterm_mid_storm_then_restart(self):
        s, bare = self.landlord("sigterm")
        ids = ["tm-%03d" % i for i in range(400)]
        tier_of = {tid: TIERS[i % 3] for i, tid in enumerate(ids)}
        # half the clients do not wait for the push: acknowledged but queued
        # operations are in flight when the signal comes
        jobs = [("POST", "/api/v1/tenants" + ("?wait=0" if i % 2 else ""), {"id": tid, "tier": tier_of[tid]}, tid)
                for i, tid in enumerate(ids)]
        clients = Clients(s.port, jobs, n=8).start()
        deadline = time.monotonic() + 30
        while len(clients.acknowledged()) < 60 and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertGreaterEqual(len(clients.acknowledged()), 60, "the storm did not get going")
        code = s.stop()  # SIGTERM while the clients still send
        self.assertEqual(code, 0, "landlord did not exit 0 within 10 s of SIGTERM")
        self.assertTrue(clients.join(60))
        res = clients.results
        self.assertAnswers(res, (201, 202, 503))
        acked = clients.acknowledged()
        self.assertLess(len(acked), len(ids), "SIGTERM did not land in the middle of the storm")
        sys.stderr.write("\n[storm] SIGTERM: %s, %d without answer\n"
                         % (dict(collections.Counter(r["status"] for r in res if r["status"])),
                            len(ids) - len(res) + len([r for r in res if r["error"]])))

        s.start()  # same data dir, same remote
        ops = self.wait_quiet(s, [r["op"] for r in acked])
        check_trailers(self, bare, ops)
        live, files = check_repo_and_registry(self, s, bare)
        acked_ids = sorted(r["tag"] for r in acked)
        self.assertEqual(sorted(set(acked_ids) - set(live)), [], "acknowledged onboardings lost")
        for r in acked:
            self.assertEqual(ops[r["op"]]["tenant"], r["tag"])
            self.assertEqual(ops[r["op"]]["kind"], "onboard")
        # what was never acknowledged was either taken in full or not at all
        self.assertTrue(set(live) <= set(ids))
        self.assertEqual(s.stop(), 0)

    # -- SIGKILL at random moments ------------------------------------------------------------

    def test_sigkill_rounds(self):
        seed = storm_seed()
        rng = random.Random(seed)
        msg = "LANDLORD_STORM_SEED=%d" % seed
        sys.stderr.write("\n[storm] SIGKILL rounds with %s\n" % msg)
        s, bare = self.landlord("sigkill")
        acked_all = {}  # op id -> (kind, tenant)
        live_ids = []
        interrupted = 0
        t0 = time.monotonic()
        rounds = 0
        # at least 10 rounds; more while time allows (each round is a chance
        # to kill landlord in the middle of a git write)
        while rounds < 10 or (rounds < 20 and time.monotonic() - t0 < 25):
            rnd = rounds
            rounds += 1
            onboard = ["k%02d-%02d" % (rnd, i) for i in range(60)]
            tier_of = {tid: TIERS[(rnd + i) % 3] for i, tid in enumerate(onboard)}
            leaving = rng.sample(live_ids, min(len(live_ids), 20))
            jobs = [("POST", "/api/v1/tenants" + ("?wait=0" if rng.random() < 0.4 else ""),
                     {"id": tid, "tier": tier_of[tid]}, ("onboard", tid)) for tid in onboard]
            jobs += [("DELETE", "/api/v1/tenants/%s%s" % (tid, "?wait=0" if rng.random() < 0.4 else ""),
                      None, ("offboard", tid)) for tid in leaving]
            rng.shuffle(jobs)
            clients = Clients(s.port, jobs, n=8).start()
            # kill after a random number of answers, plus a random moment
            k = rng.randrange(0, len(jobs) // 2)
            deadline = time.monotonic() + 20
            while len(clients.results) < k and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.03))
            s.kill()  # SIGKILL
            self.assertTrue(clients.join(60), msg)
            res = clients.results
            self.assertAnswers(res, (200, 201, 202))
            if len(res) < len(jobs) or any(r["error"] for r in res):
                interrupted += 1
            acked = clients.acknowledged()
            for r in acked:
                acked_all[r["op"]] = r["tag"]

            s.start()  # same data dir after kill -9
            ops = self.wait_quiet(s, list(acked_all), timeout=30)
            for i, (kind, tid) in acked_all.items():
                self.assertEqual((ops[i]["kind"], ops[i]["tenant"]), (kind, tid), msg)
            check_trailers(self, bare, ops)
            live, files = check_repo_and_registry(self, s, bare)
            for r in acked:
                kind, tid = r["tag"]
                if kind == "onboard":
                    self.assertIn(tid, live, "round %d: acknowledged onboarding of %s lost (%s)" % (rnd, tid, msg))
                    self.assertEqual(live[tid]["tier"], tier_of[tid])
                else:
                    self.assertNotIn(tid, live, "round %d: acknowledged offboarding of %s lost (%s)" % (rnd, tid, msg))
                    t = s.get("/api/v1/tenants/" + tid)
                    self.assertEqual((t.status, t.json["state"]), (200, "offboarded"), msg)
            live_ids = sorted(live)
        sys.stderr.write("\n[storm] %d SIGKILL rounds in %.1f s, %d interrupted mid-storm, %d acknowledged ops\n"
                         % (rounds, time.monotonic() - t0, interrupted, len(acked_all)))
        self.assertGreaterEqual(interrupted, rounds // 2, "the kills did not land during the storms")
        self.assertGreater(len([1 for k, _ in acked_all.values() if k == "offboard"]), 0)


if __name__ == "__main__":
    unittest.main()

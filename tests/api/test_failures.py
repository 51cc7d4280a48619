"""Failures after validation: a push that cannot reach the remote leaves no
tenant record and no commit, answers 502, shows on /readyz, and the server
recovers when the remote is back.  Also: writes pending past ?wait= answer
202 with the operation's Location."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import LandlordTestCase, Server  # noqa: E402


class PushFailure(LandlordTestCase):
    def test_unreachable_remote_changes_nothing(self):
        s = self.start_server()
        log_before = s.log()
        moved = s.remote + ".moved"
        os.rename(s.remote, moved)
        try:
            r = s.post_json("/api/v1/tenants", {"id": "acme", "tier": "premium"})
            self.assertProblem(r, 502, "upstream-failure")
            ready = s.get("/readyz")
            self.assertEqual(ready.status, 503)
            self.assertEqual(ready.json["checks"]["git"]["status"], "failed")
            self.assertEqual(ready.json["checks"]["registry"]["status"], "ok")
        finally:
            os.rename(moved, s.remote)
        # No tenant record, no commit; the failed operation is on record.
        self.assertEqual(s.rows("tenants"), [])
        ops = s.rows("operations")
        self.assertEqual([(o["kind"], o["state"]) for o in ops], [("onboard", "failed")])
        self.assertEqual(s.log(), log_before)
        r = s.get("/api/v1/operations/%d" % ops[0]["id"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["state"], "failed")
        self.assertIn("push", r.json["error"])
        self.assertIsNone(r.json["commit"])
        # The remote is back: the same request now lands.
        r = s.post_json("/api/v1/tenants", {"id": "acme", "tier": "premium"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["commit"], s.head())
        self.assertEqual(len(s.log()), len(log_before) + 1)
        self.assertEqual(s.get("/readyz").status, 200)

    def test_offboard_failure_keeps_the_tenant(self):
        s = self.start_server()
        r = s.post_json("/api/v1/tenants", {"id": "acme", "tier": "basic"})
        self.assertEqual(r.status, 201, r)
        head = s.head()
        moved = s.remote + ".moved"
        os.rename(s.remote, moved)
        try:
            r = s.delete("/api/v1/tenants/acme")
            self.assertProblem(r, 502, "upstream-failure")
        finally:
            os.rename(moved, s.remote)
        t = s.get("/api/v1/tenants/acme")
        self.assertEqual(t.status, 200)
        self.assertEqual(t.json["state"], "unknown")
        self.assertEqual(t.json["sync"], "committed")
        self.assertEqual(t.json["commit"], head)
        self.assertEqual(s.head(), head)
        self.assertIn("application-plane/production/tenants/basic/acme.yaml", s.ls_tree())


class Pending(LandlordTestCase):
    def test_wait_zero_answers_202_with_location(self):
        s = self.start_server()
        # wait=0 answers at once: the push (milliseconds) cannot have happened
        # between storing the operation and reading it back (microseconds).
        r = s.post_json("/api/v1/tenants?wait=0", {"id": "acme", "tier": "basic"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["sync"], "pending")
        loc = r.header("Location")
        self.assertRegex(loc, r"^/api/v1/operations/\d+$")
        # The operation ends pushed with the commit that carries the tenant.
        for _ in range(100):
            op = s.get(loc)
            self.assertEqual(op.status, 200)
            if op.json["state"] != "queued":
                break
            time.sleep(0.05)
        self.assertEqual(op.json["state"], "pushed")
        self.assertEqual(op.json["commit"], s.head())
        self.assertEqual(s.get("/api/v1/tenants/acme").json["commit"], s.head())


if __name__ == "__main__":
    unittest.main()

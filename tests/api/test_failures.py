"""When the remote cannot be reached, writes queue: 202 with sync pending,
/readyz says degraded (and stays 200: the API still takes writes), the
operation counts its failed attempts, and everything is pushed in order once
the remote returns.  Also: ?wait=0 answers 202 with the operation's Location."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import LandlordTestCase  # noqa: E402


def wait_pushed(test, s, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [o for o in s.rows("operations") if o["state"] == "queued"]:
            return
        time.sleep(0.2)
    test.fail("operations still queued after %ds: %r" % (timeout, s.rows("operations")))


class RemoteDown(LandlordTestCase):
    def test_writes_queue_and_land_when_the_remote_returns(self):
        s = self.start_server()
        r = s.post_json("/api/v1/tenants", {"id": "first", "tier": "basic"})
        self.assertEqual(r.status, 201, r)
        log_before = s.log()
        moved = s.remote + ".moved"
        os.rename(s.remote, moved)
        try:
            r = s.post_json("/api/v1/tenants", {"id": "acme", "tier": "premium"})
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["sync"], "pending")
            loc = r.header("Location")
            ready = s.get("/readyz")
            self.assertEqual(ready.status, 200)
            self.assertEqual(ready.json["status"], "degraded")
            self.assertEqual(ready.json["checks"]["git"]["status"], "degraded")
            self.assertIn("error", ready.json["checks"]["git"])
            self.assertEqual(ready.json["checks"]["registry"]["status"], "ok")
            # Degraded: later writes answer at once instead of waiting.
            t0 = time.monotonic()
            r2 = s.post_json("/api/v1/tenants", {"id": "beta", "tier": "basic"})
            self.assertEqual(r2.status, 202, r2)
            self.assertLess(time.monotonic() - t0, 5)
            r3 = s.delete("/api/v1/tenants/first")
            self.assertEqual(r3.status, 202, r3)
            time.sleep(1.0)
            op = s.get(loc)
            self.assertEqual(op.json["state"], "queued")
            self.assertGreaterEqual(op.json["attempts"], 1)
            self.assertTrue(op.json["last_error"])
        finally:
            os.rename(moved, s.remote)
        wait_pushed(self, s)
        self.assertEqual([o["state"] for o in s.rows("operations")], ["pushed"] * 4)
        tree = s.ls_tree()
        self.assertIn("application-plane/production/tenants/premium/acme.yaml", tree)
        self.assertIn("application-plane/production/tenants/basic/beta.yaml", tree)
        self.assertNotIn("application-plane/production/tenants/basic/first.yaml", tree)
        # In order: the history after the outage names the operations in id order.
        out = s.git("log", "--reverse", "--format=%B%x00", "%s..main" % log_before[0][0])
        seen = []
        for msg in out.split("\x00"):
            for line in msg.splitlines():
                if line.startswith("Landlord-Operations:"):
                    seen += [int(x) for x in line.split(":", 1)[1].split()]
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(sorted(seen), [2, 3, 4])
        self.assertEqual(s.get("/readyz").json["checks"]["git"]["status"], "ok")
        self.assertEqual(s.get("/api/v1/tenants/first").json["state"], "offboarded")


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

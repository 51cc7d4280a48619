"""The security suite, with authentication on: hostile ids and values on
every write route, oversize and trickling bodies, oversize headers,
idempotency replays and conflicts, stale If-Match, rate limits.  Each
refusal gets its 4xx and leaves the registry, the repository and the audit
log (beyond its one refusal record) untouched: all three are asserted.
Then what is accepted: commits carry the caller as author, the audit log
and the tenant's history (from git) show them, and tiers are written and
deleted as commits."""

import json
import os
import socket
import urllib.parse
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from gitserver import GitServer  # noqa: E402
from harness import PROD, LandlordTestCase, SharedServerTestCase, onboard  # noqa: E402

HOSTILE = [
    ("path traversal", "../premium/victim"),
    ("encoded traversal", "..%2Fpremium%2Fvictim"),
    ("absolute path", "/etc/passwd"),
    ("yaml newline", "acme\nkind: Secret"),
    ("yaml colon", "acme: evil"),
    ("yaml comment", "acme #x"),
    ("yaml anchor", "&a acme"),
    ("yaml alias", "*a"),
    ("yaml tag", "!!python/object x"),
    ("flux substitution", "${var}"),
    ("shell", "acme;rm -rf /"),
    ("backticks", "`id`"),
    ("NUL", "acme\x00x"),
    ("control", "acme\x1b[31m"),
    ("unicode look-alike", "\u0430cme"),  # Cyrillic a
    ("fullwidth", "\uff41cme"),
    ("very long", "a" * 5000),
    ("upper case", "ACME"),
]


class Refusals(LandlordTestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = cls.start_shared(args=["--http-body-timeout", "2", "--rate-limit", "2",
                                       "--rate-limit-burst", "3"])
        assert onboard(cls.s, "victim", "premium").status == 201
        cls.template = cls.s.get("/api/v1/tiers/basic").json["template"]

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    def state(self):
        return self.s.snapshot(), self.s.head(), self.s.audit()

    def assertRefused(self, before, resp, status, what, ptype=None, audited=1):
        snap, head, audit = before
        self.assertProblem(resp, status, ptype, msg=what)
        self.assertEqual(self.s.snapshot(), snap, "%s changed the registry" % what)
        self.assertEqual(self.s.head(), head, "%s changed the repository" % what)
        now = self.s.audit()
        self.assertEqual(now[:len(audit)], audit, "%s rewrote audit records" % what)
        self.assertEqual(len(now), len(audit) + audited, "%s: the refusal record only" % what)
        if audited:
            # A path no route matches is refused before anyone is asked for a token.
            self.assertEqual((now[-1]["status"], now[-1]["request_id"], now[-1]["actor"]),
                             (status, resp.header("X-Request-Id"),
                              "test-admin" if now[-1]["route"] else None), what)
            self.assertIsNone(now[-1]["operation_id"])

    def test_hostile_values_on_every_write_route(self):
        s = self.s
        for name, v in HOSTILE:
            bad_json = 400 if "\x00" in v else 422  # jansson refuses \u0000 outright
            cases = [
                ("POST", "/api/v1/tenants", {"id": v, "tier": "basic"}, bad_json),
                ("POST", "/api/v1/tenants", {"id": "fine", "tier": v}, bad_json),
                ("POST", "/api/v1/tenants", {"id": "fine", "tier": "basic", "release": v}, bad_json),
                ("POST", "/api/v1/tenants", {"id": "fine", "tier": "basic", "values": {"k": v}}
                 if "${" in v else {"id": "fine", "tier": "basic", v: 1}, bad_json),
                ("PATCH", "/api/v1/tenants/victim", {"tier": v}, bad_json),
                ("PATCH", "/api/v1/tenants/victim", {"release": v}, bad_json),
                ("POST", "/api/v1/webhooks", {"url": v}, bad_json),
            ]
            if name in ("NUL", "control", "yaml newline", "very long"):
                cases.append(("PUT", "/api/v1/tiers/gold", {"template": self.template, "description": v},
                              bad_json))
            seg = urllib.parse.quote(v, safe="")
            # Decoded, the path has more segments, or is longer than any
            # route takes (2 KB): no route.
            more_segments = "/" in v or len(seg) > 2000
            cases += [
                ("PATCH", "/api/v1/tenants/" + seg, {"release": "1.2"}, 404),
                ("DELETE", "/api/v1/tenants/" + seg, None, 404),
                ("PUT", "/api/v1/tiers/" + seg, {"template": self.template}, 404 if more_segments else 422),
                ("DELETE", "/api/v1/tiers/" + seg, None, 404),
                ("GET", "/api/v1/audit?tenant=" + seg, None, 422),
            ]
            for method, path, body, status in cases:
                with self.subTest(name=name, method=method, path=path[:60], body=str(body)[:60]):
                    before = self.state()
                    r = s.request(method, path, json_body=body)
                    self.assertRefused(before, r, status, "%s %s (%s)" % (method, path[:40], name),
                                       audited=0 if method == "GET" else 1)

    def test_tier_templates_that_are_refused(self):
        bad = {
            "no {TENANT_ID}": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n",
            "flux substitution": self.template.replace("pool-1", "${POOL}"),
            "not yaml": "{TENANT_ID}: [unclosed",
            "no kind": "apiVersion: v1\nmetadata:\n  name: {TENANT_ID}\n",
            "NUL": self.template + "\x00",
            "not a string": 42,
            "over 256 KiB": self.template + "#" * (300 * 1024),
        }
        for name, tmpl in bad.items():
            with self.subTest(name):
                before = self.state()
                r = self.s.request("PUT", "/api/v1/tiers/gold", json_body={"template": tmpl})
                self.assertRefused(before, r, 400 if name == "NUL" else 422, name)
        for body, what in (({"template": self.template, "deployment_model": "siloed"}, "wrong model"),
                           ({"template": self.template, "extra": 1}, "unknown field"),
                           ({}, "no template")):
            before = self.state()
            self.assertRefused(before, self.s.request("PUT", "/api/v1/tiers/gold", json_body=body), 422, what)
        before = self.state()
        r = self.s.request("PUT", "/api/v1/tiers/gold", body=b'{"template":"a","template":"b"}',
                           headers={"Content-Type": "application/json"})
        self.assertRefused(before, r, 400, "duplicate key", "malformed-request")

    def test_oversize_body_and_headers(self):
        before = self.state()
        raw = self.s.raw(b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 5000000\r\n" + self.s.auth_line() + b"X-Request-Id: oversize\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 413"), raw[:100])
        snap, head, audit = before
        self.assertEqual((self.s.snapshot(), self.s.head()), (snap, head))
        self.assertEqual([a["status"] for a in self.s.audit()[len(audit):]], [413])
        before = self.state()
        r = self.s.request("POST", "/api/v1/tenants", json_body={"id": "big", "tier": "basic"},
                           headers={"X-Padding": "p" * 20000})
        self.assertRefused(before, r, 431, "20 KB of headers", "header-too-large")
        # Just under http-max-header (16384), in 42 headers: served, so
        # libmicrohttpd's memory per connection holds what the limit allows.
        pad = {"X-Pad-%02d" % i: "p" * 350 for i in range(42)}
        self.assertJson(self.s.get("/api/v1/tenants/victim", headers=pad), 200)
        self.assertJson(self.s.get("/api/v1/tenants/victim", headers={"X-Padding": "p" * 15500}), 200)

    def test_trickling_body_is_cut_off(self):
        before = self.state()
        sock = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        body = json.dumps({"id": "trickle", "tier": "basic"}).encode()
        sock.sendall(b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n" % len(body) + self.s.auth_line() + b"\r\n")
        t0, closed = time.monotonic(), False
        for ch in body:
            try:
                sock.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.3)
            if time.monotonic() - t0 > 8:
                break
        sock.settimeout(3)
        try:
            data = sock.recv(1000)
            closed = closed or data == b""
        except OSError:
            closed = True
        sock.close()
        self.assertTrue(closed, "the server closed the connection of a body slower than 2 s")
        self.assertLess(time.monotonic() - t0, 8)
        snap, head, audit = before
        self.assertEqual((self.s.snapshot(), self.s.head()), (snap, head))
        new = self.s.audit()[len(audit):]
        self.assertEqual([(a["status"], a["problem"]) for a in new], [(408, "request-timeout")])

    def test_idempotency_replay_and_reuse(self):
        s = self.s
        key = {"Idempotency-Key": "onboard-idem-1"}
        r1 = s.post_json("/api/v1/tenants", {"id": "idem", "tier": "basic"}, headers=key)
        self.assertJson(r1, 201)
        ops = len(s.rows("operations"))
        before = self.state()
        r2 = s.post_json("/api/v1/tenants", {"id": "idem", "tier": "basic"}, headers=key)
        self.assertEqual((r2.status, r2.body, r2.header("Location"), r2.header("ETag")),
                         (201, r1.body, r1.header("Location"), r1.header("ETag")))
        self.assertEqual(r2.header("Idempotent-Replayed"), "true")
        self.assertEqual(len(s.rows("operations")), ops, "a replay queues nothing")
        self.assertEqual((s.snapshot(), s.head()), before[:2])
        self.assertTrue(s.audit()[-1]["replayed"])
        # The same JSON value with its keys in another order and other
        # spacing is the same body: replayed, not refused.
        r2b = s.request("POST", "/api/v1/tenants", body=b'{ "tier" : "basic",\n  "id": "idem" }',
                        headers=dict(key, **{"Content-Type": "application/json"}))
        self.assertEqual((r2b.status, r2b.body, r2b.header("Idempotent-Replayed")), (201, r1.body, "true"))
        self.assertEqual(len(s.rows("operations")), ops, "a replay queues nothing")
        self.assertEqual((s.snapshot(), s.head()), before[:2])
        before = self.state()
        r3 = s.post_json("/api/v1/tenants", {"id": "idem2", "tier": "basic"}, headers=key)
        self.assertRefused(before, r3, 422, "same key, other body", "idempotency-key-reused")
        # Keys belong to their caller: another caller's same key is its own.
        other = s.token("another", "tenants:write")
        r4 = s.post_json("/api/v1/tenants", {"id": "idem", "tier": "basic"}, headers=key, token=other)
        self.assertProblem(r4, 409, "conflict")  # a real attempt: the tenant exists
        self.assertIsNone(r4.header("Idempotent-Replayed"))
        before = self.state()
        r5 = s.post_json("/api/v1/tenants", {"id": "x", "tier": "basic"}, headers={"Idempotency-Key": "a b"})
        self.assertRefused(before, r5, 422, "key with a space", "invalid-request")

    def test_stale_if_match(self):
        s = self.s
        self.assertJson(onboard(s, "versioned", "basic"), 201)
        etag = s.get("/api/v1/tenants/versioned").header("ETag")
        self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
        r = s.request("PATCH", "/api/v1/tenants/versioned", json_body={"release": "1.2"},
                      headers={"If-Match": etag})
        self.assertJson(r, 200)
        self.assertNotEqual(r.header("ETag"), etag)
        for method, body in (("PATCH", {"release": "1.3"}), ("DELETE", None)):
            for stale in (etag, '"0000"', "W/" + r.header("ETag")):
                with self.subTest(method=method, stale=stale):
                    before = self.state()
                    resp = s.request(method, "/api/v1/tenants/versioned", json_body=body,
                                     headers={"If-Match": stale})
                    self.assertRefused(before, resp, 412, "stale If-Match", "precondition-failed")
        r = s.request("DELETE", "/api/v1/tenants/versioned", headers={"If-Match": r.header("ETag")})
        self.assertJson(r, 200)
        tier = s.get("/api/v1/tiers/basic")
        before = self.state()
        resp = s.request("PUT", "/api/v1/tiers/basic", json_body={"template": self.template},
                         headers={"If-None-Match": "*"})
        self.assertRefused(before, resp, 412, "If-None-Match on an existing tier", "precondition-failed")
        before = self.state()
        resp = s.request("DELETE", "/api/v1/tiers/basic", headers={"If-Match": '"stale"'})
        self.assertRefused(before, resp, 412, "stale If-Match on a tier", "precondition-failed")
        self.assertEqual(tier.header("ETag"), tier.json["etag"])

    def test_rate_limit_per_caller(self):
        s = self.s
        portal = s.token("rate-limited", "tenants:read")
        codes = [s.get("/api/v1/tiers", token=portal) for _ in range(6)]
        limited = [r for r in codes if r.status == 429]
        self.assertTrue(limited, [r.status for r in codes])
        self.assertProblem(limited[0], 429, "too-many-requests")
        self.assertGreaterEqual(int(limited[0].header("Retry-After")), 1)
        self.assertEqual([r.status for r in codes[:3]], [200, 200, 200], "the burst passes")
        # another caller has its own bucket; admin is never limited
        self.assertEqual(s.get("/api/v1/tiers", token=s.token("someone-else", "tenants:read")).status, 200)
        self.assertEqual({s.get("/api/v1/tiers").status for _ in range(10)}, {200})
        time.sleep(1.1)
        self.assertEqual(s.get("/api/v1/tiers", token=portal).status, 200, "the bucket refills")


class InFlight(LandlordTestCase):
    """A retry while the first request still waits for its push is 409."""

    def test_in_flight_is_409(self):
        gs = GitServer().start()
        self.addCleanup(gs.cleanup)
        path = gs.create_repo("slow")
        hook = os.path.join(path, "hooks", "pre-receive")
        s = self.start_server(args=["--git-url", gs.url("slow"), "--git-username", "landlord",
                                    "--git-password-file", gs.write_password_file("s3cret")])
        with open(hook, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nsleep 2\n")
        os.chmod(hook, 0o755)
        key = {"Idempotency-Key": "slow-1"}
        box = {}

        def first():
            box["r"] = s.post_json("/api/v1/tenants", {"id": "slowpoke", "tier": "basic"}, headers=key)
        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.7)
        r = s.post_json("/api/v1/tenants", {"id": "slowpoke", "tier": "basic"}, headers=key)
        self.assertProblem(r, 409, "conflict")
        self.assertIn("still being processed", r.json["detail"])
        self.assertEqual(r.header("Retry-After"), "1")
        t.join(30)
        self.assertEqual(box["r"].status, 201, box["r"])
        r = s.post_json("/api/v1/tenants", {"id": "slowpoke", "tier": "basic"}, headers=key)
        self.assertEqual((r.status, r.header("Idempotent-Replayed")), (201, "true"))
        self.assertEqual(len([o for o in s.rows("operations") if o["tenant_id"] == "slowpoke"]), 1)


class Accepted(SharedServerTestCase):
    """What goes through: the caller authors the commit, the audit log and
    the tenant's history say so; tiers are managed as commits."""

    shared_args = ("--git-author-domain", "users.example.test")

    def test_authors_audit_and_history(self):
        s = self.s
        ana = s.token("ana-42", "tenants:write", name="Ana Lima", email="ana@corp.test")
        bot = s.token("ci|bot", "tenants:write")
        r = s.post_json("/api/v1/tenants", {"id": "hist", "tier": "basic"}, token=ana,
                        headers={"X-Request-Id": "req-onboard-hist"})
        self.assertJson(r, 201)
        c1 = r.json["commit"]
        r = s.request("PATCH", "/api/v1/tenants/hist", json_body={"tier": "premium"}, token=bot)
        self.assertJson(r, 200)
        c2 = r.json["commit"]
        self.assertProblem(s.request("PATCH", "/api/v1/tenants/hist", json_body={"tier": "nope"}, token=bot),
                           422)
        log = {sha: (name, email) for sha, _, name, email in s.log()}
        self.assertEqual(log[c1], ("Ana Lima", "ana@corp.test"))
        self.assertEqual(log[c2], ("ci|bot", "ci-bot@users.example.test"))
        for sha in (c1, c2):
            self.assertEqual(s.git("log", "-1", "--format=%cn <%ce>", sha).strip(), "landlord <landlord@localhost>")

        items = self.assertJson(s.get("/api/v1/audit?tenant=hist"), 200)["items"]
        self.assertEqual([(i["method"], i["status"], i["outcome"]) for i in items],
                         [("PATCH", 422, "refused"), ("PATCH", 200, "done"), ("POST", 201, "done")])
        post = items[-1]
        self.assertEqual(post["actor"], {"sub": "ana-42", "name": "Ana Lima", "email": "ana@corp.test"})
        self.assertEqual((post["request_id"], post["commit"], post["operation"]["author"]["email"]),
                         ("req-onboard-hist", c1, "ana@corp.test"))
        self.assertEqual(items[1]["commit"], c2)
        self.assertEqual(items[0]["problem"], "invalid-request")
        by_bot = s.get("/api/v1/audit?actor=ci%7Cbot").json["items"]
        self.assertEqual({i["actor"]["sub"] for i in by_bot}, {"ci|bot"})
        self.assertEqual(s.get("/api/v1/audit?since=2999-01-01T00:00:00Z").json["items"], [])
        page = s.get("/api/v1/audit?tenant=hist&limit=1").json
        self.assertEqual(len(page["items"]), 1)
        nxt = s.get("/api/v1/audit?tenant=hist&limit=5&cursor=" + page["next_cursor"]).json["items"]
        self.assertEqual([i["id"] for i in nxt], [i["id"] for i in items[1:]])
        self.assertProblem(s.get("/api/v1/audit?until=not-a-time"), 422, "invalid-request")

        hist = self.assertJson(s.get("/api/v1/tenants/hist/history"), 200)
        self.assertEqual([h["sha"] for h in hist["items"]], [c2, c1])
        self.assertEqual(hist["items"][1]["author"]["name"], "Ana Lima")
        self.assertEqual(hist["items"][0]["committer"]["name"], "landlord")
        self.assertEqual({(c["path"], c["change"]) for c in hist["items"][0]["changes"]},
                         {(PROD + "/tenants/basic/hist.yaml", "removed"),
                          (PROD + "/tenants/premium/hist.yaml", "added")})
        self.assertTrue(all(isinstance(i, int) for h in hist["items"] for i in h["operations"]))
        self.assertEqual(len(hist["items"][1]["operations"]), 1)
        one = s.get("/api/v1/tenants/hist/history?limit=1").json
        self.assertEqual([h["sha"] for h in one["items"]], [c2])
        rest = s.get("/api/v1/tenants/hist/history?cursor=" + one["next_cursor"]).json
        self.assertEqual([h["sha"] for h in rest["items"]], [c1])
        self.assertProblem(s.get("/api/v1/tenants/nobody/history"), 404)
        self.assertProblem(s.get("/api/v1/tenants/hist/history?cursor=zz"), 422)

    def test_tier_lifecycle(self):
        s = self.s
        tmpl = s.get("/api/v1/tiers/premium").json["template"].replace("premium", "gold")
        admin = s.token("tier-admin", "tiers:write tenants:read")
        r = s.request("PUT", "/api/v1/tiers/gold", token=admin, headers={"If-None-Match": "*"},
                      json_body={"template": tmpl, "description": "Gold: siloed", "deployment_model": "siloed"})
        tier = self.assertJson(r, 201)
        self.assertEqual((tier["name"], tier["description"], tier["deployment_model"]),
                         ("gold", "Gold: siloed", "siloed"))
        self.assertEqual(r.header("Location"), "/api/v1/tiers/gold")
        sha, subject, name, _ = s.log()[0]
        self.assertEqual((subject, name), ("Add tier gold", "tier-admin"))
        self.assertEqual(set(s.changed_files(sha)), {
            PROD + "/tier-templates/gold_tenant_template.yaml", PROD + "/tenants/gold/kustomization.yaml",
            PROD + "/tenants/kustomization.yaml"})
        self.assertEqual(s.show(PROD + "/tier-templates/gold_tenant_template.yaml"), tmpl)
        self.assertIn("- gold", s.show(PROD + "/tenants/kustomization.yaml"))
        self.assertJson(onboard(s, "shiny", "gold"), 201)
        self.assertIn("shiny.yaml", s.show(PROD + "/tenants/gold/kustomization.yaml"))

        before = (s.snapshot(), s.head())
        self.assertProblem(s.delete("/api/v1/tiers/gold", token=admin), 409, "conflict")
        self.assertEqual((s.snapshot(), s.head()), before)
        etag = s.get("/api/v1/tiers/gold").header("ETag")
        r = s.request("PUT", "/api/v1/tiers/gold", token=admin, headers={"If-Match": etag},
                      json_body={"template": tmpl + "# v2\n", "description": "Gold v2"})
        self.assertJson(r, 200)
        self.assertEqual(s.log()[0][1], "Replace tier gold")
        self.assertNotEqual(r.header("ETag"), etag)
        self.assertJson(s.delete("/api/v1/tenants/shiny"), 200)
        r = s.delete("/api/v1/tiers/gold", token=admin)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(s.log()[0][1], "Delete tier gold")
        files = s.ls_tree()
        self.assertFalse([f for f in files if "/gold" in f or "gold_" in f], files)
        self.assertNotIn("gold", s.show(PROD + "/tenants/kustomization.yaml"))
        self.assertProblem(s.get("/api/v1/tiers/gold"), 404)
        ops = [o for o in s.rows("operations") if o["tier"] == "gold" and o["tenant_id"] == ""]
        self.assertEqual([o["kind"] for o in ops], ["tier_put", "tier_put", "tier_delete"])
        op = s.get("/api/v1/operations/%d" % ops[0]["id"]).json
        self.assertEqual((op["kind"], op["tenant"], op["state"]), ("tier_put", None, "pushed"))


if __name__ == "__main__":
    unittest.main()

"""The HTTP layer: 404 vs 405 with Allow, X-Request-Id, health and
readiness, the served contract and admin page, the access log, shutdown."""

import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import HEX32, HEX40, SOURCE_DIR, LandlordTestCase, Server, SharedServerTestCase, onboard  # noqa: E402


def allow_set(resp):
    return {m.strip().upper() for m in (resp.header("Allow") or "").split(",") if m.strip()}


class Http(SharedServerTestCase):
    def test_unknown_path_is_404_problem(self):
        for method, path in (
            ("GET", "/nope"),
            ("GET", "/api/v1"),
            ("GET", "/api/v2/tenants"),
            ("GET", "/api/v1/tenants/acme/extra"),
            ("POST", "/api/v1/nothing"),
            ("GET", "/healthz/x"),
        ):
            with self.subTest(method=method, path=path):
                r = self.s.request(method, path)
                p = self.assertProblem(r, 404, "not-found")
                self.assertEqual(p.get("request_id"), r.header("X-Request-Id"))

    def test_wrong_method_is_405_with_allow(self):
        for method, path, allowed in (
            ("PUT", "/api/v1/tenants", {"GET", "POST"}),
            ("DELETE", "/api/v1/tenants", {"GET", "POST"}),
            ("PUT", "/api/v1/tenants/acme", {"GET", "PATCH", "DELETE"}),
            ("POST", "/api/v1/tenants/acme", {"GET", "DELETE"}),
            ("POST", "/api/v1/tiers", {"GET"}),
            ("POST", "/api/v1/tiers/basic", {"GET", "PUT", "DELETE"}),
            ("DELETE", "/api/v1/operations/1", {"GET"}),
            ("POST", "/healthz", {"GET"}),
            ("POST", "/readyz", {"GET"}),
            ("PUT", "/openapi.yaml", {"GET"}),
            ("POST", "/", {"GET"}),
        ):
            with self.subTest(method=method, path=path):
                before = self.s.log()
                r = self.s.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
                self.assertProblem(r, 405, "method-not-allowed")
                got = allow_set(r)
                self.assertTrue(allowed <= got, "Allow %r lacks %r" % (r.header("Allow"), allowed))
                self.assertNotIn(method, got)
                self.assertEqual(self.s.log(), before)

    def test_request_id_echoed(self):
        for rid in ("abc-123", "x", "A" * 128, "req:1/2?3=4&5", "~!@#$%^&*()_+"):
            with self.subTest(rid=rid):
                r = self.s.get("/healthz", headers={"X-Request-Id": rid})
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("X-Request-Id"), rid)
        # also on problems, in the body too
        r = self.s.get("/nope", headers={"X-Request-Id": "trace-me-404"})
        self.assertEqual(r.header("X-Request-Id"), "trace-me-404")
        self.assertEqual(r.json.get("request_id"), "trace-me-404")

    def test_request_id_generated(self):
        ids = set()
        # More requests than a worker draws ids for at a time (16).
        for path in ("/healthz", "/api/v1/tenants", "/nope") * 14:
            r = self.s.get(path)
            rid = r.header("X-Request-Id") or ""
            self.assertRegex(rid, HEX32, path)
            ids.add(rid)
        self.assertEqual(len(ids), 42, "generated ids must differ")

    def test_request_id_replaced_when_invalid(self):
        for rid in ("has space", "A" * 129, "tab\there", "caf\u00e9".encode("utf-8").decode("latin-1")):
            with self.subTest(rid=rid):
                r = self.s.get("/healthz", headers={"X-Request-Id": rid})
                self.assertEqual(r.status, 200)
                got = r.header("X-Request-Id") or ""
                self.assertRegex(got, HEX32)
                self.assertNotEqual(got, rid)

    def test_request_id_empty_is_replaced(self):
        raw = self.s.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: \r\nConnection: close\r\n\r\n")
        m = re.search(rb"(?im)^x-request-id:\s*([^\r\n]*)\r?$", raw)
        self.assertIsNotNone(m, raw)
        self.assertRegex(m.group(1).decode(), HEX32)

    def test_healthz(self):
        r = self.s.get("/healthz")
        self.assertEqual(self.assertJson(r, 200), {"status": "ok"})

    def test_readyz(self):
        r = self.s.get("/readyz")
        b = self.assertJson(r, 200)
        self.assertEqual(b["status"], "ready")
        self.assertEqual(b["checks"]["registry"]["status"], "ok")
        self.assertEqual(b["checks"]["git"]["status"], "ok")
        if "head" in b["checks"]["git"]:
            self.assertRegex(b["checks"]["git"]["head"], HEX40)
            self.assertEqual(b["checks"]["git"]["head"], self.s.head())

    def test_openapi_served(self):
        r = self.s.get("/openapi.yaml")
        self.assertEqual(r.status, 200)
        self.assertIn(r.content_type, ("application/yaml", "application/x-yaml", "application/openapi+yaml"))
        doc = yaml.safe_load(r.body.decode("utf-8"))
        self.assertRegex(str(doc.get("openapi")), r"^3\.1\.\d+$")
        self.assertIn("/api/v1/tenants", doc["paths"])
        with open(os.path.join(SOURCE_DIR, "openapi", "openapi.yaml"), "rb") as f:
            self.assertEqual(r.body, f.read(), "the served contract is openapi/openapi.yaml (rebuild?)")

    def test_admin_page(self):
        r = self.s.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.content_type, "text/html")
        self.assertIn(b"<html", r.body.lower())

    def test_json_content_type(self):
        for path in ("/api/v1/tenants", "/api/v1/tiers", "/healthz"):
            r = self.s.get(path)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.content_type, "application/json", path)

    def test_access_log_one_line_per_request(self):
        stamp = "%x" % int(time.time() * 1000)
        sent = []
        for i, (method, path) in enumerate(
            (("GET", "/healthz"), ("GET", "/api/v1/tenants"), ("GET", "/nope"), ("PUT", "/api/v1/tenants"))
        ):
            rid = "log-%s-%d" % (stamp, i)
            r = self.s.request(method, path, headers={"X-Request-Id": rid})
            sent.append((rid, method, path, r.status))
        deadline = time.monotonic() + 3
        while True:
            lines = self.s.stderr_text().splitlines()
            counts = {rid: [l for l in lines if rid in l] for rid, _, _, _ in sent}
            if all(len(v) >= 1 for v in counts.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for rid, method, path, status in sent:
            with self.subTest(rid=rid):
                found = counts[rid]
                self.assertEqual(len(found), 1, "want one access-log line with %s, got %r" % (rid, found))
                self.assertIn(path, found[0])
                self.assertIn(method, found[0])
                self.assertIn(str(status), found[0])


class Shutdown(LandlordTestCase):
    def test_sigterm_exits_zero(self):
        s = self.start_server()
        self.assertEqual(s.get("/healthz").status, 200)
        self.assertEqual(onboard(s, "before-stop", "basic").status, 201)
        self.assertEqual(s.stop(signal.SIGTERM), 0, s.logs())

    def test_sigint_exits_zero(self):
        s = self.start_server()
        self.assertEqual(s.get("/healthz").status, 200)
        self.assertEqual(s.stop(signal.SIGINT), 0, s.logs())

    def test_sigterm_with_idle_keepalive_connection(self):
        import http.client

        s = self.start_server()
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        self.addCleanup(conn.close)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(s.stop(signal.SIGTERM), 0, s.logs())


if __name__ == "__main__":
    unittest.main()

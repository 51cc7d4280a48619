"""Webhooks cannot reach inside (issue 11, Must-have 5; docs/api.md "Events
and webhooks", "Where webhooks may go").

  - Without `webhook-allow-cidr`, a subscription whose URL is, or resolves
    to, a loopback, link-local, private, unspecified, multicast, broadcast
    or reserved address, in any spelling curl accepts (decimal, hex, octal,
    short IPv4; IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6), and
    `localhost`, is refused 422 `webhook-address-not-allowed` naming the
    address class, and registry, repository and audit log (beyond the one
    refusal record) are unchanged; a host that does not resolve is refused
    422 `invalid-request`; public addresses are accepted.
  - A bad `webhook-allow-cidr` stops landlord at start.
  - With `webhook-allow-cidr 127.0.0.0/8` a receiver on 127.0.0.1 is
    accepted and gets signed deliveries, while `[::1]` and `10.0.0.1` stay
    refused; a receiver's 302 to another (allowed) receiver is not followed.
  - A subscription made while 127.0.0.0/8 was allowed, with landlord then
    restarted without the setting: every delivery is refused at delivery
    time (`address not allowed` in the log, nothing more) and the receiver
    sees no connection at all.
"""

import http.server
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import common  # noqa: E402
from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import LandlordTestCase, Server, SharedServerTestCase, make_temp_dir, onboard, run_landlord  # noqa: E402
from kubeapi import KubeAPI  # noqa: E402

NOT_ALLOWED = "webhook-address-not-allowed"
ALLOW_LOOPBACK = "127.0.0.0/8"
USER = "landlord"
PASSWORD = "s3cret"
CHARTS = ["0.0.1", "1.2.3"]

# (url, the address class the refusal names)
INTERNAL = [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
    ("http://169.254.170.2/v2/credentials", "link-local"),
    ("http://127.0.0.1/", "loopback"),
    ("https://127.0.0.1:8443/hook", "loopback"),
    ("http://127.0.0.2:8080/hook", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://2852039166/latest/meta-data/", "link-local"),  # 169.254.169.254
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[::127.0.0.1]/", "loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.254/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd00:ec2::254]/", "private"),  # EC2's IPv6 metadata service
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://192.0.2.1/", "reserved"),
    ("http://[2001:db8::1]/", "reserved"),
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST:9/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
]


class Receiver:
    """A webhook receiver on 127.0.0.1: counts every TCP connection,
    records every POST, answers each with answer(path) -> (status, headers)."""

    def __init__(self, answer=lambda path: (200, {})):
        rec = self
        self.posts = []
        self.connections = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.lock:
                    rec.posts.append({"path": self.path, "body": body,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, headers = answer(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class CountingServer(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):
                with rec.lock:
                    rec.connections += 1
                return True

        self.httpd = CountingServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.posts), self.connections

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def poll(fn, timeout, msg):
    return common.poll(fn, timeout, msg=msg)


class RefusedSubscriptions(SharedServerTestCase):
    """landlord without webhook-allow-cidr: public receivers only."""

    def charts(self):
        """Every file of the chart store (the OCI image layout in the data
        dir) with its size."""
        root = os.path.join(self.s.data, "oci")
        return sorted((os.path.relpath(os.path.join(d, f), root), os.path.getsize(os.path.join(d, f)))
                      for d, _, files in os.walk(root) for f in files)

    def state(self):
        return self.s.snapshot(), self.s.head(), self.charts(), self.s.audit()

    def assertRefused(self, before, resp, ptype, what):
        """resp is a 422 of ptype about `url`; registry (outbox included),
        repository and chart store are unchanged and the audit log holds
        the one refusal record more."""
        snap, head, charts, audit = before
        p = self.assertProblem(resp, 422, ptype, field="url", msg=what)
        self.assertEqual(self.s.snapshot(), snap, "%s changed the registry" % what)
        self.assertEqual(self.s.head(), head, "%s changed the repository" % what)
        self.assertEqual(self.charts(), charts, "%s changed the chart store" % what)
        now = self.s.audit()
        self.assertEqual(now[:len(audit)], audit, "%s rewrote audit records" % what)
        self.assertEqual(len(now), len(audit) + 1, "%s: the refusal record only" % what)
        self.assertEqual((now[-1]["status"], now[-1]["request_id"], now[-1]["operation_id"]),
                         (422, resp.header("X-Request-Id"), None), what)
        return p

    def test_internal_addresses_are_refused(self):
        own = "http://127.0.0.1:%d/api/v1/tenants" % self.s.port  # landlord's own port
        for url, cls in INTERNAL + [(own, "loopback")]:
            with self.subTest(url=url):
                before = self.state()
                r = self.s.post_json("/api/v1/webhooks", {"url": url, "event_types": ["*"]})
                p = self.assertRefused(before, r, NOT_ALLOWED, url)
                self.assertIn("%s address" % cls, p["detail"], url)
                self.assertIn("webhook-allow-cidr", p.get("hint", ""), url)
        self.assertEqual(self.assertJson(self.s.get("/api/v1/webhooks"), 200)["items"], [])

    def test_a_name_is_judged_by_what_it_resolves_to(self):
        before = self.state()
        r = self.s.post_json("/api/v1/webhooks", {"url": "http://localhost:%d/hook" % self.s.port})
        p = self.assertRefused(before, r, NOT_ALLOWED, "localhost")
        self.assertIn("'localhost' resolves to a loopback address", p["detail"])
        self.assertNotIn("127.0.0.1", p["detail"], "the address a name resolves to is not told")

    def test_a_host_that_does_not_resolve(self):
        before = self.state()
        r = self.s.post_json("/api/v1/webhooks", {"url": "https://no-such-host.invalid/hook"})
        p = self.assertRefused(before, r, "invalid-request", "unresolvable host")
        self.assertIn("no-such-host.invalid", p["detail"])
        for url in ("http://[fe80::1%25eth0]/hook", "http://b\u00fccher.example/hook"):
            before = self.state()
            self.assertRefused(before, self.s.post_json("/api/v1/webhooks", {"url": url}),
                               "invalid-request", url)

    def test_spellings_curl_refuses_are_refused_too(self):
        # Percent-encoded or otherwise odd hosts: refused, as curl's parser
        # refuses them or as what they resolve to is not public.
        for url in ("http://%31%32%37.0.0.1/", "http://127.0.0.1%00.example/", "http://[::1%25lo]/",
                    "http://127.0.0.1:80@evil.example/", "http://evil.example@127.0.0.1/"):
            with self.subTest(url=url):
                before = self.state()
                self.assertRefused(before, self.s.post_json("/api/v1/webhooks", {"url": url}),
                                   ("invalid-request", NOT_ALLOWED), url)

    def test_public_addresses_are_accepted(self):
        # No cluster is configured: no events, so nothing is ever sent there.
        for url in ("http://93.184.215.14/hook", "https://[2606:4700:4700::1111]:8443/hook",
                    "http://[::ffff:8.8.8.8]/hook", "http://[64:ff9b::808:808]/hook"):
            r = self.s.post_json("/api/v1/webhooks", {"url": url})
            hook = self.assertJson(r, 201, url)
            self.assertEqual(hook["url"], url)
            self.assertEqual(self.s.delete("/api/v1/webhooks/%d" % hook["id"]).status, 204)

    def test_a_bad_allow_list_stops_landlord(self):
        for value in ("10.0.0.1/8", "10.0.0.0/33", "localhost", "10.0.0.0/8,", "fd00::/8,fe80::1%lo/64"):
            p = run_landlord(["serve", "--listen", "127.0.0.1:0", "--data", make_temp_dir(),
                              "--webhook-allow-cidr", value], timeout=30)
            self.assertNotEqual(p.returncode, 0, value)
            self.assertIn("webhook-allow-cidr", p.stderr, value)


class AllowedBlock(LandlordTestCase):
    """webhook-allow-cidr 127.0.0.0/8: that block, and nothing more."""

    @classmethod
    def setUpClass(cls):
        cls.s = cls.start_shared(webhook_allow=ALLOW_LOOPBACK)

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    def test_only_the_allowed_block_passes(self):
        for url in ("http://127.0.0.1:9/hook", "http://127.0.0.2:9/hook", "http://2130706433:9/",
                    "http://[::ffff:127.0.0.1]:9/hook"):
            hook = self.assertJson(self.s.post_json("/api/v1/webhooks", {"url": url}), 201, url)
            self.assertEqual(self.s.delete("/api/v1/webhooks/%d" % hook["id"]).status, 204)
        for url, cls in (("http://[::1]:9/hook", "loopback"), ("http://10.0.0.1/", "private"),
                         ("http://169.254.169.254/", "link-local")):
            before = (self.s.snapshot(), self.s.head())
            r = self.s.post_json("/api/v1/webhooks", {"url": url})
            p = self.assertProblem(r, 422, NOT_ALLOWED, field="url", msg=url)
            self.assertIn(cls, p["detail"])
            self.assertEqual((self.s.snapshot(), self.s.head()), before, url)


class Deliveries(LandlordTestCase):
    """A cluster (the Kubernetes stand-in and the Flux simulator) so that
    tenants have events to deliver."""

    @classmethod
    def setUpClass(cls):
        cls.gs = GitServer(users={USER: PASSWORD}).start()
        cls.repo = "gitops-ssrf"
        cls.gs.create_repo(cls.repo)
        cls.api = KubeAPI(tls=True, tokens={"tok-1": "landlord"}).start()
        kubeconfig = os.path.join(make_temp_dir("landlord-ssrf-"), "kubeconfig")
        cls.api.kubeconfig(kubeconfig)
        cls.s = cls.start_shared(args=["--git-url", cls.gs.url(cls.repo), "--git-username", USER,
                                       "--git-password-file", cls.gs.write_password_file(PASSWORD),
                                       "--kubeconfig", kubeconfig, "--git-poll-interval", "1"],
                                 webhook_allow=ALLOW_LOOPBACK)
        cls.sim = FluxSim(cls.api, cls.gs.authed_url(cls.repo), git_env=cls.gs.git_env(),
                          chart_versions=CHARTS).start()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        codes = cls.stop_shared()
        cls.api.stop()
        cls.gs.stop()
        cls.gs.cleanup()
        assert codes == [0], codes

    def receiver(self, answer=lambda path: (200, {})):
        rx = Receiver(answer)
        self.addCleanup(rx.stop)
        return rx

    def subscribe(self, url, types=("tenant.*",)):
        r = self.s.post_json("/api/v1/webhooks", {"url": url, "event_types": list(types)})
        return self.assertJson(r, 201, url)

    def deliveries(self, hook_id):
        return self.assertJson(self.s.get("/api/v1/webhooks/%d/deliveries?limit=500" % hook_id),
                               200)["items"]

    def events_of(self, tenant):
        return {e["id"] for e in self.s.rows("events") if e["tenant_id"] == tenant}

    def onboard(self, tenant):
        r = onboard(self.s, tenant, "basic")
        self.assertIn(r.status, (201, 202), r)

    def test_1_an_allowed_receiver_gets_deliveries(self):
        rx = self.receiver()
        hook = self.subscribe(rx.url)
        self.onboard("alpha")

        def got():
            return [p for p in rx.snapshot()[0] if json.loads(p["body"])["data"]["tenant"] == "alpha"]
        posts = poll(got, 30, "an event about alpha delivered to 127.0.0.1")
        self.assertRegex(posts[0]["headers"].get("landlord-signature", ""), r"^t=\d+,v1=[0-9a-f]{64}$")
        items = poll(lambda: [d for d in self.deliveries(hook["id"]) if d["state"] == "delivered"], 10,
                     "the log says delivered")
        self.assertEqual(items[0]["last_status"], 200)

    def test_2_a_redirect_is_not_followed(self):
        inside = self.receiver()
        redirector = self.receiver(lambda path: (302, {"Location": inside.url + "/internal"}))
        hook = self.subscribe(redirector.url)
        self.onboard("beta")
        beta = poll(lambda: self.events_of("beta"), 30, "an event about beta")

        def answered():
            return [d for d in self.deliveries(hook["id"]) if d["event"] in beta and d["attempts"] >= 1]
        d = poll(answered, 30, "a delivery about beta attempted")[0]
        self.assertEqual(d["last_status"], 302, d)
        self.assertEqual(d["state"], "pending", "a 3xx is not delivered: %r" % d)
        self.assertEqual(d["last_error"], "the receiver answered 302", d)
        self.assertTrue(redirector.snapshot()[0], "the receiver was asked")
        self.assertEqual(inside.snapshot(), ([], 0), "the redirect's target was never contacted")
        self.assertEqual(self.s.delete("/api/v1/webhooks/%d" % hook["id"]).status, 204)

    def test_3_checked_again_at_every_delivery(self):
        """Subscribed while 127.0.0.0/8 was allowed; landlord restarted
        without the setting: deliveries are refused, and not a single
        connection reaches the receiver."""
        rx = self.receiver()
        hook = self.subscribe(rx.url)
        self.assertEqual(self.s.stop(), 0)
        seen = rx.snapshot()
        self.s.webhook_allow = None
        self.s.start()
        self.assertEqual([h["id"] for h in self.assertJson(self.s.get("/api/v1/webhooks"), 200)["items"]
                          if h["id"] == hook["id"]], [hook["id"]], "the subscription is kept")
        self.onboard("gamma")
        gamma = poll(lambda: self.events_of("gamma"), 30, "an event about gamma")

        def refused():
            return [d for d in self.deliveries(hook["id"]) if d["event"] in gamma and d["attempts"] >= 1]
        d = poll(refused, 30, "a delivery about gamma attempted")[0]
        self.assertEqual(d["last_error"], "address not allowed", d)
        self.assertIsNone(d["last_status"], d)
        self.assertEqual(d["state"], "pending", "retried later like any failure: %r" % d)
        self.assertEqual(rx.snapshot(), seen, "no connection since the restart")
        # landlord's own log says which address and why, for the operator.
        self.assertRegex(self.s.stderr_text(),
                         r'msg="webhook receiver address not allowed( at connect)?" delivery=\d+ address=127\.0\.0\.1 '
                         r'class=loopback')


if __name__ == "__main__":
    unittest.main()

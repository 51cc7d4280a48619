"""Bad input (issue 2, "Bad input"): every rejected request answers the
documented 4xx as application/problem+json, and leaves the registry and the
GitOps remote exactly as they were."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import (  # noqa: E402
    PROBLEM,
    SharedServerTestCase,
    naive_render,
    onboard,
    template_path,
    tenant_path,
)

JSON = {"Content-Type": "application/json"}
MAX_BODY = 4096


def body(obj):
    return json.dumps(obj).encode("utf-8")


def post(raw, headers=JSON, query=""):
    return ("POST", "/api/v1/tenants" + query, headers, raw)


def bad_id(i):
    return post(body({"id": i, "tier": "basic"}))


# (name, (method, path, headers, body), status, type suffix, field or None)
CASES = [
    # not JSON / duplicate keys: 400
    ("malformed json", post(b'{"id": "acme", "tier": '), 400, "malformed-request", None),
    ("not json at all", post(b"id=acme&tier=basic"), 400, "malformed-request", None),
    ("empty body", post(b""), 400, "malformed-request", None),
    ("trailing garbage", post(b'{"id":"acme","tier":"basic"} x'), 400, "malformed-request", None),
    ("invalid utf-8", post(b'{"id":"ac\xffme","tier":"basic"}'), 400, "malformed-request", None),
    ("duplicate key", post(b'{"id":"dup-a","id":"dup-b","tier":"basic"}'), 400, "malformed-request", None),
    ("duplicate key same value", post(b'{"id":"dupe","tier":"basic","tier":"basic"}'), 400,
     "malformed-request", None),
    # unknown fields, wrong types: 422
    ("unknown field", post(body({"id": "uf", "tier": "basic", "colour": "red"})), 422, "invalid-request",
     "colour"),
    ("id wrong type", post(body({"id": 42, "tier": "basic"})), 422, "invalid-request", "id"),
    ("id null", post(body({"id": None, "tier": "basic"})), 422, "invalid-request", "id"),
    ("tier wrong type", post(body({"id": "wt", "tier": True})), 422, "invalid-request", "tier"),
    ("release wrong type", post(body({"id": "wt", "tier": "basic", "release": 1.2})), 422,
     "invalid-request", "release"),
    ("values wrong type", post(body({"id": "wt", "tier": "basic", "values": "x"})), 422,
     "invalid-request", "values"),
    ("values array", post(body({"id": "wt", "tier": "basic", "values": []})), 422, "invalid-request",
     "values"),
    ("body is an array", post(body([{"id": "wt", "tier": "basic"}])), 422, "invalid-request", None),
    ("body is a string", post(body("acme")), 422, "invalid-request", None),
    ("missing id", post(body({"tier": "basic"})), 422, "invalid-request", "id"),
    ("missing tier", post(body({"id": "nt"})), 422, "invalid-request", "tier"),
    # ids
    ("id uppercase", bad_id("Acme"), 422, "invalid-request", "id"),
    ("id with dot", bad_id("ac.me"), 422, "invalid-request", "id"),
    ("id with slash", bad_id("ac/me"), 422, "invalid-request", "id"),
    ("id dotdot", bad_id(".."), 422, "invalid-request", "id"),
    ("id traversal", bad_id("../../etc"), 422, "invalid-request", "id"),
    ("id with space", bad_id("ac me"), 422, "invalid-request", "id"),
    ("id 41 chars", bad_id("a" * 41), 422, "invalid-request", "id"),
    ("id empty", bad_id(""), 422, "invalid-request", "id"),
    ("id leading dash", bad_id("-acme"), 422, "invalid-request", "id"),
    ("id trailing dash", bad_id("acme-"), 422, "invalid-request", "id"),
    ("id underscore", bad_id("ac_me"), 422, "invalid-request", "id"),
    ("id non-ascii", bad_id("acm\u00e9"), 422, "invalid-request", "id"),
    ("id newline", bad_id("ac\nme"), 422, "invalid-request", "id"),
    ("id braces", bad_id("{TENANT_ID}"), 422, "invalid-request", "id"),
    ("id default", bad_id("default"), 422, "invalid-request", "id"),
    ("id flux-system", bad_id("flux-system"), 422, "invalid-request", "id"),
    ("id kube-system", bad_id("kube-system"), 422, "invalid-request", "id"),
    ("id kube-anything", bad_id("kube-x"), 422, "invalid-request", "id"),
    ("id pool env", bad_id("pool-1"), 422, "invalid-request", "id"),
    # values with ${...}
    ("values ${} string", post(body({"id": "sv", "tier": "basic", "values": {"x": "${FOO}"}})), 422,
     "invalid-request", None),
    ("values ${} nested", post(body({"id": "sv", "tier": "basic",
                                     "values": {"a": {"b": ["ok", "pre-${BAR}-post"]}}})), 422,
     "invalid-request", None),
    ("values ${} key", post(body({"id": "sv", "tier": "basic", "values": {"${KEY}": 1}})), 422,
     "invalid-request", None),
    # tier
    ("unknown tier", post(body({"id": "ut", "tier": "gold"})), 422, "invalid-request", "tier"),
    ("tier traversal", post(body({"id": "ut", "tier": "../premium"})), 422, "invalid-request", "tier"),
    ("tier empty", post(body({"id": "ut", "tier": ""})), 422, "invalid-request", "tier"),
    ("tier uppercase", post(body({"id": "ut", "tier": "Premium"})), 422, "invalid-request", "tier"),
]

for rel in ("1", "1.2.3.4", "v1.2", "1.2.y", "latest", "", "1.2.x.x", "${X}", "1..2", "1.2.", "a.b", " 1.2"):
    CASES.append(("release %r" % rel, post(body({"id": "mr", "tier": "basic", "release": rel})), 422,
                  "invalid-request", "release"))

CASES += [
    # media type
    ("no content-type", post(body({"id": "ct", "tier": "basic"}), headers={}), 415,
     "unsupported-media-type", None),
    ("text/plain", post(body({"id": "ct", "tier": "basic"}), headers={"Content-Type": "text/plain"}), 415,
     "unsupported-media-type", None),
    ("form", post(b"id=ct&tier=basic", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415,
     "unsupported-media-type", None),
    # body over the limit
    ("body over limit", post(body({"id": "big", "tier": "basic", "values": {"pad": "x" * 5000}})), 413,
     "payload-too-large", None),
]

# query parameters
for q in ("0", "501", "-1", "abc", "1.5", "", "10abc", "99999999999999999999"):
    CASES.append(("list limit=%r" % q, ("GET", "/api/v1/tenants?limit=" + q, {}, None), 422,
                  "invalid-request", "limit"))
for q in ("garbage", "!!!", "AAAA", "eyJpZCI6MX0"):
    CASES.append(("list cursor=%r" % q, ("GET", "/api/v1/tenants?cursor=" + q, {}, None), 422,
                  "invalid-request", "cursor"))
CASES.append(("list state=bogus", ("GET", "/api/v1/tenants?state=bogus", {}, None), 422, "invalid-request",
              "state"))
for q in ("-1", "301", "abc", "1.5", "", "1e2"):
    CASES.append(("post wait=%r" % q, post(body({"id": "waiter", "tier": "basic"}), query="?wait=" + q), 422,
                  "invalid-request", "wait"))
    CASES.append(("delete wait=%r" % q, ("DELETE", "/api/v1/tenants/victim?wait=" + q, {}, None), 422,
                  "invalid-request", "wait"))


class BadInput(SharedServerTestCase):
    shared_args = ("--http-max-body", str(MAX_BODY))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # something to lose: an existing tenant (the DELETE cases aim at it)
        r = onboard(cls.s, "victim", "premium")
        assert r.status == 201, r


    def state(self):
        return self.s.snapshot(), self.s.log(), self.s.ls_tree()

    def assertUnchanged(self, before, what):
        snap, log, tree = self.state()
        self.assertEqual(snap, before[0], "%s changed the registry" % what)
        self.assertEqual(log, before[1], "%s changed the git log" % what)
        self.assertEqual(tree, before[2], "%s changed the git tree" % what)

    def test_table(self):
        self.assertGreater(len(CASES), 60)
        for name, (method, path, headers, raw), status, ptype, field in CASES:
            with self.subTest(name):
                before = self.state()
                r = self.s.request(method, path, body=raw, headers=headers)
                self.assertProblem(r, status, ptype, msg=name)
                if field is not None:
                    self.assertEqual(r.json.get("field"), field, "%s: %r" % (name, r.json))
                self.assertIsInstance(r.json.get("detail"), str, name)
                self.assertUnchanged(before, name)
        # the victim survived every bad DELETE
        t = self.assertJson(self.s.get("/api/v1/tenants/victim"), 200)
        self.assertEqual(t["state"], "unknown")

    def test_body_over_limit_answered_before_reading(self):
        """Only headers are sent, announcing 10 MB: the 413 must come back
        without the body ever being sent."""
        before = self.state()
        raw = self.s.raw(
            b"POST /api/v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\nX-Request-Id: big-one\r\n" + self.s.auth_line() + b"\r\n",
            read_timeout=5.0,
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 413"), raw[:200])
        head, _, rest = raw.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        self.assertEqual(headers.get("content-type", "").split(";")[0], "application/problem+json", raw)
        self.assertEqual(headers.get("x-request-id"), "big-one")
        n = int(headers.get("content-length", len(rest)))
        problem = json.loads(rest[:n].decode())
        self.assertEqual(problem["type"], PROBLEM + "payload-too-large")
        self.assertEqual(problem["status"], 413)
        self.assertUnchanged(before, "announced 10 MB body")

    def test_body_at_the_limit_is_read(self):
        """The limit is on the body size: a body just under it is parsed."""
        pad = "x" * (MAX_BODY - 200)
        raw = body({"id": "padded", "tier": "basic", "values": {"pad": pad}})
        self.assertLessEqual(len(raw), MAX_BODY)
        r = self.s.request("POST", "/api/v1/tenants", body=raw, headers=JSON)
        self.assertJson(r, 201)
        self.assertEqual(r.json["values"], {"pad": pad})

    def test_charset_parameter_accepted(self):
        r = self.s.request(
            "POST",
            "/api/v1/tenants",
            body=body({"id": "charset", "tier": "basic"}),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        self.assertJson(r, 201)

    def test_bad_id_on_delete_changes_nothing(self):
        for path in ("/api/v1/tenants/Victim", "/api/v1/tenants/..%2Fpremium%2Fvictim",
                     "/api/v1/tenants/victim.yaml"):
            with self.subTest(path):
                before = self.state()
                r = self.s.delete(path)
                self.assertProblem(r, r.status, ("not-found", "invalid-request"))
                self.assertIn(r.status, (404, 422))
                self.assertUnchanged(before, "DELETE " + path)

    def test_yaml_ambiguous_ids(self):
        """Refused with 422, or accepted and then every place where the
        template has the id standing alone reads back as that string."""
        for tier in ("premium", "basic"):
            # one server per tier, so each can take every id
            srv = self.s if tier == "premium" else self.start_server()
            # the template is not YAML until rendered: fill it with a marker id
            # and find where the marker stands alone
            marked = naive_render(srv.show(template_path(tier)), MARKER, tier, "0.0.x")
            tmpl_docs = [d for d in yaml.safe_load_all(marked) if d is not None]
            alone = []
            for i, d in enumerate(tmpl_docs):
                alone += [(i,) + p for p in placeholder_paths(d)]
            self.assertTrue(alone, "the %s template has {TENANT_ID} standing alone somewhere" % tier)
            for tid in ("true", "null", "yes", "no", "on", "off", "1e3", "0x1f", "123", "0o17", "2001-12-14"):
                with self.subTest(tier=tier, id=tid):
                    before = srv.snapshot(), srv.log(), srv.ls_tree()
                    r = onboard(srv, tid, tier)
                    if r.status != 201:
                        self.assertProblem(r, 422, "invalid-request", field="id")
                        self.assertEqual((srv.snapshot(), srv.log(), srv.ls_tree()), before,
                                         "refused id %r changed something" % tid)
                        continue
                    self.assertEqual(r.json["id"], tid)
                    text = srv.show(tenant_path(tier, tid))
                    docs = [d for d in yaml.safe_load_all(text) if d is not None]
                    self.assertEqual(len(docs), len(tmpl_docs), text)
                    for p in alone:
                        v = get_path(docs, p)
                        self.assertIsInstance(v, str, "id %r at %r is %r in\n%s" % (tid, p, v, text))
                        self.assertEqual(v, tid, "at %r in\n%s" % (p, text))
                    # where the id is part of a longer string
                    for d in docs:
                        if d.get("kind") == "HelmRelease":
                            self.assertEqual(d["metadata"]["name"], "%s-%s" % (tid, tier))
                    # and the API reads it back as the same string
                    g = self.assertJson(srv.get("/api/v1/tenants/" + tid), 200)
                    self.assertEqual(g["id"], tid)


MARKER = "zz-marker-zz"


def placeholder_paths(node, path=()):
    """Paths where the value is exactly the marker id."""
    out = []
    if node == MARKER:
        return [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += placeholder_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += placeholder_paths(v, path + (i,))
    return out


def get_path(docs, path):
    node = docs
    for p in path:
        node = node[p]
    return node


if __name__ == "__main__":
    unittest.main()

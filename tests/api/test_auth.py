"""Bearer tokens: every key type (HS256 secret, RS256 PEM, JWKS with EC and
RSA keys chosen by kid), every way a token can be wrong, scopes per write
route, and `landlord token` on the embedded default.  A refused request
leaves the registry and the repository as they were and adds exactly one
audit record (the refusal)."""

import base64
import json
import os
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import (  # noqa: E402
    LandlordTestCase,
    Server,
    b64url,
    jwt_signing_input,
    make_temp_dir,
    mint_hs256,
    onboard,
    run_landlord,
)
from jwtkeys import KeyPair, decode_claims, write_jwks  # noqa: E402

ISS = "https://idp.example.test/"
AUD = "landlord"


def claims(sub="caller", scope="admin", **kw):
    now = int(time.time())
    c = {"sub": sub, "scope": scope, "iat": now, "exp": now + 600, "iss": ISS, "aud": AUD}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


class Tokens(LandlordTestCase):
    @classmethod
    def setUpClass(cls):
        d = make_temp_dir()
        cls.pem = KeyPair.rsa(d, "pem-rsa")
        cls.ec = KeyPair.ec(d, "jwks-ec")
        cls.rsa2 = KeyPair.rsa(d, "jwks-rsa")
        cls.stranger = KeyPair.rsa(d, "stranger")
        jwks = write_jwks(os.path.join(d, "jwks.json"), [
            cls.ec.jwk("ec-1"), cls.rsa2.jwk("rsa-2", alg="RS256"),
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},  # skipped: not RSA or EC
            dict(cls.ec.jwk("enc-1"), use="enc"),           # skipped: not for signatures
        ])
        cls.secret = os.urandom(32).hex().encode()
        cls.s = cls.start_shared(
            args=["--jwt-public-key-file", cls.pem.public_pem, "--jwt-jwks-file", jwks,
                  "--jwt-issuer", ISS, "--jwt-audience", AUD],
            jwt_secret=cls.secret, claims={"iss": ISS, "aud": AUD})

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    def state(self):
        return self.s.snapshot(), self.s.head(), len(self.s.audit())

    def assertRefused(self, before, resp, status, what):
        snap, head, n = before
        self.assertProblem(resp, status, msg=what)
        self.assertEqual(self.s.snapshot(), snap, "%s changed the registry" % what)
        self.assertEqual(self.s.head(), head, "%s changed the repository" % what)
        audit = self.s.audit()
        self.assertEqual(len(audit), n + 1, "%s: one audit record, the refusal" % what)
        self.assertEqual((audit[-1]["status"], audit[-1]["request_id"]),
                         (status, resp.header("X-Request-Id")), what)

    def test_every_key_type_verifies(self):
        ok = {
            "HS256 secret": mint_hs256(self.secret, claims()),
            "RS256 PEM key": self.pem.sign({"alg": "RS256", "typ": "JWT"}, claims()),
            "ES256 JWKS key by kid": self.ec.sign({"alg": "ES256", "kid": "ec-1"}, claims()),
            "RS256 JWKS key by kid": self.rsa2.sign({"alg": "RS256", "kid": "rsa-2"}, claims()),
            "aud as a list": mint_hs256(self.secret, claims(aud=["other", AUD])),
            "exp just past, within the leeway": mint_hs256(self.secret, claims(exp=int(time.time()) - 10)),
            "nbf just ahead, within the leeway": mint_hs256(self.secret, claims(nbf=int(time.time()) + 10)),
        }
        for name, tok in ok.items():
            with self.subTest(name):
                r = self.s.get("/api/v1/tenants", token=tok)
                self.assertJson(r, 200, name)

    def test_bad_tokens_are_401_and_change_nothing(self):
        now = int(time.time())
        good = claims()
        dup = b'{"sub":"caller","scope":"tenants:read","scope":"admin","exp":%d,"iss":"%s","aud":"%s"}' % (
            now + 600, ISS.encode(), AUD.encode())
        si = jwt_signing_input({"alg": "HS256"}, dup)
        import hashlib
        import hmac
        dup_tok = si + "." + b64url(hmac.new(self.secret, si.encode(), hashlib.sha256).digest())
        bad = {
            "alg none": jwt_signing_input({"alg": "none", "typ": "JWT"}, good) + ".",
            "alg none with a signature": jwt_signing_input({"alg": "none"}, good) + ".c2ln",
            "no alg": mint_hs256(self.secret, good, header={"typ": "JWT"}),
            "wrong secret": mint_hs256(os.urandom(32), good),
            "RS256 by a key not configured": self.stranger.sign({"alg": "RS256"}, good),
            "HS256 keyed with the RSA public key's PEM": mint_hs256(self.pem.public_text(), good),
            "HS256 keyed with a JWKS key's PEM, by kid": mint_hs256(
                self.rsa2.public_text(), good, header={"alg": "HS256", "kid": "rsa-2"}),
            "ES256 by an unknown kid": self.ec.sign({"alg": "ES256", "kid": "nope"}, good),
            "ES256 signed by the RSA key's kid": self.ec.sign({"alg": "ES256", "kid": "rsa-2"}, good),
            "expired": mint_hs256(self.secret, claims(exp=now - 120)),
            "nbf in the future": mint_hs256(self.secret, claims(nbf=now + 600)),
            "no exp": mint_hs256(self.secret, claims(exp=None)),
            "exp not a number": mint_hs256(self.secret, claims(exp="tomorrow")),
            "wrong aud": mint_hs256(self.secret, claims(aud="someone-else")),
            "no aud": mint_hs256(self.secret, claims(aud=None)),
            "wrong iss": mint_hs256(self.secret, claims(iss="https://evil.test/")),
            "no sub": mint_hs256(self.secret, claims(sub=None)),
            "sub with a control character": mint_hs256(self.secret, claims(sub="a\nb")),
            "scope not a string": mint_hs256(self.secret, claims(scope=["admin"])),
            "duplicate claim": dup_tok,
            "truncated": mint_hs256(self.secret, good)[:-12],
            "garbage": "not-a-token",
            "two segments": "eyJhbGciOiJIUzI1NiJ9.e30",
            "not base64": "eyJhbGciOiJIUzI1NiJ9.@@@.abc",
            "very long": "eyJhbGciOiJIUzI1NiJ9." + "A" * 9000 + ".abc",
        }
        for name, tok in bad.items():
            with self.subTest(name):
                before = self.state()
                r = onboard(self.s, "victim", "basic") if False else self.s.post_json(
                    "/api/v1/tenants", {"id": "victim", "tier": "basic"}, token=tok)
                self.assertRefused(before, r, 401, name)
                self.assertEqual(r.json["type"], "urn:landlord:problem:unauthorized")
                www = r.header("WWW-Authenticate") or ""
                self.assertTrue(www.startswith('Bearer realm="landlord"'), www)
                self.assertIn('error="invalid_token"', www)
                self.assertNotIn(tok.encode()[-40:], r.body, "the token is not echoed")
                self.assertIsNone(self.s.audit()[-1]["actor"])
        with self.subTest("no token"):
            before = self.state()
            r = self.s.post_json("/api/v1/tenants", {"id": "victim", "tier": "basic"}, token=None)
            self.assertRefused(before, r, 401, "no token")
            self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="landlord"')
        with self.subTest("not a bearer token"):
            before = self.state()
            r = self.s.post_json("/api/v1/tenants", {"id": "victim", "tier": "basic"},
                                 headers={"Authorization": "Basic YTpi"})
            self.assertRefused(before, r, 401, "basic auth")

    def test_times_out_of_range_are_401_and_the_server_lives(self):
        """A signed token whose exp is INT64_MAX once made landlord add the
        leeway with signed overflow (the sanitizer build's server died on
        UBSan's halt_on_error).  exp and nbf are times from 1970 to the end
        of year 9999: beyond, the token is refused like any bad token, the
        server keeps serving, and nothing changes."""
        cases = {
            "exp INT64_MAX": claims(exp=2**63 - 1),
            "exp INT64_MAX, nbf INT64_MIN": claims(exp=2**63 - 1, nbf=-2**63),
            "nbf INT64_MAX": claims(nbf=2**63 - 1),
            "exp 1e300": claims(exp=1e300),
            "exp -1e300": claims(exp=-1e300),
            "exp in year 10000": claims(exp=253402300800),
            "exp negative": claims(exp=-1),
        }
        for name, c in cases.items():
            with self.subTest(name):
                tok = mint_hs256(self.secret, c)
                before = self.state()
                r = self.s.post_json("/api/v1/tenants", {"id": "victim", "tier": "basic"}, token=tok)
                self.assertRefused(before, r, 401, name)
                self.assertEqual(r.json["type"], "urn:landlord:problem:unauthorized")
                self.assertIn("claim is out of range", r.json["detail"])
                self.assertTrue(self.s.running, "the server died on %s" % name)
                self.assertEqual(self.s.get("/healthz", token=None).status, 200)
                self.assertJson(self.s.get("/api/v1/tenants"), 200, "the admin token after " + name)
        with self.subTest("the last second of year 9999"):
            tok = mint_hs256(self.secret, claims(exp=253402300799, scope="tenants:read"))
            for _ in range(2):  # verified, then from the cache
                self.assertJson(self.s.get("/api/v1/tenants", token=tok), 200)

    def test_public_routes_need_no_token(self):
        for path in ("/healthz", "/readyz", "/openapi.yaml", "/", "/metrics"):
            with self.subTest(path):
                self.assertEqual(self.s.get(path, token=None).status, 200)


class Scopes(LandlordTestCase):
    """Each write route with a token that has every scope but the one it
    needs: 403 naming it, and nothing changes."""

    @classmethod
    def setUpClass(cls):
        cls.s = cls.start_shared(webhook_allow="127.0.0.0/8")  # the hook below is on loopback
        assert onboard(cls.s, "present", "basic").status == 201
        hook = cls.s.post_json("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"})
        assert hook.status == 201, hook
        cls.hook = hook.json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly()

    ALL = ["tenants:read", "tenants:write", "tiers:write", "releases:write", "rollouts:write",
           "webhooks:write"]

    def test_each_route_needs_its_scope(self):
        s = self.s
        tmpl = s.get("/api/v1/tiers/basic").json["template"]
        routes = [
            ("POST", "/api/v1/tenants", {"id": "newcomer", "tier": "basic"}, "tenants:write"),
            ("PATCH", "/api/v1/tenants/present", {"release": "1.2"}, "tenants:write"),
            ("DELETE", "/api/v1/tenants/present", None, "tenants:write"),
            ("PUT", "/api/v1/tiers/gold", {"template": tmpl}, "tiers:write"),
            ("DELETE", "/api/v1/tiers/basic", None, "tiers:write"),
            ("POST", "/api/v1/releases", b"\x1f\x8b", "releases:write"),
            ("DELETE", "/api/v1/releases/1.0.0", None, "releases:write"),
            ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, "webhooks:write"),
            ("DELETE", "/api/v1/webhooks/%d" % self.hook, None, "webhooks:write"),
            ("GET", "/api/v1/webhooks", None, "webhooks:write"),
            ("GET", "/api/v1/audit", None, "admin"),
            ("GET", "/api/v1/tenants", None, "tenants:read"),
        ]
        for method, path, body, scope in routes:
            with self.subTest(method=method, path=path):
                others = [x for x in self.ALL if x != scope and not (scope == "tenants:read" and x == "tenants:write")]
                tok = s.token("narrow", " ".join(others))
                before = (s.snapshot(), s.head(), len(s.audit()))
                if isinstance(body, bytes):
                    r = s.request(method, path, body=body, headers={"Content-Type": "application/gzip"}, token=tok)
                else:
                    r = s.request(method, path, json_body=body, token=tok)
                p = self.assertProblem(r, 403, "forbidden")
                self.assertEqual(p["scope"], scope)
                self.assertIn(scope, p["detail"])
                self.assertIn('error="insufficient_scope"', r.header("WWW-Authenticate"))
                self.assertEqual(s.snapshot(), before[0])
                self.assertEqual(s.head(), before[1])
                audit = s.audit()
                if method != "GET":
                    self.assertEqual(len(audit), before[2] + 1)
                    self.assertEqual((audit[-1]["actor"], audit[-1]["status"], audit[-1]["problem"]),
                                     ("narrow", 403, "forbidden"))
                else:
                    self.assertEqual(len(audit), before[2], "reads are not audited")

    def test_signup_portal(self):
        """tenants:write onboards and reads, and nothing else."""
        s = self.s
        portal = s.token("signup-portal", "tenants:write")
        r = s.post_json("/api/v1/tenants", {"id": "signed-up", "tier": "premium"}, token=portal)
        self.assertJson(r, 201)
        self.assertJson(s.get("/api/v1/tenants/signed-up", token=portal), 200)
        self.assertJson(s.get("/api/v1/tiers", token=portal), 200)
        tmpl = s.get("/api/v1/tiers/basic").json["template"]
        for method, path, body in (("PUT", "/api/v1/tiers/gold", {"template": tmpl}),
                                   ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/x"}),
                                   ("DELETE", "/api/v1/releases/1.0.0", None),
                                   ("GET", "/api/v1/audit", None)):
            self.assertProblem(s.request(method, path, json_body=body, token=portal), 403, "forbidden")
        r = s.request("POST", "/api/v1/releases", body=b"x", headers={"Content-Type": "application/gzip"},
                      token=portal)
        self.assertProblem(r, 403, "forbidden")
        reader = s.token("dashboard", "tenants:read")
        self.assertJson(s.get("/api/v1/tenants", token=reader), 200)
        self.assertProblem(s.post_json("/api/v1/tenants", {"id": "nope", "tier": "basic"}, token=reader),
                           403, "forbidden")


class LocalTokens(LandlordTestCase):
    """The embedded default: the server makes <data>/jwt-secret (0600) on
    first start, `landlord token` mints from it, the README's flow works."""

    def test_embedded_secret_and_token_command(self):
        s = self.start_server(jwt_secret=None)
        path = os.path.join(s.data, "jwt-secret")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            secret = f.read().strip()
        self.assertEqual(len(secret), 64)
        self.assertIn("jwt-secret", s.stderr_text())
        self.assertNotIn(secret.decode(), s.stderr_text() + s.stdout_text())

        p = run_landlord(["token", "--data", s.data, "--sub", "me", "--scope", "admin"])
        self.assertEqual(p.returncode, 0, p.stderr)
        tok = p.stdout.strip()
        self.assertEqual(p.stdout.count("\n"), 1, "only the token on stdout")
        c = decode_claims(tok)
        self.assertEqual((c["sub"], c["scope"], c["exp"] - c["iat"]), ("me", "admin", 3600))
        r = s.post_json("/api/v1/tenants", {"id": "acme", "tier": "premium", "release": "0.0"}, token=tok)
        self.assertJson(r, 201)
        sha, subject, name, email = s.log()[0]
        self.assertEqual((name, email), ("me", "me@localhost"))
        self.assertEqual(s.git("log", "-1", "--format=%cn", sha).strip(), "landlord")

        p = run_landlord(["token", "--data", s.data, "--sub", "portal", "--scope", "tenants:write",
                          "--scope", "tenants:read", "--ttl", "90s", "--name", "Signup Portal",
                          "--email", "portal@example.test"])
        self.assertEqual(p.returncode, 0, p.stderr)
        c = decode_claims(p.stdout.strip())
        self.assertEqual((c["scope"], c["exp"] - c["iat"], c["name"], c["email"]),
                         ("tenants:write tenants:read", 90, "Signup Portal", "portal@example.test"))
        r = s.post_json("/api/v1/tenants", {"id": "globex", "tier": "basic"}, token=p.stdout.strip())
        self.assertJson(r, 201)
        self.assertEqual(s.log()[0][2:], ("Signup Portal", "portal@example.test"))
        self.assertProblem(s.request("PUT", "/api/v1/tiers/x", json_body={"template": "a"},
                                     token=p.stdout.strip()), 403, "forbidden")

        p = run_landlord(["token", "--data", s.data, "--sub", "me", "--scope", "tenant:write"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown scope", p.stderr)
        self.assertEqual(p.stdout, "")
        p = run_landlord(["token", "--data", s.data, "--scope", "admin"])
        self.assertEqual(p.returncode, 2)
        p = run_landlord(["token", "--data", s.data, "--sub", "me", "--ttl", "forever"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(s.stop(), 0)

    def test_metrics_behind_a_token_when_asked(self):
        s = self.start_server(args=["--metrics-auth", "1"])
        self.assertProblem(s.get("/metrics", token=None), 401, "unauthorized")
        r = s.get("/metrics", token=s.token("prometheus", None))  # any valid token, no scope needed
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"landlord_operations_queued", r.body)
        self.assertEqual(s.get("/healthz", token=None).status, 200)
        self.assertEqual(s.stop(), 0)

    def test_configured_secret_is_checked(self):
        d = make_temp_dir()
        short = os.path.join(d, "short")
        with open(short, "w") as f:
            f.write("s3cret\n")
        p = run_landlord(["serve", "--data", os.path.join(d, "var"), "--listen", "127.0.0.1:0",
                          "--jwt-secret-file", short])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at least 32", p.stderr)
        self.assertNotIn("s3cret", p.stderr)
        p = run_landlord(["serve", "--data", os.path.join(d, "var"), "--listen", "127.0.0.1:0",
                          "--jwt-jwks-file", short])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("JWKS", p.stderr)


class KeptTokens(LandlordTestCase):
    """A token that verified is kept (jwt-cache-size) and served again
    without its signature check; that must never let it outlive its exp or
    let another token pass for it."""

    def test_a_kept_token_still_expires(self):
        s = self.start_server(args=["--jwt-leeway", "0"], jwt_secret=os.urandom(32).hex().encode())
        self.assertJson(onboard(s, "kept", "basic"), 201)
        tok = s.token("short-lived", "tenants:read", ttl=2)
        exp = decode_claims(tok)["exp"]
        for _ in range(3):  # the first verifies, the others come from the cache
            self.assertJson(s.get("/api/v1/tenants/kept", token=tok), 200)
        forged = tok[:-2] + ("A" if tok[-2] != "A" else "B") + tok[-1]
        r = s.get("/api/v1/tenants/kept", token=forged)
        self.assertProblem(r, 401, "unauthorized")
        self.assertIn("signature", r.json["detail"])
        while time.time() < exp + 1.05:  # the server compares whole seconds
            time.sleep(0.1)
        for _ in range(2):
            r = s.get("/api/v1/tenants/kept", token=tok)
            self.assertProblem(r, 401, "unauthorized")
            self.assertEqual(r.json["detail"], "the token has expired")
        self.assertJson(s.get("/api/v1/tenants/kept"), 200)  # the admin token, still valid
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()

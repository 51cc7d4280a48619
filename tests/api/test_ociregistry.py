"""Self-test of tests/support/ociregistry.py against the real registry:
Debian's docker-registry (CNCF Distribution 2.8) with htpasswd auth, token
auth (the harness's token server, RS256+kid and ES256+x5c), no auth, and
HTTPS with the test CA.  Checks what landlord's pushes will be compared
against: the challenge headers, the HTTP sequence of a Helm-style chart
push, the stored bytes (over http.client and skopeo), deletion, and the
token flow including refused pushes.

Needs no landlord binary.
"""

import base64
import hashlib
import http.client
import io
import os
import re
import ssl
import stat
import subprocess
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import ReportingTestCase  # noqa: E402
from ociregistry import (  # noqa: E402
    HELM_CHART,
    HELM_CONFIG,
    OCI_MANIFEST,
    Registry,
    RegistryError,
    chart_config,
    chart_manifest,
    decode_jwt,
    libtrust_key_id,
    make_chart_tgz,
    parse_challenge,
    sha256_digest,
)

USERS = {"landlord": "s3cret", "reader": "r3ad-only"}
GRANTS = {"landlord": ["pull", "push", "delete"], "reader": ["pull"]}
KID_RE = re.compile(r"^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$")
CHART = "helm-tenant-chart"


def chart(version="1.4.2"):
    tgz = make_chart_tgz(CHART, version)
    cfg = chart_config(CHART, version)
    ann = {
        "org.opencontainers.image.title": CHART,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.created": "2026-08-20T10:00:00Z",
    }
    return tgz, cfg, ann


class RegistryCase(ReportingTestCase):
    """Prints the registry's logs (and the token server's) when a test fails."""

    registries = ()

    def failure_report(self):
        return super().failure_report() + "".join(
            "\n=== %r for %s ===\n%s\n" % (reg, self.id(), reg.diagnostics())
            for reg in list(type(self).registries) + list(getattr(self, "_own", [])))

    @classmethod
    def tearDownClass(cls):
        for reg in cls.registries:
            reg.stop()
            reg.cleanup()

    def own(self, reg):
        if not hasattr(self, "_own"):
            self._own = []
        self._own.append(reg)
        self.addCleanup(reg.cleanup)
        return reg.start()

    def assertChartStored(self, reg, repo, tag, tgz, cfg, digest, **creds):
        status, headers, body = reg.manifest(repo, tag, **creds)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), OCI_MANIFEST)
        self.assertEqual(headers.get("Docker-Content-Digest"), digest)
        self.assertEqual(digest, "sha256:" + hashlib.sha256(body).hexdigest())
        self.assertEqual(body, reg.last_push["manifest"])
        m = __import__("json").loads(body)
        self.assertEqual(m["schemaVersion"], 2)
        self.assertEqual(m["config"], {"mediaType": HELM_CONFIG, "digest": sha256_digest(cfg), "size": len(cfg)})
        self.assertEqual(m["layers"], [{"mediaType": HELM_CHART, "digest": sha256_digest(tgz), "size": len(tgz)}])
        st, h, blob = reg.blob(repo, sha256_digest(tgz), **creds)
        self.assertEqual((st, blob), (200, tgz))
        self.assertEqual(h.get("Docker-Content-Digest"), sha256_digest(tgz))
        st, _, blob = reg.blob(repo, sha256_digest(cfg), **creds)
        self.assertEqual((st, blob), (200, cfg))
        self.assertIn(tag, reg.tags(repo, **creds))
        return body


class HtpasswdRegistryTest(RegistryCase):
    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="htpasswd", users=USERS).start()
        cls.registries = (cls.reg,)

    def test_address(self):
        self.assertEqual(self.reg.host, "127.0.0.1:%d" % self.reg.port)
        self.assertEqual(self.reg.url, "http://127.0.0.1:%d" % self.reg.port)
        self.assertIsNone(self.reg.ca_file)
        self.assertTrue(self.reg.running)

    def test_probe_without_credentials_is_basic_challenge(self):
        r = self.reg.probe()
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="landlord-test-registry"')
        self.assertEqual(r.header("Docker-Distribution-Api-Version"), "registry/2.0")
        self.assertEqual(r.code, "UNAUTHORIZED")
        self.assertEqual(self.reg.probe(anonymous=False).status, 200)

    def test_push_chart_roundtrip(self):
        repo = "tenants/acme/" + CHART
        tgz, cfg, ann = chart("1.4.2")
        # The generated chart is a real Helm .tgz: gzip, CHART/Chart.yaml first.
        with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
            names = tar.getnames()
            self.assertIn("%s/Chart.yaml" % CHART, names)
            self.assertIn(b"version: 1.4.2", tar.extractfile("%s/Chart.yaml" % CHART).read())
        self.assertEqual(make_chart_tgz(CHART, "1.4.2"), tgz, "deterministic")

        digest = self.reg.push_chart(repo, "1.4.2", tgz, cfg, ann)
        self.assertEqual(digest, sha256_digest(chart_manifest(cfg, tgz, ann)))
        body = self.assertChartStored(self.reg, repo, "1.4.2", tgz, cfg, digest)
        self.assertEqual(__import__("json").loads(body)["annotations"], ann)
        self.assertEqual(self.reg.manifest_digest(repo, "1.4.2"), digest)
        self.assertIn(repo, self.reg.catalog())

        # The exact sequence of protocols.md 1.2, blobs pushed with POST + PUT.
        steps = self.reg.last_push["steps"]
        b = "/v2/%s/blobs/" % repo
        self.assertEqual(steps[0], ("GET", "/v2/", 200))
        self.assertEqual(steps[1], ("HEAD", b + sha256_digest(cfg), 404))
        self.assertEqual(steps[2], ("POST", b + "uploads/", 202))
        self.assertEqual(steps[3][0::2], ("PUT", 201))
        self.assertTrue(steps[3][1].startswith(b + "uploads/"))
        self.assertEqual(steps[4], ("HEAD", b + sha256_digest(tgz), 404))
        self.assertEqual(steps[7], ("PUT", "/v2/%s/manifests/1.4.2" % repo, 201))
        self.assertEqual(len(steps), 8)
        self.assertEqual(self.reg.last_push["location"],
                         "%s/v2/%s/manifests/%s" % (self.reg.url, repo, digest))

        # skopeo (containers/image) reads the same bytes, by tag and by digest.
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, "1.4.2"), body)
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, digest), body)

        # A second tag of the same chart: the blobs exist, HEAD 200, no upload.
        self.assertEqual(self.reg.push_chart(repo, "1.4.2-again", tgz, cfg, ann), digest)
        self.assertEqual([s[0::2] for s in self.reg.last_push["steps"]],
                         [("GET", 200), ("HEAD", 200), ("HEAD", 200), ("PUT", 201)])
        # Distribution 2.8 (filesystem driver) does not list tags in strict
        # lexical order ("1.4.2-again" comes before "1.4.2"): compare as sets.
        self.assertCountEqual(self.reg.tags(repo), ["1.4.2", "1.4.2-again"])

    def test_upload_session_headers(self):
        r = self.reg.request("POST", "/v2/up/load/blobs/uploads/", body=b"")
        self.assertEqual(r.status, 202)
        loc = r.header("Location")
        self.assertTrue(loc.startswith(self.reg.url + "/v2/up/load/blobs/uploads/"), loc)
        self.assertIn("_state=", loc)
        self.assertTrue(r.header("Docker-Upload-UUID"))
        self.assertEqual(r.header("Range"), "0-0")
        self.assertEqual(self.reg.request("DELETE", loc).status, 204)
        self.assertIsNone(self.reg.tags("up/load"))

    def test_wrong_password_is_401(self):
        r = self.reg.probe(anonymous=False, password="wrong")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.code, "UNAUTHORIZED")
        self.assertEqual(self.reg.probe(anonymous=False, user="nobody", password="s3cret").status, 401)
        tgz, cfg, ann = chart("9.9.9")
        with self.assertRaises(RegistryError) as cm:
            self.reg.push_chart("wrong/pw", "9.9.9", tgz, cfg, ann, password="wrong")
        self.assertEqual(cm.exception.status, 401)
        with self.assertRaises(RegistryError) as cm:
            self.reg.skopeo_inspect_raw("wrong/pw", "9.9.9", password="wrong")
        self.assertIn("unauthorized", str(cm.exception))
        self.assertIsNone(self.reg.tags("wrong/pw"))
        self.assertNotIn("wrong/pw", self.reg.catalog())

    def test_delete_manifest(self):
        repo = "tenants/gone/" + CHART
        tgz, cfg, ann = chart("2.0.0")
        digest = self.reg.push_chart(repo, "2.0.0", tgz, cfg, ann)
        self.assertEqual(self.reg.tags(repo), ["2.0.0"])
        status, _, body = self.reg.delete_manifest(repo, digest)
        self.assertEqual(status, 202, body)
        status, _, body = self.reg.manifest(repo, "2.0.0")
        self.assertEqual(status, 404)
        self.assertIn(b"MANIFEST_UNKNOWN", body)
        self.assertIsNone(self.reg.manifest_digest(repo, digest))
        self.assertEqual(self.reg.tags(repo), [])

    def test_password_file(self):
        p = self.reg.write_password_file("s3cret")
        with open(p) as f:
            self.assertEqual(f.read(), "s3cret")
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600)
        with open(self.reg.htpasswd_path) as f:
            lines = f.read().splitlines()
        self.assertEqual([l.split(":")[0] for l in lines], ["landlord", "reader"])
        self.assertTrue(all(l.split(":", 1)[1].startswith("$2y$") for l in lines), "bcrypt")


class NoAuthRegistryTest(RegistryCase):
    """auth none, delete disabled, restart keeping the storage."""

    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="none", delete=False).start()
        cls.registries = (cls.reg,)

    def test_probe_is_200_and_delete_is_unsupported(self):
        r = self.reg.probe()
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("WWW-Authenticate"))
        repo = "plain/" + CHART
        tgz, cfg, ann = chart("3.0.0")
        digest = self.reg.push_chart(repo, "3.0.0", tgz, cfg, ann)
        self.assertChartStored(self.reg, repo, "3.0.0", tgz, cfg, digest)
        status, _, body = self.reg.delete_manifest(repo, digest)
        self.assertEqual(status, 405)
        self.assertIn(b"UNSUPPORTED", body)
        self.assertEqual(self.reg.manifest(repo, "3.0.0")[0], 200)
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, "3.0.0"), self.reg.last_push["manifest"])

        port = self.reg.port
        self.reg.restart()
        self.assertEqual(self.reg.port, port)
        self.assertEqual(self.reg.manifest_digest(repo, "3.0.0"), digest)
        self.assertEqual(self.reg.logs().count("=== start on"), 2)


class RelativeUrlsTest(RegistryCase):
    def test_relative_locations(self):
        reg = self.own(Registry(auth="htpasswd", relative_urls=True))
        r = reg.request("POST", "/v2/rel/chart/blobs/uploads/", body=b"")
        self.assertEqual(r.status, 202)
        self.assertTrue(r.header("Location").startswith("/v2/rel/chart/blobs/uploads/"), r.header("Location"))
        self.assertIn("_state=", r.header("Location"))
        tgz, cfg, ann = chart("0.0.1")
        digest = reg.push_chart("rel/chart", "0.0.1", tgz, cfg, ann)
        self.assertEqual(reg.last_push["location"], "/v2/rel/chart/manifests/" + digest)
        self.assertChartStored(reg, "rel/chart", "0.0.1", tgz, cfg, digest)


class TokenRegistryTest(RegistryCase):
    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="token", users=USERS, grants=GRANTS).start()
        cls.registries = (cls.reg,)

    def test_challenges(self):
        r = self.reg.probe()
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"),
                         'Bearer realm="%s",service="landlord-test-registry"' % self.reg.token_url)
        self.assertEqual(self.reg.token_url, "http://127.0.0.1:%d/token" % self.reg._token.port)
        r = self.reg.request("HEAD", "/v2/some/repo/blobs/sha256:" + "0" * 64, anonymous=True)
        self.assertEqual(r.status, 401)
        self.assertEqual(parse_challenge(r.header("WWW-Authenticate")),
                         ("bearer", {"realm": self.reg.token_url, "service": "landlord-test-registry",
                                     "scope": "repository:some/repo:pull"}))
        r = self.reg.request("POST", "/v2/some/repo/blobs/uploads/", body=b"", anonymous=True)
        self.assertEqual(r.status, 401)
        # Distribution 2.8 builds this scope from a Go map: the order of the
        # actions varies between requests ("pull,push" or "push,pull").
        scope = parse_challenge(r.header("WWW-Authenticate"))[1]["scope"]
        self.assertIn(scope, ("repository:some/repo:pull,push", "repository:some/repo:push,pull"))
        self.assertIn(b'"Action":"push"', r.body)

    def test_push_as_landlord(self):
        repo = "tenants/acme/" + CHART
        tgz, cfg, ann = chart("1.4.2")
        self.reg.reset_token_requests()
        digest = self.reg.push_chart(repo, "1.4.2", tgz, cfg, ann)
        reqs = self.reg.token_requests
        self.assertGreaterEqual(self.reg.token_count, 1)
        self.assertTrue(all(q["user"] == "landlord" and q["status"] == 200 for q in reqs), reqs)
        push = [q for q in reqs if q["scopes"] == ["repository:%s:pull,push" % repo]]
        self.assertEqual(len(push), 1, reqs)  # one token serves the whole push
        self.assertEqual(push[0]["granted"], [{"type": "repository", "name": repo, "actions": ["pull", "push"]}])
        body = self.assertChartStored(self.reg, repo, "1.4.2", tgz, cfg, digest)

        before = self.reg.token_count
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, "1.4.2"), body)
        skopeo = self.reg.token_requests[before:]
        self.assertTrue(skopeo, "skopeo went through the token server")
        self.assertTrue(all(q["user"] == "landlord" and "skopeo" in (q["user_agent"] or "") for q in skopeo), skopeo)

        # reader may pull what landlord pushed.
        self.assertEqual(self.reg.manifest(repo, "1.4.2", user="reader")[0], 200)
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, digest, user="reader"), body)
        self.assertIn(repo, self.reg.catalog())

        status, _, _ = self.reg.delete_manifest(repo, digest, user="reader")
        self.assertEqual(status, 401)
        status, _, _ = self.reg.delete_manifest(repo, digest)
        self.assertEqual(status, 202)
        self.assertEqual(self.reg.manifest(repo, "1.4.2")[0], 404)

    def test_reader_gets_a_token_but_push_is_refused(self):
        repo = "tenants/ro/" + CHART
        tgz, cfg, ann = chart("1.0.0")
        self.reg.reset_token_requests()
        with self.assertRaises(RegistryError) as cm:
            self.reg.push_chart(repo, "1.0.0", tgz, cfg, ann, user="reader")
        self.assertIn(cm.exception.status, (401, 403))
        self.assertIn(cm.exception.code, ("UNAUTHORIZED", "DENIED"))
        reqs = [q for q in self.reg.token_requests if q["scopes"] == ["repository:%s:pull,push" % repo]]
        self.assertTrue(reqs)
        for q in reqs:  # the intersection of pull,push and what reader may do
            self.assertEqual((q["user"], q["status"]), ("reader", 200))
            self.assertEqual(q["granted"], [{"type": "repository", "name": repo, "actions": ["pull"]}])

        # The refusal names the missing scope.
        tok = self.reg.fetch_token(self.reg.token_url, self.reg.service, ["repository:%s:pull,push" % repo],
                                   "reader", USERS["reader"])
        r = self.reg._raw("POST", self.reg.url + "/v2/%s/blobs/uploads/" % repo, b"",
                          {"Authorization": "Bearer " + tok, "Content-Length": "0"}, 10)
        self.assertEqual(r.status, 401)
        self.assertIn('error="insufficient_scope"', r.header("WWW-Authenticate"))
        self.assertIsNone(self.reg.tags(repo))

    def test_token_server_credentials(self):
        reg = self.reg
        before = reg.token_count
        with self.assertRaises(RegistryError) as cm:
            reg.fetch_token(reg.token_url, reg.service, ["repository:x/y:pull"], "landlord", "wrong")
        self.assertEqual(cm.exception.status, 401)
        self.assertEqual(reg.token_requests[-1]["status"], 401)
        r = reg.request("GET", "/v2/x/y/manifests/1.0.0", password="wrong")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.token_error.status, 401)
        # Unknown service: 400.
        with self.assertRaises(RegistryError) as cm:
            reg.fetch_token(reg.token_url, "other-service", ["repository:x/y:pull"], "landlord", "s3cret")
        self.assertEqual(cm.exception.status, 400)
        # Anonymous: a token without any access; the registry refuses it.
        tok = reg.fetch_token(reg.token_url, reg.service, ["repository:x/y:pull"])
        self.assertEqual(decode_jwt(tok)[1]["access"], [])
        self.assertEqual(decode_jwt(tok)[1]["sub"], "")
        self.assertIsNone(reg.token_requests[-1]["user"])
        r = reg._raw("GET", reg.url + "/v2/x/y/tags/list", None, {"Authorization": "Bearer " + tok}, 10)
        self.assertEqual(r.status, 401)
        self.assertEqual(reg.token_count, before + 4, reg.token_requests[before:])

    def test_token_format(self):
        reg = self.reg
        # The token answer of the Docker token flow.
        r = reg._raw("GET", reg.token_url + "?service=landlord-test-registry&scope=repository:a/b:pull,push,delete"
                     "&scope=registry:catalog:*&scope=repository:127.0.0.1:5000/c:pull",
                     None, {"Authorization": "Basic " + base64.b64encode(b"reader:r3ad-only").decode()}, 10)
        self.assertEqual(r.status, 200)
        obj = r.json
        self.assertEqual(obj["token"], obj["access_token"])
        self.assertEqual(obj["expires_in"], 300)
        self.assertRegex(obj["issued_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        header, claims = decode_jwt(obj["token"])
        self.assertEqual(header, {"typ": "JWT", "alg": "RS256", "kid": reg.token_key_id})
        self.assertRegex(header["kid"], KID_RE)
        # The kid is the libtrust id of the key in the configured rootcertbundle,
        # computed here from the certificate file itself.
        with open(reg.config_path) as f:
            bundle = re.search(r'rootcertbundle: "([^"]+)"', f.read()).group(1)
        pub = subprocess.run(["openssl", "x509", "-in", bundle, "-noout", "-pubkey"], check=True,
                             stdout=subprocess.PIPE).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                             stdout=subprocess.PIPE).stdout
        self.assertEqual(header["kid"], libtrust_key_id(der))
        self.assertEqual(claims["iss"], "landlord-test-token-issuer")
        self.assertEqual(claims["aud"], "landlord-test-registry")
        self.assertEqual(claims["sub"], "reader")
        self.assertEqual(claims["exp"] - claims["iat"], 300)
        self.assertLessEqual(claims["nbf"], claims["iat"])
        self.assertLessEqual(abs(claims["iat"] - time.time()), 5)
        self.assertRegex(claims["jti"], r"^[0-9a-f]{32}$")
        self.assertEqual(claims["access"], [
            {"type": "repository", "name": "a/b", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "repository", "name": "127.0.0.1:5000/c", "actions": ["pull"]},
        ])

    def test_registry_verifies_tokens(self):
        reg = self.reg
        repo = "verify/" + CHART
        tgz, cfg, ann = chart("0.1.0")
        reg.push_chart(repo, "0.1.0", tgz, cfg, ann)
        access = [{"type": "repository", "name": repo, "actions": ["pull"]}]

        def tags_with(tok):
            return reg._raw("GET", reg.url + "/v2/%s/tags/list" % repo, None, {"Authorization": "Bearer " + tok}, 10)

        r = tags_with(reg.issue_token(access))
        self.assertEqual((r.status, r.json), (200, {"name": repo, "tags": ["0.1.0"]}))
        bad_kid = "AAAA" + reg.token_key_id[4:] if not reg.token_key_id.startswith("AAAA") else "BBBB" + reg.token_key_id[4:]
        for name, tok in [
            ("wrong kid", reg.issue_token(access, kid=bad_kid)),
            ("no key header", reg.issue_token(access, kid=None)),
            ("wrong audience", reg.issue_token(access, aud="other")),
            ("wrong issuer", reg.issue_token(access, iss="other")),
            ("expired beyond the 60 s leeway", reg.issue_token(access, expires_in=-120)),
            ("no access", reg.issue_token([])),
        ]:
            r = tags_with(tok)
            self.assertEqual(r.status, 401, name)
        self.assertIn('token signed by untrusted key with ID: \\"%s\\"' % bad_kid, reg.logs())


class TokenEs256X5cTest(RegistryCase):
    """ES256 signatures (raw r||s) and an x5c header instead of kid."""

    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="token", users=USERS, grants={"landlord": {"tenants/*": ["pull", "push"]}},
                           token_alg="ES256", token_key_header="x5c").start()
        cls.registries = (cls.reg,)

    def test_push_and_read(self):
        repo = "tenants/es/" + CHART
        tgz, cfg, ann = chart("1.0.0")
        digest = self.reg.push_chart(repo, "1.0.0", tgz, cfg, ann)
        body = self.assertChartStored(self.reg, repo, "1.0.0", tgz, cfg, digest)
        self.assertEqual(self.reg.skopeo_inspect_raw(repo, "1.0.0"), body)
        tok = self.reg.fetch_token(self.reg.token_url, self.reg.service, ["repository:%s:pull" % repo],
                                   "landlord", "s3cret")
        header, _ = decode_jwt(tok)
        self.assertEqual(header["alg"], "ES256")
        self.assertNotIn("kid", header)
        self.assertEqual(len(header["x5c"]), 1)
        self.assertEqual(len(base64.urlsafe_b64decode(tok.split(".")[2] + "==")), 64)
        # The grant pattern covers tenants/* only.
        with self.assertRaises(RegistryError) as cm:
            self.reg.push_chart("elsewhere/" + CHART, "1.0.0", tgz, cfg, ann)
        self.assertEqual(cm.exception.status, 401)


class TlsRegistryTest(RegistryCase):
    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="htpasswd", tls=True, users=USERS).start()
        cls.tok = Registry(auth="token", tls=True, users=USERS, grants=GRANTS).start()
        cls.registries = (cls.reg, cls.tok)

    def test_address_and_ca(self):
        reg = self.reg
        self.assertEqual(reg.host, "localhost:%d" % reg.port)
        self.assertEqual(reg.url, "https://localhost:%d" % reg.port)
        self.assertTrue(os.path.exists(reg.ca_file))
        ctx = ssl.create_default_context(cafile=reg.ca_file)
        conn = http.client.HTTPSConnection("localhost", reg.port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/v2/")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 401)
            self.assertEqual(r.getheader("WWW-Authenticate"), 'Basic realm="landlord-test-registry"')
        finally:
            conn.close()
        conn = http.client.HTTPSConnection("localhost", reg.port, context=ssl.create_default_context(), timeout=10)
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                conn.request("GET", "/v2/")
        finally:
            conn.close()

    def test_push_over_https(self):
        reg = self.reg
        repo = "tls/" + CHART
        tgz, cfg, ann = chart("1.2.3")
        digest = reg.push_chart(repo, "1.2.3", tgz, cfg, ann)
        body = self.assertChartStored(reg, repo, "1.2.3", tgz, cfg, digest)
        self.assertEqual(reg.skopeo_inspect_raw(repo, "1.2.3"), body)  # --cert-dir
        self.assertEqual(reg.skopeo_inspect_raw(repo, "1.2.3", tls_verify=False), body)
        with self.assertRaises(RegistryError) as cm:
            reg.skopeo_inspect_raw(repo, "1.2.3", tls_verify=True)
        self.assertRegex(str(cm.exception), r"x509|certificate")

    def test_token_flow_over_https(self):
        reg = self.tok
        self.assertEqual(reg.token_url, "https://localhost:%d/token" % reg._token.port)
        self.assertEqual(parse_challenge(reg.probe().header("WWW-Authenticate"))[1]["realm"], reg.token_url)
        repo = "tls/token/" + CHART
        tgz, cfg, ann = chart("1.2.4")
        reg.reset_token_requests()
        digest = reg.push_chart(repo, "1.2.4", tgz, cfg, ann)
        body = self.assertChartStored(reg, repo, "1.2.4", tgz, cfg, digest)
        self.assertEqual(reg.skopeo_inspect_raw(repo, "1.2.4"), body)
        self.assertTrue(any("skopeo" in (q["user_agent"] or "") for q in reg.token_requests))
        with self.assertRaises(RegistryError):
            reg.push_chart(repo, "1.2.5", tgz, cfg, ann, user="reader")
        self.assertEqual(reg.tags(repo), ["1.2.4"])


if __name__ == "__main__":
    unittest.main()

"""Releases pushed to a real OCI registry (issue 5: upload to a registry,
registry auth, bad input): Debian's docker-registry (CNCF Distribution)
started by tests/support/ociregistry.py with htpasswd (bcrypt) or token
auth, plain HTTP on 127.0.0.1 or HTTPS with the test CA.

Covers: a push read back from the registry (manifest bytes, digest and
media type; config and chart blobs; the tag with '+' as '_'), checked with
skopeo too; the same chart again (200, not one request to the registry);
another chart under the same version (409, registry unchanged); a version
someone else pushed (another chart: 409; the same chart: adopted); every
refused archive and an oversize one push nothing (catalog and tags
unchanged, no request); DELETE removes the manifest, and a registry that
refuses deletes keeps the release; token auth (scopes asked, token cached
across uploads, a delete scope for DELETE, a user without push rights); a
wrong password, a registry that is down, a 5xx, a TLS registry with and
without its CA: each a 502 naming the registry and the status, no release
recorded, no credential in the answer or the logs; oci-url and
oci-plain-http checked at start; /readyz's oci check.
"""

import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import LandlordTestCase, archive, make_temp_dir, onboard, run_landlord  # noqa: E402
from ociregistry import (HELM_CHART, HELM_CONFIG, OCI_MANIFEST, Registry, chart_config,  # noqa: E402
                         landlord_requests, make_chart_tgz)
from registryproxy import RegistryProxy, closed_port, registry_error  # noqa: E402

NAME = "helm-tenant-chart"
REPO = "charts/" + NAME
GZIP = {"Content-Type": "application/gzip"}
PASSWORD = "s3cret-for-the-registry"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chart_yaml(version, name=NAME, api="v2"):
    return ("apiVersion: %s\nname: %s\nversion: %s\n" % (api, name, version)).encode()


def oci_args(reg, base="charts", user="landlord", password_file=None, plain=True, ca=None):
    args = ["--oci-url", "oci://%s/%s" % (reg.host, base)]
    if plain:
        args += ["--oci-plain-http", "1"]
    if user:
        args += ["--oci-username", user]
    if password_file:
        args += ["--oci-password-file", password_file]
    if ca:
        args += ["--oci-ca-file", ca]
    return args


class RegistryCase(LandlordTestCase):
    def upload(self, server, body, headers=GZIP):
        return server.request("POST", "/api/v1/releases", body=body, headers=headers)

    def assertUpstreamProblem(self, resp, *fragments):
        p = self.assertProblem(resp, 502, "upstream-failure")
        for f in fragments:
            self.assertIn(f, p["detail"])
        return p

    def assertNoSecret(self, server, *secrets):
        logs = server.stdout_text() + server.stderr_text()
        for s in secrets:
            self.assertNotIn(s, logs)


class HtpasswdRegistry(RegistryCase):
    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="htpasswd", users={"landlord": PASSWORD}).start()
        cls.pw = cls.reg.write_password_file(PASSWORD + "\n")
        cls.s = cls.start_shared(args=oci_args(cls.reg, password_file=cls.pw) +
                                 ["--release-max-size", "65536", "--log-level", "debug"])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_shared_cleanly()
        finally:
            cls.reg.stop()
            cls.reg.cleanup()

    def tearDown(self):
        self.assertNoSecret(self.s, PASSWORD)

    def state(self):
        """What the registry holds: repositories and the chart's tags."""
        return self.reg.catalog(), self.reg.tags(REPO)

    def test_push_reads_back_as_helm_push_wrote_it(self):
        tgz = make_chart_tgz(NAME, "1.4.2+build.7", app_version="9.9.9")
        r = self.upload(self.s, tgz)
        rel = self.assertJson(r, 201)
        tag = "1.4.2_build.7"
        self.assertEqual((rel["version"], rel["tag"]), ("1.4.2+build.7", tag))
        self.assertEqual(rel["location"], "%s/%s:%s" % (self.reg.host, REPO, tag))
        self.assertIn(tag, self.reg.tags(REPO))

        status, headers, body = self.reg.manifest(REPO, tag)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], OCI_MANIFEST)
        self.assertEqual(headers["Docker-Content-Digest"], rel["digest"])
        self.assertEqual(sha256(body), rel["digest"])
        m = json.loads(body)
        self.assertEqual((m["schemaVersion"], m["mediaType"]), (2, OCI_MANIFEST))
        self.assertEqual(m["config"]["mediaType"], HELM_CONFIG)
        self.assertEqual(m["config"]["digest"], rel["config_digest"])
        self.assertEqual([(l["mediaType"], l["digest"], l["size"]) for l in m["layers"]],
                         [(HELM_CHART, sha256(tgz), len(tgz))])
        self.assertEqual(rel["chart_digest"], sha256(tgz))
        ann = m["annotations"]
        self.assertEqual((ann["org.opencontainers.image.title"], ann["org.opencontainers.image.version"]),
                         (NAME, "1.4.2+build.7"))
        self.assertIn("org.opencontainers.image.created", ann)

        status, _, config = self.reg.blob(REPO, m["config"]["digest"])
        self.assertEqual((status, sha256(config), len(config)), (200, m["config"]["digest"], m["config"]["size"]))
        self.assertEqual(config, chart_config(NAME, "1.4.2+build.7", app_version="9.9.9"),
                         "the config blob is Chart.yaml as Helm marshals it")
        status, _, layer = self.reg.blob(REPO, sha256(tgz))
        self.assertEqual((status, layer), (200, tgz), "the chart bytes land unchanged")

        # An independent client reads the same manifest bytes.
        self.assertEqual(self.reg.skopeo_inspect_raw(REPO, tag), body)
        self.assertEqual(self.reg.skopeo_inspect_raw(REPO, rel["digest"]), body)
        row = [x for x in self.s.rows("releases") if x["version"] == "1.4.2+build.7"][0]
        self.assertEqual((row["location"], row["manifest_digest"]), (rel["location"], rel["digest"]))

    def test_same_chart_again_makes_no_request(self):
        tgz = make_chart_tgz(NAME, "1.5.0")
        rel = self.assertJson(self.upload(self.s, tgz), 201)
        before = landlord_requests(self.reg)
        self.assertTrue(before, "landlord's requests are in the registry's access log")
        again = self.assertJson(self.upload(self.s, tgz), 200)
        self.assertEqual((again["digest"], again["location"]), (rel["digest"], rel["location"]))
        self.assertEqual(landlord_requests(self.reg), before, "the record answers; the registry is not asked")

    def test_other_chart_under_same_version_is_409(self):
        rel = self.assertJson(self.upload(self.s, make_chart_tgz(NAME, "1.6.0")), 201)
        state, rows = self.state(), self.s.rows("releases")
        other = make_chart_tgz(NAME, "1.6.0", files={"values.yaml": "tenantId: other\n"})
        self.assertProblem(self.upload(self.s, other), 409, "conflict")
        self.assertEqual(self.reg.manifest_digest(REPO, "1.6.0"), rel["digest"])
        self.assertEqual((self.state(), self.s.rows("releases")), (state, rows))

    def test_version_someone_else_pushed(self):
        # Another chart pushed under 1.7.0 by another client: landlord will not overwrite it.
        theirs = make_chart_tgz(NAME, "1.7.0", files={"values.yaml": "pushed: elsewhere\n"})
        digest = self.reg.push_chart(REPO, "1.7.0", theirs, chart_config(NAME, "1.7.0"), user="landlord",
                                     password=PASSWORD)
        p = self.assertProblem(self.upload(self.s, make_chart_tgz(NAME, "1.7.0")), 409, "conflict")
        self.assertIn(self.reg.host, p["detail"])
        self.assertEqual(self.reg.manifest_digest(REPO, "1.7.0"), digest)
        self.assertEqual(self.s.get("/api/v1/releases/1.7.0").status, 404)
        # The same chart pushed before (helm push at another time: another
        # `created`): landlord records what the registry holds.
        tgz = make_chart_tgz(NAME, "1.8.0")
        config = chart_config(NAME, "1.8.0")
        digest = self.reg.push_chart(REPO, "1.8.0", tgz, config, user="landlord", password=PASSWORD,
                                     annotations={"org.opencontainers.image.created": "2020-01-01T00:00:00Z"})
        rel = self.assertJson(self.upload(self.s, tgz), 201)
        self.assertEqual((rel["digest"], rel["config_digest"]), (digest, sha256(config)))
        self.assertEqual(self.reg.manifest_digest(REPO, "1.8.0"), digest, "the registry's manifest stays")

    def test_refused_archives_push_nothing(self):
        v = "3.0.0"
        bad = {
            "not gzip": b"definitely not an archive",
            "a plain tar": archive({NAME + "/Chart.yaml": chart_yaml(v)}, compress=False),
            "'..'": archive({NAME + "/Chart.yaml": chart_yaml(v), NAME + "/../../evil": b"x"}),
            "absolute path": archive({NAME + "/Chart.yaml": chart_yaml(v), "/etc/evil": b"x"}),
            "no Chart.yaml": archive({NAME + "/values.yaml": b"a: 1\n"}),
            "wrong chart name": archive({"podinfo/Chart.yaml": chart_yaml(v, name="podinfo")}),
            "apiVersion v1": archive({NAME + "/Chart.yaml": chart_yaml(v, api="v1")}),
            "invalid semver": archive({NAME + "/Chart.yaml": chart_yaml("3.0")}),
        }
        self.assertJson(self.upload(self.s, make_chart_tgz(NAME, "2.9.0")), 201)
        state, rows, seen = self.state(), self.s.rows("releases"), landlord_requests(self.reg)
        for what, body in bad.items():
            with self.subTest(what):
                self.assertProblem(self.upload(self.s, body), 422, "invalid-chart")
        big = archive({NAME + "/Chart.yaml": chart_yaml(v), NAME + "/blob.bin": os.urandom(70000)})
        self.assertProblem(self.upload(self.s, big), 413, "payload-too-large")
        self.assertEqual((self.state(), self.s.rows("releases")), (state, rows))
        self.assertEqual(landlord_requests(self.reg), seen, "not one request reached the registry")

    def test_delete_removes_the_manifest(self):
        rel = self.assertJson(self.upload(self.s, make_chart_tgz(NAME, "1.9.0")), 201)
        self.assertJson(onboard(self.s, "pinned19", "basic", release="1.9.0"), 201)
        self.assertProblem(self.s.delete("/api/v1/releases/1.9.0"), 409, "conflict")
        self.assertEqual(self.reg.manifest_digest(REPO, "1.9.0"), rel["digest"], "a release in use stays")
        self.assertIn(self.s.delete("/api/v1/tenants/pinned19").status, (200, 202))
        r = self.s.delete("/api/v1/releases/1.9.0")
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(self.reg.manifest_digest(REPO, "1.9.0"))
        self.assertNotIn("1.9.0", self.reg.tags(REPO) or [])
        self.assertEqual(self.s.get("/api/v1/releases/1.9.0").status, 404)
        deletes = [x for x in landlord_requests(self.reg) if x[0] == "DELETE"]
        self.assertEqual(deletes[-1], ("DELETE", "/v2/%s/manifests/%s" % (REPO, rel["digest"]), 202))

    def test_readyz_reports_the_registry(self):
        self.assertJson(self.upload(self.s, make_chart_tgz(NAME, "1.10.0")), 201)
        oci = self.assertJson(self.s.get("/readyz"), 200)["checks"]["oci"]
        self.assertEqual((oci["status"], oci["registry"], oci["auth"]), ("ok", self.reg.host, "basic"))
        self.assertEqual(oci["url"], "oci://%s/charts" % self.reg.host)


class TokenRegistry(RegistryCase):
    def test_token_flow_scopes_and_cache(self):
        reg = Registry(auth="token", users={"landlord": PASSWORD}).start()
        self.addCleanup(reg.cleanup)
        self.addCleanup(reg.stop)
        s = self.start_server(args=oci_args(reg, password_file=reg.write_password_file(PASSWORD)))
        rel = self.assertJson(self.upload(s, make_chart_tgz(NAME, "1.0.0")), 201)
        self.assertEqual(reg.manifest_digest(REPO, "1.0.0"), rel["digest"])

        def asked():
            return [t for t in reg.token_requests if t["user_agent"] == "landlord"]

        self.assertEqual([(t["user"], t["service"], t["scopes"], t["status"]) for t in asked()],
                         [("landlord", reg.service, ["repository:%s:pull,push" % REPO], 200)])
        self.assertEqual(asked()[0]["granted"], [{"type": "repository", "name": REPO, "actions": ["pull", "push"]}])
        # A second upload uses the cached token.
        self.assertJson(self.upload(s, make_chart_tgz(NAME, "1.0.1")), 201)
        self.assertEqual(len(asked()), 1, "the token is cached until shortly before it expires")
        # DELETE asks for the delete action.
        self.assertEqual(s.delete("/api/v1/releases/1.0.1").status, 204)
        self.assertEqual(asked()[-1]["scopes"], ["repository:%s:delete" % REPO])
        self.assertIsNone(reg.manifest_digest(REPO, "1.0.1"))
        self.assertEqual(reg.manifest_digest(REPO, "1.0.0"), rel["digest"])
        self.assertNoSecret(s, PASSWORD)

    def test_pull_only_user_cannot_push(self):
        reg = Registry(auth="token", users={"landlord": PASSWORD}, grants={"landlord": ["pull"]}).start()
        self.addCleanup(reg.cleanup)
        self.addCleanup(reg.stop)
        s = self.start_server(args=oci_args(reg, password_file=reg.write_password_file(PASSWORD)))
        self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), reg.host)
        self.assertEqual(s.rows("releases"), [])
        self.assertIsNone(reg.tags(REPO, user="landlord", password=PASSWORD))

    def test_token_server_refuses_wrong_password(self):
        reg = Registry(auth="token", users={"landlord": PASSWORD}).start()
        self.addCleanup(reg.cleanup)
        self.addCleanup(reg.stop)
        s = self.start_server(args=oci_args(reg, password_file=reg.write_password_file("wrong-password")))
        p = self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), reg.host, "401")
        self.assertIn("token server", p["detail"])
        self.assertNotIn("wrong-password", json.dumps(p))
        self.assertEqual(s.rows("releases"), [])
        self.assertNoSecret(s, "wrong-password", PASSWORD)


class RegistryFailures(RegistryCase):
    def registry(self, **kw):
        reg = Registry(**kw).start()
        self.addCleanup(reg.cleanup)
        self.addCleanup(reg.stop)
        return reg

    def test_wrong_password_records_nothing(self):
        reg = self.registry(auth="htpasswd", users={"landlord": PASSWORD})
        s = self.start_server(args=oci_args(reg, password_file=reg.write_password_file("not-the-password")))
        p = self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), reg.host, "401")
        self.assertIn("oci-password-file", p.get("hint", ""))
        self.assertNotIn("not-the-password", json.dumps(p))
        self.assertEqual((s.rows("releases"), s.get("/api/v1/releases/1.0.0").status), ([], 404))
        self.assertIsNone(reg.tags(REPO))
        oci = self.assertJson(s.get("/readyz"), 200)["checks"]["oci"]
        self.assertEqual(oci["status"], "failed")
        self.assertIn("401", oci["error"])
        self.assertNoSecret(s, "not-the-password")

    def test_no_credentials_for_a_registry_that_wants_them(self):
        reg = self.registry(auth="htpasswd")
        s = self.start_server(args=oci_args(reg, user=None))
        p = self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), reg.host, "401")
        self.assertIn("oci-username", p.get("hint", ""))
        self.assertEqual(s.rows("releases"), [])

    def test_registry_down_records_nothing(self):
        host = "127.0.0.1:%d" % closed_port()
        s = self.start_server(args=["--oci-url", "oci://%s/charts" % host, "--oci-plain-http", "1"])
        self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), host)
        self.assertEqual(s.rows("releases"), [])
        # Back to the embedded layout is not a fallback: nothing was stored there.
        self.assertFalse(os.path.exists(os.path.join(s.data, "oci", NAME, "index.json")))

    def test_5xx_records_nothing(self):
        reg = self.registry(auth="htpasswd", users={"landlord": PASSWORD})
        failing = {"on": True}

        def fault(method, path):
            if failing["on"] and method == "PUT" and "/manifests/" in path:
                return registry_error("UNKNOWN", "storage backend failed", 500)
            return None

        proxy = RegistryProxy(reg, fault=fault).start()
        self.addCleanup(proxy.stop)
        args = ["--oci-url", "oci://%s/charts" % proxy.host, "--oci-plain-http", "1", "--oci-username",
                "landlord", "--oci-password-file", reg.write_password_file(PASSWORD)]
        s = self.start_server(args=args)
        tgz = make_chart_tgz(NAME, "1.0.0")
        p = self.assertUpstreamProblem(self.upload(s, tgz), proxy.host, "500", "storage backend failed")
        self.assertIn("/v2/%s/manifests/1.0.0" % REPO, p["detail"])
        self.assertEqual(s.rows("releases"), [])
        self.assertIn(reg.tags(REPO, user="landlord", password=PASSWORD), (None, []))
        # Every request answered 503 (a registry in maintenance).
        proxy.fault = lambda m, p: registry_error("UNAVAILABLE", "maintenance", 503)
        self.assertUpstreamProblem(self.upload(s, tgz), "503")
        self.assertEqual(s.rows("releases"), [])
        # Once it works again the same upload goes through (the blobs are there already).
        proxy.fault = None
        rel = self.assertJson(self.upload(s, tgz), 201)
        self.assertEqual(reg.manifest_digest(REPO, "1.0.0", user="landlord", password=PASSWORD), rel["digest"])

    def test_anonymous_registry(self):
        reg = self.registry(auth="none")
        s = self.start_server(args=oci_args(reg, user=None))
        rel = self.assertJson(self.upload(s, make_chart_tgz(NAME, "1.0.0")), 201)
        self.assertEqual(reg.manifest_digest(REPO, "1.0.0"), rel["digest"])
        oci = self.assertJson(s.get("/readyz"), 200)["checks"]["oci"]
        self.assertEqual((oci["status"], oci["auth"]), ("ok", "none"))

    def test_denied_and_lying_registries_record_nothing(self):
        reg = self.registry(auth="none")
        proxy = RegistryProxy(reg).start()
        self.addCleanup(proxy.stop)
        s = self.start_server(args=["--oci-url", "oci://%s/charts" % proxy.host, "--oci-plain-http", "1"])
        tgz = make_chart_tgz(NAME, "1.0.0")
        proxy.fault = lambda m, p: registry_error("DENIED", "requested access to the resource is denied", 403) \
            if m == "POST" else None
        p = self.assertUpstreamProblem(self.upload(s, tgz), proxy.host, "403 DENIED")
        self.assertIn("denied", p.get("hint", ""))
        self.assertEqual(s.rows("releases"), [])
        # A registry that answers the manifest PUT with another digest than the bytes sent.
        proxy.fault = lambda m, p: (201, b"", {"Docker-Content-Digest": "sha256:" + "0" * 64}) \
            if m == "PUT" and "/manifests/" in p else None
        p = self.assertUpstreamProblem(self.upload(s, tgz), proxy.host, "sha256:" + "0" * 64)
        self.assertEqual(s.rows("releases"), [])
        self.assertIsNone(reg.manifest_digest(REPO, "1.0.0"))

    def test_credentials_stay_on_the_registry_origin(self):
        # The registry sends its uploads to another origin (a storage
        # front, say): the PUT goes there without landlord's credentials.
        backend = self.registry(auth="none")
        other = RegistryProxy(backend).start()
        self.addCleanup(other.stop)
        front = RegistryProxy(backend, require_basic=("landlord", PASSWORD), location_base=other.url).start()
        self.addCleanup(front.stop)
        pw = backend.write_password_file(PASSWORD)
        s = self.start_server(args=["--oci-url", "oci://%s/charts" % front.host, "--oci-plain-http", "1",
                                    "--oci-username", "landlord", "--oci-password-file", pw])
        rel = self.assertJson(self.upload(s, make_chart_tgz(NAME, "1.0.0")), 201)
        self.assertEqual(backend.manifest_digest(REPO, "1.0.0"), rel["digest"])
        self.assertEqual([(m, a) for m, _, a in other.authorized], [("PUT", False), ("PUT", False)])
        self.assertEqual([a for m, p, a in front.authorized if p != "/v2/"], [True] * 6)

    def test_registry_refusing_deletes_keeps_the_release(self):
        reg = self.registry(auth="htpasswd", users={"landlord": PASSWORD}, delete=False)
        s = self.start_server(args=oci_args(reg, password_file=reg.write_password_file(PASSWORD)))
        rel = self.assertJson(self.upload(s, make_chart_tgz(NAME, "1.0.0")), 201)
        p = self.assertUpstreamProblem(s.delete("/api/v1/releases/1.0.0"), reg.host, "405")
        self.assertIn("storage.delete.enabled", p.get("hint", ""))
        self.assertEqual(self.assertJson(s.get("/api/v1/releases/1.0.0"), 200)["digest"], rel["digest"])
        self.assertEqual(reg.manifest_digest(REPO, "1.0.0"), rel["digest"])

    def test_tls_with_and_without_the_ca(self):
        reg = self.registry(auth="htpasswd", tls=True, users={"landlord": PASSWORD})
        pw = reg.write_password_file(PASSWORD)
        s = self.start_server(args=oci_args(reg, password_file=pw, plain=False))
        p = self.assertUpstreamProblem(self.upload(s, make_chart_tgz(NAME, "1.0.0")), reg.host)
        self.assertIn("oci-ca-file", p.get("hint", ""))
        self.assertEqual(s.rows("releases"), [])
        s2 = self.start_server(args=oci_args(reg, password_file=pw, plain=False, ca=reg.ca_file))
        rel = self.assertJson(self.upload(s2, make_chart_tgz(NAME, "1.0.0")), 201)
        self.assertEqual(rel["location"], "%s/%s:1.0.0" % (reg.host, REPO))
        self.assertEqual(reg.skopeo_inspect_raw(REPO, "1.0.0"), reg.manifest(REPO, "1.0.0")[2])

    def test_registry_settings_are_checked_at_start(self):
        bad = [
            (["--oci-url", "oci://registry.example/charts", "--oci-plain-http", "1"], "oci-plain-http"),
            (["--oci-url", "https://registry.example/charts"], "oci://"),
            (["--oci-url", "oci://registry.example/Charts"], "repository name"),
            (["--oci-url", "oci://registry.example:99999/charts"], "port"),
            (["--oci-auth", "kerberos"], "oci-auth"),
        ]
        for args, words in bad:
            with self.subTest(args=args):
                p = run_landlord(["serve", "--listen", "127.0.0.1:0", "--data", make_temp_dir()] + args,
                                 timeout=30)
                self.assertNotEqual(p.returncode, 0, p.stderr)
                self.assertIn(words, p.stderr)


if __name__ == "__main__":
    unittest.main()

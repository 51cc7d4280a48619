"""Releases (issue 5, first part): uploading a packaged chart, stored as an
OCI artifact the way `helm push` makes it in the OCI image layout of the
data dir; the catalogue; deleting a version nobody uses.

Covers: an upload (201, Location, the release's fields) and what lands in
the layout (index.json's tag, the manifest's media types and digests, the
config blob, the archive bytes unchanged); the same chart again (200, the
same digest); another chart under the same version (409, nothing changed);
refused archives, each 422 invalid-chart with nothing stored (not gzip, a
plain tar, '..', an absolute path, a link, no Chart.yaml, another chart,
apiVersion v1, not semver, two top folders); 415 without a chart content
type; 413 from Content-Length over release-max-size; the catalogue newest
first with tenant counts for pinned and floating tenants; DELETE refused
(409) while tenants use a version, then 204 and 404.
"""

import hashlib
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import SharedServerTestCase, archive, onboard  # noqa: E402

NAME = "helm-tenant-chart"
GZIP = {"Content-Type": "application/gzip"}


def chart_yaml(version, name=NAME, api="v2"):
    return ("apiVersion: %s\nname: %s\ndescription: A tenant\nversion: %s\nappVersion: \"2.0\"\n"
            % (api, name, version)).encode()


def chart(version, extra=b""):
    return archive({NAME + "/Chart.yaml": chart_yaml(version),
                    NAME + "/values.yaml": b"replicaCount: 1\n" + extra,
                    NAME + "/templates/deployment.yaml": b"kind: Deployment\n"})


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Releases(SharedServerTestCase):
    shared_args = ("--release-max-size", "65536")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.layout = os.path.join(cls.s.data, "oci", NAME)

    def upload(self, body, headers=GZIP):
        return self.s.request("POST", "/api/v1/releases", body=body, headers=headers)

    def index(self):
        path = os.path.join(self.layout, "index.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def blob(self, digest):
        with open(os.path.join(self.layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
            return f.read()

    def releases(self):
        return self.assertJson(self.s.get("/api/v1/releases"), 200)["items"]

    def test_upload_stores_what_helm_push_would(self):
        data = chart("1.0.0")
        r = self.upload(data)
        rel = self.assertJson(r, 201)
        self.assertEqual(r.header("Location"), "/api/v1/releases/1.0.0")
        self.assertEqual((rel["version"], rel["tag"], rel["location"], rel["app_version"], rel["tenants"]),
                         ("1.0.0", "1.0.0", "local", "2.0", 0))
        self.assertEqual(rel["chart_digest"], sha256(data))
        self.assertEqual(rel["size"], len(data))
        refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in self.index()["manifests"]}
        self.assertEqual(refs["1.0.0"]["digest"], rel["digest"])
        self.assertEqual(refs["1.0.0"]["mediaType"], "application/vnd.oci.image.manifest.v1+json")
        manifest_bytes = self.blob(rel["digest"])
        self.assertEqual(sha256(manifest_bytes), rel["digest"])
        self.assertEqual(refs["1.0.0"]["size"], len(manifest_bytes))
        manifest = json.loads(manifest_bytes)
        self.assertEqual(manifest["schemaVersion"], 2)
        self.assertEqual(manifest["config"]["mediaType"], "application/vnd.cncf.helm.config.v1+json")
        self.assertEqual(manifest["config"]["digest"], rel["config_digest"])
        self.assertEqual(len(manifest["layers"]), 1)
        layer = manifest["layers"][0]
        self.assertEqual(layer["mediaType"], "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
        self.assertEqual((layer["digest"], layer["size"]), (sha256(data), len(data)))
        self.assertEqual(self.blob(layer["digest"]), data, "the archive is stored unchanged")
        config = json.loads(self.blob(manifest["config"]["digest"]))
        self.assertEqual((config["name"], config["version"], config["apiVersion"]), (NAME, "1.0.0", "v2"))
        ann = manifest["annotations"]
        self.assertEqual(ann["org.opencontainers.image.title"], NAME)
        self.assertEqual(ann["org.opencontainers.image.version"], "1.0.0")
        self.assertIn("org.opencontainers.image.created", ann)

        # The same chart again: nothing new.
        again = self.assertJson(self.upload(data), 200)
        self.assertEqual(again["digest"], rel["digest"])
        # Another chart under the same version: refused, nothing changed.
        before = self.index()
        self.assertProblem(self.upload(chart("1.0.0", extra=b"other: 2\n")), 409, "conflict")
        self.assertEqual(self.index(), before)
        self.assertEqual(self.assertJson(self.s.get("/api/v1/releases/1.0.0"), 200)["digest"], rel["digest"])
        # Without oci-url the layout is where charts go, and /readyz says so.
        self.assertEqual(self.assertJson(self.s.get("/readyz"), 200)["checks"]["oci"], {"status": "local"})

    def test_refused_archives_store_nothing(self):
        version = "3.0.0"
        bad = {
            "not gzip": b"definitely not an archive",
            "a plain tar": archive({NAME + "/Chart.yaml": chart_yaml(version)}, compress=False),
            "'..'": archive({NAME + "/Chart.yaml": chart_yaml(version), NAME + "/../../evil": b"x"}),
            "absolute path": archive({NAME + "/Chart.yaml": chart_yaml(version), "/etc/evil": b"x"}),
            "a link": archive({NAME + "/Chart.yaml": chart_yaml(version)}, links=[(NAME + "/l", "/etc")]),
            "no Chart.yaml": archive({NAME + "/values.yaml": b"a: 1\n"}),
            "another chart": archive({"podinfo/Chart.yaml": chart_yaml(version, name="podinfo")}),
            "apiVersion v1": archive({NAME + "/Chart.yaml": chart_yaml(version, api="v1")}),
            "not semver": archive({NAME + "/Chart.yaml": chart_yaml("3.0")}),
            "two top folders": archive({NAME + "/Chart.yaml": chart_yaml(version), "other/x.yaml": b"a\n"}),
        }
        before_list, before_index = self.releases(), self.index()
        for what, body in bad.items():
            with self.subTest(what):
                self.assertProblem(self.upload(body), 422, "invalid-chart")
        self.assertEqual(self.releases(), before_list)
        self.assertEqual(self.index(), before_index)
        self.assertEqual(self.s.get("/api/v1/releases/3.0.0").status, 404)

    def test_content_type_and_size(self):
        self.assertProblem(self.upload(chart("4.0.0"), headers={"Content-Type": "application/json"}), 415,
                           "unsupported-media-type")
        self.assertProblem(self.upload(b"", headers=GZIP), 422, "invalid-chart")
        big = archive({NAME + "/Chart.yaml": chart_yaml("4.0.0"), NAME + "/blob.bin": os.urandom(70000)})
        self.assertGreater(len(big), 65536)
        self.assertProblem(self.upload(big), 413, "payload-too-large")
        self.assertEqual(self.s.get("/api/v1/releases/4.0.0").status, 404)

    def test_catalogue_counts_and_delete(self):
        for v in ("2.1.0", "2.1.1", "2.0.5"):
            self.assertJson(self.upload(chart(v)), 201)
        versions = [r["version"] for r in self.releases()]
        mine = [v for v in versions if v.startswith("2.")]
        self.assertEqual(mine, ["2.1.1", "2.1.0", "2.0.5"], "newest first")
        # A tenant floating on 2.1 runs the newest 2.1.*; one pinned runs its own.
        self.assertJson(onboard(self.s, "floater", "basic", release="2.1"), 201)
        self.assertJson(onboard(self.s, "pinned", "basic", release="2.0.5"), 201)
        counts = {r["version"]: r["tenants"] for r in self.releases()}
        self.assertEqual((counts["2.1.1"], counts["2.1.0"], counts["2.0.5"]), (1, 0, 1))
        self.assertProblem(self.s.delete("/api/v1/releases/2.1.1"), 409, "conflict")
        self.assertProblem(self.s.delete("/api/v1/releases/2.0.5"), 409, "conflict")
        # Nobody on 2.1.0: it goes, its tag leaves the layout.
        r = self.s.delete("/api/v1/releases/2.1.0")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.s.get("/api/v1/releases/2.1.0").status, 404)
        self.assertNotIn("2.1.0", [m["annotations"]["org.opencontainers.image.ref.name"]
                                   for m in self.index()["manifests"]])
        self.assertProblem(self.s.delete("/api/v1/releases/2.1.0"), 404, "not-found")
        # Offboarded tenants use nothing.
        self.assertIn(self.s.delete("/api/v1/tenants/pinned").status, (200, 202))
        self.assertEqual(self.s.delete("/api/v1/releases/2.0.5").status, 204)


if __name__ == "__main__":
    unittest.main()

"""Ids that cannot collide and chart archives that cannot hide (issue 11,
must-haves 1, 4 and 9).

Ids.  A tenant id is refused (422 invalid-request, field `id`, the detail
naming the rule) when it is reserved: the default reserved-namespaces list
(the platform namespaces of an EKS cluster), which a configured value
replaces, and default, flux-system, kube-* and the flux-namespace whatever
it says, for every tier; when a namespace it would own exists in the
followed cluster (the Kubernetes stand-in) and was not made for it: made
by hand, labelled for another tenant, applied by another Kustomization,
applied by landlord's for no tenant, or created after landlord started
(until it is gone); when another tenant's file declares that namespace.  A
move to a tier that would give a tenant such a namespace (PATCH tier,
field `tier`) is refused the same way, while its other changes go on.  A
namespace made for the tenant (landlord's Kustomization's labels and
landlord.dev/tenant=<id>) is no obstacle, and neither is one in a tier
that owns none (basic).

Charts.  A valid chart followed by 1.2 GiB of zeros after the tar's end
marker (about 1.2 MB compressed), data hidden after the marker, bytes
after the gzip stream, too many entries, an entry too large, Chart.yaml
twice (the same path, the second naming another chart and version) or
under a '\\' path, and versions whose numbers do not fit in 64 bits: each
is 422 invalid-chart naming the rule.

Every refusal leaves the registry (tenants, operations: the outbox,
releases), the repository, the audit log (but its one refusal record) and
the registry of charts unchanged: the docker-registry's catalog and tags
and landlord's requests in its access log, or the OCI layout in the data
dir.
"""

import gzip
import io
import os
import struct
import sys
import tarfile
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import LandlordTestCase, Server, SharedServerTestCase, make_temp_dir, onboard, run_landlord  # noqa: E402
from kubeapi import KubeAPI, wait_until  # noqa: E402
from ociregistry import Registry, landlord_requests, make_chart_tgz  # noqa: E402

NAME = "helm-tenant-chart"
REPO = "charts/" + NAME
PASSWORD = "s3cret-for-the-registry"
GZIP = {"Content-Type": "application/gzip"}
TIERS = ("basic", "advanced", "premium")
KS_LABELS = {"kustomize.toolkit.fluxcd.io/name": "dataplane-tenants",
             "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}

# What an EKS operator finds in a cluster, and what the default list says
# about each (the rule the detail names).
PLATFORM = [
    ("landlord", "landlord"), ("cert-manager", "cert-manager"), ("ingress-nginx", "ingress-*"),
    ("nginx-ingress", "*-ingress"), ("monitoring", "monitoring"), ("logging", "logging"),
    ("amazon-cloudwatch", "amazon-*"), ("amazon-guardduty", "amazon-*"), ("aws-observability", "aws-*"),
    ("karpenter", "karpenter"), ("external-dns", "external-dns"), ("external-secrets", "external-secrets"),
    ("istio-system", "*-system"), ("istio-ingress", "*-ingress"), ("istio-gateways", "istio-*"),
    ("linkerd", "linkerd*"), ("linkerd-viz", "linkerd*"), ("gatekeeper-system", "*-system"),
    ("kyverno", "kyverno"), ("velero", "velero"), ("argocd", "argocd"), ("argo-events", "argo-*"),
    ("prometheus", "prometheus*"), ("grafana", "grafana*"), ("tigera-operator", "tigera-operator"),
    ("calico-system", "*-system"), ("calico-apiserver", "calico-*"), ("cilium", "cilium*"), ("keda", "keda"),
    ("vault", "vault"),
]
ALWAYS = ["default", "flux-system", "kube-system", "kube-public", "kube-node-lease", "kube-anything"]


class Refusals(LandlordTestCase):
    """assertRefused over self.s: the answer, and nothing changed."""

    # With a cluster followed, landlord's follower records observed states
    # of the tenants accepted before, whenever it gets to them: those rows
    # are left out of the comparison (the refused id must have none).
    follows_cluster = False

    def registry(self):
        snap = self.s.snapshot()
        if self.follows_cluster:
            snap.pop("events", None)
            snap.pop("tenant_changes", None)
            for row in snap.get("tenants", []):
                row.pop("observed_state", None)
                row.pop("observed_since", None)
        return snap

    def layout(self):
        """The OCI image layout in the data dir: every file and its size."""
        out = []
        for root, _, files in os.walk(os.path.join(self.s.data, "oci")):
            for f in files:
                p = os.path.join(root, f)
                out.append((os.path.relpath(p, self.s.data), os.path.getsize(p)))
        return sorted(out)

    def state(self):
        return self.registry(), self.s.head(), self.s.audit(), self.layout()

    def assertRefused(self, before, resp, status, ptype, what, field=None, words=()):
        snap, head, audit, layout = before
        p = self.assertProblem(resp, status, ptype, field=field, msg=what)
        for w in words:
            self.assertIn(w, p.get("detail", ""), what)
        self.assertEqual(self.registry(), snap, "%s changed the registry" % what)
        self.assertEqual(self.s.head(), head, "%s changed the repository" % what)
        self.assertEqual(self.layout(), layout, "%s changed the chart layout" % what)
        now = self.s.audit()
        self.assertEqual(now[:len(audit)], audit, "%s rewrote audit records" % what)
        self.assertEqual(len(now), len(audit) + 1, "%s: the refusal record only" % what)
        self.assertEqual((now[-1]["status"], now[-1]["request_id"], now[-1]["operation_id"]),
                         (status, resp.header("X-Request-Id"), None), what)
        return p

    def refuse_onboard(self, tid, tier, *words, field="id"):
        before = self.state()
        r = onboard(self.s, tid, tier)
        p = self.assertRefused(before, r, 422, "invalid-request", "onboard %s in %s" % (tid, tier),
                               field=field, words=words)
        self.assertNotIn(tid, [t["id"] for t in self.s.rows("tenants")])
        if "events" in self.s.snapshot():
            self.assertNotIn(tid, [e.get("tenant_id") for e in self.s.rows("events")])
        return p


class ReservedIds(SharedServerTestCase, Refusals):

    def test_platform_namespaces_in_every_tier(self):
        for tid, rule in PLATFORM:
            for tier in TIERS:
                with self.subTest(id=tid, tier=tier):
                    self.refuse_onboard(tid, tier, "id '%s' is reserved" % tid,
                                        "matches '%s' in reserved-namespaces" % rule)
        for tid in ALWAYS:
            for tier in TIERS:
                with self.subTest(id=tid, tier=tier):
                    self.refuse_onboard(tid, tier, "id '%s' is reserved" % tid)
        for tier in TIERS:
            with self.subTest(pool=tier):
                self.refuse_onboard("pool-1", tier, "a pool environment has that name")

    def test_ordinary_ids_still_onboard(self):
        for tid, tier in (("acme", "premium"), ("monitoring-co", "advanced"), ("systems", "basic"),
                          ("kubecorp", "premium")):
            with self.subTest(id=tid):
                self.assertJson(onboard(self.s, tid, tier), 201)


class ConfiguredList(Refusals):
    def test_the_setting_replaces_the_default(self):
        self.s = self.start_server(args=["--reserved-namespaces", " acme-* , blocked,*-infra",
                                         "--flux-namespace", "gitops"])
        for tid, words in (("acme-corp", "matches 'acme-*'"), ("blocked", "matches 'blocked'"),
                           ("team-infra", "matches '*-infra'"), ("kube-system", "always reserved"),
                           ("flux-system", "always reserved"), ("default", "reserved"),
                           ("gitops", "flux-namespace")):
            with self.subTest(id=tid):
                self.refuse_onboard(tid, "premium", "id '%s' is reserved" % tid, words)
        self.assertEqual(self.s.stop(), 0)
        self.assertSanitizerClean(self.s)
        # The seeded tiers put HelmReleases in flux-system, which the tier
        # policy allows only when it is the flux namespace: the ids the
        # list no longer reserves onboard on a server with the default one.
        self.s = self.start_server(args=["--reserved-namespaces", " acme-* , blocked,*-infra"])
        for tid in ("monitoring", "cert-manager", "acme"):
            with self.subTest(id=tid):
                self.assertJson(onboard(self.s, tid, "premium"), 201)
        self.assertEqual(self.s.stop(), 0)
        self.assertSanitizerClean(self.s)

    def test_a_tenant_onboarded_before_keeps_working_but_cannot_move(self):
        data = make_temp_dir("landlord-ids-")
        first = self.start_server(data=data)
        self.assertJson(onboard(first, "legacy", "basic"), 201)
        self.assertEqual(first.stop(), 0)
        self.s = self.start_server(data=data, args=["--reserved-namespaces", "legacy"])
        self.assertJson(self.s.get("/api/v1/tenants/legacy"), 200)
        # A move to a tier where it would own the namespace 'legacy'.
        for tier in ("premium", "advanced"):
            before = self.state()
            r = self.s.request("PATCH", "/api/v1/tenants/legacy", json_body={"tier": tier})
            self.assertRefused(before, r, 422, "invalid-request", "move to %s" % tier, field="tier",
                               words=("id 'legacy' is reserved", "matches 'legacy'"))
        # Other changes go on.
        r = self.s.request("PATCH", "/api/v1/tenants/legacy", json_body={"release": "0.1"})
        self.assertIn(r.status, (200, 202), r)
        self.assertEqual(self.s.get("/api/v1/tenants/legacy").json["release"], "0.1")
        self.assertEqual(self.s.stop(), 0)
        self.assertSanitizerClean(self.s)

    def test_bad_values_are_refused_at_start(self):
        for bad in ("Upper", "a,,b", "*", "a*b", "**", "x y", "under_score"):
            with self.subTest(value=bad):
                p = run_landlord(["serve", "--listen", "127.0.0.1:0", "--data", make_temp_dir(),
                                  "--reserved-namespaces", bad], timeout=30)
                self.assertNotEqual(p.returncode, 0, p.stdout)
                self.assertIn("reserved-namespaces", p.stderr)


class ClusterNamespaces(Refusals):
    """landlord following the Kubernetes stand-in, whose namespaces are set
    up by hand (no Flux: the namespaces' labels say who applied them)."""

    follows_cluster = True

    @classmethod
    def setUpClass(cls):
        cls.api = KubeAPI(tls=True, tokens={"tok-1": "landlord"}).start()
        for name, labels in (
                ("shop", {}),
                ("theirs", dict(KS_LABELS, **{"landlord.dev/tenant": "someone"})),
                ("twin", {"kustomize.toolkit.fluxcd.io/name": "other-tenants",
                          "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                          "landlord.dev/tenant": "twin"}),
                ("orphan", dict(KS_LABELS)),
                ("mine", dict(KS_LABELS, **{"landlord.dev/tenant": "mine"}))):
            cls.api.put({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": name, "labels": labels}})
        kubeconfig = cls.api.kubeconfig(os.path.join(make_temp_dir("landlord-kube-"), "kubeconfig"))
        cls.s = cls.start_shared(args=["--kubeconfig", kubeconfig])
        cls.namespaces_seen(len(cls.api.objects("Namespace")))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_shared_cleanly()
        finally:
            cls.api.stop()

    @classmethod
    def namespaces_seen(cls, n):
        """Waits until landlord knows n namespaces (/readyz)."""
        def seen():
            kube = cls.s.get("/readyz").json["checks"]["kube"]
            return kube.get("namespaces") == n
        wait_until(seen, timeout=30, msg="landlord knows %d namespaces" % n)

    def test_a_namespace_someone_else_made(self):
        for tier in ("premium", "advanced"):
            self.refuse_onboard("shop", tier, "namespace 'shop', which exists in the cluster and was not "
                                "made for it", "landlord's Kustomization flux-system/dataplane-tenants did "
                                "not apply it")
        # basic owns no namespace: the id is free there, but a move is not.
        self.assertJson(onboard(self.s, "shop", "basic"), 201)
        before = self.state()
        r = self.s.request("PATCH", "/api/v1/tenants/shop", json_body={"tier": "premium"})
        self.assertRefused(before, r, 422, "invalid-request", "move shop to premium", field="tier",
                           words=("namespace 'shop', which exists in the cluster",))

    def test_namespaces_made_for_others(self):
        self.refuse_onboard("theirs", "premium", "labelled for tenant 'someone'")
        self.refuse_onboard("twin", "premium", "did not apply it")
        self.refuse_onboard("orphan", "advanced", "landlord applied it, but for no tenant")

    def test_a_namespace_made_for_the_tenant(self):
        t = self.assertJson(onboard(self.s, "mine", "premium"), 201)
        self.assertEqual(t["id"], "mine")

    def test_a_namespace_created_later_until_it_is_gone(self):
        n = len(self.api.objects("Namespace"))
        self.api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "late"}})
        self.namespaces_seen(n + 1)
        self.refuse_onboard("late", "premium", "namespace 'late', which exists in the cluster")
        self.api.delete("Namespace", None, "late")
        self.api.finish_namespace("late")
        self.namespaces_seen(n)
        self.assertJson(onboard(self.s, "late", "premium"), 201)

    def test_a_namespace_another_tenant_declares(self):
        # A tier whose Namespace is derived from the id but not the id
        # itself (t-{TENANT_ID}) would let tenant x1 own the namespace that
        # tenant t-x1 is named after: the tier policy refuses such a
        # template, so a tenant's namespaces are always named exactly its id.
        premium = self.s.get("/api/v1/tiers/premium").json["template"]
        gold = (premium.replace("  name: {TENANT_ID}\n", "  name: t-{TENANT_ID}\n")
                .replace("Namespace: {TENANT_ID}", "Namespace: t-{TENANT_ID}"))
        self.assertIn("name: t-{TENANT_ID}", gold)
        before = self.state()
        r = self.s.request("PUT", "/api/v1/tiers/gold", json_body={"template": gold})
        self.assertRefused(before, r, 422, "tier-policy", "a tier naming namespaces t-{TENANT_ID}",
                           field="template", words=("foreign-namespace",))
        self.assertEqual(self.s.get("/api/v1/tiers/gold").status, 404)


def tar_bytes(files):
    """An uncompressed tar (Python's tarfile: ustar, padded to 10240-byte
    records) of files [(path, bytes) or (path, bytes, type flag)], in
    order; a path may repeat."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path, data, *kind in files:
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mtime = 1700000000
            if kind:
                ti.type = kind[0]
            t.addfile(ti, io.BytesIO(data))
    return raw.getvalue()


def chart_yaml(version, name=NAME):
    return ("apiVersion: v2\nname: %s\nversion: %s\n" % (name, version)).encode()


def gzip_with_zeros(data, zeros):
    """A gzip stream of data followed by `zeros` zero bytes, made without
    deflating them all: after a full flush zlib starts afresh, so every
    further megabyte of zeros deflates to the same bytes."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", z.compress(data), z.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(data)
    block = bytes(1 << 20)
    full, rest = divmod(zeros, len(block))
    if full:
        piece = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
        assert z.compress(block) + z.flush(zlib.Z_FULL_FLUSH) == piece
        parts.append(piece * full)
        for _ in range(full):
            crc = zlib.crc32(block, crc)
    tail = bytes(rest)
    parts.append(z.compress(tail) + z.flush())
    crc = zlib.crc32(tail, crc)
    parts.append(struct.pack("<II", crc & 0xffffffff, (len(data) + zeros) & 0xffffffff))
    return b"".join(parts)


class Charts(Refusals):
    @classmethod
    def setUpClass(cls):
        cls.reg = Registry(auth="htpasswd", users={"landlord": PASSWORD}).start()
        pw = cls.reg.write_password_file(PASSWORD + "\n")
        cls.s = cls.start_shared(args=["--oci-url", "oci://%s/charts" % cls.reg.host, "--oci-plain-http", "1",
                                       "--oci-username", "landlord", "--oci-password-file", pw,
                                       "--chart-max-entries", "20", "--chart-max-entry-size", "100000"])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_shared_cleanly()
        finally:
            cls.reg.stop()
            cls.reg.cleanup()

    def charts(self):
        """The registry of charts: catalog, tags, and landlord's requests."""
        return self.reg.catalog(), self.reg.tags(REPO), landlord_requests(self.reg)

    def refuse_upload(self, body, what, *words):
        before, charts = self.state(), self.charts()
        r = self.s.request("POST", "/api/v1/releases", body=body, headers=GZIP)
        p = self.assertRefused(before, r, 422, "invalid-chart", what, words=words)
        self.assertEqual(self.charts(), charts, "%s reached the chart registry" % what)
        return p

    def test_a_bomb_after_the_end_marker(self):
        tar = tar_bytes([(NAME + "/Chart.yaml", chart_yaml("7.0.0")), (NAME + "/values.yaml", b"a: 1\n")])
        self.assertEqual(gzip.decompress(gzip_with_zeros(tar, 3 << 20)), tar + bytes(3 << 20))
        body = gzip_with_zeros(tar, int(1.2 * (1 << 30)))
        self.assertLess(len(body), 2 << 20, "about 1.2 MB on the wire")
        self.refuse_upload(body, "1.2 GiB of zeros after the end marker",
                           "unpacks to more than 67108864 bytes (chart-max-unpacked)")
        # Zero padding within the cap is what tar writes: fine.
        ok = gzip_with_zeros(tar, 20480)
        rel = self.assertJson(self.s.request("POST", "/api/v1/releases", body=ok, headers=GZIP), 201)
        self.assertEqual(rel["version"], "7.0.0")
        self.assertIn("7.0.0", self.reg.tags(REPO))

    def test_data_hidden_after_the_end(self):
        tar = tar_bytes([(NAME + "/Chart.yaml", chart_yaml("7.1.0"))])
        hidden = tar_bytes([(NAME + "/Chart.yaml", chart_yaml("6.6.6", name="evil"))])
        self.refuse_upload(gzip.compress(tar + hidden), "a second archive after the end marker",
                           "data after the tar's end marker")
        self.refuse_upload(gzip.compress(tar) + gzip.compress(hidden), "a second gzip member",
                           "data after the tar's end marker")
        self.refuse_upload(gzip.compress(tar) + b"trailing", "bytes after the gzip stream",
                           "8 bytes after the end of its gzip stream")

    def test_entry_caps(self):
        many = [(NAME + "/Chart.yaml", chart_yaml("7.2.0"))] + [
            ("%s/templates/t%02d.yaml" % (NAME, i), b"kind: ConfigMap\n") for i in range(25)]
        self.refuse_upload(gzip.compress(tar_bytes(many)), "26 entries",
                           "more than 20 entries (chart-max-entries)")
        big = [(NAME + "/Chart.yaml", chart_yaml("7.2.0")), (NAME + "/big.txt", b"x" * 200000)]
        self.refuse_upload(gzip.compress(tar_bytes(big)), "an entry of 200000 bytes",
                           "larger than 100000 bytes (chart-max-entry-size)")

    def test_exactly_one_chart_yaml(self):
        twice = [(NAME + "/Chart.yaml", chart_yaml("7.3.0")),
                 (NAME + "/Chart.yaml", chart_yaml("6.6.6", name="other-chart"))]
        self.refuse_upload(gzip.compress(tar_bytes(twice)), "Chart.yaml twice",
                           "Chart.yaml twice", "exactly one")
        dotted = [twice[0], (NAME + "/./Chart.yaml", twice[1][1])]
        self.refuse_upload(gzip.compress(tar_bytes(dotted)), "./Chart.yaml", "'.' or empty segment")
        backslash = [twice[0], (NAME + "/sub\\Chart.yaml", twice[1][1])]
        self.refuse_upload(gzip.compress(tar_bytes(backslash)), "sub\\Chart.yaml", "'\\'")
        # Entries libarchive reads as part of the next one and Go's reader
        # (Helm's) as files of their own: a GNU volume header, a Solaris ACL.
        for kind in (b"V", b"A", b"X"):
            hidden = [twice[0], (NAME + "/Chart.yaml", twice[1][1], kind)]
            self.refuse_upload(gzip.compress(tar_bytes(hidden)), "a %r entry" % kind,
                               "tar type '%s'" % kind.decode())
        # A subchart's Chart.yaml is its own.
        sub = make_chart_tgz(NAME, "7.3.1", files={"charts/db/Chart.yaml": chart_yaml("0.1.0", name="db")})
        self.assertJson(self.s.request("POST", "/api/v1/releases", body=sub, headers=GZIP), 201)

    def test_versions_beyond_64_bits(self):
        for v in ("99999999999999999999999.0.0", "18446744073709551616.0.0", "0.0.18446744073709551616",
                  "1.0.0-18446744073709551616"):
            with self.subTest(version=v):
                self.refuse_upload(make_chart_tgz(NAME, v), v, "is not a semantic version 2.0")
        rel = self.assertJson(self.s.request("POST", "/api/v1/releases", body=make_chart_tgz(
            NAME, "18446744073709551615.0.0"), headers=GZIP), 201)
        self.assertIn(rel["tag"], self.reg.tags(REPO))


class ChartsInTheLayout(Refusals):
    """No registry configured: the OCI layout in the data dir stays as it was."""

    def test_refusals_leave_the_layout(self):
        self.s = self.start_server()
        self.assertJson(self.s.request("POST", "/api/v1/releases", body=make_chart_tgz(NAME, "1.0.0"),
                                       headers=GZIP), 201)
        tar = tar_bytes([(NAME + "/Chart.yaml", chart_yaml("1.1.0"))])
        for what, body, words in (
                ("a bomb", gzip_with_zeros(tar, 100 << 20), "chart-max-unpacked"),
                ("hidden data", gzip.compress(tar + b"hidden"), "after the tar's end marker"),
                ("a huge version", make_chart_tgz(NAME, "99999999999999999999999.0.0"), "semantic version")):
            with self.subTest(what):
                before = self.state()
                r = self.s.request("POST", "/api/v1/releases", body=body, headers=GZIP)
                self.assertRefused(before, r, 422, "invalid-chart", what, words=(words,))
        self.assertEqual(self.s.stop(), 0)
        self.assertSanitizerClean(self.s)


if __name__ == "__main__":
    unittest.main()

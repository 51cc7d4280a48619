"""Tier templates against the tier policy, and tenant values against what a
tier derives from the tenant's identity (issue 11, must-haves 2 and 3).

- Every class of template the issue found accepted (a cluster-admin
  ClusterRoleBinding, a kube-system Namespace, objects in kube-system, a
  Flux Kustomization or GitRepository, a Secret in flux-system,
  placeholders as keys or as kind, a !!python/object tag, and more) is
  refused on PUT with 422 tier-policy naming the rule; the registry (with
  its outbox), the repository, the chart store and the audit log (but for
  the refusal's record) are unchanged.
- Values that impersonate another tenant or move a pooled tenant
  (tenantId, apps.*.envId, a parent replaced whole) are refused with 422
  naming the path, on onboarding and on PATCH, tier changes included.
- A template that breaks the policy, committed by a foreign writer, is
  reported on /readyz and the tier's GET; its tenants are not rendered
  (409 naming the rule) until a PUT fixes it, including an operation the
  git writer meets after the template changed under it.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from common import fixture_text, poll  # noqa: E402
from harness import LandlordTestCase, onboard, template_path, tenant_path, yaml_docs  # noqa: E402
from storm import clone, wgit, write_file  # noqa: E402

CLUSTER_ADMIN = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {TENANT_ID}-admin
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - kind: ServiceAccount
    name: default
    namespace: {TENANT_ID}
"""

# name -> (extra document added to the premium template, the rule)
BAD_DOCUMENTS = {
    "cluster-admin ClusterRoleBinding": (CLUSTER_ADMIN, "cluster-rbac"),
    "ClusterRole": ("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
                    "  name: {TENANT_ID}-all\nrules:\n  - apiGroups: ['*']\n    resources: ['*']\n"
                    "    verbs: ['*']\n", "cluster-rbac"),
    "kube-system Namespace": ("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n",
                              "foreign-namespace"),
    "ConfigMap in kube-system": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}\n"
                                 "  namespace: kube-system\ndata:\n  a: b\n", "object-namespace"),
    "Role in kube-system": ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n"
                            "  name: {TENANT_ID}\n  namespace: kube-system\nrules: []\n",
                            "object-namespace"),
    "HelmRelease into kube-system": (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {TENANT_ID}-sys\n"
        "  namespace: flux-system\nspec:\n  targetNamespace: kube-system\n  chart:\n    spec:\n"
        "      chart: helm-tenant-chart\n", "helm-target-namespace"),
    "Flux Kustomization": (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n"
        "  name: {TENANT_ID}-extra\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./evil\n"
        "  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: {TENANT_ID}-evil\n",
        "flux-kustomization"),
    "GitRepository elsewhere": (
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
        "  name: {TENANT_ID}-evil\n  namespace: flux-system\nspec:\n  interval: 1m\n"
        "  url: https://evil.example/repo.git\n", "flux-source"),
    "Secret in flux-system": ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: flux-system\n"
                              "  namespace: flux-system\nstringData:\n  password: stolen\n",
                              "flux-namespace-secret"),
    "placeholder as a key": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}-cm\n"
                             "  namespace: {TENANT_ID}\ndata:\n  {TENANT_ID}: x\n", "placeholder-in-key"),
    "placeholder as kind": ("apiVersion: v1\nkind: {TENANT_ID}\nmetadata:\n  name: x\n"
                            "  namespace: {TENANT_ID}\n", "placeholder-in-type"),
    "!!python/object tag": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {TENANT_ID}-cm\n"
                            "  namespace: {TENANT_ID}\ndata:\n  run: !!python/object/apply:os.system [\"id\"]\n",
                            "yaml-tag"),
    "RoleBinding to cluster-admin": (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: admin\n"
        "  namespace: {TENANT_ID}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n"
        "  name: cluster-admin\nsubjects:\n  - kind: Group\n    name: system:authenticated\n",
        "rolebinding-cluster-role"),
    "Deployment (not on the list)": ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"
                                     "  namespace: {TENANT_ID}\nspec: {}\n", "kind-not-allowed"),
    "another tenant's HelmRelease": (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: victim-premium\n"
        "  namespace: flux-system\nspec:\n  targetNamespace: {TENANT_ID}\n", "object-name"),
}

# What a siloed tier may add: isolation and plan limits in its namespace.
GOOD_DOCUMENTS = fixture_text("tier_policy", "good-documents.yaml")


def with_doc(template, doc):
    return template.rstrip("\n") + "\n---\n" + doc


def chart_store(s):
    """Every file of the embedded chart store (the OCI image layout), with
    its size: no refusal may touch it."""
    out = {}
    for root, _, files in os.walk(os.path.join(s.data, "oci")):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, s.data)] = os.path.getsize(p)
    return out


class PolicyCase(LandlordTestCase):
    def state(self, s=None):
        s = s or self.s
        return s.snapshot(), s.head(), s.audit(), chart_store(s)

    def assertRefused(self, before, resp, status, ptype, what, field=None, detail=None, s=None):
        """A problem of this status and type (naming detail), and nothing
        changed: registry and outbox, repository, chart store, and the audit
        log but for one refusal record."""
        s = s or self.s
        snap, head, audit, charts = before
        body = self.assertProblem(resp, status, ptype, field=field, msg=what)
        if detail:
            self.assertIn(detail, body.get("detail", ""), what)
        self.assertEqual(s.snapshot(), snap, "%s changed the registry" % what)
        self.assertEqual(s.head(), head, "%s changed the repository" % what)
        self.assertEqual(chart_store(s), charts, "%s changed the chart store" % what)
        now = s.audit()
        self.assertEqual(now[:len(audit)], audit, "%s rewrote audit records" % what)
        self.assertEqual([(a["status"], a["operation_id"]) for a in now[len(audit):]], [(status, None)],
                         "%s: the refusal's record only" % what)
        return body


class Refusals(PolicyCase):
    @classmethod
    def setUpClass(cls):
        cls.s = cls.start_shared()
        assert onboard(cls.s, "victim", "premium").status == 201
        assert onboard(cls.s, "pooled", "basic").status == 201
        cls.premium = cls.s.get("/api/v1/tiers/premium").json["template"]

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly(sanitizer_clean=True)

    def test_templates_breaking_the_policy_are_refused(self):
        for name, (doc, rule) in BAD_DOCUMENTS.items():
            with self.subTest(name):
                before = self.state()
                r = self.s.request("PUT", "/api/v1/tiers/gold", json_body={"template": with_doc(self.premium, doc)})
                self.assertRefused(before, r, 422, "tier-policy", name, field="template",
                                   detail="template breaks the tier policy (%s)" % rule)
        # Replacing a tier in use with such a template: refused the same way.
        etag = self.s.get("/api/v1/tiers/premium").header("ETag")
        before = self.state()
        r = self.s.request("PUT", "/api/v1/tiers/premium", headers={"If-Match": etag},
                           json_body={"template": with_doc(self.premium, CLUSTER_ADMIN)})
        self.assertRefused(before, r, 422, "tier-policy", "replacing premium", detail="(cluster-rbac)")
        self.assertEqual(self.s.show(template_path("premium")), self.premium)

    def test_a_template_within_the_policy_is_taken(self):
        tmpl = with_doc(self.premium.replace("premium", "silver"), GOOD_DOCUMENTS)
        r = self.s.request("PUT", "/api/v1/tiers/silver", json_body={"template": tmpl})
        tier = self.assertJson(r, 201)
        self.assertEqual(tier["policy"], {"status": "ok"})
        self.assertEqual(tier["locked_values"], ["/tenantId"])
        self.assertEqual(self.s.show(template_path("silver")), tmpl)
        t = self.assertJson(onboard(self.s, "plans", "silver"), 201)
        kinds = [d["kind"] for d in yaml_docs(self.s.show(t["path"]))]
        self.assertEqual(kinds, ["Namespace", "HelmRelease", "ResourceQuota", "LimitRange", "NetworkPolicy",
                                 "ServiceAccount", "Role", "RoleBinding", "ConfigMap"])

    def test_a_tier_locks_more_values_by_annotation(self):
        s = self.s
        basic = s.get("/api/v1/tiers/basic").json["template"]
        marked = basic.replace("  labels:\n", "  annotations:\n    landlord.dev/locked-values: "
                               "/apps/producer/enabled,/apps/consumer/enabled\n  labels:\n", 1)
        self.assertNotEqual(marked, basic)
        before = self.state()
        r = s.request("PUT", "/api/v1/tiers/bronze",
                      json_body={"template": marked.replace("/apps/consumer/enabled", "apps.consumer.enabled")})
        self.assertRefused(before, r, 422, "invalid-request", "a bad pointer in the annotation", field="template",
                           detail="landlord.dev/locked-values")
        tier = self.assertJson(s.request("PUT", "/api/v1/tiers/bronze", json_body={"template": marked}), 201)
        self.assertEqual(tier["locked_values"], ["/apps/consumer/enabled", "/apps/consumer/envId",
                                                 "/apps/producer/enabled", "/apps/producer/envId", "/tenantId"])
        before = self.state()
        r = onboard(s, "upgrader", "bronze", values={"apps": {"producer": {"enabled": True}}})
        self.assertRefused(before, r, 422, "invalid-request", "a value the tier locks", field="values",
                           detail="/apps/producer/enabled")
        self.assertJson(onboard(s, "bronzed", "bronze", values={"apps": {"producer": {"ingress": {"enabled": False}}}}),
                        201)

    def test_seeded_tiers_meet_the_policy(self):
        tiers = {t["name"]: t for t in self.s.get("/api/v1/tiers").json["items"]}
        for name in ("basic", "premium", "advanced"):
            self.assertEqual(tiers[name]["policy"], {"status": "ok"}, name)
        self.assertEqual(tiers["basic"]["locked_values"], ["/apps/consumer/envId", "/apps/producer/envId", "/tenantId"])
        self.assertEqual(tiers["advanced"]["locked_values"], ["/apps/consumer/envId", "/apps/producer/envId", "/tenantId"])
        self.assertEqual(tiers["premium"]["locked_values"], ["/tenantId"])
        ready = self.assertJson(self.s.get("/readyz"), 200)
        self.assertEqual(ready["checks"]["tiers"], {"status": "ok"})

    def test_values_that_impersonate_or_move_are_refused(self):
        s = self.s
        cases = [
            ("tenantId of another tenant", onboard, ("impostor", "premium"), {"tenantId": "victim"},
             "/tenantId"),
            ("a pooled tenant moved to kube-system", onboard, ("mover", "basic"),
             {"apps": {"producer": {"envId": "kube-system"}}}, "/apps/producer/envId"),
            ("the consumer of a hybrid tenant placed", onboard, ("hybrid", "advanced"),
             {"apps": {"consumer": {"envId": "kube-system"}}}, "/apps/consumer/envId"),
            ("apps replaced whole", onboard, ("wholesale", "basic"), {"apps": None}, "/apps"),
            ("an app replaced by a list", onboard, ("listed", "basic"), {"apps": {"producer": ["x"]}},
             "/apps/producer"),
        ]
        for what, _, (tid, tier), values, path in cases:
            with self.subTest(what):
                before = self.state()
                r = onboard(s, tid, tier, values=values)
                self.assertRefused(before, r, 422, "invalid-request", what, field="values", detail=path)
        for what, tid, body, path in (
                ("PATCH tenantId", "victim", {"values": {"tenantId": "pooled"}}, "/tenantId"),
                ("PATCH a pooled tenant's placement", "pooled",
                 {"values": {"apps": {"consumer": {"envId": "victim"}}}}, "/apps/consumer/envId")):
            with self.subTest(what):
                before = self.state()
                r = s.request("PATCH", "/api/v1/tenants/" + tid, json_body=body)
                self.assertRefused(before, r, 422, "invalid-request", what, field="values", detail=path)
        # Values a siloed tier leaves open become locked when the tenant
        # moves to a pooled one: the tier change is refused, not the values
        # silently dropped.
        self.assertJson(onboard(s, "siloed", "premium", values={"apps": {"producer": {"envId": "own"}}}), 201)
        before = self.state()
        r = s.request("PATCH", "/api/v1/tenants/siloed", json_body={"tier": "basic"})
        self.assertRefused(before, r, 422, "invalid-request", "tier change", field="values",
                           detail="/apps/producer/envId")
        # What a tenant may set still goes through.
        t = self.assertJson(onboard(s, "tagged", "basic", values={"apps": {"producer": {"image": {"tag": "9.9"}}},
                                                                  "tenantid": "not the same key"}), 201)
        hr = yaml_docs(s.show(t["path"]))[0]["spec"]["values"]
        self.assertEqual((hr["tenantId"], hr["apps"]["producer"]["envId"]), ("tagged", "pool-1"))
        for tid in ("victim", "pooled"):
            self.assertEqual(s.get("/api/v1/tenants/" + tid).json["values"], {})


class ForeignTemplate(PolicyCase):
    """A tier template that breaks the policy arrives by a foreign commit."""

    def break_tier(self, s, tier, doc=CLUSTER_ADMIN):
        w = clone(s.remote)
        path = template_path(tier)
        with open(os.path.join(w, path), encoding="utf-8") as f:
            good = f.read()
        write_file(w, path, with_doc(good, doc))
        wgit(w, "commit", "-q", "-am", "Give tier %s cluster-admin" % tier)
        wgit(w, "push", "-q", "origin", "main")
        return good, s.head()

    def poll(self, fn, what, timeout=30.0):
        return poll(fn, timeout, 0.1, what + " not seen")

    def test_reported_and_not_rendered_until_fixed(self):
        s = self.s = self.start_server(args=["--git-poll-interval", "1"])
        tmpl = s.get("/api/v1/tiers/premium").json["template"].replace("premium", "gold")
        self.assertJson(s.request("PUT", "/api/v1/tiers/gold", json_body={"template": tmpl}), 201)
        g1 = self.assertJson(onboard(s, "g1", "gold"), 201)
        g1_file = s.show(g1["path"])
        good, foreign_head = self.break_tier(s, "gold")

        ready = self.poll(lambda: (lambda j: j["checks"]["tiers"]["status"] == "failed" and j)(
            s.get("/readyz").json), "the broken tier on /readyz")
        self.assertEqual(ready["status"], "degraded")
        self.assertEqual([(v["tier"], v["rule"]) for v in ready["checks"]["tiers"]["violations"]],
                         [("gold", "cluster-rbac")])
        self.assertIn("ClusterRoleBinding", ready["checks"]["tiers"]["violations"][0]["error"])
        self.assertEqual(s.get("/readyz").status, 200, "reads and other tiers go on")
        tier = self.assertJson(s.get("/api/v1/tiers/gold"), 200)
        self.assertEqual((tier["policy"]["status"], tier["policy"]["rule"]), ("violated", "cluster-rbac"))

        # Nothing is rendered from it: not a change of its tenant, not an
        # onboarding into it.
        for what, call in (
                ("PATCH a tenant of the tier", lambda: s.request("PATCH", "/api/v1/tenants/g1",
                                                                 json_body={"values": {"extra": {"a": 1}}})),
                ("PATCH its release", lambda: s.request("PATCH", "/api/v1/tenants/g1", json_body={"release": "1.2"})),
                ("onboard into the tier", lambda: onboard(s, "g2", "gold"))):
            with self.subTest(what):
                before = self.state()
                body = self.assertRefused(before, call(), 409, "conflict", what, field="tier",
                                          detail="tier 'gold' breaks the tier policy (cluster-rbac)")
                self.assertIn("PUT /api/v1/tiers/gold", body.get("hint", ""))
        self.assertEqual((s.head(), s.show(g1["path"])), (foreign_head, g1_file))
        # Other tiers are still written.
        self.assertJson(onboard(s, "p1", "premium"), 201)

        # A PUT with a good template fixes it; then its tenants render again.
        etag = s.get("/api/v1/tiers/gold").header("ETag")
        self.assertJson(s.request("PUT", "/api/v1/tiers/gold", headers={"If-Match": etag},
                                  json_body={"template": good}), 200)
        self.assertEqual(self.assertJson(s.get("/readyz"), 200)["checks"]["tiers"], {"status": "ok"})
        self.assertEqual(s.get("/api/v1/tiers/gold").json["policy"], {"status": "ok"})
        t = self.assertJson(s.request("PATCH", "/api/v1/tenants/g1", json_body={"values": {"extra": {"a": 1}}}), 200)
        self.assertEqual(yaml_docs(s.show(t["path"]))[1]["spec"]["values"]["extra"], {"a": 1})
        self.assertNotIn("ClusterRoleBinding", s.show(t["path"]))
        self.assertEqual(s.stop(), 0)
        self.assertSanitizerClean(s)

    def test_the_git_writer_refuses_a_template_changed_under_it(self):
        # landlord does not fetch by itself here: its catalogue still holds
        # the good template when the change is asked for, and the writer
        # meets the bad one only when its push is refused and it rebuilds.
        s = self.s = self.start_server(args=["--git-poll-interval", "3600"])
        tmpl = s.get("/api/v1/tiers/premium").json["template"].replace("premium", "gold")
        self.assertJson(s.request("PUT", "/api/v1/tiers/gold", json_body={"template": tmpl}), 201)
        g1 = self.assertJson(onboard(s, "g1", "gold"), 201)
        g1_file = s.show(g1["path"])
        _, foreign_head = self.break_tier(s, "gold")
        r = s.request("PATCH", "/api/v1/tenants/g1", json_body={"values": {"extra": {"a": 1}}})
        body = self.assertProblem(r, 409, "conflict")
        self.assertIn("(cluster-rbac)", body["detail"])
        self.assertEqual((s.head(), s.show(g1["path"])), (foreign_head, g1_file),
                         "nothing rendered from the broken template was pushed")
        self.assertNotIn("ClusterRoleBinding", s.show(g1["path"]))
        ready = self.assertJson(s.get("/readyz"), 200)
        self.assertEqual(ready["checks"]["tiers"]["violations"][0]["tier"], "gold")
        self.assertEqual(s.stop(), 0)
        self.assertSanitizerClean(s)

    def test_the_git_writer_refuses_values_a_new_template_locks(self):
        # A foreign commit makes the tier lock /extra; the change asked for
        # before landlord saw it sets /extra: the writer refuses to render it.
        s = self.s = self.start_server(args=["--git-poll-interval", "3600"])
        tmpl = s.get("/api/v1/tiers/premium").json["template"].replace("premium", "gold")
        self.assertJson(s.request("PUT", "/api/v1/tiers/gold", json_body={"template": tmpl}), 201)
        g1 = self.assertJson(onboard(s, "g1", "gold"), 201)
        g1_file = s.show(g1["path"])
        w = clone(s.remote)
        locked = tmpl.replace("  labels:\n", "  annotations:\n    landlord.dev/locked-values: /extra\n  labels:\n")
        self.assertNotEqual(locked, tmpl)
        write_file(w, template_path("gold"), locked)
        wgit(w, "commit", "-q", "-am", "Lock /extra in tier gold")
        wgit(w, "push", "-q", "origin", "main")
        foreign_head = s.head()
        r = s.request("PATCH", "/api/v1/tenants/g1", json_body={"values": {"extra": {"a": 1}}})
        body = self.assertProblem(r, 422, "render-failed")
        self.assertIn("values may not set /extra", body["detail"])
        self.assertEqual((s.head(), s.show(g1["path"])), (foreign_head, g1_file))
        # The catalogue follows the new template: the same change is now
        # refused before anything is stored.
        tier = self.assertJson(s.get("/api/v1/tiers/gold"), 200)
        self.assertIn("/extra", tier["locked_values"])
        self.assertEqual(tier["policy"], {"status": "ok"})
        before = self.state()
        r = s.request("PATCH", "/api/v1/tenants/g1", json_body={"values": {"extra": {"b": 2}}})
        self.assertRefused(before, r, 422, "invalid-request", "values the tier now locks", field="values",
                           detail="/extra")
        self.assertEqual(s.stop(), 0)
        self.assertSanitizerClean(s)


if __name__ == "__main__":
    unittest.main()

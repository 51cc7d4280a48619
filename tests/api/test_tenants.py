"""Happy paths of the tenant API against the real binary: onboarding,
listing, offboarding, re-onboarding, tiers, operations, restarts, with the
GitOps remote and the registry read back after each step."""

import os
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import (  # noqa: E402
    HEX40,
    PROD,
    RFC3339_MS,
    LandlordTestCase,
    Server,
    SharedServerTestCase,
    kustomization_path,
    kustomization_resources,
    naive_render,
    onboard,
    template_comments,
    template_path,
    tenant_path,
    yaml_docs,
)

TENANT_FIELDS = (
    "id",
    "tier",
    "release",
    "values",
    "state",
    "sync",
    "commit",
    "path",
    "operation",
    "created_at",
    "updated_at",
    "offboarded_at",
)


class TenantApi(SharedServerTestCase):
    """One server shared by tests that each use their own tenant ids."""

    # -- helpers ------------------------------------------------------------

    def assertTenantShape(self, t, tenant_id, tier, release):
        for f in TENANT_FIELDS:
            self.assertIn(f, t, "tenant JSON lacks %r: %r" % (f, t))
        self.assertEqual(t["id"], tenant_id)
        self.assertEqual(t["tier"], tier)
        self.assertEqual(t["release"], release)
        self.assertIsInstance(t["values"], dict)
        self.assertEqual(t["path"], tenant_path(tier, tenant_id))
        self.assertRegex(t["created_at"], RFC3339_MS)
        self.assertRegex(t["updated_at"], RFC3339_MS)
        self.assertIsInstance(t["operation"], int)

    def assertOnboarded(self, tenant_id, tier, release="0.0", release_expr="0.0.x", values=None):
        """Onboards and checks the answer, the commit and the files."""
        s = self.s
        count0 = s.commit_count()
        head0 = s.head()
        r = onboard(s, tenant_id, tier, release=release, values=values)
        t = self.assertJson(r, 201)
        self.assertEqual(r.header("Location"), "/api/v1/tenants/" + tenant_id)
        self.assertTenantShape(t, tenant_id, tier, release)
        self.assertEqual(t["values"], values or {})
        self.assertEqual(t["state"], "unknown", "no cluster is configured: landlord must not pretend")
        self.assertIsInstance(t.get("state_reason"), str)
        self.assertEqual(t["sync"], "committed")
        self.assertIsNone(t["offboarded_at"])
        self.assertRegex(t["commit"] or "", HEX40)
        # exactly one new commit, on top of the old head, carrying the tenant
        self.assertEqual(s.commit_count(), count0 + 1)
        head = s.head()
        self.assertEqual(t["commit"], head)
        self.assertEqual(s.git("rev-parse", head + "^").strip(), head0)
        self.assertEqual(s.log()[0][1], "Onboard tenant %s (%s)" % (tenant_id, tier))
        self.assertEqual(
            s.changed_files(head),
            {tenant_path(tier, tenant_id): "A", kustomization_path(tier): "M"},
        )
        # the file: the template rendered for the tenant, comments kept
        text = s.show(tenant_path(tier, tenant_id))
        tmpl = s.show(template_path(tier))
        self.assertIn('version: "%s"' % release_expr, text)
        for c in template_comments(tmpl):
            # kept verbatim, or with its placeholders filled in
            self.assertTrue(c in text or naive_render(c, tenant_id, tier, release_expr) in text,
                            "template comment lost: %r" % c)
        docs = yaml_docs(text)
        if not values:
            self.assertEqual(docs, yaml_docs(naive_render(tmpl, tenant_id, tier, release_expr)))
        hrs = [d for d in docs if d.get("kind") == "HelmRelease"]
        self.assertEqual(len(hrs), 1, text)
        hr = hrs[0]
        self.assertEqual(hr["apiVersion"], "helm.toolkit.fluxcd.io/v2")
        self.assertEqual(hr["metadata"]["name"], "%s-%s" % (tenant_id, tier))
        self.assertEqual(hr["spec"]["values"]["tenantId"], tenant_id)
        self.assertEqual(hr["spec"]["chart"]["spec"]["version"], release_expr)
        for d in docs:
            self.assertIn("apiVersion", d)
            self.assertIn("kind", d)
            self.assertIn("name", d["metadata"])
        # the kustomization lists it exactly once
        k = s.show(kustomization_path(tier))
        self.assertEqual(kustomization_resources(k).count(tenant_id + ".yaml"), 1, k)
        self.assertEqual(k.count(tenant_id + ".yaml"), 1, k)
        # the registry agrees
        rows = [r for r in s.rows("tenants") if r["id"] == tenant_id]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["tier"], tier)
        self.assertEqual(rows[0]["commit_sha"], head)
        self.assertIsNone(rows[0]["offboarded_at"])
        self.assertEqual(rows[0]["lifecycle"], "active")
        self.assertEqual(rows[0]["sync"], "committed")
        ops = [o for o in s.rows("operations") if o["id"] == t["operation"]]
        self.assertEqual(len(ops), 1)
        self.assertEqual((ops[0]["kind"], ops[0]["tenant_id"], ops[0]["state"], ops[0]["commit_sha"]),
                         ("onboard", tenant_id, "pushed", head))
        return t, docs, text

    def get_tenant(self, tenant_id):
        return self.assertJson(self.s.get("/api/v1/tenants/" + tenant_id), 200)

    def list_all(self, query=""):
        r = self.s.get("/api/v1/tenants" + query)
        return self.assertJson(r, 200)

    # -- onboarding ---------------------------------------------------------

    def test_onboard_premium(self):
        t, docs, text = self.assertOnboarded("acme", "premium")
        kinds = [d["kind"] for d in docs]
        self.assertEqual(kinds, ["Namespace", "HelmRelease"])
        self.assertEqual(docs[0]["metadata"]["name"], "acme")
        hr = docs[1]
        self.assertEqual(hr["spec"]["targetNamespace"], "acme")
        self.assertIn('# {"$imagepolicy": "flux-system:producer-image-policy:tag"}', text)
        self.assertIn('# {"$imagepolicy": "flux-system:consumer-image-policy:tag"}', text)
        self.assertTrue(hr["spec"]["values"]["apps"]["producer"]["enabled"])
        self.assertTrue(hr["spec"]["values"]["apps"]["consumer"]["enabled"])
        # the operation that carried it
        r = self.s.get("/api/v1/operations/%d" % t["operation"])
        op = self.assertJson(r, 200)
        self.assertEqual(op["id"], t["operation"])
        self.assertEqual(op["kind"], "onboard")
        self.assertEqual(op["tenant"], "acme")
        self.assertEqual(op["state"], "pushed")
        self.assertEqual(op["commit"], t["commit"])
        self.assertIsNone(op["error"])
        self.assertRegex(op["created_at"], RFC3339_MS)
        self.assertRegex(op["updated_at"], RFC3339_MS)
        # GET one: the same tenant with its commits
        g = self.get_tenant("acme")
        self.assertEqual(g["commit"], t["commit"])
        self.assertEqual(g["created_at"], t["created_at"])
        self.assertEqual(len(g["commits"]), 1, g)
        self.assertEqual(g["commits"][0]["sha"], t["commit"])
        self.assertEqual(g["commits"][0]["operation"], "onboard")
        self.assertRegex(g["commits"][0]["at"], RFC3339_MS)

    def test_onboard_basic(self):
        t, docs, text = self.assertOnboarded("bravo", "basic")
        self.assertEqual([d["kind"] for d in docs], ["HelmRelease"])
        hr = docs[0]
        self.assertEqual(hr["spec"]["targetNamespace"], "pool-1")
        self.assertFalse(hr["spec"]["values"]["apps"]["producer"]["enabled"])
        self.assertFalse(hr["spec"]["values"]["apps"]["consumer"]["enabled"])

    def test_onboard_advanced(self):
        t, docs, text = self.assertOnboarded("charlie", "advanced", release="1.2.3", release_expr="1.2.3")
        self.assertEqual([d["kind"] for d in docs], ["Namespace", "HelmRelease"])
        apps = docs[1]["spec"]["values"]["apps"]
        self.assertFalse(apps["producer"]["enabled"])
        self.assertTrue(apps["consumer"]["enabled"])
        self.assertIn('# {"$imagepolicy": "flux-system:consumer-image-policy:tag"}', text)

    def test_release_forms(self):
        self.assertOnboarded("rel-float", "basic", release="2.5.x", release_expr="2.5.x")
        self.assertOnboarded("rel-minor", "basic", release="3.1", release_expr="3.1.x")

    def test_default_release(self):
        r = self.s.post_json("/api/v1/tenants", {"id": "defrel", "tier": "basic"})
        t = self.assertJson(r, 201)
        self.assertEqual(t["release"], "0.0")
        self.assertIn('version: "0.0.x"', self.s.show(tenant_path("basic", "defrel")))

    def test_wait_zero(self):
        """?wait=0 answers 201 when already pushed, else 202 with Location to
        the operation, which then turns pushed."""
        r = self.s.post_json("/api/v1/tenants?wait=0", {"id": "nowait", "tier": "basic"})
        self.assertIn(r.status, (201, 202), r)
        t = r.json
        if r.status == 202:
            loc = r.header("Location")
            self.assertRegex(loc or "", r"^/api/v1/operations/\d+$")
            deadline = time.monotonic() + 10
            while True:
                op = self.assertJson(self.s.get(loc), 200)
                if op["state"] != "queued" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(op["state"], "pushed")
        g = self.get_tenant("nowait")
        self.assertEqual(g["sync"], "committed")
        self.assertEqual(g["commit"], self.s.git("log", "-1", "--format=%H", "main", "--",
                                                 tenant_path("basic", "nowait")).strip())
        self.assertEqual(t["id"], "nowait")

    def test_values_override(self):
        values = {"apps": {"producer": {"image": {"tag": "9.9"}}}, "extra": {"k": "v", "n": 3}}
        t, docs, text = self.assertOnboarded("valued", "premium", values=values)
        v = docs[1]["spec"]["values"]
        self.assertEqual(v["apps"]["producer"]["image"]["tag"], "9.9")
        self.assertEqual(v["apps"]["consumer"]["image"]["tag"], "0.1", "untouched defaults stay")
        self.assertTrue(v["apps"]["producer"]["enabled"])
        self.assertEqual(v["extra"], {"k": "v", "n": 3})
        self.assertEqual(v["tenantId"], "valued")
        self.assertIn('# {"$imagepolicy": "flux-system:consumer-image-policy:tag"}', text)
        self.assertEqual(self.get_tenant("valued")["values"], values)

    def test_values_with_substitution_refused(self):
        count0, snap0 = self.s.commit_count(), self.s.snapshot()
        r = onboard(self.s, "subst", "premium", values={"apps": {"producer": {"image": {"tag": "${TAG}"}}}})
        self.assertProblem(r, 422, "invalid-request")
        self.assertEqual(self.s.commit_count(), count0)
        self.assertEqual(self.s.snapshot(), snap0)
        self.assertProblem(self.s.get("/api/v1/tenants/subst"), 404, "not-found")

    # -- listing --------------------------------------------------------------

    def test_list_and_tier_filter(self):
        for tid, tier in (("list-p1", "premium"), ("list-b1", "basic"), ("list-a1", "advanced")):
            self.assertJson(onboard(self.s, tid, tier), 201)
        body = self.list_all()
        self.assertEqual(set(body), {"items", "next_cursor"})
        self.assertIsNone(body["next_cursor"])
        ids = [t["id"] for t in body["items"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(ids, sorted(ids), "lists are ordered by id (openapi.yaml)")
        self.assertTrue({"list-p1", "list-b1", "list-a1"} <= set(ids), ids)
        for t in body["items"]:
            self.assertNotIn("commits", t, "lists carry no commits")
            for f in TENANT_FIELDS:
                self.assertIn(f, t)
        self.assertEqual(len(ids), len([r for r in self.s.rows("tenants")]))
        for tier in ("premium", "basic", "advanced"):
            b = self.list_all("?tier=" + tier)
            got = [t["id"] for t in b["items"]]
            self.assertTrue(all(t["tier"] == tier for t in b["items"]), b)
            self.assertEqual(
                sorted(got), sorted(t["id"] for t in body["items"] if t["tier"] == tier)
            )
        self.assertIn("list-p1", [t["id"] for t in self.list_all("?tier=premium")["items"]])
        self.assertNotIn("list-b1", [t["id"] for t in self.list_all("?tier=premium")["items"]])
        self.assertEqual(self.list_all("?tier=nosuchtier")["items"], [])
        # state filter: every tenant here is unknown or offboarded
        unknown = self.list_all("?state=unknown")["items"]
        self.assertTrue(all(t["state"] == "unknown" for t in unknown))
        self.assertIn("list-a1", [t["id"] for t in unknown])

    def test_pagination_walks_everything(self):
        for i in range(3):
            self.assertJson(onboard(self.s, "page-%d" % i, "basic"), 201)
        everything = [t["id"] for t in self.list_all("?limit=500")["items"]]
        self.assertGreaterEqual(len(everything), 3)
        seen, cursor, pages = [], None, 0
        while True:
            q = "?limit=1" + ("&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
            b = self.list_all(q)
            pages += 1
            self.assertLessEqual(len(b["items"]), 1)
            seen += [t["id"] for t in b["items"]]
            cursor = b["next_cursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertLess(pages, len(everything) + 3, "pagination does not end")
        self.assertEqual(seen, everything)
        # limit=2 walks the same, in pages of 2
        b = self.list_all("?limit=2")
        self.assertEqual([t["id"] for t in b["items"]], everything[:2])
        self.assertIsNotNone(b["next_cursor"])
        b2 = self.list_all("?limit=2&cursor=" + urllib.parse.quote(b["next_cursor"], safe=""))
        self.assertEqual([t["id"] for t in b2["items"]], everything[2:4])

    # -- tiers --------------------------------------------------------------------

    def test_tiers(self):
        body = self.assertJson(self.s.get("/api/v1/tiers"), 200)
        by = {t["name"]: t for t in body["items"]}
        self.assertTrue({"basic", "premium", "advanced"} <= set(by), by)
        self.assertEqual(by["basic"]["deployment_model"], "pooled")
        self.assertEqual(by["premium"]["deployment_model"], "siloed")
        self.assertEqual(by["advanced"]["deployment_model"], "hybrid")
        self.assertIn("pool-1", by["basic"]["pools"])
        self.assertIn("pool-1", by["advanced"]["pools"])
        self.assertEqual(by["premium"]["pools"], [])
        for name, t in by.items():
            self.assertEqual(t["template_path"], template_path(name))
            self.assertIsInstance(t["tenants"], int)
            self.assertNotIn("template", t)
        for name in ("basic", "premium", "advanced"):
            one = self.assertJson(self.s.get("/api/v1/tiers/" + name), 200)
            self.assertEqual(one["name"], name)
            self.assertEqual(one["template"], self.s.show(template_path(name)))
            self.assertEqual(one["deployment_model"], by[name]["deployment_model"])
        self.assertProblem(self.s.get("/api/v1/tiers/gold"), 404, "not-found")

    def test_tier_tenant_count(self):
        def count():
            return self.assertJson(self.s.get("/api/v1/tiers/advanced"), 200)["tenants"]

        n0 = count()
        self.assertJson(onboard(self.s, "counted", "advanced"), 201)
        self.assertEqual(count(), n0 + 1)
        self.assertJson(self.s.delete("/api/v1/tenants/counted"), 200)
        self.assertEqual(count(), n0)

    # -- offboarding --------------------------------------------------------------

    def test_metrics_end_with_a_deleted_tier(self):
        """/metrics counts offboarded tenants under their tier while the
        tier exists; once the tier is deleted its series are gone, and the
        other tiers' stay."""
        s = self.s

        def series(tier):
            r = s.get("/metrics")
            self.assertEqual(r.status, 200)
            text = r.body.decode()
            return re.findall(r'^landlord_tenants\{tier="%s",state="([^"]+)"\} (\d+)$' % tier, text, re.M)

        tmpl = s.get("/api/v1/tiers/premium").json["template"].replace("premium", "metered")
        self.assertJson(s.request("PUT", "/api/v1/tiers/metered", json_body={"template": tmpl}), 201)
        self.assertJson(onboard(s, "gauged", "metered"), 201)
        self.assertEqual(series("metered"), [("unknown", "1")])
        self.assertJson(s.delete("/api/v1/tenants/gauged"), 200)
        self.assertEqual(series("metered"), [("offboarded", "1")])
        self.assertEqual(s.delete("/api/v1/tiers/metered").status, 204)
        self.assertEqual(series("metered"), [])
        self.assertJson(onboard(s, "not-metered", "basic"), 201)
        self.assertTrue(series("basic"), "the other tiers keep their series")

    def test_offboard(self):
        on, _, _ = self.assertOnboarded("leaving", "premium")
        count0 = self.s.commit_count()
        r = self.s.delete("/api/v1/tenants/leaving")
        t = self.assertJson(r, 200)
        self.assertEqual(t["id"], "leaving")
        self.assertEqual(t["state"], "offboarded")
        self.assertRegex(t["offboarded_at"] or "", RFC3339_MS)
        head = self.s.head()
        self.assertEqual(self.s.commit_count(), count0 + 1, "offboarding is ONE commit")
        self.assertEqual(t["commit"], head)
        self.assertEqual(self.s.log()[0][1], "Offboard tenant leaving (premium)")
        self.assertEqual(
            self.s.changed_files(head),
            {tenant_path("premium", "leaving"): "D", kustomization_path("premium"): "M"},
        )
        self.assertNotIn(tenant_path("premium", "leaving"), self.s.ls_tree())
        k = self.s.show(kustomization_path("premium"))
        self.assertNotIn("leaving.yaml", kustomization_resources(k))
        self.assertNotIn("leaving.yaml", k)
        # the record stays, with both commits
        g = self.get_tenant("leaving")
        self.assertEqual(g["state"], "offboarded")
        self.assertEqual([c["operation"] for c in g["commits"]], ["onboard", "offboard"])
        self.assertEqual([c["sha"] for c in g["commits"]], [on["commit"], head])
        row = [x for x in self.s.rows("tenants") if x["id"] == "leaving"]
        self.assertEqual(len(row), 1)
        # the registry keeps what landlord asked for in `lifecycle`
        self.assertEqual(row[0]["lifecycle"], "offboarded")
        self.assertIsNotNone(row[0]["offboarded_at"])
        op = self.assertJson(self.s.get("/api/v1/operations/%d" % t["operation"]), 200)
        self.assertEqual((op["kind"], op["state"], op["commit"]), ("offboard", "pushed", head))
        # still listed, as offboarded
        listed = [x for x in self.list_all("?limit=500")["items"] if x["id"] == "leaving"]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["state"], "offboarded")
        self.assertIn("leaving", [x["id"] for x in self.list_all("?state=offboarded&limit=500")["items"]])
        # again: 200, nothing changes
        snap = self.s.snapshot()
        r2 = self.s.delete("/api/v1/tenants/leaving")
        t2 = self.assertJson(r2, 200)
        self.assertEqual(t2["state"], "offboarded")
        self.assertEqual(t2["commit"], head)
        self.assertEqual(self.s.commit_count(), count0 + 1)
        self.assertEqual(self.s.snapshot(), snap)

    def test_reonboard_after_offboard(self):
        on, _, _ = self.assertOnboarded("phoenix", "basic")
        off = self.assertJson(self.s.delete("/api/v1/tenants/phoenix"), 200)
        again, _, _ = self.assertOnboarded("phoenix", "basic")
        self.assertEqual(again["created_at"], on["created_at"], "the record is reused")
        self.assertNotEqual(again["state"], "offboarded")
        self.assertIsNone(again["offboarded_at"])
        g = self.get_tenant("phoenix")
        self.assertEqual(
            [(c["operation"], c["sha"]) for c in g["commits"]],
            [("onboard", on["commit"]), ("offboard", off["commit"]), ("onboard", again["commit"])],
        )
        self.assertEqual(len([x for x in self.s.rows("tenants") if x["id"] == "phoenix"]), 1)

    # -- errors on the happy paths ------------------------------------------------

    def test_duplicate_is_409_with_the_tenant(self):
        first, _, _ = self.assertOnboarded("twice", "premium")
        count0, snap0 = self.s.commit_count(), self.s.snapshot()
        for body in ({"id": "twice", "tier": "premium"}, {"id": "twice", "tier": "basic", "release": "1.0"}):
            r = self.s.post_json("/api/v1/tenants", body)
            p = self.assertProblem(r, 409, "conflict")
            self.assertIsInstance(p.get("tenant"), dict, p)
            self.assertEqual(p["tenant"]["id"], "twice")
            self.assertEqual(p["tenant"]["tier"], "premium")
            self.assertEqual(p["tenant"]["commit"], first["commit"])
            self.assertEqual(self.s.commit_count(), count0)
            self.assertEqual(self.s.snapshot(), snap0)

    def test_unknown_tenant_404(self):
        count0, snap0 = self.s.commit_count(), self.s.snapshot()
        self.assertProblem(self.s.get("/api/v1/tenants/nobody"), 404, "not-found")
        self.assertProblem(self.s.delete("/api/v1/tenants/nobody"), 404, "not-found")
        self.assertProblem(self.s.get("/api/v1/operations/999999"), 404, "not-found")
        self.assertEqual(self.s.commit_count(), count0)
        self.assertEqual(self.s.snapshot(), snap0)


class Restart(LandlordTestCase):
    def test_tenants_survive_a_restart(self):
        s = Server()
        s.start()
        self.addCleanup(s.kill)
        a = self.assertJson(onboard(s, "keep-a", "premium"), 201)
        b = self.assertJson(onboard(s, "keep-b", "basic", release="1.4.2"), 201)
        self.assertJson(s.delete("/api/v1/tenants/keep-b"), 200)
        listed0 = self.assertJson(s.get("/api/v1/tenants"), 200)
        count0, log0 = s.commit_count(), s.log()
        self.assertEqual(s.stop(), 0)
        s.start()
        self.assertEqual(s.log(), log0, "a restart adds no commit")
        self.assertEqual(self.assertJson(s.get("/api/v1/tenants"), 200), listed0)
        ga = self.assertJson(s.get("/api/v1/tenants/keep-a"), 200)
        self.assertEqual(ga["commit"], a["commit"])
        self.assertEqual(ga["state"], "unknown")
        gb = self.assertJson(s.get("/api/v1/tenants/keep-b"), 200)
        self.assertEqual(gb["state"], "offboarded")
        self.assertEqual(gb["release"], "1.4.2")
        self.assertEqual([c["operation"] for c in gb["commits"]], ["onboard", "offboard"])
        self.assertEqual(gb["commits"][0]["sha"], b["commit"])
        # still writable after the restart
        self.assertProblem(onboard(s, "keep-a", "premium"), 409, "conflict")
        c = self.assertJson(onboard(s, "keep-c", "advanced"), 201)
        self.assertEqual(s.commit_count(), count0 + 1)
        self.assertEqual(c["commit"], s.head())
        self.assertEqual(s.stop(), 0)


class PushFailure(LandlordTestCase):
    """A failure after validation leaves no tenant record and no commit
    (issue 2, "Registry and repo agree").  The remote's branch is locked
    with a stale ref lock file, so every push fails."""

    def test_rejected_push(self):
        """A remote that refuses every push (a stale lock on the branch): writes
        are accepted and queue (202, sync pending), nothing is lost, /readyz
        says degraded, and everything lands in order once the remote heals."""
        s = self.start_server()
        lock = os.path.join(s.remote, "refs", "heads", "main.lock")
        self.assertJson(onboard(s, "stays", "basic"), 201)
        log0 = s.log()

        open(lock, "w").close()
        r = onboard(s, "blocked", "premium")
        t = self.assertJson(r, 202)
        self.assertEqual(t["sync"], "pending")
        self.assertRegex(r.header("Location"), r"^/api/v1/operations/\d+$")
        self.assertEqual(s.log(), log0)
        g = self.assertJson(s.get("/api/v1/tenants/blocked"), 200)
        self.assertEqual(g["sync"], "pending")
        ready = self.assertJson(s.get("/readyz"), 200)
        self.assertEqual(ready["checks"]["git"]["status"], "degraded")
        self.assertGreaterEqual(ready["checks"]["git"]["queued"], 1)

        r = s.delete("/api/v1/tenants/stays")
        self.assertJson(r, 202)
        self.assertEqual(s.log(), log0)
        self.assertEqual(self.assertJson(s.get("/api/v1/tenants/stays"), 200)["state"], "offboarding")

        os.unlink(lock)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ops = [o for o in s.rows("operations") if o["state"] == "queued"]
            if not ops:
                break
            time.sleep(0.2)
        self.assertEqual([o for o in s.rows("operations") if o["state"] != "pushed"], [])
        self.assertIn(s.commit_count(), (len(log0) + 1, len(log0) + 2))
        tree = s.ls_tree()
        self.assertIn(tenant_path("premium", "blocked"), tree)
        self.assertNotIn(tenant_path("basic", "stays"), tree)
        self.assertEqual(self.assertJson(s.get("/api/v1/tenants/blocked"), 200)["commit"], s.head())
        self.assertEqual(self.assertJson(s.get("/api/v1/tenants/stays"), 200)["state"], "offboarded")
        self.assertEqual(self.assertJson(s.get("/readyz"), 200)["checks"]["git"]["status"], "ok")
        self.assertEqual(s.stop(), 0)


class Concurrency(LandlordTestCase):
    """Many onboardings at once: every one is answered, pushed, and listed
    exactly once in its tier's kustomization."""

    def test_parallel_onboarding(self):
        import threading

        s = self.start_server()
        count0 = s.commit_count()
        ids = ["par-%02d" % i for i in range(24)]
        tiers = ["basic", "premium", "advanced"]
        results = {}

        def go(i, tid):
            results[tid] = onboard(s, tid, tiers[i % 3])

        threads = [threading.Thread(target=go, args=(i, tid)) for i, tid in enumerate(ids)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        for tid in ids:
            self.assertJson(results[tid], 201, tid)
        count = s.commit_count()
        self.assertGreater(count, count0)
        self.assertLessEqual(count, count0 + len(ids))
        tree = set(s.ls_tree())
        for tier in tiers:
            res = kustomization_resources(s.show(kustomization_path(tier)))
            self.assertEqual(len(res), len(set(res)), res)
        for i, tid in enumerate(ids):
            tier = tiers[i % 3]
            self.assertIn(tenant_path(tier, tid), tree)
            self.assertEqual(kustomization_resources(s.show(kustomization_path(tier))).count(tid + ".yaml"), 1)
            # its commit is on main
            s.git("merge-base", "--is-ancestor", results[tid].json["commit"], "main")
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()

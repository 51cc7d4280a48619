"""PATCH /api/v1/tenants/{id} (issue 3, "Tier change"): a tier change moves
the tenant between tier folders in one commit and keeps its values; a
release or values change re-renders the file from the tier template and the
values, keeping the template's comments; bad PATCHes change nothing."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import (  # noqa: E402
    HEX40,
    SharedServerTestCase,
    kustomization_path,
    kustomization_resources,
    merged,
    naive_render,
    onboard,
    template_comments,
    template_path,
    tenant_path,
    yaml_docs,
)

JSON = {"Content-Type": "application/json"}
PRODUCER_MARK = '# {"$imagepolicy": "flux-system:producer-image-policy:tag"}'
CONSUMER_MARK = '# {"$imagepolicy": "flux-system:consumer-image-policy:tag"}'


def trailer_ops(message):
    m = re.search(r"^Landlord-Operations:[ \t]*(.*)$", message, re.M)
    return [int(x) for x in re.findall(r"\d+", m.group(1))] if m else []


class Patch(SharedServerTestCase):

    # -- helpers ------------------------------------------------------------------

    def patch(self, tenant_id, obj=None, raw=None, headers=JSON):
        body = raw if raw is not None else json.dumps(obj).encode()
        return self.s.request("PATCH", "/api/v1/tenants/" + tenant_id, body=body, headers=headers)

    def onboarded(self, tenant_id, tier, values=None, release=None):
        t = self.assertJson(onboard(self.s, tenant_id, tier, release=release, values=values), 201)
        self.assertEqual(t["commit"], self.s.head())
        return t

    def expected_docs(self, tenant_id, tier, release_expr, values):
        """The template rendered for the tenant with values merged into the
        HelmRelease's spec.values."""
        tmpl = self.s.show(template_path(tier))
        docs = yaml_docs(naive_render(tmpl, tenant_id, tier, release_expr))
        for d in docs:
            if d.get("kind") == "HelmRelease":
                d["spec"]["values"] = merged(d["spec"]["values"], values or {})
        return docs

    def assertComments(self, text, tier, tenant_id, release_expr):
        tmpl = self.s.show(template_path(tier))
        for c in template_comments(tmpl):
            self.assertTrue(c in text or naive_render(c, tenant_id, tier, release_expr) in text,
                            "template comment lost: %r\n%s" % (c, text))

    def assertOneCommit(self, count0, head0, changes):
        """Exactly one new commit on top of head0, changing exactly `changes`."""
        s = self.s
        head = s.head()
        self.assertEqual(s.commit_count(), count0 + 1)
        self.assertEqual(s.git("rev-parse", head + "^").strip(), head0)
        self.assertEqual(s.changed_files(head), changes)
        return head

    def assertPatched(self, r, tenant_id):
        """A PATCH answered 200 with the tenant, pushed; returns it."""
        t = self.assertJson(r, 200)
        self.assertEqual(t["id"], tenant_id)
        self.assertEqual(t["sync"], "committed")
        self.assertRegex(t["commit"] or "", HEX40)
        self.assertEqual(t["commit"], self.s.head())
        op = self.assertJson(self.s.get("/api/v1/operations/%d" % t["operation"]), 200)
        self.assertEqual((op["kind"], op["tenant"], op["state"], op["commit"]),
                         ("update", tenant_id, "pushed", t["commit"]))
        msg = self.s.git("log", "-1", "--format=%B", t["commit"])
        self.assertIn(t["operation"], trailer_ops(msg), "commit lacks the Landlord-Operations trailer: %r" % msg)
        return t

    def assertUnchanged(self, before, r=None):
        count0, head0, snap0 = before
        self.assertEqual(self.s.head(), head0, r)
        self.assertEqual(self.s.commit_count(), count0, r)
        self.assertEqual(self.s.snapshot(), snap0, r)

    def state(self):
        return (self.s.commit_count(), self.s.head(), self.s.snapshot())

    # -- tier change ---------------------------------------------------------------------

    def test_tier_change_moves_the_tenant_in_one_commit(self):
        s = self.s
        values = {"apps": {"consumer": {"ingress": {"enabled": False}}}, "extra": {"k": "v", "n": 3}}
        t0 = self.onboarded("mover", "basic", values=values, release="1.2")
        count0, head0 = s.commit_count(), s.head()
        r = self.patch("mover", {"tier": "premium"})
        t = self.assertPatched(r, "mover")
        self.assertEqual(t["tier"], "premium")
        self.assertEqual(t["values"], values, "a tier change keeps the values")
        self.assertEqual(t["release"], "1.2")
        self.assertEqual(t["path"], tenant_path("premium", "mover"))
        self.assertEqual(t["created_at"], t0["created_at"])
        head = self.assertOneCommit(count0, head0, {
            tenant_path("basic", "mover"): "D",
            tenant_path("premium", "mover"): "A",
            kustomization_path("basic"): "M",
            kustomization_path("premium"): "M",
        })
        stat = s.git("show", "--stat", "--format=", head)
        self.assertRegex(stat, r"\b4 files changed\b", stat)
        # the new file: the premium template with the same values
        text = s.show(tenant_path("premium", "mover"))
        self.assertEqual(yaml_docs(text), self.expected_docs("mover", "premium", "1.2.x", values))
        self.assertComments(text, "premium", "mover", "1.2.x")
        self.assertIn(PRODUCER_MARK, text)
        # kustomizations: listed once in premium, gone from basic
        self.assertEqual(kustomization_resources(s.show(kustomization_path("premium"))).count("mover.yaml"), 1)
        self.assertNotIn("mover.yaml", kustomization_resources(s.show(kustomization_path("basic"))))
        self.assertNotIn(tenant_path("basic", "mover"), s.ls_tree())
        # registry and GET agree
        g = self.assertJson(s.get("/api/v1/tenants/mover"), 200)
        self.assertEqual((g["tier"], g["values"], g["commit"]), ("premium", values, head))
        self.assertIn("update", [c["operation"] for c in g["commits"]])
        row = [x for x in s.rows("tenants") if x["id"] == "mover"][0]
        self.assertEqual((row["tier"], json.loads(row["values_json"]), row["commit_sha"]), ("premium", values, head))
        # and back again, to advanced: one more commit, still the same values
        count1 = s.commit_count()
        t = self.assertPatched(self.patch("mover", {"tier": "advanced"}), "mover")
        self.assertEqual((t["tier"], t["values"]), ("advanced", values))
        self.assertOneCommit(count1, head, {
            tenant_path("premium", "mover"): "D",
            tenant_path("advanced", "mover"): "A",
            kustomization_path("premium"): "M",
            kustomization_path("advanced"): "M",
        })
        self.assertEqual(yaml_docs(s.show(tenant_path("advanced", "mover"))),
                         self.expected_docs("mover", "advanced", "1.2.x", values))

    def test_tier_and_values_together(self):
        s = self.s
        self.onboarded("both", "premium", values={"extra": {"a": 1}})
        count0, head0 = s.commit_count(), s.head()
        new_values = {"extra": {"b": 2}}
        t = self.assertPatched(self.patch("both", {"tier": "basic", "values": new_values}), "both")
        self.assertEqual((t["tier"], t["values"]), ("basic", new_values))
        self.assertOneCommit(count0, head0, {
            tenant_path("premium", "both"): "D",
            tenant_path("basic", "both"): "A",
            kustomization_path("premium"): "M",
            kustomization_path("basic"): "M",
        })
        self.assertEqual(yaml_docs(s.show(tenant_path("basic", "both"))),
                         self.expected_docs("both", "basic", "0.0.x", new_values))

    # -- re-render ------------------------------------------------------------------------------

    def test_values_change_rerenders(self):
        s = self.s
        self.onboarded("revalue", "premium", values={"apps": {"producer": {"image": {"tag": "1.0"}}}})
        before = s.show(tenant_path("premium", "revalue"))
        count0, head0 = s.commit_count(), s.head()
        new_values = {"apps": {"consumer": {"image": {"tag": "2.0"}}}, "extra": {"n": 1}}
        t = self.assertPatched(self.patch("revalue", {"values": new_values}), "revalue")
        self.assertEqual(t["values"], new_values, "values replace the overrides as a whole")
        self.assertEqual((t["tier"], t["release"]), ("premium", "0.0"))
        self.assertOneCommit(count0, head0, {tenant_path("premium", "revalue"): "M"})
        text = s.show(tenant_path("premium", "revalue"))
        self.assertNotEqual(text, before)
        self.assertEqual(yaml_docs(text), self.expected_docs("revalue", "premium", "0.0.x", new_values))
        hr = yaml_docs(text)[1]["spec"]["values"]["apps"]
        self.assertEqual(hr["producer"]["image"]["tag"], "0.1", "the old override is gone")
        self.assertEqual(hr["consumer"]["image"]["tag"], "2.0")
        # image automation markers survive the re-render; the producer's stays on its tag line
        self.assertComments(text, "premium", "revalue", "0.0.x")
        self.assertIn(PRODUCER_MARK, text)
        self.assertIn(CONSUMER_MARK, text)
        self.assertTrue(any('tag: "0.1"' in l and PRODUCER_MARK in l for l in text.splitlines()), text)
        self.assertEqual(self.assertJson(s.get("/api/v1/tenants/revalue"), 200)["values"], new_values)
        # {} clears the overrides: exactly the template again
        count1, head1 = s.commit_count(), s.head()
        t = self.assertPatched(self.patch("revalue", {"values": {}}), "revalue")
        self.assertEqual(t["values"], {})
        self.assertOneCommit(count1, head1, {tenant_path("premium", "revalue"): "M"})
        text = s.show(tenant_path("premium", "revalue"))
        self.assertEqual(yaml_docs(text),
                         yaml_docs(naive_render(s.show(template_path("premium")), "revalue", "premium", "0.0.x")))
        self.assertComments(text, "premium", "revalue", "0.0.x")

    def test_release_change_keeps_values(self):
        s = self.s
        values = {"apps": {"consumer": {"image": {"tag": "3.3"}}}, "extra": {"a": "b"}}
        self.onboarded("rerelease", "advanced", values=values)
        count0, head0 = s.commit_count(), s.head()
        t = self.assertPatched(self.patch("rerelease", {"release": "1.4"}), "rerelease")
        self.assertEqual((t["release"], t["values"], t["tier"]), ("1.4", values, "advanced"))
        self.assertOneCommit(count0, head0, {tenant_path("advanced", "rerelease"): "M"})
        text = s.show(tenant_path("advanced", "rerelease"))
        self.assertIn('version: "1.4.x"', text)
        self.assertEqual(yaml_docs(text), self.expected_docs("rerelease", "advanced", "1.4.x", values),
                         "values lost when only the release changed")
        self.assertComments(text, "advanced", "rerelease", "1.4.x")
        self.assertIn(CONSUMER_MARK, text)
        # a pinned version
        count1, head1 = s.commit_count(), s.head()
        t = self.assertPatched(self.patch("rerelease", {"release": "2.0.1"}), "rerelease")
        self.assertEqual((t["release"], t["values"]), ("2.0.1", values))
        self.assertOneCommit(count1, head1, {tenant_path("advanced", "rerelease"): "M"})
        text = s.show(tenant_path("advanced", "rerelease"))
        self.assertEqual(yaml_docs(text), self.expected_docs("rerelease", "advanced", "2.0.1", values))
        g = self.assertJson(s.get("/api/v1/tenants/rerelease"), 200)
        self.assertEqual((g["release"], g["values"]), ("2.0.1", values))
        self.assertEqual([c["operation"] for c in g["commits"]].count("update"), 2, g["commits"])

    def test_a_patch_that_changes_nothing_makes_no_operation(self):
        s = self.s
        values = {"extra": {"a": "b"}, "apps": {"consumer": {"image": {"tag": "3.3"}}}}
        self.onboarded("steady", "advanced", values=values)
        g = self.assertJson(s.get("/api/v1/tenants/steady"), 200)
        ops, head, etag = len(s.rows("operations")), s.head(), g["etag"]
        # The same tier, release and values (keys in another order): 200,
        # the tenant as it is, no operation, no commit, the same version.
        same = {"tier": "advanced", "release": g["release"],
                "values": {"apps": {"consumer": {"image": {"tag": "3.3"}}}, "extra": {"a": "b"}}}
        for body in (same, {"values": values}, {"tier": "advanced"}):
            with self.subTest(body=body):
                r = self.patch("steady", body, headers=dict(JSON, **{"If-Match": etag}))
                t = self.assertJson(r, 200)
                self.assertEqual((t["etag"], r.header("ETag")), (etag, etag))
                self.assertEqual(len(s.rows("operations")), ops, "a PATCH that changes nothing queued work")
                self.assertEqual(s.head(), head)
        # A stale If-Match is still 412, change or not.
        r = self.patch("steady", {"tier": "advanced"}, headers=dict(JSON, **{"If-Match": "\"0000\""}))
        self.assertProblem(r, 412)
        self.assertEqual((len(s.rows("operations")), s.head()), (ops, head))

    # -- bad PATCHes change nothing -------------------------------------------------------------------

    def test_unknown_tier_is_422(self):
        self.onboarded("stay", "basic", values={"extra": {"x": 1}})
        before = self.state()
        r = self.patch("stay", {"tier": "gold"})
        self.assertProblem(r, 422, "invalid-request", field="tier")
        self.assertUnchanged(before, r)
        g = self.assertJson(self.s.get("/api/v1/tenants/stay"), 200)
        self.assertEqual((g["tier"], g["values"]), ("basic", {"extra": {"x": 1}}))

    def test_offboarded_tenant_is_409(self):
        self.onboarded("gone", "premium")
        self.assertEqual(self.s.delete("/api/v1/tenants/gone").status, 200)
        before = self.state()
        for body in ({"release": "1.0"}, {"tier": "basic"}, {"values": {"a": 1}}):
            r = self.patch("gone", body)
            self.assertProblem(r, 409, "conflict", msg=repr(body))
            self.assertUnchanged(before, r)
        self.assertEqual(self.assertJson(self.s.get("/api/v1/tenants/gone"), 200)["state"], "offboarded")

    def test_unknown_tenant_is_404(self):
        before = self.state()
        r = self.patch("nobody-here", {"release": "1.0"})
        self.assertProblem(r, 404, "not-found")
        self.assertUnchanged(before, r)

    def test_bad_bodies(self):
        self.onboarded("strict", "premium")
        cases = [
            ("unknown field", {"tier": "basic", "colour": "red"}, None, 422, "invalid-request", "colour"),
            ("id is not patchable", {"id": "other"}, None, 422, "invalid-request", "id"),
            ("empty object", {}, None, 422, "invalid-request", None),
            ("tier wrong type", {"tier": 3}, None, 422, "invalid-request", "tier"),
            ("bad release", {"release": "one"}, None, 422, "invalid-request", "release"),
            ("values wrong type", {"values": []}, None, 422, "invalid-request", "values"),
            ("values with ${}", {"values": {"a": "${X}"}}, None, 422, "invalid-request", "values"),
            ("malformed json", None, b'{"tier": ', 400, "malformed-request", None),
            ("duplicate key", None, b'{"tier":"basic","tier":"advanced"}', 400, "malformed-request", None),
        ]
        before = self.state()
        for name, obj, raw, status, ptype, field in cases:
            r = self.patch("strict", obj, raw=raw)
            self.assertProblem(r, status, ptype, field=field, msg=name)
            self.assertUnchanged(before, "%s: %r" % (name, r))
        r = self.patch("strict", raw=b'{"tier":"basic"}', headers={"Content-Type": "text/plain"})
        self.assertProblem(r, 415, "unsupported-media-type")
        self.assertUnchanged(before, r)
        g = self.assertJson(self.s.get("/api/v1/tenants/strict"), 200)
        self.assertEqual((g["tier"], g["release"], g["values"]), ("premium", "0.0", {}))


if __name__ == "__main__":
    unittest.main()

"""The GitOps layout (`--git-layout`, env LANDLORD_GIT_LAYOUT, config key
`git-layout`): `auto` (the default) is `sharded` in a new repository and
whatever an existing repository uses (flat when its tier folders hold
files, as the reference's do); `flat` keeps every tenant file directly in its
tier folder, listed in the tier's kustomization, exactly as before;
`sharded` writes `tenants/<tier>/<shard>/<id>.yaml`, where the shard is the
first two hex digits of SHA-256 of the id, lists the file in the shard's own
kustomization and the shard folder (once) in the tier's.  Onboarding,
offboarding, tier changes and re-renders are each one commit touching only
the files they must; a repository mixing both layouts is adopted as it is,
flat tenants stay flat, only new files go to shards; a hand-made file in the
way is a 409 naming it; any other layout value refuses to start."""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import (  # noqa: E402
    HEX40,
    PROD,
    LandlordTestCase,
    Server,
    SharedServerTestCase,
    StartError,
    kustomization_path,
    make_temp_dir,
    merged,
    naive_render,
    onboard,
    run_landlord,
    template_path,
    tenant_path,
    yaml_docs,
)
from storm import clone, wgit, write_file  # noqa: E402

TENANTS = PROD + "/tenants"
TIERS = ("basic", "premium", "advanced")
KUSTOMIZATION_HEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
SHARDED = ["--git-layout", "sharded"]


# -- the sharded layout, computed independently -----------------------------------------


def shard(tenant_id):
    return hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:2]


def shard_dir(tier, sh):
    return "%s/%s/%s" % (TENANTS, tier, sh)


def sharded_path(tier, tenant_id):
    return "%s/%s.yaml" % (shard_dir(tier, shard(tenant_id)), tenant_id)


def shard_kustomization_path(tier, sh):
    return shard_dir(tier, sh) + "/kustomization.yaml"


def entries(text):
    """The `resources:` of a kustomization, every entry read as the string it
    spells (quoted or not: `- "07"` and `- 07` both give '07')."""
    doc = yaml.load(text, Loader=yaml.BaseLoader) or {}
    res = doc.get("resources") if isinstance(doc, dict) else None
    return list(res) if isinstance(res, list) else []


def ids_where(prefix, pred, n=1, limit=20000):
    """The first n ids prefix-0, prefix-1, ... for which pred(id) holds."""
    out = []
    for i in range(limit):
        tid = "%s-%d" % (prefix, i)
        if pred(tid):
            out.append(tid)
            if len(out) == n:
                return out
    raise AssertionError("no %d ids %s-N found" % (n, prefix))


def kustomization_resources_typed(text):
    """resources: as a YAML 1.1 reader (PyYAML, like kustomize's) types them."""
    doc = yaml.safe_load(text) or {}
    return list(doc.get("resources") or [])


def hand_made_file(note):
    """A file that is not a tenant (no HelmRelease): never adopted."""
    return (
        "# made by hand, not by landlord\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: hand-made\n  namespace: flux-system\ndata:\n  note: %s\n" % note
    )


class LayoutCase(LandlordTestCase):
    """Helpers shared by the classes below; self.s is the server under test."""

    def patch(self, tenant_id, obj, s=None):
        s = s or self.s
        return s.request("PATCH", "/api/v1/tenants/" + tenant_id, json_body=obj)

    def tenant(self, tenant_id, s=None):
        return self.assertJson((s or self.s).get("/api/v1/tenants/" + tenant_id), 200)

    def expected_docs(self, tenant_id, tier, release_expr, values=None, s=None):
        tmpl = (s or self.s).show(template_path(tier))
        docs = yaml_docs(naive_render(tmpl, tenant_id, tier, release_expr))
        for d in docs:
            if d.get("kind") == "HelmRelease":
                d["spec"]["values"] = merged(d["spec"]["values"], values or {})
        return docs

    def tenant_files(self, s=None):
        """Every path under tenants/ except the top kustomization."""
        return [p for p in (s or self.s).ls_tree() if p.startswith(TENANTS + "/")
                and p != TENANTS + "/kustomization.yaml"]

    def fresh_ids(self, prefix, tiers, n=1, same_shard=False, s=None):
        """n unused ids whose shard folder exists in none of tiers (and, with
        same_shard, all in one shard)."""
        tree = set((s or self.s).ls_tree())
        taken = {p.split("/")[-1][:-5] for p in tree if p.endswith(".yaml")}

        def free(tid):
            return tid not in taken and not any(
                shard_kustomization_path(t, shard(tid)) in tree for t in tiers)

        if not same_shard:
            return ids_where(prefix, free, n)
        by_shard = {}
        for i in range(20000):
            tid = "%s-%d" % (prefix, i)
            if free(tid):
                group = by_shard.setdefault(shard(tid), [])
                group.append(tid)
                if len(group) == n:
                    return group
        raise AssertionError("no %d ids %s-N in one shard" % (n, prefix))

    def assertOneCommit(self, before, changes, subject=None, s=None):
        """Exactly one commit on top of before = (count, head), changing
        exactly `changes` ({path: A/M/D}); returns the new head."""
        s = s or self.s
        count0, head0 = before
        head = s.head()
        self.assertEqual(s.commit_count(), count0 + 1, "expected exactly one new commit")
        self.assertEqual(s.git("rev-parse", head + "^").strip(), head0)
        self.assertEqual(s.changed_files(head), changes)
        if subject is not None:
            self.assertEqual(s.log()[0][1], subject)
        return head

    def mark(self, s=None):
        s = s or self.s
        return (s.commit_count(), s.head())

    def assertShardKustomization(self, tier, sh, expected, s=None):
        """The shard's kustomization is a Kustomization listing exactly expected."""
        s = s or self.s
        text = s.show(shard_kustomization_path(tier, sh))
        doc = yaml.safe_load(text)
        self.assertIsInstance(doc, dict, text)
        self.assertEqual(doc.get("apiVersion"), "kustomize.config.k8s.io/v1beta1", text)
        self.assertEqual(doc.get("kind"), "Kustomization", text)
        self.assertIn("resources", doc, text)
        self.assertEqual(sorted(entries(text)), sorted(expected), text)
        return text

    def assertTierListsShard(self, tier, sh, s=None):
        """The tier kustomization lists the shard folder exactly once."""
        s = s or self.s
        text = s.show(kustomization_path(tier))
        self.assertEqual(entries(text).count(sh), 1,
                         "tier %s must list shard %s once:\n%s" % (tier, sh, text))
        return text


# -- the sharded layout on one shared server -------------------------------------------------


class Sharded(SharedServerTestCase, LayoutCase):
    shared_args = SHARDED

    def onboarded(self, tenant_id, tier, release=None, values=None):
        r = onboard(self.s, tenant_id, tier, release=release, values=values)
        t = self.assertJson(r, 201)
        self.assertEqual(t["commit"], self.s.head())
        self.assertEqual(t["path"], sharded_path(tier, tenant_id))
        return t

    def test_onboard_writes_the_file_in_its_shard(self):
        s = self.s
        (tid,) = self.fresh_ids("shard-new", ["premium"])
        sh = shard(tid)
        tier_k0 = entries(s.show(kustomization_path("premium")))
        before = self.mark()
        r = onboard(s, tid, "premium", release="1.2")
        t = self.assertJson(r, 201)
        self.assertEqual(r.header("Location"), "/api/v1/tenants/" + tid)
        self.assertEqual((t["id"], t["tier"], t["release"], t["sync"]), (tid, "premium", "1.2", "committed"))
        self.assertRegex(t["commit"] or "", HEX40)
        self.assertEqual(t["path"], "%s/tenants/premium/%s/%s.yaml" % (PROD, sh, tid))
        head = self.assertOneCommit(before, {
            sharded_path("premium", tid): "A",
            shard_kustomization_path("premium", sh): "A",
            kustomization_path("premium"): "M",
        }, subject="Onboard tenant %s (premium)" % tid)
        self.assertEqual(t["commit"], head)
        # the file: the template rendered for the tenant, nothing at the flat path
        text = s.show(sharded_path("premium", tid))
        self.assertEqual(yaml_docs(text), self.expected_docs(tid, "premium", "1.2.x"))
        tree = s.ls_tree()
        self.assertNotIn(tenant_path("premium", tid), tree)
        self.assertEqual(sorted(p for p in tree if p.startswith(shard_dir("premium", sh) + "/")),
                         sorted([sharded_path("premium", tid), shard_kustomization_path("premium", sh)]))
        # the shard kustomization lists the file; the tier kustomization gained the shard only
        self.assertShardKustomization("premium", sh, [tid + ".yaml"])
        tier_k = self.assertTierListsShard("premium", sh)
        self.assertEqual(sorted(entries(tier_k)), sorted(tier_k0 + [sh]), tier_k)
        self.assertNotIn(tid + ".yaml", entries(tier_k), "the tier never lists a sharded tenant file")
        # GET and the list show the real path
        g = self.tenant(tid)
        self.assertEqual((g["path"], g["commit"]), (sharded_path("premium", tid), head))
        items = self.assertJson(s.get("/api/v1/tenants?limit=500"), 200)["items"]
        listed = [x for x in items if x["id"] == tid]
        self.assertEqual([x["path"] for x in listed], [sharded_path("premium", tid)])

    def test_two_tenants_in_one_shard(self):
        s = self.s
        first, second = self.fresh_ids("pair", ["basic"], n=2, same_shard=True)
        sh = shard(first)
        self.assertEqual(shard(second), sh)
        before = self.mark()
        self.onboarded(first, "basic")
        self.assertOneCommit(before, {
            sharded_path("basic", first): "A",
            shard_kustomization_path("basic", sh): "A",
            kustomization_path("basic"): "M",
        })
        tier_k1 = s.show(kustomization_path("basic"))
        before = self.mark()
        self.onboarded(second, "basic")
        self.assertOneCommit(before, {
            sharded_path("basic", second): "A",
            shard_kustomization_path("basic", sh): "M",
        }, subject="Onboard tenant %s (basic)" % second)
        self.assertShardKustomization("basic", sh, [first + ".yaml", second + ".yaml"])
        self.assertEqual(s.show(kustomization_path("basic")), tier_k1,
                         "an existing shard is not listed again")
        self.assertTierListsShard("basic", sh)
        # offboarding one leaves the other listed
        before = self.mark()
        self.assertEqual(self.assertJson(s.delete("/api/v1/tenants/" + first), 200)["state"], "offboarded")
        self.assertOneCommit(before, {
            sharded_path("basic", first): "D",
            shard_kustomization_path("basic", sh): "M",
        })
        self.assertShardKustomization("basic", sh, [second + ".yaml"])
        self.assertIn(sharded_path("basic", second), s.ls_tree())
        self.assertTierListsShard("basic", sh)

    def test_offboard_keeps_the_emptied_shard(self):
        s = self.s
        (tid,) = self.fresh_ids("leaving", ["advanced"])
        sh = shard(tid)
        on = self.onboarded(tid, "advanced")
        tier_k = s.show(kustomization_path("advanced"))
        before = self.mark()
        r = s.delete("/api/v1/tenants/" + tid)
        t = self.assertJson(r, 200)
        self.assertEqual((t["id"], t["state"]), (tid, "offboarded"))
        head = self.assertOneCommit(before, {
            sharded_path("advanced", tid): "D",
            shard_kustomization_path("advanced", sh): "M",
        }, subject="Offboard tenant %s (advanced)" % tid)
        self.assertEqual(t["commit"], head)
        self.assertNotIn(sharded_path("advanced", tid), s.ls_tree())
        # the emptied shard keeps its kustomization and stays listed in the tier
        self.assertShardKustomization("advanced", sh, [])
        self.assertEqual(s.show(kustomization_path("advanced")), tier_k)
        self.assertTierListsShard("advanced", sh)
        g = self.tenant(tid)
        self.assertEqual([c["sha"] for c in g["commits"]], [on["commit"], head])
        # deleting again changes nothing
        self.assertEqual(self.assertJson(s.delete("/api/v1/tenants/" + tid), 200)["commit"], head)
        self.assertEqual(s.head(), head)
        # onboarding again refills the same shard without touching the tier
        before = self.mark()
        self.onboarded(tid, "advanced")
        self.assertOneCommit(before, {
            sharded_path("advanced", tid): "A",
            shard_kustomization_path("advanced", sh): "M",
        })
        self.assertShardKustomization("advanced", sh, [tid + ".yaml"])
        self.assertTierListsShard("advanced", sh)

    def test_tier_change_moves_between_shards(self):
        s = self.s
        (tid,) = self.fresh_ids("mover", ["basic", "premium"])
        sh = shard(tid)
        values = {"apps": {"consumer": {"ingress": {"enabled": False}}}, "extra": {"k": "v"}}
        t0 = self.onboarded(tid, "basic", release="1.2", values=values)
        basic_k = s.show(kustomization_path("basic"))
        premium_k0 = entries(s.show(kustomization_path("premium")))
        before = self.mark()
        r = self.patch(tid, {"tier": "premium"})
        t = self.assertJson(r, 200)
        self.assertEqual((t["tier"], t["release"], t["values"]), ("premium", "1.2", values))
        self.assertEqual(t["path"], sharded_path("premium", tid))
        self.assertEqual(t["created_at"], t0["created_at"])
        head = self.assertOneCommit(before, {
            sharded_path("basic", tid): "D",
            shard_kustomization_path("basic", sh): "M",
            sharded_path("premium", tid): "A",
            shard_kustomization_path("premium", sh): "A",
            kustomization_path("premium"): "M",
        })
        self.assertEqual(t["commit"], head)
        self.assertEqual(yaml_docs(s.show(sharded_path("premium", tid))),
                         self.expected_docs(tid, "premium", "1.2.x", values))
        self.assertShardKustomization("basic", sh, [])
        self.assertShardKustomization("premium", sh, [tid + ".yaml"])
        self.assertEqual(s.show(kustomization_path("basic")), basic_k, "the old tier keeps its shard")
        self.assertEqual(sorted(entries(s.show(kustomization_path("premium")))), sorted(premium_k0 + [sh]))
        tree = s.ls_tree()
        self.assertNotIn(sharded_path("basic", tid), tree)
        self.assertNotIn(tenant_path("premium", tid), tree)
        self.assertEqual(self.tenant(tid)["path"], sharded_path("premium", tid))

    def test_values_and_release_patch_rerender_in_place(self):
        s = self.s
        (tid,) = self.fresh_ids("revalue", ["premium"])
        self.onboarded(tid, "premium", values={"apps": {"producer": {"image": {"tag": "1.0"}}}})
        shard_k = s.show(shard_kustomization_path("premium", shard(tid)))
        tier_k = s.show(kustomization_path("premium"))
        new_values = {"apps": {"consumer": {"image": {"tag": "2.0"}}}}
        before = self.mark()
        t = self.assertJson(self.patch(tid, {"values": new_values}), 200)
        self.assertEqual((t["values"], t["path"]), (new_values, sharded_path("premium", tid)))
        self.assertOneCommit(before, {sharded_path("premium", tid): "M"})
        self.assertEqual(yaml_docs(s.show(sharded_path("premium", tid))),
                         self.expected_docs(tid, "premium", "0.0.x", new_values))
        before = self.mark()
        t = self.assertJson(self.patch(tid, {"release": "1.4"}), 200)
        self.assertEqual((t["release"], t["values"], t["path"]),
                         ("1.4", new_values, sharded_path("premium", tid)))
        self.assertOneCommit(before, {sharded_path("premium", tid): "M"})
        text = s.show(sharded_path("premium", tid))
        self.assertIn('version: "1.4.x"', text)
        self.assertEqual(yaml_docs(text), self.expected_docs(tid, "premium", "1.4.x", new_values))
        self.assertEqual(s.show(shard_kustomization_path("premium", shard(tid))), shard_k)
        self.assertEqual(s.show(kustomization_path("premium")), tier_k)

    def test_numeric_shard_names_stay_strings(self):
        """Shards like 07 or 42 must read back as those folder names (a YAML
        reader takes a bare 07 for the integer 7)."""
        s = self.s
        tree = set(s.ls_tree())

        def free_numeric(tid, zero):
            sh = shard(tid)
            return (sh.isdigit() and (sh[0] == "0") == zero
                    and shard_kustomization_path("basic", sh) not in tree)

        (leading_zero,) = ids_where("octal", lambda tid: free_numeric(tid, True))
        (digits,) = ids_where("decimal", lambda tid: free_numeric(tid, False))
        for tid in (leading_zero, digits):
            self.onboarded(tid, "basic")
            text = s.show(kustomization_path("basic"))
            listed = kustomization_resources_typed(text)
            self.assertIn(shard(tid), listed, "shard %s of %s not read back as the string %r:\n%s"
                          % (shard(tid), tid, shard(tid), text))
            self.assertIn(sharded_path("basic", tid), s.ls_tree())

    def test_no_flat_files_are_written(self):
        """Whatever the other tests did, every tenant file of this server is
        in a shard: tenants/<tier>/<xx>/<id>.yaml."""
        (tid,) = self.fresh_ids("anywhere", ["advanced"])
        self.onboarded(tid, "advanced")
        for p in self.tenant_files():
            parts = p[len(TENANTS) + 1:].split("/")
            if len(parts) == 2:
                self.assertEqual(parts[1], "kustomization.yaml", "a flat tenant file was written: %s" % p)
            else:
                self.assertEqual(len(parts), 3, p)
                self.assertIn(parts[0], TIERS, p)
                self.assertRegex(parts[1], r"^[0-9a-f]{2}$", p)
                if parts[2] != "kustomization.yaml":
                    self.assertEqual(shard(parts[2][:-5]), parts[1], "file in the wrong shard: %s" % p)


# -- a hand-made file in the way ----------------------------------------------------------------


class HandMade(LayoutCase):
    def blocked(self, layout, path_of):
        s = self.s = self.start_server(args=["--git-layout", layout, "--git-poll-interval", "300"])
        (tid,) = self.fresh_ids("hand-" + layout, ["premium"])
        path = path_of("premium", tid)
        # pushed behind landlord's back: its clone does not know the file yet
        w = clone(s.remote)
        hand = hand_made_file("in the way of " + tid)
        write_file(w, path, hand)
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "A file made by hand")
        wgit(w, "push", "-q", "origin", "main")
        head_h, tree_h = s.head(), s.git("ls-tree", "-r", "main")
        for attempt in ("stale clone", "after the fetch"):
            r = onboard(s, tid, "premium")
            body = self.assertProblem(r, 409, "conflict", msg=attempt)
            named = "%s %s" % (body.get("detail") or "", body.get("title") or "")
            self.assertIn(path, named, "%s: the 409 must name the file in the way: %r" % (attempt, body))
            self.assertEqual(s.head(), head_h, "%s: nothing may be committed" % attempt)
            self.assertEqual(s.git("ls-tree", "-r", "main"), tree_h, attempt)
            self.assertEqual(s.show(path), hand, attempt)
        # another tenant still onboards
        (other,) = self.fresh_ids("after-" + layout, ["premium"])
        self.assertJson(onboard(s, other, "premium"), 201)
        self.assertEqual(s.show(path), hand)
        self.assertEqual(s.git("merge-base", "--is-ancestor", head_h, "main"), "")

    def test_hand_made_sharded_file_blocks_onboarding(self):
        self.blocked("sharded", sharded_path)

    def test_hand_made_flat_file_blocks_onboarding_in_flat_layout(self):
        self.blocked("flat", tenant_path)

    def test_hand_made_flat_file_blocks_onboarding_in_sharded_layout(self):
        """A file at the other layout's path is the tenant's file too: the
        batch built on the stale clone must not be moved past it."""
        self.blocked("sharded", tenant_path)


# -- a repository holding both layouts ----------------------------------------------------------------


class Mixed(LayoutCase):
    def poll_tenant(self, tenant_id, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            r = self.s.get("/api/v1/tenants/" + tenant_id)
            if r.status == 200:
                return r.json
            if time.monotonic() > deadline:
                self.fail("%s not adopted within %.0f s: %r" % (tenant_id, timeout, r))
            time.sleep(0.1)

    def test_mixed_repository(self):
        # seed the embedded remote, then add tenants by hand in both layouts
        s0 = self.start_server(args=SHARDED)
        self.s = s0
        self.assertEqual(s0.stop(), 0)
        flat_a, flat_b = "legacy-a", "legacy-b"
        (hand_s,) = ids_where("hand-sharded", lambda tid: not shard(tid).isdigit())
        hs = shard(hand_s)
        w = clone(s0.remote)
        for tid in (flat_a, flat_b):
            write_file(w, tenant_path("basic", tid),
                       naive_render(s0.show(template_path("basic")), tid, "basic", "1.3.x"))
        write_file(w, kustomization_path("basic"),
                   KUSTOMIZATION_HEAD + "resources:\n  - %s.yaml\n  - %s.yaml\n" % (flat_a, flat_b))
        write_file(w, sharded_path("premium", hand_s),
                   naive_render(s0.show(template_path("premium")), hand_s, "premium", "2.1.x"))
        write_file(w, shard_kustomization_path("premium", hs),
                   KUSTOMIZATION_HEAD + "resources:\n  - %s.yaml\n" % hand_s)
        write_file(w, kustomization_path("premium"), KUSTOMIZATION_HEAD + "resources:\n  - %s\n" % hs)
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "Tenants added by hand, in both layouts")
        wgit(w, "push", "-q", "origin", "main")

        # start sharded on that repository: everything is adopted where it is
        s = self.s = self.start_server(data=s0.data, args=SHARDED)
        for tid, tier, release, path in ((flat_a, "basic", "1.3", tenant_path("basic", flat_a)),
                                         (flat_b, "basic", "1.3", tenant_path("basic", flat_b)),
                                         (hand_s, "premium", "2.1", sharded_path("premium", hand_s))):
            t = self.poll_tenant(tid)
            self.assertEqual((t["tier"], t["origin"], t["release"], t["values"], t["path"]),
                             (tier, "adopted", release, {}, path), t)
        head_seeded = s.head()
        self.assertEqual(s.log()[0][1], "Tenants added by hand, in both layouts", "adoption never commits")

        # a flat tenant stays flat when re-rendered
        values = {"extra": {"n": 1}}
        before = self.mark()
        t = self.assertJson(self.patch(flat_a, {"values": values}), 200)
        self.assertEqual((t["values"], t["path"]), (values, tenant_path("basic", flat_a)))
        self.assertOneCommit(before, {tenant_path("basic", flat_a): "M"})
        before = self.mark()
        t = self.assertJson(self.patch(flat_a, {"release": "1.4"}), 200)
        self.assertEqual((t["release"], t["path"]), ("1.4", tenant_path("basic", flat_a)))
        self.assertOneCommit(before, {tenant_path("basic", flat_a): "M"})
        self.assertEqual(yaml_docs(s.show(tenant_path("basic", flat_a))),
                         self.expected_docs(flat_a, "basic", "1.4.x", values))
        self.assertEqual(self.tenant(flat_a)["path"], tenant_path("basic", flat_a))
        self.assertNotIn(shard_dir("basic", shard(flat_a)), "\n".join(s.ls_tree()))

        # the adopted sharded tenant is re-rendered in its shard
        before = self.mark()
        t = self.assertJson(self.patch(hand_s, {"values": values}), 200)
        self.assertEqual(t["path"], sharded_path("premium", hand_s))
        self.assertOneCommit(before, {sharded_path("premium", hand_s): "M"})

        # a new tenant goes to a shard, next to the flat ones
        (new,) = self.fresh_ids("newcomer", ["basic"])
        before = self.mark()
        t = self.assertJson(onboard(s, new, "basic"), 201)
        self.assertEqual(t["path"], sharded_path("basic", new))
        self.assertOneCommit(before, {
            sharded_path("basic", new): "A",
            shard_kustomization_path("basic", shard(new)): "A",
            kustomization_path("basic"): "M",
        })
        self.assertEqual(sorted(entries(s.show(kustomization_path("basic")))),
                         sorted([flat_a + ".yaml", flat_b + ".yaml", shard(new)]))

        # a flat tenant is offboarded in place
        before = self.mark()
        t = self.assertJson(s.delete("/api/v1/tenants/" + flat_a), 200)
        self.assertEqual(t["state"], "offboarded")
        self.assertOneCommit(before, {tenant_path("basic", flat_a): "D", kustomization_path("basic"): "M"})
        self.assertEqual(sorted(entries(s.show(kustomization_path("basic")))),
                         sorted([flat_b + ".yaml", shard(new)]))
        self.assertShardKustomization("basic", shard(new), [new + ".yaml"])

        # the adopted sharded tenant is offboarded from its shard
        premium_k = s.show(kustomization_path("premium"))
        before = self.mark()
        self.assertJson(s.delete("/api/v1/tenants/" + hand_s), 200)
        self.assertOneCommit(before, {
            sharded_path("premium", hand_s): "D",
            shard_kustomization_path("premium", hs): "M",
        })
        self.assertShardKustomization("premium", hs, [])
        self.assertEqual(s.show(kustomization_path("premium")), premium_k)

        # a flat tenant changing tier is a newly written file: it goes to a shard
        before = self.mark()
        t = self.assertJson(self.patch(flat_b, {"tier": "advanced"}), 200)
        self.assertEqual(t["path"], sharded_path("advanced", flat_b))
        self.assertOneCommit(before, {
            tenant_path("basic", flat_b): "D",
            kustomization_path("basic"): "M",
            sharded_path("advanced", flat_b): "A",
            shard_kustomization_path("advanced", shard(flat_b)): "A",
            kustomization_path("advanced"): "M",
        })
        self.assertEqual(entries(s.show(kustomization_path("basic"))), [shard(new)])
        self.assertTierListsShard("advanced", shard(flat_b))
        # the hand commit is still in the history
        self.assertEqual(s.git("merge-base", "--is-ancestor", head_seeded, "main"), "")


# -- the flat default ---------------------------------------------------------------------------------


class Flat(LayoutCase):
    def check_flat(self, s, prefix):
        self.s = s
        ids = {}
        for tier in TIERS:
            # ids whose shard would look numeric or not: none may matter
            ids[tier] = [ids_where(prefix + "-" + tier, lambda tid: shard(tid).isdigit())[0],
                         ids_where(prefix + "-" + tier + "-x", lambda tid: not shard(tid).isdigit())[0]]
            for tid in ids[tier]:
                before = self.mark()
                t = self.assertJson(onboard(s, tid, tier), 201)
                self.assertEqual(t["path"], tenant_path(tier, tid))
                self.assertOneCommit(before, {tenant_path(tier, tid): "A", kustomization_path(tier): "M"})
                self.assertIn(tid + ".yaml", entries(s.show(kustomization_path(tier))))
        mover, leaving = ids["basic"]
        before = self.mark()
        t = self.assertJson(self.patch(mover, {"tier": "premium"}), 200)
        self.assertEqual(t["path"], tenant_path("premium", mover))
        self.assertOneCommit(before, {
            tenant_path("basic", mover): "D", kustomization_path("basic"): "M",
            tenant_path("premium", mover): "A", kustomization_path("premium"): "M",
        })
        before = self.mark()
        self.assertJson(s.delete("/api/v1/tenants/" + leaving), 200)
        self.assertOneCommit(before, {tenant_path("basic", leaving): "D", kustomization_path("basic"): "M"})
        self.assertEqual(entries(s.show(kustomization_path("basic"))), [])
        for p in self.tenant_files():
            parts = p[len(TENANTS) + 1:].split("/")
            self.assertEqual(len(parts), 2, "flat layout: no folder under a tier folder, got %s" % p)
            self.assertTrue(parts[1].endswith(".yaml"), p)
        for tier in TIERS:
            for e in entries(s.show(kustomization_path(tier))):
                self.assertTrue(e.endswith(".yaml"), "flat tier %s lists %r" % (tier, e))
        self.assertEqual(s.stop(), 0)

    def test_explicit_flat(self):
        self.check_flat(self.start_server(args=["--git-layout", "flat"]), "expl")


# -- the default, auto: sharded in a new repository, else what the repository uses -----------------


class Auto(LayoutCase):
    def layout_after(self, s, tid, tier="basic"):
        """Onboards tid: 'sharded' or 'flat' according to where its file went
        (and the kustomizations that list it)."""
        t = self.assertJson(onboard(s, tid, tier), 201)
        tree = s.ls_tree()
        if t["path"] == sharded_path(tier, tid):
            self.assertIn(sharded_path(tier, tid), tree)
            self.assertIn(tid + ".yaml", entries(s.show(shard_kustomization_path(tier, shard(tid)))))
            self.assertIn(shard(tid), entries(s.show(kustomization_path(tier))))
            return "sharded"
        self.assertEqual(t["path"], tenant_path(tier, tid))
        self.assertIn(tenant_path(tier, tid), tree)
        self.assertIn(tid + ".yaml", entries(s.show(kustomization_path(tier))))
        return "flat"

    def test_a_new_repository_is_sharded(self):
        s = self.s = self.start_server(layout=None)
        for tier in TIERS:
            self.assertEqual(self.layout_after(s, "new-" + tier, tier), "sharded")
        # and stays so after a restart (the repository has shard folders now)
        self.assertEqual(s.stop(), 0)
        s = self.s = self.start_server(data=s.data, layout=None)
        self.assertEqual(self.layout_after(s, "new-again"), "sharded")
        self.assertEqual(s.stop(), 0)

    def test_a_repository_with_flat_tenants_stays_flat(self):
        # tenants written flat (by an earlier landlord, or by hand as the
        # reference does), then landlord started with the default
        s0 = self.s = self.start_server(args=["--git-layout", "flat"])
        self.assertEqual(self.layout_after(s0, "older"), "flat")
        self.assertEqual(s0.stop(), 0)
        s = self.s = self.start_server(data=s0.data, layout=None)
        for tier in TIERS:
            self.assertEqual(self.layout_after(s, "later-" + tier, tier), "flat")
        self.assertEqual(s.stop(), 0)

    def test_a_reference_repository_with_only_dummy_configmaps_stays_flat(self):
        # the reference's tier folders: a dummy-configmap.yaml and no tenant
        s0 = self.s = self.start_server(args=["--git-layout", "flat"])
        self.assertEqual(s0.stop(), 0)
        w = clone(s0.remote)
        for tier in TIERS:
            write_file(w, "%s/tenants/%s/dummy-configmap.yaml" % (PROD, tier),
                       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dummy-%s\n  namespace: default\n"
                       % tier)
            write_file(w, kustomization_path(tier), KUSTOMIZATION_HEAD + "resources:\n  - dummy-configmap.yaml\n")
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "The reference's tier folders")
        wgit(w, "push", "-q", "origin", "main")
        s = self.s = self.start_server(data=s0.data, layout=None)
        self.assertEqual(self.layout_after(s, "ref-tenant", "premium"), "flat")
        self.assertEqual(entries(s.show(kustomization_path("premium"))), ["dummy-configmap.yaml", "ref-tenant.yaml"])
        self.assertEqual(s.stop(), 0)

    def test_an_empty_repository_seeded_flat_earlier_turns_sharded(self):
        # no tenant file anywhere: nothing to keep, so the layout that scales
        s0 = self.s = self.start_server(args=["--git-layout", "flat"])
        self.assertEqual(s0.stop(), 0)
        s = self.s = self.start_server(data=s0.data, layout=None)
        self.assertEqual(self.layout_after(s, "first"), "sharded")
        self.assertEqual(s.stop(), 0)


# -- where the setting comes from, and bad values -------------------------------------------------------


def write_config(text):
    path = os.path.join(make_temp_dir(), "landlord.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Setting(LayoutCase):
    def layout_of(self, args=(), env=None):
        """Starts a server so configured and onboards one tenant: 'sharded' or
        'flat' according to where its file went."""
        s = self.s = self.start_server(args=list(args), env=env, layout=None)
        tid = "probe"
        t = self.assertJson(onboard(s, tid, "basic"), 201)
        tree = s.ls_tree()
        if t["path"] == sharded_path("basic", tid):
            self.assertIn(sharded_path("basic", tid), tree)
            self.assertNotIn(tenant_path("basic", tid), tree)
            layout = "sharded"
        else:
            self.assertEqual(t["path"], tenant_path("basic", tid))
            self.assertIn(tenant_path("basic", tid), tree)
            self.assertNotIn(sharded_path("basic", tid), tree)
            layout = "flat"
        self.assertEqual(s.stop(), 0)
        return layout

    def test_sources_and_precedence(self):
        sharded_cfg = write_config("git-layout: sharded\n")
        flat_cfg = write_config("git-layout: flat\n")
        cases = [
            ("flag", ["--git-layout", "sharded"], None, "sharded"),
            ("flag auto, new repository", ["--git-layout", "auto"], None, "sharded"),
            ("nothing set: auto", [], None, "sharded"),
            ("env", [], {"LANDLORD_GIT_LAYOUT": "sharded"}, "sharded"),
            ("config file", ["--config", sharded_cfg], None, "sharded"),
            ("env beats file", ["--config", flat_cfg], {"LANDLORD_GIT_LAYOUT": "sharded"}, "sharded"),
            ("flag beats env", ["--git-layout", "flat"], {"LANDLORD_GIT_LAYOUT": "sharded"}, "flat"),
            ("flag beats file", ["--config", sharded_cfg, "--git-layout", "flat"], None, "flat"),
            ("env flat", [], {"LANDLORD_GIT_LAYOUT": "flat"}, "flat"),
        ]
        for name, args, env, expected in cases:
            with self.subTest(name):
                self.assertEqual(self.layout_of(args, env), expected)

    def test_help_names_the_option(self):
        out = run_landlord(["serve", "--help"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("--git-layout", out.stdout)
        self.assertIn("LANDLORD_GIT_LAYOUT", out.stdout)

    def test_bad_values_refuse_to_start(self):
        bogus_cfg = write_config("git-layout: bogus\n")
        cases = [
            ("flag bogus", ["--git-layout", "bogus"], None),
            ("flag capitalised", ["--git-layout", "Sharded"], None),
            ("flag empty", ["--git-layout="], None),
            ("env bogus", [], {"LANDLORD_GIT_LAYOUT": "bogus"}),
            ("config file bogus", ["--config", bogus_cfg], None),
        ]
        for name, args, env in cases:
            with self.subTest(name):
                s = Server(args=args, env=env)
                self.addCleanup(s.kill)
                with self.assertRaises(StartError, msg="landlord started with %s" % name) as cm:
                    s.start()
                self.assertNotIn("did not announce", str(cm.exception), "landlord neither served nor exited")
                self.assertEqual(s.proc.returncode, 2, s.logs())
                self.assertIn("git-layout", s.stderr_text(), s.logs())


if __name__ == "__main__":
    unittest.main()

"""Adoption (issue 3, "Adoption"): `landlord import` builds a registry from a
GitOps repository laid out like the reference system's (built here with the
git CLI and pushed to a real Git server: v2beta1 templates with
`{RELEASE_VERSION}.x`, dummy-configmap.yaml entries, kustomizations without a
final newline, trailing spaces in pooled-envs/); landlord then onboards and
offboards there touching nothing else.  While serving, it adopts tenant
files pushed by hand, marks tenants whose files vanished as drifted, and
refuses to onboard over a hand-made file."""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from common import fixture_text, poll  # noqa: E402
from harness import (  # noqa: E402
    PROD,
    GitServerTestCase,
    Server,
    git,
    kustomization_path,
    make_temp_dir,
    naive_render,
    onboard,
    registry_rows,
    run_landlord,
    template_comments,
    tenant_path,
    yaml_docs,
)
from storm import clone, read_file, wgit, write_file  # noqa: E402

USER, PASSWORD = "gitops-admin", "adopt-Pa55"

# -- the reference repository, byte for byte where it matters ------------------

# The reference's tier-templates/, in fixtures/adoption/.
BASIC_TEMPLATE = fixture_text("adoption", "basic_tenant_template.yaml")
PREMIUM_TEMPLATE = fixture_text("adoption", "premium_tenant_template.yaml")
ADVANCED_TEMPLATE = fixture_text("adoption", "advanced_tenant_template.yaml")
ENV_TEMPLATE = fixture_text("adoption", "basic_env_template.yaml")

TEMPLATES = {"basic": BASIC_TEMPLATE, "premium": PREMIUM_TEMPLATE, "advanced": ADVANCED_TEMPLATE}
KUSTOMIZATION_HEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:"


def sed(template, tenant_id, release="0.0"):
    """What the reference's onboarding workflow does: two sed substitutions."""
    return template.replace("{TENANT_ID}", tenant_id).replace("{RELEASE_VERSION}", release)


def tier_kustomization(*entries):
    """A tier kustomization as the reference leaves it: no final newline."""
    return KUSTOMIZATION_HEAD + "".join("\n  - " + e for e in entries)


def dummy_configmap(tier):
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dummy-configmap-%s\n  namespace: flux-system\n"
        "data:\n  purpose: keeps the %s kustomization non-empty\n" % (tier, tier)
    )


TENANT_2 = sed(PREMIUM_TEMPLATE, "tenant-2").replace(
    'tag: "0.1" # {"$imagepolicy": "flux-system:producer-image-policy:tag"}',
    'tag: "0.2" # {"$imagepolicy": "flux-system:producer-image-policy:tag"}',
)
assert '"0.2"' in TENANT_2

POOL_1 = (
    ENV_TEMPLATE.replace("{ENVIRONMENT_ID}", "pool-1")
    .replace("{RELEASE_VERSION}", "0.0")
    .replace("tenantId: pool-1\n", "tenantId: pool-1   \n")
)
assert "tenantId: pool-1   \n" in POOL_1


def reference_files():
    """{path: text} of a repository laid out like the reference, with
    tenant-1 (basic) and tenant-2 (premium, producer image tag changed)."""
    p = PROD
    files = {
        p + "/tier-templates/basic_tenant_template.yaml": BASIC_TEMPLATE,
        p + "/tier-templates/premium_tenant_template.yaml": PREMIUM_TEMPLATE,
        p + "/tier-templates/advanced_tenant_template.yaml": ADVANCED_TEMPLATE,
        p + "/tier-templates/basic_env_template.yaml": ENV_TEMPLATE,
        p + "/tenants/kustomization.yaml": KUSTOMIZATION_HEAD + "\n  - basic\n  - advanced\n  - premium\n",
        p + "/tenants/basic/kustomization.yaml": tier_kustomization("dummy-configmap.yaml", "tenant-1.yaml"),
        p + "/tenants/premium/kustomization.yaml": tier_kustomization("dummy-configmap.yaml", "tenant-2.yaml"),
        p + "/tenants/advanced/kustomization.yaml": tier_kustomization("dummy-configmap.yaml"),
        p + "/tenants/basic/tenant-1.yaml": sed(BASIC_TEMPLATE, "tenant-1"),
        p + "/tenants/premium/tenant-2.yaml": TENANT_2,
        p + "/pooled-envs/kustomization.yaml": KUSTOMIZATION_HEAD + "  \n  - pool-1.yaml",
        p + "/pooled-envs/pool-1.yaml": POOL_1,
        "clusters/production/tenants.yaml": (
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n"
            "  name: dataplane-tenants\n  namespace: flux-system\nspec:\n  interval: 1m0s\n"
            "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
            "  path: application-plane/production/tenants\n  prune: true\n  postBuild:\n"
            "    substituteFrom:\n      - kind: ConfigMap\n        name: saas-infra-outputs\n"
        ),
        "clusters/production/pooled-envs.yaml": (
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n"
            "  name: dataplane-pooled-envs\n  namespace: flux-system\nspec:\n  interval: 1m0s\n"
            "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n"
            "  path: application-plane/production/pooled-envs\n  prune: true\n"
        ),
        "control-plane/production/kustomization.yaml": KUSTOMIZATION_HEAD + "\n  - workflows\n",
        "control-plane/production/workflows/kustomization.yaml": KUSTOMIZATION_HEAD + "\n  - sensor.yaml\n",
        "control-plane/production/workflows/sensor.yaml": "# an Argo Events sensor, untouched by landlord\n",
        "infrastructure/production/kustomization.yaml": KUSTOMIZATION_HEAD + "\n  - 02-karpenter.yaml\n",
        "infrastructure/production/02-karpenter.yaml": "# karpenter\n",
    }
    for tier in TEMPLATES:
        files[p + "/tenants/%s/dummy-configmap.yaml" % tier] = dummy_configmap(tier)
    return files


class Adoption(GitServerTestCase):
    git_user, git_password = USER, PASSWORD

    # -- helpers ----------------------------------------------------------------

    def git_args(self, repo):
        return ["--git-url", self.gs.url(repo), "--git-username", USER, "--git-password-file", self.pwfile]

    def push_reference(self, repo):
        """Creates repo on the Git server and pushes the reference layout to
        it with the git CLI; returns (bare path, head sha)."""
        self.gs.create_repo(repo)
        w = os.path.join(make_temp_dir("landlord-ref-"), "w")
        wgit(os.path.dirname(w), "init", "-q", "-b", "main", w)
        for path, text in reference_files().items():
            write_file(w, path, text)
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "Initial layout, as the reference seeds it")
        wgit(w, "push", "-q", self.gs.authed_url(repo), "main")
        bare = self.gs.path(repo)
        # the bytes that matter went in unchanged
        self.assertFalse(git(bare, "show", "main:" + kustomization_path("basic")).endswith("\n"))
        return bare, git(bare, "rev-parse", "main").strip()

    def serve(self, repo, *extra, data=None):
        s = Server(data=data, args=self.git_args(repo) + list(extra)).start()
        self.addCleanup(s.kill)
        return s

    def poll(self, fn, timeout=15.0, what="condition"):
        return poll(fn, timeout, 0.1, what + " not met")

    def tenant(self, s, tenant_id):
        r = s.get("/api/v1/tenants/" + tenant_id)
        return r.json if r.status == 200 else None

    # -- landlord import, then onboard and offboard there --------------------------------

    def test_import_then_onboard_and_offboard(self):
        bare, head0 = self.push_reference("imported")
        data = make_temp_dir("landlord-data-")
        p = run_landlord(["import", "--data", data] + self.git_args("imported"))
        self.assertEqual(p.returncode, 0, "landlord import failed:\n%s\n%s" % (p.stdout, p.stderr))
        m = re.search(r"landlord: imported (\d+) tenants? \(([^)]*)\)", p.stdout)
        self.assertIsNotNone(m, "import did not print its count: %r" % p.stdout)
        self.assertEqual(m.group(1), "2")
        counts = dict(re.findall(r"([a-z0-9-]+): (\d+)", m.group(2)))
        self.assertEqual(counts.get("basic"), "1", m.group(0))
        self.assertEqual(counts.get("premium"), "1", m.group(0))
        self.assertIn(counts.get("advanced", "0"), ("0",), m.group(0))
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head0, "import must never commit")
        self.assertNotIn(PASSWORD, p.stdout + p.stderr)

        # the registry, read with sqlite
        rows = {r["id"]: r for r in registry_rows(os.path.join(data, "landlord.db"), "tenants")}
        self.assertEqual(sorted(rows), ["tenant-1", "tenant-2"])
        for tid, tier in (("tenant-1", "basic"), ("tenant-2", "premium")):
            r = rows[tid]
            self.assertEqual((r["tier"], r["release"], r["origin"], r["lifecycle"]),
                             (tier, "0.0", "adopted", "active"), r)
            self.assertIsNone(r["offboarded_at"])
        self.assertEqual(json.loads(rows["tenant-1"]["values_json"]), {})
        self.assertEqual(json.loads(rows["tenant-2"]["values_json"]),
                         {"apps": {"producer": {"image": {"tag": "0.2"}}}},
                         "values are what differs from the template")

        # serve on the same data dir: the API lists them; nothing is rewritten
        s = self.serve("imported", data=data)
        items = {t["id"]: t for t in self.assertJson(s.get("/api/v1/tenants"), 200)["items"]}
        self.assertEqual(sorted(items), ["tenant-1", "tenant-2"])
        for tid, tier in (("tenant-1", "basic"), ("tenant-2", "premium")):
            t = items[tid]
            self.assertEqual((t["tier"], t["release"], t["origin"], t["state"]), (tier, "0.0", "adopted", "unknown"))
            self.assertEqual(t["path"], tenant_path(tier, tid))
        self.assertEqual(items["tenant-2"]["values"], {"apps": {"producer": {"image": {"tag": "0.2"}}}})
        tiers = {t["name"]: t for t in self.assertJson(s.get("/api/v1/tiers"), 200)["items"]}
        self.assertEqual({n: tiers[n]["tenants"] for n in TEMPLATES}, {"basic": 1, "premium": 1, "advanced": 0})
        self.assertEqual(tiers["premium"]["deployment_model"], "siloed")
        self.assertEqual(tiers["basic"]["deployment_model"], "pooled")
        self.assertEqual(tiers["advanced"]["deployment_model"], "hybrid")
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head0, "serving alone must not commit")

        before_files = reference_files()
        r = onboard(s, "tenant-3", "premium")
        t3 = self.assertJson(r, 201)
        self.assertEqual((t3["origin"], t3["release"]), ("api", "0.0"))
        r = s.delete("/api/v1/tenants/tenant-1")
        t1 = self.assertJson(r, 200)
        self.assertEqual(t1["state"], "offboarded")
        after = git(bare, "rev-parse", "main").strip()
        self.assertEqual(t1["commit"], after)

        # git diff: only the intended changes
        status = dict(
            reversed(l.split("\t", 1))
            for l in git(bare, "diff", "--no-renames", "--name-status", head0, after).splitlines() if l
        )
        self.assertEqual(status, {
            tenant_path("premium", "tenant-3"): "A",
            kustomization_path("premium"): "M",
            tenant_path("basic", "tenant-1"): "D",
            kustomization_path("basic"): "M",
        })
        stat = git(bare, "diff", "--stat", head0, after)
        self.assertRegex(stat, r"\b4 files changed\b", stat)
        # the kustomizations keep their other lines byte for byte, still no final newline
        basic_k = git(bare, "show", "%s:%s" % (after, kustomization_path("basic")))
        self.assertEqual(basic_k, tier_kustomization("dummy-configmap.yaml"))
        premium_k = git(bare, "show", "%s:%s" % (after, kustomization_path("premium")))
        self.assertFalse(premium_k.endswith("\n"), repr(premium_k))
        lines = premium_k.split("\n")
        added = [l for l in lines if "tenant-3.yaml" in l]
        self.assertEqual([l.strip() for l in added], ["- tenant-3.yaml"], premium_k)
        self.assertEqual([l for l in lines if l not in added],
                         before_files[kustomization_path("premium")].split("\n"), premium_k)
        # the new file: the repository's own (v2beta1) template, comments kept
        text = git(bare, "show", "%s:%s" % (after, tenant_path("premium", "tenant-3")))
        self.assertEqual(yaml_docs(text), yaml_docs(naive_render(PREMIUM_TEMPLATE, "tenant-3", "premium", "0.0.x")))
        self.assertIn("apiVersion: helm.toolkit.fluxcd.io/v2beta1", text)
        for c in template_comments(PREMIUM_TEMPLATE):
            self.assertIn(c, text)
        # everything else byte for byte
        for path, content in before_files.items():
            if path in status:
                continue
            self.assertEqual(git(bare, "show", "%s:%s" % (after, path)), content, path)
        # registry
        rows = {r["id"]: r for r in registry_rows(s.db, "tenants")}
        self.assertEqual(rows["tenant-1"]["lifecycle"], "offboarded")
        self.assertEqual((rows["tenant-3"]["origin"], rows["tenant-3"]["tier"]), ("api", "premium"))
        self.assertEqual(rows["tenant-2"]["lifecycle"], "active")

    def test_import_without_the_git_root_fails(self):
        self.gs.create_repo("bare-layout", seed={"README.md": "not a GitOps repository\n"})
        bare = self.gs.path("bare-layout")
        head0 = git(bare, "rev-parse", "main").strip()
        data = make_temp_dir("landlord-data-")
        p = run_landlord(["import", "--data", data] + self.git_args("bare-layout"))
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(PROD, p.stdout + p.stderr)
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head0, "import must never seed or commit")
        self.assertEqual(git(bare, "rev-list", "--count", "main").strip(), "1")

    # -- adoption and drift while serving -------------------------------------------------

    def test_adoption_and_drift_while_serving(self):
        bare, head0 = self.push_reference("live")
        s = self.serve("live", "--git-poll-interval", "1")
        # on start: the reference's tenants are adopted
        t = self.poll(lambda: self.tenant(s, "tenant-2"), what="tenant-2 adopted on start")
        self.assertEqual((t["tier"], t["origin"]), ("premium", "adopted"))

        # a tenant file pushed by hand (with its kustomization entry) is adopted
        w = clone(self.gs.authed_url("live"))
        write_file(w, tenant_path("advanced", "hand-1"), sed(ADVANCED_TEMPLATE, "hand-1", "1.3"))
        write_file(w, kustomization_path("advanced"), "\n  - hand-1.yaml", mode="a")
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "Adding new tenant hand-1 in tier advanced")
        wgit(w, "push", "-q", "origin", "main")
        t = self.poll(lambda: self.tenant(s, "hand-1"), what="hand-1 adopted after a fetch")
        self.assertEqual((t["tier"], t["origin"], t["release"], t["values"], t["state"]),
                         ("advanced", "adopted", "1.3", {}, "unknown"))
        self.assertEqual(t["path"], tenant_path("advanced", "hand-1"))
        tiers = {x["name"]: x for x in s.get("/api/v1/tiers").json["items"]}
        self.assertEqual(tiers["advanced"]["tenants"], 1)

        # a landlord-made tenant whose file is deleted by hand becomes drifted
        made = self.assertJson(onboard(s, "made-1", "basic"), 201)
        self.assertEqual(made["origin"], "api")
        wgit(w, "pull", "-q", "--rebase", "origin", "main")
        self.assertIn("made-1.yaml", read_file(w, kustomization_path("basic")))
        wgit(w, "rm", "-q", tenant_path("basic", "made-1"))
        k = read_file(w, kustomization_path("basic"))
        write_file(w, kustomization_path("basic"), "\n".join(l for l in k.split("\n") if "made-1.yaml" not in l))
        wgit(w, "commit", "-q", "-am", "Removing tenant made-1 by hand")
        wgit(w, "push", "-q", "origin", "main")
        t = self.poll(lambda: (self.tenant(s, "made-1") or {}).get("state") == "drifted" and self.tenant(s, "made-1"),
                      what="made-1 drifted after its file vanished")
        self.assertEqual(t["tier"], "basic")

        # the file comes back by hand: unknown again
        write_file(w, tenant_path("basic", "made-1"), git(bare, "show", "%s:%s" % (made["commit"],
                                                                                 tenant_path("basic", "made-1"))))
        write_file(w, kustomization_path("basic"), "\n  - made-1.yaml", mode="a")
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "Restoring made-1 by hand")
        wgit(w, "push", "-q", "origin", "main")
        self.poll(lambda: (self.tenant(s, "made-1") or {}).get("state") == "unknown",
                  what="made-1 unknown again once its file is back")

        # landlord still writes there: onboarding after all this keeps the hand commits
        hand_head = git(bare, "rev-parse", "main").strip()
        self.assertJson(onboard(s, "made-2", "premium"), 201)
        self.assertEqual(git(bare, "merge-base", "--is-ancestor", hand_head, "main"), "")
        self.assertIn(tenant_path("advanced", "hand-1"), git(bare, "ls-tree", "-r", "--name-only", "main"))

    # -- a hand-made file in the way of an onboarding ----------------------------------------

    def test_hand_made_file_blocks_onboarding(self):
        bare, head0 = self.push_reference("handmade")
        s = self.serve("handmade", "--git-poll-interval", "300")  # it will not fetch by itself
        w = clone(self.gs.authed_url("handmade"))
        hand = sed(PREMIUM_TEMPLATE, "hand-2").replace('tag: "0.1"', 'tag: "0.9"') + "# made by hand\n"
        write_file(w, tenant_path("premium", "hand-2"), hand)
        write_file(w, kustomization_path("premium"), "\n  - hand-2.yaml", mode="a")
        wgit(w, "add", "-A")
        wgit(w, "commit", "-q", "-m", "Adding new tenant hand-2 in tier premium")
        wgit(w, "push", "-q", "origin", "main")
        head_h = git(bare, "rev-parse", "main").strip()
        tree_h = git(bare, "ls-tree", "-r", "main")

        r = onboard(s, "hand-2", "premium")
        body = self.assertProblem(r, 409, "conflict")
        path = tenant_path("premium", "hand-2")
        if "tenant" in body:
            # the server adopted the file first: the tenant exists
            self.assertEqual(body["tenant"]["id"], "hand-2")
        else:
            self.assertIn(path, json.dumps(body), "the 409 must name the file in the way")
        # nothing in the repository changed
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head_h)
        self.assertEqual(git(bare, "ls-tree", "-r", "main"), tree_h)
        self.assertEqual(git(bare, "show", "main:" + path), hand)
        # and the other tier is still writable
        self.assertJson(onboard(s, "after-1", "basic"), 201)
        self.assertEqual(git(bare, "show", "main:" + path), hand)


if __name__ == "__main__":
    unittest.main()

"""The admin page in a real browser: Debian's chromium driven by
playwright-core (tests/web/admin.mjs) against the real binary.  The page is
used as an operator uses it (paste a token, onboard with the form, offboard
with the row's button); what it showed is checked against the GitOps
repository and the registry.

Needs /usr/bin/chromium (Debian's chromium) and tests/web/node_modules
(`npm ci` there); scripts/quickstart test installs both.  Missing, the
test fails: it is never skipped."""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import PROD, SOURCE_DIR, LandlordTestCase  # noqa: E402

WEB = os.path.join(SOURCE_DIR, "tests", "web")


class AdminPage(LandlordTestCase):
    def test_operator_onboards_and_offboards_from_the_page(self):
        node = shutil.which("node")
        self.assertTrue(node, "node is needed (Debian's nodejs)")
        self.assertTrue(os.path.exists("/usr/bin/chromium"), "Debian's chromium is needed")
        self.assertTrue(os.path.isdir(os.path.join(WEB, "node_modules", "playwright-core")),
                        "run `npm ci` in tests/web (scripts/quickstart test does)")
        s = self.start_server()
        token = s.token("web-operator", "admin", name="Web Operator", email="ops@example.com")
        p = subprocess.run([node, os.path.join(WEB, "admin.mjs"), "http://127.0.0.1:%d" % s.port, token, "web-acme"],
                           cwd=WEB, capture_output=True, text=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        ctx = json.dumps(out, indent=1)
        self.assertNotIn("error", out, ctx)
        self.assertEqual(out["console_errors"], [], ctx)

        # Without a token the page tells the operator; with it, the tiers.
        self.assertIn("bearer token", out["without_token"], ctx)
        self.assertEqual(sorted(t[0] for t in out["tiers"]), ["advanced", "basic", "premium"], ctx)
        self.assertEqual(sorted(out["tier_options"]), ["advanced", "basic", "premium"], ctx)
        self.assertEqual(out["token_field"], "", "the field does not keep the token")
        self.assertEqual(out["token_stored"], token, "a pasted 'Bearer ' prefix is dropped")
        self.assertIsNone(out["token_after_forget"], ctx)

        # Onboarded through the form: the commit the page shows is the one in
        # the repository, authored by the token's subject.
        log = s.log()  # [(sha, subject, author name, author email)], newest first
        onboard = [c for c in log if c[1] == "Onboard tenant web-acme (premium)"]
        self.assertEqual(len(onboard), 1, log)
        sha = onboard[0][0]
        m = re.match(r"^onboarded web-acme in ([0-9a-f]{10})$", out["onboard_result"])
        self.assertTrue(m, ctx)
        self.assertEqual(sha[:10], m.group(1))
        row = out["row_after_onboard"]
        self.assertEqual(row[:3], ["web-acme", "premium", "0.0"], ctx)
        self.assertEqual(row[4], "committed", ctx)
        self.assertEqual(row[5], sha[:10], ctx)
        self.assertEqual(onboard[0][2:], ("Web Operator", "ops@example.com"))

        # The bad id was refused by the server, shown, and changed nothing.
        self.assertRegex(out["bad_result"], r"(?i)id", ctx)
        self.assertFalse([c for c in log if "Not_A_Label" in c[1]])

        # Offboarded with the button: one commit removed the file.
        self.assertEqual(out["row_after_offboard"][3], "offboarded", ctx)
        self.assertEqual(out["offboard_button_left"], 0, ctx)
        log = s.log()
        self.assertEqual(log[0][1], "Offboard tenant web-acme (premium)")
        self.assertEqual(log[1][0], sha, "the offboarding commit follows the onboarding one")
        self.assertEqual(s.git("ls-tree", "main", PROD + "/tenants/premium/web-acme.yaml").strip(), "")
        self.assertIn("name: web-acme", s.show(PROD + "/tenants/premium/web-acme.yaml", rev=sha))
        rows = [r for r in s.rows("tenants") if r["id"] == "web-acme"]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["lifecycle"], "offboarded")
        self.assertEqual(sorted(r["id"] for r in s.rows("tenants")), ["web-acme"], "nothing else was made")


if __name__ == "__main__":
    unittest.main()

"""No secret, token or credential in any log line or error body.

Scope of the check: this test runs a full set of authenticated operations
and failures against one landlord (a git remote over HTTP with a password,
webhooks with a secret, tokens good and bad, a local token from `landlord
token`), with secrets it knows, then reads every log that test's processes
wrote: landlord's stdout and stderr at log level debug, and the git
server's access and error logs.  None may hold the token secret, a token
(or its signature), the git password or the webhook secret; no log line
may hold anything shaped like a JWT.  Error bodies are checked as they
come."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from gitserver import GitServer  # noqa: E402
from harness import LandlordTestCase, make_temp_dir, mint_hs256, onboard, run_landlord  # noqa: E402
from jwtkeys import KeyPair  # noqa: E402

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")


class SecretsStayOutOfLogs(LandlordTestCase):
    def test_full_run(self):
        git_password = "gitpw-" + os.urandom(12).hex()
        hook_secret = "whsec-" + os.urandom(12).hex()
        gs = GitServer(users={"landlord": git_password}).start()
        self.addCleanup(gs.cleanup)
        gs.create_repo("gitops")
        d = make_temp_dir()
        rsa = KeyPair.rsa(d)
        s = self.start_server(args=["--git-url", gs.url("gitops"), "--git-username", "landlord",
                                    "--git-password-file", gs.write_password_file(git_password),
                                    "--log-level", "debug", "--rate-limit", "1", "--rate-limit-burst", "8"],
                              webhook_allow="127.0.0.0/8")  # the hook below is on loopback
        secret = s.jwt_secret.decode()
        tokens = [s.admin_token]
        narrow = s.token("portal", "tenants:write")
        tokens.append(narrow)
        bodies = []

        def call(*a, **kw):
            r = s.request(*a, **kw)
            bodies.append(r.body)
            return r

        # what goes through
        self.assertEqual(call("POST", "/api/v1/tenants", json_body={"id": "acme", "tier": "premium"},
                              headers={"Idempotency-Key": "k-1"}).status, 201)
        self.assertEqual(call("POST", "/api/v1/tenants", json_body={"id": "acme", "tier": "premium"},
                              headers={"Idempotency-Key": "k-1"}).status, 201)
        self.assertEqual(call("POST", "/api/v1/tenants", json_body={"id": "globex", "tier": "basic"},
                              token=narrow).status, 201)
        self.assertEqual(call("PATCH", "/api/v1/tenants/acme", json_body={"release": "1.2"}).status, 200)
        hook = call("POST", "/api/v1/webhooks", json_body={"url": "http://127.0.0.1:9/h", "secret": hook_secret})
        self.assertEqual(hook.status, 201)
        bodies.pop()  # the one answer that shows the webhook secret, by design
        tmpl = call("GET", "/api/v1/tiers/basic").json["template"]
        self.assertEqual(call("PUT", "/api/v1/tiers/gold", json_body={"template": tmpl}).status, 201)
        self.assertEqual(call("DELETE", "/api/v1/tenants/globex").status, 200)
        for path in ("/api/v1/audit", "/api/v1/tenants/acme/history", "/metrics", "/readyz",
                     "/api/v1/webhooks"):
            self.assertEqual(call("GET", path).status, 200, path)
        p = run_landlord(["token", "--data", s.data, "--jwt-secret-file", s.jwt_secret_file, "--sub", "cli",
                          "--scope", "tenants:read"])
        self.assertEqual(p.returncode, 0, p.stderr)
        tokens.append(p.stdout.strip())
        self.assertEqual(call("GET", "/api/v1/tenants", token=tokens[-1]).status, 200)

        # what is refused
        now = int(time.time())
        bad = [
            mint_hs256(rsa.public_text(), {"sub": "x", "exp": now + 60}),
            mint_hs256(os.urandom(32), {"sub": "x", "exp": now + 60, "scope": "admin"}),
            mint_hs256(s.jwt_secret, {"sub": "x", "exp": now - 600, "scope": "admin"}),
            rsa.sign({"alg": "RS256"}, {"sub": "x", "exp": now + 60}),
            s.admin_token[:-5],
        ]
        tokens += bad
        for tok in bad:
            self.assertEqual(call("POST", "/api/v1/tenants", json_body={"id": "x", "tier": "basic"},
                                  token=tok).status, 401)
        self.assertEqual(call("GET", "/api/v1/tenants", headers={"Authorization": "Basic " + secret}).status, 401)
        self.assertEqual(call("PUT", "/api/v1/tiers/x", json_body={"template": "a"}, token=narrow).status, 403)
        self.assertEqual(call("POST", "/api/v1/tenants", json_body={"id": "Bad!", "tier": "basic"}).status, 422)
        statuses = {call("GET", "/api/v1/tenants", token=narrow).status for _ in range(12)}
        self.assertIn(429, statuses)
        # a remote that refuses: the password must not leak into the errors either
        gs.set_users({"landlord": "another-" + git_password})
        r = call("POST", "/api/v1/tenants?wait=5", json_body={"id": "refused", "tier": "basic"})
        self.assertIn(r.status, (201, 202))
        time.sleep(1.0)
        call("GET", "/readyz")
        self.assertEqual(s.stop(), 0)

        logs = {"landlord stdout": s.stdout_text(), "landlord stderr": s.stderr_text(),
                "git error log": gs.error_log(), "git access log": gs.access_log()}
        self.assertIn("msg=request", logs["landlord stderr"], "the access log was written")
        self.assertIn("level=debug", logs["landlord stderr"], "debug lines were written")
        needles = {"token secret": secret, "git password": git_password, "webhook secret": hook_secret}
        for i, tok in enumerate(tokens):
            needles["token %d" % i] = tok
            if tok.count(".") == 2 and len(tok.split(".")[2]) > 10:
                needles["signature of token %d" % i] = tok.split(".")[2]
        for where, text in logs.items():
            for what, needle in needles.items():
                self.assertNotIn(needle, text, "%s in the %s" % (what, where))
            self.assertIsNone(JWT_SHAPE.search(text), "something shaped like a JWT in the %s" % where)
        for body in bodies:
            text = body.decode("utf-8", "replace")
            for what, needle in needles.items():
                self.assertNotIn(needle, text, "%s in an answer" % what)


if __name__ == "__main__":
    unittest.main()

"""landlord against a real Git server: `git http-backend` behind lighttpd
(tests/support/gitserver.py) over HTTP and HTTPS with basic auth.

Covers (issue 3, "Tests"): push over HTTP and HTTPS with credentials; HTTPS
without the CA; a wrong password; the server down at start and back later; a
missing branch (seeded); the password never appearing in landlord's output or
answers.

Where the contract allows two behaviours for a broken remote (docs/api.md:
"When the GitOps remote is unreachable (down, wrong credentials, TLS
failure), writes are still accepted ... 202 ... /readyz ... degraded"), the
tests accept either refusing to start with a clear error on stderr (exit code
non-zero) or starting degraded and queueing writes, and assert everything
observable about the one that happened: the error text, the status codes,
the JSON, and that nothing reached the remote.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import (  # noqa: E402
    HEX40,
    PROD,
    GitServerTestCase,
    LandlordTestCase,
    Server,
    StartError,
    git,
    git_refs,
    git_changed,
    git_count,
    git_ls_tree,
    git_show,
    kustomization_path,
    kustomization_resources,
    onboard,
    seed_files,
    tenant_path,
)

USER = "landlord"
# Distinctive, so a leak is unmistakable in any output.
PASSWORD = "s3cret-Pw-7f3a9c1e"
WRONG_PASSWORD = "wr0ng-Pw-b81d4e02"

TLS_ERROR = re.compile(r"certificat|x509|\btls\b|\bssl\b", re.I)
AUTH_ERROR = re.compile(r"authenticat|credential|\b401\b|unauthori[sz]ed", re.I)
CONNECT_ERROR = re.compile(r"connect|refused|unreachable", re.I)

PUSH_TIMEOUT = 30.0


def parents(bare, rev):
    return git(bare, "rev-list", "--parents", "-n", "1", rev).split()[1:]


class RemoteTestCase(GitServerTestCase):
    """Shared helpers: starting landlord against a GitServer repository and
    checking that no secret ever shows up."""

    git_user, git_password, git_tls = USER, PASSWORD, False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wrong_pwfile = cls.gs.write_password_file(WRONG_PASSWORD)
        cls._repo_n = 0

    def setUp(self):
        super().setUp()
        # Runs after the test (cleanups run LIFO, and this one is registered
        # first, so it runs after every server was killed): no password in
        # any output of any landlord this test started.
        self.addCleanup(self.check_no_secret_logged)

    def failure_report(self):
        return super().failure_report() + "=== lighttpd (%s) access log (tail) ===\n%s\n" % (
            self.gs, "\n".join(self.gs.access_log().splitlines()[-30:]))

    # -- helpers ------------------------------------------------------------------

    def new_repo(self, prefix="gitops", **kw):
        type(self)._repo_n += 1
        name = "%s-%d" % (prefix, type(self)._repo_n)
        self.gs.create_repo(name, **kw)
        return name

    def git_args(self, repo, pwfile=None, ca=True, extra=()):
        args = [
            "--git-url", self.gs.url(repo),
            "--git-username", USER,
            "--git-password-file", pwfile or self.pwfile,
        ]
        if self.gs.tls and ca:
            args += ["--git-ca-file", self.gs.ca_file]
        return args + list(extra)

    def check_no_secret_logged(self):
        for s in self.landlords:
            for name, text in (("stdout", s.stdout_text()), ("stderr", s.stderr_text())):
                for secret in (PASSWORD, WRONG_PASSWORD):
                    lines = [l for l in text.splitlines() if secret in l]
                    self.assertEqual(
                        lines, [], "the password %r appears in landlord's %s (%s)" % (secret, name, s.logdir)
                    )
            # In the sanitizer build, a report in any server's stderr is a bug
            # even when the test's assertions held.
            self.assertNotRegex(
                s.stderr_text(), r"(Address|Leak|UndefinedBehavior)Sanitizer|runtime error:", s.logs()
            )

    def assertNoSecretIn(self, resp):
        body = resp.body.decode("utf-8", "replace")
        for secret in (PASSWORD, WRONG_PASSWORD):
            self.assertNotIn(secret, body, "the password appears in an answer: %r" % resp)

    def readyz(self, s):
        r = s.get("/readyz")
        self.assertNoSecretIn(r)
        self.assertEqual(r.content_type, "application/json", r)
        return r

    def wait_pushed(self, s, location, timeout=PUSH_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            op = s.get(location)
            self.assertEqual(op.status, 200, op)
            self.assertNoSecretIn(op)
            if op.json["state"] != "queued" or time.monotonic() > deadline:
                return op.json
            time.sleep(0.2)

    def wait_last_error(self, s, location, timeout=10.0):
        """The queued operation once a push attempt recorded why it failed."""
        deadline = time.monotonic() + timeout
        while True:
            op = s.get(location)
            self.assertEqual(op.status, 200, op)
            self.assertNoSecretIn(op)
            if op.json.get("last_error") or op.json["state"] != "queued" or time.monotonic() > deadline:
                return op.json
            time.sleep(0.1)

    def assertSeeded(self, bare, branch="main"):
        """branch carries the default layout under the git root."""
        tree = set(git_ls_tree(bare, branch))
        missing = ["%s/%s" % (PROD, f) for f in seed_files() if "%s/%s" % (PROD, f) not in tree]
        self.assertEqual(missing, [], "seeded %s lacks these files of the default layout" % branch)

    def assertOnboardedOnRemote(self, bare, resp, tenant_id, tier, branch="main"):
        """A 201 onboarding whose commit is the head of branch on the remote
        and carries the tenant file and its kustomization entry."""
        self.assertEqual(resp.status, 201, resp)
        self.assertNoSecretIn(resp)
        t = resp.json
        self.assertEqual(t["id"], tenant_id)
        self.assertEqual(t["sync"], "committed")
        self.assertRegex(t["commit"], HEX40)
        head = git(bare, "rev-parse", "refs/heads/" + branch).strip()
        self.assertEqual(t["commit"], head, "the tenant's commit is the head of %s on the Git server" % branch)
        path = tenant_path(tier, tenant_id)
        self.assertEqual(git_changed(bare, head).get(path), "A", "commit %s adds %s" % (head, path))
        self.assertIn(
            "%s.yaml" % tenant_id,
            kustomization_resources(git_show(bare, kustomization_path(tier), branch)),
        )
        self.assertIn("name: %s" % tenant_id, git_show(bare, path, branch))
        return t

    def assertRefusedWith(self, refused, pattern, what):
        rc = refused.proc.returncode
        self.assertNotEqual(rc, 0, "landlord exited 0 without serving (%s)" % what)
        err = refused.stderr_text()
        self.assertRegex(err, pattern, "landlord refused to start (%s) without a clear error on stderr" % what)

    def assertDegradedWith(self, s, pattern, what, tenant_id="acme", tier="premium"):
        """/readyz degraded with an error matching pattern; a write answers 202
        pending and its operation stays queued with a matching last_error.
        Returns the 202 answer."""
        r = self.readyz(s)
        self.assertEqual(r.status, 200, "degraded is HTTP 200 (%s): %r" % (what, r))
        git_check = r.json["checks"]["git"]
        self.assertEqual(r.json["status"], "degraded", r)
        self.assertEqual(git_check["status"], "degraded", r)
        self.assertEqual(r.json["checks"]["registry"]["status"], "ok", r)
        self.assertRegex(str(git_check.get("error")), pattern, "/readyz git error (%s): %r" % (what, r))
        w = onboard(s, tenant_id, tier, query="?wait=2")
        self.assertNoSecretIn(w)
        self.assertEqual(w.status, 202, "a write while %s: %r" % (what, w))
        self.assertEqual(w.json["sync"], "pending", w)
        self.assertEqual(w.json["id"], tenant_id, w)
        loc = w.header("Location")
        self.assertRegex(loc or "", r"^/api/v1/operations/\d+$", w)
        op = self.wait_last_error(s, loc)
        self.assertEqual(op["state"], "queued", "an operation stays queued while %s: %r" % (what, op))
        self.assertIsNone(op["commit"], op)
        # docs/api.md: "An operation stays queued while the remote is
        # unreachable (last_error says why)".  A subtest, so the rest of the
        # scenario still runs when only this is wrong.
        with self.subTest("the queued operation's last_error says why"):
            self.assertRegex(str(op.get("last_error")), pattern, "the operation's last_error (%s): %r" % (what, op))
        t = s.get("/api/v1/tenants/" + tenant_id)
        self.assertEqual(t.status, 200, t)
        self.assertEqual(t.json["sync"], "pending", t)
        r = self.readyz(s)
        self.assertGreaterEqual(r.json["checks"]["git"].get("queued", 0), 1, r)
        return w


# -- HTTP ---------------------------------------------------------------------------


class HttpRemote(RemoteTestCase):
    def test_seeds_an_empty_repository_and_pushes_with_credentials(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        self.assertEqual(git_refs(bare), {})
        s = self.serve(self.git_args(repo))
        # Seeded on start: one commit on main with the default layout.
        self.assertEqual(git_count(bare, "main"), 1, git_refs(bare))
        self.assertSeeded(bare)
        seed = git(bare, "rev-parse", "main").strip()
        self.assertEqual(parents(bare, seed), [])
        r = self.readyz(s)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ready", r)
        self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
        self.assertEqual(r.json["checks"]["git"].get("branch"), "main", r)
        self.assertEqual(r.json["checks"]["git"].get("head"), seed, r)
        # Onboarding is pushed to the server's main.
        resp = onboard(s, "acme", "premium")
        self.assertOnboardedOnRemote(bare, resp, "acme", "premium")
        self.assertEqual(resp.header("Location"), "/api/v1/tenants/acme")
        self.assertEqual(git_count(bare, "main"), 2)
        self.assertEqual(parents(bare, "main"), [seed])
        op = s.get("/api/v1/operations/%d" % resp.json["operation"])
        self.assertEqual(op.status, 200, op)
        self.assertEqual(op.json["state"], "pushed", op)
        self.assertEqual(op.json["commit"], resp.json["commit"], op)
        self.assertIn("Landlord-Operations: %d" % resp.json["operation"], git(bare, "log", "-1", "--format=%B", "main"))
        # Offboarding too.
        d = s.delete("/api/v1/tenants/acme")
        self.assertEqual(d.status, 200, d)
        self.assertEqual(d.json["state"], "offboarded", d)
        self.assertEqual(git_count(bare, "main"), 3)
        self.assertNotIn(tenant_path("premium", "acme"), git_ls_tree(bare, "main"))
        # The push went through the Git server with the configured user.
        self.assertRegex(self.gs.access_log(), r'(?m) %s \[.*"POST /git/%s\.git/git-receive-pack ' % (USER, re.escape(repo)))

    def test_settings_from_the_environment(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(
            env={
                "LANDLORD_GIT_URL": self.gs.url(repo),
                "LANDLORD_GIT_USERNAME": USER,
                "LANDLORD_GIT_PASSWORD_FILE": self.pwfile,
            }
        )
        self.assertSeeded(bare)
        self.assertOnboardedOnRemote(bare, onboard(s, "envtenant", "basic"), "envtenant", "basic")

    def test_restart_against_an_existing_remote(self):
        """A second start on the same data dir and remote neither re-seeds nor
        loses anything."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(self.git_args(repo))
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")
        head = git(bare, "rev-parse", "main").strip()
        self.assertEqual(s.stop(), 0)
        s2 = self.serve(self.git_args(repo), data=s.data)
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head)
        t = s2.get("/api/v1/tenants/acme")
        self.assertEqual(t.status, 200, t)
        self.assertEqual(t.json["commit"], head, t)
        self.assertOnboardedOnRemote(bare, onboard(s2, "beta", "basic"), "beta", "basic")

    def test_wrong_password(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s, refused = self.launch(self.git_args(repo, pwfile=self.wrong_pwfile))
        if refused is not None:
            self.assertRefusedWith(refused, AUTH_ERROR, "wrong password")
        else:
            self.assertDegradedWith(s, AUTH_ERROR, "the password is wrong")
            # Still nothing after a few more attempts.
            time.sleep(1.5)
            op = s.get("/api/v1/operations/%s" % s.get("/api/v1/tenants/acme").json["operation"])
            self.assertEqual(op.json["state"], "queued", op)
            self.assertGreaterEqual(op.json.get("attempts", 0), 1, op)
        self.assertEqual(git_refs(bare), {}, "nothing reached the remote")
        # The server saw the attempts, and answered them 401.
        self.assertRegex(self.gs.access_log(), r'"GET /git/%s\.git/info/refs\?service=git-(receive|upload)-pack [^"]*" 401 ' % re.escape(repo))

    def test_wrong_password_at_a_later_start(self):
        """landlord ran before; the password it is given now is wrong (a
        rotation gone bad).  Either refused at start or degraded with writes
        queued; with the right password again, the queued write is pushed."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s0 = self.serve(self.git_args(repo))
        self.assertOnboardedOnRemote(bare, onboard(s0, "old", "basic"), "old", "basic")
        self.assertEqual(s0.stop(), 0)
        base = git(bare, "rev-parse", "main").strip()
        s, refused = self.launch(
            self.git_args(repo, pwfile=self.wrong_pwfile, extra=["--git-poll-interval", "1"]), data=s0.data
        )
        if refused is not None:
            self.assertRefusedWith(refused, AUTH_ERROR, "wrong password")
            self.assertEqual(git(bare, "rev-parse", "main").strip(), base)
            return
        w = self.assertDegradedWith(s, AUTH_ERROR, "the password is wrong")
        self.assertEqual(git(bare, "rev-parse", "main").strip(), base, "nothing reached the remote")
        self.assertEqual(s.stop(), 0)
        # The right password: the write accepted before lands.
        s2 = self.serve(self.git_args(repo, extra=["--git-poll-interval", "1"]), data=s0.data)
        op = self.wait_pushed(s2, w.header("Location"))
        self.assertEqual(op["state"], "pushed", op)
        self.assertEqual(op["commit"], git(bare, "rev-parse", "main").strip())
        self.assertEqual(parents(bare, "main"), [base])
        self.assertIn(tenant_path("premium", "acme"), git_ls_tree(bare, "main"))

    def test_credentials_in_the_url_are_never_logged(self):
        """A --git-url with user:password embedded (what people paste): either
        refused with a clear error, or used; in both cases the password shows
        in no output and no answer (/readyz already shows the URL without
        it)."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s, refused = self.launch(["--git-url", self.gs.authed_url(repo)])
        if refused is not None:
            self.assertNotEqual(refused.proc.returncode, 0)
            self.assertRegex(refused.stderr_text(), r"git-url|password|credential")
            self.assertEqual(git_refs(bare), {})
        else:
            r = self.readyz(s)
            self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
            self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")
        # check_no_secret_logged (after the test) looks at stdout and stderr.

    def test_missing_password_file(self):
        """A password file that does not exist: a clear error naming the
        setting or the file, either at start (exit non-zero) or on /readyz;
        never a crash, nothing pushed."""
        repo = self.new_repo()
        missing = os.path.join(self.gs.root, "no-such-password-file")
        s, refused = self.launch(self.git_args(repo, pwfile=missing))
        named = r"git-password-file|no-such-password-file|password file"
        if refused is not None:
            self.assertRefusedWith(refused, named, "missing password file")
        else:
            r = self.readyz(s)
            self.assertEqual(r.json["checks"]["git"]["status"], "degraded", r)
            self.assertRegex(str(r.json["checks"]["git"].get("error")), named, r)
        self.assertEqual(git_refs(self.gs.path(repo)), {})

    def test_missing_branch_is_seeded(self):
        """The repository has another branch only (and HEAD points at it):
        landlord seeds `main` with the default layout in one commit and leaves
        the other branch alone (README, "Seeding")."""
        repo = self.new_repo(seed={"README.md": "hand-made\n"}, branch="other", head="other")
        bare = self.gs.path(repo)
        before = git_refs(bare)
        self.assertEqual(list(before), ["refs/heads/other"])
        s = self.serve(self.git_args(repo))
        after = git_refs(bare)
        self.assertEqual(after.get("refs/heads/other"), before["refs/heads/other"], "the other branch is untouched")
        self.assertIn("refs/heads/main", after)
        self.assertSeeded(bare, "main")
        self.assertEqual(git_count(bare, "main"), 1, "the missing branch gets the layout in one commit")
        r = self.readyz(s)
        self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
        self.assertEqual(r.json["checks"]["git"].get("head"), after["refs/heads/main"], r)
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "advanced"), "acme", "advanced")
        self.assertEqual(git_refs(bare)["refs/heads/other"], before["refs/heads/other"])

    def test_git_branch_that_does_not_exist_is_seeded(self):
        """--git-branch nosuch on a repository whose main has content: nosuch
        is created with the layout; main stays as it was; writes go to
        nosuch."""
        repo = self.new_repo(seed={"README.md": "main of someone else\n"})
        bare = self.gs.path(repo)
        main_before = git(bare, "rev-parse", "main").strip()
        s = self.serve(self.git_args(repo, extra=["--git-branch", "nosuch"]))
        self.assertSeeded(bare, "nosuch")
        self.assertEqual(git(bare, "rev-parse", "main").strip(), main_before, "main is untouched")
        r = self.readyz(s)
        self.assertEqual(r.json["checks"]["git"].get("branch"), "nosuch", r)
        self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "premium"), "acme", "premium", branch="nosuch")
        self.assertEqual(git(bare, "rev-parse", "main").strip(), main_before, "main is untouched")

    def test_branch_without_the_root_folder_is_seeded_on_top(self):
        """main exists with foreign files but no git root: the layout is added
        in one commit on top of it; the foreign files stay."""
        repo = self.new_repo(seed={"README.md": "keep me\n", "infra/cluster.yaml": "kind: Foo\n"})
        bare = self.gs.path(repo)
        before = git(bare, "rev-parse", "main").strip()
        s = self.serve(self.git_args(repo))
        self.assertSeeded(bare, "main")
        self.assertEqual(parents(bare, "main"), [before], "the seed commit is on top of the existing main")
        self.assertEqual(git_show(bare, "README.md"), "keep me\n")
        self.assertEqual(git_show(bare, "infra/cluster.yaml"), "kind: Foo\n")
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")
        self.assertEqual(git_show(bare, "README.md"), "keep me\n")

    def test_password_never_logged_at_debug_level(self):
        """A whole cycle (seed, onboard, change, offboard, and a failing start
        with a wrong password) at log level debug: the password appears in no
        output and no answer (checked for every landlord after each test)."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(self.git_args(repo, extra=["--log-level", "debug"]))
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")
        p = s.request("PATCH", "/api/v1/tenants/acme", json_body={"tier": "premium"})
        self.assertNoSecretIn(p)
        self.assertEqual(p.status, 200, p)
        d = s.delete("/api/v1/tenants/acme")
        self.assertNoSecretIn(d)
        self.assertEqual(d.status, 200, d)
        for path in ("/readyz", "/api/v1/tenants", "/api/v1/operations/1", "/"):
            self.assertNoSecretIn(s.get(path))
        self.assertEqual(s.stop(), 0)
        repo2 = self.new_repo()
        s2, refused = self.launch(self.git_args(repo2, pwfile=self.wrong_pwfile, extra=["--log-level", "debug"]))
        if s2 is not None:
            self.assertNoSecretIn(onboard(s2, "beta", "basic", query="?wait=1"))
            time.sleep(1.0)
            self.assertNoSecretIn(s2.get("/readyz"))
            s2.stop()
        self.check_no_secret_logged()


class RemoteDown(RemoteTestCase):
    """The Git server is down when landlord starts (nobody listens on its
    port), then comes back on the same port."""

    def test_down_at_first_start_then_back(self):
        """Empty data dir, empty repository, nobody listening on the Git
        server's port."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        self.gs.stop()
        self.addCleanup(self.gs.start)  # leave the shared server up for later tests
        args = self.git_args(repo, extra=["--git-poll-interval", "1"])
        s, refused = self.launch(args)
        if refused is not None:
            self.assertRefusedWith(refused, CONNECT_ERROR, "Git server down")
            self.assertEqual(git_refs(bare), {})
            self.gs.restart()
            s = self.serve(args, data=refused.data)
            self.assertSeeded(bare)
            self.assertOnboardedOnRemote(bare, onboard(s, "acme", "premium"), "acme", "premium")
            return
        self.queue_while_down_then_push(s, bare, base=None)

    def test_down_at_a_later_start_then_back(self):
        """landlord ran before (its data dir has the clone and the registry),
        the Git server is down when it starts again."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        args = self.git_args(repo, extra=["--git-poll-interval", "1"])
        s0 = self.serve(args)
        self.assertOnboardedOnRemote(bare, onboard(s0, "old", "basic"), "old", "basic")
        self.assertEqual(s0.stop(), 0)
        base = git(bare, "rev-parse", "main").strip()
        self.gs.stop()
        self.addCleanup(self.gs.start)
        s, refused = self.launch(args, data=s0.data)
        if refused is not None:
            self.assertRefusedWith(refused, CONNECT_ERROR, "Git server down")
            self.assertEqual(git(bare, "rev-parse", "main").strip(), base)
            self.gs.restart()
            s = self.serve(args, data=s0.data)
            self.assertOnboardedOnRemote(bare, onboard(s, "acme", "premium"), "acme", "premium")
            return
        # Reads work from the registry while the remote is away.
        t = s.get("/api/v1/tenants/old")
        self.assertEqual(t.status, 200, t)
        self.assertEqual(t.json["commit"], base, t)
        self.queue_while_down_then_push(s, bare, base=base)
        self.assertIn(tenant_path("basic", "old"), git_ls_tree(bare, "main"))

    def queue_while_down_then_push(self, s, bare, base):
        """s started degraded (the Git server is stopped; base: the remote's
        main before, None when it has none): three writes queue (202), the
        Git server returns on the same port, all three land in order."""
        before = git_refs(bare)
        w = self.assertDegradedWith(s, CONNECT_ERROR, "the Git server is down")
        # More writes queue behind it, in order.
        b = onboard(s, "beta", "basic", query="?wait=0")
        self.assertEqual(b.status, 202, b)
        self.assertEqual(b.json["sync"], "pending", b)
        d = s.delete("/api/v1/tenants/acme?wait=0")
        self.assertEqual(d.status, 202, d)
        self.assertEqual(d.json["state"], "offboarding", d)
        self.assertEqual(git_refs(bare), before, "nothing reached the remote while it was down")
        ops = [w.header("Location"), b.header("Location"), d.header("Location")]
        # The server returns on the same port.
        self.gs.restart()
        results = [self.wait_pushed(s, loc) for loc in ops]
        for loc, op in zip(ops, results):
            self.assertEqual(op["state"], "pushed", "%s within %.0f s after the remote returned: %r" % (loc, PUSH_TIMEOUT, op))
            self.assertRegex(op["commit"], HEX40)
        head = git(bare, "rev-parse", "main").strip()
        self.assertEqual(results[-1]["commit"], head)
        self.assertSeeded(bare)
        if base is not None:
            self.assertEqual(git(bare, "merge-base", base, head).strip(), base, "main moved forward from %s" % base)
        # In order: each operation's commit is an ancestor of (or equal to)
        # the next one's.
        for a, b_ in zip(results, results[1:]):
            mb = git(bare, "merge-base", a["commit"], b_["commit"]).strip()
            self.assertEqual(mb, a["commit"], "operation commits are in order: %r then %r" % (a, b_))
        tree = git_ls_tree(bare, "main")
        self.assertNotIn(tenant_path("premium", "acme"), tree)
        self.assertIn(tenant_path("basic", "beta"), tree)
        self.assertNotIn("acme.yaml", kustomization_resources(git_show(bare, kustomization_path("premium"))))
        self.assertEqual(kustomization_resources(git_show(bare, kustomization_path("basic"))).count("beta.yaml"), 1)
        # The commits name the operations they carry.
        msgs = git(bare, "log", "--format=%B", "main")
        for op in results:
            self.assertRegex(msgs, r"Landlord-Operations:[ 0-9]* %d\b" % op["id"])
        t = s.get("/api/v1/tenants/beta")
        self.assertEqual(t.json["sync"], "committed", t)
        a = s.get("/api/v1/tenants/acme")
        self.assertEqual(a.json["state"], "offboarded", a)
        # Back to ready.
        deadline = time.monotonic() + 10
        while True:
            r = self.readyz(s)
            if r.json["checks"]["git"]["status"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(r.json["status"], "ready", r)
        self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
        self.assertEqual(r.json["checks"]["git"].get("queued", 0), 0, r)
        self.assertEqual(r.json["checks"]["git"].get("head"), head, r)

    def test_outage_while_serving(self):
        """Up at start, down for a while (writes queue: 202), back: pushed."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(self.git_args(repo, extra=["--git-poll-interval", "1"]))
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")
        head = git(bare, "rev-parse", "main").strip()
        self.gs.stop()
        self.addCleanup(self.gs.start)
        w = onboard(s, "beta", "premium", query="?wait=2")
        self.assertEqual(w.status, 202, w)
        self.assertEqual(w.json["sync"], "pending", w)
        op = self.wait_last_error(s, w.header("Location"))
        self.assertEqual(op["state"], "queued", op)
        self.assertRegex(str(op.get("last_error")), CONNECT_ERROR, op)
        r = self.readyz(s)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["checks"]["git"]["status"], "degraded", r)
        self.assertEqual(git(bare, "rev-parse", "main").strip(), head)
        self.gs.restart()
        op = self.wait_pushed(s, w.header("Location"))
        self.assertEqual(op["state"], "pushed", op)
        self.assertEqual(op["commit"], git(bare, "rev-parse", "main").strip())
        self.assertEqual(parents(bare, "main"), [head])
        self.assertIn(tenant_path("premium", "beta"), git_ls_tree(bare, "main"))


class SilentServer(LandlordTestCase):
    """A server that accepts the connection and never answers: with
    --git-timeout the fetch fails within that time, with a clear error,
    instead of hanging the writer."""

    def test_a_server_that_never_answers_times_out(self):
        import socket
        import threading

        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A port holding "401": its number is in the error message, which
        # once read as an HTTP 401 ("authentication failed").
        for port in list(range(40100, 40200)) + [0]:
            try:
                lsock.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        lsock.listen(8)
        held = []

        def hold():
            while True:
                try:
                    conn, _ = lsock.accept()
                except OSError:
                    return
                held.append(conn)  # read nothing, answer nothing

        threading.Thread(target=hold, daemon=True).start()

        def close_all():
            lsock.close()
            for c in held:
                c.close()

        self.addCleanup(close_all)
        url = "http://127.0.0.1:%d/git/silent.git" % lsock.getsockname()[1]
        s = Server(args=["--git-url", url, "--git-timeout", "1"])
        self.addCleanup(s.kill)
        t0 = time.monotonic()
        with self.assertRaises(StartError):
            s.start()
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(s.proc.returncode, "landlord neither served nor exited")
        self.assertNotEqual(s.proc.returncode, 0)
        self.assertRegex(s.stderr_text(), re.compile(r"no answer within the timeout", re.I))
        self.assertGreaterEqual(len(held), 1, "landlord never connected")
        self.assertLess(elapsed, 20, "the timeout was not applied")


# -- HTTPS --------------------------------------------------------------------------


class HttpsRemote(RemoteTestCase):
    git_tls = True

    def test_url_is_https_localhost(self):
        repo = self.new_repo()
        self.assertRegex(self.gs.url(repo), r"^https://localhost:\d+/git/%s\.git$" % re.escape(repo))

    def test_push_over_https_with_the_ca_file(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(self.git_args(repo))
        self.assertEqual(git_count(bare, "main"), 1)
        self.assertSeeded(bare)
        r = self.readyz(s)
        self.assertEqual(r.json["status"], "ready", r)
        self.assertEqual(r.json["checks"]["git"]["status"], "ok", r)
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "premium"), "acme", "premium")
        self.assertEqual(git_count(bare, "main"), 2)

    def test_https_settings_from_the_environment(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s = self.serve(
            env={
                "LANDLORD_GIT_URL": self.gs.url(repo),
                "LANDLORD_GIT_USERNAME": USER,
                "LANDLORD_GIT_PASSWORD_FILE": self.pwfile,
                "LANDLORD_GIT_CA_FILE": self.gs.ca_file,
            }
        )
        self.assertSeeded(bare)
        self.assertOnboardedOnRemote(bare, onboard(s, "acme", "basic"), "acme", "basic")

    def test_https_without_the_ca_file_is_not_trusted(self):
        """Verification is always on: the test CA is not in the system store,
        so the server's certificate must be rejected, never silently used."""
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s, refused = self.launch(self.git_args(repo, ca=False))
        if refused is not None:
            self.assertRefusedWith(refused, TLS_ERROR, "untrusted certificate")
        else:
            self.assertDegradedWith(s, TLS_ERROR, "the certificate is not trusted")
        self.assertEqual(git_refs(bare), {}, "nothing reached the remote")
        # No request got past the TLS handshake.
        self.assertNotRegex(self.gs.access_log(), r"/git/%s\.git/" % re.escape(repo))

    def test_https_with_the_wrong_password(self):
        repo = self.new_repo()
        bare = self.gs.path(repo)
        s, refused = self.launch(self.git_args(repo, pwfile=self.wrong_pwfile))
        if refused is not None:
            self.assertRefusedWith(refused, AUTH_ERROR, "wrong password over https")
        else:
            self.assertDegradedWith(s, AUTH_ERROR, "the password is wrong")
        self.assertEqual(git_refs(bare), {})


if __name__ == "__main__":
    unittest.main()

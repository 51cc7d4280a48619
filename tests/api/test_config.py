"""Configuration and first start: --help, config files refused with
file:line and a hint, precedence flag > env > file, a registry newer than the
binary, and seeding of the GitOps remote."""

import os
import re
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import (  # noqa: E402
    PROD,
    LandlordTestCase,
    Server,
    StartError,
    free_port,
    git_count,
    git_log,
    git_ls_tree,
    make_temp_dir,
    onboard,
    run_landlord,
    tenant_path,
)

OPTIONS = ("--listen", "--data", "--git-url", "--git-branch", "--config")
ENVS = ("LANDLORD_LISTEN", "LANDLORD_DATA", "LANDLORD_GIT_URL", "LANDLORD_GIT_BRANCH", "LANDLORD_CONFIG")

SEED = [
    PROD + "/tier-templates/basic_tenant_template.yaml",
    PROD + "/tier-templates/premium_tenant_template.yaml",
    PROD + "/tier-templates/advanced_tenant_template.yaml",
    PROD + "/tier-templates/basic_env_template.yaml",
    PROD + "/tenants/kustomization.yaml",
    PROD + "/tenants/basic/kustomization.yaml",
    PROD + "/tenants/premium/kustomization.yaml",
    PROD + "/tenants/advanced/kustomization.yaml",
    PROD + "/pooled-envs/kustomization.yaml",
    PROD + "/pooled-envs/pool-1.yaml",
]


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Help(unittest.TestCase):
    def check_help(self, args):
        p = run_landlord(args)
        self.assertEqual(p.returncode, 0, "landlord %s: %s" % (" ".join(args), p.stderr))
        text = p.stdout + p.stderr
        self.assertTrue(p.stdout.strip(), "help goes to stdout")
        for o in OPTIONS + ENVS:
            self.assertIn(o, text, "landlord %s does not mention %s" % (" ".join(args), o))
        return text

    def test_help(self):
        text = self.check_help(["--help"])
        self.assertIn("serve", text)

    def test_serve_help(self):
        text = self.check_help(["serve", "--help"])
        self.assertIn("--http-max-body", text)

    def test_unknown_option_refused(self):
        p = run_landlord(["serve", "--no-such-option"], timeout=15)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--no-such-option", p.stderr)


class BadConfig(LandlordTestCase):
    def refused(self, text, line, extra_env=None, via_env=False):
        """Starts serve with this config; it must exit non-zero with
        '<file>:<line>:' and a hint on stderr (line None: any line)."""
        d = make_temp_dir()
        cfg = write(os.path.join(d, "landlord.yaml"), text)
        if via_env:
            s = Server(data=os.path.join(d, "data"), env=dict(LANDLORD_CONFIG=cfg, **(extra_env or {})))
        else:
            s = Server(data=os.path.join(d, "data"), args=["--config", cfg], env=extra_env)
        with self.assertRaises(StartError, msg="landlord started despite a bad config") as cm:
            s.start()
        self.assertNotIn("did not announce", str(cm.exception), "landlord neither served nor exited")
        self.assertNotEqual(s.proc.returncode, 0)
        err = s.stderr_text()
        if line is None:
            self.assertRegex(err, re.escape(cfg) + r":\d+:")
        else:
            self.assertIn("%s:%d:" % (cfg, line), err, err)
        self.assertIn("hint", err.lower(), err)
        return err

    def test_unknown_key(self):
        err = self.refused("listen: 127.0.0.1:0\nno-such-key: 1\n", 2)
        self.assertIn("no-such-key", err)

    def test_bad_value(self):
        err = self.refused("# landlord config\nlisten: 127.0.0.1:0\nhttp-threads: lots\n", 3)
        self.assertIn("http-threads", err)

    def test_bad_listen(self):
        self.refused("listen: not-an-address\n", 1)

    def test_not_yaml(self):
        self.refused("listen: 127.0.0.1:0\nhttp-threads: [1, 2\n", None)

    def test_bad_config_through_env(self):
        self.refused("listen: 127.0.0.1:0\nbogus: yes\n", 2, via_env=True)

    def test_missing_config_file(self):
        d = make_temp_dir()
        s = Server(data=os.path.join(d, "data"), args=["--config", os.path.join(d, "absent.yaml")])
        with self.assertRaises(StartError):
            s.start()
        self.assertNotEqual(s.proc.returncode, 0)
        self.assertIn("absent.yaml", s.stderr_text())


class Precedence(LandlordTestCase):
    """listen from the file < LANDLORD_LISTEN < --listen."""

    def setUp(self):
        self.a, self.b, self.c = free_port(), free_port(), free_port()
        while len({self.a, self.b, self.c}) < 3:
            self.c = free_port()
        d = make_temp_dir()
        self.cfg = write(os.path.join(d, "landlord.yaml"), "listen: 127.0.0.1:%d\n" % self.a)

    def announced(self, listen=None, env=None):
        s = self.start_server(listen=listen, args=["--config", self.cfg], env=env)
        port = s.port
        self.assertEqual(s.get("/healthz").status, 200)
        self.assertEqual(s.stop(), 0)
        return port

    def test_file(self):
        self.assertEqual(self.announced(), self.a)

    def test_env_beats_file(self):
        self.assertEqual(self.announced(env={"LANDLORD_LISTEN": "127.0.0.1:%d" % self.b}), self.b)

    def test_flag_beats_env_and_file(self):
        port = self.announced(listen="127.0.0.1:%d" % self.c, env={"LANDLORD_LISTEN": "127.0.0.1:%d" % self.b})
        self.assertEqual(port, self.c)

    def test_config_from_env(self):
        s = self.start_server(listen=None, env={"LANDLORD_CONFIG": self.cfg})
        self.assertEqual(s.port, self.a)
        self.assertEqual(s.stop(), 0)

    def test_data_from_env(self):
        d = os.path.join(make_temp_dir(), "from-env")
        s = Server(data=d, data_flag=False, env={"LANDLORD_DATA": d})
        self.addCleanup(s.kill)
        s.start()
        self.assertTrue(os.path.exists(os.path.join(d, "landlord.db")))
        self.assertEqual(git_count(os.path.join(d, "remote.git")), 1)
        self.assertEqual(s.stop(), 0)


class Registry(LandlordTestCase):
    def test_newer_database_refused(self):
        s = self.start_server()
        self.assertEqual(onboard(s, "kept", "basic").status, 201)
        self.assertEqual(s.stop(), 0)
        conn = sqlite3.connect(s.db)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        self.assertGreater(version, 0, "migrations are tracked with PRAGMA user_version")
        conn.execute("PRAGMA user_version = %d" % (version + 1000))
        conn.commit()
        conn.close()
        log0 = s.log()
        with self.assertRaises(StartError):
            s.start()
        self.assertNotEqual(s.proc.returncode, 0)
        err = s.stderr_text()
        self.assertTrue(str(version + 1000) in err or "newer" in err.lower(), err)
        # nothing was touched
        conn = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
        self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], version + 1000)
        conn.close()
        self.assertEqual(s.log(), log0)

    def test_registry_pragmas(self):
        s = self.start_server()
        conn = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
        try:
            self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0].lower(), "wal")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
        self.assertTrue({"tenants", "operations"} <= tables, tables)
        self.assertEqual(s.stop(), 0)


class Seeding(LandlordTestCase):
    def assertSeeded(self, git_dir, branch="main"):
        self.assertEqual(git_count(git_dir, branch), 1, "a fresh remote gets exactly one commit")
        tree = git_ls_tree(git_dir, branch)
        for f in SEED:
            self.assertIn(f, tree)
        for f in tree:
            self.assertFalse(f.startswith(PROD + "/tenants/") and f.endswith(".yaml")
                             and not f.endswith("kustomization.yaml") and "dummy" not in f,
                             "a fresh remote has no tenants: %s" % f)

    def test_fresh_data_dir(self):
        s = self.start_server()
        self.assertSeeded(s.remote)
        log0 = s.log()
        self.assertEqual(s.stop(), 0)
        s.start()
        self.assertEqual(s.log(), log0, "a second start adds no commit")
        self.assertEqual(s.stop(), 0)

    def test_git_url_empty_bare_repo(self):
        d = make_temp_dir()
        bare = os.path.join(d, "gitops.git")
        subprocess.run(["git", "init", "-q", "--bare", bare], check=True)
        for url, how in ((bare, "env"),):
            s = self.start_server(env={"LANDLORD_GIT_URL": url})
            self.assertSeeded(bare)
            r = onboard(s, "elsewhere", "premium")
            self.assertEqual(r.status, 201, r)
            self.assertEqual(git_count(bare), 2)
            self.assertEqual(r.json["commit"], git_log(bare)[0][0])
            self.assertIn(tenant_path("premium", "elsewhere"), git_ls_tree(bare))
            self.assertEqual(s.stop(), 0)
            log0 = git_log(bare)
            s.start()
            self.assertEqual(git_log(bare), log0, "a second start adds no commit")
            self.assertEqual(s.get("/api/v1/tenants/elsewhere").status, 200)
            self.assertEqual(s.stop(), 0)

    def test_git_url_flag_and_branch(self):
        d = make_temp_dir()
        bare = os.path.join(d, "flag.git")
        subprocess.run(["git", "init", "-q", "--bare", bare], check=True)
        s = self.start_server(args=["--git-url", bare, "--git-branch", "gitops"])
        self.assertSeeded(bare, "gitops")
        r = onboard(s, "branchy", "basic")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(git_count(bare, "gitops"), 2)
        self.assertEqual(git_count(bare, "main"), 0, "only the configured branch is written")
        self.assertEqual(s.stop(), 0)


class Author(LandlordTestCase):
    def test_commit_author_from_configuration(self):
        """git-author-* is landlord's identity: the author of its own commits
        (the seed) and the committer of every commit; a request's commit is
        authored by the caller, <sub>@<the configured email's domain> when
        the token has no email claim."""
        d = make_temp_dir()
        cfg = write(os.path.join(d, "landlord.yaml"),
                    "git-author-name: Config Bot\ngit-author-email: config@example.test\n")
        s = self.start_server(args=["--config", cfg],
                              env={"LANDLORD_GIT_AUTHOR_EMAIL": "env@example.test"})
        self.assertEqual(onboard(s, "authored", "basic").status, 201)
        (sha, subject, name, email), seed = s.log()[0], s.log()[-1]
        self.assertEqual(subject, "Onboard tenant authored (basic)")
        self.assertEqual((name, email), ("test-admin", "test-admin@example.test"))
        self.assertEqual(s.git("log", "-1", "--format=%cn <%ce>", sha).strip(),
                         "Config Bot <env@example.test>")
        self.assertEqual(seed[2:], ("Config Bot", "env@example.test"))
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()

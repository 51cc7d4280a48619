"""A real Git server for the tests: `git http-backend` behind Debian's
lighttpd on 127.0.0.1, with basic auth and optional HTTPS.

Python 3 standard library only.  Needs the Debian packages lighttpd,
lighttpd-mod-openssl (for tls=True), apache2-utils (htpasswd), openssl and
git (for /usr/lib/git-core/git-http-backend).

    from gitserver import GitServer

    gs = GitServer(tls=False, users={"landlord": "s3cret"}).start()
    gs.create_repo("gitops")               # empty bare repository, HEAD -> main
    gs.url("gitops")                       # http://127.0.0.1:PORT/git/gitops.git
    gs.path("gitops")                      # the bare repository on disk
    gs.authed_url("gitops")                # URL with user:password, for the git CLI
    gs.write_password_file("s3cret")       # a 0600 file holding the password
    gs.restart()                           # stop + start on the same port
    gs.stop()

API:

  GitServer(tls=False, users=None, port=None)
      users: {name: password} (default {"landlord": "s3cret"}); every
      request under /git/ needs basic auth as one of them (htpasswd -B).
      tls: serve HTTPS with a certificate for DNS name `localhost` signed
      by a test CA (libgit2 1.5 rejects IP-address SANs, so HTTPS URLs use
      https://localhost:PORT/...).  port: a fixed port (default a free one,
      chosen at the first start and kept by restart()).
  .start()          starts lighttpd (`lighttpd -D -f CONF`), waits until the
                    port accepts connections; raises GitServerError with
                    lighttpd's error log if it does not.  Returns self.
  .stop()           SIGTERM, then SIGKILL after 5 s.  Repositories stay.
  .restart(down=0)  stop, sleep `down` seconds, start on the same port.
  .running          whether lighttpd is up.
  .port, .host      where it listens ("127.0.0.1", or "localhost" for TLS).
  .base_url         http://127.0.0.1:PORT  /  https://localhost:PORT
  .create_repo(name, seed=None, branch="main", head="main")
                    a bare repository NAME.git with http.receivepack true and
                    HEAD -> refs/heads/<head>.  seed: None (empty), a dict
                    {path: text or bytes} committed as one commit on `branch`
                    ("Seed" by "seed <seed@example.com>"), or a list of such
                    dicts committed in order.  Returns the path on disk.
  .url(name)        the URL landlord gets (no credentials).
  .authed_url(name, user=None)
                    the URL with user:password embedded (percent-encoded),
                    for the git CLI; use with .git_env().
  .path(name)       the bare repository on disk, for `git --git-dir`.
  .git_env(extra=None)
                    environment for a git CLI talking to this server: no
                    system/global config, GIT_TERMINAL_PROMPT=0, and
                    GIT_SSL_CAINFO=<ca_file> for TLS.
  .git_cli(*args, cwd=None, check=True)
                    runs `git ARGS` with git_env(); CompletedProcess (text).
  .ca_file          PEM of the test CA (None without TLS).
  .cert_file, .key_file
                    the leaf certificate and its key (None without TLS).
  .write_password_file(password, name=None)
                    writes password (no newline) to a new 0600 file in the
                    server's temp dir and returns its path.
  .error_log(), .access_log(flush=True)
                    lighttpd's logs, as text (the access log is buffered by
                    lighttpd; flush makes it write out first, via SIGHUP).
  .root             the temp dir: repos/ (GIT_PROJECT_ROOT), conf, logs.

Every started lighttpd is killed at interpreter exit (atexit), and the temp
dirs are removed.  GitServer is a context manager (start on enter, stop and
clean up on exit).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import read_text as _read  # noqa: E402

LIGHTTPD = os.environ.get("GITSERVER_LIGHTTPD", "/usr/sbin/lighttpd")
HTTP_BACKEND = os.environ.get("GITSERVER_HTTP_BACKEND", "/usr/lib/git-core/git-http-backend")
HTPASSWD = "htpasswd"
OPENSSL = "openssl"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

DEFAULT_USERS = {"landlord": "s3cret"}


class GitServerError(RuntimeError):
    pass


_lock = threading.Lock()  # the certificates, made once


def _run(cmd, cwd=None, env=None, input=None):
    return common.run(cmd, GitServerError, cwd=cwd, env=env, input=input)


# -- certificates: one test CA and one localhost leaf per process -------------

_certs = None


def _make_certs():
    """(ca_pem, leaf_pem, leaf_key) made once per process with the openssl
    CLI: an EC P-256 CA and a leaf for DNS:localhost signed by it."""
    global _certs
    with _lock:
        if _certs is not None:
            return _certs
        d = common.make_temp_dir("gitserver-pki-")
        ca_key = os.path.join(d, "ca.key")
        ca_pem = os.path.join(d, "ca.pem")
        key = os.path.join(d, "localhost.key")
        csr = os.path.join(d, "localhost.csr")
        pem = os.path.join(d, "localhost.pem")
        ext = os.path.join(d, "localhost.ext")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _run(
            [OPENSSL, "req", "-x509"] + ec + [
                "-keyout", ca_key, "-out", ca_pem, "-days", "3650", "-sha256",
                "-subj", "/O=landlord tests/CN=landlord test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-addext", "subjectKeyIdentifier=hash",
            ]
        )
        _run([OPENSSL, "req", "-new"] + ec + ["-keyout", key, "-out", csr, "-subj", "/O=landlord tests/CN=localhost"])
        with open(ext, "w") as f:
            f.write(
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n"
            )
        _run(
            [
                OPENSSL, "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                "-CAcreateserial", "-out", pem, "-days", "825", "-sha256", "-extfile", ext,
            ]
        )
        os.chmod(key, 0o600)
        _certs = (ca_pem, pem, key)
        return _certs


# -- the server ---------------------------------------------------------------


class GitServer(common.ChildServer):
    error = GitServerError
    stop_timeout = STOP_TIMEOUT

    def __init__(self, tls=False, users=None, port=None):
        self.tls = bool(tls)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.port = port
        self.host = "localhost" if self.tls else "127.0.0.1"
        self.root = common.make_temp_dir("gitserver-")
        self.repos = os.path.join(self.root, "repos")
        self.uploads = os.path.join(self.root, "uploads")
        self.home = os.path.join(self.root, "home")
        for d in (self.repos, self.uploads, self.home):
            os.makedirs(d)
        self.conf = os.path.join(self.root, "lighttpd.conf")
        self.htpasswd = os.path.join(self.root, "htpasswd")
        self.error_log_path = os.path.join(self.root, "error.log")
        self.access_log_path = os.path.join(self.root, "access.log")
        self.stdio_log_path = os.path.join(self.root, "lighttpd.out")
        self.ca_file = self.cert_file = self.key_file = None
        if self.tls:
            self.ca_file, self.cert_file, self.key_file = _make_certs()
        self.proc = None
        self._write_htpasswd()

    # -- lifecycle (context manager, running, cleanup: common.ChildServer) -----

    def start(self):
        if self.running:
            return self
        return self._start_on_port()

    def _start_once(self):
        self._write_conf()
        # A fresh error log per start, so a failure shows this start's reason.
        open(self.error_log_path, "w").close()
        out = open(self.stdio_log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [LIGHTTPD, "-D", "-f", self.conf],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=common.git_env({"HOME": self.home}),
                cwd=self.root,
                start_new_session=True,  # a Ctrl-C of the tests does not hit it first
            )
        finally:
            out.close()
        common.track(self, self._kill)
        self._await_child(self._listening, START_TIMEOUT, 0.01,
                          "lighttpd exited with %%d before listening on 127.0.0.1:%d" % self.port,
                          "lighttpd did not listen on 127.0.0.1:%d within %.0f s" % (self.port, START_TIMEOUT),
                          self._logs)

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self):
        """Stops lighttpd (SIGTERM, SIGKILL after 5 s) and any git
        http-backend still running under it.  The repositories stay."""
        self._end_child(signal.SIGTERM)

    def restart(self, down=0.0):
        """Stops and starts again on the same port (an outage and its end)."""
        self.stop()
        if down:
            time.sleep(down)
        port = self.port
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._start_once()
                return self
            except GitServerError:
                # The port may linger for a moment; lighttpd sets SO_REUSEADDR
                # so this is rare.  Retry the same port only.
                if time.monotonic() > deadline:
                    raise
                self.port = port
                time.sleep(0.1)

    # -- configuration ----------------------------------------------------------

    def _write_htpasswd(self):
        if os.path.exists(self.htpasswd):
            os.unlink(self.htpasswd)
        if not self.users:
            open(self.htpasswd, "w").close()
            return
        first = True
        for user, password in self.users.items():
            # -i reads the password from stdin: it never appears in a process
            # listing.  -B: bcrypt; -c: create the file (first user only).
            cmd = [HTPASSWD, "-i", "-B"] + (["-c"] if first else []) + [self.htpasswd, user]
            _run(cmd, input=password.encode("utf-8"))
            first = False
        os.chmod(self.htpasswd, 0o600)

    def set_users(self, users):
        """Replaces the accounts (takes effect at the next start/restart)."""
        self.users = dict(users)
        self._write_htpasswd()

    def _write_conf(self):
        def q(s):
            return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')

        lines = [
            'server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi", "mod_accesslog"%s)'
            % (', "mod_openssl"' if self.tls else ""),
            "server.bind = %s" % q("127.0.0.1"),
            "server.port = %d" % self.port,
            "server.document-root = %s" % q(self.root + "/docroot-unused"),
            "server.errorlog = %s" % q(self.error_log_path),
            "accesslog.filename = %s" % q(self.access_log_path),
            "server.upload-dirs = (%s)" % q(self.uploads),
            "server.tag = %s" % q("gitserver"),
            # Pushes can be large: 1 GiB (the unit is KiB).
            "server.max-request-size = 1048576",
            # Many concurrent pushes and fetches: enough fds and connections.
            "server.max-fds = 4096",
            "server.max-connections = 1024",
            "server.max-keep-alive-requests = 1000",
            "server.max-read-idle = 300",
            "server.max-write-idle = 600",
            "server.max-worker = 0",
            # Buffer request bodies (git sends large packs chunked) so the CGI
            # gets a CONTENT_LENGTH; stream responses (fetches of big packs).
            "server.stream-request-body = 0",
            "server.stream-response-body = 1",
            # HTTP/1.1 only: lighttpd 1.4.69's HTTP/2 breaks large chunked
            # uploads from the git CLI ("curl 92 Stream error in the HTTP/2
            # framing layer"); libgit2 speaks HTTP/1.1 anyway.
            'server.feature-flags = ("server.h2proto" => "disable")',
            'alias.url = ("/git/" => %s)' % q(HTTP_BACKEND + "/"),
            "auth.backend = %s" % q("htpasswd"),
            "auth.backend.htpasswd.userfile = %s" % q(self.htpasswd),
            'auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))',
            '$HTTP["url"] =~ "^/git/" {',
            '  cgi.assign = ("" => "")',
            '  cgi.limits = ("read-timeout" => 600, "write-timeout" => 600, "tcp-fin-propagate" => "SIGTERM")',
            "  setenv.set-environment = (",
            "    %s => %s," % (q("GIT_PROJECT_ROOT"), q(self.repos)),
            '    "GIT_HTTP_EXPORT_ALL" => "1",',
            '    "GIT_CONFIG_NOSYSTEM" => "1",',
            "    %s => %s," % (q("GIT_CONFIG_GLOBAL"), q(os.devnull)),
            "    %s => %s," % (q("HOME"), q(self.home)),
            '    "PATH" => "/usr/local/bin:/usr/bin:/bin",',
            '    "LC_ALL" => "C",',
            "  )",
            "}",
        ]
        if self.tls:
            lines += [
                'ssl.engine = "enable"',
                "ssl.pemfile = %s" % q(self.cert_file),
                "ssl.privkey = %s" % q(self.key_file),
            ]
        os.makedirs(self.root + "/docroot-unused", exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- repositories -------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.repos, name + ".git")

    @property
    def base_url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def url(self, name):
        return "%s/git/%s.git" % (self.base_url, name)

    def authed_url(self, name, user=None, password=None):
        if user is None:
            user = next(iter(self.users))
        if password is None:
            password = self.users.get(user, "")
        cred = "%s:%s@" % (urllib.parse.quote(user, safe=""), urllib.parse.quote(password, safe=""))
        return "%s://%s%s:%d/git/%s.git" % ("https" if self.tls else "http", cred, self.host, self.port, name)

    def git_env(self, extra=None):
        env = common.git_env({"HOME": self.home})
        if self.tls:
            env["GIT_SSL_CAINFO"] = self.ca_file
        if extra:
            env.update(extra)
        return env

    def git_cli(self, *args, cwd=None, check=True, timeout=120):
        p = subprocess.run(
            ["git"] + list(args),
            cwd=cwd,
            env=self.git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise GitServerError("git %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    def create_repo(self, name, seed=None, branch="main", head="main"):
        path = self.path(name)
        if os.path.exists(path):
            raise GitServerError("repository %s exists" % path)
        env = common.git_env()
        _run(["git", "init", "-q", "--bare", path], env=env)
        _run(["git", "--git-dir", path, "config", "http.receivepack", "true"], env=env)
        _run(["git", "--git-dir", path, "config", "http.uploadpack", "true"], env=env)
        # Concurrent pushers: keep receive-pack from collecting garbage under
        # them and let ref locks wait a little instead of failing at once.
        _run(["git", "--git-dir", path, "config", "receive.autogc", "false"], env=env)
        _run(["git", "--git-dir", path, "config", "core.filesRefLockTimeout", "1000"], env=env)
        _run(["git", "--git-dir", path, "config", "core.packedRefsTimeout", "1000"], env=env)
        _run(["git", "--git-dir", path, "symbolic-ref", "HEAD", "refs/heads/" + head], env=env)
        if seed:
            commits = seed if isinstance(seed, (list, tuple)) else [seed]
            self.commit_files(name, commits, branch=branch)
        return path

    def commit_files(self, name, commits, branch="main", message="Seed"):
        """Commits each {path: content} dict (content None deletes the path)
        on top of `branch` of the bare repository, directly on disk (no HTTP).
        Returns the new head sha."""
        path = self.path(name)
        work = tempfile.mkdtemp(prefix="gitserver-seed-", dir=self.root)
        try:
            env = common.git_env()
            _run(["git", "init", "-q", work], env=env)
            has_branch = subprocess.run(
                ["git", "--git-dir", path, "rev-parse", "--verify", "-q", "refs/heads/" + branch],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            ).returncode == 0
            if has_branch:
                _run(["git", "-C", work, "fetch", "-q", path, "refs/heads/%s:refs/remotes/o/%s" % (branch, branch)], env=env)
                _run(["git", "-C", work, "checkout", "-q", "-B", branch, "refs/remotes/o/" + branch], env=env)
            else:
                _run(["git", "-C", work, "checkout", "-q", "--orphan", branch], env=env)
            for i, files in enumerate(commits):
                for rel, content in files.items():
                    full = os.path.join(work, rel)
                    if content is None:
                        _run(["git", "-C", work, "rm", "-q", "--", rel], env=env)
                        continue
                    os.makedirs(os.path.dirname(full), exist_ok=True)
                    with open(full, "wb") as f:
                        f.write(content.encode("utf-8") if isinstance(content, str) else content)
                    _run(["git", "-C", work, "add", "--", rel], env=env)
                msg = message if len(commits) == 1 else "%s %d" % (message, i + 1)
                _run(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", msg], env=env)
            _run(["git", "-C", work, "push", "-q", path, "%s:refs/heads/%s" % (branch, branch)], env=env)
            return _run(["git", "--git-dir", path, "rev-parse", "refs/heads/" + branch], env=env).strip()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- logs ----------------------------------------------------------------------------

    def error_log(self):
        return _read(self.error_log_path)

    def access_log(self, flush=True):
        """The access log (user in the third field).  lighttpd buffers it for
        up to ~4 s; flush=True first makes it write out (SIGHUP: cycle the
        logs) and waits until it did."""
        if flush and self.running:
            before = self.error_log().count("logfiles cycled")
            try:
                self.proc.send_signal(signal.SIGHUP)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 3.0
            while self.error_log().count("logfiles cycled") <= before and time.monotonic() < deadline:
                time.sleep(0.005)
        return _read(self.access_log_path)

    def _logs(self):
        return "--- lighttpd error log (%s) ---\n%s\n--- lighttpd stdout/stderr ---\n%s\n--- config (%s) ---\n%s" % (
            self.error_log_path,
            self.error_log()[-4000:],
            _read(self.stdio_log_path)[-4000:],
            self.conf,
            _read(self.conf),
        )

    def __repr__(self):
        return "<GitServer %s %s>" % (self.base_url if self.port else "(not started)", "up" if self.running else "down")


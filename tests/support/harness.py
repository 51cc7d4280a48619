"""Test harness for the API tests: starts the real landlord binary, talks HTTP
to it, and reads back what it wrote (the GitOps remote with the git CLI, the
registry with sqlite3).

Python 3 standard library + python3-yaml only.  Environment:

  LANDLORD_BIN         the binary (default build/landlord under the source dir)
  LANDLORD_SOURCE_DIR  the repository root (default: two levels above this file)

A server's stdout and stderr go to files in its temp dir; when a test of a
LandlordTestCase fails, the tail of both is printed for every server the
test (or its class) started.

Bearer tokens: every Server gets its own HS256 secret (a 0600 file in its
log dir, passed as LANDLORD_JWT_SECRET_FILE unless the test configures
token keys itself), and request()/get()/post_json()/delete() send
`Authorization: Bearer <admin token>` by default.  token=None sends none;
token="..." sends that one.  Server.token(sub, scope, ...) mints more;
mint_hs256() signs any header and claims.  storm.py and the benchmarks
find a server's admin token with token_for_port(port).

Sanitizer builds: Server.sanitizer_report() collects what ASan, LSan or
UBSan printed in a server's stderr (LSan reports leaks when the process
exits, so stop it first), and LandlordTestCase.assertSanitizerClean(server)
asserts there is nothing.  Server.rss_kb() reads the process's VmRSS.

Test case bases: ReportingTestCase writes failure_report() when a test
fails (subclasses add a stand-in's logs); LandlordTestCase reports the logs
of the landlords started; SharedServerTestCase starts one landlord for the
class (shared_args) that must exit 0 on SIGTERM; GitServerTestCase gives the
class a real Git server (cls.gs, cls.pwfile).  Ports, temp dirs, polling and
cleanup at exit come from common.py.
"""

import base64
import copy
import gzip
import hashlib
import hmac
import http.client
import io
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from gitserver import GitServer  # noqa: E402

SOURCE_DIR = os.path.abspath(
    os.environ.get("LANDLORD_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
)

READY_RE = re.compile(r"^landlord: serving (https?)://127\.0\.0\.1:(\d+)/")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

PROBLEM = "urn:landlord:problem:"
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PROD = "application-plane/production"


# -- bearer tokens -------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_signing_input(header, claims):
    """The first two segments of a JWT for header and claims (dicts, or
    bytes taken as they are)."""
    def seg(v):
        return b64url(v if isinstance(v, bytes) else json.dumps(v, separators=(",", ":")).encode())
    return seg(header) + "." + seg(claims)


def mint_hs256(secret, claims, header=None):
    """A JWT signed with HMAC-SHA256 under secret (bytes)."""
    h = {"alg": "HS256", "typ": "JWT"} if header is None else header
    si = jwt_signing_input(h, claims)
    return si + "." + b64url(hmac.new(secret, si.encode(), hashlib.sha256).digest())


def token_claims(sub, scope="admin", ttl=3600, **extra):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + ttl}
    if scope is not None:
        c["scope"] = scope
    c.update(extra)
    return c


# The admin token of every server started, by port (storm.py, benchmarks).
_tokens_by_port = {}


def token_for_port(port):
    return _tokens_by_port.get(port)


_DEFAULT = object()


def landlord_bin():
    """The landlord binary as an absolute path."""
    b = os.environ.get("LANDLORD_BIN")
    if not b:
        return os.path.join(SOURCE_DIR, "build", "landlord")
    if os.path.isabs(b):
        return b
    if os.path.exists(b):
        return os.path.abspath(b)
    return os.path.join(SOURCE_DIR, b)


def clean_env(extra=None):
    """The environment for a child: ours without any LANDLORD_* variable,
    plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDLORD_")}
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


free_port = common.free_port


def run_landlord(args, env=None, timeout=30, cwd=None):
    """Runs the binary to completion: CompletedProcess with text output."""
    return subprocess.run(
        [landlord_bin()] + list(args),
        env=clean_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )


make_temp_dir = common.make_temp_dir
remove_temp_dirs = common.remove_temp_dirs


class StartError(AssertionError):
    pass


# Every server started, for printing logs on failure.
_servers = []


class Response:
    """An HTTP answer.  Unpacks as (status, headers, body, json)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body
        self.json = None
        ct = self.content_type
        if ct in ("application/json", "application/problem+json") and body:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except ValueError:
                self.json = None

    @property
    def content_type(self):
        ct = self.headers.get("Content-Type") or ""
        return ct.split(";")[0].strip().lower()

    def header(self, name):
        return self.headers.get(name)

    def __iter__(self):
        return iter((self.status, self.headers, self.body, self.json))

    def __repr__(self):
        body = self.body[:600].decode("utf-8", "replace")
        return "<HTTP %d %s ct=%s body=%r>" % (self.status, self.reason, self.content_type, body)


class Server:
    """One landlord process: `landlord serve --listen 127.0.0.1:0 --data DIR`.

    data: an existing data dir to reuse (e.g. for restarts); default a new
    temp dir.  args: extra arguments.  env: extra environment.  listen: the
    --listen value, or None to pass no --listen (config/env decide).
    wrap: a function from landlord's command line (a list) to the one to
    run, e.g. to start it in namespaces of its own (test_diskfull.py).
    layout: --git-layout to pass when the test sets none itself (default
    "flat", the paths tenant_path() gives); None: landlord's own default.
    webhook_allow: --webhook-allow-cidr, for tests whose webhook receivers
    listen on 127.0.0.1 (e.g. "127.0.0.0/8"); None: public addresses only.
    """

    def __init__(self, data=None, args=(), env=None, listen="127.0.0.1:0", data_flag=True,
                 jwt_secret=_DEFAULT, ca_file=None, claims=None, wrap=None, layout="flat",
                 webhook_allow=None):
        self.data = data or make_temp_dir("landlord-data-")
        self.logdir = make_temp_dir("landlord-log-")
        self.args = list(args)
        self.env = dict(env or {})
        self.listen = listen
        self.data_flag = data_flag
        self.wrap = wrap
        self.layout = layout
        self.webhook_allow = webhook_allow
        self.proc = None
        self.port = None
        self.scheme = "http"
        self.ca_file = ca_file  # for https: the CA that signed the server's certificate
        # The HS256 secret this server verifies tokens with, unless the test
        # configures keys itself (jwt_secret=None: the server's own choice).
        self.jwt_secret = None
        self.jwt_secret_file = None
        self.claims = dict(claims or {})  # added to every token minted (iss, aud...)
        configured = any(k.startswith("LANDLORD_JWT_") for k in self.env) or any(
            str(a).startswith("--jwt-") for a in self.args)
        if jwt_secret is _DEFAULT and not configured:
            jwt_secret = os.urandom(32).hex().encode()
        if jwt_secret not in (_DEFAULT, None):
            self.jwt_secret = jwt_secret
            self.jwt_secret_file = os.path.join(self.logdir, "jwt-secret")
            fd = os.open(self.jwt_secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(jwt_secret + b"\n")
            self.env.setdefault("LANDLORD_JWT_SECRET_FILE", self.jwt_secret_file)
        self.admin_token = self.token("test-admin", "admin") if self.jwt_secret else None
        self.remote = os.path.join(self.data, "remote.git")
        self.stdout_path = None
        self.stderr_path = None
        self.starts = 0

    # -- process ----------------------------------------------------------

    def command(self):
        cmd = [landlord_bin(), "serve"]
        if self.listen is not None:
            cmd += ["--listen", self.listen]
        if self.data_flag:
            cmd += ["--data", self.data]
        cmd += self.args
        # Most tests read tenant files at the reference's flat paths
        # (tenant_path, kustomization_path), so they run the flat layout
        # unless they choose: layout=None keeps landlord's default (auto:
        # sharded in a new repository), and a layout set by flag, env or a
        # config file is left alone.
        configured = any(str(a).startswith(("--git-layout", "--config")) for a in self.args) or \
            "LANDLORD_GIT_LAYOUT" in self.env or "LANDLORD_CONFIG" in self.env
        if self.layout and not configured:
            cmd += ["--git-layout", self.layout]
        if self.webhook_allow:
            cmd += ["--webhook-allow-cidr", self.webhook_allow]
        return self.wrap(cmd) if self.wrap else cmd

    def start(self):
        self.starts += 1
        self.stdout_path = os.path.join(self.logdir, "stdout.%d.log" % self.starts)
        self.stderr_path = os.path.join(self.logdir, "stderr.%d.log" % self.starts)
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                env=clean_env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.logdir,
            )
        finally:
            out.close()
            err.close()
        _servers.append(self)
        common.track(self, self.kill)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            port = self._announced_port()
            if port is not None:
                self.port = port
                if self.admin_token:
                    _tokens_by_port[port] = self.admin_token
                return self
            rc = self.proc.poll()
            if rc is not None:
                raise StartError(
                    "landlord exited with %d before serving\ncommand: %s\n%s"
                    % (rc, " ".join(self.command()), self.logs())
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise StartError(
                    "landlord did not announce 'landlord: serving http://127.0.0.1:PORT/' "
                    "on stdout within %.0f s\ncommand: %s\n%s"
                    % (START_TIMEOUT, " ".join(self.command()), self.logs())
                )
            time.sleep(0.02)

    def _announced_port(self):
        with open(self.stdout_path, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                m = READY_RE.match(line)
                if m:
                    self.scheme = m.group(1)
                    return int(m.group(2))
        return None

    # -- tokens --------------------------------------------------------------

    def token(self, sub="test-admin", scope="admin", ttl=3600, **claims):
        """An HS256 token this server accepts (scope None: no scope claim)."""
        if not self.jwt_secret:
            raise AssertionError("this server verifies tokens with keys the harness does not hold")
        return mint_hs256(self.jwt_secret, token_claims(sub, scope, ttl, **dict(self.claims, **claims)))

    def auth_headers(self, token=_DEFAULT):
        """{"Authorization": "Bearer ..."} for token (default: the admin
        token), or {} for token=None."""
        if token is _DEFAULT:
            token = self.admin_token
        return {"Authorization": "Bearer " + token} if token else {}

    def auth_line(self, token=_DEFAULT):
        """The Authorization header line for raw requests (bytes, with CRLF)."""
        h = self.auth_headers(token)
        return ("Authorization: %s\r\n" % h["Authorization"]).encode() if h else b""

    def connection(self, timeout=30):
        """A new http.client connection to the server (HTTPS when it serves
        TLS, verified with ca_file against the name localhost)."""
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection("localhost", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def wait_exit(self, timeout=START_TIMEOUT):
        """Waits for the process to exit by itself; returns its exit code or
        None after timeout (the process is then killed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits up to timeout seconds (10); returns the exit
        code (None when it had to be killed).  Callers assert the code.  A
        sanitizer build checks for leaks after main returns, which takes a
        few seconds more when the process held a large heap."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stdout_text(self):
        return _read(self.stdout_path)

    def stderr_text(self):
        return _read(self.stderr_path)

    def logs(self, tail=60):
        def last(text):
            lines = text.splitlines()
            return "\n".join(lines[-tail:])

        return "--- stdout (%s) ---\n%s\n--- stderr (%s) ---\n%s\n---" % (
            self.stdout_path,
            last(self.stdout_text()),
            self.stderr_path,
            last(self.stderr_text()),
        )

    def sanitizer_report(self):
        """The sanitizer reports (ASan, LSan, UBSan, TSan) in the stderr of
        every start of this server, as text ("" when there is none).  In a
        release build this is always ""; in the sanitizer build a leak shows
        here once the process has exited (LSan runs at exit: stop() first).
        LandlordTestCase.assertSanitizerClean() asserts it empty."""
        reports = []
        for n in range(1, self.starts + 1):
            path = os.path.join(self.logdir, "stderr.%d.log" % n)
            lines = _read(path).splitlines()
            hits = [i for i, line in enumerate(lines) if SANITIZER_RE.search(line)]
            if hits:
                # from the first report on: the stacks say where it comes from
                first = hits[0]
                reports.append("--- %s, line %d on (%d report lines) ---\n%s"
                               % (path, first + 1, len(hits), "\n".join(lines[first:first + 200])))
        return "\n".join(reports)

    def rss_kb(self):
        """The process's resident set (VmRSS in /proc/<pid>/status) in KiB,
        or None when it is not running."""
        return proc_rss_kb(self.proc.pid) if self.running else None

    # -- HTTP --------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, json_body=None, timeout=30,
                token=_DEFAULT):
        """One request on a new connection.  json_body is serialized with
        Content-Type: application/json unless headers say otherwise.  The
        admin bearer token is sent unless token says otherwise (None: no
        token) or headers carry an Authorization of their own."""
        hdrs = dict(headers or {})
        if not any(k.lower() == "authorization" for k in hdrs):
            hdrs.update(self.auth_headers(token))
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        return Response(*common.exchange(self.connection(timeout), method, path, body, hdrs))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_json(self, path, obj, **kw):
        return self.request("POST", path, json_body=obj, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def raw(self, data, read_timeout=5.0, shutdown_write=False):
        """Sends raw bytes and returns whatever comes back until the server
        closes or read_timeout passes without data."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout)
        try:
            s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    c = s.recv(65536)
                except socket.timeout:
                    break
                if not c:
                    break
                chunks.append(c)
            return b"".join(chunks)
        finally:
            s.close()

    # -- the GitOps remote (git CLI) ----------------------------------------

    def git(self, *args, check=True, branch_repo=None):
        return git(branch_repo or self.remote, *args, check=check)

    def head(self, branch="main"):
        return git(self.remote, "rev-parse", "--verify", "-q", branch + "^{commit}", check=False).strip()

    def log(self, branch="main"):
        return git_log(self.remote, branch)

    def commit_count(self, branch="main"):
        return git_count(self.remote, branch)

    def ls_tree(self, branch="main"):
        return git_ls_tree(self.remote, branch)

    def show(self, path, rev="main"):
        return git_show(self.remote, path, rev)

    def changed_files(self, rev):
        return git_changed(self.remote, rev)

    # -- the registry (sqlite3, read-only) ----------------------------------

    @property
    def db(self):
        return os.path.join(self.data, "landlord.db")

    def snapshot(self, tables=None):
        return registry_snapshot(self.db, tables)

    def rows(self, table):
        return registry_rows(self.db, table)

    def audit(self):
        """The audit log's rows (sqlite3), oldest first."""
        return registry_rows(self.db, "audit")


_read = common.read_text


# What a sanitizer prints when it reports: ASan and LSan ("ERROR:
# AddressSanitizer: heap-use-after-free", "ERROR: LeakSanitizer: detected
# memory leaks"), UBSan ("file.c:12:3: runtime error: ..."), TSan.
SANITIZER_RE = re.compile(r"(Address|Leak|UndefinedBehavior|Thread|Memory)Sanitizer|runtime error:")


def sanitized_build(binary=None):
    """Whether the landlord binary is built with AddressSanitizer (it then
    carries the __asan_init symbol)."""
    with open(binary or landlord_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def proc_rss_kb(pid):
    """VmRSS of a process in KiB (None when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- git helpers, usable on any bare repository ------------------------------


def git(git_dir, *args, check=True):
    p = subprocess.run(
        ["git", "--git-dir", git_dir] + list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env({"GIT_CONFIG_NOSYSTEM": "1", "HOME": tempfile.gettempdir()}),
    )
    if check and p.returncode != 0:
        raise AssertionError(
            "git --git-dir %s %s failed (%d): %s"
            % (git_dir, " ".join(args), p.returncode, p.stderr.decode("utf-8", "replace"))
        )
    return p.stdout.decode("utf-8", "replace")


def git_log(git_dir, branch="main"):
    """[(sha, subject, author name, author email)], newest first; [] when the
    branch does not exist."""
    if not git(git_dir, "rev-parse", "--verify", "-q", branch, check=False).strip():
        return []
    out = git(git_dir, "log", "--format=%H%x00%s%x00%an%x00%ae", branch)
    return [tuple(line.split("\x00")) for line in out.splitlines() if line]


def git_count(git_dir, branch="main"):
    if not git(git_dir, "rev-parse", "--verify", "-q", branch, check=False).strip():
        return 0
    return int(git(git_dir, "rev-list", "--count", branch).strip())


def git_ls_tree(git_dir, branch="main"):
    return [l for l in git(git_dir, "ls-tree", "-r", "--name-only", branch).splitlines() if l]


def git_show(git_dir, path, rev="main"):
    return git(git_dir, "show", "%s:%s" % (rev, path))


def git_refs(git_dir):
    """{refname: sha} of a bare repository."""
    out = git(git_dir, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def seed_files():
    """The default layout's files, relative to the git root (lib/seed)."""
    root = os.path.join(SOURCE_DIR, "lib", "seed")
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
    return sorted(out)


def git_changed(git_dir, rev):
    """{path: status letter} of the files rev changed against its first parent."""
    out = git(git_dir, "show", "--no-renames", "--name-status", "--format=", rev)
    changed = {}
    for line in out.splitlines():
        if line.strip():
            st, path = line.split("\t", 1)
            changed[path] = st[0]
    return changed


# -- registry helpers ---------------------------------------------------------


def _connect_ro(db):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def registry_tables(db):
    conn = _connect_ro(db)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
    finally:
        conn.close()


def registry_rows(db, table):
    """All rows of table as dicts, in rowid order."""
    conn = _connect_ro(db)
    try:
        return [dict(r) for r in conn.execute('SELECT * FROM "%s" ORDER BY rowid' % table.replace('"', '""'))]
    finally:
        conn.close()


# Tables a refused request may write by design: every request that tries to
# change something leaves one audit record, refusals included.  Snapshots
# leave it out; the security tests (test_security.py) assert it exactly.
SNAPSHOT_EXCLUDES = ("audit",)


def registry_snapshot(db, tables=None):
    """{table: [row dicts]} for the given tables (default: every table of the
    registry, tenants and operations included, but not the audit log)."""
    if tables is None:
        tables = [t for t in registry_tables(db) if t not in SNAPSHOT_EXCLUDES]
    conn = _connect_ro(db)
    try:
        snap = {}
        for t in tables:
            snap[t] = [
                dict(r) for r in conn.execute('SELECT * FROM "%s" ORDER BY rowid' % t.replace('"', '""'))
            ]
        return snap
    finally:
        conn.close()


# -- unittest glue -------------------------------------------------------------


class ReportingTestCase(unittest.TestCase):
    """A TestCase that writes failure_report() to stderr when a test fails
    (an assertion or an error).  Subclasses add what helps find the cause
    (a stand-in's logs) by overriding failure_report() and appending to
    super().failure_report()."""

    maxDiff = None

    def failure_report(self):
        return ""

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        self._servers_before = len(_servers)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            sys.stderr.write(self.failure_report())
        return out


class LandlordTestCase(ReportingTestCase):
    """A TestCase that prints the logs of every server started during a
    failing test (and of the class's shared servers), and offers helpers."""

    def failure_report(self):
        seen = set()
        shown = list(getattr(type(self), "_shared_servers", [])) + _servers[self._servers_before:]
        out = []
        for s in shown:
            if id(s) in seen:
                continue
            seen.add(id(s))
            out.append("\n=== landlord logs for %s (data %s) ===\n%s\n" % (self.id(), s.data, s.logs()))
        return super().failure_report() + "".join(out)

    @classmethod
    def start_shared(cls, **kw):
        s = Server(**kw).start()
        if "_shared_servers" not in cls.__dict__:
            cls._shared_servers = []
        cls._shared_servers.append(s)
        return s

    @classmethod
    def stop_shared(cls):
        """Stops the class's servers (SIGTERM, then kill if need be); returns
        their exit codes."""
        codes = []
        for s in cls.__dict__.get("_shared_servers", []):
            codes.append(s.stop())
            s.kill()
        cls._shared_servers = []
        return codes

    @classmethod
    def stop_shared_cleanly(cls, sanitizer_clean=False):
        """stop_shared() for a class with one shared server, which must exit
        0 on SIGTERM (and, with sanitizer_clean, leave no sanitizer report)."""
        servers = list(cls.__dict__.get("_shared_servers", []))
        codes = cls.stop_shared()
        assert codes == [0], "landlord did not exit 0 on SIGTERM: %r" % codes
        if sanitizer_clean:
            for s in servers:
                assert not s.sanitizer_report(), s.sanitizer_report()

    def setUp(self):
        super().setUp()
        self.landlords = []  # every server launch() started in this test

    def start_server(self, **kw):
        s = Server(**kw).start()
        self.addCleanup(s.kill)
        return s

    def launch(self, args=(), env=None, data=None):
        """Starts landlord; returns (server, None) when it serves, or (None,
        server) when it exited by itself before serving (a refusal).  A
        landlord that neither serves nor exits within the start timeout
        fails the test.  Killed at the end of the test; listed in
        self.landlords."""
        s = Server(args=args, env=env, data=data)
        self.landlords.append(s)
        self.addCleanup(s.kill)
        try:
            s.start()
            return s, None
        except StartError as e:
            if s.proc is None or s.proc.returncode is None or "did not announce" in str(e):
                raise
            return None, s

    def serve(self, args=(), env=None, data=None):
        """launch() that fails the test when landlord refuses to start."""
        s, refused = self.launch(args, env=env, data=data)
        if s is None:
            self.fail("landlord refused to start (exit %d):\n%s" % (refused.proc.returncode, refused.logs()))
        return s

    def assertProblem(self, resp, status, ptype=None, field=None, msg=None):
        """resp is an application/problem+json answer with this status and
        (optionally) this type (suffix after urn:landlord:problem:) and field."""
        ctx = "%s%r" % ((msg + ": ") if msg else "", resp)
        self.assertEqual(resp.status, status, ctx)
        self.assertEqual(resp.content_type, "application/problem+json", ctx)
        self.assertIsInstance(resp.json, dict, ctx)
        self.assertEqual(resp.json.get("status"), status, ctx)
        self.assertIsInstance(resp.json.get("title"), str, ctx)
        self.assertTrue(str(resp.json.get("type", "")).startswith(PROBLEM), ctx)
        if ptype is not None:
            types = ptype if isinstance(ptype, (tuple, list, set)) else (ptype,)
            self.assertIn(resp.json.get("type"), [PROBLEM + t for t in types], ctx)
        if field is not None:
            self.assertEqual(resp.json.get("field"), field, ctx)
        rid = resp.header("X-Request-Id")
        if "request_id" in resp.json:
            self.assertEqual(resp.json["request_id"], rid, ctx)
        return resp.json

    def assertSanitizerClean(self, server, msg=None):
        """No sanitizer report in any stderr of server (see
        Server.sanitizer_report; stop the server first for LSan's)."""
        report = server.sanitizer_report()
        if report:
            self.fail("%ssanitizer reports in landlord's stderr:\n%s" % ((msg + ": ") if msg else "", report))

    def assertJson(self, resp, status, msg=None):
        ctx = "%s%r" % ((msg + ": ") if msg else "", resp)
        self.assertEqual(resp.status, status, ctx)
        self.assertEqual(resp.content_type, "application/json", ctx)
        self.assertIsNotNone(resp.json, ctx)
        return resp.json


class SharedServerTestCase(LandlordTestCase):
    """One landlord for the whole class, cls.s, started with the arguments
    shared_args; it must exit 0 on SIGTERM once the class is done."""

    shared_args = ()
    shared_sanitizer_clean = False  # True: no sanitizer report either

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s = cls.start_shared(args=list(cls.shared_args))

    @classmethod
    def tearDownClass(cls):
        cls.stop_shared_cleanly(cls.shared_sanitizer_clean)
        super().tearDownClass()


class GitServerTestCase(LandlordTestCase):
    """A LandlordTestCase with one real Git server (gitserver.py) for the
    class: cls.gs, with the account git_user / git_password (HTTPS when
    git_tls), and cls.pwfile, that password in a 0600 file.  A failing
    test's report ends with lighttpd's error log."""

    git_user, git_password, git_tls = "landlord", "s3cret", False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gs = GitServer(tls=cls.git_tls, users={cls.git_user: cls.git_password}).start()
        cls.pwfile = cls.gs.write_password_file(cls.git_password)

    @classmethod
    def tearDownClass(cls):
        cls.gs.cleanup()
        super().tearDownClass()

    def failure_report(self):
        return super().failure_report() + "\n=== lighttpd error log ===\n%s\n" % self.gs.error_log()[-3000:]


def onboard(server, tenant_id, tier, release=None, values=None, query=""):
    body = {"id": tenant_id, "tier": tier}
    if release is not None:
        body["release"] = release
    if values is not None:
        body["values"] = values
    return server.post_json("/api/v1/tenants" + query, body)


# -- GitOps content helpers ------------------------------------------------------


def merged(base, over):
    """base with over merged in (objects recursively, everything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# -- release archives ---------------------------------------------------------------


def archive(files, compress=True, links=()):
    """A tar (gzipped unless compress is False) of {path: bytes}, plus
    symlinks (path, target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path, data in files.items():
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
        for path, target in links:
            ti = tarfile.TarInfo(path)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            t.addfile(ti)
    data = raw.getvalue()
    return gzip.compress(data, mtime=1700000000) if compress else data


def template_path(tier):
    return "%s/tier-templates/%s_tenant_template.yaml" % (PROD, tier)


def tenant_path(tier, tenant_id):
    return "%s/tenants/%s/%s.yaml" % (PROD, tier, tenant_id)


def kustomization_path(tier):
    return "%s/tenants/%s/kustomization.yaml" % (PROD, tier)


def naive_render(template, tenant_id, tier, release_expr):
    """The template with its placeholders replaced textually: what the
    rendered file must mean (semantically) when no values are given and the
    id is an unambiguous plain string."""
    out = template.replace("{RELEASE_VERSION}.x", release_expr)
    out = out.replace("{RELEASE_VERSION}", release_expr)
    out = out.replace("{TENANT_ID}", tenant_id).replace("{TIER}", tier)
    return out


def template_comments(template):
    """The comments of a template ('# ...' to the end of the line), stripped."""
    comments = []
    for line in template.splitlines():
        i = line.find("#")
        # a '#' that starts a comment is at the start or after a blank
        while i >= 0 and i > 0 and line[i - 1] not in " \t":
            i = line.find("#", i + 1)
        if i >= 0:
            comments.append(line[i:].strip())
    return comments


def yaml_docs(text):
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]


def kustomization_resources(text):
    import yaml

    doc = yaml.safe_load(text) or {}
    return list(doc.get("resources") or [])

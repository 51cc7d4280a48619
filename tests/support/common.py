"""Mechanics the test support modules share: one helper for each.

The stand-ins (gitserver, sshserver, ociregistry, registryproxy, awsstandin,
kubeapi, fluxsim) and the harness each start processes or HTTP servers on a
free port, run a command and report its failure, read a log that may not
exist yet, hold temp dirs and kill what is still running at interpreter exit.
These are written once here.  Python 3 standard library only.

  poll(fn, timeout, ...)    fn()'s first true value, polled; AssertionError
                            after timeout seconds
  exchange(conn, ...)       one HTTP request on a connection, then closed:
                            (status, reason, headers, body)
  free_port()               a TCP port on 127.0.0.1 that was free a moment ago
  run(cmd, error=...)       a command to completion; its stdout (text, or bytes
                            with raw=True); raises error with stderr and stdout
                            when it exits non-zero
  read_text(path)           a file as text, "" when missing or unreadable
  git_env(extra)            the environment for git run by the test support:
                            no system or global config, no prompts, a fixed
                            identity, no GIT_* or LANDLORD_* of ours
  end_group(proc, sig, t)   ends a child that leads its own process group and
                            every process in that group
  serve_in_thread(httpd)    serve_forever on a daemon thread; stop_serving()
                            shuts it down, closes it and joins the thread
  make_temp_dir(prefix)     a temp dir removed at exit; remove_temp_dir(d)
                            removes one now
  track(obj, kill)          kill() is called at exit while obj is tracked;
                            untrack(obj) when it has stopped by itself
  ChildServer               base of a stand-in that runs one child process on
                            a port: context manager, .running, start on a
                            free port (five tries), cleanup, password files
  write_private(path, data) a new 0600 file holding data
  load_json_strict(path)    a JSON (or JSON Lines) fixture: duplicate keys and
                            NaN/Infinity refused, key order kept
  fixture_text(*parts)      a data file under tests/api/fixtures/, byte for
                            byte (FIXTURES is that folder)

Exit: one atexit hook kills everything tracked, then removes the temp dirs
(in that order: a server's files go only once it is gone).  This module is
imported by every module that tracks anything, so its hook is registered
first and runs last.  The lists are shared by threads under one lock.
"""

import atexit
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "api", "fixtures")

_lock = threading.Lock()
_live = []  # [(obj, kill)]
_temp_dirs = []


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(fn, timeout, interval=0.05, msg=None, show=repr):
    """Calls fn every interval seconds until it returns something true and
    returns that; after timeout seconds raises AssertionError with msg and
    show(fn's last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s (within %.0f s); last: %s" % (msg or "condition not met", timeout, show(v)))
        time.sleep(interval)


def exchange(conn, method, path, body=None, headers=None):
    """One HTTP request on conn (an http.client connection), which is closed
    afterwards: (status, reason, headers, body bytes)."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.reason, r.headers, r.read()
    finally:
        conn.close()


def run(cmd, error=RuntimeError, cwd=None, env=None, input=None, raw=False):
    """Runs cmd (a list) to completion with stdin closed (or fed input, bytes)
    and returns its stdout, decoded as UTF-8 with replacement unless raw.
    A non-zero exit raises error("<cmd> failed (<rc>): <stderr><stdout>")."""
    p = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if p.returncode != 0:
        raise error(
            "%s failed (%d): %s%s"
            % (
                " ".join(cmd),
                p.returncode,
                p.stderr.decode("utf-8", "replace"),
                p.stdout.decode("utf-8", "replace"),
            )
        )
    return p.stdout if raw else p.stdout.decode("utf-8", "replace")


def read_text(path):
    """The file at path as text (UTF-8, invalid bytes replaced); "" when path
    is empty, missing or unreadable."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def git_env(extra=None):
    """Environment for git commands run by the test support: ours without
    GIT_* and LANDLORD_*, no system or global config, no prompts, a fixed
    identity, the C locale; plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and not k.startswith("LANDLORD_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "seed",
            "GIT_AUTHOR_EMAIL": "seed@example.com",
            "GIT_COMMITTER_NAME": "seed",
            "GIT_COMMITTER_EMAIL": "seed@example.com",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def end_group(proc, sig, timeout):
    """Ends proc (our child, started with start_new_session=True) with sig,
    SIGKILL after timeout seconds, and then every process left in its group
    (CGI children and the like).  The child is waited for without being
    reaped first, so its pid (and so its group id) cannot have been reused by
    an unrelated process when the group is signalled."""
    if proc.returncode is not None:
        return  # already reaped: its group id is no longer ours to signal
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    flags = os.WEXITED | os.WNOWAIT
    try:
        while os.waitid(os.P_PID, proc.pid, flags | os.WNOHANG) is None:
            if time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)
                os.waitid(os.P_PID, proc.pid, flags)
                break
            time.sleep(0.005)
    except ChildProcessError:
        pass
    # The child has exited but is not reaped: its group is still its own.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def serve_in_thread(httpd, name=None, poll_interval=0.5):
    """Starts httpd.serve_forever on a daemon thread and returns the thread.
    A short poll_interval makes stop_serving() quicker."""
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": poll_interval}, name=name,
                         daemon=True)
    t.start()
    return t


def stop_serving(httpd, thread=None, join=5):
    """Shuts httpd down (serve_forever returns), closes its socket and joins
    thread for up to join seconds.  Both may be None."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(join)


def make_temp_dir(prefix="landlord-test-"):
    """A new temp dir, removed at interpreter exit unless removed before."""
    d = tempfile.mkdtemp(prefix=prefix)
    with _lock:
        _temp_dirs.append(d)
    return d


def remove_temp_dir(d):
    """Removes d (made by make_temp_dir) now."""
    shutil.rmtree(d, ignore_errors=True)
    with _lock:
        if d in _temp_dirs:
            _temp_dirs.remove(d)


def remove_temp_dirs():
    """Removes every temp dir made by make_temp_dir."""
    while True:
        with _lock:
            if not _temp_dirs:
                return
            d = _temp_dirs.pop()
        shutil.rmtree(d, ignore_errors=True)


def track(obj, kill):
    """Calls kill() at interpreter exit unless untrack(obj) comes first."""
    with _lock:
        if not any(o is obj for o, _ in _live):
            _live.append((obj, kill))


def untrack(obj):
    with _lock:
        _live[:] = [(o, k) for o, k in _live if o is not obj]


def write_private(path, data):
    """Writes data (str as UTF-8, or bytes) to a new 0600 file at path."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return path


class ChildServer:
    """What gitserver's lighttpd, sshserver's sshd and ociregistry's
    docker-registry have in common.  A subclass sets error (its exception
    class) and self.root (a make_temp_dir), keeps its child in self.proc and
    defines _start_once() (starts the child, track(self, self._kill), then
    _await_child(...) until it answers on self.port) and stop() (usually
    _end_child(SIGTERM)).  A context manager: start on enter, stop and
    cleanup on exit."""

    error = RuntimeError
    stop_timeout = 5.0
    proc = None
    port = None
    root = None
    _pwfiles = 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()
        return False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _start_on_port(self, fixed=None):
        """_start_once() on self.port when fixed (default: a port was given),
        else on a free port, up to five times; returns self or raises the
        last error."""
        if fixed is None:
            fixed = self.port is not None
        last = None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            try:
                self._start_once()
                return self
            except self.error as e:
                last = e
                if fixed:
                    break
        raise last

    def _await_child(self, ready, timeout, interval, exited, late, diagnostics):
        """Waits until ready() is true while the child runs.  When the child
        exits first, raises error("<exited % rc>\n<diagnostics()>"); when
        timeout seconds pass, kills it and raises error("<late>\n...")."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                untrack(self)
                raise self.error("%s\n%s" % (exited % rc, diagnostics()))
            if ready():
                return
            if time.monotonic() > deadline:
                self._kill()
                raise self.error("%s\n%s" % (late, diagnostics()))
            time.sleep(interval)

    def _end_child(self, sig):
        """Ends the child and its process group (end_group: sig, SIGKILL
        after stop_timeout seconds); it is no longer tracked."""
        proc, self.proc = self.proc, None
        if proc is not None:
            end_group(proc, sig, self.stop_timeout)
        untrack(self)

    def _kill(self):
        self._end_child(signal.SIGKILL)

    def cleanup(self):
        """Stops the server and removes its temp dir."""
        self.stop()
        remove_temp_dir(self.root)

    def write_password_file(self, password, name=None):
        """password (no newline) in a new 0600 file in the server's temp dir;
        its path."""
        self._pwfiles += 1
        return write_private(os.path.join(self.root, name or "password.%d" % self._pwfiles), password)


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


def _no_duplicates(pairs):
    obj = collections.OrderedDict()
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate key %r" % (k,))
        obj[k] = v
    return obj


def loads_strict(text):
    """json.loads refusing duplicate keys and NaN/Infinity; objects are
    OrderedDicts (key order as written)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def load_json_strict(path):
    """A JSON fixture file parsed by loads_strict; a file named *.jsonl is
    JSON Lines: a list of the values of its non-blank lines."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            return [loads_strict(line) for line in f.read().splitlines() if line.strip()]
        return json.load(f, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def fixture_text(*parts):
    """The text of FIXTURES/<parts...> exactly as stored (UTF-8, newlines
    untranslated)."""
    with open(os.path.join(FIXTURES, *parts), encoding="utf-8", newline="") as f:
        return f.read()


@atexit.register
def _cleanup():
    with _lock:
        live = list(_live)
        _live.clear()
    for _, kill in reversed(live):
        try:
            kill()
        except Exception:
            pass
    remove_temp_dirs()

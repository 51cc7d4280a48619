"""A real Git server over SSH for the tests: Debian's OpenSSH sshd on
127.0.0.1, public-key authentication only, serving bare repositories in a
temp dir through git-upload-pack / git-receive-pack.

Python 3 standard library only.  Needs the Debian packages openssh-server
(/usr/sbin/sshd), openssh-client (ssh-keygen) and git.

    from sshserver import SshServer

    ss = SshServer().start()
    ss.create_repo("gitops")          # empty bare repository, HEAD -> main
    ss.url("gitops")                  # ssh://USER@127.0.0.1:PORT/ABS/PATH/gitops.git
    ss.client_key                     # authorized ed25519 private key (0600)
    ss.host_key_fingerprint           # "SHA256:..." as `ssh-keygen -lf` prints it
    ss.stop()

API:

  SshServer(user=None)
      user: the login user (default getpass.getuser(); sshd can only log in
      as the user it runs as unless it runs as root).
  .start()          starts `sshd -D -e -f CONF` on a free port and waits
                    until it answers with an SSH banner; raises
                    SshServerError with sshd's stderr if it does not.
                    Returns self.
  .stop()           SIGTERM, then SIGKILL after 5 s.
  .running          whether sshd is up.
  .port, .user      where it listens and who logs in.
  .client_key       the private key whose public half is in authorized_keys.
  .host_key, .host_key_fingerprint
                    the server's ed25519 host key (private key path) and its
                    SHA256 fingerprint ("SHA256:<base64 without padding>").
  .new_key(name)    a fresh ed25519 key pair (unencrypted, 0600) that is NOT
                    authorized; returns the private key path.
  .authorize(key)   appends key's public half to authorized_keys.
  .create_repo(name, head="main")
                    an empty bare repository NAME.git with HEAD ->
                    refs/heads/<head>; returns its absolute path.
  .path(name)       the bare repository on disk.
  .url(name)        ssh://USER@127.0.0.1:PORT/ABS/PATH/NAME.git
  .log()            sshd's stderr so far (LogLevel VERBOSE), as text.
  .root             the temp dir (keys, config, repos/, sshd.log).

Every started sshd is killed at interpreter exit (atexit), and the temp
dirs are removed.  SshServer is a context manager.
"""

import getpass
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

SSHD = os.environ.get("SSHSERVER_SSHD", "/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class SshServerError(RuntimeError):
    pass


def _run(cmd, env=None):
    return common.run(cmd, SshServerError, env=env)


def keygen(path, comment="landlord-test"):
    """An unencrypted ed25519 key pair at path / path.pub (private key 0600)."""
    for p in (path, path + ".pub"):
        if os.path.exists(p):
            os.unlink(p)
    _run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    os.chmod(path, 0o600)
    return path


def fingerprint(pub_path):
    """`ssh-keygen -lf` of a public key: the "SHA256:..." field."""
    out = _run([SSH_KEYGEN, "-l", "-E", "sha256", "-f", pub_path]).split()
    if len(out) < 2 or not out[1].startswith("SHA256:"):
        raise SshServerError("unexpected ssh-keygen -lf output: %r" % " ".join(out))
    return out[1]


class SshServer(common.ChildServer):
    error = SshServerError

    def __init__(self, user=None):
        self.user = user or getpass.getuser()
        self.root = common.make_temp_dir("sshserver-")
        self.repos = os.path.join(self.root, "repos")
        os.makedirs(self.repos)
        self.conf = os.path.join(self.root, "sshd_config")
        self.pid_file = os.path.join(self.root, "sshd.pid")
        self.log_path = os.path.join(self.root, "sshd.log")
        self.authorized_keys = os.path.join(self.root, "authorized_keys")
        self.host_key = keygen(os.path.join(self.root, "ssh_host_ed25519_key"), "landlord-test-host")
        self.host_key_fingerprint = fingerprint(self.host_key + ".pub")
        self.client_key = keygen(os.path.join(self.root, "client_ed25519"), "landlord-test-client")
        open(self.authorized_keys, "w").close()
        self.authorize(self.client_key)
        self.port = None
        self.proc = None
        self._keys = 0

    # -- keys -----------------------------------------------------------------

    def new_key(self, name=None):
        """A fresh, unauthorized ed25519 key pair; the private key's path."""
        self._keys += 1
        return keygen(os.path.join(self.root, name or "extra_key_%d" % self._keys), "landlord-test-other")

    def authorize(self, key):
        with open(key + ".pub") as f:
            pub = f.read().strip()
        with open(self.authorized_keys, "a") as f:
            f.write(pub + "\n")

    # -- lifecycle (context manager, running, cleanup: common.ChildServer) -------

    def _write_conf(self):
        lines = [
            "ListenAddress 127.0.0.1",
            "Port %d" % self.port,
            "HostKey %s" % self.host_key,
            "PidFile %s" % self.pid_file,
            "AuthorizedKeysFile %s" % self.authorized_keys,
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowUsers %s" % self.user,
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "PermitUserEnvironment no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
            "MaxStartups 100",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        if self.running:
            return self
        if os.geteuid() == 0:
            # sshd's privilege separation directory.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            os.chmod("/run/sshd", 0o755)
        return self._start_on_port(fixed=False)

    def _start_once(self):
        self._write_conf()
        open(self.log_path, "w").close()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", self.conf],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        finally:
            log.close()
        common.track(self, self._kill)
        self._await_child(self._banner, START_TIMEOUT, 0.02,
                          "sshd exited with %%d before listening on 127.0.0.1:%d" % self.port,
                          "sshd did not answer on 127.0.0.1:%d within %.0f s" % (self.port, START_TIMEOUT),
                          self.log)

    def _banner(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                return s.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def _end(self, sig):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        common.untrack(self)

    def stop(self):
        self._end(signal.SIGTERM)

    def _kill(self):
        self._end(signal.SIGKILL)

    def log(self):
        return common.read_text(self.log_path)

    # -- repositories -------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.repos, name + ".git")

    def create_repo(self, name, head="main"):
        p = self.path(name)
        _run(["git", "init", "-q", "--bare", p], env=common.git_env())
        _run(["git", "--git-dir", p, "symbolic-ref", "HEAD", "refs/heads/" + head], env=common.git_env())
        return p

    def url(self, name):
        return "ssh://%s@127.0.0.1:%d%s" % (self.user, self.port, self.path(name))

    def __repr__(self):
        return "<SshServer %s@127.0.0.1:%s root=%s>" % (self.user, self.port, self.root)

"""Helpers for the storm, adoption and PATCH tests: a git CLI working clone,
a foreign writer thread, concurrent API clients, operation polling, commit
trailers, and the invariants that must hold between the registry (read
through the API) and the GitOps repository (read with the git CLI).

Python 3 standard library + python3-yaml only.
"""

import http.client
import json
import os
import queue
import random
import re
import subprocess
import tempfile
import threading
import time

import yaml

from harness import (
    PROD,
    clean_env,
    git,
    kustomization_path,
    make_temp_dir,
    naive_render,
    template_path,
    token_for_port,
)

TENANTS = PROD + "/tenants"
TRAILER_RE = re.compile(r"^Landlord-Operations:[ \t]*(.*)$", re.M)
OP_LOCATION_RE = re.compile(r"^/api/v1/operations/(\d+)$")


# -- git CLI on a working clone ------------------------------------------------


def git_env():
    return clean_env(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": tempfile.gettempdir(),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Foreign Writer",
            "GIT_AUTHOR_EMAIL": "foreign@example.com",
            "GIT_COMMITTER_NAME": "Foreign Writer",
            "GIT_COMMITTER_EMAIL": "foreign@example.com",
        }
    )


def wgit(workdir, *args, check=True):
    """git -C workdir ARGS; returns the CompletedProcess (text)."""
    p = subprocess.run(
        ["git", "-C", workdir] + list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=git_env(),
    )
    if check and p.returncode != 0:
        raise AssertionError("git -C %s %s failed (%d): %s" % (workdir, " ".join(args), p.returncode, p.stderr))
    return p


def clone(url, branch="main"):
    """A fresh working clone of url in a temp dir."""
    d = os.path.join(make_temp_dir("landlord-clone-"), "w")
    p = subprocess.run(
        ["git", "clone", "-q", "-b", branch, url, d],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=git_env(),
    )
    if p.returncode != 0:
        raise AssertionError("git clone %s failed: %s" % (url, p.stderr))
    return d


def write_file(workdir, path, content, mode="w"):
    full = os.path.join(workdir, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open(full, "ab" if mode == "a" else "wb") as f:
        f.write(data)


def read_file(workdir, path):
    with open(os.path.join(workdir, path), "rb") as f:
        return f.read().decode("utf-8")


def is_ancestor(git_dir, sha, rev="main"):
    p = subprocess.run(
        ["git", "--git-dir", git_dir, "merge-base", "--is-ancestor", sha, rev],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=git_env(),
    )
    return p.returncode == 0


def read_blobs(git_dir, rev, paths):
    """{path: text} of the given paths at rev, in one git process."""
    paths = list(paths)
    if not paths:
        return {}
    inp = "".join("%s:%s\n" % (rev, p) for p in paths).encode("utf-8")
    p = subprocess.run(
        ["git", "--git-dir", git_dir, "cat-file", "--batch"],
        input=inp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(),
        check=True,
    )
    out, pos, result = p.stdout, 0, {}
    for path in paths:
        nl = out.index(b"\n", pos)
        header = out[pos:nl].decode()
        pos = nl + 1
        if header.endswith(" missing"):
            result[path] = None
            continue
        size = int(header.split()[2])
        result[path] = out[pos:pos + size].decode("utf-8")
        pos += size + 1
    return result


def tree_files(git_dir, rev="main", under=None):
    args = ["ls-tree", "-r", "--name-only", rev]
    if under:
        args += ["--", under]
    return [l for l in git(git_dir, *args).splitlines() if l]


def tenant_files(git_dir, rev="main"):
    """{(tier, id)} of every tenant file under tenants/<tier>/, plus the list
    of those paths (dummy-configmap.yaml and kustomization.yaml excluded)."""
    found = []
    for p in tree_files(git_dir, rev, TENANTS + "/"):
        rest = p[len(TENANTS) + 1:].split("/")
        if len(rest) != 2 or not rest[1].endswith(".yaml"):
            continue
        if rest[1] in ("kustomization.yaml", "dummy-configmap.yaml"):
            continue
        found.append((rest[0], rest[1][: -len(".yaml")]))
    return found


def commit_trailers(git_dir, rev="main"):
    """[(sha, [operation ids])] of every commit with a Landlord-Operations
    trailer, oldest first (git log --reverse)."""
    out = git(git_dir, "log", "--reverse", "--format=%H%x01%B%x02", rev)
    result = []
    for chunk in out.split("\x02"):
        chunk = chunk.strip("\n")
        if not chunk:
            continue
        sha, body = chunk.split("\x01", 1)
        m = TRAILER_RE.findall(body)
        if m:
            ids = []
            for line in m:
                ids += [int(x) for x in re.findall(r"\d+", line)]
            result.append((sha, ids))
    return result


# -- HTTP ------------------------------------------------------------------------


def request(port, method, path, obj=None, timeout=60):
    """One request; returns (status, headers, json-or-None) or raises OSError
    / http.client exceptions when the server is gone."""
    c = KeepAlive(port, timeout)
    try:
        return c.request(method, path, obj)
    finally:
        c.close()


class KeepAlive:
    """One client holding a keep-alive HTTP/1.1 connection to a landlord on
    127.0.0.1:port, with its admin token.  request() answers (status,
    headers, json-or-None) like request() above, on the same connection
    while the server keeps it open; a request that fails is not retried
    (a write might have been taken): the exception goes to the caller and
    the next request opens a new connection.  opened counts the
    connections made, so a test can see that they were kept."""

    def __init__(self, port, timeout=60):
        self.port = port
        self.timeout = timeout
        self.conn = None
        self.opened = 0
        token = token_for_port(port)
        self.auth = {"Authorization": "Bearer " + token} if token else {}

    def request(self, method, path, obj=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.opened += 1
        hdrs = dict(self.auth)
        body = None
        if obj is not None:
            body = json.dumps(obj).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
        except BaseException:
            self.close()
            raise
        if r.will_close:
            self.close()
        js = None
        if data:
            try:
                js = json.loads(data)
            except ValueError:
                js = None
        return r.status, r.headers, js

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def op_id_of(status, headers, body):
    """The operation id an acknowledged write names: the Location of a 202,
    else the tenant's "operation"."""
    if status == 202:
        m = OP_LOCATION_RE.match(headers.get("Location") or "")
        if m:
            return int(m.group(1))
    if isinstance(body, dict) and isinstance(body.get("operation"), int):
        return body["operation"]
    return None


class Clients:
    """n threads taking jobs (method, path, body, tag) from a queue until it
    is empty or stop is set.  Each outcome is recorded as a dict: tag,
    method, status (None when the connection failed), op (operation id or
    None), body, error."""

    def __init__(self, port, jobs, n=16, stop_on_error=False):
        self.port = port
        self.q = queue.Queue()
        for j in jobs:
            self.q.put(j)
        self.n = n
        self.stop = threading.Event()
        self.stop_on_error = stop_on_error
        self.results = []
        self._lock = threading.Lock()
        self.threads = []

    def _run(self):
        while not self.stop.is_set():
            try:
                method, path, body, tag = self.q.get_nowait()
            except queue.Empty:
                return
            rec = {"tag": tag, "method": method, "path": path, "status": None, "op": None,
                   "body": None, "error": None}
            try:
                status, headers, js = request(self.port, method, path, body)
                rec["status"], rec["body"] = status, js
                if status in (200, 201, 202):
                    rec["op"] = op_id_of(status, headers, js)
                    if status == 202:
                        rec["location"] = headers.get("Location")
            except (OSError, http.client.HTTPException) as e:
                rec["error"] = repr(e)
            with self._lock:
                self.results.append(rec)
            if rec["error"] and self.stop_on_error:
                return

    def start(self):
        for _ in range(self.n):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def join(self, timeout=120):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def acknowledged(self):
        """Results answered 200/201/202 (the server took the write)."""
        return [r for r in self.results if r["status"] in (200, 201, 202)]


def wait_ops(server, op_ids, timeout=60.0):
    """Polls GET /api/v1/operations/{id} until none of op_ids is queued;
    returns {id: operation JSON}.  Raises AssertionError on timeout."""
    pending = sorted(set(op_ids))
    done = {}
    deadline = time.monotonic() + timeout
    while pending:
        # the writer takes operations in id order: while the newest one is
        # queued, there is no point in sweeping the others
        still = []
        for n, i in enumerate(reversed(pending)):
            r = server.get("/api/v1/operations/%d" % i)
            if r.status != 200:
                raise AssertionError("GET /api/v1/operations/%d answered %r" % (i, r))
            if r.json.get("state") == "queued":
                still.append(i)
                if n == 0:
                    still = list(pending)
                    break
            else:
                done[i] = r.json
        pending = sorted(still)
        if not pending:
            break
        if time.monotonic() > deadline:
            queued = []
            for i in pending:
                op = server.get("/api/v1/operations/%d" % i).json
                if op.get("state") == "queued":
                    queued.append(op)
            if queued:
                raise AssertionError("%d operations still queued after %.0f s (ids %s), e.g. %r"
                                     % (len(queued), timeout, [o["id"] for o in queued][:20], queued[0]))
        time.sleep(0.1)
    return done


def wait_quiet(tc, server, acked_ops, timeout=60):
    """tc asserts that every acknowledged operation left the queue pushed
    and that /readyz reports nothing else queued; returns {op id:
    operation JSON}."""
    ops = wait_ops(server, acked_ops, timeout)
    deadline = time.monotonic() + timeout
    while True:
        r = server.get("/readyz")
        queued = ((r.json or {}).get("checks", {}).get("git", {}) or {}).get("queued")
        if queued == 0:
            break
        tc.assertLess(time.monotonic(), deadline, "readyz still reports queued operations: %r" % r)
        time.sleep(0.1)
    not_pushed = {i: o for i, o in ops.items() if o["state"] != "pushed"}
    tc.assertEqual(not_pushed, {}, "acknowledged operations that did not end pushed")
    return ops


def list_tenants(server, query=""):
    """Every tenant of GET /api/v1/tenants, walking the cursor."""
    import urllib.parse

    items, cursor = [], None
    for _ in range(10000):
        q = "?limit=500" + (query and "&" + query) + (
            "&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
        r = server.get("/api/v1/tenants" + q)
        if r.status != 200:
            raise AssertionError("GET /api/v1/tenants%s answered %r" % (q, r))
        items += r.json["items"]
        cursor = r.json["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination does not end")


# -- the foreign writer ----------------------------------------------------------


POOL_FILE = PROD + "/pooled-envs/pool-1.yaml"


class ForeignWriter(threading.Thread):
    """Another writer of the GitOps repository, pushing through the git CLI
    in bursts: `burst` commits a few milliseconds apart (pause), then a
    longer gap in which a writer that must fetch first (landlord) can land
    its own.  Each commit adds
    foreign/<n>.txt, appends a line to foreign/log.txt and, every third
    commit, a comment line to pool-1.yaml (a file landlord never edits).

    Each commit is built with plumbing on the branch head as it is at that
    moment (its object store borrows the bare repository's objects through
    objects/info/alternates), then pushed without force to push_url; a
    rejected push is rebuilt on the new head and pushed again.  This keeps
    its fetch-to-push window short, so that it really does land commits
    between landlord's, and landlord really has to rebuild on them.

    pushed: the shas it pushed (each one landed on the branch).
    expected: {path: content} as last pushed."""

    def __init__(self, bare, push_url=None, burst=3, pause=(0.002, 0.01), gap=(0.3, 0.6), branch="main",
                 edit_pool=True, seed=None):
        super().__init__(daemon=True)
        self.bare = bare
        self.push_url = push_url or bare
        self.burst = burst
        self.pause = pause
        self.gap = gap
        self.branch = branch
        self.edit_pool = edit_pool
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.pushed = []
        self.expected = {}
        self.error = None
        self.rejections = 0
        self.repo = os.path.join(make_temp_dir("landlord-foreign-"), "f.git")
        self.files = os.path.dirname(self.repo)
        self._git("init", "-q", "--bare", self.repo, git_dir=False)
        with open(os.path.join(self.repo, "objects", "info", "alternates"), "w") as f:
            f.write(os.path.join(os.path.abspath(bare), "objects") + "\n")
        self.env = dict(git_env(), GIT_INDEX_FILE=os.path.join(self.files, "index"))

    def _git(self, *args, git_dir=True, input=None, check=True):
        cmd = ["git"] + (["--git-dir", self.repo] if git_dir else []) + list(args)
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=getattr(self, "env", None) or git_env())
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr))
        return p

    def run(self):
        try:
            head = git(self.bare, "rev-parse", self.branch).strip()
            content = {"foreign/log.txt": ""}
            if self.edit_pool:
                content[POOL_FILE] = git(self.bare, "show", "%s:%s" % (head, POOL_FILE))
            n = 0
            while not self.halt.is_set():
                n += 1
                changed = {"foreign/%d.txt" % n: "foreign commit %d\n" % n,
                           "foreign/log.txt": content["foreign/log.txt"] + "line %d\n" % n}
                if self.edit_pool and n % 3 == 1:
                    changed[POOL_FILE] = content[POOL_FILE] + "# foreign edit %d\n" % n
                self._commit_and_push(n, changed)
                content.update(changed)
                self.expected.update(changed)
                time.sleep(self.rng.uniform(*(self.gap if n % self.burst == 0 else self.pause)))
        except BaseException as e:  # reported by finish()
            self.error = e

    def _commit_and_push(self, n, changed):
        paths = sorted(changed)
        for i, p in enumerate(paths):
            with open(os.path.join(self.files, "blob%d" % i), "w") as f:
                f.write(changed[p])
        blobs = self._git("hash-object", "-w", "--stdin-paths",
                          input="".join(os.path.join(self.files, "blob%d\n" % i) for i in range(len(paths))))
        info = "".join("100644 blob %s\t%s\n" % (b, p) for b, p in zip(blobs.stdout.split(), paths))
        for _ in range(500):
            head = git(self.bare, "rev-parse", self.branch).strip()
            self._git("read-tree", head)
            self._git("update-index", "--index-info", input=info)
            tree = self._git("write-tree").stdout.strip()
            sha = self._git("commit-tree", tree, "-p", head, "-m", "Foreign commit %d" % n).stdout.strip()
            p = self._git("push", "-q", self.push_url, "%s:refs/heads/%s" % (sha, self.branch), check=False)
            if p.returncode == 0:
                self.pushed.append(sha)
                return sha
            self.rejections += 1
            time.sleep(self.rng.uniform(0, 0.003))
        raise AssertionError("foreign push kept failing")

    def finish(self, timeout=60):
        self.halt.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("the foreign writer did not stop")
        if self.error:
            raise AssertionError("the foreign writer failed: %r" % (self.error,))


# -- invariants --------------------------------------------------------------------


def valid_render(tc, text, tenant_id, tier, template, release_expr, values=None):
    """tc asserts that text is the template rendered for the tenant: every
    document parses; with no values it means exactly the naive render."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        tc.fail("tenant file of %s does not parse (partial?): %s\n%s" % (tenant_id, e, text))
    if not values:
        want = [d for d in yaml.safe_load_all(naive_render(template, tenant_id, tier, release_expr)) if d]
        tc.assertEqual(docs, want, "tenant file of %s is not the rendered template:\n%s" % (tenant_id, text))
    hrs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "HelmRelease"]
    tc.assertEqual(len(hrs), 1, text)
    tc.assertEqual(hrs[0]["spec"]["values"]["tenantId"], tenant_id, text)
    return docs


def release_expr(release):
    """The chart version a release renders to: 1.2 -> 1.2.x, 1.2.x and 1.2.3 as is."""
    return release + ".x" if release.count(".") == 1 else release


def check_repo_and_registry(tc, server, git_dir, rev="main", tiers=("basic", "premium", "advanced"),
                            check_render=True):
    """The invariants of a quiet system (no operation queued):

    - each tier kustomization parses, lists no entry twice, and lists
      exactly the tenant files of its folder (plus dummy-configmap.yaml when
      it is there);
    - no tenant id has a file in two tiers;
    - every tenant file parses and is its tier template rendered for it;
    - the registry (through the API) and the repo agree: every tenant not
      offboarded has its file in its tier, every file has a tenant not
      offboarded, and nobody is pending.

    Returns ({id: tenant JSON} of tenants not offboarded, tenant files)."""
    files = tenant_files(git_dir, rev)
    all_paths = set(tree_files(git_dir, rev, TENANTS + "/"))
    ids = [i for _, i in files]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    tc.assertEqual(dup, [], "tenant files in more than one tier")
    kpaths = [kustomization_path(t) for t in tiers]
    blobs = read_blobs(git_dir, rev, kpaths + [template_path(t) for t in tiers])
    for tier in tiers:
        ktext = blobs[kustomization_path(tier)]
        tc.assertIsNotNone(ktext, "no kustomization for tier %s" % tier)
        try:
            doc = yaml.safe_load(ktext) or {}
        except yaml.YAMLError as e:
            tc.fail("kustomization of %s does not parse: %s\n%s" % (tier, e, ktext))
        res = list(doc.get("resources") or [])
        dups = sorted({r for r in res if res.count(r) > 1})
        tc.assertEqual(dups, [], "duplicate kustomization entries in %s" % tier)
        in_folder = {i + ".yaml" for t, i in files if t == tier}
        listed = set(res) - {"dummy-configmap.yaml"}
        tc.assertEqual(sorted(listed - in_folder), [], "kustomization of %s lists missing files" % tier)
        tc.assertEqual(sorted(in_folder - listed), [], "tenant files of %s not in its kustomization" % tier)
        if "dummy-configmap.yaml" in res:
            tc.assertIn("%s/%s/dummy-configmap.yaml" % (TENANTS, tier), all_paths)
    tenants = list_tenants(server)
    live = {t["id"]: t for t in tenants if t["state"] != "offboarded"}
    pending = [t["id"] for t in tenants if t.get("sync") == "pending" or t["state"] == "offboarding"]
    tc.assertEqual(pending, [], "tenants still pending on a quiet system")
    tc.assertEqual(
        sorted((t["tier"], t["id"]) for t in live.values()),
        sorted(files),
        "registry (tenants not offboarded) and repository (tenant files) disagree",
    )
    if check_render:
        texts = read_blobs(git_dir, rev, ["%s/%s/%s.yaml" % (TENANTS, t, i) for t, i in files])
        for tier, tid in files:
            t = live[tid]
            valid_render(tc, texts["%s/%s/%s.yaml" % (TENANTS, tier, tid)], tid, tier,
                         blobs[template_path(tier)], release_expr(t["release"]), t.get("values"))
    return live, files


def check_foreign_kept(tc, git_dir, fw, rev="main"):
    """tc asserts that every commit the foreign writer fw pushed is in rev's
    history and that rev holds what it last wrote to each of its files.
    Returns the first-parent positions of landlord's commits (those with a
    Landlord-Operations trailer) that were built directly on a foreign
    commit: landlord fetched it and rebuilt its batch on it."""
    lost = [sha for sha in fw.pushed if not is_ancestor(git_dir, sha, rev)]
    tc.assertEqual(lost, [], "foreign commits not in %s's history (git merge-base --is-ancestor)" % rev)
    got = read_blobs(git_dir, rev, sorted(fw.expected))
    reverted = [path for path in sorted(fw.expected) if got[path] != fw.expected[path]]
    tc.assertEqual(reverted, [], "foreign files reverted or lost")
    first_parent = git(git_dir, "rev-list", "--reverse", "--first-parent", rev).split()
    mine = {sha for sha, _ in commit_trailers(git_dir, rev)}
    foreign = set(fw.pushed)
    return [i for i, sha in enumerate(first_parent) if sha in mine and i and first_parent[i - 1] in foreign]


def check_trailers(tc, git_dir, acked_ops, rev="main"):
    """Every acknowledged operation is named by exactly one commit trailer,
    and operation ids appear in increasing order along the history.  Returns
    {op id: sha}."""
    trailers = commit_trailers(git_dir, rev)
    seq = [i for _, ids in trailers for i in ids]
    where = {}
    for sha, ids in trailers:
        for i in ids:
            where.setdefault(i, []).append(sha)
    twice = {i: shas for i, shas in where.items() if len(shas) > 1 or seq.count(i) > 1}
    tc.assertEqual(twice, {}, "operations named by more than one commit (pushed twice)")
    missing = sorted(set(acked_ops) - set(where))
    tc.assertEqual(missing, [], "acknowledged operations in no commit's Landlord-Operations trailer")
    out_of_order = [(a, b) for a, b in zip(seq, seq[1:]) if b <= a]
    tc.assertEqual(out_of_order, [], "commit order does not follow operation id order")
    return {i: shas[0] for i, shas in where.items()}


def storm_seed():
    s = os.environ.get("LANDLORD_STORM_SEED")
    return int(s) if s else random.SystemRandom().randrange(1 << 30)

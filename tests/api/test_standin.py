"""The stand-in Kubernetes API server (tests/support/kubeapi.py) held to
responses captured from a real kube-apiserver, and the Flux simulator
(tests/support/fluxsim.py) run end to end against a real Git server
(tests/support/gitserver.py).

Needs no landlord binary.  Covers: the golden 401/403/404/409/422/410
bodies, create/get/list/patch/delete shapes, watch line format and
BOOKMARKs; paging with continue tokens (and their expiry), label and field
selectors, watch replay from a resourceVersion, 410 in the stream after
compact(), merge-patch and generation rules, finalizer deletion, Namespace
termination, go_down/come_back, fail_next, cut and malformed watches, token
rotation, kubeconfig; and the simulator: a tenant reaching Ready at the
highest version of its range, a missing version (SourceNotReady) and its
later publication, an upgrade to a new chart version, requestedAt echoed as
lastHandledReconcileAt, pruning through the finalizer and Terminating, a
failed install, build failures.
"""

import collections
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from fluxsim import BuildError, FluxSim, cond, envsubst, kustomize_build, resolve_version  # noqa: E402
from common import FIXTURES, load_json_strict  # noqa: E402
from gitserver import GitServer  # noqa: E402
from kubeapi import KubeAPI, wait_until  # noqa: E402

SOURCE_DIR = os.path.abspath(
    os.environ.get("LANDLORD_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
)

# Responses captured from a real kube-apiserver with the real Flux CRDs
# (shared/reference/kube-golden/, copied verbatim into fixtures/standin/ so
# that the test needs nothing outside the repository;
# test_fixtures_match_reference checks them against the originals when those
# are present).  Read strictly: a duplicate key or NaN is an error.
GOLDEN_DIR = os.path.join(FIXTURES, "standin")
GOLDEN_FILES = (
    "401.json",
    "403.json",
    "create-201.json",
    "create-409.json",
    "delete-200.json",
    "get-404.json",
    "get-helmrelease.json",
    "list-helmreleases.json",
    "patch-status-200.json",
    "patch-status-422.json",
    "watch-410.jsonl",
    "watch-events.jsonl",
)


def golden(name):
    """A golden answer (a list of events for *.jsonl), objects as OrderedDicts."""
    return load_json_strict(os.path.join(GOLDEN_DIR, name))


def loads(data):
    return json.loads(data, object_pairs_hook=collections.OrderedDict)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- clients ------------------------------------------------------------------------


class Client:
    """http.client against the stand-in, verifying its certificate with the CA."""

    def __init__(self, api, token=None, user_agent="curl/8.5.0", timeout=10):
        self.api = api
        self.token = token
        self.user_agent = user_agent
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        if self.api.tls:
            ctx = ssl.create_default_context(cafile=self.api.ca_file)
            return http.client.HTTPSConnection("localhost", self.api.port, context=ctx, timeout=self.timeout)
        return http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=self.timeout)

    def request(self, method, path, body=None, ctype=None, headers=None, token=True):
        h = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if token is True and self.token:
            h["Authorization"] = "Bearer " + self.token
        elif isinstance(token, str):
            h["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = ctype or "application/json"
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        js = None
        if (r.getheader("Content-Type") or "").startswith("application/json") and raw.strip():
            try:
                js = loads(raw)
            except ValueError:  # a watch stream: several lines
                js = None
        return Resp(r.status, r.headers, raw, js)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, obj, **kw):
        return self.request("POST", path, body=obj, **kw)

    def patch(self, path, obj, ctype="application/merge-patch+json", **kw):
        return self.request("PATCH", path, body=obj, ctype=ctype, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Resp:
    def __init__(self, status, headers, raw, js):
        self.status, self.headers, self.raw, self.json = status, headers, raw, js

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


class RawWatch:
    """A watch read off the socket: chunk framing visible, so a stream cut
    mid-line or without its last chunk can be told from a clean end."""

    def __init__(self, api, path, token=None, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
        if api.tls:
            ctx = ssl.create_default_context(cafile=api.ca_file)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        req = "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nUser-Agent: rawwatch\r\n" % path
        if token:
            req += "Authorization: Bearer %s\r\n" % token
        s.sendall((req + "\r\n").encode())
        self.f = s.makefile("rb")
        status = self.f.readline().decode()
        self.status = int(status.split()[1])
        self.headers = {}
        while True:
            line = self.f.readline().decode().rstrip("\r\n")
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.buf = b""
        self.ended = None  # "clean" (last chunk) or "eof" (cut)
        self.chunks = []

    def _chunk(self):
        try:
            line = self.f.readline()
        except (ConnectionResetError, ssl.SSLError, OSError):
            line = b""
        if not line:
            self.ended = "eof"
            return None
        size = int(line.strip().split(b";")[0], 16)
        if size == 0:
            self.f.readline()
            self.ended = "clean"
            return None
        data = self.f.read(size)
        if len(data) < size:
            self.ended = "eof"
            self.buf += data
            return None
        self.f.readline()
        self.chunks.append(data)
        return data

    def line(self):
        """The next line (bytes without \\n), or None at the end of the stream."""
        while b"\n" not in self.buf:
            if self.ended:
                return None
            d = self._chunk()
            if d is None:
                return None
            self.buf += d
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def event(self):
        line = self.line()
        return None if line is None else loads(line)

    def events_until(self, pred, limit=200):
        out = []
        for _ in range(limit):
            ev = self.event()
            if ev is None:
                break
            out.append(ev)
            if pred(ev):
                break
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def assert_shape(tc, g, o, path="$"):
    """Same keys in the same order, same JSON types, recursively; lists are
    compared element by element as far as both go."""
    if isinstance(g, dict):
        tc.assertIsInstance(o, dict, path)
        tc.assertEqual(list(o.keys()), list(g.keys()), path)
        for k in g:
            assert_shape(tc, g[k], o[k], path + "." + k)
    elif isinstance(g, list):
        tc.assertIsInstance(o, list, path)
        for i, (gi, oi) in enumerate(zip(g, o)):
            assert_shape(tc, gi, oi, "%s[%d]" % (path, i))
    else:
        tc.assertEqual(type(o).__name__, type(g).__name__, "%s: %r vs golden %r" % (path, o, g))


HR = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/%s/helmreleases"
HR_ALL = "/apis/helm.toolkit.fluxcd.io/v2/helmreleases"
NS = "/api/v1/namespaces"
RV_RE = re.compile(r"^\d+$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def hr_body(name, ns="default", labels=None, chart_ref=True, **spec):
    body = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns}, "spec": {"interval": "1m"}}
    if labels:
        body["metadata"]["labels"] = labels
    if chart_ref:
        body["spec"]["chartRef"] = {"kind": "OCIRepository", "name": "x"}
    body["spec"].update(spec)
    return body


# -- the stand-in against the captures ---------------------------------------------------------


class GoldenTest(unittest.TestCase):
    """Bodies and shapes as captured from the real kube-apiserver."""

    @classmethod
    def setUpClass(cls):
        cls.api = KubeAPI(tls=True, tokens={"good-token": "admin", "reader-token": "flux-reader"},
                          forbid={"reader-token": ["list helmreleases"]}, bookmark_interval=0.2).start()
        cls.c = Client(cls.api, "good-token")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.api.stop()

    def test_fixtures_match_reference(self):
        self.assertEqual(sorted(os.listdir(GOLDEN_DIR)), sorted(GOLDEN_FILES))
        d = os.path.join(SOURCE_DIR, "..", "shared", "reference", "kube-golden")
        if os.path.isdir(d):
            for name in GOLDEN_FILES:
                with open(os.path.join(d, name)) as f, open(os.path.join(GOLDEN_DIR, name)) as g:
                    self.assertEqual(g.read(), f.read(), name)
        for name in GOLDEN_FILES:
            golden(name)

    def test_401(self):
        for token in (None, "wrong"):
            r = self.c.get(HR % "default", token=token if token else False)
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json, golden("401.json"))
            self.assertEqual(list(r.json), list(golden("401.json")))
            self.assertEqual(r.headers["Content-Type"], "application/json")

    def test_403(self):
        r = self.c.get(HR % "default", token="reader-token")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json, golden("403.json"))
        assert_shape(self, golden("403.json"), r.json)
        # other verbs and resources stay allowed
        self.assertEqual(self.c.get(NS, token="reader-token").status, 200)
        # a named get names the object; cluster scope says so
        api = self.api
        api.set_forbid({"reader-token": ["helmreleases", "get namespaces"]})
        try:
            r = self.c.get(HR % "default" + "/x", token="reader-token")
            self.assertEqual(r.json["message"], 'helmreleases.helm.toolkit.fluxcd.io "x" is forbidden: User '
                             '"flux-reader" cannot get resource "helmreleases" in API group "helm.toolkit.fluxcd.io" '
                             'in the namespace "default"')
            self.assertEqual(r.json["details"], {"name": "x", "group": "helm.toolkit.fluxcd.io", "kind": "helmreleases"})
            r = self.c.get(NS + "/default", token="reader-token")
            self.assertEqual(r.status, 403)
            self.assertEqual(r.json["message"], 'namespaces "default" is forbidden: User "flux-reader" cannot get '
                             'resource "namespaces" in API group "" at the cluster scope')
            r = self.c.patch(HR % "default" + "/x/status", {}, token="reader-token")
            self.assertIn('cannot patch resource "helmreleases/status"', r.json["message"])
        finally:
            api.set_forbid({"reader-token": ["list helmreleases"]})

    def test_create_get_patch_delete_shapes(self):
        g201 = golden("create-201.json")
        body = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": "second", "namespace": "default"},
                "spec": {"chartRef": {"kind": "OCIRepository", "name": "x"}, "interval": "1m"}}
        r = self.c.post(HR % "default", body)
        self.assertEqual(r.status, 201, r)
        assert_shape(self, g201, r.json)
        md = r.json["metadata"]
        self.assertEqual(md["managedFields"], [dict(g201["metadata"]["managedFields"][0], time=md["creationTimestamp"])])
        self.assertEqual(r.json["spec"], g201["spec"])
        self.assertEqual(r.json["status"], {"observedGeneration": -1})
        self.assertEqual(md["generation"], 1)
        self.assertRegex(md["resourceVersion"], RV_RE)
        self.assertRegex(md["uid"], UID_RE)
        self.assertRegex(md["creationTimestamp"], TS_RE)
        # compact JSON, sorted keys, as the apiserver writes custom resources
        self.assertEqual(r.raw.rstrip(b"\n"), compact(r.json).encode())
        uid, rv = md["uid"], md["resourceVersion"]

        # 409
        r = self.c.post(HR % "default", body)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json, golden("create-409.json"))
        assert_shape(self, golden("create-409.json"), r.json)

        # 404
        r = self.c.get(HR % "default" + "/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json, golden("get-404.json"))
        assert_shape(self, golden("get-404.json"), r.json)

        # status patch: 200 with the golden shape, generation unchanged
        g200 = golden("patch-status-200.json")
        r = self.c.patch(HR % "default" + "/second/status", {"status": g200["status"]})
        self.assertEqual(r.status, 200, r)
        assert_shape(self, g200, r.json)
        self.assertEqual(r.json["status"], g200["status"])
        self.assertEqual(r.json["metadata"]["generation"], 1)
        self.assertGreater(int(r.json["metadata"]["resourceVersion"]), int(rv))
        mf = r.json["metadata"]["managedFields"]
        self.assertEqual(mf[1]["subresource"], "status")
        self.assertEqual(mf[1]["fieldsV1"], g200["metadata"]["managedFields"][1]["fieldsV1"])

        # a get returns the same shape
        r = self.c.get(HR % "default" + "/second")
        assert_shape(self, g200, r.json)

        # 422 with causes, Go's escaping of < and >
        bad = {"status": {"history": [{"chartName": "mychart", "chartVersion": "0.1.0", "status": "deployed",
                                        "version": 1}]}}
        r = self.c.patch(HR % "default" + "/second/status", bad)
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json, golden("patch-status-422.json"))
        assert_shape(self, golden("patch-status-422.json"), r.json)
        self.assertIn(b"\\u003cnil\\u003e", r.raw)

        # list: items with kind/apiVersion, continue "" (full shape: test_get_shape_like_golden)
        r = self.c.get(HR % "default")
        self.assertEqual(r.status, 200)
        gl = golden("list-helmreleases.json")
        self.assertEqual(list(r.json), list(gl))
        self.assertEqual(list(r.json["metadata"]), list(gl["metadata"]))
        self.assertEqual(list(r.json["items"][0]), list(gl["items"][0]))
        self.assertEqual(r.json["metadata"]["continue"], "")
        self.assertEqual(r.json["items"][0]["kind"], "HelmRelease")

        # delete: Status Success with the uid
        r = self.c.delete(HR % "default" + "/second")
        self.assertEqual(r.status, 200)
        want = golden("delete-200.json")
        want["details"]["uid"] = uid
        self.assertEqual(r.json, want)
        assert_shape(self, golden("delete-200.json"), r.json)
        self.assertEqual(self.c.get(HR % "default" + "/second").status, 404)

    def test_get_shape_like_golden(self):
        g = golden("get-helmrelease.json")
        body = {"apiVersion": g["apiVersion"], "kind": g["kind"],
                "metadata": {"name": "demo", "namespace": "default"}, "spec": g["spec"]}
        self.assertEqual(self.c.post(HR % "default", body).status, 201)
        self.c.patch(HR % "default" + "/demo/status", {"status": g["status"]})
        r = self.c.get(HR % "default" + "/demo")
        assert_shape(self, g, r.json)
        self.assertEqual(r.json["metadata"]["managedFields"][0]["fieldsV1"], g["metadata"]["managedFields"][0]["fieldsV1"])
        self.assertEqual(r.json["metadata"]["managedFields"][1]["fieldsV1"], g["metadata"]["managedFields"][1]["fieldsV1"])
        r = self.c.get(HR % "default" + "?fieldSelector=metadata.name%3Ddemo")
        assert_shape(self, golden("list-helmreleases.json"), r.json)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertTrue(r.headers["Audit-Id"])
        self.assertEqual(r.headers["Cache-Control"], "no-cache, private")
        self.c.delete(HR % "default" + "/demo")

    def test_watch_lines(self):
        ge = golden("watch-events.jsonl")
        rv = self.api.resource_version
        w = RawWatch(self.api, HR % "default" + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv, "good-token")
        try:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers["content-type"], "application/json")
            self.assertEqual(w.headers["transfer-encoding"], "chunked")
            body = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                    "metadata": {"name": "second", "namespace": "default"},
                    "spec": {"chartRef": {"kind": "OCIRepository", "name": "x"}, "interval": "1m"}}
            self.assertEqual(self.c.post(HR % "default", body).status, 201)
            self.c.patch(HR % "default" + "/second/status", {"status": golden("patch-status-200.json")["status"]})
            self.c.delete(HR % "default" + "/second")
            changes, bookmarks = [], []
            while len(changes) < 3 or not bookmarks or bookmarks[-1][1] < len(changes):
                line = w.line()
                self.assertIsNotNone(line)
                ev = loads(line)
                self.assertEqual(line, compact(ev).encode())  # compact, one object per line
                if ev["type"] == "BOOKMARK":
                    bookmarks.append((ev, len(changes)))
                else:
                    changes.append(ev)
            self.assertEqual([e["type"] for e in changes], ["ADDED", "MODIFIED", "DELETED"])
            for e, g in zip(changes, ge[:3]):
                assert_shape(self, g, e)
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in changes]
            self.assertEqual(rvs, sorted(rvs))
            self.assertEqual(len(set(rvs)), 3)  # a deletion has its own resourceVersion
            last = bookmarks[-1][0]
            assert_shape(self, ge[3], last)
            self.assertEqual(last, {"type": "BOOKMARK", "object": {
                "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"resourceVersion": self.api.resource_version}}})
            # one event per chunk, each ending in \n
            self.assertTrue(all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in w.chunks))
        finally:
            w.close()

    def test_watch_410_in_stream(self):
        self.api.put(hr_body("old", labels={"a": "b"}))
        old = int(self.api.resource_version) - 1
        self.api.compact()
        self.api.put(hr_body("newer"))
        w = RawWatch(self.api, HR % "default" + "?watch=1&resourceVersion=%d" % old, "good-token")
        try:
            self.assertEqual(w.status, 200)
            line = w.line()
            ev = loads(line)
            g = golden("watch-410.jsonl")[0]
            assert_shape(self, g, ev)
            self.assertEqual(ev["object"]["reason"], "Expired")
            self.assertEqual(ev["object"]["code"], 410)
            self.assertRegex(ev["object"]["message"], r"^too old resource version: %d \(\d+\)$" % old)
            self.assertEqual(line, compact(ev).encode())
            self.assertIsNone(w.line())
            self.assertEqual(w.ended, "clean")
        finally:
            w.close()
        self.api.delete("hr", "default", "old")
        self.api.delete("hr", "default", "newer")


# -- behaviour ----------------------------------------------------------------------------------------


class BehaviourTest(unittest.TestCase):
    def setUp(self):
        self.api = KubeAPI(tls=True, tokens={"t": "admin"}, bookmark_interval=0.2,
                           namespace_delete_delay=0.2).start()
        self.c = Client(self.api, "t")

    def tearDown(self):
        self.c.close()
        self.api.stop()

    def test_paging_and_continue(self):
        for i in range(7):
            self.api.put(hr_body("hr-%d" % i, ns="default" if i % 2 else "flux-system", labels={"n": str(i)}))
        r = self.c.get(HR_ALL + "?limit=3")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.json["items"]), 3)
        rv = r.json["metadata"]["resourceVersion"]
        tok = r.json["metadata"]["continue"]
        self.assertTrue(tok)
        self.assertEqual(r.json["metadata"]["remainingItemCount"], 4)
        names = [i["metadata"]["name"] for i in r.json["items"]]
        # a change between pages does not show up: one consistent snapshot
        self.api.put(hr_body("hr-9", ns="default"))
        while tok:
            r = self.c.get(HR_ALL + "?limit=3&continue=" + urllib.parse.quote(tok))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["metadata"]["resourceVersion"], rv)
            names += [i["metadata"]["name"] for i in r.json["items"]]
            tok = r.json["metadata"]["continue"]
        self.assertEqual(sorted(names), ["hr-%d" % i for i in range(7)])
        # order is by namespace/name, like etcd keys
        keys = []
        r = self.c.get(HR_ALL)
        keys = ["%s/%s" % (i["metadata"]["namespace"], i["metadata"]["name"]) for i in r.json["items"]]
        self.assertEqual(keys, sorted(keys))
        # a namespaced list pages too
        r = self.c.get(HR % "default" + "?limit=2")
        self.assertEqual([i["metadata"]["name"] for i in r.json["items"]], ["hr-1", "hr-3"])
        r2 = self.c.get(HR % "default" + "?limit=2&continue=" + r.json["metadata"]["continue"])
        self.assertEqual([i["metadata"]["name"] for i in r2.json["items"]], ["hr-5", "hr-9"])
        # expired continue token: 410 with a token to go on inconsistently
        r = self.c.get(HR_ALL + "?limit=3")
        tok = r.json["metadata"]["continue"]
        self.api.compact()
        r = self.c.get(HR_ALL + "?limit=3&continue=" + tok)
        self.assertEqual(r.status, 410)
        self.assertEqual(r.json["reason"], "Expired")
        self.assertEqual(list(r.json), ["kind", "apiVersion", "metadata", "status", "message", "reason", "code"])
        self.assertTrue(r.json["metadata"]["continue"])
        r = self.c.get(HR_ALL + "?limit=10&continue=" + r.json["metadata"]["continue"])
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.json["items"]), 5)
        # garbage token: 400
        self.assertEqual(self.c.get(HR_ALL + "?limit=3&continue=xyz").status, 400)

    def test_selectors(self):
        labels = [{"tier": "basic", "t": "a"}, {"tier": "premium", "t": "b"}, {"tier": "advanced"}, {}]
        for i, lab in enumerate(labels):
            self.api.put(hr_body("s%d" % i, labels=lab))

        def names(q, path=HR % "default"):
            r = self.c.get(path + "?" + urllib.parse.urlencode({"labelSelector": q} if q is not None else {}))
            self.assertEqual(r.status, 200, r)
            return [i["metadata"]["name"] for i in r.json["items"]]

        self.assertEqual(names("tier=basic"), ["s0"])
        self.assertEqual(names("tier==premium"), ["s1"])
        self.assertEqual(names("tier!=basic"), ["s1", "s2", "s3"])
        self.assertEqual(names("t"), ["s0", "s1"])
        self.assertEqual(names("!t"), ["s2", "s3"])
        self.assertEqual(names("tier in (basic, advanced)"), ["s0", "s2"])
        self.assertEqual(names("tier notin (basic,advanced)"), ["s1", "s3"])
        self.assertEqual(names("tier in (basic,premium),t=b"), ["s1"])
        r = self.c.get(HR % "default" + "?labelSelector=" + urllib.parse.quote("tier in (a b"))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["reason"], "BadRequest")
        r = self.c.get(HR % "default" + "?fieldSelector=metadata.name%3Ds2")
        self.assertEqual([i["metadata"]["name"] for i in r.json["items"]], ["s2"])
        r = self.c.get(HR_ALL + "?fieldSelector=metadata.namespace%3Ddefault,metadata.name!%3Ds0")
        self.assertEqual([i["metadata"]["name"] for i in r.json["items"]], ["s1", "s2", "s3"])
        r = self.c.get(HR_ALL + "?fieldSelector=spec.interval%3D1m")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["message"], "field label not supported: spec.interval")
        # Namespaces: status.phase, typed list (items without kind), kind first
        self.api.namespace_delete_delay = None
        self.api.delete("Namespace", "kube-public")
        r = self.c.get(NS + "?fieldSelector=status.phase%3DTerminating")
        self.assertEqual([i["metadata"]["name"] for i in r.json["items"]], ["kube-public"])
        self.assertEqual(list(r.json), ["kind", "apiVersion", "metadata", "items"])
        self.assertNotIn("kind", r.json["items"][0])
        self.assertNotIn("continue", r.json["metadata"])
        self.assertEqual(list(r.json["items"][0]), ["metadata", "spec", "status"])

    def test_watch_replay_initial_and_selectors(self):
        self.api.put(hr_body("a", labels={"tier": "basic"}))
        rv = self.api.resource_version
        self.api.patch_status("hr", "default", "a", {"observedGeneration": 1})
        self.api.put(hr_body("b", labels={"tier": "premium"}))
        self.api.patch("hr", "default", "a", {"metadata": {"labels": {"tier": "premium"}}})
        # replay from rv
        w = RawWatch(self.api, HR % "default" + "?watch=1&resourceVersion=" + rv, "t")
        try:
            evs = [w.event() for _ in range(3)]
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                             [("MODIFIED", "a"), ("ADDED", "b"), ("MODIFIED", "a")])
        finally:
            w.close()
        # no resourceVersion: the current state as ADDED, then live events
        w = RawWatch(self.api, HR_ALL + "?watch=1", "t")
        try:
            evs = [w.event() for _ in range(2)]
            self.assertEqual(sorted((e["type"], e["object"]["metadata"]["name"]) for e in evs),
                             [("ADDED", "a"), ("ADDED", "b")])
            self.api.delete("hr", "default", "b")
            e = w.event()
            self.assertEqual((e["type"], e["object"]["metadata"]["name"]), ("DELETED", "b"))
        finally:
            w.close()
        # selectors: leaving the selection is a DELETED, entering an ADDED
        w = RawWatch(self.api, HR % "default" + "?watch=1&labelSelector=tier%3Dpremium&resourceVersion="
                     + self.api.resource_version, "t")
        try:
            self.api.patch("hr", "default", "a", {"metadata": {"labels": {"tier": "basic"}}})
            self.api.put(hr_body("c", labels={"tier": "basic"}))  # not seen
            self.api.patch("hr", "default", "c", {"metadata": {"labels": {"tier": "premium"}}})
            evs = [w.event() for _ in range(2)]
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                             [("DELETED", "a"), ("ADDED", "c")])
        finally:
            w.close()

    def test_bookmarks_and_timeout(self):
        t0 = time.monotonic()
        w = RawWatch(self.api, NS + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion="
                     + self.api.resource_version, "t")
        try:
            evs = w.events_until(lambda e: False)
            self.assertEqual(w.ended, "clean")
            dt = time.monotonic() - t0
            self.assertGreater(dt, 0.9)
            self.assertLess(dt, 3.0)
            self.assertGreaterEqual(len(evs), 2)
            for e in evs:
                self.assertEqual(e["type"], "BOOKMARK")
                self.assertEqual(e["object"]["metadata"]["resourceVersion"], self.api.resource_version)
                self.assertEqual(e["object"]["kind"], "Namespace")
        finally:
            w.close()
        w = RawWatch(self.api, NS + "?watch=1&timeoutSeconds=1&resourceVersion=" + self.api.resource_version, "t")
        try:
            self.assertEqual(w.events_until(lambda e: False), [])
            self.assertEqual(w.ended, "clean")
        finally:
            w.close()

    def test_watch_expired_as_http_410(self):
        api = KubeAPI(tls=False, watch_expired="http", history_size=2).start()
        try:
            c = Client(api)
            for i in range(4):
                api.put(hr_body("x%d" % i))
            r = c.get(HR % "default" + "?watch=1&resourceVersion=101")
            self.assertEqual(r.status, 410)
            self.assertEqual(r.json["reason"], "Expired")
            self.assertRegex(r.json["message"], r"^too old resource version: 101 \(\d+\)$")
            # the window: the last history_size events can be replayed
            rv = int(api.resource_version)
            w = RawWatch(api, HR % "default" + "?watch=1&resourceVersion=%d" % (rv - 2))
            self.assertEqual(w.status, 200)
            self.assertEqual(w.event()["object"]["metadata"]["resourceVersion"], str(rv - 1))
            w.close()
            c.close()
        finally:
            api.stop()

    def test_merge_patch_and_generation(self):
        self.api.put(hr_body("g", labels={"a": "1"}, values={"x": 1, "y": {"z": 2}}))
        p = HR % "default" + "/g"
        o = self.c.get(p).json
        self.assertEqual(o["metadata"]["generation"], 1)
        # metadata only: no generation bump, new resourceVersion
        r = self.c.patch(p, {"metadata": {"labels": {"b": "2"}, "annotations": {"reconcile.fluxcd.io/requestedAt": "t1"}}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["metadata"]["generation"], 1)
        self.assertEqual(r.json["metadata"]["labels"], {"a": "1", "b": "2"})
        self.assertNotEqual(r.json["metadata"]["resourceVersion"], o["metadata"]["resourceVersion"])
        # spec: bump; RFC 7386 null removes, nested maps merge
        r = self.c.patch(p, {"spec": {"values": {"x": None, "y": {"w": 3}}}})
        self.assertEqual(r.json["metadata"]["generation"], 2)
        self.assertEqual(r.json["spec"]["values"], {"y": {"z": 2, "w": 3}})
        # status through the main resource is ignored; spec through /status too
        r = self.c.patch(p, {"status": {"observedGeneration": 5}})
        self.assertEqual(r.json["status"], {"observedGeneration": -1})
        r = self.c.patch(p + "/status", {"spec": {"interval": "9m"}, "status": {"observedGeneration": 2}})
        self.assertEqual(r.json["status"], {"observedGeneration": 2})
        self.assertEqual(r.json["spec"]["interval"], "1m")
        self.assertEqual(r.json["metadata"]["generation"], 2)
        # no-op: same resourceVersion, no event
        rv = r.json["metadata"]["resourceVersion"]
        r = self.c.patch(p, {"spec": {"interval": "1m"}})
        self.assertEqual(r.json["metadata"]["resourceVersion"], rv)
        # stale resourceVersion: 409 Conflict
        r = self.c.patch(p, {"metadata": {"resourceVersion": "1"}, "spec": {"interval": "2m"}})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json["reason"], "Conflict")
        self.assertIn("the object has been modified", r.json["message"])
        # json patch
        r = self.c.patch(p, [{"op": "replace", "path": "/spec/interval", "value": "3m"}],
                         ctype="application/json-patch+json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["spec"]["interval"], "3m")
        self.assertEqual(r.json["metadata"]["generation"], 3)
        # unsupported patch types: 415
        for ctype in ("application/strategic-merge-patch+json", "text/plain"):
            r = self.c.patch(p, {"spec": {}}, ctype=ctype)
            self.assertEqual(r.status, 415, ctype)
            self.assertEqual(r.json["reason"], "UnsupportedMediaType")
            self.assertEqual(r.json["message"], "the body of the request was in an unknown format - accepted media "
                             "types include: application/json-patch+json, application/merge-patch+json, "
                             "application/apply-patch+yaml")
        # strategic merge is fine on a built-in type
        r = self.c.patch(NS + "/default", {"metadata": {"labels": {"x": "y"}}}, ctype="application/strategic-merge-patch+json")
        self.assertEqual(r.status, 200)
        # PUT needs the resourceVersion for a custom resource
        cur = self.c.get(p).json
        cur["metadata"].pop("resourceVersion")
        r = self.c.request("PUT", p, body=cur)
        self.assertEqual(r.status, 422)
        cur = self.c.get(p).json
        cur["spec"]["interval"] = "4m"
        r = self.c.request("PUT", p, body=cur)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["metadata"]["generation"], 4)
        # invalid spec on create: 422 with causes
        r = self.c.post(HR % "default", {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                                         "metadata": {"name": "bad"}, "spec": {"chartRef": {"kind": "X"}}})
        self.assertEqual(r.status, 422)
        self.assertEqual([c["field"] for c in r.json["details"]["causes"]], ["spec.interval", "spec.chartRef.name", "<nil>"])
        # a namespace that does not exist: 404 for it
        r = self.c.post(HR % "nope", hr_body("x", ns="nope"))
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["message"], 'namespaces "nope" not found')

    def test_finalizers(self):
        self.api.put(hr_body("f"))
        self.api.patch("hr", "default", "f", {"metadata": {"finalizers": ["finalizers.fluxcd.io"]}})
        w = RawWatch(self.api, HR % "default" + "?watch=1&resourceVersion=" + self.api.resource_version, "t")
        try:
            r = self.c.delete(HR % "default" + "/f")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json["kind"], "HelmRelease")
            self.assertRegex(r.json["metadata"]["deletionTimestamp"], TS_RE)
            self.assertEqual(r.json["metadata"]["generation"], 2)
            self.assertEqual(self.c.get(HR % "default" + "/f").status, 200)
            e = w.event()
            self.assertEqual(e["type"], "MODIFIED")
            self.assertIn("deletionTimestamp", e["object"]["metadata"])
            # no new finalizers while deleting
            r = self.c.patch(HR % "default" + "/f", {"metadata": {"finalizers": ["finalizers.fluxcd.io", "other"]}})
            self.assertEqual(r.status, 422)
            # removing the last finalizer deletes it
            r = self.c.patch(HR % "default" + "/f", {"metadata": {"finalizers": None}})
            self.assertEqual(r.status, 200)
            self.assertEqual(self.c.get(HR % "default" + "/f").status, 404)
            e = w.event()
            self.assertEqual(e["type"], "DELETED")
        finally:
            w.close()

    def test_namespace_terminating(self):
        self.api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
        self.api.put(hr_body("h", ns="acme"))
        self.api.patch("hr", "acme", "h", {"metadata": {"finalizers": ["finalizers.fluxcd.io"]}})
        w = RawWatch(self.api, NS + "?watch=1&resourceVersion=" + self.api.resource_version, "t")
        try:
            r = self.c.delete(NS + "/acme")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json["kind"], "Namespace")
            self.assertEqual(list(r.json)[:2], ["kind", "apiVersion"])
            self.assertEqual(r.json["status"]["phase"], "Terminating")
            self.assertEqual(r.json["spec"], {"finalizers": ["kubernetes"]})
            self.assertIn("deletionTimestamp", r.json["metadata"])
            types = [c["type"] for c in r.json["status"]["conditions"]]
            self.assertEqual(types, ["NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                                     "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
                                     "NamespaceFinalizersRemaining"])
            self.assertEqual(r.json["status"]["conditions"][4]["message"],
                             "Some content in the namespace has finalizers remaining: finalizers.fluxcd.io in 1 "
                             "resource instances")
            # new content is refused
            r = self.c.post(HR % "acme", hr_body("other", ns="acme"))
            self.assertEqual(r.status, 403)
            self.assertIn("because it is being terminated", r.json["message"])
            # the HelmRelease is being deleted; the namespace waits for it
            self.assertIn("deletionTimestamp", self.api.get("hr", "acme", "h")["metadata"])
            time.sleep(0.4)
            self.assertEqual(self.c.get(NS + "/acme").status, 200)
            self.api.remove_finalizer("hr", "acme", "h", "finalizers.fluxcd.io")
            wait_until(lambda: self.c.get(NS + "/acme").status == 404, 3)
            evs = w.events_until(lambda e: e["type"] == "DELETED")
            self.assertEqual(evs[0]["type"], "MODIFIED")
            self.assertEqual(evs[0]["object"]["status"]["phase"], "Terminating")
            self.assertEqual(evs[-1]["type"], "DELETED")
            self.assertEqual(evs[-1]["object"]["metadata"]["name"], "acme")
        finally:
            w.close()
        # no delay: only finish_namespace() ends it
        self.api.namespace_delete_delay = None
        self.api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "beta"}})
        self.api.delete("Namespace", "beta")
        time.sleep(0.2)
        self.assertEqual(self.api.get("Namespace", "beta")["status"]["phase"], "Terminating")
        self.api.finish_namespace("beta")
        self.assertIsNone(self.api.get("Namespace", "beta"))

    def test_go_down_come_back(self):
        port = self.api.port
        w = RawWatch(self.api, HR_ALL + "?watch=1&resourceVersion=" + self.api.resource_version, "t")
        try:
            self.api.go_down()
            self.assertIsNone(w.line())
            self.assertEqual(w.ended, "eof")
        finally:
            w.close()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        self.api.put(hr_body("while-down"))
        self.api.come_back()
        self.assertEqual(self.api.port, port)
        self.c.close()
        r = self.c.get(HR % "default" + "/while-down")
        self.assertEqual(r.status, 200)
        # hang: connections accepted, no answer until come_back
        self.api.go_down(hang=True)
        c = Client(self.api, "t", timeout=0.5)
        with self.assertRaises((socket.timeout, TimeoutError)):
            c.get(HR_ALL)
        c.close()
        self.api.come_back()
        c = Client(self.api, "t")
        self.assertEqual(c.get(HR_ALL).status, 200)
        c.close()

    def test_fail_next_and_counters(self):
        self.api.reset_counts()
        self.api.fail_next(2, status=500)
        for _ in range(2):
            r = self.c.get(HR_ALL)
            self.assertEqual(r.status, 500)
            self.assertEqual(r.json["reason"], "InternalError")
            self.assertEqual(list(r.json), ["kind", "apiVersion", "metadata", "status", "message", "reason",
                                            "details", "code"])
        self.assertEqual(self.c.get(HR_ALL).status, 200)
        self.api.fail_next(1, status=429, retry_after=2)
        r = self.c.get(HR_ALL)
        self.assertEqual(r.status, 429)
        self.assertEqual(r.headers["Retry-After"], "2")
        self.assertEqual(r.json["reason"], "TooManyRequests")
        self.assertEqual(r.json["details"], {"retryAfterSeconds": 2})
        self.api.fail_next(1, status=429, retry_after=1, plain=True)
        r = self.c.get(HR_ALL)
        self.assertEqual((r.status, r.raw), (429, b"Too many requests, please try again later.\n"))
        # only watches
        self.api.fail_next(1, status=503, match="watch")
        self.assertEqual(self.c.get(HR_ALL).status, 200)
        self.assertEqual(self.c.get(HR_ALL + "?watch=1&timeoutSeconds=1").status, 503)
        self.assertEqual(self.api.request_count(verb="list", kind="HelmRelease"), 6)
        self.assertEqual(self.api.request_count(verb="list", kind="HelmRelease", status=200), 2)
        self.assertEqual(self.api.request_count(verb="watch"), 1)
        self.assertEqual(self.api.watch_count(), 0)
        self.assertEqual(self.c.get(HR_ALL + "?watch=1&timeoutSeconds=1").status, 200)
        self.assertEqual(self.api.watch_count("hr"), 1)

    def test_cut_and_malformed(self):
        base = HR_ALL + "?watch=1&resourceVersion=" + self.api.resource_version
        w1, w2 = RawWatch(self.api, base, "t"), RawWatch(self.api, base, "t")
        try:
            wait_until(lambda: self.api.open_watches("hr") == 2, 3)
            self.api.send_malformed()
            self.assertEqual(w1.line(), b"this is not json")
            self.assertEqual(w2.line(), b"this is not json")
            self.api.cut_watches(mid_object=True)
            for w in (w1, w2):
                self.assertIsNone(w.line())
                self.assertEqual(w.ended, "eof")
                self.assertTrue(w.buf.startswith(b'{"type":"BOOKMARK"'))
                with self.assertRaises(ValueError):
                    json.loads(w.buf)
        finally:
            w1.close()
            w2.close()
        w = RawWatch(self.api, base, "t")
        try:
            wait_until(lambda: self.api.open_watches() == 1, 3)
            self.api.cut_watches(clean=True)
            self.assertIsNone(w.line())
            self.assertEqual(w.ended, "clean")
        finally:
            w.close()
        self.assertGreaterEqual(self.api.watch_count("HelmRelease"), 3)

    def test_auth_rotation_kubeconfig_and_certs(self):
        self.assertEqual(self.c.get(NS).status, 200)
        self.api.add_token("t2", "admin")
        self.api.remove_token("t")
        self.assertEqual(self.c.get(NS).status, 401)
        self.assertEqual(self.c.get(NS, token="t2").status, 200)
        path = os.path.join(self.api.root, "kc")
        tf = self.api.write_token_file("t2")
        self.api.kubeconfig(path, token_file=tf, namespace="flux-system")
        with open(path) as f:
            kc = yaml.safe_load(f)
        self.assertEqual(kc["current-context"], "standin")
        self.assertEqual(kc["clusters"][0]["cluster"]["server"], "https://localhost:%d" % self.api.port)
        self.assertEqual(kc["clusters"][0]["cluster"]["certificate-authority"], self.api.ca_file)
        self.assertEqual(kc["users"][0]["user"], {"tokenFile": tf})
        self.assertEqual(kc["contexts"][0]["context"]["namespace"], "flux-system")
        with open(tf) as f:
            self.assertEqual(f.read(), "t2")
        self.api.kubeconfig(path, ca_data=True)
        with open(path) as f:
            kc = yaml.safe_load(f)
        self.assertEqual(kc["users"][0]["user"], {"token": "t2"})
        self.assertIn("certificate-authority-data", kc["clusters"][0]["cluster"])
        # a client certificate signed by the CA: user = CN
        cert, key = self.api.client_cert("cert-user")
        self.api.set_forbid({"cert-user": ["list namespaces"]})
        ctx = ssl.create_default_context(cafile=self.api.ca_file)
        ctx.load_cert_chain(cert, key)
        conn = http.client.HTTPSConnection("localhost", self.api.port, context=ctx, timeout=5)
        conn.request("GET", NS)
        r = conn.getresponse()
        body = loads(r.read())
        conn.close()
        self.assertEqual(r.status, 403)
        self.assertIn('User "cert-user" cannot list resource "namespaces"', body["message"])

    def test_discovery_versions_and_terraform(self):
        r = self.c.get("/apis/helm.toolkit.fluxcd.io/v2")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["kind"], "APIResourceList")
        self.assertEqual(r.json["groupVersion"], "helm.toolkit.fluxcd.io/v2")
        res = {x["name"]: x for x in r.json["resources"]}
        self.assertEqual(res["helmreleases"]["kind"], "HelmRelease")
        self.assertTrue(res["helmreleases"]["namespaced"])
        self.assertIn("watch", res["helmreleases"]["verbs"])
        self.assertIn("helmreleases/status", res)
        self.assertEqual(self.c.get("/apis/helm.toolkit.fluxcd.io/v2beta1").status, 200)
        self.assertEqual(self.c.get("/api/v1").json["resources"][0]["name"], "namespaces")
        self.assertEqual(self.c.get("/version").json["major"], "1")
        groups = [g["name"] for g in self.c.get("/apis").json["groups"]]
        self.assertIn("kustomize.toolkit.fluxcd.io", groups)
        self.assertNotIn("infra.contrib.fluxcd.io", groups)
        # same storage through v2beta1, served with that apiVersion
        self.api.put(hr_body("v"))
        r = self.c.get("/apis/helm.toolkit.fluxcd.io/v2beta1/namespaces/default/helmreleases/v")
        self.assertEqual(r.json["apiVersion"], "helm.toolkit.fluxcd.io/v2beta1")
        r = self.c.get("/apis/helm.toolkit.fluxcd.io/v2beta1/helmreleases")
        self.assertEqual(r.json["apiVersion"], "helm.toolkit.fluxcd.io/v2beta1")
        self.assertEqual(r.json["items"][0]["apiVersion"], "helm.toolkit.fluxcd.io/v2beta1")
        # no tofu-controller CRD: 404 as from a server without it
        for p in ("/apis/infra.contrib.fluxcd.io/v1alpha2", "/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms",
                  "/apis/infra.contrib.fluxcd.io/v1alpha2/namespaces/default/terraforms/x"):
            r = self.c.get(p)
            self.assertEqual(r.status, 404, p)
            self.assertEqual(r.raw, b"404 page not found\n")
        api = KubeAPI(tls=False, terraform=True, not_found_body="status").start()
        try:
            c = Client(api)
            self.assertEqual(c.get("/apis/infra.contrib.fluxcd.io/v1alpha2").status, 200)
            r = c.post("/apis/infra.contrib.fluxcd.io/v1alpha2/namespaces/flux-system/terraforms",
                       {"apiVersion": "infra.contrib.fluxcd.io/v1alpha2", "kind": "Terraform",
                        "metadata": {"name": "acme"}, "spec": {"path": "./x"}})
            self.assertEqual(r.status, 201, r)
            self.assertEqual(c.get("/apis/infra.contrib.fluxcd.io/v1alpha2/terraforms").json["kind"], "TerraformList")
            r = c.get("/apis/nope.example.com/v1/things")
            self.assertEqual(r.status, 404)
            self.assertEqual(r.json["reason"], "NotFound")
            c.close()
        finally:
            api.stop()


# -- the simulator's parts ----------------------------------------------------------------------------------


class SimPartsTest(unittest.TestCase):
    def test_version_constraints(self):
        vs = ["0.0.1", "1.2.0", "1.2.3", "1.2.10", "1.3.0-rc.1", "1.3.0", "2.0.0"]
        cases = {"1.2.x": "1.2.10", "1.2.*": "1.2.10", "1.2": "1.2.10", "1.x": "1.3.0", "*": "2.0.0", "": "2.0.0",
                 "1.2.3": "1.2.3", "~1.2.3": "1.2.10", "^1.2.3": "1.3.0", "^0.0.1": "0.0.1", ">=1.0.0 <1.3.0": "1.2.10",
                 ">1.2.3, <=1.3.0": "1.3.0", "1.2.0 - 1.2.5": "1.2.3", "0.0.x || 1.2.x": "1.2.10", "!=2.0.0": "1.3.0",
                 ">=1.3.0-0 <1.3.0": "1.3.0-rc.1", "9.9.x": None, "9.9.9": None, "not a version": None}
        for expr, want in cases.items():
            self.assertEqual(resolve_version(expr, vs), want, expr)

    def test_envsubst(self):
        v = {"cluster": "prod", "empty": ""}
        self.assertEqual(envsubst("a-${cluster}-${missing}-${missing:=d}-${empty:-e}-$${cluster}", v),
                         "a-prod--d-e-${cluster}")

    def test_kustomize_build(self):
        files = {
            "t/kustomization.yaml": (KZ + "  - a\n  - b.yaml\n").encode(),
            "t/a/kustomization.yaml": (KZ + "  - 0f\nnamespace: override\n").encode(),
            "t/a/0f/kustomization.yaml": (KZ + "  - x.yaml\n").encode(),
            "t/a/0f/x.yaml": tenant_file("x", "1.0.0").encode(),
            "t/b.yaml": (DUMMY % "b").encode(),
        }
        objs = kustomize_build(files, "t")
        self.assertEqual([(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs],
                         [("Namespace", "x", None), ("HelmRelease", "x-premium", "override"),
                          ("ConfigMap", "dummy-b", "flux-system")])
        files["t/a/0f/kustomization.yaml"] = (KZ + "  - x.yaml\n  - x.yaml\n").encode()
        with self.assertRaisesRegex(BuildError, "already registered id: Namespace.v1.\\[noGrp\\]/x.\\[noNs\\]"):
            kustomize_build(files, "t")
        files["t/a/0f/kustomization.yaml"] = (KZ + "  - y.yaml\n").encode()
        with self.assertRaisesRegex(BuildError, "accumulating resources from 'a'.*accumulating resources from "
                                                "'0f'.*accumulating resources from 'y.yaml': open .*/t/a/0f/y.yaml: "
                                                "no such file or directory"):
            kustomize_build(files, "t")
        files["t/a/0f/kustomization.yaml"] = b"resources: [x.yaml"
        with self.assertRaisesRegex(BuildError, "failed to decode"):
            kustomize_build(files, "t")


# -- the simulator against a real Git server ----------------------------------------------------------------

PROD = "application-plane/production"
T = PROD + "/tenants"
KZ = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
DUMMY = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dummy-%s\n  namespace: flux-system\ndata: {}\n"


def tenant_file(tid, version, api_version="helm.toolkit.fluxcd.io/v2", namespace=True):
    docs = []
    if namespace:
        docs.append("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"
                    "    landlord.dev/tenant: %s\n" % (tid, tid))
    docs.append(
        "apiVersion: %s\nkind: HelmRelease\nmetadata:\n  name: %s-premium\n  namespace: flux-system\n"
        "  labels:\n    landlord.dev/tenant: %s\n    landlord.dev/tier: premium\n"
        "spec:\n  releaseName: %s-premium\n  targetNamespace: %s\n  storageNamespace: %s\n  interval: 1m0s\n"
        "  chart:\n    spec:\n      chart: helm-tenant-chart\n      version: \"%s\"\n      sourceRef:\n"
        "        apiVersion: source.toolkit.fluxcd.io/v1\n        kind: HelmRepository\n"
        "        name: helm-tenant-chart\n  values:\n    tenantId: %s\n"
        % (api_version, tid, tid, tid, tid, tid, version, tid))
    return "---\n".join(docs)


def tier_kz(*entries):
    return KZ + "".join("  - %s\n" % e for e in entries)


class FluxSimTest(unittest.TestCase):
    """End to end: commits in a real Git server (lighttpd + git
    http-backend) reconciled by the simulator into the stand-in."""

    @classmethod
    def setUpClass(cls):
        cls.gs = GitServer(tls=False).start()
        cls.seed = {
            T + "/kustomization.yaml": tier_kz("basic", "premium"),
            T + "/basic/kustomization.yaml": tier_kz("dummy-configmap.yaml"),
            T + "/basic/dummy-configmap.yaml": DUMMY % "basic",
            T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "acme.yaml"),
            T + "/premium/dummy-configmap.yaml": DUMMY % "premium",
            T + "/premium/acme.yaml": tenant_file("acme", "1.2.x"),
        }
        cls.gs.create_repo("gitops", seed=cls.seed)
        cls.seed_sha = cls.gs.git_cli("--git-dir", cls.gs.path("gitops"), "rev-parse", "main").stdout.strip()
        cls.api = KubeAPI(tls=True, tokens={"landlord-token": "landlord"}).start()
        cls.events = []
        cls.api.add_listener(lambda t, plural, obj: cls.events.append((t, plural, obj)))
        cls.sim = FluxSim(cls.api, cls.gs.authed_url("gitops"), git_env=cls.gs.git_env(), poll_interval=0.1,
                          retry_interval=0.2, delays=0.02).start()
        cls.c = Client(cls.api, "landlord-token")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.sim.stop()
        cls.api.stop()
        cls.gs.stop()
        cls.gs.cleanup()

    def commit(self, files, message="test"):
        return self.gs.commit_files("gitops", [files], message=message)

    def hr_statuses(self, name):
        return [o.get("status") or {} for (t, p, o) in list(self.events)
                if p == "helmreleases" and o["metadata"]["name"] == name]

    def test_1_seed_reconciles_to_ready(self):
        ks = self.sim.wait_applied(self.seed_sha, timeout=15)
        rev = "main@sha1:" + self.seed_sha
        st = ks["status"]
        self.assertEqual(st["lastAppliedRevision"], rev)
        self.assertEqual(st["lastAttemptedRevision"], rev)
        ready = cond(ks, "Ready")
        self.assertEqual((ready["status"], ready["reason"], ready["message"]),
                         ("True", "ReconciliationSucceeded", "Applied revision: " + rev))
        self.assertEqual(ks["spec"]["path"], "./" + T)
        self.assertTrue(ks["spec"]["prune"])
        self.assertEqual(ks["spec"]["sourceRef"], {"kind": "GitRepository", "name": "flux-system"})
        ids = [e["id"] for e in st["inventory"]["entries"]]
        self.assertEqual(ids, sorted(["_acme__Namespace", "flux-system_acme-premium_helm.toolkit.fluxcd.io_HelmRelease"]))
        gr = self.api.get("GitRepository", "flux-system", "flux-system")
        self.assertEqual(gr["status"]["artifact"]["revision"], rev)
        self.assertEqual(gr["spec"]["url"], self.gs.url("gitops"))  # no credentials in the spec
        self.assertEqual(gr["spec"]["ref"], {"branch": "main"})
        r = cond(gr, "Ready")
        self.assertEqual((r["status"], r["reason"], r["message"]),
                         ("True", "Succeeded", "stored artifact for revision '%s'" % rev))
        self.assertEqual(gr["status"]["observedGeneration"], gr["metadata"]["generation"])
        # the HelmRelease: range 1.2.x resolved to 1.2.3, installed
        hr = self.sim.wait_release("flux-system", "acme-premium", "1.2.3", timeout=10)
        st = hr["status"]
        self.assertEqual(st["history"][0]["chartVersion"], "1.2.3")
        self.assertEqual(st["history"][0]["status"], "deployed")
        self.assertEqual(st["history"][0]["version"], 1)
        self.assertEqual(st["history"][0]["chartName"], "helm-tenant-chart")
        self.assertEqual(st["lastAttemptedRevision"], "1.2.3")
        self.assertEqual(st["lastAttemptedReleaseAction"], "install")
        self.assertEqual(st["observedGeneration"], hr["metadata"]["generation"])
        self.assertEqual(st["helmChart"], "flux-system/flux-system-acme-premium")
        self.assertEqual(st["storageNamespace"], "acme")
        ready = cond(hr, "Ready")
        self.assertEqual((ready["reason"], ready["message"]), (
            "InstallSucceeded",
            "Helm install succeeded for release acme/acme-premium.v1 with chart helm-tenant-chart@1.2.3"))
        self.assertIsNone(cond(hr, "Reconciling"))
        self.assertIn("finalizers.fluxcd.io", hr["metadata"]["finalizers"])
        self.assertEqual(hr["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"], "dataplane-tenants")
        # the transitions helm-controller writes, in order
        msgs = []
        for s in self.hr_statuses("acme-premium"):
            rd = next((c for c in s.get("conditions") or [] if c["type"] == "Ready"), None)
            rc = next((c for c in s.get("conditions") or [] if c["type"] == "Reconciling"), None)
            m = (rd and (rd["status"], rd["reason"]), rc and rc["message"])
            if not msgs or msgs[-1] != m:
                msgs.append(m)
        self.assertEqual(msgs[-3:], [(("Unknown", "Progressing"), "Fulfilling prerequisites"),
                                     (("Unknown", "Progressing"), "Running 'install' action with timeout of 5m0s"),
                                     (("True", "InstallSucceeded"), None)])
        # the stand-in serves it all over HTTP, with the landlord token
        r = self.c.get("/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases?labelSelector="
                       + urllib.parse.quote("landlord.dev/tenant in (acme)"))
        self.assertEqual([i["metadata"]["name"] for i in r.json["items"]], ["acme-premium"])
        ns = self.c.get(NS + "/acme").json
        self.assertEqual(ns["status"]["phase"], "Active")
        hc = self.api.get("HelmChart", "flux-system", "flux-system-acme-premium")
        self.assertEqual(cond(hc, "Ready")["reason"], "ChartPullSucceeded")
        # the Events the controllers record, found the way protocols.md 3.2 says
        r = self.c.get("/api/v1/namespaces/flux-system/events?fieldSelector="
                       + urllib.parse.quote("involvedObject.kind=HelmRelease,involvedObject.name=acme-premium"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["kind"], "EventList")
        evs = r.json["items"]
        self.assertEqual([(e["type"], e["reason"]) for e in evs], [("Normal", "InstallSucceeded")])
        self.assertEqual(evs[0]["message"], ready["message"])
        self.assertEqual(evs[0]["involvedObject"]["uid"], hr["metadata"]["uid"])
        self.assertEqual(list(evs[0])[:3], ["metadata", "involvedObject", "reason"])
        r = self.c.get("/api/v1/namespaces/flux-system/events?fieldSelector=involvedObject.kind%3DGitRepository")
        self.assertIn("NewArtifact", [e["reason"] for e in r.json["items"]])
        self.assertEqual(self.sim.errors, [])

    def test_2_missing_version_then_published(self):
        sha = self.commit({T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "acme.yaml", "beta.yaml"),
                           T + "/premium/beta.yaml": tenant_file("beta", "9.9.x", namespace=False)})
        self.sim.wait_applied(sha)
        hr = self.sim.wait_helmrelease("flux-system", "beta-premium",
                                       lambda o: o and (cond(o, "Ready") or {}).get("reason") == "SourceNotReady")
        ready = cond(hr, "Ready")
        self.assertEqual(ready["status"], "False")
        self.assertTrue(ready["message"].startswith(
            "HelmChart 'flux-system/flux-system-beta-premium' is not ready: chart pull error: "), ready["message"])
        self.assertIn("9.9.x", ready["message"])
        rec = cond(hr, "Reconciling")
        self.assertEqual((rec["status"], rec["reason"], rec["message"]), ("True", "Progressing", "Fulfilling prerequisites"))
        self.assertEqual(hr["status"]["observedGeneration"], -1)
        self.assertNotIn("history", hr["status"])
        hc = self.api.get("HelmChart", "flux-system", "flux-system-beta-premium")
        self.assertEqual(cond(hc, "Ready")["reason"], "ChartPullError")
        # it keeps retrying: publish the version and it installs
        self.sim.set_chart_versions(["0.0.1", "1.2.0", "1.2.3", "9.9.1"])
        self.sim.wait_release("flux-system", "beta-premium", "9.9.1")

    def test_3_new_chart_version_in_range_upgrades(self):
        self.sim.set_chart_versions(["0.0.1", "1.2.0", "1.2.3", "1.2.4", "1.3.0", "9.9.1"])
        hr = self.sim.wait_release("flux-system", "acme-premium", "1.2.4")
        h = hr["status"]["history"]
        self.assertEqual([(x["version"], x["chartVersion"], x["status"]) for x in h[:2]],
                         [(2, "1.2.4", "deployed"), (1, "1.2.3", "superseded")])
        self.assertEqual(cond(hr, "Ready")["reason"], "UpgradeSucceeded")
        self.assertEqual(hr["status"]["lastAttemptedReleaseAction"], "upgrade")
        self.assertEqual(self.sim.resolve("1.2.*"), "1.2.4")
        self.assertEqual(self.sim.resolve("~1.2"), "1.2.4")
        self.assertEqual(self.sim.resolve("^1.2.0"), "1.3.0")
        self.assertEqual(self.sim.resolve(">=1.0.0 <1.3.0"), "1.2.4")
        self.assertEqual(self.sim.resolve("1.2.3"), "1.2.3")
        self.assertEqual(self.sim.resolve("1.2.9"), None)

    def test_4_requested_at_is_echoed(self):
        r = self.c.patch("/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system"
                         "?fieldManager=flux-client-side-apply",
                         {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "landlord-1"}}})
        self.assertEqual(r.status, 200, r)
        gr = wait_until(lambda: (lambda o: o if o["status"].get("lastHandledReconcileAt") == "landlord-1" else None)(
            self.api.get("GitRepository", "flux-system", "flux-system")), 5)
        self.assertEqual(gr["metadata"]["generation"], 1)
        r = self.c.patch("/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/acme-premium",
                         {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "landlord-2"}}})
        self.assertEqual(r.status, 200)
        hr = self.sim.wait_helmrelease("flux-system", "acme-premium",
                                       lambda o: o["status"].get("lastHandledReconcileAt") == "landlord-2")
        self.assertEqual(cond(hr, "Ready")["status"], "True")

    def test_5_removal_prunes_through_finalizer_and_terminating(self):
        n0 = len(self.events)
        sha = self.commit({T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "beta.yaml"),
                           T + "/premium/acme.yaml": None})
        ks = self.sim.wait_applied(sha)
        ids = [e["id"] for e in ks["status"]["inventory"]["entries"]]
        self.assertEqual(ids, ["flux-system_beta-premium_helm.toolkit.fluxcd.io_HelmRelease"])
        wait_until(lambda: self.api.get("hr", "flux-system", "acme-premium") is None, 5)
        wait_until(lambda: self.api.get("Namespace", "acme") is None, 5)
        evs = [(t, p, o) for (t, p, o) in self.events[n0:] if o["metadata"]["name"] in ("acme-premium", "acme")]
        hr_evs = [(t, o) for (t, p, o) in evs if p == "helmreleases"]
        marked = [i for i, (t, o) in enumerate(hr_evs) if t == "MODIFIED" and o["metadata"].get("deletionTimestamp")]
        self.assertTrue(marked)
        self.assertEqual(hr_evs[marked[0]][1]["metadata"]["finalizers"], ["finalizers.fluxcd.io"])
        self.assertEqual(hr_evs[-1][0], "DELETED")
        ns_evs = [(t, o) for (t, p, o) in evs if p == "namespaces"]
        self.assertEqual(ns_evs[0][1]["status"]["phase"], "Terminating")
        self.assertEqual(ns_evs[-1][0], "DELETED")
        self.assertEqual(self.c.get(NS + "/acme").status, 404)
        self.assertIsNone(self.api.get("HelmChart", "flux-system", "flux-system-acme-premium"))

    def test_6_failed_install_stalls(self):
        self.sim.fail_install(names=["gamma"])
        sha = self.commit({T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "beta.yaml", "gamma.yaml"),
                           T + "/premium/gamma.yaml": tenant_file("gamma", "1.2.3", api_version="helm.toolkit.fluxcd.io/v2beta1")})
        self.sim.wait_applied(sha)
        hr = self.sim.wait_helmrelease("flux-system", "gamma-premium", lambda o: o and cond(o, "Stalled"))
        st = hr["status"]
        self.assertEqual(hr["apiVersion"], "helm.toolkit.fluxcd.io/v2")
        stalled, ready = cond(hr, "Stalled"), cond(hr, "Ready")
        self.assertEqual((stalled["reason"], stalled["message"]), ("RetriesExceeded", "Failed to install after 1 attempt(s)"))
        self.assertEqual((ready["status"], ready["reason"], ready["message"]), (
            "False", "InstallFailed", "Helm install failed for release gamma/gamma-premium with chart "
            "helm-tenant-chart@1.2.3: context deadline exceeded"))
        self.assertEqual(cond(hr, "Released")["reason"], "InstallFailed")
        self.assertIsNone(cond(hr, "Reconciling"))
        self.assertEqual((st["failures"], st["installFailures"], st["observedGeneration"]), (1, 1, 1))
        self.assertEqual(st["history"][0]["status"], "failed")
        evs = [e for e in self.api.objects("Event", "flux-system") if e["involvedObject"]["name"] == "gamma-premium"]
        self.assertEqual([(e["type"], e["reason"]) for e in evs], [("Warning", "InstallFailed")])
        ks = self.api.get("Kustomization", "flux-system", "dataplane-tenants")
        v = {e["id"]: e["v"] for e in ks["status"]["inventory"]["entries"]}
        self.assertEqual(v["flux-system_gamma-premium_helm.toolkit.fluxcd.io_HelmRelease"], "v2beta1")
        self.sim.clear_failures()

    def test_7_build_failure_keeps_last_applied(self):
        before = self.api.get("Kustomization", "flux-system", "dataplane-tenants")["status"]["lastAppliedRevision"]
        sha = self.commit({T + "/basic/kustomization.yaml": tier_kz("dummy-configmap.yaml", "missing.yaml")})
        with self.assertRaises(AssertionError) as cm:
            self.sim.wait_applied(sha)
        self.assertIn("BuildFailed", str(cm.exception))
        ks = self.api.get("Kustomization", "flux-system", "dataplane-tenants")
        self.assertEqual(ks["status"]["lastAttemptedRevision"], "main@sha1:" + sha)
        self.assertEqual(ks["status"]["lastAppliedRevision"], before)
        ready = cond(ks, "Ready")
        self.assertTrue(ready["message"].startswith("kustomize build failed: accumulating resources:"), ready["message"])
        self.assertIn("missing.yaml", ready["message"])
        # a duplicated entry (the reference's retry bug) fails the same way
        sha = self.commit({T + "/basic/kustomization.yaml": tier_kz("dummy-configmap.yaml"),
                           T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "beta.yaml", "gamma.yaml",
                                                                     "beta.yaml")})
        with self.assertRaises(AssertionError) as cm:
            self.sim.wait_applied(sha)
        self.assertIn("may not add resource with an already registered id: "
                      "HelmRelease.v2.helm.toolkit.fluxcd.io/beta-premium.flux-system", str(cm.exception))
        sha = self.commit({T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "beta.yaml", "gamma.yaml")})
        self.sim.wait_applied(sha)
        self.assertEqual(self.sim.errors, [])

    def test_8_sharded_layout_pause_resume(self):
        self.sim.pause()
        sha = self.commit({
            T + "/premium/kustomization.yaml": tier_kz("dummy-configmap.yaml", "beta.yaml", "gamma.yaml", "3f"),
            T + "/premium/3f/kustomization.yaml": tier_kz("delta.yaml"),
            T + "/premium/3f/delta.yaml": tenant_file("delta", "0.0.x")})
        time.sleep(0.5)
        ks = self.api.get("Kustomization", "flux-system", "dataplane-tenants")
        self.assertNotEqual(ks["status"]["lastAttemptedRevision"], "main@sha1:" + sha)
        self.sim.resume()
        self.sim.wait_applied(sha)
        self.sim.wait_release("flux-system", "delta-premium", "0.0.1")
        self.sim.wait_idle()
        self.assertIsNotNone(self.api.get("Namespace", "delta"))

    def test_9_fetch_failure_is_reported(self):
        api = KubeAPI(tls=False).start()
        sim = FluxSim(api, self.gs.authed_url("gitops", password="wrong-password"), git_env=self.gs.git_env(),
                      poll_interval=0.1, delays=0).start()
        try:
            gr = wait_until(lambda: (lambda o: o if (cond(o, "Ready") or {}).get("status") == "False" else None)(
                api.get("GitRepository", "flux-system", "flux-system")), 10)
            ready, fetch = cond(gr, "Ready"), cond(gr, "FetchFailed")
            self.assertEqual((ready["reason"], fetch["status"], fetch["reason"]),
                             ("AuthenticationFailed", "True", "AuthenticationFailed"))
            self.assertTrue(ready["message"].startswith(
                "failed to checkout and determine revision: unable to clone '%s': " % self.gs.url("gitops")),
                ready["message"])
            self.assertNotIn("wrong-password", json.dumps(gr))
            self.assertNotIn("artifact", gr["status"])
            ks = api.get("Kustomization", "flux-system", "dataplane-tenants")
            self.assertNotIn("lastAppliedRevision", ks["status"])
        finally:
            sim.stop()
            api.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)

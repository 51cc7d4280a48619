"""An HTTP proxy in front of a real registry (ociregistry.Registry) on
127.0.0.1, for the tests that need a registry to misbehave on cue, and the
base of the ECR stand-in (awsstandin.py).

Python 3 standard library only.

    from registryproxy import RegistryProxy

    proxy = RegistryProxy(reg, fault=lambda method, path: (503, b"...") if ... else None).start()
    proxy.host            # "127.0.0.1:PORT": give it to landlord as oci://HOST/...
    proxy.requests        # [(method, path without query, status)], a copy
    proxy.fault = None    # change the fault at any time
    proxy.authorized      # [(method, path, whether an Authorization header came)]
    proxy.stop()

    RegistryProxy(reg, require_basic=("user", "pw"))   # 401 Basic unless these credentials come
    RegistryProxy(reg, location_base="http://127.0.0.1:OTHER")  # absolute Locations sent elsewhere

Every request is forwarded to the registry with its method, path, query,
body and headers (Authorization included, so the registry's own challenge
and auth apply), and the answer comes back as it is, with an absolute
Location that points at the registry rewritten to point at the proxy.
fault(method, path) may return None (forward) or (status, body) or
(status, body, headers) to answer instead.  Responses carry
Content-Length and keep the connection alive, like a registry's.
"""

import base64
import http.client
import http.server
import json
import os
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
              "upgrade", "host", "content-length"}


def registry_error(code, message, status):
    """A registry error answer (status, body, headers) as distribution sends it."""
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    return status, body, {"Content-Type": "application/json; charset=utf-8"}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, owner):
        self.owner = owner
        super().__init__(addr, handler)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "landlord-test-proxy"

    def log_message(self, fmt, *args):
        pass

    # -- helpers ----------------------------------------------------------------

    def parse_request(self):
        # One handler serves every request of a kept-alive connection.
        self._body = None
        return super().parse_request()

    def body(self):
        if self._body is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(n) if n else b""
        return self._body

    def reply(self, status, body=b"", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        for k, v in (headers or {}).items():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.owner._record(self.command, urllib.parse.urlsplit(self.path).path, status)

    def forward(self):
        owner = self.server.owner
        backend = owner.backend
        body = self.body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=30)
        try:
            conn.request(self.command, self.path, body=body if body else None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            out = {}
            for k, v in r.getheaders():
                if k.lower() == "location" and v.startswith(backend.url):
                    v = (owner.location_base or owner.url) + v[len(backend.url):]
                out[k] = v
            self.reply(r.status, data, out)
        except (OSError, http.client.HTTPException) as e:
            self.reply(502, ("proxy: backend failed: %s" % e).encode(), {"Content-Type": "text/plain"})
        finally:
            conn.close()

    def handle_any(self):
        owner = self.server.owner
        f = owner.fault
        path = urllib.parse.urlsplit(self.path).path
        authz = self.headers.get("Authorization")
        with owner._lock:
            owner._authorized.append((self.command, path, authz is not None))
        if owner.require_basic:
            want = "Basic " + base64.b64encode(("%s:%s" % owner.require_basic).encode()).decode()
            if authz != want:
                self.body()
                return self.reply(*registry_error("UNAUTHORIZED", "authentication required", 401)[:2], {
                    "Content-Type": "application/json", "WWW-Authenticate": 'Basic realm="proxy"'})
            del self.headers["Authorization"]
        answer = f(self.command, path) if f else None
        if answer is not None:
            self.body()
            status, body = answer[0], answer[1]
            headers = answer[2] if len(answer) > 2 else {"Content-Type": "application/json"}
            return self.reply(status, body, headers)
        self.forward()

    # Through self, so that subclasses' handle_any answers.
    def do_GET(self):
        self.handle_any()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


class RegistryProxy:
    handler = ProxyHandler

    def __init__(self, backend, fault=None, require_basic=None, location_base=None):
        self.backend = backend
        self.fault = fault
        self.require_basic = require_basic
        self.location_base = location_base
        self.httpd = None
        self.thread = None
        self.port = None
        self._requests = []
        self._authorized = []
        self._lock = threading.Lock()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.host

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    @property
    def authorized(self):
        with self._lock:
            return list(self._authorized)

    def reset_requests(self):
        with self._lock:
            self._requests.clear()

    def _record(self, method, path, status):
        with self._lock:
            self._requests.append((method, path, status))

    def start(self):
        self.httpd = _Server(("127.0.0.1", 0), self.handler, self)
        self.port = self.httpd.server_address[1]
        # A short poll interval: stop() waits for the loop to notice.
        self.thread = common.serve_in_thread(self.httpd, "registry-proxy", poll_interval=0.05)
        return self

    def stop(self):
        common.stop_serving(self.httpd, self.thread)
        self.httpd = self.thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def closed_port():
    """A port on 127.0.0.1 nothing listens on (a registry that is down)."""
    return common.free_port()

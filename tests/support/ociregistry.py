"""A real OCI registry for the tests: Debian's `docker-registry` (CNCF
Distribution 2.8) on 127.0.0.1, with htpasswd (Basic) auth, token (Bearer)
auth through a small token server in this process, or no auth; plain HTTP or
HTTPS with the test CA of gitserver.py.

Python 3 standard library only.  Needs the Debian packages docker-registry,
apache2-utils (htpasswd), openssl and, for skopeo_inspect_raw(), skopeo.

    from ociregistry import Registry, make_chart_tgz, chart_config

    reg = Registry(auth="htpasswd", users={"landlord": "s3cret"}).start()
    tgz = make_chart_tgz("helm-tenant-chart", "1.4.2")
    digest = reg.push_chart("tenants/acme/helm-tenant-chart", "1.4.2", tgz,
                            chart_config("helm-tenant-chart", "1.4.2"))
    status, headers, body = reg.manifest("tenants/acme/helm-tenant-chart", "1.4.2")
    reg.stop()

API (one line each; "repo" is a repository name such as "a/b", "ref" a tag
or a digest, user/password default to the first entry of `users`):

  Registry(auth="htpasswd"|"token"|"none", tls=False, users=None, delete=True,
           port=None, grants=None, anonymous=(), token_alg="RS256",
           token_key_header="kid", token_expires=300, relative_urls=False)
      users: {name: password}, default {"landlord": "s3cret"}.
      grants (token auth): {user: [actions]} for every repository, or
          {user: {fnmatch pattern: [actions]}}; default: every user gets
          pull, push and delete everywhere.  "*" grants every action.
      anonymous (token auth): the actions a request without credentials
          gets (default none: the token server still answers 200, with a
          token whose `access` is empty, as Docker Hub does; the registry
          then refuses).  Wrong credentials get 401 from the token server.
      token_alg: "RS256" (RSA 2048) or "ES256" (P-256); token_key_header:
          "kid" (libtrust key id of the signing key) or "x5c" (the signing
          certificate, which is the registry's rootcertbundle).
      relative_urls: http.relativeurls (Location headers without host).
  .start() / .stop() / .restart(down=0) / .cleanup(); context manager.
  .running, .port, .host ("127.0.0.1:PORT" or "localhost:PORT"), .url
      ("http://127.0.0.1:PORT" or "https://localhost:PORT"), .ca_file (TLS;
      the same CA as gitserver.py), .cert_dir (a skopeo/docker --cert-dir).
  .root, .storage (the filesystem storage dir), .config_path, .htpasswd_path.
  .service, .issuer, .token_url (token auth), .basic_realm (htpasswd).
  .write_password_file(password, name=None) -> path of a 0600 file.
  .set_users(users)   htpasswd: next (re)start; token server: at once.
  .logs(tail=None)    registry stdout+stderr (access log + app log), text.
  .token_log()        the token server's request lines, text.
  .diagnostics()      logs, token log and config, for failure messages.
  .token_requests     list of dicts {method, user (None: anonymous), service,
                      scopes, granted (the `access` claim; None when refused),
                      status, user_agent} (a copy); .token_count;
                      .reset_token_requests().
  .token_key_id, .token_cert   the signer's libtrust key id and certificate.
  .fetch_token(realm, service, scopes, user=None, password=None) -> JWT.
  .issue_token(access, sub="landlord", expires_in=None, **overrides) -> a JWT
      signed like the token server's; overrides replace claims (aud, iss,
      exp, nbf, iat, jti) or header fields (kid, x5c, alg; None removes one),
      for expired/forged-token tests.
  .request(method, path_or_url, body=None, headers=None, user=None,
      password=None, anonymous=False, scope=None) -> Response (status,
      headers, body; unpacks as a 3-tuple), answering 401 challenges (Basic,
      or Bearer through the realm) once.  When the token server refuses, the
      registry's 401 is returned with .token_error set (a RegistryError).
  .probe(anonymous=True) -> Response of GET /v2/.
  .manifest(repo, ref, method="GET", accept=MANIFEST_ACCEPT, ...) -> (status, headers, body)
  .manifest_digest(repo, ref) -> Docker-Content-Digest of a HEAD, or None on 404.
  .blob(repo, digest, method="GET", ...) -> (status, headers, body)
  .tags(repo) -> list of tags, or None for 404 (NAME_UNKNOWN); raises otherwise.
  .catalog() -> list of repositories.
  .delete_manifest(repo, digest) -> (status, headers, body)
  .skopeo_inspect_raw(repo, ref, user=None, password=None, tls_verify=None)
      -> the raw manifest bytes (`skopeo inspect --raw`); raises RegistryError.
  .push_blob(repo, data, ...) -> digest (HEAD, then POST + monolithic PUT).
  .push_chart(repo, tag, tgz_bytes, config_bytes=None, annotations=None,
      user=None, password=None, manifest_bytes=None) -> manifest digest
      (from Docker-Content-Digest); .last_push = {"digest", "manifest",
      "steps": [(method, path, status)]}.  Raises RegistryError.

Module helpers:
  make_chart_tgz(name, version, app_version="1.0.0", files=None) -> .tgz bytes
      (NAME/Chart.yaml, values.yaml, templates/configmap.yaml; deterministic).
  chart_config(name, version, app_version="1.0.0", **fields) -> the config
      blob as Helm writes it (Go json.Marshal field order, compact).
  chart_manifest(config_bytes, tgz_bytes, annotations=None, media_type=True)
      -> the manifest bytes (compact JSON).
  sha256_digest(data) -> "sha256:<hex>".
  libtrust_key_id(der_spki) -> "ABCD:EFGH:..." (12 groups).
  decode_jwt(token) -> (header dict, claims dict) (no verification).
  parse_challenge(www_authenticate) -> (scheme lowercased, {param: value}).
  landlord_requests(reg) -> [(method, uri, status)] of the requests landlord
      made to reg (its access log lines with landlord's user agent).
  Response: .status, .reason, .headers, .body, .json, .code, .header(name).
  RegistryError(msg, status=None, body=b"", code=None): .status, .body, .code
      (the first `errors[].code` of a registry error body).

Every started registry is killed at interpreter exit, and the temp dirs are
removed.
"""

import base64
import fnmatch
import gzip
import hashlib
import hmac
import http.client
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import gitserver  # noqa: E402  (the test CA and its localhost certificate)
from common import read_text as _read  # noqa: E402

REGISTRY = os.environ.get("OCIREGISTRY_BIN", "/usr/bin/docker-registry")
HTPASSWD = "htpasswd"
OPENSSL = "openssl"
SKOPEO = "skopeo"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 30.0

DEFAULT_USERS = {"landlord": "s3cret"}
HTTP_SECRET = "landlord-test-registry-http-secret"
SERVICE = "landlord-test-registry"
ISSUER = "landlord-test-token-issuer"
BASIC_REALM = "landlord-test-registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


class RegistryError(RuntimeError):
    def __init__(self, msg, status=None, body=b"", code=None):
        super().__init__(msg)
        self.status = status
        self.body = body
        self.code = code


_lock = threading.Lock()  # the token signers, made once per algorithm


def _run(cmd, input=None, env=None):
    """stdout as bytes (keys, DER, signatures)."""
    return common.run(cmd, RegistryError, env=env, input=input, raw=True)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def libtrust_key_id(der_spki):
    """The key id distribution's token auth looks up for a JWT `kid` (libtrust
    keyIDFromCryptoKey): SHA-256 of the DER SubjectPublicKeyInfo, first 240
    bits, base32 (no padding), groups of 4 joined by ':'."""
    s = base64.b32encode(hashlib.sha256(der_spki).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(s[i : i + 4] for i in range(0, len(s), 4))


def decode_jwt(token):
    """(header, claims) of a compact JWT, without verifying anything."""
    h, c, _sig = token.split(".")
    return json.loads(_b64url_decode(h)), json.loads(_b64url_decode(c))


def _error_code(body):
    try:
        errs = json.loads(body.decode("utf-8")).get("errors") or []
        return errs[0].get("code") if errs else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None


# -- Helm chart artefacts -------------------------------------------------------


def make_chart_tgz(name, version, app_version="1.0.0", files=None):
    """A small Helm chart as .tgz bytes, deterministic (fixed mtimes, no gzip
    timestamp): NAME/Chart.yaml, NAME/values.yaml, NAME/templates/configmap.yaml
    plus `files` ({relative path: str|bytes}, None removes a default)."""
    content = {
        "Chart.yaml": (
            "apiVersion: v2\nname: %s\ndescription: A tenant chart for the landlord tests\n"
            "type: application\nversion: %s\nappVersion: \"%s\"\n" % (name, version, app_version)
        ),
        "values.yaml": "tenantId: \"\"\ntier: basic\n",
        "templates/configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-tenant\n"
            "data:\n  tenantId: {{ .Values.tenantId | quote }}\n  tier: {{ .Values.tier | quote }}\n"
        ),
    }
    for k, v in (files or {}).items():
        if v is None:
            content.pop(k, None)
        else:
            content[k] = v
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(content):
            data = content[rel]
            if isinstance(data, str):
                data = data.encode("utf-8")
            ti = tarfile.TarInfo("%s/%s" % (name, rel))
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 1700000000
            tar.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# Helm's chart.Metadata field order (json.Marshal follows the struct).
_METADATA_ORDER = [
    "name", "home", "sources", "version", "description", "keywords", "maintainers", "icon",
    "apiVersion", "condition", "tags", "appVersion", "deprecated", "annotations",
    "kubeVersion", "dependencies", "type",
]


def chart_config(name, version, app_version="1.0.0", **fields):
    """The Helm config blob: Chart.yaml metadata as compact JSON in Helm's
    field order, empty fields left out (omitempty)."""
    meta = {
        "name": name,
        "version": version,
        "description": "A tenant chart for the landlord tests",
        "apiVersion": "v2",
        "appVersion": app_version,
        "type": "application",
    }
    meta.update(fields)
    ordered = {k: meta[k] for k in _METADATA_ORDER if meta.get(k) not in (None, "", [], {}, False)}
    for k in meta:
        if k not in ordered and meta[k] not in (None, "", [], {}, False):
            ordered[k] = meta[k]
    return json.dumps(ordered, separators=(",", ":")).encode("utf-8")


def chart_manifest(config_bytes, tgz_bytes, annotations=None, media_type=True):
    """The OCI image manifest of a chart (compact JSON bytes)."""
    m = {"schemaVersion": 2}
    if media_type:
        m["mediaType"] = OCI_MANIFEST
    m["config"] = {"mediaType": HELM_CONFIG, "digest": sha256_digest(config_bytes), "size": len(config_bytes)}
    m["layers"] = [{"mediaType": HELM_CHART, "digest": sha256_digest(tgz_bytes), "size": len(tgz_bytes)}]
    if annotations:
        m["annotations"] = dict(sorted(annotations.items()))
    return json.dumps(m, separators=(",", ":")).encode("utf-8")


# -- token signing keys (openssl CLI), one per algorithm per process ----------------


class _Signer:
    def __init__(self, alg):
        if alg not in ("RS256", "ES256"):
            raise ValueError("token_alg must be RS256 or ES256, not %r" % alg)
        self.alg = alg
        d = common.make_temp_dir("ociregistry-signer-")
        self.dir = d
        self.key = os.path.join(d, "signer.key")
        self.cert = os.path.join(d, "signer.pem")
        if alg == "RS256":
            _run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.key])
        else:
            _run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.key])
        os.chmod(self.key, 0o600)
        _run(
            [
                OPENSSL, "req", "-x509", "-new", "-key", self.key, "-out", self.cert, "-days", "3650",
                "-sha256", "-subj", "/O=landlord tests/CN=landlord test token signer",
            ]
        )
        self.spki_der = _run([OPENSSL, "pkey", "-in", self.key, "-pubout", "-outform", "DER"])
        self.cert_der = _run([OPENSSL, "x509", "-in", self.cert, "-outform", "DER"])
        self.kid = libtrust_key_id(self.spki_der)

    def sign(self, signing_input):
        sig = _run([OPENSSL, "dgst", "-sha256", "-sign", self.key], input=signing_input)
        if self.alg == "ES256":
            sig = _ecdsa_der_to_raw(sig, 32)
        return sig


def _ecdsa_der_to_raw(der, size):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s."""

    def read_len(b, i):
        n = b[i]
        i += 1
        if n < 0x80:
            return n, i
        k = n & 0x7F
        return int.from_bytes(b[i : i + k], "big"), i + k

    if der[0] != 0x30:
        raise ValueError("not a DER sequence")
    _, i = read_len(der, 1)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER integer")
        n, i = read_len(der, i + 1)
        v = int.from_bytes(der[i : i + n], "big")
        i += n
        out += v.to_bytes(size, "big")
    return out


_signers = {}


def _signer(alg):
    with _lock:
        if alg not in _signers:
            _signers[alg] = _Signer(alg)
        return _signers[alg]


# -- the token server -------------------------------------------------------------


def _parse_scope(scope):
    """'repository:a/b:pull,push' -> ('repository', None, 'a/b', ['pull','push']).
    The name may contain ':' (host:port), so split the type at the first ':'
    and the actions at the last.  A type may carry a class: 'repository(plugin)'."""
    if scope.count(":") < 2:
        return None
    typ, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    cls = None
    m = re.match(r"^([a-z0-9]+)\(([a-z0-9]+)\)$", typ)
    if m:
        typ, cls = m.group(1), m.group(2)
    return typ, cls, name, [a for a in actions.split(",") if a]


class _TokenHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, owner, ssl_ctx):
        self.owner = owner
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's thread, not in the accept loop.
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.owner._log("TLS handshake from %s failed: %s" % (client_address[0], e))
                return
            # wrap_socket took over the descriptor: socketserver would only
            # close the (now detached) plain socket, so close this one here.
            try:
                super().finish_request(request, client_address)
            finally:
                try:
                    request.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                request.close()
            return
        super().finish_request(request, client_address)


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "landlord-test-token-server"

    def log_message(self, fmt, *args):
        self.server.owner._log("%s %s" % (self.address_string(), fmt % args))

    def _send(self, status, obj, headers=None):
        body = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        user = password = None
        authz = self.headers.get("Authorization") or ""
        if authz.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authz[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
        elif authz:
            user, password = "", ""  # some other scheme: bad credentials
        scopes = []
        for s in q.get("scope", []):
            scopes += s.split()
        service = (q.get("service") or [None])[0]
        status, obj, headers = self.server.owner._issue("GET", user, password, service, scopes,
                                                        self.headers.get("User-Agent"))
        self._send(status, obj, headers)

    def do_POST(self):
        # The OAuth2 password grant (docker/distribution docs "oauth.md").
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"), keep_blank_values=True)
        if u.path != "/token":
            return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
        grant = (form.get("grant_type") or [""])[0]
        if grant != "password":
            return self._send(400, {"error": "unsupported_grant_type"})
        user = (form.get("username") or [""])[0]
        password = (form.get("password") or [""])[0]
        scopes = []
        for s in form.get("scope", []):
            scopes += s.split()
        service = (form.get("service") or [None])[0]
        status, obj, headers = self.server.owner._issue("POST", user, password, service, scopes,
                                                        self.headers.get("User-Agent"))
        self._send(status, obj, headers)


class _TokenServer:
    def __init__(self, registry):
        self.reg = registry
        self.httpd = None
        self.thread = None
        self.port = None
        self.requests = []
        self.loglines = []
        self.lock = threading.Lock()

    def start(self):
        ctx = None
        if self.reg.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.reg.cert_file, self.reg.key_file)
        port = self.port or 0
        self.httpd = _TokenHTTPServer(("127.0.0.1", port), _TokenHandler, self, ctx)
        self.port = self.httpd.server_address[1]
        self.thread = common.serve_in_thread(self.httpd, "ociregistry-token")

    def stop(self):
        common.stop_serving(self.httpd, self.thread)
        self.httpd = self.thread = None

    def _log(self, line):
        with self.lock:
            self.loglines.append("%s %s" % (time.strftime("%H:%M:%S"), line))

    def _record(self, **kw):
        with self.lock:
            self.requests.append(kw)

    def _issue(self, method, user, password, service, scopes, user_agent=None):
        reg = self.reg
        rec = dict(method=method, user=user, service=service, scopes=scopes, user_agent=user_agent)
        if user is not None:
            known = reg.users.get(user)
            if known is None or not hmac.compare_digest(known.encode("utf-8"), (password or "").encode("utf-8")):
                self._record(granted=None, status=401, **rec)
                return 401, {
                    "errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]
                }, {"WWW-Authenticate": 'Basic realm="%s"' % ISSUER}
        if service != reg.service:
            self._record(granted=None, status=400, **rec)
            return 400, {
                "errors": [{"code": "INVALID_REQUEST", "message": "unknown service %r" % (service,)}]
            }, {}
        access = []
        for s in scopes:
            parsed = _parse_scope(s)
            if parsed is None:
                continue
            typ, cls, name, wanted = parsed
            allowed = reg._allowed_actions(user, typ, name)
            granted = [a for a in wanted if a in allowed or "*" in allowed]
            if granted:
                entry = {"type": typ, "name": name, "actions": granted}
                if cls:
                    entry["class"] = cls
                access.append(entry)
        token = reg.issue_token(access, sub=user or "")
        now = time.time()
        self._record(granted=access, status=200, **rec)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        obj = {"token": token, "access_token": token, "expires_in": reg.token_expires, "issued_at": issued}
        if method == "POST":
            obj = {"access_token": token, "expires_in": reg.token_expires, "issued_at": issued,
                   "scope": " ".join(scopes)}
        return 200, obj, {}


# -- HTTP answers -----------------------------------------------------------------------


class Response:
    """An HTTP answer; unpacks as (status, headers, body)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.token_error = None  # set by Registry.request when the token server refused

    def header(self, name):
        return self.headers.get(name)

    @property
    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def code(self):
        return _error_code(self.body)

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<HTTP %d %s %r>" % (self.status, self.reason, self.body[:400])


def parse_challenge(value):
    """'Bearer realm="r",service="s",scope="a:b:c"' -> ('bearer', {realm, service, scope})."""
    if not value:
        return None, {}
    scheme, _, rest = value.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', rest)}
    return scheme.lower(), params


# A docker-registry access log line of a request with landlord's user agent.
ACCESS = re.compile(r'^\S+ - \S+ \[[^]]*\] "(\w+) (\S+) HTTP/[\d.]+" (\d+) .*"landlord"$')


def landlord_requests(reg):
    """(method, uri, status) of every request landlord made to reg, from its
    access log (landlord's user agent)."""
    out = []
    for line in reg.logs().splitlines():
        m = ACCESS.match(line)
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3))))
    return out


# -- the registry ----------------------------------------------------------------------------


class Registry(common.ChildServer):
    error = RegistryError
    stop_timeout = STOP_TIMEOUT

    def __init__(
        self,
        auth="htpasswd",
        tls=False,
        users=None,
        delete=True,
        port=None,
        grants=None,
        anonymous=(),
        token_alg="RS256",
        token_key_header="kid",
        token_expires=300,
        relative_urls=False,
    ):
        if auth not in ("htpasswd", "token", "none"):
            raise ValueError("auth must be htpasswd, token or none")
        if token_key_header not in ("kid", "x5c"):
            raise ValueError("token_key_header must be kid or x5c")
        self.auth = auth
        self.tls = bool(tls)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.delete = bool(delete)
        self.port = port
        self.grants = grants
        self.anonymous = list(anonymous)
        self.token_alg = token_alg
        self.token_key_header = token_key_header
        self.token_expires = int(token_expires)
        self.relative_urls = bool(relative_urls)
        self.hostname = "localhost" if self.tls else "127.0.0.1"
        self.service = SERVICE
        self.issuer = ISSUER
        self.basic_realm = BASIC_REALM
        self.root = common.make_temp_dir("ociregistry-")
        self.storage = os.path.join(self.root, "storage")
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.storage)
        os.makedirs(self.home)
        self.config_path = os.path.join(self.root, "config.yml")
        self.htpasswd_path = os.path.join(self.root, "htpasswd")
        self.log_path = os.path.join(self.root, "registry.log")
        self.ca_file = self.cert_file = self.key_file = None
        self.cert_dir = None
        if self.tls:
            self.ca_file, self.cert_file, self.key_file = gitserver._make_certs()
            # skopeo --cert-dir: *.crt files are CAs.
            self.cert_dir = os.path.join(self.root, "certs.d")
            os.makedirs(self.cert_dir)
            shutil.copyfile(self.ca_file, os.path.join(self.cert_dir, "ca.crt"))
        self._signer = _signer(token_alg) if auth == "token" else None
        self._token = _TokenServer(self) if auth == "token" else None
        self.proc = None
        self._auth_cache = {}
        self.last_push = None
        if self.auth == "htpasswd":
            self._write_htpasswd()

    # -- lifecycle ----------------------------------------------------------------

    @property
    def host(self):
        return "%s:%d" % (self.hostname, self.port)

    @property
    def url(self):
        return "%s://%s" % ("https" if self.tls else "http", self.host)

    @property
    def token_url(self):
        if self._token is None:
            return None
        return "%s://%s:%d/token" % ("https" if self.tls else "http", self.hostname, self._token.port)

    def start(self):
        if self.running:
            return self
        if self._token is not None and self._token.httpd is None:
            self._token.start()
        try:
            return self._start_on_port()
        except RegistryError:
            if self._token is not None:
                self._token.stop()
            raise

    def _start_once(self):
        self._write_config()
        with open(self.log_path, "ab") as out:
            out.write(("=== start on %s ===\n" % self.host).encode())
            out.flush()
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            env["HOME"] = self.home
            self.proc = subprocess.Popen(
                [REGISTRY, "serve", self.config_path],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,
            )
        common.track(self, self._kill)
        self._await_child(self._serving, START_TIMEOUT, 0.02,
                          "docker-registry exited with %%d before serving on %s" % self.host,
                          "docker-registry did not answer GET /v2/ on %s within %.0f s" % (self.host, START_TIMEOUT),
                          self.diagnostics)

    def _serving(self):
        try:
            return self.request("GET", "/v2/", anonymous=True, timeout=1.0).status in (200, 401)
        except (OSError, http.client.HTTPException):
            return False

    def stop(self):
        """Stops the registry (SIGTERM, SIGKILL after 5 s) and the token
        server.  The storage stays."""
        self._end_child(signal.SIGTERM)
        if self._token is not None:
            self._token.stop()

    def restart(self, down=0.0):
        """Stops and starts again on the same port(s); storage is kept."""
        self.stop()
        if down:
            time.sleep(down)
        deadline = time.monotonic() + START_TIMEOUT
        if self._token is not None:
            while True:
                try:
                    self._token.start()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        while True:
            try:
                self._start_once()
                return self
            except RegistryError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- configuration ---------------------------------------------------------------

    def _write_htpasswd(self):
        lines = []
        for user, password in self.users.items():
            # -n: to stdout; -i: password from stdin (not in the process list); -B: bcrypt.
            out = _run([HTPASSWD, "-niB", user], input=password.encode("utf-8"))
            lines.append(out.decode("utf-8").strip())
        fd = os.open(self.htpasswd_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(l + "\n" for l in lines if l))

    def set_users(self, users):
        """Replaces the accounts: htpasswd at the next (re)start (distribution
        2.8 reads the file once), the token server at once."""
        self.users = dict(users)
        self._auth_cache.clear()
        if self.auth == "htpasswd":
            self._write_htpasswd()

    def _config(self):
        http_cfg = {
            "addr": "127.0.0.1:%d" % self.port,
            "secret": HTTP_SECRET,
            "relativeurls": self.relative_urls,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http_cfg["tls"] = {"certificate": self.cert_file, "key": self.key_file}
        cfg = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": self.storage},
                "delete": {"enabled": self.delete},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_cfg,
        }
        if self.auth == "htpasswd":
            cfg["auth"] = {"htpasswd": {"realm": self.basic_realm, "path": self.htpasswd_path}}
        elif self.auth == "token":
            cfg["auth"] = {
                "token": {
                    "realm": self.token_url,
                    "service": self.service,
                    "issuer": self.issuer,
                    "rootcertbundle": self._signer.cert,
                }
            }
        return cfg

    def _write_config(self):
        with open(self.config_path, "w") as f:
            f.write(_to_yaml(self._config()))

    # -- token auth ----------------------------------------------------------------------

    def _allowed_actions(self, user, typ, name):
        if user is None:
            return list(self.anonymous) if typ == "repository" else []
        if typ == "registry" and name == "catalog":
            return ["*"]
        if typ != "repository":
            return []
        if self.grants is None:
            return ["pull", "push", "delete"]
        g = self.grants.get(user, [])
        if isinstance(g, dict):
            allowed = []
            for pattern, actions in g.items():
                if fnmatch.fnmatchcase(name, pattern):
                    allowed += list(actions)
            return allowed
        return list(g)

    def issue_token(self, access, sub="landlord", expires_in=None, **overrides):
        """A JWT as the token server issues it.  overrides: any claim (aud,
        iss, exp, nbf, iat, jti) or header field (kid, x5c, alg) to replace."""
        if self._signer is None:
            raise RegistryError("issue_token needs auth='token'")
        now = int(time.time())
        exp = now + (self.token_expires if expires_in is None else int(expires_in))
        header = {"typ": "JWT", "alg": self._signer.alg}
        if self.token_key_header == "kid":
            header["kid"] = self._signer.kid
        else:
            header["x5c"] = [base64.b64encode(self._signer.cert_der).decode("ascii")]
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.service,
            "exp": exp,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": list(access),
        }
        for k, v in overrides.items():
            if k in ("kid", "x5c", "alg", "typ"):
                if v is None:
                    header.pop(k, None)
                else:
                    header[k] = v
            else:
                claims[k] = v
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        )
        sig = self._signer.sign(signing_input.encode("ascii"))
        return signing_input + "." + _b64url(sig)

    @property
    def token_key_id(self):
        return self._signer.kid if self._signer else None

    @property
    def token_cert(self):
        """PEM path of the token signing certificate (the rootcertbundle)."""
        return self._signer.cert if self._signer else None

    @property
    def token_requests(self):
        if self._token is None:
            return []
        with self._token.lock:
            return [dict(r) for r in self._token.requests]

    @property
    def token_count(self):
        return len(self.token_requests)

    def reset_token_requests(self):
        if self._token is not None:
            with self._token.lock:
                self._token.requests.clear()

    # -- credentials and logs ------------------------------------------------------------

    def logs(self, tail=None):
        text = _read(self.log_path)
        if tail:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def token_log(self):
        if self._token is None:
            return ""
        with self._token.lock:
            return "\n".join(self._token.loglines)

    def diagnostics(self, tail=80):
        parts = ["--- docker-registry log (%s) ---\n%s" % (self.log_path, self.logs(tail))]
        if self._token is not None:
            parts.append("--- token server ---\n%s" % "\n".join(self.token_log().splitlines()[-tail:]))
        parts.append("--- config (%s) ---\n%s" % (self.config_path, _read(self.config_path)))
        return "\n".join(parts)

    def __repr__(self):
        return "<Registry %s auth=%s %s>" % (
            self.url if self.port else "(not started)", self.auth, "up" if self.running else "down")

    # -- HTTP client (known-good reference behaviour) -----------------------------------

    def _creds(self, user, password, anonymous):
        if anonymous or self.auth == "none":
            return None, None
        if user is None:
            user = next(iter(self.users), None)
        if password is None and user is not None:
            password = self.users.get(user, "")
        return user, password

    def _ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_file) if self.tls else None

    def _raw(self, method, url, body, headers, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout,
                                               context=self._ssl_context() or ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        return Response(*common.exchange(conn, method, path, body, headers))

    def _absolute(self, path_or_url):
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.url + path_or_url

    def _same_origin(self, url):
        u = urllib.parse.urlsplit(url)
        return (u.scheme, u.hostname, u.port) == ("https" if self.tls else "http", self.hostname, self.port)

    def fetch_token(self, realm, service, scopes, user=None, password=None):
        """GET realm?service=..&scope=.. with Basic credentials (when user is
        not None): the token, or raises RegistryError."""
        q = [("service", service)] + [("scope", s) for s in scopes]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q)
        headers = {}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (user, password or "")).encode("utf-8")).decode("ascii")
        r = self._raw("GET", url, None, headers, HTTP_TIMEOUT)
        if r.status != 200:
            raise RegistryError("token server answered %d: %r" % (r.status, r.body[:300]), r.status, r.body,
                                _error_code(r.body))
        obj = r.json or {}
        tok = obj.get("token") or obj.get("access_token")
        if not tok:
            raise RegistryError("token server answer without token: %r" % r.body[:300], r.status, r.body)
        return tok

    def request(self, method, path_or_url, body=None, headers=None, user=None, password=None,
                anonymous=False, scope=None, timeout=HTTP_TIMEOUT):
        """One request; a 401 challenge is answered once (Basic with the
        credentials, or Bearer: a token for `scope` or the challenge's scope
        from the realm).  Authorization is only ever sent to the registry's
        own origin.  Returns a Response."""
        url = self._absolute(path_or_url)
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        user, password = self._creds(user, password, anonymous)
        same = self._same_origin(url)
        key = (user, password, scope)
        if same and not anonymous and key in self._auth_cache:
            hdrs["Authorization"] = self._auth_cache[key]
        r = self._raw(method, url, body, hdrs, timeout)
        if r.status != 401 or anonymous or not same:
            return r
        scheme, params = parse_challenge(r.header("WWW-Authenticate"))
        if scheme == "basic":
            if user is None:
                return r
            value = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
        elif scheme == "bearer":
            scopes = [scope] if scope else ([params["scope"]] if params.get("scope") else [])
            try:
                tok = self.fetch_token(params.get("realm", ""), params.get("service", ""), scopes, user, password)
            except (RegistryError, OSError, http.client.HTTPException) as e:
                r.token_error = e  # the registry's 401 stands; why the token was refused is here
                return r
            value = "Bearer " + tok
        else:
            return r
        if hdrs.get("Authorization") == value:
            return r  # the cached credentials were refused: do not loop
        hdrs["Authorization"] = value
        r2 = self._raw(method, url, body, hdrs, timeout)
        if r2.status != 401:
            self._auth_cache[key] = value
        return r2

    def probe(self, anonymous=True, **kw):
        return self.request("GET", "/v2/", anonymous=anonymous, **kw)

    def manifest(self, repo, ref, method="GET", accept=MANIFEST_ACCEPT, **kw):
        kw.setdefault("scope", "repository:%s:pull" % repo)
        r = self.request(method, "/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": accept}, **kw)
        return r.status, r.headers, r.body

    def manifest_digest(self, repo, ref, **kw):
        status, headers, body = self.manifest(repo, ref, method="HEAD", **kw)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError("HEAD manifest %s:%s: %d" % (repo, ref, status), status, body)
        return headers.get("Docker-Content-Digest")

    def blob(self, repo, digest, method="GET", **kw):
        kw.setdefault("scope", "repository:%s:pull" % repo)
        r = self.request(method, "/v2/%s/blobs/%s" % (repo, digest), **kw)
        return r.status, r.headers, r.body

    def tags(self, repo, **kw):
        kw.setdefault("scope", "repository:%s:pull" % repo)
        r = self.request("GET", "/v2/%s/tags/list" % repo, **kw)
        if r.status == 404:
            return None
        if r.status != 200:
            raise RegistryError("tags/list of %s: %r" % (repo, r), r.status, r.body, r.code)
        return list(r.json.get("tags") or [])

    def catalog(self, **kw):
        kw.setdefault("scope", "registry:catalog:*")
        r = self.request("GET", "/v2/_catalog?n=1000", **kw)
        if r.status != 200:
            raise RegistryError("_catalog: %r" % r, r.status, r.body, r.code)
        return list(r.json.get("repositories") or [])

    def delete_manifest(self, repo, digest, **kw):
        kw.setdefault("scope", "repository:%s:delete" % repo)
        r = self.request("DELETE", "/v2/%s/manifests/%s" % (repo, digest), **kw)
        return r.status, r.headers, r.body

    def skopeo_inspect_raw(self, repo, ref, user=None, password=None, tls_verify=None, anonymous=False):
        """`skopeo inspect --raw docker://HOST/REPO:REF` (or @digest): the raw
        manifest bytes.  tls_verify None: --cert-dir with the test CA on TLS,
        --tls-verify=false on plain HTTP; False: --tls-verify=false; True:
        --tls-verify=true with the system trust only.  --creds with the
        credentials (--no-creds when anonymous or auth="none")."""
        sep = "@" if ref.startswith("sha256:") else ":"
        cmd = [SKOPEO, "inspect", "--raw", "--retry-times", "0"]
        if tls_verify is None:
            cmd += ["--cert-dir", self.cert_dir] if self.tls else ["--tls-verify=false"]
        elif tls_verify:
            cmd += ["--tls-verify=true"]  # system trust only: fails against the test CA
        else:
            cmd += ["--tls-verify=false"]
        user, password = self._creds(user, password, anonymous)
        if user is not None:
            cmd += ["--creds", "%s:%s" % (user, password)]
        else:
            cmd += ["--no-creds"]
        cmd.append("docker://%s/%s%s%s" % (self.host, repo, sep, ref))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "CONTAINERS_", "XDG_"))}
        env["HOME"] = self.home
        p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            shown = [c if not c.startswith("%s:" % user) or user is None else "%s:***" % user for c in cmd]
            raise RegistryError("%s failed (%d): %s" % (" ".join(shown), p.returncode,
                                                        p.stderr.decode("utf-8", "replace")))
        return p.stdout

    # -- pushing ---------------------------------------------------------------------------

    def _check(self, r, steps, method, path, ok):
        steps.append((method, urllib.parse.urlsplit(path).path, r.status))
        if r.status not in ok:
            raise RegistryError("%s %s: %d %s %r" % (method, path, r.status, r.reason, r.body[:400]),
                                r.status, r.body, r.code)
        return r

    def push_blob(self, repo, data, user=None, password=None, steps=None):
        """HEAD the blob; when absent POST an upload and PUT it whole
        (protocols.md 1.2 steps 2-4).  Returns the digest."""
        steps = [] if steps is None else steps
        digest = sha256_digest(data)
        scope = "repository:%s:pull,push" % repo
        kw = dict(user=user, password=password, scope=scope)
        path = "/v2/%s/blobs/%s" % (repo, digest)
        r = self._check(self.request("HEAD", path, **kw), steps, "HEAD", path, (200, 404))
        if r.status == 200:
            return digest
        path = "/v2/%s/blobs/uploads/" % repo
        r = self._check(self.request("POST", path, body=b"", **kw), steps, "POST", path, (202,))
        loc = r.header("Location")
        if not loc:
            raise RegistryError("POST %s: 202 without Location" % path, r.status, r.body)
        if not loc.startswith(("http://", "https://")):
            loc = urllib.parse.urljoin(self.url + path, loc)
        if not self._same_origin(loc):
            raise RegistryError("upload URL %s is on another origin" % loc)
        put = loc + ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest, safe=":")
        r = self._check(
            self.request("PUT", put, body=data, headers={"Content-Type": "application/octet-stream"}, **kw),
            steps, "PUT", put, (201,),
        )
        got = r.header("Docker-Content-Digest")
        if got != digest:
            raise RegistryError("blob PUT answered digest %r, expected %s" % (got, digest), r.status, r.body)
        return digest

    def push_chart(self, repo, tag, tgz_bytes, config_bytes=None, annotations=None, user=None, password=None,
                   manifest_bytes=None):
        """Pushes a chart the way Helm does (protocols.md 1.2): probe, config
        and layer blobs (HEAD, POST, PUT ?digest=), then PUT the manifest with
        Content-Type application/vnd.oci.image.manifest.v1+json.  Returns the
        manifest digest from Docker-Content-Digest (checked against the sha256
        of the bytes sent).  Raises RegistryError (.status, .code)."""
        if config_bytes is None:
            config_bytes = b"{}"
        steps = []
        r = self.request("GET", "/v2/", user=user, password=password)
        self._check(r, steps, "GET", "/v2/", (200,))
        self.push_blob(repo, config_bytes, user=user, password=password, steps=steps)
        self.push_blob(repo, tgz_bytes, user=user, password=password, steps=steps)
        if manifest_bytes is None:
            manifest_bytes = chart_manifest(config_bytes, tgz_bytes, annotations)
        path = "/v2/%s/manifests/%s" % (repo, tag)
        r = self._check(
            self.request("PUT", path, body=manifest_bytes, headers={"Content-Type": OCI_MANIFEST},
                         user=user, password=password, scope="repository:%s:pull,push" % repo),
            steps, "PUT", path, (201,),
        )
        digest = r.header("Docker-Content-Digest")
        self.last_push = {"digest": digest, "manifest": manifest_bytes, "steps": steps,
                          "location": r.header("Location")}
        if digest != sha256_digest(manifest_bytes):
            raise RegistryError("manifest PUT answered digest %r, expected %s"
                                % (digest, sha256_digest(manifest_bytes)), r.status, r.body)
        return digest


# -- a minimal YAML writer (block mappings of scalars; strings JSON-quoted) ------------


def _to_yaml(obj, indent=0):
    out = []
    pad = "  " * indent
    for k, v in obj.items():
        if isinstance(v, dict):
            out.append("%s%s:\n%s" % (pad, k, _to_yaml(v, indent + 1)))
        elif isinstance(v, list):
            out.append("%s%s: [%s]\n" % (pad, k, ", ".join(json.dumps(x) for x in v)))
        elif isinstance(v, bool):
            out.append("%s%s: %s\n" % (pad, k, "true" if v else "false"))
        elif isinstance(v, (int, float)):
            out.append("%s%s: %s\n" % (pad, k, v))
        else:
            out.append("%s%s: %s\n" % (pad, k, json.dumps(str(v))))
    return "".join(out)

"""Stand-ins for the AWS services landlord talks to when its charts go to
Amazon ECR, on 127.0.0.1, Python 3 standard library only:

- EcrStandIn: ECR's API (AWS JSON 1.1: GetAuthorizationToken,
  CreateRepository, `__type` errors) with every request's SigV4 signature
  verified by this module's own implementation, and in front of a real
  registry (ociregistry.Registry(auth="none")) ECR's registry side: Basic
  auth with the authorization tokens it issued (401 `Basic realm=...,
  service="ecr.amazonaws.com"` and a text/plain `Not Authorized` without
  one, 403 DENIED for an expired one) and NAME_UNKNOWN for a repository
  CreateRepository did not create, as ECR refuses pushes to those.
- StsStandIn: AssumeRoleWithWebIdentity (form POST or query GET, JSON
  answer with Accept: application/json), checking the role ARN and that
  the web identity token is the content of the token file.
- PodIdentityStandIn: the EKS Pod Identity agent, checking that the
  Authorization header is the content of the token file.

All three share one AwsKeys: the long-term keys a test gives landlord, and
the temporary keys STS and the agent hand out (with their session token
and expiry), which the ECR stand-in then accepts.

    keys = AwsKeys()
    keys.add("AKIDTEST", "secret")                       # environment credentials
    backend = Registry(auth="none", relative_urls=True).start()
    ecr = EcrStandIn(backend, keys, region="us-east-1").start()
    # landlord: --oci-url oci://<ecr.host>/charts --oci-plain-http 1 --oci-auth ecr
    #           --aws-region us-east-1, env AWS_ENDPOINT_URL_ECR=<ecr.url>
    ecr.calls           # [{"action", "status", "type", "akid", "signed_headers", ...}]
    ecr.repositories    # set of created repository names
    ecr.passwords       # every registry password issued (for log checks)
"""

import base64
import calendar
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from registryproxy import ProxyHandler, RegistryProxy  # noqa: E402

ACCOUNT = "123456789012"
SKEW_S = 15 * 60
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request, ?"
    r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$")


def _now():
    return time.time()


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# -- keys ------------------------------------------------------------------------------------------


class AwsKeys:
    """Access keys the stand-ins accept: {akid: (secret, session token or
    None, expiry epoch or None)}."""

    def __init__(self):
        self._keys = {}
        self._lock = threading.Lock()
        self.issued = []  # every secret and token handed out (for log checks)

    def add(self, akid, secret, token=None, expires=None):
        with self._lock:
            self._keys[akid] = (secret, token, expires)

    def issue(self, lifetime):
        """New temporary credentials: (akid, secret, token, expiry)."""
        akid = "ASIA" + secrets.token_hex(8).upper()
        secret = secrets.token_urlsafe(30)
        token = "FwoGZXIvYXdzE" + secrets.token_urlsafe(60)
        expires = int(_now() + lifetime)
        self.add(akid, secret, token, expires)
        with self._lock:
            self.issued += [secret, token]
        return akid, secret, token, expires

    def lookup(self, akid):
        with self._lock:
            return self._keys.get(akid)


# -- SigV4, this module's own implementation ---------------------------------------------------------


def _uri_encode(s):
    return urllib.parse.quote(s, safe="-_.~")


def _canonical_uri(path):
    out = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(_uri_encode(urllib.parse.unquote(seg)))
    uri = "/" + "/".join(out)
    if out and path.endswith("/"):
        uri += "/"
    return uri


def _canonical_query(query):
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(k)), _uri_encode(urllib.parse.unquote(v))))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sigv4_verify(method, path, query, headers, body, keys, region, service, now=None):
    """Checks a request's SigV4 Authorization header.  headers: list of
    (name, value) as received.  Returns (None, akid, signed) when valid, else
    (error type, message, None)."""
    now = _now() if now is None else now
    hdrs = {}
    for name, value in headers:
        hdrs.setdefault(name.lower(), []).append(value)
    auth = (hdrs.get("authorization") or [""])[0]
    m = AUTH_RE.match(auth)
    if not m:
        return "IncompleteSignatureException", "Authorization header is not a SigV4 signature", None
    akid, day, reg, svc, signed, signature = m.groups()
    key = keys.lookup(akid)
    if key is None:
        return "UnrecognizedClientException", "The security token included in the request is invalid.", None
    secret, token, expires = key
    if reg != region or svc != service:
        return ("InvalidSignatureException",
                "Credential should be scoped to a valid region and service (%s/%s)." % (region, service), None)
    amz_date = (hdrs.get("x-amz-date") or [""])[0]
    try:
        t = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "IncompleteSignatureException", "X-Amz-Date is missing or malformed", None
    if amz_date[:8] != day:
        return "InvalidSignatureException", "Credential date does not match X-Amz-Date.", None
    if abs(now - t) > SKEW_S:
        return "InvalidSignatureException", "Signature expired: the request time is too skewed.", None
    names = signed.split(";")
    if names != sorted(names) or "host" not in names or "x-amz-date" not in names:
        return "InvalidSignatureException", "SignedHeaders must include host and x-amz-date.", None
    if token is not None:
        sent = (hdrs.get("x-amz-security-token") or [None])[0]
        if sent != token or "x-amz-security-token" not in names:
            return "UnrecognizedClientException", "The security token included in the request is invalid.", None
        if expires is not None and now > expires:
            return "ExpiredTokenException", "The security token included in the request is expired", None
    canon_headers = ""
    for n in names:
        if n not in hdrs:
            return "InvalidSignatureException", "Signed header %s is missing." % n, None
        vals = [" ".join(v.split()) for v in hdrs[n]]
        canon_headers += "%s:%s\n" % (n, ",".join(vals))
    canonical = "\n".join([method, _canonical_uri(path), _canonical_query(query), canon_headers, signed,
                           hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (day, reg, svc)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), day)
    k = _hmac(k, reg)
    k = _hmac(k, svc)
    k = _hmac(k, "aws4_request")
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, signature):
        return ("InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.", None)
    return None, akid, names


# -- ECR -----------------------------------------------------------------------------------------


REPO_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
V2_RE = re.compile(r"^/v2/(.+?)/(manifests|blobs|tags)/")


class _EcrHandler(ProxyHandler):
    server_version = "landlord-test-ecr"

    def handle_any(self):
        owner = self.server.owner
        u = urllib.parse.urlsplit(self.path)
        if self.command == "POST" and u.path == "/" and self.headers.get("X-Amz-Target"):
            return self.api(u)
        if u.path.startswith("/v2/"):
            return self.registry(u)
        owner._record(self.command, u.path, 404)
        self.reply(404, b"not found", {"Content-Type": "text/plain"})

    # -- the API -----------------------------------------------------------------------

    def api_error(self, status, typ, message, call):
        call.update(status=status, type=typ)
        self.server.owner._call(call)
        body = json.dumps({"__type": typ, "message": message}).encode()
        self.reply(status, body, {"Content-Type": "application/x-amz-json-1.1"})

    def api(self, u):
        owner = self.server.owner
        body = self.body()
        target = self.headers.get("X-Amz-Target", "")
        action = target.split(".", 1)[1] if target.startswith("AmazonEC2ContainerRegistry_V20150921.") else target
        call = {"action": action, "akid": None, "signed_headers": None, "at": _now()}
        if self.headers.get("Content-Type") != "application/x-amz-json-1.1":
            return self.api_error(400, "SerializationException", "wrong Content-Type", call)
        err, detail, signed = sigv4_verify("POST", u.path, u.query, self.headers.items(), body, owner.keys,
                                           owner.region, "ecr")
        if err is not None:
            return self.api_error(403 if err != "IncompleteSignatureException" else 400, err, detail, call)
        call["akid"] = detail
        call["signed_headers"] = signed
        forced = owner.fail.pop(action, None)
        if forced:
            return self.api_error(forced[0], forced[1], forced[2], call)
        try:
            req = json.loads(body.decode("utf-8") or "{}")
        except ValueError:
            return self.api_error(400, "SerializationException", "body is not JSON", call)
        if action == "GetAuthorizationToken":
            password = secrets.token_urlsafe(40)
            expires = _now() + owner.token_ttl
            with owner._lock:
                owner._passwords[password] = expires
            token = base64.b64encode(("AWS:" + password).encode()).decode()
            with owner._lock:
                owner.tokens.append(token)
            out = {"authorizationData": [{"authorizationToken": token, "expiresAt": round(expires, 3),
                                          "proxyEndpoint": owner.url}]}
        elif action == "CreateRepository":
            name = req.get("repositoryName") or ""
            if not REPO_RE.match(name) or not (2 <= len(name) <= 256):
                return self.api_error(400, "InvalidParameterException",
                                      "Invalid parameter at 'repositoryName'", call)
            with owner._lock:
                if name in owner._repos:
                    return self.api_error(400, "RepositoryAlreadyExistsException",
                                          "The repository with name '%s' already exists in the registry "
                                          "with id '%s'" % (name, ACCOUNT), call)
                owner._repos[name] = req
            out = {"repository": {"repositoryArn": "arn:aws:ecr:%s:%s:repository/%s" % (owner.region, ACCOUNT, name),
                                  "registryId": ACCOUNT, "repositoryName": name,
                                  "repositoryUri": "%s/%s" % (owner.host, name), "createdAt": _now(),
                                  "imageTagMutability": req.get("imageTagMutability", "MUTABLE")}}
        else:
            return self.api_error(400, "UnknownOperationException", "unknown operation", call)
        call.update(status=200, type=None, request=req)
        owner._call(call)
        self.reply(200, json.dumps(out).encode(), {"Content-Type": "application/x-amz-json-1.1"})

    # -- the registry ------------------------------------------------------------------

    def registry(self, u):
        owner = self.server.owner
        self.body()
        authz = self.headers.get("Authorization") or ""
        password = None
        if authz.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authz[6:]).decode().partition(":")
                if user != "AWS":
                    password = None
            except (ValueError, UnicodeDecodeError):
                password = None
        with owner._lock:
            expires = owner._passwords.get(password) if password else None
        if expires is None:
            return self.reply(401, b"Not Authorized\n", {
                "Content-Type": "text/plain; charset=utf-8",
                "Www-Authenticate": 'Basic realm="%s/",service="ecr.amazonaws.com"' % owner.url})
        if _now() > expires:
            return self.reply(403, json.dumps({"errors": [{
                "code": "DENIED",
                "message": "Your authorization token has expired. Reauthenticate and try again."}]}).encode(),
                {"Content-Type": "application/json; charset=utf-8"})
        m = V2_RE.match(u.path)
        if m:
            name = m.group(1)
            with owner._lock:
                known = name in owner._repos
            if not known:
                return self.reply(404, json.dumps({"errors": [{
                    "code": "NAME_UNKNOWN",
                    "message": "The repository with name '%s' does not exist in the registry with id '%s'"
                               % (name, ACCOUNT)}]}).encode(), {"Content-Type": "application/json; charset=utf-8"})
        elif u.path == "/v2/":
            return self.reply(200, b"{}", {"Content-Type": "application/json"})
        # The backend runs without auth: it must not see ECR's credentials.
        del self.headers["Authorization"]
        f = owner.fault
        answer = f(self.command, u.path) if f else None
        if answer is not None:
            return self.reply(answer[0], answer[1], answer[2] if len(answer) > 2 else {})
        self.forward()


class _CallLog:
    """The calls a stand-in answered, in order, under RegistryProxy's lock
    (the subclass starts self._calls as [])."""

    def _call(self, call):
        with self._lock:
            self._calls.append(call)

    @property
    def calls(self):
        with self._lock:
            return [dict(c) for c in self._calls]


class EcrStandIn(_CallLog, RegistryProxy):
    handler = _EcrHandler

    def __init__(self, backend, keys, region="us-east-1", token_ttl=12 * 3600):
        super().__init__(backend)
        self.keys = keys
        self.region = region
        self.token_ttl = token_ttl  # the expiresAt GetAuthorizationToken announces
        self.fail = {}  # action -> (status, type, message), used once
        self.tokens = []
        self._passwords = {}
        self._repos = {}
        self._calls = []

    def actions(self, ok_only=False):
        return [c["action"] for c in self.calls if not ok_only or c.get("status") == 200]

    @property
    def repositories(self):
        with self._lock:
            return set(self._repos)

    def repository_request(self, name):
        with self._lock:
            return dict(self._repos[name])

    def add_repository(self, name):
        with self._lock:
            self._repos[name] = {"repositoryName": name}

    @property
    def passwords(self):
        with self._lock:
            return list(self._passwords)

    def expire_tokens(self):
        """Every token issued so far stops working now (before the expiresAt
        it announced), as a revoked or early-expired token would."""
        with self._lock:
            for p in self._passwords:
                self._passwords[p] = _now() - 1


# -- STS -------------------------------------------------------------------------------------------


class _StsHandler(ProxyHandler):
    server_version = "landlord-test-sts"

    def handle_any(self):
        owner = self.server.owner
        u = urllib.parse.urlsplit(self.path)
        body = self.body().decode("utf-8", "replace")
        form = urllib.parse.parse_qs(body if self.command == "POST" else u.query, keep_blank_values=True)
        p = {k: v[0] for k, v in form.items()}
        call = {"action": p.get("Action"), "role": p.get("RoleArn"), "session": p.get("RoleSessionName"),
                "accept": self.headers.get("Accept"), "at": _now()}

        def error(status, code, message):
            call.update(status=status, code=code)
            owner._call(call)
            self.reply(status, json.dumps({"Error": {"Type": "Sender", "Code": code, "Message": message},
                                           "RequestId": secrets.token_hex(8)}).encode(),
                       {"Content-Type": "application/json"})

        if p.get("Action") != "AssumeRoleWithWebIdentity" or p.get("Version") != "2011-06-15":
            return error(400, "InvalidAction", "unknown action")
        if "json" not in (self.headers.get("Accept") or ""):
            return error(400, "InvalidParameterValue", "this stand-in only answers JSON")
        if p.get("RoleArn") != owner.role_arn:
            return error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        with open(owner.token_file) as f:
            expected = f.read().strip()
        if p.get("WebIdentityToken") != expected:
            return error(400, "InvalidIdentityToken", "Couldn't verify the web identity token")
        akid, secret, token, expires = owner.keys.issue(owner.lifetime)
        call.update(status=200, akid=akid)
        owner._call(call)
        out = {"AssumeRoleWithWebIdentityResponse": {"AssumeRoleWithWebIdentityResult": {
            "Credentials": {"AccessKeyId": akid, "SecretAccessKey": secret, "SessionToken": token,
                            "Expiration": expires},
            "AssumedRoleUser": {"Arn": owner.role_arn.replace(":role/", ":assumed-role/") + "/" + p.get("RoleSessionName", ""),
                                "AssumedRoleId": "AROA" + secrets.token_hex(6).upper()},
            "SubjectFromWebIdentityToken": "system:serviceaccount:landlord:landlord",
            "Audience": "sts.amazonaws.com", "Provider": "oidc.eks.example"},
            "ResponseMetadata": {"RequestId": secrets.token_hex(8)}}}
        self.reply(200, json.dumps(out).encode(), {"Content-Type": "application/json"})


class _Standin(_CallLog, RegistryProxy):
    """A stand-in on its own port (RegistryProxy's server, no backend)."""

    def __init__(self, keys, lifetime):
        super().__init__(None)
        self.keys = keys
        self.lifetime = lifetime
        self._calls = []


class StsStandIn(_Standin):
    handler = _StsHandler

    def __init__(self, keys, role_arn, token_file, lifetime=3600):
        super().__init__(keys, lifetime)
        self.role_arn = role_arn
        self.token_file = token_file


# -- the Pod Identity agent ------------------------------------------------------------------------------


class _PodHandler(ProxyHandler):
    server_version = "landlord-test-pod-identity"

    def handle_any(self):
        owner = self.server.owner
        u = urllib.parse.urlsplit(self.path)
        self.body()
        call = {"path": u.path, "at": _now()}
        with open(owner.token_file) as f:
            expected = f.read().strip()
        got = self.headers.get("Authorization")
        if self.command != "GET" or u.path != "/v1/credentials":
            call["status"] = 404
            owner._call(call)
            return self.reply(404, b'{"code":"NotFound","message":"no such path"}',
                              {"Content-Type": "application/json"})
        if got != expected:
            call["status"] = 401 if got is None else 403
            owner._call(call)
            return self.reply(call["status"], json.dumps({"code": "AccessDeniedException",
                                                          "message": "invalid token"}).encode(),
                              {"Content-Type": "application/json"})
        akid, secret, token, expires = owner.keys.issue(owner.lifetime)
        call.update(status=200, akid=akid)
        owner._call(call)
        out = {"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
               "AccountId": ACCOUNT, "Expiration": _rfc3339(expires)}
        self.reply(200, json.dumps(out).encode(), {"Content-Type": "application/json"})


class PodIdentityStandIn(_Standin):
    handler = _PodHandler

    def __init__(self, keys, token_file, lifetime=3600):
        super().__init__(keys, lifetime)
        self.token_file = token_file

    @property
    def credentials_url(self):
        return self.url + "/v1/credentials"


#!/usr/bin/env python3
"""Writes the seed inputs of the harnesses added for issue 11 into
tests/fuzz/corpus/<name>/seed-*: captured Kubernetes answers
(/work/shared/reference/kube-golden when it exists, else what the
tests' stand-ins send), OCI, AWS and JWT shapes from
/work/shared/reference/protocols.md, kubeconfigs and config files as the
tests write them.  The committed corpora are these seeds plus what
libFuzzer found, minimised with -merge=1; run this only to start over.

    python3 tests/fuzz/seeds.py [GOLDEN_DIR]
"""

import base64
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
GOLDEN = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/kube-golden"
sys.path.insert(0, os.path.join(HERE, "..", "support"))


def put(name, seed, data):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + seed), "wb") as f:
        f.write(data)


def golden(name, fallback):
    p = os.path.join(GOLDEN, name)
    if os.path.exists(p):
        with open(p, "rb") as f:
            return f.read()
    return fallback.encode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def dumps(v):
    return json.dumps(v, separators=(",", ":"))


HR = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
      "metadata": {"name": "acme", "namespace": "acme", "resourceVersion": "211", "generation": 2,
                   "labels": {"landlord.io/tenant": "acme"}},
      "spec": {"chart": {"spec": {"chart": "helm-tenant-chart", "version": "0.0.x"}},
               "values": {"tenantId": "acme", "apps": {"producer": {"enabled": True, "replicas": 2.0}}}},
      "status": {"observedGeneration": 2, "lastAttemptedRevision": "0.0.3",
                 "conditions": [{"type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                                 "message": "Helm upgrade succeeded", "observedGeneration": 2}],
                 "history": [{"chartVersion": "0.0.3", "status": "deployed", "digest": "sha256:ab"}]}}


def watch():
    events = golden("watch-events.jsonl", "")
    gone = golden("watch-410.jsonl", "")
    own = "".join(dumps({"type": t, "object": HR}) + "\n" for t in ("ADDED", "MODIFIED", "DELETED"))
    own += dumps({"type": "BOOKMARK", "object": {"kind": "HelmRelease", "metadata": {"resourceVersion": "300"}}}) + "\n"
    own += dumps({"type": "ERROR", "object": {"kind": "Status", "code": 500, "reason": "InternalError",
                                               "message": "boom"}}) + "\n"
    put("watch", "golden-events-one-read", b"\x00" + events)
    put("watch", "golden-events-7", b"\x07" + events)
    put("watch", "golden-410", b"\x01" + gone)
    put("watch", "own-events-13", b"\x0d" + own.encode())
    put("watch", "cut-mid-line", b"\x00" + own.encode()[:300])
    huge = dict(HR, spec={"values": {"replicas": 1e300, "neg": -1e300, "max": 9.3e18}})
    put("watch", "values-beyond-int64", b"\x00" + (dumps({"type": "ADDED", "object": huge}) + "\n").encode())
    put("watch", "unknown-type-crlf", b"\x03" + b'{"type":"WHAT","object":{}}\r\n\r\n{"type":"ADDED"}\n')


def kubelist():
    # first byte: index into {200, 200, 200, 201, 400, 401, 403, 404, 409, 410, 422, 500}
    lst = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmReleaseList",
           "metadata": {"resourceVersion": "212", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"},
           "items": [HR, dict(HR, metadata={"name": "b", "resourceVersion": "9"})]}
    put("kubelist", "golden-list", b"\x00" + golden("list-helmreleases.json", dumps(lst)))
    put("kubelist", "own-list", b"\x00" + dumps(lst).encode())
    put("kubelist", "golden-get", b"\x01" + golden("get-helmrelease.json", dumps(HR)))
    put("kubelist", "golden-401", b"\x05" + golden("401.json", '{"kind":"Status","code":401}'))
    put("kubelist", "golden-403", b"\x06" + golden("403.json", '{"kind":"Status","code":403}'))
    put("kubelist", "golden-404", b"\x07" + golden("get-404.json", '{"kind":"Status","code":404}'))
    put("kubelist", "golden-409", b"\x08" + golden("create-409.json", '{"kind":"Status","code":409}'))
    put("kubelist", "golden-422", b"\x0a" + golden("patch-status-422.json", '{"kind":"Status","code":422}'))
    put("kubelist", "values-beyond-int64", b"\x00" + dumps({"metadata": {}, "items": [
        dict(HR, spec={"values": {"replicas": 1e300, "max": 9223372036854775808.0}})]}).encode())
    put("kubelist", "html-500", b"\x0b<html>upstream timed out</html>")


def pem_cert_and_key():
    d = tempfile.mkdtemp()
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=k"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(crt, "rb") as f:
        c = f.read()
    with open(key, "rb") as f:
        k = f.read()
    return c, k


def kubeconfig():
    c, k = pem_cert_and_key()
    ca = base64.b64encode(c).decode()
    base = """apiVersion: v1
kind: Config
current-context: %(ctx)s
contexts:
- name: dev
  context: {cluster: dev, user: dev, namespace: landlord}
- name: anon
  context: {cluster: dev}
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:6443/
%(cluster)s
users:
- name: dev
  user:
%(user)s
"""
    put("kubeconfig", "token", base % {"ctx": "dev", "cluster": "    certificate-authority-data: " + ca,
                                      "user": "    token: abc.def"})
    put("kubeconfig", "client-cert", base % {
        "ctx": "dev", "cluster": "    certificate-authority-data: " + ca,
        "user": "    client-certificate-data: %s\n    client-key-data: %s" % (
            ca, base64.b64encode(k).decode())})
    put("kubeconfig", "anonymous", base % {"ctx": "anon", "cluster": "", "user": "    token: x"})
    put("kubeconfig", "files", base % {"ctx": "dev", "cluster": "    certificate-authority: ca.crt",
                                      "user": "    tokenFile: token\n    token: fallback"})
    put("kubeconfig", "insecure", base % {"ctx": "dev", "cluster": "    insecure-skip-tls-verify: true",
                                         "user": "    token: x"})
    put("kubeconfig", "exec", base % {"ctx": "dev", "cluster": "",
                                     "user": "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}"})
    put("kubeconfig", "bad-base64", base % {"ctx": "dev", "cluster": "    certificate-authority-data: Zm9v=x",
                                           "user": "    username: a\n    password: b"})
    put("kubeconfig", "json", dumps({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k"}}],
                                     "clusters": [{"name": "k", "cluster": {"server": "http://[::1]:8001"}}]}))


def jwt():
    now = 2000000000
    good = {"sub": "caller", "scope": "admin", "iat": now, "exp": now + 600,
            "iss": "https://idp.example.test/", "aud": "landlord", "name": "A Caller",
            "email": "caller@example.test"}
    header = {"alg": "HS256", "typ": "JWT"}
    put("jwt", "signed-good", b"\x01" + dumps(header).encode() + b"\x00" + dumps(good).encode())
    put("jwt", "signed-default-header", b"\x01" + dumps(dict(good, aud=["x", "landlord"], nbf=now - 5)).encode())
    put("jwt", "signed-exp-int64-max", b"\x01" + dumps(dict(good, exp=2**63 - 1)).encode())
    put("jwt", "signed-real-times", b"\x01" + dumps(dict(good, exp=1e300, nbf=-1e300)).encode())
    put("jwt", "signed-kid", b"\x01" + dumps({"alg": "HS256", "kid": "x"}).encode() + b"\x00" +
        dumps(dict(good, scope="tenants:read tenants:write")).encode())
    put("jwt", "signed-dup", b"\x01" + b'{"sub":"a","sub":"b","exp":2000000100}')
    si = b64url(dumps(header).encode()) + "." + b64url(dumps(good).encode())
    put("jwt", "text-bad-signature", b"\x00" + (si + ".c2ln").encode())
    put("jwt", "text-alg-none", b"\x00" + (b64url(b'{"alg":"none"}') + "." + b64url(dumps(good).encode()) + ".").encode())
    put("jwt", "text-es256", b"\x00" + (b64url(b'{"alg":"ES256","kid":"k"}') + ".e30.c2ln").encode())


def jwks():
    from jwtkeys import KeyPair
    d = tempfile.mkdtemp()
    rsa, ec = KeyPair.rsa(d, "r"), KeyPair.ec(d, "e")
    put("jwks", "rsa-ec", dumps({"keys": [rsa.jwk("k1", alg="RS256"), ec.jwk("ec-1")]}))
    put("jwks", "skipped", dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}, dict(ec.jwk("enc"), use="enc"),
                                           dict(ec.jwk("p384"), crv="P-384"), {"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}))
    put("jwks", "alg-mismatch", dumps({"keys": [dict(ec.jwk("ec-1"), alg="RS256")]}))


def config():
    with open(os.path.join(HERE, "..", "..", "deploy", "landlord.yaml"), "rb") as f:
        put("config", "deploy-sample", f.read())
    put("config", "errors", "listen: [a, b]\n")
    put("config", "flow", "{listen: '127.0.0.1:0', http-threads: 8, jwt-leeway: 300, oci-url: 'oci://r.example:5000/charts'}\n")
    put("config", "nested", "git:\n  url: x\n---\nlog-level: debug\n")
    put("config", "alias", "a: &x 1\nb: *x\n")


def oci():
    put("oci", "token", b"\x00" + dumps({"token": "abc", "access_token": "abc", "expires_in": 300,
                                         "issued_at": "2026-08-20T10:00:00Z"}).encode())
    put("oci", "token-huge", b"\x00" + dumps({"access_token": "abc", "expires_in": 2**63 - 1}).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:cfg", "size": 312},
                "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                            "digest": "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
                            "size": 4127}],
                "annotations": {"org.opencontainers.image.title": "tenant-app"}}
    put("oci", "manifest", b"\x01" + dumps(manifest).encode())
    put("oci", "error-json", b"\x02" + dumps({"errors": [{"code": "UNAUTHORIZED", "message": "access denied",
                                                          "detail": [{"Type": "repository"}]}]}).encode())
    put("oci", "error-text", b"\x02Not Authorized\r\n")
    put("oci", "chart-yaml", b"\x03" + b"""apiVersion: v2
name: helm-tenant-chart
version: 1.4.2+build.7
description: tenant services
home: https://example.test
sources: [https://git.example.test/chart]
keywords: [saas]
maintainers:
- {name: Ops, email: ops@example.test}
- {name: Dev}
annotations:
  org.opencontainers.image.title: other
  example.test/team: platform
dependencies: []
type: application
""")


def aws():
    # first byte: kind (bits 0-1: sts, pod, ecr token, ecr create), status (bits 2-3: 200, 400, 403, 500)
    sts = {"AssumeRoleWithWebIdentityResponse": {"AssumeRoleWithWebIdentityResult": {
        "Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s", "SessionToken": "t",
                        "Expiration": 1514862300},
        "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/ecr-push/ctl"}}}}
    put("aws", "sts", b"\x00" + dumps(sts).encode())
    put("aws", "sts-403", b"\x08" + dumps({"Error": {"Code": "AccessDenied", "Message": "Not authorized\nline 2"}}).encode())
    put("aws", "pod", b"\x01" + dumps({"AccessKeyId": "A", "SecretAccessKey": "s", "Token": "t",
                                        "Expiration": "2026-08-20T16:00:00.123+02:00"}).encode())
    put("aws", "ecr-token", b"\x02" + dumps({"authorizationData": [{"authorizationToken": "QVdTOnB3",
                                                                     "expiresAt": 1.7e9,
                                                                     "proxyEndpoint": "https://1.dkr.ecr.x.amazonaws.com"}]}).encode())
    put("aws", "ecr-error", b"\x16" + dumps({"__type": "com.amazonaws.ecr#AccessDeniedException",
                                              "message": "String-to-Sign ..."}).encode())
    put("aws", "ecr-create-exists", b"\x17" + dumps({"__type": "RepositoryAlreadyExistsException",
                                                      "Message": "exists"}).encode())


if __name__ == "__main__":
    for f in (watch, kubelist, kubeconfig, jwt, jwks, config, oci, aws):
        f()

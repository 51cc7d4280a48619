"""deploy/ works (issue 13, "deploy/ that works"): every overlay of
deploy/kubernetes built as kustomize builds it, every object's shape, the
settings the manifests give landlord checked against the binary, and the
RBAC of the base held equal to the Kubernetes API calls landlord makes.

No cluster runs here.  What stands in for one:

  - build(): kustomize's build for the features deploy/ uses (resources,
    recursively; namespace; images; patches with JSON 6902 operations,
    applied by python3-jsonpatch), everything else refused.  (kubectl is
    not a Debian package, so the test does not depend on it; checked by hand
    on 2026-12-08, `kubectl kustomize` v5.5.0 gives the same objects for the
    base and both overlays: docs/deploy.md.)  YAML
    is loaded strictly: a duplicate key is an error (kubectl refuses one
    too, and YAML's last-wins would hide a typo).
  - shape_problems(): what a kube-apiserver and the kubelet would refuse or
    what the product needs (numeric runAsUser with runAsNonRoot, a
    read-only root, no privilege escalation, capabilities dropped, probes on
    /healthz and /readyz, requests and limits, selectors that select, every
    LANDLORD_* name and flag one `landlord serve --help` lists, every file
    a setting names mounted from a Secret).
  - RbacEqualsCodeTest: landlord against tests/support/kubeapi.py in its
    RBAC mode, given the roles the base binds to the landlord service
    account: a request no rule allows gets the apiserver's 403, and every
    verb of every rule must have been used (nothing granted that the code
    does not need).  The Terraform discovery GET
    (/apis/infra.contrib.fluxcd.io/v1alpha2) is a non-resource URL that the
    built-in ClusterRole system:discovery allows every authenticated user,
    so the base has no rule for it.

Python 3 standard library + python3-yaml + python3-jsonpatch (Debian).
"""

import copy
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import jsonpatch  # noqa: E402
import yaml  # noqa: E402

from common import poll  # noqa: E402
from fluxsim import FluxSim  # noqa: E402
from gitserver import GitServer  # noqa: E402
from harness import (HEX40, SOURCE_DIR, LandlordTestCase, Server, make_temp_dir, onboard,  # noqa: E402
                     run_landlord)
from kubeapi import RBAC, KubeAPI, request_info  # noqa: E402

DEPLOY = os.path.join(SOURCE_DIR, "deploy", "kubernetes")
BASE = os.path.join(DEPLOY, "base")
OVERLAYS = {"single": os.path.join(DEPLOY, "overlays", "single"), "ha": os.path.join(DEPLOY, "overlays", "ha")}
SA_USER = "system:serviceaccount:landlord:landlord"
# Settings of the PostgreSQL part of issue 13, not in the binary yet: only
# the ha overlay may use them, and while the binary does not know them it
# must refuse to start with them (test_ha_refused_until_postgresql_exists).
PENDING = {"database-url", "database-password-file"}

# (apiVersion, kind) -> namespaced
KNOWN_KINDS = {
    ("v1", "Namespace"): False,
    ("v1", "ServiceAccount"): True,
    ("v1", "ConfigMap"): True,
    ("v1", "Service"): True,
    ("v1", "PersistentVolumeClaim"): True,
    ("apps/v1", "Deployment"): True,
    ("networking.k8s.io/v1", "NetworkPolicy"): True,
    ("policy/v1", "PodDisruptionBudget"): True,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): False,
    ("rbac.authorization.k8s.io/v1", "Role"): True,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): True,
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# -- strict YAML ---------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader refusing a mapping that repeats a key."""


def _strict_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = {}
    for knode, _ in node.value:
        key = loader.construct_object(knode, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found duplicate key %r (first at line %d)"
                % (key, seen[key].line + 1), knode.start_mark)
        seen[key] = knode.start_mark
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_all_strict(text):
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]


# -- kustomize build (the subset deploy/ uses) --------------------------------------------------------


class BuildError(Exception):
    pass


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {kind for (_, kind), namespaced in KNOWN_KINDS.items() if not namespaced}


def _group_version(o):
    av = o.get("apiVersion") or ""
    return av.rpartition("/")[0], av.rpartition("/")[2]


def resid(o):
    md = o.get("metadata") or {}
    return (_group_version(o)[0], o.get("kind"), md.get("namespace") or "", md.get("name"))


def _target_matches(t, o):
    group, version = _group_version(o)
    md = o.get("metadata") or {}
    for key, have in (("group", group), ("version", version), ("kind", o.get("kind")), ("name", md.get("name")),
                      ("namespace", md.get("namespace") or "")):
        if key in t and not re.fullmatch(t[key], have or ""):
            return False
    return True


def _apply_images(objs, images):
    for o in objs:
        spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            image = c.get("image") or ""
            name, tag = image, None
            if "@" in image:
                name, tag = image.split("@", 1)[0], "@" + image.split("@", 1)[1]
            elif ":" in image.rsplit("/", 1)[-1]:
                name, tag = image.rsplit(":", 1)[0], ":" + image.rsplit(":", 1)[1]
            for im in images:
                if im.get("name") != name:
                    continue
                extra = set(im) - {"name", "newName", "newTag", "digest"}
                if extra:
                    raise BuildError("images: unsupported keys %s" % sorted(extra))
                name = im.get("newName", name)
                if "digest" in im:
                    tag = "@" + im["digest"]
                elif "newTag" in im:
                    tag = ":" + str(im["newTag"])
                c["image"] = name + (tag or "")
                break


def build(path, depth=0):
    """The objects `kustomize build path` prints (order aside), for the
    features deploy/ uses; BuildError for anything else."""
    if depth > 10:
        raise BuildError("resources nest too deep at %s" % path)
    kfile = os.path.join(path, "kustomization.yaml")
    if not os.path.isfile(kfile):
        raise BuildError("no kustomization.yaml in %s" % path)
    with open(kfile) as f:
        docs = load_all_strict(f.read())
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise BuildError("%s: one mapping expected" % kfile)
    k = docs[0]
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise BuildError("%s: %s not reproduced by this test's build (keep deploy/ to %s)"
                         % (kfile, sorted(unknown), sorted(KUSTOMIZATION_KEYS)))
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        raise BuildError("%s: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization" % kfile)
    objs, ids = [], set()
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(path, r))
        if os.path.isdir(p):
            got = build(p, depth + 1)
        elif os.path.isfile(p):
            with open(p) as f:
                got = load_all_strict(f.read())
        else:
            raise BuildError("%s: resource %s not found" % (kfile, r))
        for o in got:
            if not isinstance(o, dict) or not o.get("kind") or not (o.get("metadata") or {}).get("name"):
                raise BuildError("%s: an object without kind or metadata.name: %r" % (p, o))
            if resid(o) in ids:
                raise BuildError("%s: may not add resource with an already registered id: %s" % (kfile, resid(o)))
            ids.add(resid(o))
            objs.append(o)
    for i, p in enumerate(k.get("patches") or []):
        if set(p) - {"target", "patch"} or "patch" not in p or "target" not in p:
            raise BuildError("%s: patches[%d]: only target + inline patch are reproduced" % (kfile, i))
        ops = load_all_strict(p["patch"])
        if len(ops) != 1 or not isinstance(ops[0], list):
            raise BuildError("%s: patches[%d] is not a list of JSON 6902 operations (strategic merge is not "
                             "reproduced)" % (kfile, i))
        hits = [o for o in objs if _target_matches(p["target"], o)]
        if not hits:
            raise BuildError("%s: patches[%d]: the target matches nothing" % (kfile, i))
        for o in hits:
            try:
                new = jsonpatch.JsonPatch(ops[0]).apply(o)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                raise BuildError("%s: patches[%d] on %s: %s" % (kfile, i, resid(o), e))
            o.clear()
            o.update(new)
    if "namespace" in k:
        for o in objs:
            if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
                raise BuildError("%s: namespace with RBAC bindings is not reproduced (kustomize rewrites "
                                 "ServiceAccount subjects)" % kfile)
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    _apply_images(objs, k.get("images") or [])
    return objs


# -- what landlord knows ---------------------------------------------------------------------------


_SETTINGS = None


def landlord_settings():
    """The option names `landlord serve --help` lists (git-url, ...)."""
    global _SETTINGS
    if _SETTINGS is None:
        out = run_landlord(["serve", "--help"])
        text = out.stdout + out.stderr
        names = set(re.findall(r"^\s+--([a-z0-9-]+) ", text, re.M))
        envs = set(re.findall(r"env LANDLORD_([A-Z0-9_]+)", text))
        assert names and {n.upper().replace("-", "_") for n in names} == envs, \
            "serve --help lists each option with its env name:\n" + text
        _SETTINGS = names
    return _SETTINGS


def env_to_setting(name):
    return name[len("LANDLORD_"):].lower().replace("_", "-")


# -- shape checks ----------------------------------------------------------------------------------


def _find(objs, kind, name=None, ns=None):
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"].get("name") == name)
            and (ns is None or o["metadata"].get("namespace") == ns)]


def _selects(selector, labels):
    ml = (selector or {}).get("matchLabels") or {}
    return bool(ml) and all(labels.get(k) == v for k, v in ml.items()) and not (selector or {}).get(
        "matchExpressions")


def container_settings(c, objs, ns):
    """{LANDLORD_NAME: value or None (from a Secret)}: env over envFrom
    ConfigMaps, as the kubelet merges them; problems for a ConfigMap that
    is missing."""
    env, problems = {}, []
    for ef in c.get("envFrom") or []:
        ref = (ef.get("configMapRef") or {}).get("name")
        cms = _find(objs, "ConfigMap", ref, ns)
        if not ref or not cms:
            problems.append("envFrom names ConfigMap %r, not in the build" % ref)
            continue
        env.update({k: str(v) for k, v in (cms[0].get("data") or {}).items()})
    for e in c.get("env") or []:
        env[e["name"]] = e.get("value") if "value" in e else None
    return env, problems


def pod_problems(pod, objs, ns, where, allowed_pending=frozenset()):
    """What the kubelet would refuse in a pod spec, or what the product
    needs of landlord's container."""
    p = []
    psc = pod.get("securityContext") or {}
    sa = pod.get("serviceAccountName")
    if not _find(objs, "ServiceAccount", sa, ns):
        p.append("%s: serviceAccountName %r is not a ServiceAccount of the build in %s" % (where, sa, ns))
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        p.append("%s: pod seccompProfile is not RuntimeDefault" % where)
    for key in ("runAsGroup", "fsGroup"):
        if not isinstance(psc.get(key), int) or psc.get(key) <= 0:
            p.append("%s: pod %s is not a numeric non-root id" % (where, key))
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    settings = landlord_settings()
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        cw = "%s container %s" % (where, c.get("name"))
        csc = c.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        nonroot = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if nonroot is not True:
            p.append("%s: runAsNonRoot is not true" % cw)
        if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
            p.append("%s: no numeric non-zero runAsUser (pod or container): the kubelet cannot check "
                     "runAsNonRoot against a user name" % cw)
        if csc.get("readOnlyRootFilesystem") is not True:
            p.append("%s: readOnlyRootFilesystem is not true" % cw)
        if csc.get("allowPrivilegeEscalation") is not False:
            p.append("%s: allowPrivilegeEscalation is not false" % cw)
        if csc.get("privileged"):
            p.append("%s: privileged" % cw)
        if (csc.get("capabilities") or {}).get("drop") != ["ALL"] or (csc.get("capabilities") or {}).get("add"):
            p.append("%s: capabilities do not drop ALL (or add some)" % cw)
        ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports") or []}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path:
                p.append("%s: %s is not an httpGet of %s" % (cw, probe, path))
            elif get.get("port") not in ports and get.get("port") not in ports.values():
                p.append("%s: %s port %r is not a container port" % (cw, probe, get.get("port")))
        res = c.get("resources") or {}
        for part, keys in (("requests", ("cpu", "memory")), ("limits", ("cpu", "memory"))):
            for key in keys:
                if not (res.get(part) or {}).get(key):
                    p.append("%s: no resources.%s.%s" % (cw, part, key))
        if (res.get("limits") or {}).get("memory") != "128Mi":
            p.append("%s: memory limit %r is not the product's target 128Mi"
                     % (cw, (res.get("limits") or {}).get("memory")))
        mounts = {}
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                p.append("%s: volumeMount %s names no volume" % (cw, m.get("name")))
            mounts[m["mountPath"].rstrip("/")] = volumes.get(m.get("name")) or {}
        env, eprobs = container_settings(c, objs, ns)
        p += ["%s: %s" % (cw, e) for e in eprobs]
        given = {}
        for name, value in env.items():
            if not name.startswith("LANDLORD_"):
                continue
            s = env_to_setting(name)
            given[s] = value
            if s not in settings and not (s in PENDING and s in allowed_pending):
                p.append("%s: %s is no setting of `landlord serve --help`" % (cw, name))
        args = list(c.get("args") or [])
        for a in args:
            m = re.match(r"^--([a-z0-9-]+)(?:=(.*))?$", a)
            if not m:
                p.append("%s: argument %r is not --name=value" % (cw, a))
                continue
            if m.group(1) not in settings and not (m.group(1) in PENDING and m.group(1) in allowed_pending):
                p.append("%s: flag --%s is no setting of `landlord serve --help`" % (cw, m.group(1)))
            given[m.group(1)] = m.group(2)
        if c.get("command"):
            p.append("%s: command overrides the image's entrypoint (landlord serve)" % cw)
        for s, value in given.items():
            if value is None:
                continue
            if s.endswith("-file"):
                d = os.path.dirname(value)
                vol = mounts.get(d)
                if vol is None:
                    p.append("%s: %s=%s: %s is no volumeMount" % (cw, s, value, d))
                elif s != "config" and "secret" not in vol:
                    p.append("%s: %s=%s is not in a Secret volume" % (cw, s, value))
                elif vol.get("secret", {}).get("items") and os.path.basename(value) not in [
                        i["path"] for i in vol["secret"]["items"]]:
                    p.append("%s: %s=%s: the Secret volume's items do not make that file" % (cw, s, value))
            elif re.search(r"(password|secret|token)", s):
                p.append("%s: %s is given as a value: secrets are files" % (cw, s))
        data = given.get("data")
        if data is None or data.rstrip("/") not in mounts:
            p.append("%s: the data dir %r is no volumeMount" % (cw, data))
        listen = given.get("listen") or ""
        if not listen.endswith(":%s" % next(iter(ports.values()), "none")):
            p.append("%s: listen %r is not on the container port %r" % (cw, listen, ports))
    return p


def shape_problems(objs, allowed_pending=frozenset()):
    """Everything wrong with a built overlay, as sentences ([] when none)."""
    p = []
    if not objs:
        return ["the build is empty"]
    for o in objs:
        md = o.get("metadata") or {}
        key = (o.get("apiVersion"), o.get("kind"))
        where = "%s %s/%s" % (o.get("kind"), md.get("namespace") or "-", md.get("name"))
        if key not in KNOWN_KINDS:
            p.append("%s: unknown apiVersion/kind %s" % (where, key))
            continue
        if not isinstance(md.get("name"), str) or not DNS1123.match(md["name"]) or len(md["name"]) > 253:
            p.append("%s: metadata.name is not a DNS-1123 name" % where)
        if KNOWN_KINDS[key] and not md.get("namespace"):
            p.append("%s: namespaced kind without metadata.namespace" % where)
        if not KNOWN_KINDS[key] and md.get("namespace"):
            p.append("%s: cluster-scoped kind with a namespace" % where)
        if KNOWN_KINDS[key] and md.get("namespace") and o["kind"] != "Namespace" and md["namespace"] not in (
                "flux-system",) and not _find(objs, "Namespace", md["namespace"]):
            p.append("%s: namespace %s is not made by the build" % (where, md["namespace"]))
        if o["kind"] == "Secret":
            p.append("%s: a Secret in the manifests (secrets are made by the operator)" % where)
        if o["kind"] == "Deployment":
            spec = o.get("spec") or {}
            tmpl = spec.get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            if not _selects(spec.get("selector"), labels):
                p.append("%s: selector does not match the template's labels" % where)
            p += pod_problems(tmpl.get("spec") or {}, objs, md.get("namespace"), where, allowed_pending)
        if o["kind"] in ("Service", "NetworkPolicy", "PodDisruptionBudget"):
            sel = (o.get("spec") or {}).get("selector") if o["kind"] != "NetworkPolicy" else \
                (o.get("spec") or {}).get("podSelector")
            sel = {"matchLabels": sel} if o["kind"] == "Service" else sel
            pods = [d for d in _find(objs, "Deployment", ns=md.get("namespace"))
                    if _selects(sel, ((d["spec"]["template"].get("metadata") or {}).get("labels") or {}))]
            if not pods:
                p.append("%s: selects no pod of the build" % where)
            cports = {(pt.get("name"), pt.get("containerPort")) for d in pods
                      for c in d["spec"]["template"]["spec"].get("containers") or [] for pt in c.get("ports") or []}
            names, numbers = {n for n, _ in cports}, {n for _, n in cports}
            if o["kind"] == "Service":
                for sp in (o.get("spec") or {}).get("ports") or []:
                    if sp.get("targetPort") not in names | numbers:
                        p.append("%s: targetPort %r is no container port" % (where, sp.get("targetPort")))
            if o["kind"] == "NetworkPolicy":
                for rule in (o.get("spec") or {}).get("ingress") or []:
                    for rp in rule.get("ports") or []:
                        if rp.get("port") not in names | numbers:
                            p.append("%s: ingress port %r is no container port" % (where, rp.get("port")))
        if o["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            ref = o.get("roleRef") or {}
            if not _find(objs, ref.get("kind"), ref.get("name"),
                         md.get("namespace") if ref.get("kind") == "Role" else None):
                p.append("%s: roleRef %s/%s is not in the build" % (where, ref.get("kind"), ref.get("name")))
            for s in o.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and not _find(objs, "ServiceAccount", s.get("name"),
                                                                   s.get("namespace")):
                    p.append("%s: subject ServiceAccount %s/%s not in the build"
                             % (where, s.get("namespace"), s.get("name")))
    return p


def deployment(objs):
    ds = _find(objs, "Deployment", "landlord", "landlord")
    assert len(ds) == 1, "one Deployment landlord/landlord: %r" % [resid(o) for o in objs]
    return ds[0]


def settings_of(objs):
    d = deployment(objs)
    env, _ = container_settings(d["spec"]["template"]["spec"]["containers"][0], objs, "landlord")
    return env


# -- the tests ---------------------------------------------------------------------------------------


class CheckerTest(unittest.TestCase):
    """The checks can fail: each refuses what it must."""

    def test_duplicate_key_refused(self):
        with self.assertRaisesRegex(yaml.YAMLError, "duplicate key 'name'"):
            load_all_strict("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n")
        self.assertEqual(load_all_strict("a: 1\n---\nb: {c: 2}\n"), [{"a": 1}, {"b": {"c": 2}}])

    def test_duplicate_key_in_a_resource_fails_the_build(self):
        d = make_temp_dir("landlord-deploy-")
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [ns.yaml]\n")
        with open(os.path.join(d, "ns.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\nmetadata:\n  name: b\n")
        with self.assertRaisesRegex(yaml.YAMLError, "duplicate key 'metadata'"):
            build(d)

    def test_strategic_merge_and_unknown_features_refused(self):
        d = make_temp_dir("landlord-deploy-")
        with open(os.path.join(d, "ns.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
        for extra, msg in (("commonLabels: {a: b}\n", "not reproduced"),
                           ("patches:\n  - target: {kind: Namespace}\n    patch: |-\n      metadata:\n"
                            "        labels: {a: b}\n", "strategic merge"),
                           ("patches:\n  - target: {kind: Deployment}\n    patch: '[]'\n", "matches nothing")):
            with open(os.path.join(d, "kustomization.yaml"), "w") as f:
                f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                        "resources: [ns.yaml]\n" + extra)
            with self.assertRaisesRegex(BuildError, msg):
                build(d)

    def test_run_as_non_root_without_numeric_user_refused(self):
        objs = build(OVERLAYS["single"])
        self.assertEqual(shape_problems(objs), [])
        bad = copy.deepcopy(objs)
        pod = deployment(bad)["spec"]["template"]["spec"]
        del pod["securityContext"]["runAsUser"]
        probs = shape_problems(bad)
        self.assertTrue(any("no numeric non-zero runAsUser" in x for x in probs), probs)
        pod["securityContext"]["runAsUser"] = "landlord"
        self.assertTrue(any("no numeric non-zero runAsUser" in x for x in shape_problems(bad)))

    def test_other_mistakes_refused(self):
        objs = build(OVERLAYS["single"])

        def config(o):
            return _find(o, "ConfigMap", "landlord-config", "landlord")[0]["data"]
        cases = {
            "is no setting": lambda c, o: config(o).update(LANDLORD_GIT_URLL="https://x/y.git"),
            "is no volumeMount": lambda c, o: config(o).update(LANDLORD_GIT_SSH_KEY_FILE="/etc/nowhere/ssh-key"),
            "not in a Secret volume": lambda c, o: config(o).update(LANDLORD_GIT_CA_FILE="/tmp/ca.crt"),
            "readOnlyRootFilesystem": lambda c, o: c["securityContext"].pop("readOnlyRootFilesystem"),
            "drop ALL": lambda c, o: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
            "httpGet of /readyz": lambda c, o: c["readinessProbe"]["httpGet"].update(path="/healthz"),
            "resources.limits.memory": lambda c, o: c["resources"]["limits"].pop("memory"),
            "given as a value": lambda c, o: c.setdefault("env", []).append(
                {"name": "LANDLORD_JWT_SECRET", "value": "hunter2"}),
            "flag --database-url": lambda c, o: c.update(args=["--database-url=postgres://db/x"]),
            "not on the container port": lambda c, o: config(o).update(LANDLORD_LISTEN="0.0.0.0:8080"),
            "ingress port 8443 is no container port": lambda c, o: c["ports"][0].update(containerPort=8080) or
            config(o).update(LANDLORD_LISTEN="0.0.0.0:8080"),
        }
        for want, spoil in cases.items():
            bad = copy.deepcopy(objs)
            spoil(deployment(bad)["spec"]["template"]["spec"]["containers"][0], bad)
            probs = shape_problems(bad)
            self.assertTrue(any(want in x for x in probs), "%s: %s" % (want, probs))

    def test_unused_grant_is_found(self):
        rbac = RBAC(rbac_objects(build(BASE)))
        rules = rbac.rules()
        self.assertTrue(rules)
        # Every verb used once except namespaces' watch: that one is reported.
        for rid, i, rule in rules:
            for v in rule["verbs"]:
                if not (rule["resources"] == ["namespaces"] and v == "watch"):
                    rbac.used[(rid, i, v)] += 1
        self.assertEqual(unused_grants(rbac), ["ClusterRole/landlord rules[0] watch namespaces"])


def rbac_objects(objs):
    return [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]


def unused_grants(rbac):
    out = []
    for rid, i, rule in rbac.rules():
        for v in rule.get("verbs") or []:
            if not rbac.used.get((rid, i, v)):
                out.append("%s rules[%d] %s %s" % (rid, i, v, ",".join(rule.get("resources") or
                                                                        rule.get("nonResourceURLs") or [])))
    return out


class ManifestTest(unittest.TestCase):
    def test_overlays_build_and_have_the_shape(self):
        for name, path in OVERLAYS.items():
            with self.subTest(overlay=name):
                objs = build(path)
                self.assertEqual(shape_problems(objs, PENDING if name == "ha" else frozenset()), [])

    def test_commented_settings_are_real(self):
        """The alternatives configmap.yaml offers as comments (ssh, JWKS,
        another registry) name real settings and files under the mounts."""
        with open(os.path.join(BASE, "configmap.yaml")) as f:
            commented = re.findall(r"^\s*#\s*(LANDLORD_[A-Z0-9_]+):\s*(\S+)", f.read(), re.M)
        self.assertGreaterEqual(len(commented), 5, commented)
        objs = build(OVERLAYS["single"])
        c = deployment(objs)["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        for name, value in commented:
            with self.subTest(setting=name):
                self.assertIn(env_to_setting(name), landlord_settings())
                if name.endswith("_FILE"):
                    self.assertIn(os.path.dirname(value), mounts)
                    cm = _find(objs, "ConfigMap", "landlord-config", "landlord")[0]
                    cm["data"][name] = value
                    self.assertEqual(shape_problems(objs), [], "with %s=%s" % (name, value))
                    del cm["data"][name]

    def test_service_account_and_rbac(self):
        objs = build(BASE)
        self.assertEqual(len(_find(objs, "ServiceAccount", "landlord", "landlord")), 1)
        self.assertEqual(len(_find(objs, "Namespace", "landlord")), 1)
        env = settings_of(objs)
        flux_ns = env["LANDLORD_FLUX_NAMESPACE"]
        roles = _find(objs, "Role")
        self.assertEqual({r["metadata"]["namespace"] for r in roles}, {flux_ns},
                         "the Role is in LANDLORD_FLUX_NAMESPACE")
        names = {}
        for r in roles:
            for rule in r["rules"]:
                for res in rule["resources"]:
                    names[res] = rule.get("resourceNames")
        self.assertEqual(names, {"gitrepositories": [env["LANDLORD_FLUX_GIT_REPOSITORY"]],
                                 "kustomizations": [env["LANDLORD_FLUX_KUSTOMIZATION"]]},
                         "resourceNames are the Flux objects configmap.yaml names")
        for b in _find(objs, "ClusterRoleBinding") + _find(objs, "RoleBinding"):
            self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": "landlord", "namespace": "landlord"}])
        # Read-only across the cluster; no wildcard anywhere.
        for r in _find(objs, "ClusterRole") + roles:
            for rule in r["rules"]:
                for key in ("verbs", "apiGroups", "resources"):
                    self.assertNotIn("*", rule.get(key) or [], rule)
        for rule in _find(objs, "ClusterRole", "landlord")[0]["rules"]:
            self.assertEqual(sorted(rule["verbs"]), ["list", "watch"], rule)

    def test_single_overlay(self):
        objs = build(OVERLAYS["single"])
        d = deployment(objs)
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertEqual(d["spec"]["strategy"], {"type": "Recreate"})
        pod = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in pod["volumes"]}
        claim = vols["data"]["persistentVolumeClaim"]["claimName"]
        pvcs = _find(objs, "PersistentVolumeClaim", claim, "landlord")
        self.assertEqual(len(pvcs), 1, "the data volume's claim is in the build")
        self.assertEqual(pvcs[0]["spec"]["accessModes"], ["ReadWriteOnce"])
        mount = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "data"][0]
        self.assertEqual(mount["mountPath"], settings_of(objs)["LANDLORD_DATA"])
        self.assertFalse(_find(objs, "PodDisruptionBudget"))
        self.assertNotIn("LANDLORD_DATABASE_URL", settings_of(objs))

    def test_ha_overlay(self):
        objs = build(OVERLAYS["ha"])
        d = deployment(objs)
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertNotEqual((d["spec"].get("strategy") or {}).get("type"), "Recreate")
        pod = d["spec"]["template"]["spec"]
        pdbs = _find(objs, "PodDisruptionBudget", ns="landlord")
        self.assertEqual(len(pdbs), 1)
        self.assertEqual(pdbs[0]["spec"]["minAvailable"], 2)
        aa = pod["affinity"]["podAntiAffinity"]
        terms = [t["podAffinityTerm"] for t in aa.get("preferredDuringSchedulingIgnoredDuringExecution") or []] + \
            list(aa.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        zone = [t for t in terms if t["topologyKey"] == "topology.kubernetes.io/zone"]
        self.assertTrue(zone, "anti-affinity across zones")
        for t in terms:
            self.assertTrue(_selects(t["labelSelector"], d["spec"]["template"]["metadata"]["labels"]), t)
        c = pod["containers"][0]
        url = [e for e in c["env"] if e["name"] == "LANDLORD_DATABASE_URL"]
        self.assertEqual(len(url), 1)
        self.assertIn("secretKeyRef", url[0]["valueFrom"], "the database URL comes from a Secret")
        vols = {v["name"]: v for v in pod["volumes"]}
        self.assertIn("emptyDir", vols["data"], "each replica's clone in an emptyDir")
        self.assertTrue(any(a.startswith("--database-password-file=/") for a in c["args"]))

    def test_ha_refused_until_postgresql_exists(self):
        """Today's binary has no PostgreSQL backend: with the ha overlay's
        flag it must refuse to start, not run three SQLite registries."""
        objs = build(OVERLAYS["ha"])
        args = deployment(objs)["spec"]["template"]["spec"]["containers"][0]["args"]
        known = landlord_settings()
        if PENDING <= known:
            self.skipTest("the binary knows %s now: drop PENDING" % sorted(PENDING))
        d = make_temp_dir("landlord-deploy-")
        out = run_landlord(["serve", "--data", d, "--listen", "127.0.0.1:0"] + args, timeout=20)
        self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("unknown option --database-password-file", out.stderr)

    def test_containerfile_and_ignore(self):
        with open(os.path.join(SOURCE_DIR, "deploy", "Containerfile")) as f:
            cf = f.read()
        users = re.findall(r"^USER\s+(\S+)\s*$", cf, re.M)
        self.assertEqual(len(users), 1, "one USER in the final stage")
        uid, _, gid = users[0].partition(":")
        pod = deployment(build(OVERLAYS["single"]))["spec"]["template"]["spec"]
        self.assertEqual(int(uid), pod["securityContext"]["runAsUser"], "USER is numeric and the pod's runAsUser")
        if gid:
            self.assertEqual(int(gid), pod["securityContext"]["runAsGroup"])
        self.assertRegex(cf, r"useradd [^\n]*--uid %s\b" % uid)
        ignore = os.path.join(SOURCE_DIR, ".containerignore")
        with open(ignore) as f:
            lines = {ln.strip() for ln in f if ln.strip() and not ln.startswith("#")}
        for must in (".git", "var/", "build*/", "tests/web/node_modules/"):
            self.assertIn(must, lines)
        docker = os.path.join(SOURCE_DIR, ".dockerignore")
        with open(docker) as f, open(ignore) as g:
            self.assertEqual(f.read(), g.read(), ".dockerignore is the same list")
        # Nothing the build needs is ignored.
        self.assertIn("COPY . /src", cf)
        for d in ("lib", "server", "web", "migrations", "openapi", "cmake"):
            self.assertFalse(any(re.fullmatch(pat.rstrip("/").replace("*", ".*"), d) for pat in lines), d)

    def test_old_single_file_manifest_gone_and_readme_points_at_overlays(self):
        self.assertFalse(os.path.exists(os.path.join(DEPLOY, "landlord.yaml")))
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            readme = f.read()
        self.assertTrue("kubectl apply -k deploy/kubernetes/overlays/single" in readme,
                        "README.md shows how to apply the single overlay")
        for ref in re.findall(r"\]\((deploy/[^)#]+)", readme):
            self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, ref)), ref)


# -- RBAC equals code --------------------------------------------------------------------------------

GIT_USER, GIT_PASSWORD = "landlord", "s3cret"
CHARTS = ["0.0.1", "1.2.3"]


class RbacEqualsCodeTest(LandlordTestCase):
    """landlord against the stand-in in RBAC mode with exactly the base's
    roles for its service account: nothing refused, everything used."""

    def test_rbac_equals_code(self):
        objs = build(BASE)
        env = settings_of(objs)
        gs = GitServer(users={GIT_USER: GIT_PASSWORD}).start()
        self.addCleanup(gs.cleanup)
        self.addCleanup(gs.stop)
        gs.create_repo("gitops")
        api = KubeAPI(tls=True, tokens={"sa-token": SA_USER}, rbac=rbac_objects(objs), terraform=True).start()
        self.addCleanup(api.stop)
        d = make_temp_dir("landlord-deploy-")
        kubeconfig = api.kubeconfig(os.path.join(d, "kubeconfig"), token="sa-token")
        pw = gs.write_password_file(GIT_PASSWORD)
        flux = {"flux-namespace": env["LANDLORD_FLUX_NAMESPACE"],
                "flux-git-repository": env["LANDLORD_FLUX_GIT_REPOSITORY"],
                "flux-kustomization": env["LANDLORD_FLUX_KUSTOMIZATION"]}
        args = ["--git-url", gs.url("gitops"), "--git-username", GIT_USER, "--git-password-file", pw,
                "--kubeconfig", kubeconfig, "--git-poll-interval", "1"]
        for k, v in flux.items():
            args += ["--" + k, v]
        s = Server(args=args)
        s.start()
        self.addCleanup(s.kill)
        sim = FluxSim(api, gs.authed_url("gitops"), git_env=gs.git_env(), chart_versions=CHARTS,
                      namespace=flux["flux-namespace"], source_name=flux["flux-git-repository"],
                      kustomization_name=flux["flux-kustomization"]).start()
        self.addCleanup(sim.stop)

        def kube_ok():
            k = s.get("/readyz").json["checks"]["kube"]
            return k if k["status"] == "ok" and k.get("watches") and all(w["synced"] for w in k["watches"]) \
                else None
        try:
            poll(kube_ok, 30)
        except AssertionError:
            raise AssertionError("/readyz kube not ok: %s; refused: %s" % (
                json.dumps(s.get("/readyz").json["checks"]["kube"], indent=1), api.rbac.denied))
        # Onboarding to ready: a push, the reconcile PATCH, Flux applying it,
        # landlord following the objects.
        for tid, tier in (("acme", "premium"), ("bolt", "basic")):
            t = self.assertJson(onboard(s, tid, tier), 201, "onboard %s" % tid)
            self.assertRegex(t["commit"] or "", HEX40)
            r = self.assertJson(s.get("/api/v1/tenants/%s?wait=ready&timeout=30" % tid, timeout=60), 200)
            self.assertEqual(r["state"], "ready", json.dumps(r, indent=1))
        # The reconcile request reached the GitRepository (the first head
        # is only remembered; each later push asks).
        try:
            poll(lambda: api.request_count(verb="patch", kind="GitRepository", status=200) >= 1, 10,
                 msg="landlord asked Flux to reconcile with a PATCH")
        except AssertionError as e:
            raise AssertionError("%s; refused: %s" % (e, api.rbac.denied))
        gr = api.get("GitRepository", flux["flux-namespace"], flux["flux-git-repository"])
        self.assertIn("reconcile.fluxcd.io/requestedAt", gr["metadata"].get("annotations") or {})

        # (i) nothing refused, and landlord's kube check is ok.
        self.assertEqual(api.rbac.denied, [])
        with api._lock:
            refused = [r for r in api.requests if r["status"] in (401, 403)]
        self.assertEqual(refused, [])
        self.assertEqual(poll(kube_ok, 10)["status"], "ok")
        # (ii) every verb of every rule was needed.
        self.assertEqual(unused_grants(api.rbac), [], "granted but never used by landlord")
        # The Terraform discovery went through the built-in system:discovery.
        self.assertGreater(api.rbac.used[("system:discovery", 0, "get")], 0)
        self.assertGreater(api.request_count(path="/apis/infra.contrib.fluxcd.io/v1alpha2", status=200), 0)
        self.assertEqual(s.stop(), 0, "landlord exits 0 on SIGTERM")


class RbacModeTest(unittest.TestCase):
    """The stand-in's RBAC mode decides as the apiserver does."""

    def test_decisions(self):
        rbac = RBAC(rbac_objects(build(BASE)))
        hr = "/apis/helm.toolkit.fluxcd.io/v2/helmreleases"
        gr = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"
        cases = [
            (SA_USER, "GET", hr, {}, True),
            (SA_USER, "GET", hr, {"watch": "1"}, True),
            (SA_USER, "GET", "/apis/helm.toolkit.fluxcd.io/v2beta1/namespaces/acme/helmreleases", {}, True),
            (SA_USER, "GET", "/apis/helm.toolkit.fluxcd.io/v2/namespaces/acme/helmreleases/x", {}, False),
            (SA_USER, "PATCH", "/apis/helm.toolkit.fluxcd.io/v2/namespaces/acme/helmreleases/x", {}, False),
            (SA_USER, "GET", gr, {"fieldSelector": "metadata.name=flux-system"}, True),
            (SA_USER, "GET", gr, {"fieldSelector": "metadata.name=flux-system", "watch": "true"}, True),
            (SA_USER, "GET", gr, {}, False),  # resourceNames: a list without the name is refused
            (SA_USER, "GET", gr, {"fieldSelector": "metadata.name=other"}, False),
            (SA_USER, "PATCH", gr + "/flux-system", {}, True),
            (SA_USER, "PATCH", gr + "/flux-system/status", {}, False),
            (SA_USER, "DELETE", gr + "/flux-system", {}, False),
            (SA_USER, "PATCH", "/apis/source.toolkit.fluxcd.io/v1/namespaces/other/gitrepositories/flux-system",
             {}, False),
            (SA_USER, "GET", "/api/v1/namespaces", {}, True),
            (SA_USER, "GET", "/api/v1/namespaces/acme", {}, False),
            (SA_USER, "GET", "/api/v1/namespaces/flux-system/secrets", {}, False),
            (SA_USER, "GET", "/apis/infra.contrib.fluxcd.io/v1alpha2", {}, True),
            (SA_USER, "GET", "/version", {}, True),
            ("system:serviceaccount:other:landlord", "GET", hr, {}, False),
        ]
        for user, method, path, query, want in cases:
            with self.subTest(user=user, method=method, path=path, query=query):
                self.assertEqual(rbac.allows(user, request_info(method, path, query)), want)

    def test_forbidden_is_the_apiservers(self):
        api = KubeAPI(tls=False, tokens={"t": SA_USER}, rbac=rbac_objects(build(BASE))).start()
        self.addCleanup(api.stop)
        import http.client
        c = http.client.HTTPConnection(api.host, api.port, timeout=10)
        c.request("GET", "/api/v1/namespaces/flux-system/secrets", headers={"Authorization": "Bearer t"})
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 403)
        self.assertEqual(body, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'secrets is forbidden: User "%s" cannot list resource "secrets" in API group "" in the '
                       'namespace "flux-system"' % SA_USER,
            "reason": "Forbidden", "details": {"kind": "secrets"}, "code": 403})
        c.close()


if __name__ == "__main__":
    unittest.main()

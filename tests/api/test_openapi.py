"""The contract: openapi/openapi.yaml and the server's route table
(`landlord routes`) describe the same operations with the same scopes, the
document is well formed, and real responses validate against it."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import yaml  # noqa: E402

from harness import SOURCE_DIR, SharedServerTestCase, onboard, run_landlord  # noqa: E402

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SCOPES = {"public", "metrics", "tenants:read", "tenants:write", "tiers:write", "releases:write",
          "rollouts:write", "webhooks:write", "admin"}


class StrictLoader(yaml.SafeLoader):
    """YAML as a validator reads it: a key twice in one mapping is an error
    (PyYAML would keep the last one silently: a second components.schemas
    entry once typed every release item as a string)."""


def _strict_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_spec():
    with open(os.path.join(SOURCE_DIR, "openapi", "openapi.yaml"), encoding="utf-8") as f:
        return yaml.load(f, Loader=StrictLoader)


def operations(spec):
    for path, item in spec["paths"].items():
        for m in METHODS:
            if m in item:
                yield m.upper(), path, item[m], item


def resolve(spec, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        # sibling keywords next to $ref (3.1) are kept
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = dict(target, **extra) if extra and isinstance(target, dict) else target
        seen += 1
        assert seen < 50, "reference loop at " + ref
    return node


class SchemaError(AssertionError):
    pass


def validate(spec, schema, value, where="$"):
    """A small JSON Schema (2020-12 subset) validator: type, enum, const,
    properties, required, additionalProperties, items, oneOf, anyOf,
    minimum/maximum, minLength/maxLength, pattern."""
    schema = resolve(spec, schema)
    if schema is True or schema == {}:
        return
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(_is_type(value, t) for t in types):
            raise SchemaError("%s: %r is not of type %s" % (where, value, types))
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError("%s: %r not in %r" % (where, value, schema["enum"]))
    if "const" in schema and value != schema["const"]:
        raise SchemaError("%s: %r != %r" % (where, value, schema["const"]))
    if "oneOf" in schema:
        ok = 0
        errors = []
        for sub in schema["oneOf"]:
            try:
                validate(spec, sub, value, where)
                ok += 1
            except SchemaError as e:
                errors.append(str(e))
        if ok != 1:
            raise SchemaError("%s: %r matches %d of oneOf (%s)" % (where, value, ok, "; ".join(errors)))
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                validate(spec, sub, value, where)
                break
            except SchemaError as e:
                errors.append(str(e))
        else:
            raise SchemaError("%s: %r matches none of anyOf (%s)" % (where, value, "; ".join(errors)))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for r in schema.get("required", []):
            if r not in value:
                raise SchemaError("%s: required %r missing in %r" % (where, r, value))
        for k, v in value.items():
            if k in props:
                validate(spec, props[k], v, "%s.%s" % (where, k))
            else:
                ap = schema.get("additionalProperties", True)
                if ap is False:
                    raise SchemaError("%s: unexpected property %r" % (where, k))
                if isinstance(ap, dict):
                    validate(spec, ap, v, "%s.%s" % (where, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            validate(spec, schema["items"], v, "%s[%d]" % (where, i))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError("%s: %r < %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError("%s: %r > %r" % (where, value, schema["maximum"]))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaError("%s: %r shorter than %d" % (where, value, schema["minLength"]))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError("%s: %r longer than %d" % (where, value, schema["maxLength"]))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError("%s: %r does not match %s" % (where, value, schema["pattern"]))


def _is_type(v, t):
    return {
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "string": lambda: isinstance(v, str),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda: isinstance(v, bool),
        "null": lambda: v is None,
    }[t]()


class SpecDocument(unittest.TestCase):
    """The document on its own."""

    @classmethod
    def setUpClass(cls):
        cls.spec = load_spec()

    def test_the_spec_is_read_strictly(self):
        # The loader the other tests use refuses what a validator refuses.
        with self.assertRaises(yaml.constructor.ConstructorError):
            yaml.load("components:\n  schemas:\n    Release: {}\n    Release: {}\n", Loader=StrictLoader)
        self.assertEqual(yaml.load("a: {b: 1}\nc: 2\n", Loader=StrictLoader), {"a": {"b": 1}, "c": 2})

    def validate_with_swagger_parser(self, path):
        node = shutil.which("node")
        self.assertTrue(node, "node is needed (Debian's nodejs)")
        web = os.path.join(SOURCE_DIR, "tests", "web")
        self.assertTrue(os.path.isdir(os.path.join(web, "node_modules", "@apidevtools", "swagger-parser")),
                        "run `npm ci` in tests/web (scripts/quickstart test does)")
        return subprocess.run([node, os.path.join(web, "openapi.mjs"), path], capture_output=True,
                              text=True, timeout=120)

    def test_a_real_validator_accepts_the_spec(self):
        # @apidevtools/swagger-parser, as client generators read the file.
        spec = os.path.join(SOURCE_DIR, "openapi", "openapi.yaml")
        p = self.validate_with_swagger_parser(spec)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("OpenAPI 3.1.0", p.stdout)
        # ... and refuses what it should: the spec with a schema twice.
        with open(spec, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("\n    ReleaseSpec:\n", text)
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "openapi.yaml")
            with open(bad, "w", encoding="utf-8") as f:
                f.write(text.replace("\n    ReleaseSpec:\n", "\n    Release:\n", 1))
            p = self.validate_with_swagger_parser(bad)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("duplicated mapping key", p.stderr)

    def test_version_and_components(self):
        self.assertRegex(str(self.spec["openapi"]), r"^3\.1\.\d+$")
        schemas = self.spec["components"]["schemas"]
        for name in ("Tenant", "TenantList", "TenantCreate", "Tier", "TierList", "Operation", "Problem"):
            self.assertIn(name, schemas)
        self.assertIs(schemas["TenantCreate"]["additionalProperties"], False)
        self.assertEqual(set(schemas["TenantCreate"]["required"]), {"id", "tier"})
        self.assertTrue({"type", "title", "status", "detail", "instance", "request_id", "field", "hint",
                         "tenant"} <= set(schemas["Problem"]["properties"]))
        bearer = self.spec["components"]["securitySchemes"]["bearer"]
        self.assertEqual((bearer["type"], bearer["scheme"], bearer["bearerFormat"]), ("http", "bearer", "JWT"))
        self.assertIn("HS256", bearer["description"])
        # Every /api/v1 operation needs the token and documents its refusal.
        self.assertEqual(self.spec["security"], [{"bearer": []}])
        for method, path, op, _ in operations(self.spec):
            if path.startswith("/api/v1/"):
                for code in ("401", "403", "429"):
                    self.assertIn(code, op["responses"], (method, path))
            else:
                self.assertIn({}, op.get("security", []), "%s %s is public" % (method, path))

    def test_problem_types_match_the_prose(self):
        with open(os.path.join(SOURCE_DIR, "docs", "api.md"), encoding="utf-8") as f:
            prose = set(re.findall(r"`(urn:landlord:problem:[a-z-]+)`", f.read()))
        enum = set(resolve(self.spec, self.spec["components"]["schemas"]["Problem"]["properties"]["type"])["enum"])
        self.assertEqual(enum, prose)

    def test_routes_of_the_prose_are_in_the_spec(self):
        with open(os.path.join(SOURCE_DIR, "docs", "api.md"), encoding="utf-8") as f:
            rows = re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([a-z:]+) \|", f.read(), re.M)
        self.assertGreaterEqual(len(rows), 11)
        ops = {(m, p): op for m, p, op, _ in operations(self.spec)}
        self.assertEqual(set(ops), {(m, p) for m, p, _ in rows})
        for m, p, scope in rows:
            self.assertEqual(ops[(m, p)]["x-landlord-scope"], scope, (m, p))

    def test_every_operation_is_complete(self):
        ids = set()
        for method, path, op, item in operations(self.spec):
            with self.subTest(method=method, path=path):
                self.assertIn(op.get("x-landlord-scope"), SCOPES)
                self.assertRegex(op.get("operationId", ""), r"^[a-z][A-Za-z0-9]+$")
                self.assertNotIn(op["operationId"], ids)
                ids.add(op["operationId"])
                codes = set(map(str, op["responses"]))
                self.assertTrue(any(c.startswith("2") for c in codes))
                has4xx = any(c.startswith("4") for c in codes)
                self.assertTrue(has4xx or op.get("x-landlord-no-4xx"),
                                "documents no 4xx and does not say why (x-landlord-no-4xx)")
                problem_json = [
                    c for c, r in op["responses"].items()
                    if "application/problem+json" in (resolve(self.spec, r).get("content") or {})
                ]
                if path.startswith("/api/v1/"):
                    self.assertTrue(problem_json, "no application/problem+json response")
                for c in codes:
                    # /readyz answers its 503 in its own JSON shape (docs/api.md)
                    if c.startswith("4") or (c.startswith("5") and path != "/readyz"):
                        self.assertIn("application/problem+json",
                                      resolve(self.spec, op["responses"][c]).get("content", {}),
                                      "error %s is not problem+json" % c)
                # path parameters are declared
                params = [resolve(self.spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
                for name in re.findall(r"\{([^}]+)\}", path):
                    self.assertIn(name, [p["name"] for p in params if p["in"] == "path"])
                if method in ("POST", "PUT", "PATCH"):
                    # Chart uploads are the archive itself; every other body is JSON.
                    want = "application/gzip" if path == "/api/v1/releases" else "application/json"
                    self.assertIn(want, op["requestBody"]["content"])

    def test_query_parameters(self):
        ops = {(m, p): (op, item) for m, p, op, item in operations(self.spec)}

        def names(key):
            op, item = ops[key]
            return {(resolve(self.spec, p)["in"], resolve(self.spec, p)["name"])
                    for p in item.get("parameters", []) + op.get("parameters", [])}

        self.assertTrue({("query", "tier"), ("query", "state"), ("query", "limit"), ("query", "cursor"),
                         ("header", "X-Request-Id")} <= names(("GET", "/api/v1/tenants")))
        self.assertIn(("query", "wait"), names(("POST", "/api/v1/tenants")))
        self.assertIn(("query", "wait"), names(("DELETE", "/api/v1/tenants/{id}")))

    def test_every_ref_resolves(self):
        def walk(node, where):
            if isinstance(node, dict):
                if "$ref" in node:
                    try:
                        resolve(self.spec, node)
                    except (KeyError, AssertionError) as e:
                        self.fail("%s: bad $ref %r (%s)" % (where, node["$ref"], e))
                for k, v in node.items():
                    walk(v, where + "/" + str(k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, "%s/%d" % (where, i))

        walk(self.spec, "#")


class RouteTable(unittest.TestCase):
    def test_routes_equal_spec(self):
        p = run_landlord(["routes"])
        self.assertEqual(p.returncode, 0, p.stderr)
        routes = json.loads(p.stdout)
        self.assertIsInstance(routes, list)
        for r in routes:
            self.assertEqual(set(r) >= {"method", "path", "scope"}, True, r)
        got = {(r["method"].upper(), r["path"]): r["scope"] for r in routes}
        self.assertEqual(len(got), len(routes), "duplicate routes in the table")
        spec = load_spec()
        want = {(m, p): op["x-landlord-scope"] for m, p, op, _ in operations(spec)}
        self.assertEqual(set(got), set(want),
                         "only in routes: %r; only in spec: %r" % (set(got) - set(want), set(want) - set(got)))
        for key in want:
            self.assertEqual(got[key], want[key], "scope of %s %s" % key)


class ResponsesValidate(SharedServerTestCase):
    """Real answers of the server validate against the schema the spec
    gives for their status and content type."""

    @classmethod
    def setUpClass(cls):
        cls.spec = load_spec()
        super().setUpClass()

    def check(self, method, template, resp):
        ops = {(m, p): op for m, p, op, _ in operations(self.spec)}
        op = ops[(method, template)]
        responses = op["responses"]
        key = str(resp.status) if str(resp.status) in responses else "default"
        self.assertIn(key, responses, "%s %s answered %d, undocumented" % (method, template, resp.status))
        r = resolve(self.spec, responses[key])
        content = r.get("content", {})
        if resp.status == 204:
            self.assertEqual(resp.body, b"", "204 with a body")
            self.assertEqual(content, {}, "204 documents no content")
            return
        self.assertIn(resp.content_type, content,
                      "%s %s %d: content type %r not documented" % (method, template, resp.status,
                                                                     resp.content_type))
        schema = content[resp.content_type].get("schema")
        if resp.content_type.endswith("json"):
            self.assertIsNotNone(resp.json, resp)
            try:
                validate(self.spec, schema, resp.json)
            except SchemaError as e:
                self.fail("%s %s %d does not validate: %s\n%r" % (method, template, resp.status, e, resp.json))
        for name in (r.get("headers") or {}):
            if name in ("X-Request-Id", "Location"):
                self.assertIsNotNone(resp.header(name), "%s %s %d lacks %s" % (method, template,
                                                                            resp.status, name))

    def test_responses(self):
        s = self.s
        c = self.check
        c("GET", "/", s.get("/"))
        c("GET", "/healthz", s.get("/healthz"))
        c("GET", "/readyz", s.get("/readyz"))
        c("GET", "/openapi.yaml", s.get("/openapi.yaml"))
        r = onboard(s, "schema", "premium", values={"a": {"b": 1}})
        c("POST", "/api/v1/tenants", r)
        self.assertEqual(r.status, 201)
        op_id = r.json["operation"]
        c("POST", "/api/v1/tenants", onboard(s, "schema", "premium"))  # 409
        c("POST", "/api/v1/tenants", onboard(s, "Bad", "premium"))  # 422
        c("POST", "/api/v1/tenants", s.request("POST", "/api/v1/tenants", body=b"{", headers={
            "Content-Type": "application/json"}))  # 400
        c("POST", "/api/v1/tenants", s.request("POST", "/api/v1/tenants", body=b"{}"))  # 415
        c("GET", "/api/v1/tenants", s.get("/api/v1/tenants"))
        c("GET", "/api/v1/tenants", s.get("/api/v1/tenants?limit=1&tier=premium"))
        c("GET", "/api/v1/tenants", s.get("/api/v1/tenants?limit=0"))  # 422
        c("GET", "/api/v1/tenants/{id}", s.get("/api/v1/tenants/schema"))
        c("GET", "/api/v1/tenants/{id}", s.get("/api/v1/tenants/none"))  # 404
        c("GET", "/api/v1/tiers", s.get("/api/v1/tiers"))
        c("GET", "/api/v1/tiers/{name}", s.get("/api/v1/tiers/basic"))
        c("GET", "/api/v1/tiers/{name}", s.get("/api/v1/tiers/none"))  # 404
        c("GET", "/api/v1/operations/{id}", s.get("/api/v1/operations/%d" % op_id))
        c("GET", "/api/v1/operations/{id}", s.get("/api/v1/operations/999999"))  # 404
        c("DELETE", "/api/v1/tenants/{id}", s.delete("/api/v1/tenants/schema"))
        c("DELETE", "/api/v1/tenants/{id}", s.delete("/api/v1/tenants/schema"))  # again
        c("DELETE", "/api/v1/tenants/{id}", s.delete("/api/v1/tenants/none"))  # 404
        c("GET", "/api/v1/tenants/{id}", s.get("/api/v1/tenants/schema"))  # offboarded, with commits
        c("GET", "/api/v1/tenants/{id}/history", s.get("/api/v1/tenants/schema/history"))
        c("GET", "/api/v1/tenants/{id}/history", s.get("/api/v1/tenants/none/history"))  # 404
        c("GET", "/api/v1/tenants", s.get("/api/v1/tenants", token=None))  # 401
        c("GET", "/api/v1/tenants", s.get("/api/v1/tenants", token=s.token("reader", "webhooks:write")))  # 403
        tmpl = s.get("/api/v1/tiers/basic").json["template"]
        c("PUT", "/api/v1/tiers/{name}", s.request("PUT", "/api/v1/tiers/schema-tier",
                                                    json_body={"template": tmpl, "description": "d"}))
        c("PUT", "/api/v1/tiers/{name}", s.request("PUT", "/api/v1/tiers/schema-tier",
                                                    json_body={"template": tmpl}))  # 200
        c("PUT", "/api/v1/tiers/{name}", s.request("PUT", "/api/v1/tiers/schema-tier",
                                                    json_body={"template": tmpl},
                                                    headers={"If-Match": '"stale"'}))  # 412
        c("PUT", "/api/v1/tiers/{name}", s.request("PUT", "/api/v1/tiers/schema-tier",
                                                    json_body={"template": "x: 1"}))  # 422
        c("DELETE", "/api/v1/tiers/{name}", s.delete("/api/v1/tiers/schema-tier"))  # 204
        c("DELETE", "/api/v1/tiers/{name}", s.delete("/api/v1/tiers/schema-tier"))  # 404
        hook = s.post_json("/api/v1/webhooks", {"url": "http://93.184.215.14/hook"})  # public: 201
        c("POST", "/api/v1/webhooks", hook)
        c("POST", "/api/v1/webhooks", s.post_json("/api/v1/webhooks", {"url": "http://169.254.169.254/"}))  # 422
        c("POST", "/api/v1/webhooks", s.post_json("/api/v1/webhooks", {"url": "http://no-such.invalid/"}))  # 422
        c("DELETE", "/api/v1/webhooks/{id}", s.delete("/api/v1/webhooks/%d" % hook.json["id"]))
        c("GET", "/api/v1/audit", s.get("/api/v1/audit?limit=5"))
        c("GET", "/api/v1/audit", s.get("/api/v1/audit?since=yesterday"))  # 422
        c("GET", "/metrics", s.get("/metrics", token=None))
        # Rollouts without a cluster: the list, refusals, unknown ids.
        c("GET", "/api/v1/rollouts", s.get("/api/v1/rollouts"))
        c("GET", "/api/v1/rollouts", s.get("/api/v1/rollouts?limit=0"))  # 422
        c("POST", "/api/v1/rollouts", s.post_json("/api/v1/rollouts", {"version": "9.9.9", "tiers": ["basic"]}))
        c("POST", "/api/v1/rollouts", s.request("POST", "/api/v1/rollouts", body=b"{", headers={
            "Content-Type": "application/json"}))  # 400
        c("GET", "/api/v1/rollouts/{id}", s.get("/api/v1/rollouts/1"))  # 404
        for action in ("pause", "resume", "abort", "rollback"):
            c("POST", "/api/v1/rollouts/{id}/" + action, s.post_json("/api/v1/rollouts/1/" + action, {}))  # 404


if __name__ == "__main__":
    unittest.main()

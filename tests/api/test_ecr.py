"""Releases pushed to Amazon ECR (issue 5, registry auth): landlord against
the stand-ins of tests/support/awsstandin.py, which verify every SigV4
signature with their own implementation and answer ECR's JSON, in front of
a real registry (Debian's docker-registry) so that charts really land.

Covers: credentials from the environment (long-term, and with a session
token, which must be signed); IRSA (web identity token file exchanged with
the STS stand-in, read again when it rotates and the credentials are due);
EKS Pod Identity (the agent stand-in checks the token file's content);
CreateRepository when the push finds the repository missing (ECR answers
NAME_UNKNOWN), then the push goes through, and not again afterwards; the
authorization token cached, fetched again once it nears expiresAt, and on
ECR's 403 for an expired one; a signature the stand-in rejects, an
AccessDeniedException and missing credentials, each a clear 502 with
nothing recorded or pushed; no secret in landlord's logs (debug level).
"""

import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from awsstandin import AwsKeys, EcrStandIn, PodIdentityStandIn, StsStandIn  # noqa: E402
from harness import LandlordTestCase, make_temp_dir  # noqa: E402
from ociregistry import Registry, make_chart_tgz  # noqa: E402

NAME = "helm-tenant-chart"
REPO = "charts/" + NAME
GZIP = {"Content-Type": "application/gzip"}
AKID = "AKIDLANDLORDTEST0001"
SECRET = "landlord/test+secret/KEY0123456789abcdefghij"
ROLE = "arn:aws:iam::123456789012:role/landlord-ecr-push"
# Every AWS_* variable landlord reads, blank unless a test sets it (so the
# environment the tests run in cannot leak in).
AWS_VARS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE"]


def write_file(text):
    path = os.path.join(make_temp_dir("landlord-aws-"), "token")
    with open(path, "w") as f:
        f.write(text)
    return path


class Ecr(LandlordTestCase):
    def setUp(self):
        self.backend = Registry(auth="none", relative_urls=True).start()
        self.addCleanup(self.backend.cleanup)
        self.addCleanup(self.backend.stop)
        self.keys = AwsKeys()
        self.secrets = [SECRET]

    def ecr(self, **kw):
        ecr = EcrStandIn(self.backend, self.keys, **kw).start()
        self.addCleanup(ecr.stop)
        return ecr

    def landlord(self, ecr, env):
        full = {k: "" for k in AWS_VARS}
        full.update(env)
        full["AWS_ENDPOINT_URL_ECR"] = ecr.url
        args = ["--oci-url", "oci://%s/charts" % ecr.host, "--oci-plain-http", "1", "--oci-auth", "ecr",
                "--aws-region", "us-east-1", "--log-level", "debug"]
        s = self.start_server(args=args, env=full)
        self.addCleanup(self.check_logs, s, ecr)
        return s

    def check_logs(self, s, ecr):
        logs = s.stdout_text() + s.stderr_text()
        for secret in self.secrets + self.keys.issued + ecr.passwords + ecr.tokens:
            self.assertNotIn(secret, logs, "a credential reached landlord's logs")

    def upload(self, s, version, **kw):
        return s.request("POST", "/api/v1/releases", body=make_chart_tgz(NAME, version, **kw), headers=GZIP)

    def assertPushed(self, ecr, rel):
        self.assertEqual(self.backend.manifest_digest(REPO, rel["tag"]), rel["digest"])
        self.assertEqual(rel["location"], "%s/%s:%s" % (ecr.host, REPO, rel["tag"]))

    def assertNothingPushed(self, s):
        self.assertEqual(s.rows("releases"), [])
        self.assertEqual(self.backend.catalog(), [])

    # -- credential sources -----------------------------------------------------------------

    def test_environment_credentials_create_the_repository_once(self):
        self.keys.add(AKID, SECRET)
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET})
        rel = self.assertJson(self.upload(s, "1.0.0"), 201)
        self.assertPushed(ecr, rel)
        oci = self.assertJson(s.get("/readyz"), 200)["checks"]["oci"]
        self.assertEqual((oci["status"], oci["auth"], oci["credentials"]), ("ok", "ecr", "environment"))
        calls = ecr.calls
        self.assertEqual([(c["action"], c["status"], c["akid"]) for c in calls],
                         [("GetAuthorizationToken", 200, AKID), ("CreateRepository", 200, AKID)])
        self.assertEqual(calls[0]["signed_headers"], ["content-type", "host", "x-amz-date", "x-amz-target"])
        self.assertEqual(ecr.repository_request(REPO),
                         {"repositoryName": REPO, "imageTagMutability": "IMMUTABLE",
                          "encryptionConfiguration": {"encryptionType": "AES256"}})
        # The push met ECR's NAME_UNKNOWN, created the repository, went on.
        uploads = [r for r in ecr.requests if r[:2] == ("POST", "/v2/%s/blobs/uploads/" % REPO)]
        self.assertEqual([r[2] for r in uploads], [404, 202, 202])
        # The registry was asked with ECR's token as Basic credentials, as is.
        self.assertEqual(base64.b64decode(ecr.tokens[0]).decode().split(":")[0], "AWS")
        # A second upload: the token is cached, the repository exists.
        rel2 = self.assertJson(self.upload(s, "1.0.1"), 201)
        self.assertPushed(ecr, rel2)
        self.assertEqual(len(ecr.calls), 2)
        # Deleting goes through the registry API with the same token.
        self.assertEqual(s.delete("/api/v1/releases/1.0.1").status, 204)
        self.assertIsNone(self.backend.manifest_digest(REPO, "1.0.1"))

    def test_session_token_is_signed(self):
        token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQtest" + "x" * 40
        self.secrets.append(token)
        self.keys.add(AKID, SECRET, token=token)
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
                                "AWS_SESSION_TOKEN": token})
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.0"), 201))
        self.assertIn("x-amz-security-token", ecr.calls[0]["signed_headers"])

    def test_irsa_web_identity(self):
        jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bGFuZGxvcmQifQ.sig-one"
        self.secrets.append(jwt)
        token_file = write_file(jwt + "\n")
        sts = StsStandIn(self.keys, ROLE, token_file, lifetime=4).start()
        self.addCleanup(sts.stop)
        ecr = self.ecr(token_ttl=4)
        s = self.landlord(ecr, {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
                                "AWS_ROLE_SESSION_NAME": "landlord-test", "AWS_ENDPOINT_URL_STS": sts.url})
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.0"), 201))
        self.assertEqual([(c["status"], c["role"], c["session"], c["accept"]) for c in sts.calls],
                         [(200, ROLE, "landlord-test", "application/json")])
        self.assertEqual(ecr.calls[0]["akid"], sts.calls[0]["akid"], "ECR was signed with STS's keys")
        self.assertIn("x-amz-security-token", ecr.calls[0]["signed_headers"])
        # kubelet rotates the token; the credentials come due (half their 4 s
        # lifetime): the next upload reads the new token and asks STS again.
        jwt2 = jwt.replace("sig-one", "sig-two")
        self.secrets.append(jwt2)
        with open(token_file, "w") as f:
            f.write(jwt2)
        time.sleep(2.2)
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.1"), 201))
        self.assertEqual([c["status"] for c in sts.calls], [200, 200])
        self.assertEqual(ecr.calls[-1]["akid"], sts.calls[1]["akid"])

    def test_irsa_token_refused(self):
        token_file = write_file("eyJ.not-the-token.sig")
        sts = StsStandIn(self.keys, ROLE, write_file("eyJ.the-token.sig"), lifetime=3600).start()
        self.addCleanup(sts.stop)
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_ROLE_ARN": ROLE, "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
                                "AWS_ENDPOINT_URL_STS": sts.url})
        p = self.assertProblem(self.upload(s, "1.0.0"), 502, "upstream-failure")
        self.assertIn("AssumeRoleWithWebIdentity", p["detail"])
        self.assertIn("InvalidIdentityToken", p["detail"])
        self.assertNotIn("not-the-token", json.dumps(p))
        self.assertEqual(ecr.calls, [])
        self.assertNothingPushed(s)

    def test_pod_identity(self):
        pod_token = "eks-pod-identity-token-" + "z" * 32
        self.secrets.append(pod_token)
        token_file = write_file(pod_token)
        agent = PodIdentityStandIn(self.keys, token_file).start()
        self.addCleanup(agent.stop)
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.credentials_url,
                                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_file})
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.0"), 201))
        self.assertEqual(self.assertJson(s.get("/readyz"), 200)["checks"]["oci"]["credentials"], "pod-identity")
        self.assertEqual([c["status"] for c in agent.calls], [200])
        self.assertEqual(ecr.calls[0]["akid"], agent.calls[0]["akid"])
        self.assertIn("x-amz-security-token", ecr.calls[0]["signed_headers"])

    # -- tokens -------------------------------------------------------------------------------

    def test_authorization_token_refreshed_before_expiry(self):
        self.keys.add(AKID, SECRET)
        ecr = self.ecr(token_ttl=4)
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET})
        self.assertJson(self.upload(s, "1.0.0"), 201)
        self.assertEqual(ecr.actions().count("GetAuthorizationToken"), 1)
        time.sleep(2.2)  # past half of the 4 s lifetime
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.1"), 201))
        self.assertEqual(ecr.actions().count("GetAuthorizationToken"), 2)
        self.assertEqual(len(set(ecr.tokens)), 2)

    def test_expired_token_is_fetched_again(self):
        # The token dies before the expiresAt ECR announced (ECR then answers 403 DENIED).
        self.keys.add(AKID, SECRET)
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET})
        self.assertJson(self.upload(s, "1.0.0"), 201)
        ecr.expire_tokens()
        self.assertPushed(ecr, self.assertJson(self.upload(s, "1.0.1"), 201))
        self.assertEqual(ecr.actions().count("GetAuthorizationToken"), 2)
        self.assertIn(403, [r[2] for r in ecr.requests])

    # -- refusals -------------------------------------------------------------------------------

    def test_rejected_signature(self):
        self.keys.add(AKID, "the-secret-aws-knows")
        ecr = self.ecr()
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET})
        p = self.assertProblem(self.upload(s, "1.0.0"), 502, "upstream-failure")
        self.assertIn("GetAuthorizationToken", p["detail"])
        self.assertIn("403 InvalidSignatureException", p["detail"])
        self.assertIn("credentials", p.get("hint", ""))
        self.assertEqual([(c["action"], c["status"]) for c in ecr.calls],
                         [("GetAuthorizationToken", 403)])
        self.assertNothingPushed(s)
        self.assertEqual(s.get("/api/v1/releases/1.0.0").status, 404)

    def test_access_denied_on_create_repository(self):
        self.keys.add(AKID, SECRET)
        ecr = self.ecr()
        ecr.fail["CreateRepository"] = (400, "AccessDeniedException",
                                        "User: landlord is not authorized to perform: ecr:CreateRepository")
        s = self.landlord(ecr, {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET})
        p = self.assertProblem(self.upload(s, "1.0.0"), 502, "upstream-failure")
        self.assertIn("CreateRepository", p["detail"])
        self.assertIn("AccessDeniedException", p["detail"])
        self.assertIn("ecr:CreateRepository", p.get("hint", ""))
        self.assertNothingPushed(s)
        self.assertEqual(ecr.repositories, set())

    def test_no_credentials(self):
        ecr = self.ecr()
        s = self.landlord(ecr, {})
        p = self.assertProblem(self.upload(s, "1.0.0"), 502, "upstream-failure")
        self.assertIn("no credentials", p["detail"])
        self.assertIn("AWS_ACCESS_KEY_ID", p.get("hint", ""))
        self.assertEqual(ecr.calls, [])
        self.assertNothingPushed(s)


if __name__ == "__main__":
    unittest.main()

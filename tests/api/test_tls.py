"""HTTPS with a certificate and key (made by the test CA of gitserver.py),
and plain HTTP refused on a non-loopback address unless explicitly
allowed."""

import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from gitserver import _make_certs  # noqa: E402
from harness import LandlordTestCase, clean_env, landlord_bin, make_temp_dir, onboard, run_landlord  # noqa: E402


class Tls(LandlordTestCase):
    def test_https_serves_with_the_certificate(self):
        ca, cert, key = _make_certs()
        s = self.start_server(args=["--tls-cert-file", cert, "--tls-key-file", key], ca_file=ca)
        self.assertEqual(s.scheme, "https")
        self.assertEqual(s.get("/healthz", token=None).status, 200)
        self.assertJson(onboard(s, "secure", "basic"), 201)
        self.assertProblem(s.get("/api/v1/tenants", token=None), 401, "unauthorized")
        # The certificate is checked by the client: without the CA, refused.
        with self.assertRaises(ssl.SSLError):
            ctx = ssl.create_default_context()
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    pass
        # Plain HTTP to the TLS port gets no HTTP answer.
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = raw.recv(100)
            except OSError:
                data = b""
            self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        self.assertEqual(s.stop(), 0)

    def test_key_that_does_not_fit_the_certificate(self):
        ca, cert, key = _make_certs()
        d = make_temp_dir()
        other = os.path.join(d, "other.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", other], check=True, capture_output=True)
        p = run_landlord(["serve", "--data", os.path.join(d, "var"), "--listen", "127.0.0.1:0",
                          "--tls-cert-file", cert, "--tls-key-file", other])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does not belong to the certificate", p.stderr)
        p = run_landlord(["serve", "--data", os.path.join(d, "var"), "--listen", "127.0.0.1:0",
                          "--tls-cert-file", cert])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("tls-key-file", p.stderr)


class PlainHttp(LandlordTestCase):
    def test_non_loopback_needs_tls_or_explicit_consent(self):
        d = make_temp_dir()
        p = run_landlord(["serve", "--data", os.path.join(d, "var"), "--listen", "0.0.0.0:0"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("refusing to serve plain HTTP on 0.0.0.0:0", p.stderr)
        self.assertIn("tls-cert-file", p.stderr)
        proc = subprocess.Popen([landlord_bin(), "serve", "--data", os.path.join(d, "var"), "--listen",
                                 "0.0.0.0:0", "--allow-insecure-http", "1"], env=clean_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            line = proc.stdout.readline().decode()
            self.assertTrue(line.startswith("landlord: serving http://0.0.0.0:"), line)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("serving plain HTTP on a non-loopback address", err.decode())


if __name__ == "__main__":
    unittest.main()

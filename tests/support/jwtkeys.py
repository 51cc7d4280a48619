"""Keys and tokens for the identity tests: RSA and EC P-256 key pairs made
with the openssl CLI, RS256 / ES256 tokens signed with them, and their JWKs.

Python 3 standard library + the openssl CLI (Debian's openssl).

    k = KeyPair.rsa(tmpdir)            # or KeyPair.ec(tmpdir)
    k.public_pem                       # path of the PEM public key
    k.sign(header, claims)             # a JWT (alg from the header)
    k.jwk(kid)                         # {"kty": ..., "kid": kid, ...}
"""

import base64
import json
import os
import subprocess

from harness import b64url, jwt_signing_input


def _openssl(*args, input=None):
    p = subprocess.run(["openssl"] + list(args), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout


def _der_to_raw(der, size=32):
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as JOSE r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(size, b"\0")
        i += 2 + n
    return out


class KeyPair:
    def __init__(self, kind, private_pem, public_pem):
        self.kind = kind
        self.private_pem = private_pem
        self.public_pem = public_pem

    @classmethod
    def rsa(cls, d, name="rsa", bits=2048):
        priv, pub = os.path.join(d, name + ".key"), os.path.join(d, name + ".pub")
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits, "-out", priv)
        _openssl("pkey", "-in", priv, "-pubout", "-out", pub)
        return cls("RSA", priv, pub)

    @classmethod
    def ec(cls, d, name="ec"):
        priv, pub = os.path.join(d, name + ".key"), os.path.join(d, name + ".pub")
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv)
        _openssl("pkey", "-in", priv, "-pubout", "-out", pub)
        return cls("EC", priv, pub)

    def public_text(self):
        with open(self.public_pem, "rb") as f:
            return f.read()

    def sign(self, header, claims):
        si = jwt_signing_input(header, claims)
        der = _openssl("dgst", "-sha256", "-sign", self.private_pem, input=si.encode())
        sig = _der_to_raw(der) if self.kind == "EC" else der
        return si + "." + b64url(sig)

    def jwk(self, kid, alg=None, use="sig"):
        if self.kind == "RSA":
            mod = _openssl("rsa", "-pubin", "-in", self.public_pem, "-noout", "-modulus").decode()
            n = bytes.fromhex(mod.strip().split("=", 1)[1])
            k = {"kty": "RSA", "n": b64url(n), "e": b64url((65537).to_bytes(3, "big"))}
        else:
            der = _openssl("pkey", "-pubin", "-in", self.public_pem, "-outform", "DER")
            point = der[-65:]
            assert point[0] == 4
            k = {"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:])}
        k["kid"] = kid
        if alg:
            k["alg"] = alg
        if use:
            k["use"] = use
        return k


def write_jwks(path, keys):
    with open(path, "w") as f:
        json.dump({"keys": keys}, f)
    return path


def decode_claims(token):
    """The claims of a JWT, unverified (for looking at minted tokens)."""
    seg = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))

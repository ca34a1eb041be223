"""Building blocks for forged tokens, shared by the unit and HTTP attack tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


KEY_ENCODINGS = (
    "pem-spki",
    "pem-spki-no-final-newline",
    "pem-spki-crlf",
    "pem-body-only",
    "der-spki",
    "x962-uncompressed",
    "x962-compressed",
    "openssh",
    "jwk-json-compact",
    "jwk-json-spaced",
    "jwk-json-sorted",
    "jwk-json-compact-sorted",
    "jwk-thumbprint-input",
    "x-and-y-raw",
    "x-raw",
    "x-base64url",
    "y-base64url",
    "x-and-y-base64url",
    "kid",
    "empty",
)


def public_key_encodings(
    public: ec.EllipticCurvePublicKey, jwk: Mapping[str, Any]
) -> dict[str, bytes]:
    """Every form of a public key an HS256 verifier might be tricked into using as its secret."""
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    pem = public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo)
    der = public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo)
    x = base64.urlsafe_b64decode(jwk["x"] + "==")
    y = base64.urlsafe_b64decode(jwk["y"] + "==")
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    encodings = {
        "pem-spki": pem,
        "pem-spki-no-final-newline": pem.rstrip(b"\n"),
        "pem-spki-crlf": pem.replace(b"\n", b"\r\n"),
        "pem-body-only": b"".join(pem.splitlines()[1:-1]),
        "der-spki": der,
        "x962-uncompressed": public.public_bytes(enc.X962, fmt.UncompressedPoint),
        "x962-compressed": public.public_bytes(enc.X962, fmt.CompressedPoint),
        "openssh": public.public_bytes(enc.OpenSSH, fmt.OpenSSH),
        "jwk-json-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwk-json-spaced": json.dumps(jwk).encode(),
        "jwk-json-sorted": json.dumps(jwk, sort_keys=True).encode(),
        "jwk-json-compact-sorted": json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
        "jwk-thumbprint-input": json.dumps(
            required, separators=(",", ":"), sort_keys=True
        ).encode(),
        "x-and-y-raw": x + y,
        "x-raw": x,
        "x-base64url": jwk["x"].encode(),
        "y-base64url": jwk["y"].encode(),
        "x-and-y-base64url": (jwk["x"] + jwk["y"]).encode(),
        "kid": str(jwk.get("kid", "")).encode(),
        "empty": b"",
    }
    assert tuple(encodings) == KEY_ENCODINGS
    return encodings


_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def hmac_forgery(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    """The classic algorithm confusion: a JWS "signed" with HMAC keyed by ``secret``
    (the hash follows the header's `alg`, case-insensitively)."""
    digest = _HMAC_HASHES[str(header["alg"]).upper()]
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"

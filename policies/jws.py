"""The only module that imports python-jose.

python-jose 3.5 is unmaintained and lenient: it accepts a token without `aud`
even when given `audience=`, treats a missing `exp` as fine, tries every key of
a JWKS ignoring `kid`, never checks `typ`, and with an unpinned algorithm list
verifies an HS256 token whose HMAC secret is the PEM/DER of a public key.

So this module uses jose for exactly two primitives -- producing a compact JWS
signature and checking one -- and wraps them in checks of our own:

* algorithms: asymmetric only (`ASYMMETRIC_ALGORITHMS`), pinned to the one the
  header names, and only after the header is checked against that list;
* keys: one JWK object, chosen by the caller by `kid`; its `kty`/`crv` must fit
  the algorithm, and a key that declares `alg` or `use` must agree;
* claims are *not* validated here -- `policies.tokens` does that on the
  verified payload, requiring every claim it relies on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from jose import jwk as _jose_jwk
from jose import jws as _jose_jws
from jose.exceptions import JOSEError

# RFC 7518 §3.1 minus every symmetric ("HS*") and "none" algorithm.
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
ASYMMETRIC_ALGORITHMS = frozenset(_EC_CURVES) | _RSA_ALGORITHMS
_MAX_COMPACT_LENGTH = 16 * 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class JWSInvalid(ValueError):
    """The JWS is malformed, uses a refused algorithm or key, or does not verify."""


def split_compact(token: str) -> tuple[dict[str, Any], bytes]:
    """Decode a compact JWS's protected header and payload *without* verifying.

    For routing only (which issuer, which `kid`); nothing read here is trusted
    until `verify_compact` succeeds.
    """
    if not isinstance(token, str) or len(token) > _MAX_COMPACT_LENGTH:
        raise JWSInvalid("token is not a compact JWS of acceptable size")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise JWSInvalid("token is not a compact JWS (three base64url segments)")
    header = _json_segment(parts[0], "header")
    if not isinstance(header, dict):
        raise JWSInvalid("JWS header is not a JSON object")
    # The signature too: python-jose decodes it leniently (skipping foreign
    # characters, ignoring unused bits), so one signature has many spellings.
    b64url_decode(parts[2], "signature")
    return header, b64url_decode(parts[1], "payload")


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload a compact JWS *claims*, or None if it has no JSON object.
    Routing only (whose keys, which path); trust nothing here until verified."""
    try:
        _, payload = split_compact(token)
        claims = json.loads(payload)
    except (JWSInvalid, ValueError, RecursionError):  # JSONDecodeError, bad UTF-8
        return None
    return claims if isinstance(claims, dict) else None


def check_algorithm(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise JWSInvalid(f"algorithm {alg!r} is not accepted (asymmetric algorithms only)")
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so we must reject.
        raise JWSInvalid("JWS 'crit' extensions are not supported")
    return alg


def check_key_fits(jwk: Mapping[str, Any], alg: str) -> None:
    """Refuse a key whose type, curve, declared alg or use does not match ``alg``."""
    kty = jwk.get("kty")
    if alg in _EC_CURVES:
        if kty != "EC" or jwk.get("crv") != _EC_CURVES[alg]:
            raise JWSInvalid(f"key does not fit {alg} (needs EC {_EC_CURVES[alg]})")
    elif alg in _RSA_ALGORITHMS:
        if kty != "RSA":
            raise JWSInvalid(f"key does not fit {alg} (needs RSA)")
    else:  # pragma: no cover - check_algorithm ran first
        raise JWSInvalid(f"algorithm {alg!r} is not accepted")
    if "d" in jwk or "p" in jwk:
        raise JWSInvalid("a private key was supplied where a public key belongs")
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        raise JWSInvalid(f"key is declared for {declared}, token uses {alg}")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise JWSInvalid(f"key is declared for use {use!r}, not signatures")


def verify_compact(token: str, public_jwk: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Verify ``token`` with exactly ``public_jwk``; return (header, payload bytes)."""
    header, _ = split_compact(token)
    alg = check_algorithm(header)
    check_key_fits(public_jwk, alg)
    try:
        key = _jose_jwk.construct(dict(public_jwk), algorithm=alg)
        payload = _jose_jws.verify(token, key, algorithms=[alg])
    except (JOSEError, ValueError, TypeError) as exc:
        raise JWSInvalid(f"signature verification failed: {exc}") from None
    return header, payload


def sign_compact(payload: bytes, private_key_pem: str, alg: str, headers: Mapping[str, Any]) -> str:
    """Sign ``payload`` as a compact JWS. ``headers`` must carry `kid` (and `typ`)."""
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise JWSInvalid(f"refusing to sign with {alg!r}")
    if "kid" not in headers:
        raise JWSInvalid("every signature we produce names its key (kid)")
    try:
        token = _jose_jws.sign(payload, private_key_pem, headers=dict(headers), algorithm=alg)
    except JOSEError as exc:  # pragma: no cover - our own keys
        raise JWSInvalid(f"signing failed: {exc}") from None
    return str(token)


def b64url_decode(segment: str, what: str) -> bytes:
    """Strict RFC 7515 §2 base64url: the alphabet only, no padding, and canonical
    (unused trailing bits zero), so each byte string has exactly one spelling."""
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise JWSInvalid(f"JWS {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JWSInvalid(f"JWS {what} is not base64url") from None
    if b64url_encode(raw) != segment:
        raise JWSInvalid(f"JWS {what} is not canonical base64url")
    return raw


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(segment: str, what: str) -> Any:
    raw = b64url_decode(segment, what)  # raises JWSInvalid (a ValueError) itself
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits
        raise JWSInvalid(f"JWS {what} is not JSON") from None

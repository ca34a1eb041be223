"""How a registered agent proves who it is at the token endpoint.

Two ways, both standard:

* a client secret (RFC 6749 §2.3.1): shown once when issued, only its SHA-256
  is stored -- the secret is 256 random bits, so a slow hash adds nothing;
* a signed assertion with the agent's own key (RFC 7523 §2.2 `private_key_jwt`,
  also accepted as the RFC 8693 `actor_token`): `iss` = `sub` = the client id,
  `aud` = the token endpoint (or the gateway's issuer), short-lived, with a
  `jti` the caller checks against a replay cache.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from policies.claims import NotNumeric, OutOfRange, numeric_date
from policies.jws import (
    ASYMMETRIC_ALGORITHMS,
    JWSInvalid,
    b64url_decode,
    check_algorithm,
    check_key_fits,
    split_compact,
    unverified_claims,
    verify_compact,
)

SECRET_PREFIX = "sbs_"  # noqa: S105 - a prefix that makes leaked secrets greppable
MAX_ASSERTION_LIFETIME_SECONDS = 600


class ClientAuthError(ValueError):
    """The client could not be authenticated; ``str()`` is safe to return."""


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


def parse_basic_credentials(header: str) -> tuple[str, str]:
    """`Authorization: Basic ...` -> (client_id, secret), form-decoded (RFC 6749 §2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise ClientAuthError("client authentication must use the Basic scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input
        raise ClientAuthError("Basic credentials are not base64 of UTF-8") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise ClientAuthError("Basic credentials must be client_id:client_secret")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if not _vschar(client_id) or not _vschar(secret):
        # RFC 6749 Appendix A.1/A.2: *VSCHAR (%x20-7E).
        raise ClientAuthError("Basic credentials hold characters a client id cannot")
    return client_id, secret


def _vschar(value: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E for c in value)


def validate_public_jwks(jwks: Any) -> dict[str, Any]:
    """A JWKS an agent registers: public signing keys only, each with a `kid`."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ClientAuthError("jwks must be a JSON Web Key Set: {'keys': [...]}")
    keys = jwks["keys"]
    if not 1 <= len(keys) <= 10:
        raise ClientAuthError("jwks must hold between 1 and 10 keys")
    kids = set()
    for key in keys:
        if not isinstance(key, Mapping) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise ClientAuthError("every key in jwks needs a kid")
        if key.get("kty") not in ("EC", "RSA"):
            raise ClientAuthError(f"key {key['kid']}: only EC and RSA keys are accepted")
        if any(private in key for private in ("d", "p", "q", "dp", "dq", "qi")):
            raise ClientAuthError(
                f"key {key['kid']}: that is a private key; register the public half"
            )
        if key["kid"] in kids:
            raise ClientAuthError(f"key {key['kid']} appears twice")
        _check_usable(key)
        kids.add(key["kid"])
    return {"keys": [dict(k) for k in keys]}


_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
MIN_RSA_BITS = 2048


def _check_usable(key: Mapping[str, Any]) -> None:
    """Refuse, at registration, a key that could never verify or is too weak."""
    kid = key["kid"]
    alg = key.get("alg")
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise ClientAuthError(f"key {kid}: alg {alg!r} is not an accepted signature algorithm")
    try:
        if key["kty"] == "EC":
            curve = _CURVES.get(key.get("crv"))  # type: ignore[arg-type]
            if curve is None:
                raise ClientAuthError(f"key {kid}: crv must be P-256, P-384 or P-521")
            x, y = _int(key.get("x")), _int(key.get("y"))
            ec.EllipticCurvePublicNumbers(x, y, curve).public_key()  # checks the point
        else:
            n, e = _int(key.get("n")), _int(key.get("e"))
            if n.bit_length() < MIN_RSA_BITS:
                raise ClientAuthError(f"key {kid}: RSA keys need at least {MIN_RSA_BITS} bits")
            rsa.RSAPublicNumbers(e, n).public_key()
    except (ValueError, TypeError, JWSInvalid) as exc:
        if isinstance(exc, ClientAuthError):
            raise
        raise ClientAuthError(f"key {kid}: not a valid public key") from None


def _int(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("missing key parameter")
    return int.from_bytes(b64url_decode(value, "key parameter"), "big")


@dataclass(frozen=True)
class Assertion:
    client_id: str
    token_id: str
    expires_at: float


def verify_client_assertion(
    assertion: str,
    jwks: Mapping[str, Any],
    *,
    client_id: str,
    audiences: Iterable[str],
    now: float,
    leeway_seconds: int = 30,
) -> Assertion:
    """Check an agent's self-signed assertion (RFC 7523 §3); the caller checks `jti` replay."""
    try:
        header, _ = split_compact(assertion)
        alg = check_algorithm(header)
        kid = header.get("kid")
        key = next(
            (k for k in jwks.get("keys", []) if isinstance(k, Mapping) and k.get("kid") == kid),
            None,
        )
        if not isinstance(kid, str) or key is None:
            raise ClientAuthError("assertion kid does not name one of the client's keys")
        check_key_fits(key, alg)
        _, payload = verify_compact(assertion, key)
    except JWSInvalid as exc:
        raise ClientAuthError(f"client assertion: {exc}") from None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise ClientAuthError("client assertion payload is not JSON") from None
    if not isinstance(claims, dict):
        raise ClientAuthError("client assertion payload is not a JSON object")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise ClientAuthError("client assertion iss and sub must both be the client id")
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not set(audiences) & {a for a in auds if isinstance(a, str)}:
        raise ClientAuthError("client assertion aud is not this token endpoint")
    exp = _number(claims.get("exp"), "exp")
    iat = _number(claims.get("iat", now), "iat")
    if exp <= now - leeway_seconds:
        raise ClientAuthError("client assertion has expired")
    if iat > now + leeway_seconds:
        raise ClientAuthError("client assertion was issued in the future")
    if exp - now > MAX_ASSERTION_LIFETIME_SECONDS:
        raise ClientAuthError(
            f"client assertion lives too long (at most {MAX_ASSERTION_LIFETIME_SECONDS} s)"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise ClientAuthError("client assertion needs a jti (8-256 characters)")
    # Remember the jti for as long as this assertion would be accepted again.
    return Assertion(client_id=client_id, token_id=jti, expires_at=exp + leeway_seconds)


def unverified_issuer(assertion: str) -> str | None:
    """The `iss` an assertion claims: only to find whose keys to verify it with."""
    claims = unverified_claims(assertion)
    iss = claims.get("iss") if claims is not None else None
    return iss if isinstance(iss, str) and _vschar(iss) else None


def _number(value: Any, name: str) -> float:
    try:
        return numeric_date(value)
    except NotNumeric:
        raise ClientAuthError(f"client assertion has no numeric {name}") from None
    except OutOfRange:
        raise ClientAuthError(f"client assertion {name} is out of range") from None

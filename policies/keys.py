"""The gateway's signing keys: generation, public JWK form, and sealing at rest.

Keys are ES256 (P-256). The `kid` is the RFC 7638 JWK thumbprint, so it is
derived from the key itself and two replicas can never disagree about it.
Private keys are sealed with a key derived from the operator's secret
(HKDF-SHA256 -> Fernet: AES-128-CBC + HMAC-SHA256) before they are stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIGNING_ALGORITHM = "ES256"
_SEAL_PREFIX = "fernet:"


class KeySealError(ValueError):
    """A sealed key cannot be opened (wrong or missing secret)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key_pem: str = field(repr=False)
    public_jwk: dict[str, Any]
    alg: str = SIGNING_ALGORITHM

    @classmethod
    def generate(cls) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return cls.from_pem(pem)

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        private = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
            private.curve, ec.SECP256R1
        ):
            raise ValueError("gateway signing keys are P-256 EC keys")
        jwk = ec_public_jwk(private.public_key())
        kid = jwk_thumbprint(jwk)
        return cls(
            kid=kid,
            private_key_pem=pem,
            public_jwk={**jwk, "kid": kid, "alg": SIGNING_ALGORITHM, "use": "sig"},
        )


def ec_public_jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(size, "big")),
        "y": _b64(numbers.y.to_bytes(size, "big")),
    }


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())


def seal_private_key(pem: str, secret: str | None) -> str:
    """Encrypt ``pem`` for storage; with no secret (``--dev`` only) store it as is."""
    if not secret:
        return pem
    return _SEAL_PREFIX + _fernet(secret).encrypt(pem.encode("ascii")).decode("ascii")


def open_private_key(stored: str, secret: str | None) -> str:
    if not stored.startswith(_SEAL_PREFIX):
        if secret:
            # A key written by a --dev run without a secret must not quietly
            # become the production key, readable by anyone with the database.
            raise KeySealError(
                "the stored signing key is not encrypted but SWITCHBOARD_SECRET_KEY is set: "
                "use a fresh database for production"
            )
        return stored
    if not secret:
        raise KeySealError("the signing key is encrypted; set SWITCHBOARD_SECRET_KEY")
    try:
        return _fernet(secret).decrypt(stored[len(_SEAL_PREFIX) :].encode("ascii")).decode("ascii")
    except InvalidToken:
        raise KeySealError(
            "the signing key cannot be decrypted with this SWITCHBOARD_SECRET_KEY"
        ) from None


def seal_secret(value: str, secret: str | None, purpose: str) -> str:
    """Encrypt an upstream credential (a header value, a client secret) for storage.

    The key is derived for ``purpose`` alone (HKDF ``info``), so a value sealed
    for one use cannot be opened as another, nor as a signing key. With no
    secret (``--dev`` only) the value is stored as is, like the signing key.
    """
    if not secret:
        return value
    sealed = _fernet(secret, _purpose_info(purpose)).encrypt(value.encode("utf-8"))
    return _SEAL_PREFIX + sealed.decode("ascii")


def open_secret(stored: str, secret: str | None, purpose: str) -> str:
    if not stored.startswith(_SEAL_PREFIX):
        if secret:
            raise KeySealError(
                f"a stored {purpose} is not encrypted but SWITCHBOARD_SECRET_KEY is set: "
                "register it again"
            )
        return stored
    if not secret:
        raise KeySealError(f"a stored {purpose} is encrypted; set SWITCHBOARD_SECRET_KEY")
    try:
        opened = _fernet(secret, _purpose_info(purpose)).decrypt(
            stored[len(_SEAL_PREFIX) :].encode("ascii")
        )
    except InvalidToken:
        raise KeySealError(
            f"a stored {purpose} cannot be decrypted with this SWITCHBOARD_SECRET_KEY"
        ) from None
    return opened.decode("utf-8")


def derive_key(secret: str, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` alone (HKDF-SHA256, ``info`` names it), for
    secrets every replica must share without storing them (e.g. the key that
    seals MCP ``requestState``)."""
    info = f"switchboard {purpose} key v1".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret.encode("utf-8")
    )


def _purpose_info(purpose: str) -> bytes:
    return f"switchboard {purpose} seal v1".encode()


def _fernet(secret: str, info: bytes = b"switchboard signing-key seal v1") -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

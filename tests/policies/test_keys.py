"""policies.keys: kid = RFC 7638 thumbprint, and sealing private keys at rest."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from policies.keys import (
    SIGNING_ALGORITHM,
    KeySealError,
    SigningKey,
    jwk_thumbprint,
    open_private_key,
    seal_private_key,
)

# RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1 and its SHA-256 thumbprint.
RFC7638_RSA_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
        "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_RSA_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# RFC 7517 Appendix A.1's EC public key.
RFC7517_EC_X = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"
RFC7517_EC_Y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ec_thumbprint_by_hand(x: str, y: str) -> str:
    """RFC 7638 §3.2 written out: required members, lexicographic order, no whitespace."""
    canonical = '{"crv":"P-256","kty":"EC","x":"' + x + '","y":"' + y + '"}'
    return b64(hashlib.sha256(canonical.encode("ascii")).digest())


def pem_of(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


# --------------------------------------------------------------------------- thumbprints


def test_rfc7638_rsa_test_vector() -> None:
    assert jwk_thumbprint(RFC7638_RSA_JWK) == RFC7638_RSA_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    bare = {k: RFC7638_RSA_JWK[k] for k in ("kty", "n", "e")}
    assert jwk_thumbprint(bare) == RFC7638_RSA_THUMBPRINT


def test_ec_thumbprint_matches_rfc7638_construction() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": RFC7517_EC_X, "y": RFC7517_EC_Y, "use": "enc"}
    assert jwk_thumbprint(jwk) == ec_thumbprint_by_hand(RFC7517_EC_X, RFC7517_EC_Y)


def test_thumbprint_of_unsupported_kty_raises() -> None:
    with pytest.raises(KeyError):
        jwk_thumbprint({"kty": "oct", "k": "c2VjcmV0"})


def test_generated_kid_is_the_rfc7638_thumbprint(key: SigningKey) -> None:
    jwk = key.public_jwk
    assert key.kid == ec_thumbprint_by_hand(jwk["x"], jwk["y"])
    assert key.kid == jwk_thumbprint(jwk)
    assert jwk["kid"] == key.kid


def test_kid_is_deterministic_from_the_pem(key: SigningKey) -> None:
    again = SigningKey.from_pem(key.private_key_pem)
    assert again.kid == key.kid
    assert again.public_jwk == key.public_jwk
    assert again == key


def test_distinct_keys_have_distinct_kids(key: SigningKey) -> None:
    assert SigningKey.generate().kid != key.kid


def test_public_jwk_shape(key: SigningKey) -> None:
    jwk = key.public_jwk
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key.alg == SIGNING_ALGORITHM == "ES256"


def test_public_jwk_matches_the_private_key(key: SigningKey) -> None:
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    numbers = private.public_key().public_numbers()
    assert key.public_jwk["x"] == b64(numbers.x.to_bytes(32, "big"))
    assert key.public_jwk["y"] == b64(numbers.y.to_bytes(32, "big"))


def test_short_coordinates_are_left_padded_to_32_bytes() -> None:
    # Find (deterministically) a scalar whose public x has a leading zero byte.
    for scalar in range(1, 10_000):
        private = ec.derive_private_key(scalar, ec.SECP256R1())
        if private.public_key().public_numbers().x.bit_length() <= 248:
            break
    else:  # pragma: no cover
        pytest.fail("no short coordinate found")
    key = SigningKey.from_pem(pem_of(private))
    x = base64.urlsafe_b64decode(key.public_jwk["x"] + "=")
    assert len(x) == 32
    assert x[0] == 0


@pytest.mark.parametrize(
    "private",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
        pytest.param(
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa"
        ),
    ],
)
def test_from_pem_refuses_non_p256_keys(private: object) -> None:
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_pem(pem_of(private()))  # type: ignore[operator]


# --------------------------------------------------------------------------- secrecy


def test_repr_does_not_contain_the_private_key(key: SigningKey) -> None:
    for text in (repr(key), str(key), f"{key}"):
        assert key.kid in text
        assert "PRIVATE KEY" not in text
        assert key.private_key_pem not in text
        body = key.private_key_pem.splitlines()[1]
        assert body not in text


def test_public_jwk_has_no_private_members(key: SigningKey) -> None:
    assert "d" not in key.public_jwk


# --------------------------------------------------------------------------- sealing


def test_seal_open_round_trip(key: SigningKey) -> None:
    sealed = seal_private_key(key.private_key_pem, "operator secret")

    assert sealed.startswith("fernet:")
    assert key.private_key_pem not in sealed
    assert "PRIVATE KEY" not in sealed
    assert open_private_key(sealed, "operator secret") == key.private_key_pem


def test_sealing_is_randomised(key: SigningKey) -> None:
    first = seal_private_key(key.private_key_pem, "s")
    second = seal_private_key(key.private_key_pem, "s")
    assert first != second
    assert open_private_key(first, "s") == open_private_key(second, "s")


@pytest.mark.parametrize("wrong", ["operator secret ", "Operator secret", "x"])
def test_open_with_wrong_secret_raises(key: SigningKey, wrong: str) -> None:
    sealed = seal_private_key(key.private_key_pem, "operator secret")
    with pytest.raises(KeySealError, match="cannot be decrypted"):
        open_private_key(sealed, wrong)


@pytest.mark.parametrize("missing", [None, ""])
def test_open_sealed_without_secret_raises(key: SigningKey, missing: str | None) -> None:
    sealed = seal_private_key(key.private_key_pem, "operator secret")
    with pytest.raises(KeySealError, match="encrypted"):
        open_private_key(sealed, missing)


def test_open_corrupted_seal_raises(key: SigningKey) -> None:
    sealed = seal_private_key(key.private_key_pem, "operator secret")
    corrupted = sealed[:-10] + ("A" if sealed[-10] != "A" else "B") + sealed[-9:]
    with pytest.raises(KeySealError):
        open_private_key(corrupted, "operator secret")


@pytest.mark.parametrize("missing", [None, ""])
def test_no_secret_stores_the_pem_as_is(key: SigningKey, missing: str | None) -> None:
    stored = seal_private_key(key.private_key_pem, missing)
    assert stored == key.private_key_pem
    assert open_private_key(stored, missing) == key.private_key_pem
    assert SigningKey.from_pem(open_private_key(stored, None)).kid == key.kid


def test_an_unsealed_key_is_refused_once_a_secret_is_configured() -> None:
    key = SigningKey.generate()
    stored = seal_private_key(key.private_key_pem, None)
    with pytest.raises(KeySealError, match="not encrypted"):
        open_private_key(stored, "operator secret")

"""policies.jws: the checks wrapped around python-jose, and its confinement."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from policies.jws import (
    ASYMMETRIC_ALGORITHMS,
    JWSInvalid,
    b64url_decode,
    b64url_encode,
    check_algorithm,
    check_key_fits,
    sign_compact,
    split_compact,
    verify_compact,
)
from policies.keys import SigningKey

REPO = Path(__file__).resolve().parents[2]
PUBLIC_EC = {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB"}
PUBLIC_RSA = {"kty": "RSA", "n": "AAAA", "e": "AQAB"}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _sign(key: SigningKey, payload: bytes = b'{"sub":"alice"}', **headers: Any) -> str:
    return sign_compact(
        payload, key.private_key_pem, "ES256", {"kid": key.kid, "typ": "at+jwt", **headers}
    )


# --------------------------------------------------------------------------- check_algorithm


@pytest.mark.parametrize("alg", sorted(ASYMMETRIC_ALGORITHMS))
def test_check_algorithm_accepts_asymmetric(alg: str) -> None:
    assert check_algorithm({"alg": alg}) == alg


def test_accepted_algorithms_are_exactly_es_and_rs() -> None:
    assert (
        frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512"}) == ASYMMETRIC_ALGORITHMS
    )


@pytest.mark.parametrize(
    "alg",
    [
        "none",
        "None",
        "NONE",
        "",
        "HS256",
        "HS384",
        "HS512",
        "hs256",
        "es256",
        "ES256 ",
        "PS256",
        "EdDSA",
        "ES256K",
        "RSA-OAEP",
        "dir",
        None,
        256,
        ["ES256"],
    ],
)
def test_check_algorithm_refuses(alg: Any) -> None:
    with pytest.raises(JWSInvalid, match="not accepted"):
        check_algorithm({"alg": alg})


def test_check_algorithm_refuses_missing_alg() -> None:
    with pytest.raises(JWSInvalid, match="not accepted"):
        check_algorithm({"kid": "k"})


@pytest.mark.parametrize("crit", [["exp"], [], "b64"])
def test_check_algorithm_refuses_crit(crit: Any) -> None:
    with pytest.raises(JWSInvalid, match="crit"):
        check_algorithm({"alg": "ES256", "crit": crit})


# --------------------------------------------------------------------------- check_key_fits


@pytest.mark.parametrize(
    ("jwk", "alg"),
    [
        (PUBLIC_EC, "ES256"),
        ({**PUBLIC_EC, "crv": "P-384"}, "ES384"),
        ({**PUBLIC_EC, "crv": "P-521"}, "ES512"),
        ({**PUBLIC_EC, "alg": "ES256", "use": "sig", "kid": "k"}, "ES256"),
        (PUBLIC_RSA, "RS256"),
        ({**PUBLIC_RSA, "alg": "RS512", "use": "sig"}, "RS512"),
    ],
)
def test_check_key_fits_accepts_matching_public_key(jwk: dict[str, Any], alg: str) -> None:
    check_key_fits(jwk, alg)  # does not raise


def test_check_key_fits_accepts_gateway_public_jwk(key: SigningKey) -> None:
    check_key_fits(key.public_jwk, key.alg)


@pytest.mark.parametrize(
    ("jwk", "alg", "reason"),
    [
        pytest.param({**PUBLIC_EC, "d": "secret"}, "ES256", "private", id="ec-private-d"),
        pytest.param({**PUBLIC_RSA, "d": "secret"}, "RS256", "private", id="rsa-private-d"),
        pytest.param({**PUBLIC_RSA, "p": "secret"}, "RS256", "private", id="rsa-private-p"),
        pytest.param({**PUBLIC_EC, "crv": "P-384"}, "ES256", "P-256", id="curve-p384-for-es256"),
        pytest.param(PUBLIC_EC, "ES384", "P-384", id="curve-p256-for-es384"),
        pytest.param({**PUBLIC_EC, "crv": "secp256k1"}, "ES256", "P-256", id="curve-secp256k1"),
        pytest.param(
            {k: v for k, v in PUBLIC_EC.items() if k != "crv"}, "ES256", "P-256", id="curve-missing"
        ),
        pytest.param(PUBLIC_RSA, "ES256", "needs EC", id="rsa-key-for-es256"),
        pytest.param(PUBLIC_EC, "RS256", "needs RSA", id="ec-key-for-rs256"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0"}, "ES256", "needs EC", id="oct-for-es256"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0"}, "RS256", "needs RSA", id="oct-for-rs256"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": "AA"}, "ES256", "needs EC", id="okp"),
        pytest.param({"kty": "ec", "crv": "P-256"}, "ES256", "needs EC", id="kty-lowercase"),
        pytest.param({**PUBLIC_EC, "alg": "ES384"}, "ES256", "declared", id="declared-es384"),
        pytest.param({**PUBLIC_EC, "alg": "HS256"}, "ES256", "declared", id="declared-hs256"),
        pytest.param({**PUBLIC_RSA, "alg": "RS256"}, "RS384", "declared", id="declared-rs256"),
        pytest.param({**PUBLIC_EC, "use": "enc"}, "ES256", "use", id="use-enc"),
        pytest.param({**PUBLIC_EC, "use": "SIG"}, "ES256", "use", id="use-SIG"),
    ],
)
def test_check_key_fits_refuses(jwk: dict[str, Any], alg: str, reason: str) -> None:
    with pytest.raises(JWSInvalid, match=reason):
        check_key_fits(jwk, alg)


# --------------------------------------------------------------------------- sign / verify


def test_sign_verify_round_trip(key: SigningKey) -> None:
    payload = json.dumps({"sub": "alice", "n": 1}).encode()
    token = _sign(key, payload)

    header, verified = verify_compact(token, key.public_jwk)

    assert verified == payload
    assert header == {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}


def test_split_compact_reads_header_and_payload_without_verifying(key: SigningKey) -> None:
    header, payload = split_compact(_sign(key, b"[1,2]"))
    assert header["kid"] == key.kid
    assert payload == b"[1,2]"


def test_verify_with_a_different_key_fails(key: SigningKey) -> None:
    other = SigningKey.generate()
    with pytest.raises(JWSInvalid, match="signature verification failed"):
        verify_compact(_sign(key), other.public_jwk)


def test_verify_tampered_payload_fails(key: SigningKey) -> None:
    header, _, signature = _sign(key, b'{"scope":"read"}').split(".")
    forged = ".".join([header, b64url_encode(b'{"scope":"admin"}'), signature])
    with pytest.raises(JWSInvalid, match="signature verification failed"):
        verify_compact(forged, key.public_jwk)


def test_verify_refuses_private_jwk_even_if_it_would_verify(key: SigningKey) -> None:
    with pytest.raises(JWSInvalid, match="private"):
        verify_compact(_sign(key), {**key.public_jwk, "d": "AAAA"})


def test_verify_refuses_key_declared_for_encryption(key: SigningKey) -> None:
    with pytest.raises(JWSInvalid, match="use"):
        verify_compact(_sign(key), {**key.public_jwk, "use": "enc"})


def test_verify_refuses_malformed_jwk(key: SigningKey) -> None:
    broken = {**key.public_jwk, "x": "not-a-coordinate"}
    with pytest.raises(JWSInvalid):
        verify_compact(_sign(key), broken)


def test_verify_refuses_alg_none_before_touching_the_key(key: SigningKey) -> None:
    header = b64url_encode(b'{"alg":"none","kid":"k"}')
    with pytest.raises(JWSInvalid, match="not accepted"):
        verify_compact(f"{header}.{b64url_encode(b'{}')}.", key.public_jwk)


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "PS256", "es256"])
def test_sign_compact_refuses_non_asymmetric_algorithms(key: SigningKey, alg: str) -> None:
    with pytest.raises(JWSInvalid, match="refusing to sign"):
        sign_compact(b"{}", key.private_key_pem, alg, {"kid": key.kid})


def test_sign_compact_requires_kid(key: SigningKey) -> None:
    with pytest.raises(JWSInvalid, match="kid"):
        sign_compact(b"{}", key.private_key_pem, "ES256", {"typ": "at+jwt"})


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c.d", ".b.c", "a..c", 42, None, "a." * 9000 + "b"],
)
def test_split_compact_refuses_malformed(token: Any) -> None:
    with pytest.raises(JWSInvalid):
        split_compact(token)


def test_b64url_round_trip() -> None:
    for data in [b"", b"\x00", b"\xff\xfe", b"any carnal pleas", bytes(range(256))]:
        encoded = b64url_encode(data)
        assert "=" not in encoded
        assert "+" not in encoded
        assert "/" not in encoded
        assert b64url_decode(encoded, "test") == data


# --------------------------------------------------------------------------- confinement

JOSE_IMPORT = re.compile(r"^\s*(?:from\s+jose(?:\.|\s)|import\s+jose\b)", re.MULTILINE)


def test_python_jose_is_imported_only_in_policies_jws() -> None:
    sources = [
        path
        for package in ("gateway", "adapters", "registry", "policies")
        if (REPO / package).is_dir()
        for path in (REPO / package).rglob("*.py")
    ]
    importers = {
        path.relative_to(REPO).as_posix()
        for path in sources
        if JOSE_IMPORT.search(path.read_text(encoding="utf-8"))
    }

    assert REPO / "policies" / "jws.py" in sources
    assert importers == {"policies/jws.py"}


@pytest.mark.parametrize(
    ("line", "matches"),
    [
        ("from jose import jwk", True),
        ("    from jose.exceptions import JOSEError", True),
        ("import jose", True),
        ("import jose.jws", True),
        ("from josey import x", False),
        ("import joseph", False),
        ("# we do not use jose here", False),
    ],
)
def test_jose_import_pattern(line: str, matches: bool) -> None:
    assert bool(JOSE_IMPORT.search(line)) is matches

"""policies.client_auth: client secrets, Basic credentials, agent JWKS, and the
RFC 7523 client assertion -- where every attack must end in ClientAuthError.

Good assertions are signed with PyJWT's JWS layer (so the payload bytes are
ours to choose); forged ones are put together by hand with hmac. Nothing here
signs with python-jose, which the code under test verifies with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import client_auth
from policies.client_auth import (
    MAX_ASSERTION_LIFETIME_SECONDS,
    SECRET_PREFIX,
    Assertion,
    ClientAuthError,
    hash_secret,
    new_client_secret,
    parse_basic_credentials,
    secret_matches,
    unverified_issuer,
    validate_public_jwks,
    verify_client_assertion,
)
from policies.keys import ec_public_jwk
from tests.support.forgery import b64, b64json, hmac_forgery, public_key_encodings

NOW = 1_750_000_000.0
LEEWAY = 30
CLIENT = "sales-agent"
TOKEN_ENDPOINT = "https://switchboard.example/oauth/token"
GATEWAY_ISSUER = "https://switchboard.example"
AUDIENCES = frozenset({TOKEN_ENDPOINT, GATEWAY_ISSUER})
EC_KID = "ec-1"
RSA_KID = "rsa-1"
P384_KID = "ec384-1"
DROP = object()  # good_claims(jti=DROP) removes the claim


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


def good_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_ENDPOINT,
        "iat": NOW,
        "exp": NOW + 60,
        "jti": uuid.uuid4().hex,
    }
    for name, value in changes.items():
        if value is DROP:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def rsa_jwk(public: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    numbers = public.public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
    }


@dataclass(frozen=True)
class Agent:
    """An agent's keys: the P-256 key it signs with, plus an RSA and a P-384 key
    in its registered JWKS, and an attacker's P-256 key that is in no JWKS."""

    ec_key: ec.EllipticCurvePrivateKey
    rsa_key: rsa.RSAPrivateKey
    p384_key: ec.EllipticCurvePrivateKey
    attacker_key: ec.EllipticCurvePrivateKey

    @property
    def ec_jwk(self) -> dict[str, str]:
        return {**ec_public_jwk(self.ec_key.public_key()), "kid": EC_KID}

    @property
    def jwks(self) -> dict[str, Any]:
        numbers = self.p384_key.public_key().public_numbers()
        p384 = {
            "kty": "EC",
            "crv": "P-384",
            "kid": P384_KID,
            "x": b64(numbers.x.to_bytes(48, "big")),
            "y": b64(numbers.y.to_bytes(48, "big")),
        }
        return {"keys": [self.ec_jwk, rsa_jwk(self.rsa_key.public_key(), RSA_KID), p384]}

    def sign(
        self,
        payload: bytes | dict[str, Any],
        *,
        key: Any = None,
        alg: str = "ES256",
        kid: str | None = EC_KID,
        **header: Any,
    ) -> str:
        """A correctly signed compact JWS over exactly ``payload``."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {**header, **({"kid": kid} if kid is not None else {})}
        return jwt.api_jws.encode(body, key or self.ec_key, algorithm=alg, headers=headers)

    def sign_by_hand(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        """An ES256 signature over any header, even one PyJWT refuses to write."""
        signing_input = f"{b64json(header)}.{b64json(payload)}".encode()
        r, s = decode_dss_signature(self.ec_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{signing_input.decode()}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def public_encodings(self) -> dict[str, bytes]:
        """Every form of the *public* key an HMAC-confusion forger might use."""
        return public_key_encodings(self.ec_key.public_key(), self.ec_jwk)


@pytest.fixture(scope="module")
def agent() -> Agent:
    return Agent(
        ec_key=ec.generate_private_key(ec.SECP256R1()),
        rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        p384_key=ec.generate_private_key(ec.SECP384R1()),
        attacker_key=ec.generate_private_key(ec.SECP256R1()),
    )


def verify(
    token: Any, jwks: dict[str, Any], *, now: float = NOW, client_id: str = CLIENT
) -> Assertion:
    return verify_client_assertion(
        token, jwks, client_id=client_id, audiences=AUDIENCES, now=now, leeway_seconds=LEEWAY
    )


# --------------------------------------------------------------------------- secrets


def test_new_secret_has_prefix_and_256_bits() -> None:
    secret = new_client_secret()
    assert secret.startswith(SECRET_PREFIX)
    body = secret.removeprefix(SECRET_PREFIX)
    # token_urlsafe(32): 32 random bytes -> 43 base64url characters.
    assert len(body) == 43
    assert set(body) <= set(string.ascii_letters + string.digits + "-_")


def test_new_secrets_are_unique() -> None:
    assert len({new_client_secret() for _ in range(1000)}) == 1000


def test_hash_is_tagged_sha256_hex() -> None:
    secret = new_client_secret()
    assert hash_secret(secret) == "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
    assert hash_secret(secret) != hash_secret(new_client_secret())


def test_secret_matches_its_hash() -> None:
    secret = new_client_secret()
    assert secret_matches(secret, hash_secret(secret))


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "sha256:" + "0" * 64,
        "sha256:",
        # The bare hex without the tag is not what the store holds: no match.
        "bare-hex",
    ],
)
def test_secret_does_not_match_missing_or_other_hash(stored: str | None) -> None:
    secret = new_client_secret()
    if stored == "bare-hex":
        stored = hashlib.sha256(secret.encode()).hexdigest()
    assert secret_matches(secret, stored) is False


def test_wrong_secret_does_not_match() -> None:
    stored = hash_secret(new_client_secret())
    assert secret_matches(new_client_secret(), stored) is False
    assert secret_matches("", stored) is False


def test_secret_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The decision must come from hmac.compare_digest, not from `==`, which
    # leaks how long a matching prefix is through timing.
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(client_auth, "hmac", SimpleNamespace(compare_digest=spy))
    secret = new_client_secret()
    assert secret_matches(secret, hash_secret(secret))
    assert calls == [(hash_secret(secret).encode(), hash_secret(secret).encode())]


# --------------------------------------------------------------------------- Basic


def test_basic_credentials_parse() -> None:
    assert parse_basic_credentials(basic(b"sales-agent:s3cret")) == ("sales-agent", "s3cret")


def test_basic_scheme_is_case_insensitive() -> None:
    # RFC 7235 §2.1: auth-scheme is case-insensitive.
    value = basic(b"a:b").split(" ", 1)[1]
    assert parse_basic_credentials("basic " + value) == ("a", "b")
    assert parse_basic_credentials("BASIC " + value) == ("a", "b")


def test_basic_credentials_are_form_decoded() -> None:
    # RFC 6749 §2.3.1: id and secret are form-encoded before the colon join,
    # so a colon inside either arrives as %3A.
    assert parse_basic_credentials(basic(b"agent%3Aone:se%3Acret")) == ("agent:one", "se:cret")
    assert parse_basic_credentials(basic(b"a+b:c%2Bd")) == ("a b", "c+d")


def test_basic_secret_may_hold_a_raw_colon() -> None:
    # Only the first colon separates; a non-conforming client's raw colon stays in the secret.
    assert parse_basic_credentials(basic(b"agent:a:b")) == ("agent", "a:b")


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic",
        "Basic ",
        "Basic    ",
        "Bearer " + base64.b64encode(b"a:b").decode(),
        "Digest username=a",
        "Basicabc",
    ],
)
def test_basic_wrong_scheme_is_refused(header: str) -> None:
    with pytest.raises(ClientAuthError, match="Basic scheme"):
        parse_basic_credentials(header)


@pytest.mark.parametrize(
    "value",
    [
        "!!!!",
        "YWI6Yw",  # "ab:c" without its padding
        "YWI6Yw==x",
        "YW I6Yw==",
        base64.b64encode(b"\xff\xfe:secret").decode(),  # not UTF-8
    ],
)
def test_basic_bad_base64_is_refused(value: str) -> None:
    with pytest.raises(ClientAuthError, match="base64"):
        parse_basic_credentials("Basic " + value)


@pytest.mark.parametrize("raw", [b"sales-agent", b":secret", b":"])
def test_basic_without_id_or_colon_is_refused(raw: bytes) -> None:
    with pytest.raises(ClientAuthError, match="client_id:client_secret"):
        parse_basic_credentials(basic(raw))


# --------------------------------------------------------------------------- JWKS


def test_valid_jwks_is_accepted_as_a_copy(agent: Agent) -> None:
    jwks = agent.jwks
    validated = validate_public_jwks(jwks)
    assert validated == jwks
    validated["keys"][0]["kid"] = "changed"
    assert jwks["keys"][0]["kid"] == EC_KID  # the caller's dict is untouched


@pytest.mark.parametrize(
    "jwks",
    [
        None,
        "keys",
        [{"kty": "EC", "kid": "a"}],
        {},
        {"keys": None},
        {"keys": "abc"},
        {"keys": {"kty": "EC", "kid": "a"}},
    ],
)
def test_jwks_not_a_key_set_is_refused(jwks: Any) -> None:
    with pytest.raises(ClientAuthError, match="JSON Web Key Set"):
        validate_public_jwks(jwks)


def test_jwks_needs_one_to_ten_keys(agent: Agent) -> None:
    with pytest.raises(ClientAuthError, match="between 1 and 10"):
        validate_public_jwks({"keys": []})
    many = [{**agent.ec_jwk, "kid": f"k{i}"} for i in range(11)]
    with pytest.raises(ClientAuthError, match="between 1 and 10"):
        validate_public_jwks({"keys": many})
    assert len(validate_public_jwks({"keys": many[:10]})["keys"]) == 10


@pytest.mark.parametrize("kid", [DROP, "", None, 7, ["a"]])
def test_jwks_key_without_kid_is_refused(agent: Agent, kid: Any) -> None:
    key = dict(agent.ec_jwk)
    if kid is DROP:
        del key["kid"]
    else:
        key["kid"] = kid
    with pytest.raises(ClientAuthError, match="needs a kid"):
        validate_public_jwks({"keys": [key]})


def test_jwks_entry_not_an_object_is_refused() -> None:
    with pytest.raises(ClientAuthError, match="needs a kid"):
        validate_public_jwks({"keys": ["ec-1"]})


@pytest.mark.parametrize("kty", [DROP, "oct", "OKP", "ec", None])
def test_jwks_wrong_key_type_is_refused(agent: Agent, kty: Any) -> None:
    key = dict(agent.ec_jwk)
    if kty is DROP:
        del key["kty"]
    else:
        key["kty"] = kty
    with pytest.raises(ClientAuthError, match="only EC and RSA"):
        validate_public_jwks({"keys": [key]})


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi"])
def test_jwks_private_key_is_refused(agent: Agent, member: str) -> None:
    key = {**rsa_jwk(agent.rsa_key.public_key(), RSA_KID), member: "AQAB"}
    with pytest.raises(ClientAuthError, match="private key"):
        validate_public_jwks({"keys": [agent.ec_jwk, key]})


def test_jwks_real_private_ec_jwk_is_refused(agent: Agent) -> None:
    private = agent.ec_key.private_numbers().private_value.to_bytes(32, "big")
    with pytest.raises(ClientAuthError, match="private key"):
        validate_public_jwks({"keys": [{**agent.ec_jwk, "d": b64(private)}]})


def test_jwks_duplicate_kid_is_refused(agent: Agent) -> None:
    other = {**rsa_jwk(agent.rsa_key.public_key(), EC_KID)}
    with pytest.raises(ClientAuthError, match="twice"):
        validate_public_jwks({"keys": [agent.ec_jwk, other]})


# --------------------------------------------------------------------------- assertions: accepted


def test_hand_signed_assertion_is_accepted(agent: Agent) -> None:
    """Control for the hand-signed attacks: the helper itself makes valid tokens."""
    assert verify(agent.sign_by_hand({"alg": "ES256", "kid": EC_KID}, good_claims()), agent.jwks)


def test_good_assertion_is_accepted(agent: Agent) -> None:
    claims = good_claims()
    checked = verify(agent.sign(claims), agent.jwks)
    assert isinstance(checked, Assertion)
    assert (checked.client_id, checked.token_id) == (CLIENT, claims["jti"])
    # How long the caller must remember the jti: at least until exp.
    assert NOW + 60 <= checked.expires_at <= NOW + 60 + LEEWAY


def test_gateway_issuer_as_audience_and_aud_list_are_accepted(agent: Agent) -> None:
    # RFC 7523 §3: aud may be the token endpoint or the issuer, alone or in a list.
    assert verify(agent.sign(good_claims(aud=GATEWAY_ISSUER)), agent.jwks)
    assert verify(agent.sign(good_claims(aud=["https://x.example", TOKEN_ENDPOINT])), agent.jwks)


def test_rs256_assertion_with_rsa_key_is_accepted(agent: Agent) -> None:
    token = agent.sign(good_claims(), key=agent.rsa_key, alg="RS256", kid=RSA_KID)
    assert verify(token, agent.jwks).client_id == CLIENT


def test_es384_assertion_with_p384_key_is_accepted(agent: Agent) -> None:
    token = agent.sign(good_claims(), key=agent.p384_key, alg="ES384", kid=P384_KID)
    assert verify(token, agent.jwks).client_id == CLIENT


def test_missing_iat_is_accepted(agent: Agent) -> None:
    assert verify(agent.sign(good_claims(iat=DROP)), agent.jwks)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": NOW - LEEWAY + 1},  # expired, but within the clock-skew leeway
        {"iat": NOW + LEEWAY},  # issued "in the future", within the leeway
        {"exp": NOW + MAX_ASSERTION_LIFETIME_SECONDS},  # the longest allowed
        {"jti": "x" * 8},
        {"jti": "x" * 256},
    ],
)
def test_boundaries_are_accepted(agent: Agent, changes: dict[str, Any]) -> None:
    assert verify(agent.sign(good_claims(**changes)), agent.jwks)


def test_unverified_issuer_reads_iss_without_verifying(agent: Agent) -> None:
    assert unverified_issuer(agent.sign(good_claims(), key=agent.attacker_key)) == CLIENT
    assert unverified_issuer("garbage") is None
    assert unverified_issuer(agent.sign(b"[1]")) is None
    assert unverified_issuer(agent.sign({"iss": 5})) is None


# --------------------------------------------------------------------------- assertions: attacks

Attack = Callable[[Agent], Any]


def _forged_hmac(encoding: str) -> Attack:
    return lambda a: hmac_forgery(
        {"alg": "HS256", "kid": EC_KID, "typ": "JWT"},
        good_claims(),
        a.public_encodings()[encoding],
    )


def _unsigned(alg: str, signature: str = "") -> Attack:
    return lambda _: f"{b64json({'alg': alg, 'kid': EC_KID})}.{b64json(good_claims())}.{signature}"


def _swap_payload(a: Agent) -> str:
    """A good signature with the payload of another (unsigned) claim set."""
    header, _, signature = a.sign(good_claims()).split(".")
    return f"{header}.{b64json(good_claims(iss='inventory-agent'))}.{signature}"


def _truncated_signature(a: Agent) -> str:
    token = a.sign(good_claims())
    return token[:-10]


ATTACKS: dict[str, Attack] = {
    # Algorithms
    "alg-none": _unsigned("none"),
    "alg-None": _unsigned("None"),
    "alg-NONE": _unsigned("NONE"),
    "alg-none-with-signature": _unsigned("none", "c2ln"),
    "alg-missing": lambda a: a.sign(good_claims()).replace(
        a.sign(good_claims()).split(".")[0], b64json({"kid": EC_KID}), 1
    ),
    "hs256-public-pem": _forged_hmac("pem-spki"),
    "hs256-public-pem-stripped": _forged_hmac("pem-spki-no-final-newline"),
    "hs256-public-der": _forged_hmac("der-spki"),
    "hs256-public-jwk-json": _forged_hmac("jwk-json-spaced"),
    "hs256-public-jwk-json-compact": _forged_hmac("jwk-json-compact-sorted"),
    "crit-header": lambda a: a.sign_by_hand(
        {"alg": "ES256", "kid": EC_KID, "crit": ["exp"], "exp": 1}, good_claims()
    ),
    # Keys
    "unknown-kid": lambda a: a.sign(good_claims(), kid="ec-2"),
    "no-kid": lambda a: a.sign(good_claims(), kid=None),
    "kid-not-a-string": lambda a: a.sign_by_hand({"alg": "ES256", "kid": [EC_KID]}, good_claims()),
    "kid-null": lambda a: a.sign_by_hand({"alg": "ES256", "kid": None}, good_claims()),
    "attacker-key-under-our-kid": lambda a: a.sign(good_claims(), key=a.attacker_key),
    "es256-header-naming-rsa-key": lambda a: a.sign(good_claims(), kid=RSA_KID),
    "rs256-header-naming-ec-key": lambda a: a.sign(good_claims(), key=a.rsa_key, alg="RS256"),
    "es256-header-naming-p384-key": lambda a: a.sign(good_claims(), kid=P384_KID),
    "es384-header-naming-p256-key": lambda a: a.sign(good_claims(), key=a.p384_key, alg="ES384"),
    "swapped-payload": _swap_payload,
    "truncated-signature": _truncated_signature,
    "empty-signature": lambda a: a.sign(good_claims()).rsplit(".", 1)[0] + ".",
    # Issuer and subject
    "wrong-iss": lambda a: a.sign(good_claims(iss="inventory-agent")),
    "wrong-sub": lambda a: a.sign(good_claims(sub="inventory-agent")),
    "no-iss": lambda a: a.sign(good_claims(iss=DROP)),
    "no-sub": lambda a: a.sign(good_claims(sub=DROP)),
    "iss-in-a-list": lambda a: a.sign(good_claims(iss=[CLIENT])),
    # Audience
    "wrong-aud": lambda a: a.sign(good_claims(aud="https://evil.example/token")),
    "no-aud": lambda a: a.sign(good_claims(aud=DROP)),
    "aud-list-without-us": lambda a: a.sign(good_claims(aud=["https://evil.example"])),
    "aud-list-of-non-strings": lambda a: a.sign(good_claims(aud=[1, {"a": TOKEN_ENDPOINT}])),
    "aud-object": lambda a: a.sign(good_claims(aud={TOKEN_ENDPOINT: True})),
    "aud-empty-list": lambda a: a.sign(good_claims(aud=[])),
    # Time
    "expired": lambda a: a.sign(good_claims(iat=NOW - 300, exp=NOW - LEEWAY)),
    "long-expired": lambda a: a.sign(good_claims(iat=NOW - 9000, exp=NOW - 8000)),
    "iat-in-the-future": lambda a: a.sign(good_claims(iat=NOW + LEEWAY + 1, exp=NOW + 120)),
    "lifetime-too-long": lambda a: a.sign(
        good_claims(exp=NOW + MAX_ASSERTION_LIFETIME_SECONDS + 1)
    ),
    "lifetime-a-year": lambda a: a.sign(good_claims(exp=NOW + 365 * 86400)),
    "no-exp": lambda a: a.sign(good_claims(exp=DROP)),
    "exp-string": lambda a: a.sign(good_claims(exp=str(int(NOW + 60)))),
    "exp-true": lambda a: a.sign(good_claims(exp=True)),
    "exp-null": lambda a: a.sign(good_claims(exp=None)),
    "exp-list": lambda a: a.sign(good_claims(exp=[NOW + 60])),
    "exp-huge-int": lambda a: a.sign(good_claims(exp=10**400)),
    "exp-huge-negative-int": lambda a: a.sign(good_claims(exp=-(10**400))),
    "iat-huge-int": lambda a: a.sign(good_claims(iat=10**400)),
    "iat-string": lambda a: a.sign(good_claims(iat="now")),
    # Python's json reads these non-standard literals as inf / nan.
    "exp-1e400": lambda a: a.sign(
        json.dumps(good_claims(exp=0)).replace('"exp": 0', '"exp": 1e400').encode()
    ),
    "exp-Infinity": lambda a: a.sign(
        json.dumps(good_claims(exp=0)).replace('"exp": 0', '"exp": Infinity').encode()
    ),
    "exp-NaN": lambda a: a.sign(
        json.dumps(good_claims(exp=0)).replace('"exp": 0', '"exp": NaN').encode()
    ),
    "iat-NaN": lambda a: a.sign(
        json.dumps(good_claims(iat=0)).replace('"iat": 0', '"iat": NaN').encode()
    ),
    # Beyond Python's int-string limit (4300 digits) json.loads raises ValueError.
    "exp-5000-digits": lambda a: a.sign(
        json.dumps(good_claims(exp=0)).replace('"exp": 0', '"exp": ' + "9" * 5000).encode()
    ),
    # jti
    "no-jti": lambda a: a.sign(good_claims(jti=DROP)),
    "short-jti": lambda a: a.sign(good_claims(jti="1234567")),
    "empty-jti": lambda a: a.sign(good_claims(jti="")),
    "long-jti": lambda a: a.sign(good_claims(jti="x" * 257)),
    "numeric-jti": lambda a: a.sign(good_claims(jti=12345678901)),
    # Payload and shape
    "payload-not-json": lambda a: a.sign(b"not json"),
    "payload-not-utf8": lambda a: a.sign(b"\xff\xfe{}"),
    "payload-array": lambda a: a.sign(b"[1, 2]"),
    "payload-string": lambda a: a.sign(b'"sales-agent"'),
    "payload-empty": lambda a: a.sign(b""),
    "payload-nested-too-deeply": lambda a: a.sign(b"[" * 5000 + b"]" * 5000),
    "header-not-json": lambda a: "bm90IGpzb24." + a.sign(good_claims()).split(".", 1)[1],
    "header-array": lambda a: b64json(["ES256"]) + "." + a.sign(good_claims()).split(".", 1)[1],
    "two-segments": lambda a: ".".join(a.sign(good_claims()).split(".")[:2]),
    "four-segments": lambda a: a.sign(good_claims()) + ".e30",
    "empty-string": lambda _: "",
    "not-a-string": lambda _: None,
    "bytes": lambda a: a.sign(good_claims()).encode(),
    "non-ascii": lambda a: "é" + a.sign(good_claims()),
    "too-large": lambda a: a.sign(good_claims(pad="x" * 20_000)),
}


# Why each attack must fail: the check that has to catch it, not just any error.
REASONS: dict[str, str] = {
    "alg-NONE": "not accepted",
    "alg-None": "not accepted",
    "alg-missing": "not accepted",
    "alg-none": "not accepted",
    "alg-none-with-signature": "not accepted",
    "hs256-public-der": "not accepted",
    "hs256-public-jwk-json": "not accepted",
    "hs256-public-jwk-json-compact": "not accepted",
    "hs256-public-pem": "not accepted",
    "hs256-public-pem-stripped": "not accepted",
    "attacker-key-under-our-kid": "signature verification failed",
    "empty-signature": "signature verification failed",
    "swapped-payload": "signature verification failed",
    "truncated-signature": "signature verification failed",
    "aud-empty-list": "aud",
    "aud-list-of-non-strings": "aud",
    "aud-list-without-us": "aud",
    "aud-object": "aud",
    "no-aud": "aud",
    "wrong-aud": "aud",
    "bytes": "acceptable size",
    "not-a-string": "acceptable size",
    "too-large": "acceptable size",
    "crit-header": "crit",
    "empty-jti": "jti",
    "long-jti": "jti",
    "no-jti": "jti",
    "numeric-jti": "jti",
    "short-jti": "jti",
    "empty-string": "three base64url segments",
    "four-segments": "three base64url segments",
    "two-segments": "three base64url segments",
    "payload-empty": "three base64url segments",
    "es256-header-naming-p384-key": "does not fit",
    "es256-header-naming-rsa-key": "does not fit",
    "es384-header-naming-p256-key": "does not fit",
    "rs256-header-naming-ec-key": "does not fit",
    "exp-1e400": "out of range",
    "exp-Infinity": "out of range",
    "exp-NaN": "out of range",
    "exp-huge-int": "out of range",
    "exp-huge-negative-int": "out of range",
    "iat-NaN": "out of range",
    "iat-huge-int": "out of range",
    "exp-5000-digits": "payload is not JSON$",
    "payload-nested-too-deeply": "payload is not JSON$",
    "payload-not-json": "payload is not JSON$",
    "payload-not-utf8": "payload is not JSON$",
    "exp-list": "no numeric",
    "exp-null": "no numeric",
    "exp-string": "no numeric",
    "exp-true": "no numeric",
    "iat-string": "no numeric",
    "no-exp": "no numeric",
    "expired": "has expired",
    "long-expired": "has expired",
    "header-array": "header is not a JSON object",
    "header-not-json": "header is not JSON",
    "non-ascii": "header is not base64url",
    "iat-in-the-future": "in the future",
    "iss-in-a-list": "iss and sub",
    "no-iss": "iss and sub",
    "no-sub": "iss and sub",
    "wrong-iss": "iss and sub",
    "wrong-sub": "iss and sub",
    "kid-not-a-string": "kid does not name",
    "kid-null": "kid does not name",
    "no-kid": "kid does not name",
    "unknown-kid": "kid does not name",
    "lifetime-a-year": "lives too long",
    "lifetime-too-long": "lives too long",
    "payload-array": "not a JSON object",
    "payload-string": "not a JSON object",
}


def test_every_attack_has_a_reason() -> None:
    assert sorted(REASONS) == sorted(ATTACKS)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused_with_client_auth_error(agent: Agent, name: str) -> None:
    token = ATTACKS[name](agent)
    with pytest.raises(ClientAuthError, match=REASONS[name]) as caught:
        verify(token, agent.jwks)
    # Nothing else -- a TypeError or OverflowError would be a 500, not a 401.
    assert type(caught.value) is ClientAuthError


def test_client_id_must_match_the_asserted_issuer(agent: Agent) -> None:
    # An assertion that is good for one agent authenticates nobody else.
    with pytest.raises(ClientAuthError, match="iss and sub"):
        verify(agent.sign(good_claims()), agent.jwks, client_id="inventory-agent")


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": []},
        {"keys": ["ec-1"]},
    ],
)
def test_empty_or_odd_jwks_refuses(agent: Agent, jwks: dict[str, Any]) -> None:
    with pytest.raises(ClientAuthError, match="kid"):
        verify(agent.sign(good_claims()), jwks)


@pytest.mark.parametrize(
    "changes",
    [
        {"use": "enc"},
        {"alg": "RS256"},
        {"alg": "ES384"},
        {"crv": "P-384"},
        {"kty": "RSA"},
    ],
)
def test_key_declared_for_something_else_refuses(agent: Agent, changes: dict[str, str]) -> None:
    jwks = {"keys": [{**agent.ec_jwk, **changes}]}
    with pytest.raises(ClientAuthError):
        verify(agent.sign(good_claims()), jwks)


def test_private_key_in_stored_jwks_refuses(agent: Agent) -> None:
    # Defence in depth: a JWKS that somehow skipped validate_public_jwks.
    private = agent.ec_key.private_numbers().private_value.to_bytes(32, "big")
    jwks = {"keys": [{**agent.ec_jwk, "d": b64(private)}]}
    with pytest.raises(ClientAuthError, match="private key"):
        verify(agent.sign(good_claims()), jwks)


@pytest.mark.parametrize("junk", [{"x": None}, {"x": "AAAA"}, {"y": 5}, {"x": []}])
def test_garbage_key_material_refuses(agent: Agent, junk: dict[str, Any]) -> None:
    jwks = {"keys": [{**agent.ec_jwk, **junk}]}
    with pytest.raises(ClientAuthError):
        verify(agent.sign(good_claims()), jwks)


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
claim_values = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([CLIENT, "other"]) | json_values,
        "sub": st.sampled_from([CLIENT, "other"]) | json_values,
        "aud": st.sampled_from([TOKEN_ENDPOINT, [TOKEN_ENDPOINT]]) | json_values,
        "exp": st.floats(NOW - 100, NOW + 1000) | st.integers() | json_values,
        "iat": st.floats(NOW - 100, NOW + 100) | st.integers() | json_values,
        "jti": st.text(min_size=6, max_size=10) | json_values,
    },
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(claims=claim_values)
def test_any_signed_claims_give_assertion_or_client_auth_error(
    agent: Agent, claims: dict[str, Any]
) -> None:
    # A correctly signed token with arbitrary claims: the claim checks alone
    # must never raise anything but ClientAuthError.
    token = agent.sign(json.dumps(claims).encode())
    try:
        checked = verify(token, agent.jwks)
    except ClientAuthError:
        return
    assert checked.client_id == CLIENT


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "x"]), json_values),
    segment=st.integers(0, 2),
    junk=st.text(alphabet=string.ascii_letters + string.digits + "-_=.+/é\x00 ", max_size=40),
)
def test_any_mangled_token_gives_client_auth_error(
    agent: Agent, header: dict[str, Any], segment: int, junk: str
) -> None:
    parts = agent.sign(good_claims()).split(".")
    parts[0] = b64json(header)  # an arbitrary (unsigned) header...
    parts[segment] = junk or parts[segment]  # ...and one segment replaced with junk
    with pytest.raises(ClientAuthError):
        verify(".".join(parts), agent.jwks)


# --------------------------------------------------------------------------- known bug


def test_assertion_is_not_accepted_after_its_replay_horizon(agent: Agent) -> None:
    # gateway.delegation.token_exchange stores the jti in the replay cache until
    # checked.expires_at. For that to stop replays, the same assertion must
    # be refused from that instant on.
    token = agent.sign(good_claims(iat=NOW - 60, exp=NOW - 10))  # accepted: within leeway
    checked = verify(token, agent.jwks)
    with pytest.raises(ClientAuthError):
        verify(token, agent.jwks, now=checked.expires_at + 1)


# --- keys that could never verify, or are too weak, are refused at registration -----


def _rsa_jwk(bits: int) -> dict[str, Any]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": f"rsa-{bits}", "n": b64(numbers.n), "e": b64(numbers.e)}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({"kty": "EC", "kid": "k"}, "crv must be"),
        ({"kty": "EC", "kid": "k", "crv": "P-256"}, "not a valid public key"),
        ({"kty": "EC", "kid": "k", "crv": "secp256k1", "x": "AA", "y": "AA"}, "crv must be"),
        ({"kty": "EC", "kid": "k", "crv": "P-256", "x": "AQ", "y": "AQ"}, "not a valid"),
        ({"kty": "EC", "kid": "k", "crv": "P-256", "x": "!!", "y": "AQ"}, "not a valid"),
        ({"kty": "RSA", "kid": "k", "n": "AQAB"}, "not a valid public key"),
        ({"kty": "RSA", "kid": "k", "e": "AQAB", "n": "AQAB"}, "at least 2048 bits"),
    ],
)
def test_unusable_keys_are_refused(key: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientAuthError, match=message):
        validate_public_jwks({"keys": [key]})


def test_weak_rsa_and_symmetric_alg_refused_strong_keys_accepted() -> None:
    with pytest.raises(ClientAuthError, match="2048"):
        validate_public_jwks({"keys": [_rsa_jwk(1024)]})
    strong = _rsa_jwk(2048)
    assert validate_public_jwks({"keys": [strong]})["keys"][0]["kid"] == "rsa-2048"
    with pytest.raises(ClientAuthError, match="HS256"):
        validate_public_jwks({"keys": [{**strong, "alg": "HS256"}]})

"""TokenVerifier: one valid token passes; every known JWT attack fails closed.

Tokens with a valid signature but bad claims are made with PyJWT; tokens whose
header or shape is the attack are put together by hand (cryptography + hmac),
so nothing here depends on python-jose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from policies.keys import SigningKey
from policies.tokens import (
    DEV_CLIENT_ID,
    Principal,
    TokenInvalid,
    TokenVerifier,
    TrustedIssuer,
    mint_access_token,
    usable_until,
)
from tests.support.forgery import (
    KEY_ENCODINGS,
    b64,
    b64json,
    hmac_forgery,
    public_key_encodings,
)

NOW = 1_750_000_000
LEEWAY = 30
ISSUER = "https://switchboard.example"
OTHER_ISSUER = "https://idp.example"
AUDIENCE = "https://switchboard.example/agents"
RSA_KID = "rsa-1"
DROP = object()  # claims(sub=DROP) removes the claim


class MemoryKeys:
    """A KeySource backed by a dict."""

    def __init__(self, keys: Mapping[str, Mapping[str, Any]]) -> None:
        self._keys = dict(keys)

    async def get(self, kid: str) -> Mapping[str, Any] | None:
        return self._keys.get(kid)


def encodings_of(key: SigningKey) -> dict[str, bytes]:
    """Every way the gateway's *public* key could be fed to HMAC as the secret."""
    return public_key_encodings(ec_private(key).public_key(), key.public_jwk)


def with_changes(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; a value of DROP removes the member."""
    for name, value in changes.items():
        if value is DROP:
            base.pop(name)
        else:
            base[name] = value
    return base


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "scope": "agents:read tasks:write",
        "client_id": "cli-1",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 300,
        "jti": "jti-1",
    }
    return with_changes(base, changes)


def ec_private(key: SigningKey) -> ec.EllipticCurvePrivateKey:
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private


@dataclass(frozen=True)
class World:
    key: SigningKey  # the gateway's own key (ISSUER)
    other: SigningKey  # OTHER_ISSUER's EC key
    rogue: SigningKey  # trusted by nobody
    rsa_pem: str  # OTHER_ISSUER's RSA key, served under RSA_KID

    def header(self, **changes: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        return with_changes(base, changes)

    def pyjwt(
        self,
        body: dict[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        typ: str = "at+jwt",
    ) -> str:
        """A correctly signed ES256 token (PyJWT) with the given claims."""
        signer = key or self.key
        return jwt.encode(
            body,
            signer.private_key_pem,
            algorithm="ES256",
            headers={"kid": kid or signer.kid, "typ": typ},
        )

    def es256(self, header: dict[str, Any], payload: Any, key: SigningKey | None = None) -> str:
        """A hand-made compact JWS with a real ES256 signature over any header/payload."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signing_input = f"{b64json(header)}.{b64(body)}".encode()
        der = ec_private(key or self.key).sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input.decode()}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def world(rsa_pem: str) -> World:
    return World(
        key=SigningKey.generate(),
        other=SigningKey.generate(),
        rogue=SigningKey.generate(),
        rsa_pem=rsa_pem,
    )


def rsa_public_jwk(pem: str) -> dict[str, str]:
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    numbers = private.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "kid": RSA_KID, "n": b64(n), "e": b64(e), "use": "sig"}


def make_verifier(world: World, *, accept_dev: bool = False) -> TokenVerifier:
    return TokenVerifier(
        [
            TrustedIssuer(
                issuer=ISSUER,
                keys=MemoryKeys({world.key.kid: world.key.public_jwk}),
                audience=AUDIENCE,
                accept_dev_tokens=accept_dev,
            ),
            TrustedIssuer(
                issuer=OTHER_ISSUER,
                keys=MemoryKeys(
                    {
                        world.other.kid: world.other.public_jwk,
                        RSA_KID: rsa_public_jwk(world.rsa_pem),
                    }
                ),
                audience=AUDIENCE,
            ),
        ],
        leeway_seconds=LEEWAY,
        clock=lambda: NOW,
    )


@pytest.fixture
def verifier(world: World) -> TokenVerifier:
    return make_verifier(world)


def mint(key: SigningKey, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "issuer": ISSUER,
        "subject": "alice",
        "audience": AUDIENCE,
        "scopes": ["tasks:write", "agents:read"],
        "ttl_seconds": 300,
        "client_id": "cli-1",
        "now": NOW,
        **overrides,
    }
    return mint_access_token(key, **arguments)


# --------------------------------------------------------------------------- accepted


async def test_minted_token_verifies(world: World, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(mint(world.key))

    assert isinstance(principal, Principal)
    assert principal.subject == "alice"
    assert principal.issuer == ISSUER
    assert principal.scopes == frozenset({"agents:read", "tasks:write"})
    assert principal.client_id == "cli-1"
    assert principal.expires_at == NOW + 300
    assert principal.token_id
    assert principal.has_scope("agents:read")
    assert not principal.has_scope("switchboard:admin")


async def test_hand_made_es256_token_verifies(world: World, verifier: TokenVerifier) -> None:
    """Control for the hand-made attacks below: the helper itself makes valid tokens."""
    principal = await verifier.verify(world.es256(world.header(), claims()))
    assert principal.subject == "alice"


async def test_pyjwt_token_verifies(world: World, verifier: TokenVerifier) -> None:
    """Control for the claim attacks below: the unmodified claims pass."""
    principal = await verifier.verify(world.pyjwt(claims()))
    assert principal.scopes == frozenset({"agents:read", "tasks:write"})


async def test_expired_within_leeway_is_accepted(world: World, verifier: TokenVerifier) -> None:
    token = world.pyjwt(claims(iat=NOW - 300, nbf=NOW - 300, exp=NOW - 10))
    principal = await verifier.verify(token)
    assert principal.expires_at == NOW - 10
    # What is derived from it ends when the door stops accepting it (issue 57).
    assert principal.usable_until == usable_until(NOW - 10, LEEWAY) == NOW - 10 + LEEWAY


async def test_nbf_and_iat_within_leeway_are_accepted(
    world: World, verifier: TokenVerifier
) -> None:
    principal = await verifier.verify(world.pyjwt(claims(iat=NOW + 10, nbf=NOW + 10)))
    assert principal.subject == "alice"


async def test_scp_list_gives_scopes(world: World, verifier: TokenVerifier) -> None:
    token = world.pyjwt(claims(scope=DROP, scp=["agents:read", "tasks:write"]))
    principal = await verifier.verify(token)
    assert principal.scopes == frozenset({"agents:read", "tasks:write"})


async def test_no_scope_claim_gives_no_scopes(world: World, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(world.pyjwt(claims(scope=DROP)))
    assert principal.scopes == frozenset()


async def test_aud_list_containing_audience_is_accepted(
    world: World, verifier: TokenVerifier
) -> None:
    token = world.pyjwt(claims(aud=["https://elsewhere.example", AUDIENCE]))
    principal = await verifier.verify(token)
    assert principal.subject == "alice"


async def test_azp_is_used_when_client_id_is_absent(world: World, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(world.pyjwt(claims(client_id=DROP, azp="cli-2")))
    assert principal.client_id == "cli-2"


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
async def test_access_token_typ_spellings_are_accepted(
    world: World, verifier: TokenVerifier, typ: str
) -> None:
    principal = await verifier.verify(world.pyjwt(claims(), typ=typ))
    assert principal.subject == "alice"


async def test_rs256_token_from_rsa_issuer_verifies(world: World, verifier: TokenVerifier) -> None:
    token = jwt.encode(
        claims(iss=OTHER_ISSUER),
        world.rsa_pem,
        algorithm="RS256",
        headers={"kid": RSA_KID, "typ": "at+jwt"},
    )
    principal = await verifier.verify(token)
    assert principal.issuer == OTHER_ISSUER


async def test_other_issuers_own_key_verifies_its_token(
    world: World, verifier: TokenVerifier
) -> None:
    principal = await verifier.verify(world.pyjwt(claims(iss=OTHER_ISSUER), key=world.other))
    assert principal.issuer == OTHER_ISSUER


# --------------------------------------------------------------------------- dev tokens


async def test_dev_token_refused_without_dev_mode(world: World) -> None:
    token = mint(world.key, client_id=DEV_CLIENT_ID)
    with pytest.raises(TokenInvalid, match="dev"):
        await make_verifier(world, accept_dev=False).verify(token)


async def test_dev_token_accepted_in_dev_mode(world: World) -> None:
    token = mint(world.key, client_id=DEV_CLIENT_ID)
    principal = await make_verifier(world, accept_dev=True).verify(token)
    assert principal.client_id == DEV_CLIENT_ID


async def test_dev_token_via_azp_refused_without_dev_mode(
    world: World, verifier: TokenVerifier
) -> None:
    with pytest.raises(TokenInvalid, match="dev"):
        await verifier.verify(world.pyjwt(claims(client_id=DROP, azp=DEV_CLIENT_ID)))


# --------------------------------------------------------------------------- HMAC confusion


ENCODINGS = list(KEY_ENCODINGS)


def test_hmac_forgery_helper_makes_real_hs256_tokens(world: World) -> None:
    """Control: the forged tokens are valid HS256 JWTs for that secret."""
    secret = encodings_of(world.key)["x-and-y-raw"]
    token = hmac_forgery(world.header(alg="HS256"), claims(), secret)
    decoded = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        audience=AUDIENCE,
    )
    assert decoded["sub"] == "alice"


def test_every_encoding_is_distinct(world: World) -> None:
    encodings = encodings_of(world.key)
    assert sorted(encodings) == sorted(ENCODINGS)
    assert len(set(encodings.values())) == len(ENCODINGS)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_hmac_signed_with_public_key_is_refused(
    world: World, verifier: TokenVerifier, encoding: str, alg: str
) -> None:
    secret = encodings_of(world.key)[encoding]
    token = hmac_forgery(world.header(alg=alg), claims(), secret)
    with pytest.raises(TokenInvalid, match="not accepted"):
        await verifier.verify(token)


async def test_lowercase_hs256_is_refused(world: World, verifier: TokenVerifier) -> None:
    secret = encodings_of(world.key)["pem-spki"]
    token = hmac_forgery(world.header(alg="hs256"), claims(), secret)
    with pytest.raises(TokenInvalid, match="not accepted"):
        await verifier.verify(token)


@pytest.mark.parametrize("alg", ["ES256 ", " ES256", "Es256", "es256", "ES256\x00"])
async def test_es256_spelling_variants_are_refused(
    world: World, verifier: TokenVerifier, alg: str
) -> None:
    token = world.es256(world.header(alg=alg), claims())  # the signature itself is valid
    with pytest.raises(TokenInvalid, match="not accepted"):
        await verifier.verify(token)


# --------------------------------------------------------------------------- attacks

Attack = Callable[[World], str]


def _alg_none(w: World) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": w.key.kid}
    return f"{b64json(header)}.{b64json(claims())}."


def _tampered_scope(w: World) -> str:
    header, _, signature = mint(w.key).split(".")
    forged = b64(json.dumps(claims(scope="switchboard:admin")).encode())
    return f"{header}.{forged}.{signature}"


def _rs256_under_ec_kid(w: World) -> str:
    return jwt.encode(
        claims(), w.rsa_pem, algorithm="RS256", headers={"kid": w.key.kid, "typ": "at+jwt"}
    )


def _es256_under_rsa_kid(w: World) -> str:
    return w.pyjwt(claims(iss=OTHER_ISSUER), key=w.other, kid=RSA_KID)


def _tampered_signature(w: World) -> str:
    token = mint(w.key)
    last = "A" if token[-2] != "A" else "B"  # the final character may carry padding bits
    return token[:-2] + last + token[-1]


def _payload_not_utf8(w: World) -> str:
    payload = b64(b'{"iss": "' + bytes([0xFF]) + b'"}')
    return f"{b64json(w.header())}.{payload}.{b64(b'sig')}"


def _oversized(w: World) -> str:
    return mint(w.key, extra_claims={"pad": "x" * 20_000})


def _payload_array(w: World) -> str:
    return w.es256(w.header(), [claims()])


def _header_not_json(w: World) -> str:
    return f"{b64(b'not json')}.{b64json(claims())}.{b64(b'sig')}"


def _header_array(w: World) -> str:
    return f"{b64json([w.header()])}.{b64json(claims())}.{b64(b'sig')}"


ATTACKS: list[Any] = [
    # algorithm
    pytest.param(_alg_none, "not accepted", id="alg-none"),
    pytest.param(
        lambda w: f"{b64json(w.header(alg='None'))}.{b64json(claims())}.",
        "not accepted",
        id="alg-None",
    ),
    pytest.param(lambda w: w.es256(w.header(alg=DROP), claims()), "not accepted", id="alg-missing"),
    pytest.param(
        lambda w: w.es256(w.header(alg=["ES256"]), claims()), "not accepted", id="alg-list"
    ),
    pytest.param(
        lambda w: w.es256(w.header(alg="PS256"), claims()), "not accepted", id="alg-PS256"
    ),
    pytest.param(
        lambda w: w.es256(w.header(alg="EdDSA"), claims()), "not accepted", id="alg-EdDSA"
    ),
    pytest.param(
        lambda w: w.es256(w.header(crit=["exp"], exp=NOW + 60), claims()), "crit", id="crit-header"
    ),
    # keys
    pytest.param(lambda w: w.pyjwt(claims(), kid="no-such-kid"), "unknown", id="unknown-kid"),
    pytest.param(lambda w: w.es256(w.header(kid=DROP), claims()), "no kid", id="missing-kid"),
    pytest.param(lambda w: w.es256(w.header(kid=""), claims()), "no kid", id="empty-kid"),
    pytest.param(lambda w: w.es256(w.header(kid=7), claims()), "no kid", id="kid-not-string"),
    pytest.param(lambda w: w.pyjwt(claims(), key=w.other), "unknown", id="other-issuers-kid"),
    pytest.param(
        lambda w: w.pyjwt(claims(), key=w.rogue, kid=w.key.kid),
        "signature verification failed",
        id="rogue-key-claiming-trusted-kid",
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iss=OTHER_ISSUER), key=w.key, kid=w.other.kid),
        "signature verification failed",
        id="gateway-key-under-other-issuers-kid",
    ),
    pytest.param(_rs256_under_ec_kid, "does not fit RS256", id="rs256-with-ec-key"),
    pytest.param(_es256_under_rsa_kid, "does not fit ES256", id="es256-with-rsa-key"),
    pytest.param(_tampered_scope, "signature verification failed", id="tampered-scope"),
    pytest.param(_tampered_signature, "signature verification failed", id="tampered-signature"),
    pytest.param(
        lambda w: mint(w.key).rsplit(".", 1)[0] + ".", "signature", id="signature-stripped"
    ),
    # time
    pytest.param(
        lambda w: w.pyjwt(claims(iat=NOW - 600, nbf=NOW - 600, exp=NOW - LEEWAY - 1)),
        "expired",
        id="expired",
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iat=NOW - 600, nbf=NOW - 600, exp=NOW - LEEWAY)),
        "expired",
        id="expired-exactly-at-leeway",
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(nbf=NOW + LEEWAY + 60, exp=NOW + 3600)),
        "not valid yet",
        id="nbf-in-future",
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iat=NOW + LEEWAY + 60, nbf=DROP, exp=NOW + 3600)),
        "future",
        id="iat-in-future",
    ),
    # audience
    pytest.param(
        lambda w: w.pyjwt(claims(aud="https://elsewhere.example")), "audience", id="aud-wrong"
    ),
    pytest.param(lambda w: w.pyjwt(claims(aud=DROP)), "audience", id="aud-missing"),
    pytest.param(
        lambda w: w.pyjwt(claims(aud=[AUDIENCE, 1])), "audience", id="aud-list-non-string"
    ),
    pytest.param(lambda w: w.pyjwt(claims(aud=[1, 2])), "audience", id="aud-list-of-numbers"),
    pytest.param(lambda w: w.pyjwt(claims(aud=[])), "audience", id="aud-empty-list"),
    pytest.param(lambda w: w.pyjwt(claims(aud={"v": AUDIENCE})), "audience", id="aud-object"),
    pytest.param(
        lambda w: w.pyjwt(claims(aud=AUDIENCE + "/")), "audience", id="aud-trailing-slash"
    ),
    # issuer
    pytest.param(lambda w: w.pyjwt(claims(iss="https://evil.example")), "issuer", id="iss-wrong"),
    pytest.param(lambda w: w.pyjwt(claims(iss=ISSUER + "/")), "issuer", id="iss-trailing-slash"),
    pytest.param(
        lambda w: w.pyjwt(claims(iss="https://Switchboard.example")), "issuer", id="iss-case"
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iss="HTTPS://SWITCHBOARD.EXAMPLE")), "issuer", id="iss-upper"
    ),
    pytest.param(
        # U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I for the "i"
        lambda w: w.pyjwt(claims(iss="https://sw\u0456tchboard.example")),
        "issuer",
        id="iss-homoglyph",
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iss=ISSUER + ".evil.example")), "issuer", id="iss-suffix"
    ),
    pytest.param(
        lambda w: w.pyjwt(claims(iss="https://evil.example/" + ISSUER)), "issuer", id="iss-prefix"
    ),
    pytest.param(lambda w: w.pyjwt(claims(iss=" " + ISSUER)), "issuer", id="iss-leading-space"),
    pytest.param(lambda w: w.pyjwt(claims(iss=DROP)), "issuer", id="iss-missing"),
    pytest.param(lambda w: w.es256(w.header(), claims(iss=[ISSUER])), "issuer", id="iss-list"),
    # required claims
    pytest.param(lambda w: w.pyjwt(claims(sub=DROP)), "subject", id="sub-missing"),
    pytest.param(lambda w: w.pyjwt(claims(sub="")), "subject", id="sub-empty"),
    pytest.param(lambda w: w.es256(w.header(), claims(sub=42)), "subject", id="sub-number"),
    pytest.param(lambda w: w.pyjwt(claims(exp=DROP)), "exp", id="exp-missing"),
    pytest.param(lambda w: w.pyjwt(claims(iat=DROP)), "iat", id="iat-missing"),
    pytest.param(lambda w: w.pyjwt(claims(exp=str(NOW + 300))), "exp", id="exp-string"),
    pytest.param(lambda w: w.pyjwt(claims(exp=True)), "exp", id="exp-true"),
    pytest.param(lambda w: w.pyjwt(claims(exp=None)), "exp", id="exp-null"),
    pytest.param(lambda w: w.pyjwt(claims(nbf="0")), "nbf", id="nbf-string"),
    pytest.param(lambda w: w.pyjwt(claims(client_id=5)), "client_id", id="client-id-number"),
    pytest.param(lambda w: w.pyjwt(claims(scope=["a", 1])), "scope", id="scope-list-non-string"),
    pytest.param(lambda w: w.pyjwt(claims(scope=7)), "scope", id="scope-number"),
    # token type
    pytest.param(
        lambda w: w.pyjwt(claims(nonce="n-0S6_WzA2Mj"), typ="JWT"), "typ", id="id-token-typ-JWT"
    ),
    pytest.param(lambda w: w.es256(w.header(typ=DROP), claims()), "typ", id="typ-missing"),
    pytest.param(lambda w: w.es256(w.header(typ="jwt"), claims()), "typ", id="typ-jwt"),
    pytest.param(lambda w: w.es256(w.header(typ="at+jwt "), claims()), "typ", id="typ-padded"),
    pytest.param(lambda w: w.es256(w.header(typ=["at+jwt"]), claims()), "typ", id="typ-list"),
    pytest.param(
        lambda w: w.es256(w.header(typ="logout+jwt"), claims()), "typ", id="typ-logout-token"
    ),
    # garbage
    pytest.param(lambda w: "", "compact JWS", id="empty"),
    pytest.param(lambda w: "abc", "compact JWS", id="one-segment"),
    pytest.param(lambda w: "a.b", "compact JWS", id="two-segments"),
    pytest.param(lambda w: "a.b.c.d", "compact JWS", id="four-segments"),
    pytest.param(lambda w: "..", "compact JWS", id="empty-segments"),
    pytest.param(lambda w: "!!!.@@@.###", "JSON|base64", id="non-base64"),
    pytest.param(lambda w: "a.e30.c", "base64", id="bad-padding"),
    pytest.param(_header_not_json, "JSON", id="header-not-json"),
    pytest.param(_header_array, "JSON object", id="header-array"),
    pytest.param(_payload_array, "issuer|JSON", id="payload-array"),
    pytest.param(
        lambda w: f"{b64json(w.header())}.{b64(b'not json')}.{b64(b'sig')}",
        "JSON",
        id="payload-not-json",
    ),
    pytest.param(_payload_not_utf8, "JSON", id="payload-not-utf8"),
    pytest.param(_oversized, "size", id="20kb-token"),
    pytest.param(lambda w: "é.é.é", "base64|JSON", id="non-ascii"),
    pytest.param(lambda w: mint(w.key) + "é", "signature|base64", id="non-ascii-suffix"),
    pytest.param(lambda w: mint(w.key).encode(), "compact JWS", id="bytes-not-str"),
]


@pytest.mark.parametrize(("attack", "reason"), ATTACKS)
async def test_attack_is_refused(
    world: World, verifier: TokenVerifier, attack: Attack, reason: str
) -> None:
    token = attack(world)
    with pytest.raises(TokenInvalid, match=reason):
        await verifier.verify(token)


# --------------------------------------------------------------------------- bugs found

RAW_CLAIMS = '{"iss":"%s","sub":"alice","aud":"%s","iat":%s,"exp":%s%s}'


def raw_claims(iat: str = str(NOW), exp: str = str(NOW + 300), extra: str = "") -> bytes:
    return (RAW_CLAIMS % (ISSUER, AUDIENCE, iat, exp, extra)).encode()


async def test_scope_with_invalid_characters_is_token_invalid(
    world: World, verifier: TokenVerifier
) -> None:
    with pytest.raises(TokenInvalid):
        await verifier.verify(world.pyjwt(claims(scope='agents:read "quoted"')))


@pytest.mark.parametrize(
    "exp", ["1e400", "Infinity", "NaN", pytest.param("1" + "0" * 400, id="401-digit-int")]
)
async def test_non_finite_exp_is_token_invalid(
    world: World, verifier: TokenVerifier, exp: str
) -> None:
    with pytest.raises(TokenInvalid):
        await verifier.verify(world.es256(world.header(), raw_claims(exp=exp)))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(raw_claims(iat="NaN"), id="iat-nan"),
        pytest.param(raw_claims(extra=',"nbf":NaN'), id="nbf-nan"),
    ],
)
async def test_nan_time_claims_are_token_invalid(
    world: World, verifier: TokenVerifier, body: bytes
) -> None:
    with pytest.raises(TokenInvalid):
        await verifier.verify(world.es256(world.header(), body))


HUGE_INT_HEADER = b'{"alg":' + b"1" * 5000 + b"}"
HUGE_INT_CLAIMS = raw_claims(extra=',"x":' + "1" * 5000)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda w: f"{b64(b'[' * 5000)}.e30.", id="deep-header"),
        pytest.param(lambda w: f"{b64json(w.header())}.{b64(b'[' * 5000)}.", id="deep-payload"),
        pytest.param(lambda w: f"{b64(HUGE_INT_HEADER)}.e30.", id="huge-int-header"),
        pytest.param(
            lambda w: f"{b64json(w.header())}.{b64(HUGE_INT_CLAIMS)}.", id="huge-int-payload"
        ),
    ],
)
async def test_hostile_json_is_token_invalid(
    world: World, verifier: TokenVerifier, make: Attack
) -> None:
    token = make(world)
    assert len(token) < 16 * 1024  # within the size limit, so it reaches json.loads
    with pytest.raises(TokenInvalid):
        await verifier.verify(token)

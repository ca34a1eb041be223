"""Attacks on the inbound side, over real HTTP: every bent token is a 401 (or an
RFC 6749 error at the token endpoint), never a 500, never a call upstream.

The unit tests (`tests/policies/test_tokens.py`) prove the verifier's logic;
these prove the HTTP surfaces wire it in without a gap: the registry
(`GET /agents`), the A2A front door (`POST /a2a/support`) and the token
endpoint (`POST /oauth/token`, where the token is a `subject_token`, an
`actor_token` or a `client_assertion`).

Every bent token is the valid one with exactly one thing changed, and
`test_the_unbent_tokens_pass_every_surface` shows the valid one getting
through each surface -- so each refusal below is for the one change made.
One deployment (gateway + three recording SDK agents) serves the whole module.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.delegation.keystore import load_active_key
from policies.exchange import (
    ACCESS_TOKEN_TYPE,
    JWT_BEARER_ASSERTION,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
)
from policies.keys import ec_public_jwk
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.forgery import KEY_ENCODINGS, b64, public_key_encodings
from tests.support.inspecting import send_message_body

DROP: Any = object()  # as a header or claim value: leave that member out


@dataclass(frozen=True)
class World:
    dep: Deployment
    http: httpx.Client
    gateway_key: ec.EllipticCurvePrivateKey
    jwk: dict[str, Any]  # the gateway key exactly as /.well-known/jwks.json publishes it
    jwks_body: bytes
    attacker_key: ec.EllipticCurvePrivateKey
    user_token: str  # a dev token from the gateway key: aud = gateway, for support/sales
    delegated: str  # what support received on a real first hop: aud = support

    @property
    def url(self) -> str:
        return self.dep.gateway.url

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    @property
    def sales_key(self) -> ec.EllipticCurvePrivateKey:
        key = self.dep["sales"].key
        assert key is not None
        return key

    def token(
        self,
        *,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """An access token like an IdP's (client_id "tests"), with ``header`` and
        ``claims`` changed; ES-signed with ``key``, by default the gateway's own."""
        now = int(time.time())
        return compact(
            _apply({"alg": "ES256", "kid": self.kid, "typ": "at+jwt"}, header),
            _apply(
                {
                    "iss": self.url,
                    "sub": "alice",
                    "aud": self.url,
                    "scope": USER_SCOPES,
                    "client_id": "tests",
                    "iat": now,
                    "nbf": now,
                    "exp": now + 600,
                    "jti": uuid.uuid4().hex,
                },
                claims,
            ),
            key or self.gateway_key,
        )

    def assertion(
        self,
        *,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        """sales' RFC 7523 assertion (its registered key is kid sales-1), bent."""
        now = int(time.time())
        return compact(
            _apply({"alg": "ES256", "kid": "sales-1", "typ": "JWT"}, header),
            _apply(
                {
                    "iss": "sales",
                    "sub": "sales",
                    "aud": self.url + "/oauth/token",
                    "iat": now,
                    "exp": now + 60,
                    "jti": uuid.uuid4().hex,
                },
                claims,
            ),
            key or self.sales_key,
        )


def _apply(base: dict[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(base)
    for name, value in (changes or {}).items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def segment(value: Any) -> str:
    # allow_nan (the default) writes Infinity/NaN: we want to send those too.
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


_HASHES: dict[int, hashes.HashAlgorithm] = {
    256: hashes.SHA256(),
    384: hashes.SHA384(),
    521: hashes.SHA512(),
}


def es_signature(key: ec.EllipticCurvePrivateKey, signing_input: str) -> str:
    """A JWS ECDSA signature: raw r || s (RFC 7518 §3.4), not DER."""
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(_HASHES[key.curve.key_size]))
    r, s = decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return b64(r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def compact(header: Any, claims: Any, key: ec.EllipticCurvePrivateKey) -> str:
    signing_input = segment(header) + "." + segment(claims)
    return signing_input + "." + es_signature(key, signing_input)


def raw_signed(header: bytes, payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """Validly signed, whatever bytes the header and payload are."""
    signing_input = b64(header) + "." + b64(payload)
    return signing_input + "." + es_signature(key, signing_input)


def hmac_signed(w: World, secret: bytes, alg: str = "HS256", **header: Any) -> str:
    """The classic algorithm confusion: HMAC keyed with the *public* key."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    parts = w.token().split(".")
    signing_input = segment({"alg": alg, "kid": w.kid, "typ": "at+jwt", **header}) + "." + parts[1]
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), digest).digest())


def unsigned(w: World, alg: str, signature: str = "") -> str:
    parts = w.token().split(".")
    return segment({"alg": alg, "kid": w.kid, "typ": "at+jwt"}) + "." + parts[1] + "." + signature


# The module's deployment ------------------------------------------------------------


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("token-attacks")
    # One connection per request: a 500 (should one come back) makes the server drop
    # the connection, which must not fail whichever test would reuse it next.
    # (It is also ~50x faster here: keep-alive responses wait on delayed ACKs.)
    closing = {"Connection": "close"}
    with (
        deployment(tmp, None) as dep,
        httpx.Client(timeout=30, headers=closing, verify=client_tls()) as http,
    ):
        gw = dep.gateway
        signing = asyncio.run(load_active_key(gw.settings.effective_database_url, None))
        private = serialization.load_pem_private_key(signing.private_key_pem.encode(), None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        jwks = http.get(gw.url + "/.well-known/jwks.json")
        (jwk,) = jwks.json()["keys"]
        assert jwk["kid"] == signing.kid
        user_token = gw.token("alice", USER_SCOPES)
        # A real first hop: the token the gateway minted for support, as support saw it.
        first = dep.send("support", user_token)
        assert first.status_code == 200, first.text
        delegated = dep["support"].recorder.calls()[-1].bearer
        assert delegated is not None
        yield World(
            dep=dep,
            http=http,
            gateway_key=private,
            jwk=jwk,
            jwks_body=jwks.content,
            attacker_key=ec.generate_private_key(ec.SECP256R1()),
            user_token=user_token,
            delegated=delegated,
        )


def upstream_calls(w: World) -> int:
    return sum(len(agent.recorder.calls()) for agent in w.dep.agents.values())


def get_agents(w: World, authorization: str | bytes | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": _header(authorization)}
    return w.http.get(w.url + "/agents", headers=headers)


def send_to_support(w: World, authorization: str | bytes | None) -> httpx.Response:
    headers = {"A2A-Version": "1.0"}
    if authorization is not None:
        headers["Authorization"] = _header(authorization)
    return w.http.post(w.url + "/a2a/support", json=send_message_body("hi"), headers=headers)


def _header(value: str | bytes) -> Any:
    # httpx refuses non-ASCII str header values; as bytes they go on the wire as is.
    return value.encode("utf-8") if isinstance(value, str) else value


BEARER_SURFACES: dict[str, Callable[[World, str | bytes | None], httpx.Response]] = {
    "registry": get_agents,
    "a2a": send_to_support,
}


def exchange_form(subject_token: str, audience: str = "sales", **extra: str) -> dict[str, str]:
    return {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience,
        **extra,
    }


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def support_basic(w: World) -> str:
    secret = w.dep["support"].secret
    assert secret is not None
    return basic("support", secret)


def post_token(
    w: World, form: Mapping[str, str], authorization: str | bytes | None = None
) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": _header(authorization)}
    return w.http.post(w.url + "/oauth/token", data=dict(form), headers=headers)


def assert_bearer_refused(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    # RFC 6750 §3: the challenge tells the client how to authenticate.
    assert response.headers["www-authenticate"].startswith("Bearer ")


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    # RFC 6749 §5.2: exactly the error shape, nothing that could carry a token.
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic ")


# The controls -----------------------------------------------------------------------


def test_the_unbent_tokens_pass_every_surface(w: World) -> None:
    """Without this, a gateway refusing everything would pass every attack below."""
    for token in (w.token(), w.user_token):
        assert get_agents(w, f"Bearer {token}").status_code == 200
        before = upstream_calls(w)
        response = send_to_support(w, f"Bearer {token}")
        assert response.status_code == 200, response.text
        assert upstream_calls(w) == before + 1
        response = post_token(w, exchange_form(token), support_basic(w))
        assert response.status_code == 200, response.text
    for parameter, kind in (
        ("actor_token", JWT_TOKEN_TYPE),
        ("client_assertion", JWT_BEARER_ASSERTION),
    ):
        form = exchange_form(
            w.user_token, "inventory", **{parameter: w.assertion(), f"{parameter}_type": kind}
        )
        response = post_token(w, form)
        assert response.status_code == 200, (parameter, response.text)
    # The delegated token is good -- for support, the party it was minted for.
    response = post_token(w, exchange_form(w.delegated), support_basic(w))
    assert response.status_code == 200, response.text


# Bent tokens: registry, front door, token endpoint ------------------------------------

Attack = Callable[[World], str]


SURFACES = ("registry", "a2a", "subject")


@dataclass(frozen=True)
class Case:
    name: str
    attack: Attack


def _p(attack: Attack, name: str) -> Case:
    return Case(name, attack)


def _cases(cases: list[Case]) -> list[Any]:
    """Each attack against each surface."""
    return [
        pytest.param(surface, case.attack, id=f"{case.name}-{surface}")
        for case in cases
        for surface in SURFACES
    ]


def _hs_attacks() -> list[Case]:
    def forge(name: str, alg: str = "HS256") -> Attack:
        def attack(w: World) -> str:
            public = w.gateway_key.public_key()
            return hmac_signed(w, public_key_encodings(public, w.jwk)[name], alg)

        return attack

    params = [_p(forge(name), f"hs256-{name}") for name in KEY_ENCODINGS]
    params += [_p(forge("pem-spki", alg), f"{alg.lower()}-pem-spki") for alg in ("HS384", "HS512")]
    # The whole published JWKS document, byte for byte.
    params.append(_p(lambda w: hmac_signed(w, w.jwks_body), "hs256-jwks-document"))
    return params


def _tampered_payload(w: World) -> str:
    # A valid token for crm:read, its payload swapped for one granting admin.
    header, _, signature = w.token(claims={"scope": "crm:read"}).split(".")
    richer = w.token(claims={"scope": "crm:read switchboard:admin"}).split(".")[1]
    return f"{header}.{richer}.{signature}"


def _spliced_signature(w: World) -> str:
    header, payload, _ = w.token(claims={"sub": "mallory"}).split(".")
    return f"{header}.{payload}.{w.token().split('.')[2]}"


def _bit_flipped(w: World) -> str:
    token = w.token()
    head, _, signature = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    return f"{head}.{b64(bytes(raw))}"


def _der_signature(w: World) -> str:
    # The right key and bytes, but ASN.1 DER instead of JWS's raw r||s.
    head = w.token().rpartition(".")[0]
    der = w.gateway_key.sign(head.encode(), ec.ECDSA(hashes.SHA256()))
    return f"{head}.{b64(der)}"


def _embedded_jwk(w: World) -> str:
    # CVE-2018-0114 style: the header carries the attacker's key to verify with.
    jwk = ec_public_jwk(w.attacker_key.public_key())
    return w.token(header={"jwk": jwk}, key=w.attacker_key)


def _p384_with_gateway_kid(w: World) -> str:
    return w.token(header={"alg": "ES384"}, key=ec.generate_private_key(ec.SECP384R1()))


def _valid_claims(w: World) -> bytes:
    """The payload bytes of a valid token, for tokens bent in the header only."""
    return base64.urlsafe_b64decode(w.token().split(".")[1] + "==")


def _utf16_header(w: World) -> str:
    # json.loads(bytes) reads UTF-16; python-jose decodes UTF-8: two parsers,
    # one header -- refused, even with a genuine gateway signature.
    header = json.dumps({"alg": "ES256", "kid": w.kid, "typ": "at+jwt"}).encode("utf-16")
    return raw_signed(header, _valid_claims(w), w.gateway_key)


def _raw_payload(payload: bytes) -> Attack:
    return lambda w: raw_signed(
        json.dumps({"alg": "ES256", "kid": w.kid, "typ": "at+jwt"}).encode(), payload, w.gateway_key
    )


def _raw_header(header: bytes) -> Attack:
    return lambda w: raw_signed(header, _valid_claims(w), w.gateway_key)


def _claims_text(w: World, exp_literal: str) -> bytes:
    now = int(time.time())
    return (
        f'{{"iss":"{w.url}","sub":"alice","aud":"{w.url}","scope":"{USER_SCOPES}",'
        f'"client_id":"tests","iat":{now},"exp":{exp_literal},"jti":"{uuid.uuid4().hex}"}}'
    ).encode()


def _huge(w: World) -> str:
    # A genuine gateway signature; only the size (> 16 KiB) is wrong.
    return w.token(claims={"padding": "p" * 17_000})


def _id_token(w: World) -> str:
    # An OIDC ID token from the same issuer: typ JWT, ID-token claims.
    return w.token(
        header={"typ": "JWT"},
        claims={"nonce": "n-0S6_WzA2Mj", "auth_time": int(time.time()), "azp": "tests"},
    )


def _with_signature(change: Callable[[str], str]) -> Attack:
    def attack(w: World) -> str:
        head, _, signature = w.token().rpartition(".")
        return f"{head}.{change(signature)}"

    return attack


def _same_bytes_other_last_char(signature: str) -> str:
    # 86 characters carry 516 bits for 512: the last one's low 4 bits are unused,
    # so flipping its lowest bit spells the same signature bytes differently.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]


TOKEN_ATTACKS: list[Case] = [
    # alg: none, and algorithms that are not the key's.
    _p(lambda w: unsigned(w, "none"), "alg-none-no-signature"),
    _p(lambda w: unsigned(w, "none", w.token().split(".")[2]), "alg-none-with-signature"),
    _p(lambda w: unsigned(w, "None"), "alg-None-capitalised"),
    _p(lambda w: unsigned(w, "NONE", "AAAA"), "alg-NONE-with-junk-signature"),
    _p(lambda w: w.token(header={"alg": DROP}), "alg-missing"),
    _p(lambda w: w.token(header={"alg": ["ES256"]}), "alg-as-list"),
    _p(lambda w: w.token(header={"alg": "RS256"}), "alg-RS256-on-ec-key"),
    _p(lambda w: w.token(header={"alg": "ES512"}), "alg-ES512-on-p256-key"),
    _p(lambda w: w.token(header={"alg": "PS256"}), "alg-PS256"),
    _p(lambda w: w.token(header={"alg": "EdDSA"}), "alg-EdDSA"),
    # HS* keyed with the gateway's public key, in every encoding.
    *_hs_attacks(),
    # Signatures that are not the gateway's over these bytes.
    _p(lambda w: w.token().rpartition(".")[0] + ".", "signature-stripped"),
    _p(_bit_flipped, "signature-bit-flipped"),
    _p(_spliced_signature, "signature-from-another-token"),
    _p(_tampered_payload, "payload-tampered-to-admin"),
    _p(_der_signature, "signature-der-encoded"),
    _p(lambda w: w.token(key=w.attacker_key), "other-ec-key-with-gateway-kid"),
    _p(_embedded_jwk, "other-ec-key-with-embedded-jwk"),
    _p(
        lambda w: w.token(
            header={"kid": "attacker-1", "jku": "https://evil.example/jwks.json"},
            key=w.attacker_key,
        ),
        "other-ec-key-with-jku",
    ),
    _p(
        lambda w: w.token(header={"x5u": "https://evil.example/cert.pem"}, key=w.attacker_key),
        "other-ec-key-with-x5u",
    ),
    _p(_p384_with_gateway_kid, "p384-key-es384-gateway-kid"),
    # kid.
    _p(lambda w: w.token(header={"kid": "no-such-key"}), "kid-unknown"),
    _p(lambda w: w.token(header={"kid": DROP}), "kid-missing"),
    _p(lambda w: w.token(header={"kid": ""}), "kid-empty"),
    _p(lambda w: w.token(header={"kid": None}), "kid-null"),
    _p(lambda w: w.token(header={"kid": 1}), "kid-number"),
    _p(lambda w: w.token(header={"kid": [w.kid]}), "kid-as-list"),
    _p(lambda w: w.token(header={"kid": {"kid": w.kid}}), "kid-as-object"),
    _p(lambda w: w.token(header={"kid": "../../../../etc/passwd"}), "kid-path-traversal"),
    _p(lambda w: w.token(header={"kid": "x' OR '1'='1"}), "kid-sql-injection"),
    _p(lambda w: w.token(header={"kid": w.kid + "\u0000"}), "kid-with-nul"),
    # Time.
    _p(
        lambda w: w.token(
            claims={
                "iat": int(time.time()) - 4200,
                "nbf": int(time.time()) - 4200,
                "exp": int(time.time()) - 3600,
            }
        ),
        "expired",
    ),
    _p(lambda w: w.token(claims={"exp": int(time.time()) - 90}), "expired-beyond-leeway"),
    _p(lambda w: w.token(claims={"exp": -1}), "exp-negative"),
    _p(lambda w: w.token(claims={"nbf": int(time.time()) + 3600}), "nbf-in-future"),
    _p(lambda w: w.token(claims={"iat": int(time.time()) + 3600}), "iat-in-future"),
    _p(lambda w: w.token(claims={"exp": DROP}), "exp-missing"),
    _p(lambda w: w.token(claims={"iat": DROP}), "iat-missing"),
    _p(lambda w: w.token(claims={"exp": str(int(time.time()) + 600)}), "exp-string"),
    _p(lambda w: w.token(claims={"exp": "tomorrow"}), "exp-non-numeric"),
    _p(lambda w: w.token(claims={"exp": True}), "exp-true"),
    _p(lambda w: w.token(claims={"exp": None}), "exp-null"),
    _p(lambda w: w.token(claims={"exp": [int(time.time()) + 600]}), "exp-list"),
    _p(lambda w: w.token(claims={"exp": float("inf")}), "exp-Infinity"),
    _p(lambda w: w.token(claims={"exp": float("nan")}), "exp-NaN"),
    _p(lambda w: raw_signed_claims(w, "1e400"), "exp-1e400"),
    _p(lambda w: raw_signed_claims(w, "9" * 5000), "exp-5000-digits"),
    _p(lambda w: w.token(claims={"iat": "now"}), "iat-non-numeric"),
    _p(lambda w: w.token(claims={"nbf": "now"}), "nbf-non-numeric"),
    # Subject.
    _p(lambda w: w.token(claims={"sub": DROP}), "sub-missing"),
    _p(lambda w: w.token(claims={"sub": ""}), "sub-empty"),
    _p(lambda w: w.token(claims={"sub": 42}), "sub-number"),
    _p(lambda w: w.token(claims={"sub": None}), "sub-null"),
    # Audience.
    _p(lambda w: w.token(claims={"aud": "https://other.example"}), "aud-wrong"),
    _p(lambda w: w.token(claims={"aud": DROP}), "aud-missing"),
    _p(lambda w: w.token(claims={"aud": []}), "aud-empty-list"),
    _p(lambda w: w.token(claims={"aud": ""}), "aud-empty-string"),
    _p(lambda w: w.token(claims={"aud": None}), "aud-null"),
    _p(lambda w: w.token(claims={"aud": [1]}), "aud-list-of-number"),
    _p(lambda w: w.token(claims={"aud": [w.url, 1]}), "aud-list-with-a-number"),
    _p(lambda w: w.token(claims={"aud": {"aud": w.url}}), "aud-object"),
    _p(lambda w: w.token(claims={"aud": ["https://other.example"]}), "aud-wrong-list"),
    _p(lambda w: w.token(claims={"aud": w.url + "/"}), "aud-trailing-slash"),
    _p(lambda w: w.token(claims={"aud": w.dep["support"].resource}), "aud-an-agent"),
    # Issuer, including look-alikes of the real one.
    _p(lambda w: w.token(claims={"iss": "https://evil.example"}), "iss-wrong"),
    _p(lambda w: w.token(claims={"iss": DROP}), "iss-missing"),
    _p(lambda w: w.token(claims={"iss": [w.url]}), "iss-as-list"),
    _p(lambda w: w.token(claims={"iss": w.url + "/"}), "iss-trailing-slash"),
    _p(lambda w: w.token(claims={"iss": w.url.upper()}), "iss-upper-case"),
    _p(lambda w: w.token(claims={"iss": w.url.replace("http:", "HTTP:")}), "iss-scheme-case"),
    _p(lambda w: w.token(claims={"iss": w.url.replace("http:", "https:")}), "iss-https"),
    _p(lambda w: w.token(claims={"iss": w.url + "/issuer"}), "iss-with-path"),
    _p(lambda w: w.token(claims={"iss": w.url.replace("127.0.0.1", "localhost")}), "iss-localhost"),
    _p(lambda w: w.token(claims={"iss": w.url + " "}), "iss-trailing-space"),
    _p(lambda w: w.token(claims={"iss": w.url + "#"}), "iss-trailing-hash"),
    # typ.
    _p(_id_token, "typ-JWT-id-token"),
    _p(lambda w: w.token(header={"typ": DROP}), "typ-missing"),
    _p(lambda w: w.token(header={"typ": "jwt"}), "typ-jwt-lower"),
    _p(lambda w: w.token(header={"typ": "application/jwt"}), "typ-application-jwt"),
    _p(lambda w: w.token(header={"typ": "dpop+jwt"}), "typ-dpop"),
    _p(lambda w: w.token(header={"typ": "at+jwt "}), "typ-trailing-space"),
    _p(lambda w: w.token(header={"typ": 1}), "typ-number"),
    # crit (RFC 7515 §4.1.11: an extension we do not understand must be refused).
    _p(lambda w: w.token(header={"crit": ["exp"], "exp": 1}), "crit-exp"),
    _p(lambda w: w.token(header={"crit": ["b64"], "b64": False}), "crit-b64-false"),
    _p(lambda w: w.token(header={"crit": []}), "crit-empty"),
    # Other claims the verifier relies on.
    _p(lambda w: w.token(claims={"client_id": 7}), "client-id-number"),
    _p(lambda w: w.token(claims={"scope": 'support:write "x'}), "scope-malformed"),
    _p(lambda w: w.token(claims={"scope": {"support:write": True}}), "scope-object"),
    # Not a JWS at all.
    _p(lambda w: "not-a-jwt", "garbage-one-segment"),
    _p(lambda w: "a.b", "garbage-two-segments"),
    _p(lambda w: w.token() + ".x", "garbage-four-segments"),
    _p(lambda w: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "garbage-jwe-shape"),
    _p(lambda w: "..", "garbage-empty-segments"),
    _p(lambda w: "." + w.token().split(".", 1)[1], "garbage-empty-header"),
    _p(lambda w: w.token().split(".")[0] + ".." + w.token().split(".")[2], "garbage-empty-payload"),
    _p(lambda w: "!!!.@@@.###", "garbage-bad-base64"),
    _p(lambda w: "eyJ.eyJ.AAA", "garbage-truncated-base64"),
    _p(_raw_header(b"hello"), "header-not-json"),
    _p(_raw_header(b"[1,2]"), "header-json-array"),
    _p(_raw_header(b"[" * 5000 + b"]" * 5000), "header-deeply-nested"),
    _p(_raw_header(b"\xff\xfe\xfd"), "header-not-utf8"),
    _p(_utf16_header, "header-utf16-validly-signed"),
    _p(_raw_payload(b"hello"), "payload-not-json"),
    _p(_raw_payload(b'["iss"]'), "payload-json-array"),
    _p(_raw_payload(b'"' + b"x" * 10 + b'"'), "payload-json-string"),
    _p(_raw_payload(b"[" * 5000 + b"]" * 5000), "payload-deeply-nested"),
    _p(_raw_payload(b"\xff\xfe\xfd"), "payload-not-utf8"),
    _p(_raw_payload(b"9" * 5000), "payload-5000-digit-number"),
    _p(_huge, "huge-token-over-16KiB"),
    # A valid token re-spelled: the same signature bytes, other characters.
    _p(_with_signature(lambda s: s + "!!!!"), "signature-junk-appended"),
    _p(_with_signature(lambda s: s + "=="), "signature-padding-appended"),
    _p(_with_signature(lambda s: s[:40] + "    " + s[40:]), "signature-inner-spaces"),
    _p(_with_signature(_same_bytes_other_last_char), "signature-non-canonical"),
    _p(
        _with_signature(lambda s: s + "\u00e9"),
        "non-ascii-appended",
        # In a header the two UTF-8 bytes arrive as two latin-1 characters ("\u00c3\u00a9").
    ),
    _p(lambda w: "\u00e9.\u00e9.\u00e9", "non-ascii-segments"),
    _p(lambda w: w.token(header={"kid": "cl\u00e9-\u94a5\u5319"}), "non-ascii-kid"),
    _p(lambda w: w.token(claims={"iss": w.url + "/\u00fc"}), "non-ascii-iss"),
]


def raw_signed_claims(w: World, exp_literal: str) -> str:
    """Claims whose `exp` is a JSON literal Python's json.dumps would not write."""
    header = json.dumps({"alg": "ES256", "kid": w.kid, "typ": "at+jwt"}).encode()
    return raw_signed(header, _claims_text(w, exp_literal), w.gateway_key)


@pytest.mark.parametrize(("surface", "attack"), _cases(TOKEN_ATTACKS))
def test_bent_tokens_are_refused(w: World, surface: str, attack: Attack) -> None:
    before = upstream_calls(w)
    token = attack(w)
    if surface == "subject":
        # support authenticates properly: the subject_token is the only thing wrong.
        response = post_token(w, exchange_form(token), support_basic(w))
        assert_oauth_error(response, 400, "invalid_grant")
    else:
        assert_bearer_refused(BEARER_SURFACES[surface](w, f"Bearer {token}"))
    assert upstream_calls(w) == before, "a refused token reached an agent"


# The Authorization header itself --------------------------------------------------------

AUTHORIZATION_ATTACKS: list[Any] = [
    pytest.param(lambda w: basic("alice", "password"), id="basic-password"),
    pytest.param(lambda w: "Basic " + w.token(), id="basic-with-a-valid-jwt"),
    pytest.param(lambda w: "Token " + w.token(), id="token-scheme"),
    pytest.param(lambda w: "JWT " + w.token(), id="jwt-scheme"),
    pytest.param(lambda w: "DPoP " + w.token(), id="dpop-scheme"),
    pytest.param(lambda w: "MAC " + w.token(), id="mac-scheme"),
    pytest.param(lambda w: "Bearer-" + w.token(), id="bearer-dash"),
    pytest.param(lambda w: "Bearer" + w.token(), id="bearer-no-space"),
    pytest.param(lambda w: "Bearer\t" + w.token(), id="bearer-tab"),
    pytest.param(lambda w: w.token(), id="no-scheme"),
    pytest.param(lambda w: "Bearer", id="bearer-empty"),
    pytest.param(lambda w: "Bearer  ,", id="bearer-comma"),
    pytest.param(lambda w: "", id="empty-header"),
    pytest.param(lambda w: b"Bearer \xe9\xe9\xe9", id="bearer-latin1-bytes"),
]


@pytest.mark.parametrize("surface", sorted(BEARER_SURFACES))
@pytest.mark.parametrize("authorization", AUTHORIZATION_ATTACKS)
def test_other_schemes_and_empty_bearers_are_401(
    w: World, surface: str, authorization: Callable[[World], str | bytes]
) -> None:
    before = upstream_calls(w)
    assert_bearer_refused(BEARER_SURFACES[surface](w, authorization(w)))
    assert upstream_calls(w) == before


def test_a_token_in_the_query_string_is_not_a_credential(w: World) -> None:
    # RFC 6750 §2.3 is not offered (bearer_methods_supported: header).
    params = {"access_token": w.token()}
    assert_bearer_refused(w.http.get(w.url + "/agents", params=params))
    before = upstream_calls(w)
    response = w.http.post(
        w.url + "/a2a/support",
        params=params,
        json=send_message_body("hi"),
        headers={"A2A-Version": "1.0"},
    )
    assert_bearer_refused(response)
    assert upstream_calls(w) == before


# Delegated tokens: a key to one agent, not to the gateway -------------------------------


def test_a_delegated_token_does_not_open_the_gateway(w: World) -> None:
    """The token support received (aud = support) is not a token for the gateway's
    own API, nor for the front door: an agent cannot re-enter as the user."""
    before = upstream_calls(w)
    for path in ("/agents", "/agents/support", "/audit", "/policies"):
        response = w.http.get(w.url + path, headers={"Authorization": f"Bearer {w.delegated}"})
        assert_bearer_refused(response)
        assert "aud" in response.json()["detail"], response.json()
    for agent in ("support", "sales", "inventory"):
        response = w.http.post(
            f"{w.url}/a2a/{agent}",
            json=send_message_body("again, as alice"),
            headers={"Authorization": f"Bearer {w.delegated}", "A2A-Version": "1.0"},
        )
        assert_bearer_refused(response)
    assert upstream_calls(w) == before


@pytest.mark.parametrize(
    ("by", "method"),
    [
        ("inventory", "basic"),
        ("inventory", "post"),
        ("sales", "actor_token"),
        ("sales", "private_key_jwt"),
    ],
)
def test_a_delegated_token_is_invalid_grant_for_any_other_agent(
    w: World, by: str, method: str
) -> None:
    response = w.dep.exchange(w.delegated, by=by, audience="inventory", method=method)
    assert_oauth_error(response, 400, "invalid_grant")
    assert "not the party presenting it" in response.json()["error_description"]


# The token endpoint's client side --------------------------------------------------------


def _sales_public_secret(name: str) -> Attack:
    def attack(w: World) -> str:
        jwk = {**ec_public_jwk(w.sales_key.public_key()), "kid": "sales-1"}
        secret = public_key_encodings(w.sales_key.public_key(), jwk)[name]
        header = segment({"alg": "HS256", "kid": "sales-1", "typ": "JWT"})
        body = w.assertion().split(".")[1]
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{b64(mac)}"

    return attack


def _unsigned_assertion(w: World, signature: str = "") -> str:
    head = segment({"alg": "none", "kid": "sales-1", "typ": "JWT"})
    return f"{head}.{w.assertion().split('.')[1]}.{signature}"


CLIENT_ATTACKS: list[Any] = [
    pytest.param(_unsigned_assertion, id="alg-none"),
    pytest.param(lambda w: _unsigned_assertion(w, w.assertion().split(".")[2]), id="alg-none-sig"),
    *(
        pytest.param(_sales_public_secret(name), id=f"hs256-{name}")
        for name in ("pem-spki", "der-spki", "jwk-json-compact", "x-and-y-raw", "x-base64url")
    ),
    pytest.param(
        lambda w: w.assertion(
            claims={"iat": int(time.time()) - 600, "exp": int(time.time()) - 300}
        ),
        id="expired",
    ),
    pytest.param(lambda w: w.assertion(claims={"iat": int(time.time()) + 300}), id="iat-future"),
    pytest.param(lambda w: w.assertion(claims={"exp": int(time.time()) + 3600}), id="too-long"),
    pytest.param(lambda w: w.assertion(claims={"exp": DROP}), id="exp-missing"),
    pytest.param(lambda w: w.assertion(claims={"exp": "soon"}), id="exp-non-numeric"),
    pytest.param(lambda w: w.assertion(claims={"jti": DROP}), id="jti-missing"),
    pytest.param(lambda w: w.assertion(claims={"jti": "short"}), id="jti-too-short"),
    pytest.param(lambda w: w.assertion(claims={"aud": "https://other.example"}), id="aud-wrong"),
    pytest.param(lambda w: w.assertion(claims={"aud": DROP}), id="aud-missing"),
    pytest.param(lambda w: w.assertion(claims={"aud": []}), id="aud-empty-list"),
    pytest.param(
        lambda w: w.assertion(claims={"aud": w.dep["inventory"].resource}), id="aud-an-agent"
    ),
    pytest.param(lambda w: w.assertion(key=w.attacker_key), id="unregistered-key-sales-kid"),
    pytest.param(
        lambda w: w.assertion(header={"kid": "attacker-1"}, key=w.attacker_key),
        id="unregistered-key-own-kid",
    ),
    pytest.param(lambda w: w.assertion(header={"kid": DROP}), id="kid-missing"),
    pytest.param(lambda w: w.assertion(header={"alg": "ES384"}), id="alg-ES384-on-p256"),
    pytest.param(lambda w: w.assertion(header={"crit": ["exp"]}), id="crit"),
    # Claiming to be someone else: signed with sales' key, iss of another agent.
    pytest.param(
        lambda w: w.assertion(claims={"iss": "support", "sub": "support"}), id="iss-support"
    ),
    pytest.param(
        lambda w: w.assertion(claims={"iss": "inventory", "sub": "inventory"}),
        id="iss-inventory",
    ),
    pytest.param(
        lambda w: w.assertion(claims={"iss": "nobody", "sub": "nobody"}), id="iss-unknown"
    ),
    pytest.param(lambda w: w.assertion(claims={"sub": "support"}), id="sub-not-iss"),
    pytest.param(lambda w: w.assertion(claims={"iss": DROP}), id="iss-missing"),
    pytest.param(lambda w: w.assertion(claims={"iss": ["sales"]}), id="iss-as-list"),
    # Tokens that are valid -- but not an agent's assertion.
    pytest.param(lambda w: w.delegated, id="the-delegated-token"),
    pytest.param(lambda w: w.user_token, id="a-user-token"),
    pytest.param(lambda w: "not-a-jwt", id="garbage"),
    pytest.param(lambda w: "\u00e9.\u00e9.\u00e9", id="non-ascii"),
    pytest.param(
        lambda w: w.assertion(claims={"iss": "sa\u0000les", "sub": "sa\u0000les"}),
        id="iss-with-nul",
    ),
    pytest.param(
        lambda w: w.assertion() + "!!!!",
        id="signature-junk-appended",
    ),
]


@pytest.mark.parametrize(
    ("parameter", "kind"),
    [("actor_token", JWT_TOKEN_TYPE), ("client_assertion", JWT_BEARER_ASSERTION)],
)
@pytest.mark.parametrize("attack", CLIENT_ATTACKS)
def test_forged_agent_assertions_are_invalid_client(
    w: World, parameter: str, kind: str, attack: Attack
) -> None:
    form = exchange_form(
        w.user_token, "inventory", **{parameter: attack(w), f"{parameter}_type": kind}
    )
    assert_oauth_error(post_token(w, form), 401, "invalid_client")


def test_a_respelled_assertion_gets_no_second_token(w: World) -> None:
    """A used assertion re-spelled is refused: the JWS decoding is canonical, and
    the replay check keys on the verified jti anyway."""
    assertion = w.assertion()
    extra = {"actor_token_type": JWT_TOKEN_TYPE}
    first = post_token(w, exchange_form(w.user_token, "inventory", actor_token=assertion, **extra))
    assert first.status_code == 200, first.text
    again = exchange_form(w.user_token, "inventory", actor_token=assertion + "!!!!", **extra)
    assert_oauth_error(post_token(w, again), 401, "invalid_client")


BASIC_ATTACKS: list[Any] = [
    pytest.param("Basic", id="no-credentials"),
    pytest.param("Basic =", id="padding-only"),
    pytest.param("Basic !!!!", id="not-base64"),
    pytest.param("Basic c3VwcG9ydA", id="unpadded-base64"),
    pytest.param("Basic " + base64.b64encode(b"support").decode(), id="no-colon"),
    pytest.param("Basic " + base64.b64encode(b":secret").decode(), id="empty-client-id"),
    pytest.param("Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(), id="not-utf8"),
    pytest.param(basic("support", "sbs_wrong"), id="wrong-secret"),
    pytest.param(basic("support", ""), id="empty-secret"),
    pytest.param(basic("nobody", "sbs_x"), id="unknown-client"),
    pytest.param(basic("sales", "sbs_x"), id="key-client-with-a-secret"),
    # RFC 6749 Appendix A.1: a client_id is VSCHARs; NUL can never name a client.
    pytest.param("Basic " + base64.b64encode(b"sup\x00port:x").decode(), id="nul-in-client-id"),
    pytest.param("Digest username=support", id="digest-scheme"),
    pytest.param(
        b"Basic \xc3\xa9\xc3\xa9",
        id="non-ascii-bytes",
    ),
]


@pytest.mark.parametrize("authorization", BASIC_ATTACKS)
def test_bad_basic_credentials_are_invalid_client(w: World, authorization: str | bytes) -> None:
    response = post_token(w, exchange_form(w.user_token), authorization)
    assert_oauth_error(response, 401, "invalid_client")


def test_a_bearer_token_is_not_client_authentication(w: World) -> None:
    # A perfectly valid access token where Basic credentials belong.
    response = post_token(w, exchange_form(w.user_token), f"Bearer {w.token()}")
    assert_oauth_error(response, 401, "invalid_client")


def test_client_id_must_match_the_credentials(w: World) -> None:
    form = exchange_form(w.user_token, client_id="inventory")
    assert_oauth_error(post_token(w, form, support_basic(w)), 401, "invalid_client")


_FORM_TYPE = "application/x-www-form-urlencoded"
Body = Callable[[World], bytes]


def _form(*extra: str, **changes: str) -> Body:
    """A valid support -> sales exchange as raw form bytes, then bent: ``changes``
    replace or (as "") drop parameters, ``extra`` is appended raw."""

    def body(w: World) -> bytes:
        params = {**exchange_form(w.user_token), **changes}
        fields = [f"{k}={v}" for k, v in params.items() if v != ""] + list(extra)
        return "&".join(fields).encode("utf-8")

    return body


def _json_body(w: World) -> bytes:
    return json.dumps(exchange_form(w.user_token)).encode()


BODY_ATTACKS: list[Any] = [
    pytest.param("application/json", _json_body, "invalid_request", id="json-body"),
    pytest.param(_FORM_TYPE, _json_body, "invalid_request", id="json-body-labelled-form"),
    pytest.param("multipart/form-data; boundary=x", _form(), "invalid_request", id="multipart"),
    pytest.param(None, _form(), "invalid_request", id="no-content-type"),
    pytest.param("text/plain", _form(), "invalid_request", id="text-plain"),
    pytest.param(_FORM_TYPE, lambda w: b"", "invalid_request", id="empty-body"),
    pytest.param(_FORM_TYPE, _form("grant_type=x"), "invalid_request", id="duplicate-grant"),
    pytest.param(_FORM_TYPE, _form("subject_token=x"), "invalid_request", id="duplicate-subject"),
    pytest.param(_FORM_TYPE, _form("audience=sales"), "invalid_request", id="duplicate-audience"),
    pytest.param(
        _FORM_TYPE, _form("resource=a", "resource=b"), "invalid_request", id="duplicate-resource"
    ),
    pytest.param(_FORM_TYPE, _form("sc\u00f6pe=x"), "invalid_request", id="non-ascii-name"),
    pytest.param(_FORM_TYPE, _form("scope=\u00e9"), "invalid_request", id="non-ascii-value"),
    pytest.param(
        _FORM_TYPE, lambda w: _form()(w) + b"&x=\xff", "invalid_request", id="latin1-byte"
    ),
    pytest.param(_FORM_TYPE, _form("justaname"), "invalid_request", id="field-without-equals"),
    pytest.param(_FORM_TYPE, _form("pad=" + "p" * 70_000), "invalid_request", id="form-over-64KiB"),
    pytest.param(_FORM_TYPE, _form(grant_type=""), "invalid_request", id="grant-type-missing"),
    pytest.param(_FORM_TYPE, _form(subject_token=""), "invalid_request", id="subject-missing"),
    pytest.param(
        _FORM_TYPE, _form("subject_token="), "invalid_request", id="subject-twice-once-empty"
    ),
    pytest.param(
        _FORM_TYPE,
        _form(subject_token_type="urn:x:saml"),
        "invalid_request",
        id="subject-token-type-unknown",
    ),
    pytest.param(
        _FORM_TYPE, _form("actor_token=abc.def.ghi"), "invalid_request", id="actor-token-untyped"
    ),
    pytest.param(
        _FORM_TYPE,
        _form(grant_type="client_credentials"),
        "unsupported_grant_type",
        id="grant-client-credentials",
    ),
    pytest.param(
        _FORM_TYPE,
        _form("username=a", "password=b", grant_type="password"),
        "unsupported_grant_type",
        id="grant-password",
    ),
]


@pytest.mark.parametrize(("content_type", "body", "error"), BODY_ATTACKS)
def test_malformed_token_requests_are_400(
    w: World, content_type: str | None, body: Body, error: str
) -> None:
    # support's credentials are good: only the body is wrong.
    headers = {"Authorization": support_basic(w)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = w.http.post(w.url + "/oauth/token", content=body(w), headers=headers)
    assert_oauth_error(response, 400, error)


def test_an_oversized_token_request_is_413_not_500(w: World) -> None:
    # Past the gateway-wide body limit the request never reaches the token endpoint.
    content = _form("pad=" + "p" * (1024 * 1024))(w)
    response = w.http.post(
        w.url + "/oauth/token",
        content=content,
        headers={"Authorization": support_basic(w), "Content-Type": _FORM_TYPE},
    )
    assert response.status_code == 413, response.text


# PostgreSQL: a NUL byte must not reach the database --------------------------------------


@pytest.mark.postgres
def test_nul_bytes_are_refused_before_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can, so the module's deployment
    passes these): an identifier with one names nobody and must be refused as
    such, not answered 503 "database unavailable" with the query in the log."""
    closing = {"Connection": "close"}
    with (
        deployment(tmp_path, postgres_url) as dep,
        httpx.Client(timeout=30, headers=closing, verify=client_tls()) as http,
    ):
        user = dep.gateway.token("alice", USER_SCOPES)
        secret = dep["support"].secret
        assert secret is not None
        support = basic("support", secret)
        nul_assertion = dep["sales"].assertion(dep.gateway.url, iss="sa\x00les", sub="sa\x00les")
        cases: dict[str, tuple[dict[str, str], str | None]] = {
            "basic-client-id": (exchange_form(user), basic("sup\x00port", "x")),
            "post-client-id": (
                exchange_form(user, client_id="sup\x00port", client_secret="x"),
                None,
            ),
            "assertion-iss": (
                exchange_form(
                    user, client_assertion=nul_assertion, client_assertion_type=JWT_BEARER_ASSERTION
                ),
                None,
            ),
            "audience": (exchange_form(user, "sa\x00les"), support),
            "resource": (exchange_form(user, resource="http://x/\x00"), support),
        }
        outcomes: dict[str, tuple[int, str | None]] = {}
        for name, (form, authorization) in cases.items():
            headers = {} if authorization is None else {"Authorization": authorization}
            response = http.post(dep.gateway.url + "/oauth/token", data=form, headers=headers)
            body = response.json()
            shaped = set(body) == {"error", "error_description"}
            outcomes[name] = (response.status_code, body.get("error") if shaped else None)
        # Any RFC 6749 refusal will do (invalid_client, invalid_target or
        # invalid_request, depending on where a fix refuses it); a 5xx will not.
        assert all(status in (400, 401) and error for status, error in outcomes.values()), outcomes

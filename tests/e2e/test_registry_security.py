"""Hostile input against a running gateway: auth, bad bodies, SSRF, signed cards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from a2a.utils.signing import create_agent_card_signer
from google.protobuf.json_format import MessageToDict

from policies.keys import SigningKey
from registry.tls import client_tls
from tests.support.agents import CardHost, sdk_card, v03_card
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread

# Authentication -----------------------------------------------------------------


def test_missing_and_bad_tokens_get_401_with_a_challenge(gateway: Gateway) -> None:
    metadata = f'resource_metadata="{gateway.url}/.well-known/oauth-protected-resource"'
    with gateway.anonymous() as client:
        missing = client.get("/agents")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer ")
        assert metadata in missing.headers["www-authenticate"]
        assert missing.headers["content-type"] == "application/problem+json"
        for header in (
            "Bearer",
            "Basic YWxpY2U6c2VjcmV0",
            "Bearer a.b.c",
            "Bearer " + "x" * 20000,
        ):
            response = client.get("/agents", headers={"Authorization": header})
            assert response.status_code == 401, header[:20]
            assert metadata in response.headers["www-authenticate"]
        garbage = client.get("/agents", headers={"Authorization": "Bearer not-a-jwt"})
        assert 'error="invalid_token"' in garbage.headers["www-authenticate"]


def test_expired_foreign_and_forged_tokens_are_refused(gateway: Gateway) -> None:
    cases = {
        "expired": gateway.mint(now=time.time() - 3600, ttl=60),
        "audience": gateway.mint(audience="https://other.example"),
        "issuer": gateway.mint(issuer=gateway.url + "/"),
    }
    good = gateway.mint()
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    no_alg = {k: v for k, v in header.items() if k != "alg"}
    cases["algorithm"] = jwt.encode(claims, "k" * 32, algorithm="HS256", headers=no_alg)
    with gateway.anonymous() as client:
        assert client.get("/agents", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        for expected, token in cases.items():
            response = client.get("/agents", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, expected
            assert expected in response.json()["detail"], response.json()


def test_admin_scope_is_needed_for_writes(gateway: Gateway, sdk_agent: ServerThread) -> None:
    with gateway.client(admin=False) as reader:
        response = reader.post("/agents", json={"card_url": sdk_agent.url})
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert (
            'error="insufficient_scope"' in challenge and 'scope="switchboard:admin"' in challenge
        )
        assert reader.get("/agents").status_code == 200
    with gateway.client() as admin:
        assert admin.post("/agents", json={"card_url": sdk_agent.url}).status_code == 201
    with gateway.client(admin=False) as reader:
        assert reader.get("/agents/inventory-agent").status_code == 200
        assert reader.delete("/agents/inventory-agent").status_code == 403
        assert reader.post("/agents/inventory-agent/refresh").status_code == 403
        assert reader.get("/agents/inventory-agent").status_code == 200


def test_protected_resource_metadata_and_jwks(gateway: Gateway) -> None:
    metadata = httpx.get(
        gateway.url + "/.well-known/oauth-protected-resource", verify=client_tls()
    ).json()
    assert metadata["resource"] == gateway.url
    assert gateway.url in metadata["authorization_servers"]
    assert metadata["bearer_methods_supported"] == ["header"]
    jwks = httpx.get(gateway.url + "/.well-known/jwks.json", verify=client_tls()).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["kid"]
    assert "d" not in key  # never the private half
    token = gateway.token("alice", "crm:read")
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=gateway.url)
    assert claims["sub"] == "alice" and claims["scope"] == "crm:read"


def test_probes_and_docs(gateway: Gateway) -> None:
    assert httpx.get(gateway.url + "/healthz", verify=client_tls()).json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/readyz", verify=client_tls()).json()["status"] == "ready"
    assert (
        "/agents" in httpx.get(gateway.url + "/openapi.json", verify=client_tls()).json()["paths"]
    )
    assert httpx.get(gateway.url + "/docs", verify=client_tls()).status_code == 200


# Bad input: a clear error, nothing lost ------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_BODIES: list[tuple[str, bytes | str, int, str]] = [
    ("malformed json", b'{"card_url": ', 400, "malformed-json"),
    ("not an object", b'"https://x.example"', 422, "invalid-request"),
    ("wrong type", json.dumps({"card_url": 5}), 422, "invalid-request"),
    (
        "both sources",
        json.dumps({"card_url": "https://a.example", "card": {}}),
        422,
        "invalid-request",
    ),
    ("neither source", json.dumps({"id": "x"}), 422, "invalid-request"),
    (
        "unknown field",
        json.dumps({"card_url": "https://a.example", "admin": True}),
        422,
        "invalid-request",
    ),
    (
        "bad slug",
        json.dumps({"card": v03_card("https://a.example"), "id": "Bad Slug!"}),
        422,
        "invalid-request",
    ),
    ("card not object", json.dumps({"card": ["x"]}), 422, "invalid-request"),
    ("empty card", json.dumps({"card": {}}), 422, "invalid-card"),
    (
        "card wrong types",
        json.dumps({"card": {**v03_card("https://a.example"), "skills": "x"}}),
        422,
        "invalid-card",
    ),
    (
        "huge integer",
        json.dumps({"card": {**v03_card("https://a.example"), "x": 2**70}}),
        422,
        "invalid-card",
    ),
    (
        "bad interface url",
        json.dumps({"card": {**v03_card("https://a.example"), "url": "javascript:x"}}),
        422,
        "invalid-card",
    ),
    (
        "signing keys not jwks",
        json.dumps({"card": v03_card("https://a.example"), "signing_keys": {"k": 1}}),
        422,
        "invalid-request",
    ),
    (
        "deep nesting",
        '{"card": ' + '{"a":' * 100000 + "1" + "}" * 100001,
        400,
        "",
    ),  # FastAPI refuses to parse it
    (
        "deep card",
        json.dumps({"card": {**v03_card("https://a.example"), "x": _nested(900)}}),
        400,
        "too-deep",  # the one JSON depth limit of every door (max_json_depth)
    ),
    (
        "card nested past the depth limit",
        json.dumps({"card": {**v03_card("https://a.example"), "x": _nested(70)}}),
        400,
        "too-deep",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "slug"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_bad_registrations_fail_clearly_and_lose_nothing(
    gateway: Gateway, name: str, body: bytes | str, status: int, slug: str
) -> None:
    with gateway.client() as client:
        existing = client.post(
            "/agents", json={"card": v03_card("https://keep.example"), "id": "keep"}
        ).json()
        response = client.post(
            "/agents", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, response.text
        problem = response.json()
        assert problem["status"] == status
        if slug:
            assert problem["type"] == f"urn:switchboard:problem:{slug}"
        assert "Traceback" not in response.text
        assert [a["id"] for a in client.get("/agents").json()["items"]] == ["keep"]
        assert client.get("/agents/keep").json() == existing


def test_invalid_card_names_the_fields(gateway: Gateway) -> None:
    card = v03_card("https://a.example")
    del card["name"], card["version"]
    card["skills"] = []
    with gateway.client() as client:
        response = client.post("/agents", json={"card": card})
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert {"name", "version", "skills"} <= fields
        card = v03_card("https://a.example")
        card["skills"][0]["id"] = 7
        response = client.post("/agents", json={"card": card})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "skills.id"


def test_oversized_bodies_get_413(gateway: Gateway) -> None:
    big = json.dumps(
        {"card": {**v03_card("https://a.example"), "description": "x" * (2 * 1024 * 1024)}}
    )
    with gateway.client() as client:
        assert (
            client.post(
                "/agents", content=big, headers={"Content-Type": "application/json"}
            ).status_code
            == 413
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
            data = big.encode()
            for i in range(0, len(data), 65536):
                yield data[i : i + 65536]

        response = client.post(
            "/agents", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["type"] == "urn:switchboard:problem:body-too-large"
    with gateway.client() as client:
        assert client.get("/agents").json()["items"] == []


def test_unknown_agent_and_routes(gateway: Gateway) -> None:
    with gateway.client() as client:
        for method, path in (
            ("GET", "/agents/ghost"),
            ("GET", "/agents/ghost/card"),
            ("GET", "/agents/ghost/versions"),
            ("DELETE", "/agents/ghost"),
            ("POST", "/agents/ghost/refresh"),
            ("GET", "/nope"),
        ):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
        assert client.put("/agents").status_code == 405


def test_unreachable_card_url_is_a_502(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread]
) -> None:
    host, server = card_host
    server_url = server.url
    with gateway.client() as client:
        closed = client.post("/agents", json={"card_url": "http://127.0.0.1:9/"})
        assert closed.status_code == 502
        host.documents["/broken.json"] = (500, {"error": "boom"})
        assert (
            client.post("/agents", json={"card_url": server_url + "/broken.json"}).status_code
            == 502
        )
        host.documents["/list.json"] = (200, ["not", "a", "card"])
        assert (
            client.post("/agents", json={"card_url": server_url + "/list.json"}).status_code == 422
        )


# SSRF through the API -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[fe80::1]/",
        "http://10.0.0.1/",
        "http://0x7f.1/",
        "http://2130706433/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
def test_dev_mode_still_refuses_non_loopback_private_and_metadata(
    gateway: Gateway, url: str
) -> None:
    with gateway.client() as client:
        response = client.post("/agents", json={"card_url": url})
        assert response.status_code == 422, response.text
        if url.startswith("http"):
            assert response.json()["type"] == "urn:switchboard:problem:url-refused"
        else:  # no http(s) URL at all: the request's shape is wrong, before any policy
            assert response.json()["type"] == "urn:switchboard:problem:invalid-request"
            assert response.json()["errors"][0]["field"] == "body.card_url"


def test_redirects_are_checked_at_every_hop(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread]
) -> None:
    host, server = card_host
    redirector = _Redirector()
    with ServerThread(lambda _url: redirector) as redirect_server, gateway.client() as client:
        redirector.target = "http://169.254.169.254/latest/meta-data/iam/"
        response = client.post("/agents", json={"card_url": redirect_server.url + "/card.json"})
        assert response.status_code == 422
        assert "169.254.169.254" in response.json()["detail"]
        host.documents["/card.json"] = (200, v03_card(server.url))
        redirector.target = server.url + "/card.json"
        followed = client.post("/agents", json={"card_url": redirect_server.url + "/card.json"})
        assert followed.status_code == 201, followed.text
        assert followed.json()["card_url"] == redirect_server.url + "/card.json"  # as registered


class _Redirector:
    """A raw ASGI app that redirects every request to ``target``."""

    target = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", self.target.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def idp(card_host: tuple[CardHost, ServerThread]) -> Iterator[tuple[SigningKey, str]]:
    """An external OIDC issuer: its JWKS on a real HTTP server, tokens signed with PyJWT."""
    host, server = card_host
    key = SigningKey.generate()
    host.documents["/jwks"] = (200, {"keys": [key.public_jwk]})
    yield key, server.url + "/jwks"


def _idp_token(key: SigningKey, audience: str, scope: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://idp.example",
        "sub": "ops",
        "aud": audience,
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        **extra,
    }
    return jwt.encode(
        claims, key.private_key_pem, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"}
    )


def _production_gateway(tmp_path: Path, jwks_url: str, **overrides: Any) -> Gateway:
    """A gateway outside --dev that trusts only the test IdP."""
    return start_gateway(
        tmp_path / "data",
        None,
        dev=False,
        secret_key="s" * 40,
        trusted_issuers=[{"issuer": "https://idp.example", "jwks_url": jwks_url}],
        **overrides,
    )


def test_production_mode_refuses_loopback_and_trusts_only_configured_issuers(
    tmp_path: Path, idp: tuple[SigningKey, str], sdk_agent: ServerThread
) -> None:
    key, jwks_url = idp
    gateway = _production_gateway(tmp_path, jwks_url)
    try:
        admin = _idp_token(key, gateway.url, "switchboard:admin")
        with httpx.Client(
            base_url=gateway.url, headers={"Authorization": f"Bearer {admin}"}, verify=client_tls()
        ) as client:
            for url in (sdk_agent.url, "http://localhost:1/", "http://[::1]:1/", "http://127.1:1/"):
                response = client.post("/agents", json={"card_url": url})
                assert response.status_code == 422, url
                assert response.json()["type"] == "urn:switchboard:problem:url-refused"
            assert client.get("/agents").status_code == 200
        # The dev issuer's tokens are not accepted outside --dev, even though the key is ours.
        dev_token = gateway.token("admin", "switchboard:admin")
        refused = httpx.get(
            gateway.url + "/agents",
            headers={"Authorization": f"Bearer {dev_token}"},
            verify=client_tls(),
        )
        assert refused.status_code == 401
        assert "--dev" in refused.json()["detail"]
        # An ID token (typ JWT) from the trusted issuer is not an access token.
        id_token = jwt.encode(
            jwt.decode(admin, options={"verify_signature": False}) | {"nonce": "n"},
            key.private_key_pem,
            algorithm="ES256",
            headers={"kid": key.kid, "typ": "JWT"},
        )
        assert (
            httpx.get(
                gateway.url + "/agents",
                headers={"Authorization": f"Bearer {id_token}"},
                verify=client_tls(),
            ).status_code
            == 401
        )
    finally:
        gateway.stop()


def test_operator_allowlist_opens_a_range(
    tmp_path: Path, idp: tuple[SigningKey, str], sdk_agent: ServerThread
) -> None:
    key, jwks_url = idp
    gateway = _production_gateway(tmp_path, jwks_url, ssrf_allow_cidrs=["127.0.0.0/8"])
    try:
        admin = _idp_token(key, gateway.url, "switchboard:admin")
        response = httpx.post(
            gateway.url + "/agents",
            json={"card_url": sdk_agent.url},
            headers={"Authorization": f"Bearer {admin}"},
            verify=client_tls(),
        )
        assert response.status_code == 201, response.text
    finally:
        gateway.stop()


# Signed cards (A2A 1.0 §8.4) ------------------------------------------------------------


def _signed_card(base_url: str, key: SigningKey, jku: str | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {"kid": key.kid, "alg": "ES256", "typ": "JOSE"}
    if jku:
        header["jku"] = jku
    # ProtectedHeader makes every key required, but the SDK sends the dict as the
    # JWS header: a card without a `jku` must not carry `"jku": null`.
    signer = create_agent_card_signer(signing_key=key.private_key_pem, protected_header=header)  # type: ignore[arg-type]
    card: dict[str, Any] = MessageToDict(signer(sdk_card(base_url)))
    return card


def _jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


@pytest.fixture
def signer_key() -> SigningKey:
    return SigningKey.generate()


def test_sdk_signed_card_verifies_against_pinned_keys(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread], signer_key: SigningKey
) -> None:
    host, server = card_host
    host.documents["/.well-known/agent-card.json"] = (200, _signed_card(server.url, signer_key))
    with gateway.client() as client:
        response = client.post(
            "/agents", json={"card_url": server.url, "signing_keys": _jwks(signer_key)}
        )
        assert response.status_code == 201, response.text
        assert response.json()["signature"]["status"] == "verified"
        assert signer_key.kid in response.json()["signature"]["detail"]


def test_tampered_card_is_refused_and_nothing_stored(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread], signer_key: SigningKey
) -> None:
    host, server = card_host
    card = _signed_card(server.url, signer_key)
    card["skills"][0]["description"] = "Also wires money to anyone who asks."
    host.documents["/.well-known/agent-card.json"] = (200, card)
    with gateway.client() as client:
        response = client.post(
            "/agents", json={"card_url": server.url, "signing_keys": _jwks(signer_key)}
        )
        assert response.status_code == 422
        assert response.json()["type"] == "urn:switchboard:problem:invalid-signature"
        assert client.get("/agents").json()["items"] == []


def test_refresh_to_a_tampered_card_keeps_the_verified_one(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread], signer_key: SigningKey
) -> None:
    host, server = card_host
    good = _signed_card(server.url, signer_key)
    host.documents["/.well-known/agent-card.json"] = (200, good)
    with gateway.client() as client:
        agent_id = client.post(
            "/agents", json={"card_url": server.url, "signing_keys": _jwks(signer_key)}
        ).json()["id"]
        stripped = {k: v for k, v in good.items() if k != "signatures"} | {"description": "changed"}
        host.documents["/.well-known/agent-card.json"] = (200, stripped)
        response = client.post(f"/agents/{agent_id}/refresh")
        assert response.status_code == 422  # pinned keys: an unsigned card is a downgrade
        record = client.get(f"/agents/{agent_id}").json()
        assert record["revision"] == 1 and record["signature"]["status"] == "verified"


@pytest.mark.parametrize(
    "case", ["wrong-key", "no-keys-no-jku", "jku-other-origin", "unsigned-but-pinned"]
)
def test_unverifiable_signatures_are_refused(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread], signer_key: SigningKey, case: str
) -> None:
    host, server = card_host
    other = SigningKey.generate()
    body: dict[str, Any] = {"card_url": server.url}
    if case == "wrong-key":
        card = _signed_card(server.url, signer_key)
        body["signing_keys"] = _jwks(other)
    elif case == "no-keys-no-jku":
        card = _signed_card(server.url, signer_key)
    elif case == "jku-other-origin":
        card = _signed_card(server.url, signer_key, jku="http://127.0.0.2:1/jwks.json")
    else:
        card = MessageToDict(sdk_card(server.url))
        body["signing_keys"] = _jwks(signer_key)
    host.documents["/.well-known/agent-card.json"] = (200, card)
    with gateway.client() as client:
        response = client.post("/agents", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "urn:switchboard:problem:invalid-signature"
        assert client.get("/agents").json()["items"] == []


def test_jku_on_the_cards_own_origin_is_followed(
    gateway: Gateway, card_host: tuple[CardHost, ServerThread], signer_key: SigningKey
) -> None:
    host, server = card_host
    host.documents["/jwks.json"] = (200, _jwks(signer_key))
    host.documents["/.well-known/agent-card.json"] = (
        200,
        _signed_card(server.url, signer_key, jku=server.url + "/jwks.json"),
    )
    with gateway.client() as client:
        response = client.post("/agents", json={"card_url": server.url})
        assert response.status_code == 201, response.text
        assert response.json()["signature"]["status"] == "verified"
    assert host.hits["/jwks.json"] == 1


def test_unsigned_card_is_recorded_as_unsigned(gateway: Gateway, sdk_agent: ServerThread) -> None:
    with gateway.client() as client:
        record = client.post("/agents", json={"card_url": sdk_agent.url}).json()
        assert record["signature"] == {
            "status": "unsigned",
            "detail": "the card carries no signature",
        }


def test_a_card_cannot_carry_the_gateway_run_mark(gateway: Gateway) -> None:
    """The mark has the gateway run the agent itself (a vendor agent, a flow):
    no registered card may claim it, on registration or on a new revision."""
    mark = {
        "uri": "urn:switchboard:ext:gateway-run:v1",
        "required": False,
        "params": {"kind": "openai", "userOAuth": True},
    }
    card = MessageToDict(sdk_card("https://agent.example"))
    forged = {**card, "capabilities": {**card.get("capabilities", {}), "extensions": [mark]}}
    with gateway.client() as admin:
        refused = admin.post("/agents", json={"card": forged, "id": "forged"})
        assert refused.status_code == 422, refused.text
        assert "gateway-run" in refused.text
        assert admin.get("/agents/forged").status_code == 404
        assert admin.post("/agents", json={"card": card, "id": "honest"}).status_code == 201
        again = admin.post("/agents/honest/refresh", json={"card": forged})
        assert again.status_code == 422, again.text
        kept = admin.get("/agents/honest/card").json()
        assert "extensions" not in json.dumps(kept)

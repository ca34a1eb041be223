"""Delegated permissions end to end: user -> gateway -> support -> sales -> inventory.

Real pieces only: the gateway under uvicorn with a policy file, three
official-SDK A2A agents on 127.0.0.1 that record what they receive, tokens
verified the way a downstream agent would (PyJWT against the published JWKS).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from google.protobuf.json_format import MessageToDict

from registry.tls import client_tls
from tests.support.delegation import AGENT_SKILLS, USER_SCOPES, Deployment, deployment
from tests.support.inspecting import agent_card, send_message_body, verify_as_downstream
from tests.support.servers import refusing_port
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def dep(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Deployment]:
    """One deployment for the module's tests that leave its policy and its
    agents be, and read what their own calls did."""
    with deployment(tmp_path_factory.mktemp("delegation"), module_database_url) as d:
        yield d


@pytest.fixture
def own_dep(tmp_path: Path, database_url: str | None) -> Iterator[Deployment]:
    """A deployment of the test's own: the test rewrites the policy, registers
    agents the others would list, or counts the whole audit log."""
    with deployment(tmp_path, database_url) as d:
        yield d


def _first_hop(dep: Deployment, user_token: str) -> str:
    """The user's SendMessage to support; returns the token support received."""
    response = dep.send("support", user_token, "bulk order of 500 X-100, please")
    assert response.status_code == 200, response.text
    assert "echo: bulk order" in response.text
    token = dep["support"].recorder.calls()[-1].bearer
    assert token is not None
    return token


def test_chain_carries_only_the_users_rights(dep: Deployment) -> None:
    gw = dep.gateway
    user_token = gw.token("alice", USER_SCOPES)

    # Hop 1: user -> support, through the gateway's front door.
    to_support = _first_hop(dep, user_token)
    claims = verify_as_downstream(to_support, gw.url, dep["support"].resource)
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": "alice"}
    assert claims["scope"].split() == ["inventory:read", "sales:quote", "support:write"]
    assert claims["exp"] - claims["iat"] <= 300
    assert jwt.get_unverified_header(to_support)["kid"]

    # Hop 2: support exchanges its token for one to sales (client_secret_basic).
    response = dep.exchange(to_support, by="support", audience="sales")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    to_sales = body["access_token"]
    claims2 = verify_as_downstream(to_sales, gw.url, dep["sales"].resource)
    assert claims2["sub"] == "alice"
    assert claims2["act"] == {"sub": "support", "act": {"sub": "alice"}}
    assert set(claims2["scope"].split()) == {"sales:quote", "inventory:read"}
    assert claims2["client_id"] == "support"
    assert claims2["exp"] <= claims["exp"] + 300

    # Hop 3: sales (its own key, actor_token) asks for inventory, narrowing further.
    response = dep.exchange(
        to_sales, by="sales", resource=dep["inventory"].resource, scope="inventory:read"
    )
    assert response.status_code == 200, response.text
    to_inventory = response.json()["access_token"]
    claims3 = verify_as_downstream(to_inventory, gw.url, dep["inventory"].resource)
    assert claims3["act"] == {
        "sub": "sales",
        "act": {"sub": "support", "act": {"sub": "alice"}},
    }
    assert claims3["scope"] == "inventory:read"
    assert claims3["sub"] == "alice"

    # The user's own token never reached any upstream: not in headers, body or query.
    for agent in dep.agents.values():
        for seen in agent.recorder.seen:
            assert not seen.contains(user_token), f"user token leaked to {agent.id}"
            assert not seen.contains(user_token.split(".")[2]), "user token signature leaked"


def test_scopes_only_shrink_and_requests_beyond_the_subject_are_refused(dep: Deployment) -> None:
    to_support = _first_hop(dep, dep.gateway.token("alice", USER_SCOPES))
    # hr:read was the user's, but support never received it: asking for it fails.
    response = dep.exchange(to_support, by="support", audience="sales", scope="hr:read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    # Neither can it ask for something the user never had.
    response = dep.exchange(to_support, by="support", audience="sales", scope="inventory:write")
    assert response.json()["error"] == "invalid_scope"


def test_cycle_and_depth_are_refused(own_dep: Deployment, tmp_path: Path) -> None:
    dep = own_dep
    to_support = _first_hop(dep, dep.gateway.token("alice", USER_SCOPES))
    to_sales = dep.exchange(to_support, by="support", audience="sales").json()["access_token"]
    # sales -> support would be support acting twice: A -> B -> A.
    response = dep.exchange(to_sales, by="sales", audience="support")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert "already acted" in response.json()["error_description"]
    # An agent delegating to itself is a cycle too.
    response = dep.exchange(to_support, by="support", audience="support")
    assert response.json()["error"] == "invalid_target"

    # Depth: tighten the policy to 2 hops; support -> sales -> inventory is the 3rd.
    dep.policy_path.write_text(dep.policy_path.read_text().replace("max_depth: 4", "max_depth: 2"))
    _wait_for_policy(dep, lambda p: p["policy"]["defaults"].get("max_depth") == 2)
    response = dep.exchange(to_sales, by="sales", audience="inventory")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert "depth 3 exceeds the limit of 2" in response.json()["error_description"]


def test_a_delegated_token_works_only_for_the_agent_it_was_minted_for(dep: Deployment) -> None:
    to_support = _first_hop(dep, dep.gateway.token("alice", USER_SCOPES))
    # inventory (authenticated as itself) presents the token minted for support.
    response = dep.exchange(to_support, by="inventory", audience="sales")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "not the party presenting it" in response.json()["error_description"]
    # Without any client authentication nobody gets anything.
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": to_support,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "sales",
    }
    response = httpx.post(dep.gateway.url + "/oauth/token", data=form, verify=client_tls())
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    # Wrong secret.
    response = httpx.post(
        dep.gateway.url + "/oauth/token",
        data=form,
        auth=("support", "sbs_wrong"),
        verify=client_tls(),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_client_authentication_methods(dep: Deployment) -> None:
    to_support = _first_hop(dep, dep.gateway.token("alice", USER_SCOPES))
    for method in ("basic", "post"):
        response = dep.exchange(to_support, by="support", audience="sales", method=method)
        assert response.status_code == 200, (method, response.text)
    to_sales = dep.exchange(to_support, by="support", audience="sales").json()["access_token"]
    for method in ("actor_token", "private_key_jwt"):
        response = dep.exchange(to_sales, by="sales", audience="inventory", method=method)
        assert response.status_code == 200, (method, response.text)
    # An assertion is single-use (RFC 7523 §3 jti).
    assertion = dep["sales"].assertion(dep.gateway.url, jti="replayed-jti-0001")
    extra = {"actor_token": assertion, "actor_token_type": "urn:ietf:params:oauth:token-type:jwt"}
    first = dep.exchange(to_sales, by="sales", audience="inventory", method="none", extra=extra)
    assert first.status_code == 200, first.text
    again = dep.exchange(to_sales, by="sales", audience="inventory", method="none", extra=extra)
    assert again.status_code == 401
    assert "already used" in again.json()["error_description"]


def test_policy_denials_on_the_front_door_and_what_the_user_may_see(dep: Deployment) -> None:
    gw = dep.gateway
    # Without support:write the user may not delegate to support at all.
    weak = gw.token("bob", "sales:quote")
    before = len(dep["support"].recorder.calls())
    response = dep.send("support", weak)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == -32000
    assert "support:write" in error["message"]
    assert len(dep["support"].recorder.calls()) == before, "a refused call must not reach the agent"
    # The agent listing shows bob only what he may use, by the same decision.
    with gw.client(weak) as client:
        visible = {a["id"] for a in client.get("/agents").json()["items"]}
        assert visible == {"sales", "inventory"}
        assert client.get("/agents/support").status_code == 404
        assert client.get("/agents/audit-bot/card").status_code == 404
        assert client.get("/agents/sales").status_code == 200
    with gw.client() as admin:  # admins see everything
        assert len(admin.get("/agents").json()["items"]) == 4
    # Forbidden outright by policy, even for a user with every scope.
    response = dep.send("audit-bot", gw.token("alice", USER_SCOPES))
    assert response.status_code == 403
    assert "policy forbids" in response.json()["error"]["message"]


def test_minted_tokens_are_cached_until_near_expiry(dep: Deployment) -> None:
    user_token = dep.gateway.token("alice", USER_SCOPES)
    _first_hop(dep, user_token)
    _first_hop(dep, user_token)
    first, second = (s.bearer for s in dep["support"].recorder.calls()[-2:])
    assert first == second, "the same (user, chain, target, scopes) reuses the minted token"
    # Another user gets a different token.
    _first_hop(dep, dep.gateway.token("carol", USER_SCOPES))
    third = dep["support"].recorder.calls()[-1].bearer
    assert third is not None and third != first
    assert jwt.decode(third, options={"verify_signature": False})["sub"] == "carol"


def test_audit_has_one_record_per_decision_and_no_tokens(
    own_dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    dep = own_dep
    caplog.set_level(logging.DEBUG)  # the gateway runs in this process: its logs land here
    gw = dep.gateway
    user_token = gw.token("alice", USER_SCOPES)
    to_support = _first_hop(dep, user_token)  # decision 1: allow
    to_sales = dep.exchange(to_support, by="support", audience="sales").json()[
        "access_token"
    ]  # decision 2: allow
    dep.exchange(to_sales, by="sales", audience="support")  # decision 3: deny (cycle)
    dep.send("support", gw.token("bob", "sales:quote"))  # decision 4: deny (missing scope)
    with gw.client() as admin:
        page = admin.get("/audit", params={"limit": 100}).json()
        records = page["items"]
        assert len(records) == 4
        assert [r["decision"] for r in reversed(records)] == ["allow", "allow", "deny", "deny"]
        first = records[-1]
        assert first["event"] == "a2a.SendMessage"
        assert first["subject"] == "alice"
        assert first["target"] == "support"
        assert first["actors"] == ["alice"]
        assert first["scopes_granted"] == ["inventory:read", "sales:quote", "support:write"]
        assert first["outcome"] == "ok"
        assert first["latency_ms"] > 0
        assert len(first["trace_id"]) == 32
        exchange = records[-2]
        assert exchange["event"] == "token_exchange"
        assert exchange["actors"] == ["alice", "support"]
        assert (
            exchange["token_id"] == jwt.decode(to_sales, options={"verify_signature": False})["jti"]
        )
        cycle = records[-3]
        assert cycle["outcome"] == "denied" and "already acted" in cycle["reasons"][0]

        # Filters and paging.
        assert {
            r["subject"] for r in admin.get("/audit", params={"user": "bob"}).json()["items"]
        } == {"bob"}
        denies = admin.get("/audit", params={"decision": "deny"}).json()["items"]
        assert len(denies) == 2
        by_agent = admin.get("/audit", params={"agent": "sales"}).json()["items"]
        assert [r["target"] for r in by_agent] == ["sales"]
        paged = admin.get("/audit", params={"limit": 3}).json()
        assert len(paged["items"]) == 3 and paged["next_cursor"]
        rest = admin.get("/audit", params={"limit": 3, "cursor": paged["next_cursor"]}).json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None
        assert admin.get("/audit", params={"cursor": "x'--"}).status_code == 400

        # JSON Lines export holds the same records and no token anywhere.
        export = admin.get("/audit", params={"format": "jsonl"})
        assert export.headers["content-type"].startswith("application/jsonl")
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [r["id"] for r in lines] == [r["id"] for r in records]
        for token in (user_token, to_support, to_sales):
            assert token not in export.text
            assert token.split(".")[2] not in export.text
        # Nor in anything the gateway logged, at any level. (The test agents
        # run in this process too, and the a2a-sdk logs request headers at
        # DEBUG: that is the agent's business, so only the gateway's side counts.)
        ours = ("gateway", "policies", "registry", "adapters", "httpx", "uvicorn", "sqlalchemy")
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ours)
        assert logged, "the gateway logged nothing at all: the check would be vacuous"
        for token in (user_token, to_support, to_sales):
            assert token.split(".")[2] not in logged
        # Non-admins may not read the audit log.
        with gw.client(user_token) as user:
            assert user.get("/audit").status_code == 403


def test_explain_says_what_the_gateway_does(dep: Deployment) -> None:
    with dep.gateway.client() as admin:
        audited = admin.get("/audit").json()["items"]
        result = admin.post(
            "/policies/explain",
            json={
                "user_scopes": USER_SCOPES,
                "chain": ["support"],
                "target": "sales",
            },
        ).json()
        assert result["decision"] == "allow"
        assert result["granted_scopes"] == ["inventory:read", "sales:quote"]
        assert result["depth"] == 2
        assert "agents.sales" in result["rules"]
        denied = admin.post(
            "/policies/explain",
            json={
                "user_scopes": "inventory:read",
                "target": "inventory",
                "action": "reserve-stock",
            },
        ).json()
        assert denied["decision"] == "deny"
        assert denied["denial"] == "missing_scope"
        assert "inventory:write" in denied["reasons"][0]
        unknown = admin.post("/policies/explain", json={"user_scopes": "", "target": "nobody"})
        assert unknown.status_code == 404
        bad = admin.post("/policies/explain", json={"user_scopes": 'a"b', "target": "sales"})
        assert bad.status_code == 422
    # Explain records nothing: it is not a decision that happened.
    with dep.gateway.client() as admin:
        assert admin.get("/audit").json()["items"] == audited


def test_policy_reload_keeps_the_old_policy_when_the_new_file_is_bad(own_dep: Deployment) -> None:
    dep = own_dep
    original = dep.policy_path.read_text()
    # A typo'd key under audit-bot, on line 17 of the file.
    dep.policy_path.write_text(original + "    surprise: true\n")
    with dep.gateway.client() as admin:
        wait_for(
            lambda: admin.get("/policies").json()["last_reload_error"] is not None,
            10,
            what="the bad file noticed",
        )
        state = admin.get("/policies").json()
        assert state["last_reload_error"].endswith(
            "policy.yaml:17: agents.audit-bot.surprise: unknown key"
        ), state["last_reload_error"]
        assert state["policy"]["agents"]["audit-bot"]["allow"] is False
    # Still enforced: the old policy is in force.
    assert dep.send("audit-bot", dep.gateway.token("alice", USER_SCOPES)).status_code == 403
    # A good file takes effect without a restart.
    dep.policy_path.write_text(original.replace("allow: false", "allow: true"))
    _wait_for_policy(
        dep, lambda p: p["policy"].get("agents", {}).get("audit-bot", {}).get("allow") is True
    )
    assert dep.send("audit-bot", dep.gateway.token("alice", USER_SCOPES)).status_code == 200


def test_approval_required_is_never_bypassed(own_dep: Deployment) -> None:
    """A target that needs approval is never called without it: a token handed
    out at /oauth/token would skip the human, so the exchange is refused, and
    the front door holds the call for an admin (tests/e2e/test_approvals.py)."""
    dep = own_dep
    dep.policy_path.write_text(
        dep.policy_path.read_text().replace(
            "    require: [sales:quote]\n", "    require: [sales:quote]\n    approval: true\n"
        )
    )
    _wait_for_policy(dep, lambda p: p["policy"]["agents"]["sales"].get("approval") is True)
    user_token = dep.gateway.token("alice", USER_SCOPES)
    to_support = _first_hop(dep, user_token)
    response = dep.exchange(to_support, by="support", audience="sales")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert "human approval" in response.json()["error_description"]
    sent = dep.send("sales", user_token)
    assert sent.status_code == 200
    assert sent.json()["result"]["task"]["status"]["state"] == "TASK_STATE_AUTH_REQUIRED"
    assert not dep["sales"].recorder.calls()
    with dep.gateway.client() as admin:
        outcomes = [
            r["outcome"] for r in admin.get("/audit", params={"agent": "sales"}).json()["items"]
        ]
    assert outcomes == ["approval_required", "denied"]


def test_authorization_server_metadata(dep: Deployment) -> None:
    metadata = httpx.get(
        dep.gateway.url + "/.well-known/oauth-authorization-server", verify=client_tls()
    ).json()
    assert metadata["issuer"] == dep.gateway.url
    assert metadata["token_endpoint"] == dep.gateway.url + "/oauth/token"
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "HS256" not in metadata["token_endpoint_auth_signing_alg_values_supported"]


def _wait_for_policy(dep: Deployment, ready: object) -> None:
    assert callable(ready)
    with dep.gateway.client() as admin:
        wait_for(
            lambda: ready(admin.get("/policies").json()), 10, what="the policy change picked up"
        )


def test_bad_input_on_the_a2a_front_door_gets_json_rpc_errors(dep: Deployment) -> None:
    url = dep.gateway.url + "/a2a/support"
    headers = {"Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}"}
    before = len(dep["support"].recorder.calls())

    def post(content: bytes, path: str = url) -> httpx.Response:
        return httpx.post(
            path,
            content=content,
            headers={**headers, "Content-Type": "application/json"},
            verify=client_tls(),
        )

    cases = [
        (b"{not json", 200, -32700),
        (b'["an", "array"]', 200, -32600),
        (b'{"jsonrpc": "1.0", "method": "SendMessage", "id": 1}', 200, -32600),
        (b'{"jsonrpc": "2.0", "method": 7, "id": 1}', 200, -32600),
        (b'{"jsonrpc": "2.0", "method": "tasks/launchMissiles", "id": 1}', 200, -32601),
        (b"[" * 100_000, 200, -32700),  # nesting bomb: RecursionError is caught
    ]
    for body, status, code in cases:
        response = post(body)
        assert response.status_code == status, (body[:40], response.text)
        assert response.json()["error"]["code"] == code, (body[:40], response.text)
    unknown = post(json.dumps(send_message_body("hi")).encode(), dep.gateway.url + "/a2a/nobody")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == -32000
    oversized = post(b'{"jsonrpc": "2.0", "x": "' + b"a" * 2_000_000 + b'"}')
    assert oversized.status_code == 413
    no_token = httpx.post(url, json=send_message_body("hi"), verify=client_tls())
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert len(dep["support"].recorder.calls()) == before, "no bad request may reach the agent"


def test_a_dead_upstream_is_a_clear_error_and_is_audited(own_dep: Deployment) -> None:
    dep = own_dep
    # An agent whose interface is a port that refuses connections, held for
    # the test (a stopped server's own port could be given to another test's
    # server meanwhile, which would answer: seen once in CI).
    with refusing_port() as dead:
        url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        card = MessageToDict(agent_card("Gone", url, AGENT_SKILLS["inventory"]))
        with dep.gateway.client() as admin:
            added = admin.post("/agents", json={"card": card, "id": "gone"})
        assert added.status_code == 201, added.text
        # alice may check stock, not reserve it: her message names its skill.
        response = dep.send("gone", dep.gateway.token("alice", USER_SCOPES), skill="check-stock")
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32603
    assert error["message"] == "agent gone could not be reached (connection failed)"
    with dep.gateway.client() as admin:
        (record,) = admin.get("/audit", params={"agent": "gone"}).json()["items"]
    assert record["decision"] == "allow"
    assert record["event"] == "a2a.SendMessage"
    assert record["outcome"] == "a2a_error:InternalError"
    assert record["detail"] == error["message"]


def test_bad_credential_requests_lose_nothing(dep: Deployment) -> None:
    to_support = _first_hop(dep, dep.gateway.token("alice", USER_SCOPES))
    with dep.gateway.client() as admin:
        for body in (
            {"method": "password"},
            {"method": "client_secret", "jwks": {"keys": []}},
            {"method": "private_key_jwt"},
            {"method": "private_key_jwt", "jwks": {"keys": "nope"}},
            {
                "method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]},
            },
            {"unexpected": True},
        ):
            response = admin.post("/agents/support/credentials", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        garbage = admin.post(
            "/agents/support/credentials",
            content=b"{oops",
            headers={"Content-Type": "application/json"},
        )
        assert garbage.status_code == 400  # malformed JSON, as everywhere in the API
        assert garbage.headers["content-type"].startswith("application/problem+json")
        assert admin.post("/agents/nobody/credentials", json={}).status_code == 404
        assert admin.delete("/agents/nobody/credentials").status_code == 404
        assert admin.get("/agents/support/credentials").json()["method"] == "client_secret"
    # Non-admins may not touch credentials.
    with dep.gateway.client(dep.gateway.token("alice", USER_SCOPES)) as user:
        assert user.post("/agents/support/credentials", json={}).status_code == 403
        assert user.get("/agents/support/credentials").status_code == 403
    # The credential issued before all that still works.
    assert dep.exchange(to_support, by="support", audience="sales").status_code == 200


def test_bad_input_on_explain_and_audit_is_a_clear_4xx(dep: Deployment) -> None:
    with dep.gateway.client() as admin:
        for body in (
            {"target": "sales"},  # no user_scopes
            {"user_scopes": 5, "target": "sales"},
            {"user_scopes": "", "target": "Not An Id"},
            {"user_scopes": "", "target": "sales", "kind": "widget"},
            {"user_scopes": "", "target": "sales", "chain": ["a"] * 65},
            {"user_scopes": "", "target": "sales", "surprise": 1},
        ):
            response = admin.post("/policies/explain", json=body)
            assert response.status_code == 422, (body, response.text)
        for params in (
            {"decision": "maybe"},
            {"since": "yesterday"},
            {"limit": "0"},
            {"limit": "100000"},
            {"after_id": "-1"},
            {"after_id": str(2**64)},
            {"cursor": "\u00b2"},
        ):
            response = admin.get("/audit", params=params)
            assert response.status_code in (400, 422), (params, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    with dep.gateway.client(dep.gateway.token("alice", USER_SCOPES)) as user:
        assert (
            user.post("/policies/explain", json={"user_scopes": "", "target": "sales"}).status_code
            == 403
        )
        assert user.get("/policies").status_code == 403


def test_an_agent_card_pointing_at_a_metadata_address_is_refused_at_call_time(
    own_dep: Deployment,
) -> None:
    """SSRF: the card, not the operator, chooses the interface URL, so every call
    checks it; link-local / metadata addresses are refused even in --dev."""
    dep = own_dep
    card = {
        "name": "Sneaky",
        "description": "Points its interface at the cloud metadata service.",
        "version": "1.0.0",
        "supportedInterfaces": [
            {
                "url": "http://169.254.169.254/latest/",
                "protocolBinding": "JSONRPC",
                "protocolVersion": "1.0",
            }
        ],
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "s", "name": "s", "description": "s", "tags": ["t"]}],
    }
    with dep.gateway.client() as admin:
        assert admin.post("/agents", json={"card": card, "id": "sneaky"}).status_code == 201
    response = dep.send("sneaky", dep.gateway.token("alice", USER_SCOPES))
    # JSON-RPC errors travel with HTTP 200 (the SDK's binding, A2A 1.0 §9.5).
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32603
    assert "may not be called" in error["message"]
    assert "169.254.169.254" in error["message"]


def test_an_agent_calls_onwards_through_the_gateway_with_an_exchanged_token(
    dep: Deployment,
) -> None:
    """resource=…/a2a/{id} gets a token for that front door (RFC 8707); the
    gateway decides again with the chain and mints the next agent's token."""
    gw = dep.gateway
    to_support = _first_hop(dep, gw.token("alice", USER_SCOPES))
    response = dep.exchange(to_support, by="support", resource=f"{gw.url}/a2a/sales")
    assert response.status_code == 200, response.text
    front_door = response.json()["access_token"]
    claims = jwt.decode(front_door, options={"verify_signature": False})
    assert claims["aud"] == f"{gw.url}/a2a/sales"
    # Only at that front door: not at another agent's, not at the gateway's API.
    assert dep.send("inventory", front_door).status_code == 401
    with gw.client(front_door) as client:
        assert client.get("/agents").status_code == 401
    sent = dep.send("sales", front_door, "a quote, please")
    assert sent.status_code == 200, sent.text
    to_sales = dep["sales"].recorder.calls()[-1].bearer
    assert to_sales is not None and to_sales != front_door
    minted = verify_as_downstream(to_sales, gw.url, dep["sales"].resource)
    assert minted["sub"] == "alice"
    assert minted["act"] == {"sub": "support", "act": {"sub": "alice"}}
    assert set(minted["scope"].split()) == {"sales:quote", "inventory:read"}
    # The token sales received is not a front door token: it cannot re-enter.
    assert dep.send("sales", to_sales).status_code == 401
    with gw.client() as admin:
        (record,) = admin.get("/audit", params={"agent": "sales", "limit": 1}).json()["items"]
    assert record["event"] == "a2a.SendMessage"
    assert record["actors"] == ["alice", "support"]


def test_a_call_with_an_exchanged_token_writes_no_security_warning(
    dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    """A front-door token first fails as a token for the gateway; that is not a
    refusal, so nothing is written to the security log until a request is
    actually refused (issue 32: the demo cried wolf on every onward call)."""
    gw = dep.gateway
    to_support = _first_hop(dep, gw.token("alice", USER_SCOPES))
    front_door = dep.exchange(to_support, by="support", resource=f"{gw.url}/a2a/sales").json()[
        "access_token"
    ]
    caplog.set_level(logging.INFO, logger="switchboard.security")
    sent = dep.send("sales", front_door, "a quote, please")
    assert sent.status_code == 200, sent.text
    assert [r for r in caplog.records if r.name == "switchboard.security"] == []
    # Refused at another agent's front door: exactly one warning, saying why.
    assert dep.send("inventory", front_door).status_code == 401
    warned = [r for r in caplog.records if r.name == "switchboard.security"]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert warned[0].levelno == logging.WARNING
    assert "authentication failed on /a2a/inventory" in warned[0].getMessage()
    assert front_door not in caplog.text


def test_a_1_0_method_without_a_version_header_is_read_as_1_0(dep: Deployment) -> None:
    """A2A 1.0 §3.2.6 says a request without `A2A-Version` is 0.3, but 0.3 has
    no `SendMessage`: the method's name says which version it is. A real
    mismatch says which header to send (issue 32)."""
    url = dep.gateway.url + "/a2a/support"
    auth = {"Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}"}
    before = len(dep["support"].recorder.calls())
    sent = httpx.post(url, json=send_message_body("no header"), headers=auth, verify=client_tls())
    assert sent.status_code == 200, sent.text
    assert "echo: no header" in sent.text
    missing = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": "nope"}}
    unknown = httpx.post(url, json=missing, headers=auth, verify=client_tls()).json()
    assert unknown["error"]["code"] == -32001, unknown  # task not found, not a version error
    legacy = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m-03",
                "role": "user",
                "parts": [{"kind": "text", "text": "still 0.3"}],
            }
        },
    }
    answered = httpx.post(url, json=legacy, headers=auth, verify=client_tls())
    assert "echo: still 0.3" in answered.text, answered.text
    for said, wanted in (("0.3", "1.0"), ("2.0", "1.0")):
        wrong = httpx.post(
            url,
            json=send_message_body("x", "r9"),
            headers={**auth, "A2A-Version": said},
            verify=client_tls(),
        ).json()
        assert wrong["id"] == "r9"
        assert wrong["error"]["code"] == -32009
        assert f"send the header 'A2A-Version: {wanted}'" in wrong["error"]["message"], wrong
    assert len(dep["support"].recorder.calls()) == before + 2  # the two that were served

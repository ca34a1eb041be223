"""API keys end to end (issue 56.2), on both databases: made through the REST
API, used through the real doors with the official SDKs (A2A JSON-RPC,
`/mcp` in both revisions, the REST API), and attacked: revoked, expired,
unknown, spelled twice, more than their owner, another user's.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest
from a2a.utils.errors import TaskNotFoundError

from gateway.connections.connection import TokenGrant
from gateway.connections.vault import Vault
from gateway.storage import db
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for

POLICY = """\
agents:
  worker:
    require: [work:run]
    grant: [work:run]
  alpha:
    require: [tools:use]
    grant: [tools:use]
prices:
  currency: EUR
  targets:
    worker: {per_call: "5"}
"""
SCOPES = "work:run tools:use"


@dataclass
class Keys:
    gateway: Gateway
    worker: ServerThread
    seen: Recorder
    mcp_seen: Recorder
    admin: str  # an admin's token, minted once (not on a test's event loop)

    def rest(self, credential: str | None = None, **headers: str) -> httpx.Client:
        sent = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.Client(
            base_url=self.gateway.url,
            headers={**sent, **headers},
            timeout=30,
            verify=client_tls(),
        )

    async def token(self, sub: str, scopes: str) -> str:
        # Minting reads the key with asyncio.run(): not on the test's own loop.
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)

    def make(self, token: str, **spec: Any) -> dict[str, Any]:
        with self.rest(token) as client:
            made = client.post("/api-keys", json=spec)
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body

    def send(self, headers: dict[str, str], text: str = "hello") -> httpx.Response:
        """A raw A2A JSON-RPC SendMessage, for the refusals' wire form."""
        body = {
            "jsonrpc": "2.0",
            "id": "1",
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}
            },
        }
        return httpx.post(
            f"{self.gateway.url}/a2a/worker",
            json=body,
            headers={"A2A-Version": "1.0", **headers},
            timeout=30,
            verify=client_tls(),
        )

    @asynccontextmanager
    async def a2a(self, headers: dict[str, str]) -> AsyncIterator[Client]:
        """The official A2A client, from the gateway's card for the worker."""
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            factory = ClientFactory(
                ClientConfig(
                    httpx_client=http, supported_protocol_bindings=["JSONRPC"], streaming=False
                )
            )
            yield await factory.create_from_url(f"{self.gateway.url}/a2a/worker")


@contextmanager
def deployed(tmp_path: Path, database_url: str | None) -> Iterator[Keys]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    seen = Recorder()
    worker = worker_agent(seen)
    upstream, mcp_seen, _ = upstream_server(ToolBox())
    gateway = start_gateway(tmp_path / "data", database_url, policy=POLICY)
    try:
        with gateway.client() as admin:
            card_url = worker.url + "/.well-known/agent-card.json"
            assert admin.post("/agents", json={"card_url": card_url, "id": "worker"}).is_success
            alpha = {"name": "Alpha", "url": upstream.url + "/mcp"}
            assert admin.post("/mcp-servers", json=alpha).status_code == 201
            ops = {"title": "Ops", "select": {"servers": ["alpha"]}}
            assert admin.put("/mcp-sets/ops", json=ops).is_success
        admin_token = gateway.token("admin", "switchboard:admin")
        yield Keys(gateway, worker, seen, mcp_seen, admin_token)
    finally:
        stop_all(gateway.server, worker, upstream)


@pytest.fixture(scope="module")
def keys(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Keys]:
    with deployed(tmp_path_factory.mktemp("keys"), module_database_url) as made:
        yield made


_users = itertools.count()


def fresh(name: str) -> str:
    """A subject no earlier test of the module used."""
    return f"{name}-{next(_users)}"


def message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def answer_of(client: Client, text: str) -> Any:
    return [event async for event in client.send_message(message(text))]


def audit_of(keys: Keys, subject: str) -> list[dict[str, Any]]:
    with keys.rest(keys.admin) as admin:
        page = admin.get("/audit", params={"user": subject, "limit": 50})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def test_a_users_key_is_the_user_on_every_door(keys: Keys) -> None:
    alice = fresh("alice")
    token = await keys.token(alice, SCOPES)
    made = keys.make(token, name="alice-script", scopes=["work:run", "tools:use"])
    key, key_id = made["key"], made["id"]
    assert key.startswith("sk-sb-" + key_id + "_") and made["prefix"] == "sk-sb-" + key_id
    assert made["owner_subject"] == alice and not made["service"]

    # A2A JSON-RPC, the official client, the key as a bearer token and as X-Api-Key.
    keys.seen.clear()
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-Api-Key": key}):
        async with keys.a2a(headers) as client:
            (event,) = await answer_of(client, "hello")
        assert event.message.parts[0].text == "echo: hello"
    calls = keys.seen.calls()
    assert len(calls) == 2 and not any(call.contains(key) for call in calls)
    for call in calls:
        assert call.bearer is not None
        claims = verify_as_downstream(call.bearer, keys.gateway.url, keys.worker.url + "/")
        # The user, through the key: the chain names it.
        assert claims["sub"] == alice
        assert claims["act"] == {"sub": f"apikey:{key_id}"}
        assert claims["scope"] == "work:run"

    # /mcp, the official client, in both revisions.
    for mode in MODES:
        async with mcp_client(keys.gateway.url + "/mcp", key, mode) as client:
            assert "alpha__add" in {t.name for t in (await client.list_tools()).tools}
            added = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert added.structured_content == {"result": 5}
    async with mcp_client(
        keys.gateway.url + "/mcp", None, "legacy", headers={"X-Api-Key": key}
    ) as client:
        assert not (await client.call_tool("alpha__add", {"a": 1, "b": 1})).is_error
    # A virtual MCP server (`/mcp/{name}`) takes the key as `/mcp` does.
    async with mcp_client(keys.gateway.url + "/mcp/ops", key, "2026-07-28") as client:
        assert "alpha__add" in {t.name for t in (await client.list_tools()).tools}
    assert not any(call.contains(key) for call in keys.mcp_seen.calls())

    # The REST API.
    with keys.rest(key) as client:
        listed = client.get("/agents")
    assert listed.status_code == 200 and "worker" in listed.text

    # Every call audited as alice, through the key.
    records = audit_of(keys, alice)
    assert len(records) >= 5
    assert all(r["client_id"] == f"apikey:{key_id}" for r in records)
    assert {r["target"] for r in records} >= {"worker", "alpha"}
    with keys.rest(token) as client:
        info = client.get(f"/api-keys/{key_id}").json()
    assert info["last_used_at"] is not None and "key" not in info


@pytest.mark.parametrize("how", ["revoked", "expired", "unknown", "malformed"])
def test_a_key_that_is_no_more_is_a_401_on_every_door(keys: Keys, how: str) -> None:
    alice = fresh("alice")
    token = keys.gateway.token(alice, SCOPES)
    made = keys.make(
        token, name="short", scopes=["work:run"], expires="1s" if how == "expired" else None
    )
    key = made["key"]
    if how == "revoked":
        assert keys.send({"X-Api-Key": key}).status_code == 200
        with keys.rest(token) as client:
            assert client.delete(f"/api-keys/{made['id']}").status_code == 204
            assert client.get(f"/api-keys/{made['id']}").json()["revoked_at"] is not None
    elif how == "unknown":
        key = "sk-sb-" + "a" * 12 + "_" + key.partition("_")[2]
    elif how == "malformed":
        key = key[:-1]
    reason = {
        "revoked": "API key has been revoked",
        "expired": "API key has expired",
        "unknown": "API key is unknown",
        "malformed": "API key is malformed",
    }[how]
    # An expiring key may first be accepted at the door and its call then
    # refused for minting past the key's end: wait for the door's refusal.
    refused = wait_for(
        lambda: (
            (r := keys.send({"Authorization": f"Bearer {key}"}))
            .headers.get("content-type", "")
            .startswith("application/problem+json")
            and r
        ),
        what="the key refused at the door",
    )
    assert refused.status_code == 401 and refused.json()["detail"] == reason
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    mcp = httpx.post(
        keys.gateway.url + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        headers={"X-Api-Key": key, "Accept": "application/json, text/event-stream"},
        verify=client_tls(),
    )
    assert mcp.status_code == 401 and mcp.json()["detail"] == reason
    assert "resource_metadata=" in mcp.headers["www-authenticate"]
    with keys.rest(key) as client:
        rest = client.get("/agents")
    assert rest.status_code == 401 and rest.json()["detail"] == reason


def _one_letter_swapped(key: str) -> str:
    """``key`` with its secret's last letter in the other case (its last three
    characters can all be digits, which no case swap changes)."""
    at = max(i for i, c in enumerate(key) if c.isalpha())
    return key[:at] + key[at].swapcase() + key[at + 1 :]


def test_one_key_has_one_spelling(keys: Keys) -> None:
    token = keys.gateway.token(fresh("alice"), SCOPES)
    key = keys.make(token, name="spelt", scopes=["work:run"])["key"]
    other = keys.make(token, name="other", scopes=["work:run"])["key"]
    refused = {
        "upper case": {"Authorization": f"Bearer {key.upper()}"},
        "the secret's case": {"X-Api-Key": _one_letter_swapped(key)},
        "a space inside": {"X-Api-Key": key[:20] + " " + key[20:]},
        "two different keys": {"Authorization": f"Bearer {key}", "X-Api-Key": other},
        "a key and a token": {"Authorization": f"Bearer {token}", "X-Api-Key": key},
        "an empty X-Api-Key": {"X-Api-Key": ""},
    }
    for what, headers in refused.items():
        answer = keys.send(headers)
        assert answer.status_code == 401, what
    # Two X-Api-Key lines, even of one key.
    twice = httpx.post(
        f"{keys.gateway.url}/a2a/worker",
        json={},
        headers=[("X-Api-Key", key), ("X-Api-Key", key), ("A2A-Version", "1.0")],
        verify=client_tls(),
    )
    assert twice.status_code == 401 and "one X-Api-Key" in twice.json()["detail"]
    # The same key in both headers, or with blanks around it, is that key.
    assert keys.send({"Authorization": f"Bearer {key}", "X-Api-Key": key}).status_code == 200
    assert keys.send({"Authorization": f"Bearer   {key}"}).status_code == 200


def test_a_key_never_holds_more_than_its_owner(keys: Keys) -> None:
    alice, bob = fresh("alice"), fresh("bob")
    alice_token = keys.gateway.token(alice, "work:run")
    bob_token = keys.gateway.token(bob, SCOPES)
    with keys.rest(alice_token) as client:
        more = client.post("/api-keys", json={"name": "more", "scopes": ["work:run", "tools:use"]})
        assert more.status_code == 403 and "tools:use" in more.json()["detail"]
        admin = client.post("/api-keys", json={"name": "admin", "scopes": ["switchboard:admin"]})
        assert admin.status_code == 403
        service = client.post(
            "/api-keys", json={"name": "ci", "scopes": ["work:run"], "service": "ci"}
        )
        assert service.status_code == 403 and "admin" in service.json()["detail"]
        as_bob = client.post(
            "/api-keys",
            json={
                "name": "b",
                "scopes": ["work:run"],
                "user": {"subject": bob, "issuer": keys.gateway.url},
            },
        )
        assert as_bob.status_code == 403
        odd = client.post("/api-keys", json={"name": "bad name!", "scopes": ["work:run"]})
        assert odd.status_code == 400
        assert client.get("/api-keys").json() == [], "a refused key was stored"
    key = keys.make(alice_token, name="mine", scopes=["work:run"])
    # The key is alice with work:run only: /mcp's tools need tools:use.
    with keys.rest(key["key"]) as client:
        assert client.get("/api-keys").status_code == 403  # a key manages no keys
        assert (
            client.post("/api-keys", json={"name": "x", "scopes": ["work:run"]}).status_code == 403
        )
    # Bob neither sees nor revokes alice's key.
    with keys.rest(bob_token) as client:
        assert client.get(f"/api-keys/{key['id']}").status_code == 404
        assert client.delete(f"/api-keys/{key['id']}").status_code == 404
        assert client.get("/api-keys").json() == []
    assert keys.send({"X-Api-Key": key["key"]}).status_code == 200


def test_an_admin_makes_no_key_as_another_user(keys: Keys) -> None:
    """Such a key would use bob's connected accounts without bob."""
    bob = fresh("bob")
    as_bob = {"subject": bob, "issuer": keys.gateway.url}
    with keys.rest(keys.admin) as admin:
        made = admin.post("/api-keys", json={"name": "b", "scopes": ["work:run"], "user": as_bob})
        assert made.status_code == 403, made.text
        assert made.json()["type"].endswith("api-key-refused")
        assert "only that user makes it" in made.json()["detail"]
        assert not [k for k in admin.get("/api-keys").json() if k["owner_subject"] == bob]


async def test_a_users_key_reaches_only_that_users_tasks_and_connections(keys: Keys) -> None:
    alice, bob = fresh("alice"), fresh("bob")
    bob_token = await keys.token(bob, SCOPES)
    alice_key = keys.make(await keys.token(alice, SCOPES), name="a", scopes=["work:run"])["key"]
    async with keys.a2a({"Authorization": f"Bearer {bob_token}"}) as client:
        events = await answer_of(client, "task for bob")
    task_id = events[0].task.id
    async with keys.a2a({"X-Api-Key": alice_key}) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task_id))
    connection_id = await _connect(keys.gateway, bob)
    with keys.rest(alice_key) as client:
        assert client.get("/connections").json()["items"] == []
        assert client.delete(f"/connections/{connection_id}").status_code == 404
    with keys.rest(bob_token) as client:
        assert [c["id"] for c in client.get("/connections").json()["items"]] == [connection_id]


async def _connect(gateway: Gateway, subject: str) -> str:
    """A connected account of ``subject`` at alpha, as connecting would leave it."""
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

    settings = gateway.settings
    async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
        grant = TokenGrant(
            token=OAuthToken(access_token="bob-at-alpha", token_type="Bearer"),
            authorization_server="https://as.example",
            token_endpoint="https://as.example/token",
            revocation_endpoint=None,
            resource=None,
            client=OAuthClientInformationFull(
                client_id="c", redirect_uris=["https://gw.example/cb"]
            ),
        )
        saved, _ = await Vault(engine, settings.sealing_secret).save(
            subject, gateway.url, "alpha", grant
        )
    return saved.id


def test_a_keys_own_rate_is_kept_and_audited(keys: Keys) -> None:
    with keys.rest(keys.admin) as admin:
        made = admin.post(
            "/api-keys",
            json={
                "name": fresh("ci"),
                "scopes": ["work:run"],
                "service": fresh("ci"),
                "rate": "2/m",
            },
        )
    assert made.status_code == 201, made.text
    service, key = made.json()["owner_subject"], made.json()["key"]
    assert made.json()["rate"] == "2/minute"
    for _ in range(2):
        assert keys.send({"X-Api-Key": key}).status_code == 200
    limited = keys.send({"X-Api-Key": key})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    outcomes = [r["outcome"] for r in audit_of(keys, service)]
    assert outcomes.count("rate_limited") == 1 and outcomes.count("ok") == 2


def test_a_keys_budget_is_spent_once_and_then_refuses(keys: Keys) -> None:
    with keys.rest(keys.admin) as admin:
        spec = {"name": "b", "scopes": ["work:run"], "service": fresh("ci"), "budget": "12"}
        made = admin.post("/api-keys", json=spec).json()
        for _ in range(2):  # 5 EUR a call
            assert keys.send({"X-Api-Key": made["key"]}).status_code == 200
        refused = keys.send({"X-Api-Key": made["key"]})
        assert refused.status_code == 403, refused.text  # and a JSON-RPC error
        assert "budget of 12 is spent" in refused.json()["error"]["message"]
        assert admin.get(f"/api-keys/{made['id']}").json()["spent"] == "10"
    outcomes = [r["outcome"] for r in audit_of(keys, made["owner_subject"])]
    assert outcomes.count("budget_spent") == 1 and outcomes.count("ok") == 2


def test_a_revocation_reaches_another_replica(tmp_path: Path, database_url: str | None) -> None:
    shared = database_url or f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    with deployed(tmp_path / "one", shared) as one:
        (tmp_path / "two").mkdir()
        two = start_gateway(tmp_path / "two" / "data", shared, policy=POLICY)
        try:
            token = one.gateway.token(fresh("alice"), SCOPES)
            made = one.make(token, name="replicated", scopes=["work:run"])
            on_two = Keys(two, one.worker, one.seen, one.mcp_seen, one.admin)
            assert on_two.send({"X-Api-Key": made["key"]}).status_code == 200
            with one.rest(token) as client:
                assert client.delete(f"/api-keys/{made['id']}").status_code == 204
            wait_for(lambda: on_two.send({"X-Api-Key": made["key"]}).status_code == 401)
        finally:
            stop_all(two.server)


def test_the_cli_makes_lists_and_revokes_keys(tmp_path: Path) -> None:
    from tests.gateway.cli.test_cli import run

    with deployed(tmp_path, None) as keys:
        data = ["--data-dir", str(keys.gateway.settings.data_dir)]
        made = run(
            "keys",
            "create",
            "--name",
            "ci-bot",
            "--scope",
            "work:run",
            "--expires",
            "30d",
            "--rate",
            "10/s",
            *data,
        )
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        assert key.startswith("sk-sb-") and "not shown again" in made.stderr
        assert keys.send({"Authorization": f"Bearer {key}"}).status_code == 200
        listed = run("keys", "list", "--api", *data)
        prefix = key.partition("_")[0]
        assert prefix in listed.stdout and "service ci-bot" in listed.stdout
        assert "rate 10/second" in listed.stdout and key not in listed.stdout
        refused = run(
            "keys", "create", "--name", "x", "--scope", "work:run", "--expires", "soon", *data
        )
        assert refused.returncode != 0 and "not a duration" in refused.stderr
        as_user = run("keys", "create", "--name", "x", "--scope", "work:run", "--for", "bob", *data)
        assert as_user.returncode != 0 and "--for" in as_user.stderr
        assert run("keys", "revoke", prefix, *data).returncode == 0
        wait_for(lambda: keys.send({"X-Api-Key": key}).status_code == 401)
        assert run("keys", "revoke", prefix, *data).returncode != 0


def test_keys_are_refused_where_a_door_has_none(keys: Keys) -> None:
    # The A2A door without any credential still says how to send one.
    answer = keys.send({})
    assert answer.status_code == 401 and "X-Api-Key" in answer.json()["detail"]

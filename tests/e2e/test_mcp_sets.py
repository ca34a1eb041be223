"""Virtual MCP servers (`/mcp/{name}`), end to end: a real gateway on both
databases, two MCP servers on the official SDK and an a2a-sdk agent over
HTTP, and the `mcp` SDK's client at both protocol revisions.

What must hold: a client at `/mcp/{name}` sees only the set -- its tools,
resources and prompts -- and the set's own name and instructions; the
caller's policy still filters inside it; anything outside it is answered as
a name that does not exist; only admins define sets, with every bad
definition refused and nothing stored; a changed set tells its own clients,
not another set's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from a2a.types import AgentSkill

from registry.tls import client_tls
from tests.support import waiting
from tests.support.agents import CardSource, sdk_agent_app, sdk_card
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  alpha:
    tools:
      fail:
        allow: false
"""
OPS = {
    "name": "ops",
    "title": "Ops tools",
    "description": "What the ops team uses.",
    "instructions": "Use these for stock questions.",
    "icon": "https://icons.example/ops.png",
    "select": {"servers": ["alpha"], "tags": ["inventory"], "tools": ["beta__ad?"]},
}


@dataclass
class Setup:
    gateway: Gateway
    servers: list[ServerThread] = field(default_factory=list)

    def admin(self) -> httpx.Client:
        return self.gateway.client()


def ops(name: str) -> dict[str, Any]:
    """OPS under a name of the test's own (the module's tests share a gateway)."""
    return {**OPS, "name": name}


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    """One gateway, its two servers and its agent for the module's tests: each
    defines sets of names of its own, and leaves the servers and agents be."""
    with _setup(tmp_path_factory.mktemp("mcp-sets"), module_database_url) as running:
        yield running


@pytest.fixture
def own_setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    """A gateway of the test's own: the test removes a server and an agent."""
    with _setup(tmp_path, database_url) as running:
        yield running


@contextlib.contextmanager
def _setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    running = Setup(gateway)
    try:
        for name in ("alpha", "beta"):
            server, _, _ = upstream_server()
            running.servers.append(server)
            with running.admin() as admin:
                added = admin.post("/mcp-servers", json={"name": name, "url": server.url + "/mcp"})
                assert added.status_code == 201, added.text
        skills = [
            AgentSkill(id="check-stock", name="Check stock", tags=["inventory"], description="x"),
            AgentSkill(id="ship", name="Ship", tags=["shipping"], description="y"),
        ]
        agent = ServerThread(
            lambda url: sdk_agent_app(CardSource(sdk_card(url, skills=skills)))
        ).start()
        running.servers.append(agent)
        with running.admin() as admin:
            body = {"card_url": agent.url + "/.well-known/agent-card.json", "id": "inventory"}
            assert admin.post("/agents", json=body).status_code == 201
        yield running
    finally:
        stop_all(*running.servers)
        gateway.server.stop()


def tool_names(setup: Setup, path: str, mode: str, token: str | None = None) -> set[str]:
    token = token or setup.gateway.token("alice")

    async def run() -> set[str]:
        async with mcp_client(setup.gateway.url + path, token, mode) as client:
            return {t.name for t in (await client.list_tools()).tools}

    return setup.gateway.server.run(run())  # type: ignore[no-any-return]


def wait_for_tools(setup: Setup) -> None:
    """Until both servers' tools are listed on /mcp."""
    waiting.wait_for(
        lambda: {"alpha__add", "beta__add"} <= tool_names(setup, "/mcp", "2026-07-28"),
        seconds=30,
        every=0.1,
        what="alpha's and beta's tools on /mcp",
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_client_at_a_set_sees_only_the_set(setup: Setup, mode: str) -> None:
    wait_for_tools(setup)
    name = f"ops-{mode}"
    with setup.admin() as admin:
        created = admin.post("/mcp-sets", json=ops(name))
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/mcp-sets/{name}"
    everything = tool_names(setup, "/mcp", mode)
    assert {"alpha__add", "beta__slow", "inventory__ship"} <= everything
    token = setup.gateway.token("alice")

    async def run() -> dict[str, Any]:
        async with mcp_client(setup.gateway.url + f"/mcp/{name}", token, mode) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            added = await client.call_tool("beta__add", {"a": 2, "b": 3})
            refused: dict[str, Any] = {}
            for outside in ("beta__slow", "inventory__ship", "alpha__fail"):
                try:
                    answer = await client.call_tool(outside, {"steps": 1, "message": "m"})
                    refused[outside] = answer
                except Exception as exc:  # the SDK raises the JSON-RPC error
                    refused[outside] = str(exc)
            return {"listed": listed, "added": added, "refused": refused}

    seen = setup.gateway.server.run(run())
    # alpha's tools but `fail` (the policy), beta__add by pattern, the inventory skill by tag.
    assert seen["listed"] == {
        "alpha__add",
        "alpha__slow",
        "alpha__whoami",
        "beta__add",
        "inventory__check-stock",
    }
    assert not seen["added"].is_error
    assert "5" in "".join(c.text for c in seen["added"].content if hasattr(c, "text"))
    for outside, said in seen["refused"].items():
        text = said if isinstance(said, str) else str(said.content)
        assert outside in text or "nknown tool" in text, (outside, said)


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # initialize; server/discover
def test_a_set_introduces_itself(setup: Setup, mode: str) -> None:
    name = f"intro-{mode}"
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=ops(name)).status_code == 201
    token = setup.gateway.token("alice")

    async def run(path: str) -> tuple[types.Implementation | None, str | None, str]:
        async with mcp_client(setup.gateway.url + path, token, mode) as client:
            return client.server_info, client.instructions, client.protocol_version

    info, instructions, version = setup.gateway.server.run(run(f"/mcp/{name}"))
    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert info is not None
    assert (info.name, info.title, info.description) == (name, "Ops tools", OPS["description"])
    assert [str(i.src) for i in info.icons or []] == [OPS["icon"]] or mode == "auto"
    assert instructions == OPS["instructions"]
    info, instructions, _ = setup.gateway.server.run(run("/mcp"))
    assert info is not None and info.name == "switchboard"
    assert instructions != OPS["instructions"]


def test_resources_and_prompts_come_with_their_servers(setup: Setup) -> None:
    wait_for_tools(setup)
    with setup.admin() as admin:
        body = {"name": "beta-alone", "title": "Beta", "select": {"servers": ["beta"]}}
        assert admin.post("/mcp-sets", json=body).status_code == 201
        skills = {"name": "skills", "title": "Skills", "select": {"agents": ["inventory"]}}
        assert admin.post("/mcp-sets", json=skills).status_code == 201
    assert tool_names(setup, "/mcp/beta-alone", "2026-07-28") == {
        "beta__add",
        "beta__slow",
        "beta__fail",
        "beta__whoami",
    }
    assert tool_names(setup, "/mcp/skills", "legacy") == {
        "inventory__check-stock",
        "inventory__ship",
    }
    token = setup.gateway.token("alice")

    async def run() -> tuple[list[str], list[str]]:
        async with mcp_client(setup.gateway.url + "/mcp/skills", token, "2026-07-28") as c:
            resources = [str(r.uri) for r in (await c.list_resources()).resources]
            prompts = [p.name for p in (await c.list_prompts()).prompts]
        return resources, prompts

    assert setup.gateway.server.run(run()) == ([], [])


def test_only_admins_define_sets_and_bad_ones_store_nothing(setup: Setup) -> None:
    user = setup.gateway.token("bob")
    name, other = "admins-ops", "admins-billing"  # the names of the sets it defines
    mine = ops(name)
    with setup.admin() as admin, setup.gateway.client(user) as bob:
        before = admin.get("/mcp-sets").json()["items"]
        assert bob.post("/mcp-sets", json=mine).status_code == 403
        assert bob.put(f"/mcp-sets/{name}", json=mine).status_code == 403
        bad: list[dict[str, Any]] = [
            {**mine, "name": "Ops"},
            {**mine, "name": "-ops"},
            {**mine, "name": "o" * 65},
            {**mine, "select": {}},
            {**mine, "select": {"servers": ["nobody"]}},
            {**mine, "select": {"agents": ["ghost"]}},
            {**mine, "select": {"tools": ["a b"]}},
            {**mine, "select": {"tools": "alpha__*"}},
            {**mine, "select": {"servers": ["alpha"], "extra": 1}},
            {**mine, "title": ""},
            {**mine, "title": "t" * 201},
            {**mine, "icon": "javascript:alert(1)"},
            {**mine, "icon": "http://icons.example/ops.png"},
            {**mine, "select": {"tags": ["in ventory"]}},
            {**mine, "unknown": True},
            {k: v for k, v in mine.items() if k != "select"},
        ]
        for body in bad:
            answer = admin.post("/mcp-sets", json=body)
            assert answer.status_code == 422, (body, answer.text)
        unknown = admin.post("/mcp-sets", json={**mine, "select": {"servers": ["nobody"]}})
        assert unknown.json()["type"].endswith("unknown-target")
        assert admin.get("/mcp-sets").json()["items"] == before  # nothing stored
        assert admin.put("/mcp-sets/Bad_Name", json=mine).status_code == 422

        assert admin.post("/mcp-sets", json=mine).status_code == 201
        assert admin.post("/mcp-sets", json=mine).status_code == 409
        spec = {k: v for k, v in mine.items() if k != "name"}
        replaced = admin.put(f"/mcp-sets/{name}", json={**spec, "title": "Ops, renamed"})
        assert replaced.status_code == 200, replaced.text
        created = admin.put(f"/mcp-sets/{other}", json=spec)
        assert created.status_code == 201
        listed = bob.get("/mcp-sets").json()["items"]  # any user may list them
        # Its own two, beside what was there before (other tests' sets).
        assert [(s["name"], s["title"]) for s in listed if s["name"] in (name, other)] == [
            (other, "Ops tools"),
            (name, "Ops, renamed"),
        ]
        assert {s["name"] for s in listed} == {s["name"] for s in before} | {name, other}
        # What a set selects, and who edited it, are the admins' to read.
        assert all("select" not in s and "updated_by" not in s for s in listed)
        assert "select" not in bob.get(f"/mcp-sets/{name}").json()
        assert admin.get(f"/mcp-sets/{name}").json()["updated_by"] == "admin"
        assert bob.delete(f"/mcp-sets/{name}").status_code == 403
        assert admin.delete(f"/mcp-sets/{name}").status_code == 204
        assert admin.delete(f"/mcp-sets/{name}").status_code == 404
        assert bob.get(f"/mcp-sets/{name}").status_code == 404
        events = [
            r["event"]
            for target in (name, other)  # the records of its own sets
            for r in admin.get(
                "/audit",
                params={"kind": "all", "user": "admin", "agent": f"mcp-set:{target}"},
            ).json()["items"]
            if r["event"].startswith("mcp_set.")
        ]
    assert sorted(events) == sorted(
        ["mcp_set.created", "mcp_set.updated", "mcp_set.created", "mcp_set.deleted"]
    )


def test_a_set_naming_a_tool_nothing_offers_is_refused(setup: Setup) -> None:
    """Issue 57: `--tool crm__serch_contacts` was stored, a set silently
    offering less. A tool named exactly must be one a registered server or
    agent offers (a pattern may match tools yet to come, and is not checked)."""
    wait_for_tools(setup)
    spec = {k: v for k, v in OPS.items() if k != "name"}
    with setup.admin() as admin:
        before = admin.get("/mcp-sets").json()["items"]
        for typo in ("alpha__ad", "inventory__shipp", "nobody__add", "add", "switchboard__serch"):
            refused = admin.put("/mcp-sets/typo", json=spec | {"select": {"tools": [typo]}})
            assert refused.status_code == 422, (typo, refused.text)
            assert refused.json()["type"].endswith("unknown-target")
            assert repr(typo) in refused.json()["detail"], refused.text
        assert admin.get("/mcp-sets").json()["items"] == before  # nothing stored
        named = ["alpha__add", "inventory__ship", "zeta__*", "switchboard__search_tools"]
        created = admin.put("/mcp-sets/typo", json=spec | {"select": {"tools": named}})
        assert created.status_code == 201, created.text


def test_a_set_is_a_protected_resource_of_its_own(setup: Setup) -> None:
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=ops("guarded")).status_code == 201
    url = setup.gateway.url
    metadata = httpx.get(
        url + "/.well-known/oauth-protected-resource/mcp/guarded", verify=client_tls()
    )
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == url + "/mcp/guarded"
    assert metadata.json()["resource_name"] == "Ops tools"
    missing = httpx.get(url + "/.well-known/oauth-protected-resource/mcp/nope", verify=client_tls())
    assert missing.status_code == 404
    # Unauthenticated: 401 pointing at the set's own metadata, whether or not it exists.
    for name in ("guarded", "nope"):
        refused = httpx.post(
            url + f"/mcp/{name}", json={"jsonrpc": "2.0", "id": 1}, verify=client_tls()
        )
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert f'/.well-known/oauth-protected-resource/mcp/{name}"' in challenge
    # Authenticated: an unknown set is 404, not an empty server.
    token = setup.gateway.token("alice")
    nope = httpx.post(
        url + "/mcp/nope",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {token}"},
        verify=client_tls(),
    )
    assert nope.status_code == 404


async def _notices(
    setup: Setup, token: str, path: str, heard: dict[str, anyio.Event], ready: anyio.Event
) -> None:
    """A 2026-07-28 client listening for tool list changes at ``path``
    (`ready` once the gateway has acknowledged the subscription)."""
    async with (
        mcp_client(setup.gateway.url + path, token, "2026-07-28") as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        ready.set()
        async for _event in subscription:
            heard[path].set()


def test_a_changed_set_tells_its_own_clients_only(setup: Setup) -> None:
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=ops("told")).status_code == 201
        other = {**OPS, "name": "other", "title": "Other"}
        assert admin.post("/mcp-sets", json=other).status_code == 201
    token = setup.gateway.token("carol")  # made off the gateway's loop
    told: list[str] = []

    async def run() -> None:
        heard = {"/mcp/told": anyio.Event(), "/mcp/other": anyio.Event()}
        # The notices of the setup's own changes (the agent's registration,
        # the sets' creation) are sent, to nobody, before anyone listens.
        await setup.gateway.server.app.state.switchboard.mcp_notices.settled()
        async with anyio.create_task_group() as group:
            readies = []
            for path in ("/mcp/told", "/mcp/other"):
                ready = anyio.Event()
                readies.append(ready)
                group.start_soon(_notices, setup, token, path, heard, ready)
            with anyio.fail_after(20):
                for ready in readies:
                    await ready.wait()

            def replace() -> int:
                spec = {k: v for k, v in OPS.items() if k != "name"}
                with setup.admin() as admin:
                    return admin.put("/mcp-sets/told", json={**spec, "title": "New"}).status_code

            assert await anyio.to_thread.run_sync(replace) == 200
            with anyio.fail_after(10):
                await heard["/mcp/told"].wait()
            # The other set's client hears nothing of it (given a second more).
            with contextlib.suppress(TimeoutError), anyio.fail_after(1.0):
                await heard["/mcp/other"].wait()
            told.extend(path for path, event in heard.items() if event.is_set())
            group.cancel_scope.cancel()

    setup.gateway.server.run(run())
    assert told == ["/mcp/told"]


def test_a_session_answers_only_where_it_was_opened(setup: Setup) -> None:
    """A 2025-11-25 session of /mcp used at a set's path (or the other way
    round) is a session not found there."""
    with setup.admin() as admin:
        assert admin.post("/mcp-sets", json=ops("opened")).status_code == 201
    token = setup.gateway.token("dora")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    with httpx.Client(
        base_url=setup.gateway.url, headers=headers, timeout=30, verify=client_tls()
    ) as http:
        for opened_at, elsewhere in (("/mcp", "/mcp/opened"), ("/mcp/opened", "/mcp")):
            opened = http.post(opened_at, json=initialize)
            assert opened.status_code == 200, opened.text
            session = {
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "MCP-Protocol-Version": "2025-11-25",
            }
            done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert http.post(opened_at, json=done, headers=session).status_code == 202
            refused = http.post(elsewhere, json=listing, headers=session)
            assert refused.status_code == 404, refused.text
            assert "Session not found" in refused.text
            assert http.delete(elsewhere, headers=session).status_code == 404
            assert http.post(opened_at, json=listing, headers=session).status_code == 200


def test_a_removed_server_or_agent_leaves_the_sets_that_named_it(own_setup: Setup) -> None:
    """Removing an MCP server or an agent takes its id out of every set: one
    registered later under the same id is not in a curated set unseen. A
    set left selecting nothing offers nothing, and says so; defining one so
    is still refused."""
    setup = own_setup
    wait_for_tools(setup)
    only_beta = OPS | {"name": "beta-only", "select": {"servers": ["beta"]}}
    with setup.admin() as admin:
        ops_both = OPS | {"select": {"servers": ["alpha", "beta"]}}
        assert admin.post("/mcp-sets", json=ops_both).status_code == 201
        assert admin.post("/mcp-sets", json=only_beta).status_code == 201
        picked = {"servers": ["beta"], "agents": ["inventory"], "tools": ["beta__add", "alpha__a*"]}
        both = OPS | {"name": "both", "select": picked}
        assert admin.post("/mcp-sets", json=both).status_code == 201
        assert admin.delete("/mcp-servers/beta").status_code == 204
        assert admin.delete("/agents/inventory").status_code == 204
        ops = admin.get("/mcp-sets/ops").json()
        assert ops["select"]["servers"] == ["alpha"]
        emptied = admin.get("/mcp-sets/both").json()
        assert emptied["select"]["servers"] == [] and emptied["select"]["agents"] == []
        assert emptied["select"]["tools"] == ["alpha__a*"]  # beta's own names went too
        assert admin.get("/mcp-sets/beta-only").json()["select"]["servers"] == []
        # The same id registered again is not taken back into the sets.
        server, _, _ = upstream_server()
        setup.servers.append(server)
        again = admin.post("/mcp-servers", json={"name": "beta", "url": server.url + "/mcp"})
        assert again.status_code == 201, again.text
        # An empty selection is still refused when an admin defines it.
        nothing = {k: v for k, v in OPS.items() if k != "name"} | {"select": {"servers": []}}
        refused = admin.put("/mcp-sets/both", json=nothing)
        assert refused.status_code == 422
        records = admin.get("/audit", params={"kind": "all", "limit": 100}).json()["items"]
    assert tool_names(setup, "/mcp/beta-only", "2026-07-28") == set()
    assert not {t for t in tool_names(setup, "/mcp/ops", "2026-07-28") if t.startswith("beta")}
    told = {(r["target"], r["detail"]) for r in records if r["event"] == "mcp_set.updated"}
    assert {
        ("mcp-set:ops", "beta removed"),
        ("mcp-set:beta-only", "beta removed"),
        ("mcp-set:both", "beta removed"),
        ("mcp-set:both", "inventory removed"),
    } <= told

"""Changes made on one replica reach the MCP clients of another (SQLite and
PostgreSQL: two gateways on one database): a set replaced on replica A tells
that set's clients on replica B, and only them; an agent registered on A
tells every `/mcp` client on B. With the official `mcp` client at
2026-07-28 (`subscriptions/listen`) on B."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from tests.support.agents import v03_card
from tests.support.gateway import Gateway, replicas
from tests.support.mcp_clients import mcp_client
from tests.support.waiting import wait_for

SET = {
    "title": "Ops tools",
    "description": "What the ops team uses.",
    "instructions": "Use these for stock questions.",
    "select": {"tools": ["crm__*"]},
}


@dataclass
class Pair:
    a: Gateway
    b: Gateway


@pytest.fixture
def pair(tmp_path: Path, database_url: str | None) -> Iterator[Pair]:
    with replicas(tmp_path / "data", database_url, mcp_change_watch_seconds=0.3) as (a, b):
        yield Pair(a, b)


def _known_on_b(pair: Pair, *names: str) -> None:
    watch = pair.b.server.app.state.mcp_change_watch
    wait_for(
        lambda: all(watch.knows(n) for n in names), 20, what="replica B's watch reading the sets"
    )


async def _listen(
    pair: Pair, token: str, path: str, heard: dict[str, anyio.Event], ready: anyio.Event
) -> None:
    async with (
        mcp_client(pair.b.url + path, token, "2026-07-28") as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        ready.set()
        async for _event in subscription:
            heard[path].set()


def _listening(pair: Pair, paths: list[str], change: object, waited: str) -> set[str]:
    """Listen on B at ``paths``, make ``change`` (a callable) on A, and say
    which paths heard of it: ``waited`` within 10 s, the others given 1 s more."""
    token = pair.b.token("carol")
    told: set[str] = set()

    async def run() -> None:
        heard = {p: anyio.Event() for p in paths}
        await pair.b.server.app.state.switchboard.mcp_notices.settled()
        async with anyio.create_task_group() as group:
            readies = []
            for path in paths:
                ready = anyio.Event()
                readies.append(ready)
                group.start_soon(_listen, pair, token, path, heard, ready)
            with anyio.fail_after(20):
                for ready in readies:
                    await ready.wait()
            await anyio.to_thread.run_sync(change)  # type: ignore[arg-type]
            with anyio.fail_after(10):
                await heard[waited].wait()
            with contextlib.suppress(TimeoutError), anyio.fail_after(1.0):
                for path in paths:
                    if path != waited:
                        await heard[path].wait()
            told.update(p for p, e in heard.items() if e.is_set())
            group.cancel_scope.cancel()

    pair.b.server.run(run())
    return told


def test_a_set_changed_on_one_replica_tells_its_clients_on_the_other(pair: Pair) -> None:
    with pair.a.client() as admin:
        assert admin.put("/mcp-sets/ops", json=SET).status_code == 201
        assert admin.put("/mcp-sets/other", json=SET | {"title": "Other"}).status_code == 201
    _known_on_b(pair, "ops", "other")

    def replace() -> None:
        with pair.a.client() as admin:
            assert admin.put("/mcp-sets/ops", json=SET | {"title": "New"}).status_code == 200

    assert _listening(pair, ["/mcp/ops", "/mcp/other"], replace, "/mcp/ops") == {"/mcp/ops"}
    # Told, the client lists again on B and finds the set as A left it.
    assert _title_on_b(pair, "/mcp/ops") == "New"


def test_an_agent_registered_on_one_replica_tells_the_others_clients(pair: Pair) -> None:
    with pair.a.client() as admin:
        assert admin.put("/mcp-sets/ops", json=SET).status_code == 201
    _known_on_b(pair, "ops")

    def register() -> None:
        with pair.a.client() as admin:
            card = v03_card("https://crm.example.com")
            assert admin.post("/agents", json={"card": card, "id": "crm"}).status_code == 201

    # Every client: the agent's skills may be anyone's tools, a set's too.
    told = _listening(pair, ["/mcp", "/mcp/ops"], register, "/mcp")
    assert "/mcp" in told
    # Told, the client lists again on B and finds the agent's skill there.
    assert any(name.startswith("crm__") for name in _tools_on_b(pair, "/mcp"))


def _title_on_b(pair: Pair, path: str) -> str | None:
    token = pair.b.token("carol")

    async def run() -> str | None:
        async with mcp_client(pair.b.url + path, token, "auto") as client:  # server/discover
            info = client.server_info
            assert info is not None
            return info.title

    return pair.b.server.run(run())  # type: ignore[no-any-return]


def _tools_on_b(pair: Pair, path: str) -> set[str]:
    token = pair.b.token("carol")

    async def run() -> set[str]:
        async with mcp_client(pair.b.url + path, token, "2026-07-28") as client:
            return {t.name for t in (await client.list_tools()).tools}

    return pair.b.server.run(run())  # type: ignore[no-any-return]

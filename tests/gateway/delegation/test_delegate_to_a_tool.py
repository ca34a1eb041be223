"""The delegation core calling an MCP tool through `adapters.mcp.McpUpstream`
(the SDK's own client, its session kept open by the upstream's owner task)
against a mock server (`tests.support.mock_mcp`): what reaches the server,
and how each of its failures reads to the caller, the breaker and the record.

The explanation, classification and record of failures are the federation's
own (`gateway.federation.federated_tools`, as `Federation.call_tool` hands
them to the core); the record is a stand-in for the pipeline's."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import pytest

from adapters.errors import UpstreamTimeout, UpstreamUnavailable
from adapters.mcp import (
    McpUpstream,
    UpstreamError,
    UpstreamServerError,
    UpstreamSpec,
    UpstreamTimings,
)
from adapters.mcp_http import Credential
from gateway.delegation.delegate import Delegate, Sending
from gateway.federation.federated_tools import (
    classify_failure,
    counts_for_breaker,
    explain_failure,
    result_record,
)
from tests.gateway.delegation.test_delegate import Records, core
from tests.support.mock_mcp import (
    INVALID_PARAMS,
    LEGACY_VERSION,
    Era,
    MockMcpServer,
    text_result,
)

SERVER = "tools-1"
TOKEN = "minted.for.tools-1"
DEFAULT = "the-servers-own-api-key"
CALL_SECONDS = 0.5
TIMINGS = UpstreamTimings(
    connect_seconds=5, probe_seconds=3600, call_seconds=5, reconnect_min_seconds=0.01
)


@dataclass
class Heard:
    """What the upstream's owner task handed on: its listings, its health."""

    listings: list[Any] = field(default_factory=list)
    health: list[bool] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def back_up(self) -> None:
        """Until the session, once lost, is up again (the owner task
        reconnects with backoff)."""
        async with asyncio.timeout(5):
            while self.health[-2:] != [False, True]:
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def connected(
    server: MockMcpServer, *, credentials: bool = True
) -> AsyncIterator[tuple[McpUpstream, Heard]]:
    """The upstream's session to ``server``, open (its owner task running);
    ``credentials``: the server takes one (else none is sent at all)."""
    heard = Heard()

    async def on_tools(tools: Any) -> None:
        heard.listings.append(tools)

    async def on_health(ok: bool, *_: Any) -> None:
        heard.health.append(ok)
        heard.changed.set()

    async def default_credential() -> Credential | None:
        return Credential("Authorization", f"Bearer {DEFAULT}") if credentials else None

    upstream = McpUpstream(
        UpstreamSpec(SERVER, "http", url=server.url),
        server.http,
        default_credential=default_credential,
        on_tools=on_tools,
        on_health=on_health,
        timings=TIMINGS,
    )
    owner = asyncio.create_task(upstream.run())
    try:
        assert await upstream.wait_ready(5), upstream.last_error
        yield upstream, heard
    finally:
        upstream.stop()
        owner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await owner


async def call(
    delegate: Delegate,
    upstream: McpUpstream,
    tool: str = "quote",
    arguments: dict[str, Any] | None = None,
    *,
    idempotent: bool = False,
    credential: bool = True,
) -> types.CallToolResult | types.InputRequiredResult:
    async def attempt() -> types.CallToolResult | types.InputRequiredResult:
        return await upstream.call_tool(
            tool,
            arguments if arguments is not None else {"sku": "X-100"},
            credential=Credential("Authorization", f"Bearer {TOKEN}") if credential else None,
            timeout_seconds=CALL_SECONDS,
        )

    sending: Sending[types.CallToolResult | types.InputRequiredResult] = Sending(
        upstream=SERVER,
        attempt=attempt,
        explain=functools.partial(explain_failure, SERVER),
        idempotent=idempotent,
        recorded=result_record,
        classify=classify_failure,
        counts=counts_for_breaker,
    )
    return await delegate.send(None, "mcp.tools/call", sending)  # type: ignore[arg-type]


def quoting(era: Era = LEGACY_VERSION) -> MockMcpServer:
    def quote(arguments: dict[str, Any]) -> dict[str, Any]:
        return text_result(f"{arguments.get('sku')}: 9.50")

    return MockMcpServer(era=era).tool("quote", quote)


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_the_server_gets_the_calls_token_and_the_arguments_and_answers(era: Era) -> None:
    """The call's credential replaces the connection's default on the call
    (never both); the handshake went with the default; either era connects."""
    server = quoting(era)

    async def go() -> Any:
        delegate, records = core()
        async with connected(server) as (upstream, heard):
            result = await call(delegate, upstream, arguments={"sku": "X-100", "quantity": 2})
            assert [t["name"] for t in heard.listings[0]] == ["quote"]
            return result, records

    result, records = asyncio.run(go())
    assert [c.text for c in result.content if isinstance(c, types.TextContent)] == ["X-100: 9.50"]
    [sent] = server.calls()
    assert sent.params["name"] == "quote"
    assert sent.params["arguments"] == {"sku": "X-100", "quantity": 2}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    handshake = server.seen[0]
    assert handshake.method == "server/discover"
    assert handshake.headers["authorization"] == f"Bearer {DEFAULT}"
    if era == LEGACY_VERSION:
        assert [s.method for s in server.seen[1:3]] == ["initialize", "notifications/initialized"]
        assert sent.headers["mcp-session-id"]
    else:
        assert "initialize" not in [s.method for s in server.seen]
    assert records.written == [("ok", None)]


def test_a_tools_own_failure_is_an_answer_recorded_as_such_and_trips_nothing() -> None:
    server = MockMcpServer().tool("quote", lambda _: text_result("out of stock", is_error=True))

    async def go() -> Records:
        delegate, records = core(threshold=1)
        async with connected(server) as (upstream, _):
            for _ in range(3):
                assert (await call(delegate, upstream)).is_error  # type: ignore[union-attr]
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 3  # the breaker (threshold 1) never opened
    assert records.written == [("tool_error", None)] * 3


def test_the_servers_json_rpc_error_reaches_the_caller_and_is_not_retried() -> None:
    server = quoting().then(MockMcpServer.error(INVALID_PARAMS, "sku is required"))

    async def go() -> Records:
        delegate, records = core()
        async with connected(server) as (upstream, _):
            with pytest.raises(UpstreamError, match="sku is required"):
                await call(delegate, upstream, idempotent=True)
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 1
    [(outcome, detail)] = records.written
    assert outcome == "upstream_error" and "sku is required" in str(detail)


def test_an_unknown_tool_is_the_servers_error_not_an_outage() -> None:
    server = quoting()

    async def go() -> Records:
        delegate, records = core(threshold=1)
        async with connected(server) as (upstream, _):
            for _ in range(2):
                with pytest.raises(UpstreamError, match="Unknown tool: nope"):
                    await call(delegate, upstream, "nope")
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 2
    assert [outcome for outcome, _ in records.written] == ["upstream_error"] * 2


def test_a_read_that_times_out_is_retried_when_idempotent_and_the_record_says_so() -> None:
    server = quoting().then(MockMcpServer.slow())

    async def go() -> tuple[Any, Records]:
        delegate, records = core()
        async with connected(server) as (upstream, _):
            return await call(delegate, upstream, idempotent=True), records

    result, records = asyncio.run(go())
    assert not result.is_error
    assert len(server.calls()) == 2
    assert records.written == [("ok", "after 2 attempts")]


def test_a_read_that_times_out_is_not_retried_otherwise_and_says_so() -> None:
    server = quoting().then(MockMcpServer.slow())

    async def go() -> Records:
        delegate, records = core()
        async with connected(server) as (upstream, _):
            with pytest.raises(UpstreamTimeout):
                await call(delegate, upstream)
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 1
    [(outcome, _)] = records.written
    assert outcome == "timeout"


def test_timeouts_open_the_servers_breaker_and_it_is_then_not_called() -> None:
    server = quoting().then(MockMcpServer.slow(), MockMcpServer.slow())

    async def go() -> Records:
        delegate, records = core(threshold=2)
        async with connected(server) as (upstream, _):
            for _ in range(2):
                with pytest.raises(UpstreamTimeout):
                    await call(delegate, upstream)
            with pytest.raises(UpstreamUnavailable, match="not called"):
                await call(delegate, upstream)
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 2  # the third call never left the gateway
    assert [outcome for outcome, _ in records.written] == ["timeout", "timeout", "breaker_open"]


def test_an_http_server_error_names_its_status_and_is_retried_only_when_idempotent() -> None:
    """A 503 from the server (or a proxy before it) is no answer to the call:
    the SDK tells it only as "Server returned an error response", which read
    as the server's own JSON-RPC error -- never retried, and counted as the
    server being up. It may have run the call: retried only when idempotent."""
    server = quoting().then(*[MockMcpServer.status(503)] * 3)

    async def go() -> tuple[Any, Records]:
        delegate, records = core()
        async with connected(server) as (upstream, _):
            with pytest.raises(UpstreamServerError, match="tools-1 answered HTTP 503"):
                await call(delegate, upstream)
            assert len(server.calls()) == 1
            again = await call(delegate, upstream, idempotent=True)  # 503, 503, then its answer
            return again, records

    result, records = asyncio.run(go())
    assert not result.is_error
    assert len(server.calls()) == 4  # the session itself was never lost
    assert [s.method for s in server.seen].count("initialize") == 1
    assert records.written == [
        ("upstream_error", "MCP server tools-1 answered HTTP 503"),
        ("ok", "after 3 attempts"),
    ]


def test_http_server_errors_open_the_servers_breaker() -> None:
    server = quoting().then(MockMcpServer.status(502), MockMcpServer.status(504))

    async def go() -> None:
        delegate, _ = core(threshold=2)
        async with connected(server) as (upstream, _):
            for _ in range(2):
                with pytest.raises(UpstreamServerError):
                    await call(delegate, upstream)
            with pytest.raises(UpstreamUnavailable, match="not called"):
                await call(delegate, upstream)

    asyncio.run(go())
    assert len(server.calls()) == 2


def test_a_connection_dropped_mid_call_is_not_sent_again_and_the_session_comes_back() -> None:
    """The request went out: the tool may have run, so a call that is not
    idempotent is not made again; the lost session is the connection's
    business, which reconnects, and the next call goes through."""
    server = quoting().then(MockMcpServer.dropped())

    async def go() -> tuple[Any, Records]:
        delegate, records = core()
        async with connected(server) as (upstream, heard):
            with pytest.raises(UpstreamUnavailable, match="tools-1: Connection closed"):
                await call(delegate, upstream)
            assert len(server.calls()) == 1
            await heard.back_up()
            return await call(delegate, upstream), records

    result, records = asyncio.run(go())
    assert not result.is_error
    assert [s.method for s in server.seen].count("initialize") == 2
    assert records.written == [
        ("upstream_error", "MCP server tools-1: Connection closed"),
        ("ok", None),
    ]


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_a_server_error_is_named_so_for_a_server_that_takes_no_credential(era: Era) -> None:
    server = quoting(era).then(MockMcpServer.status(503), MockMcpServer.status(503))

    async def go() -> None:
        delegate, _ = core()
        async with connected(server, credentials=False) as (upstream, _):
            with pytest.raises(UpstreamServerError, match="answered HTTP 503"):
                await call(delegate, upstream, credential=False)
            with pytest.raises(UpstreamServerError, match="answered HTTP 503"):
                await call(delegate, upstream)  # with a token of its own, as before

    asyncio.run(go())
    *unauthenticated, last = server.seen
    assert all("authorization" not in seen.headers for seen in unauthenticated)
    assert last.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_500_is_the_servers_failure_of_this_call_not_retried_and_trips_nothing() -> None:
    """Not a proxy's "unavailable": one caller's input that crashes one tool
    must not open the breaker for every tool of the server."""
    server = quoting().then(*[MockMcpServer.status(500)] * 3)

    async def go() -> Records:
        delegate, records = core(threshold=1)
        async with connected(server) as (upstream, _):
            for _ in range(3):
                with pytest.raises(UpstreamServerError, match="answered HTTP 500"):
                    await call(delegate, upstream, idempotent=True)
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 3  # never retried, the breaker (threshold 1) never open
    assert [outcome for outcome, _ in records.written] == ["upstream_error"] * 3


def test_a_json_rpc_error_at_an_http_error_status_stays_the_servers_answer() -> None:
    server = quoting().then(MockMcpServer.error(INVALID_PARAMS, "sku is required", status=400))
    server.then(MockMcpServer.error(-32603, "the tool broke", status=500))

    async def go() -> None:
        delegate, _ = core()
        async with connected(server) as (upstream, _):
            with pytest.raises(UpstreamError, match="sku is required"):
                await call(delegate, upstream, idempotent=True)
            with pytest.raises(UpstreamError, match="the tool broke") as raised:
                await call(delegate, upstream, idempotent=True)
            assert not isinstance(raised.value, UpstreamServerError)

    asyncio.run(go())
    assert len(server.calls()) == 2


def test_too_many_requests_is_named_so_and_not_retried_nor_counted() -> None:
    """429: the server is there, and says not now -- to this caller."""
    server = quoting().then(*[MockMcpServer.status(429)] * 2)

    async def go() -> Records:
        delegate, records = core(threshold=1)
        async with connected(server) as (upstream, _):
            for _ in range(2):
                with pytest.raises(UpstreamServerError, match="answered HTTP 429"):
                    await call(delegate, upstream, idempotent=True)
        return records

    records = asyncio.run(go())
    assert len(server.calls()) == 2
    assert [outcome for outcome, _ in records.written] == ["upstream_error"] * 2

"""The MCP catalog at 10,000 tools under load (issue 54, item 2).

    python -m bench.tool_catalog                       # SQLite (this module's main)
    python -m bench.tool_catalog --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    python -m bench.tool_catalog --tools 2000 --seconds 5   # smaller, quicker
    python -m bench.tool_catalog --clients 32 --users 32    # many callers' listings at once

One gateway process (`switchboard serve --dev`) on a fresh database, MCP
servers on the `mcp` SDK in processes of their own (`bench.scale`'s
upstream: ``per_server`` tools each), registered through the REST API, and
``clients`` MCP clients in this process (`bench.mcp_wire_client`: JSON-RPC
over a connection each, as the SDK sends it at 2026-07-28 and at a fraction
of its CPU; ``--sdk-clients``: the SDK's `Client`, one session each), all at
once, for ``seconds`` each:

1. at ``small`` tools (one server): `tools/call` of one tool, then
   `switchboard__search_tools`;
2. copies of a server of ``per_server`` tools registered until the catalog
   holds at least ``tools``; the same again;
3. searches again once the semantic leg has embedded the whole catalog
   (`switchboard_tool_search_embedding_pending` at 0; it starts at the first
   search, and until a caller's tools are all embedded its answers are
   lexical): how long embedding took, and search as it stands after;
   then ``idle_seconds`` with no client: the gateway's background CPU (each
   server listed again every ``mcp_probe_seconds``, 30 s by default);
4. one more server of ``per_server`` tools registered, then one search: how
   long that first search took.

Printed per phase: p50, p99 and the longest request, how many took over
300 ms, the load average and the gateway's CPU per request (its own cost,
which other work on a shared machine does not move); then the targets --
`tools/call` p99 at ``tools`` within 1.2x of its p99 at ``small``, search
p99 within 50 ms, the first search after the growth within 200 ms -- each
with its figure.
A request over 300 ms at ``small`` tools is the machine's, not the
catalog's: compare the two phases' counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import a2a_forwarding as harness
from bench import ports
from bench.mcp_wire_client import wire_clients
from bench.registry_search import WORDS
from bench.scale import database
from gateway.demo.process import GatewayProcess

MCP_MODE = "2026-07-28"
SCOPES = "employee"
SEARCH = "switchboard__search_tools"
SLOW_MS = 300.0
READY_SECONDS = 30.0
POLICY = {"version": 1, "agents": {"*": {"require": ["employee"]}}}


@dataclass(frozen=True)
class Figures:
    calls: int
    errors: int
    p50: float
    p99: float
    longest: float
    slow: int  # over SLOW_MS
    load: float
    cpu_us: float  # the gateway's CPU per request (its children's too): its own cost
    clients_share: float  # the clients' CPU (this process) over the phase, in cores

    def line(self, label: str) -> str:
        return (
            f"  {label:<34} {self.calls:>6} {self.errors:>4} {self.p50:>8.1f} {self.p99:>8.1f} "
            f"{self.longest:>9.1f} {self.slow:>6} {self.load:>6.2f} {self.cpu_us:>7.0f} "
            f"{self.clients_share:>8.2f}"
        )


def figures(
    latencies: list[float], errors: int, cpu_seconds: float, clients_share: float
) -> Figures:
    ordered = sorted(latencies) or [float("nan")]
    return Figures(
        len(latencies),
        errors,
        statistics.median(ordered),
        harness._percentile(ordered, 99),
        ordered[-1],
        sum(1 for ms in ordered if ms > SLOW_MS),
        os.getloadavg()[0],
        cpu_seconds / max(len(latencies), 1) * 1e6,
        clients_share,
    )


@contextlib.contextmanager
def upstream(tools: int) -> Iterator[str]:
    """`bench.scale`'s MCP server with ``tools`` tools; its URL."""
    port = ports.free_port()
    argv = [sys.executable, "-m", "bench.scale", "_mcp_upstream", str(port), str(tools)]
    # Slow to start on a loaded machine (a thousand tools to add): ten minutes.
    process = harness.spawn(argv, port, timeout=600)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        harness.stop_process(process)


def register(gateway: GatewayProcess, server_id: str, url: str) -> float:
    """Register ``url`` as ``server_id`` (a copy of a server under a query
    string of its own: a server's URL is its tokens' audience, one per
    server); how long that took (s)."""
    with gateway.client("bench-admin", "switchboard:admin") as admin:
        body = {"name": server_id, "id": server_id, "url": f"{url}?copy={server_id}"}
        began = time.perf_counter()
        admin.post("/mcp-servers", json=body, timeout=300).raise_for_status()
        return time.perf_counter() - began


def sessions(url: str, token: str | Sequence[str], count: int, sdk: bool) -> Any:
    """``count`` clients: the cheap wire clients unless ``sdk`` (``--sdk-clients``);
    with several tokens (``--users``), client k holds token k modulo their number."""
    tokens = [token] if isinstance(token, str) else list(token)
    if sdk:
        return sdk_sessions(url, tokens, count)
    return wire_clients(url, tokens, count)


@contextlib.asynccontextmanager
async def sdk_sessions(url: str, tokens: list[str], count: int) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for k in range(count):
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {tokens[k % len(tokens)]}"},
                    timeout=httpx2.Timeout(30, read=600),
                )
            )
            transport = streamable_http_client(url, http_client=http)
            clients.append(await stack.enter_async_context(Client(transport, mode=MCP_MODE)))
        yield clients


async def load(
    clients: list[Any],
    step: Callable[[Any, int], Awaitable[bool]],
    seconds: float,
    pid: int,
    workers: int = 1,
) -> Figures:
    """Every client calls ``step`` in a loop for ``seconds``, after an untimed
    call each. A failed first call is counted and shown (raised, it would end
    the run as the client's task group's error, which names nothing); with
    more than one worker it is tried again for up to `READY_SECONDS` first,
    and the retries are shown: a worker other than the one a server was
    registered through connects to it a moment later (its change watch)."""
    latencies: list[float] = []
    errors = [0]
    retried = 0
    for client in clients:
        deadline = time.perf_counter() + (READY_SECONDS if workers > 1 else 0.0)
        while True:
            try:
                failure = None if await step(client, 0) else "an error result"
            except Exception as exc:
                failure = repr(exc)
            if failure is None:
                break
            if time.perf_counter() > deadline:
                errors[0] += 1
                print(f"  a first call failed: {failure}", file=sys.stderr, flush=True)
                break
            retried += 1
            await asyncio.sleep(0.2)  # the other worker's change watch
    if retried:
        print(f"  first calls tried again (a worker not connected yet): {retried}", flush=True)
    members = family(pid)  # the same processes at both ends of the phase
    cpu = gateway_cpu(members)
    own_cpu, began_at = time.process_time(), time.perf_counter()
    until = began_at + seconds

    async def run(client: Any, k: int) -> None:
        i = k
        while (began := time.perf_counter()) < until:
            i += 1
            try:
                ok = await step(client, i)
            except Exception:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                errors[0] += 1

    await asyncio.gather(*(run(c, k * 7) for k, c in enumerate(clients)))
    share = (time.process_time() - own_cpu) / (time.perf_counter() - began_at)
    return figures(latencies, errors[0], gateway_cpu(members) - cpu, share)


def family(pid: int) -> list[int]:
    """The gateway's process and its children (``--workers``: one each)."""
    members = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if parent == str(pid):
            members.append(int(stat.parent.name))
    return members


def gateway_cpu(members: list[int]) -> float:
    """CPU seconds of ``members`` (one that has ended counts nothing)."""
    seconds = (harness._cpu_seconds(member) for member in members)
    return sum(s for s in seconds if not math.isnan(s))


def idle_cpu(pid: int, seconds: float) -> float:
    """The gateway's CPU (ms per s) over ``seconds`` with no client: its
    background work alone (at the default 30 s, one probe of each server)."""
    members = family(pid)
    cpu = gateway_cpu(members)
    time.sleep(seconds)
    return (gateway_cpu(members) - cpu) * 1000 / seconds


def caller(tool: str) -> Callable[[Any, int], Awaitable[bool]]:
    async def call(client: Any, _i: int) -> bool:
        return not (await client.call_tool(tool, {"text": "hello"})).is_error

    return call


async def search(client: Any, i: int) -> bool:
    query = f"task {WORDS[i % len(WORDS)]} {WORDS[(i * 3 + 1) % len(WORDS)]}"
    result = await client.call_tool(SEARCH, {"query": query})
    return not result.is_error and bool(result.structured_content["tools"])


async def searching(
    url: str, token: str | Sequence[str], args: argparse.Namespace, label: str, pid: int
) -> Figures:
    async with sessions(url, token, args.clients, args.sdk_clients) as clients:
        searched = await load(clients, search, args.seconds, pid, args.workers)
        print(searched.line(f"{label}: search"), flush=True)
        return searched


async def phase(
    url: str, token: str | Sequence[str], args: argparse.Namespace, label: str, pid: int
) -> list[Figures]:
    async with sessions(url, token, args.clients, args.sdk_clients) as clients:
        called = await load(clients, caller("s0__tool_0000"), args.seconds, pid, args.workers)
        print(called.line(f"{label}: tools/call"), flush=True)
        searched = await load(clients, search, args.seconds, pid, args.workers)
        print(searched.line(f"{label}: search"), flush=True)
        return [called, searched]


PENDING = "switchboard_tool_search_embedding_pending"
SETTLE_SECONDS = 900.0


def embedding_pending(gateway: GatewayProcess) -> float | None:
    """The gateway's count of tools still to embed (None: the leg is off)."""
    from prometheus_client.parser import text_string_to_metric_families

    with gateway.client("bench-admin", "switchboard:admin") as admin:
        text = admin.get("/metrics").raise_for_status().text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == PENDING:
                return sample.value
    return None


def settle(gateway: GatewayProcess) -> float | None:
    """Wait until the semantic leg has embedded every tool: seconds waited
    (None: the leg is off or did not settle within `SETTLE_SECONDS`)."""
    began = time.perf_counter()
    while (waited := time.perf_counter() - began) < SETTLE_SECONDS:
        pending = embedding_pending(gateway)
        if pending is None:
            return None
        if pending == 0:
            return waited
        time.sleep(1.0)  # the gauge is read every second (the bench's setting)
    return None


async def first_search(
    url: str, token: str, server_id: str, grow: Callable[[], float], sdk: bool
) -> tuple[float, float, bool]:
    """``grow()`` (a registration, seconds), then one search for a tool of
    ``server_id`` (just registered): seconds it took, ms the search took,
    and whether it found it. The SDK's session is opened and has listed
    before: its client lists the tools before it checks a tool's structured
    result the first time, which is the client's cost, not the search's."""
    async with sessions(url, token, 1, sdk) as (client,):
        if sdk:
            await client.list_tools()
        took = await asyncio.to_thread(grow)
        began = time.perf_counter()
        # Its tools are the others' but for their server's name: the query names it.
        result = await client.call_tool(SEARCH, {"query": f"{server_id} inventory task"})
        searched = (time.perf_counter() - began) * 1000
        names = [t["name"] for t in result.structured_content["tools"]]
        return took, searched, bool(names) and names[0].startswith(f"{server_id}__")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    kind = "the mcp SDK's Client" if args.sdk_clients else "JSON-RPC over aiohttp"
    print(
        f"MCP catalog under load, {backend}, {args.workers} worker(s), {args.clients} clients "
        f"of {args.users} user(s) "
        f"({kind}; `clients`: their CPU in cores), {args.seconds:g} s each"
    )
    print(
        f"  {'':<34} {'calls':>6} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>9} {'>300':>6} {'load':>6} {'gw µs':>7} {'clients':>8}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="switchboard-bench-catalog-") as tmp,
        database(args.database_url, Path(tmp), "catalog") as url,
        contextlib.ExitStack() as stack,
    ):
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(yaml.safe_dump(POLICY))
        gateway = GatewayProcess(
            Path(tmp) / "gw",
            database_url=url,
            policy_file=policy,
            workers=args.workers,
            port=ports.from_range(),
            # A registration lists a thousand tools: on a loaded machine, slowly.
            settings={
                "mcp_auto_approve_new_tools": True,
                "mcp_connect_timeout_seconds": 120,
                "metrics_refresh_seconds": 1.0,  # `settle` reads the embedding gauge
            },
        )
        gateway.start(timeout=300)
        stack.callback(gateway.stop)
        token = gateway.token("bench-user", SCOPES)
        # Each user's listing is its own: ``--users`` callers searching at
        # once each have theirs (the first is ``token``'s, used alone after).
        tokens = [token, *(gateway.token(f"bench-user-{k}", SCOPES) for k in range(1, args.users))]
        mcp = f"{gateway.url}/mcp"
        assert gateway.process is not None
        pid = gateway.process.pid
        try:
            register(gateway, "s0", stack.enter_context(upstream(args.small)))
            small = asyncio.run(phase(mcp, tokens, args, f"{args.small:,} tools", pid))
            big = stack.enter_context(upstream(args.per_server))
            held, n = args.small, 1
            while held < args.tools:
                register(gateway, f"s{n}", big)
                held, n = held + args.per_server, n + 1
            searched_at = time.perf_counter() + args.seconds  # after the calls' phase
            large = asyncio.run(phase(mcp, tokens, args, f"{held:,} tools", pid))
            settled = settle(gateway)
            embedded = None
            if settled is not None:
                print(
                    f"  the semantic leg had embedded {held:,} tools "
                    f"{time.perf_counter() - searched_at:.0f} s after the first search at "
                    f"{held:,} (its search phase included)"
                )
                embedded = asyncio.run(searching(mcp, tokens, args, f"{held:,} embedded", pid))
            idle = idle_cpu(pid, args.idle_seconds)
            print(
                f"  idle at {held:,} tools, {args.idle_seconds:g} s (each server listed again "
                f"every mcp_probe_seconds): {idle:.1f} ms of gateway CPU per s",
                flush=True,
            )
            grow = functools.partial(register, gateway, f"s{n}", big)
            took, first, found = asyncio.run(
                first_search(mcp, token, f"s{n}", grow, args.sdk_clients)
            )
        except BaseException:
            # The gateway's side of a failure is in its log, which goes with `tmp`.
            print(f"the gateway's log ends:\n{gateway.log_tail(60)}", file=sys.stderr)
            raise
        print(
            f"  registering {args.per_server:,} more tools took {took * 1000:.0f} ms; "
            f"the first search after: {first:.0f} ms (found: {found})"
        )
    ratio = large[0].p99 / small[0].p99
    print("targets:")
    print(f"  tools/call p99 at {held:,} / at {args.small:,}: {ratio:.2f}x (<= 1.2x)")
    print(f"  search p99 at {held:,}: {large[1].p99:.1f} ms (<= 50 ms)")
    if embedded is not None:
        print(f"  search p99 at {held:,}, all embedded: {embedded.p99:.1f} ms (<= 50 ms)")
    for k, what in enumerate(("tools/call", "search")):
        print(
            f"  (p99 at {held:,} / at {args.small:,}: {what} "
            f"{large[k].p99 / small[k].p99:.2f}x; the gateway's CPU per request: "
            f"{large[k].cpu_us / small[k].cpu_us:.2f}x)"
        )
    print(
        f"  requests over 300 ms at {held:,}: {large[0].slow + large[1].slow} "
        f"(at {args.small:,}: {small[0].slow + small[1].slow})"
    )
    print(f"  first search after {args.per_server:,} added: {first:.0f} ms (<= 200 ms)")
    print(f"load average now {os.getloadavg()}")
    return 1 if any(f.errors for f in (*small, *large)) or not found else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--per-server", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--users",
        type=_positive,
        default=1,
        help="distinct callers among the clients (client k is user k modulo this): "
        "each has a listing of its own",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the gateway's processes (the first search after growth may reach one that "
        "has not seen the new server yet: found False)",
    )
    parser.add_argument(
        "--sdk-clients",
        action="store_true",
        help="the mcp SDK's Client for each caller, not the cheap JSON-RPC one",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    ports.add_argument(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""MCP `tools/call` through Switchboard's `/mcp`, against calling the upstream directly.

    python -m bench.mcp_gateway                      # both revisions, 1 and 32 callers
    python -m bench.mcp_gateway --seconds 10 --modes 2026-07-28
    python -m bench.mcp_gateway --seconds 4 --rounds 3   # medians, ratio taken per round
    python -m bench.mcp_gateway --with-set               # also through /mcp/{name}

One upstream MCP server (the SDK's `MCPServer`, one `echo` tool, Streamable
HTTP under uvicorn) and one gateway (`switchboard serve --dev`, SQLite, the
server registered with the CLI, a dev user token). The load generator is the
official `mcp` client: one `Client` per leg shared by N concurrent callers,
the same code for both legs; only the URL (and the bearer token) differ.
Unless `--no-pin`, the load generator and the upstream share one CPU and the
gateway has another (LAYOUT), as `bench.a2a_forwarding` places its legs. The
gateway leg pays for authentication, the policy decision, a minted token, the
approval check, the audit record and a second MCP hop. docs/architecture.md's target:
through the gateway >= 0.5x the direct calls/s. Ratios are taken in the same
run, per revision and caller count.

`gw µs/call` is the gateway's CPU time per call over the measured window (a
steadier figure than calls/s when the machine is shared), `up µs/call` the
upstream server's; `other %` is CPU that processes outside this run took
meanwhile (100 = one core): a row with much of it was disturbed and should be
run again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench import ports
from bench.a2a_forwarding import (
    HOST,
    REPO,
    _cpu_seconds,
    _machine_busy_seconds,
    pin,
    spawn,
    stop_process,
)

# Where processes run unless --no-pin, as in bench.a2a_forwarding: the load
# generator and the upstream share the first CPU in both legs, the gateway
# has the second to itself (as it would have its own host). Left to the
# kernel, three processes' wake-ups on two cores make the 1-caller rows swing
# from run to run (docs/history/performance-to-2026-11-27.md, "Quiet-machine
# figures, everything in").
LAYOUT: dict[str, set[int] | None] = {"load": None, "upstream": None, "gateway": None}

TOOL = "echo"
ARGUMENTS = {"text": "hello"}


def _serve_upstream(port: int) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench-upstream")

    @server.tool()
    async def echo(text: str) -> str:
        """Echo the text."""
        return text

    app = server.streamable_http_app(stateless_http=True)
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def _switchboard(data: str, *args: str) -> str:
    """`switchboard ARGS --data-dir DATA`'s output; its error output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--data-dir", data],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,  # a loaded machine
    )
    if result.returncode != 0:
        raise RuntimeError(f"switchboard {' '.join(args)}: {result.stderr or result.stdout}")
    return result.stdout.strip()


@dataclass(frozen=True)
class Servers:
    direct: str
    gateway: str
    token: str
    pids: dict[str, int]  # "upstream", "gateway"


@contextmanager
def _servers() -> Iterator[Servers]:
    """The two servers, started; everything is stopped afterwards."""
    up_port, gw_port = ports.free_port(), ports.free_port()
    upstream = spawn(
        [sys.executable, "-m", "bench.mcp_gateway", "_upstream", str(up_port)], up_port
    )
    data = tempfile.mkdtemp(prefix="switchboard-mcp-bench-")
    gateway = None
    try:
        argv = ["serve", "--dev", "--data-dir", data, "--host", HOST, "--port", str(gw_port)]
        gateway = spawn([sys.executable, "-m", "gateway", *argv, "--log-level", "warning"], gw_port)
        pin(upstream.pid, LAYOUT["upstream"])
        pin(gateway.pid, LAYOUT["gateway"])
        pin(os.getpid(), LAYOUT["load"])
        direct = f"http://{HOST}:{up_port}/mcp"
        _switchboard(data, "mcp", "add", "Bench", direct, "--id", "bench", "--no-prefix")
        # A virtual MCP server offering the same tool (the `set` leg, `--with-set`).
        _switchboard(
            data, "mcp", "sets", "put", "bench-set", "--title", "Bench", "--server", "bench"
        )
        token = _switchboard(data, "token", "issue", "--sub", "bench-user")
        pids = {"upstream": upstream.pid, "gateway": gateway.pid}
        yield Servers(direct, f"http://{HOST}:{gw_port}/mcp", token, pids)
    finally:
        if gateway is not None:
            stop_process(gateway)
        stop_process(upstream)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Result:
    calls: int
    errors: int
    seconds: float
    latencies: list[float]
    # CPU seconds over the measured window: "upstream", "gateway", "self" (the
    # load generator) and "machine" (all CPUs, whoever used them).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def micros_per_call(self, role: str) -> float:
        return self.cpu.get(role, float("nan")) / max(self.calls, 1) * 1e6

    @property
    def other_percent(self) -> float:
        ours = sum(v for k, v in self.cpu.items() if k != "machine")
        return max(0.0, self.cpu.get("machine", float("nan")) - ours) / self.seconds * 100


def _cpu_now(pids: dict[str, int]) -> dict[str, float]:
    now = {role: _cpu_seconds(pid) for role, pid in pids.items()}
    now["self"] = _cpu_seconds("self")
    now["machine"] = _machine_busy_seconds()
    return now


async def _load(
    url: str,
    token: str | None,
    mode: str,
    callers: int,
    warmup: float,
    seconds: float,
    pids: dict[str, int] | None = None,
) -> Result:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx2.Limits(max_connections=callers + 8, max_keepalive_connections=callers + 8)
    latencies: list[float] = []
    errors = 0
    async with (
        httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(30, read=60), limits=limits
        ) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        await client.list_tools()  # the client validates structured output against it

        async def caller(until: float, record: bool) -> None:
            nonlocal errors
            while (started := time.perf_counter()) < until:
                try:
                    ok = not (await client.call_tool(TOOL, ARGUMENTS)).is_error
                except Exception:
                    ok = False
                if record:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        for record, span in ((False, warmup), (True, seconds)):
            until = time.perf_counter() + span
            before = _cpu_now(pids or {})
            begun = time.perf_counter()
            await asyncio.gather(*(caller(until, record) for _ in range(callers)))
        elapsed = time.perf_counter() - begun
        after = _cpu_now(pids or {})
    cpu = {role: after[role] - before[role] for role in before}
    return Result(len(latencies), errors, elapsed, latencies, cpu)


def main(
    modes: list[str],
    levels: list[int],
    warmup: float,
    seconds: float,
    rounds: int,
    with_set: bool = False,
) -> int:
    # (mode, callers, leg) -> one Result per round. Each round runs direct
    # then gateway back to back, so a disturbance hits one round's pair, and
    # the ratio is taken within the round before the median is.
    runs: dict[tuple[str, int, str], list[Result]] = {}
    with _servers() as servers:
        pids = servers.pids

        def direct(m: str, n: int) -> Result:
            return asyncio.run(_load(servers.direct, None, m, n, warmup, seconds, pids))

        def gateway(m: str, n: int) -> Result:
            token = servers.token
            return asyncio.run(_load(servers.gateway, token, m, n, warmup, seconds, pids))

        def in_set(m: str, n: int) -> Result:
            url = servers.gateway + "/bench-set"
            return asyncio.run(_load(url, servers.token, m, n, warmup, seconds, pids))

        legs: list[tuple[str, Callable[[str, int], Result]]] = [
            ("direct", direct),
            ("gateway", gateway),
        ]
        if with_set:
            legs.append(("set", in_set))
        for _ in range(rounds):
            for mode in modes:
                for callers in levels:
                    for leg, run in legs:
                        runs.setdefault((mode, callers, leg), []).append(run(mode, callers))
    return print_table(runs, seconds, rounds)


def print_table(runs: dict[tuple[str, int, str], list[Result]], seconds: float, rounds: int) -> int:
    """One line per (revision, callers, leg): medians over the rounds; the
    gateway's ratio is the median of the per-round ratios, with their range."""
    per_round = "" if rounds == 1 else f", median of {rounds} rounds"
    gateway_cpus = LAYOUT["gateway"]
    print(
        f"\nload + upstream on CPU {sorted(LAYOUT['load'] or ())}, gateway on CPU {sorted(gateway_cpus)}"
        if gateway_cpus
        else "\nprocesses placed by the kernel (--no-pin)"
    )
    print(
        f"MCP tools/call ({TOOL}), one shared mcp.Client per leg, {seconds:g} s per row{per_round}"
    )
    print(
        f"{'revision':<11} {'callers':>7} {'leg':<8} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'x direct':>8} {'range':>10} {'gw µs/call':>10} {'up µs/call':>10} "
        f"{'other %':>7}"
    )
    failed = 0
    lowest: list[float] = []

    def median(results: list[Result], value: Callable[[Result], float]) -> float:
        return statistics.median(value(r) for r in results)

    for (mode, callers, leg), results in runs.items():
        failed += any(r.errors > 0 or r.calls == 0 for r in results)
        span = "-"
        ratio = 1.0
        if leg != "direct":
            directs = runs[(mode, callers, "direct")]
            ratios = sorted(g.rate / d.rate for g, d in zip(results, directs, strict=True))
            ratio = statistics.median(ratios)
            lowest.append(ratio)
            span = f"{ratios[0]:.2f}-{ratios[-1]:.2f}" if rounds > 1 else "-"

        print(
            f"{mode:<11} {callers:>7} {leg:<8} {median(results, lambda r: r.rate):>8.0f} "
            f"{median(results, lambda r: r.percentile(50) if r.latencies else float('nan')):>7.2f} "
            f"{median(results, lambda r: r.percentile(99) if r.latencies else float('nan')):>7.2f} "
            f"{sum(r.errors for r in results):>6} {ratio:>8.2f} {span:>10} "
            f"{median(results, lambda r: r.micros_per_call('gateway')) if leg != 'direct' else float('nan'):>10.0f} "
            f"{median(results, lambda r: r.micros_per_call('upstream')):>10.0f} "
            f"{max(r.other_percent for r in results):>7.0f}"
        )
    print(f"\nlowest gateway/direct ratio (median): {min(lowest):.2f} (target >= 0.5)")
    print(
        "µs/call: CPU per call; other %: the most CPU used outside this run in any round "
        "(100 = one core)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_upstream":
        _serve_upstream(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", default=["2026-07-28", "legacy"])
    parser.add_argument("--callers", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1, help="run every row this often; medians")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the kernel place processes (default: load+upstream on one CPU, gateway on another)",
    )
    parser.add_argument(
        "--with-set",
        action="store_true",
        help="a third leg: the same tool through a virtual MCP server (/mcp/bench-set)",
    )
    ports.add_argument(parser)
    options = parser.parse_args()
    if (
        not options.no_pin
        and hasattr(os, "sched_getaffinity")
        and len(os.sched_getaffinity(0)) >= 2
    ):
        first, second = sorted(os.sched_getaffinity(0))[:2]
        LAYOUT.update(load={first}, upstream={first}, gateway={second})
    sys.exit(
        main(
            options.modes,
            options.callers,
            options.warmup,
            options.seconds,
            options.rounds,
            options.with_set,
        )
    )

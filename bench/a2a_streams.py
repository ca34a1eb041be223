"""Streamed A2A calls through the gateway: CPU per call, and per event.

    python -m bench.a2a_gateway --streamed
    python -m bench.a2a_gateway --streamed --events 1,4,16 --seconds 5 --rounds 3
    python -m bench.a2a_gateway --streamed --gateway-tree /path/to/other/checkout
    python -m bench.a2a_gateway --streamed --bindings jsonrpc,http-json,grpc
    python -m bench.a2a_gateway --streamed --database-url postgresql://postgres@127.0.0.1/test

One gateway (`bench.a2a_gateway`'s: `serve --dev`, SQLite or `--database-url`, everything on)
with one agent registered per event count N: a bare ASGI app that answers
`SendStreamingMessage` with N events, written one by one as an a2a-sdk
agent writes them, and `SendMessage` with the task those events end in.
The N events are the task (submitted), the task working, N - 3 artifact
chunks and the task completed (N = 1: the completed task alone; the 4-event
agent is the shape of `bench.flows`' sales desk). For each binding of the
door (``--bindings``: JSON-RPC, HTTP+JSON's `message:send` and
`message:stream`, gRPC's `SendMessage` and `SendStreamingMessage` on the
door's own port, the agent named by its tenant: `bench.a2a_streams_grpc`)
and each N, `SendMessage` then `SendStreamingMessage`
over one keep-alive connection
for ``--seconds``, each answer checked (every event there, the task
completed); the figure is the gateway process's CPU per call (/proc, user +
system). The ratio streamed / `SendMessage` is taken within a round, then
the median of the rounds; the per-event cost is the slope of the streamed
calls' CPU between the smallest N above 1 and the largest.

docs/architecture.md's targets: a streamed exchange <= 1.3x `SendMessage`
(4 events), each extra event <= 0.15 ms of gateway CPU. The load average
and the CPU other processes took meanwhile (`other %`, 100 = one core) are
printed: the machine is shared, so compare within a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from bench import a2a_forwarding as harness
from bench import a2a_gateway, a2a_streams_grpc, asgi_stub, ports

METHODS = ("SendMessage", "SendStreamingMessage")
# The door's A2A 1.0 bindings the load speaks (the agent behind is JSON-RPC).
BINDINGS = ("jsonrpc", "http-json", "grpc")


# --------------------------------------------------------------------------
# The agent (its own process)
# --------------------------------------------------------------------------


def events_of(count: int, task_id: str, context_id: str) -> list[dict[str, Any]]:
    """The ``count`` stream results the agent sends: the task, working, the
    artifact's chunks, completed (one event: the completed task)."""
    ids = {"taskId": task_id, "contextId": context_id}

    def status(state: str) -> dict[str, Any]:
        return {"statusUpdate": {**ids, "status": {"state": f"TASK_STATE_{state}"}}}

    if count == 1:
        return [{"task": final_task(1, task_id, context_id)}]
    task = {"id": task_id, "contextId": context_id, "status": {"state": "TASK_STATE_SUBMITTED"}}
    chunks = max(0, count - 3)
    middle = [status("WORKING")][: count - 2] + [
        {
            "artifactUpdate": {
                **ids,
                "artifact": {"artifactId": "answer", "parts": [{"text": f"chunk {i} "}]},
                "append": i > 0,
                "lastChunk": i == chunks - 1,
            }
        }
        for i in range(chunks)
    ]
    return [{"task": task}, *middle, status("COMPLETED")]


def final_task(count: int, task_id: str, context_id: str) -> dict[str, Any]:
    """The task the ``count`` events end in: `SendMessage`'s answer."""
    parts = [{"text": f"chunk {i} "} for i in range(max(1, count - 3))]
    return {
        "id": task_id,
        "contextId": context_id,
        "status": {"state": "TASK_STATE_COMPLETED"},
        "artifacts": [{"artifactId": "answer", "parts": parts}],
    }


def _card(port: int) -> dict[str, Any]:
    card = harness._stub_card(port)
    card["capabilities"] = {"streaming": True}
    return card


def serve_agent(port: int, count: int) -> None:
    """The streaming agent (see the module's docstring), under uvicorn."""

    async def app(scope: dict[str, Any], receive: asgi_stub.Receive, send: asgi_stub.Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_stub.lifespan(receive, send)
            return
        if scope["method"] == "GET":
            await asgi_stub.respond(send, json.dumps(_card(port)).encode())
            return
        request = await asgi_stub.read_request(receive)
        task_id, context_id = str(uuid.uuid4()), str(uuid.uuid4())

        def envelope(result: dict[str, Any]) -> bytes:
            document = {"jsonrpc": "2.0", "id": request["id"], "result": result}
            return json.dumps(document, separators=(",", ":")).encode()

        if request["method"] != "SendStreamingMessage":
            said = envelope({"task": final_task(count, task_id, context_id)})
            await asgi_stub.respond(send, said)
            return
        events = events_of(count, task_id, context_id)
        await asgi_stub.respond_events(send, (envelope(result) for result in events))

    harness._run_uvicorn(app, port)


# --------------------------------------------------------------------------
# The load (its own process)
# --------------------------------------------------------------------------


async def _load(
    url: str,
    conns: int,
    warmup: float,
    seconds: float,
    headers: dict[str, str],
    pids: list[int],
    method: str,
    events: int,
    binding: str = "jsonrpc",
) -> harness.LoadResult:
    authority, _, path = url.removeprefix("http://").partition("/")
    if binding == "http-json":
        # A2A 1.0 §11 (HTTP+JSON): the method is the path, the body the request.
        path += "/message:stream" if method == "SendStreamingMessage" else "/message:send"
    host, _, port = authority.partition(":")
    accept = "text/event-stream" if method == "SendStreamingMessage" else "application/json"
    lines = "".join(
        f"{k}: {v}\r\n"
        for k, v in {
            "Content-Type": "application/json",
            "Accept": accept,
            "A2A-Version": "1.0",
            **headers,
        }.items()
    )
    head = f"POST /{path} HTTP/1.1\r\nHost: {authority}\r\n{lines}Content-Length: ".encode()

    async def connect() -> harness.Connection:
        import asyncio

        reader, writer = await asyncio.open_connection(host, int(port))
        return reader, writer, None

    def body_for(request_id: int) -> bytes:
        message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "hi"}]}
        if binding == "http-json":
            return json.dumps({"message": message}).encode()
        document = {"jsonrpc": "2.0", "id": request_id, "method": method}
        return json.dumps({**document, "params": {"message": message}}).encode()

    async def exchange(
        connection: harness.Connection, body: bytes
    ) -> tuple[int, bytes, bool, bool]:
        reader, writer, _ = connection
        writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, said, answer = await harness.read_response(reader)
        good = status == 200 and b"TASK_STATE_COMPLETED" in answer and b'"error"' not in answer
        if method == "SendStreamingMessage":
            good = good and answer.count(b"data:") == events
        close = said.get("connection", "").lower() == "close"
        return status, answer, good, close

    return await harness.drive(
        connect, body_for, exchange, conns=conns, warmup=warmup, seconds=seconds, pids=pids
    )


# --------------------------------------------------------------------------
# Orchestration and the table
# --------------------------------------------------------------------------


@dataclass
class Measured:
    events: int
    method: str
    round: int
    binding: str
    cpu_us: float  # the gateway's CPU per call, µs
    calls_per_s: float
    p50_ms: float
    other: float  # % of a core other processes took


def _measure(
    running: harness.Running,
    url: str,
    method: str,
    events: int,
    agents: list[int],
    args: argparse.Namespace,
    binding: str,
) -> harness.LoadResult:
    if binding == "grpc":
        config = a2a_streams_grpc.load_config(running, method, events, agents, args, url)
        return run_load("_grpc_load", config, args)
    config = {
        "url": url,
        "conns": args.conns,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "headers": running.headers,
        "pids": [*running.pids, *agents],
        "method": method,
        "events": events,
        "binding": binding,
        "cpus": sorted(harness.LAYOUT["load"] or ()),
        "parent": os.getpid(),
    }
    return run_load("_load", config, args)


def run_load(entry: str, config: dict[str, Any], args: argparse.Namespace) -> harness.LoadResult:
    """A load process (this module's ``entry``: `_load`, `_grpc_load`) with
    ``config``, its result; raises with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.a2a_streams", entry, json.dumps(config)],
        cwd=harness.REPO,
        capture_output=True,
        check=False,
        timeout=args.warmup + args.seconds + harness.UPSTREAM_TIMEOUT + 30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{entry} failed:\n{done.stderr.decode()[-2000:]}")
    return harness.LoadResult(**json.loads(done.stdout))


def _row(
    running: harness.Running,
    url: str,
    method: str,
    count: int,
    binding: str,
    agents: list[tuple[int, int, Any]],
    round_: int,
    args: argparse.Namespace,
) -> Measured:
    """One (binding, N, method) measured: the gateway's CPU per call."""
    pids = [process.pid for _, _, process in agents]
    result = _measure(running, url, method, count, pids, args, binding)
    if result.errors or not result.ok:
        raise RuntimeError(f"{binding} {method}, {count} events: {result.error_sample}")
    gateway = sum(result.cpu[str(p)] for p in running.pids)
    ours = gateway + result.cpu["self"] + sum(result.cpu.get(str(p), 0.0) for p in pids)
    other = max(0.0, result.cpu["machine"] - ours) / args.seconds * 100
    row = Measured(
        count,
        method,
        round_,
        binding,
        gateway / result.ok * 1e6,
        result.ok / args.seconds,
        result.p50_ms,
        other,
    )
    print(
        f"  round {round_ + 1}, {binding}, {count} events, {method}: "
        f"{row.cpu_us:.0f} µs/call, {row.calls_per_s:.0f} calls/s",
        file=sys.stderr,
    )
    return row


def one_round(counts: list[int], round_: int, args: argparse.Namespace) -> list[Measured]:
    """One gateway, one agent per event count, every (N, method) measured."""
    agents = []
    rows: list[Measured] = []
    try:
        for count in counts:
            port = ports.free_port()
            argv = [sys.executable, "-m", "bench.a2a_streams", "_agent", str(port), str(count)]
            agents.append((count, port, harness.spawn([*argv, str(os.getpid())], port)))
            harness.pin(agents[-1][2].pid, harness.LAYOUT["agent"])
        urls = [(f"stream-{n}", f"http://{harness.HOST}:{port}/") for n, port, _ in agents]
        running = a2a_streams_grpc.start_gateway(urls, args)
        base = running.url.rsplit("/", 1)[0]
        try:
            for binding in args.bindings:
                for count, _, _ in agents:
                    for method in METHODS:
                        rows.append(
                            _row(
                                running,
                                f"{base}/stream-{count}",
                                method,
                                count,
                                binding,
                                agents,
                                round_,
                                args,
                            )
                        )
        finally:
            running.stop()
    finally:
        for _, _, process in agents:
            harness.stop_process(process)
    return rows


def print_table(rows: list[Measured], counts: list[int], rounds: int, binding: str) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def cpu(count: int, method: str, round_: int | None = None) -> list[float]:
        return [
            r.cpu_us
            for r in rows
            if r.events == count and r.method == method and round_ in (None, r.round)
        ]

    print(
        f"\nstreamed A2A calls through the gateway ({a2a_gateway.TREE['dir']}, "
        f"{'PostgreSQL' if a2a_gateway.DATABASE['server'] else 'SQLite'}), {binding}, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"median of {rounds} round(s), spread min-max"
    )
    print(
        f"{'events':>6} {'SendMessage µs':>16} {'streamed µs':>16} {'ratio':>12} "
        f"{'streamed p50 ms':>15} {'other %':>7}"
    )

    def spread(values: list[float], spec: str) -> str:
        if not values:
            return "-"
        low, high = format(min(values), spec), format(max(values), spec)
        return f"{format(median(values), spec)} ({low}-{high})"

    for count in counts:
        ratios = [
            s / m
            for n in range(rounds)
            for s, m in zip(
                cpu(count, "SendStreamingMessage", n), cpu(count, "SendMessage", n), strict=False
            )
        ]
        streamed = [r for r in rows if r.events == count and r.method == "SendStreamingMessage"]
        print(
            f"{count:>6} {spread(cpu(count, 'SendMessage'), '.0f'):>16} "
            f"{spread(cpu(count, 'SendStreamingMessage'), '.0f'):>16} "
            f"{spread(ratios, '.2f'):>12} {median([r.p50_ms for r in streamed]):>15.2f} "
            f"{median([r.other for r in rows if r.events == count]):>7.0f}"
        )
    low = min((n for n in counts if n > 1), default=min(counts))
    high = max(counts)
    if high > low:
        slopes = [
            (s_high - s_low) / (high - low)
            for n in range(rounds)
            for s_high, s_low in zip(
                cpu(high, "SendStreamingMessage", n),
                cpu(low, "SendStreamingMessage", n),
                strict=False,
            )
        ]
        print(
            f"per extra event ({low} -> {high} events): {spread(slopes, '.0f')} µs of gateway CPU"
        )
    print("targets: streamed <= 1.3x SendMessage (4 events); an extra event <= 150 µs")


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", default="1,4,16", help="event counts N, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time first")
    parser.add_argument("--conns", type=int, default=1, help="concurrent connections")
    parser.add_argument(
        "--bindings",
        default="jsonrpc",
        help=f"the door's binding(s), comma-separated: {', '.join(BINDINGS)}",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run everything this often")
    parser.add_argument("--no-pin", action="store_true", help="let the kernel place processes")
    parser.add_argument(
        "--gateway-tree", metavar="DIR", help="measure the gateway of this checkout (its .venv)"
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="a PostgreSQL server: the gateway runs on a throwaway database there "
        "(default: SQLite)",
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    if args.gateway_tree:
        a2a_gateway.use_tree(args.gateway_tree)
    if args.database_url:
        a2a_gateway.use_database(args.database_url)
    counts = sorted({int(n) for n in args.events.split(",")})
    if not args.no_pin and hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        first, second = sorted(os.sched_getaffinity(0))[:2]
        harness.LAYOUT.update(load={first}, agent={first}, forwarder={second})
    args.bindings = [b.strip() for b in args.bindings.split(",") if b.strip()]
    unknown = set(args.bindings) - set(BINDINGS)
    if unknown:
        parser.error(f"unknown binding(s) {sorted(unknown)}: {', '.join(BINDINGS)}")
    rows = [row for n in range(args.rounds) for row in one_round(counts, n, args)]
    for binding in args.bindings:
        print_table([r for r in rows if r.binding == binding], counts, args.rounds, binding)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_agent"]:
        port, count, parent = sys.argv[2:5]
        harness._die_with_parent(int(parent))
        serve_agent(int(port), int(count))
    elif sys.argv[1:2] == ["_load"]:
        harness.run_in_event_loop(_load, json.loads(sys.argv[2]))
    elif sys.argv[1:2] == ["_grpc_load"]:
        a2a_streams_grpc.main(json.loads(sys.argv[2]))
    else:
        raise SystemExit(cli())

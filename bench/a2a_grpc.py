"""A2A SendMessage through the gateway's gRPC door, against its JSON-RPC door.

    python -m bench.a2a_grpc                    # 1 and 16 callers, 5 s, 3 rounds
    python -m bench.a2a_grpc --seconds 10 --rounds 5 --conns 1 32

One gateway (`switchboard serve --dev`, SQLite, `SWITCHBOARD_A2A_GRPC_PORT`
set) and one agent (`bench.a2a_forwarding`'s stub: the agent's cost kept out
of the way). Each round drives the same gateway through both doors in turn,
JSON-RPC with `bench.a2a_forwarding`'s load generator and gRPC with the
a2a-sdk's generated stub (one channel per caller, one call in flight on
each), and reports requests per second, p50 and the gateway's CPU per call.
The figure that matters is the ratio: gRPC's CPU per call over JSON-RPC's,
measured in the same run on the same process. Both doors run the same
admission, decision, minted token, task checks and audit; the JSON-RPC door
also has its pass-through path (`gateway.agents.passthrough`), which the gRPC
door, serving the SDK's types end to end, does not use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench import a2a_forwarding as harness
from bench import ports
from bench.a2a_gateway import _start_gateway


def _start(agent_url: str, grpc_port: int) -> tuple[harness.Running, str, str]:
    """`bench.a2a_gateway`'s gateway (it inherits this environment), its gRPC
    door on ``grpc_port``; and the gRPC target and the bearer token."""
    os.environ["SWITCHBOARD_A2A_GRPC_PORT"] = str(grpc_port)
    try:
        running = _start_gateway(agent_url)
    finally:
        del os.environ["SWITCHBOARD_A2A_GRPC_PORT"]
    token = running.headers["Authorization"].removeprefix("Bearer ")
    return running, f"{harness.HOST}:{grpc_port}", token


async def _grpc_load(config: dict[str, Any]) -> dict[str, Any]:
    import grpc.aio
    from a2a.types import Message, Part, Role, SendMessageRequest, a2a_pb2_grpc

    metadata = (("authorization", f"Bearer {config['token']}"), ("a2a-version", "1.0"))
    channels = [grpc.aio.insecure_channel(config["target"]) for _ in range(config["conns"])]
    latencies: list[float] = []
    errors: list[str] = []
    window: dict[str, float] = {}
    start = time.perf_counter()
    measure_from = start + config["warmup"]
    end = measure_from + config["seconds"]

    async def caller(channel: Any) -> None:
        stub = a2a_pb2_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
        while (now := time.perf_counter()) < end:
            request = SendMessageRequest(
                tenant="bench",
                message=Message(
                    message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text="ping")]
                ),
            )
            try:
                await stub.SendMessage(request, metadata=metadata, timeout=30)
            except grpc.aio.AioRpcError as exc:
                if now >= measure_from:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                continue
            done = time.perf_counter()
            if measure_from <= now and done <= end:
                latencies.append(done - now)

    async def mark() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        window["cpu0"] = sum(harness._cpu_seconds(p) for p in config["pids"])
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        window["cpu1"] = sum(harness._cpu_seconds(p) for p in config["pids"])

    await asyncio.gather(mark(), *(caller(c) for c in channels))
    for channel in channels:
        await channel.close()
    ordered = sorted(latencies)
    return {
        "ok": len(ordered),
        "errors": len(errors),
        "p50_ms": harness._percentile(ordered, 50) * 1000 if ordered else float("nan"),
        "cpu": window["cpu1"] - window["cpu0"],
        "error_sample": errors[0] if errors else "",
    }


def _run_grpc(
    target: str, token: str, pid: int, conns: int, warmup: float, seconds: float
) -> dict[str, Any]:
    config = {
        "target": target,
        "token": token,
        "conns": conns,
        "warmup": warmup,
        "seconds": seconds,
        "pids": [pid],
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.a2a_grpc", "_load", json.dumps(config)],
        cwd=harness.REPO,
        capture_output=True,
        check=False,
        timeout=warmup + seconds + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gRPC load failed:\n{done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main(conn_levels: list[int], seconds: float, rounds: int, warmup: float) -> int:
    agent_port = ports.free_port()
    agent = harness.spawn(harness._serve_argv("agent-stub", agent_port), agent_port)
    harness.pin(agent.pid, harness.LAYOUT["agent"])
    running, target, token = _start(f"http://{harness.HOST}:{agent_port}/", ports.free_port())
    (gateway_pid,) = running.pids
    rows: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    try:
        for round_ in range(rounds):
            for conns in conn_levels:
                jsonrpc = harness.run_load(running, conns, warmup, seconds, agent.pid)
                cpu = jsonrpc.cpu[str(gateway_pid)]
                rows.setdefault(("JSON-RPC", conns), []).append(
                    (jsonrpc.ok / seconds, jsonrpc.p50_ms, cpu / max(jsonrpc.ok, 1) * 1e6)
                )
                grpc_result = _run_grpc(target, token, gateway_pid, conns, warmup, seconds)
                rows.setdefault(("gRPC", conns), []).append(
                    (
                        grpc_result["ok"] / seconds,
                        grpc_result["p50_ms"],
                        grpc_result["cpu"] / max(grpc_result["ok"], 1) * 1e6,
                    )
                )
                print(
                    f"  round {round_ + 1}, {conns} callers: JSON-RPC {jsonrpc.ok / seconds:.0f} "
                    f"req/s ({jsonrpc.errors} errors), gRPC {grpc_result['ok'] / seconds:.0f} "
                    f"req/s ({grpc_result['errors']} errors {grpc_result['error_sample']})",
                    file=sys.stderr,
                )
    finally:
        running.stop()
        harness.stop_process(agent)
    print(
        f"A2A SendMessage through one gateway, stub agent; medians of {rounds} rounds of {seconds:g} s"
    )
    print("door       callers   req/s   p50 ms   gateway CPU us/call   CPU vs JSON-RPC")
    for conns in conn_levels:
        base = statistics.median(r[2] for r in rows[("JSON-RPC", conns)])
        for door in ("JSON-RPC", "gRPC"):
            got = rows[(door, conns)]
            cpu = statistics.median(r[2] for r in got)
            print(
                f"{door:9}  {conns:>7}  {statistics.median(r[0] for r in got):>6.0f}  "
                f"{statistics.median(r[1] for r in got):>7.2f}  {cpu:>20.0f}  {cpu / base:>14.2f}x"
            )
    return 0


def cli() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_load":
        print(json.dumps(asyncio.run(_grpc_load(json.loads(sys.argv[2])))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    ports.add_argument(parser)
    args = parser.parse_args()
    return main(args.conns, args.seconds, args.rounds, args.warmup)


if __name__ == "__main__":
    raise SystemExit(cli())

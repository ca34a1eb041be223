"""The gRPC door's load for `bench.a2a_streams` (``--bindings grpc``).

One process, ``conns`` channels with one call in flight on each, the a2a-sdk's
generated stub: `SendMessage` (unary) or `SendStreamingMessage` (server
streaming, every event read) to the agent the request's `tenant` names (A2A
1.0 §4.4.6; `gateway.a2a.grpc_door`). An answer counts when it ends in the
completed task (a stream: with all ``events`` events). The CPU window and the
result are `bench.a2a_forwarding.drive`'s, so the figures sit in one table
with the HTTP bindings'.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from a2a.types import TaskState

from bench import a2a_forwarding as harness
from bench import a2a_gateway, ports

COMPLETED = TaskState.TASK_STATE_COMPLETED


def _completed(answer: Any) -> bool:
    """Whether a `SendMessageResponse` or `StreamResponse` is the completed task."""
    if answer.HasField("task"):
        return bool(answer.task.status.state == COMPLETED)
    if answer.HasField("status_update"):
        return bool(answer.status_update.status.state == COMPLETED)
    return False


async def grpc_load(
    target: str,
    conns: int,
    warmup: float,
    seconds: float,
    token: str,
    pids: list[int],
    method: str,
    events: int,
    agent: str,
) -> harness.LoadResult:
    import grpc.aio
    from a2a.types import Message, Part, Role, SendMessageRequest, a2a_pb2_grpc

    metadata = (("authorization", f"Bearer {token}"), ("a2a-version", "1.0"))
    clock = time.perf_counter
    start = clock() + warmup
    end = start + seconds
    latencies: list[float] = []
    errors: list[str] = []

    async def call(stub: Any) -> bool:
        message = Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text="hi")])
        request = SendMessageRequest(tenant=agent, message=message)
        if method == "SendMessage":
            return _completed(await stub.SendMessage(request, metadata=metadata, timeout=30))
        said = [item async for item in stub.SendStreamingMessage(request, metadata=metadata)]
        return len(said) == events and _completed(said[-1])

    async def caller() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = a2a_pb2_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]
            while clock() < end:
                sent = clock()
                try:
                    good = await call(stub)
                except grpc.aio.AioRpcError as exc:
                    good = False
                    if start <= clock() <= end:
                        errors.append(f"{exc.code().name}: {exc.details()}")
                    await asyncio.sleep(0.01)
                    continue
                done = clock()
                if start <= done <= end:
                    if good:
                        latencies.append(done - sent)
                    else:
                        errors.append(f"{method}: an answer without the completed task")

    async def cpu_window() -> tuple[dict[str, float], dict[str, float]]:
        watched: list[int | str] = [*pids, "self"]
        await asyncio.sleep(max(0.0, start - clock()))
        before = {str(p): harness._cpu_seconds(p) for p in watched}
        before["machine"] = harness._machine_busy_seconds()
        await asyncio.sleep(max(0.0, end - clock()))
        after = {str(p): harness._cpu_seconds(p) for p in watched}
        after["machine"] = harness._machine_busy_seconds()
        return before, after

    window = asyncio.create_task(cpu_window())
    await asyncio.gather(*(caller() for _ in range(conns)))
    before, after = await window
    ordered = sorted(latencies) or [float("nan")]
    return harness.LoadResult(
        ok=len(latencies),
        errors=len(errors),
        seconds=seconds,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=harness._percentile(ordered, 99) * 1000,
        cpu={p: after[p] - before[p] for p in before},
        error_sample=errors[0] if errors else "",
    )


def start_gateway(agents: list[tuple[str, str]], args: argparse.Namespace) -> harness.Running:
    """`bench.a2a_gateway`'s gateway (it inherits this environment); with
    ``--bindings grpc``, its gRPC door on a port of its own (`args.grpc_target`)."""
    if "grpc" not in args.bindings:
        return a2a_gateway.start_gateway(agents)
    grpc_port = ports.free_port()
    os.environ["SWITCHBOARD_A2A_GRPC_PORT"] = str(grpc_port)
    try:
        running = a2a_gateway.start_gateway(agents)
    finally:
        del os.environ["SWITCHBOARD_A2A_GRPC_PORT"]
    args.grpc_target = f"{harness.HOST}:{grpc_port}"
    return running


def measure(
    running: harness.Running,
    method: str,
    events: int,
    agents: list[int],
    args: argparse.Namespace,
    url: str,
) -> harness.LoadResult:
    """The gRPC door's load (`bench.a2a_streams_grpc`): the agent by its tenant."""
    config = {
        "target": args.grpc_target,
        "conns": args.conns,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "token": running.headers["Authorization"].removeprefix("Bearer "),
        "pids": [*running.pids, *agents],
        "method": method,
        "events": events,
        "agent": url.rsplit("/", 1)[1],
        "cpus": sorted(harness.LAYOUT["load"] or ()),
        "parent": os.getpid(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.a2a_streams", "_grpc_load", json.dumps(config)],
        cwd=harness.REPO,
        capture_output=True,
        check=False,
        timeout=args.warmup + args.seconds + harness.UPSTREAM_TIMEOUT + 30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gRPC load generator failed:\n{done.stderr.decode()[-2000:]}")
    return harness.LoadResult(**json.loads(done.stdout))


def main(config: dict[str, Any]) -> None:
    """The load process's main, as `harness.run_in_event_loop`'s but on
    asyncio's own loop (grpc.aio runs on it)."""
    harness._die_with_parent(config.pop("parent"))
    if cpus := config.pop("cpus"):
        os.sched_setaffinity(0, cpus)
    print(json.dumps(dataclasses.asdict(asyncio.run(grpc_load(**config)))))

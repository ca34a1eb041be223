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

    window = asyncio.create_task(harness.cpu_window(pids, start, end, clock))
    await asyncio.gather(*(caller() for _ in range(conns)))
    return harness.load_result(latencies, errors, seconds, await window)


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


def load_config(
    running: harness.Running,
    method: str,
    events: int,
    agents: list[int],
    args: argparse.Namespace,
    url: str,
) -> dict[str, Any]:
    """The config of a gRPC load process (`grpc_load`): the agent by its tenant."""
    return {
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


def main(config: dict[str, Any]) -> None:
    """The load process's main, as `harness.run_in_event_loop`'s but on
    asyncio's own loop (grpc.aio runs on it)."""
    harness._die_with_parent(config.pop("parent"))
    if cpus := config.pop("cpus"):
        os.sched_setaffinity(0, cpus)
    print(json.dumps(dataclasses.asdict(asyncio.run(grpc_load(**config)))))

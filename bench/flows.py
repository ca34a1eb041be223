"""Flows: the gateway's CPU per step, over the same calls made one by one.

    python -m bench.flows                       # 30 runs of 3 and of 6 steps, 30 x 6 calls
    python -m bench.flows --runs 100 --concurrent 100
    python -m bench.flows --database-url postgresql://postgres@127.0.0.1:5432/test

A gateway process (`switchboard serve --dev`; SQLite, or a throwaway
database on the PostgreSQL server ``--database-url`` names) and the sales desk
(an A2A agent on the official a2a-sdk, in this process). Legs, each
measured as the gateway process's CPU time (/proc, user + system):

* ``calls``: ``runs x steps`` `SendMessage` calls to the agent through the
  front door (`/a2a/sales`, skill ``quote``), one after another; then as
  many `SendStreamingMessage` calls, the exchange a step has with this
  agent (it streams: four events, each recorded), printed beside;
* ``flow``: for each size in ``--steps`` (default 3 and 6), ``runs`` runs of
  a flow of that many such calls, started ``--concurrent`` at a time (the
  two sizes' batches taking turns) and followed to their end -- read every
  0.5 s, and the CPU of those reads (measured after, on a finished run)
  left out: a run ending just after a read is read once more, which cost
  about as much as a step's difference between two trees. A run is followed for about half a second whatever
  its steps, so the gateway's background work meanwhile (its timers and
  the engine's: measured idle for ``--idle-seconds`` before the legs)
  lands in the intercept; the figures are printed with it and without.

Issue 33 defines a step's cost by the slope between the two sizes (a run's
own cost -- start, begin, finish -- is the intercept, not spread over its
steps) and sets two targets: a step over its call <= the engine's own cost
of a no-op step (`bench.engine_floor`, measured right after) + 1 ms, and a
run's own cost <= 3x a step. Both are printed, with the older figure (a
run's CPU over its calls, divided by its steps) for comparison with earlier
notes. Load average is printed too: the machine is shared, so compare within
a run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import ports
from bench.proc_cpu import cpu_seconds
from bench.scale import server_database
from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import Server, bound_socket
from gateway.flows.engine import system_database_url


def policy(sizes: tuple[int, ...]) -> str:
    """Each flow (an actor named by its id) may quote; the desk requires it."""
    flows = "".join(f"  bench-flow-{n}:\n    grant: [sales:quote]\n" for n in sizes)
    return f"version: 1\nagents:\n{flows}  sales:\n    require: [sales:quote]\n"


def flow_id(steps: int) -> str:
    return f"bench-flow-{steps}"


def flow_document(steps: int) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": flow_id(steps),
        "name": "Bench",
        "steps": [
            {
                "id": f"s{i}",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: 'X-100', quantity: `10`}",
            }
            for i in range(steps)
        ],
    }


def call_once(client: httpx.Client, streamed: bool = False) -> None:
    """One call to the desk through the front door: `SendMessage`, or
    (``streamed``) `SendStreamingMessage`, read to its end -- the exchange a
    flow's step has with an agent that streams (the task, working, the
    artifact, completed: each event recorded)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendStreamingMessage" if streamed else "SendMessage",
        "params": {
            "message": {
                "messageId": str(uuid.uuid4()),
                "role": "ROLE_USER",
                "parts": [{"data": {"sku": "X-100", "quantity": 10}}],
                "metadata": {"skill": "quote"},
            }
        },
    }
    if streamed:
        headers = {"A2A-Version": "1.0", "Accept": "text/event-stream"}
        with client.stream("POST", "/a2a/sales", json=body, headers=headers) as events:
            events.raise_for_status()
            said = b"".join(events.iter_bytes())
        assert said.count(b"data:") >= 4, said[:500]
        assert b"COMPLETED" in said, said[:500]
        return
    answer = client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})
    answer.raise_for_status()
    assert "result" in answer.json(), answer.text


def run_once(client: httpx.Client, flow: str) -> tuple[str, int]:
    """One run of ``flow`` followed to its end: its id, and how many times it was read."""
    started = client.post(f"/flows/{flow}/runs", json={"input": {}})
    started.raise_for_status()
    run_id = started.json()["id"]
    reads = 0
    while True:
        reads += 1
        state = client.get(f"/flows/{flow}/runs/{run_id}").json()["state"]
        if state in ("completed", "failed"):
            assert state == "completed", run_id
            return run_id, reads
        time.sleep(0.5)  # rarely: the bench's own polling is gateway CPU too


def read_cost(client: httpx.Client, pid: int, flow: str, run_id: str, reads: int = 60) -> float:
    """The gateway's CPU seconds for one read of a run (the bench's own
    polling, left out of the flow leg: a run that ends just after a read
    is read once more, ~1.5 ms a step that is not the step's)."""
    before = cpu_seconds(pid)
    for _ in range(reads):
        client.get(f"/flows/{flow}/runs/{run_id}").raise_for_status()
    return (cpu_seconds(pid) - before) / reads


def idle_rate(pid: int, seconds: float) -> float:
    """The gateway's CPU seconds a second with nothing asked of it: its
    background work (the engine's and the gateway's timers), which a run
    followed by reads every 0.5 s accrues for as long as it is followed."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def _profile(pid: int, out: str) -> subprocess.Popen[bytes]:
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command += ["--threads", "--output", out, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


Leg = tuple[float, float, int, float]  # CPU (reads left out), wall, reads, a read's CPU


def flow_legs(
    user: httpx.Client,
    pid: int,
    sizes: tuple[int, int],
    runs: int,
    concurrent: int,
    profile: str | None,
) -> dict[int, Leg]:
    """``runs`` runs of each size's flow, in batches of ``concurrent`` runs
    taking turns (small, large, then large, small, ...): a machine whose
    speed drifts over the minute the legs take weighs on both alike, not on
    the one that ran last. Each size's leg: the gateway's CPU seconds for
    its runs (the bench's reads left out), their wall time, their reads and
    the CPU of one read."""
    sampler = _profile(pid, profile) if profile else None
    cpu = dict.fromkeys(sizes, 0.0)
    wall = dict.fromkeys(sizes, 0.0)
    ran: dict[int, list[tuple[str, int]]] = {n: [] for n in sizes}
    with ThreadPoolExecutor(concurrent) as pool:
        for batch, first in enumerate(range(0, runs, concurrent)):
            count = min(concurrent, runs - first)
            for steps in sizes if batch % 2 == 0 else sizes[::-1]:
                flow = flow_id(steps)
                before, began = cpu_seconds(pid), time.monotonic()
                ran[steps] += pool.map(lambda _, f=flow: run_once(user, f), range(count))
                cpu[steps] += cpu_seconds(pid) - before
                wall[steps] += time.monotonic() - began
    if sampler is not None:
        sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        sampler.wait(30)
    legs: dict[int, Leg] = {}
    for steps in sizes:
        reads = sum(n for _, n in ran[steps])
        per_read = read_cost(user, pid, flow_id(steps), ran[steps][0][0])
        legs[steps] = (cpu[steps] - reads * per_read, wall[steps], reads, per_read)
    return legs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--steps", default="3,6", help="two flow sizes (steps per run): the slope is a step's cost"
    )
    parser.add_argument("--concurrent", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server: the run gets a database of its own there, dropped "
        "afterwards (default: SQLite in a temp dir)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="how long the idle gateway's background CPU is measured, before the legs",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway during the flows' legs with py-spy (pip install "
        "py-spy), collapsed stacks to FILE (threads, idle excluded)",
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    small, large = sorted(int(n) for n in args.steps.split(","))
    if not 0 < small < large:
        parser.error("--steps takes two sizes, the first smaller: 3,6")
    desk = SalesDesk()
    sales = Server("sales desk", bound_socket(port=ports.from_range() or 0))
    sales.start(sales_desk_app(sales.url, desk))
    legs: dict[int, Leg] = {}
    with contextlib.ExitStack() as stack:
        temp = stack.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-bench-flows-"))
        # The engine's floor is measured on the same database (below).
        url = server_database(stack, args.database_url, Path(temp), "flows")
        policy_file = Path(temp) / "policy.yaml"
        policy_file.write_text(policy((small, large)))
        gateway = GatewayProcess(
            Path(temp) / "gw", policy_file=policy_file, database_url=url, port=ports.from_range()
        )
        gateway.start()
        try:
            with gateway.client("admin", "switchboard:admin") as admin:
                card = sales.url + "/.well-known/agent-card.json"
                admin.post("/agents", json={"card_url": card, "id": "sales"}).raise_for_status()
                for steps in (small, large):
                    admin.post("/flows", json=flow_document(steps)).raise_for_status()
            with gateway.client("bench", "sales:quote") as user:
                call_once(user)  # warm every path
                for steps in (small, large):
                    run_once(user, flow_id(steps))
                idle = idle_rate(gateway.pid, args.idle_seconds)
                total = args.runs * large
                before = cpu_seconds(gateway.pid)
                for _ in range(total):
                    call_once(user)
                call = (cpu_seconds(gateway.pid) - before) / total
                call_once(user, streamed=True)  # warm the streamed path
                before = cpu_seconds(gateway.pid)
                for _ in range(total):
                    call_once(user, streamed=True)
                streamed_call = (cpu_seconds(gateway.pid) - before) / total
                legs = flow_legs(
                    user, gateway.pid, (small, large), args.runs, args.concurrent, args.profile
                )
        finally:
            gateway.stop()
            sales.stop()
        # The engine's own checkpoint per step, measured now on the same
        # machine and database: the part of a step no code of the gateway's
        # can remove.
        floor_command = [sys.executable, "-m", "bench.engine_floor"]
        if url is not None:
            floor_command += ["--database", system_database_url(url)]
        floor = subprocess.run(floor_command, capture_output=True, text=True, check=True)
    backend = "PostgreSQL" if url else "SQLite"
    load = os.getloadavg()[0]
    print(f"{backend}; load average {load:.2f}; {args.runs} runs each, {args.concurrent} at a time")
    print(f"calls one by one: {call * 1000:.2f} ms CPU per call")
    print(
        f"streamed calls one by one (the exchange a step has): {streamed_call * 1000:.2f} ms "
        "CPU per call"
    )
    for steps, (cpu, wall, reads, per_read) in legs.items():
        per_run = cpu * 1000 / args.runs
        print(
            f"flow of {steps} steps: {per_run:.2f} ms CPU per run ({wall:.1f} s wall; the "
            f"bench's {reads} reads left out, {per_read * 1000:.2f} ms each)"
        )
    # The older figure: a run's CPU over its calls, spread over its steps.
    spread = (legs[small][0] / args.runs / small - call) * 1000
    print(
        f"  {small} steps, a run's CPU over its calls per step (the older figure): {spread:.2f} ms"
    )
    step = (legs[large][0] - legs[small][0]) / args.runs / (large - small) * 1000
    run_cost = legs[small][0] * 1000 / args.runs - small * step
    over = step - call * 1000
    print(f"a step by the slope: {step:.2f} ms CPU, over its call: {over:.2f} ms")
    print(f"  over the streamed call: {step - streamed_call * 1000:.2f} ms")
    print(f"a run's own cost (the intercept): {run_cost:.2f} ms = {run_cost / step:.1f}x a step")
    # The legs' background CPU (idle rate x their wall time) left out: each
    # run is followed for ~0.5 s (one read's wait) whatever its steps, so
    # the timers' share lands in the intercept, not in the slope.
    busy = {n: cpu - idle * wall for n, (cpu, wall, _, _) in legs.items()}
    busy_step = (busy[large] - busy[small]) / args.runs / (large - small) * 1000
    busy_run = busy[small] * 1000 / args.runs - small * busy_step
    print(
        f"  the idle gateway's background: {idle * 1000:.2f} ms CPU a second; left out of "
        f"both legs: a step {busy_step:.2f} ms, a run's own cost {busy_run:.2f} ms = "
        f"{busy_run / busy_step:.1f}x a step"
    )
    floor_said, *floor_more = floor.stdout.strip().splitlines()
    print(f"{floor_said} (DBOS alone, no-op steps, {backend})")
    for line in floor_more:
        print(f"  {line}")
    floor_ms = float(floor_said.split(":", 1)[1].split("ms", 1)[0])
    print(f"target: <= floor + 1 ms = {floor_ms + 1:.2f} ms; now {over / (floor_ms + 1):.1f}x it")


if __name__ == "__main__":
    main()

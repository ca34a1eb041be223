"""Flows: the gateway's CPU per step, over the same calls made one by one.

    python -m bench.flows                       # 30 runs of 3 steps, then 30 x 3 calls
    python -m bench.flows --runs 100 --concurrent 100

A gateway process (`switchboard serve --dev`, SQLite) and the sales desk
(an A2A agent on the official a2a-sdk, in this process). Two legs, each
measured as the gateway process's CPU time (/proc, user + system):

* ``calls``: ``runs x steps`` `SendMessage` calls to the agent through the
  front door (`/a2a/sales`, skill ``quote``), one after another;
* ``flow``: ``runs`` runs of a flow of ``steps`` such calls, started
  ``--concurrent`` at a time and followed to their end -- read every 0.5 s,
  and the CPU of those reads (measured after, on a finished run) left out:
  a run ending just after a read is read once more, which cost about as
  much as a step's difference between two trees.

The figure is (flow CPU - calls CPU) / (runs x steps): what a step costs
over the call it makes. Issue 33's target is the engine's own cost of a
no-op step (`bench.engine_floor`, measured right after) + 1 ms; the ratio to
that floor is printed with it. Load average is printed too: the machine is
shared, so compare within a run.
"""

from __future__ import annotations

import argparse
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

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import Server

POLICY = "version: 1\nagents:\n  bench-flow:\n    grant: [sales:quote]\n  sales:\n    require: [sales:quote]\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flow_document(steps: int) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": "bench-flow",
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


def call_once(client: httpx.Client) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": str(uuid.uuid4()),
                "role": "ROLE_USER",
                "parts": [{"data": {"sku": "X-100", "quantity": 10}}],
                "metadata": {"skill": "quote"},
            }
        },
    }
    answer = client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})
    answer.raise_for_status()
    assert "result" in answer.json(), answer.text


def run_once(client: httpx.Client) -> tuple[str, int]:
    """One run followed to its end: its id, and how many times it was read."""
    started = client.post("/flows/bench-flow/runs", json={"input": {}})
    started.raise_for_status()
    run_id = started.json()["id"]
    reads = 0
    while True:
        reads += 1
        state = client.get(f"/flows/bench-flow/runs/{run_id}").json()["state"]
        if state in ("completed", "failed"):
            assert state == "completed", run_id
            return run_id, reads
        time.sleep(0.5)  # rarely: the bench's own polling is gateway CPU too


def read_cost(client: httpx.Client, pid: int, run_id: str, reads: int = 60) -> float:
    """The gateway's CPU seconds for one read of a run (the bench's own
    polling, left out of the flow leg: a run that ends just after a read
    is read once more, ~1.5 ms a step that is not the step's)."""
    before = cpu_seconds(pid)
    for _ in range(reads):
        client.get(f"/flows/bench-flow/runs/{run_id}").raise_for_status()
    return (cpu_seconds(pid) - before) / reads


def _profile(pid: int, out: str) -> subprocess.Popen[bytes]:
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command += ["--threads", "--output", out, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=1)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway during the flow leg with py-spy (pip install py-spy), "
        "collapsed stacks to FILE (threads, idle excluded)",
    )
    args = parser.parse_args()
    desk = SalesDesk()
    sales = Server("sales desk")
    sales.start(sales_desk_app(sales.url, desk))
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-flows-") as temp:
        policy = Path(temp) / "policy.yaml"
        policy.write_text(POLICY)
        gateway = GatewayProcess(Path(temp) / "gw", policy_file=policy)
        gateway.start()
        try:
            with gateway.client("admin", "switchboard:admin") as admin:
                card = sales.url + "/.well-known/agent-card.json"
                admin.post("/agents", json={"card_url": card, "id": "sales"}).raise_for_status()
                admin.post("/flows", json=flow_document(args.steps)).raise_for_status()
            with gateway.client("bench", "sales:quote") as user:
                call_once(user)  # warm both paths
                run_once(user)
                total = args.runs * args.steps
                before = cpu_seconds(gateway.pid)
                for _ in range(total):
                    call_once(user)
                calls = cpu_seconds(gateway.pid) - before
                sampler = _profile(gateway.pid, args.profile) if args.profile else None
                before, wall = cpu_seconds(gateway.pid), time.monotonic()
                with ThreadPoolExecutor(args.concurrent) as pool:
                    ran = list(pool.map(lambda _: run_once(user), range(args.runs)))
                flows, wall = cpu_seconds(gateway.pid) - before, time.monotonic() - wall
                if sampler is not None:
                    sampler.send_signal(signal.SIGINT)
                    sampler.wait(30)
                reads = sum(n for _, n in ran)
                per_read = read_cost(user, gateway.pid, ran[0][0])
                flows -= reads * per_read
        finally:
            gateway.stop()
            sales.stop()
    load = os.getloadavg()[0]
    print(
        f"load average {load:.2f}; {args.runs} runs x {args.steps} steps, {args.concurrent} at a time"
    )
    print(f"calls one by one: {calls * 1000 / total:.2f} ms CPU per call")
    print(f"flow runs:        {flows * 1000 / total:.2f} ms CPU per step ({wall:.1f} s wall)")
    print(f"  (the bench's {reads} reads of the runs left out: {per_read * 1000:.2f} ms each)")
    over = (flows - calls) * 1000 / total
    print(f"per step over its call: {over:.2f} ms")
    # The engine's own checkpoint per step, measured now on the same machine:
    # the part of the figure above no code of the gateway's can remove.
    floor = subprocess.run(
        [sys.executable, "-m", "bench.engine_floor"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"{floor} (DBOS alone, no-op steps, SQLite)")
    floor_ms = float(floor.split(":", 1)[1].split("ms", 1)[0])
    print(f"target: <= floor + 1 ms = {floor_ms + 1:.2f} ms; now {over / (floor_ms + 1):.1f}x it")


if __name__ == "__main__":
    main()

"""Flows under load: many runs waiting at once, and a crash among them.

    python -m bench.flow_load                         # 1,000 runs on SQLite
    python -m bench.flow_load --runs 1000 --database-url postgresql://127.0.0.1:5432/DB
                                                # a throwaway database on that server
    python -m bench.flow_load --workers 2             # `serve --workers 2`
    python -m bench.flow_load --desk sdk              # the desk on the a2a-sdk

A gateway process (`switchboard serve --dev`) and the sales desk (an A2A
agent, streaming, in this process: by default `bench.quote_desk`, which
answers on the wire as the demo's a2a-sdk desk does at a fraction of its CPU;
``--desk sdk`` runs that desk). Each run of the flow quotes at the desk in
two parallel branches, then waits at a checkpoint for a human. The bench

1. starts ``--runs`` runs, ``--clients`` at a time from one async HTTP
   client in this process (its CPU, with the desk's, is reported), and waits
   until every one waits at its checkpoint: errors, wall time, and the
   gateway's resident memory before and after (per waiting run);
2. kills the gateway (SIGKILL) and starts it again on the same data: the
   time until it answers, and until every run answers as waiting again;
3. approves every checkpoint and waits until every run has completed: the
   time it takes, and that each run's quotes were each sent once (the desk
   counts what it receives).

With ``--workers N`` the gateway is `serve --workers N`: CPU and memory are
its whole process tree's, and the crash kills every process of it.

Figures go to docs/performance.md; the machine is shared, so the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import Engine, create_engine, text

from bench import ports
from bench.proc_cpu import cpu_seconds, postgres_cpu
from bench.quote_desk import QuoteDesk
from bench.scale import server_database
from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import Server, bound_socket
from gateway.flows.engine import dbos_table, system_database_url
from registry.tls import client_tls

POLICY = (
    "version: 1\nagents:\n  load-flow:\n    grant: [sales:quote]\n"
    "  sales:\n    require: [sales:quote]\n"
)
FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "load-flow",
    "name": "Two quotes side by side, then a human",
    "steps": [
        {
            "id": "quotes",
            "parallel": {
                "branches": [
                    {
                        "id": "small",
                        "call": {"agent": "sales", "skill": "quote"},
                        "input": "{sku: 'A-1', quantity: `2`}",
                    },
                    {
                        "id": "large",
                        "call": {"agent": "sales", "skill": "quote"},
                        "input": "{sku: 'B-2', quantity: `200`}",
                    },
                ]
            },
        },
        {"id": "approve", "checkpoint": {"prompt": "Send both quotes?", "timeout_seconds": 86400}},
    ],
}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pids(gateway: GatewayProcess) -> list[int]:
    """The gateway's processes: with `--workers`, its workers as well."""
    return [gateway.pid, *sorted(gateway.worker_pids())] if gateway.workers > 1 else [gateway.pid]


def _summed(read: Callable[[int], float], gateway: GatewayProcess) -> float:
    total = 0.0
    for pid in _pids(gateway):
        with contextlib.suppress(OSError):  # a worker gone meanwhile
            total += read(pid)
    return total


def tree_cpu(gateway: GatewayProcess) -> float:
    return _summed(cpu_seconds, gateway)


def tree_rss(gateway: GatewayProcess) -> float:
    """Summed per process: libraries the workers share count once each."""
    return _summed(rss_mib, gateway)


def kill_tree(gateway: GatewayProcess) -> None:
    """SIGKILL to every process of the gateway (a crash): the supervisor
    first, so it cannot start a worker again, then its workers."""
    workers = _pids(gateway)[1:]
    gateway.kill()
    for pid in workers:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


IDLE_SECONDS = 10.0


def _profile(pid: int, out: str, workers: int = 1) -> subprocess.Popen[bytes]:
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    command += ["--threads", "--output", out, "--nonblocking"]
    if workers > 1:
        command.append("--subprocesses")  # the supervisor itself does no work
    # Only the thread holding the GIL: under load the gateway is bound by it,
    # and a thread waiting for it is what py-spy would call idle otherwise.
    command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def until(check: Callable[[], bool], seconds: float, what: str) -> float:
    start = time.monotonic()
    print(f"... waiting: {what}", file=sys.stderr, flush=True)
    while not check():
        if time.monotonic() - start > seconds:
            raise SystemExit(f"not within {seconds:g} s: {what}")
        time.sleep(0.25)
    return time.monotonic() - start


def states(db: Engine) -> dict[str, int]:
    """Runs per state, read from the gateway's database (the API pages by 200)."""
    with db.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM flow_runs GROUP BY state")).all()
    return {str(state): int(n) for state, n in rows}


def _settled(counted: dict[str, int], waiting: str = "input_required") -> int:
    return counted.get(waiting, 0) + counted.get("failed", 0)


def _failures(db: Engine) -> str:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT error FROM flow_runs WHERE state = 'failed'")).all()
    return str(len(rows)) + (f" (first: {str(rows[0][0])[:160]})" if rows else "")


def _operations(db: Engine) -> int:
    """The operations DBOS recorded for every workflow (each a step's
    output, a message received, a child started): what its floor is paid on
    (`bench.engine_floor`). The whole table: the bench's database is its own
    (a throwaway one on PostgreSQL), so these are this run's workflows."""
    table = dbos_table(db.dialect.name, "operation_outputs")
    with db.connect() as conn:
        return int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608 -- ours


def _progress(counted: dict[str, int]) -> dict[str, int]:
    print(f"    {counted}", file=sys.stderr, flush=True)
    return counted


def pending_approvals(admin: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = admin.get("/approvals", params={"state": "pending", "limit": 200, "offset": offset})
        page.raise_for_status()
        body = page.json()
        found += body["items"]
        offset = body.get("next_offset")
    return found


async def _start_runs(
    user: httpx.Client, runs: int, clients: int, run_ids: list[str], errors: list[str]
) -> None:
    """``runs`` starts, ``clients`` at a time, from one async client (its
    connections ``clients``): aiohttp's, cheaper than httpx's, and measured."""
    connector = aiohttp.TCPConnector(limit=clients, ssl=client_tls())
    headers = dict(user.headers)
    url = str(user.base_url).rstrip("/") + "/flows/load-flow/runs"
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        turn = asyncio.Semaphore(clients)

        async def start() -> None:
            async with turn, client.post(url, json={"input": {}}, headers=headers) as answer:
                body = await answer.read()
            if answer.status != 202:
                errors.append(f"{answer.status} {body[:200].decode(errors='replace')}")
            else:
                run_ids.append(json.loads(body)["id"])

        await asyncio.gather(*(start() for _ in range(runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server: the run gets a database of its own there, dropped "
        "afterwards (default: SQLite in a temp dir)",
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway from the first start until every run waits (py-spy), "
        "collapsed stacks to FILE",
    )
    parser.add_argument(
        "--desk",
        choices=("stub", "sdk"),
        default="stub",
        help="the sales desk: bench.quote_desk (stub) or the demo's a2a-sdk agent (sdk)",
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    desk: SalesDesk | QuoteDesk
    sales = Server("sales desk", bound_socket(port=ports.from_range() or 0))
    if args.desk == "sdk":
        desk = SalesDesk()
        sales.start(sales_desk_app(sales.url, desk))
    else:
        desk = QuoteDesk()
        sales.start(desk.app(sales.url))
    with contextlib.ExitStack() as stack:
        temp = stack.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-bench-load-"))
        url = server_database(stack, args.database_url, Path(temp), "flow_load")
        policy = Path(temp) / "policy.yaml"
        policy.write_text(POLICY)
        gateway = GatewayProcess(
            Path(temp) / "gw",
            policy_file=policy,
            database_url=url,
            workers=args.workers,
            port=ports.from_range(),
        )
        gateway.start()
        try:
            report = _load(gateway, sales, desk, args)
        finally:
            gateway.stop()
            sales.stop()
    load = os.getloadavg()[0]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"flow load on {backend}: {args.runs} runs, {args.clients} clients, "
        f"{args.workers} worker(s), the {args.desk} desk, load {load:.2f}"
    )
    for name, value in report.items():
        print(f"  {name:<34} {value}")


def _load(
    gateway: GatewayProcess,
    sales: Server,
    desk: SalesDesk | QuoteDesk,
    args: argparse.Namespace,
) -> dict[str, str]:
    report: dict[str, str] = {}
    with gateway.client("admin", "switchboard:admin") as admin:
        card = sales.url + "/.well-known/agent-card.json"
        admin.post("/agents", json={"card_url": card, "id": "sales"}).raise_for_status()
        admin.post("/flows", json=FLOW).raise_for_status()
    errors: list[str] = []
    run_ids: list[str] = []

    # Tokens issued once, here: issuing one reads the signing key (and would
    # migrate the database), which is no job for 32 threads at once.
    user = gateway.client("bench", "sales:quote")
    admin = gateway.client("admin", "switchboard:admin")

    rss_before = tree_rss(gateway)
    cpu_before = tree_cpu(gateway)
    # The PostgreSQL server's CPU, when it runs on this machine: its cores are
    # the gateway's too, so a rate target must fit what both spend a run (the
    # bench's own reads of the runs' states, every 0.25 s, count in it too).
    server_before = postgres_cpu() if args.database_url else None
    own_before = cpu_seconds(os.getpid())
    sampler = _profile(gateway.pid, args.profile, args.workers) if args.profile else None
    began = time.monotonic()
    asyncio.run(_start_runs(user, args.runs, args.clients, run_ids, errors))
    started = time.monotonic() - began
    own = cpu_seconds(os.getpid()) - own_before
    report["start errors"] = str(len(errors)) + (f" (first: {errors[0]})" if errors else "")
    report["started in"] = f"{started:.1f} s ({args.runs / started:.0f} runs/s)"
    gateway_cpu = tree_cpu(gateway) - cpu_before
    report["CPU while starting"] = (
        f"gateway {gateway_cpu:.1f} s, this process (clients and desk) {own:.1f} s "
        f"({100 * own / max(1e-9, own + gateway_cpu):.0f} % of the two)"
    )

    db = create_engine(system_database_url(gateway.settings.effective_database_url))
    try:
        # A run that failed on its way (an upstream not reached under the
        # load) is settled too, and counted below, rather than waited for.
        settle = until(
            lambda: _settled(_progress(states(db))) >= len(run_ids),
            args.timeout,
            "every run waiting at its checkpoint (or failed)",
        )
        report["failed before the checkpoint"] = _failures(db)
        report["all waiting after"] = f"{started + settle:.1f} s"
        cpu = tree_cpu(gateway) - cpu_before
        runs = max(1, len(run_ids))
        report["gateway CPU until all wait"] = (
            f"{cpu:.1f} s ({cpu * 1000 / runs:.1f} ms per run, "
            f"{cpu / (started + settle):.2f} cores)"
        )
        server_after = postgres_cpu() if server_before is not None else None
        if server_before is not None and server_after is not None:
            server = server_after - server_before
            report["server CPU until all wait"] = (
                f"{server:.1f} s ({server * 1000 / runs:.1f} ms per run)"
            )
            both, cores = (cpu + server) / runs, len(os.sched_getaffinity(0))
            report["gateway + server a run; runs/s max"] = (
                f"{both * 1000:.1f} ms; {cores} cores / {both * 1000:.1f} ms = "
                f"{cores / both:.0f} runs/s"
            )
        report["DBOS operations a run, to the wait"] = f"{_operations(db) / runs:.1f}"
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            sampler.wait(timeout=60)
        rss_after = tree_rss(gateway)
        per_run = (rss_after - rss_before) * 1024 / max(1, len(run_ids))
        # What the runs cost while they wait for a human: nothing should
        # happen, so any CPU is the engine looking for their wake-up.
        idle_before = tree_cpu(gateway)
        time.sleep(IDLE_SECONDS)
        idle = (tree_cpu(gateway) - idle_before) / IDLE_SECONDS
        report["gateway CPU while all wait"] = f"{idle * 100:.1f} % of a core"

        report["gateway RSS"] = (
            f"{rss_before:.0f} -> {rss_after:.0f} MiB ({per_run:.1f} KiB per waiting run)"
        )

        kill_tree(gateway)
        restarted = time.monotonic()
        gateway.start(timeout=300)
        report["restart (SIGKILL) to /healthz"] = f"{time.monotonic() - restarted:.1f} s"
        items = pending_approvals(admin)
        began = time.monotonic()

        def approve(item: dict[str, Any]) -> None:
            admin.post(f"/approvals/{item['id']}", json={"decision": "approve"}, timeout=120)

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(approve, items))

        def completed() -> bool:
            # A run recovered after the first listing opens its checkpoint
            # again later: its approval is pending then, and approved too.
            if _settled(_progress(states(db)), "completed") >= len(run_ids):
                return True
            late = pending_approvals(admin)
            items.extend(late)
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(approve, late))
            return False

        until(completed, args.timeout, "every run completed after the restart")
        report["approved all, completed after"] = (
            f"{time.monotonic() - began:.1f} s ({len(items)} approvals)"
        )
        report["run states"] = str(states(db))
    finally:
        db.dispose()
        user.close()
        admin.close()
    report["quotes sent"] = (
        f"{desk.count('quote')} for {len(run_ids)} runs (2 each expected, fewer for failed runs)"
    )
    return report


if __name__ == "__main__":
    main()

"""Throughput of `switchboard serve --workers 2` over one worker (issue 19).

    python -m bench.workers                        # 32 conns, stub agent, 3 rounds
    python -m bench.workers --conns 32,64 --seconds 8 --rounds 5 --agent sdk
    python -m bench.workers --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

The harness is `bench.a2a_forwarding` (its load generator, agents, CPU
accounting); the load is A2A `SendMessage` through the gateway (`serve --dev`
on SQLite, everything on: authentication, the policy decision, a minted
token, the task checks, the audit record), to the bare stub agent by default
so that the gateway, not the agent, is what runs out of CPU. Legs alternate
within each round (1 worker, 2 workers, 1, 2, ...), so a disturbance on the
machine hits both; the ratio is taken within each round, then the median.

CPU placement on a machine with at least two CPUs (`--no-pin` leaves it to the
kernel): the load generator and the agent are pinned to the first CPU
(`sched_setaffinity`, what `taskset -c 0` does), and

* one worker runs under `taskset -c 1`: a CPU to itself, as in
  bench.a2a_gateway;
* two workers run under `taskset -c 0,1`: on a 2-core machine they cannot
  have a CPU apart from the load generator, so the second worker shares the
  first CPU with it and the agent. The ratio is what a 2-core machine gives,
  load generator included; on a machine with more cores, pin the load
  elsewhere with `--load-cpus` and the workers gain more.

`--database-url` names a PostgreSQL server instead: each leg gets a throwaway
database on it (`bench.scale.database`, dropped afterwards), so two workers
can be compared with one without SQLite's one-writer-per-file lock between
their processes.

`gw µs/req` is the gateway's CPU per request (all its processes together), the
steadier figure: two workers should cost about what one does per request.
`load+agent µs/req` is what the load generator and the agent spend: on two
cores, two workers can reach at most 2 x gw / (gw + load+agent) times one.
`other %` is CPU taken by processes outside the run: a row with much of it
was disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text

from bench import a2a_forwarding as harness
from bench import ports
from bench.a2a_gateway import _switchboard, serve_argv
from bench.scale import database as throwaway_database
from gateway.storage.db import create_engine

TARGET = 1.6  # DESIGN.md: --workers 2 >= 1.6x one worker on 2 cores


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in map(int, path.read_text().split()):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:  # a worker, not multiprocessing's resource tracker
            found.append(child)
    return found


def _wait_for_workers(url: str, parent: int, workers: int, timeout: float = 90) -> list[int]:
    """The worker pids, once each has registered (its app has started)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = _children(parent) if workers > 1 else [parent]
        if len(pids) == workers and asyncio.run(_replicas(url)) >= workers:
            return pids
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not start within {timeout:g} s")
        time.sleep(0.2)


async def _replicas(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT count(*) FROM gateway_replicas"))
            return int(found.scalar_one())
    except Exception:  # not migrated yet
        return 0
    finally:
        await engine.dispose()


def _leg(workers: int, cpus: str | None, server_url: str | None) -> harness.Leg:
    def start(upstream_url: str) -> harness.Running:
        data = tempfile.mkdtemp(prefix="switchboard-bench-workers-")
        databases = contextlib.ExitStack()
        url = databases.enter_context(
            throwaway_database(server_url, Path(data), f"workers{workers}")
        )
        # The gateway and the CLI calls below read it (the CLI runs in-process
        # children of this one, with its environment).
        os.environ["SWITCHBOARD_DATABASE_URL"] = url
        port = ports.free_port()
        pinning = ["taskset", "-c", cpus] if cpus else []
        argv = [*pinning, *serve_argv(data, port, "--workers", str(workers))]

        def stop() -> None:
            try:
                harness.stop_process(process)
            finally:
                databases.close()
                shutil.rmtree(data, ignore_errors=True)

        process = harness.spawn(argv, port, timeout=90)
        try:
            pids = _wait_for_workers(url, process.pid, workers)
            parts = urlsplit(upstream_url)
            agent = f"{parts.scheme}://{parts.netloc}"
            _switchboard("agents", "add", agent, "--id", "bench", "--data-dir", data)
            token = _switchboard("token", "issue", "--data-dir", data, "--sub", "bench-user")
        except BaseException:
            stop()
            raise
        return harness.Running(
            f"http://{harness.HOST}:{port}/a2a/bench",
            tuple(pids),  # the workers' CPU (a child's is not in its parent's /proc stat)
            stop,
            headers={"Authorization": f"Bearer {token}"},
        )

    return harness.Leg(
        start, f"Switchboard, {workers} worker(s)" + (f", CPUs {cpus}" if cpus else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--conns", default="32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agent", default="stub", choices=sorted(harness.AGENTS))
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--load-cpus", help="CPUs for the load generator and agent (default: 0)")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server for throwaway databases (default: SQLite)"
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    if pinned:
        load = {int(c) for c in args.load_cpus.split(",")} if args.load_cpus else {cpus[0]}
        harness.LAYOUT.update(load=load, agent=load)
        spare = [c for c in cpus if c not in load] or cpus
        one, two = str(spare[0]), ",".join(map(str, cpus if len(spare) < 2 else spare[:2]))
    else:
        one = two = None  # type: ignore[assignment]
    harness.LEGS["1-worker"] = _leg(1, one, args.database_url)
    harness.LEGS["2-workers"] = _leg(2, two, args.database_url)
    levels = [int(c) for c in args.conns.split(",")]
    rows: dict[tuple[str, int], list[harness.Row]] = {}
    for round_ in range(args.rounds):
        for leg in ("1-worker", "2-workers"):
            for row in harness.measure_leg(
                leg, args.agent, levels, args.warmup, args.seconds, round_
            ):
                rows.setdefault((leg, row.conns), []).append(row)
    load_avg = " ".join(f"{v:.2f}" for v in os.getloadavg())
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\n--workers 1 vs 2, {len(cpus)} CPUs, {args.agent} agent, {backend}, "
        f"load average {load_avg}"
    )
    if pinned:
        print(
            f"load + agent on CPU {sorted(harness.LAYOUT['load'] or ())}; 1 worker on {one}; 2 on {two}"
        )
    print(
        f"{'leg':<10} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'gw µs/req':>9} "
        f"{'load+agent µs/req':>17} {'other %':>7}"
    )
    failed = False
    for (leg, conns), found in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        good = [r for r in found if r.result is not None and r.result.ok and not r.result.errors]
        failed |= len(good) != len(found)
        if not good:
            print(f"{leg:<10} {conns:>5} FAILED {found[0].note}")
            continue
        rate = statistics.median(r.result.ok / args.seconds for r in good if r.result)
        p50 = statistics.median(r.result.p50_ms for r in good if r.result)
        cpu = statistics.median(r.forwarder_cpu / r.result.ok * 1e6 for r in good if r.result)
        rest = statistics.median(
            (r.agent_cpu + r.result.cpu["self"]) / r.result.ok * 1e6 for r in good if r.result
        )
        other = statistics.median(r.other_cpu / args.seconds * 100 for r in good)
        print(
            f"{leg:<10} {conns:>5} {rate:>8.0f} {p50:>7.2f} {cpu:>9.0f} {rest:>17.0f} {other:>7.0f}"
        )
    for conns in levels:
        ratios = [
            two_row.result.ok / one_row.result.ok
            for one_row, two_row in zip(
                rows[("1-worker", conns)], rows[("2-workers", conns)], strict=True
            )
            if one_row.result and two_row.result and one_row.result.ok
        ]
        if ratios:
            median = statistics.median(ratios)
            verdict = "meets" if median >= TARGET else "below"
            shown = ", ".join(f"{r:.2f}" for r in ratios)
            print(
                f"\n{conns} conns: 2 workers / 1 worker = {median:.2f}x (rounds: {shown}); "
                f"{verdict} the {TARGET}x target"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Writers in several processes on one SQLite file: SQLite's own lock
against the gateway's write gate (`gateway.storage.sqlite_gate`).

    python -m bench.sqlite_writers                    # 2 processes, 3 rounds
    python -m bench.sqlite_writers --processes 4 --transactions 2000

Each process opens the file as the gateway does and runs ``--transactions``
write transactions back to back: BEGIN IMMEDIATE, ``--rows`` inserts with a
little Python work between them (a transaction holds the lock ~0.3 ms, as a
flow step's record does under load), COMMIT, then some work outside. Two legs,
alternated in each round on a fresh file:

* ``sqlite``: a plain connection set up as a `GatedConnection` sets itself
  up (``synchronous=NORMAL``, its checkpoints left to the background thread),
  without the gate: a writer that finds the lock taken waits in SQLite's busy
  handler (sleeps of 1, 2, 5 ... 100 ms). With one connection a process the
  gate's thread lock has nothing to order, so this is the gateway as it was
  before the gate spanned processes;
* ``gate``: a `GatedConnection`, which waits on the gate's flock first.

Printed per leg (medians of the rounds): the wall time until every process is
done, transactions a second, each transaction's latency (p50 / p99 / max, ms)
and CPU per transaction. What `serve --workers N` on SQLite gets from the
gate is the ``gate`` leg against the ``sqlite`` leg of the same round.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import a2a_forwarding as harness

BUSY_SECONDS = 15


def _work(rounds: int) -> int:
    return sum(range(rounds))


def _writer(path: str, leg: str, transactions: int, rows: int, out: Any) -> None:
    from gateway.storage.sqlite_checkpoints import checkpointed_here
    from gateway.storage.sqlite_gate import GatedConnection

    factory = GatedConnection if leg == "gate" else sqlite3.Connection
    connection = sqlite3.connect(path, factory=factory, timeout=BUSY_SECONDS, isolation_level=None)
    if leg == "sqlite":  # as `GatedConnection.__init__` sets itself up, less the gate
        connection.execute("PRAGMA synchronous=NORMAL")
        checkpointed_here(connection, path, None)
    latencies: list[float] = []
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(transactions):
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        for _ in range(rows):
            connection.execute("INSERT INTO t (pid) VALUES (?)", (os.getpid(),))
            _work(2_000)
        connection.execute("COMMIT")
        latencies.append(time.perf_counter() - start)
        _work(20_000)
    connection.close()
    out.put((time.perf_counter() - began, time.process_time() - cpu, latencies))


def run_leg(leg: str, processes: int, transactions: int, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-writers-") as temp:
        path = str(Path(temp) / "writers.db")
        setup = sqlite3.connect(path)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, pid INTEGER)")
        setup.commit()
        setup.close()
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        workers = [
            context.Process(target=_writer, args=(path, leg, transactions, rows, out))
            for _ in range(processes)
        ]
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        results: list[Any] = []
        while len(results) < len(workers):
            try:
                results.append(out.get(timeout=1))
            except queue.Empty:
                failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if failed:
                    raise SystemExit(f"{leg}: a writer exited with {failed[0]}") from None
        wall = time.perf_counter() - began
        for worker in workers:
            worker.join(timeout=60)
            if worker.exitcode != 0:
                raise SystemExit(f"{leg}: a writer exited with {worker.exitcode}")
        check = sqlite3.connect(path)
        committed = int(check.execute("SELECT count(*) FROM t").fetchone()[0])
        check.close()
    latencies = sorted(x for _, _, each in results for x in each)
    done = len(latencies)
    return {
        "wall": wall,
        "per_second": done / wall,
        "p50": harness._percentile(latencies, 50) * 1000,
        "p99": harness._percentile(latencies, 99) * 1000,
        "max": latencies[-1] * 1000,
        "cpu_us": sum(cpu for _, cpu, _ in results) / done * 1e6,
        "committed": committed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--transactions", type=int, default=1500, help="per process")
    parser.add_argument("--rows", type=int, default=10, help="inserts per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if min(args.processes, args.transactions, args.rows, args.rounds) < 1:
        parser.error("--processes, --transactions, --rows and --rounds must be at least 1")
    rows: dict[str, list[dict[str, float]]] = {"sqlite": [], "gate": []}
    for round_ in range(args.rounds):
        for leg in rows:
            result = run_leg(leg, args.processes, args.transactions, args.rows)
            rows[leg].append(result)
            print(
                f"  round {round_ + 1}, {leg}: {result['per_second']:.0f} transactions/s, "
                f"max {result['max']:.1f} ms",
                flush=True,
            )
    print(
        f"\n{args.processes} processes x {args.transactions} transactions of {args.rows} rows, "
        f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} round(s)"
    )
    print(
        f"{'leg':<7} {'wall s':>7} {'txn/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU µs':>7}"
    )
    for leg, results in rows.items():

        def median(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)

        print(
            f"{leg:<7} {median('wall'):>7.2f} {median('per_second'):>7.0f} {median('p50'):>7.2f} "
            f"{median('p99'):>7.2f} {median('max'):>7.1f} {median('cpu_us'):>7.0f}"
        )
    ratios = [
        g["per_second"] / s["per_second"] for s, g in zip(rows["sqlite"], rows["gate"], strict=True)
    ]
    print(f"gate ÷ sqlite, transactions/s, by round: {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()

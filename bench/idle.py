"""An idle gateway's database: statements a second with nothing to do, and
what each waiting run adds.

    python -m bench.idle                          # SQLite and PostgreSQL, 60 s windows, 10 runs
    python -m bench.idle --databases sqlite --seconds 30 --runs 5
    python -m bench.idle --legs                   # the idle leg only
    python -m bench.idle --stored-policy          # no policy file: saved through the API
    python -m bench.idle --other-replicas 1       # as one of two replicas

A gateway in this process (`create_app` under uvicorn, dev mode, default
settings), on a fresh SQLite file or a fresh PostgreSQL database
(``--postgres``, an admin URL: the bench creates its database and drops it
after). Every statement any engine of the process sends (the gateway's,
DBOS's) is counted by a SQLAlchemy ``before_cursor_execute`` listener; on
PostgreSQL the database's own count of transactions (``pg_stat_database``:
``xact_commit + xact_rollback``) is printed beside. Legs, each counted over
``--seconds`` once ``--settle`` seconds have passed since the last thing done:

* ``idle``: two flows registered (so the flow engine runs), no run; counted
  once ``--warm`` seconds have passed (DBOS polls its schedules every second
  for a minute after it starts);
* ``checkpoint``: ``--runs`` runs waiting at a checkpoint;
* ``nested``: ``--runs`` runs of a flow whose step calls a flow waiting at a
  checkpoint (an approval from deep inside: the outer call step waits).

A waiting run's cost is its leg's rate less the idle rate, over the runs,
counted once ``--wait-settle`` seconds have passed since they all wait: past
a checkpoint's first look for its decision (after a minute, then doubling
up to a quarter of an hour; about 13 statements each), which is printed on
its own as ``first look``: that leg counted from ``--settle``.
With ``--other-replicas N``, N more replicas' rows are kept fresh in the
database (a thread of this process renews them as a replica's heartbeat
would, its statements not counted), so the gateway is one of N + 1 replicas:
not alone, it looks at what only another replica could change at the pace a
shared deployment needs.
The periodic jobs' intervals (2, 5, 10, 15, 30 s) divide the default
window, so a job's phase moves a leg's count by one pass at most.
The sources of the idle leg's statements are printed (the job or thread, and
the statement's start). Targets (issue 57): idle <= 1 statement/s, a waiting
run <= 0.1/s.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from bench import ports
from bench.fresh_db import fresh_database
from gateway.app import create_app
from gateway.delegation.dev_tokens import issue_dev_token
from gateway.demo.servers import Server, bound_socket
from gateway.settings import Settings
from gateway.storage.replicas import HEARTBEAT_SECONDS, renewal

POLICY = "version: 1\nagents:\n  bench-outer:\n    grant: [bench:go]\n"
INNER = {
    "format": "switchboard.flow/v1",
    "id": "bench-inner",
    "name": "Waits at a checkpoint",
    "steps": [{"id": "manager", "checkpoint": {"prompt": "Go on?", "timeout_seconds": 3600}}],
}
OUTER = {
    "format": "switchboard.flow/v1",
    "id": "bench-outer",
    "name": "Calls the flow that waits",
    "steps": [{"id": "inner", "call": {"flow": "bench-inner"}, "input": "{go: `true`}"}],
}


OTHER_REPLICAS = "bench-other-replicas"  # the thread that renews them: not counted


class Statements:
    """Every statement this process's engines send, by source."""

    def __init__(self) -> None:
        self.by_source: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        event.listen(Engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        thread = re.sub(r"^Thread-\d+ ", "", threading.current_thread().name)
        if thread == OTHER_REPLICAS:
            return
        start = re.sub(r"\s+", " ", statement).strip()[:70]
        with self._lock:
            self.by_source[(thread[:28], start)] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self.by_source.values())

    def clear(self) -> None:
        with self._lock:
            self.by_source.clear()


def sync_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


def postgres_transactions(admin_url: str, name: str) -> int:
    engine = create_engine(sync_url(admin_url))
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :n"),
            {"n": name},
        ).scalar_one()
    engine.dispose()
    return int(count)


@contextlib.contextmanager
def database(kind: str, admin_url: str) -> Iterator[tuple[str | None, str | None]]:
    """(the gateway's database URL, its PostgreSQL name), or (None, None): SQLite."""
    if kind == "sqlite":
        yield None, None
        return
    with fresh_database(admin_url, "sb_bench_idle") as url:
        yield url.render_as_string(hide_password=False), url.database


def gateway(
    data_dir: Path, database_url: str | None, stored_policy: bool
) -> tuple[Server, Settings]:
    """A gateway with `POLICY` in a policy file, or (``stored_policy``) none:
    `store_policy` saves it then."""
    sock = bound_socket(port=ports.from_range() or 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    policy = data_dir / "policy.yaml"
    data_dir.mkdir(parents=True)
    policy.write_text(POLICY)
    values: dict[str, Any] = {"dev": True, "data_dir": data_dir, "public_url": url}
    if not stored_policy:
        values |= {"policy_file": policy}
    if database_url is not None:
        values["database_url"] = database_url
    settings = Settings(**values)
    return Server("gateway", sock).start(create_app(settings), timeout=120), settings


def client(server: Server, settings: Settings, scopes: str = "switchboard:admin") -> httpx.Client:
    token = issue_dev_token(settings, "bench", frozenset(scopes.split()), 3600)
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)  # a loaded machine


def store_policy(http: httpx.Client) -> None:
    """`POLICY` saved through the API (the policy without a policy file)."""
    shown = http.get("/policies").json()
    saved = http.put("/policies", json={"document": POLICY, "base_digest": shown["digest"]})
    saved.raise_for_status()


def start_waiting(http: httpx.Client, flow: str, runs: int) -> None:
    """Start ``runs`` runs of ``flow``; back once each waits."""
    started = []
    for _ in range(runs):
        answer = http.post(f"/flows/{flow}/runs", json={"input": {}})
        answer.raise_for_status()
        started.append(answer.json()["id"])
    deadline = time.monotonic() + 120
    for run_id in started:
        while http.get(f"/flows/{flow}/runs/{run_id}").json()["state"] != "input_required":
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} of {flow} never waited")
            time.sleep(0.2)


def cancel_all(http: httpx.Client) -> None:
    """Cancel every run still going, of both flows (a nested run's inner one too)."""
    for flow in (OUTER, INNER):
        for run in http.get(f"/flows/{flow['id']}/runs").json():
            if run["state"] not in ("completed", "failed", "canceled", "rejected"):
                http.post(f"/flows/{flow['id']}/runs/{run['id']}/cancel")


@contextlib.contextmanager
def other_replicas(count: int, settings: Settings) -> Iterator[None]:
    """``count`` more replicas' rows in the gateway's database, renewed every
    `HEARTBEAT_SECONDS` (as those replicas would) until the block ends."""
    if count == 0:
        yield
        return
    url = make_url(settings.effective_database_url)
    sync = url.set(
        drivername="sqlite" if url.get_backend_name() == "sqlite" else "postgresql+psycopg"
    )
    engine = create_engine(sync.render_as_string(hide_password=False))
    done = threading.Event()

    def renew() -> None:
        # The gateway's own renewal statement, sent on this thread's
        # synchronous engine: `Statements` leaves this thread's out by name.
        while True:
            rows = [
                {
                    "id": f"bench-other-{n}",
                    "url": f"http://127.0.0.1:{9 + n}",
                    "seen_at": datetime.now(UTC),
                }
                for n in range(count)
            ]
            with engine.begin() as conn:
                conn.execute(renewal(engine.dialect.name, rows))
            if done.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=renew, name=OTHER_REPLICAS, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        engine.dispose()


def window(counted: Statements, seconds: float, pg: tuple[str, str] | None) -> tuple[float, float]:
    """Statements a second, and PostgreSQL transactions a second (0 on SQLite)."""
    before = postgres_transactions(*pg) if pg else 0
    counted.clear()
    time.sleep(seconds)
    statements = counted.total() / seconds
    after = postgres_transactions(*pg) if pg else 0
    return statements, (after - before) / seconds  # read from another database


def leg(kind: str, args: argparse.Namespace, counted: Statements) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, args.postgres) as (url, name):
        server, settings = gateway(Path(tmp) / "data", url, args.stored_policy)
        pg = (args.postgres, name) if name else None
        try:
            with client(server, settings) as http, other_replicas(args.other_replicas, settings):
                if args.stored_policy:
                    store_policy(http)
                for flow in (INNER, OUTER):
                    answer = http.post("/flows", json=flow)
                    if answer.status_code != 201:
                        raise RuntimeError(answer.text)
                time.sleep(args.warm)
                idle, idle_tx = window(counted, args.seconds, pg)
                sources = counted.by_source.most_common(args.top)
                report(kind, "idle", idle, idle_tx, None)
                # In this order: a run cancelled makes one last look at its
                # next look's time (180 s after it began to wait), before the
                # window of the leg after it.
                legs = (
                    ("bench-inner", "checkpoint", args.wait_settle),
                    ("bench-outer", "nested", args.wait_settle),
                    ("bench-inner", "first look", args.settle),
                )
                for flow_id, leg_name, settle in legs:
                    if leg_name not in args.legs:
                        continue
                    start_waiting(http, flow_id, args.runs)
                    time.sleep(settle)
                    rate, tx = window(counted, args.seconds, pg)
                    report(kind, leg_name, rate, tx, (rate - idle) / args.runs)
                    cancel_all(http)
                    time.sleep(args.settle + 30)
            print(f"  {kind} idle sources (statements in {args.seconds:g} s):")
            for (thread, start), n in sources:
                print(f"    {n:5d}  {thread:28s}  {start}")
        finally:
            server.stop()


def report(kind: str, name: str, rate: float, tx: float, per_run: float | None) -> None:
    pg = f"  {tx:6.2f} transactions/s" if kind == "postgresql" else ""
    run = f"  {per_run:+.3f}/s per waiting run" if per_run is not None else ""
    print(f"{kind:10s} {name:10s} {rate:6.2f} statements/s{pg}{run}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--warm", type=float, default=65.0)
    parser.add_argument("--wait-settle", type=float, default=75.0)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--other-replicas",
        type=int,
        default=0,
        help="this many more replicas' rows kept fresh: the gateway is not alone",
    )
    parser.add_argument(
        "--stored-policy",
        action="store_true",
        help="no policy file: the policy saved through the API (its reloader reads the database)",
    )
    parser.add_argument(
        "--legs",
        nargs="*",
        default=["checkpoint", "nested", "first look"],
        help="the legs after idle (idle is always counted)",
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    counted = Statements()
    for kind in args.databases:
        leg(kind, args, counted)


if __name__ == "__main__":
    main()

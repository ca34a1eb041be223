"""A2A SendMessage through Switchboard, against the aiohttp forwarder and direct.

    python -m bench.a2a_gateway                 # direct, aiohttp, gateway at 1 and 32 conns
    python -m bench.a2a_gateway --seconds 10 --rounds 3
    SWITCHBOARD_BENCH_PROFILE=/tmp/gw.prof python -m bench.a2a_gateway --conns 1
    python -m bench.a2a_gateway --tracing       # + the gateway exporting OTLP traces
    python -m bench.a2a_gateway --streamed      # SendStreamingMessage: 1, 4, 16 events
    python -m bench.a2a_gateway --streamed --gateway-tree ../main   # another tree's gateway
    python -m bench.a2a_gateway --database-url postgresql://postgres@127.0.0.1:5432/test

The harness is `bench.a2a_forwarding` (same agent, load generator, CPU
pinning and table); this adds the `gateway` leg: `switchboard serve --dev`
on SQLite with everything on -- bearer authentication, the policy decision,
a minted token per call (cached), the task/ownership checks and the audit
record -- with the agent registered through the CLI and a dev user token on
every request. `--tracing` adds the `gateway-traced` leg: the same gateway
with OpenTelemetry export on (`OTEL_EXPORTER_OTLP_ENDPOINT` at a sink in this
process that decodes nothing, so the gateway's own cost is what is measured:
making, batching and serialising the spans). docs/architecture.md's targets: >= 0.6x the aiohttp forwarder's req/s at
32 connections, and <= 1 ms added p50 at 1 connection.

`--streamed` measures streams instead (`bench.a2a_streams`): the gateway's
CPU per call for `SendMessage` and `SendStreamingMessage` to an agent that
streams N events, and the cost of each event as a slope.
`--gateway-tree DIR` runs the gateway of another checkout (its own
`.venv`), so that a before/after pair is measured by the same bench in the
same hour. `--database-url URL` runs the gateway on PostgreSQL: a throwaway
database on the server the URL names, created for each gateway started and
dropped after it (default: a SQLite file in the gateway's data directory).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

from bench import a2a_forwarding as harness
from bench import ports
from bench.fresh_db import fresh_database

GATEWAY = "gateway"
TRACED = "gateway-traced"


# The checkout whose gateway is measured, and its interpreter (`--gateway-tree`).
TREE = {"dir": str(harness.REPO), "python": sys.executable}
# The PostgreSQL server the gateway's throwaway databases are made on
# (`--database-url`); None: SQLite.
DATABASE: dict[str, str | None] = {"server": None}


def use_tree(directory: str) -> None:
    """Measure the gateway of the checkout at ``directory``, run by its own
    virtualenv's interpreter (``.venv/bin/python``)."""
    path = Path(directory).resolve()
    python = path / ".venv" / "bin" / "python"
    if not (path / "gateway").is_dir() or not python.exists():
        raise SystemExit(f"{directory}: not a Switchboard checkout with a .venv")
    TREE.update(dir=str(path), python=str(python))


def take_options(argv: list[str]) -> None:
    """Take ``--gateway-tree DIR`` and ``--database-url URL`` (or ``--option=value``)
    out of ``argv`` (the harness's parser does not know them) and apply them."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--gateway-tree")
    parser.add_argument("--database-url")
    try:
        known, rest = parser.parse_known_args(argv[1:])
    except SystemExit:
        raise SystemExit("--gateway-tree and --database-url each need a value") from None
    argv[1:] = rest
    if known.gateway_tree:
        use_tree(known.gateway_tree)
    if known.database_url is not None:
        use_database(known.database_url)


def use_database(server: str) -> None:
    """Run each gateway on a throwaway PostgreSQL database on ``server``."""
    if not server.startswith(("postgresql", "postgres://")):
        raise SystemExit(f"--database-url: a postgresql:// URL, not {server!r}")
    if DATABASE["server"] is None:  # the table's legs say which database they ran on
        for name in (GATEWAY, TRACED):
            leg = harness.LEGS[name]
            harness.LEGS[name] = dataclasses.replace(leg, about=f"{leg.about}; on PostgreSQL")
    DATABASE["server"] = server


def _switchboard(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [TREE["python"], "-m", "gateway", *args],
        cwd=TREE["dir"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def serve_argv(data: str, port: int, *extra: str, python: tuple[str, ...] = ()) -> list[str]:
    """`switchboard serve --dev` on 127.0.0.1:``port`` with its state in ``data``
    (SQLite), warnings only; ``extra``: more options (``--workers 2``);
    ``python``: options for the interpreter (a profiler)."""
    return [
        TREE["python"],
        *python,
        "-m",
        "gateway",
        "serve",
        "--dev",
        "--data-dir",
        data,
        "--host",
        harness.HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


def _start_gateway(upstream_url: str) -> harness.Running:
    return start_gateway([("bench", upstream_url)])


def start_gateway(agents: list[tuple[str, str]]) -> harness.Running:
    """The gateway with each of ``agents`` (id, URL) registered; its URL is
    the first one's, its token a dev user's."""
    data = tempfile.mkdtemp(prefix="switchboard-bench-")
    port = ports.free_port()
    # SWITCHBOARD_BENCH_PROFILE=out.prof runs the gateway under cProfile (the
    # figures are then not comparable; it is for finding where the time goes).
    profile = os.environ.get("SWITCHBOARD_BENCH_PROFILE")
    profiler = ("-m", "cProfile", "-o", profile) if profile else ()
    database = contextlib.ExitStack()
    # Never a database the shell names: the bench's own or SQLite in ``data``.
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_DATABASE_URL"}
    if DATABASE["server"] is not None:
        made = database.enter_context(fresh_database(DATABASE["server"], "switchboard_bench_a2a"))
        env["SWITCHBOARD_DATABASE_URL"] = made.render_as_string(hide_password=False)
    try:
        process = harness.spawn(
            serve_argv(data, port, python=profiler), port, timeout=300, cwd=TREE["dir"], env=env
        )
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        database.close()
        raise
    try:
        harness.pin(process.pid, harness.LAYOUT["forwarder"])
        for agent_id, url in agents:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            _switchboard("agents", "add", origin, "--id", agent_id, "--data-dir", data, env=env)
        token = _switchboard("token", "issue", "--data-dir", data, "--sub", "bench-user", env=env)
    except BaseException:
        harness.stop_process(process)  # a failed setup must not leave the gateway running
        shutil.rmtree(data, ignore_errors=True)
        database.close()
        raise

    def stop() -> None:
        try:
            if profile:
                # uvicorn re-raises SIGTERM after shutting down, which kills the
                # process before cProfile writes; SIGINT ends as KeyboardInterrupt.
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        finally:
            harness.stop_process(process)
            shutil.rmtree(data, ignore_errors=True)
            database.close()  # after the gateway: a database in use is dropped WITH (FORCE)

    return harness.Running(
        f"http://{harness.HOST}:{port}/a2a/{agents[0][0]}",
        (process.pid,),
        stop,
        headers={"Authorization": f"Bearer {token}"},
    )


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that takes spans and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _start_traced(upstream_url: str) -> harness.Running:
    sink = http.server.ThreadingHTTPServer((harness.HOST, ports.from_range() or 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    saved = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{harness.HOST}:{sink.server_port}"
    try:
        running = _start_gateway(upstream_url)  # the child inherits the variable
    except BaseException:
        sink.shutdown()
        raise
    finally:
        if saved is None:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        else:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = saved

    def stop() -> None:
        running.stop()
        sink.shutdown()
        sink.server_close()

    return dataclasses.replace(running, stop=stop)


harness.LEGS[GATEWAY] = harness.Leg(
    _start_gateway, "Switchboard: auth + policy + minted token + task checks + audit"
)
harness.LEGS[TRACED] = harness.Leg(
    _start_traced, "Switchboard as above, exporting OpenTelemetry traces (OTLP/HTTP)"
)


if __name__ == "__main__":
    if "--streamed" in sys.argv:
        sys.argv.remove("--streamed")
        from bench import a2a_streams  # it reads --gateway-tree itself

        raise SystemExit(a2a_streams.cli())
    take_options(sys.argv)
    tracing = "--tracing" in sys.argv
    if tracing:
        sys.argv.remove("--tracing")
    if "--legs" not in sys.argv:
        legs = [harness.DIRECT, harness.BASELINE, GATEWAY, *([TRACED] if tracing else [])]
        sys.argv += ["--legs", ",".join(legs)]
    raise SystemExit(harness.cli())

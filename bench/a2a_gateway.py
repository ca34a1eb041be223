"""A2A SendMessage through Switchboard, against the aiohttp forwarder and direct.

    python -m bench.a2a_gateway                 # direct, aiohttp, gateway at 1 and 32 conns
    python -m bench.a2a_gateway --seconds 10 --rounds 3
    SWITCHBOARD_BENCH_PROFILE=/tmp/gw.prof python -m bench.a2a_gateway --conns 1
    python -m bench.a2a_gateway --tracing       # + the gateway exporting OTLP traces

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
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from urllib.parse import urlsplit

from bench import a2a_forwarding as harness
from bench import ports

GATEWAY = "gateway"
TRACED = "gateway-traced"


def _switchboard(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=harness.REPO,
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
        sys.executable,
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
    data = tempfile.mkdtemp(prefix="switchboard-bench-")
    port = ports.free_port()
    # SWITCHBOARD_BENCH_PROFILE=out.prof runs the gateway under cProfile (the
    # figures are then not comparable; it is for finding where the time goes).
    profile = os.environ.get("SWITCHBOARD_BENCH_PROFILE")
    profiler = ("-m", "cProfile", "-o", profile) if profile else ()
    process = harness.spawn(serve_argv(data, port, python=profiler), port)
    harness.pin(process.pid, harness.LAYOUT["forwarder"])
    parts = urlsplit(upstream_url)
    try:
        _switchboard(
            "agents", "add", f"{parts.scheme}://{parts.netloc}", "--id", "bench", "--data-dir", data
        )
        token = _switchboard("token", "issue", "--data-dir", data, "--sub", "bench-user")
    except BaseException:
        harness.stop_process(process)  # a failed setup must not leave the gateway running
        shutil.rmtree(data, ignore_errors=True)
        raise

    def stop() -> None:
        if profile:
            # uvicorn re-raises SIGTERM after shutting down, which kills the
            # process before cProfile writes; SIGINT ends as KeyboardInterrupt.
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        harness.stop_process(process)
        shutil.rmtree(data, ignore_errors=True)

    return harness.Running(
        f"http://{harness.HOST}:{port}/a2a/bench",
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
    tracing = "--tracing" in sys.argv
    if tracing:
        sys.argv.remove("--tracing")
    if "--legs" not in sys.argv:
        legs = [harness.DIRECT, harness.BASELINE, GATEWAY, *([TRACED] if tracing else [])]
        sys.argv += ["--legs", ",".join(legs)]
    raise SystemExit(harness.cli())

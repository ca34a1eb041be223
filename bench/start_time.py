"""How long a gateway takes to start: `switchboard serve --dev` (SQLite, a
fresh data directory) until `/healthz` answers, and `switchboard mcp --help`
(a command that only loads the CLI).

    python -m bench.start_time                        # this checkout, 5 runs
    python -m bench.start_time --gateway-tree /other/checkout --runs 7

With ``--gateway-tree`` the other checkout (run by its own `.venv`) is
started alternately with this one, so both see the same machine; the
medians are printed for each. Every start is a new process: what it costs is
the interpreter, loading the modules, the schema on a new database and the
app's start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import ports

HERE = Path(__file__).resolve().parent.parent
READY_SECONDS = 60.0


def _gateway(tree: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(tree / ".venv" / "bin" / "python"), "-m", "gateway", *args],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def serve_seconds(tree: Path) -> float:
    """Seconds from starting `serve --dev` until `/healthz` answers 200."""
    port = ports.free_port()
    with tempfile.TemporaryDirectory() as data:
        began = time.perf_counter()
        server = _gateway(
            tree, "serve", "--dev", "--data-dir", data, "--host", ports.HOST, "--port", str(port)
        )
        try:
            while time.perf_counter() - began < READY_SECONDS:
                if server.poll() is not None:
                    raise SystemExit(f"{tree}: the gateway exited with {server.returncode}")
                try:
                    with urllib.request.urlopen(f"http://{ports.HOST}:{port}/healthz", timeout=1):
                        return time.perf_counter() - began
                except OSError:  # URLError, a refused or timed-out connection
                    time.sleep(0.01)  # not listening yet
            raise SystemExit(f"{tree}: no /healthz within {READY_SECONDS:g} s")
        finally:
            server.terminate()
            server.wait()


def help_seconds(tree: Path) -> float:
    began = time.perf_counter()
    if _gateway(tree, "mcp", "--help").wait() != 0:
        raise SystemExit(f"{tree}: switchboard mcp --help failed")
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gateway-tree", type=Path, help="another checkout, started alternately")
    ports.add_argument(parser)
    args = parser.parse_args(argv)
    trees = [HERE, *([args.gateway_tree.resolve()] if args.gateway_tree else [])]
    for tree in trees:
        if not (tree / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{tree}: not a Switchboard checkout with a .venv")
    served: dict[Path, list[float]] = {tree: [] for tree in trees}
    helped: dict[Path, list[float]] = {tree: [] for tree in trees}
    for _ in range(args.runs):
        for tree in trees:
            served[tree].append(serve_seconds(tree))
            helped[tree].append(help_seconds(tree))
    print(f"gateway start, {args.runs} runs each, load average {os.getloadavg()}")
    for tree in trees:
        each = " ".join(f"{s:.2f}" for s in served[tree])
        print(
            f"  {tree}: serve to /healthz median {statistics.median(served[tree]):.2f} s ({each});"
            f" mcp --help median {statistics.median(helped[tree]):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

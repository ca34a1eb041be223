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
from pathlib import Path

from bench import ports
from gateway.demo.process import GatewayProcess

HERE = Path(__file__).resolve().parent.parent


def serve_seconds(tree: Path) -> float:
    """Seconds from starting `serve --dev` until `/healthz` answers 200."""
    with tempfile.TemporaryDirectory() as data:
        gateway = GatewayProcess(Path(data), port=ports.from_range(), tree=tree)
        began = time.perf_counter()
        try:
            gateway.start()
            return time.perf_counter() - began
        finally:
            gateway.stop()


def help_seconds(tree: Path) -> float:
    began = time.perf_counter()
    python = str(tree / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-m", "gateway", "mcp", "--help"], cwd=tree, check=True, stdout=subprocess.DEVNULL
    )
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

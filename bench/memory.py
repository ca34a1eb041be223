"""Does the gateway's memory keep growing under steady load? (issue 33)

    python -m bench.memory                      # 30 minutes, task-answering agent, 8 conns
    python -m bench.memory --minutes 5 --agent sdk --conns 32
    python -m bench.memory --database postgresql://postgres@127.0.0.1:5432/bench

`switchboard serve --dev` (as bench.a2a_gateway starts it) in front of
bench.a2a_forwarding's a2a-sdk agent -- by default the one answering with a
task, a working and a completed status update, the path real agents take --
under a steady SendMessage load from the harness's raw-HTTP load generator,
one window after another. After each window the gateway's RSS (its whole
process tree) is read from /proc, with the calls made so far, and the table
shows RSS against calls: a leak grows with the calls, a cache or a pool
levels off. The last column is the growth per 10,000 calls over the second
half of the run (the first half includes warming up: imports, caches, the
SQLite page cache, the allocator's arenas).

What a run that passes looks like: RSS flat within a few MiB over the second
half (docs/performance.md, "Memory under load").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

from bench import a2a_forwarding as harness
from bench import ports
from bench.a2a_gateway import _start_gateway
from bench.peers import _memory_mb, _tree


@dataclass
class Sample:
    minute: float
    calls: int
    errors: int
    rss_mb: float


def _rss(root: int) -> float:
    rss, _pss = _memory_mb(_tree(root))
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per sample")
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--agent", default="task", choices=sorted(harness.AGENTS))
    parser.add_argument(
        "--database", help="the gateway's database URL (default: SQLite in its data dir)"
    )
    ports.add_argument(parser)
    args = parser.parse_args()
    if args.database:
        os.environ["SWITCHBOARD_DATABASE_URL"] = args.database  # the child inherits it
    agent_port = ports.free_port()
    agent = harness.spawn(harness._serve_argv(f"agent-{args.agent}", agent_port), agent_port)
    samples: list[Sample] = []
    try:
        running = _start_gateway(f"http://{harness.HOST}:{agent_port}/")
        try:
            root = running.pids[0]
            started, calls, errors = time.monotonic(), 0, 0
            samples.append(Sample(0.0, 0, 0, _rss(root)))
            print(f"{'minute':>7} {'calls':>9} {'errors':>6} {'RSS MB':>8}", flush=True)
            while time.monotonic() - started < args.minutes * 60:
                result = harness.run_load(running, args.conns, 0.0, args.window, agent.pid)
                calls, errors = calls + result.ok, errors + result.errors
                sample = Sample((time.monotonic() - started) / 60, calls, errors, _rss(root))
                samples.append(sample)
                print(
                    f"{sample.minute:>7.1f} {sample.calls:>9} {sample.errors:>6} "
                    f"{sample.rss_mb:>8.1f}",
                    flush=True,
                )
        finally:
            running.stop()
    finally:
        harness.stop_process(agent)
    return _summary(samples, args)


def _summary(samples: list[Sample], args: argparse.Namespace) -> int:
    half = samples[len(samples) // 2 :]
    first, last = half[0], half[-1]
    per_10k = (last.rss_mb - first.rss_mb) / max(last.calls - first.calls, 1) * 10_000
    peak = max(s.rss_mb for s in samples)
    print(
        f"\n{args.agent} agent, {args.conns} conns, {samples[-1].minute:.1f} min, "
        f"{samples[-1].calls} calls ({samples[-1].errors} errors), load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(
        f"RSS: {samples[0].rss_mb:.1f} MB at start, {first.rss_mb:.1f} at half time, "
        f"{last.rss_mb:.1f} at the end (peak {peak:.1f}); second half: "
        f"{last.rss_mb - first.rss_mb:+.1f} MB over {last.calls - first.calls} calls, "
        f"{per_10k:+.2f} MB per 10,000 calls"
    )
    return 1 if samples[-1].errors else 0


if __name__ == "__main__":
    sys.exit(main())

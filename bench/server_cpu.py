"""The CPU a PostgreSQL server on this machine spends, so a bench can count
it beside the gateway's: on one machine the two share its cores, and a
target in runs a second is met only if both fit.

    before = postgres_cpu()
    ...
    spent = postgres_cpu() - before   # seconds, every backend included

Every process whose command is PostgreSQL's (`postgres`: the postmaster, its
backends, the writer and checkpointer) counts, whichever database it
serves: a bench reads it around its own load on a quiet server. None when
no such process is visible (a server elsewhere, or in another namespace).
A backend that ends between two readings takes its CPU with it, so a
reading around connections that close under-counts them; the benches keep
their pools open across it.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVER_COMMANDS = ("postgres", "postmaster")


def _cpu_seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(proc: Path = Path("/proc")) -> float | None:
    """Seconds of CPU of every PostgreSQL process now running, or None if none is seen."""
    total, seen = 0.0, False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        if command in SERVER_COMMANDS:
            seen = True
            total += _cpu_seconds(stat)
    return total if seen else None

"""CPU seconds read from /proc: a process's, and a PostgreSQL server's on
this machine, so a bench can count the server beside the gateway (the two
share the machine's cores, and a target in runs a second is met only if
both fit).

    before = postgres_cpu()
    ...
    spent = postgres_cpu() - before   # seconds, every backend included

Every process whose command is PostgreSQL's (`postgres`: the postmaster, its
backends, the writer and checkpointer) counts, whichever database it serves,
with the CPU of its children that have ended (`cutime`, `cstime`): the
postmaster reaps its backends, so a connection closed between two readings
is still counted. Another client of the same server counts too: a bench
reads it around its own load on a server it has to itself. None when no
such process is visible (a server elsewhere, or in another namespace).
"""

from __future__ import annotations

import os
from pathlib import Path

SERVER_COMMANDS = ("postgres", "postmaster")


def _fields(stat: str) -> list[str]:
    """/proc/PID/stat's fields from the third on (man 5 proc): the command,
    field 2, is in parentheses and may hold spaces and parentheses itself."""
    return stat.rsplit(")", 1)[1].split()


def stat_cpu_seconds(stat: str, *, children: bool = False) -> float:
    """utime + stime (fields 14, 15) of a /proc/PID/stat text in seconds;
    with ``children``, cutime + cstime (16, 17) too: the ended children's."""
    fields = _fields(stat)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """A process's CPU seconds so far (user + system); OSError once it has ended."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def postgres_cpu(proc: Path = Path("/proc")) -> float | None:
    """Seconds of CPU of every PostgreSQL process now running and of the
    children they reaped, or None if none is seen."""
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
            total += stat_cpu_seconds(stat, children=True)
    return total if seen else None

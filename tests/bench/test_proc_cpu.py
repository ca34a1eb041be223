"""bench.proc_cpu and bench.engine_floor's arithmetic: a local PostgreSQL
server's CPU read from /proc (a /proc of our own making here), and the
engine's floor split into a step's cost and a workflow's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.engine_floor import Spent, floor_of
from bench.proc_cpu import postgres_cpu, stat_cpu_seconds

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int, command: str, ticks: tuple[int, int, int, int]) -> str:
    # /proc/PID/stat: pid (comm) state ppid ... field 14 utime, 15 stime,
    # 16 cutime, 17 cstime (man 5 proc).
    rest = ["S", "1", *["0"] * 9, *map(str, ticks), *["0"] * 6]
    return f"{pid} ({command}) {' '.join(rest)}\n"


def _process(
    proc: Path, pid: int, command: str, user: int, system: int, reaped: tuple[int, int] = (0, 0)
) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "stat").write_text(_stat(pid, command, (user, system, *reaped)))


def test_a_process_cpu_is_its_user_and_system_time() -> None:
    # The command may hold spaces and parentheses: the fields start after the last ")".
    stat = _stat(7, "a (b) c", (3 * TICK, 2 * TICK, 40 * TICK, 50 * TICK))
    assert stat_cpu_seconds(stat) == pytest.approx(5.0)
    assert stat_cpu_seconds(stat, children=True) == pytest.approx(95.0)


def test_every_postgres_process_counts_with_the_backends_it_reaped(tmp_path: Path) -> None:
    # The postmaster: its own 1 s, and 4 s of backends that have ended.
    _process(tmp_path, 10, "postgres", 1 * TICK, 0, (3 * TICK, 1 * TICK))
    _process(tmp_path, 11, "postgres", 2 * TICK, 1 * TICK)
    _process(tmp_path, 12, "python3", 50 * TICK, 50 * TICK, (9 * TICK, 9 * TICK))
    (tmp_path / "self").mkdir()  # not a process id
    (tmp_path / "14").mkdir()  # a process that ended while /proc was read: no stat
    assert postgres_cpu(tmp_path) == pytest.approx(8.0)


def test_no_postgres_process_is_none_not_zero(tmp_path: Path) -> None:
    _process(tmp_path, 12, "python3", TICK, TICK)
    assert postgres_cpu(tmp_path) is None


def test_the_floor_is_the_slope_and_the_intercept() -> None:
    # 1 step: 10 ms here, 4 on the server; 21 steps: 110 and 24.
    floor = floor_of(20, Spent(0.010, 0.004), Spent(0.110, 0.024))
    assert floor.step.client == pytest.approx(0.005)
    assert floor.step.server == pytest.approx(0.001)
    assert floor.workflow.client == pytest.approx(0.005)
    assert floor.workflow.server == pytest.approx(0.003)


def test_without_the_server_only_this_process_is_counted() -> None:
    floor = floor_of(20, Spent(0.010, None), Spent(0.110, None))
    assert floor.step.client == pytest.approx(0.005)
    assert floor.workflow.client == pytest.approx(0.005)
    assert floor.step.server is None and floor.workflow.server is None

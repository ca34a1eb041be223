"""bench.ports: `--ports FROM-TO` on a bench's command line, and the ports
handed out from it (real sockets on 127.0.0.1)."""

from __future__ import annotations

import argparse
import ast
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench
from bench import ports


@pytest.fixture(autouse=True)
def no_range() -> Iterator[None]:
    ports.use(None)
    yield
    ports.use(None)


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="bench")
    ports.add_argument(made)
    return made


def a_free_port() -> int:
    with socket.socket() as s:
        s.bind((ports.HOST, 0))
        port: int = s.getsockname()[1]
        return port


def test_the_range_is_both_ends_included() -> None:
    args = parser().parse_args(["--ports", "41000-41099"])
    assert args.ports == range(41000, 41100)
    assert ports.current() == range(41000, 41100)
    assert os.environ[ports.ENV] == "41000-41099"


def test_without_the_argument_no_range_is_in_force() -> None:
    assert parser().parse_args([]).ports is None
    assert ports.current() is None
    assert ports.from_range() is None
    port = ports.free_port()
    with socket.socket() as s:
        s.bind((ports.HOST, port))  # free: bind(0)'s choice, released


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("41000", "is not FROM-TO"),
        ("41000-", "is not FROM-TO"),
        ("a-b", "is not FROM-TO"),
        ("-5-10", "is not FROM-TO"),
        ("41099-41000", "FROM <= TO"),
        ("0-10", "1 <= FROM"),
        ("65000-70000", "TO <= 65535"),
    ],
)
def test_a_bad_range_is_refused_with_the_reason(
    given: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([f"--ports={given}"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--ports" in error and said in error
    assert ports.current() is None  # nothing taken from a refused range


def test_ports_come_from_the_range_each_once() -> None:
    first = a_free_port()
    parser().parse_args(["--ports", f"{first}-{first}"])
    assert ports.free_port() == first
    with pytest.raises(RuntimeError, match=f"no free port left in --ports {first}-{first}"):
        ports.free_port()  # handed out already, even though nobody bound it


def test_a_port_someone_holds_is_skipped() -> None:
    with socket.socket() as held:
        held.bind((ports.HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        parser().parse_args(["--ports", f"{port}-{port}"])
        with pytest.raises(RuntimeError, match="give a wider range"):
            ports.from_range()


def test_several_ports_are_distinct_and_inside_the_range() -> None:
    parser().parse_args(["--ports", "43100-43199"])
    taken = [ports.free_port() for _ in range(5)]
    assert len(set(taken)) == 5
    assert all(43100 <= port <= 43199 for port in taken)
    assert taken == sorted(taken)  # lowest first: a run's ports are easy to find


def test_a_child_process_inherits_the_range() -> None:
    parser().parse_args(["--ports", "41000-41099"])
    child = subprocess.run(
        [sys.executable, "-c", "from bench import ports; print(ports.current())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "range(41000, 41100)"


def test_every_bench_gateway_takes_its_port_from_the_range() -> None:
    """A bench's gateway listens inside `--ports` too: each `GatewayProcess`
    a bench starts is given `port=` (`ports.from_range()`), else it takes a
    port of its own choosing outside the range."""
    started, unplaced = 0, []
    for path in sorted(Path(bench.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "GatewayProcess"
            ):
                started += 1
                if not any(keyword.arg == "port" for keyword in node.keywords):
                    unplaced.append(f"{path.name}:{node.lineno}")
    assert started >= 7  # the benches' gateways were found at all
    assert unplaced == []

"""The ports the benches listen on: any free one, or one of a range.

    python -m bench.peers --ports 41000-41099

Every bench that starts a server takes `--ports FROM-TO` (`add_argument`) and
asks `free_port()` for each port it needs, so a bench can run beside other
work on the machine (a test suite, another bench) that keeps to its own
range. Without `--ports` a port is whatever bind(0) hands out.

The range is also put in the environment (`BENCH_PORTS`), so a
bench's child processes, should they take ports, keep to it too. Within a
process no port is handed out twice; a port some other process holds is
skipped (it is tried with bind first). A port handed out is released before
the server that was given it binds it: the range is meant to be this run's
alone, which closes that gap.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
from collections.abc import Sequence
from typing import Any

HOST = "127.0.0.1"
ENV = "BENCH_PORTS"

# The ports this process has handed out from the range (never twice).
_given: set[int] = set()


def parse_range(text: str) -> range:
    """`FROM-TO` (both included) as a range; the error says what is wrong."""
    low, dash, high = text.strip().partition("-")
    if not dash or not low.strip().isdigit() or not high.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not FROM-TO, e.g. 41000-41099")
    first, last = int(low), int(high)
    if not 1 <= first <= last <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want 1 <= FROM <= TO <= 65535 (FROM {first}, TO {last})"
        )
    return range(first, last + 1)


def use(ports: range | None) -> None:
    """Take ports from `ports` from now on (None: any free port)."""
    _given.clear()
    if ports is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = f"{ports.start}-{ports.stop - 1}"


class _Use(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, range)  # type=parse_range
        use(values)
        setattr(namespace, self.dest, values)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """`--ports FROM-TO` on a bench's command line; it takes effect as parsed."""
    parser.add_argument(
        "--ports",
        type=parse_range,
        action=_Use,
        metavar="FROM-TO",
        help="listen only on ports of this range, both ends included (default: any free port)",
    )


def current() -> range | None:
    """The range in force (`--ports`, or inherited from the parent), if any."""
    text = os.environ.get(ENV)
    return parse_range(text) if text else None


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def from_range() -> int | None:
    """A port of the range in force that no one holds, or None without a
    range (for a caller that has its own way to choose: `GatewayProcess`'s
    reservation below the ephemeral ports, `bound_socket`'s bind(0))."""
    ports = current()
    if ports is None:
        return None
    for port in ports:
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    raise RuntimeError(
        f"no free port left in --ports {ports.start}-{ports.stop - 1} "
        f"({len(_given)} handed out by this run, the rest in use): give a wider range"
    )


def free_port() -> int:
    """A port of 127.0.0.1 for a server to bind: from the range if one is in
    force, else any (bind(0) -- racy in principle, as the port is released
    before the child binds it, but on loopback nothing grabs it meanwhile)."""
    if (port := from_range()) is not None:
        return port
    with socket.socket() as s:
        s.bind((HOST, 0))
        found: int = s.getsockname()[1]
        return found

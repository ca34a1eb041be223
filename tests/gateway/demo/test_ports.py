"""The port a killed-and-restarted gateway keeps: out of the kernel's hands and
no other reservation's."""

from __future__ import annotations

import random
import socket

import pytest

from gateway.demo import ports
from gateway.demo.ports import PortReservation
from gateway.demo.servers import DemoError


def test_a_reservation_is_below_the_ephemeral_range_and_free() -> None:
    held = PortReservation()
    try:
        assert ports._LOWEST <= held.port < ports._ephemeral_low()
        with socket.socket() as server:  # the gateway can bind it
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", held.port))
    finally:
        held.release()


def test_a_held_port_is_not_reserved_again_until_released() -> None:
    held = PortReservation()
    try:
        assert PortReservation._lock(held.port) is None
        others = [PortReservation() for _ in range(20)]
        assert held.port not in {other.port for other in others}
        assert len({other.port for other in others}) == 20
        for other in others:
            other.release()
    finally:
        held.release()
    again = PortReservation._lock(held.port)
    assert again is not None
    again.close()


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        monkeypatch.setattr(ports, "_LOWEST", busy)
        monkeypatch.setattr(ports, "_ephemeral_low", lambda: busy + 1000)
        monkeypatch.setattr(random, "randrange", lambda n: 0)
        held = PortReservation()
        try:
            assert held.port != busy
            assert held.port > busy
        finally:
            held.release()


def test_no_room_below_the_ephemeral_range_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_ephemeral_low", lambda: ports._LOWEST + 10)
    with pytest.raises(DemoError, match="ip_local_port_range"):
        PortReservation()

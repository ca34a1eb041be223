"""bench.connected_accounts keeps its vendor to `--ports` (a real server on
127.0.0.1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from bench import connected_accounts, ports


@pytest.fixture(autouse=True)
def no_range() -> Iterator[None]:
    ports.use(None)
    yield
    ports.use(None)


def test_the_vendor_listens_on_a_port_of_the_range() -> None:
    with socket.socket() as s:
        s.bind((ports.HOST, 0))
        port: int = s.getsockname()[1]
    ports.use(range(port, port + 1))
    vendor = connected_accounts.start_vendor()
    try:
        assert vendor.url == f"http://{ports.HOST}:{port}"
        metadata = httpx.get(f"{vendor.url}/.well-known/oauth-authorization-server")
        assert metadata.status_code == 200 and metadata.json()["issuer"].startswith(vendor.url)
    finally:
        vendor.stop()

"""The gateway's outbound clients share one TLS context (`registry.tls`):
building one loads the CA bundle, and a start built four."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from registry.tls import client_tls
from tests.support.databases import seed_data_dir


def test_a_gateway_start_builds_one_tls_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(original(*args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    client_tls.cache_clear()
    seed_data_dir(tmp_path)
    with TestClient(create_app(Settings(dev=True, data_dir=tmp_path))) as gateway:
        assert gateway.get("/healthz").status_code == 200
    assert built == [client_tls()]

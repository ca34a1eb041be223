"""The gateway's start-up GC tuning (`gateway.app.freeze_startup_heap`): the
start-up heap frozen, and the young generation's threshold from the settings."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.app import freeze_startup_heap
from gateway.cli import main
from gateway.settings import Settings
from tests.support.gateway import start_gateway


@pytest.fixture
def thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int, int]]:
    """The thresholds before, restored after; and `gc.freeze` recorded instead
    of run, so the test process's heap is not frozen for the rest of the run."""
    before = gc.get_threshold()
    monkeypatch.setattr(gc, "freeze", lambda: FROZEN.append(True))
    FROZEN.clear()
    yield before
    gc.set_threshold(*before)


FROZEN: list[bool] = []


def test_a_started_gateway_sets_the_configured_young_threshold(
    tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    gateway = start_gateway(tmp_path, None, gc_young_threshold=12_345)
    try:
        assert gc.get_threshold() == (12_345, thresholds[1], thresholds[2])
        assert FROZEN == [True]  # the start-up heap taken out of the collector's walk
        with gateway.client() as client:
            assert client.get("/healthz").status_code == 200
    finally:
        gateway.stop()


def test_zero_keeps_pythons_own_threshold(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    freeze_startup_heap(0)
    assert gc.get_threshold() == (700, 10, 10)
    freeze_startup_heap(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_the_default_and_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_young_threshold == 50_000
    monkeypatch.setenv("SWITCHBOARD_GC_YOUNG_THRESHOLD", "0")
    assert Settings().gc_young_threshold == 0
    for bad in ("-1", "many", "10000001"):
        monkeypatch.setenv("SWITCHBOARD_GC_YOUNG_THRESHOLD", bad)
        with pytest.raises(ValidationError):
            Settings()


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The collector off, as `gateway.__main__` leaves it; on again after."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_command_other_than_serve_turns_it_on_at_once(
    collector_off: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("agents: {}\n")
    assert main(["policy", "check", str(policy)]) == 0, capsys.readouterr().err
    assert gc.isenabled()


def test_serve_turns_it_on_and_freezes_its_modules_before_serving(
    collector_off: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    thresholds: tuple[int, int, int],
) -> None:
    import uvicorn

    served: list[bool] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: served.append(gc.isenabled()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--dev", "--data-dir", str(tmp_path), "--port", str(port)]) == 0
    assert served == [True]
    assert FROZEN == [True]  # the modules loaded out of the collector's walks

"""The drain after SIGTERM (`shutdown_drain_seconds`): a whole number of
seconds from 1 to 3600, set by variable or file; anything else is refused
when the settings load, naming the setting, before anything starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


@pytest.mark.parametrize("value", ["0", "-5", "3601", "1.5", "ten", "", "nan", "1e999"])
def test_a_drain_out_of_its_bounds_or_not_a_whole_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SHUTDOWN_DRAIN_SECONDS", value)
    if value == "":  # an empty variable is unset: the default
        assert Settings().shutdown_drain_seconds == 20
        return
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "shutdown_drain_seconds" in str(refused.value)


@pytest.mark.parametrize(("value", "seconds"), [("1", 1), ("3600", 3600), (" 45 ", 45)])
def test_a_drain_within_its_bounds_is_taken(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: int
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SHUTDOWN_DRAIN_SECONDS", value)
    assert Settings().shutdown_drain_seconds == seconds


@pytest.mark.parametrize(
    ("connections", "workers", "pools"),
    [(None, "1", (30, 20)), (None, "2", (15, 10)), (None, "4", (7, 5)), ("100", "3", (19, 14))],
)
def test_the_database_connections_are_shared_out_among_the_workers(
    monkeypatch: pytest.MonkeyPatch,
    connections: str | None,
    workers: str,
    pools: tuple[int, int],
) -> None:
    """Each process's own pool and its flows engine's, together never over
    its share: the workers of one gateway stay within the budget."""
    if connections is not None:
        monkeypatch.setenv("SWITCHBOARD_DATABASE_CONNECTIONS", connections)
    monkeypatch.setenv("SWITCHBOARD_WORKERS", workers)
    settings = Settings()
    assert settings.database_pools() == pools
    assert sum(pools) * settings.workers <= settings.database_connections


@pytest.mark.parametrize("value", ["3", "0", "-1", "many", "10001"])
def test_a_connection_budget_out_of_its_bounds_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_CONNECTIONS", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "database_connections" in str(refused.value)


def test_a_budget_that_leaves_a_worker_too_few_connections_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_WORKERS", "16")
    assert Settings().workers == 16  # SQLite: no connections to share out
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql://gw@db:5432/switchboard")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "database_connections (50)" in str(refused.value)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_CONNECTIONS", "64")
    assert Settings().database_pools() == (2, 2)

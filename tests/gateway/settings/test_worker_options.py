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

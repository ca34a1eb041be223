"""A `SWITCHBOARD_*` variable that sets no setting is named at start, not
passed over in silence (`gateway.settings.environment`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gateway.settings import ConfigError, Settings
from gateway.settings.environment import unknown_variables

FIELDS = ("replica_stale_seconds", "secrets", "gateway_run_poll_seconds")


@pytest.fixture(autouse=True)
def own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's settings read every ``SWITCHBOARD_*`` variable: each
    test here sets its own, whatever the run's environment holds (the suite's
    ``SWITCHBOARD_TEST_REDIS``, a developer's own settings)."""
    for variable in list(os.environ):
        if variable.upper().startswith("SWITCHBOARD_") and variable != "SWITCHBOARD_CORE_CHECK":
            monkeypatch.delenv(variable)


def test_a_variable_naming_no_setting_is_unknown() -> None:
    environ = {
        "SWITCHBOARD_REPLICA_STALE_SECONDS": "30",
        "SWITCHBOARD_REPLICA_STALE_SECOND": "30",  # misspelt
        "SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS": "3",  # a setting that has gone
        "switchboard_gateway_run_poll_seconds": "1",  # another spelling of a real one
        "SWITCHBOARD_SECRETS__OPENAI": "sk-x",  # a nested one sets its field
        "SWITCHBOARD_CONFIG": "/etc/switchboard.yaml",  # read by the gateway itself
        "PATH": "/usr/bin",
    }
    assert unknown_variables(FIELDS, environ) == [
        "SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS",
        "SWITCHBOARD_REPLICA_STALE_SECOND",
    ]


def test_the_gateway_names_them_when_it_loads_its_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS", "3")
    monkeypatch.setenv("SWITCHBOARD_REPLICA_STALE_SECONDS", "30")
    with caplog.at_level(logging.WARNING, logger="gateway.settings"):
        settings = Settings.load(data_dir=tmp_path, dev=True)
    assert settings.replica_stale_seconds == 30
    warned = [r.getMessage() for r in caplog.records if r.name == "gateway.settings"]
    assert warned == [
        "SWITCHBOARD_GATEWAY_RUN_LEASE_SECONDS is not a setting of this gateway: ignored"
    ]


def test_a_configuration_file_naming_a_setting_that_has_gone_still_starts_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An upgrade does not fail on the file written for the release before.
    config = tmp_path / "gateway.yaml"
    config.write_text("gateway_run_lease_seconds: 3\nreplica_stale_seconds: 30\n")
    with caplog.at_level(logging.WARNING, logger="gateway.settings"):
        settings = Settings.load(config, data_dir=tmp_path, dev=True)
    assert settings.replica_stale_seconds == 30
    [said] = [r.getMessage() for r in caplog.records if r.name == "gateway.settings"]
    assert said.startswith("setting gateway_run_lease_seconds is no longer used and is ignored")


def test_a_misspelt_key_in_a_configuration_file_is_still_refused(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("replica_stale_second: 30\n")
    with pytest.raises(ConfigError, match="replica_stale_second"):
        Settings.load(config, data_dir=tmp_path, dev=True)


def test_an_empty_variable_is_unset_not_unknown() -> None:
    assert unknown_variables(FIELDS, {"SWITCHBOARD_NO_SUCH_THING": ""}) == []

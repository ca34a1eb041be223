"""Flows started on a schedule (SQLite and PostgreSQL): DBOS's scheduler ticks
every second here; each tick is one run, acting for the trigger's service
identity under the policy; a new version without the trigger stops the
ticks; a bad cron or time zone is refused at registration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flows import POLICY, FlowSetup, flow_setup

TICKING: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ticking",
    "name": "Quote every second",
    "input": {"type": "object"},
    "triggers": [
        {
            "id": "every_second",
            "schedule": {"cron": "* * * * * *"},
            "run_as": {"subject": "ops-bot", "scopes": ["sales:quote"]},
            "input": "{at: schedule.time}",
        }
    ],
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'T-1', quantity: `1`}",
        }
    ],
}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + "  ticking:\n    require: [sales:quote]\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, database_url, policy) as made:
        yield made


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.get("/flows/ticking/runs", params={"limit": 200}).json()
    return found


def test_each_tick_is_one_run_for_the_service_identity(setup: FlowSetup) -> None:
    assert setup.register(TICKING).status_code == 201
    with setup.admin() as admin:
        deadline = time.monotonic() + 20
        while len(runs := _runs(admin)) < 2:
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        run = setup.run(admin, runs[-1], "completed", "failed")
        assert run["state"] == "completed", run
        assert run["user"] == {"subject": "ops-bot", "issuer": "urn:switchboard:trigger"}
        assert run["grant"]["actors"] == ["schedule:ticking/every_second", "ticking"]
        assert run["input"]["at"].startswith("20")  # the tick's time, ISO 8601
        assert len({r["input"]["at"] for r in runs}) == len(runs)  # one run per tick

        # A version without the trigger: the ticks stop.
        assert setup.register({**TICKING, "triggers": []}).status_code == 201
        time.sleep(1.5)  # a tick already on its way may still land
        settled = len(_runs(admin))
        time.sleep(2.5)
        assert len(_runs(admin)) == settled


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ({"cron": "every minute"}, "not a cron"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "no time zone"),
        ({"cron": "0 2 * * *", "catch_up": "sometimes"}, "catch_up"),
        ({"cron": "0 2 * * *", "catch_up": "all", "catch_up_max": 1000}, "catch_up_max"),
        ({"cron": "0 2 * * *", "catch_up": "latest", "catch_up_max": 3}, "is for catch_up: all"),
    ],
)
def test_a_bad_schedule_is_refused(setup: FlowSetup, schedule: dict[str, Any], says: str) -> None:
    trigger = {**TICKING["triggers"][0], "schedule": schedule}
    refused = setup.register({**TICKING, "triggers": [trigger]})
    assert refused.status_code == 422, refused.text
    assert says in refused.text and "triggers[0].schedule" in refused.text

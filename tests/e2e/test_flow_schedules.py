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
from sqlalchemy import bindparam, text

from gateway.flows.schedules import TICK_WORKFLOW
from tests.support.dbos_records import dbos_table, system_engine
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

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


TICKING_POLICY = POLICY + "  ticking:\n    require: [sales:quote]\n    grant: [sales:quote]\n"


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, TICKING_POLICY) as made:
        yield made


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.get("/flows/ticking/runs", params={"limit": 200}).json()
    return found


def test_each_tick_is_one_run_for_the_service_identity(setup: FlowSetup) -> None:
    assert setup.register(TICKING).status_code == 201
    with setup.admin() as admin:

        def ticked() -> list[dict[str, Any]] | None:
            runs = _runs(admin)
            return runs if len(runs) >= 2 else None

        runs = wait_for(ticked, 20, every=0.2, what="two ticks' runs")
        run = setup.run(admin, runs[-1], "completed", "failed")
        assert run["state"] == "completed", run
        assert run["user"] == {"subject": "ops-bot", "issuer": "urn:switchboard:trigger"}
        assert run["grant"]["actors"] == ["schedule:ticking/every_second", "ticking"]
        assert run["input"]["at"].startswith("20")  # the tick's time, ISO 8601
        assert len({r["input"]["at"] for r in runs}) == len(runs)  # one run per tick

        # A version without the trigger: the ticks stop. Watched for a while,
        # not awaited: DBOS's scheduler keeps the cron on the wall clock in a
        # thread of its own per schedule and stops a deleted one's at its next
        # look at the schedules table, and it shows neither which schedules it
        # runs nor a clock to move (a positive check needs DBOS to expose its
        # live schedules).
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


def test_the_engine_forgets_a_tick_a_day_after_it_ended(
    tmp_path: Path, database_url: str | None
) -> None:
    """Each tick leaves a workflow of DBOS's (it starts the tick's run); the
    retention pass deletes those that ended over a day ago, and only those:
    the runs, and the ticks of the last day, stay."""
    with flow_setup(
        tmp_path, database_url, TICKING_POLICY, flow_retention_interval_seconds=0.2
    ) as setup:
        assert setup.register(TICKING).status_code == 201
        with setup.admin() as admin:
            wait_for(lambda: len(_runs(admin)) >= 3, 20, every=0.2, what="three ticks' runs")
            assert setup.register({**TICKING, "triggers": []}).status_code == 201
            # A tick already on its way may still land: watched for a while (see
            # the test above for why it cannot be awaited).
            time.sleep(1.5)
            runs = _runs(admin)
        two_days_ms = 2 * 24 * 3600 * 1000
        with system_engine(setup.gateway.settings.effective_database_url) as db:
            table = dbos_table(db, "workflow_status")
            ticks = f"SELECT workflow_uuid FROM {table} WHERE name = :name"  # noqa: S608 -- ours
            with db.begin() as conn:
                ended = list(conn.execute(text(ticks), {"name": TICK_WORKFLOW}).scalars())
                assert len(ended) >= 3, ended
                aged, recent = ended[:-1], ended[-1]
                conn.execute(
                    text(
                        f"UPDATE {table} SET completed_at = completed_at - :ms "  # noqa: S608
                        "WHERE workflow_uuid IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ms": two_days_ms, "ids": aged},
                )

            def forgotten() -> set[str] | None:
                with db.connect() as conn:
                    left = set(conn.execute(text(ticks), {"name": TICK_WORKFLOW}).scalars())
                # An empty set (the recent tick gone too) is waited on, then fails.
                return left if not left & set(aged) else None

            left = wait_for(forgotten, 20, every=0.2, what="the aged ticks deleted")
            assert recent in left
        with setup.admin() as admin:
            assert {r["id"] for r in _runs(admin)} >= {r["id"] for r in runs}

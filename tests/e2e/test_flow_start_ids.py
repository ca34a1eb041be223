"""A run whose id is taken by the time it is stored, on both databases: a
start that looked for the id and found no run (a webhook's redelivery
arriving together with the first delivery) is told the run is started
already, and stores nothing -- no second grant, and the run and its task
as the first start left them. The run, its grant and its task are stored
in one transaction (`gateway.flows.run_start`), so the refusal of the
run's row takes the grant and the task's record back with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.trace_context import new_trace_id
from gateway.delegation.permits import Caller
from gateway.flows.run_start import RunAlreadyStarted
from gateway.flows.store import RunNotFound
from tests.support.dbos_records import system_engine
from tests.support.flows import POLICY, FlowSetup, flow_setup

# A run with nothing to call: it ends as soon as it begins.
QUICK: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-flow",
    "name": "Straight to its end",
    "steps": [{"id": "go", "route": [{"goto": "end"}]}],
}
DANA = Caller("dana", "https://idp.example", frozenset({"sales:quote"}), ("app",), "app")


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, POLICY) as made:
        assert made.register(QUICK).status_code == 201
        yield made


def _stored(setup: FlowSetup, run_id: str) -> tuple[int, str]:
    """How many grants name the run, and its task's stored state."""
    url = setup.gateway.settings.effective_database_url
    with system_engine(url) as engine, engine.connect() as conn:
        grants = conn.execute(
            text("SELECT count(*) FROM flow_grants WHERE run_id = :run"), {"run": run_id}
        ).scalar_one()
        state = conn.execute(
            text("SELECT state FROM a2a_tasks WHERE agent_id = :flow AND task_id = :run"),
            {"flow": QUICK["id"], "run": run_id},
        ).scalar_one()
    return int(grants), str(state)


def test_a_start_whose_run_id_is_taken_as_it_stores_is_told_so_and_stores_nothing(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    with setup.user() as user:
        first = setup.start(user, QUICK["id"], {})
    with setup.admin() as admin:
        done = setup.run(admin, first, "completed", "failed")
    assert done["state"] == "completed", done
    assert _stored(setup, first["id"]) == (1, "TASK_STATE_COMPLETED")

    service = setup.gateway.server.app.state.switchboard.flows

    async def not_there(run_id: str) -> dict[str, Any]:
        raise RunNotFound(run_id)

    # The second start's look for the id came before the first start stored it.
    monkeypatch.setattr(service.rt.store, "run_row", not_there)
    again = service.start(
        QUICK["id"],
        {},
        caller=DANA,
        granted=DANA.scopes,
        trace_id=new_trace_id(),
        run_id=first["id"],
    )
    with pytest.raises(RunAlreadyStarted):
        setup.gateway.server.run(again)
    monkeypatch.undo()

    with setup.admin() as admin:
        after = admin.get(f"/flows/{QUICK['id']}/runs/{first['id']}")
    assert after.status_code == 200, after.text
    assert after.json() == done
    assert _stored(setup, first["id"]) == (1, "TASK_STATE_COMPLETED")

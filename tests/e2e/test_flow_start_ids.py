"""A run's start stores the run, its grant and its task in one transaction
(`gateway.flows.run_start`), on both databases:

* a run whose id is taken by the time it is stored -- a start that looked
  for the id and found no run (a webhook's redelivery arriving together
  with the first delivery) -- is told the run is started already, and
  stores nothing: no second grant, the run and its task as the first start
  left them;
* a start whose task cannot be written stores no run and no grant either:
  no run is left that its task's record does not stand for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.trace_context import new_trace_id
from gateway.delegation import task_statements
from gateway.delegation.permits import Caller
from gateway.flows.run_start import RunAlreadyStarted
from gateway.flows.store import RunNotFound, new_run_id
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


def _stored(setup: FlowSetup, run_id: str) -> tuple[int, int, str | None]:
    """How many grants and runs have the run's id, and its task's stored state."""
    url = setup.gateway.settings.effective_database_url
    with system_engine(url) as engine, engine.connect() as conn:
        grants = conn.execute(
            text("SELECT count(*) FROM flow_grants WHERE run_id = :run"), {"run": run_id}
        ).scalar_one()
        runs = conn.execute(
            text("SELECT count(*) FROM flow_runs WHERE id = :run"), {"run": run_id}
        ).scalar_one()
        state = conn.execute(
            text("SELECT state FROM a2a_tasks WHERE agent_id = :flow AND task_id = :run"),
            {"flow": QUICK["id"], "run": run_id},
        ).scalar_one_or_none()
    return int(grants), int(runs), state


def _start(setup: FlowSetup, run_id: str) -> None:
    """A start of QUICK for dana under ``run_id``, on the gateway's own loop."""
    service = setup.gateway.server.app.state.switchboard.flows
    started = service.start(
        QUICK["id"], {}, caller=DANA, granted=DANA.scopes, trace_id=new_trace_id(), run_id=run_id
    )
    setup.gateway.server.run(started)


def test_a_start_whose_run_id_is_taken_as_it_stores_is_told_so_and_stores_nothing(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    with setup.user() as user:
        first = setup.start(user, QUICK["id"], {})
    with setup.admin() as admin:
        done = setup.run(admin, first, "completed", "failed")
    assert done["state"] == "completed", done
    assert _stored(setup, first["id"]) == (1, 1, "TASK_STATE_COMPLETED")

    async def not_there(run_id: str) -> dict[str, Any]:
        raise RunNotFound(run_id)

    # The second start's look for the id came before the first start stored it.
    store = setup.gateway.server.app.state.switchboard.flows.rt.store
    monkeypatch.setattr(store, "run_row", not_there)
    with pytest.raises(RunAlreadyStarted):
        _start(setup, first["id"])
    monkeypatch.undo()

    with setup.admin() as admin:
        after = admin.get(f"/flows/{QUICK['id']}/runs/{first['id']}")
    assert after.status_code == 200, after.text
    assert after.json() == done
    assert _stored(setup, first["id"]) == (1, 1, "TASK_STATE_COMPLETED")


def test_a_start_whose_task_cannot_be_written_stores_no_run_and_no_grant(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any) -> bool:
        raise RuntimeError("the task's record could not be written")

    # The task's write comes after the run's and its grant's, in their transaction.
    monkeypatch.setattr(task_statements, "_changed", refused)
    run_id = new_run_id()
    with pytest.raises(RuntimeError, match="task's record"):
        _start(setup, run_id)
    monkeypatch.undo()
    assert _stored(setup, run_id) == (0, 0, None)

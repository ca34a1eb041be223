"""A run never stays ``working`` once its workflow has stopped, on both
databases (`gateway.flows.run_ends`): its own "finish" step outlasts a
connection not had in time (the pool's timeout, seen under a burst of a
thousand runs ending at once), and a workflow that raises all the same
ends its run failed, saying why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.flows.models import TokenUsage
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "ends-flow",
    "name": "One quote",
    "steps": [
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'A-1', quantity: `2`}",
        }
    ],
}
GRANT = "  ends-flow:\n    grant: [sales:quote]\n"


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, database_url, POLICY + GRANT) as made:
        assert made.register(FLOW).status_code == 201
        yield made


def _ended(setup: FlowSetup, client: httpx.Client, run_id: str) -> dict[str, Any]:
    """The run once it has ended, or once its workflow has (DBOS's status
    ERROR or SUCCESS): what its record says then is what it says for good."""
    flows = setup.gateway.server.app.state.switchboard.flows

    def ended() -> dict[str, Any] | None:
        # The workflow's status first: once it has ended, every write of its
        # steps is in the record read after it. Read the other way round, a
        # record read just before the finish step wrote it passed for final.
        status = setup.gateway.server.run(flows.engine.status(run_id))
        seen = client.get(f"/flows/ends-flow/runs/{run_id}")
        assert seen.status_code == 200, seen.text
        body: dict[str, Any] = seen.json()
        if body["state"] in ("completed", "failed"):
            return body
        return body if status in ("ERROR", "SUCCESS") else None

    found: dict[str, Any] = wait_for(ended, seconds=60, what=f"run {run_id} ended")
    return found


def test_a_run_whose_finish_had_no_connection_in_time_completes(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = setup.gateway.server.app.state.switchboard.flows.rt.store
    usage = store.run_usage
    timed_out: list[str] = []

    async def no_connection_once(run_id: str) -> TokenUsage | None:
        if not timed_out:
            timed_out.append(run_id)
            raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached")
        found: TokenUsage | None = await usage(run_id)
        return found

    monkeypatch.setattr(store, "run_usage", no_connection_once)
    with setup.user("dana") as dana:
        run = setup.start(dana, "ends-flow", {})
        ended = _ended(setup, dana, run["id"])
    assert timed_out == [run["id"]]
    assert ended["state"] == "completed", ended
    assert setup.desk.count("quote") == 1


def test_a_run_whose_workflow_raised_ends_failed_saying_why(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = setup.gateway.server.app.state.switchboard.flows.rt.store

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the step's record")

    monkeypatch.setattr(store, "enter_step", broken)
    with setup.user("erin") as erin:
        run = setup.start(erin, "ends-flow", {})
        ended = _ended(setup, erin, run["id"])
        assert ended["state"] == "failed", ended
        assert "RuntimeError: a bug in the step's record" in ended["error"], ended
        task = erin.post(
            "/a2a/ends-flow",
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": run["id"]}},
            headers={"A2A-Version": "1.0"},
        )
    assert task.json()["result"]["status"]["state"] == "TASK_STATE_FAILED", task.text
    assert setup.desk.count("quote") == 0

"""A run waiting in this process is woken by its message at once
(`gateway.flows.mailbox`), not by the engine's poll: here both polls -- the
SQLite listener's (a minute with one process) and the checkpoint's own
(`flow_checkpoint_poll_seconds`, ten minutes) -- are far longer than the
test's bound, so a run that goes on within it was woken by the message. It fails first if DBOS's
private waiter registry, which the wake-up reads, ever moves.

A real gateway on SQLite (the only database whose engine polls), the quote
flow's checkpoint, an admin's decision over HTTP.
"""

from __future__ import annotations

from pathlib import Path

from gateway.flows.mailbox import wake_here
from tests.support.flows import QUOTE_FLOW, flow_setup

BIG = {"sku": "X-100", "quantity": 500, "customer": "ACME"}
TEN_MINUTES = 600.0


def test_a_decision_wakes_the_run_waiting_at_its_checkpoint_at_once(tmp_path: Path) -> None:
    with flow_setup(
        tmp_path,
        None,
        flow_checkpoint_poll_seconds=TEN_MINUTES,
    ) as setup:
        assert setup.register(QUOTE_FLOW).status_code == 201
        with setup.user() as dana, setup.admin() as admin:
            run = setup.start(dana, "quote-flow", BIG)
            waiting = setup.run(dana, run, "input_required")
            approval = {s["id"]: s for s in waiting["steps"]}["manager"]["approval_id"]
            decided = admin.post(f"/approvals/{approval}", json={"decision": "approve"})
            assert decided.status_code == 200, decided.text
            # Far below both polls (a minute and ten), far above a loaded machine's wake.
            done = setup.run(dana, run, "completed", "failed", seconds=30)
        assert done["state"] == "completed", done


async def test_no_waiter_here_is_no_wake_up() -> None:
    # DBOS not launched in this process, or nobody waiting on the topic.
    assert await wake_here("run_nobody", "nothing") is False

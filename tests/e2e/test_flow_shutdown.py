"""A gateway that has run a flow stops at once when asked (SIGTERM): the
flow engine's SQLite listener, which sleeps a whole poll between looks, is
not waited for (`gateway.compat.dbos.leave_listener_unjoined`). Waited for,
it held every such gateway 10 s past SIGTERM and left DBOS's warning in the
log; the warning is what this test reads, not a duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.flow_crash import crashable
from tests.support.flows import POLICY

REPLY: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "quote-flow",
    "name": "A reply",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.customer, total: `1`}",
        }
    ],
    "output": "{reply: steps.reply.text}",
}


def test_a_gateway_that_ran_a_flow_stops_without_waiting_for_the_engine(tmp_path: Path) -> None:
    with crashable(tmp_path, None, POLICY, REPLY) as world:
        run = world.start("quote-flow", {"customer": "ACME"})
        assert world.ended("quote-flow", run)["state"] == "completed"
        world.gateway.stop()  # SIGTERM, waited for
    log = world.gateway.log.read_text(errors="replace")
    assert "did not exit within timeout" not in log, log[-2000:]

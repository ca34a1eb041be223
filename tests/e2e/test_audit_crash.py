"""Every send an agent received is in the audit, across a SIGKILL.

A busy run -- two parallel branches, then a map sending four at a time -- is
killed once the agent has received a given number of its messages (a
condition waited on, not a time), on SQLite and PostgreSQL, and started
again. Once the run has ended, the audit holds a record of every message the
agent received: a send's record is durable no later than its outcome is
stored (docs/delegation.md, audit). The gateway's audit writer is told to
gather for ten seconds, so a record that only sat in its buffer at the kill
is surely gone: the test does not depend on how fast the writer is.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from policies.scopes import ADMIN_SCOPE
from tests.support.flow_crash import USER, CrashWorld, crashable
from tests.support.flows import POLICY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.crash

ITEMS = 12
KILL_AT = 7  # the parallel branches' two, and five of the map's

BUSY_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "crash-flow",
    "name": "Two quotes side by side, then a dozen, four at a time",
    "input": {"type": "object"},
    "steps": [
        {
            "id": "both",
            "parallel": {
                "branches": [
                    {
                        "id": branch,
                        "call": {"agent": "sales", "skill": "quote"},
                        "input": "{sku: 'X-100', quantity: `2`}",
                    }
                    for branch in ("left", "right")
                ]
            },
        },
        {
            "id": "many",
            "map": {
                "over": "input.quantities",
                "concurrency": 4,
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: 'X-100', quantity: item}",
            },
        },
    ],
}

# The records that say a message was sent to the agent: its own, at its
# end, or the one recovery writes for a send it found interrupted.
SENDS = ("a2a.SendMessage", "a2a.SendStreamingMessage")


def _received(world: CrashWorld, count: int, seconds: float = 60) -> None:
    wait_for(
        lambda: len(world.sent("quote")) >= count,
        seconds,
        every=0.005,
        what=lambda: f"the agent received {world.sent()}",
    )


def _audited_sends(world: CrashWorld, trace_id: str) -> list[dict[str, Any]]:
    with world.gateway.client("admin", ADMIN_SCOPE) as admin:
        page = admin.get("/audit", params={"trace": trace_id, "limit": 1000})
    assert page.status_code == 200, page.text
    return [
        r
        for r in page.json()["items"]
        if r["target"] == "sales"
        and (r["event"] in SENDS or (r["event"] == "flow.step" and r["outcome"] == "interrupted"))
    ]


def test_every_send_the_agent_received_is_audited_across_a_kill(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = {"audit_flush_seconds": 10}
    with crashable(tmp_path, database_url, POLICY, BUSY_FLOW, settings=settings) as world:
        run_id = world.start("crash-flow", {"quantities": list(range(1, ITEMS + 1))})
        _received(world, KILL_AT)
        world.restart()  # SIGKILL with sends done, sends in flight
        received_at_kill = len(world.sent("quote"))
        # Completed, or failed by a send whose outcome the kill made unknown
        # (`quote` is not idempotent: not sent again).
        after = world.ended("crash-flow", run_id)
        received = world.sent("quote")
        assert received_at_kill >= KILL_AT
        records = _audited_sends(world, after["trace_id"])
        assert all(r["action"] == "quote" and r["subject"] == USER[0] for r in records)
        # One record at least for each message received (a send interrupted
        # just after its own record was written has two: both true).
        assert len(records) >= len(received), (
            f"{len(received)} received, {len(records)} audited: "
            f"{Counter((r['event'], r['outcome']) for r in records)}"
        )

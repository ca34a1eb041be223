"""What a step's module reaches of the run it belongs to.

`gateway.flows.runner.FlowRun` is the run; the modules of its step kinds
(checkpoints, questions, consents, waits, a task's wait, answerers, reviews,
loops) are imported by it, so they type the run they are handed with this
protocol rather than importing the runner back (`tests/test_layout.py`
refuses the circle). One protocol for all of them: a step kind that needs
more of the run says so in a protocol of its own that extends this one.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.flows.runtime import FlowRuntime


class RunAccess(Protocol):
    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]  # the run's row, as the runner read it
    ctx: dict[str, Any]  # what its expressions see: input, steps' outputs

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        """Record a step's state (and its values) in the run's step rows."""
        ...

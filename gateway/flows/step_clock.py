"""A call step's timeout that stands still while a human decides.

A step's ``timeout_seconds`` bounds its call. When the agent is another flow
waiting at a checkpoint (`gateway.flows.deep_approvals`), the wait is an
admin's, not the call's: the clock stops while the approval is pending and
goes on with what was left once it is decided.
"""

from __future__ import annotations

import asyncio


class StoppedClock:
    """A step's ``timeout_seconds``, stood still while a human decides an
    approval inside its agent (a nested flow's checkpoint): the admin's time
    is not the call's. ``hold(True)`` keeps what is left; ``hold(False)``
    gives it back from now."""

    def __init__(self, timeout: asyncio.Timeout) -> None:
        self.timeout = timeout
        self.left: float | None = None

    def hold(self, held: bool) -> None:
        if self.timeout.expired():
            return  # too late: the step is being stopped
        now = asyncio.get_running_loop().time()
        when = self.timeout.when()
        if held and self.left is None and when is not None:
            self.left = max(when - now, 0.0)
            self.timeout.reschedule(None)
        elif not held and self.left is not None:
            self.timeout.reschedule(now + self.left)
            self.left = None

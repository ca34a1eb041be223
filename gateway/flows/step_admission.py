"""A call step's decision: its call decided as every call is, on the run's grant.

Before a step sends anything (`gateway.flows.calls.StepCall`), its call is
decided by the one entrance to the decision, `Delegate.open`, with the
policy in force now and the flow in the actor chain; the verdicts come back
as the step's own errors (held for approval, refused for good, no such
agent). A coordination rule's deferral (``mode: defer``) is waited out here,
audited once, and asked again once the rule keeps nothing for its key -- for
an agent's message as for a tool's call (`McpFederation.call_tool`). What a
step's record shows of the token minted for it (never the token) is said
here too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.delegation.call import Call
from gateway.delegation.permits import Permit
from gateway.delegation.pipeline import (
    ApprovalRequired,
    Caller,
    CoordinationDeferred,
    DelegationDenied,
    Grant,
)
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_errors import NeedsApproval, StepFailed
from registry.store import AgentNotFound

T = TypeVar("T")
# How often a step a coordination rule defers asks again.
DEFERRED_POLL_SECONDS = 1.0

EVENT = "flow.step"


@dataclass(frozen=True)
class CallContext:
    """Who a step's calls are made as: its run, the run's trace, the caller
    (the run's grant, the flow in its actor chain)."""

    run_id: str
    trace_id: str
    caller: Caller


class StepAdmission:
    """Decides one step's calls to ``target`` for one run."""

    def __init__(
        self, runtime: FlowRuntime, call: CallContext, target: str, *, approved: bool
    ) -> None:
        self.rt = runtime
        self.call = call
        self.target = target
        # A human approved this call on the desk (the policy holds each one).
        self.approved = approved

    @asynccontextmanager
    async def decide(
        self,
        agent_id: str,
        skill: str | None,
        *,
        message: bool = True,
        inputs: list[Any] | None = None,
    ) -> AsyncIterator[Grant]:
        """The step's call decided and held open while the block makes it
        (`Delegate.open`: it ends with one record): a message as every
        message is decided, for its skill; another operation (a look, a
        cancel: no approval carried) for the agent. ``inputs``: the
        message's data for the coordination rules."""
        call = Call(
            self.call.caller,
            agent_id,
            event=EVENT,
            trace_id=self.call.trace_id,
            action=skill,
            message=message,
            approved=self.approved and message,
            inputs=inputs,
        )
        async with contextlib.AsyncExitStack() as held:
            try:
                grant = await self.waiting(
                    agent_id, lambda: held.enter_async_context(self.rt.delegate.open(call))
                )
            except ApprovalRequired as waits:
                raise NeedsApproval(agent_id, list(waits.decision.reasons)) from None
            except DelegationDenied as denied:
                reasons = "; ".join(denied.decision.reasons)
                raise StepFailed(f"refused by the policy: {reasons}", final=True) from None
            except AgentNotFound:
                raise StepFailed(f"no agent {agent_id}", final=True) from None
            yield grant

    async def waiting(self, target: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """A call a `mode: defer` rule holds back waits here (audited once)."""
        said = False
        while True:
            try:
                return await attempt()
            except CoordinationDeferred as deferred:
                held = deferred.deferral
            if not said:
                said = True
                await self.rt.delegations.refused(
                    self.call.caller,
                    target,
                    event=EVENT,
                    trace_id=self.call.trace_id,
                    reason=held.reason,
                    outcome="deferred",
                )
            # Asked again once the rule keeps nothing for the key (no decision,
            # token or rate-limit hit meanwhile).
            coordination = self.rt.delegations.coordination
            while coordination is not None:
                await asyncio.sleep(DEFERRED_POLL_SECONDS)
                if not await coordination.keeps(held.rule, held.entity, held.key):
                    break

    def shown_token(self, permit: Permit) -> dict[str, Any]:
        """What the step's record shows of the token minted for ``permit``
        (never the token)."""
        caller, minted = self.call.caller, permit.token
        return {
            "sub": caller.subject,
            "actors": list(caller.actors),
            "scopes": sorted(permit.decision.granted),
            "audience": self.target,
            "jti": minted.token_id,
            "expires_at": (
                datetime.fromtimestamp(minted.expires_at, UTC).isoformat()
                if minted.expires_at
                else None
            ),
        }

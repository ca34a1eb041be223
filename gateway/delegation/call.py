"""One delegated call, as a door read it from its wire format.

Every door -- the A2A bindings, `/mcp` and its sets, a flow's step, a
gateway-run task run again, an approved call made, the reconciler's look at
a lost task, the token endpoint -- reads its request into one `Call` and
hands it to `Delegations.admit(call)`. The decision, the token, the human
approval, the rate limits and the coordination rules are then one sequence
for every door, so no door can decide differently, skip a step or add one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gateway.delegation.permits import Caller
from policies.policy import ActionKind, Target

# A registered A2A agent's id (the core looks it up: its record, its card),
# or a target the door resolved itself (an MCP server of the federation).
TargetT = TypeVar("TargetT", str, Target)


@dataclass(frozen=True, slots=True)
class Call(Generic[TargetT]):
    """Who calls whom, for what, on whose behalf (``caller``: the user and
    the chain of agents acting for them)."""

    caller: Caller
    target: TargetT
    # The audit event the call's records carry ("a2a", "mcp.tools_call", ...).
    event: str
    trace_id: str
    # The skill, the tool (its upstream name) or the operation ("run").
    action: str | None = None
    kind: ActionKind = "skill"
    # An A2A message: decided as its skill's own call; naming none (to an
    # agent with several) or ``strictest`` (it continues a task recorded for
    # no skill in particular, which may be any), as the strictest of the
    # agent's skills (`Delegations.strictest_skill`).
    message: bool = False
    strictest: bool = False
    # An admin approved this very request: a decision that wants a human is
    # carried out rather than held.
    approved: bool = False
    # The call's data, for the coordination rules' entity keys; None: no
    # payload is sent (a look at a task, a cancel).
    inputs: Sequence[Any] | None = None
    # The minted token's audience: default the agent's resource; required
    # for a resolved target, which has no record to read it from.
    audience: str | None = None
    # Scopes the caller asked for (the token endpoint's ``scope``).
    requested: frozenset[str] | None = None
    # False: the gateway sends nothing itself -- the token endpoint's client
    # sends the call, a run's wait only looks -- so the decision and the token
    # are all there is: no approval to hold, no coordination leases to take.
    sends: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.target, Target) and self.audience is None:
            raise ValueError("a call to a resolved target names the token's audience")


@dataclass(frozen=True)
class MessageSkill:
    """What a message was decided for
    (`gateway.delegation.handoffs.message_skill`)."""

    # The skill it is for, named upstream in both metadata levels (None: none).
    skill: str | None
    # The task it continues, as the decision read it (None: it starts one).
    task_id: str | None = None
    # It continues a task recorded for no skill in particular: it may reach
    # any skill, so it is decided as for the strictest, whatever it names.
    strictest: bool = False

    def call(
        self,
        caller: Caller,
        agent_id: str,
        *,
        event: str,
        trace_id: str,
        approved: bool = False,
        inputs: Sequence[Any] | None = None,
    ) -> Call[str]:
        """The message's call to ``agent_id``, as the core decides it."""
        return Call(
            caller,
            agent_id,
            event=event,
            trace_id=trace_id,
            action=self.skill,
            message=True,
            strictest=self.strictest,
            approved=approved,
            inputs=inputs,
        )

"""An agent's fallback: where a message goes when the agent is down.

The policy's handoff rules (`policies.rules.handoff`) may name a fallback
agent for a skill. A message whose agent is found down -- its breaker open
before a stream, or a call that failed as unreachable -- is handed to it by
the same decision: the same caller, skill and inputs, decided and minted for
the fallback by the core and held open while the handler makes the call
(`Delegate.open`), so the fallback's call ends with one record however it
ends. A fallback the policy refuses, or that is no longer registered, means
no fallback: the agent's own failure stands.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import replace

from gateway.agents.admission import Admission
from gateway.delegation.call import Call
from gateway.delegation.delegate import Delegate
from gateway.delegation.pipeline import DelegationDenied
from registry.store import AgentNotFound

logger = logging.getLogger(__name__)


async def admitted(
    delegate: Delegate, held: AsyncExitStack, admission: Admission, agent_id: str, skill: str | None
) -> Admission | None:
    """The admission for fallback ``agent_id``, its call held open in
    ``held``; None when it may not take the call (a denial is audited by the
    decision)."""
    grant = admission.grant
    call = Call(
        grant.caller,
        agent_id,
        event="a2a",
        trace_id=grant.trace_id,
        action=skill,
        message=True,
        strictest=admission.strictest,
        inputs=admission.inputs,
    )
    try:
        fallback = await held.enter_async_context(delegate.open(call))
    except (AgentNotFound, DelegationDenied) as exc:
        logger.warning("fallback %s for %s not usable: %s", agent_id, admission.agent_id, exc)
        return None
    return replace(admission, grant=fallback, skill=skill, down=None)

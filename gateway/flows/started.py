"""Starting a run nobody asked for by hand -- a trigger's (a task's end, a
webhook, a schedule tick): admitted by the policy for the flow like any
caller, started at most once under a run id derived from what fired it, and
audited under the trigger's own event (`flow.trigger`, `flow.webhook`,
`flow.schedule`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from gateway.delegation.permits import Caller
from gateway.flows.service import FlowService, RunAlreadyStarted
from gateway.flows.trigger_definition import Trigger

# The issuer of the identities webhooks and schedules act as (`run_as`): no
# identity provider issues it, so no user's token can ever be taken for one.
ISSUER = "urn:switchboard:trigger"


def derived_run_id(*parts: str) -> str:
    return "run_" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def service_caller(kind: str, flow_id: str, trigger: Trigger) -> Caller:
    """A webhook's or a schedule's `run_as`, as a caller: its scopes at most."""
    assert trigger.run_as is not None
    actor = f"{kind}:{flow_id}/{trigger.id}"
    return Caller(
        subject=trigger.run_as.subject,
        issuer=ISSUER,
        scopes=frozenset(trigger.run_as.scopes),
        actors=(actor,),
        client_id=actor,
    )


async def start_once(
    service: FlowService,
    flow_id: str,
    caller: Caller,
    run_input: Callable[[], dict[str, Any]],
    *,
    run_id: str,
    event: str,
    said: str,
) -> bool:
    """Admit and start (`RunStarts.start_admitted`); True if it started now,
    False if it had already. Raises as that does."""
    try:
        await service.start_admitted(
            flow_id,
            caller,
            run_input,
            event=event,
            said=lambda started: f"run {started}: {said}",
            failing=said,
            run_id=run_id,
        )
    except RunAlreadyStarted:
        return False
    return True

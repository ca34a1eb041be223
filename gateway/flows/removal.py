"""Removing a flow (`DELETE /flows/{id}`).

A flow with runs still going is not removed unless the caller asks for them
to be cancelled first (``cancel``), nor one another flow calls (that flow
would fail at its step): both are refused, saying which. Removed: the flow
and its agent (`/a2a/{id}` is gone, no new run can start, and no run of it
can be resumed). Its runs' records stay, as evidence, with the audit log,
and so do its versions, by whose rules those records are read and redacted;
a flow registered again under the same id goes on from its last version
and shows those runs as its own history.
"""

from __future__ import annotations

import contextlib

from gateway.flows.definition import FlowDocument
from gateway.flows.service import FlowService, RunNotActive
from gateway.flows.target_checks import called_agents


class FlowBusy(Exception):
    """Runs of the flow are going; removing it needs ``cancel``."""


class FlowCalled(Exception):
    """Another flow calls this one."""


async def remove_flow(service: FlowService, flow_id: str, by: str, *, cancel: bool) -> list[str]:
    """Remove the flow; the runs it cancelled first. Raises `FlowNotFound`,
    `FlowBusy`, `FlowCalled`."""
    store = service.rt.store
    await store.get(flow_id)
    callers = sorted(
        flow.id
        for flow in await store.list()
        if flow.id != flow_id
        and flow_id
        in {agent for _, _, agent in called_agents(FlowDocument.model_validate(flow.document))}
    )
    if callers:
        raise FlowCalled(f"{flow_id} is called by flow(s) {', '.join(callers)}: change those first")
    active = await store.active_runs(flow_id)
    if active and not cancel:
        shown = ", ".join(active[:5]) + (" ..." if len(active) > 5 else "")
        raise FlowBusy(
            f"{len(active)} run(s) of {flow_id} are still going ({shown}); "
            "remove it with ?cancel=true to cancel them first"
        )
    for run_id in active:
        with contextlib.suppress(RunNotActive):  # ended meanwhile
            await service.cancel(run_id, by)
    # The agent first: no run can start once it is gone.
    await service.rt.delegations.agents.delete(flow_id)
    await store.delete(flow_id)
    for listener in service.registered_listeners:
        listener()
    for hook in service.registered_hooks:
        await hook()
    return active

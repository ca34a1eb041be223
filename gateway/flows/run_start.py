"""Starting a run (`FlowService.start`, `start_as_user`).

Starting a run always follows an admission for the flow's own id (the A2A
front door's, or `start_as_user`'s for the REST API and the CLI), so the
policy decides whether the user may run the flow, and what the flow may
hold: the run's durable grant gets the scopes that decision granted, the
actor chain with the flow last, and an end (`FlowSettings.grant_max_seconds`,
or the flow's own ``max_run_seconds`` if shorter). The run and its grant
are stored together with the run's A2A task, submitted (one transaction),
the grant audited (``flow.grant``), and then its DBOS workflow started.

A flow version never changes once stored: its document is parsed once per
process (`FlowStore.parsed`), not at every start.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.trace_context import new_trace_id
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.call import Call
from gateway.delegation.permits import Grant
from gateway.delegation.pipeline import Caller
from gateway.flows.costs import BudgetSpent, check_budget
from gateway.flows.definition import FlowDocument
from gateway.flows.engine import FlowEngine
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_records import RunNotStored
from gateway.flows.store import RunNotFound, new_grant_id, new_run_id
from registry.contracts import violation


class InputInvalid(ValueError):
    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class RunAlreadyStarted(Exception):
    """A run with this id exists: a trigger's run started once already."""


def checked_input(flow_id: str, document: FlowDocument, run_input: dict[str, Any]) -> None:
    """`InputInvalid` unless ``run_input`` matches the flow's input schema."""
    found = violation(document.input, run_input)
    if found is not None:
        field = f"input{found.pointer.replace('/', '.')}"
        raise InputInvalid(
            f"the input does not match flow {flow_id}'s input schema at "
            f"{found.pointer or '/'}: {found.message}",
            [{"field": field, "message": found.message}],
        )


def new_grant(
    run_id: str, caller: Caller, flow_id: str, granted: frozenset[str], lifetime: float
) -> dict[str, Any]:
    """The run's durable grant: the admitted scopes, the caller's actor
    chain with the flow last, an end ``lifetime`` seconds from now."""
    now = datetime.now(UTC)
    return {
        "id": new_grant_id(),
        "run_id": run_id,
        "subject": caller.subject,
        "issuer": caller.issuer,
        "client_id": caller.client_id,
        "actors": [*caller.actors, flow_id],
        "scopes": sorted(granted),
        "issued_at": now,
        "expires_at": now + timedelta(seconds=lifetime),
    }


def grant_event(grant: dict[str, Any], flow_id: str, trace_id: str) -> AuditEvent:
    return AuditEvent(
        event="flow.grant",
        trace_id=trace_id,
        subject=grant["subject"],
        subject_issuer=grant["issuer"],
        client_id=grant["client_id"],
        actors=tuple(grant["actors"]),
        target=flow_id,
        action="run",
        scopes_granted=grant["scopes"],
        decision="allow",
        outcome="ok",
        detail=f"run {grant['run_id']}: grant {grant['id']} until "
        f"{grant['expires_at'].isoformat()}",
    )


class RunStarts:
    """`FlowService`'s starting of runs."""

    rt: FlowRuntime
    engine: FlowEngine

    async def start(
        self,
        flow_id: str,
        run_input: dict[str, Any],
        *,
        caller: Caller,
        granted: frozenset[str],
        trace_id: str,
        context_id: str | None = None,
        run_id: str | None = None,
        version: int | None = None,
        fields: Mapping[str, Any] | None = None,
        launch: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> str:
        """Start a run for an admitted caller; returns the run id (= task id).
        A given ``run_id`` that exists already raises `RunAlreadyStarted`.
        ``version``: the flow's version to run (its latest if None);
        ``fields``: more of the run's record; ``launch``: what sets the run
        going once recorded, instead of a new workflow (a fork's,
        `gateway.flows.forks`)."""
        store = self.rt.store
        current = await store.current_version(flow_id)  # FlowNotFound: removed
        version = current if version is None else version
        document = await store.parsed(flow_id, version)
        if run_id is not None:
            # A repeat (a webhook's redelivery) is told so, budget or not.
            with contextlib.suppress(RunNotFound):
                await store.run_row(run_id)
                raise RunAlreadyStarted(run_id)
        await check_budget(self.rt, flow_id, caller.subject, caller.issuer)
        checked_input(flow_id, document, run_input)
        lifetime = self.rt.settings.grant_max_seconds
        if document.max_run_seconds is not None:
            lifetime = min(lifetime, document.max_run_seconds)
        run_id = run_id or new_run_id()
        grant = new_grant(run_id, caller, flow_id, granted, lifetime)
        run = {
            "id": run_id,
            "flow_id": flow_id,
            "flow_version": version,
            "state": "submitted",
            "owner_subject": caller.subject,
            "owner_issuer": caller.issuer,
            "grant_id": grant["id"],
            "input": run_input,
            "trace_id": trace_id,
            "context_id": context_id or str(uuid.uuid4()),
            **(fields or {}),
        }
        said = f"run {run_id} of flow {flow_id} (version {version})"
        try:
            # The run, its grant and its task, submitted, in one transaction.
            created = store.creation(run, grant)
            await self.rt.publish(run, "submitted", said, caller=caller, created=created)
        except RunNotStored:
            raise RunAlreadyStarted(run_id) from None
        await self.rt.delegations.record_event(grant_event(grant, flow_id, trace_id))
        await (self.engine.start(run_id) if launch is None else launch(run))
        return run_id

    async def start_as_user(self, flow_id: str, caller: Caller, run_input: dict[str, Any]) -> str:
        """The REST API's and the CLI's start: the same admission as `/a2a/{flow_id}`
        (raises the pipeline's `DelegationDenied`, `AgentNotFound`)."""
        return await self.start_admitted(
            flow_id,
            caller,
            lambda: run_input,
            event="flow.start",
            said=lambda run_id: f"run {run_id}",
        )

    async def start_admitted(
        self,
        flow_id: str,
        caller: Caller,
        run_input: Callable[[], dict[str, Any]],
        *,
        event: str,
        said: Callable[[str], str],
        failing: str = "",
        run_id: str | None = None,
        version: int | None = None,
        fields: Mapping[str, Any] | None = None,
        launch: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> str:
        """A run started by anything but the A2A door (the REST API, a fork, a
        trigger): the caller admitted by the policy for the flow like any
        caller, the run started (`start`), the outcome audited under
        ``event`` -- ``said(run id)`` the record of a start, ``failing``
        before a refusal's reason. Raises what admission raises (recorded
        there), `RunAlreadyStarted` (nothing recorded: the run is the one
        already started), `BudgetSpent` (``budget_spent``), `InputInvalid`
        (the flow's input schema) or a `ValueError` of ``run_input`` for an
        input the flow cannot take (``invalid_input``)."""
        trace_id = new_trace_id()
        prefix = f"{failing}: " if failing else ""
        refused = self.rt.delegate.record

        async def started(grant: Grant) -> tuple[str, str]:
            try:
                given = run_input()
            except ValueError as exc:  # the caller's input could not be read
                await refused(grant, event, "invalid_input", f"{prefix}{exc}"[:500])
                raise
            try:
                run = await self.start(
                    flow_id,
                    given,
                    caller=caller,
                    granted=grant.decision.granted,
                    trace_id=trace_id,
                    run_id=run_id,
                    version=version,
                    fields=fields,
                    launch=launch,
                )
            except BudgetSpent as spent:
                await refused(grant, event, "budget_spent", f"{prefix}{spent}"[:500])
                raise
            except InputInvalid as exc:
                # Only the input's own check: a ValueError once the run is stored
                # (its launch, say) is not the caller's input, and the run exists.
                await refused(grant, event, "invalid_input", f"{prefix}{exc}"[:500])
                raise
            return run, said(run)[:500]

        call = Call(caller, flow_id, event=event, trace_id=trace_id, action="run")
        return await self.rt.delegate.answer(call, started)

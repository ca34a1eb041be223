"""Flows as the API and the CLI use them: register (`registration`), start
(`run_start`), show, cancel, resume, revoke, and the words a waiting run is
given (an event, an answer, a connection)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.delegation.approvals import PENDING, WITHDRAWN, AlreadyDecided
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.tasks import Owner
from gateway.flows import consents, questions, waits
from gateway.flows.definition import WaitStep
from gateway.flows.engine import FlowEngine
from gateway.flows.models import RunView
from gateway.flows.redaction import redact_run, rules
from gateway.flows.registration import Registrations
from gateway.flows.run_start import InputInvalid, RunAlreadyStarted, RunStarts
from gateway.flows.runtime import FlowRuntime
from gateway.flows.store import TERMINAL_RUN_STATES, RunNotFound

# `InputInvalid` and `RunAlreadyStarted` are `run_start`'s, raised by `start`.
__all__ = [
    "EventSigned",
    "FlowService",
    "InputInvalid",
    "NoSuchEvent",
    "RunAlreadyStarted",
    "RunNotActive",
]
logger = logging.getLogger(__name__)

# Why a cancel withdraws a run's open checkpoints (and how a resume finds them).
CANCELLED = "the run was cancelled"


class RunNotActive(Exception):
    pass


class NoSuchEvent(Exception):
    """The run's flow has no `wait` step for this event."""


class EventSigned(Exception):
    """The event is the one a signed webhook of the flow brings (`deliver`):
    the run's user may not post it in the sender's place."""


@dataclass
class FlowService(Registrations, RunStarts):
    rt: FlowRuntime
    engine: FlowEngine
    public_url: str
    _redactions: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)
    # Told when a flow is registered here (the triggers read them again; the
    # schedules are made to match, awaited).
    registered_listeners: list[Callable[[], None]] = field(default_factory=list)
    registered_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    # Registration -------------------------------------------------------------------

    # Runs ---------------------------------------------------------------------------

    async def owned(self, flow_id: str, run_id: str, owner: Owner | None) -> dict[str, Any]:
        """The run's row if it belongs to ``flow_id`` and ``owner`` (None: an admin)."""
        run = await self.rt.store.run_row(run_id)
        if run["flow_id"] != flow_id or (
            owner is not None
            and (run["owner_subject"], run["owner_issuer"]) != (owner.subject, owner.issuer)
        ):
            raise RunNotFound(run_id)
        return run

    # What is shown of runs: always under the run's flow version's `redact`.

    async def view(self, run_id: str) -> RunView:
        found = await self.rt.store.view(run_id)
        return redact_run(found, await self._redaction(found.flow_id, found.flow_version))

    async def runs(
        self,
        flow_id: str | None,
        *,
        owner: tuple[str, str] | None = None,
        limit: int = 50,
        state: str | None = None,
        since: datetime | None = None,
    ) -> list[RunView]:
        """Runs of ``flow_id`` (None: every flow), as `FlowStore.runs` filters them."""
        found = await self.rt.store.runs(
            flow_id, owner=owner, limit=limit, state=state, since=since
        )
        return [redact_run(r, await self._redaction(r.flow_id, r.flow_version)) for r in found]

    async def _redaction(self, flow_id: str, version: int) -> frozenset[str]:
        key = (flow_id, version)
        if key not in self._redactions:  # a version never changes: cached for good
            if len(self._redactions) > 4096:
                self._redactions.clear()
            document = await self.rt.store.version(flow_id, version)
            self._redactions[key] = rules(document.get("redact") or ())
        return self._redactions[key]

    async def post_event(
        self, run_id: str, event: str, body: Any, by: str, *, admin: bool = False
    ) -> None:
        """Deliver ``event`` to a run that has a `wait` step for it (`gateway.flows.waits`).
        An event a signed webhook of the flow brings (``deliver``) is that
        sender's word: only an admin may post it by hand (`EventSigned`)."""
        run = await self.rt.store.run_row(run_id)
        if run["state"] in TERMINAL_RUN_STATES:
            raise RunNotActive(f"run {run_id} has ended ({run['state']})")
        document = await self.rt.store.parsed(run["flow_id"], run["flow_version"])
        if not any(isinstance(s, WaitStep) and s.wait.event == event for s in document.steps):
            raise NoSuchEvent(f"flow {run['flow_id']} waits for no event {event!r}")
        if not admin and any(t.deliver and t.deliver.event == event for t in document.triggers):
            raise EventSigned(
                f"event {event!r} of flow {run['flow_id']} is brought by its signed webhook only"
            )
        await self.engine.ensure()
        await waits.deliver(run_id, event, body)
        await self.rt.delegations.record_event(
            AuditEvent(
                event="flow.event",
                trace_id=run["trace_id"],
                subject=run["owner_subject"],
                subject_issuer=run["owner_issuer"],
                decision="allow",
                outcome="ok",
                target=run["flow_id"],
                action=event,
                detail=f"run {run_id}: event {event} posted by {by}"[:2000],
            )
        )

    async def answer(
        self,
        run_id: str,
        by: Owner,
        reply: dict[str, Any],
        round_: int | None = None,
        step: str | None = None,
    ) -> str:
        """The run's user answers the question its step's agent asked
        (`gateway.flows.questions`; ``round_`` and ``step``: which, when
        they say): the step answered."""
        await self.engine.ensure()
        return await questions.answer(self.rt, run_id, by, reply, round_, step)

    async def connected(self, upstream: str, subject: str, issuer: str) -> int:
        """The user connected their account at ``upstream``: their runs waiting
        for it go on (`gateway.flows.consents`); how many were woken. A run
        waiting on another upstream takes the word as a wake-up on a topic it
        does not read: nothing happens to it."""
        if not self.engine.launched:
            return 0
        waiting = await self.rt.store.waiting_for_consent(subject, issuer)
        for run_id in waiting:
            await consents.connected(run_id, upstream)
        return len(waiting)

    async def cancel(self, run_id: str, by: str) -> None:
        run = await self.rt.store.run_row(run_id)
        if run["state"] in TERMINAL_RUN_STATES:
            raise RunNotActive(f"run {run_id} has ended ({run['state']})")
        await self.rt.publish(run, "canceled", f"cancelled by {by}")
        # The workflow first: once DBOS has it cancelled it records no further
        # step, so the checkpoint the withdrawal wakes cannot record "ended
        # withdrawn" -- which a resume would replay, ending the run again.
        await self.engine.cancel(run_id)
        await self._withdraw_checkpoints(run_id, by)

    async def _withdraw_checkpoints(self, run_id: str, by: str) -> None:
        for step in (await self.rt.store.view(run_id)).steps:
            if step.approval_id and step.state == "waiting":
                with contextlib.suppress(AlreadyDecided, Exception):
                    approval = await self.rt.approvals.get(step.approval_id)
                    # Its own checkpoints only: an approval inside a step's
                    # agent (a nested flow's) goes with that flow's run.
                    if approval.state == PENDING and approval.task_id == run_id:
                        decided = await self.rt.approvals.decide(
                            step.approval_id, WITHDRAWN, by, CANCELLED
                        )
                        await self.rt.approvals.audit_decision(decided)

    async def resume(self, run_id: str, by: str) -> None:
        """Go on with a cancelled or failed run from its last completed step
        (DBOS `resume_workflow`), on the same grant -- which must still be usable."""
        run = await self.rt.store.run_row(run_id)
        await self.rt.store.get(run["flow_id"])  # FlowNotFound: the flow was removed
        await self.rt.caller(run["grant_id"])  # GrantUnusable: not resumed
        status = await self.engine.status(run_id)
        if status not in ("CANCELLED", "ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "PENDING"):
            raise RunNotActive(f"run {run_id} cannot be resumed: it is {run['state']}")
        await self.rt.store.reopen(run_id)
        asking = await self._reopen_checkpoints(run_id)
        if asking:
            # The run goes back to waiting where it was (its checkpoint's
            # opening is replayed, not run again: it is said here).
            said = f"resumed by {by}; waiting for an admin's approval {asking[0]}"
            await self.rt.publish(run, "input_required", said, metadata={"approval": asking[0]})
        elif not await questions.reopen(self.rt, run, by):
            await self.rt.publish(run, "working", f"resumed by {by}")
        await self.engine.resume(run_id)

    async def _reopen_checkpoints(self, run_id: str) -> list[str]:
        """The checkpoints the run's cancel withdrew ask again (their ids): the
        resumed run waits at them for a decision (their deadline is still the
        one set when they opened), instead of reading "withdrawn" and ending
        once more."""
        asking = []
        for step in (await self.rt.store.view(run_id)).steps:
            if step.approval_id and step.state == "waiting":
                with contextlib.suppress(Exception):
                    if (await self.rt.approvals.get(step.approval_id)).task_id != run_id:
                        continue  # a nested flow's: not this run's to reopen
                reopened = await self.rt.approvals.reopen(step.approval_id, CANCELLED)
                if reopened is not None:
                    await self.rt.approvals.audit_request(reopened, "flow.checkpoint")
                    asking.append(reopened.id)
        return asking

    async def revoke(self, run_id: str, by: str, reason: str | None) -> bool:
        run = await self.rt.store.run_row(run_id)
        return await self.rt.store.revoke(run["grant_id"], by, reason)

"""Flows as the API and the CLI use them: register, start, cancel, resume, revoke.

Registering checks the document (`documents.validate`, then `checks.check`
against the registry, the federation and the stored flows), stores it as the
flow's next version and writes the flow's card as an agent in the registry
(`agent.flow_card`: a new card version with each flow version, the input
schema as the contract of its skill ``run``).

Starting a run always follows an admission for the flow's own id (the A2A
front door's, or `admit_user`'s for the REST API and the CLI), so the policy
decides whether the user may run the flow, and what the flow may hold: the
run's durable grant gets the scopes that decision granted, the actor chain
with the flow last, and an end (`FlowSettings.grant_max_seconds`, or the
flow's own ``max_run_seconds`` if shorter).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.trace_context import new_trace_id
from gateway.delegation.approvals import PENDING, WITHDRAWN, AlreadyDecided
from gateway.delegation.audit import AuditEvent
from gateway.delegation.call import Call
from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner
from gateway.federation.federated_tools import ToolNotFound
from gateway.flows import consents, questions, waits
from gateway.flows.cards import flow_card
from gateway.flows.checks import check
from gateway.flows.costs import BudgetSpent, check_budget
from gateway.flows.definition import CallStep, FlowDocument, WaitStep
from gateway.flows.documents import DocumentInvalid, validate
from gateway.flows.engine import FlowEngine
from gateway.flows.models import FlowRecord, RunView
from gateway.flows.redaction import redact_run, rules
from gateway.flows.runtime import FlowRuntime, is_idempotent
from gateway.flows.store import TERMINAL_RUN_STATES, RunNotFound, new_grant_id, new_run_id
from gateway.flows.target_checks import AgentInfo, ToolInfo, called_agents
from gateway.flows.trigger_checks import check_triggers
from registry.contracts import violation
from registry.signatures import SignatureCheck, SignatureStatus
from registry.store import AgentConflict, AgentNotFound, NewAgent
from registry.vendor_cards import gateway_run_kind

logger = logging.getLogger(__name__)

# Why a cancel withdraws a run's open checkpoints (and how a resume finds them).
CANCELLED = "the run was cancelled"


class InputInvalid(ValueError):
    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


class RunNotActive(Exception):
    pass


class NoSuchEvent(Exception):
    """The run's flow has no `wait` step for this event."""


class EventSigned(Exception):
    """The event is the one a signed webhook of the flow brings (`deliver`):
    the run's user may not post it in the sender's place."""


class RunAlreadyStarted(Exception):
    """A run with this id exists: a trigger's run started once already."""


@dataclass
class FlowService:
    rt: FlowRuntime
    engine: FlowEngine
    public_url: str
    _redactions: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)
    # Told when a flow is registered here (the triggers read them again; the
    # schedules are made to match, awaited).
    registered_listeners: list[Callable[[], None]] = field(default_factory=list)
    registered_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    # Registration -------------------------------------------------------------------

    async def register(self, data: Any, by: str) -> tuple[FlowRecord, bool]:
        """Check and store; `DocumentInvalid` names every problem's step and field."""
        document = validate(data)
        catalog = _Catalog(self.rt)
        stored = {flow.id: flow.document for flow in await self.rt.store.list()}
        problems = await check(document, catalog) + await check_triggers(
            document, catalog, self.rt.settings.secrets.keys(), stored
        )
        if problems:
            raise DocumentInvalid(problems)
        raw = document.model_dump(mode="json", exclude_none=True, by_alias=True)
        store = self.rt.store
        agents = self.rt.delegations.agents
        existing = await agents.get(document.id)
        if existing is not None:
            card = await agents.card(document.id)
            if card is None or gateway_run_kind(card) != "flow":
                raise AgentConflict(f"{document.id}: an agent with this id exists")
        url = f"{self.public_url}/a2a/{document.id}"
        contracts = {"run": document.input}
        unsigned = SignatureCheck(SignatureStatus.UNSIGNED, "written by the gateway")
        if existing is None:
            # The first version and the flow's agent, in one transaction.
            async def first(conn: AsyncConnection) -> None:
                await store.save(raw, by, conn)

            await agents.create(
                NewAgent(
                    id=document.id,
                    resource=f"urn:switchboard:flow:{document.id}",
                    card_url=None,
                    parsed=flow_card(document, url, 1),
                    signature=unsigned,
                    pinned_keys=None,
                    skill_contracts=contracts,
                ),
                also=first,
            )
            changed = True
        else:
            version, changed = await store.save(raw, by)
            if changed:
                await agents.add_revision(document.id, flow_card(document, url, version), unsigned)
                await store.set_agent_contracts(document.id, contracts)
        record = await store.get(document.id)
        await self.engine.ensure()
        for listener in self.registered_listeners:
            listener()
        for hook in self.registered_hooks:
            await hook()
        return record, changed

    # Runs ---------------------------------------------------------------------------

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
        record = await self.rt.store.get(flow_id)
        if version is not None and version != record.version:
            document_of = await self.rt.store.version(flow_id, version)
        else:
            document_of, version = record.document, record.version
        if run_id is not None:
            # A repeat (a webhook's redelivery) is told so, budget or not.
            with contextlib.suppress(RunNotFound):
                await self.rt.store.run_row(run_id)
                raise RunAlreadyStarted(run_id)
        await check_budget(self.rt, flow_id, caller.subject, caller.issuer)
        document = FlowDocument.model_validate(document_of)
        found = violation(document.input, run_input)
        if found is not None:
            field = f"input{found.pointer.replace('/', '.')}"
            raise InputInvalid(
                f"the input does not match flow {flow_id}'s input schema at "
                f"{found.pointer or '/'}: {found.message}",
                [{"field": field, "message": found.message}],
            )
        now = datetime.now(UTC)
        lifetime = self.rt.settings.grant_max_seconds
        if document.max_run_seconds is not None:
            lifetime = min(lifetime, document.max_run_seconds)
        run_id = run_id or new_run_id()
        grant_id = new_grant_id()
        actors = [*caller.actors, flow_id]
        scopes = sorted(granted)
        expires_at = now + timedelta(seconds=lifetime)
        grant = {
            "id": grant_id,
            "run_id": run_id,
            "subject": caller.subject,
            "issuer": caller.issuer,
            "client_id": caller.client_id,
            "actors": actors,
            "scopes": scopes,
            "issued_at": now,
            "expires_at": expires_at,
        }
        context_id = context_id or str(uuid.uuid4())
        run = {
            "id": run_id,
            "flow_id": flow_id,
            "flow_version": version,
            "state": "submitted",
            "owner_subject": caller.subject,
            "owner_issuer": caller.issuer,
            "grant_id": grant_id,
            "input": run_input,
            "trace_id": trace_id,
            "context_id": context_id,
        }
        run.update(fields or {})
        try:
            await self.rt.store.create_run(run, grant)
        except IntegrityError:
            raise RunAlreadyStarted(run_id) from None
        await self.rt.delegations.record_event(
            AuditEvent(
                event="flow.grant",
                trace_id=trace_id,
                subject=caller.subject,
                subject_issuer=caller.issuer,
                client_id=caller.client_id,
                actors=tuple(actors),
                target=flow_id,
                action="run",
                scopes_granted=scopes,
                decision="allow",
                outcome="ok",
                detail=f"run {run_id}: grant {grant_id} until {expires_at.isoformat()}",
            )
        )
        await self.rt.publish(
            run,
            "submitted",
            f"run {run_id} of flow {flow_id} (version {version})",
            caller=caller,
        )
        if launch is None:
            await self.engine.start(run_id)
        else:
            await launch(run)
        return run_id

    async def start_as_user(self, flow_id: str, caller: Caller, run_input: dict[str, Any]) -> str:
        """The REST API's and the CLI's start: the same admission as `/a2a/{flow_id}`
        (raises the pipeline's `DelegationDenied`, `AgentNotFound`)."""
        trace_id = new_trace_id()
        grant = await self.rt.delegations.admit(
            Call(caller, flow_id, event="flow.start", trace_id=trace_id, action="run")
        )
        try:
            run_id = await self.start(
                flow_id, run_input, caller=caller, granted=grant.decision.granted, trace_id=trace_id
            )
        except BudgetSpent as spent:
            await self.rt.delegate.record(grant, "flow.start", "budget_spent", str(spent))
            raise
        await self.rt.delegate.record(grant, "flow.start", "ok", f"run {run_id}")
        return run_id

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
        document = FlowDocument.model_validate(
            await self.rt.store.version(run["flow_id"], run["flow_version"])
        )
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


class _Catalog:
    """What `checks.check` looks up, from the registry, the federation and the stored flows."""

    def __init__(self, rt: FlowRuntime) -> None:
        self.rt = rt

    async def agent(self, agent_id: str) -> AgentInfo | None:
        try:
            record, card, _ = await self.rt.delegations.target(agent_id)
        except AgentNotFound:
            return None
        skills = tuple(str(s.get("id")) for s in card.get("skills") or () if isinstance(s, Mapping))
        return AgentInfo(skills, record.skill_contracts or {}, gateway_run_kind(card) == "flow")

    async def tool(self, name: str) -> ToolInfo | None:
        try:
            tool = await self.rt.federation().tool(name)
        except ToolNotFound:
            return None
        definition = tool.definition
        inputs, outputs = definition.get("inputSchema"), definition.get("outputSchema")
        return ToolInfo(
            inputs if isinstance(inputs, Mapping) else None,
            outputs if isinstance(outputs, Mapping) else None,
        )

    def idempotent(self, step: CallStep, tool: ToolInfo | None) -> bool:
        return is_idempotent(self.rt, step)

    async def flow_calls(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {}
        for flow in await self.rt.store.list():
            document = FlowDocument.model_validate(flow.document)
            graph[flow.id] = {agent for _, _, agent in called_agents(document)}
        return graph

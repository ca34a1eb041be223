"""The approvals table (`gateway.delegation.approvals`: what an approval is),
and the audit records of its steps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.delegation.approval_statements import approval_of, by_id, insert_held
from gateway.delegation.approvals import (
    APPROVED,
    AUDIT_EVENT,
    PENDING,
    WITHDRAWN,
    AlreadyDecided,
    Approval,
    ApprovalNotFound,
    ApprovalPage,
    NewApproval,
    State,
    new_id,
)
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.decision_records import held_on
from gateway.delegation.pipeline import Caller
from gateway.storage.statements import statement_runner
from gateway.storage.tables import approvals


class Approvals:
    """The approvals table, and the audit records of its steps."""

    def __init__(self, engine: AsyncEngine, audit: AuditLog) -> None:
        self._engine = engine
        self._run = statement_runner(engine)
        self._audit = audit
        # Told of a held call once it is stored (`told_held`): a flow's step
        # whose agent made the call onwards shows it (`gateway.flows`).
        self.held_listeners: list[Callable[[Approval], None]] = []

    async def aclose(self) -> None:
        await self._run.aclose()

    def told_held(self, approval: Approval) -> None:
        """A held call's approval is stored (its transaction committed)."""
        for listener in self.held_listeners:
            listener(approval)

    async def create(
        self,
        new: NewApproval,
        approval_id: str | None = None,
        *,
        conn: AsyncConnection | None = None,
    ) -> Approval:
        """``conn``: in that transaction (the held call's task's, say)."""
        permit = new.permit
        return await self.hold(
            approval_id or new_id(),
            kind=new.kind,
            caller=permit.caller,
            target=permit.target_id,
            action_kind=new.action_kind,
            action=permit.action or new.action,
            tool=new.tool,
            request=new.request,
            reasons=list(permit.decision.reasons),
            trace_id=permit.trace_id,
            task_id=new.task_id,
            context_id=new.context_id,
            conn=conn,
        )

    async def hold(
        self,
        approval_id: str,
        *,
        kind: Literal["a2a", "mcp", "flow"],
        caller: Caller,
        target: str,
        action_kind: Literal["skill", "tool"],
        action: str | None,
        request: dict[str, Any],
        reasons: list[str],
        trace_id: str,
        tool: str | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> Approval:
        """Store a pending approval (`create` for a held call; a flow's
        checkpoint, which holds no call, names the rest itself); in ``conn``'s
        transaction when given."""
        row = {
            "id": approval_id,
            "state": PENDING,
            "kind": kind,
            "target": target,
            "action_kind": action_kind,
            "action": action,
            "tool": tool,
            "owner_subject": caller.subject,
            "owner_issuer": caller.issuer,
            "txn": caller.txn,
            "caller": {
                **asdict(caller),
                "scopes": sorted(caller.scopes),
                "actors": list(caller.actors),
            },
            "trace_id": trace_id,
            "request": request,
            "reasons": reasons,
            "task_id": task_id,
            "context_id": context_id,
            "created_at": datetime.now(UTC),
        }
        if conn is not None:
            await conn.execute(insert(approvals).values(**row))
        else:
            await self._run(insert_held, row)
        return approval_of(row)

    async def get(self, approval_id: str) -> Approval:
        row = await self._run.read(by_id, approval_id)
        if row is None:
            raise ApprovalNotFound(approval_id)
        return approval_of(row)

    async def by_task(self, target: str, task_id: str) -> Approval | None:
        """The approval that owns the gateway task ``task_id`` on ``target``."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(approvals).where(
                        approvals.c.target == target, approvals.c.task_id == task_id
                    )
                )
            ).first()
        return None if row is None else approval_of(row._asdict())

    async def pending_under(self, subject: str, txn: str, since: datetime) -> Approval | None:
        """The newest pending approval of a call made under ``txn``
        (`Caller.txn`: a flow run's step, whose agent called onwards) by
        ``subject``'s token, held at or after ``since`` (the step's exchange
        began: one left by an earlier attempt is not this one's), and whose
        call can still be made (its token not expired). The txn comes only
        from tokens this gateway signed; the subject is checked as well. The
        issuer is not: a call made onwards holds the gateway's."""
        c = approvals.c
        query = (
            select(approvals)
            .where(
                c.txn == txn,
                c.state == PENDING,
                c.owner_subject == subject,
                c.created_at >= since.astimezone(UTC),
            )
            .order_by(c.created_at.desc(), c.id)
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        found = approval_of(row._asdict())
        expires = found.requested_by.token_expires_at
        return None if expires is not None and expires <= datetime.now(UTC) else found

    async def list(
        self,
        *,
        state: str | None = None,
        target: str | None = None,
        user: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ApprovalPage:
        """Pending first, then the rest; newest first within each."""
        c = approvals.c
        where = []
        if state is not None:
            where.append(c.state == state)
        if target is not None:
            where.append(c.target == target)
        if user is not None:
            where.append(c.owner_subject == user)
        order = [case((c.state == PENDING, 0), else_=1), c.created_at.desc(), c.id]
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(approvals).where(*where).order_by(*order).limit(limit + 1).offset(offset)
                )
            ).all()
        items = [approval_of(r._asdict()) for r in rows[:limit]]
        return ApprovalPage(items=items, next_offset=offset + limit if len(rows) > limit else None)

    async def decide(
        self,
        approval_id: str,
        state: State,
        by: str,
        reason: str | None,
        *,
        then: Callable[[Approval, AsyncConnection], Awaitable[None]] | None = None,
        result: dict[str, Any] | None = None,
    ) -> Approval:
        """Move a pending approval to ``state``; `AlreadyDecided` if it moved
        already. ``then`` writes what the decision sets in motion in the same
        transaction (the approved call's run): both happen, or neither.
        ``result`` is stored with the decision (a reviewer's answer)."""
        now = datetime.now(UTC)
        given = {"result": result} if result is not None else {}
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id, approvals.c.state == PENDING)
                .values(state=state, decided_at=now, decided_by=by, decision_reason=reason, **given)
            )
            if moved.rowcount and then is not None:
                query = select(approvals).where(approvals.c.id == approval_id)
                decided = (await conn.execute(query)).one()
                await then(approval_of(decided._asdict()), conn)
        approval = await self.get(approval_id)
        if not moved.rowcount:
            raise AlreadyDecided(approval)
        return approval

    async def reopen(self, approval_id: str, withdrawn_for: str) -> Approval | None:
        """Put back a request that was withdrawn for ``withdrawn_for`` (the
        run it belonged to was cancelled, and goes on again): pending, as if
        never decided. Anything else -- approved, rejected, withdrawn for
        another reason -- stays as it is (None)."""
        async with self._engine.begin() as conn:
            moved = await conn.execute(
                update(approvals)
                .where(
                    approvals.c.id == approval_id,
                    approvals.c.state == WITHDRAWN,
                    approvals.c.decision_reason == withdrawn_for,
                )
                .values(state=PENDING, decided_at=None, decided_by=None, decision_reason=None)
            )
        return await self.get(approval_id) if moved.rowcount else None

    async def claim(self, approval_id: str) -> bool:
        """Take an approved, not yet made call to make it (once, across replicas)."""
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                update(approvals)
                .where(
                    approvals.c.id == approval_id,
                    approvals.c.state == APPROVED,
                    approvals.c.outcome.is_(None),
                )
                .values(outcome="running")
            )
        return bool(taken.rowcount)

    async def finish(
        self, approval_id: str, outcome: str | None, result: dict[str, Any] | None = None
    ) -> None:
        """Record what the approved call did (None: give the claim back)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id)
                .values(
                    outcome=outcome,
                    result=result,
                    finished_at=datetime.now(UTC) if outcome is not None else None,
                )
            )

    async def result(self, approval_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            stored: dict[str, Any] | None = await conn.scalar(
                select(approvals.c.result).where(approvals.c.id == approval_id)
            )
        return stored

    # Audit --------------------------------------------------------------------

    async def audit(
        self,
        approval: Approval,
        event: str,
        outcome: str,
        detail: str | None,
        *,
        decision: Literal["allow", "deny"] = "allow",
        token_id: str | None = None,
    ) -> None:
        who = approval.requested_by
        await self._audit.record(
            AuditEvent(
                event=event,
                trace_id=approval.trace_id,
                subject=who.subject,
                subject_issuer=who.issuer,
                client_id=who.client_id,
                actors=tuple(who.actors),
                target=approval.target,
                action=approval.action,
                scopes_requested=None,
                scopes_granted=frozenset(),
                decision=decision,
                reasons=tuple(approval.reasons),
                outcome=outcome,
                detail=detail,
                latency_ms=0.0,
                token_id=token_id,
                decided_on=held_on(outcome, who.scopes, approval.action_kind),
            )
        )

    async def audit_request(self, approval: Approval, event: str) -> None:
        detail = f"approval {approval.id}: not called until an admin decides"
        await self.audit(approval, event, "approval_required", detail)

    async def audit_decision(self, approval: Approval) -> None:
        by = approval.decided_by or "?"
        detail = f"approval {approval.id} {approval.state} by {by}"
        if approval.reason:
            detail += f": {approval.reason}"
        outcome = approval.state
        decision: Literal["allow", "deny"] = "allow" if approval.state == APPROVED else "deny"
        await self.audit(approval, AUDIT_EVENT, outcome, detail[:2000], decision=decision)

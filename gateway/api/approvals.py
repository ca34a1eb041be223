"""`/approvals` (admin): calls held for a human's decision (`gateway.delegation.approvals`).

`GET /approvals` lists them, pending first (filters: `state`, `agent`,
`user`); `GET /approvals/{id}` shows one; `POST /approvals/{id}` with
``{"decision": "approve"|"reject", "reason": "..."}`` decides it -- once: a
second decision (or one after the requester withdrew) is 409. An agent's
question that a flow puts to a reviewer is approved with its answer
(``"answer": {"text": ...}`` or ``{"data": {...}}``), which goes to the agent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from gateway.agents.approvals import ApprovalDesk
from gateway.api.state import state_of
from gateway.delegation.approvals import (
    AlreadyDecided,
    Approval,
    ApprovalNotFound,
    ApprovalPage,
    Decision,
)
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem

router = APIRouter(prefix="/approvals", tags=["approvals"])


def _not_found(approval_id: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"no approval {approval_id}")


@router.get("", summary="Held calls, pending first, newest first within each")
async def list_approvals(
    request: Request,
    _: AdminPrincipal,
    state: Literal["pending", "approved", "rejected", "withdrawn"] | None = None,
    agent: str | None = None,
    user: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    # Bounded so the database never sees an OFFSET it cannot hold (SQLite and
    # asyncpg take 64 bits; no listing is anywhere near 2**31 rows).
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> ApprovalPage:
    return await state_of(request).approvals.approvals.list(
        state=state, target=agent, user=user, limit=limit, offset=offset
    )


@router.get("/{approval_id}", summary="One held call: who asked, for what, and why")
async def get_approval(request: Request, approval_id: str, _: AdminPrincipal) -> Approval:
    try:
        return await state_of(request).approvals.approvals.get(approval_id)
    except ApprovalNotFound:
        raise _not_found(approval_id) from None


@router.post("/{approval_id}", summary="Approve or reject a held call (once)")
async def decide_approval(
    request: Request, approval_id: str, decision: Decision, admin: AdminPrincipal
) -> Approval:
    desk = state_of(request).approvals
    if decision.decision == "approve" and await desk.waits_for_consent(approval_id):
        # Approved, it would be made without the user's account: refused again.
        raise Problem(
            409,
            "waits-for-consent",
            "Waits for the user's consent",
            f"approval {approval_id} is a call waiting for its user to connect their "
            "account at the agent; it goes once they do (it can be rejected)",
        )
    await _answer_fits(desk, approval_id, decision)
    answer = decision.answer.model_dump(exclude_none=True) if decision.answer else None
    try:
        return await desk.decide(
            approval_id, decision.decision == "approve", admin.subject, decision.reason, answer
        )
    except ApprovalNotFound:
        raise _not_found(approval_id) from None
    except AlreadyDecided as already:
        raise Problem(
            409,
            "already-decided",
            "Already decided",
            f"approval {approval_id} is already {already.approval.state}",
        ) from None


async def _answer_fits(desk: ApprovalDesk, approval_id: str, decision: Decision) -> None:
    """An agent's question is approved with its answer, and only it takes one."""
    if decision.answer is None and decision.decision == "reject":
        return
    try:
        held = await desk.approvals.get(approval_id)
    except ApprovalNotFound:
        raise _not_found(approval_id) from None
    if decision.answer is not None and decision.decision == "reject":
        raise Problem(422, "answer-with-reject", "An answer goes with approve", "reject it alone")
    if decision.answer is not None and not held.asks:
        raise Problem(
            422,
            "not-a-question",
            "Not a question",
            f"approval {approval_id} holds a call, not an agent's question: it takes no answer",
        )
    if decision.answer is None and held.asks:
        raise Problem(
            422,
            "answer-required",
            "Answer required",
            f"approval {approval_id} is an agent's question: approve it with an answer "
            '({"answer": {"text": ...}} or {"answer": {"data": {...}}})',
        )

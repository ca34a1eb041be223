"""`/ui/approvals`: calls held for a human's decision.

An admin sees the queue (`GET /approvals`'s own function), each call -- what
is asked, by whom, through which chain, why it was held -- and approves or
rejects it with a reason through `POST /approvals/{id}`'s function: the desk
then makes the held call (or ends its task), exactly as over the API. An
agent's question a flow puts to a reviewer is approved with an answer.

Anyone else sees only their own approvals and their state: an approval's
owner is its requester's subject *and* issuer, as a task's is
(`Approval.owner`); another user's is "not found", like their tasks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from gateway.api import approvals as approvals_api
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    page,
    posted,
    redirect,
    require_admin,
)
from gateway.delegation.approvals import Approval, ApprovalNotFound, Decision, GivenAnswer
from gateway.delegation.tasks import Owner
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal

router = APIRouter(prefix=PREFIX + "/approvals", route_class=ConsoleRoute, include_in_schema=False)
StateFilter = Literal["pending", "approved", "rejected", "withdrawn"]
PAGE = 50
OWN_LIMIT = 200


async def own_approvals(
    request: Request, principal: Principal, state: str | None = None
) -> list[Approval]:
    """A non-admin's own approvals (newest first within each state), the most recent."""
    store = request.app.state.switchboard.approvals.approvals
    found = await store.list(state=state, user=principal.subject, limit=OWN_LIMIT)
    mine = Owner(principal.subject, principal.issuer)
    return [a for a in found.items if a.owner == mine]


@router.get("")
async def approvals_page(
    request: Request,
    state: Annotated[StateFilter | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    user = await current_user(request)
    principal = user.principal()
    if principal.has_scope(ADMIN_SCOPE):
        found = await approvals_api.list_approvals(
            request, principal, state=state, limit=PAGE, offset=offset
        )
        items, next_offset = found.items, found.next_offset
    else:
        items, next_offset = await own_approvals(request, principal, state), None
    return page(
        request,
        user,
        "approvals.html",
        items=items,
        state=state,
        next_offset=next_offset,
        states=["pending", "approved", "rejected", "withdrawn"],
    )


@router.get("/{approval_id}")
async def approval_page(request: Request, approval_id: str) -> Response:
    user = await current_user(request)
    approval = await _visible(request, user.principal(), approval_id)
    return page(request, user, "approval.html", approval=approval, asked=_asked(approval.request))


@router.post("/{approval_id}")
async def decide(request: Request, approval_id: str) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    said = str(form.get("answer") or "").strip()
    try:
        decision = Decision(
            decision=form.get("decision", ""),
            reason=form.get("reason") or None,
            # An agent's question is approved with its answer (the API says
            # when one is missing, or given to anything else).
            answer=GivenAnswer(text=said) if said and form.get("decision") == "approve" else None,
        )
    except ValidationError:
        raise ConsoleError(
            422,
            "Choose approve or reject (a reason of at most 2000 characters, "
            "an answer of at most 16000)",
        ) from None
    await approvals_api.decide_approval(request, approval_id, decision, user.principal())
    return redirect(f"{PREFIX}/approvals/{approval_id}")


async def _visible(request: Request, principal: Principal, approval_id: str) -> Approval:
    if principal.has_scope(ADMIN_SCOPE):
        return await approvals_api.get_approval(request, approval_id, principal)
    approval: Approval | None
    try:
        approval = await request.app.state.switchboard.approvals.approvals.get(approval_id)
    except ApprovalNotFound:
        approval = None
    if approval is None or approval.owner != Owner(principal.subject, principal.issuer):
        raise ConsoleError(404, "Not found", f"no approval {approval_id}")
    return approval


def _asked(request: dict[str, Any]) -> list[str]:
    """The text a person reads of what was asked: the message's text parts, or
    the tool's arguments (the whole request is shown below it as JSON)."""
    message = request.get("message")
    if isinstance(message, dict):
        parts = message.get("parts")
        if isinstance(parts, list):
            texts = [
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
            if texts:
                return texts
    return []

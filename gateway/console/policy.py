"""`/ui/policy` (admins): the policy in force, editing it, and "may this
user, through this chain, call this skill?".

All through the API's own functions: the page shows what `GET /policies`
returns (where the policy comes from, its document and digest, the last
reload error); **Check** runs `POST /policies/check`'s (the problems by line,
or the diff against the policy in force; nothing saved) and, for a valid
text, `POST /policies/whatif`'s over the last 7 days' decisions, **Save** `PUT
/policies`' with the digest the page was drawn from as its base -- a policy
saved meanwhile by someone else is a 409, shown with the diff against the
one now in force, the admin's text kept; and the explain form runs `POST
/policies/explain`'s -- the very decision a delegation would run
(`switchboard policy explain` asks the same), counting nothing, calling
nothing, minting nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from gateway.api import policies as policies_api
from gateway.api import policy_edits, policy_whatif
from gateway.console.diffs import marked
from gateway.console.sessions import ConsoleUser
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    field_errors,
    page,
    posted,
    redirect,
    require_admin,
)
from gateway.http.problems import Problem

router = APIRouter(prefix=PREFIX + "/policy", route_class=ConsoleRoute, include_in_schema=False)
KINDS = ("skill", "tool", "resource", "prompt")


@router.get("")
async def policy_page(request: Request) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    saved = request.query_params.get("saved", "")
    return await _render(request, user, {}, None, saved=saved if saved.isdigit() else "")


@router.post("/explain")
async def explain(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    try:
        body = policies_api.ExplainRequest(
            subject=form.get("subject") or "explain",
            user_scopes=form.get("scopes", ""),
            chain=form.get("chain", "").replace(",", " ").split(),
            target=form.get("target", "").strip(),
            action=form.get("action", "").strip() or None,
            kind=form.get("kind", "skill"),
        )
    except ValidationError as exc:
        said = "; ".join(field_errors(exc, "question"))
        raise ConsoleError(422, "The question cannot be asked", said) from None
    answer = await policies_api.explain(request, body, user.principal())
    return await _render(request, user, form, answer)


@router.post("/check")
async def check(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    text = form.get("document", "")
    checked = await policy_edits.check_policy(request, _text(text), user.principal())
    edit = _edit(text, form.get("base_digest", ""), checked)
    if checked["valid"]:
        # The last 7 days' decisions replayed under the text: its first page
        # (`POST /policies/whatif`'s; the CLI goes through a larger window).
        asked = policy_whatif.WhatIfRequest(document=text)
        edit["whatif"] = await policy_whatif.whatif(request, asked, user.principal())
    return await _render(request, user, {}, None, edit=edit)


@router.post("/save")
async def save(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    text, base = form.get("document", ""), form.get("base_digest", "")
    try:
        body = policy_edits.PolicyEdit(document=text, base_digest=base)
    except ValidationError as exc:
        raise ConsoleError(422, "The policy was not saved", _said(exc)) from None
    try:
        saved = await policy_edits.put_policy(request, body, user.principal())
    except Problem as refused:
        if refused.slug not in ("invalid-policy", "policy-changed"):
            raise
        # The text stays on the page: what is wrong with it, or -- saved over
        # meanwhile -- what it would change against the policy now in force.
        checked = await policy_edits.check_policy(request, _text(text), user.principal())
        edit = _edit(text, base, checked, refused)
        return await _render(request, user, {}, None, edit=edit, status=refused.status)
    return redirect(f"{PREFIX}/policy?saved={saved['version']}")


def _said(exc: ValidationError) -> str:
    return "; ".join(field_errors(exc, "document"))


def _text(text: str) -> policy_edits.PolicyText:
    try:
        return policy_edits.PolicyText(document=text)
    except ValidationError as exc:
        raise ConsoleError(422, "The policy cannot be checked", _said(exc)) from None


def _edit(
    text: str, base: str, checked: dict[str, Any], refused: Problem | None = None
) -> dict[str, Any]:
    """What the edit form shows after a check or a refused save."""
    stale = refused is not None and refused.slug == "policy-changed"
    return {
        "text": text,
        # After "changed meanwhile" the diff shown is against the policy now in
        # force: saving again, having seen it, replaces that one.
        "base": checked.get("base_digest", base) if stale else base,
        "stale": stale,
        "valid": checked["valid"],
        "errors": checked.get("errors", []),
        "diff": marked(checked.get("diff", [])),
        "effect": bool(checked.get("effect")),
    }


async def _render(
    request: Request,
    user: ConsoleUser,
    asked: dict[str, str],
    answer: dict[str, Any] | None,
    *,
    edit: dict[str, Any] | None = None,
    saved: str = "",
    status: int = 200,
) -> Response:
    current = await policies_api.current_policy(request, user.principal())
    text = yaml.safe_dump(current["policy"], sort_keys=False) if current["policy"] else "{}\n"
    return page(
        request,
        user,
        "policy.html",
        status,
        current=current,
        text=text,
        asked=asked,
        answer=answer,
        kinds=KINDS,
        edit=edit or {"text": current["document"], "base": current["digest"]},
        saved=saved,
    )

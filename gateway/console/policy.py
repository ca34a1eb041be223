"""`/ui/policy` (admins): the policy in force, and "may this user, through this
chain, call this skill?".

Both through `gateway.api.policies`' own functions: the page shows what
`GET /policies` returns (the file, its last reload error, the policy as
parsed), and the explain form runs `POST /policies/explain`'s function -- the
very decision a delegation would run (`switchboard policy explain` asks the
same), counting nothing, calling nothing, minting nothing.
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from gateway.api import policies as policies_api
from gateway.console.sessions import ConsoleUser
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    page,
    posted,
    require_admin,
)

router = APIRouter(prefix=PREFIX + "/policy", route_class=ConsoleRoute, include_in_schema=False)
KINDS = ("skill", "tool", "resource", "prompt")


@router.get("")
async def policy_page(request: Request) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    return await _render(request, user, {}, None)


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
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConsoleError(422, "The question cannot be asked", problems) from None
    answer = await policies_api.explain(request, body, user.principal())
    return await _render(request, user, form, answer)


async def _render(
    request: Request, user: ConsoleUser, asked: dict[str, str], answer: dict[str, Any] | None
) -> Response:
    current = await policies_api.current_policy(request, user.principal())
    text = yaml.safe_dump(current["policy"], sort_keys=False) if current["policy"] else "{}\n"
    return page(
        request,
        user,
        "policy.html",
        current=current,
        text=text,
        asked=asked,
        answer=answer,
        kinds=KINDS,
    )

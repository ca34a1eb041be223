"""`/ui/vendor-agents`: admins register a gateway-run agent (OpenAI-compatible
or a REST webhook, docs/adapters.md) from its registration document.

The document is `POST /vendor-agents`' body, typed as YAML or JSON; the API
key goes in a field of its own (a password input, stored sealed and never
shown again) rather than in the document, so that a refused form can be
shown back with the document and without the key. A refusal names each
field as the API does (`VendorRegistration`'s checks, then the gateway's:
the upstream's URL against the SSRF policy, a mapping that compiles, a
settings secret that exists), and the page keeps what was typed. Removal is
the agent page's **Remove** (`DELETE /agents/{id}`, which takes a gateway-run
agent too).
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from gateway.api import vendor_agents as vendor_api
from gateway.console.sessions import ConsoleUser
from gateway.console.web import (
    PREFIX,
    ConsoleRoute,
    current_user,
    field_errors,
    page,
    posted,
    redirect,
    refusal_lines,
    require_admin,
)
from gateway.http.problems import Problem
from registry.store import AgentConflict
from registry.vendor_models import VendorRegistration

router = APIRouter(
    prefix=PREFIX + "/vendor-agents", route_class=ConsoleRoute, include_in_schema=False
)
MAX_DOCUMENT = 64 * 1024  # a registration is a few hundred bytes; 64 KiB is generous
MAX_API_KEY = 4096  # vendors' keys are tens to hundreds of characters
EXAMPLE = """\
id: support-bot
name: Support bot
description: Answers support questions.
upstream:
  type: openai
  base_url: https://api.openai.com/v1
  model: gpt-4o-mini
  system_prompt: You are a terse support agent.
skills:
  - id: answer
    name: Answer
    description: Answer a question
    idempotent: true
timeout_seconds: 60
"""


@router.get("")
async def vendor_form(request: Request) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    return _form(request, user, EXAMPLE, [])


@router.post("")
async def register(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    document = form.get("document", "")
    try:
        body = _read(document)
        if len(form.get("api_key", "")) > MAX_API_KEY:
            raise _Unreadable(f"api_key: longer than {MAX_API_KEY} characters")
        if form.get("api_key"):
            body["api_key"] = form["api_key"]
        registration = VendorRegistration.model_validate(body)
    except _Unreadable as exc:
        line = str(exc) if str(exc).startswith("api_key") else f"document: {exc}"
        return _form(request, user, document, [line])
    except ValidationError as exc:
        return _form(request, user, document, field_errors(exc, "document"))
    try:
        record = await vendor_api.register_vendor_agent(
            request, Response(), registration, user.principal()
        )
    except Problem as refused:
        if refused.status != 422 and refused.status != 409:
            raise
        return _form(request, user, document, refusal_lines(refused), status=refused.status)
    except AgentConflict as taken:  # the API's 409: an id or address already registered
        return _form(request, user, document, [f"id: taken ({taken})"], status=409)
    return redirect(f"{PREFIX}/agents/{record.id}")


class _Unreadable(ValueError):
    pass


def _read(document: str) -> dict[str, Any]:
    if len(document.encode()) > MAX_DOCUMENT:
        raise _Unreadable(f"over {MAX_DOCUMENT} bytes")
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError as exc:
        raise _Unreadable(f"not YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Unreadable("a mapping of the registration's fields (id, name, upstream, skills)")
    return data


def _form(
    request: Request, user: ConsoleUser, document: str, errors: list[str], status: int = 200
) -> Response:
    return page(
        request,
        user,
        "vendor_agent_form.html",
        status=422 if errors and status == 200 else status,
        document=document,
        errors=errors,
    )

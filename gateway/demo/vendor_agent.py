"""The vendor's A2A agent: an agent on the official a2a-sdk that trusts only
the vendor's own OAuth logins (`gateway.demo.vendor`), at ``{vendor}/agent/``.

Its card says so the A2A way (A2A 1.0 §4.5): an OAuth 2.0 scheme with an
authorization-code flow at the vendor's authorization server, required by
every call (`securityRequirements`). Every request but the card's needs a
bearer token that server issued, for this agent (RFC 8707: a token with
another `resource` is refused) -- else 401 with ``WWW-Authenticate``
(RFC 6750 §3). Skill ``whoami`` answers with a task (working, then
completed) whose artifact names the vendor user the token speaks for; every
call is recorded in the vendor's `calls` as ``{"tool": "agent", ...}``.
"""

from __future__ import annotations

import contextvars
import json
import time
from dataclasses import dataclass
from typing import Any

from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    AuthorizationCodeOAuthFlow,
    OAuth2SecurityScheme,
    OAuthFlows,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from google.protobuf.json_format import MessageToDict
from mcp.server.auth.provider import AccessToken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class VendorSide:
    """What the agent shares with its vendor: the authorization server's URL
    and scopes, the access tokens it issued, and the record of calls."""

    url: str
    scopes: tuple[str, ...]
    access: dict[str, AccessToken]
    calls: list[dict[str, Any]]


PATH = "/agent"
OPEN_PATH = "/open-agent"  # the same agent taking any bearer token (benchmarks' baseline)
SCHEME = "vendor_oauth"
_token: contextvars.ContextVar[AccessToken | None] = contextvars.ContextVar(
    "vendor_agent_token", default=None
)


def agent_card(vendor: VendorSide, path: str = PATH) -> AgentCard:
    url = vendor.url + path + "/"
    flow = AuthorizationCodeOAuthFlow(
        authorization_url=vendor.url + "/authorize",
        token_url=vendor.url + "/token",
        scopes={scope: scope for scope in vendor.scopes},
        pkce_required=True,
    )
    return AgentCard(
        name="Vendor agent",
        description="Answers as the vendor user your token speaks for.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="whoami", name="Who am I", description="Names you.", tags=["id"]),
            AgentSkill(
                id="write", name="Write", description="Writes (needs notes:write).", tags=["id"]
            ),
        ],
        security_schemes={
            SCHEME: SecurityScheme(
                oauth2_security_scheme=OAuth2SecurityScheme(
                    flows=OAuthFlows(authorization_code=flow),
                    oauth2_metadata_url=vendor.url + "/.well-known/oauth-authorization-server",
                )
            )
        },
        security_requirements=[
            SecurityRequirement(schemes={SCHEME: StringList(list=["notes:read"])})
        ],
    )


class _Executor(AgentExecutor):
    def __init__(self, vendor: VendorSide) -> None:
        self.vendor = vendor

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        token = _token.get()
        assert token is not None, "the agent let an unauthenticated call through"
        self.vendor.calls.append(
            {
                "tool": "agent",
                "subject": token.subject,
                "scopes": list(token.scopes),
                "client_id": token.client_id,
                "token": token.token,
            }
        )
        task = context.current_task or new_task_from_user_message(message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        metadata = MessageToDict(message.metadata) if message.HasField("metadata") else {}
        skill = metadata.get("skill", "whoami")
        said = f"{token.subject} wrote" if skill == "write" else f"you are {token.subject}"
        await updater.add_artifact([new_text_part(said)], name=str(skill))
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_app(vendor: VendorSide, path: str = PATH) -> ASGIApp:
    """The agent, its bearer check in front (mounted at `PATH`). At
    `OPEN_PATH`: the same agent, whose card asks for nothing and which takes
    any bearer token (the gateway's minted one) -- what a benchmark compares
    a connected account against."""
    card = agent_card(vendor, path)
    if path == OPEN_PATH:
        card.ClearField("security_schemes")
        card.ClearField("security_requirements")
    handler = DefaultRequestHandler(
        agent_executor=_Executor(vendor), task_store=InMemoryTaskStore(), agent_card=card
    )
    inner = Starlette(
        routes=create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
    )
    resource = vendor.url + path

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").endswith("agent-card.json"):
            await inner(scope, receive, send)
            return
        header = Request(scope).headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        found = vendor.access.get(value) if scheme.lower() == "bearer" else None
        if path == OPEN_PATH and value:
            found = AccessToken(token=value, client_id="gateway", scopes=[], subject="gateway")
        if found is not None and found.expires_at is not None and found.expires_at < time.time():
            found = None
        if found is not None and found.resource not in (None, resource, resource + "/"):
            found = None  # issued for another resource (RFC 8707)
        if found is None:
            refusal: Any = JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await refusal(scope, receive, send)
            return
        body, replay = await read_body(receive)
        if "notes:write" not in found.scopes and _skill_of(body) == "write":
            # RFC 6750 §3.1: the token is good, its scope is not enough.
            challenge = 'Bearer error="insufficient_scope", scope="notes:read notes:write"'
            refusal = JSONResponse(
                {"error": "insufficient_scope"},
                status_code=403,
                headers={"WWW-Authenticate": challenge},
            )
            await refusal(scope, receive, send)
            return
        reset = _token.set(found)
        try:
            await inner(scope, replay, send)
        finally:
            _token.reset(reset)

    return app


def _skill_of(body: bytes) -> Any:
    try:
        request = json.loads(body)
        return request["params"]["message"]["metadata"]["skill"]
    except (ValueError, KeyError, TypeError):
        return None


async def read_body(receive: Receive) -> tuple[bytes, Receive]:
    """A request's whole body, and a `receive` that hands it on again."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay

"""An official-SDK A2A agent that records every request it receives.

Tests use it to look at what actually crossed the wire to an upstream: the
headers (is the user's token there? what does the minted token say?), the
query string and the body. It verifies tokens the way a real downstream agent
would: with PyJWT (not our code) against the gateway's published JWKS.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCard, AgentInterface
from google.protobuf.json_format import ParseDict
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.tls import client_tls
from tests.support.agents import EchoExecutor
from tests.support.servers import ServerThread


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    @property
    def trace(self) -> tuple[str, str, str] | None:
        """(trace id, span id, flags) of the `traceparent` received, which must
        be one the gateway made (W3C version 00, lowercase hex, a span id not
        all zeros); None if none came."""
        value = self.headers.get("traceparent")
        if value is None:
            return None
        match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])", value)
        assert match is not None, f"not a traceparent the gateway makes: {value!r}"
        trace_id, span_id, flags = match.groups()
        assert trace_id != "0" * 32 and span_id != "0" * 16, value
        return trace_id, span_id, flags

    def contains(self, needle: str) -> bool:
        raw = needle.encode()
        return (
            raw in self.body
            or raw in self.query
            or any(needle in k or needle in v for k, v in self.headers.items())
        )


async def buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read a request's whole body; returns it and a `receive` that replays it,
    so middleware can look at the body and still pass the request on."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Cleared: every POST, once seen, waits until it is set again (a call
    # kept in flight for as long as a test needs).
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            body, replay = await buffered(receive)
            with self.lock:
                self.seen.append(
                    Seen(
                        method=scope["method"],
                        path=scope["path"],
                        query=scope.get("query_string", b""),
                        headers={
                            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                        },
                        body=body,
                    )
                )
            if scope["method"] == "POST" and not self.gate.is_set():
                await asyncio.to_thread(self.gate.wait)  # set by the test's thread
            await app(scope, replay, send)

        return wrapped

    def clear(self) -> None:
        """Forget what was seen (a test sharing the agent starts from nothing)."""
        with self.lock:
            self.seen.clear()

    def calls(self) -> list[Seen]:
        """The A2A calls (POSTs), not card fetches."""
        with self.lock:
            return [s for s in self.seen if s.method == "POST"]


def agent_card(
    name: str,
    url: str,
    skills: list[dict[str, Any]],
    *,
    scopes: list[str] | None = None,
) -> AgentCard:
    """A 1.0 card; ``scopes`` become an OAuth security requirement on the card."""
    document: dict[str, Any] = {
        "name": name,
        "description": f"{name} for the delegation tests.",
        "version": "1.0.0",
        "capabilities": {"streaming": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {"description": s.get("name", s["id"]), "tags": ["test"], "name": s["id"], **s}
            for s in skills
        ],
    }
    if scopes is not None:
        document["securitySchemes"] = {
            "gateway": {
                "oauth2SecurityScheme": {
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "https://gateway.example/oauth/token",
                            "scopes": {s: s for s in scopes},
                        }
                    }
                }
            }
        }
        document["securityRequirements"] = [{"schemes": {"gateway": {"list": scopes}}}]
    card: AgentCard = ParseDict(document, AgentCard())
    card.supported_interfaces.append(
        AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
    )
    return card


def inspecting_agent(card_for: Any) -> tuple[ServerThread, Recorder]:
    """Start an SDK agent whose card is ``card_for(base_url)``; returns it and its recorder."""
    recorder = Recorder()

    def build(url: str) -> ASGIApp:
        card = card_for(url)
        handler = DefaultRequestHandler(
            agent_executor=EchoExecutor(), task_store=InMemoryTaskStore(), agent_card=card
        )
        routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, rpc_url="/")
        return recorder.middleware(Starlette(routes=routes))

    return ServerThread(build).start(), recorder


def verify_as_downstream(
    token: str, gateway_url: str, audience: str, *, delegated: bool = True
) -> dict[str, Any]:
    """What a downstream agent does: fetch the gateway's JWKS, verify with PyJWT.
    A delegated token must carry `act`; the gateway's own calls (to a push
    webhook) carry none."""
    header = jwt.get_unverified_header(token)
    jwks = httpx.get(gateway_url + "/.well-known/jwks.json", timeout=10, verify=client_tls()).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert header["typ"] == "at+jwt"
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience=audience,
        issuer=gateway_url,
        options={
            "require": ["iss", "sub", "aud", "exp", "iat", "jti", "scope"]
            + (["act"] if delegated else [])
        },
    )
    return claims


def send_message_body(text: str, request_id: str = "1") -> dict[str, Any]:
    """An A2A 1.0 JSON-RPC SendMessage request."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": f"m-{request_id}",
                "role": "ROLE_USER",
                "parts": [{"text": text}],
            }
        },
    }

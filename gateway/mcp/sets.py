"""Virtual MCP servers at `/mcp/{name}`: one curated set of what `/mcp` offers
(`registry.mcp_sets`).

A set's endpoint is `/mcp` itself -- the same SDK server, sessions, fast
path and handlers -- behind `SetScope`, which finds the set named in the
path and puts it in `current_set` for the request's handlers (the SDK copies
the sender's context into a message's handler task, so a 2025-11-25
session's messages see it too). The handlers then offer only what the set
selects, and a call, read or prompt outside it is answered as one for a name
that does not exist: a set is a curation, the caller's policy still decides
inside it. `initialize` and `server/discover` answer with the set's own
title, description, instructions and icon (`identity`).

Sets are read through `SetCache`: at most ``ttl`` seconds old on another
replica, at once on the one that changed them. `unknown_tools` is what a
set's definition is checked against: a tool named exactly must be one that
something registered offers (or may offer, once its tools are known).
"""

from __future__ import annotations

import contextvars
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.cards import card_skills
from registry.mcp_models import McpServerRecord
from registry.mcp_names import cut_hashed, gateways, owner_of, skill_tool_name
from registry.mcp_sets import SET_NAME_PATTERN, McpSet, SqlMcpSets
from registry.store import SqlAgentStore

SET_KEY = "switchboard.mcp_set"
_KEPT = 4096  # sets, and names that are none, kept each
_NAME = re.compile(SET_NAME_PATTERN)

current_set: contextvars.ContextVar[McpSet | None] = contextvars.ContextVar(
    "switchboard_mcp_set", default=None
)


def set_path_name(path: str) -> str | None:
    """The set a request path names (`/mcp/{name}`), if it names one validly."""
    prefix = "/mcp/"
    if not path.startswith(prefix):
        return None
    name = path[len(prefix) :]
    return name if _NAME.fullmatch(name) else None


async def unknown_tools(
    names: Iterable[str],
    servers: list[McpServerRecord],
    agents: SqlAgentStore,
    gateway_tools: frozenset[str],
) -> list[str]:
    """The tools of ``names`` -- exact names; a pattern (``crm__*``) may match
    tools yet to come, and is not checked -- that nothing registered offers:
    not an MCP server's stored tool (in any state), an agent's skill, nor one
    of ``gateway_tools``. A server none of whose tools is known yet (a
    ``user_oauth`` server waiting for its registrant's connection) may offer
    any name of its own, ``{id}__...`` -- or, registered with
    ``prefix_tools: false``, any plain name: those are taken on trust."""
    stored = {tool.namespaced for server in servers for tool in server.tools}
    unlisted = [server for server in servers if not server.tools]
    unknown: list[str] = []
    for name in names:
        if any(c in name for c in "*?[") or name in stored or name in gateway_tools:
            continue
        if gateways(name) or not await _may_be_unlisted_or_skill(name, unlisted, agents):
            unknown.append(name)
    return unknown


async def _may_be_unlisted_or_skill(
    name: str, unlisted: list[McpServerRecord], agents: SqlAgentStore
) -> bool:
    owner = owner_of(name)
    if any(
        owner == server.id
        or (owner is None and not server.prefix_tools)
        or (cut_hashed(name) and name.startswith(server.id))
        for server in unlisted
    ):
        return True
    if owner is not None:
        candidates = [owner]
    elif cut_hashed(name):
        candidates = await agents.ids_starting(name[: name.rindex("_")])
    else:
        return False
    for agent_id in candidates:
        card = await agents.card(agent_id)
        if card and any(skill_tool_name(agent_id, s["id"]) == name for s in card_skills(card)):
            return True
    return False


class SetCache:
    def __init__(self, store: SqlMcpSets, ttl: float = 2.0) -> None:
        self.store = store
        self._ttl = ttl
        self._kept: dict[str, tuple[float, McpSet | None]] = {}
        self._missing: dict[str, tuple[float, McpSet | None]] = {}
        # Told the name of a set changed on this replica (the MCP front end
        # tells that set's clients their lists changed).
        self.listeners: list[Callable[[str], None]] = []

    async def get(self, name: str) -> McpSet | None:
        now = time.monotonic()
        kept = self._kept.get(name) or self._missing.get(name)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        found = await self.store.get(name)
        # Names that are no set (anyone may ask: a well-known URL) are kept
        # apart, so guessing cannot push the sets themselves out.
        into = self._kept if found is not None else self._missing
        if len(into) >= _KEPT:
            into.clear()
        into[name] = (now, found)
        return found

    def changed(self, name: str) -> None:
        """A set was defined, replaced or removed here: read it again, and
        tell its clients (`listeners`) -- at once on this replica."""
        self._kept.pop(name, None)
        self._missing.pop(name, None)
        for listener in self.listeners:
            listener(name)


class SetScope:
    """ASGI: the set `/mcp/{name}` names, for the handlers; 404 (JSON) for
    none. Inside `McpAuth`: the endpoint answers no unauthenticated caller
    (whether a set exists is public all the same: its protected resource
    metadata is, RFC 9728)."""

    def __init__(self, app: ASGIApp, sets: Callable[[], SetCache | None]) -> None:
        """``sets``: the cache, once the app has started (None before)."""
        self.app = app
        self.sets = sets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = set_path_name(scope.get("path", ""))
        cache = self.sets()
        found = await cache.get(name) if name is not None and cache is not None else None
        if found is None:
            missing = JSONResponse(
                {
                    "type": "urn:switchboard:problem:not-found",
                    "title": "No such MCP server",
                    "status": 404,
                    "detail": "no such virtual MCP server is served here",
                },
                status_code=404,
                media_type="application/problem+json",
            )
            await missing(scope, receive, send)
            return
        scope[SET_KEY] = found
        token = current_set.set(found)
        try:
            await self.app(scope, receive, send)
        finally:
            current_set.reset(token)


class SessionPaths:
    """ASGI: a 2025-11-25 session answers only at the path it was opened at
    (`/mcp`, or one virtual server's): its id used at another path is a
    session not found there, as the SDK says for an unknown one. Without
    this, a token good for one set only could resume, listen on or end a
    session of `/mcp` (the SDK knows a session's user, not its path).

    The path is learned from the answer that hands the session its id, on
    the replica that holds the session (a request for it on another one is
    forwarded there, `gateway.mcp.replicas`, and checked on arrival)."""

    def __init__(self, app: ASGIApp, kept: int = 100_000) -> None:
        self.app = app
        self._opened: OrderedDict[bytes, str] = OrderedDict()
        self._kept = kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        here = set_path_name(scope.get("path", "")) or ""
        session = next((v for k, v in scope["headers"] if k == _SESSION_HEADER), None)
        if session is not None:
            opened = self._opened.get(session)
            if opened is not None and opened != here:
                await _not_found(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        async def learning(message: Message) -> None:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", ()):
                    if key.lower() == _SESSION_HEADER:
                        self._opened[bytes(value)] = here
                        while len(self._opened) > self._kept:
                            self._opened.popitem(last=False)
            await send(message)

        await self.app(scope, receive, learning)


_SESSION_HEADER = b"mcp-session-id"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "Session not found"},
    }
    await JSONResponse(body, status_code=404)(scope, receive, send)

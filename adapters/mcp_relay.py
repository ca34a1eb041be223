"""What an upstream MCP server asks of the caller mid-call, routed to that caller.

The gateway's upstream sessions are shared by every caller, so anything the
server sends *during* a call -- a question for the user (`elicitation/create`),
a completion from the user's model (`sampling/createMessage`), the user's
roots (`roots/list`), a log line (`notifications/message`) -- has to reach the
one downstream request that caused it, and nobody else.

The SDK makes that possible without guessing: its Streamable HTTP client
reads a request's response stream in a task spawned from the caller's context,
and hands every message it reads to the session with that context
(`mcp.shared._context_streams`), so the client callbacks below run with the
caller's context variables. `CALL_RELAY`, set around one upstream call, is
therefore the caller's own relay. On 2025-11-25 a server sends those
requests on the call's stream (with ``related_request_id``), MCP 2025-11-25
"Transports" (Streamable HTTP, "Sending Messages to the Server" 5-6); a
request sent anywhere else -- the standalone GET stream, or over stdio, whose
single reader task is no caller's -- finds no relay and is refused, never
guessed at.

On 2026-07-28 connections the same relay supplies the caller's declared
client capabilities (`upstream_capabilities`), stamped into each request's
``_meta`` instead of the gateway's own, so a server asks (in an
`InputRequiredResult`) only what this caller's client can answer (MCP
2026-07-28 "Multi round-trip requests": servers MUST NOT rely on capabilities
the client has not declared).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol

import mcp_types as types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp_types import CLIENT_CAPABILITIES_META_KEY, INVALID_REQUEST

logger = logging.getLogger(__name__)


class CallRelay(Protocol):
    """The downstream side of one upstream call (`gateway.mcp_relay`)."""

    def upstream_capabilities(self) -> dict[str, Any]:
        """The caller's client capabilities the gateway can carry back to it."""
        ...

    def log_level(self) -> types.LoggingLevel | None:
        """The lowest level of log line the caller wants from this call (None: none)."""
        ...

    async def elicit(
        self, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData: ...

    async def sample(
        self, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData: ...

    async def list_roots(self) -> types.ListRootsResult | types.ErrorData: ...

    async def log(self, params: types.LoggingMessageNotificationParams) -> None: ...


# The relay of the call being made now, set around one upstream call.
CALL_RELAY: ContextVar[CallRelay | None] = ContextVar("mcp_call_relay", default=None)


@contextlib.contextmanager
def relaying(relay: CallRelay | None) -> Iterator[None]:
    token = CALL_RELAY.set(relay)
    try:
        yield
    finally:
        CALL_RELAY.reset(token)


def _nobody_to_ask(what: str) -> types.ErrorData:
    return types.ErrorData(
        code=INVALID_REQUEST,
        message=f"{what} is only relayed on the stream of the call that needs it; "
        "this request belongs to no call the gateway is making",
    )


async def on_elicitation(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult | types.ErrorData:
    relay = CALL_RELAY.get()
    return await relay.elicit(params) if relay is not None else _nobody_to_ask("elicitation")


async def on_sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
    relay = CALL_RELAY.get()
    return await relay.sample(params) if relay is not None else _nobody_to_ask("sampling")


async def on_list_roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
    relay = CALL_RELAY.get()
    return await relay.list_roots() if relay is not None else _nobody_to_ask("roots/list")


async def on_log(params: types.LoggingMessageNotificationParams) -> None:
    relay = CALL_RELAY.get()
    if relay is not None:
        await relay.log(params)
    # A log line tied to no call (the server's own chatter) has no one to go to.


Stamp = Callable[[dict[str, Any], Any], None]


def stamp_caller_capabilities(session: ClientSession) -> bool:
    """Make a 2026-07-28 session stamp the caller's capabilities, not its own.

    The SDK stamps one fixed set into every request's ``_meta`` (the
    callbacks this client registered), and a ``_meta`` passed to a call
    cannot override that key. So the session's stamp is wrapped: after the
    SDK's, the key is replaced with the current relay's capabilities, or
    with none for the gateway's own requests (listings, probes), which can
    answer no question. Returns False (and forwards nothing) if this SDK's
    session has no stamp to wrap; `tests/test_mcp_relay.py` notices.
    """
    inner: Stamp | None = getattr(session, "_stamp", None)
    if inner is None:
        logger.warning("this mcp SDK has no request stamp; callers' capabilities are not forwarded")
        return False

    def stamp(data: dict[str, Any], opts: Any) -> None:
        inner(data, opts)
        meta = (data.get("params") or {}).get("_meta")
        if isinstance(meta, dict) and CLIENT_CAPABILITIES_META_KEY in meta:
            relay = CALL_RELAY.get()
            meta[CLIENT_CAPABILITIES_META_KEY] = (
                relay.upstream_capabilities() if relay is not None else {}
            )

    session._stamp = stamp
    return True

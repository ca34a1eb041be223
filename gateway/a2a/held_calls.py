"""A door's endpoint whose call stays open until its response is sent.

The A2A door admits a call (`gateway.a2a.admit.admit_call`: decided and
minted by the core, `Delegate.open`) before the SDK's dispatcher serves it,
and a streamed answer is made while its response is sent, after the endpoint
returned. So the call is held open by the route itself, an ASGI app around
the endpoint: it closes once the response went out, or with whatever ended it
(an error sending it, say). A stream, once started, writes the call's record
itself whenever its reader closes it (`Delegate.stream`); the held call
records only an end nothing else recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

HeldEndpoint = Callable[[Request, AsyncExitStack], Awaitable[Response]]


class HeldCall:
    """An ASGI app serving ``endpoint``, whose calls it holds open in an exit
    stack of the request's until the response is sent (as Starlette's own
    request-response wrapper serves a plain endpoint)."""

    def __init__(self, endpoint: HeldEndpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        async with AsyncExitStack() as held:
            response = await self.endpoint(request, held)
            await response(scope, receive, send)

"""A2A requests without tenants: one agent per URL."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from a2a.server.request_handlers.request_handler import (
    RequestHandler,
)

RequestHandlerT = TypeVar("RequestHandlerT", bound=RequestHandler)


def without_tenants(cls: type[RequestHandlerT]) -> type[RequestHandlerT]:
    """Clear `tenant` from every request before the handler sees it: in its
    A2A operations (`on_*`, the request first) and in the plain operations a
    flow's step calls (`AgentOperations.message` and `stream_message`, the
    request after the admission).

    The gateway serves one agent per URL and has no tenants. The SDK's REST
    client transport puts a request's tenant into the upstream *path*
    (`/{tenant}/message:send`), so a caller-chosen tenant would pick a path on
    the agent's host (or another tenant of a multi-tenant agent) that the
    gateway's decision never covered.
    """
    # Every operation the class answers, its own or a base's (a mixin's, say:
    # `gateway.agents.push_configs`), each wrapped once.
    for name in dir(cls):
        method = getattr(cls, name)
        at = 1 if name in PLAIN else 0 if name.startswith("on_") else None
        if at is None or not callable(method) or getattr(method, CLEARED, False):
            continue
        setattr(cls, name, _tenant_cleared(method, at))
    return cls


# The plain operations that take a request (`gateway.agents.exchange`).
PLAIN = frozenset({"message", "stream_message"})


CLEARED = "_switchboard_tenant_cleared"


def _tenant_cleared(method: Callable[..., Any], at: int) -> Callable[..., Any]:
    """``method`` with the tenant of its request (positional argument ``at``,
    or ``params``) cleared first."""

    def clear(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        params = args[at] if len(args) > at else kwargs.get("params")
        if params is not None and "tenant" in params.DESCRIPTOR.fields_by_name:
            params.ClearField("tenant")

    if inspect.isasyncgenfunction(inspect.unwrap(method)):

        @functools.wraps(method)
        def streaming(self: Any, *args: Any, **kwargs: Any) -> Any:
            clear(args, kwargs)
            return method(self, *args, **kwargs)

        setattr(streaming, CLEARED, True)
        return streaming

    @functools.wraps(method)
    async def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
        clear(args, kwargs)
        return await method(self, *args, **kwargs)

    setattr(plain, CLEARED, True)
    return plain

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
    """Clear `tenant` from every request before the handler sees it.

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
        if not name.startswith("on_") or not callable(method) or getattr(method, CLEARED, False):
            continue
        setattr(cls, name, _tenant_cleared(method))
    return cls


CLEARED = "_switchboard_tenant_cleared"


def _tenant_cleared(method: Callable[..., Any]) -> Callable[..., Any]:
    def clear(params: Any) -> None:
        if params is not None and "tenant" in params.DESCRIPTOR.fields_by_name:
            params.ClearField("tenant")

    if inspect.isasyncgenfunction(inspect.unwrap(method)):

        @functools.wraps(method)
        def streaming(self: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
            clear(params)
            return method(self, params, *args, **kwargs)

        setattr(streaming, CLEARED, True)
        return streaming

    @functools.wraps(method)
    async def plain(self: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        clear(params)
        return await method(self, params, *args, **kwargs)

    setattr(plain, CLEARED, True)
    return plain

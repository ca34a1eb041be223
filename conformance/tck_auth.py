"""A pytest plugin for the A2A TCK: `Authorization: Bearer <token>` on every
request it sends to the gateway, which requires one.

    SWITCHBOARD_TCK_TOKEN=... SWITCHBOARD_TCK_ORIGIN=http://127.0.0.1:PORT \\
        run_tck.py ... -- -p conformance.tck_auth

The TCK's documented `A2A_AUTH_*` variables are no longer read on its 1.0-dev
branch, and a header proxy (as `conformance.header_proxy` is for the MCP
suite) would not do: the TCK reads the interface URLs from the gateway's card,
which name the gateway, not the proxy. Every request the TCK makes over HTTP
goes through `httpx.Client.send` (its JSON-RPC and HTTP+JSON clients, and the
raw `httpx.post`/`get` calls of its tests), so that is where the header goes,
only for requests to ``SWITCHBOARD_TCK_ORIGIN`` and never over one the test
set itself.

Over gRPC the same token goes as `authorization` metadata, and every request
names the agent in its `tenant`, as the gateway's card gives it with the gRPC
interface (A2A 1.0 §4.4.6: a client sets it on every request). The TCK's gRPC
client sets no tenant, so a channel interceptor does it, on the channels to
``SWITCHBOARD_TCK_GRPC`` (the gateway's gRPC target) only; a tenant the test
set itself stays. Runs in the TCK's own virtualenv: httpx, grpcio and pytest.
"""

from __future__ import annotations

import collections
import os
from typing import Any

import httpx
import pytest


def pytest_configure(config: pytest.Config) -> None:
    token = os.environ.get("SWITCHBOARD_TCK_TOKEN")
    origin = os.environ.get("SWITCHBOARD_TCK_ORIGIN")
    if not token or not origin:
        return
    send = httpx.Client.send

    def send_with_token(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
        if str(request.url).startswith(origin) and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"
        return send(self, request, **kwargs)

    setattr(httpx.Client, "send", send_with_token)  # noqa: B010 -- mypy: assigning to a method

    grpc_target = os.environ.get("SWITCHBOARD_TCK_GRPC")
    tenant = os.environ.get("SWITCHBOARD_TCK_TENANT", "")
    if grpc_target:
        _grpc_with_token(grpc_target, token, tenant)


def _grpc_with_token(target: str, token: str, tenant: str) -> None:
    import grpc
    from tck.transport.grpc_client import GrpcClient  # type: ignore[import-not-found]

    Fields = collections.namedtuple(
        "Fields", "method timeout metadata credentials wait_for_ready compression"
    )

    class Details(Fields, grpc.ClientCallDetails):  # type: ignore[misc]
        pass

    class Interceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
        def _prepared(self, details: Any, request: Any) -> Any:
            fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
            if tenant and "tenant" in fields and not request.tenant:
                request.tenant = tenant
            metadata = list(details.metadata or ())
            if not any(key.lower() == "authorization" for key, _ in metadata):
                metadata.append(("authorization", f"Bearer {token}"))
            return Details(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(self._prepared(details, request), request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(self._prepared(details, request), request)

    connect = GrpcClient._connect

    def connect_with_token(self: Any) -> None:
        connect(self)
        if self.base_url == target:
            channel = grpc.intercept_channel(self._channel, Interceptor())
            self._stub = type(self._stub)(channel)

    GrpcClient._connect = connect_with_token

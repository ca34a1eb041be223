"""The A2A front door's routes (`A2AFrontDoor`): the SDK's JSON-RPC and
HTTP+JSON dispatchers for the agents' handlers, each wrapped by the door
(admission, the handler a request goes to, outages), the cards, the push
relay, and `/a2a`, the gateway's own agent."""

from __future__ import annotations

from a2a.server.request_handlers.request_handler import (
    RequestHandler,
)
from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
from a2a.server.routes.common import ServerCallContextBuilder
from starlette.routing import BaseRoute, Mount, Route

from gateway.a2a.front import A2AFrontDoor, Endpoint
from gateway.a2a.gateway_handler import GatewayContextBuilder
from gateway.agents.admission import AdmissionContextBuilder
from gateway.agents.outages import (
    watch,
)


def a2a_routes(door: A2AFrontDoor) -> list[BaseRoute]:
    """`/a2a/{agent_id}` (JSON-RPC and HTTP+JSON, cards, push relay) and
    `/a2a`, each SDK endpoint guarded by the door (`A2AFrontDoor.guarded`)."""
    _watch_handlers(door)
    context = AdmissionContextBuilder()
    (jsonrpc,) = create_jsonrpc_routes(
        door.handler, "/", context_builder=context, enable_v0_3_compat=True
    )
    rest = [
        r
        for r in create_rest_routes(door.handler, context_builder=context, enable_v0_3_compat=True)
        if isinstance(r, Route)
    ]
    others = door.others.handler if door.others is not None else None
    other_jsonrpc, other_rest = _endpoints_of(others, context, len(rest))
    runs = door.gateway_run.handler if door.gateway_run is not None else None
    run_jsonrpc, run_rest = _endpoints_of(runs, context, len(rest))
    held_jsonrpc, held_rest = _endpoints_of(door.approvals, context, len(rest))
    assert isinstance(jsonrpc, Route)
    jsonrpc_endpoint = door.guarded(
        jsonrpc.endpoint,
        other_jsonrpc,
        jsonrpc=True,
        run_endpoint=run_jsonrpc,
        approval_endpoint=held_jsonrpc,
    )
    inner: list[BaseRoute] = [
        Route("/.well-known/agent-card.json", door.agent_card, methods=["GET"]),
        Route("/.well-known/agent.json", door.agent_card, methods=["GET"]),
        # Agents authenticate here with the relay token, not a bearer token.
        Route("/push/{relay_id}", door.handler.relay_notification, methods=["POST"]),
        Route("/", jsonrpc_endpoint, methods=["POST"]),
    ]
    # The SDK also mounts every route under `/{tenant}` (a Mount, dropped
    # above); the gateway serves one agent per URL and has no tenants.
    for route, other, run, held in zip(rest, other_rest, run_rest, held_rest, strict=True):
        inner.append(
            Route(
                route.path,
                door.guarded(
                    route.endpoint,
                    other,
                    jsonrpc=False,
                    run_endpoint=run,
                    approval_endpoint=held,
                ),
                methods=list(route.methods or ()),
            )
        )
    own_endpoint = _gateway_endpoint(door)
    return [
        Route("/.well-known/agent-card.json", door.gateway_card, methods=["GET"]),
        Route("/.well-known/agent.json", door.gateway_card, methods=["GET"]),
        Route("/a2a", own_endpoint, methods=["POST"]),
        Route("/a2a/", own_endpoint, methods=["POST"]),
        # Without the trailing slash, as registered interface URLs usually are.
        Route("/a2a/{agent_id}", jsonrpc_endpoint, methods=["POST"]),
        Mount("/a2a/{agent_id}", routes=inner),
    ]


def _gateway_endpoint(door: A2AFrontDoor) -> Endpoint:
    """`/a2a`: the gateway's own agent (`gateway.a2a.gateway_handler`)."""
    (own,) = create_jsonrpc_routes(
        door.gateway, "/a2a", context_builder=GatewayContextBuilder(), enable_v0_3_compat=True
    )
    assert isinstance(own, Route)
    return door.outage_guard(door.authenticated(own.endpoint), jsonrpc=True)


def _watch_handlers(door: A2AFrontDoor) -> None:
    for handler in (door.handler, door.gateway, door.approvals):
        watch(handler)
    if door.others is not None:
        watch(door.others.handler)
    if door.gateway_run is not None:
        watch(door.gateway_run.handler)


def _sdk_endpoints(
    handler: RequestHandler, context: ServerCallContextBuilder
) -> tuple[Endpoint, list[Endpoint]]:
    """The SDK's JSON-RPC endpoint and its HTTP+JSON endpoints (in the order
    `create_rest_routes` makes them) for ``handler``."""
    (jsonrpc,) = create_jsonrpc_routes(
        handler, "/", context_builder=context, enable_v0_3_compat=True
    )
    assert isinstance(jsonrpc, Route)
    rest = [
        r.endpoint
        for r in create_rest_routes(handler, context_builder=context, enable_v0_3_compat=True)
        if isinstance(r, Route)
    ]
    return jsonrpc.endpoint, rest


def _endpoints_of(
    handler: RequestHandler | None, context: ServerCallContextBuilder, count: int
) -> tuple[Endpoint | None, list[Endpoint | None]]:
    """``handler``'s SDK endpoints (`_sdk_endpoints`); without a handler,
    none for the JSON-RPC route and for each of the ``count`` HTTP+JSON ones."""
    if handler is None:
        return None, [None] * count
    jsonrpc, rest = _sdk_endpoints(handler, context)
    return jsonrpc, list(rest)

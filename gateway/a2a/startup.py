"""The A2A front door's start-up: its routes (`/a2a/{agent_id}`, `/a2a`) and
its gRPC binding, over the handlers every door shares (`gateway.agents`).

The door decodes A2A (JSON-RPC, HTTP+JSON, gRPC), admits the caller and
hands the request to the agent's handler; it adds `/a2a`, the gateway's own
agent (`gateway_handler`), and the same-version JSON-RPC fast path.
"""

from __future__ import annotations

import contextlib

from starlette.routing import BaseRoute

from gateway.a2a import grpc_server
from gateway.a2a.front import A2AFrontDoor, OtherAgents
from gateway.a2a.gateway_handler import GatewayHandler
from gateway.a2a.grpc_door import GrpcFrontDoor
from gateway.a2a.routes import a2a_routes
from gateway.agents.passthrough import PassThrough
from gateway.agents.startup import Agents
from gateway.http.auth import RequestAuth
from gateway.settings import Settings


class A2ADoor:
    """`/a2a/{agent_id}` and `/a2a`: the routes around the agents' handlers."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents
        self.gateway = GatewayHandler(agents.front_door_parts)

    def routes(self, others: OtherAgents | None = None) -> list[BaseRoute]:
        agents = self.agents
        self.front = A2AFrontDoor(
            agents.handler,
            self.gateway,
            pass_through=PassThrough(agents.handler),
            others=others,
            gateway_run=agents.gateway_runs,
            approvals=agents.approvals,
        )
        return a2a_routes(self.front)

    async def serve_grpc(
        self, auth: RequestAuth, settings: Settings, stack: contextlib.AsyncExitStack
    ) -> int | None:
        """The gRPC binding of the same door, when `a2a_grpc_port` is set
        (after `routes()`, once authentication can run); its port."""
        return await grpc_server.serve(GrpcFrontDoor(self.front, auth), settings, stack)

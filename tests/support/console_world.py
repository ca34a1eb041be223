"""A gateway for the console's MCP, flow and hold pages: a real MCP server
(official SDK, `tests.support.mcp_servers.ToolBox`) with a prompt, resources
and one tool whose description hides characters; a flow that waits at a
checkpoint; and a coordination rule whose hold a tool call opens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
from mcp import MCPError

from policies.scopes import ADMIN_SCOPE
from tests.support.flows import wait_for_run
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import HIDDEN, ToolBox, add, upstream_server
from tests.support.servers import ServerThread

SERVER = "tools"
FLOW = "hold-flow"
RULE = "sums-wait"
USER_SCOPES = "crm:read"
# `slow` on a customer opens a hold that keeps `add` for that customer back.
POLICY = """\
agents:
  worker:
    approval: true
coordination:
  entities:
    - entity: customer
      agents: [tools]
      skills: [slow]
      key: steps
    - entity: customer
      agents: [tools]
      skills: [add, hidden_add]
      key: a
  rules:
    - name: sums-wait
      kind: hold
      entity: customer
      opened_by: {agents: [tools], skills: [slow]}
      closed_by: {agents: [tools], skills: [hidden_add]}
      blocks: {agents: [tools], skills: [add]}
      ttl: PT1H
"""
FLOW_DOCUMENT: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": FLOW,
    "name": "Refund with a manager",
    "description": "Waits for a manager's approval before it replies.",
    "input": {
        "type": "object",
        "properties": {"order": {"type": "string"}},
        "required": ["order"],
    },
    "steps": [
        {
            "id": "manager",
            "checkpoint": {
                "prompt": "Refund this order?",
                "show": "input",
                "timeout_seconds": 600,
            },
        },
    ],
    "output": "{order: input.order}",
}


async def hidden_add(a: int, b: int) -> int:
    return a + b


def tool_box() -> ToolBox:
    box = ToolBox()
    box.describe(hidden_add, HIDDEN)

    @box.server.prompt(description="Greets a customer by name.")
    def greet(name: str) -> str:
        return f"Hello {name}"

    @box.server.resource("note://welcome", mime_type="text/plain")
    def welcome() -> str:
        return "welcome"

    @box.server.resource("note://orders/{id}", mime_type="application/json")
    def order(id: str) -> str:
        return "{}"

    return box


@dataclass
class World:
    gateway: Gateway
    upstream: ServerThread
    box: ToolBox

    @property
    def url(self) -> str:
        return self.gateway.url

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.gateway.token("admin", ADMIN_SCOPE))

    def user(self, sub: str) -> httpx.Client:
        return self.gateway.client(self.gateway.token(sub, USER_SCOPES))

    def change_tool(self, description: str) -> None:
        """The server changes `add`'s description under the gateway (a rug pull)."""
        self.box.describe(add, description)

    def call(
        self, sub: str, tool: str, arguments: dict[str, Any]
    ) -> types.CallToolResult | MCPError:
        """``sub`` calls ``tool`` on the gateway's `/mcp`: its result, or the
        MCP error the gateway answered with."""
        token = self.gateway.token(sub, USER_SCOPES)

        async def go() -> types.CallToolResult | MCPError:
            async with mcp_client(self.url + "/mcp", token, "2026-07-28") as client:
                try:
                    return await client.call_tool(tool, arguments)
                except MCPError as refused:
                    return refused

        return anyio.run(go)

    def tools(self, sub: str) -> list[str]:
        token = self.gateway.token(sub, USER_SCOPES)

        async def go() -> list[str]:
            async with mcp_client(self.url + "/mcp", token, "2026-07-28") as client:
                return [t.name for t in (await client.list_tools()).tools]

        return anyio.run(go)

    def start_run(self, sub: str, order: str) -> dict[str, Any]:
        """``sub`` starts the flow; the run once it waits at its checkpoint."""
        with self.user(sub) as client:
            started = client.post(f"/flows/{FLOW}/runs", json={"input": {"order": order}})
            assert started.status_code == 202, started.text
            return self.run_in(client, started.json()["id"], "input_required")

    def run_in(self, client: httpx.Client, run_id: str, *states: str) -> dict[str, Any]:
        return wait_for_run(client, {"flow_id": FLOW, "id": run_id}, *states)


def start_world(root: Path, database_url: str | None = None) -> World:
    root.mkdir(parents=True, exist_ok=True)
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    upstream, _, box = upstream_server(tool_box())
    gateway = start_gateway(root / "data", database_url, policy_file=policy)
    world = World(gateway, upstream, box)
    with world.admin() as admin:
        body = {"name": "Toolbox", "id": SERVER, "url": upstream.url + "/mcp"}
        registered = admin.post("/mcp-servers", json=body)
        assert registered.status_code == 201, registered.text
        flow = admin.post("/flows", json=FLOW_DOCUMENT)
        assert flow.status_code == 201, flow.text
    return world

"""What the flow tests share: a gateway with a policy, the sales desk (an A2A
agent, official SDK) and the inventory (an MCP server, official SDK), and the
documents of the flows they run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.demo.flow_agents import QUOTE_CONTRACT, SalesDesk, inventory_app, sales_desk_app
from policies.scopes import ADMIN_SCOPE
from tests.support import waiting
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread, stop_all

USER_SCOPES = "sales:quote inventory:read"
POLICY = """\
version: 1
agents:
  quote-flow:
    grant: [sales:quote, inventory:read]
  crash-flow:
    grant: [sales:quote]
  sales:
    require: [sales:quote]
    grant: [sales:quote]
  inventory:
    require: [inventory:read]
    grant: [inventory:read]
"""

QUOTE_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "quote-flow",
    "name": "Quote an order",
    "description": "Sales quote and stock check in parallel; a big discount needs a manager.",
    "input": {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "quantity": {"type": "integer"},
            "customer": {"type": "string"},
        },
        "required": ["sku", "quantity", "customer"],
    },
    "steps": [
        {
            "id": "check",
            "parallel": {
                "join": "all",
                "branches": [
                    {
                        "id": "quote",
                        "call": {"agent": "sales", "skill": "quote"},
                        "input": "{sku: input.sku, quantity: input.quantity}",
                    },
                    {
                        "id": "stock",
                        "call": {"tool": "inventory__check_stock"},
                        "input": "{sku: input.sku, quantity: input.quantity}",
                    },
                ],
            },
        },
        {
            "id": "big_discount",
            "route": [
                {"when": "steps.quote.output.discount > `0.1`", "goto": "manager"},
                {"goto": "reply"},
            ],
        },
        {
            "id": "manager",
            "checkpoint": {
                "prompt": "Approve a discount over 10%?",
                "show": "steps.quote.output",
                "timeout_seconds": 60,
            },
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.customer, total: steps.quote.output.total}",
        },
    ],
    "output": "{reply: steps.reply.text, quote: steps.quote.output, stock: steps.stock.output}",
}


@dataclass
class FlowSetup:
    gateway: Gateway
    desk: SalesDesk
    sales: ServerThread
    inventory: ServerThread
    policy: Path

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.gateway.token("admin", ADMIN_SCOPE))

    def user(self, sub: str = "dana", scopes: str = USER_SCOPES) -> httpx.Client:
        return self.gateway.client(self.gateway.token(sub, scopes))

    def start(self, client: httpx.Client, flow: str, run_input: dict[str, Any]) -> dict[str, Any]:
        """A run of ``flow`` started by ``client``'s user (202)."""
        started = client.post(f"/flows/{flow}/runs", json={"input": run_input})
        assert started.status_code == 202, started.text
        body: dict[str, Any] = started.json()
        return body

    def register(self, document: dict[str, Any]) -> httpx.Response:
        with self.admin() as admin:
            return admin.post("/flows", json=document)

    def run(
        self, client: httpx.Client, run: dict[str, Any], *states: str, seconds: float = 30
    ) -> dict[str, Any]:
        """The run once it reaches one of ``states``."""
        return wait_for_run(client, run, *states, seconds=seconds)


def wait_for_run(
    client: httpx.Client, run: dict[str, Any], *states: str, seconds: float = 30
) -> dict[str, Any]:
    """``run`` (a run as its start answered) once it reaches one of
    ``states``, read as ``client``'s user reads it."""

    def reached() -> dict[str, Any] | None:
        seen = client.get(f"/flows/{run['flow_id']}/runs/{run['id']}")
        assert seen.status_code == 200, seen.text
        body: dict[str, Any] = seen.json()
        return body if body["state"] in states else None

    return waiting.wait_for(
        reached, seconds=seconds, every=0.1, what=f"run {run['id']} in {states}"
    )


def run_task(client: httpx.Client, flow: str, run_id: str) -> dict[str, Any]:
    """The run's A2A task, as its caller reads it (`GetTask` on the flow's agent)."""
    answer = client.post(
        f"/a2a/{flow}",
        json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": run_id}},
        headers={"A2A-Version": "1.0"},
    )
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()["result"]
    return task


def register_agents(gateway: Gateway, sales: ServerThread, inventory: ServerThread) -> None:
    with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
        body = {
            "card_url": sales.url + "/.well-known/agent-card.json",
            "id": "sales",
            "skill_contracts": {"quote": QUOTE_CONTRACT},
        }
        response = admin.post("/agents", json=body)
        assert response.status_code == 201, response.text
        response = admin.post(
            "/mcp-servers",
            json={"name": "Inventory", "id": "inventory", "url": inventory.url + "/mcp"},
        )
        assert response.status_code == 201, response.text


@contextmanager
def flow_setup(
    tmp_path: Path, database_url: str | None, policy: str = POLICY, **settings: Any
) -> Iterator[FlowSetup]:
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    inventory = ServerThread(lambda _url: inventory_app()).start()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    gateway = start_gateway(
        tmp_path / "data",
        database_url,
        policy_file=policy_file,
        policy_reload_seconds=0.2,
        **settings,
    )
    made = FlowSetup(gateway, desk, sales, inventory, policy_file)
    try:
        register_agents(gateway, sales, inventory)
        yield made
    finally:
        # The gateway first: it is the upstreams' client, and its streams to
        # them close with it. An upstream stopped while the gateway still held
        # a 2026-07-28 listen stream open could outlast its graceful shutdown
        # (the SDK's handler waiting on that stream) and its thread the join
        # (seen once in CI as "server thread did not stop").
        made.gateway.server.stop()
        stop_all(sales, inventory)


def messages_of(sent: list[str], *runs: dict[str, Any]) -> list[str]:
    """The message ids of ``runs`` among ``sent`` (the desk's `sent()`): a
    module's tests share one desk, each reads its own runs' messages."""
    prefixes = tuple(f"{run['id']}." for run in runs)
    return [message for message in sent if message.startswith(prefixes)]

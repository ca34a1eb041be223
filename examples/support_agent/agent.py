"""A customer-support agent (A2A 1.0, official `a2a-sdk`) that delegates onwards.

It takes a customer's request (text, plus a data part with the order). A bulk
order is not something support can price, so it hands it to the sales agent
-- through Switchboard, on the customer's behalf:

1. Switchboard calls it with a token minted for it (sub = the user, aud = this
   agent, only the scopes the policy passes on);
2. it exchanges that token at ``/oauth/token`` (RFC 8693, as client
   ``support``) for one to sales' front door, ``/a2a/sales``; the new token
   says sub = the user, act = support;
3. it sends the order there (``metadata.skill`` = ``quote``, or ``discount``
   when the customer asks for a better price, which a manager approves) and
   relays the answer. A task held for a human's approval is polled until it
   ends.

Standalone (the gateway URL and the ``support`` client secret from the
environment):

    SWITCHBOARD_URL=http://127.0.0.1:8080 SUPPORT_CLIENT_SECRET=sbs_... \\
        python examples/support_agent/agent.py --port 9101
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from a2a.helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

ENDED = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}


@dataclass
class Gateway:
    url: str
    client_id: str = "support"
    client_secret: str = ""
    # Read at each exchange, so the agent can start (and be registered, which
    # fetches its card) before its credential exists.
    secret_file: str = ""

    def secret(self) -> str:
        if self.client_secret or not self.secret_file:
            return self.client_secret
        try:
            with open(self.secret_file) as f:
                return f.read().strip()
        except OSError:
            return ""

    approval_wait_seconds: float = 60.0


class Refused(Exception):
    pass


async def exchange(http: httpx.AsyncClient, gw: Gateway, token: str, target: str) -> str:
    """RFC 8693: the token we received for one to ``target``'s front door."""
    answer = await http.post(
        gw.url + "/oauth/token",
        auth=(gw.client_id, gw.secret()),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "resource": f"{gw.url}/a2a/{target}",
        },
    )
    if answer.status_code != 200:
        raise Refused(answer.json().get("error_description", answer.text))
    return str(answer.json()["access_token"])


async def rpc(http: httpx.AsyncClient, url: str, token: str, method: str, params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
    headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
    document = (await http.post(url, json=body, headers=headers)).json()
    if "error" in document:
        raise Refused(document["error"].get("message", "refused"))
    return document["result"]


def reply_text(task: dict[str, Any]) -> str:
    parts = [p for a in task.get("artifacts", []) for p in a.get("parts", [])]
    parts = parts or task.get("status", {}).get("message", {}).get("parts", [])
    return " ".join(p["text"] for p in parts if "text" in p)


async def ask_sales(gw: Gateway, token: str, text: str, order: dict[str, Any]) -> str:
    skill = "discount" if order.get("ask_discount") else "quote"
    async with httpx.AsyncClient(timeout=gw.approval_wait_seconds + 10, trust_env=False) as http:
        to_sales = await exchange(http, gw, token, "sales")
        url = gw.url + "/a2a/sales"
        message = {
            "messageId": uuid.uuid4().hex,
            "role": "ROLE_USER",
            "parts": [{"text": text}, {"data": order}],
            "metadata": {"skill": skill},
        }
        result = await rpc(http, url, to_sales, "SendMessage", {"message": message})
        task = result["task"]
        deadline = asyncio.get_running_loop().time() + gw.approval_wait_seconds
        # Held for a human (TASK_STATE_AUTH_REQUIRED) or still running: poll.
        while task["status"]["state"] not in ENDED:
            if asyncio.get_running_loop().time() > deadline:
                return f"sales did not answer in time ({task['status']['state']})"
            await asyncio.sleep(0.2)
            task = await rpc(http, url, to_sales, "GetTask", {"id": task["id"]})
        if task["status"]["state"] != "TASK_STATE_COMPLETED":
            return f"sales could not help ({task['status']['state']}): {reply_text(task)}"
        return reply_text(task)


# "500 x X-100 for ACME", as a customer writes an order.
_ORDER = re.compile(r"(\d+)\s*[x\u00d7]\s*([A-Za-z0-9][\w-]*)(?:\s+for\s+(.+?))?\s*[.!?]?$")


def order_in(text: str) -> dict[str, Any]:
    """The order a customer's sentence names (quantity, SKU, customer), if any."""
    found = _ORDER.search(text.strip())
    if found is None:
        return {}
    quantity, sku, customer = found.groups()
    return {"sku": sku.upper(), "quantity": int(quantity), "customer": customer or "you"}


class SupportExecutor(AgentExecutor):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        headers = context.call_context.state.get("headers", {}) if context.call_context else {}
        token = str(headers.get("authorization", "")).removeprefix("Bearer ")
        text = context.get_user_input()
        order: dict[str, Any] = {}
        if context.message is not None:
            for part in context.message.parts:
                if part.HasField("data"):
                    value = MessageToDict(part.data)
                    order = value if isinstance(value, dict) else {}
        order = order or order_in(text)
        if not order.get("sku"):
            answer = (
                "Thanks! Support can help with that directly. (A bulk order such as "
                "'500 x X-100 for ACME' goes to sales for a quote.)"
            )
        else:
            try:
                answer = "Sales says: " + await ask_sales(self.gateway, token, text, order)
            except Refused as exc:
                answer = f"Sorry, I could not reach sales: {exc}"
        await event_queue.enqueue_event(new_text_message(answer))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def card(base_url: str) -> AgentCard:
    return AgentCard(
        name="Support",
        description="Customer support; hands bulk orders to sales.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=base_url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="customer-request",
                name="Customer request",
                description="Answer a customer, delegating what support cannot do itself.",
                tags=["support"],
                examples=["I'd like 500 X-100 for ACME, what's the price?"],
            )
        ],
    )


def app(base_url: str, gateway: Gateway) -> Starlette:
    agent_card = card(base_url)
    handler = DefaultRequestHandler(
        agent_executor=SupportExecutor(gateway),
        task_store=InMemoryTaskStore(),
        agent_card=agent_card,
    )
    routes = create_agent_card_routes(agent_card)
    routes += create_jsonrpc_routes(handler, rpc_url="/")
    return Starlette(routes=routes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    gw = Gateway(
        os.environ.get("SWITCHBOARD_URL", "http://127.0.0.1:8080"),
        client_secret=os.environ.get("SUPPORT_CLIENT_SECRET", ""),
        secret_file=os.environ.get("SUPPORT_CLIENT_SECRET_FILE", ""),
    )
    uvicorn.run(app(f"http://{args.host}:{args.port}", gw), host=args.host, port=args.port)

"""The agents the flow demo (and the flow tests) call: two vendors, two protocols.

* ``sales_desk_app()``: an A2A 1.0 agent built with the official a2a-sdk,
  skills ``quote`` (data ``{sku, quantity}`` -> ``{sku, quantity, unit_price,
  total, discount}``; 20 % off from 100 units), ``work`` (data ``{seconds}``:
  works that long, reporting progress, then ``{"worked": seconds}``, or asks
  whether to go on with ``then: ask``) and
  ``reply`` (data ``{customer, total}`` -> a text reply) and ``ship`` (data
  ``{sku, quantity}``: asks which warehouse ships it -- the task goes
  input-required -- and, told ``north`` or ``south`` in text or as data
  ``{warehouse}``, completes with ``{sku, quantity, warehouse, eta_days}``;
  told anything else, asks again). Every message it
  receives is logged (`SalesDesk.received`, with the time it came), so a
  caller can check that nothing was sent twice; a quote of a SKU in
  `SalesDesk.failing` fails its task (an upstream having a bad moment).
* ``support_desk_app()``: the same kind of agent as the support desk, skill
  ``escalate`` (data ``{customer, sku, quantity}`` -> the same, as the order
  to hand on, and a text line).
* ``inventory_app()``: an MCP server (official mcp SDK), tool ``check_stock``
  ``{sku, quantity}`` -> ``{sku, on_hand, enough}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import (
    BasePushNotificationSender,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    TaskUpdater,
)
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Part,
    TaskState,
)
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct, Value
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

QUOTE_CONTRACT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sku": {"type": "string"},
        "quantity": {"type": "integer", "minimum": 1},
    },
    "required": ["sku", "quantity"],
    "additionalProperties": False,
}
STOCK = {"X-100": 1240, "X-200": 80}


@dataclass
class SalesDesk:
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failing: set[str] = field(default_factory=set)
    # How often each order's status was asked (the ``status`` skill).
    status_asks: dict[str, int] = field(default_factory=dict)

    def count(self, skill: str) -> int:
        with self.lock:
            return sum(1 for r in self.received if r["skill"] == skill)

    def sent(self, skill: str | None = None) -> list[str]:
        """The ids of the messages received (of ``skill``), in order: what a
        test counts to see that nothing was sent twice."""
        with self.lock:
            return [r["message_id"] for r in self.received if skill in (None, r["skill"])]


def _data(value: dict[str, Any]) -> Part:
    struct = Struct()
    struct.update(value)
    return Part(data=Value(struct_value=struct), media_type="application/json")


class _Executor(AgentExecutor):
    def __init__(self, desk: SalesDesk) -> None:
        self.desk = desk

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        skill, data, fails = self._received(message)
        task = context.current_task or new_task_from_user_message(message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if fails:
            said = updater.new_agent_message([new_text_part(f"no price for {data['sku']} now")])
            await updater.failed(said)
            return
        if skill == "ship":
            asked = context.current_task is not None and (
                context.current_task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
            )
            if not await _ship(updater, data, _said(message), asked):
                return
            parts = [_data({**_ORDERS.pop(task.id, {}), **_shipping(data, _said(message))})]
        elif skill == "work":
            worked = await _work(updater, data)
            if worked is None:
                return
            parts = worked
        elif skill == "escalate":
            # The support desk: a customer's request becomes an order to quote.
            ticket = {k: data.get(k) for k in ("customer", "sku", "quantity")}
            parts = [_data(ticket), new_text_part(f"Escalated: {data.get('customer')} order")]
        elif skill == "status":
            order = str(data.get("order") or "")
            with self.desk.lock:
                times = self.desk.status_asks[order] = self.desk.status_asks.get(order, 0) + 1
            parts = [_data({"order": order, "asks": times, "ready": times >= READY_AFTER})]
        elif skill == "reply":
            customer = data.get("customer", "customer")
            parts = [new_text_part(f"Dear {customer}, your quote is {data.get('total')} EUR.")]
        else:
            parts = [_data(quote(data))]
        await updater.add_artifact(parts, name=skill)
        await updater.complete()

    def _received(self, message: Message) -> tuple[str, dict[str, Any], bool]:
        """The skill asked for and the message's data, recorded for the
        story's checks; whether this quote is one the desk fails."""
        metadata = MessageToDict(message.metadata) if message.HasField("metadata") else {}
        data: dict[str, Any] = {}
        for part in message.parts:
            if part.HasField("data"):
                found = MessageToDict(part.data)
                data = found if isinstance(found, dict) else {}
                break
        skill = str(metadata.get("skill") or "quote")
        with self.desk.lock:
            self.desk.received.append(
                {
                    "skill": skill,
                    "data": data,
                    "text": _said(message),
                    "message_id": message.message_id,
                    "at": time.time(),
                }
            )
            fails = skill == "quote" and data.get("sku") in self.desk.failing
        return skill, data, fails

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


# The ``status`` skill's order is ready from this ask on.
READY_AFTER = 3

# What each task of the ``ship`` skill was asked to ship, until it is answered.
_ORDERS: dict[str, dict[str, Any]] = {}
WAREHOUSES = ("north", "south")


def _said(message: Any) -> str:
    return " ".join(p.text for p in message.parts if p.HasField("text")).strip()


def _shipping(data: dict[str, Any], text: str) -> dict[str, Any]:
    warehouse = str(data.get("warehouse") or text).strip().lower()
    return {"warehouse": warehouse, "eta_days": 2 if warehouse == "north" else 4}


async def _ship(updater: TaskUpdater, data: dict[str, Any], text: str, asked: bool) -> bool:
    """The ``ship`` skill asks which warehouse ships the order (A2A
    input-required) until it is told one it has: True once it is."""
    if not asked:
        _ORDERS[updater.task_id] = {
            "sku": data.get("sku"),
            "quantity": int(data.get("quantity", 1)),
        }
    elif _shipping(data, text)["warehouse"] in WAREHOUSES:
        return True
    order = _ORDERS.get(updater.task_id, {})
    question = (
        f"Which warehouse ships {order.get('quantity')} x {order.get('sku')}: north (2 days) "
        "or south (4 days)?"
    )
    said = updater.new_agent_message(
        [new_text_part(question), _data({"choose": "warehouse", "options": list(WAREHOUSES)})]
    )
    await updater.requires_input(said)
    return False


def sales_card(url: str) -> AgentCard:
    skills = [
        AgentSkill(id="quote", name="Quote", description="Prices an order.", tags=["sales"]),
        AgentSkill(id="work", name="Work", description="Works a while.", tags=["sales"]),
        AgentSkill(id="reply", name="Reply", description="Writes the reply.", tags=["sales"]),
        AgentSkill(
            id="status",
            name="Status",
            description="Says whether an order is ready (it is, from the third time asked).",
            tags=["sales"],
        ),
        AgentSkill(
            id="ship",
            name="Ship",
            description="Ships an order, asking which warehouse.",
            tags=["sales"],
        ),
    ]
    return AgentCard(
        name="Sales desk",
        description="Quotes orders (an A2A agent on the official SDK).",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=url, protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=skills,
    )


def support_card(url: str) -> AgentCard:
    card = sales_card(url)
    card.name = "Support desk"
    card.description = "Takes customers' requests and escalates orders (official a2a-sdk)."
    del card.skills[:]
    card.skills.append(
        AgentSkill(
            id="escalate", name="Escalate", description="Hands an order on.", tags=["support"]
        )
    )
    return card


def support_desk_app(url: str, desk: SalesDesk) -> Starlette:
    return sales_desk_app(url, desk, support_card(url))


def sales_desk_app(url: str, desk: SalesDesk, card: AgentCard | None = None) -> Starlette:
    card = card or sales_card(url)
    # A card that says it pushes: the SDK's own store and sender do it, with
    # a client of its own, closed when the app stops (its connections would
    # otherwise be collected after their event loop closed).
    configs = (
        InMemoryPushNotificationConfigStore() if card.capabilities.push_notifications else None
    )
    pusher = httpx.AsyncClient(timeout=10) if configs is not None else None
    handler = DefaultRequestHandler(
        agent_executor=_Executor(desk),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=configs,
        push_sender=(
            BasePushNotificationSender(pusher, configs)
            if pusher is not None and configs is not None
            else None
        ),
    )
    routes = (
        create_agent_card_routes(card)
        + create_jsonrpc_routes(handler, rpc_url="/")
        + create_rest_routes(handler)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if pusher is not None:
            await pusher.aclose()

    return Starlette(routes=routes, lifespan=lifespan)


def check_stock(sku: str, quantity: int) -> dict[str, Any]:
    """Units on hand for a SKU, and whether that covers the quantity."""
    on_hand = STOCK.get(sku, 0)
    return {"sku": sku, "on_hand": on_hand, "enough": on_hand >= quantity}


def inventory_app() -> Any:
    server = MCPServer("inventory")
    server.add_tool(check_stock)
    return server.streamable_http_app(stateless_http=True)


async def _work(updater: TaskUpdater, data: dict[str, Any]) -> list[Part] | None:
    """The ``work`` skill: busy for ``seconds`` (saying so), then done -- or
    asking whoever follows the task (None: the task waits)."""
    seconds = float(data.get("seconds", 1))
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        await updater.update_status(TaskState.TASK_STATE_WORKING)
    if data.get("then") == "ask":  # worked, then asks whoever follows the task
        question = [new_text_part(f"Worked {seconds:g} s: go on?")]
        await updater.requires_input(updater.new_agent_message(question))
        return None
    return [_data({"worked": seconds})]


def quote(data: dict[str, Any]) -> dict[str, Any]:
    """The ``quote`` skill: a price, with a discount for 100 or more."""
    quantity = int(data.get("quantity", 1))
    unit = 12.5
    discount = 0.2 if quantity >= 100 else 0.05
    total = round(quantity * unit * (1 - discount), 2)
    return {
        "sku": data.get("sku"),
        "quantity": quantity,
        "unit_price": unit,
        "total": total,
        "discount": discount,
    }

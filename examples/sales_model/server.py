"""A sales agent behind an OpenAI-compatible endpoint: a deterministic stand-in
for a vendor's model, speaking the real chat-completions wire format.

`POST /v1/chat/completions` answers a quote for a bulk order. Like many agent
platforms that expose their agents as "models", it runs its own tools before it
answers: it asks the inventory MCP server for stock figures -- through
Switchboard, on the user's behalf:

1. Switchboard calls it with the token it minted for this call (sub = the user,
   act = who delegated here) in ``X-Switchboard-Token`` (the registration's
   ``token_header``), next to the API key in ``Authorization``;
2. it exchanges that token at ``/oauth/token`` (RFC 8693, as client ``sales``)
   for one to the inventory server's front door, ``/a2a/inventory``;
3. it calls ``check_stock`` and ``reserve_stock`` there (A2A messages with a
   data part ``{"tool", "arguments"}``); Switchboard decides each call.

No randomness, no model: the answer depends only on the request and the
tools' answers. Standalone (the gateway URL and the ``sales`` client secret from
the environment):

    SWITCHBOARD_URL=http://127.0.0.1:8080 SALES_CLIENT_SECRET=sbs_... \\
        python examples/sales_model/server.py --port 9102
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "sales-quote-1"
API_KEY = "sk-demo-sales-7d41"  # what the gateway must present; a demo value
TOKEN_HEADER = "x-switchboard-token"  # noqa: S105 - a header name
BULK_DISCOUNT = 0.08  # 8% from 100 units
MANAGER_DISCOUNT = 0.05  # a further 5%, the "discount" skill (needs a manager's approval)


@dataclass
class Gateway:
    url: str
    client_id: str = "sales"
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


class ToolRefused(Exception):
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
        raise ToolRefused(answer.json().get("error_description", answer.text))
    return str(answer.json()["access_token"])


async def call_tool(
    http: httpx.AsyncClient, gw: Gateway, token: str, tool: str, arguments: dict[str, Any]
) -> Any:
    """One MCP tool through the gateway's A2A face of the inventory server."""
    body = {
        "jsonrpc": "2.0",
        "id": uuid.uuid4().hex,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "parts": [{"data": {"tool": tool, "arguments": arguments}}],
            }
        },
    }
    answer = await http.post(
        gw.url + "/a2a/inventory",
        json=body,
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
    )
    document = answer.json()
    if "error" in document:
        raise ToolRefused(document["error"].get("message", "refused"))
    task = document["result"]["task"]
    if task["status"]["state"] != "TASK_STATE_COMPLETED":
        raise ToolRefused(json.dumps(task["status"].get("message", {}))[:300])
    for artifact in task.get("artifacts", []):
        for part in artifact.get("parts", []):
            if "data" in part:
                return part["data"]
    return None


async def quote(order: dict[str, Any], discount: bool, token: str | None, gw: Gateway) -> str:
    sku, quantity = str(order.get("sku", "")), int(order.get("quantity", 0))
    customer = order.get("customer", "the customer")
    if not sku or quantity <= 0:
        return (
            "To quote, send the order as data: "
            '{"sku": "X-100", "quantity": 500, "customer": "ACME"} '
            "(switchboard call sales TEXT --skill quote --data JSON)."
        )
    if not token or not gw.url:
        return f"Cannot quote {sku}: no gateway token to check stock with."
    lines = []
    async with httpx.AsyncClient(timeout=20, trust_env=False) as http:
        try:
            to_inventory = await exchange(http, gw, token, "inventory")
            stock = await call_tool(http, gw, to_inventory, "check_stock", {"sku": sku})
        except ToolRefused as exc:
            return f"Cannot quote {sku}: stock check refused ({exc})."
        on_hand, price = int(stock["on_hand"]), float(stock["unit_price_eur"])
        lines.append(f"stock: {on_hand} x {sku} on hand in {stock['warehouse']}")
        rate = BULK_DISCOUNT if quantity >= 100 else 0.0
        if discount:
            rate += MANAGER_DISCOUNT
        unit = round(price * (1 - rate), 2)
        lines.append(
            f"quote for {customer}: {quantity} x {sku} at EUR {unit:.2f} "
            f"({rate:.0%} off EUR {price:.2f}) = EUR {unit * quantity:,.2f}"
        )
        if not discount:
            try:
                await call_tool(
                    http,
                    gw,
                    to_inventory,
                    "reserve_stock",
                    {"sku": sku, "quantity": quantity, "order_ref": f"quote-{customer}"},
                )
                lines.append(f"reserved {quantity} x {sku}")
            except ToolRefused as exc:
                lines.append(f"reservation not made: {exc}")
    return "; ".join(lines)


def completion(content: str) -> dict[str, Any]:
    """A chat completion exactly as OpenAI's API shapes it."""
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def chunks(content: str) -> AsyncIterator[str]:
    """The same answer as `stream: true` sends it: `chat.completion.chunk` events
    (the role, the content, the finish reason), then `[DONE]`."""
    ident, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())

    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""})
    yield event({"content": content})
    yield event({}, "stop")
    yield "data: [DONE]\n\n"


def app(gateway: Gateway, api_key: str = API_KEY) -> Starlette:
    async def completions(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            error = {"message": "Incorrect API key provided.", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=401)
        body = await request.json()
        messages = body.get("messages", [])
        system = " ".join(m["content"] for m in messages if m.get("role") == "system")
        user = messages[-1]["content"] if messages else ""
        # The gateway appends the message's data part to the user text, as JSON.
        order: dict[str, Any] = {}
        for paragraph in reversed(user.split("\n\n")):
            try:
                order = json.loads(paragraph)
                break
            except ValueError:
                continue
        token = request.headers.get(TOKEN_HEADER, "").removeprefix("Bearer ") or None
        content = await quote(order, "Skill: discount" in system, token, gateway)
        if body.get("stream"):
            return StreamingResponse(chunks(content), media_type="text/event-stream")
        return JSONResponse(completion(content))

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102)
    args = parser.parse_args()
    gw = Gateway(
        os.environ.get("SWITCHBOARD_URL", "http://127.0.0.1:8080"),
        client_secret=os.environ.get("SALES_CLIENT_SECRET", ""),
        secret_file=os.environ.get("SALES_CLIENT_SECRET_FILE", ""),
    )
    uvicorn.run(app(gw), host=args.host, port=args.port)

"""An inventory MCP server (official `mcp` SDK): `check_stock` and `reserve_stock`.

Serves Streamable HTTP at ``/mcp``. The stock is a fixed table, so every run
of the demo tells the same story. The server trusts whoever reaches it: in a
deployment it sits behind Switchboard, which decides who may call which tool
(and with `--token-exchange` sends a token minted per call to check).

    python examples/inventory_mcp/server.py --port 9103
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# units on hand per SKU, and where they are
STOCK: dict[str, dict[str, Any]] = {
    "X-100": {"on_hand": 1240, "warehouse": "Rotterdam", "unit_price_eur": 12.50},
    "X-200": {"on_hand": 80, "warehouse": "Rotterdam", "unit_price_eur": 31.00},
}


def check_stock(sku: str) -> dict[str, Any]:
    """Units on hand for a SKU, the warehouse and the list price."""
    item = STOCK.get(sku)
    if item is None:
        # A failure foreseen: the caller reads it; the server logs one line, no traceback.
        raise ToolError(f"unknown SKU {sku!r} (known: {', '.join(STOCK)})")
    return {"sku": sku, **item}


def reserve_stock(sku: str, quantity: int, order_ref: str) -> dict[str, Any]:
    """Hold `quantity` units of a SKU for an order."""
    item = check_stock(sku)
    if quantity > item["on_hand"]:
        raise ToolError(f"only {item['on_hand']} units of {sku} on hand")
    return {"sku": sku, "reserved": quantity, "order_ref": order_ref}


def build() -> MCPServer:
    server = MCPServer("inventory")
    server.add_tool(check_stock)
    server.add_tool(reserve_stock)
    return server


def app() -> Any:
    """The ASGI app: the MCP endpoint at /mcp (stateless Streamable HTTP)."""
    return build().streamable_http_app(stateless_http=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9103)
    args = parser.parse_args()
    uvicorn.run(app(), host=args.host, port=args.port)

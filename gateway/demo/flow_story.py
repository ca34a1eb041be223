"""`switchboard demo --scenario flow`: the delegation story as a flow.

A customer's request reaches the support desk; its escalation, completed,
**triggers** the quote flow for the same user; the flow asks the sales desk
for a quote and the inventory MCP server for stock **in parallel**; the
discount is over 10%, so the run **stops at a human checkpoint**; a manager
approves it on the approvals desk; the sales desk, asked to ship the order,
**asks which warehouse** -- the question goes to dana, whose run it is, and
her answer to the same task of the desk; the desk writes the reply, and the
run's record shows every step, its token's actor chain and scopes, and
**what the run cost** at the policy's prices.

Everything on 127.0.0.1 and free ports: the support and sales desks (A2A
agents on the official a2a-sdk) and the inventory server (official mcp SDK)
in this process, the gateway in a process of its own (SQLite in a temp dir).
Exit status 0 when the story went as told.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from gateway.demo.flow_agents import (
    QUOTE_CONTRACT,
    SalesDesk,
    inventory_app,
    sales_desk_app,
    support_desk_app,
)
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import (
    DemoError,
    Server,
    console_lines,
    quiet_libraries,
    wait_for_ctrl_c,
)

POLICY = """\
version: 1
agents:
  support:
    require: [support:escalate]
  quote-flow:
    require: [sales:quote]
    grant: [sales:quote, inventory:read]
  sales:
    require: [sales:quote]
    grant: [sales:quote]
  inventory:
    require: [inventory:read]
    grant: [inventory:read]
prices:
  currency: EUR
  targets:
    sales: {per_call: "0.02"}
    inventory__check_stock: {per_call: "0.001"}
"""
USER_SCOPES = "support:escalate sales:quote inventory:read"
ADMIN_SCOPES = "switchboard:admin"
# The lifetime of the tokens --keep prints (the dev issuer's, as any token).
TOKEN_SECONDS = 600
FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "quote-flow",
    "name": "Quote an escalated order",
    "input": {
        "type": "object",
        "properties": {
            "customer": {"type": "string"},
            "sku": {"type": "string"},
            "quantity": {"type": "integer"},
        },
        "required": ["customer", "sku", "quantity"],
    },
    "triggers": [{"id": "escalated", "task": {"agent": "support", "skill": "escalate"}}],
    "steps": [
        {
            "id": "check",
            "parallel": {
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
                ]
            },
        },
        {
            "id": "manager",
            "when": "steps.quote.output.discount > `0.1`",
            "checkpoint": {
                "prompt": "Approve a discount over 10%?",
                "show": "steps.quote.output",
                "timeout_seconds": 300,
            },
        },
        {
            "id": "ship",
            "call": {"agent": "sales", "skill": "ship"},
            "input": "{sku: input.sku, quantity: input.quantity}",
        },
        {
            "id": "reply",
            "call": {"agent": "sales", "skill": "reply"},
            "input": "{customer: input.customer, total: steps.quote.output.total}",
        },
    ],
    "output": (
        "{reply: steps.reply.text, quote: steps.quote.output, stock: steps.stock.output, "
        "shipping: steps.ship.output}"
    ),
}
ORDER = {"customer": "ACME", "sku": "X-100", "quantity": 120}


def run(
    data_dir: Path | None,
    out: Callable[[str], None],
    keep: bool = False,
    port: int | None = None,
) -> int:
    temp = None
    if data_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="switchboard-flow-demo-"))
        data_dir = temp
    quiet_libraries()
    support_desk, sales_desk = SalesDesk(), SalesDesk()
    support, sales, inventory = Server("support desk"), Server("sales desk"), Server("inventory")
    gateway: GatewayProcess | None = None
    try:
        support.start(support_desk_app(support.url, support_desk))
        sales.start(sales_desk_app(sales.url, sales_desk))
        inventory.start(inventory_app())
        data_dir.mkdir(parents=True, exist_ok=True)
        policy = data_dir / "policy.yaml"
        policy.write_text(POLICY)
        gateway = GatewayProcess(data_dir / "gateway", policy_file=policy, port=port)
        gateway.start()
        out(f"gateway    {gateway.url} (pid {gateway.pid}, SQLite in {gateway.data_dir})")
        out(f"support    {support.url} (A2A agent, official a2a-sdk)")
        out(f"sales      {sales.url} (A2A agent, official a2a-sdk)")
        out(f"inventory  {inventory.url}/mcp (MCP server, official mcp SDK)")
        _register(gateway, support.url, sales.url, inventory.url)
        status = _play(gateway, sales_desk, out)
        if keep:
            _explore(gateway, out)
        return status
    finally:
        if gateway is not None:
            gateway.stop()
        for server in (support, sales, inventory):
            server.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _register(gateway: GatewayProcess, support: str, sales: str, inventory: str) -> None:
    with gateway.client("admin", "switchboard:admin") as admin:
        for agent_id, url in (("support", support), ("sales", sales)):
            card = url + "/.well-known/agent-card.json"
            body: dict[str, Any] = {"card_url": card, "id": agent_id}
            if agent_id == "sales":
                body["skill_contracts"] = {"quote": QUOTE_CONTRACT}
            _ok(admin.post("/agents", json=body))
        server = {"id": "inventory", "name": "Inventory", "url": inventory + "/mcp"}
        _ok(admin.post("/mcp-servers", json=server))
        _ok(admin.post("/flows", json=FLOW))


def _play(gateway: GatewayProcess, sales_desk: SalesDesk, out: Callable[[str], None]) -> int:
    order = f"{ORDER['customer']} wants {ORDER['quantity']} x {ORDER['sku']}"
    out(f"\n1. dana asks the support desk: {order}")
    with gateway.client("dana", USER_SCOPES) as dana:
        message = {
            "messageId": "demo-escalation",
            "role": "ROLE_USER",
            "parts": [{"text": "Please escalate this order."}, {"data": ORDER}],
        }
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {"message": message, "metadata": {"skill": "escalate"}},
        }
        answer = _ok(dana.post("/a2a/support", json=body, headers={"A2A-Version": "1.0"}))
        task = answer["result"]["task"]
        out(f"   support task {task['id']}: {task['status']['state']}")
        out("2. its end triggers quote-flow for dana (sales quote and stock check in parallel)")
        run = _wait(dana, None, lambda r: r["state"] in ("input_required", "completed", "failed"))
        out(f"   run {run['id']}: {run['state']}")
        manager = next((s for s in run["steps"] if s["id"] == "manager"), None)
        if manager is None or not manager.get("approval_id"):
            raise DemoError(f"the run did not stop at the manager's checkpoint: {run}")
        quote = next(s for s in run["steps"] if s["id"] == "quote")["output"]
        approval = manager["approval_id"]
        out(f"3. discount {quote['discount']:.0%} > 10%: it waits for a manager ({approval})")
    with gateway.client("maria", "switchboard:admin") as maria:
        decision = {"decision": "approve", "reason": "key account"}
        _ok(maria.post(f"/approvals/{manager['approval_id']}", json=decision))
    out("4. maria approves on the approvals desk; the sales desk is asked to ship it")
    with gateway.client("dana", USER_SCOPES) as dana:
        asked = _wait(
            dana, run["id"], lambda r: r["current_step"] == "ship" and r["state"] != "working"
        )
        question = next(s for s in asked["steps"] if s["id"] == "ship")["output"] or {}
        if asked["state"] != "input_required" or "question" not in question:
            raise DemoError(f"the sales desk did not ask: {asked}")
        out(f"5. the sales desk asks dana: {question['question']}")
        url = f"/flows/quote-flow/runs/{run['id']}/answer"
        _ok(dana.post(url, json={"text": "north"}))
        out('   dana answers "north"; it goes to the same task of the desk, which writes the reply')
        done = _wait(dana, run["id"], lambda r: r["state"] in ("completed", "failed", "rejected"))
    _report(done, out)
    return _checked(done, sales_desk, out)


def _report(done: dict[str, Any], out: Callable[[str], None]) -> None:
    """The run as its record says: the grant, each step, the reply, the cost."""
    out(f"\nrun {done['id']} of {done['flow_id']} v{done['flow_version']}: {done['state']}")
    grant = done.get("grant") or {}
    scopes, actors = " ".join(grant.get("scopes", [])), " -> ".join(grant.get("actors", []))
    out(f"  grant: {scopes}; acts as {actors}")
    for step in done["steps"]:
        took = f"{step['duration_ms']:.0f} ms" if step["duration_ms"] is not None else ""
        indent = "    " if step["parent"] else "  "
        cost = (step.get("usage") or {}).get("cost")
        priced = f"{cost} EUR" if cost is not None else ""
        line = f"{indent}{step['id']:<10} {step['state']:<10} {step['target'] or '':<24}"
        out(f"{line} {took:>8} {priced:>10}")
    total = (done.get("usage") or {}).get("cost")
    if done["state"] == "completed":
        out(f"reply: {done['output']['reply']}")
        shipping = done["output"].get("shipping") or {}
        out(f"shipping: from {shipping.get('warehouse')}, {shipping.get('eta_days', 0):.0f} days")
    out(f"the run cost {total} {(done.get('usage') or {}).get('currency')} at the policy's prices")


def _checked(done: dict[str, Any], sales_desk: SalesDesk, out: Callable[[str], None]) -> int:
    """What the story shows, each said ok or FAILED; 0 when all hold."""
    total = (done.get("usage") or {}).get("cost")
    checks = {
        "the run completed": done["state"] == "completed",
        "it acted for dana": done["user"]["subject"] == "dana",
        "quote and stock ran in parallel": {
            s["parent"] for s in done["steps"] if s["id"] in ("quote", "stock")
        }
        == {"check"},
        "the sales desk quoted once and replied once": (
            sales_desk.count("quote"),
            sales_desk.count("reply"),
        )
        == (1, 1),
        "the desk's question went to dana, her answer to the same task": (
            [
                r["message_id"].rsplit(".", 1)[-1]
                for r in sales_desk.received
                if r["skill"] == "ship"
            ]
            == ["1", "answer1"]
            and (done["output"] or {}).get("shipping", {}).get("warehouse") == "north"
        ),
        "the run cost 3 calls to the desk and 1 stock check": total is not None
        and Decimal(str(total)) == Decimal("0.061"),
    }
    for what, held in checks.items():
        out(f"  [{'ok' if held else 'FAILED'}] {what}")
    return 0 if all(checks.values()) else 1


def _explore(gateway: GatewayProcess, out: Callable[[str], None]) -> None:
    """--keep: what to try next, the worked example of docs/flows.md included."""
    out("\nStill running (--keep):")
    out(f"  gateway     {gateway.url}   (API docs: {gateway.url}/docs)")
    for line in console_lines(gateway.url):
        out(line)
    order = json.dumps({"sku": "X-100", "quantity": 10, "customer": "ACME"})
    minutes = TOKEN_SECONDS // 60
    admin = gateway.token("maria", ADMIN_SCOPES, TOKEN_SECONDS)
    user = gateway.token("dana", USER_SCOPES, TOKEN_SECONDS)
    out(f"\n  export SWITCHBOARD_GATEWAY_URL={gateway.url}")
    out(f"  export SWITCHBOARD_TOKEN={admin}   # admin (maria), expires in {minutes} min")
    out(f"  export USER_TOKEN={user}   # dana, expires in {minutes} min")
    out("  # when they expire (HTTP 401), issue new ones from the gateway's data:")
    for subject, scopes, name in (
        ("maria", ADMIN_SCOPES, "SWITCHBOARD_TOKEN"),
        ("dana", USER_SCOPES, "USER_TOKEN"),
    ):
        out(
            f"  #   export {name}=$(switchboard token issue --sub {subject} "
            f"--scope '{scopes}' --ttl {minutes}m --data-dir {gateway.data_dir})"
        )
    out("  switchboard flows add examples/flows/quote-flow.yaml")
    out(f"  switchboard flows run quote-flow --input '{order}' --wait --token \"$USER_TOKEN\"")
    out('  switchboard flows runs quote-flow --token "$USER_TOKEN"')
    wait_for_ctrl_c(out)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{response.request.method} {response.request.url}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _wait(
    dana: httpx.Client, run_id: str | None, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        if run_id is None:
            runs = _ok_list(dana.get("/flows/quote-flow/runs"))
            run = _ok(dana.get(f"/flows/quote-flow/runs/{runs[0]['id']}")) if runs else None
        else:
            run = _ok(dana.get(f"/flows/quote-flow/runs/{run_id}"))
        if run is not None and done(run):
            return run
        if time.monotonic() > deadline:
            raise DemoError(f"the flow run did not get there in 60 s: {run}")
        time.sleep(0.1)


def _ok_list(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code >= 300:
        raise DemoError(f"{response.request.method} {response.request.url}: {response.text}")
    found: list[dict[str, Any]] = response.json()
    return found

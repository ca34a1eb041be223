"""`switchboard demo`: a customer request that crosses three vendors' agents.

Starts, on 127.0.0.1 and free ports: the gateway (embedded SQLite in a temp
dir), the support agent (A2A 1.0, official SDK), the sales agent (an
OpenAI-compatible endpoint, served by the gateway as an A2A agent) and the
inventory MCP server (official MCP SDK) -- the last three from ``examples/``.
It registers them, then plays the story as the user ``dana``, who holds
``support:write sales:quote inventory:read``:

1. dana asks support for 500 units; support delegates to sales (token
   exchange: sub = dana, act = support); sales checks stock at the inventory
   server (allowed) and tries to reserve it (refused: no ``inventory:write``);
2. dana asks for a better price: sales' ``discount`` skill needs a manager's
   approval; the demo, as the admin, approves it;
3. the delegation tree, from the audit log.

Everything stops at the end (and on failure and Ctrl-C) unless ``--keep``.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from gateway.demo.servers import (
    DemoError,
    Server,
    bound_socket,
    console_lines,
    load_example,
    quiet_libraries,
    wait_for_ctrl_c,
)
from gateway.demo.tree import render
from gateway.settings import Settings
from policies.scopes import ADMIN_SCOPE

USER = "dana"
USER_SCOPES = "support:write sales:quote inventory:read"
POLICY = """\
version: 1
defaults:
  max_depth: 4
agents:
  support:
    require: [support:write]
    grant: [support:write, sales:quote, inventory:read, inventory:write]
  sales:
    require: [sales:quote]
    grant: [sales:quote, inventory:read, inventory:write]
    skills:
      discount:
        approval: true          # a manager approves every extra discount
  inventory:
    grant: [inventory:read, inventory:write]
    tools:
      check_stock:
        require: [inventory:read]
      reserve_stock:
        require: [inventory:write]
"""
ORDER = {"sku": "X-100", "quantity": 500, "customer": "ACME"}


@dataclass
class Demo:
    out: Callable[[str], None]
    gateway_url: str = ""
    settings: Settings | None = None
    servers: dict[str, Server] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    # the example agents' view of the gateway (URL, their client secret)
    sales_gw: Any = None
    support_gw: Any = None

    def token(self, subject: str, scopes: str) -> str:
        from gateway.delegation.dev_tokens import issue_dev_token

        assert self.settings is not None
        return issue_dev_token(self.settings, subject, frozenset(scopes.split()), 3600)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {self.tokens['admin']}"},
            timeout=30,
            trust_env=False,
        )


def run(
    data_dir: Path | None,
    keep: bool,
    out: Callable[[str], None] = print,
    port: int | None = None,
) -> int:
    """Play the story; 0 when it completed. Everything started is stopped."""
    started = time.monotonic()
    quiet_libraries()
    with ExitStack() as stack:
        if data_dir is None:
            temp = tempfile.mkdtemp(prefix="switchboard-demo-")
            stack.callback(shutil.rmtree, temp, True)
            data_dir = Path(temp)
        data_dir.mkdir(parents=True, exist_ok=True)
        demo = Demo(out)
        try:
            _start(demo, data_dir, stack, port)
            _register(demo)
            ok = _story(demo)
        except DemoError as exc:
            out(f"demo failed: {exc}")
            return 1
        out(f"\n(the story took {time.monotonic() - started:.1f} s)")
        if keep:
            _explore(demo, data_dir)
        return 0 if ok else 1


def _start(demo: Demo, data_dir: Path, stack: ExitStack, port: int | None = None) -> None:
    from gateway.app import create_app

    inventory = load_example("inventory_mcp", "server.py")
    sales = load_example("sales_model", "server.py")
    support = load_example("support_agent", "agent.py")

    gateway_sock = bound_socket(port=port or 0)
    port = gateway_sock.getsockname()[1]
    demo.gateway_url = url = f"http://127.0.0.1:{port}"
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    demo.settings = Settings.load(
        None,
        dev=True,
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        public_url=url,
        policy_file=policy,
        secrets={"sales": SecretStr(sales.API_KEY)},
        health_check_interval_seconds=3600,
    )
    demo.sales_gw = sales.Gateway(url)
    demo.support_gw = support.Gateway(url)
    for name, build in (
        ("inventory", lambda s: inventory.app()),
        ("sales", lambda s: sales.app(demo.sales_gw)),
        ("support", lambda s: support.app(s.url, demo.support_gw)),
        ("gateway", lambda s: create_app(demo.settings)),
    ):
        server = Server(name, gateway_sock if name == "gateway" else None)
        stack.callback(server.stop)
        demo.servers[name] = server.start(build(server))
    demo.tokens["admin"] = demo.token("admin", ADMIN_SCOPE)
    demo.tokens[USER] = demo.token(USER, USER_SCOPES)


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise DemoError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def _register(demo: Demo) -> None:
    out, servers = demo.out, demo.servers
    out(f"Switchboard at {demo.gateway_url} (dev mode, SQLite)")
    with demo.admin() as admin:
        _check(
            admin.post(
                "/mcp-servers",
                json={
                    "name": "Inventory",
                    "id": "inventory",
                    "url": servers["inventory"].url + "/mcp",
                },
            ),
            "registering the inventory MCP server",
        )
        _check(
            admin.post(
                "/vendor-agents",
                json={
                    "id": "sales",
                    "name": "Sales",
                    "description": "Quotes bulk orders (an OpenAI-compatible endpoint).",
                    "upstream": {
                        "type": "openai",
                        "base_url": servers["sales"].url + "/v1",
                        "model": "sales-quote-1",
                        "system_prompt": "You are the sales desk. Quote bulk orders.",
                    },
                    "skills": [
                        {"id": "quote", "name": "Quote", "instructions": "Skill: quote."},
                        {"id": "discount", "name": "Discount", "instructions": "Skill: discount."},
                    ],
                    "api_key_secret": "sales",
                    "token_header": "X-Switchboard-Token",
                },
            ),
            "registering the sales agent",
        )
        _check(
            admin.post("/agents", json={"card_url": servers["support"].url, "id": "support"}),
            "registering the support agent",
        )
        for agent, gw in (("support", demo.support_gw), ("sales", demo.sales_gw)):
            issued = _check(
                admin.post(f"/agents/{agent}/credentials", json={"method": "client_secret"}),
                f"issuing {agent}'s credential",
            )
            gw.client_secret = issued["client_secret"]
        # The gateway connects to the MCP server in the background; wait for its tools.
        deadline = time.monotonic() + 15
        while True:
            server = _check(admin.get("/mcp-servers/inventory"), "reading the MCP server")
            if {"check_stock", "reserve_stock"} <= {t.get("name") for t in server.get("tools", [])}:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the inventory server's tools never showed up: {server}")
            time.sleep(0.1)
    out("registered: support (A2A 1.0 agent), sales (OpenAI-compatible), inventory (MCP server)")
    out(f"user {USER} holds: {USER_SCOPES}\n")


def _send(demo: Demo, text: str, data: dict[str, Any]) -> str:
    message = {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_USER",
        "parts": [{"text": text}, {"data": data}],
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    headers = {
        "Authorization": f"Bearer {demo.tokens[USER]}",
        "A2A-Version": "1.0",
        "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
    }
    answer = _check(
        httpx.post(f"{demo.gateway_url}/a2a/support", json=body, headers=headers, timeout=90),
        "calling support",
    )
    if "error" in answer:
        raise DemoError(f"support answered an error: {answer['error']}")
    result = answer["result"]
    parts = result.get("message", {}).get("parts") or [
        p for a in result.get("task", {}).get("artifacts", []) for p in a.get("parts", [])
    ]
    return " ".join(p.get("text", "") for p in parts)


def _story(demo: Demo) -> bool:
    out, ok = demo.out, True
    out(f"1. {USER} -> support: I need 500 x X-100 for ACME by Friday. What's the price?")
    answer = _send(demo, "I need 500 x X-100 for ACME by Friday. What's the price?", ORDER)
    out(f"   support: {answer}\n")
    for expected in (
        "stock: 1240 x X-100",
        "quote for ACME",
        "reservation not made",
        "inventory:write",
    ):
        if expected not in answer:
            out(f"   !! expected {expected!r} in the answer")
            ok = False
    ok = _approval_step(demo) and ok
    out("3. The delegation tree (GET /audit, user dana):\n")
    with demo.admin() as admin:
        records = _check(
            admin.get("/audit", params={"user": USER, "limit": 200}), "reading the audit log"
        )
    for line in render(records["items"]):
        out("   " + line)
    out("")
    out("The story completed." if ok else "The story did NOT complete as expected (see !! above).")
    return ok


def _approval_step(demo: Demo) -> bool:
    out = demo.out
    out(f"2. {USER} -> support: Can you do better on the price?")
    out("   (sales' discount skill has approval: true in the policy)")
    with demo.admin() as admin, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            _send, demo, "Can you do better on the price?", {**ORDER, "ask_discount": True}
        )
        deadline = time.monotonic() + 30
        while True:
            page = _check(admin.get("/approvals", params={"state": "pending"}), "listing approvals")
            items = page.get("items", [])
            if items:
                break
            if pending.done() or time.monotonic() > deadline:
                seen = pending.result()[:200] if pending.done() else "timed out"
                out(f"   !! the discount was not held for approval: {seen}")
                return False
            time.sleep(0.1)
        held = items[0]
        who = held["requested_by"]
        chain = " -> ".join([who["subject"], *who["actors"][1:], held["target"]])
        out(f"   waiting for approval {held['id']}: {chain} ({held.get('action')})")
        for reason in held.get("reasons", []):
            out(f"     why: {reason}")
        out('   admin approves it (POST /approvals/{id} {"decision": "approve"})')
        _check(
            admin.post(
                f"/approvals/{held['id']}",
                json={"decision": "approve", "reason": "ACME is a key account"},
            ),
            "approving",
        )
        answer = pending.result(timeout=60)
    out(f"   support: {answer}\n")
    if "quote for ACME" not in answer:
        out("   !! expected a quote after the approval")
        return False
    return True


def _explore(demo: Demo, data_dir: Path) -> None:
    out = demo.out
    out("\nStill running (--keep). Try:")
    out(f"  gateway     {demo.gateway_url}   (API docs: {demo.gateway_url}/docs)")
    for name in ("support", "sales", "inventory"):
        out(f"  {name:<11} {demo.gateway_url}/a2a/{name}   (upstream {demo.servers[name].url})")
    out(f"  MCP         {demo.gateway_url}/mcp")
    for line in console_lines(demo.gateway_url):
        out(line)
    out(f"  data dir    {data_dir}")
    out(f"\n  export SWITCHBOARD_GATEWAY_URL={demo.gateway_url}")
    out(f"  export SWITCHBOARD_TOKEN={demo.tokens['admin']}   # admin, 1 h")
    out(f"  # {USER}'s token ({USER_SCOPES}):\n  export USER_TOKEN={demo.tokens[USER]}")
    out("  switchboard audit tail        # then: switchboard agents list, switchboard mcp list")
    wait_for_ctrl_c(out)

"""`switchboard demo --scenario consent`: a vendor that trusts only its own logins.

A vendor's MCP server (built, with its OAuth authorization server, from the
official `mcp` SDK's own server-side auth: `gateway.demo.vendor`) accepts
only tokens its own authorization server issued. Registered with the
`user_oauth` credential, it is listed once the admin who registered it
connects their account there. Alice calls its `whoami` tool through `/mcp`
before connecting: she is told where to connect, and nothing reaches the
vendor. She connects -- the consent round trip a browser makes through the
console, PKCE and all -- and calls again: the vendor sees *alice*, not the
gateway, not the admin. Bob connects and sees himself. Alice disconnects: her
token is revoked at the vendor, and her next call is refused again.

Everything on 127.0.0.1 and free ports: the vendor in this process, the
gateway in a process of its own (SQLite in a temp dir). Exit status 0 when
the story went as told.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.demo.process import GatewayProcess
from gateway.demo.servers import DemoError, console_lines, quiet_libraries, wait_for_ctrl_c
from gateway.demo.vendor import Vendor

POLICY = "version: 1\n"
SERVER = "crm"
TOOL = f"{SERVER}__whoami"


def run(
    data_dir: Path | None,
    out: Callable[[str], None],
    *,
    keep: bool = False,
    port: int | None = None,
) -> int:
    temp = None
    if data_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="switchboard-consent-demo-"))
        data_dir = temp
    quiet_libraries()
    vendor = Vendor()
    gateway: GatewayProcess | None = None
    try:
        vendor.start()
        data_dir.mkdir(parents=True, exist_ok=True)
        policy = data_dir / "policy.yaml"
        policy.write_text(POLICY)
        gateway = GatewayProcess(data_dir / "gateway", policy_file=policy, port=port)
        gateway.start()
        out(f"gateway  {gateway.url} (pid {gateway.pid}, SQLite in {gateway.data_dir})")
        out(f"vendor   {vendor.mcp_url} (MCP server; trusts only {vendor.issuer})")
        played = _play(gateway, vendor, out)
        if keep:
            _explore(gateway, vendor, out)
        return played
    finally:
        if gateway is not None:
            gateway.stop()
        vendor.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _explore(gateway: GatewayProcess, vendor: Vendor, out: Callable[[str], None]) -> None:
    """Leave the gateway and the vendor running (--keep): connecting an
    account is a browser's round trip, to try by hand."""
    out("\nStill running (--keep). Try:")
    out(f"  gateway     {gateway.url}")
    for line in console_lines(gateway.url):
        out(line)
    out(f"  connect     {gateway.url}/ui/connections/{SERVER}/connect  (logged in to the console)")
    out(f"  vendor      {vendor.url}  (its login takes any user name, then asks for consent)")
    out(f"  MCP         {gateway.url}/mcp  (the vendor's tools, as {SERVER}__*)")
    out(f"\n  export SWITCHBOARD_GATEWAY_URL={gateway.url}")
    admin = gateway.token("admin", "switchboard:admin")
    out(f"  export SWITCHBOARD_TOKEN={admin}   # admin, 10 min")
    wait_for_ctrl_c(out)


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise DemoError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


def _connect(gateway: GatewayProcess, vendor: Vendor, user: str, scopes: str = "") -> None:
    """What the user's browser does: log in to the console, press Connect,
    log in and consent at the vendor, come back to the gateway."""
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        login = browser.get("/ui/login")
        csrf = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        _ok(
            browser.post("/ui/login/dev", data={"csrf": csrf, "subject": user, "scopes": scopes}),
            "logging in to the console",
        )
        started = browser.get("/ui/connections/crm/connect")
        if started.status_code != 303:
            raise DemoError(f"connecting {user}: HTTP {started.status_code} {started.text[:300]}")
        at_vendor = httpx.get(
            started.headers["location"], cookies=vendor.login(f"{user}@vendor"), timeout=30
        )
        back = at_vendor.headers.get("location", "")
        done = browser.get(back.removeprefix(gateway.url))
        if done.status_code != 303 or "connected=crm" not in done.headers.get("location", ""):
            raise DemoError(f"connecting {user}: the callback answered {done.status_code}")


def _call(gateway: GatewayProcess, user: str) -> types.CallToolResult:
    token = gateway.token(user, "")

    async def call() -> types.CallToolResult:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30)
        )
        async with (
            http,
            Client(
                streamable_http_client(gateway.url + "/mcp", http_client=http), mode="2026-07-28"
            ) as client,
        ):
            return await client.call_tool(TOOL, {})

    return asyncio.run(call())


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _play(gateway: GatewayProcess, vendor: Vendor, out: Callable[[str], None]) -> int:
    with gateway.client("admin", "switchboard:admin") as admin:
        body = {"name": "crm", "url": vendor.mcp_url, "credential": {"type": "user_oauth"}}
        record = _ok(admin.post("/mcp-servers", json=body), "registering the vendor's server")
        out(f"\n1. registered crm (user_oauth): {record['health']['detail']}")
        _connect(gateway, vendor, "admin", "switchboard:admin")
        deadline = time.monotonic() + 30
        while not _ok(admin.get("/mcp-servers/crm"), "reading crm")["tools"]:
            if time.monotonic() > deadline:
                raise DemoError("crm's tools were never listed")
            time.sleep(0.1)
        out("   the admin connected their account; crm's tools are listed with it")

    seen = len(vendor.calls)
    refused = _call(gateway, "alice")
    ok = refused.is_error and "/ui/connections/crm/connect" in _text(refused)
    ok = ok and len(vendor.calls) == seen
    out(f"\n2. alice calls {TOOL} before connecting: refused, nothing sent to the vendor")
    out(f"   {_text(refused)}")

    checks = [(3, "alice", "alice@vendor"), (4, "bob", "bob@vendor")]
    for step, user, expected in checks:
        _connect(gateway, vendor, user)
        answer = json.loads(_text(_call(gateway, user)))
        ok = ok and answer["subject"] == expected
        out(f"\n{step}. {user} connects (PKCE, consent at the vendor) and calls {TOOL}")
        out(f"   the vendor saw: {answer['subject']} with scopes {' '.join(answer['scopes'])}")

    with gateway.client("alice", "") as alice:
        mine = _ok(alice.get("/connections"), "listing alice's connections")["items"]
        _ok(alice.delete(f"/connections/{mine[0]['id']}"), "disconnecting alice")
    again = _call(gateway, "alice")
    ok = ok and bool(vendor.revoked) and again.is_error
    out("\n5. alice disconnects: her token is revoked at the vendor, her next call refused")
    out(f"   revoked at the vendor: {len(vendor.revoked)} token(s); the call: {_text(again)[:80]}")
    with gateway.client("admin", "switchboard:admin") as admin:
        events = _ok(
            admin.get("/audit", params={"kind": "all", "agent": "crm"}), "reading the audit"
        )
    outcomes = sorted({f"{e['event']}:{e['outcome']}" for e in events["items"]})
    out(f"\n6. the audit: {', '.join(outcomes)}")
    out("\nconsent story " + ("complete" if ok else "FAILED"))
    return 0 if ok else 1

"""What a connected account costs per call, against the credential it replaces.

    python -m bench.connected_accounts                 # 2 rounds of 400 calls per leg
    python -m bench.connected_accounts --calls 1000 --rounds 3

Two comparisons, each on the path real callers take. **MCP** (`tools/call`):
a `user_oauth` server against the same server behind a shared credential.
**A2A** (`SendMessage`, answered with a task, a working update, an artifact
and completion): the vendor's a2a-sdk agent whose card asks for each user's
own token (`/agent/`) against the very same agent taking the gateway's
minted token (`/open-agent/`); both through the same-version pass-through.

One vendor (`gateway.demo.vendor`: an MCP server that trusts only its own
authorization server, both the `mcp` SDK's) and one gateway in a process of
its own (`switchboard serve --dev`, SQLite, sealing on). The vendor's one MCP
server is registered twice: `crm` with `user_oauth` (the user connected
their account through the console first; each call reads the user's
connection from the vault and names it in the audit record) and `shared`
with a `static_header` carrying one token the vendor also honours (the
shared service credential this feature exists to replace). The load is the
official `mcp` client on 2026-07-28, one caller awaiting each call; the legs
alternate per round. `gw µs/call` is the gateway process's CPU per call; the
ratio is taken within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken

from bench import ports
from bench.a2a_forwarding import _cpu_seconds
from gateway.demo.consent_story import _connect
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import quiet_libraries
from gateway.demo.vendor import Vendor

SHARED_TOKEN = "bench-shared-service-token"  # noqa: S105 - a test value


def _wait_for_tools(gateway: GatewayProcess, server: str) -> None:
    deadline = time.monotonic() + 30
    with gateway.client("admin", "switchboard:admin") as admin:
        while not admin.get(f"/mcp-servers/{server}").json().get("tools"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{server}'s tools were never listed")
            time.sleep(0.1)


async def _calls(url: str, token: str, tool: str, count: int) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        await c.call_tool(tool, {})  # warm
        for _ in range(count):
            result = await c.call_tool(tool, {})
            if result.is_error:
                raise SystemExit(f"{tool} failed: {result.content}")


def _leg(gateway: GatewayProcess, token: str, tool: str, count: int) -> float:
    """Gateway CPU µs per call."""
    before = _cpu_seconds(gateway.pid)
    asyncio.run(_calls(gateway.url + "/mcp", token, tool, count))
    return (_cpu_seconds(gateway.pid) - before) / count * 1e6


def _connect_to(gateway: GatewayProcess, vendor: Vendor, user: str, upstream: str) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as browser:
        login = browser.get("/ui/login")
        csrf = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        browser.post("/ui/login/dev", data={"csrf": csrf, "subject": user, "scopes": ""})
        started = browser.get(f"/ui/connections/{upstream}/connect")
        at_vendor = httpx.get(
            started.headers["location"], cookies=vendor.login(f"{user}@vendor"), timeout=30
        )
        done = browser.get(at_vendor.headers["location"].removeprefix(gateway.url))
        if done.status_code != 303:
            raise SystemExit(f"connecting {user} to {upstream}: HTTP {done.status_code}")


def _a2a_leg(gateway: GatewayProcess, token: str, agent: str, count: int) -> float:
    """Gateway CPU µs per SendMessage (JSON-RPC, A2A 1.0)."""
    headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        before = _cpu_seconds(gateway.pid)
        for index in range(count):
            message = {
                "messageId": f"m-{agent}-{index}-{time.monotonic_ns()}",
                "role": "ROLE_USER",
                "parts": [{"text": "hi"}],
                "metadata": {"skill": "whoami"},
            }
            body = {"jsonrpc": "2.0", "id": index, "method": "SendMessage"}
            answer = client.post(f"/a2a/{agent}", json={**body, "params": {"message": message}})
            task = answer.json().get("result", {}).get("task", {})
            if task.get("status", {}).get("state") != "TASK_STATE_COMPLETED":
                raise SystemExit(f"{agent}: {answer.text[:300]}")
        return (_cpu_seconds(gateway.pid) - before) / count * 1e6


def _a2a(gateway: GatewayProcess, vendor: Vendor, calls: int, rounds: int) -> None:
    with gateway.client("admin", "switchboard:admin") as admin:
        for agent, path in (("vendor-agent", "agent"), ("open-agent", "open-agent")):
            card = f"{vendor.url}/{path}/.well-known/agent-card.json"
            answer = admin.post("/agents", json={"card_url": card, "id": agent})
            if answer.status_code != 201:
                raise SystemExit(f"registering {agent}: {answer.text}")
    _connect_to(gateway, vendor, "alice", "vendor-agent")
    token = gateway.token("alice", "")
    print(f"A2A SendMessage: {calls} calls per leg, {rounds} rounds")
    print(f"{'round':>5} {'minted µs/call':>15} {'user_oauth µs/call':>19} {'ratio':>6}")
    _a2a_leg(gateway, token, "open-agent", 50)  # warm both paths, unmeasured
    _a2a_leg(gateway, token, "vendor-agent", 50)
    ratios = []
    for round_ in range(1, rounds + 1):
        minted = _a2a_leg(gateway, token, "open-agent", calls)
        own = _a2a_leg(gateway, token, "vendor-agent", calls)
        ratios.append(own / minted)
        print(f"{round_:>5} {minted:>15,.0f} {own:>19,.0f} {own / minted:>5.2f}x")
    print(f"median ratio {statistics.median(ratios):.2f}x (user_oauth over a minted token)")


def start_vendor() -> Vendor:
    """The vendor, on a port of `--ports` when a range is given."""
    return Vendor(access_seconds=3600).start(port=ports.from_range())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    ports.add_argument(parser)
    args = parser.parse_args()
    quiet_libraries()
    root = Path(tempfile.mkdtemp(prefix="bench-connected-"))
    vendor = start_vendor()
    gateway = GatewayProcess(
        root / "gateway",
        port=ports.from_range(),
        settings={"secret_key": "a-sealing-secret-for-the-connected-accounts-bench"},
    )
    try:
        gateway.start()
        # The vendor honours one long-lived service token too: the shared leg's.
        vendor.provider.access[SHARED_TOKEN] = AccessToken(
            token=SHARED_TOKEN,
            client_id="service",
            scopes=list(vendor.scopes),
            expires_at=int(time.time()) + 86400,
            resource=vendor.mcp_url,
            subject="service@vendor",
        )
        with gateway.client("admin", "switchboard:admin") as admin:
            for name, credential, resource in (
                ("crm", {"type": "user_oauth"}, None),
                (
                    "shared",
                    {"type": "static_header", "value": f"Bearer {SHARED_TOKEN}"},
                    "urn:bench:shared",  # one resource per target: the URL is crm'
                ),
            ):
                body = {"name": name, "url": vendor.mcp_url, "credential": credential}
                if resource:
                    body["resource"] = resource
                answer = admin.post("/mcp-servers", json=body)
                if answer.status_code != 201:
                    raise SystemExit(f"registering {name}: {answer.text}")
        _connect(gateway, vendor, "admin", "switchboard:admin")
        _wait_for_tools(gateway, "crm")
        _connect(gateway, vendor, "alice")
        token = gateway.token("alice", "")
        print(f"MCP tools/call: {args.calls} calls per leg, {args.rounds} rounds")
        print(f"{'round':>5} {'shared µs/call':>15} {'user_oauth µs/call':>19} {'ratio':>6}")
        _leg(gateway, token, "shared__whoami", 50)  # warm both paths, unmeasured
        _leg(gateway, token, "crm__whoami", 50)
        ratios = []
        for round_ in range(1, args.rounds + 1):
            shared = _leg(gateway, token, "shared__whoami", args.calls)
            own = _leg(gateway, token, "crm__whoami", args.calls)
            ratios.append(own / shared)
            print(f"{round_:>5} {shared:>15,.0f} {own:>19,.0f} {own / shared:>5.2f}x")
        print(
            f"median ratio {statistics.median(ratios):.2f}x (user_oauth over a shared credential)"
        )
        _a2a(gateway, vendor, args.calls, args.rounds)
        return 0
    except httpx.HTTPError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
        vendor.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

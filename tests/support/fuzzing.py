"""What the fuzzers in tests/fuzz share: how many examples to run, and a
seeded deployment for them to hammer.

The deployment is a real gateway on 127.0.0.1 (SQLite or PostgreSQL) with
real upstreams behind it: an A2A 1.0 agent (`worker`), an A2A 0.3-only agent
(`legacy`), the same 1.0 agent once more held for approval (`held`), a
REST-webhook vendor agent (`tickets`), and an MCP server (`alpha`). Some
approvals exist, pending and decided. `Deployment.known` names the real ids,
so that a fuzzer's path parameters and params can hit real records
sometimes; `Deployment.seed()` puts back whatever a fuzzed DELETE removed.

`SWITCHBOARD_FUZZ_EXAMPLES` sets the examples per operation or method (the
default keeps CI short; `make fuzz` runs many more).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
from pydantic import SecretStr

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import legacy_worker_agent, worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import send_message_body
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all

POLICY = """\
agents:
  held:
    approval: true
"""
SEALING_SECRET = "fuzzing-sealing-secret-0123456789abcdef"
USER = "fuzzer"


def examples(default: int) -> int:
    """Examples per operation: `SWITCHBOARD_FUZZ_EXAMPLES`, else ``default``."""
    configured = os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "").strip()
    return int(configured) if configured else default


@dataclass
class Deployment:
    gateway: Gateway
    worker: ServerThread
    legacy: ServerThread
    mcp: ServerThread
    admin_token: str
    user_token: str
    # Path parameter (or param) name -> real values on this deployment.
    known: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.gateway.url

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.admin_token)

    def seed(self) -> None:
        """Register whatever is missing (a fuzzed DELETE may have removed it)."""
        with self.admin() as admin:
            agents: dict[str, dict[str, Any]] = {
                "worker": {"card_url": self.worker.url + "/.well-known/agent-card.json"},
                "legacy": {"card_url": self.legacy.url + "/.well-known/agent-card.json"},
                "held": {"card": self._worker_card(), "resource": "urn:fuzz:held"},
            }
            for agent_id, body in agents.items():
                if admin.get(f"/agents/{agent_id}").status_code == 404:
                    _created(admin.post("/agents", json={"id": agent_id, **body}))
            if admin.get("/vendor-agents/tickets").status_code == 404:
                _created(admin.post("/vendor-agents", json=self._vendor()))
            servers = admin.get("/mcp-servers").json()["items"]
            if not any(s["name"] == "Alpha" for s in servers):
                created = admin.post("/mcp-servers", json={"name": "Alpha", "url": self._mcp_url})
                _created(created)
                servers.append(created.json())
            self.known["agent_id"] = ["worker", "legacy", "held", "tickets"]
            self.known["server_id"] = [s["id"] for s in servers]
            self.known["tool"] = ["add", "slow", "fail", "whoami"]
            approvals = admin.get("/approvals", params={"limit": 200}).json()["items"]
            if len(approvals) < 2:
                approvals = self._hold_two(admin)
            self.known["approval_id"] = [a["id"] for a in approvals]

    @property
    def _mcp_url(self) -> str:
        return self.mcp.url + "/mcp"

    def _worker_card(self) -> dict[str, Any]:
        card: dict[str, Any] = httpx.get(
            self.worker.url + "/.well-known/agent-card.json", verify=client_tls()
        ).json()
        return card

    def _vendor(self) -> dict[str, Any]:
        return {
            "id": "tickets",
            "name": "Tickets",
            "upstream": {
                "type": "rest",
                # Nobody listens there: a call through it fails upstream, as it may.
                "url": self.worker.url + "/hooks/tickets",
                "mapping": {"request": {"body": {"q": "{{text}}"}}},
            },
            "skills": [{"id": "lookup", "name": "Look up a ticket"}],
            "api_key": "fuzz-api-key",
        }

    def _hold_two(self, admin: httpx.Client) -> list[dict[str, Any]]:
        """Two calls to `held`: one left pending, one approved."""
        with self.gateway.client(self.user_token) as user:
            for n in range(2):
                answer = user.post(
                    "/a2a/held",
                    json=send_message_body(f"task seeded {n}", f"seed-{n}"),
                    headers={"A2A-Version": "1.0"},
                )
                assert answer.status_code == 200 and "result" in answer.json(), answer.text
        items: list[dict[str, Any]] = admin.get("/approvals").json()["items"]
        assert len(items) >= 2, items
        decided = admin.post(f"/approvals/{items[-1]['id']}", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        return items


def _created(response: httpx.Response) -> None:
    assert response.status_code == 201, response.text


def content_box() -> ToolBox:
    """The test tools, plus a resource, a resource template and a prompt with
    completions, so resources/*, prompts/* and completion/complete reach it."""
    box = ToolBox()

    @box.server.resource("note://x", mime_type="text/plain")
    def note() -> str:
        return "a note"

    @box.server.resource("note://by-id/{id}", mime_type="text/plain")
    def by_id(id: str) -> str:
        return f"note number {id}"

    @box.server.prompt(description="Greets someone.")
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    # The mcp SDK leaves MCPServer.completion() unannotated (its other decorators are typed).
    @box.server.completion()  # type: ignore[no-untyped-call, untyped-decorator]
    async def complete(ref: Any, argument: Any, context: Any) -> Any:
        return types.Completion(
            values=[n for n in ("alice", "bob") if n.startswith(argument.value)]
        )

    return box


@contextlib.contextmanager
def deployment(data_dir: Path, database_url: str | None) -> Iterator[Deployment]:
    worker = worker_agent()
    legacy = legacy_worker_agent()
    mcp, _, _ = upstream_server(content_box())
    policy = data_dir / "policy.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY)
    gateway = start_gateway(
        data_dir / "data",
        database_url,
        policy_file=policy,
        secret_key=SEALING_SECRET,
        secrets={"fuzz": SecretStr("fuzz-secret")},
        upstream_timeout_seconds=5,
        # A fuzzed subscription to a held task would wait for its approval.
        stream_max_seconds=3,
    )
    try:
        made = Deployment(
            gateway,
            worker,
            legacy,
            mcp,
            admin_token=gateway.token("admin", ADMIN_SCOPE, ttl=3600),
            user_token=gateway.token(USER, "", ttl=3600),
        )
        made.seed()
        yield made
    finally:
        stop_all(gateway.server, worker, legacy, mcp)

"""`switchboard demo --scenario conflict`: two vendors' agents, one customer.

The support desk escalates customer C-1042's complaint, which opens a
**hold** on that customer (`coordination:` in the policy). Minutes later the
sales desk -- another vendor's agent that knows nothing of support -- is asked
to send C-1042 an upsell: the gateway **defers** it, names the hold in
`policies/explain`, and the caller holds a task in `TASK_STATE_SUBMITTED`.
The sales desk is not called. Support resolves the complaint: the hold
closes, the upsell is **released** -- decided again and made for the user who
asked -- and completes. The audit shows each step with the rule's name.

Everything on 127.0.0.1 and free ports: both desks (A2A agents on the
official a2a-sdk) in this process, the gateway in a process of its own
(SQLite in a temp dir). Exit status 0 when the story went as told.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from a2a.types import AgentSkill

from gateway.demo.flow_agents import SalesDesk, sales_card, sales_desk_app
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import DemoError, Server, quiet_libraries

POLICY = """\
version: 1
coordination:
  entities:
    - entity: customer
      agents: [support, sales]
      key: customer_id
  rules:
    - name: support-first
      kind: hold
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales], skills: [upsell]}
      ttl: PT24H
      mode: defer
"""
CUSTOMER = {"customer_id": "C-1042", "customer": "ACME", "sku": "X-100", "quantity": 20}
A2A = {"A2A-Version": "1.0"}


def _card(url: str, name: str, skills: list[str]) -> Any:
    card = sales_card(url)
    card.name = name
    del card.skills[:]
    for skill in skills:
        card.skills.append(
            AgentSkill(id=skill, name=skill.title(), description=f"{skill}s.", tags=["demo"])
        )
    return card


def run(data_dir: Path | None, out: Callable[[str], None], port: int | None = None) -> int:
    temp = None
    if data_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="switchboard-conflict-demo-"))
        data_dir = temp
    quiet_libraries()
    support_desk, sales_desk = SalesDesk(), SalesDesk()
    support, sales = Server("support desk"), Server("sales desk")
    gateway: GatewayProcess | None = None
    try:
        support.start(
            sales_desk_app(
                support.url,
                support_desk,
                _card(support.url, "Support desk", ["escalate", "resolve"]),
            )
        )
        sales.start(
            sales_desk_app(sales.url, sales_desk, _card(sales.url, "Sales desk", ["upsell"]))
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        policy = data_dir / "policy.yaml"
        policy.write_text(POLICY)
        gateway = GatewayProcess(data_dir / "gateway", policy_file=policy, port=port)
        gateway.start()
        out(f"gateway  {gateway.url} (pid {gateway.pid}, SQLite in {gateway.data_dir})")
        out(f"support  {support.url} (A2A agent, vendor one)")
        out(f"sales    {sales.url} (A2A agent, vendor two)")
        out("rule     support-first: while support handles a customer, sales waits (defer)")
        with gateway.client("admin", "switchboard:admin") as admin:
            for agent_id, server in (("support", support), ("sales", sales)):
                body = {"card_url": server.url + "/.well-known/agent-card.json", "id": agent_id}
                _ok(admin.post("/agents", json=body))
        return _play(gateway, sales_desk, out)
    finally:
        if gateway is not None:
            gateway.stop()
        for server in (support, sales):
            server.stop()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _send(client: httpx.Client, agent: str, skill: str, text: str) -> dict[str, Any]:
    message = {
        "messageId": f"demo-{agent}-{skill}",
        "role": "ROLE_USER",
        "parts": [{"text": text}, {"data": CUSTOMER}],
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": message, "metadata": {"skill": skill}},
    }
    answer = _ok(client.post(f"/a2a/{agent}", json=body, headers=A2A))
    if "error" in answer:
        raise DemoError(f"{agent} {skill}: {answer['error']}")
    task: dict[str, Any] = answer["result"]["task"]
    return task


def _play(gateway: GatewayProcess, sales_desk: SalesDesk, out: Callable[[str], None]) -> int:
    customer = CUSTOMER["customer_id"]
    with gateway.client("dana", "") as dana:
        escalated = _send(dana, "support", "escalate", "The customer's order arrived broken.")
        out(f"\n1. support escalates {customer}: task {escalated['status']['state']}")
        out(f"   hold support-first opened on customer {customer}")
        upsell = _send(dana, "sales", "upsell", "Offer the premium plan.")
        state = upsell["status"]["state"]
        said = upsell["status"]["message"]["parts"][0]["text"]
        out(f"2. sales is asked to upsell {customer}: task {state}")
        out(f"   {said}")
    with gateway.client("admin", "switchboard:admin") as admin:
        explained = _ok(
            admin.post(
                "/policies/explain",
                json={"user_scopes": "", "target": "sales", "action": "upsell", "input": CUSTOMER},
            )
        )
        blocked = explained["coordination"]["blocked_by"]
        for held in blocked:
            out(f"   explain: {held['reason']}")
    called_before = sales_desk.count("upsell")
    with gateway.client("dana", "") as dana:
        _send(dana, "support", "resolve", "Replacement shipped; complaint resolved.")
        out(f"3. support resolves {customer}: the hold closes")
        done = _wait(dana, upsell["id"])
        out(f"4. the upsell is released and made for dana: task {done['status']['state']}")
    with gateway.client("admin", "switchboard:admin") as admin:
        records = _ok(admin.get("/audit", params={"kind": "all", "limit": "50"}))["items"]
    out("\naudit (oldest first):")
    trail = [
        r
        for r in reversed(records)
        if r["event"] in ("coordination", "approval") or r["outcome"] == "deferred"
    ]
    for record in trail:
        said = record["detail"] if record["event"] == "approval" else record["reasons"][0]
        what = f"{record['event']:<16} {record['outcome']:<12} {record['target'] or '':<8}"
        out(f"  {what} {(said or '')[:72]}")
    checks = {
        "the upsell was deferred, not refused": state == "TASK_STATE_SUBMITTED",
        "explain named the hold": any(h["rule"] == "support-first" for h in blocked),
        "sales was not called while the hold was open": called_before == 0,
        "the upsell completed once released": done["status"]["state"] == "TASK_STATE_COMPLETED",
        "sales was called exactly once": sales_desk.count("upsell") == 1,
        "the hold's opening and closing are audited": {"hold_opened", "hold_closed"}
        <= {r["outcome"] for r in trail},
    }
    for what, held_up in checks.items():
        out(f"  [{'ok' if held_up else 'FAILED'}] {what}")
    return 0 if all(checks.values()) else 1


def _wait(client: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}
        task: dict[str, Any] = _ok(client.post("/a2a/sales", json=body, headers=A2A))["result"]
        if task["status"]["state"] in ("TASK_STATE_COMPLETED", "TASK_STATE_FAILED"):
            return task
        if time.monotonic() > deadline:
            raise DemoError(f"the upsell was not released in 30 s: {task}")
        time.sleep(0.2)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{response.request.method} {response.request.url}: {response.text}")
    body: dict[str, Any] = response.json()
    return body

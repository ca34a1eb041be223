"""Coordination rules over real HTTP: SDK agents behind the gateway, the policy
file's holds, cooldowns and budgets per customer, on the A2A front door
(JSON-RPC and HTTP+JSON) and on `/mcp` (a federated tool), shown by explain,
listed and released by an admin, audited with the rule's name."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis
from mcp import MCPError

from gateway.delegation.pipeline import Caller, DelegationDenied
from gateway.mcp.approvals import STATUS_TOOL
from gateway.mcp.errors import DELEGATION_REFUSED
from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, agent_card, inspecting_agent
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.services import local_redis
from tests.support.vendor_servers import API_KEY, webhook_server
from tests.support.waiting import wait_for, wait_for_awaited

POLICY = """\
coordination:
  entities:
    - entity: customer
      agents: [support, sales, tickets]
      key: customer_id
    - entity: customer
      agents: [calc]
      skills: [add]
      key: a
    - entity: order
      agents: [sales]
      skills: [refund, credit]
      key: order_id
  rules:
    - name: support-first
      kind: hold
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales], skills: [upsell]}
      ttl: PT24H
    - name: support-first-then-follow-up
      kind: hold
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales], skills: [followup, promo]}
      ttl: PT24H
      mode: defer
    - name: calc-waits
      kind: hold
      entity: customer
      opened_by: {agents: [support], skills: [escalate]}
      closed_by: {agents: [support], skills: [resolve]}
      blocks: {agents: [calc], skills: [add]}
      ttl: PT1H
      mode: defer
    - name: follow-up-waits
      kind: cooldown
      entity: customer
      after: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales], skills: [followup]}
      duration: PT1H
      mode: defer
    - name: follow-ups-first
      kind: priority
      entity: customer
      order:
        - {agents: [sales], skills: [followup]}
        - {agents: [sales], skills: [promo]}
      ttl: PT1S
    - name: sales-waits
      kind: cooldown
      entity: customer
      after: {agents: [support], skills: [resolve]}
      blocks: {agents: [sales], skills: [upsell]}
      duration: PT2H
    - name: contact-cap
      kind: budget
      entity: customer
      calls: {agents: [sales], skills: [survey]}
      limit: 2
      per: P1D
    - name: one-ticket-a-day
      kind: budget
      entity: customer
      calls: {agents: [tickets]}
      limit: 1
      per: P1D
    - name: one-change-at-a-time
      kind: exclusive
      entity: order
      calls: {agents: [sales], skills: [refund, credit]}
      ttl: PT1M
      mode: defer
    - name: refunds-first
      kind: priority
      entity: order
      order:
        - {agents: [sales], skills: [refund]}
        - {agents: [sales], skills: [credit]}
      ttl: PT1M
    - name: one-sum-a-day
      kind: budget
      entity: customer
      calls: {agents: [calc], skills: [add]}
      limit: 1
      per: P1D
"""
HOOK = {
    "request": {"body": {"query": "{{text}}", "customer": "{{data.customer_id}}"}},
    "response": {"text": "$.answer"},
}
SKILLS = {
    "support": [{"id": "escalate"}, {"id": "resolve"}],
    "sales": [
        {"id": "upsell"},
        {"id": "survey"},
        {"id": "followup"},
        {"id": "promo"},
        {"id": "refund"},
        {"id": "credit"},
    ],
}


@dataclass
class Setup:
    gateway: Gateway
    recorders: dict[str, Recorder]
    token: str
    # The last audit record before the test began (the module's tests share
    # the gateway: a test reads the records of its own calls).
    audit_from: int = 0

    def send(
        self, agent: str, skill: str, data: dict[str, Any] | None, *, rest: bool = False
    ) -> httpx.Response:
        parts: list[dict[str, Any]] = [{"text": f"{skill} please"}]
        if data is not None:
            parts.append({"data": data})
        message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": parts}
        params = {"message": message, "metadata": {"skill": skill}}
        headers = {"Authorization": f"Bearer {self.token}", "A2A-Version": "1.0"}
        if rest:
            url = f"{self.gateway.url}/a2a/{agent}/message:send"
            return httpx.post(url, json=params, headers=headers, timeout=30, verify=client_tls())
        body = {"jsonrpc": "2.0", "id": "r1", "method": "SendMessage", "params": params}
        return httpx.post(
            f"{self.gateway.url}/a2a/{agent}",
            json=body,
            headers=headers,
            timeout=30,
            verify=client_tls(),
        )

    def calls(self, agent: str) -> int:
        return len(self.recorders[agent].calls())

    def audit(self) -> list[dict[str, Any]]:
        """The call records since the test began, newest first."""
        params = {"after_id": self.audit_from, "limit": 1000}
        with self.gateway.client() as admin:
            return list(reversed(admin.get("/audit", params=params).json()["items"]))

    def begin(self) -> Setup:
        """From here on, what the agents see and the audit says is this test's."""
        for recorder in self.recorders.values():
            recorder.clear()
            recorder.gate.set()
        with self.gateway.client() as admin:
            latest = admin.get("/audit", params={"kind": "all", "limit": 1}).json()["items"]
        self.audit_from = latest[0]["id"] if latest else 0
        return self


REDIS = local_redis(3)
STORES = ["database", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(scope="module", params=STORES)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """One gateway for the module's tests: each names customers, orders and
    flows of its own, and reads its own calls (`Setup.begin`)."""
    with _deployed(tmp_path_factory.mktemp("coordination"), request.param) as running:
        yield running


@pytest.fixture
def setup(deployment: Setup) -> Setup:
    return deployment.begin()


@pytest.fixture(params=STORES)
def own_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """A gateway of the test's own: the test restarts it."""
    with _deployed(tmp_path, request.param) as running:
        yield running


@contextlib.contextmanager
def _deployed(tmp_path: Path, store: str) -> Iterator[Setup]:
    """The gateway keeping the rules' state in its database, or in Redis."""
    redis_url = REDIS if store == "redis" else None
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    servers: list[ServerThread] = []
    recorders: dict[str, Recorder] = {}
    gateway: Gateway | None = None
    try:
        for agent_id, skills in SKILLS.items():
            server, recorder = inspecting_agent(
                lambda url, agent_id=agent_id, skills=skills: agent_card(
                    agent_id.title(), url, skills
                )
            )
            servers.append(server)
            recorders[agent_id] = recorder
        calc, calc_recorder, _ = upstream_server()
        servers.append(calc)
        recorders["calc"] = calc_recorder
        hook, hook_recorder, _ = webhook_server()
        servers.append(hook)
        recorders["tickets"] = hook_recorder
        gateway = start_gateway(tmp_path / "data", None, policy_file=policy, redis_url=redis_url)
        with gateway.client() as admin:
            for agent_id, server in zip(SKILLS, servers, strict=False):
                body = {"card_url": server.url, "id": agent_id}
                assert admin.post("/agents", json=body).status_code == 201
            body = {"name": "calc", "url": calc.url + "/mcp"}
            assert admin.post("/mcp-servers", json=body).status_code == 201, "calc"
            tickets = {
                "id": "tickets",
                "name": "Tickets",
                "upstream": {"type": "rest", "url": hook.url + "/hooks/tickets", "mapping": HOOK},
                "skills": [{"id": "lookup", "name": "Look up a ticket"}],
                "api_key": API_KEY,
                "api_key_header": "X-Api-Key",
            }
            assert admin.post("/vendor-agents", json=tickets).status_code == 201
        yield Setup(gateway, recorders, gateway.token("alice", ""))
    finally:
        # The gateway's server as it is now: a test may have restarted it.
        stop_all(*([gateway.server] if gateway else []), *servers)


def test_a_hold_keeps_sales_away_until_support_resolves(setup: Setup) -> None:
    assert setup.send("support", "escalate", {"customer_id": "C-1"}).status_code == 200
    held = setup.send("sales", "upsell", {"customer_id": "C-1"})
    assert held.status_code == 409, held.text
    error = held.json()["error"]
    assert "support-first" in error["message"] and "c-1" in error["message"]
    assert error["data"]["rule"] == "support-first"
    assert error["data"]["denial"] == "coordination"
    assert int(held.headers["Retry-After"]) > 23 * 3600  # the hold's ttl, 24 h
    assert held.json()["id"] == "r1"
    assert setup.calls("sales") == 0, "the held call reached the agent"
    # Another customer is not held.
    assert setup.send("sales", "upsell", {"customer_id": "C-2"}).status_code == 200
    # The HTTP+JSON binding says it in its own form.
    rest = setup.send("sales", "upsell", {"customer_id": "C-1"}, rest=True)
    assert rest.status_code == 409
    assert rest.json()["error"]["status"] == "ABORTED"
    with setup.gateway.client() as admin:
        listed = admin.get("/coordination/holds", params={"entity": "customer:C-1"}).json()
        assert {i["rule"] for i in listed["items"]} == {
            "support-first",
            "support-first-then-follow-up",
            "calc-waits",
        }
        (hold,) = [i for i in listed["items"] if i["rule"] == "support-first"]
        assert (hold["kind"], hold["key"]) == ("hold", "c-1")  # canonical
        assert hold["opened_by"] == {"subject": "alice", "agent": "support", "action": "escalate"}
        explained = admin.post(
            "/policies/explain",
            json={
                "user_scopes": "",
                "target": "sales",
                "action": "upsell",
                "input": {"customer_id": "C-1"},
            },
        ).json()
    assert explained["decision"] == "allow"  # the policy allows; the hold holds it back
    (blocked,) = explained["coordination"]["blocked_by"]
    assert blocked["rule"] == "support-first"
    assert blocked["until"] == hold["until"]
    # Support resolves: the hold closes, and the cooldown after a resolve starts.
    assert setup.send("support", "resolve", {"customer_id": "C-1"}).status_code == 200
    cooling = setup.send("sales", "upsell", {"customer_id": "C-1"})
    assert cooling.status_code == 409
    assert cooling.json()["error"]["data"]["rule"] == "sales-waits"
    assert 7000 < int(cooling.headers["Retry-After"]) <= 7200
    # An admin ends the cooldown: sales may go ahead.
    with setup.gateway.client() as admin:
        assert admin.delete("/coordination/holds/sales-waits/C-1").status_code == 200
        assert admin.delete("/coordination/holds/sales-waits/C-1").status_code == 404
    assert setup.send("sales", "upsell", {"customer_id": "C-1"}).status_code == 200
    records = setup.audit()
    outcomes = [(r["event"], r["outcome"], r["target"]) for r in records]
    assert ("coordination", "hold_opened", "support") in outcomes
    assert ("coordination", "hold_closed", "support") in outcomes
    assert ("coordination", "cooldown_started", "support") in outcomes
    assert ("coordination", "released", "support") in outcomes  # the call that began it
    refused = [r for r in records if r["outcome"] == "coordination"]
    assert len(refused) == 3 and all(r["decision"] == "deny" for r in refused)
    assert any("support-first" in " ".join(r["reasons"]) for r in refused)
    assert any("sales-waits" in " ".join(r["reasons"]) for r in refused)


def test_a_call_that_must_name_its_customer_and_does_not_is_refused(setup: Setup) -> None:
    missing = setup.send("sales", "upsell", None)
    assert missing.status_code == 400
    message = missing.json()["error"]["message"]
    assert "customer" in message and "customer_id" in message
    assert setup.calls("sales") == 0
    # Two customers in one message: the gateway would check one, the agent
    # might act on the other.
    message_body = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"data": {"customer_id": "N-1"}}, {"data": {"customer_id": "N-9"}}],
    }
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "SendMessage",
        "params": {"message": message_body, "metadata": {"skill": "upsell"}},
    }
    headers = {"Authorization": f"Bearer {setup.token}", "A2A-Version": "1.0"}
    two = httpx.post(
        f"{setup.gateway.url}/a2a/sales",
        json=body,
        headers=headers,
        timeout=30,
        verify=client_tls(),
    )
    assert two.status_code == 400
    assert "given twice" in two.json()["error"]["message"]
    # A key that is no string or integer.
    odd = setup.send("sales", "upsell", {"customer_id": {"id": 1}})
    assert odd.status_code == 400
    assert "string or an integer" in odd.json()["error"]["message"]
    assert setup.calls("sales") == 0
    # Nothing was taken: a valid call for the same customer goes through.
    assert setup.send("sales", "upsell", {"customer_id": "N-1"}).status_code == 200


def test_a_budget_caps_contacts_per_customer(setup: Setup) -> None:
    for _ in range(2):
        assert setup.send("sales", "survey", {"customer_id": 7}).status_code == 200
    capped = setup.send("sales", "survey", {"customer_id": 7})
    assert capped.status_code == 409
    assert "contact-cap" in capped.json()["error"]["message"]
    assert setup.calls("sales") == 2
    assert setup.send("sales", "survey", {"customer_id": 8}).status_code == 200
    with setup.gateway.client() as admin:
        (count,) = admin.get(
            "/coordination/holds", params={"entity": "customer:7", "rule": "contact-cap"}
        ).json()["items"]
    assert (count["kind"], count["count"]) == ("budget", 2)


def test_an_mcp_tool_is_held_back_with_the_rule_and_the_retry_hint(setup: Setup) -> None:
    async def calls() -> MCPError:
        async with mcp_client(setup.gateway.url + "/mcp", setup.token, "2026-07-28") as client:
            first = await client.call_tool("calc__add", {"a": 31, "b": 1})
            assert not first.is_error, first
            with pytest.raises(MCPError) as capped:
                await client.call_tool("calc__add", {"a": 31, "b": 2})
            other = await client.call_tool("calc__add", {"a": 30, "b": 2})
            assert not other.is_error, other
            return capped.value

    error = anyio.run(calls)
    assert error.error.code == DELEGATION_REFUSED
    assert isinstance(error.error.data, dict)
    assert error.error.data["rule"] == "one-sum-a-day"
    assert error.error.data["denial"] == "coordination"
    assert error.error.data["retry_after"] >= 1


def test_a_tool_call_admitted_without_arguments_is_one_the_rules_see(setup: Setup) -> None:
    """A tool call with no arguments (a flow's tool step with no input)
    is still a call the coordination rules decide: `calc__add` must name
    its customer (`a`), so it is refused, not admitted past the rules."""
    switchboard = setup.gateway.server.app.state.switchboard

    async def admitted() -> Any:
        caller = Caller.user(await switchboard.verifier.verify(setup.token))
        return await switchboard.mcp.call_tool("calc__add", None, caller=caller)

    with pytest.raises(DelegationDenied) as refused:
        setup.gateway.server.run(admitted())
    assert "customer" in str(refused.value), refused.value
    assert setup.calls("calc") == 0


def _task(setup: Setup, agent: str, task_id: str) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 9, "method": "GetTask", "params": {"id": task_id}}
    headers = {"Authorization": f"Bearer {setup.token}", "A2A-Version": "1.0"}
    answer = httpx.post(
        f"{setup.gateway.url}/a2a/{agent}",
        json=body,
        headers=headers,
        timeout=30,
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()["result"]
    return task


def _until(setup: Setup, agent: str, task_id: str, states: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        task = _task(setup, agent, task_id)
        return task if task["status"]["state"] in states else None

    return wait_for(reached, seconds=20, every=0.1, what=f"task {task_id} in {sorted(states)}")


def test_a_deferred_call_waits_for_the_hold_and_is_made_when_it_closes(setup: Setup) -> None:
    assert setup.send("support", "escalate", {"customer_id": "D-1"}).status_code == 200
    deferred = setup.send("sales", "followup", {"customer_id": "D-1"})
    assert deferred.status_code == 200, deferred.text
    task = deferred.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_SUBMITTED"
    said = task["status"]["message"]["parts"][0]["text"]
    assert "support-first-then-follow-up" in said and "deferred" in said
    # A lower-ranked call for the same customer gives up after the priority's ttl.
    promo = setup.send("sales", "promo", {"customer_id": "D-1"}).json()["result"]["task"]
    given_up = _until(setup, "sales", promo["id"], {"TASK_STATE_REJECTED"})
    assert given_up["status"]["state"] == "TASK_STATE_REJECTED", given_up
    assert "calls ranked before it go first" in given_up["status"]["message"]["parts"][0]["text"]
    # The deferred call is not made while the hold stands: the deferrals' job
    # has looked at it twice (woken) and left it waiting.
    setup.gateway.passes("coordination-deferrals", 2)
    assert _task(setup, "sales", task["id"])["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert setup.calls("sales") == 0, "a deferred call reached the agent"
    # Support resolves: the hold closes -- and the cooldown after a resolve,
    # which defers follow-ups too, starts in the same step: the call waits on.
    assert setup.send("support", "resolve", {"customer_id": "D-1"}).status_code == 200
    # The cooldown keeps the call waiting: looked at twice more, still waiting.
    setup.gateway.passes("coordination-deferrals", 2)
    assert _task(setup, "sales", task["id"])["status"]["state"] == "TASK_STATE_SUBMITTED"
    assert setup.calls("sales") == 0
    # An admin ends the cooldown: the follow-up is made, for alice.
    with setup.gateway.client() as admin:
        assert admin.delete("/coordination/holds/follow-up-waits/D-1").status_code == 200
    done = _until(setup, "sales", task["id"], {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED"})
    assert done["status"]["state"] == "TASK_STATE_COMPLETED", done
    (call,) = setup.recorders["sales"].calls()
    assert call.bearer is not None and call.bearer != setup.token  # a token minted for sales
    records = setup.audit()
    outcomes = {(r["event"], r["outcome"]) for r in records}
    assert ("a2a.SendMessage", "deferred") in outcomes
    assert ("approval", "approved") in outcomes and ("approval", "rejected") in outcomes
    released = [r for r in records if r["event"] == "approval" and r["outcome"] == "approved"]
    assert "by coordination" in released[0]["detail"]


def test_calls_an_exclusive_rule_defers_get_the_order_one_at_a_time_by_rank(
    setup: Setup,
) -> None:
    order = {"customer_id": "E-1", "order_id": "O-1"}
    sales = setup.recorders["sales"]
    sales.gate.clear()  # the first refund stays in flight, holding the order
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(setup.send, "sales", "refund", order)
        wait_for(sales.calls, seconds=20, what="the first refund reaching sales")
        assert len(sales.calls()) == 1
        # A credit, then a refund: both wait; the refund ranks first.
        waiting = []
        for skill in ("credit", "refund"):
            answer = setup.send("sales", skill, order)
            assert answer.status_code == 200, answer.text
            task = answer.json()["result"]["task"]
            assert task["status"]["state"] == "TASK_STATE_SUBMITTED", task
            assert "one-change-at-a-time" in task["status"]["message"]["parts"][0]["text"]
            waiting.append(task["id"])
        # Another order is not held.
        other = pool.submit(
            setup.send, "sales", "credit", {"customer_id": "E-1", "order_id": "O-2"}
        )
        # The other order's call is made; the deferred ones are not, however
        # often the deferrals' job looks (woken twice).
        wait_for(lambda: len(sales.calls()) >= 2, seconds=20, what="the other order's call")
        setup.gateway.passes("coordination-deferrals", 2)
        assert len(sales.calls()) == 2, "a deferred call reached the agent"
        with setup.gateway.client() as admin:
            held = admin.get("/coordination/holds", params={"entity": "order"}).json()
        assert [(h["rule"], h["key"]) for h in held["items"]] == [
            ("one-change-at-a-time", "o-1"),  # canonical
            ("one-change-at-a-time", "o-2"),
        ], held
        sales.gate.set()
        assert first.result(timeout=30).status_code == 200
        assert other.result(timeout=30).status_code == 200
    for task_id in waiting:
        done = _until(setup, "sales", task_id, {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED"})
        assert done["status"]["state"] == "TASK_STATE_COMPLETED", done
    made = [c.body or b"" for c in sales.calls() if b"O-1" in (c.body or b"")]
    skills = [next(s for s in (b"refund", b"credit") if s in body) for body in made]
    assert skills == [b"refund", b"refund", b"credit"], skills


def test_a_deferred_mcp_tool_call_is_collected_once_the_hold_closes(setup: Setup) -> None:
    assert setup.send("support", "escalate", {"customer_id": 41}).status_code == 200

    async def deferred() -> tuple[str, str]:
        async with mcp_client(setup.gateway.url + "/mcp", setup.token, "2026-07-28") as client:
            held = await client.call_tool("calc__add", {"a": 41, "b": 1})
            # (isError: `add` declares an outputSchema this note cannot match.)
            assert held.structured_content is not None
            assert held.structured_content["state"] == "pending"
            text = held.content[0].text  # type: ignore[union-attr]
            return str(held.structured_content["approval"]), text

    approval, text = anyio.run(deferred)
    assert "deferred" in text and "calc-waits" in text, text
    assert not _sums(setup), "the deferred call reached the server"
    assert setup.send("support", "resolve", {"customer_id": 41}).status_code == 200

    async def collect() -> Any:
        async with mcp_client(setup.gateway.url + "/mcp", setup.token, "2026-07-28") as client:

            async def decided() -> Any:
                result = await client.call_tool(STATUS_TOOL, {"approval": approval})
                state = (result.structured_content or {}).get("state")
                return result if state != "pending" else None

            return await wait_for_awaited(decided, 20, every=0.2, what="the approval decided")

    result = anyio.run(collect)
    assert not result.is_error, result
    assert "42" in result.content[0].text, result
    assert len(_sums(setup)) == 1


def _sums(setup: Setup) -> list[Any]:
    return [c for c in setup.recorders["calc"].calls() if b"tools/call" in (c.body or b"")]


FOLLOW_FLOW = {
    "format": "switchboard.flow/v1",
    "id": "follow-flow",
    "name": "Follow up a customer",
    "input": {
        "type": "object",
        "properties": {"customer": {"type": "string"}},
        "required": ["customer"],
    },
    "steps": [
        {
            "id": "follow",
            "call": {"agent": "sales", "skill": "followup"},
            "input": "{customer_id: input.customer}",
        }
    ],
}


def follow_flow(flow_id: str) -> dict[str, Any]:
    """FOLLOW_FLOW under an id of the test's own (the module's tests share a gateway)."""
    return {**FOLLOW_FLOW, "id": flow_id}


def test_a_flow_step_a_rule_defers_waits_and_then_runs(setup: Setup) -> None:
    with setup.gateway.client() as admin:
        assert admin.post("/flows", json=follow_flow("follow-f1")).status_code == 201
    assert setup.send("support", "escalate", {"customer_id": "F-1"}).status_code == 200
    headers = {"Authorization": f"Bearer {setup.token}"}
    with httpx.Client(
        base_url=setup.gateway.url, headers=headers, timeout=30, verify=client_tls()
    ) as alice:
        started = alice.post("/flows/follow-f1/runs", json={"input": {"customer": "F-1"}})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        # Time passes to show the run does not go on while the hold stands.
        time.sleep(2.5)
        waiting = alice.get(f"/flows/follow-f1/runs/{run_id}").json()
        assert waiting["state"] == "working", waiting
        assert setup.calls("sales") == 0
        assert setup.send("support", "resolve", {"customer_id": "F-1"}).status_code == 200
        with setup.gateway.client() as admin:  # the cooldown a resolve starts defers it too
            assert admin.delete("/coordination/holds/follow-up-waits/F-1").status_code == 200

        def ended() -> dict[str, Any] | None:
            run: dict[str, Any] = alice.get(f"/flows/follow-f1/runs/{run_id}").json()
            return run if run["state"] != "working" else None

        run = wait_for(ended, seconds=20, every=0.2, what=f"run {run_id} ending")
    assert run["state"] == "completed", run
    assert setup.calls("sales") == 1
    records = setup.audit()
    waited = [r for r in records if r["event"] == "flow.step" and r["outcome"] == "deferred"]
    assert len(waited) == 1 and "support-first-then-follow-up" in waited[0]["reasons"][0]


def test_a_key_with_a_slash_is_listed_and_released(setup: Setup) -> None:
    assert setup.send("support", "resolve", {"customer_id": "EU/7"}).status_code == 200
    assert setup.send("sales", "upsell", {"customer_id": "EU/7"}).status_code == 409
    with setup.gateway.client() as admin:
        listed = admin.get("/coordination/holds", params={"entity": "customer:EU/7"}).json()
        assert [i["rule"] for i in listed["items"]] == ["follow-up-waits", "sales-waits"]
        assert admin.delete("/coordination/holds/sales-waits/EU/7").status_code == 200
        bad = admin.get("/coordination/holds", params={"entity": "no such entity!"})
        assert bad.status_code == 422
    assert setup.send("sales", "upsell", {"customer_id": "EU/7"}).status_code == 200


def test_a_vendor_agent_s_calls_are_counted_per_customer(setup: Setup) -> None:
    first = setup.send("tickets", "lookup", {"customer_id": "T-1"})
    assert first.status_code == 200, first.text
    capped = setup.send("tickets", "lookup", {"customer_id": "T-1"})
    assert capped.status_code == 409, capped.text
    assert capped.json()["error"]["data"]["rule"] == "one-ticket-a-day"
    assert setup.calls("tickets") == 1
    assert setup.send("tickets", "lookup", {"customer_id": "T-2"}).status_code == 200


def test_the_cli_lists_explains_and_releases(setup: Setup) -> None:
    from tests.gateway.cli.test_cli import run

    assert setup.send("support", "escalate", {"customer_id": "K-9"}).status_code == 200
    common = ["--data-dir", str(setup.gateway.settings.data_dir), "--gateway", setup.gateway.url]
    listed = run("holds", "list", "--entity", "customer:K-9", *common)
    assert listed.returncode == 0, listed.stderr
    assert "customer:k-9" in listed.stdout and "support-first " in listed.stdout
    assert "(by support escalate)" in listed.stdout
    data = '{"customer_id": "K-9"}'
    explained = run(
        "policy", "explain", "--target", "sales", "--skill", "upsell", "--input", data, *common
    )
    assert explained.returncode == 1, explained.stdout + explained.stderr
    assert "HELD BACK: coordination rule support-first (hold) on customer k-9" in explained.stdout
    # The key exactly as `holds list` printed it.
    printed = next(w for w in listed.stdout.split() if w.startswith("customer:"))
    released = run("holds", "release", "support-first", printed, *common)
    assert released.returncode == 0, released.stderr
    assert "released support-first for k-9" in released.stdout
    again = run("holds", "release", "support-first", "K-9", *common)
    assert again.returncode != 0 and "keeps nothing for K-9" in again.stderr
    bad = run("policy", "explain", "--target", "sales", "--input", "{not json", *common)
    assert bad.returncode != 0 and "--input is not JSON" in bad.stderr
    assert setup.send("sales", "upsell", {"customer_id": "K-9"}).status_code == 200


# Every spelling of CU-ABC123 that reached a held agent before (issue 32).
SPELLINGS = [
    "cu-abc123",
    " CU-ABC123",
    "\uff23\uff35-\uff21\uff22\uff23123",  # fullwidth
    "CU\u200b-ABC123",  # a zero-width space
]


def test_every_spelling_of_a_held_customer_is_held_on_both_doors(setup: Setup) -> None:
    assert setup.send("support", "escalate", {"customer_id": "CU-ABC123"}).status_code == 200
    for spelling in ["CU-ABC123", *SPELLINGS]:
        for rest in (False, True):
            held = setup.send("sales", "upsell", {"customer_id": spelling}, rest=rest)
            assert held.status_code == 409, (spelling, rest, held.text)

    async def over_mcp() -> list[Any]:
        refused = []
        async with mcp_client(setup.gateway.url + "/mcp", setup.token, "2026-07-28") as client:
            for spelling in SPELLINGS:
                with pytest.raises(MCPError) as error:
                    await client.call_tool(
                        "sales__upsell", {"message": "upsell", "data": {"customer_id": spelling}}
                    )
                refused.append(error.value.error.data)
        return refused

    for data in anyio.run(over_mcp):
        assert isinstance(data, dict) and data["rule"] == "support-first", data
    assert setup.calls("sales") == 0, "a spelling of the held customer reached the agent"
    # Another customer is still another customer.
    assert setup.send("sales", "upsell", {"customer_id": "CU-ABC124"}).status_code == 200
    with setup.gateway.client() as admin:
        # Listed and released by any spelling, shown in the canonical one; the
        # key as `holds list` prints it (`customer:...`) releases too.
        listed = admin.get("/coordination/holds", params={"entity": "customer:\uff23U-abc123"})
        keys = {(i["rule"], i["key"]) for i in listed.json()["items"]}
        assert ("support-first", "cu-abc123") in keys, listed.text
        released = admin.delete("/coordination/holds/support-first/%20CU%E2%80%8B-ABC123")
        assert released.status_code == 200, released.text
        assert released.json()["key"] == "cu-abc123"
        cli_form = admin.delete("/coordination/holds/calc-waits/customer:CU-ABC123")
        assert cli_form.status_code == 200, cli_form.text
    records = setup.audit()
    refused = [r for r in records if r["outcome"] == "coordination"]
    assert len(refused) == 2 * 5 + len(SPELLINGS)
    assert all("cu-abc123" in " ".join(r["reasons"]) for r in refused)


def test_a_flow_step_naming_a_held_customer_another_way_waits(setup: Setup) -> None:
    with setup.gateway.client() as admin:
        assert admin.post("/flows", json=follow_flow("follow-f3")).status_code == 201
    assert setup.send("support", "escalate", {"customer_id": "F-3"}).status_code == 200
    headers = {"Authorization": f"Bearer {setup.token}"}
    with httpx.Client(
        base_url=setup.gateway.url, headers=headers, timeout=30, verify=client_tls()
    ) as alice:
        started = alice.post(
            "/flows/follow-f3/runs", json={"input": {"customer": " \uff46-3\u200b"}}
        )
        assert started.status_code == 202, started.text

    def deferred() -> list[dict[str, Any]]:
        records = setup.audit()
        return [r for r in records if r["event"] == "flow.step" and r["outcome"] == "deferred"]

    waited = wait_for(deferred, seconds=20, every=0.1, what="a deferred flow.step in the audit")
    assert len(waited) == 1, waited
    assert "support-first-then-follow-up" in waited[0]["reasons"][0]
    assert "f-3" in waited[0]["reasons"][0]
    assert setup.calls("sales") == 0


def _write_old_spelling(setup: Setup, redis_url: str | None, key: str, until: float) -> None:
    """A hold as a gateway before canonical keys kept it: under the key as the
    call spelled it."""
    row: dict[str, str | int | float] = {
        "rule": "support-first",
        "key": key,
        "slot": 0,
        "kind": "hold",
        "entity": "customer",
        "until": until,
        "count": 0,
        "subject": "alice",
        "agent": "support",
        "action": "escalate",
        "opened_at": time.time(),
    }
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        name = f"switchboard-coordination:support-first:0:{key}"
        client.hset(
            name, mapping={k: repr(v) if isinstance(v, float) else v for k, v in row.items()}
        )
        client.pexpireat(name, int(until * 1000))
        return

    async def insert() -> None:
        from sqlalchemy import insert as sql_insert
        from sqlalchemy.ext.asyncio import create_async_engine

        from gateway.storage.tables import coordination_state

        engine = create_async_engine(setup.gateway.settings.effective_database_url)
        async with engine.begin() as conn:
            await conn.execute(sql_insert(coordination_state).values(**row))
        await engine.dispose()

    anyio.run(insert)


def test_state_kept_under_an_old_spelling_holds_after_a_restart(
    own_setup: Setup, request: pytest.FixtureRequest
) -> None:
    """Holds written before keys were canonical move to the canonical key at
    start-up: an upgrade does not let the held customer through."""
    setup = own_setup
    redis_url = REDIS if request.node.callspec.params["own_setup"] == "redis" else None
    _write_old_spelling(setup, redis_url, "CU-OLD", time.time() + 3600)
    _write_old_spelling(setup, redis_url, "Cu-Old2", time.time() + 3600)
    setup.gateway.restart()
    for spelling in ("CU-OLD", "cu-old", "Cu-Old2", "CU-OLD2"):
        held = setup.send("sales", "upsell", {"customer_id": spelling})
        assert held.status_code == 409, (spelling, held.text)
    assert setup.calls("sales") == 0
    with setup.gateway.client() as admin:
        listed = admin.get("/coordination/holds", params={"rule": "support-first"}).json()
    assert {i["key"] for i in listed["items"]} == {"cu-old", "cu-old2"}

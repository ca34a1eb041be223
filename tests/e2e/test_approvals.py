"""Human approval end to end, on SQLite and PostgreSQL: an official-SDK A2A
agent whose calls the policy holds for an admin, the official a2a-sdk and
mcp clients, and the admin API, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import mcp_types as types
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import MessageToDict
from mcp import MCPError

from gateway.mcp.approvals import STATUS_TOOL
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for, wait_for_async, wait_for_awaited

POLICY = """\
agents:
  worker:
    approval: true
"""


@dataclass
class Setup:
    gateway: Gateway
    worker: ServerThread
    seen: Recorder
    tokens: dict[str, str]
    policy: Path

    @asynccontextmanager
    async def client(
        self, user: str = "alice", *, streaming: bool = False
    ) -> AsyncIterator[Client]:
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=30,
            verify=client_tls(),
        ) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
            yield await factory.create_from_url(f"{self.gateway.url}/a2a/worker")

    def admin(self, user: str = "admin") -> httpx.Client:
        return self.gateway.client(self.tokens[user])

    def restart(self) -> None:
        self.gateway = self.gateway.restart()


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    seen = Recorder()
    worker = worker_agent(seen)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(
        tmp_path / "data",
        database_url,
        policy_file=policy,
        policy_reload_seconds=0.2,
    )
    tokens = {user: gateway.token(user) for user in ("alice", "bob")}
    tokens["admin"] = gateway.token("admin", ADMIN_SCOPE)
    made = Setup(gateway, worker, seen, tokens, policy)
    try:
        with made.admin() as admin:
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        yield made
    finally:
        stop_all(made.gateway.server, worker)


def message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def send(client: Client, request: SendMessageRequest) -> Task:
    events = [event async for event in client.send_message(request)]
    assert events and events[0].HasField("task"), events
    return events[0].task


def approval_of(task: Task) -> str:
    approval = MessageToDict(task.status.message.metadata)["approval"]
    assert isinstance(approval, str) and approval in task.status.message.parts[0].text
    return approval


async def poll(client: Client, task_id: str, *states: int, seconds: float = 20) -> Task:
    async def reached() -> Task | None:
        task = await client.get_task(GetTaskRequest(id=task_id))
        return task if task.status.state in states else None

    return await wait_for_awaited(reached, seconds, every=0.1, what=f"task {task_id} in {states}")


def artifact_text(task: Task) -> str:
    return "".join(p.text for a in task.artifacts for p in a.parts if p.HasField("text"))


async def decide(setup: Setup, approval: str, decision: str, **extra: Any) -> httpx.Response:
    def post() -> httpx.Response:
        with setup.admin(extra.pop("user", "admin")) as admin:
            return admin.post(f"/approvals/{approval}", json={"decision": decision, **extra})

    return await anyio.to_thread.run_sync(post)


def audit(setup: Setup, trace_id: str) -> list[tuple[str, str]]:
    with setup.admin() as admin:
        items = admin.get("/audit", params={"agent": "worker", "limit": 100}).json()["items"]
    return [(r["event"], r["outcome"]) for r in reversed(items) if r["trace_id"] == trace_id]


async def test_approved_call_runs_only_then_and_its_result_reaches_the_caller(
    setup: Setup,
) -> None:
    async with setup.client(streaming=True) as alice:
        task = await send(alice, message("task hello"))
        assert task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
        approval = approval_of(task)
        assert "admin must approve" in task.status.message.parts[0].text
        # Held; and the job that takes up the gateway's unfinished calls has
        # looked since (a pending approval is not one of them).
        assert _show(setup, approval)["state"] == "pending"
        setup.gateway.passes("gateway-runs")
        assert not setup.seen.calls(), "the agent was called before the approval"

        # The caller follows the task through the decision.
        followed: list[StreamResponse] = []

        async def follow() -> None:
            async for event in alice.subscribe(SubscribeToTaskRequest(id=task.id)):
                followed.append(event)

        follower = asyncio.create_task(follow())

        # What the admin sees: who, what, why, when; pending first.
        def look() -> dict[str, Any]:
            with setup.admin() as admin:
                listed = admin.get("/approvals").json()["items"]
                assert [a["id"] for a in listed] == [approval]
                shown = admin.get(f"/approvals/{approval}").json()
                assert admin.get("/approvals", params={"state": "approved"}).json()["items"] == []
            return dict(shown)

        shown = await anyio.to_thread.run_sync(look)
        assert shown["state"] == "pending" and shown["kind"] == "a2a"
        assert shown["target"] == "worker" and shown["task_id"] == task.id
        assert shown["requested_by"]["subject"] == "alice"
        assert shown["requested_by"]["actors"]
        assert shown["request"]["message"]["parts"][0]["text"] == "task hello"
        assert any("approval" in reason for reason in shown["reasons"])
        assert shown["created_at"]
        assert setup.tokens["alice"] not in str(shown)

        answer = await decide(setup, approval, "approve", reason="looks fine")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "approved" and answer.json()["decided_by"] == "admin"

        done = await poll(alice, task.id, TaskState.TASK_STATE_COMPLETED)
        assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
        assert artifact_text(done) == "done: hello"
        await asyncio.wait_for(follower, 20)
        states = [e.status_update.status.state for e in followed if e.HasField("status_update")]
        assert states[-1] == TaskState.TASK_STATE_COMPLETED, followed
        assert followed[0].task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
        listed = await alice.list_tasks(ListTasksRequest())
        assert task.id in {t.id for t in listed.tasks}

    # Called once, after the approval, with a token minted for alice.
    (call,) = setup.seen.calls()
    assert not call.contains(setup.tokens["alice"])
    claims = verify_as_downstream(call.bearer or "", setup.gateway.url, setup.worker.url + "/")
    assert claims["sub"] == "alice"
    # Each step is audited with the request's trace id.
    trace = shown["trace_id"]
    steps = audit(setup, trace)
    assert steps[0] == ("a2a.SendMessage", "approval_required"), steps
    assert ("approval", "approved") in steps
    assert ("a2a.SendStreamingMessage", "ok") in steps
    # So is the call to the agent, made after the admin's decision.
    assert call.trace is not None and call.trace[0] == trace
    with setup.admin() as admin:
        final = admin.get(f"/approvals/{approval}").json()
    assert final["outcome"] == "TASK_STATE_COMPLETED"


async def test_rejected_call_is_never_made(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task nope"))
        approval = approval_of(task)
        answer = await decide(setup, approval, "reject", reason="not this week")
        assert answer.status_code == 200 and answer.json()["state"] == "rejected"
        rejected = await alice.get_task(GetTaskRequest(id=task.id))
    assert rejected.status.state == TaskState.TASK_STATE_REJECTED
    assert "not this week" in rejected.status.message.parts[0].text
    assert not setup.seen.calls()
    # A second decision, either way, is a conflict.
    again = await decide(setup, approval, "approve")
    assert again.status_code == 409, again.text
    assert (await decide(setup, "apr_nothing", "approve")).status_code == 404
    trace = (await anyio.to_thread.run_sync(lambda: _show(setup, approval)))["trace_id"]
    assert ("approval", "rejected") in audit(setup, trace)


def _show(setup: Setup, approval: str) -> dict[str, Any]:
    with setup.admin() as admin:
        shown: dict[str, Any] = admin.get(f"/approvals/{approval}").json()
    return shown


async def test_only_admins_decide_and_only_the_requester_sees_the_task(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task mine"))
    approval = approval_of(task)
    answer = await decide(setup, approval, "approve", user="bob")
    assert answer.status_code == 403
    with setup.gateway.client(setup.tokens["bob"]) as bob:
        assert bob.get("/approvals").status_code == 403
        assert bob.get(f"/approvals/{approval}").status_code == 403
    async with setup.client("bob") as bob_a2a:
        with pytest.raises(TaskNotFoundError):
            await bob_a2a.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await bob_a2a.cancel_task(CancelTaskRequest(id=task.id))
    assert _show(setup, approval)["state"] == "pending"


async def test_cancel_withdraws_a_pending_request(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task later"))
        approval = approval_of(task)
        canceled = await alice.cancel_task(CancelTaskRequest(id=task.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert _show(setup, approval)["state"] == "withdrawn"
    answer = await decide(setup, approval, "approve")
    assert answer.status_code == 409
    trace = _show(setup, approval)["trace_id"]
    wait_for(lambda: ("approval", "withdrawn") in audit(setup, trace), what="the withdrawal")
    setup.gateway.passes("gateway-runs")  # the unfinished calls looked at since
    assert not setup.seen.calls()


async def test_a_pending_request_survives_a_restart(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task after restart"))
    approval = approval_of(task)
    await anyio.to_thread.run_sync(setup.restart)
    assert (await decide(setup, approval, "approve")).status_code == 200
    async with setup.client() as alice:
        done = await poll(alice, task.id, TaskState.TASK_STATE_COMPLETED)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
    assert artifact_text(done) == "done: after restart"
    assert len(setup.seen.calls()) == 1


async def test_an_approved_call_taken_over_is_followed_at_its_agent(setup: Setup) -> None:
    """Interrupted once the agent had named its task, the approved call is not
    made again (an approval covers one call): the replica taking it over asks
    the agent about that task and follows it to its end."""
    async with setup.client() as alice:
        task = await send(alice, message("slow 3"))
    approval = approval_of(task)
    assert (await decide(setup, approval, "approve")).status_code == 200
    async with setup.client() as alice:

        async def named() -> bool:
            seen = await alice.get_task(GetTaskRequest(id=task.id))
            return "upstreamTaskId" in MessageToDict(seen.metadata)

        await wait_for_awaited(named, 20, every=0.1, what="the agent naming its task")
    await anyio.to_thread.run_sync(setup.restart)  # stops the run mid-call
    async with setup.client() as alice:
        done = await poll(alice, task.id, TaskState.TASK_STATE_COMPLETED, seconds=30)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED, done
    assert artifact_text(done) == "done: 3"
    sent = [c for c in setup.seen.calls() if b"SendStreamingMessage" in c.body]
    sent += [c for c in setup.seen.calls() if b'SendMessage"' in c.body]
    assert len(sent) == 1, [c.body[:80] for c in setup.seen.calls()]
    # Every token the agent received is in the audit -- the one it got with
    # the approved call too, whose own record the restart cut off (issue 32.3).
    with setup.admin() as admin:
        items = admin.get("/audit", params={"agent": "worker", "limit": 1000}).json()["items"]
    recorded = {r["token_id"] for r in items}
    received = {_jti(c.headers["authorization"]) for c in setup.seen.calls()}
    assert received <= recorded, (received - recorded, items)
    [interrupted] = [r for r in items if r["outcome"] == "interrupted"]
    assert interrupted["event"] == "a2a.approved"
    assert interrupted["token_id"] == _jti(sent[0].headers["authorization"])
    assert interrupted["detail"] == "followed: the agent had named its task"


def _jti(authorization: str) -> str:
    """The ``jti`` of a bearer JWT (read, not verified: the agent verified it)."""
    payload = authorization.split()[1].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


async def test_the_decision_is_taken_again_at_approval_time(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task hello"))
    approval = approval_of(task)
    # Meanwhile the operator forbids the agent: the approval cannot override that.
    setup.policy.write_text(POLICY + "    allow: false\n")
    with setup.admin() as admin:
        wait_for(
            lambda: admin.get("/policies").json()["document"] == setup.policy.read_text(),
            what="the new policy in force",
        )
    assert (await decide(setup, approval, "approve")).status_code == 200
    await wait_for_async(
        lambda: _show(setup, approval)["outcome"] not in (None, "running"), seconds=20, every=0.1
    )
    assert _show(setup, approval)["outcome"] == "TASK_STATE_FAILED"
    assert not setup.seen.calls()
    trace = _show(setup, approval)["trace_id"]
    assert ("a2a.approved", "denied") in audit(setup, trace)


# MCP ------------------------------------------------------------------------

MCP_POLICY = """\
agents:
  alpha:
    tools:
      add: {approval: true}
  worker:
    skills:
      work: {approval: true}
"""


@dataclass
class McpSetup:
    gateway: Gateway
    upstream: ServerThread
    upstream_seen: Recorder
    worker_seen: Recorder
    admin_token: str

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.admin_token)

    async def token(self, sub: str, scopes: str = "") -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, sub, scopes)

    def tool_calls(self) -> int:
        return sum(b'"tools/call"' in seen.body for seen in self.upstream_seen.calls())


@pytest.fixture
def mcp_setup(tmp_path: Path, database_url: str | None) -> Iterator[McpSetup]:
    upstream, upstream_seen, _ = upstream_server()
    worker_seen = Recorder()
    worker = worker_agent(worker_seen)
    policy = tmp_path / "policy.yaml"
    policy.write_text(MCP_POLICY)
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    try:
        with gateway.client() as admin:
            response = admin.post(
                "/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"}
            )
            assert response.status_code == 201, response.text
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        admin_token = gateway.token("admin", ADMIN_SCOPE)
        yield McpSetup(gateway, upstream, upstream_seen, worker_seen, admin_token)
    finally:
        stop_all(gateway.server, upstream, worker)


def mcp_decide(setup: McpSetup, approval: str, decision: str, reason: str = "") -> httpx.Response:
    with setup.admin() as admin:
        return admin.post(f"/approvals/{approval}", json={"decision": decision, "reason": reason})


def mcp_audit(setup: McpSetup, trace_id: str) -> list[tuple[str, str]]:
    with setup.admin() as admin:
        items = admin.get("/audit", params={"limit": 100}).json()["items"]
    return [(r["event"], r["outcome"]) for r in reversed(items) if r["trace_id"] == trace_id]


@pytest.mark.parametrize("mode", MODES)
async def test_an_mcp_tool_call_is_held_and_collected_once_approved(
    mcp_setup: McpSetup, mode: str
) -> None:
    token = await mcp_setup.token("alice")
    async with mcp_client(mcp_setup.url, token, mode) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert {"alpha__add", STATUS_TOOL} <= listed
        held = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert held.structured_content is not None
        assert held.structured_content["state"] == "pending"
        approval = held.structured_content["approval"]
        # `add` declares an output schema, which a pending answer cannot match.
        assert held.is_error
        assert STATUS_TOOL in _first_text(held)
        status = await client.call_tool(STATUS_TOOL, {"approval": approval})
        assert not status.is_error and status.structured_content == {
            "approval": approval,
            "state": "pending",
        }
        assert mcp_setup.tool_calls() == 0

        shown = await anyio.to_thread.run_sync(lambda: _mcp_show(mcp_setup, approval))
        assert shown["kind"] == "mcp" and shown["tool"] == "alpha__add"
        assert shown["request"] == {"arguments": {"a": 2, "b": 3}}
        assert shown["requested_by"]["subject"] == "alice"
        answer = await anyio.to_thread.run_sync(mcp_decide, mcp_setup, approval, "approve")
        assert answer.status_code == 200

        # Someone else cannot collect it.
        async with mcp_client(mcp_setup.url, await mcp_setup.token("bob"), mode) as bob:
            with pytest.raises(MCPError):
                await bob.call_tool(STATUS_TOOL, {"approval": approval})
        assert mcp_setup.tool_calls() == 0

        result = await client.call_tool(STATUS_TOOL, {"approval": approval})
        assert not result.is_error and result.structured_content == {"result": 5}
        # Asking again (the other way) answers the same result, without a second call.
        again = await client.call_tool(
            "alpha__add", {"a": 2, "b": 3}, meta=_approval_meta(approval)
        )
        assert again.structured_content == {"result": 5}
        with pytest.raises(MCPError, match="another call"):
            await client.call_tool("alpha__add", {"a": 2, "b": 4}, meta=_approval_meta(approval))
    assert mcp_setup.tool_calls() == 1
    steps = mcp_audit(mcp_setup, shown["trace_id"])
    assert steps[0] == ("mcp", "approval_required"), steps
    assert ("approval", "approved") in steps and ("mcp", "ok") in steps
    # The call, made when the result was collected, is in the request's trace.
    (call,) = [c for c in mcp_setup.upstream_seen.calls() if b'"tools/call"' in c.body]
    assert call.trace is not None and call.trace[0] == shown["trace_id"]


async def test_a_held_call_is_collected_only_where_its_tool_is_offered(
    mcp_setup: McpSetup,
) -> None:
    """At a virtual MCP server that does not offer the held call's tool, its
    approval is no approval: neither its state nor its result is told there."""

    def define() -> None:
        with mcp_setup.admin() as admin:
            for name, select in (
                ("adds", {"tools": ["alpha__add"]}),
                ("work", {"agents": ["worker"]}),
            ):
                body = {"name": name, "title": name, "select": select}
                assert admin.post("/mcp-sets", json=body).status_code == 201

    await anyio.to_thread.run_sync(define)
    token = await mcp_setup.token("alice")
    gateway = mcp_setup.gateway.url
    async with mcp_client(gateway + "/mcp/adds", token, "2026-07-28") as client:
        held = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert held.structured_content is not None
        approval = held.structured_content["approval"]
    answer = await anyio.to_thread.run_sync(mcp_decide, mcp_setup, approval, "approve")
    assert answer.status_code == 200
    async with mcp_client(gateway + "/mcp/work", token, "2026-07-28") as elsewhere:
        assert STATUS_TOOL in {t.name for t in (await elsewhere.list_tools()).tools}
        with pytest.raises(MCPError, match=f"no approval {approval}"):
            await elsewhere.call_tool(STATUS_TOOL, {"approval": approval})
    assert mcp_setup.tool_calls() == 0  # nothing made by asking at the wrong door
    async with mcp_client(gateway + "/mcp/adds", token, "2026-07-28") as client:
        result = await client.call_tool(STATUS_TOOL, {"approval": approval})
        assert not result.is_error and result.structured_content == {"result": 5}
    assert mcp_setup.tool_calls() == 1


def _first_text(result: types.CallToolResult) -> str:
    """The text of the result's first content block, which must be text."""
    first = result.content[0]
    assert isinstance(first, types.TextContent), first
    return first.text


def _approval_meta(approval: str) -> types.RequestParamsMeta:
    """A call's ``_meta`` naming the approval it collects. RequestParamsMeta is
    an open map (``extra_items=Any``, PEP 728), which mypy cannot express yet."""
    return cast(types.RequestParamsMeta, {"switchboard/approval": approval})


def _mcp_show(setup: McpSetup, approval: str) -> dict[str, Any]:
    with setup.admin() as admin:
        shown: dict[str, Any] = admin.get(f"/approvals/{approval}").json()
    return shown


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_skill_tool_held_then_rejected_is_never_called(
    mcp_setup: McpSetup, mode: str
) -> None:
    async with mcp_client(mcp_setup.url, await mcp_setup.token("alice"), mode) as client:
        held = await client.call_tool("worker__work", {"message": "task hello"})
        assert not held.is_error and held.structured_content is not None
        approval = held.structured_content["approval"]
        answer = await anyio.to_thread.run_sync(
            mcp_decide, mcp_setup, approval, "reject", "too risky"
        )
        assert answer.status_code == 200
        meta = _approval_meta(approval)
        result = await client.call_tool("worker__work", {"message": "task hello"}, meta=meta)
        assert result.is_error and result.structured_content is not None
        assert result.structured_content["state"] == "rejected"
        assert "too risky" in _first_text(result)
    assert not mcp_setup.worker_seen.calls()
    trace = _mcp_show(mcp_setup, approval)["trace_id"]
    assert ("approval", "rejected") in mcp_audit(mcp_setup, trace)


async def test_an_approved_agent_skill_tool_runs_with_the_result(mcp_setup: McpSetup) -> None:
    async with mcp_client(mcp_setup.url, await mcp_setup.token("alice"), "2026-07-28") as client:
        held = await client.call_tool("worker__work", {"message": "task hello"})
        assert held.structured_content is not None
        approval = held.structured_content["approval"]
        assert (
            await anyio.to_thread.run_sync(mcp_decide, mcp_setup, approval, "approve")
        ).status_code == 200
        result = await client.call_tool(STATUS_TOOL, {"approval": approval})
    assert not result.is_error, result
    assert "done: hello" in _first_text(result)
    assert len(mcp_setup.worker_seen.calls()) == 1


async def test_a_client_that_can_elicit_is_asked_to_wait_and_then_gets_the_result(
    mcp_setup: McpSetup,
) -> None:
    """2026-07-28: "pending" is an input_required result; each retry asks whether
    to keep waiting, and the retry after the admin's approval makes the call."""
    asked: list[str] = []

    async def keep_waiting(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:  # the admin decides while the user is asked
            found = re.search(r"approval (apr_\w+)", params.message)
            assert found is not None
            answer = await anyio.to_thread.run_sync(mcp_decide, mcp_setup, found[1], "approve")
            assert answer.status_code == 200
        return types.ElicitResult(action="accept", content={})

    token = await mcp_setup.token("alice")
    async with mcp_client(
        mcp_setup.url, token, "2026-07-28", elicitation_callback=keep_waiting
    ) as client:
        result = await client.call_tool("alpha__add", {"a": 2, "b": 3})
    assert not result.is_error and result.structured_content == {"result": 5}
    assert len(asked) == 1 and "needs an admin's approval" in asked[0]
    assert mcp_setup.tool_calls() == 1


async def test_declining_to_wait_ends_with_the_pending_result(mcp_setup: McpSetup) -> None:
    async def stop(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    token = await mcp_setup.token("alice")
    async with mcp_client(mcp_setup.url, token, "2026-07-28", elicitation_callback=stop) as client:
        result = await client.call_tool("worker__work", {"message": "task hello"})
    assert result.structured_content is not None
    assert result.structured_content["state"] == "pending"
    assert result.structured_content["approval"].startswith("apr_")
    assert not mcp_setup.worker_seen.calls()


async def test_bad_decisions_are_clear_errors_and_change_nothing(setup: Setup) -> None:
    async with setup.client() as alice:
        task = await send(alice, message("task later"))
    approval = approval_of(task)

    def post(content: bytes) -> httpx.Response:
        with setup.admin() as admin:
            return admin.post(
                f"/approvals/{approval}",
                content=content,
                headers={"Content-Type": "application/json"},
            )

    for body, status in (
        (b"{not json", 400),
        (b'{"decision": "maybe"}', 422),
        (b'{"decision": 1}', 422),
        (b'{"decision": "approve", "reason": "' + b"x" * 2001 + b'"}', 422),
        (b"[]", 422),
        # Unknown keys are refused, named: a typo must not pass as a decision.
        (b'{"decison": "approve"}', 422),
        (b'{"decision": "approve", "reasn": "looks fine"}', 422),
        (b'{"decision": "reject", "approve": true}', 422),
    ):
        answer = await anyio.to_thread.run_sync(post, body)
        assert answer.status_code == status, (body[:40], answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        for unknown in ("decison", "reasn", "approve"):
            if f'"{unknown}":'.encode() in body:
                fields = {e["field"]: e["message"] for e in answer.json()["errors"]}
                assert f"body.{unknown}" in fields, answer.text
                assert "not permitted" in fields[f"body.{unknown}"]
    shown = await anyio.to_thread.run_sync(lambda: _show(setup, approval))
    assert shown["state"] == "pending"  # nothing decided, nothing lost
    assert not setup.seen.calls()

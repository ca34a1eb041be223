"""Agents from other vendors through the A2A front door, on SQLite and PostgreSQL.

Real upstreams on 127.0.0.1 (`tests.support.vendor_servers`: an OpenAI
chat-completions server and a REST webhook) are registered with the gateway;
the official a2a-sdk client talks to them at `/a2a/{id}` from the card the
gateway wrote: blocking and `returnImmediately` sends, streams, cancel, task
records, a gateway restart in the middle of a task, and every failure as a
clear A2A answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import mcp_types
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_text_message
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Struct, Value
from pydantic import SecretStr

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.servers import ServerThread, stop_all
from tests.support.vendor_servers import API_KEY, MODEL, Behaviour, chat_server, webhook_server
from tests.support.waiting import wait_for_async, wait_for_awaited

MAPPING = {
    "request": {
        "body": {"query": "{{text}}", "customer": "{{data.customer_id}}"},
        "query": {"lang": "{{data.lang?}}"},
    },
    "response": {"text": "$.answer", "data": "$.details"},
}


@dataclass
class Setup:
    gateway: Gateway
    chat: ServerThread
    chat_seen: Recorder
    chat_does: Behaviour
    hook: ServerThread
    hook_seen: Recorder
    hook_does: Behaviour
    tokens: dict[str, str]

    def url(self, agent: str) -> str:
        return f"{self.gateway.url}/a2a/{agent}"

    @asynccontextmanager
    async def client(
        self,
        agent: str,
        user: str = "alice",
        *,
        streaming: bool = False,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[Client]:
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.tokens[user]}", **(headers or {})},
            timeout=30,
            verify=client_tls(),
        ) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
            yield await factory.create_from_url(self.url(agent))

    def admin(self) -> httpx.Client:
        return self.gateway.client(self.tokens["admin"])

    def restart(self) -> None:
        self.gateway = self.gateway.restart()


def register(gateway: Gateway, token: str, body: dict[str, Any]) -> httpx.Response:
    with gateway.client(token) as admin:
        return admin.post("/vendor-agents", json=body)


def chat_registration(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chat",
        "name": "Chat",
        "description": "An OpenAI-compatible model.",
        "upstream": {
            "type": "openai",
            "base_url": base + "/v1",
            "model": MODEL,
            "system_prompt": "You are terse.",
        },
        "skills": [
            {"id": "answer", "name": "Answer", "description": "Answers a question."},
            {"id": "summarise", "name": "Summarise", "idempotent": True},
        ],
        "api_key_secret": "chat",
        **extra,
    }


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    chat, chat_seen, chat_does = chat_server()
    hook, hook_seen, hook_does = webhook_server()
    gateway = start_gateway(
        tmp_path / "data",
        database_url,
        secrets={"chat": SecretStr(API_KEY)},
    )
    tokens = {user: gateway.token(user) for user in ("alice", "bob")}
    tokens["admin"] = gateway.token("admin", ADMIN_SCOPE)
    made = Setup(gateway, chat, chat_seen, chat_does, hook, hook_seen, hook_does, tokens)
    try:
        assert register(gateway, tokens["admin"], chat_registration(chat.url)).status_code == 201
        webhook = {
            "id": "tickets",
            "name": "Tickets",
            "upstream": {"type": "rest", "url": hook.url + "/hooks/tickets", "mapping": MAPPING},
            "skills": [{"id": "lookup", "name": "Look up a ticket"}],
            "api_key": API_KEY,
            "api_key_header": "X-Api-Key",
        }
        answer = register(gateway, tokens["admin"], webhook)
        assert answer.status_code == 201, answer.text
        yield made
    finally:
        chat_does.release.set()
        hook_does.release.set()
        stop_all(made.gateway.server, chat, hook)


def text(content: str, skill: str | None = None, **data: Any) -> SendMessageRequest:
    message = new_text_message(content, role=Role.ROLE_USER)
    if data:
        struct = Struct()
        struct.update(data)
        message.parts.append(Part(data=Value(struct_value=struct)))
    if skill:
        message.metadata.update({"skill": skill})
    return SendMessageRequest(message=message)


def immediately(request: SendMessageRequest) -> SendMessageRequest:
    request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
    return request


async def send(client: Client, request: SendMessageRequest) -> Task:
    events = [event async for event in client.send_message(request)]
    (event,) = events
    assert event.HasField("task"), event
    return event.task


def artifact_text(task: Task) -> str:
    return "".join(p.text for a in task.artifacts for p in a.parts if p.HasField("text"))


async def poll(client: Client, task_id: str, *states: int, seconds: float = 20) -> Task:
    async def reached() -> Task | None:
        task = await client.get_task(GetTaskRequest(id=task_id))
        return task if task.status.state in states else None

    return await wait_for_awaited(reached, seconds, every=0.1, what=f"task {task_id} in {states}")


# The card and the registry -------------------------------------------------------


def test_the_gateway_writes_a_card_and_lists_the_agents(setup: Setup) -> None:
    document = httpx.get(
        setup.url("chat") + "/.well-known/agent-card.json", verify=client_tls()
    ).json()
    card = ParseDict(document, AgentCard(), ignore_unknown_fields=True)
    assert card.name == "Chat" and card.capabilities.streaming
    assert [s.id for s in card.skills] == ["answer", "summarise"]
    assert {i.url for i in card.supported_interfaces} == {setup.url("chat")}
    assert document["signatures"]
    with setup.admin() as admin:
        listed = admin.get("/agents", params={"q": "tickets"}).json()
        assert [a["id"] for a in listed["items"]] == ["tickets"]
        shown = admin.get("/vendor-agents/tickets")
        assert shown.status_code == 200
        assert shown.json()["config"]["credential"] == {
            "type": "sealed",
            "name": None,
            "header": "X-Api-Key",
        }
        for path in ("/vendor-agents/tickets", "/vendor-agents/chat", "/agents/tickets/card"):
            assert API_KEY not in admin.get(path).text
    with setup.gateway.client(setup.tokens["alice"]) as alice:
        assert {a["id"] for a in alice.get("/agents").json()["items"]} == {"chat", "tickets"}
        assert alice.get("/vendor-agents/chat").status_code == 403


def test_bad_registrations_are_refused_and_store_nothing(setup: Setup) -> None:
    admin = setup.tokens["admin"]
    bad_mapping: dict[str, Any] = {
        "id": "bad",
        "name": "Bad",
        "upstream": {
            "type": "rest",
            "url": setup.hook.url + "/x",
            "mapping": {"request": {"body": {"q": "{{__import__}}"}}},
        },
        "skills": [{"id": "s", "name": "S"}],
    }
    answer = register(setup.gateway, admin, bad_mapping)
    assert answer.status_code == 422 and "placeholder" in answer.json()["detail"]
    assert answer.json()["type"] == "urn:switchboard:problem:invalid-mapping"
    bad_selector = dict(
        bad_mapping,
        upstream={**bad_mapping["upstream"], "mapping": {"response": {"text": "$..answer"}}},
    )
    assert register(setup.gateway, admin, bad_selector).status_code == 422
    unknown_secret = chat_registration(setup.chat.url, id="nosecret", api_key_secret="nope")
    answer = register(setup.gateway, admin, unknown_secret)
    assert answer.status_code == 422 and "SWITCHBOARD_SECRETS__NOPE" in answer.text
    assert answer.json()["type"] == "urn:switchboard:problem:unknown-secret"
    metadata = chat_registration("http://169.254.169.254", id="meta")
    answer = register(setup.gateway, admin, metadata)
    assert answer.status_code == 422
    assert answer.json()["type"] == "urn:switchboard:problem:url-refused"
    with setup.admin() as client:
        ids = {a["id"] for a in client.get("/agents").json()["items"]}
    assert ids == {"chat", "tickets"}


# OpenAI-compatible ---------------------------------------------------------------


async def test_a_message_is_a_chat_completion_and_the_key_is_the_gateways(setup: Setup) -> None:
    async with setup.client("chat") as alice:
        task = await send(alice, text("What is A2A?", skill="answer"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert artifact_text(task) == "echo: What is A2A?"
    assert task.history[0].parts[0].text == "What is A2A?"
    (seen,) = [c for c in setup.chat_seen.calls() if c.path == "/v1/chat/completions"]
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    body = json.loads(seen.body)
    assert body["model"] == MODEL and body["stream"] is False
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is A2A?"},
    ]
    # The canary: the caller's token never reaches the upstream.
    assert not any(c.contains(setup.tokens["alice"]) for c in setup.chat_seen.calls())


async def test_a_stream_relays_the_chunks_as_artifact_updates(setup: Setup) -> None:
    async with setup.client("chat", streaming=True) as alice:
        events: list[StreamResponse] = [
            e async for e in alice.send_message(text("one two three", skill="answer"))
        ]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and kinds[-1] == "status_update"
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert "".join(p.text for c in chunks for p in c.artifact.parts) == "echo: one two three"
    assert chunks[0].append is False and all(c.append for c in chunks[1:])
    assert chunks[-1].last_chunk
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    body = json.loads(setup.chat_seen.calls()[-1].body)
    assert body["stream"] is True
    async with setup.client("chat") as alice:
        stored = await alice.get_task(GetTaskRequest(id=events[0].task.id))
    assert artifact_text(stored) == "echo: one two three"


async def test_return_immediately_then_poll_and_list(setup: Setup) -> None:
    async with setup.client("chat") as alice:
        task = await send(alice, immediately(text("hold on", skill="answer")))
        assert task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
        working = await poll(alice, task.id, TaskState.TASK_STATE_WORKING)
        assert working.status.state == TaskState.TASK_STATE_WORKING
        setup.chat_does.release.set()
        done = await poll(alice, task.id, TaskState.TASK_STATE_COMPLETED)
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert artifact_text(done) == "echo: hold on"
        listed = await alice.list_tasks(ListTasksRequest(include_artifacts=True))
        assert [t.id for t in listed.tasks] == [task.id]
    async with setup.client("chat", "bob") as bob:
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task.id))
        assert not (await bob.list_tasks(ListTasksRequest())).tasks


async def test_a_subscriber_follows_a_running_task_to_its_end(setup: Setup) -> None:
    async with (
        setup.client("chat") as sender,
        setup.client("chat", streaming=True) as alice,
    ):
        task = await send(sender, immediately(text("hold, and keep me posted", skill="answer")))
        await poll(alice, task.id, TaskState.TASK_STATE_WORKING)
        async with setup.client("chat", "bob", streaming=True) as bob:
            with pytest.raises(TaskNotFoundError):
                [e async for e in bob.subscribe(SubscribeToTaskRequest(id=task.id))]

        opened = asyncio.Event()

        async def follow() -> list[StreamResponse]:
            events = []
            async for event in alice.subscribe(SubscribeToTaskRequest(id=task.id)):
                events.append(event)
                opened.set()
            return events

        following = asyncio.create_task(follow())
        # The subscription is open (the task came first) before the answer exists.
        await asyncio.wait_for(opened.wait(), 20)
        assert not following.done()
        setup.chat_does.release.set()
        events = await asyncio.wait_for(following, 20)
        # A2A 1.0 SubscribeToTask: the task first, then its updates, to the end.
        assert events[0].task.id == task.id
        states = [e.status_update.status.state for e in events if e.HasField("status_update")]
        assert states[-1] == TaskState.TASK_STATE_COMPLETED
        assert {e.status_update.task_id for e in events if e.HasField("status_update")} == {task.id}
        done = await alice.get_task(GetTaskRequest(id=task.id))
        assert artifact_text(done) == "echo: hold, and keep me posted"
        # An ended task has nothing more to stream (A2A 1.0 §3.1.6).
        with pytest.raises(UnsupportedOperationError):
            [e async for e in alice.subscribe(SubscribeToTaskRequest(id=task.id))]


def _running(setup: Setup, task_id: str) -> bool:
    """Whether the gateway's run of ``task_id`` is alive (read on its own loop)."""
    runner = setup.gateway.server.app.state.switchboard.approvals.parts.runner

    async def look() -> bool:
        return any(running == task_id for _, running in runner.alive())

    return bool(setup.gateway.server.run(look()))


async def test_cancel_stops_the_running_call(setup: Setup) -> None:
    async with setup.client("chat") as alice:
        task = await send(alice, immediately(text("hold please", skill="answer")))
        await poll(alice, task.id, TaskState.TASK_STATE_WORKING)
        async with setup.client("chat", "bob") as bob:
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=task.id))
        canceled = await alice.cancel_task(CancelTaskRequest(id=task.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        setup.chat_does.release.set()
        # The call stopped: nothing left here to take the upstream's late answer.
        await wait_for_async(lambda: not _running(setup, task.id), what="the call stopped")
        again = await alice.get_task(GetTaskRequest(id=task.id))
        assert again.status.state == TaskState.TASK_STATE_CANCELED
        with pytest.raises(TaskNotCancelableError):
            await alice.cancel_task(CancelTaskRequest(id=task.id))


async def test_upstream_failures_are_failed_tasks_that_say_why(setup: Setup) -> None:
    async with setup.client("chat") as alice:
        failed = await send(alice, text("error please", skill="answer"))
        assert failed.status.state == TaskState.TASK_STATE_FAILED
        assert "answered HTTP 500: The server had an error" in failed.status.message.parts[0].text
        garbage = await send(alice, text("garbage", skill="answer"))
        assert "did not answer JSON" in garbage.status.message.parts[0].text
        tools = await send(alice, text("tools", skill="answer"))
        assert "tool calls" in tools.status.message.parts[0].text
        with pytest.raises(InvalidParamsError, match="no skill 'nope'"):
            await send(alice, text("hi", skill="nope"))
        listed = await alice.list_tasks(ListTasksRequest())
        assert {t.status.state for t in listed.tasks} == {TaskState.TASK_STATE_FAILED}
        assert len(listed.tasks) == 3


async def test_a_dead_upstream_is_a_failed_task(setup: Setup, tmp_path: Path) -> None:
    dead = ServerThread(lambda _url: None)
    url = dead.url
    dead.sock.close()
    registration = chat_registration(url, id="dead")
    assert register(setup.gateway, setup.tokens["admin"], registration).status_code == 201
    async with setup.client("dead") as alice:
        task = await send(alice, text("anyone?", skill="answer"))
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert "could not be reached" in task.status.message.parts[0].text


async def test_a_restart_fails_an_interrupted_task_or_retries_an_idempotent_one(
    setup: Setup,
) -> None:
    async with setup.client("chat") as alice:
        plain = await send(alice, immediately(text("hold one", skill="answer")))
        retried = await send(alice, immediately(text("hold two", skill="summarise")))
        await poll(alice, plain.id, TaskState.TASK_STATE_WORKING)
        await poll(alice, retried.id, TaskState.TASK_STATE_WORKING)
    setup.restart()
    setup.chat_does.release.set()
    async with setup.client("chat") as alice:
        failed = await poll(alice, plain.id, TaskState.TASK_STATE_FAILED)
        assert failed.status.state == TaskState.TASK_STATE_FAILED
        reason = failed.status.message.parts[0].text
        assert "interrupted" in reason and "not marked idempotent" in reason
        done = await poll(alice, retried.id, TaskState.TASK_STATE_COMPLETED)
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert artifact_text(done) == "echo: hold two"
        assert done.history[0].parts[0].text == "hold two"
    assert setup.chat_does.calls["hold two"] == 2
    assert setup.chat_does.calls["hold one"] == 1


# Trace context -------------------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "00f067aa0ba902b7"
STATE = "congo=t61rcWkgMzE"


def traced(trace_id: str, flags: str = "01", state: str | None = None) -> dict[str, str]:
    headers = {"traceparent": f"00-{trace_id}-{CALLER_SPAN}-{flags}"}
    return headers | ({"tracestate": state} if state else {})


def audited_traces(setup: Setup, agent: str) -> set[str]:
    with setup.admin() as admin:
        records = admin.get("/audit", params={"agent": agent}).json()["items"]
    return {r["trace_id"] for r in records}


async def test_a_gateway_run_call_carries_the_callers_trace(setup: Setup) -> None:
    """The call runs in a task of its own, after the caller's request has been answered."""
    async with setup.client("chat", streaming=True, headers=traced(TRACE, "00", STATE)) as alice:
        events = [e async for e in alice.send_message(text("traced", skill="answer"))]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    async with setup.client("tickets", headers=traced(OTHER_TRACE)) as alice:
        task = await send(alice, text("traced", customer_id="c-1"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    (chat,) = setup.chat_seen.calls()
    (hook,) = setup.hook_seen.calls()
    assert chat.trace is not None and hook.trace is not None
    assert chat.trace[::2] == (TRACE, "00") and hook.trace[::2] == (OTHER_TRACE, "01")
    assert CALLER_SPAN not in (chat.trace[1], hook.trace[1])
    assert chat.headers["tracestate"] == STATE and "tracestate" not in hook.headers
    assert audited_traces(setup, "chat") == {TRACE}
    assert audited_traces(setup, "tickets") == {OTHER_TRACE}


async def test_a_run_taken_over_after_a_restart_keeps_its_trace(setup: Setup) -> None:
    async with setup.client("chat", headers=traced(TRACE, "00", STATE)) as alice:
        task = await send(alice, immediately(text("hold on", skill="summarise")))
        await poll(alice, task.id, TaskState.TASK_STATE_WORKING)
    setup.restart()
    setup.chat_does.release.set()
    async with setup.client("chat") as alice:
        done = await poll(alice, task.id, TaskState.TASK_STATE_COMPLETED)
    assert done.status.state == TaskState.TASK_STATE_COMPLETED
    first, again = setup.chat_seen.calls()
    assert first.trace is not None and first.trace[::2] == (TRACE, "00")
    assert first.headers["tracestate"] == STATE
    # The stored trace id, as a trace of the gateway's own: the caller's flags
    # and state were not stored with the run.
    assert again.trace is not None and again.trace[::2] == (TRACE, "01")
    assert "tracestate" not in again.headers
    assert audited_traces(setup, "chat") == {TRACE}


# REST webhook --------------------------------------------------------------------


async def test_a_webhook_is_called_through_its_mapping(setup: Setup) -> None:
    async with setup.client("tickets") as alice:
        task = await send(alice, text("printer broken", customer_id="c-42", lang="de"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    (artifact,) = task.artifacts
    assert artifact.parts[0].text == "Ticket for c-42: printer broken"
    assert MessageToDict(artifact.parts[1].data) == {
        "customer": "c-42",
        "priority": 2,
        "tags": ["a"],
    }
    (seen,) = setup.hook_seen.calls()
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.query == b"lang=de"
    assert json.loads(seen.body) == {"query": "printer broken", "customer": "c-42"}
    assert not seen.contains(setup.tokens["alice"])


async def test_webhook_mapping_failures_are_clear(setup: Setup) -> None:
    async with setup.client("tickets") as alice:
        with pytest.raises(InvalidParamsError, match=r"data.customer_id"):
            await send(alice, text("no customer"))
        broken = await send(alice, text("broken", customer_id="c-1"))
        assert broken.status.state == TaskState.TASK_STATE_FAILED
        assert "nothing at $.answer" in broken.status.message.parts[0].text
        failing = await send(alice, text("fail", customer_id="c-1"))
        assert "answered HTTP 503" in failing.status.message.parts[0].text
        listed = await alice.list_tasks(ListTasksRequest())
    assert len(listed.tasks) == 2  # the refused message created no task
    assert len(setup.hook_seen.calls()) == 2


def test_no_token_is_refused(setup: Setup) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}
    answer = httpx.post(
        setup.url("chat"), json=body, headers={"A2A-Version": "1.0"}, verify=client_tls()
    )
    assert answer.status_code == 401
    assert not setup.chat_seen.calls()


async def test_the_minted_token_goes_in_its_own_header_when_asked(setup: Setup) -> None:
    registration = {
        "id": "tickets-user",
        "name": "Tickets for users",
        "upstream": {"type": "rest", "url": setup.hook.url + "/hooks/tickets", "mapping": MAPPING},
        "skills": [{"id": "lookup", "name": "Look up a ticket"}],
        "api_key": API_KEY,
        "api_key_header": "X-Api-Key",
        "token_header": "X-Switchboard-Token",
    }
    assert register(setup.gateway, setup.tokens["admin"], registration).status_code == 201
    async with setup.client("tickets-user") as alice:
        task = await send(alice, text("hi", customer_id="c-7"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    (seen,) = setup.hook_seen.calls()
    minted = seen.headers["x-switchboard-token"].removeprefix("Bearer ")
    claims = jwt.decode(minted, options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["aud"] == "urn:switchboard:agent:tickets-user"
    assert minted != setup.tokens["alice"] and not seen.contains(setup.tokens["alice"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_gateway_run_agents_skill_is_an_mcp_tool(setup: Setup, mode: str) -> None:
    token = setup.tokens["alice"]
    async with mcp_client(setup.gateway.url + "/mcp", token, mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"chat__answer", "chat__summarise", "tickets__lookup"} <= tools
        result = await client.call_tool("chat__answer", {"message": "What is MCP?"})
    assert not result.is_error, result
    assert [c.text for c in result.content if isinstance(c, mcp_types.TextContent)] == [
        "echo: What is MCP?"
    ]
    assert not any(c.contains(token) for c in setup.chat_seen.calls())


def _webhook(setup: Setup, agent_id: str, request: dict[str, Any]) -> None:
    """Another webhook agent on the same test server, with ``request`` as its
    mapping's request part."""
    body = {
        "id": agent_id,
        "name": agent_id.title(),
        "upstream": {
            "type": "rest",
            "url": setup.hook.url + "/hooks/tickets",
            "mapping": {"request": request, "response": {"text": "$.answer"}},
        },
        "skills": [{"id": "lookup", "name": "Look up"}],
        "api_key": API_KEY,
        "api_key_header": "X-Api-Key",
    }
    answer = register(setup.gateway, setup.tokens["admin"], body)
    assert answer.status_code in (201, 409), answer.text


async def test_text_in_a_query_is_percent_encoded(setup: Setup) -> None:
    _webhook(setup, "search", {"query": {"q": "{{text}}"}, "body": {"customer": "c-1"}})
    before = len(setup.hook_seen.calls())
    async with setup.client("search") as alice:
        task = await send(alice, text("héllo & ✓ = 1?"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    seen = setup.hook_seen.calls()[before]
    assert b"h%C3%A9llo+%26+%E2%9C%93+%3D+1" in seen.query  # one value, encoded
    assert parse_qs(seen.query.decode()) == {"q": ["héllo & ✓ = 1?"]}


async def test_text_that_cannot_be_a_header_or_a_url_is_refused_and_audited(
    setup: Setup,
) -> None:
    _webhook(setup, "notes", {"headers": {"X-Note": "{{text}}"}, "body": {"customer": "c-1"}})
    _webhook(setup, "search", {"query": {"q": "{{text}}"}, "body": {"customer": "c-1"}})
    before = len(setup.hook_seen.calls())
    async with setup.client("notes") as alice:
        with pytest.raises(InvalidParamsError, match=r"header X-Note: .*RFC 9110"):
            await send(alice, text("héllo"))
        with pytest.raises(InvalidParamsError, match=r"header X-Note: .*RFC 9110"):
            await send(alice, text("line\r\nInjected: yes"))
        with pytest.raises(InvalidParamsError, match=r"header X-Note: 9000 characters"):
            await send(alice, text("a" * 9000))
    async with setup.client("search") as alice:
        with pytest.raises(InvalidParamsError, match=r"URL of \d+ characters"):
            await send(alice, text("x" * 70_000))
    assert len(setup.hook_seen.calls()) == before, "a refused message reached the webhook"
    async with httpx.AsyncClient(
        base_url=setup.gateway.url,
        headers={"Authorization": f"Bearer {setup.tokens['admin']}"},
        verify=client_tls(),
    ) as admin:
        records = (await admin.get("/audit", params={"limit": "50"})).json()["items"]
    refused = [r for r in records if r["target"] in ("notes", "search") and r["outcome"] != "ok"]
    assert len(refused) >= 4, records

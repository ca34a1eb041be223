"""The A2A front door end to end: official a2a-sdk clients, through the gateway,
to agents built with the official SDK -- A2A 1.0 and a 0.3-only agent.

Every test here goes over real HTTP on 127.0.0.1, with a real database (SQLite
and PostgreSQL), real signatures, and the SDK on both sides. The upstream's
view of each call is checked from what it received.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.client.transports.base import ClientTransport
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.compat.v0_3.jsonrpc_transport import CompatJsonRpcTransport
from a2a.helpers import new_text_message
from a2a.types import (
    AgentCard,
    AuthenticationInfo,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotFoundError,
)
from a2a.utils.signing import create_signature_verifier
from google.protobuf.json_format import ParseDict
from sqlalchemy import select, update

from gateway.delegation.push import SEAL_PURPOSE
from gateway.storage.db import create_engine
from gateway.storage.tables import a2a_push_configs
from policies.keys import seal_secret
from registry.tls import client_tls
from tests.support.a2a_agents import Webhook, legacy_worker_agent, webhook, worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, send_message_body, verify_as_downstream
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for_async

USER = "alice"
OTHER = "bob"
DONE = TaskState.TASK_STATE_COMPLETED
# The deployment seals what it stores, as outside --dev (push credentials).
SEALING_SECRET = "front-door-tests-sealing-secret-0123456789"


@dataclass
class Front:
    gateway: Gateway
    worker: ServerThread
    worker_seen: Recorder
    legacy: ServerThread
    legacy_seen: Recorder
    tokens: dict[str, str]
    # USER and OTHER as this test's own subjects (tests share a deployment).
    subjects: dict[str, str] = field(default_factory=lambda: {USER: USER, OTHER: OTHER})

    def token(self, user: str = USER) -> str:
        # Issued up front: issuing a dev token runs its own event loop.
        return self.tokens[user]

    def subject(self, user: str = USER) -> str:
        return self.subjects[user]

    def agent_url(self, agent_id: str) -> str:
        return f"{self.gateway.url}/a2a/{agent_id}"

    @asynccontextmanager
    async def client(
        self,
        agent_id: str,
        user: str = USER,
        *,
        binding: str = "JSONRPC",
        streaming: bool = True,
    ) -> AsyncIterator[Client]:
        """An official SDK client, created from the gateway's card for the agent."""
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.token(user)}"}, timeout=30, verify=client_tls()
        ) as http:
            factory = ClientFactory(
                ClientConfig(
                    httpx_client=http,
                    supported_protocol_bindings=[binding],
                    streaming=streaming,
                )
            )
            client = await factory.create_from_url(self.agent_url(agent_id))
            yield client

    @asynccontextmanager
    async def transport(
        self, agent_id: str, user: str = USER, *, legacy: bool = False
    ) -> AsyncIterator[ClientTransport]:
        """A bare SDK transport; with ``legacy`` it speaks A2A 0.3 on the wire."""
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.token(user)}", "A2A-Version": "1.0"},
            timeout=30,
            verify=client_tls(),
        ) as http:
            card = AgentCard(name=agent_id)
            if legacy:
                del http.headers["A2A-Version"]
                yield CompatJsonRpcTransport(http, card, self.agent_url(agent_id) + "/")
            else:
                yield JsonRpcTransport(http, card, self.agent_url(agent_id) + "/")


def _register(gateway: Gateway, agent_id: str, server: ServerThread, **extra: Any) -> None:
    with gateway.client() as admin:
        response = admin.post(
            "/agents",
            json={
                "card_url": server.url + "/.well-known/agent-card.json",
                "id": agent_id,
                **extra,
            },
        )
        assert response.status_code == 201, response.text


@contextmanager
def front_door(tmp_path: Path, database_url: str | None) -> Iterator[Front]:
    worker_seen, legacy_seen = Recorder(), Recorder()
    worker = worker_agent(worker_seen)
    legacy = legacy_worker_agent(legacy_seen)
    gateway = start_gateway(tmp_path, database_url, secret_key=SEALING_SECRET)
    try:
        _register(gateway, "worker", worker)
        _register(gateway, "legacy", legacy)
        # The same agent once more, inline, with a short timeout of its own.
        card = httpx.get(worker.url + "/.well-known/agent-card.json", verify=client_tls()).json()
        with gateway.client() as admin:
            hasty = {"card": card, "id": "hasty", "timeout_seconds": 0.5, "resource": "urn:t:h"}
            assert admin.post("/agents", json=hasty).status_code == 201
        tokens = {user: gateway.token(user, "work:run") for user in (USER, OTHER)}
        yield Front(gateway, worker, worker_seen, legacy, legacy_seen, tokens)
    finally:
        stop_all(gateway.server, worker, legacy)


@pytest.fixture(scope="module")
def shared_front(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Front]:
    with front_door(tmp_path_factory.mktemp("front"), module_database_url) as f:
        yield f


_tests = itertools.count()


@pytest.fixture
def front(shared_front: Front) -> Front:
    """The module's deployment, as if new: the agents' records emptied, and
    USER and OTHER fresh subjects, so no task, list or token of an earlier
    test is theirs."""
    shared_front.worker_seen.clear()
    shared_front.legacy_seen.clear()
    n = next(_tests)
    subjects = {user: f"{user}-{n}" for user in (USER, OTHER)}
    gateway = shared_front.gateway
    tokens = {user: gateway.token(subject, "work:run") for user, subject in subjects.items()}
    return replace(shared_front, tokens=tokens, subjects=subjects)


def message(text: str, **ids: str) -> SendMessageRequest:
    msg = new_text_message(text, role=Role.ROLE_USER, **ids)
    return SendMessageRequest(message=msg)


async def started(transport: ClientTransport, text: str) -> Task:
    """The task of ``text`` sent with `return_immediately`: still under way."""
    request = message(text)
    request.configuration.return_immediately = True
    return (await transport.send_message(request)).task


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in stream]


def final_task(events: list[StreamResponse]) -> Task:
    tasks = [e.task for e in events if e.HasField("task")]
    assert tasks, events
    return tasks[-1]


# The card ------------------------------------------------------------------------


def test_the_gateway_card_points_at_the_gateway_and_is_signed_by_it(front: Front) -> None:
    served = httpx.get(
        front.agent_url("worker") + "/.well-known/agent-card.json", verify=client_tls()
    )
    document = served.json()
    # A2A 1.0 §8.6.1 caching: a weak ETag that survives re-signing, and a 304.
    assert served.headers["etag"].startswith('W/"') and served.headers["last-modified"]
    again = httpx.get(
        front.agent_url("worker") + "/.well-known/agent-card.json",
        headers={"If-None-Match": served.headers["etag"]},
        verify=client_tls(),
    )
    assert again.status_code == 304
    card = ParseDict(document, AgentCard(), ignore_unknown_fields=True)
    assert card.name == "Worker"
    assert [s.id for s in card.skills] == ["work"]
    assert card.capabilities.streaming
    assert {(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces} == {
        ("JSONRPC", "1.0", front.agent_url("worker")),
        ("HTTP+JSON", "1.0", front.agent_url("worker")),
        ("JSONRPC", "0.3.0", front.agent_url("worker")),
    }
    # Pure 1.0 (the schema allows nothing else); the 0.3 form is at agent.json.
    assert "url" not in document
    legacy = httpx.get(
        front.agent_url("worker") + "/.well-known/agent.json", verify=client_tls()
    ).json()
    assert legacy["url"] == front.agent_url("worker")
    assert legacy["protocolVersion"] == "0.3.0"
    assert "switchboard" in card.security_schemes
    jwks = httpx.get(front.gateway.url + "/.well-known/jwks.json", verify=client_tls()).json()
    keys = {k["kid"]: k for k in jwks["keys"]}

    def key_provider(kid: str | None, jku: str | None) -> Any:
        assert jku == front.gateway.url + "/.well-known/jwks.json"
        import jwt

        return jwt.PyJWK(keys[kid])

    # The SDK's own verifier (PyJWT underneath), not ours.
    create_signature_verifier(key_provider, ["ES256"])(card)
    tampered = AgentCard()
    tampered.CopyFrom(card)
    tampered.name = "Evil Worker"
    with pytest.raises(Exception, match=r"(?i)signature"):
        create_signature_verifier(key_provider, ["ES256"])(tampered)


def test_an_unknown_agent_has_no_card(front: Front) -> None:
    response = httpx.get(
        front.agent_url("nobody") + "/.well-known/agent-card.json", verify=client_tls()
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "answered_id"),
    [
        # The SDK's error answer echoed the id; writing it out was a 500 (the fuzzer's find).
        (b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "GetTask", "params": {"id": "t"}}', None),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "GetTask", "params": {"id": "\\udfff"}}', 7),
        (b'{"jsonrpc": "2.0", "id": "x", "method": "Get\\udc00Task", "params": {}}', "x"),
        # The raw UTF-8 form of a surrogate, which `json` decodes all the same.
        (b'{"jsonrpc": "2.0", "id": 8, "method": "GetTask", "params": {"id": "\xed\xa0\x80"}}', 8),
    ],
)
def test_a_lone_surrogate_is_a_parse_error_not_a_500(
    front: Front, body: bytes, answered_id: Any
) -> None:
    answer = httpx.post(
        front.agent_url("worker"),
        content=body,
        headers={
            "Authorization": f"Bearer {front.token()}",
            "A2A-Version": "1.0",
            "Content-Type": "application/json",
        },
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["error"]["code"] == -32700
    assert "surrogate" in document["error"]["message"]
    assert document["id"] == answered_id


def test_each_binding_answers_as_the_spec_says_where_the_tck_disagrees(front: Front) -> None:
    """The two TCK failures both paths share (docs/conformance.md), pinned
    where the A2A specification backs the SDK over the TCK:

    * §11.1 (A2A v1.0.1, a2aproject/A2A PR #1753): HTTP+JSON requests and
      responses SHOULD be `application/a2a+json`; the TCK's HTTP_JSON-SVC-001
      checks v1.0.0's `application/json`. JSON-RPC is `application/json` (§9.1).
    * §3.3.2: ContentTypeNotSupportedError (-32005) is for a media type of the
      message's parts. A body that is not JSON is JSONParseError, -32700
      (§9.5), whatever its Content-Type; JSONRPC-SSE-002 expects -32005 for
      Python's `str()` of a request sent as `text/plain`.
    """
    headers = {"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0"}
    parts = [{"text": "hi"}]
    params = {"message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": parts}}
    url = front.agent_url("worker")
    rest = httpx.post(
        url + "/message:send", json=params, headers=headers, timeout=30, verify=client_tls()
    )
    assert rest.status_code == 200, rest.text
    assert rest.headers["content-type"] == "application/a2a+json"
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}
    rpc = httpx.post(url, json=body, headers=headers, timeout=30, verify=client_tls())
    assert rpc.headers["content-type"] == "application/json"
    assert "echo: hi" in rpc.text
    not_json = {**headers, "Content-Type": "text/plain"}
    wrong = httpx.post(
        url, content=str(body).encode(), headers=not_json, timeout=30, verify=client_tls()
    )
    assert wrong.headers["content-type"] == "application/json"
    assert wrong.json()["error"]["code"] == -32700


@pytest.mark.parametrize("agent", ["worker", "legacy"])
@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
def test_a_part_with_no_content_is_invalid_params_before_any_agent(
    front: Front, agent: str, method: str
) -> None:
    # `""` parses as an empty Part; a 0.3 agent's translation used to fail on it (-32603).
    seen = front.worker_seen if agent == "worker" else front.legacy_seen
    calls = len(seen.calls())
    body = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": method,
        "params": {
            "message": {
                "messageId": "m-empty-part",
                "role": "ROLE_USER",
                "parts": ["", {"text": "hello"}],
            }
        },
    }
    answer = httpx.post(
        front.agent_url(agent),
        json=body,
        headers={"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0"},
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    text = answer.text
    document = (
        json.loads(text.removeprefix("data:").strip())
        if text.startswith("data:")
        else answer.json()
    )
    assert document["id"] == 4
    assert document["error"]["code"] == -32602, document
    assert "parts[0] has no content" in document["error"]["message"]
    assert len(seen.calls()) == calls


def _sent_with_role(front: Front, method: str, role: str | int) -> dict[str, Any]:
    """The JSON-RPC error a message from ``role`` gets from the worker's URL."""
    message = {"messageId": uuid.uuid4().hex, "role": role, "parts": [{"text": "hi"}]}
    body = {"jsonrpc": "2.0", "id": 5, "method": method, "params": {"message": message}}
    answer = httpx.post(
        front.agent_url("worker"),
        json=body,
        headers={"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )
    error: dict[str, Any] = answer.json()["error"]
    return error


@pytest.mark.parametrize("role", ["ROLE_AGENT", "ROLE_UNSPECIFIED", -1])
def test_a_message_not_from_the_user_is_invalid_params_before_any_agent(
    front: Front, role: str | int
) -> None:
    """A client's message is the user's: an agent's SDK answered any other
    role with an internal error (-32603), found by the JSON-RPC fuzzer; so
    did the gateway for a role by a number no name is defined for (-1)."""
    calls = len(front.worker_seen.calls())
    error = _sent_with_role(front, "SendMessage", role)
    assert error["code"] == -32602, error  # ROLE_UNSPECIFIED: the SDK's own validation
    assert role == "ROLE_UNSPECIFIED" or "message.role must be ROLE_USER" in error["message"]
    assert len(front.worker_seen.calls()) == calls


def test_a_streamed_message_with_an_undefined_role_is_invalid_params(front: Front) -> None:
    """The same check on the streaming method (the fuzzer's case)."""
    error = _sent_with_role(front, "SendStreamingMessage", -1)
    assert error["code"] == -32602 and "not -1" in error["message"], error


def test_a_surrogate_pair_is_just_a_character(front: Front) -> None:
    body = b'{"jsonrpc": "2.0", "id": 9, "method": "GetTask", "params": {"id": "\\ud83d\\ude00"}}'
    answer = httpx.post(
        front.agent_url("worker"),
        content=body,
        headers={
            "Authorization": f"Bearer {front.token()}",
            "A2A-Version": "1.0",
            "Content-Type": "application/json",
        },
        verify=client_tls(),
    ).json()
    assert answer["id"] == 9
    assert answer["error"]["code"] == -32001  # task not found: the id was read


# SendMessage, streaming, tasks ----------------------------------------------------


async def test_send_message_through_the_gateway_with_the_sdk_client(front: Front) -> None:
    async with front.client("worker", streaming=False) as client:
        (event,) = await collect(client.send_message(message("hello there")))
    assert event.message.parts[0].text == "echo: hello there"
    (call,) = front.worker_seen.calls()
    assert call.bearer is not None and call.bearer != front.token()
    claims = verify_as_downstream(call.bearer, front.gateway.url, front.worker.url + "/")
    assert claims["sub"] == front.subject()
    assert claims["aud"] == front.worker.url + "/"
    # A dev token has no client app: the chain starts with the user (issue 32.9).
    assert claims["act"] == {"sub": front.subject()}
    assert not call.contains(front.token()), "the caller's token reached the agent"


async def test_a_task_is_run_and_recorded_for_its_owner(front: Front) -> None:
    async with front.client("worker", streaming=False) as client:
        (event,) = await collect(client.send_message(message("task count the widgets")))
        task = event.task
        assert task.status.state == DONE
        assert task.artifacts[0].parts[0].text == "done: count the widgets"
        fetched = await client.get_task(GetTaskRequest(id=task.id))
        assert fetched.id == task.id and fetched.status.state == DONE
        listed = await client.list_tasks(ListTasksRequest())
        assert [t.id for t in listed.tasks] == [task.id]


async def test_streaming_passes_events_through(front: Front) -> None:
    async with front.client("worker") as client:
        events = await collect(client.send_message(message("slow 0.35")))
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    assert kinds.count("status_update") >= 3  # working, the ticks, completed
    assert "artifact_update" in kinds
    last = events[-1]
    assert last.status_update.status.state == DONE
    async with front.client("worker") as client:
        stored = await client.get_task(GetTaskRequest(id=events[0].task.id))
    assert stored.status.state == DONE


async def test_return_immediately_then_poll_cancel_and_resubscribe(front: Front) -> None:
    async with front.transport("worker") as transport:
        first = await started(transport, "slow 10")
        assert first.status.state in (
            TaskState.TASK_STATE_SUBMITTED,
            TaskState.TASK_STATE_WORKING,
        )
        canceled = await transport.cancel_task(CancelTaskRequest(id=first.id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED

        running = await started(transport, "slow 0.5")
        events = await collect(transport.subscribe(SubscribeToTaskRequest(id=running.id)))
    assert events[-1].status_update.status.state == DONE
    assert {e.status_update.task_id for e in events if e.HasField("status_update")} == {running.id}


async def test_a_multi_turn_task_continues_for_its_owner(front: Front) -> None:
    async with front.transport("worker") as transport:
        asked = (await transport.send_message(message("ask"))).task
        assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        follow_up = message("warehouse 7", task_id=asked.id, context_id=asked.context_id)
        done = (await transport.send_message(follow_up)).task
    assert done.id == asked.id
    assert done.status.state == DONE
    assert done.artifacts[-1].parts[0].text == "got: warehouse 7"


async def test_the_http_json_binding_works_too(front: Front) -> None:
    async with front.client("worker", binding="HTTP+JSON", streaming=False) as client:
        (event,) = await collect(client.send_message(message("task over rest")))
        assert event.task.status.state == DONE
        fetched = await client.get_task(GetTaskRequest(id=event.task.id))
    assert fetched.artifacts[0].parts[0].text == "done: over rest"


# Isolation between users ----------------------------------------------------------


async def test_another_users_task_is_not_found(front: Front) -> None:
    async with front.transport("worker") as alice:
        request = message("ask")
        task = (await alice.send_message(request)).task
    before = len(front.worker_seen.calls())
    async with front.transport("worker", OTHER) as bob:
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await bob.cancel_task(CancelTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await collect(bob.subscribe(SubscribeToTaskRequest(id=task.id)))
        with pytest.raises(TaskNotFoundError):
            await bob.send_message(message("hijack", task_id=task.id))
        with pytest.raises(TaskNotFoundError):
            await bob.send_message(message("join", context_id=task.context_id))
        assert not (await bob.list_tasks(ListTasksRequest())).tasks
    assert len(front.worker_seen.calls()) == before, "a refused call reached the agent"
    async with front.transport("worker") as alice:
        assert [t.id for t in (await alice.list_tasks(ListTasksRequest())).tasks] == [task.id]


async def test_an_unknown_task_is_not_found(front: Front) -> None:
    async with front.transport("worker") as alice:
        with pytest.raises(TaskNotFoundError):
            await alice.get_task(GetTaskRequest(id=str(uuid.uuid4())))


def test_tasks_survive_a_gateway_restart(tmp_path: Path, database_url: str | None) -> None:
    with front_door(tmp_path, database_url) as front:

        async def create() -> Task:
            async with front.transport("worker") as alice:
                return (await alice.send_message(message("task before the restart"))).task

        task = asyncio.run(create())
        front.gateway = front.gateway.restart()

        async def after() -> None:
            async with front.transport("worker") as alice:
                fetched = await alice.get_task(GetTaskRequest(id=task.id))
                assert fetched.status.state == DONE
                listed = await alice.list_tasks(ListTasksRequest())
                assert [t.id for t in listed.tasks] == [task.id]
            async with front.transport("worker", OTHER) as bob:
                with pytest.raises(TaskNotFoundError):
                    await bob.get_task(GetTaskRequest(id=task.id))

        asyncio.run(after())


# Versions ---------------------------------------------------------------------------


async def test_a_0_3_client_reaches_a_1_0_agent(front: Front) -> None:
    async with front.transport("worker", legacy=True) as client:
        answer = await client.send_message(message("task from the past"))
        assert answer.task.status.state == DONE
        assert answer.task.artifacts[0].parts[0].text == "done: from the past"
        fetched = await client.get_task(GetTaskRequest(id=answer.task.id))
        assert fetched.status.state == DONE
        events = await collect(client.send_message_streaming(message("slow 0.2")))
    assert events[-1].status_update.status.state == DONE
    sent = [c for c in front.worker_seen.calls()]
    assert sent and all(c.headers.get("a2a-version") == "1.0" for c in sent)
    assert all(b'"method":"SendMessage"' in c.body or b"GetTask" in c.body for c in sent[:2])


async def test_a_1_0_client_reaches_a_0_3_agent(front: Front) -> None:
    async with front.client("legacy", streaming=False) as client:
        (event,) = await collect(client.send_message(message("task for the old one")))
        assert event.task.status.state == DONE
        assert event.task.artifacts[0].parts[0].text == "done: for the old one"
        fetched = await client.get_task(GetTaskRequest(id=event.task.id))
        assert fetched.status.state == DONE
    async with front.client("legacy") as client:
        events = await collect(client.send_message(message("slow 0.2")))
    assert events[-1].status_update.status.state == DONE
    calls = front.legacy_seen.calls()
    assert calls and all(b'"method":"message/' in c.body or b"tasks/get" in c.body for c in calls)
    claims = verify_as_downstream(calls[0].bearer or "", front.gateway.url, front.legacy.url + "/")
    assert claims["sub"] == front.subject()


async def test_a_0_3_client_reaches_a_0_3_agent(front: Front) -> None:
    async with front.transport("legacy", legacy=True) as client:
        answer = await client.send_message(message("echo me"))
    assert isinstance(answer.message, Message)
    assert answer.message.parts[0].text == "echo: echo me"


# Upstream failures -----------------------------------------------------------------


async def test_a_slow_agent_times_out_with_its_own_timeout(front: Front) -> None:
    async with front.transport("hasty") as client:
        with pytest.raises(Exception, match=r"did not answer within 0\.5 s"):
            await client.send_message(message("slow 1.5"))


# The gateway's own card ---------------------------------------------------------------


async def test_the_gateway_describes_itself_and_lists_usable_skills(front: Front) -> None:
    async with httpx.AsyncClient(timeout=30, verify=client_tls()) as anonymous:
        document = (await anonymous.get(front.gateway.url + "/.well-known/agent-card.json")).json()
        refused = await anonymous.post(front.gateway.url + "/a2a", json={"jsonrpc": "2.0"})
    assert refused.status_code == 401
    card = ParseDict(document, AgentCard(), ignore_unknown_fields=True)
    assert card.name == "Switchboard"
    assert card.capabilities.extended_agent_card
    assert [s.id for s in card.skills] == ["directory"], "no agent's skill is public"
    assert card.signatures
    assert card.supported_interfaces[0].url == front.gateway.url + "/a2a"
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {front.token()}"}, timeout=30, verify=client_tls()
    ) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(
            front.gateway.url
        )
        extended = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
        with pytest.raises(Exception, match="runs no tasks"):
            await collect(client.send_message(message("hello")))
    assert {s.id for s in extended.skills} == {
        "directory",
        "worker/work",
        "legacy/work",
        "hasty/work",
    }
    assert "agent:worker" in next(s for s in extended.skills if s.id == "worker/work").tags


# Push notifications --------------------------------------------------------------------


async def test_a_v03_push_config_delete_answers_with_a_null_result(front: Front) -> None:
    """JSON-RPC 2.0 §5: a success carries `result`, null for this 0.3 method
    (the SDK's 0.3 adapter left it out: an answer with neither result nor error).
    Someone else's delete stays an error, and deletes nothing."""
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            task = await started(alice, "slow 0.6")
            created = await alice.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url=hook.url)
            )
            body = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tasks/pushNotificationConfig/delete",
                "params": {"id": task.id, "pushNotificationConfigId": created.id},
            }
            async with httpx.AsyncClient(timeout=30, verify=client_tls()) as http:
                url = front.agent_url("worker")
                bobs = await http.post(
                    url, json=body, headers={"Authorization": f"Bearer {front.token(OTHER)}"}
                )
                kept = await alice.list_task_push_notification_configs(
                    ListTaskPushNotificationConfigsRequest(task_id=task.id)
                )
                answer = await http.post(
                    url, json=body, headers={"Authorization": f"Bearer {front.token()}"}
                )
            assert "result" not in bobs.json(), bobs.text
            assert bobs.json()["error"]["code"] == -32001  # task not found
            assert [c.id for c in kept.configs] == [created.id]
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"jsonrpc": "2.0", "id": 7, "result": None}
            assert int(answer.headers["content-length"]) == len(answer.content)
            after = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            assert not after.configs
    finally:
        hook.server.stop()


async def test_push_notifications_are_relayed_to_the_clients_webhook(front: Front) -> None:
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            task = await started(alice, "slow 0.6")
            config = TaskPushNotificationConfig(
                task_id=task.id, url=hook.url, token="the-clients-own-token"
            )
            created = await alice.create_task_push_notification_config(config)
            assert created.url == hook.url and created.id
            listed = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            assert [c.id for c in listed.configs] == [created.id]
            fetched = await alice.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            )
            assert fetched.url == hook.url
            # The task's last push comes before its config is deleted below.
            await wait_for_async(
                lambda: any(_is_done(body) for _, body in hook.received),
                what="the push of the task's end",
            )
            async with front.transport("worker", OTHER) as bob:
                with pytest.raises(TaskNotFoundError):
                    await bob.list_task_push_notification_configs(
                        ListTaskPushNotificationConfigsRequest(task_id=task.id)
                    )
            await alice.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            )
            after = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            assert not after.configs
            # A2A 1.0 §3.1.10: deleting again has the same effect, no error...
            await alice.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            )
            # ...but on someone else's task it is still "not found".
            async with front.transport("worker", OTHER) as bob:
                with pytest.raises(TaskNotFoundError):
                    await bob.delete_task_push_notification_config(
                        DeleteTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
                    )
    finally:
        hook.server.stop()
    assert any(_is_done(body) for _, body in hook.received), hook.received
    for headers, body in hook.received:
        assert headers["x-a2a-notification-token"] == "the-clients-own-token"
        claims = verify_as_downstream(
            headers["authorization"].removeprefix("Bearer "),
            front.gateway.url,
            hook.url,
            delegated=False,
        )
        assert claims["sub"] == front.subject()
        assert _task_of(body) == task.id
    # The agent was given the gateway's relay, never the client's webhook or token.
    for call in front.worker_seen.calls():
        assert not call.contains(hook.url) and not call.contains("the-clients-own-token")


async def test_a_push_url_to_a_forbidden_address_is_refused(front: Front) -> None:
    async with front.transport("worker") as alice:
        task = (await alice.send_message(message("task x"))).task
        config = TaskPushNotificationConfig(
            task_id=task.id, url="http://169.254.169.254/latest/meta-data"
        )
        with pytest.raises(InvalidParamsError, match=r"169\.254\.169\.254"):
            await alice.create_task_push_notification_config(config)
        # Inside SendMessage too, before the agent is called.
        calls = len(front.worker_seen.calls())
        request = message("task y")
        request.configuration.task_push_notification_config.url = "http://10.0.0.1/hook"
        with pytest.raises(InvalidParamsError, match=r"10\.0\.0\.1"):
            await alice.send_message(request)
        assert len(front.worker_seen.calls()) == calls


async def test_a_push_config_inside_send_message_is_relayed(front: Front) -> None:
    # A2A 1.0 §3.2.2: SendMessage's configuration may carry the push config of
    # the task it creates. The agent gets the gateway's relay in its place.
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            request = message("slow 0.6")
            request.configuration.return_immediately = True
            inline = request.configuration.task_push_notification_config
            inline.url, inline.token, inline.id = hook.url, "inline-token", "cfg-1"
            task = (await alice.send_message(request)).task
            listed = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            assert [(c.id, c.url, c.task_id) for c in listed.configs] == [
                ("cfg-1", hook.url, task.id)
            ]
            # The task's last push comes before its config is deleted below.
            await wait_for_async(
                lambda: any(_is_done(body) for _, body in hook.received),
                what="the push of the task's end",
            )
            async with front.transport("worker", OTHER) as bob:
                with pytest.raises(TaskNotFoundError):
                    await bob.list_task_push_notification_configs(
                        ListTaskPushNotificationConfigsRequest(task_id=task.id)
                    )
            # A call answered by a Message (no task) leaves no config behind.
            quick = message("hello")
            quick.configuration.task_push_notification_config.url = hook.url
            answered = await alice.send_message(quick)
    finally:
        hook.server.stop()
    assert answered.HasField("message")  # the worker echoes "hello": no task
    assert any(_is_done(body) for _, body in hook.received), hook.received
    for headers, body in hook.received:
        assert headers["x-a2a-notification-token"] == "inline-token"
        assert _task_of(body) == task.id
    for call in front.worker_seen.calls():
        assert not call.contains(hook.url) and not call.contains("inline-token")
    engine = create_engine(front.gateway.settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(a2a_push_configs.c.task_id))).scalars().all()
    finally:
        await engine.dispose()
    assert not [t for t in rows if t.startswith("pending:")], rows


async def test_a_streamed_send_message_binds_its_inline_push_config(front: Front) -> None:
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            request = message("slow 0.3")
            request.configuration.task_push_notification_config.url = hook.url
            events = [e async for e in alice.send_message_streaming(request)]
            task_id = events[0].task.id
            listed = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            # The task's last push comes before its config is deleted below.
            await wait_for_async(
                lambda: any(_is_done(body) for _, body in hook.received),
                what="the push of the task's end",
            )
    finally:
        hook.server.stop()
    assert [c.url for c in listed.configs] == [hook.url]
    assert hook.received and all(_task_of(body) == task_id for _, body in hook.received)


async def test_a_webhook_host_that_does_not_resolve_now_is_kept_for_delivery(
    front: Front,
) -> None:
    # Refusing it would protect nothing: each delivery resolves and checks the
    # address again at connect time, and the agent's own store takes it too
    # (the A2A TCK's push CRUD tests use such a URL).
    async with front.transport("worker") as alice:
        task = (await alice.send_message(message("task z"))).task
        url = "https://no-such-host.invalid/hook"
        created = await alice.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task.id, url=url)
        )
        assert created.url == url


async def test_a_forged_notification_is_refused(front: Front) -> None:
    async with httpx.AsyncClient(timeout=10, verify=client_tls()) as http:
        response = await http.post(
            front.agent_url("worker") + "/push/not-a-relay",
            json={"task": {"id": "t"}},
            headers={"X-A2A-Notification-Token": "guess"},
        )
    assert response.status_code == 401


async def test_push_credentials_are_sealed_at_rest_and_reach_only_the_webhook(
    front: Front,
) -> None:
    secret = f"webhook-secret-{uuid.uuid4().hex}"
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            # Paused in input-required: nothing is sent until the follow-up.
            task = (await alice.send_message(message("ask"))).task
            config = TaskPushNotificationConfig(
                task_id=task.id,
                url=hook.url,
                authentication=AuthenticationInfo(scheme="Bearer", credentials=secret),
            )
            created = await alice.create_task_push_notification_config(config)
            listed = await alice.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task.id)
            )
            fetched = await alice.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task.id, id=created.id)
            )
            # The scheme is shown, the secret is never handed back.
            for shown in (created, *listed.configs, fetched):
                assert shown.url == hook.url
                assert shown.authentication.scheme == "Bearer"
                assert not shown.authentication.credentials
            row = await _push_row(front, task.id, created.id)
            assert secret not in repr(row)
            assert str(row["credentials_sealed"]).startswith("fernet:")
            await alice.send_message(follow_up(task))
            await _until_done(hook)
    finally:
        hook.server.stop()
    assert hook.received
    for headers, _ in hook.received:
        assert headers["authorization"] == f"Bearer {secret}"
    for call in front.worker_seen.calls():
        assert not call.contains(secret)


async def test_a_push_config_whose_credentials_cannot_be_opened_is_skipped(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    good, lost = f"good-{uuid.uuid4().hex}", f"lost-{uuid.uuid4().hex}"
    kept, skipped = webhook(), webhook()
    try:
        async with front.transport("worker") as alice:
            task = (await alice.send_message(message("ask"))).task
            for config_id, hook, secret in (("kept", kept, good), ("skipped", skipped, lost)):
                await alice.create_task_push_notification_config(
                    TaskPushNotificationConfig(
                        task_id=task.id,
                        id=config_id,
                        url=hook.url,
                        authentication=AuthenticationInfo(scheme="Bearer", credentials=secret),
                    )
                )
            # As if restored from a deployment with another SWITCHBOARD_SECRET_KEY.
            sealed = seal_secret(lost, "another" * 6, SEAL_PURPOSE)
            await _set_sealed(front, task.id, "skipped", sealed)
            with caplog.at_level(logging.WARNING, logger="gateway.agents.handler"):
                await alice.send_message(follow_up(task))
                await _until_done(kept)
                await wait_for_async(lambda: _skipped(caplog, task.id), what=lambda: caplog.text)
            # The notification was still recorded against the task.
            fetched = await alice.get_task(GetTaskRequest(id=task.id))
            assert fetched.status.state == DONE
    finally:
        stop_all(kept.server, skipped.server)
    assert all(h["authorization"] == f"Bearer {good}" for h, _ in kept.received)
    assert not skipped.received
    warnings = _skipped(caplog, task.id)
    assert warnings, caplog.text
    assert not any(lost in w or sealed in w for w in warnings)


@pytest.mark.parametrize(
    ("scheme", "credentials", "token", "field"),
    [
        ("Bearer", "abc\r\nX-Injected: 1", "", "authentication.credentials"),
        ("Bearer\r\nX-Injected:", "abc", "", "authentication.scheme"),
        ("", "", "tok\nen", "token"),
        ("Bearer x", "abc", "", "authentication.scheme"),
    ],
)
async def test_a_push_config_that_cannot_be_a_header_is_refused(
    front: Front, scheme: str, credentials: str, token: str, field: str
) -> None:
    async with front.transport("worker") as alice:
        task = (await alice.send_message(message("ask"))).task
        config = TaskPushNotificationConfig(
            task_id=task.id, url="http://example.com/hook", token=token
        )
        if scheme:
            config.authentication.CopyFrom(
                AuthenticationInfo(scheme=scheme, credentials=credentials)
            )
        with pytest.raises(InvalidParamsError, match=re.escape(field)):
            await alice.create_task_push_notification_config(config)
        listed = await alice.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task.id)
        )
    assert not listed.configs


async def test_a_stored_config_that_cannot_be_a_header_is_skipped_not_a_500(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    """A config stored before headers were checked on create."""
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            task = (await alice.send_message(message("ask"))).task
            created = await alice.create_task_push_notification_config(
                TaskPushNotificationConfig(task_id=task.id, url=hook.url, token="fine")
            )
            row = await _push_row(front, task.id, created.id)
            await _set_row(
                front, task.id, created.id, config={**row["config"], "token": "bad\r\nvalue"}
            )
            with caplog.at_level(logging.WARNING, logger="gateway.agents.handler"):
                await alice.send_message(follow_up(task))
                await wait_for_async(lambda: _skipped(caplog, task.id), what=lambda: caplog.text)
            fetched = await alice.get_task(GetTaskRequest(id=task.id))
    finally:
        hook.server.stop()
    assert fetched.status.state == DONE
    assert not hook.received
    warnings = _skipped(caplog, task.id)
    assert warnings, caplog.text
    # Nothing of the token's value, raw or escaped (the config's random id may
    # well contain "bad").
    assert not any("bad\r" in w or "bad\\r" in w for w in warnings), warnings


async def test_plain_credentials_from_a_replica_before_0009_still_reach_the_webhook(
    front: Front,
) -> None:
    """During a rolling upgrade an older replica writes the credentials into
    `config`, as before migration 0009; a newer one still sends them."""
    secret = f"old-replica-{uuid.uuid4().hex}"
    hook = webhook()
    try:
        async with front.transport("worker") as alice:
            task = (await alice.send_message(message("ask"))).task
            created = await alice.create_task_push_notification_config(
                TaskPushNotificationConfig(
                    task_id=task.id,
                    url=hook.url,
                    authentication=AuthenticationInfo(scheme="Basic", credentials="sealed"),
                )
            )
            row = await _push_row(front, task.id, created.id)
            config = {**row["config"], "authentication": {"scheme": "Basic", "credentials": secret}}
            await _set_row(front, task.id, created.id, config=config, credentials_sealed=None)
            await alice.send_message(follow_up(task))
            await _until_done(hook)
    finally:
        hook.server.stop()
    assert hook.received
    assert all(h["authorization"] == f"Basic {secret}" for h, _ in hook.received)


def follow_up(task: Task) -> SendMessageRequest:
    """The answer that completes a task paused by "ask"."""
    return message("warehouse 7", task_id=task.id, context_id=task.context_id)


def _skipped(caplog: pytest.LogCaptureFixture, task_id: str) -> list[str]:
    """The gateway's warnings that a notification for the task was not forwarded."""
    logged = [r.getMessage() for r in caplog.records]
    return [m for m in logged if task_id in m and "not forwarded" in m]


async def _push_row(front: Front, task_id: str, config_id: str) -> dict[str, Any]:
    engine = create_engine(front.gateway.settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(a2a_push_configs).where(
                        a2a_push_configs.c.task_id == task_id,
                        a2a_push_configs.c.config_id == config_id,
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return dict(row._mapping)


async def _set_sealed(front: Front, task_id: str, config_id: str, sealed: str) -> None:
    await _set_row(front, task_id, config_id, credentials_sealed=sealed)


async def _set_row(front: Front, task_id: str, config_id: str, **values: Any) -> None:
    engine = create_engine(front.gateway.settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(a2a_push_configs)
                .where(
                    a2a_push_configs.c.task_id == task_id,
                    a2a_push_configs.c.config_id == config_id,
                )
                .values(**values)
            )
    finally:
        await engine.dispose()


async def _until_done(hook: Webhook) -> None:
    await wait_for_async(
        lambda: any(_is_done(body) for _, body in hook.received),
        what=lambda: f"no final notification: {hook.received}",
    )


def _is_done(body: dict[str, Any]) -> bool:
    state = (body.get("statusUpdate") or body.get("task") or {}).get("status", {}).get("state")
    return bool(state == "TASK_STATE_COMPLETED")


def _task_of(body: dict[str, Any]) -> str:
    for kind in ("task", "statusUpdate", "artifactUpdate"):
        if kind in body:
            return str(body[kind].get("id") or body[kind].get("taskId"))
    return ""


async def test_bad_list_and_rest_requests_get_clear_errors(front: Front) -> None:
    async with front.transport("worker") as alice:
        task = (await alice.send_message(message("task kept"))).task
        for request in (
            ListTasksRequest(page_token="not-a-token-we-issued"),
            ListTasksRequest(page_size=500),
            ListTasksRequest(history_length=-1),
        ):
            with pytest.raises(InvalidParamsError):
                await alice.list_tasks(request)
        assert [t.id for t in (await alice.list_tasks(ListTasksRequest())).tasks] == [task.id]
    headers = {"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(timeout=10, headers=headers, verify=client_tls()) as http:
        unknown = await http.post(front.agent_url("nobody") + "/message:send", json={})
        malformed = await http.post(
            front.agent_url("worker") + "/message:send",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        anonymous = await http.get(
            front.agent_url("worker") + "/tasks/" + task.id, headers={"Authorization": ""}
        )
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    assert malformed.status_code == 400
    assert anonymous.status_code == 401


# Trace context ---------------------------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
STATE = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"
# (agent, JSON-RPC method): the pass-through (a 1.0 agent's SendMessage), the SDK's
# 0.3 transport, and a stream relayed from the response's own task.
PATHS = {
    "pass-through": ("worker", "SendMessage"),
    "sdk-0.3": ("legacy", "SendMessage"),
    "stream": ("worker", "SendStreamingMessage"),
}


def _send_raw(
    front: Front, agent_id: str, method: str, text: str, trace_headers: dict[str, str]
) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": method,
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "parts": [{"text": text}],
            }
        },
    }
    headers = {"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0", **trace_headers}
    response = httpx.post(
        front.agent_url(agent_id), json=body, headers=headers, timeout=30, verify=client_tls()
    )
    assert response.status_code == 200 and f"echo: {text}" in response.text, response.text
    return response


def _audited(front: Front) -> list[dict[str, Any]]:
    with front.gateway.client() as admin:
        records = admin.get("/audit", params={"user": front.subject(), "limit": 100}).json()
    return list(records["items"])


def _seen_by(front: Front, agent_id: str) -> Recorder:
    return front.worker_seen if agent_id == "worker" else front.legacy_seen


@pytest.mark.parametrize("path", PATHS)
def test_the_callers_trace_reaches_the_agent_and_the_audit(front: Front, path: str) -> None:
    agent_id, method = PATHS[path]
    parent = f"00-{TRACE}-{CALLER_SPAN}-00"  # not sampled: the flag is kept
    _send_raw(front, agent_id, method, "traced", {"traceparent": parent, "tracestate": STATE})
    (call,) = _seen_by(front, agent_id).calls()
    assert call.trace is not None
    trace_id, span_id, flags = call.trace
    assert (trace_id, flags) == (TRACE, "00")
    assert span_id != CALLER_SPAN  # the gateway's own span, not the caller's header
    assert call.headers["tracestate"] == STATE  # unchanged
    (record,) = _audited(front)
    assert record["trace_id"] == TRACE and record["target"] == agent_id


@pytest.mark.parametrize("path", PATHS)
def test_without_a_traceparent_the_agent_gets_the_audits_fresh_trace(
    front: Front, path: str
) -> None:
    agent_id, method = PATHS[path]
    # A tracestate alone belongs to no trace: it is not passed on.
    _send_raw(front, agent_id, method, "untraced", {"tracestate": STATE})
    (call,) = _seen_by(front, agent_id).calls()
    (record,) = _audited(front)
    assert call.trace is not None
    assert call.trace[0] == record["trace_id"] != TRACE
    assert call.trace[2] == "01"
    assert "tracestate" not in call.headers


@pytest.mark.parametrize(
    "parent",
    [
        f"00-{TRACE.upper()}-{CALLER_SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE}-{CALLER_SPAN}-01-smuggled",
        f"ff-{TRACE}-{CALLER_SPAN}-01",
    ],
)
def test_a_malformed_traceparent_is_not_forwarded(front: Front, parent: str) -> None:
    _send_raw(front, "worker", "SendMessage", "malformed", {"traceparent": parent})
    _send_raw(front, "legacy", "SendMessage", "malformed", {"traceparent": parent})
    records = {r["target"]: r["trace_id"] for r in _audited(front)}
    for agent_id in ("worker", "legacy"):
        (call,) = _seen_by(front, agent_id).calls()
        assert call.trace is not None
        # A fresh trace, the audit's, and nothing of the header sent.
        assert call.trace[0] == records[agent_id] != TRACE
        assert call.headers["traceparent"] != parent and not call.contains(parent)
        assert "tracestate" not in call.headers


async def test_concurrent_calls_each_carry_their_own_trace(front: Front) -> None:
    traces = [f"{n:032x}" for n in range(1, 9)]
    headers = {"Authorization": f"Bearer {front.token()}", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(timeout=30, headers=headers, verify=client_tls()) as http:

        async def call(trace_id: str, agent_id: str) -> None:
            body = send_message_body(f"trace {trace_id}", uuid.uuid4().hex)
            parent = {"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}
            response = await http.post(front.agent_url(agent_id), json=body, headers=parent)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(call(t, agent) for t in traces for agent in ("worker", "legacy")))
    for recorder in (front.worker_seen, front.legacy_seen):
        calls = recorder.calls()
        assert len(calls) == len(traces)
        for seen in calls:
            assert seen.trace is not None and seen.contains(f"trace {seen.trace[0]}")
    audited = await asyncio.to_thread(_audited, front)
    assert sorted(r["trace_id"] for r in audited) == sorted(traces * 2)

"""The A2A front door over gRPC end to end: the official a2a-sdk gRPC client,
built from the gateway's card, through the gateway's gRPC binding, to agents
built with the official SDK (A2A 1.0 and a 0.3-only one, reached over their
own JSON-RPC). Real HTTP/2 on 127.0.0.1, a real database, real signatures.

gRPC has no paths: the card's gRPC interface names the agent as its
`tenant`, which the SDK's client sets on every request (A2A 1.0 §4.4.6).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import grpc
import grpc.aio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client, ClientCallContext
from a2a.helpers import new_text_message
from a2a.types import (
    AgentCard,
    GetTaskRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskPushNotificationConfig,
    TaskState,
    a2a_pb2_grpc,
)
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.rpc import error_details_pb2, status_pb2

from registry.tls import client_tls
from tests.support.a2a_agents import legacy_worker_agent, worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder, verify_as_downstream
from tests.support.outages import free_port
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for_awaited

DONE = TaskState.TASK_STATE_COMPLETED
POLICY = """\
agents:
  worker:
    skills:
      work: {require: [work:run]}
  held:
    skills:
      work: {approval: true}
"""
SEALING_SECRET = "grpc-front-door-tests-sealing-secret-012345"


@dataclass
class GrpcFront:
    gateway: Gateway
    target: str
    worker: ServerThread
    worker_seen: Recorder
    legacy: ServerThread
    legacy_seen: Recorder
    held_seen: Recorder

    def token(self, subject: str, scope: str = "work:run") -> str:
        return self.gateway.token(subject, scope)

    def card(self, agent_id: str) -> AgentCard:
        url = f"{self.gateway.url}/a2a/{agent_id}/.well-known/agent-card.json"
        card = AgentCard()
        ParseDict(httpx.get(url, verify=client_tls()).json(), card, ignore_unknown_fields=True)
        return card

    @asynccontextmanager
    async def client(
        self, agent_id: str, token: str, streaming: bool = False, binding: str = "GRPC"
    ) -> AsyncIterator[Client]:
        """The SDK's client for the agent's card, in ``binding`` only; over gRPC
        the token goes as metadata (`auth`), over HTTP as a header."""
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30, verify=client_tls()) as http:
            factory = ClientFactory(
                ClientConfig(
                    supported_protocol_bindings=[binding],
                    httpx_client=http,
                    streaming=streaming,
                    grpc_channel_factory=grpc.aio.insecure_channel,
                )
            )
            client = factory.create(self.card(agent_id))
            try:
                yield client
            finally:
                await client.close()

    @asynccontextmanager
    async def stub(self) -> AsyncIterator[a2a_pb2_grpc.A2AServiceStub]:
        """A bare stub, for requests no SDK client would make."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            yield a2a_pb2_grpc.A2AServiceStub(channel)  # type: ignore[no-untyped-call]


def auth(token: str) -> ClientCallContext:
    return ClientCallContext(service_parameters={"authorization": f"Bearer {token}"})


def message(text: str, **ids: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER, **ids))


async def collect(stream: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in stream]


def _register(gateway: Gateway, agent_id: str, server: ServerThread) -> None:
    with gateway.client() as admin:
        card_url = server.url + "/.well-known/agent-card.json"
        response = admin.post("/agents", json={"card_url": card_url, "id": agent_id})
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def grpc_front(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[GrpcFront]:
    worker_seen, legacy_seen = Recorder(), Recorder()
    worker = worker_agent(worker_seen)
    legacy = legacy_worker_agent(legacy_seen)
    held_seen = Recorder()
    held = worker_agent(held_seen)
    port = free_port()
    tmp = tmp_path_factory.mktemp("grpc")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    gateway = start_gateway(
        tmp / "data",
        module_database_url,
        secret_key=SEALING_SECRET,
        a2a_grpc_port=port,
        policy_file=policy,
    )
    try:
        _register(gateway, "worker", worker)
        _register(gateway, "legacy", legacy)
        _register(gateway, "held", held)
        yield GrpcFront(
            gateway, f"127.0.0.1:{port}", worker, worker_seen, legacy, legacy_seen, held_seen
        )
    finally:
        stop_all(gateway.server, worker, legacy, held)


_subjects = itertools.count()


@dataclass
class User:
    subject: str
    token: str  # may use the worker's skill
    other: str  # another user's token
    unscoped: str  # the same user, without the skill's scope


@pytest.fixture
def user(grpc_front: GrpcFront) -> User:
    """A fresh user per test (no task of an earlier test is theirs), with
    tokens issued up front: issuing a dev token runs its own event loop."""
    grpc_front.worker_seen.clear()
    grpc_front.legacy_seen.clear()
    grpc_front.held_seen.clear()
    subject = f"grpc-user-{next(_subjects)}"
    return User(
        subject,
        grpc_front.token(subject),
        grpc_front.token(subject + "-other"),
        grpc_front.token(subject, scope="nothing:here"),
    )


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status a gRPC error carries in its trailing metadata."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no status details in {error!r}")


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in _status(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {error!r}")


def test_the_card_lists_the_grpc_interface_with_the_agent_as_tenant(
    grpc_front: GrpcFront,
) -> None:
    card = grpc_front.card("worker")
    bindings = [(i.protocol_binding, i.protocol_version) for i in card.supported_interfaces]
    # JSON-RPC stays first (the preferred binding, A2A 1.0 §8.3.1).
    assert bindings[0] == ("JSONRPC", "1.0")
    (grpc_interface,) = [i for i in card.supported_interfaces if i.protocol_binding == "GRPC"]
    assert grpc_interface.url == grpc_front.target
    assert grpc_interface.tenant == "worker"
    assert grpc_interface.protocol_version == "1.0"


async def test_send_message_over_grpc_with_the_sdk_client(
    grpc_front: GrpcFront, user: User
) -> None:
    token = user.token
    async with grpc_front.client("worker", token) as client:
        (event,) = await collect(client.send_message(message("hello grpc"), context=auth(token)))
    assert event.message.parts[0].text == "echo: hello grpc"
    (call,) = grpc_front.worker_seen.calls()
    # The agent got a token minted for it, never the caller's, and no tenant.
    assert call.bearer is not None and call.bearer != token
    claims = verify_as_downstream(call.bearer, grpc_front.gateway.url, grpc_front.worker.url + "/")
    assert claims["sub"] == user.subject
    assert not call.contains(token)
    assert b"tenant" not in call.body


async def test_a_task_over_grpc_is_its_owners_alone(grpc_front: GrpcFront, user: User) -> None:
    token = user.token
    async with grpc_front.client("worker", token) as client:
        (event,) = await collect(client.send_message(message("task count"), context=auth(token)))
        task = event.task
        assert task.status.state == DONE
        fetched = await client.get_task(GetTaskRequest(id=task.id), context=auth(token))
        assert fetched.artifacts[0].parts[0].text == "done: count"
        listed = await client.list_tasks(ListTasksRequest(), context=auth(token))
        assert [t.id for t in listed.tasks] == [task.id]
    other = user.other
    before = len(grpc_front.worker_seen.calls())
    async with grpc_front.client("worker", other) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task.id), context=auth(other))
        assert not (await client.list_tasks(ListTasksRequest(), context=auth(other))).tasks
    assert len(grpc_front.worker_seen.calls()) == before, "a refused call reached the agent"


async def test_streaming_over_grpc(grpc_front: GrpcFront, user: User) -> None:
    token = user.token
    async with grpc_front.client("worker", token, streaming=True) as client:
        events = await collect(client.send_message(message("slow 0.3"), context=auth(token)))
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and "artifact_update" in kinds
    assert events[-1].status_update.status.state == DONE


async def test_a_grpc_client_reaches_a_0_3_agent(grpc_front: GrpcFront, user: User) -> None:
    token = user.token
    async with grpc_front.client("legacy", token) as client:
        (event,) = await collect(client.send_message(message("task for old"), context=auth(token)))
    assert event.task.status.state == DONE
    calls = grpc_front.legacy_seen.calls()
    assert calls and b'"method":"message/send"' in calls[0].body


async def test_no_token_a_bad_token_no_tenant_and_no_agent_are_refused(
    grpc_front: GrpcFront, user: User
) -> None:
    token = user.token
    request = message("never sent")
    request.tenant = "worker"
    async with grpc_front.stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.SendMessage(request)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        bad = (("authorization", "Bearer " + token[:-4] + "AAAA"),)
        with pytest.raises(grpc.aio.AioRpcError) as forged:
            await stub.SendMessage(request, metadata=bad)
        assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {token}"), ("a2a-version", "1.0"))
        untenanted = message("no tenant")
        with pytest.raises(grpc.aio.AioRpcError) as no_tenant:
            await stub.SendMessage(untenanted, metadata=good)
        assert no_tenant.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tenant" in (no_tenant.value.details() or "")
        request.tenant = "nobody"
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.SendMessage(request, metadata=good)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert not grpc_front.worker_seen.calls(), "a refused call reached the agent"


async def test_a_denied_delegation_is_permission_denied_with_the_reasons(
    grpc_front: GrpcFront, user: User
) -> None:
    token = user.unscoped
    request = message("not for you")
    request.tenant = "worker"
    async with grpc_front.stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.SendMessage(request, metadata=(("authorization", f"Bearer {token}"),))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = _error_info(denied.value)
    assert (info.reason, info.domain) == ("DELEGATION_REFUSED", "switchboard")
    assert "reasons" in info.metadata
    assert not grpc_front.worker_seen.calls()


async def test_an_oversized_request_is_refused_before_anything(
    grpc_front: GrpcFront, user: User
) -> None:
    token = user.token
    request = message("x" * (grpc_front.gateway.settings.max_request_bytes + 1))
    request.tenant = "worker"
    async with grpc_front.stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as big:
            await stub.SendMessage(request, metadata=(("authorization", f"Bearer {token}"),))
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not grpc_front.worker_seen.calls()


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_a_number_json_does_not_have_is_refused_and_audited(
    grpc_front: GrpcFront, user: User, number: float
) -> None:
    """Issue 57: gRPC's doubles carry NaN and the infinities, which every
    other door refuses in its text; here too, before anything is decided or
    sent, and the refusal is audited as the door's others are."""
    request = message("numbers")
    request.message.parts.add().data.struct_value.update({"x": [1, {"y": number}]})
    request.tenant = "worker"

    async def send() -> grpc.aio.AioRpcError:
        async with grpc_front.stub() as stub:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.SendMessage(
                    request, metadata=(("authorization", f"Bearer {user.token}"),)
                )
        return refused.value

    refused = asyncio.run(send())
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused
    assert "not a JSON number" in str(refused.details())
    assert not grpc_front.worker_seen.calls()
    with grpc_front.gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "worker", "limit": 50}).json()["items"]
    mine = [r for r in items if r["subject"] == user.subject]
    assert [r["decision"] for r in mine] == ["deny"], mine
    assert any("not a JSON number" in r for r in mine[0]["reasons"]), mine


@pytest.mark.parametrize("binding", ["GRPC", "JSONRPC"])
async def test_a_held_call_over_grpc_waits_for_its_approval(
    grpc_front: GrpcFront, user: User, binding: str
) -> None:
    token = user.token
    async with grpc_front.client("held", token, binding=binding) as client:
        (event,) = await collect(client.send_message(message("task wait"), context=auth(token)))
        task = event.task
        assert task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
        assert not grpc_front.held_seen.calls(), "called before the approval"
        approval = MessageToDict(task.status.message.metadata)["approval"]

        def approve() -> httpx.Response:
            with grpc_front.gateway.client() as admin:
                return admin.post(f"/approvals/{approval}", json={"decision": "approve"})

        answer = await anyio.to_thread.run_sync(approve)
        assert answer.status_code == 200, answer.text

        async def finished() -> Any:
            done = await client.get_task(GetTaskRequest(id=task.id), context=auth(token))
            return done if done.status.state == DONE else None

        done = await wait_for_awaited(finished, 20, every=0.1, what="the task done")
    assert done.status.state == DONE, done
    assert done.artifacts[0].parts[0].text == "done: wait"


def test_grpc_calls_are_audited_like_the_others(grpc_front: GrpcFront, user: User) -> None:
    async def call() -> None:
        async with grpc_front.client("worker", user.token) as client:
            await collect(client.send_message(message("audited"), context=auth(user.token)))

    asyncio.run(call())
    with grpc_front.gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "worker", "limit": 50}).json()["items"]
    mine = [r for r in items if r["subject"] == user.subject]
    assert [(r["event"], r["outcome"]) for r in mine] == [("a2a.SendMessage", "ok")], mine


async def test_the_grpc_codes_are_the_specifications_where_the_sdk_differs(
    grpc_front: GrpcFront, user: User
) -> None:
    """A2A 1.0 §5.4 "Error Code Mappings": PushNotificationNotSupportedError and
    VersionNotSupportedError are UNIMPLEMENTED over gRPC (the SDK's own table
    says FAILED_PRECONDITION; the TCK's GRPC-ERR-002 holds servers to §5.4)."""
    auth_md = ("authorization", f"Bearer {user.token}")
    request = message("task versioned")
    request.tenant = "legacy"  # declares pushNotifications: false
    async with grpc_front.stub() as stub:
        task = (await stub.SendMessage(request, metadata=(auth_md, ("a2a-version", "1.0")))).task
        push = TaskPushNotificationConfig(task_id=task.id, url="https://hooks.example/a2a")
        push.tenant = "legacy"
        with pytest.raises(grpc.aio.AioRpcError) as no_push:
            await stub.CreateTaskPushNotificationConfig(push, metadata=(auth_md,))
        assert no_push.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert _error_info(no_push.value).reason == "PUSH_NOTIFICATION_NOT_SUPPORTED"
        request.tenant = "worker"
        with pytest.raises(grpc.aio.AioRpcError) as version:
            await stub.SendMessage(request, metadata=(auth_md, ("a2a-version", "99.0")))
        assert version.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert _error_info(version.value).reason == "VERSION_NOT_SUPPORTED"


async def test_bytes_that_are_no_message_are_refused_and_nothing_breaks(
    grpc_front: GrpcFront, user: User
) -> None:
    """Malformed protobuf, a wrong type in a field, an unknown method: each a
    gRPC error, before any decision; the door serves the next call."""
    metadata = (("authorization", f"Bearer {user.token}"),)
    async with grpc.aio.insecure_channel(grpc_front.target) as channel:
        raw = channel.unary_unary("/lf.a2a.v1.A2AService/SendMessage")
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05\x12\x03\xff\xfe\xfd"):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await raw(garbage, metadata=metadata)
            # grpcio alone answers UNKNOWN ("Unexpected DecodeError"): the door says why.
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad.value
            assert "not a valid request message" in (bad.value.details() or "")
        # Bytes that parse, as a message naming no agent: refused for that.
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await raw(b"\x08" * 64, metadata=metadata)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        unknown = channel.unary_unary("/lf.a2a.v1.A2AService/DropAllTables")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await unknown(b"", metadata=metadata)
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert not grpc_front.worker_seen.calls()
    request = message("still here")
    request.tenant = "worker"
    async with grpc_front.stub() as stub:
        answer = await stub.SendMessage(request, metadata=metadata)
    assert answer.message.parts[0].text == "echo: still here"


async def test_a_skill_named_twice_differently_is_refused_before_any_agent(
    grpc_front: GrpcFront, user: User
) -> None:
    """The gRPC door decides the skill from every place the parsed request
    names one, as the HTTP doors do: two places naming different skills, or a
    skill the card lacks, is INVALID_ARGUMENT, refused and audited, and no
    agent is called."""
    metadata = (("authorization", f"Bearer {user.token}"), ("a2a-version", "1.0"))
    twice = message("which one")
    twice.tenant = "worker"
    twice.message.metadata.update({"skill": "work"})
    twice.metadata.update({"skill": "admin"})
    unknown = message("no such skill")
    unknown.tenant = "worker"
    unknown.message.parts[0].metadata.update({"skill": "admin"})
    async with grpc_front.stub() as stub:
        for request in (twice, unknown):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.SendMessage(request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert not grpc_front.worker_seen.calls(), "a refused call reached the agent"

    def audited() -> list[dict[str, Any]]:
        with grpc_front.gateway.client() as admin:
            items = admin.get("/audit", params={"agent": "worker", "limit": 50}).json()["items"]
        return [r for r in items if r["subject"] == user.subject]

    refusals = await anyio.to_thread.run_sync(audited)
    assert len(refusals) == 2 and all(r["decision"] == "deny" for r in refusals), refusals


def _audited(front: GrpcFront, subject: str) -> list[dict[str, Any]]:
    with front.gateway.client() as admin:
        items = admin.get("/audit", params={"agent": "worker", "limit": 100}).json()["items"]
    return [r for r in items if r["subject"] == subject]


async def test_bad_push_configs_and_tenants_are_clear_refusals_and_audited(
    grpc_front: GrpcFront, user: User
) -> None:
    good = (("authorization", f"Bearer {user.token}"), ("a2a-version", "1.0"))
    async with grpc_front.stub() as stub:
        # A push config inside SendMessage to a refused address, or with an id
        # no row can hold (too long, NUL): INVALID_ARGUMENT, never UNAVAILABLE.
        for url, config_id, task_id in (
            ("http://10.0.0.1/hook", "", ""),
            ("https://hooks.example/a2a", "x" * 300, ""),
            ("https://hooks.example/a2a", "a\x00b", ""),
            # A config naming a task other than the message's (none here).
            ("https://hooks.example/a2a", "", "someone-elses-task"),
        ):
            request = message("task refused-inline")
            request.tenant = "worker"
            inline = request.configuration.task_push_notification_config
            inline.url, inline.id, inline.task_id = url, config_id, task_id
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.SendMessage(request, metadata=good)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, config_id
        # A NUL in a context id matches no task: an empty page, not an outage.
        listing = ListTasksRequest(context_id="a\x00b", tenant="worker")
        assert not (await stub.ListTasks(listing, metadata=good)).tasks
        # A tenant no agent can have is NOT_FOUND before anything reads it.
        huge = message("hi")
        huge.tenant = "A" * 500_000
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.SendMessage(huge, metadata=good)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert not grpc_front.worker_seen.calls(), "a refused call reached the agent"
    records = await asyncio.to_thread(_audited, grpc_front, user.subject)
    refusals = [r for r in records if r["event"] == "a2a.SendMessage"]
    assert len(refusals) == 4, records
    assert all(r["outcome"] != "ok" and "not called" in (r["detail"] or "") for r in refusals)


async def test_an_api_key_over_grpc_and_once_revoked(grpc_front: GrpcFront, user: User) -> None:
    def make_key() -> dict[str, Any]:
        with grpc_front.gateway.client(user.token) as own:  # a user's key is the user's to make
            made = own.post("/api-keys", json={"name": "grpc", "scopes": ["work:run"]})
        assert made.status_code == 201, made.text
        return dict(made.json())

    made = await anyio.to_thread.run_sync(make_key)
    key = made["key"]
    request = message("hello with a key")
    request.tenant = "worker"
    async with grpc_front.stub() as stub:
        for metadata in ((("x-api-key", key),), (("authorization", f"Bearer {key}"),)):
            answer = await stub.SendMessage(request, metadata=metadata)
            assert answer.message.parts[0].text == "echo: hello with a key"
        seen = grpc_front.worker_seen.calls()
        assert len(seen) == 2 and not any(call.contains(key) for call in seen)
        assert seen[0].bearer is not None
        claims = verify_as_downstream(
            seen[0].bearer, grpc_front.gateway.url, grpc_front.worker.url + "/"
        )
        assert claims["sub"] == user.subject and claims["act"] == {"sub": f"apikey:{made['id']}"}
        two = (("x-api-key", key), ("authorization", f"Bearer {user.token}"))
        with pytest.raises(grpc.aio.AioRpcError) as both:
            await stub.SendMessage(request, metadata=two)
        assert both.value.code() == grpc.StatusCode.UNAUTHENTICATED

        def revoke() -> None:
            with grpc_front.gateway.client() as admin:
                assert admin.delete(f"/api-keys/{made['id']}").status_code == 204

        await anyio.to_thread.run_sync(revoke)
        refusal: list[grpc.aio.AioRpcError] = []

        async def refused() -> bool:
            try:
                await stub.SendMessage(request, metadata=(("x-api-key", key),))
            except grpc.aio.AioRpcError as error:
                refusal.append(error)
            return bool(refusal)

        await wait_for_awaited(refused, 30, what="the revoked key refused")
        assert refusal[0].code() == grpc.StatusCode.UNAUTHENTICATED
        assert refusal[0].details() == "API key has been revoked"

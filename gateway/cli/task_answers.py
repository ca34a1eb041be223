"""The A2A side of `switchboard call` and `switchboard tasks get`: the
message sent, the answer printed, the exit code. Imported by those commands
alone: the a2a-sdk's client is a good second of every other command's start
otherwise (the CLI's tests run it as a subprocess, many times)."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from a2a.client import A2AClientError, Client, ClientConfig, ClientFactory
from a2a.types import (
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Struct, Value

from gateway.cli.common import CliError

# States a task ends in, or waits in for someone else; the exit code says which.
_FINE = {TaskState.TASK_STATE_COMPLETED}
ENDED = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


def exit_code(task: Task) -> int:
    """0: completed; 1: ended otherwise (failed, canceled, rejected); 3: not
    ended -- waiting for input, an approval or a deferral, or still working."""
    if task.status.state in _FINE:
        return 0
    return 1 if task.status.state in ENDED else 3


def follow_command(task_id: str, agent: str) -> str:
    return f"switchboard tasks get {task_id} --agent {agent} --follow"


def message_of(text: str, data: dict[str, Any] | None) -> Message:
    parts = [Part(text=text)]
    if data is not None:
        struct = Struct()
        ParseDict(data, struct)
        parts.append(Part(data=Value(struct_value=struct), media_type="application/json"))
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=parts)


async def send(
    base: str,
    agent: str,
    token: str,
    message: Message,
    *,
    skill: str | None,
    stream: bool,
) -> int:
    """Send ``message`` to ``agent`` through the gateway at ``base``, print
    the answer; the exit code."""
    request = SendMessageRequest(message=message)
    if skill:
        request.metadata.update({"skill": skill})
    last: Task | None = None
    async with gateway_client(f"{base}/a2a/{agent}", token, streaming=stream) as client:
        async for event in client.send_message(request):
            last = _show(event, stream) or last
            if last is not None and event.WhichOneof("payload") == "status_update":
                last.status.CopyFrom(event.status_update.status)  # where the task is now
    if last is None:
        return 0  # answered with a message, printed
    show_task(last)
    code = exit_code(last)
    if code == 3:
        print(
            f"follow it (as the same caller: the same --token or --as): "
            f"{follow_command(last.id, agent)}",
            file=sys.stderr,
        )
    return code


@contextlib.asynccontextmanager
async def gateway_client(url: str, token: str, *, streaming: bool) -> AsyncIterator[Client]:
    """An A2A client of the agent at ``url`` (a gateway's `/a2a/{id}`) as the
    bearer of ``token``; whatever fails inside, one clear `CliError` line."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=300) as http:
        try:
            yield await ClientFactory(
                ClientConfig(httpx_client=http, streaming=streaming)
            ).create_from_url(url)
        except A2AClientError as exc:
            raise CliError(f"{url}: {client_error(exc)}") from None
        except A2AError as exc:  # the gateway's JSON-RPC error, raised as its own class
            raise CliError(f"{url}: {rpc_error(exc)}") from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {url}: {exc}") from None


def client_error(exc: A2AClientError) -> str:
    """What the gateway said: the SDK's client reports a refusal (403, 409,
    429, ...) by its HTTP status only, though the body says why."""
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPStatusError):
        try:
            body = cause.response.json()
        except (ValueError, httpx.ResponseNotRead):
            return str(exc)
        said = body.get("error") if isinstance(body, dict) else None
        if isinstance(said, dict) and said.get("message"):
            return f"HTTP {cause.response.status_code}: {said['message']}"
        if isinstance(body, dict) and body.get("detail"):
            return f"HTTP {cause.response.status_code}: {body['detail']}"
    return str(exc)


def rpc_error(exc: A2AError) -> str:
    """A JSON-RPC error's message, in one line. The SDK's client raises the
    error code's own class (-32602 is an `InvalidParamsError`), which is no
    `A2AClientError`; the gateway's message already names what was wrong."""
    return " ".join(exc.message.split()) or type(exc).__name__


def _show(event: StreamResponse, stream: bool) -> Task | None:
    """Print what ``event`` says; the task it carries, if any."""
    kind = event.WhichOneof("payload")
    if kind == "message":
        print_parts(event.message.parts)
    elif kind == "task":
        return event.task
    elif kind == "status_update" and stream:
        update = event.status_update
        print(f"[{state_name(update.status.state)}]", file=sys.stderr, flush=True)
        print_parts(update.status.message.parts)
    elif kind == "artifact_update" and stream:
        print_parts(event.artifact_update.artifact.parts)
    return None


def show_task(task: Task) -> None:
    if task.status.HasField("message"):
        print_parts(task.status.message.parts)
    for artifact in task.artifacts:
        print_parts(artifact.parts)
    print(f"task {task.id}: {state_name(task.status.state)}", file=sys.stderr)


def print_parts(parts: Any) -> None:
    for part in parts:
        if part.HasField("text"):
            print(part.text, flush=True)
        elif part.HasField("data"):
            print(json.dumps(MessageToDict(part.data), indent=2), flush=True)
        elif part.HasField("url"):
            print(part.url, flush=True)


def state_name(state: int) -> str:
    name: str = TaskState.Name(state)
    return name.removeprefix("TASK_STATE_").lower()

"""SendMessage requests naming skills in chosen places, in each dialect a
caller can speak (JSON-RPC 1.0 and 0.3, HTTP+JSON 1.0 and 0.3), and what
the gateway's answer amounts to (`outcome`) -- for the skill decision tests."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.waiting import wait_for

DIALECTS = ("jsonrpc-1.0", "jsonrpc-0.3", "rest-1.0", "rest-0.3")
ABSENT = object()
_ids = itertools.count()


@dataclass(frozen=True)
class Sent:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _metadata(value: Any) -> dict[str, Any]:
    return {} if value is ABSENT else {"metadata": {"skill": value}}


def request(
    dialect: str,
    request_skill: Any = ABSENT,
    message_skill: Any = ABSENT,
    *,
    text: str = "hello",
    message_key: str = "message",
    task_id: str | None = None,
    part_skill: Any = ABSENT,
) -> Sent:
    """A SendMessage naming ``request_skill`` in `params.metadata`,
    ``message_skill`` in the message's metadata and ``part_skill`` in its
    part's (ABSENT: not named there), continuing ``task_id`` if given."""
    message_id = f"m-{next(_ids)}"
    part: dict[str, Any] = _metadata(part_skill)
    if dialect == "jsonrpc-0.3":
        message = {
            "kind": "message",
            "messageId": message_id,
            "role": "user",
            "parts": [{"kind": "text", "text": text, **part}],
        }
    elif dialect == "rest-0.3":  # the 0.3 proto's JSON: `content`, not `parts`
        message = {
            "messageId": message_id,
            "role": "ROLE_USER",
            "content": [{"text": text, **part}],
        }
    else:
        message = {"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": text, **part}]}
    if task_id is not None:
        message["taskId"] = task_id
    params = {message_key: {**message, **_metadata(message_skill)}, **_metadata(request_skill)}
    one = {"A2A-Version": "1.0"}
    if dialect == "jsonrpc-1.0":
        envelope = {"jsonrpc": "2.0", "id": message_id, "method": "SendMessage", "params": params}
        return Sent("", one, envelope)
    if dialect == "jsonrpc-0.3":
        envelope = {"jsonrpc": "2.0", "id": message_id, "method": "message/send", "params": params}
        return Sent("", {}, envelope)
    if dialect == "rest-1.0":
        return Sent("/message:send", one, params)
    return Sent("/v1/message:send", {}, params)


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in ([v] if k == "text" else _texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", "invalid" (-32602 / 400), "denied" (403), "held", "waiting"
    text: str = ""
    message: str = ""
    task_id: str = ""  # the task answered, if any


def _task_id(result: dict[str, Any]) -> str:
    task = result.get("task", result)
    return str(task.get("id", "")) if isinstance(task, dict) and "status" in task else ""


def outcome(sent: Sent, response: httpx.Response) -> Outcome:
    if response.status_code == 403:
        return Outcome("denied")
    body = response.json()
    if "jsonrpc" in sent.body:
        assert response.status_code == 200, response.text
        assert body["id"] == sent.body["id"], body
        if "error" in body:
            assert body["error"]["code"] == -32602, body
            return Outcome("invalid", message=body["error"]["message"])
        result = body["result"]
    else:
        if response.status_code == 400:
            assert body["error"]["status"] == "INVALID_ARGUMENT", body
            return Outcome("invalid", message=body["error"]["message"])
        assert response.status_code == 200, response.text
        result = body
    shown = json.dumps(result)
    text = " ".join(_texts(result))
    if "AUTH_REQUIRED" in shown or "auth-required" in shown:
        return Outcome("held", text=text, task_id=_task_id(result))
    if "INPUT_REQUIRED" in shown or "input-required" in shown:
        return Outcome("waiting", text=text, task_id=_task_id(result))
    return Outcome("ok", text=text, task_id=_task_id(result))


def approved_and_finished(admin: httpx.Client, approval: str) -> dict[str, Any]:
    """An admin approves ``approval``; the approval once its call has an
    outcome (neither none yet nor running)."""
    assert admin.post(f"/approvals/{approval}", json={"decision": "approve"}).status_code == 200
    return wait_for(
        lambda: (
            shown
            if (shown := admin.get(f"/approvals/{approval}").json())["outcome"]
            not in (None, "running")
            else None
        ),
        seconds=20,
        every=0.1,
        what=f"approval {approval} never finished",
    )

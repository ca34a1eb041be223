"""Stream events in A2A 0.3's shape on a 1.0 stream, read as the 1.0 events
they stand for (docs/interop.md, LangGraph).

LangGraph's server (langgraph-api 0.16.7) advertises a 1.0 card and sends the
first event of a `SendStreamingMessage` as 1.0 (`{"task": {...}}`), every
later one in 0.3's layout: the event object itself, told apart by `kind`,
with 0.3's members (`final`, parts tagged with `kind`) -- yet 1.0's enum
values inside. On the wire:

    {"kind": "status-update", "taskId": "...", "contextId": "...",
     "status": {"state": "TASK_STATE_WORKING", "message": {"kind": "message",
     "role": "ROLE_AGENT", "parts": [{"kind": "text", "text": "..."}], ...}},
     "final": false}

A 1.0 `StreamResponse` has a member per kind of event (`statusUpdate`, ...)
and none of these, so the lenient parse read an empty event, which the
gateway refused (-32006 "empty stream event"). Such an event is read:

1. as 0.3, with the SDK's own 0.3 types and conversions (`a2a.compat.v0_3`,
   what the SDK's 0.3 transports use): a true 0.3 event (`"working"`,
   `"agent"`, a file part as `{"kind": "file", "file": {...}}`);
2. failing that, as the 1.0 object its `kind` names (`status-update` ->
   `statusUpdate`): LangGraph's mix of 0.3 layout and 1.0 values; `kind`
   and `final` are not 1.0 members and are ignored, as the lenient parse
   ignores any unknown member.

0.3 comes first because a 0.3 file part read as 1.0 would be an empty part:
content lost without an error. The event read must carry what A2A 1.0
requires of its kind (a task id, a status, ...). Anything else -- no `kind`,
an unknown one, or an event that reads neither way -- is refused with
`A2AClientError` naming it, which the caller gets as -32006 "the agent sent
an invalid answer: ...".
"""

from __future__ import annotations

from typing import Any

from a2a.client.errors import A2AClientError
from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as types_v03
from a2a.types import StreamResponse
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import parse_lenient, validate_proto_required_fields
from google.protobuf.json_format import ParseError
from pydantic import BaseModel, ValidationError

# 0.3's `kind` -> (0.3 type, the 1.0 `StreamResponse` member, in JSON).
_KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "task": (types_v03.Task, "task"),
    "message": (types_v03.Message, "message"),
    "status-update": (types_v03.TaskStatusUpdateEvent, "statusUpdate"),
    "artifact-update": (types_v03.TaskArtifactUpdateEvent, "artifactUpdate"),
}


def read_0_3_event(value: Any) -> StreamResponse:
    """The 1.0 event a stream event in 0.3's layout (``value``, decoded JSON)
    stands for. Raises `A2AClientError` for anything else."""
    kind = value.get("kind") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in _KINDS:
        shape = _members(value)
        raise A2AClientError(f"a stream event in neither A2A 1.0's shape nor 0.3's ({shape})")
    model, member = _KINDS[kind]
    try:
        compat = types_v03.SendStreamingMessageSuccessResponse(result=model.model_validate(value))
        event = conversions.to_core_stream_response(compat)
    # pydantic's ValidationError is a ValueError; so is the conversion's
    # refusal of a timestamp it cannot read.
    except (ValueError, TypeError) as exc:
        as_0_3 = _first_error(exc)
        try:
            event = parse_lenient({member: value}, StreamResponse())
        except ParseError as parse_error:
            raise A2AClientError(
                f"a {kind!r} stream event that reads neither as A2A 0.3 ({as_0_3}) nor as 1.0 "
                f"({parse_error})"
            ) from None
    _check_required(event, kind)
    return event


def _check_required(event: StreamResponse, kind: str) -> None:
    payload = event.WhichOneof("payload")
    try:
        validate_proto_required_fields(getattr(event, payload or "task"))
    except InvalidParamsError as exc:
        missing = ", ".join(str(e.get("field")) for e in (exc.data or {}).get("errors", []))
        raise A2AClientError(f"a {kind!r} stream event without {missing}") from None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


def _members(value: Any) -> str:
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}"
    if not value:
        return "no members"
    return "members: " + ", ".join(sorted(str(key) for key in value)[:8])

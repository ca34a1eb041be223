"""Reading upstream A2A answers that bend the 1.0 JSON mapping in ways known
from real agents, instead of failing the call (docs/interop.md).

* A `TaskStatus.timestamp` without a time zone. The mapping (A2A 1.0 §5.5,
  ProtoJSON's `google.protobuf.Timestamp`) is RFC 3339 with `Z` or an offset;
  fasta2a 2.1 (pydantic-ai's A2A server) sends a naive local time such as
  `2026-11-23T12:24:04.008222`, which protobuf refuses, so every answer of
  such an agent was "invalid". It is read as UTC -- what every such server
  here writes.

* A stream event in the 0.3 shape on a 1.0 stream. LangGraph's server
  (langgraph-api 0.16) advertises a 1.0 card and sends the first event of a
  `SendStreamingMessage` as 1.0, then the rest as 0.3 objects told apart by
  `kind` (`{"kind": "status-update", "taskId": ..., "status": {"state":
  "working"}}`). A 1.0 `StreamResponse` has none of those fields, so the
  lenient parse gave an empty event. Such an event (a `kind` of `task`,
  `message`, `status-update` or `artifact-update`, and nothing the 1.0 parse
  could read) is read under its 1.0 name -- LangGraph's content is 1.0 --
  or else with the SDK's own 0.3 types, converted to 1.0
  (`a2a.compat.v0_3.conversions`), as the SDK does for its 0.3 clients.

Only after the strict parse failed (or, for a stream event, gave nothing): a
correct answer costs nothing more, and one that still fails after the repair
fails as it did. User content (parts, data, metadata) is never touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from a2a.client.transports import jsonrpc as _sdk_jsonrpc
from a2a.client.transports import rest as _sdk_rest
from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as types_v03
from a2a.types import StreamResponse
from a2a.utils.proto_utils import parse_lenient
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?")
# Where user content lives: never rewritten.
_OPAQUE = frozenset({"parts", "data", "metadata", "extensions"})


def parse_tolerant(data: dict[str, Any] | str | bytes, message: M) -> M:
    """`parse_lenient`, and when it fails on a repairable answer, once more
    on the repaired one."""
    try:
        parsed = parse_lenient(data, message)
    except ParseError:
        decoded = json.loads(data) if isinstance(data, str | bytes) else data
        repaired, changed = _zone_naive_timestamps(decoded)
        if not changed:
            raise
        message.Clear()  # the failed parse may have filled part of it
        return parse_lenient(repaired, message)
    if isinstance(parsed, StreamResponse) and parsed.WhichOneof("payload") is None:
        decoded = json.loads(data) if isinstance(data, str | bytes) else data
        event = _from_0_3(decoded)
        if event is not None:
            parsed.CopyFrom(event)
    return parsed


_0_3_KINDS: dict[str, tuple[str, Any, Callable[[Any], Message], str]] = {
    "task": ("task", types_v03.Task, conversions.to_core_task, "task"),
    "message": ("message", types_v03.Message, conversions.to_core_message, "message"),
    "status-update": (
        "statusUpdate",
        types_v03.TaskStatusUpdateEvent,
        conversions.to_core_task_status_update_event,
        "status_update",
    ),
    "artifact-update": (
        "artifactUpdate",
        types_v03.TaskArtifactUpdateEvent,
        conversions.to_core_task_artifact_update_event,
        "artifact_update",
    ),
}


def _from_0_3(value: Any) -> StreamResponse | None:
    """A stream event in the 0.3 envelope (told by its ``kind``) as a 1.0
    `StreamResponse`; None if it is not one, or does not read as one.

    Read as 0.3 throughout first (`working`, `agent`), through the SDK's 0.3
    types; else under its 1.0 name -- LangGraph's content is 1.0 in a 0.3
    envelope (`TASK_STATE_WORKING`, `ROLE_AGENT`), and the 0.3-only fields
    (`kind`, `final`) are ignored as any unknown field. Not the other way
    round: the lenient 1.0 parse drops an enum value it does not know
    (`input-required`) instead of failing."""
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        return None
    known = _0_3_KINDS.get(value["kind"])
    if known is None:
        return None
    wrapper, model, convert, field = known
    event = StreamResponse()
    try:
        getattr(event, field).CopyFrom(convert(model.model_validate(value)))
        return event
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        event.Clear()
    try:
        parse_lenient({wrapper: value}, event)
    except ParseError:
        return None
    return event


def _zone_naive_timestamps(value: Any) -> tuple[Any, bool]:
    if isinstance(value, list):
        items = [_zone_naive_timestamps(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    if not isinstance(value, dict):
        return value, False
    out: dict[str, Any] = {}
    changed = False
    for key, inner in value.items():
        if key in _OPAQUE:
            out[key] = inner
        elif key == "timestamp" and isinstance(inner, str) and _NAIVE.fullmatch(inner):
            out[key], changed = inner + "Z", True
        else:
            out[key], moved = _zone_naive_timestamps(inner)
            changed = changed or moved
    return out, changed


def install() -> None:
    """Have the SDK's client transports (JSON-RPC and HTTP+JSON) read answers
    this way too: they parse every answer through the module-level name
    `parse_lenient`, which is rebound here, once, at import of
    `adapters.a2a`."""
    _sdk_jsonrpc.parse_lenient = parse_tolerant  # type: ignore[attr-defined]
    _sdk_rest.parse_lenient = parse_tolerant  # type: ignore[attr-defined]

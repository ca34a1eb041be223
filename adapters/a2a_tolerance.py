"""Reading upstream A2A answers that bend the 1.0 JSON mapping in ways known
from real agents, instead of failing the call (docs/interop.md).

* A `TaskStatus.timestamp` without a time zone. The mapping (A2A 1.0 §5.5,
  ProtoJSON's `google.protobuf.Timestamp`) is RFC 3339 with `Z` or an offset;
  fasta2a 2.1 (pydantic-ai's A2A server) sends a naive local time such as
  `2026-11-23T12:24:04.008222`, which protobuf refuses, so every answer of
  such an agent was "invalid". It is read as UTC -- what every such server
  here writes.

* A stream event in A2A 0.3's shape on a 1.0 stream (LangGraph's server):
  the lenient parse reads it as an empty event; it is read as the 1.0 event
  it stands for, and one that is neither shape is refused by name
  (`adapters.a2a_v03_events`).

A stream event of a common shape is read directly, to what the parse makes of
it (`adapters.a2a_common_events`), and any plain answer likewise
(`adapters.a2a_plain_parse`). Only after the strict parse failed (or,
for a stream event, read nothing): a correct answer costs nothing more, and
one that still fails after the repair fails as it did. User content (parts,
data, metadata) is never touched.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from a2a.client.transports import jsonrpc as _sdk_jsonrpc
from a2a.client.transports import rest as _sdk_rest
from a2a.types import StreamResponse
from a2a.utils.proto_utils import parse_lenient
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message

from adapters.a2a_common_events import common_event
from adapters.a2a_plain_parse import plain_parse
from adapters.a2a_v03_events import read_0_3_event

M = TypeVar("M", bound=Message)

_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?")
# Where user content lives: never rewritten.
_OPAQUE = frozenset({"parts", "data", "metadata", "extensions"})


def parse_tolerant(data: dict[str, Any] | str | bytes, message: M) -> M:
    """`parse_lenient`, and when it fails on a repairable answer, once more
    on the repaired one."""
    if isinstance(message, StreamResponse) and not message.ListFields():
        common = common_event(data)
        if common is not None:
            message.CopyFrom(common)
            return message
    if not message.ListFields() and plain_parse(data, message):
        return _event_of_0_3(data, message)
    try:
        parsed = parse_lenient(data, message)
    except ParseError:
        try:
            decoded = json.loads(data) if isinstance(data, str | bytes) else data
            repaired, changed = _zone_naive_timestamps(decoded)
        except (ValueError, RecursionError):  # not JSON, or nested too deep: as parsed
            raise_original = True
        else:
            raise_original = not changed
        if raise_original:
            raise
        message.Clear()  # the failed parse may have filled part of it
        return parse_lenient(repaired, message)
    return _event_of_0_3(data, parsed)


def _event_of_0_3(data: dict[str, Any] | str | bytes, parsed: M) -> M:
    """A stream event the parse read nothing of, read in 0.3's shape."""
    if isinstance(parsed, StreamResponse) and parsed.WhichOneof("payload") is None:
        decoded = json.loads(data) if isinstance(data, str | bytes) else data
        parsed.CopyFrom(read_0_3_event(_zone_naive_timestamps(decoded)[0]))
    return parsed


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

"""`adapters.a2a_common_events`: a common stream event is read to exactly what
the SDK's parse makes of it, as a decoded document or as text; anything else
is left to that parse (None), so its errors and repairs stay the SDK's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from a2a.types import StreamResponse
from a2a.utils.proto_utils import parse_lenient
from google.protobuf.json_format import MessageToDict, ParseError

from adapters.a2a_common_events import common_event
from adapters.a2a_tolerance import parse_tolerant

IDS = {"taskId": "t1", "contextId": "c1"}
CHUNK = {"artifactId": "a", "parts": [{"text": "x"}]}
COMMON: list[dict[str, Any]] = [
    {"statusUpdate": {**IDS, "status": {"state": "TASK_STATE_WORKING"}}},
    {"statusUpdate": {**IDS, "status": {}}},
    {"statusUpdate": {}},
    {"statusUpdate": {**IDS, "status": {"state": "TASK_STATE_FAILED", "timestamp": "2026-11-28T12:00:00.5Z"}}},
    {"statusUpdate": {**IDS, "status": {"timestamp": "2026-11-28T12:00:00+02:00"}}},
    {"artifactUpdate": {**IDS, "artifact": CHUNK, "append": True, "lastChunk": False}},
    {"artifactUpdate": {**IDS, "artifact": {"parts": [{"text": ""}, {"text": "y", "mediaType": "text/plain", "filename": "f"}]}}},
    {"artifactUpdate": {**IDS, "artifact": {}}},
    {"task": {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}},
    {"task": {"id": "t", "status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": [{**CHUNK, "name": "n", "description": "d"}]}},
    {"task": {}},
]  # fmt: skip
UNCOMMON: list[Any] = [
    {"statusUpdate": {**IDS, "status": {"state": "TASK_STATE_BOGUS"}}},
    {"statusUpdate": {**IDS, "status": {"state": 3}}},
    {"statusUpdate": {**IDS, "status": {"state": ""}}},
    {"statusUpdate": {**IDS, "status": {"state": None}}},
    {"statusUpdate": {"task_id": "t"}},
    {"statusUpdate": {**IDS, "final": True}},
    {"statusUpdate": {"taskId": 5}},
    {"statusUpdate": {**IDS, "status": {"timestamp": "2026-11-28T12:00:00"}}},  # naive: repaired
    {"statusUpdate": {**IDS, "status": {"state": "TASK_STATE_WORKING", "message": {"parts": []}}}},
    {"artifactUpdate": {**IDS, "lastChunk": "yes"}},
    {"artifactUpdate": {**IDS, "artifact": {"parts": [{"data": {}}]}}},
    {"artifactUpdate": {**IDS, "artifact": {"parts": [{"text": "x", "metadata": {}}]}}},
    {"artifactUpdate": {**IDS, "artifact": {**CHUNK, "metadata": {}}}},
    {"task": {"id": "t"}, "statusUpdate": {}},
    {"task": {"id": "t", "history": []}},
    {"task": None},
    {"kind": "status-update", **IDS},
    {"message": {"messageId": "m"}},
    [],
]  # fmt: skip


@pytest.mark.parametrize("document", COMMON)
@pytest.mark.parametrize("as_text", [False, True])
def test_a_common_event_is_what_the_sdks_parse_makes_of_it(
    document: dict[str, Any], as_text: bool
) -> None:
    data = json.dumps(document) if as_text else document
    read = common_event(data)
    parsed = parse_lenient(data, StreamResponse())
    assert read is not None
    assert read == parsed
    assert read.SerializeToString(deterministic=True) == parsed.SerializeToString(
        deterministic=True
    )
    assert MessageToDict(read) == MessageToDict(parsed)
    assert parse_tolerant(data, StreamResponse()) == parsed


@pytest.mark.parametrize("document", UNCOMMON)
def test_anything_else_is_left_to_the_sdks_parse(document: Any) -> None:
    assert common_event(document) is None
    assert common_event(json.dumps(document)) is None


@pytest.mark.parametrize("text", ['{"task": {"id": "a", "id": "b"}}', "not json", b"\xff"])
def test_text_the_sdks_parse_refuses_is_left_to_it(text: str | bytes) -> None:
    assert common_event(text) is None


def test_text_nested_too_deep_is_left_to_the_sdks_parse() -> None:
    """An upstream's event of nested brackets: refused the SDK's way (a
    `ParseError`, which the stream readers answer), not a RecursionError."""
    text = "[" * 200_000 + "]" * 200_000
    assert common_event(text) is None
    with pytest.raises(ParseError):
        parse_tolerant(text, StreamResponse())

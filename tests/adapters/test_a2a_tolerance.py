"""`adapters.a2a_tolerance`: an upstream answer with a naive status timestamp
(fasta2a 2.1) is read as UTC; user content that looks like one is left as it
is; an answer still invalid fails as before; the SDK's transports read
answers through it."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.client.transports import jsonrpc, rest
from a2a.types import Role, SendMessageResponse, StreamResponse, Task, TaskState
from a2a.utils.proto_utils import parse_lenient
from google.protobuf.json_format import ParseError

import adapters.a2a  # noqa: F401 -- installs the tolerant reader
from adapters.a2a_tolerance import parse_tolerant


def _task(timestamp: str, data_value: str = "2026-11-23T12:24:04") -> dict[str, Any]:
    return {
        "id": "t1",
        "contextId": "c1",
        "status": {"state": "TASK_STATE_COMPLETED", "timestamp": timestamp},
        "artifacts": [
            {
                "artifactId": "a1",
                "parts": [{"data": {"when": data_value}}],
                "metadata": {"timestamp": data_value},
            }
        ],
    }


def test_a_naive_status_timestamp_is_read_as_utc() -> None:
    answer = {"task": _task("2026-11-23T12:24:04.008222")}
    with pytest.raises(ParseError):
        parse_lenient(answer, SendMessageResponse())
    parsed = parse_tolerant(answer, SendMessageResponse())
    assert parsed.task.status.timestamp.ToJsonString() == "2026-11-23T12:24:04.008222Z"
    # What the user's content said is kept exactly.
    artifact = parsed.task.artifacts[0]
    assert artifact.parts[0].data.struct_value["when"] == "2026-11-23T12:24:04"
    assert artifact.metadata["timestamp"] == "2026-11-23T12:24:04"
    # Raw bytes too (the SDK hands some answers over undecoded).
    assert parse_tolerant(b'{"id": "t", "status": {"timestamp": "2026-01-01T00:00:00"}}', Task())


def test_an_answer_still_invalid_after_the_repair_fails_as_before() -> None:
    with pytest.raises(ParseError):
        parse_tolerant({"task": _task("yesterday")}, SendMessageResponse())
    with pytest.raises(ParseError):
        parse_tolerant(
            {"task": {**_task("2026-11-23T12:24:04"), "status": 7}}, SendMessageResponse()
        )


def test_the_sdk_transports_read_answers_through_it() -> None:
    # Guards an SDK upgrade that stops reading answers through this name.
    assert jsonrpc.parse_lenient is parse_tolerant  # type: ignore[attr-defined]
    assert rest.parse_lenient is parse_tolerant  # type: ignore[attr-defined]


def test_a_0_3_stream_event_on_a_1_0_stream_is_read_as_1_0() -> None:
    # langgraph-api 0.16: a 1.0 card, stream events after the first in 0.3.
    status = {
        "kind": "status-update",
        "taskId": "t1",
        "contextId": "c1",
        "status": {"state": "input-required"},
        "final": True,
    }
    assert parse_lenient(status, StreamResponse()).WhichOneof("payload") is None
    parsed = parse_tolerant(status, StreamResponse())
    assert parsed.status_update.task_id == "t1"
    assert parsed.status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    artifact = {
        "kind": "artifact-update",
        "taskId": "t1",
        "contextId": "c1",
        "artifact": {
            "artifactId": "a1",
            "parts": [{"kind": "data", "data": {"kind": "status-update", "n": 1}}],
        },
    }
    parsed = parse_tolerant(artifact, StreamResponse())
    # The user's data is kept as it was, "kind" and all.
    data = parsed.artifact_update.artifact.parts[0].data.struct_value
    assert dict(data) == {"kind": "status-update", "n": 1}
    message = {"kind": "message", "messageId": "m", "role": "agent", "parts": []}
    assert parse_tolerant(message, StreamResponse()).message.role == Role.ROLE_AGENT


def test_what_is_neither_shape_stays_empty_and_1_0_is_untouched() -> None:
    for odd in ({"kind": "nonsense"}, {"kind": "status-update", "status": 7}, {"kind": 3}):
        assert parse_tolerant(odd, StreamResponse()).WhichOneof("payload") is None
    proper = {"statusUpdate": {"taskId": "t", "status": {"state": "TASK_STATE_WORKING"}}}
    assert parse_tolerant(proper, StreamResponse()) == parse_lenient(proper, StreamResponse())


def test_langgraphs_hybrid_event_is_read_as_1_0() -> None:
    # What langgraph-api 0.16 sent (make interop): a 0.3 envelope around 1.0 values.
    hybrid = {
        "taskId": "t1",
        "contextId": "c1",
        "kind": "status-update",
        "status": {
            "state": "TASK_STATE_WORKING",
            "message": {
                "kind": "message",
                "role": "ROLE_AGENT",
                "parts": [{"kind": "text", "text": "langgraph says: hello"}],
                "messageId": "m1",
            },
            "timestamp": "2026-11-25T07:43:24.158063+00:00",
        },
        "final": False,
    }
    parsed = parse_tolerant(hybrid, StreamResponse())
    assert parsed.status_update.status.state == TaskState.TASK_STATE_WORKING
    assert parsed.status_update.status.message.role == Role.ROLE_AGENT
    assert parsed.status_update.status.message.parts[0].text == "langgraph says: hello"

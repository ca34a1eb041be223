"""`adapters.a2a_v03_events`: a stream event in 0.3's layout on a 1.0 stream
is read as the 1.0 event it stands for -- LangGraph's (0.3 layout, 1.0
values) and a true 0.3 one alike -- through the reader the SDK's transports
use; what is neither shape is refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from a2a.client.errors import A2AClientError
from a2a.types import Role, StreamResponse, TaskState
from a2a.utils.proto_utils import parse_lenient

import adapters.a2a  # noqa: F401 -- installs the tolerant reader
from adapters.a2a_tolerance import parse_tolerant
from adapters.a2a_v03_events import read_0_3_event

# As langgraph-api 0.16.7 sent them (2026-11-25), ids shortened.
LANGGRAPH_WORKING = {
    "taskId": "ctx:run",
    "contextId": "ctx",
    "kind": "status-update",
    "status": {
        "state": "TASK_STATE_WORKING",
        "message": {
            "kind": "message",
            "role": "ROLE_AGENT",
            "parts": [{"kind": "text", "text": "langgraph says: hi"}],
            "messageId": "m-2",
            "taskId": "ctx:run",
            "contextId": "ctx",
        },
        "timestamp": "2026-11-25T07:41:43.871398+00:00",
    },
    "final": False,
}
LANGGRAPH_ARTIFACT = {
    "taskId": "ctx:run",
    "contextId": "ctx",
    "kind": "artifact-update",
    "artifact": {
        "artifactId": "a-1",
        "name": "Assistant Response",
        "parts": [{"kind": "text", "text": "langgraph says: hi"}],
    },
    "append": False,
    "lastChunk": True,
}
LANGGRAPH_COMPLETED = {
    "taskId": "ctx:run",
    "contextId": "ctx",
    "kind": "status-update",
    "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "2026-11-25T07:41:43.878545+00:00"},
    "final": True,
}


def test_langgraphs_events_are_read_as_1_0() -> None:
    # What the gateway read before: an empty event (-32006).
    assert parse_lenient(LANGGRAPH_WORKING, StreamResponse()).WhichOneof("payload") is None
    working = parse_tolerant(LANGGRAPH_WORKING, StreamResponse())
    assert working.status_update.task_id == "ctx:run"
    assert working.status_update.context_id == "ctx"
    assert working.status_update.status.state == TaskState.TASK_STATE_WORKING
    assert working.status_update.status.message.role == Role.ROLE_AGENT
    assert working.status_update.status.message.parts[0].text == "langgraph says: hi"
    # The HTTP+JSON transport hands over the SSE data as text.
    artifact = parse_tolerant(json.dumps(LANGGRAPH_ARTIFACT), StreamResponse())
    assert artifact.artifact_update.artifact.parts[0].text == "langgraph says: hi"
    assert artifact.artifact_update.last_chunk
    completed = parse_tolerant(LANGGRAPH_COMPLETED, StreamResponse())
    assert completed.status_update.status.state == TaskState.TASK_STATE_COMPLETED


def test_a_true_0_3_event_is_converted_with_the_sdks_own_types() -> None:
    status = {
        "kind": "status-update",
        "taskId": "t1",
        "contextId": "c1",
        "status": {"state": "input-required", "timestamp": "2026-11-23T12:24:04"},
        "final": True,
    }
    parsed = parse_tolerant(status, StreamResponse())
    assert parsed.status_update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    # A naive timestamp is read as UTC here too (`adapters.a2a_tolerance`).
    assert parsed.status_update.status.timestamp.ToJsonString() == "2026-11-23T12:24:04Z"
    file_part = {"kind": "file", "file": {"uri": "https://files.example/r.pdf", "mimeType": "a/b"}}
    data_part = {"kind": "data", "data": {"kind": "status-update", "n": 1}}
    artifact = {
        "kind": "artifact-update",
        "taskId": "t1",
        "contextId": "c1",
        "artifact": {"artifactId": "a1", "parts": [file_part, data_part]},
    }
    parts = read_0_3_event(artifact).artifact_update.artifact.parts
    # Read as 1.0 the file part would be empty: 0.3's reading comes first.
    assert (parts[0].url, parts[0].media_type) == ("https://files.example/r.pdf", "a/b")
    # The user's data is kept as it was, "kind" and all.
    assert dict(parts[1].data.struct_value) == {"kind": "status-update", "n": 1}
    text = {"kind": "text", "text": "done"}
    message = {"kind": "message", "messageId": "m", "role": "agent", "parts": [text]}
    assert read_0_3_event(message).message.role == Role.ROLE_AGENT
    task = {"kind": "task", "id": "t1", "contextId": "c1", "status": {"state": "working"}}
    assert read_0_3_event(task).task.status.state == TaskState.TASK_STATE_WORKING


@pytest.mark.parametrize(
    ("event", "said"),
    [
        ({}, "neither A2A 1.0's shape nor 0.3's (no members)"),
        ({"kind": "nonsense", "taskId": "t"}, "(members: kind, taskId)"),
        ({"kind": 3}, "(members: kind)"),
        ({"kind": "status-update"}, "'status-update' stream event without task_id"),
        ({"kind": "message", "role": "agent", "parts": []}, "without message_id, role, parts"),
        (
            {"kind": "status-update", "taskId": "t", "contextId": "c", "status": 7},
            "'status-update' stream event that reads neither as A2A 0.3 (",
        ),
    ],
)
def test_what_is_neither_shape_is_refused_by_name(event: dict[str, Any], said: str) -> None:
    with pytest.raises(A2AClientError, match="stream event") as refused:
        parse_tolerant(event, StreamResponse())
    assert said in str(refused.value)


def test_a_1_0_event_is_read_as_before() -> None:
    proper = {"statusUpdate": {"taskId": "t", "status": {"state": "TASK_STATE_WORKING"}}}
    assert parse_tolerant(proper, StreamResponse()) == parse_lenient(proper, StreamResponse())

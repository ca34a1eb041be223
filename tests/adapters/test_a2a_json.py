"""`adapters.a2a_json.message_json` writes exactly what `MessageToDict` writes
-- the same members in the same order -- for the fields it takes on and for
the ones it leaves to `MessageToDict` (numbers, bytes, maps, user data,
a state of an unknown number)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from a2a.types import (
    Artifact,
    Message,
    SendMessageRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf.json_format import MessageToDict, ParseDict, SerializeToJsonError
from google.protobuf.message import Message as ProtoMessage

from adapters.a2a_json import message_json

IDS = {"taskId": "t1", "contextId": "c1"}
SAID = {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}], "extensions": ["e"]}
CASES: list[tuple[type[ProtoMessage], dict[str, Any]]] = [
    (TaskStatusUpdateEvent, {**IDS, "status": {"state": "TASK_STATE_WORKING"}}),
    (TaskStatusUpdateEvent, {**IDS, "status": {}}),
    (TaskStatusUpdateEvent, {**IDS, "status": {"timestamp": "2026-11-28T12:00:00.123Z", "message": SAID}}),
    (TaskStatusUpdateEvent, {**IDS, "metadata": {"a": 1}}),
    (TaskArtifactUpdateEvent, {**IDS, "artifact": {"artifactId": "a", "parts": [{"text": "x"}, {"text": ""}]}, "append": True}),
    (TaskArtifactUpdateEvent, {**IDS, "artifact": {"parts": [{"data": {"x": [1, 2.5, None]}}]}}),
    (TaskArtifactUpdateEvent, {**IDS, "artifact": {"parts": [{"raw": "aGk="}]}}),
    (Task, {"id": "t", "status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": [{"artifactId": "a", "name": "n", "parts": [{"url": "http://x", "mediaType": "t/p", "filename": "f"}]}], "history": [{**SAID, "referenceTaskIds": ["r"]}]}),
    (Task, {}),
    (Message, SAID),
    (Artifact, {"artifactId": "a", "parts": [{"text": "x", "metadata": {"k": "v"}}]}),
    (TaskStatus, {"state": "TASK_STATE_FAILED", "timestamp": "2026-11-28T12:00:00Z"}),
    (TaskArtifactUpdateEvent, {**IDS, "artifact": {"parts": [{"data": "s"}, {"data": None}, {"data": [[], {}, {"a": {"b": [False, -0.0, 1e300]}}]}, {"data": 3}]}}),
    (SendMessageRequest, {"message": {**SAID, "metadata": {"skill": "s", "n": [1, 2.5, None, True, {"d": {}}]}}, "metadata": {"skill": "s"}, "configuration": {"acceptedOutputModes": ["text/plain"]}}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "document"), CASES)
def test_what_message_to_dict_writes(kind: type[ProtoMessage], document: dict[str, Any]) -> None:
    message = ParseDict(document, kind())
    written = message_json(message)
    assert json.dumps(written) == json.dumps(MessageToDict(message))  # order too


def test_a_number_json_cannot_hold_is_refused_as_message_to_dict_refuses_it() -> None:
    event = ParseDict({**IDS, "metadata": {"n": 1}}, TaskStatusUpdateEvent())
    event.metadata["n"] = float("nan")
    with pytest.raises(SerializeToJsonError, match="NaN"):
        MessageToDict(event)
    with pytest.raises(SerializeToJsonError, match="NaN"):
        message_json(event)


def test_a_state_of_an_unknown_number_is_written_as_its_number() -> None:
    status = TaskStatus(state=99)  # type: ignore[arg-type]
    assert message_json(status) == MessageToDict(status) == {"state": 99}

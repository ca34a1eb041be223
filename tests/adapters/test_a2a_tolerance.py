"""`adapters.a2a_tolerance`: an upstream answer with a naive status timestamp
(fasta2a 2.1) is read as UTC; user content that looks like one is left as it
is; an answer still invalid fails as before; the SDK's transports read
answers through it."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.client.transports import jsonrpc, rest
from a2a.types import SendMessageResponse, Task
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

"""`adapters.mcp_results`: an untagged 2026-07-28 result is complete; a bad one is named."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from pydantic import TypeAdapter, ValidationError

from adapters.mcp_results import complete_by_default, lenient_results, malformed

BARE = {"content": [{"type": "text", "text": "hi"}]}


def test_an_untagged_result_is_complete_at_2026_07_28() -> None:
    completed = complete_by_default("tools/call", "2026-07-28", BARE)
    assert completed == {**BARE, "resultType": "complete"}
    parsed = types.CallToolResult.model_validate(completed)
    assert parsed.result_type == "complete"


def test_other_results_are_left_as_they_are() -> None:
    # Tagged, earlier revisions, not a dict.
    tagged = {**BARE, "resultType": "input_required"}
    assert complete_by_default("tools/call", "2026-07-28", tagged) is tagged
    assert complete_by_default("tools/call", "2025-11-25", BARE) is BARE
    assert complete_by_default("tools/call", "2026-07-28", [1]) == [1]


def test_malformed_names_what_is_wrong_and_nothing_else() -> None:
    with pytest.raises(ValidationError) as failed:
        TypeAdapter(types.CallToolResult).validate_python({"content": 42})
    reason = malformed(failed.value)
    assert reason is not None and reason.startswith("not a valid CallToolResult: content")
    assert malformed(OSError("connection reset")) is None


def test_this_sdk_has_the_dispatcher_lenient_results_wraps() -> None:
    import anyio

    send, receive = anyio.create_memory_object_stream[object](1)
    session = ClientSession(receive, send)  # type: ignore[arg-type]
    assert lenient_results(session)
    assert lenient_results(session)  # idempotent
    send.close()
    receive.close()

"""`adapters.mcp_results`: an untagged 2026-07-28 result is complete; a bad one is named."""

from __future__ import annotations

import mcp_types as types
import pytest
from pydantic import TypeAdapter, ValidationError

from adapters.mcp_results import (
    CALL_TOOL_RESULT,
    complete_by_default,
    floor_ttl,
    later_revision_fields,
    malformed,
)

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


# The pass-through's copies of the session's private result checks read a
# result as the SDK's session does: each test fails if an upgrade of the SDK
# changes how it reads one (then the copy follows it).


def test_a_negative_ttl_is_floored_as_the_sdks_session_floors_it() -> None:
    from mcp.client.session import _clamp_inbound_ttl

    for ttl in (-5, -0.5, 0, 30, True, "-1", None):
        ours, its = {"ttlMs": ttl}, {"ttlMs": ttl}
        floor_ttl(ours)
        _clamp_inbound_ttl(its)
        assert ours == its, ttl
    raw = {"ttlMs": -5}
    floor_ttl(raw)
    assert raw == {"ttlMs": 0}


def test_a_later_revisions_members_are_the_ones_the_sdks_session_drops() -> None:
    from mcp.client.session import _later_revision_fields
    from mcp_types.methods import SERVER_RESULTS

    for method, version in SERVER_RESULTS:
        assert later_revision_fields(method, version) == _later_revision_fields(method, version)
    # The one that matters today: 2026-07-28's cache hints on a 2025-11-25 session.
    assert {"ttlMs", "cacheScope"} <= later_revision_fields("tools/list", "2025-11-25")


def test_a_tools_call_result_is_read_by_the_sdks_own_union() -> None:
    from mcp.client.session import _CallToolResultAdapter

    assert CALL_TOOL_RESULT.core_schema == _CallToolResultAdapter.core_schema
    waiting = {"resultType": "input_required", "requestState": "s"}
    assert isinstance(CALL_TOOL_RESULT.validate_python(waiting), types.InputRequiredResult)

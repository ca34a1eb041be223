"""Reading an upstream's results as MCP defines them, not as strictly as the SDK.

MCP 2026-07-28 tags each result with ``resultType`` and says "Absent
`resultType` is equivalent to 'complete'" (`mcp_types.ResultType`); the
SDK's client checks results against the revision's schema, which requires
it, so a peer that leaves it out (a hand-written or other-language server)
failed every call. `complete_by_default` adds the tag where it is absent and
the result is otherwise valid; `adapters.mcp_wire` does that to every
answer a session reads, before the SDK's own checks.

An answer that is still not a valid result (`malformed`) is that one call's
failure, never the connection's: the session stays up and the next call
goes through.

The pass-through (`adapters.mcp_passthrough`) reads a `tools/call` result
itself, with the checks `ClientSession.send_request` makes; the SDK keeps
those private, so they are here, in the SDK's words (`floor_ttl`,
`later_revision_fields`, `CALL_TOOL_RESULT`), and
tests/adapters/test_mcp_results.py fails if an upgrade of the SDK reads
results otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import UnionType
from typing import Any, get_args

import mcp_types as types
from mcp.client.extension import UnexpectedClaimedResult
from mcp_types import methods as _methods
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, TypeAdapter, ValidationError

COMPLETE = "complete"

# A `tools/call` result as the SDK's session reads one when no extension
# claims a result type of its own (the gateway's client claims none).
CALL_TOOL_RESULT: TypeAdapter[types.CallToolResult | types.InputRequiredResult] = TypeAdapter(
    types.CallToolResult | types.InputRequiredResult
)


def floor_ttl(raw: dict[str, Any]) -> None:
    """A negative ``ttlMs`` read as 0, in place. MCP 2026-07-28's result
    caching (`CacheableResult.ttlMs`, at least 0; the SDK's client floors a
    negative one, a SHOULD of the revision) -- else a server's bad cache hint
    fails a call whose result is fine."""
    ttl = raw.get("ttlMs")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl < 0:
        raw["ttlMs"] = 0


@cache
def later_revision_fields(method: str, version: str) -> frozenset[str]:
    """The members of ``method``'s result that a revision after ``version``
    declares and ``version`` does not (2026-07-28's ``ttlMs``/``cacheScope``
    on a 2025-11-25 session). The result types carry every revision's
    members, so such a member, outside the negotiated revision, would be
    checked by the later revision's rules; the SDK's client drops them."""
    current = _methods.SERVER_RESULTS.get((method, version))
    if current is None or version not in KNOWN_PROTOCOL_VERSIONS:
        return frozenset()
    later: set[str] = set()
    for revision in KNOWN_PROTOCOL_VERSIONS[KNOWN_PROTOCOL_VERSIONS.index(version) + 1 :]:
        row = _methods.SERVER_RESULTS.get((method, revision))
        if row is not None:
            later |= _wire_fields(row)
    return frozenset(later) - _wire_fields(current)


@cache
def _wire_fields(target: type[BaseModel] | UnionType) -> frozenset[str]:
    """The members a result type (each of a union's) has on the wire."""
    members: tuple[Any, ...] = get_args(target) if isinstance(target, UnionType) else (target,)
    return frozenset(
        field.alias or name
        for model in members
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, field in model.model_fields.items()
    )


def complete_by_default(method: str, version: str | None, raw: Any) -> Any:
    """``raw`` with ``resultType: "complete"`` when it has none, is a result
    of a 2026-07-28 ``method``, and is valid only so; else ``raw`` itself."""
    if version not in MODERN_PROTOCOL_VERSIONS or not isinstance(raw, Mapping):
        return raw
    if "resultType" in raw:
        return raw
    try:
        _methods.validate_server_result(method, version, raw)
        return raw  # valid as it is (a result whose schema has no tag)
    except (KeyError, ValueError):  # not a method of this revision / not valid (yet)
        pass
    completed = {**raw, "resultType": COMPLETE}
    try:
        _methods.validate_server_result(method, version, completed)
    except (KeyError, ValueError):
        return raw  # malformed anyway: the SDK's check says how
    return completed


def malformed(exc: BaseException) -> str | None:
    """Why an answer is not a valid result (``exc`` from reading it), or None
    when ``exc`` is something else (a transport's failure, say)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False)
        first = errors[0] if errors else None
        if first is None:
            return f"not a valid {exc.title}"
        where = ".".join(str(part) for part in first.get("loc", ())) or "result"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"not a valid {exc.title}: {where}: {first.get('msg')}{more}"
    if isinstance(exc, UnexpectedClaimedResult):
        return f"not a result this call can have: {exc}"
    return None

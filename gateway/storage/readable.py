"""Stored JSON made safe to show: a listing never fails because of one row.

Doors refuse JSON nested deeper than `max_json_depth` before anything is
stored (`gateway.http.json_body`), but a row written before that limit, or
by an upstream, may hold a value pydantic cannot serialise (about 255
levels) or protobuf cannot parse (100). Shown as it is, one such row turned
every listing that held it into a 500, for every user (issue 32). A value
past `MAX_SHOWN_DEPTH` is shown as `UNREADABLE` instead; the row itself,
with what else it says, is shown, and nothing stored is changed.
"""

from __future__ import annotations

from typing import Any

MAX_SHOWN_DEPTH = 96  # above any door's limit (64 by default), below protobuf's 100
UNREADABLE: dict[str, Any] = {
    "unreadable": f"stored nested deeper than {MAX_SHOWN_DEPTH} levels; not shown"
}


def readable(value: Any, max_depth: int = MAX_SHOWN_DEPTH) -> Any:
    """``value``, or `UNREADABLE` when it nests deeper than ``max_depth``."""
    return UNREADABLE if deeper_than(value, max_depth) else value


def deeper_than(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``max_depth`` levels
    (iteratively: a recursive walk would itself overflow on such a value)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False

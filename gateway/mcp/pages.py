"""Pages of a list answer (`tools/list`): MCP's cursor pagination.

A gateway's tool list grows with the registry (every agent's skills are
tools); past a size no client wants it in one answer, and at 100,000 agents it
would exceed the SDK client's 1 MiB message limit (`bench.scale`). The cursor is
opaque to clients (MCP 2025-11-25, "Pagination"): here, the offset of the
next page, encoded. A cursor this gateway did not give is -32602 (the spec:
"Invalid cursor" is Invalid params). Lists of one page have no cursor at all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

import mcp_types as types
from mcp import MCPError

PAGE_SIZE = 1000
_PREFIX = "o:"
_MAX_DIGITS = 12
T = TypeVar("T")


def page(
    items: Sequence[T], cursor: str | None, size: int = PAGE_SIZE
) -> tuple[list[T], str | None]:
    """The page ``cursor`` points at, and the next page's cursor (None at the end)."""
    start = 0 if cursor is None else _offset(cursor)
    end = start + size
    return list(items[start:end]), (_cursor(end) if end < len(items) else None)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode("ascii")


def _offset(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    digits = raw[len(_PREFIX) :]
    # Bounded: int() refuses over 4,300 digits with a ValueError of its own.
    if raw.startswith(_PREFIX) and digits.isdigit() and len(digits) <= _MAX_DIGITS:
        return int(digits)
    raise MCPError(types.INVALID_PARAMS, "invalid cursor: give one a list answer gave")

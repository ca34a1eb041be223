"""What the console shows of two JSON documents side by side, and of text a
model will read: a marked unified diff, and hidden characters made visible.

Both are only presentation: what counts as hidden is the screen's own rule
(`registry.mcp_tools.hidden_character`), the one that flags a tool."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from registry.mcp_tools import hidden_character

# (kind, line): kind is head, hunk, add, del or same -- a CSS class (d-<kind>).
DiffLine = tuple[str, str]


def json_diff(before: Any, after: Any, fromfile: str, tofile: str) -> list[DiffLine]:
    """A unified diff of two documents' JSON (keys sorted), each line marked."""
    lines = difflib.unified_diff(
        json.dumps(before, indent=2, sort_keys=True).splitlines(),
        json.dumps(after, indent=2, sort_keys=True).splitlines(),
        fromfile=fromfile,
        tofile=tofile,
        lineterm="",
    )
    return marked(lines)


def marked(lines: Iterable[str]) -> list[DiffLine]:
    """The lines of a unified diff (``difflib.unified_diff``'s), each marked."""
    return [(_kind(line), line) for line in lines]


def _kind(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "head"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "same"


def reveal(text: str) -> list[tuple[str, str | None]]:
    """``text`` in runs: (visible text, None), or (``U+XXXX``, why) for each
    character a person would not see (zero-width, bidi control, tag...); a
    tag character also shows the letter it hides."""
    runs: list[tuple[str, str | None]] = []
    plain: list[str] = []
    for char in text:
        why = hidden_character(char)
        if why is None:
            plain.append(char)
            continue
        if plain:
            runs.append(("".join(plain), None))
            plain = []
        code = ord(char)
        # A tag character spells ASCII no one sees (U+E0041 is an invisible "A").
        spelt = f" {chr(code - 0xE0000)}" if 0xE0021 <= code <= 0xE007E else ""
        runs.append((f"U+{code:04X}{spelt}", why))
    if plain:
        runs.append(("".join(plain), None))
    return runs


def has_hidden(text: str) -> bool:
    return any(hidden_character(c) for c in text)

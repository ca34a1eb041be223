"""Pure rules for federated MCP tools: pinning and screening.

* **Pinning** (rug-pull protection): what a model reads of a tool -- its name,
  title, description, input and output schemas, annotations -- is hashed as
  RFC 8785 canonical JSON (SHA-256). An admin approves one digest; a tool
  whose definition no longer hashes to it is quarantined until re-approved.
* **Screening**: text a model will read is searched for hidden Unicode
  (zero-width and other format characters, tag characters U+E0000-E007F, bidi
  controls, variation-selector supplement) and for instruction-like phrases
  aimed at the model ("ignore previous instructions", "do not tell the user").
  A flagged tool is never approved automatically.

Names (``{server}__{tool}``, plain names, what is reserved): `registry.mcp_names`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

# The fields a client hands to its model; icons and `_meta` (but an MCP
# App's, below) are not pinned.
PINNED_FIELDS = (
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
    "execution",
)


# Of `_meta`, the MCP App a tool opens (SEP-1865) and who may call the tool
# (`visibility`): pinned like its description, so a server cannot point an
# approved tool at another app. Present only on tools that open one, so no
# other tool's digest changes. The app's HTML and CSP are the resource's,
# read live and not pinned (docs/mcp.md, "MCP Apps").
APP_UI_KEYS = ("resourceUri", "visibility")
FLAT_APP_KEY = "ui/resourceUri"


def app_pin(meta: Any) -> dict[str, Any] | None:
    """What of a tool's ``_meta`` is pinned (None: nothing)."""
    if not isinstance(meta, Mapping):
        return None
    pinned: dict[str, Any] = {}
    ui = meta.get("ui")
    if isinstance(ui, Mapping):
        kept = {k: ui[k] for k in APP_UI_KEYS if ui.get(k) is not None}
        if kept:
            pinned["ui"] = kept
    if meta.get(FLAT_APP_KEY) is not None:
        pinned[FLAT_APP_KEY] = meta[FLAT_APP_KEY]
    return pinned or None


def pinned_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a tool definition (MCP JSON, camelCase) that is pinned."""
    pinned = {k: tool[k] for k in PINNED_FIELDS if tool.get(k) is not None}
    app = app_pin(tool.get("_meta"))
    if app is not None:
        pinned["_meta"] = app
    return pinned


DIGESTS_KEPT = 50_000  # definitions whose digest is kept (the oldest goes first)
_digests: dict[bytes, str] = {}


def tool_digest(tool: Mapping[str, Any]) -> str:
    """``sha256:`` + hex over the canonical JSON of the pinned definition.

    Kept by a fingerprint of the definition's plain JSON (sorted keys, which
    the C encoder writes a hundred times faster than the canonical form):
    every probe lists each server's tools again, nearly always unchanged,
    and a thousand canonical encodings on the event loop stall it."""
    pinned = pinned_definition(tool)
    try:
        plain = json.dumps(pinned, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):
        return _canonical_digest(pinned)
    fingerprint = hashlib.sha256(plain.encode()).digest()
    found = _digests.get(fingerprint)
    if found is None:
        found = _digests[fingerprint] = _canonical_digest(pinned)
        if len(_digests) > DIGESTS_KEPT:
            del _digests[next(iter(_digests))]
    return found


def _canonical_digest(pinned: Mapping[str, Any]) -> str:
    try:
        canonical = rfc8785.dumps(pinned)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        # Integers beyond 2^53 (which I-JSON forbids) still need a stable form.
        canonical = json.dumps(pinned, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


# --- Screening -------------------------------------------------------------------

_BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def hidden_character(char: str) -> str | None:
    """Why ``char`` is invisible to a human reviewer, or None if it is not."""
    code = ord(char)
    if 0xE0000 <= code <= 0xE007F:
        return "tag character"
    if code in _BIDI_CONTROLS:
        return "bidi control"
    if 0xE0100 <= code <= 0xE01EF or 0xFE00 <= code <= 0xFE0E:
        return "variation selector"
    if char in "\u115f\u1160\u3164\uffa0\u2800":
        return "blank filler"
    if unicodedata.category(char) in ("Cf", "Co", "Cn"):
        # Format (zero-width space/joiners, BOM, soft hyphen...), private
        # use and unassigned code points: nothing a reviewer can see.
        if unicodedata.category(char) == "Cf":
            return "zero-width or format character"
        return "private-use or unassigned character"
    return None


# Phrases aimed at the model rather than at describing the tool. Matched on a
# normalised copy (NFKC, hidden characters removed, whitespace collapsed,
# lower case), so look-alikes and zero-width splitting do not evade them.
_INSTRUCTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        (
            "override of earlier instructions",
            r"\b(ignore|disregard|forget|override)\b.{0,30}\b(previous|prior|above|earlier|"
            r"all|other|system)\b.{0,20}\b(instructions?|prompts?|rules|messages|directions)",
        ),
        (
            "concealment from the user",
            r"\b(do not|don't|dont|never|must not)\b.{0,20}\b(tell|inform|mention|reveal|show|"
            r"notify|alert)\b.{0,20}\b(the )?user",
        ),
        ("concealment from the user", r"\bwithout (telling|informing|notifying|alerting)\b"),
        ("concealment from the user", r"\b(keep|be) (this|it) (secret|hidden|confidential)\b"),
        ("role injection", r"<\s*/?\s*(important|system|instructions?|admin)\s*>"),
        ("role injection", r"\b(system prompt|you are now|new instructions)\b"),
        (
            "cross-tool instruction",
            r"\b(before|after|instead of) (using|calling|running) (this|any|the) tool\b.{0,40}"
            r"\b(read|call|send|run|include|pass)\b",
        ),
        (
            "secret harvesting",
            r"(~/\.ssh|\bid_(rsa|ed25519|ecdsa)\b|\.aws/credentials|/etc/(passwd|shadow)|"
            r"\bmcp\.json\b|(^|[\s/])\.env\b|\.netrc\b|\.git-credentials\b)",
        ),
    )
)


@dataclass(frozen=True)
class ToolFlag:
    kind: str  # "hidden-unicode" | "instruction-like"
    field: str  # where, as a JSON path: "description", "inputSchema.properties.x.description"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "field": self.field, "detail": self.detail}


def screen_tool(tool: Mapping[str, Any]) -> list[ToolFlag]:
    """Every suspicious piece of text in the pinned definition (property names too)."""
    return screen_texts(pinned_definition(tool))


def screen_texts(definition: Mapping[str, Any]) -> list[ToolFlag]:
    """Every suspicious piece of text in ``definition`` (any MCP JSON: a
    prompt's name, description and arguments, say), property names too."""
    flags: list[ToolFlag] = []
    for field, text in _texts(definition, ""):
        flags.extend(_screen_text(field, text))
    return flags


def _screen_text(field: str, text: str) -> Iterator[ToolFlag]:
    # ASCII has no hidden character (`hidden_character`: none below U+0080).
    hidden = (
        []
        if text.isascii()
        else [(i, c, why) for i, c in enumerate(text) if (why := hidden_character(c))]
    )
    if hidden:
        i, char, why = hidden[0]
        more = f" (+{len(hidden) - 1} more)" if len(hidden) > 1 else ""
        yield ToolFlag("hidden-unicode", field, f"U+{ord(char):04X} {why} at {i}{more}")
    normalised = normalise_for_matching(text)
    seen: set[str] = set()
    for label, pattern in _INSTRUCTION_PATTERNS:
        match = pattern.search(normalised)
        if match and label not in seen:
            seen.add(label)
            yield ToolFlag("instruction-like", field, f"{label}: {match.group(0)[:80]!r}")


def normalise_for_matching(text: str) -> str:
    # ASCII is its own NFKC form and hides nothing: most tools' text, read as is.
    visible = (
        text
        if text.isascii()
        else "".join(c for c in unicodedata.normalize("NFKC", text) if not hidden_character(c))
    )
    return re.sub(r"\s+", " ", visible).lower()


def _texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path or "$", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child + " (key)", str(key)
            yield from _texts(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}[{index}]")

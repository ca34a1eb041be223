"""Token usage an upstream reports, as the gateway records and sums it.

An OpenAI-compatible server answers ``usage: {prompt_tokens,
completion_tokens, total_tokens}`` with a completion (and, streamed, in a
last chunk when it sends one). The gateway-run task of such an agent carries
it on as the A2A task's ``metadata.usage`` (``{input_tokens, output_tokens,
total_tokens}``), where a flow step -- or any A2A agent that reports usage
the same way -- is read from (`gateway.flows.calls`).

What an upstream reports is its own claim: kept only when every figure is a
whole number from 0 to 10**12, else ignored (never an error: usage is
evidence, not part of the answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

METADATA_KEY = "usage"
_MAX = 10**12


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    total_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
        )


def _count(value: Any) -> int | None:
    # JSON numbers may arrive as floats (a protobuf Struct has no integers).
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != int(value) or not 0 <= value <= _MAX:
        return None
    return int(value)


def _usage(document: Any, input_key: str, output_key: str) -> Usage | None:
    if not isinstance(document, Mapping):
        return None
    given, made = _count(document.get(input_key)), _count(document.get(output_key))
    if given is None or made is None:
        return None
    total = _count(document.get("total_tokens", given + made))
    return Usage(given, made, given + made if total is None else total)


def from_openai(document: Any) -> Usage | None:
    """A chat completion's (or chunk's) ``usage`` object."""
    return _usage(document, "prompt_tokens", "completion_tokens")


def from_metadata(metadata: Any) -> Usage | None:
    """``metadata.usage`` of an A2A task, as the gateway writes it."""
    if not isinstance(metadata, Mapping):
        return None
    return _usage(metadata.get(METADATA_KEY), "input_tokens", "output_tokens")


def total(usages: Iterable[Usage | None]) -> Usage | None:
    found = [u for u in usages if u is not None]
    if not found:
        return None
    summed = found[0]
    for usage in found[1:]:
        summed = summed + usage
    return summed

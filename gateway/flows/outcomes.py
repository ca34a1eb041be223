"""What a step's outcome looks like to the rest of a run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, "", [], {} are false."""
    return value not in (False, None, "", [], {})


def now() -> datetime:
    return datetime.now(UTC)


def seen(outcome: dict[str, Any]) -> dict[str, Any]:
    """What expressions see of a step: ``steps.<id>.output`` and the rest."""
    return {
        "state": outcome.get("state"),
        "output": outcome.get("output"),
        "text": outcome.get("text", ""),
        "error": outcome.get("error"),
    }

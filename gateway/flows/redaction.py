"""A flow's redaction rules: the object keys whose values its runs' records
never show (`redact:` in the document).

Applied to what is read -- every run view (`GET /flows/{id}/runs/...`, the
CLI) -- from the run's first step, and to what is kept: once a run has ended
its stored record is rewritten redacted (`gateway.flows.retention`). While a
run is in progress the walk needs the real values (a later step's input is
built from an earlier one's output), so they are in the database until it
ends, as the engine's own step results are.

Keys match at any depth and in any case: ``card_number`` hides
``{"payment": {"Card_Number": ...}}``. A redacted value is replaced, whatever
its type, by the string ``"[redacted]"``; the key itself stays, so a reader
sees that something was there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.flows.models import RunView, StepView

REDACTED = "[redacted]"
_MAX_DEPTH = 64  # deeper than any JSON the gateway accepts; a guard, not a limit


def rules(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(key.casefold() for key in keys)


def redact(value: Any, keys: frozenset[str], _depth: int = 0) -> Any:
    """``value`` with the values under ``keys`` replaced by ``REDACTED``."""
    if not keys or _depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and k.casefold() in keys
            else redact(v, keys, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item, keys, _depth + 1) for item in value]
    return value


def redact_step(step: StepView, keys: frozenset[str]) -> StepView:
    if not keys:
        return step
    return step.model_copy(
        update={"input": redact(step.input, keys), "output": redact(step.output, keys)}
    )


def redact_run(run: RunView, keys: frozenset[str]) -> RunView:
    if not keys:
        return run
    return run.model_copy(
        update={
            "input": redact(run.input, keys),
            "output": redact(run.output, keys),
            "steps": [redact_step(step, keys) for step in run.steps],
        }
    )

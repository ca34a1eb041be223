"""What a step's outcome looks like to the rest of a run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.flows.definition import CallStep, Lane, MapStep, ParallelStep, RepeatStep

# A call whose attempt failed with another one due: the step ends so, and the
# run waits the backoff outside it, as a durable DBOS sleep (`reviews.called`),
# which a restart resumes with only what is left to wait.
RETRYING = "retrying"


def retrying(reason: str, backoff: float) -> dict[str, Any]:
    return {"state": RETRYING, "output": None, "text": "", "error": reason, "backoff": backoff}


def completed(output: Any, text: str = "") -> dict[str, Any]:
    return {"state": "completed", "output": output, "text": text, "error": None}


AUTH_REQUIRED = "auth_required"


def auth_required(
    reason: str,
    upstream: str,
    connect_url: str,
    scope: str | None = None,
    seen: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The run's user has not connected their account at ``upstream``: the run
    waits for it (`gateway.flows.consents`); nothing was sent. ``scope``: a
    step-up's, the scope the connection must be granted (RFC 6750 §3.1);
    ``seen``: the connection the call found and could not use (id, version)."""
    outcome: dict[str, Any] = {
        "state": AUTH_REQUIRED,
        "output": None,
        "text": "",
        "error": reason,
        "upstream": upstream,
        "connect_url": connect_url,
        "seen": None if seen is None else {"id": seen[0], "version": seen[1]},
    }
    if scope is not None:
        outcome["scope"] = scope
    return outcome


# The step's agent asked something (its task input- or auth-required): the
# run waits for its user's answer (`gateway.flows.questions`).
ASKING = "input_required"


def asking(question: str, data: Any, agent: str, asks: str, status: str) -> dict[str, Any]:
    """``status``: which status of the agent's task asked (an answer is sent
    only while the task still shows it)."""
    return {
        "state": ASKING,
        # What the step's record shows while the run's user is asked.
        "output": {"question": question, "data": data, "agent": agent, "state": asks},
        "text": question,
        "error": f"{agent} asks: {question}" if question else f"{agent} asks for input",
        "data": data,
        "agent": agent,
        "asks": asks,
        "status": status,
    }


# The policy holds the call for a human: the run opens a checkpoint for it,
# and calls with that approval once it is given (`gateway.flows.reviews`).
HELD = "held"
# A call that waits for someone (its agent asks, the policy holds it, its user
# must connect an account): inside a fan-out, gone on with by the workflow
# once the fan-out has settled (`gateway.flows.fanout`, `reviews.go_on`).
WAITING = frozenset({AUTH_REQUIRED, HELD, ASKING})


def held(reason: str) -> dict[str, Any]:
    return {"state": HELD, "output": None, "text": "", "error": reason}


def failed(reason: str) -> dict[str, Any]:
    return {"state": "failed", "output": None, "text": "", "error": reason}


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


_CHOOSE_ON_ERROR = (CallStep, MapStep, Lane, ParallelStep, RepeatStep)


def ending(step: Any, outcome: dict[str, Any]) -> tuple[str, str] | None:
    """(the run's end state, why) when a step's outcome ends the run."""
    state = outcome["state"]
    if state == "completed":
        return None
    if state in ("rejected", "canceled"):
        return state, str(outcome.get("error") or state)
    # Only these kinds may say `on_error`; a failed step of any other fails the run.
    on_error = step.on_error if isinstance(step, _CHOOSE_ON_ERROR) else "fail"
    if outcome.get("fatal") or on_error != "skip":
        return "failed", f"step {step.id} failed: {outcome.get('error')}"
    return None

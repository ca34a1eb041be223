"""What the run page shows that changes while the run goes on, rendered for
the page and for its live stream alike (`gateway.console.run_live`): the
state line, the graph (`run_graph`), the steps on a timeline, the input and
output -- and a digest of it, so the stream sends only what the page does
not show already."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request

from gateway.console.run_graph import run_graph
from gateway.console.sessions import ConsoleUser
from gateway.console.web import console_of
from gateway.flows.models import RunView, StepView
from gateway.flows.store import TERMINAL_RUN_STATES

ENDED = TERMINAL_RUN_STATES


async def fragments(request: Request, user: ConsoleUser, run: RunView) -> dict[str, Any]:
    templates = console_of(request).templates
    context = {"user": user, "run": run, "bars": timeline(run)}
    context["graph"] = await run_graph(request, run)
    return {
        "state": run.state,
        "head": templates.get_template("flow_run_state.html").render(**context),
        "live": templates.get_template("flow_run_live.html").render(**context),
    }


def digest(shown: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Bar:
    """One step on the run's timeline, in thousandths of the run's span."""

    step: StepView
    depth: int
    x: int
    width: int


def timeline(run: RunView) -> list[Bar]:
    """The run's steps in order, each placed on the run's span (from its
    creation to its end, or its last change while it goes on); a step not
    started has no bar, one still running reaches the span's end."""
    start = run.created_at
    end = max(
        [run.finished_at or run.updated_at]
        + [t for s in run.steps for t in (s.started_at, s.finished_at) if t is not None]
    )
    span = max((end - start).total_seconds(), 1e-3)

    def at(moment: datetime) -> int:
        return round(1000 * min(max((moment - start).total_seconds() / span, 0.0), 1.0))

    bars = []
    for step in run.steps:
        if step.started_at is None:
            bars.append(Bar(step, 1 if step.parent else 0, 0, 0))
            continue
        x = at(step.started_at)
        width = max(at(step.finished_at or end) - x, 2)  # an instant still shows
        bars.append(Bar(step, 1 if step.parent else 0, x, width))
    return bars

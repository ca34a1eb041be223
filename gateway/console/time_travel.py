"""Time travel on a run's page: fork an ended run from one of its steps
(`POST /flows/{id}/runs/{run}/fork` as the logged-in user -- the run's own
user only, as there), and replay an ended run read-only, one step at a time:
what each step was given, what it answered, and what the run knew by then."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from gateway.api import flows as flows_api
from gateway.api.state import state_of
from gateway.console.flows import render_run
from gateway.console.run_view import ENDED
from gateway.console.web import (
    PREFIX,
    ConsoleRoute,
    current_user,
    error_lines,
    page,
    posted,
    redirect,
    refusal_lines,
)
from gateway.flows.costs import BudgetSpent
from gateway.flows.forks import ForkRefused
from gateway.flows.models import ForkRun, RunView, StepView
from gateway.http.json_body import JsonRefused, read_json
from gateway.http.problems import Problem

router = APIRouter(prefix=PREFIX + "/flows", route_class=ConsoleRoute, include_in_schema=False)

# The largest input the fork form takes (the API's own body limit is larger).
MAX_INPUT = 256 * 1024


@router.post("/{flow_id}/runs/{run_id}/fork")
async def fork(request: Request, flow_id: str, run_id: str) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    sent = {k: str(v) for k, v in form.items() if k in ("step", "input", "version")}
    errors: list[str] = []
    body: dict[str, Any] = {"step": sent.get("step", "")}
    text = sent.get("input", "").strip()
    if len(text) > MAX_INPUT:
        errors.append(f"input: at most {MAX_INPUT // 1024} KiB")
    elif text:
        try:
            body["input"] = read_json(text, state_of(request).settings.max_json_depth)
        except JsonRefused as exc:
            errors.append(f"input: not JSON ({exc})")
    version = sent.get("version", "").strip()
    if version:
        body["version"] = version
    try:
        asked = ForkRun.model_validate(body)
    except ValidationError as exc:
        errors += error_lines(
            [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        )
    if errors:
        return await _refused(request, flow_id, run_id, errors, sent)
    try:
        forked = await flows_api.fork_run(request, flow_id, run_id, asked, user.principal())
    except Problem as refused:
        if refused.status not in (400, 403, 409, 422):
            raise
        return await _refused(request, flow_id, run_id, refusal_lines(refused), sent)
    except (ForkRefused, BudgetSpent) as refused:
        return await _refused(request, flow_id, run_id, [str(refused)], sent)
    return redirect(f"{PREFIX}/flows/{flow_id}/runs/{forked.id}")


async def _refused(
    request: Request, flow_id: str, run_id: str, errors: list[str], sent: dict[str, str]
) -> Response:
    user = await current_user(request)
    return await render_run(
        request, user, flow_id, run_id, status=422, fork_errors=errors, fork_with=sent
    )


@dataclass(frozen=True)
class Moment:
    """One step of a replay: the step, and the outputs of those before it."""

    index: int
    step: StepView
    known: dict[str, Any]


def moments(run: RunView) -> list[Moment]:
    """The run's steps of its top level in the order they started, each with
    what the run knew when it started (the outputs of the steps settled before)."""
    top = [s for s in run.steps if s.parent is None]
    found = []
    known: dict[str, Any] = {}
    for index, step in enumerate(top):
        found.append(Moment(index, step, dict(known)))
        if step.state == "completed":
            known[step.id] = step.output
    return found


@router.get("/{flow_id}/runs/{run_id}/replay")
async def replay(request: Request, flow_id: str, run_id: str, at: int = 0) -> Response:
    """Read-only: nothing is called, nothing changes; an ended run only (one
    going on is watched on its page)."""
    user = await current_user(request)
    run = await flows_api.get_run(request, flow_id, run_id, user.principal())
    if run.state not in ENDED:
        raise Problem(409, "run-not-ended", "Only an ended run is replayed", f"it is {run.state}")
    found = moments(run)
    if not found:
        raise Problem(404, "no-steps", "The run has no steps to replay", run.id)
    shown = found[max(0, min(at, len(found) - 1))]
    children = [s for s in run.steps if s.parent == shown.step.id]
    return page(
        request, user, "flow_replay.html", run=run, moment=shown, count=len(found), parts=children
    )

"""`/ui/flows`: flow documents, their versions, their runs step by step.

Every read and action is `gateway.api.flows`' own route function with the
logged-in user as the caller: a user sees the flows `GET /flows` shows them
(those the policy lets them run) and only their own runs; an admin sees
every flow, its versions with a diff between two, and every run. A run's
page draws its steps as a timeline (state, when, how long, the target, the
scopes of the token each step was given, the error); **Cancel** and
**Resume** are `POST /flows/{id}/runs/{run}/cancel` and `.../resume` --
the run's owner or an admin, as there. A question a step's agent asks is
shown on the run's page, with a form for the run's own user to answer it
(`POST /flows/{id}/runs/{run}/answer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import yaml
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from gateway.api import flows as flows_api
from gateway.api.state import state_of
from gateway.console.diffs import DiffLine, json_diff
from gateway.console.run_form import FormInvalid, fields_of, input_from
from gateway.console.run_graph import document_of
from gateway.console.run_view import ENDED, digest, fragments
from gateway.console.sessions import ConsoleUser
from gateway.console.web import (
    PREFIX,
    ConsoleRoute,
    current_user,
    error_lines,
    page,
    posted,
    redirect,
    refusal_lines,
    require_admin,
)
from gateway.flows import back_routes
from gateway.flows.documents import DocumentInvalid, parse_text
from gateway.flows.models import AnswerRun, FlowVersion, RunView, StartRun, StepView
from gateway.flows.outcomes import ASKING
from gateway.http.problems import Problem
from policies.scopes import ADMIN_SCOPE

router = APIRouter(prefix=PREFIX + "/flows", route_class=ConsoleRoute, include_in_schema=False)
VERSION = Query(ge=1, le=2**31 - 1)
RUNS = 50
RESUMABLE = frozenset({"canceled", "failed"})


@router.get("")
async def flows_page(request: Request) -> Response:
    user = await current_user(request)
    return await _flows(request, user, removed=request.query_params.get("removed", ""))


async def _flows(
    request: Request,
    user: ConsoleUser,
    *,
    removed: str = "",
    document: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    found = await flows_api.list_flows(request, user.principal())
    return page(
        request,
        user,
        "flows.html",
        status,
        flows=found,
        removed=removed,
        document=document,
        errors=errors or [],
    )


@router.post("")
async def register(request: Request) -> Response:
    """Register a flow, or its next version (admins): `POST /flows`' own
    checks and record. A refused document is shown back with each problem
    by field and step, as the API names them."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    document = form.get("document", "")
    try:
        data = parse_text(document)
        done = await flows_api.register_document(request, Response(), data, user.principal())
    except DocumentInvalid as exc:
        said = error_lines(exc.errors)
        return await _flows(request, user, document=document, errors=said, status=422)
    except Problem as refused:
        if refused.status != 422:
            raise
        said = refusal_lines(refused)
        return await _flows(request, user, document=document, errors=said, status=422)
    return redirect(f"{PREFIX}/flows/{done.flow.id}")


@router.get("/{flow_id}")
async def flow_page(
    request: Request,
    flow_id: str,
    old: Annotated[int | None, VERSION] = None,
    new: Annotated[int | None, VERSION] = None,
) -> Response:
    user = await current_user(request)
    return await _flow_page(request, user, flow_id, old, new)


async def _flow_page(
    request: Request,
    user: ConsoleUser,
    flow_id: str,
    old: int | None = None,
    new: int | None = None,
    *,
    start_errors: list[str] | None = None,
    started_with: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    principal = user.principal()
    flow = await flows_api.get_flow(request, flow_id, principal)
    versions: list[FlowVersion] = []
    diff: list[DiffLine] = []
    if principal.has_scope(ADMIN_SCOPE):  # `GET /flows/{id}/versions` is for admins
        versions = await flows_api.flow_versions(request, flow_id, principal)
        if len(versions) > 1:
            new = new or versions[0].version
            old = old or next((v.version for v in versions if v.version < new), new)
            documents = {v.version: v.document for v in versions}
            if old in documents and new in documents:
                diff = json_diff(documents[old], documents[new], f"version {old}", f"version {new}")
    runs = await flows_api.list_runs(request, flow_id, principal, limit=RUNS)
    return page(
        request,
        user,
        "flow.html",
        status,
        flow=flow,
        fields=fields_of(flow.document.get("input")),
        start_errors=start_errors or [],
        started_with=started_with or {},
        document=yaml.safe_dump(flow.document, sort_keys=False, allow_unicode=False),
        versions=versions,
        diff=diff,
        old=old,
        new=new,
        runs=runs,
    )


@router.post("/{flow_id}/runs")
async def start(request: Request, flow_id: str) -> Response:
    """`POST /flows/{id}/runs` as the logged-in user, the input from the form
    built from the flow's input schema (`gateway.console.run_form`)."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    flow = await flows_api.get_flow(request, flow_id, user.principal())
    sent = {k: str(v) for k, v in form.items() if k != "csrf"}
    try:
        depth = state_of(request).settings.max_json_depth
        run_input = input_from(fields_of(flow.document.get("input")), sent, depth)
        started = await flows_api.start_run(
            request, flow_id, StartRun(input=run_input), user.principal()
        )
    except FormInvalid as exc:
        return await _flow_page(
            request, user, flow_id, start_errors=exc.errors, started_with=sent, status=422
        )
    except Problem as refused:
        if refused.status not in (400, 403, 422):
            raise
        said = refusal_lines(refused)
        return await _flow_page(
            request, user, flow_id, start_errors=said, started_with=sent, status=refused.status
        )
    return redirect(f"{PREFIX}/flows/{flow_id}/runs/{started.id}")


@router.get("/{flow_id}/runs/{run_id}")
async def run_page(request: Request, flow_id: str, run_id: str) -> Response:
    user = await current_user(request)
    return await render_run(request, user, flow_id, run_id)


async def render_run(
    request: Request,
    user: ConsoleUser,
    flow_id: str,
    run_id: str,
    *,
    status: int = 200,
    **shown: object,
) -> Response:
    """The run's page; ``shown``: what a refused form left (`time_travel`)."""
    run = await flows_api.get_run(request, flow_id, run_id, user.principal())
    own = (run.user.get("subject"), run.user.get("issuer")) == (user.subject, user.issuer)
    document = await document_of(request, run) if own and run.state in ENDED else None
    reached = {s.id for s in run.steps}
    parts = await fragments(request, user, run)
    return page(
        request,
        user,
        "flow_run.html",
        status=status,
        run=run,
        # Its changing parts, rendered once: shown, and their digest told to
        # the live stream, which sends only what differs (`run_live`).
        parts=parts,
        parts_digest=digest(parts),
        can_cancel=run.state not in ENDED,
        can_resume=run.state in RESUMABLE,
        question=asked(run),
        can_answer=own,
        can_fork=own and run.state in ENDED,
        # The flow's own steps that the run reached (not a review, a round, a
        # branch, nor inside a route's loop past its first step: `forks`).
        forkable=[
            s.id
            for s in document.steps
            if s.id in reached and back_routes.inside(document, s.id) is None
        ]
        if document
        else [],
        **shown,
    )


def asked(run: RunView) -> StepView | None:
    """The step whose agent asks the run's user something, if the run waits at one."""
    for step in run.steps:
        if (
            run.state in ("input_required", "auth_required")
            and step.id == run.current_step
            and step.state == ASKING
            and isinstance(step.output, dict)
        ):
            return step
    return None


@router.post("/{flow_id}/runs/{run_id}/answer")
async def answer(request: Request, flow_id: str, run_id: str) -> Response:
    """`POST /flows/{id}/runs/{run}/answer` -- the run's own user only, as there."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    said = str(form.get("answer") or "").strip()
    asked = str(form.get("round") or "")
    try:
        reply = AnswerRun(
            text=said or None,
            round=int(asked) if asked.isdigit() else None,
            # The form answers the question it showed: not the next one.
            step=str(form.get("step") or "") or None,
        )
    except ValidationError as exc:
        raise Problem(422, "invalid-answer", "The answer is empty or too long", str(exc)) from None
    await flows_api.answer_run(request, flow_id, run_id, reply, user.principal())
    return redirect(f"{PREFIX}/flows/{flow_id}/runs/{run_id}?answered=1")


@router.post("/{flow_id}/delete")
async def delete(request: Request, flow_id: str) -> Response:
    """`DELETE /flows/{id}` (admins), from the flow's page."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    await flows_api.delete_flow(
        request, flow_id, user.principal(), cancel=form.get("cancel") == "true"
    )
    return redirect(f"{PREFIX}/flows?removed={flow_id}")


@router.post("/{flow_id}/runs/{run_id}/cancel")
async def cancel(request: Request, flow_id: str, run_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await flows_api.cancel_run(request, flow_id, run_id, user.principal())
    return redirect(f"{PREFIX}/flows/{flow_id}/runs/{run_id}")


@router.post("/{flow_id}/runs/{run_id}/resume")
async def resume(request: Request, flow_id: str, run_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await flows_api.resume_run(request, flow_id, run_id, user.principal())
    return redirect(f"{PREFIX}/flows/{flow_id}/runs/{run_id}")

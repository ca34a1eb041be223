"""`/flows`: flow documents, their versions, and their runs (`gateway.flows`).

* `GET /flows/schema`: the JSON Schema of a flow document (no token needed);
* `POST /flows` (admin): register a flow, or its next version (JSON, or YAML
  sent with a YAML content type); `GET /flows/{id}/versions` (admin): all;
* `GET /flows`, `GET /flows/{id}`: the flows a caller may run (admins: all);
* `POST /flows/{id}/runs` ``{"input": {...}}``: start a run as the caller;
* `GET /flows/{id}/runs`, `GET /flows/{id}/runs/{run}`: one's own runs
  (admins: all); one run, step by step;
* `POST /flows/{id}/runs/{run}/cancel`, `.../resume`: stop a run; go on with
  a stopped one; `.../revoke`: revoke its grant (no further step starts);
  `.../answer`: the run's user answers what its step's agent asked;
  `.../fork`: the run's user starts a new run from one of its steps;
* `POST /flows/{id}/hooks/{trigger}`: a webhook trigger (`gateway.api.flow_webhooks`).

A document that fails a check is a 422 problem whose ``errors`` name the
step and the field of each problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor

from gateway.api.mcp_sets import forget_in_sets
from gateway.api.state import audited, state_of
from gateway.delegation.pipeline import Caller, DelegationDenied
from gateway.delegation.tasks import Owner
from gateway.flows.costs import BudgetSpent
from gateway.flows.document_basics import EVENT_NAME
from gateway.flows.documents import DocumentInvalid, json_schema, parse_text
from gateway.flows.engine import EngineUnavailable
from gateway.flows.forks import ForkRefused, fork_as_user
from gateway.flows.models import (
    Answered,
    AnswerRun,
    FlowRecord,
    FlowUsage,
    FlowVersion,
    ForkRun,
    Registered,
    Revoke,
    RunView,
    StartRun,
)
from gateway.flows.questions import NotAsking
from gateway.flows.removal import FlowBusy, FlowCalled, remove_flow
from gateway.flows.runtime import GrantUnusable
from gateway.flows.service import EventSigned, InputInvalid, NoSuchEvent, RunNotActive
from gateway.flows.store import FlowNotFound, RunNotFound
from gateway.http.auth import AdminPrincipal, CurrentPrincipal
from gateway.http.json_body import JsonRefused, check_value, read_json
from gateway.http.problems import Problem, ProblemMapping
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal

router = APIRouter(prefix="/flows", tags=["flows"])

PROBLEMS: list[ProblemMapping] = [
    (FlowNotFound, 404, "flow-not-found", "No such flow"),
    (RunNotFound, 404, "run-not-found", "No such run"),
    (RunNotActive, 409, "run-not-active", "The run cannot do that now"),
    (NoSuchEvent, 404, "event-not-awaited", "The run waits for no such event"),
    (NotAsking, 409, "not-asking", "The run waits for no answer"),
    (ForkRefused, 409, "fork-refused", "The run cannot be forked from that step"),
    (BudgetSpent, 403, "budget-spent", "The budget for this flow is spent"),
    (EventSigned, 403, "event-signed", "Only the flow's signed webhook brings this event"),
    (GrantUnusable, 409, "grant-unusable", "The run's grant cannot be used"),
    (EngineUnavailable, 503, "flow-engine-unavailable", "The flow engine is unavailable"),
    (FlowBusy, 409, "flow-busy", "Runs of the flow are still going"),
    (FlowCalled, 409, "flow-called", "Another flow calls this flow"),
]


def _invalid(exc: DocumentInvalid) -> Problem:
    return Problem(
        422,
        "invalid-flow",
        "The flow document is invalid",
        f"{len(exc.errors)} problem(s): {exc}"[:2000],
        errors=exc.errors,
    )


def _is_admin(principal: Principal) -> bool:
    return ADMIN_SCOPE in principal.scopes


def _owner(principal: Principal) -> Owner | None:
    return None if _is_admin(principal) else Owner(principal.subject, principal.issuer)


@router.get("/schema", summary="The JSON Schema of a flow document (switchboard.flow/v1)")
async def flow_schema() -> dict[str, Any]:
    return json_schema()


@router.post(
    "", summary="Register a flow, or its next version", status_code=status.HTTP_201_CREATED
)
async def register_flow(request: Request, response: Response, admin: AdminPrincipal) -> Registered:
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data = parse_text(body) if "yaml" in kind else _json(request, body)
    except DocumentInvalid as exc:
        raise _invalid(exc) from None
    return await register_document(request, response, data, admin)


async def register_document(
    request: Request, response: Response, data: Any, admin: Principal
) -> Registered:
    """Register ``data``, a flow document already read (the route's body, the
    console's form): checked, stored as the flow's next version, audited."""
    try:
        record, changed = await state_of(request).flows.register(data, admin.subject)
    except DocumentInvalid as exc:
        raise _invalid(exc) from None
    if changed:
        await audited(request, admin, "flow.registered", record.id, detail=f"v{record.version}")
    response.headers["Location"] = f"/flows/{record.id}"
    if not changed:
        response.status_code = status.HTTP_200_OK
    return Registered(flow=record, changed=changed)


def _cancelled(runs: list[str]) -> str | None:
    return f"cancelled {len(runs)} run(s): {', '.join(runs)}"[:2000] if runs else None


def _json(request: Request, body: bytes) -> Any:
    try:
        return read_json(body, state_of(request).settings.max_json_depth)
    except JsonRefused as exc:
        raise DocumentInvalid(
            [{"step": None, "field": "", "message": f"not JSON: {exc}"}]
        ) from None


def held_to_json(request: Request, sent: BaseModel | dict[str, Any]) -> None:
    """The body limits' rules (`gateway.http.json_body`: depth, numbers) for
    ``sent`` as its JSON body carries it. A body the API reads was screened
    before it got here; the console's forms call these routes with values
    they built, and are held to the same rules here, not to a copy."""
    value = sent.model_dump(exclude_none=True) if isinstance(sent, BaseModel) else sent
    try:
        check_value(value, state_of(request).settings.max_json_depth)
    except JsonRefused as exc:
        raise Problem(400, exc.kind, exc.title, str(exc)) from None


@router.get("", summary="The flows the caller may run (admins: every flow)")
async def list_flows(request: Request, principal: CurrentPrincipal) -> list[FlowRecord]:
    state = state_of(request)
    found = await state.flows.rt.store.list()
    if _is_admin(principal):
        return found
    return [f for f in found if await _may_run(request, principal, f.id)]


async def _may_run(request: Request, principal: Principal, flow_id: str) -> bool:
    card = await state_of(request).agents.card(flow_id)
    return card is not None and state_of(request).delegations.visible(principal, flow_id, card)


@router.get("/{flow_id}", summary="One flow: its current version")
async def get_flow(request: Request, flow_id: str, principal: CurrentPrincipal) -> FlowRecord:
    if not _is_admin(principal) and not await _may_run(request, principal, flow_id):
        raise FlowNotFound(flow_id)
    return await state_of(request).flows.rt.store.get(flow_id)


@router.get("/{flow_id}/versions", summary="Every version of a flow, newest first")
async def flow_versions(request: Request, flow_id: str, _: AdminPrincipal) -> list[FlowVersion]:
    return await state_of(request).flows.rt.store.versions(flow_id)


@router.post(
    "/{flow_id}/runs",
    summary="Start a run, as the caller",
    status_code=status.HTTP_202_ACCEPTED,
)
async def start_run(
    request: Request, flow_id: str, start: StartRun, principal: CurrentPrincipal
) -> RunView:
    held_to_json(request, start)
    service = state_of(request).flows
    await service.rt.store.current_version(flow_id)  # FlowNotFound: 404, before admission
    try:
        run_id = await service.start_as_user(flow_id, Caller.user(principal), start.input)
    except DelegationDenied as denied:
        raise _refused(denied) from None
    except InputInvalid as exc:
        raise _input_invalid(exc) from None
    return await service.view(run_id)


def _refused(denied: DelegationDenied) -> Problem:
    reasons = list(denied.decision.reasons)
    return Problem(
        403,
        "delegation-refused",
        "The policy refuses this run",
        "; ".join(reasons),
        errors=[{"field": "flow", "message": r} for r in reasons],
    )


def _input_invalid(exc: InputInvalid) -> Problem:
    return Problem(
        422,
        "invalid-input",
        "The input does not match the flow's schema",
        str(exc),
        errors=exc.errors,
    )


@router.get(
    "/{flow_id}/usage",
    summary="Tokens the flow's kept runs used, as upstreams reported them (one's own; admins: all)",
)
async def flow_usage(request: Request, flow_id: str, principal: CurrentPrincipal) -> FlowUsage:
    service = state_of(request).flows
    await service.rt.store.get(flow_id)  # FlowNotFound: 404
    owner = _owner(principal)
    return await service.rt.store.spending.flow(
        flow_id, owner=(owner.subject, owner.issuer) if owner else None
    )


@router.get("/{flow_id}/runs", summary="Runs of a flow, newest first (one's own; admins: all)")
async def list_runs(
    request: Request,
    flow_id: str,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[RunView]:
    owner = _owner(principal)
    return await state_of(request).flows.runs(
        flow_id, owner=(owner.subject, owner.issuer) if owner else None, limit=limit
    )


@router.get("/{flow_id}/runs/{run_id}", summary="One run, step by step")
async def get_run(
    request: Request, flow_id: str, run_id: str, principal: CurrentPrincipal
) -> RunView:
    service = state_of(request).flows
    await service.owned(flow_id, run_id, _owner(principal))
    return await service.view(run_id)


class _FlowId(Convertor[str]):
    """A flow's id in a path, never the static `schema` (`GET /flows/schema`):
    a DELETE there is no flow's, and a 405 there must not advertise one."""

    regex = r"(?!schema$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("flow_id", _FlowId())


@router.delete(
    "/{flow_id:flow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a flow (admins)",
)
async def delete_flow(
    request: Request,
    flow_id: str,
    admin: AdminPrincipal,
    cancel: Annotated[bool, Query(description="cancel its runs still going first")] = False,
) -> Response:
    """Refused (409) while runs of the flow are going, unless ``cancel=true``,
    and while another flow calls it. Its runs' records stay."""
    state = state_of(request)
    cancelled = await remove_flow(state.flows, flow_id, admin.subject, cancel=cancel)
    await audited(request, admin, "flow.deleted", flow_id, detail=_cancelled(cancelled))
    await forget_in_sets(request, flow_id, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{flow_id}/runs/{run_id}/cancel", summary="Cancel a run")
async def cancel_run(
    request: Request, flow_id: str, run_id: str, principal: CurrentPrincipal
) -> RunView:
    service = state_of(request).flows
    await service.owned(flow_id, run_id, _owner(principal))
    await service.cancel(run_id, principal.subject)
    return await service.view(run_id)


@router.post("/{flow_id}/runs/{run_id}/resume", summary="Go on with a cancelled or failed run")
async def resume_run(
    request: Request, flow_id: str, run_id: str, principal: CurrentPrincipal
) -> RunView:
    service = state_of(request).flows
    await service.owned(flow_id, run_id, _owner(principal))
    await service.resume(run_id, principal.subject)
    return await service.view(run_id)


@router.post(
    "/{flow_id}/runs/{run_id}/answer",
    status_code=202,
    summary="Answer the question a run's agent asked (the run's own user only)",
    responses={409: {"description": "the run waits for no answer"}},
)
async def answer_run(
    request: Request, flow_id: str, run_id: str, answer: AnswerRun, principal: CurrentPrincipal
) -> Answered:
    """Sent to the agent's task that asked; the run goes on. What an agent
    asks is asked of the user the run acts for: anyone else, an admin too,
    finds no such run."""
    service = state_of(request).flows
    you = Owner(principal.subject, principal.issuer, Caller.user(principal))
    await service.owned(flow_id, run_id, you)
    reply = answer.model_dump(exclude_none=True, exclude={"round", "step"})
    step = await service.answer(run_id, you, reply, answer.round, answer.step)
    return Answered(run=run_id, step=step)


@router.post(
    "/{flow_id}/runs/{run_id}/fork",
    status_code=201,
    summary="Start a new run from a step of an ended run (the run's own user only)",
    responses={409: {"description": "the run cannot be forked from that step"}},
)
async def fork_run(
    request: Request, flow_id: str, run_id: str, fork: ForkRun, principal: CurrentPrincipal
) -> RunView:
    """The steps before ``step`` keep the outputs the run recorded (nothing is
    sent again); from ``step`` on, the new run goes on with ``input`` and
    ``version`` if given. Admitted and budgeted as a start; anyone but the
    run's user, an admin too, finds no such run."""
    held_to_json(request, fork)
    service = state_of(request).flows
    caller = Caller.user(principal)
    try:
        forked = await fork_as_user(
            service, flow_id, run_id, caller, fork.step, fork.input, fork.version
        )
    except DelegationDenied as denied:
        raise _refused(denied) from None
    except InputInvalid as exc:
        raise _input_invalid(exc) from None
    return await service.view(forked)


@router.post(
    "/{flow_id}/runs/{run_id}/events/{event}",
    status_code=202,
    summary="Deliver an event to a run that waits for it (its body: the wait step's output)",
)
async def post_event(
    request: Request,
    flow_id: str,
    run_id: str,
    event: Annotated[str, Path(pattern=EVENT_NAME)],
    body: Annotated[dict[str, Any], Body()],
    principal: CurrentPrincipal,
) -> dict[str, str]:
    service = state_of(request).flows
    await service.owned(flow_id, run_id, _owner(principal))
    await service.post_event(run_id, event, body, principal.subject, admin=_is_admin(principal))
    return {"run": run_id, "event": event, "status": "delivered"}


@router.post("/{flow_id}/runs/{run_id}/revoke", summary="Revoke a run's grant")
async def revoke_grant(
    request: Request, flow_id: str, run_id: str, revoke: Revoke, principal: CurrentPrincipal
) -> RunView:
    service = state_of(request).flows
    await service.owned(flow_id, run_id, _owner(principal))
    await service.revoke(run_id, principal.subject, revoke.reason)
    return await service.view(run_id)

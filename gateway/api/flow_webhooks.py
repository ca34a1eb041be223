"""`POST /flows/{id}/hooks/{trigger}`: a flow's webhook trigger (Standard
Webhooks headers, no bearer token) starts a run, or brings its event to the
runs waiting for it (`gateway.flows.webhooks`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status

from gateway.api.state import state_of
from gateway.delegation.pipeline import DelegationDenied
from gateway.flows import webhooks
from gateway.flows.service import InputInvalid
from gateway.flows.webhooks import Delivery
from gateway.http.problems import Problem

router = APIRouter(prefix="/flows", tags=["flows"])


@router.post(
    "/{flow_id}/hooks/{trigger_id}",
    status_code=202,
    summary="Start a run from a signed webhook, or bring its event to the runs waiting "
    "for it (Standard Webhooks headers; no bearer token)",
    responses={
        401: {"description": "not signed with the trigger's secret"},
        404: {"description": "no such webhook; or, delivering, no run waits with that key"},
        409: {"description": "delivering: runs of more than one user wait with that key"},
    },
)
async def webhook(
    request: Request,
    flow_id: str,
    trigger_id: str,
    response: Response,
    webhook_id: Annotated[str, Header()] = "",
    webhook_timestamp: Annotated[str, Header()] = "",
    webhook_signature: Annotated[str, Header()] = "",
) -> dict[str, Any]:
    delivery = Delivery(webhook_id, webhook_timestamp, webhook_signature, await request.body())
    service = state_of(request).flows
    try:
        trigger = await webhooks.webhook_trigger(service, flow_id, trigger_id)
        if trigger.deliver is not None:
            runs = await webhooks.deliver_event(service, flow_id, trigger, delivery)
            return {"status": "delivered", "runs": runs}
        run_id, started = await webhooks.deliver(service, flow_id, trigger, delivery)
    except webhooks.WebhookRefused:
        raise Problem(
            401,
            "webhook-unauthenticated",
            "Webhook not authenticated",
            "the request is not signed with this trigger's secret, or too late",
        ) from None
    except webhooks.NoSuchHook as exc:
        raise Problem(404, "webhook-not-found", "No such webhook", str(exc)) from None
    except webhooks.NoRunWaiting as exc:
        raise Problem(404, "no-run-waiting", "No run waits for this event", str(exc)) from None
    except webhooks.AmbiguousKey as exc:
        raise Problem(
            409, "ambiguous-key", "Runs of several users wait with this key", str(exc)
        ) from None
    except (webhooks.WebhookInvalid, InputInvalid) as exc:
        raise Problem(422, "invalid-input", "The event cannot start a run", str(exc)) from None
    except DelegationDenied as denied:
        reasons = list(denied.decision.reasons)
        raise Problem(
            403, "delegation-refused", "The policy refuses this run", "; ".join(reasons)
        ) from None
    if not started:
        response.status_code = status.HTTP_200_OK  # the same delivery again: the same run
    return {"run": run_id, "status": "started" if started else "already started"}

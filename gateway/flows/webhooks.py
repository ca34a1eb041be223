"""Flows started by a signed webhook: another system (a CRM, a payment
provider) posts an event to `POST /flows/{id}/hooks/{trigger}` and a run
starts with it.

The request is signed as Standard Webhooks has it (standardwebhooks.com;
Svix and others send it): `webhook-id`, `webhook-timestamp` (Unix seconds)
and `webhook-signature` -- space-separated ``v1,<base64 HMAC-SHA256>`` of
``"<id>.<timestamp>.<raw body>"`` under the trigger's secret, a named secret
of the gateway (`secrets`; a ``whsec_``-prefixed value is the base64 of the
key, as Standard Webhooks issues them, any other is the key's UTF-8 bytes).
Refused (401, nothing said of why beyond "signature"): no or a wrong
signature, a timestamp more than `TOLERANCE_SECONDS` from now (a captured
request replayed later). A request replayed within the window starts nothing
new: the run's id is derived from the trigger and `webhook-id`, so the same
delivery retried (as senders do) is the same run.

The run acts for the trigger's `run_as` -- a service identity of the flow's
own, issuer `urn:switchboard:trigger`, with the scopes it declares, decided
by the policy for the flow like any caller's; never for a user. Every
delivery is audited (`flow.webhook`), refused ones included.

A trigger that says ``deliver`` starts nothing: the event goes to the runs
of this flow already waiting for it (a `wait` with a ``key``) whose key is
the one ``deliver.key`` reads from the body -- a payment provider confirming
order o-1 reaches the run waiting for o-1's payment. The body is the wait's
output; it grants no rights (the run goes on acting for its user). The same
delivery retried is one message per run (DBOS's idempotency key). No run
waiting with that key: 404, nothing kept -- the sender's retries bring it
again once the run waits. Runs of more than one user waiting with the key:
409, delivered to none -- a key read from a run's input is its user's
choice, so another user could otherwise claim someone else's event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

from adapters.trace_context import new_trace_id
from gateway.delegation.audit_records import AuditEvent
from gateway.flows import waits
from gateway.flows.definition import FlowDocument
from gateway.flows.expressions import evaluate
from gateway.flows.service import FlowService
from gateway.flows.started import ISSUER, derived_run_id, service_caller, start_once
from gateway.flows.store import FlowNotFound
from gateway.flows.trigger_definition import Trigger
from gateway.http.json_body import JsonRefused, read_json

TOLERANCE_SECONDS = 300
MAX_ID_LENGTH = 256


class WebhookRefused(Exception):
    """401: the delivery is not signed as the trigger's secret signs."""


class WebhookInvalid(Exception):
    """422: signed, but not something a run can start from."""


class NoSuchHook(Exception):
    """404: the flow has no webhook trigger of that id."""


class NoRunWaiting(Exception):
    """404: a delivering webhook's event, and no run waits for it with its key."""


class AmbiguousKey(Exception):
    """409: runs of more than one user wait with the key: it is nobody's proof."""


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    timestamp: str
    signatures: str
    body: bytes


def key_of(secret: SecretStr) -> bytes:
    value = secret.get_secret_value()
    if value.startswith("whsec_"):
        try:
            return base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the bytes as given
    return value.encode()


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(key: bytes, delivery: Delivery, now: float | None = None) -> None:
    if not delivery.webhook_id or len(delivery.webhook_id) > MAX_ID_LENGTH:
        raise WebhookRefused("webhook-id missing or too long")
    try:
        sent_at = int(delivery.timestamp)
    except ValueError:
        raise WebhookRefused("webhook-timestamp is not a Unix time") from None
    if abs((now or time.time()) - sent_at) > TOLERANCE_SECONDS:
        raise WebhookRefused("webhook-timestamp is too far from now")
    expected = signature(key, delivery.webhook_id, delivery.timestamp, delivery.body)
    offered = delivery.signatures.split()
    # Compare every offered signature in constant time (a sender rotating keys
    # sends several); only v1 (HMAC-SHA256) is known.
    if not any(hmac.compare_digest(expected, s) for s in offered if s.startswith("v1,")):
        raise WebhookRefused("no valid signature")


def hook_run_id(flow_id: str, trigger_id: str, webhook_id: str) -> str:
    return derived_run_id(flow_id, trigger_id, webhook_id)


async def deliver(
    service: FlowService, flow_id: str, trigger: Trigger, delivery: Delivery
) -> tuple[str, bool]:
    """Verify and start; (run id, whether it started now)."""
    assert trigger.webhook is not None
    assert trigger.run_as is not None
    trace_id = new_trace_id()
    body = await _verified(service, flow_id, trigger, trace_id, delivery)
    run_input = _input(trigger, body, delivery.webhook_id)
    run_id = hook_run_id(flow_id, trigger.id, delivery.webhook_id)
    started = await start_once(
        service,
        flow_id,
        service_caller("webhook", flow_id, trigger),
        lambda: run_input,
        run_id=run_id,
        event="flow.webhook",
        said=f"webhook {trigger.id}, delivery {delivery.webhook_id}",
    )  # DelegationDenied: 403; InputInvalid: 422
    return run_id, started


async def deliver_event(
    service: FlowService, flow_id: str, trigger: Trigger, delivery: Delivery
) -> list[str]:
    """Verify, and bring the event to the runs waiting for it with its key
    (`NoRunWaiting` if none); the runs it went to."""
    assert trigger.deliver is not None
    trace_id = new_trace_id()
    body = await _verified(service, flow_id, trigger, trace_id, delivery)
    spec = trigger.deliver
    try:
        key = evaluate(spec.key, {"event": body, "webhook": {"id": delivery.webhook_id}})
    except Exception as exc:  # a JMESPath runtime error
        raise WebhookInvalid(f"deliver.key: {exc}") from None
    if isinstance(key, int | float) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not key or len(key) > waits.MAX_KEY_LENGTH:
        raise WebhookInvalid(f"deliver.key gave {str(key)[:80]!r}, not a key")
    waiting = await service.rt.store.waiting_for(flow_id, waits.target_of(spec.event), key)
    said = f"event {spec.event} for key {key!r}, delivery {delivery.webhook_id}"
    if not waiting:
        await _audit(service, flow_id, trigger, trace_id, "allow", "no_run_waiting", said)
        raise NoRunWaiting(f"no run of {flow_id} waits for event {spec.event} with key {key!r}")
    if len({owner for _, owner in waiting}) > 1:
        # A key a run's user could choose (its input, say) is no proof whose
        # the event is: runs of several users waiting with it get nothing.
        await _audit(service, flow_id, trigger, trace_id, "deny", "ambiguous_key", said)
        raise AmbiguousKey(f"runs of more than one user wait for event {spec.event} with this key")
    runs = [run_id for run_id, _ in waiting]
    for run_id in runs:
        await waits.deliver(
            run_id, spec.event, body, idempotency_key=f"{trigger.id}:{delivery.webhook_id}"
        )
    detail = f"{said} to {', '.join(runs)}"
    await _audit(service, flow_id, trigger, trace_id, "allow", "delivered", detail)
    return runs


async def _verified(
    service: FlowService, flow_id: str, trigger: Trigger, trace_id: str, delivery: Delivery
) -> Any:
    """The delivery's JSON body, once its signature is the trigger's secret's."""
    assert trigger.webhook is not None
    secret = service.rt.settings.secrets.get(trigger.webhook.secret)
    if secret is None:
        raise WebhookRefused(f"secret {trigger.webhook.secret!r} is not configured")
    try:
        verify(key_of(secret), delivery)
    except WebhookRefused as exc:
        await _audit(service, flow_id, trigger, trace_id, "deny", "unauthenticated", str(exc))
        raise
    try:
        # The one reader: a body sent as text/plain is not screened on its way in.
        return read_json(delivery.body, service.rt.settings.max_json_depth)
    except JsonRefused as exc:
        raise WebhookInvalid(f"the body is not JSON ({exc})") from None


async def webhook_trigger(service: FlowService, flow_id: str, trigger_id: str) -> Trigger:
    """The flow's webhook trigger of that id (`NoSuchHook` if none): with
    ``deliver`` it brings events to waiting runs (`deliver_event`), else it
    starts one (`deliver`)."""
    try:
        record = await service.rt.store.get(flow_id)
    except FlowNotFound:
        raise NoSuchHook(f"no flow {flow_id}") from None
    document = FlowDocument.model_validate(record.document)
    for trigger in document.triggers:
        if trigger.id == trigger_id and trigger.webhook is not None:
            return trigger
    raise NoSuchHook(f"flow {flow_id} has no webhook {trigger_id!r}")


def _input(trigger: Trigger, body: Any, webhook_id: str) -> dict[str, Any]:
    if trigger.input is None:
        found = body
    else:
        found = evaluate(trigger.input, {"event": body, "webhook": {"id": webhook_id}})
    if not isinstance(found, dict):
        raise WebhookInvalid(f"the run's input is {type(found).__name__}, not an object")
    return found


async def _audit(
    service: FlowService,
    flow_id: str,
    trigger: Trigger,
    trace_id: str,
    decision: Literal["allow", "deny"],
    outcome: str,
    detail: str,
) -> None:
    # A delivering webhook acts for nobody: it is named as its sender.
    subject = trigger.run_as.subject if trigger.run_as else f"webhook:{flow_id}/{trigger.id}"
    await service.rt.delegations.record_event(
        AuditEvent(
            event="flow.webhook",
            trace_id=trace_id,
            subject=subject,
            subject_issuer=ISSUER,
            decision=decision,
            outcome=outcome,
            target=flow_id,
            action=trigger.id,
            detail=detail[:2000],
        )
    )

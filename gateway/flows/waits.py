"""A `wait` step: the run waits for an event posted to it -- a payment
confirmed, a parcel shipped, another system's webhook -- and goes on with the
event's body as the step's output.

`POST /flows/{id}/runs/{run}/events/{event}` (the run's user or an admin)
delivers it as a DBOS message to the run's workflow, topic ``event:<name>``:
durable, so an event posted before the run reaches the step is kept and
taken when it does, and one posted while the gateway is down is refused
(the caller retries), never lost after its 202. The wait is DBOS's `recv`
with the step's timeout, a durable timer: a run recovered after a crash
waits only for what is left. No event in time: ``on_timeout`` fails the run
or goes on with a null output (``{"timed_out": true}`` in the record).

A wait may name a ``key`` (an expression over the run: an order id, say):
a signed webhook of the flow's whose trigger says ``deliver`` then brings the
event to the runs waiting for it with that key (`gateway.flows.webhooks`),
found by the step's record (``target`` ``event:<name>``, the key in
``upstream_task_id``: what the step waits on, as a task wait keeps its
task's id there).

A wait for another agent's task to reach a state is `gateway.flows.task_waits`.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from gateway.flows import mailbox, task_waits
from gateway.flows.definition import WaitStep
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import now
from gateway.flows.run_access import RunAccess

MAX_KEY_LENGTH = 256  # as the column that keeps it (flow_steps.upstream_task_id)


def topic(event: str) -> str:
    return f"event:{event}"


async def deliver(
    run_id: str, event: str, body: Any, *, idempotency_key: str | None = None
) -> None:
    """``idempotency_key``: the same delivery sent again is one message."""
    await mailbox.send(run_id, {"body": body}, topic(event), idempotency_key=idempotency_key)


async def wait(run: RunAccess, step: WaitStep) -> dict[str, Any]:
    spec = step.wait
    if spec.task is not None:
        return await task_waits.wait(run, step)
    assert spec.event is not None
    key, refused = _key(run, step)
    if refused:
        return await DBOS.run_step_async(
            {"name": f"waited {step.id}"}, _refused, run, step, refused
        )
    await DBOS.run_step_async({"name": f"wait {step.id}"}, _waiting, run, step, key)
    message = await DBOS.recv_async(topic(spec.event), timeout_seconds=spec.timeout_seconds)
    return await DBOS.run_step_async({"name": f"waited {step.id}"}, _waited, run, step, message)


def _key(run: RunAccess, step: WaitStep) -> tuple[str | None, str]:
    """The run's key for the event (computed from recorded results only, so a
    replay finds the same), or why there is none."""
    if step.wait.key is None:
        return None, ""
    try:
        value = evaluate(step.wait.key, run.ctx)
    except Exception as exc:  # a JMESPath runtime error
        return None, f"key: {exc}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        return None, f"key gave {str(value)[:80]!r}: not a string of 1 to {MAX_KEY_LENGTH}"
    return value, ""


def target_of(event: str) -> str:
    """What a keyed event wait's record names as its target."""
    return f"event:{event}"


async def _waiting(run: RunAccess, step: WaitStep, key: str | None) -> None:
    await run.rt.store.set_run(run.run_id, current_step=step.id)
    await run.rt.publish(run.info, "working", f"{step.id}: waiting for event {step.wait.event}")
    event = str(step.wait.event)
    keyed = {"target": target_of(event), "upstream_task_id": key} if key is not None else {}
    await run.mark(
        step.id,
        "wait",
        "waiting",
        input={"event": event, **({"key": key} if key is not None else {})},
        started_at=now(),
        **keyed,
    )


async def _refused(run: RunAccess, step: WaitStep, reason: str) -> dict[str, Any]:
    await run.mark(step.id, "wait", "failed", error=reason, started_at=now())
    return {"state": "failed", "output": None, "text": "", "error": reason, "fatal": True}


async def _waited(run: RunAccess, step: WaitStep, message: Any) -> dict[str, Any]:
    if isinstance(message, dict) and "body" in message:
        body = message["body"]
        await run.mark(step.id, "wait", "completed", output=body)
        await run.rt.publish(run.info, "working", f"{step.id}: event {step.wait.event} came")
        return {"state": "completed", "output": body, "text": "", "error": None}
    timeout = f"no event {step.wait.event} within {step.wait.timeout_seconds:g} s"
    if step.wait.on_timeout == "continue":
        await run.mark(step.id, "wait", "completed", output=None, error=timeout)
        return {"state": "completed", "output": None, "text": "", "error": None}
    await run.mark(step.id, "wait", "failed", error=timeout)
    return {"state": "failed", "output": None, "text": "", "error": timeout, "fatal": True}

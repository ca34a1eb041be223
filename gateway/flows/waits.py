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

A wait for another agent's task to reach a state is `gateway.flows.task_waits`.
"""

from __future__ import annotations

from typing import Any, Protocol

from dbos import DBOS

from gateway.flows import task_waits
from gateway.flows.definition import WaitStep
from gateway.flows.outcomes import now
from gateway.flows.runtime import FlowRuntime


class FlowRun(Protocol):
    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]
    ctx: dict[str, Any]

    async def _mark(self, step_id: str, kind: str, state: str, **values: Any) -> None: ...


def topic(event: str) -> str:
    return f"event:{event}"


async def deliver(run_id: str, event: str, body: Any) -> None:
    await DBOS.send_async(run_id, {"body": body}, topic(event))


async def wait(run: FlowRun, step: WaitStep) -> dict[str, Any]:
    spec = step.wait
    if spec.task is not None:
        return await task_waits.wait(run, step)
    assert spec.event is not None
    await DBOS.run_step_async({"name": f"wait {step.id}"}, _waiting, run, step)
    message = await DBOS.recv_async(topic(spec.event), timeout_seconds=spec.timeout_seconds)
    return await DBOS.run_step_async({"name": f"waited {step.id}"}, _waited, run, step, message)


async def _waiting(run: FlowRun, step: WaitStep) -> None:
    await run.rt.store.set_run(run.run_id, current_step=step.id)
    await run.rt.publish(run.info, "working", f"{step.id}: waiting for event {step.wait.event}")
    await run._mark(step.id, "wait", "waiting", input={"event": step.wait.event}, started_at=now())


async def _waited(run: FlowRun, step: WaitStep, message: Any) -> dict[str, Any]:
    if isinstance(message, dict) and "body" in message:
        body = message["body"]
        await run._mark(step.id, "wait", "completed", output=body)
        await run.rt.publish(run.info, "working", f"{step.id}: event {step.wait.event} came")
        return {"state": "completed", "output": body, "text": "", "error": None}
    timeout = f"no event {step.wait.event} within {step.wait.timeout_seconds:g} s"
    if step.wait.on_timeout == "continue":
        await run._mark(step.id, "wait", "completed", output=None, error=timeout)
        return {"state": "completed", "output": None, "text": "", "error": None}
    await run._mark(step.id, "wait", "failed", error=timeout)
    return {"state": "failed", "output": None, "text": "", "error": timeout, "fatal": True}

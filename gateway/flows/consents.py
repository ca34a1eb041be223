"""A run waits for its user to connect an account (`auth_required`).

A call step whose tool acts with the user's own account at a vendor
(`user_oauth`, docs/connections.md) -- and the run's user has not connected
it -- sends nothing: its attempt ends `auth_required`. The workflow then
waits, as at a checkpoint: the run and its A2A task go `auth_required` with
the connect link in the status message, the deadline is recorded in a DBOS
step (a run recovered after a crash waits only for what is left), and
`DBOS.recv` waits for the word that the user connected
(`FlowService.connected`, told by the console's callback). Then the step's
record is reset (nothing was sent) and the call is made again. No
connection in time: the step fails with the link.

A word can be lost: the gateway stopped between saving the connection and
telling the run, or telling it failed (the console's callback logs that and
goes on). So the run also looks for itself, at growing intervals
(`gateway.flows.looks`): the user's connection at the upstream is compared
with the one they had when the wait began (its id and scope, recorded with
the deadline). A connection made since, or one made again with another
scope (a step-up, RFC 6750 §3.1 ``insufficient_scope``), counts as the word;
a refresh of the same connection does not.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from dbos import DBOS

from gateway.flows import mailbox
from gateway.flows.looks import next_look
from gateway.flows.outcomes import AUTH_REQUIRED, failed
from gateway.flows.runtime import FlowRuntime


class FlowRun(Protocol):
    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None: ...


def topic(upstream: str) -> str:
    return f"connected:{upstream}"


async def connected(run_id: str, upstream: str) -> None:
    """Wake ``run_id`` if it waits for a connection at ``upstream``."""
    await mailbox.send(run_id, {"upstream": upstream}, topic(upstream))


async def wait(run: FlowRun, step_id: str, outcome: dict[str, Any], round_: int) -> bool:
    """Wait for the user to connect at ``outcome``'s upstream: True once they
    did (the call may be made again), False at the deadline."""
    upstream = str(outcome["upstream"])
    opened = await DBOS.run_step_async(
        {"name": f"await consent {step_id} {round_}"}, _open, run, step_id, outcome
    )
    deadline = float(opened["deadline"])
    # A wait opened before the looks were (no "had" recorded) only reads the clock.
    had = opened.get("had", _NOT_LOOKED)
    poll = run.rt.settings.checkpoint_poll_seconds
    looks = 0
    while True:
        clock = await DBOS.run_step_async(
            {"name": f"consent clock {step_id}"}, _clock, run, upstream, had
        )
        looks += 1
        if clock < 0:
            connected = True  # seen by looking: the word was lost
        elif clock >= deadline:
            return False
        else:
            wait = max(0.01, min(deadline - clock, next_look(poll, looks)))
            connected = await DBOS.recv_async(topic(upstream), timeout_seconds=wait) is not None
        if connected:
            await DBOS.run_step_async(
                {"name": f"consented {step_id} {round_}"}, _resumed, run, step_id
            )
            return True


# ``had`` of a wait recorded before the looks were: nothing is compared.
_NOT_LOOKED = "not looked"


async def _clock(run: FlowRun, upstream: str, had: Any) -> float:
    """The time (`time.time`), negated when the run's user has connected at
    ``upstream`` since the wait began (`_connected`). One recorded float, as
    this step recorded before it looked: a run waiting across an upgrade
    replays its earlier clock readings unchanged, and one rolled back to a
    gateway that does not look reads a negative time as "not yet"."""
    now = time.time()
    return -now if await _connected(run, upstream, had) else now


async def _connected(run: FlowRun, upstream: str, had: Any) -> bool:
    if had == _NOT_LOOKED:
        return False
    found = await _connection(run, upstream)
    return found is not None and found != had


async def _connection(run: FlowRun, upstream: str) -> list[str] | None:
    info = run.info
    return await run.rt.store.connection_of(
        str(info["owner_subject"]), str(info["owner_issuer"]), upstream
    )


def timed_out(outcome: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        **failed(f"{outcome['error']} -- not connected within {seconds:g} s"),
        "fatal": True,
    }


async def _open(run: FlowRun, step_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
    rt = run.rt
    await run.mark(step_id, "call", AUTH_REQUIRED, error=outcome["error"])
    await rt.store.set_run(run.run_id, current_step=step_id)
    await rt.publish(
        run.info,
        AUTH_REQUIRED,
        f"step {step_id} acts with your own account at {outcome['upstream']}: connect it at "
        f"{outcome['connect_url']} and the run goes on",
        metadata={"connect_url": outcome["connect_url"], "upstream": outcome["upstream"]},
    )
    return {
        "deadline": time.time() + rt.settings.consent_timeout_seconds,
        # What a look compares the user's connection with (`_connected`).
        "had": await _connection(run, str(outcome["upstream"])),
    }


async def _resumed(run: FlowRun, step_id: str) -> None:
    await run.rt.publish(run.info, "working", f"step {step_id}: connected; calling again")

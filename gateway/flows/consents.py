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
(`gateway.flows.looks`), at the user's connection at the upstream:

* a step-up (the server wanted a scope the connection lacks, RFC 6750 §3.1
  ``insufficient_scope``): the connection now holds every scope asked for;
* any other wait: a connection where there was none, or one written since
  the wait began (its id or version differs from the one recorded with the
  deadline) -- made again, or refreshed, which is as worth a new try.

What the user had is read as the wait opens, before the run shows
``auth_required``: a connection made in the few milliseconds between the
call's refusal and that read is taken for the one that failed, and found
only by its word (as before the looks were).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from dbos import DBOS

from gateway.flows import mailbox
from gateway.flows.looks import next_look
from gateway.flows.outcomes import AUTH_REQUIRED, failed
from gateway.flows.runtime import FlowRuntime

logger = logging.getLogger(__name__)


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
            {"name": f"consent clock {step_id}"}, _clock, run, outcome, had
        )
        looks += 1
        if clock < 0:
            break  # the look found the connection
        if clock >= deadline:
            return False
        timeout = max(0.01, min(deadline - clock, next_look(poll, looks)))
        word = await DBOS.recv_async(topic(upstream), timeout_seconds=timeout)
        if word is not None and had == _NOT_LOOKED:
            break  # a wait opened before the looks were: the word is enough
        # Else a word only brings the next look forward: one that came after
        # a look had found the connection (or for another wait's scope) stays
        # on the topic, and must not let a later wait go on by itself.
    await DBOS.run_step_async({"name": f"consented {step_id} {round_}"}, _resumed, run, step_id)
    return True


# ``had`` of a wait recorded before the looks were: nothing is compared.
_NOT_LOOKED = "not looked"


async def _clock(run: FlowRun, outcome: dict[str, Any], had: Any) -> float:
    """The time (`time.time`), negated when the run's user has connected as
    the wait needs (`_connected`). One recorded float, as this step recorded
    before it looked: a run waiting across an upgrade replays its earlier
    readings unchanged. (A run a look let go on cannot be replayed by a
    gateway older than the looks: its next record is "consented", where the
    older one expects its wait for the word.) A look that fails (the
    database gives way) is "not yet": the run waits on, as before."""
    now = time.time()
    try:
        connected = await _connected(run, outcome, had)
    except Exception as exc:
        logger.info("run %s: the look for a connection failed: %r", run.run_id, exc)
        connected = False
    return -now if connected else now


async def _connected(run: FlowRun, outcome: dict[str, Any], had: Any) -> bool:
    if had == _NOT_LOOKED:
        return False
    found = await _connection(run, str(outcome["upstream"]))
    return connection_counts(outcome, had, found)


def connection_counts(
    outcome: dict[str, Any], had: dict[str, Any] | None, found: dict[str, Any] | None
) -> bool:
    """Whether the user's connection ``found`` now lets the call refused with
    ``outcome`` be made again, ``had`` being the one they had as the wait
    began (`FlowStore.connection_of`'s, or None)."""
    if found is None:
        return False
    asked = outcome.get("scope")
    if asked is not None:  # a step-up: every scope asked for is granted now
        return set(str(asked).split()) <= set(str(found["scope"]).split())
    return had is None or (found["id"], found["version"]) != (had["id"], had["version"])


async def _connection(run: FlowRun, upstream: str) -> dict[str, Any] | None:
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
    # What a look compares the user's connection with (`_connected`): read
    # before the run shows auth_required, after which a connection is told.
    had = await _connection(run, str(outcome["upstream"]))
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
        "had": had,
    }


async def _resumed(run: FlowRun, step_id: str) -> None:
    await run.rt.publish(run.info, "working", f"step {step_id}: connected; calling again")

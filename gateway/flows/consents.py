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
(`gateway.flows.looks`), at the user's connection at the upstream, against
the one the refused call found (`ConnectionRequired.seen`, recorded with
the call's outcome before anything was shown to the user; a wait whose
outcome predates it reads the user's connection as the wait opens):

* a connection written since -- one where there was none, another, or the
  same one at another version (made again over it, or refreshed, which is
  as worth a new try) -- lets the run go on;
* for a step-up (the server wanted a scope the connection lacks, RFC 6750
  §3.1 ``insufficient_scope``) a look wants, besides, every scope asked for
  granted; a word does not (the authorization server may name scopes
  otherwise than they were asked for: the server called again decides).

A word only brings the next look forward, with the word's rule: one left
on the topic by an earlier wait finds no connection written since, and lets
nothing go on by itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dbos import DBOS

from gateway.flows import mailbox
from gateway.flows.looks import next_look
from gateway.flows.outcomes import AUTH_REQUIRED, failed
from gateway.flows.run_access import RunAccess

logger = logging.getLogger(__name__)


def topic(upstream: str) -> str:
    return f"connected:{upstream}"


async def connected(run_id: str, upstream: str) -> None:
    """Wake ``run_id`` if it waits for a connection at ``upstream``."""
    await mailbox.send(run_id, {"upstream": upstream}, topic(upstream))


async def wait(run: RunAccess, step_id: str, outcome: dict[str, Any], round_: int) -> bool:
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
    word = False  # the look comes after a word
    while True:
        clock = await DBOS.run_step_async(
            {"name": f"consent clock {step_id}"}, _clock, run, outcome, had, word
        )
        looks += 1
        if clock < 0:
            break  # connected as the wait needs
        if clock >= deadline:
            return False
        timeout = max(0.01, min(deadline - clock, next_look(poll, looks)))
        word = await DBOS.recv_async(topic(upstream), timeout_seconds=timeout) is not None
        if word and had == _NOT_LOOKED:
            break  # a wait opened before the looks were: the word is enough
    await DBOS.run_step_async({"name": f"consented {step_id} {round_}"}, _resumed, run, step_id)
    return True


# ``had`` of a wait recorded before the looks were: nothing is compared.
_NOT_LOOKED = "not looked"


async def _clock(run: RunAccess, outcome: dict[str, Any], had: Any, word: bool) -> float:
    """The time (`time.time`), negated when the run's user has connected as
    the wait needs (`connection_counts`; ``word``: a word came). One
    recorded float, as this step recorded before it looked: a run waiting
    across an upgrade replays its earlier readings unchanged. (A run that
    went on under the looks cannot be replayed by a gateway older than they
    are: its records after a word differ.) A look that fails (the database
    gives way) is "not yet": the run waits on, as before."""
    now = time.time()
    if had == _NOT_LOOKED:
        return now
    try:
        found = await _connection(run, str(outcome["upstream"]))
    except Exception as exc:
        logger.warning("run %s: the look for a connection failed: %r", run.run_id, exc)
        return now
    return -now if connection_counts(outcome, had, found, word=word) else now


def connection_counts(
    outcome: dict[str, Any],
    had: dict[str, Any] | None,
    found: dict[str, Any] | None,
    *,
    word: bool = False,
) -> bool:
    """Whether the user's connection ``found`` (`FlowStore.connection_of`'s)
    lets the call refused with ``outcome`` be made again: written since
    ``had`` (the one the call could not use, or None), and, for a step-up
    seen by looking rather than told by a ``word``, granted every scope
    asked for."""
    if found is None:
        return False
    if had is not None and (found["id"], found["version"]) == (had["id"], had["version"]):
        return False
    asked = outcome.get("scope")
    if asked is None or word:
        return True
    return set(str(asked).split()) <= set(str(found["scope"]).split())


async def _connection(run: RunAccess, upstream: str) -> dict[str, Any] | None:
    info = run.info
    return await run.rt.store.connection_of(
        str(info["owner_subject"]), str(info["owner_issuer"]), upstream
    )


def timed_out(outcome: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        **failed(f"{outcome['error']} -- not connected within {seconds:g} s"),
        "fatal": True,
    }


async def _open(run: RunAccess, step_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
    rt = run.rt
    # What a look compares the user's connection with: the one the refused
    # call found; for an outcome recorded before calls said it, the user's
    # connection now.
    if "seen" in outcome:
        had = outcome["seen"]
    else:
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


async def _resumed(run: RunAccess, step_id: str) -> None:
    await run.rt.publish(run.info, "working", f"step {step_id}: connected; calling again")

"""A run's own steps outlast a database briefly out of reach, and a run
whose workflow fails all the same ends failed, saying why.

Seen under load (`bench.flow_load --runs 1000` on PostgreSQL, a thousand
runs woken by their approvals at once): a run's "finish" step waited for a
connection of the engine's pool longer than the pool's checkout timeout
(30 s) and raised. SQLAlchemy's async pool queue lets a caller that comes
along take a connection just given back before the waiter it woke, which
goes to the back of the queue, so under a burst one waiter can lose its
turn again and again while others finish. DBOS recorded the step's error
and the workflow as ERROR; the run's record stayed ``working`` for good:
nothing would run it again, and nothing said it had stopped.

So:

* the run's own steps (``begin``, ``finish``) are retried by DBOS while
  their error is an outage (`gateway.storage.outages`: the database or
  Redis unreachable, or no connection in time), with a doubling pause, for
  about two minutes (`OWN_STEP`); they are safe to run again (each write is
  idempotent, an ended run stays as it ended);
* a workflow that raises anyway (an outage longer than that, a bug) ends
  its run ``failed`` with the error (`failed_for_good`) before DBOS records
  it ERROR. (A resume replays the step's recorded error: DBOS does not run
  a step that failed again, so such a run ends failed once more.) A
  cancellation or a shutdown is not an error: DBOS raises a `BaseException`
  for them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbos import DBOS, StepOptions

from gateway.flows.store import TERMINAL_RUN_STATES, FlowStore
from gateway.storage.outages import outage_of

Finish = Callable[[str, str, Any], Awaitable[None]]
logger = logging.getLogger(__name__)


def transient(exc: BaseException) -> bool:
    """Worth another attempt: a dependency out of reach, not a bug."""
    return outage_of(exc) is not None


# 1 + 2 + 4 + ... + 64 s between eight attempts: about two minutes.
OWN_STEP: StepOptions = {
    "retries_allowed": True,
    "should_retry": transient,
    "interval_seconds": 1.0,
    "backoff_rate": 2.0,
    "max_attempts": 8,
}


def own_step(name: str) -> StepOptions:
    """The DBOS step options of one of the run's own steps, named ``name``."""
    return {**OWN_STEP, "name": name}


async def failed_for_good(store: FlowStore, run_id: str, finish: Finish, exc: Exception) -> None:
    """Run ``run_id``'s workflow raised ``exc``: the run ends failed through
    ``finish`` (its "finish" step's work, here in a recorded step retried as
    the run's own), unless it has ended already (a cancel meanwhile)."""
    reason = f"the run stopped on an error: {type(exc).__name__}: {exc}"[:2000]
    logger.warning("flow run %s: %s", run_id, reason)

    async def end_failed() -> None:
        row = await store.run_row(run_id)
        if row["state"] not in TERMINAL_RUN_STATES:
            await finish("failed", reason, None)

    await DBOS.run_step_async(own_step("failed"), end_failed)

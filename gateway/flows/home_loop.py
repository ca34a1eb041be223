"""A run's code runs on the gateway's event loop, whichever loop DBOS starts it on.

A run works with the gateway's loop-bound resources (database pools, HTTP
clients, events). DBOS runs a workflow started from the gateway
(`DBOS.start_workflow_async`) on the gateway's loop, but one it takes from
its queue -- a recovered run, a fork, a resumed run, a schedule's tick --
on a loop of its own thread, unless a loop was running in the thread that
called `DBOS.launch`, and the engine launches DBOS off the loop (on SQLite
launch waits for the write lock; `gateway.flows.engine`). DBOS has no public
way to be given the loop, so the gateway's workflows hop there themselves
(`at_home`): DBOS's own workflow bookkeeping stays on its loop, the body
runs on the gateway's, in a copy of the context DBOS set up (the workflow's
id and step counter), and its outcome -- a cancellation included -- goes
back to DBOS as if run in place.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_home: asyncio.AbstractEventLoop | None = None


def settle() -> None:
    """Make the event loop running now the runs' home (the flow engine's, at launch)."""
    global _home
    _home = asyncio.get_running_loop()


def leave() -> None:
    """No home any more (the engine stopped): a workflow runs where DBOS starts it."""
    global _home
    _home = None


def at_home(
    body: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """``body``, a DBOS workflow's, run on the home loop (`settle`)."""

    @functools.wraps(body)
    async def workflow(*args: P.args, **kwargs: P.kwargs) -> R:
        home = _home
        if home is None or home is asyncio.get_running_loop():
            return await body(*args, **kwargs)
        # Scheduled from within this task: the body's task runs in a copy of
        # its context (`loop.call_soon_threadsafe` copies the caller's).
        # Cancelling either side cancels the other.
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(body(*args, **kwargs), home)
        )

    return workflow

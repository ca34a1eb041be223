"""A run's calls in flight stop when the run is cancelled.

A flow's call can run long (an agent answering). DBOS's own way to stop it
is a ``preemptible=True`` step, whose watcher reads every second whether
the workflow was cancelled: a private interval of ``dbos._core`` with no
setting, and no public way to tell it of a cancellation made here. So the
gateway does it itself, with public names only: a call step is
`cancellable`, raced against a signal set at once by a cancellation here
(`cancelled_here`, from `gateway.flows.engine.FlowEngine.cancel`) and by a
read, once for every call in flight every `POLL_SECONDS`, of those
cancelled by another process (`DBOS.list_workflows_async`). A call stopped
raises DBOS's `DBOSWorkflowCancelledError`, as its preemptible step does:
DBOS records no outcome for the step, which runs again if the run is
resumed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from dbos import DBOS
from dbos import error as dbos_errors

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# How often the calls in flight read whether their runs were cancelled by
# another process (one read for them all); a cancellation here stops them at once.
POLL_SECONDS = 15.0

_signals: dict[str, set[asyncio.Future[None]]] = {}
_poller: asyncio.Task[None] | None = None


def cancellable(call: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``call`` as a step of the workflow running it that stops when the
    workflow is cancelled (here at once, elsewhere within `POLL_SECONDS`)."""

    @functools.wraps(call)
    async def step(*args: P.args, **kwargs: P.kwargs) -> R:
        run_id = DBOS.workflow_id
        if run_id is None:
            return await call(*args, **kwargs)
        task = asyncio.ensure_future(call(*args, **kwargs))
        signal = _register(run_id)
        try:
            racing: set[asyncio.Future[Any]] = {task, signal}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if task.done():  # a call that ended keeps its outcome
                return task.result()
            task.cancel()
            await asyncio.wait({task})
            outcome = None if task.cancelled() else task.exception()
            if outcome is not None and not isinstance(outcome, Exception):
                raise outcome
            raise dbos_errors.DBOSWorkflowCancelledError(
                f"Workflow {run_id} is cancelled. Aborting its call."
            ) from outcome
        finally:
            _unregister(run_id, signal)
            if not task.done():  # the step itself cancelled (the gateway stops)
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved

    return step


def cancelled_here(run_id: str) -> int:
    """Stop, now, the calls of run ``run_id`` in flight here (just
    cancelled); how many."""
    stopped = 0
    for signal in list(_signals.get(run_id, ())):
        if not signal.done():
            signal.set_result(None)
            stopped += 1
    return stopped


def _register(run_id: str) -> asyncio.Future[None]:
    global _poller
    signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _signals.setdefault(run_id, set()).add(signal)
    if _poller is None or _poller.done():
        # An empty context: the poll is no part of the step that started it.
        _poller = contextvars.Context().run(asyncio.create_task, _poll())
    return signal


def _unregister(run_id: str, signal: asyncio.Future[None]) -> None:
    global _poller
    signal.cancel()
    signals = _signals.get(run_id)
    if signals is not None:
        signals.discard(signal)
        if not signals:
            del _signals[run_id]
    if not _signals and _poller is not None:
        _poller.cancel()  # nothing in flight: no sleeping task left behind
        _poller = None


async def _poll() -> None:
    while _signals:
        await asyncio.sleep(POLL_SECONDS)
        # Only the calls in flight when the read begins: a run resumed since
        # a stale CANCELLED must not lose its new call.
        snapshot = {run_id: set(signals) for run_id, signals in _signals.items()}
        try:
            found: list[Any] = await DBOS.list_workflows_async(
                workflow_ids=list(snapshot),
                status="CANCELLED",
                load_input=False,
                load_output=False,
            )
        except Exception as exc:
            logger.warning("could not read whether runs in flight were cancelled: %r", exc)
            continue
        for workflow in found:
            for signal in snapshot.get(str(workflow.workflow_id), ()):
                if not signal.done():
                    signal.set_result(None)

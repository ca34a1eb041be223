"""Approvals from deep inside: a step whose agent is another flow, waiting at
a checkpoint of its own (or at one deeper still), is not an agent asking the
run's user something. Its task says so: ``input_required`` with
``metadata.approval`` (the approval's id) and ``metadata.chain`` (who raised
it: "<flow> run <run> step <step>", outermost first) -- and no
``metadata.question``.

The step then keeps following the task (`gateway.flows.agent_tasks`) and
shows the approval where the run's own checkpoint would be: its record waits
(``approval_id``: the desk links it), and the run's task goes
``input_required`` with the same approval and the chain, this run's step in
front -- so the root run, however deep the checkpoint, names it, and its
A2A caller, its MCP client and its console page see it. Approving it on the
desk resumes the inner run where it waits; the step follows that run on, and
the run goes back to working. The decision wakes the steps waiting on it in
this process (`decided`); elsewhere they see it at their next look, at most
`LOOK_SECONDS` later.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from a2a.types import Task, TaskState
from google.protobuf.json_format import MessageToDict

if TYPE_CHECKING:
    from gateway.flows.runtime import FlowRuntime

LOOK_SECONDS = 30.0
# A checkpoint's approval id (`checkpoints.approval_id`), and how many runs deep a chain says.
APPROVAL_ID = re.compile(r"apr_[0-9a-f]{32}")
MAX_CHAIN = 16
_WAITERS: dict[str, set[asyncio.Event]] = {}


def held_deeper(task: Task) -> dict[str, Any] | None:
    """{approval, chain} when ``task`` waits at an approval inside it."""
    if task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
        return None
    said: Mapping[str, Any] = MessageToDict(task.metadata) if task.HasField("metadata") else {}
    approval = said.get("approval")
    if not isinstance(approval, str) or not APPROVAL_ID.fullmatch(approval) or "question" in said:
        return None
    chain = said.get("chain")
    links = [str(link)[:300] for link in chain[:MAX_CHAIN]] if isinstance(chain, list) else []
    return {"approval": approval, "chain": links}


def link(flow_id: str, run_id: str, step_id: str) -> str:
    return f"{flow_id} run {run_id} step {step_id}"


async def wait_for_decision(approval: str, seconds: float) -> bool:
    """Until ``approval`` is decided in this process (True), or ``seconds`` pass."""
    woken = asyncio.Event()
    _WAITERS.setdefault(approval, set()).add(woken)
    try:
        await asyncio.wait_for(woken.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
    finally:
        waiting = _WAITERS.get(approval)
        if waiting is not None:
            waiting.discard(woken)
            if not waiting:
                del _WAITERS[approval]


def decided(approval_id: str) -> None:
    """An approval was decided here: wake the steps waiting on it."""
    for woken in _WAITERS.get(approval_id, ()):
        woken.set()


async def announce(
    rt: FlowRuntime,
    run_id: str,
    step_id: str,
    write: Callable[..., Awaitable[None]],
    deeper: dict[str, Any] | None,
) -> None:
    """The step's record and the run's task, as the approval inside its
    agent's task opens (``deeper``) or is decided (None)."""
    run = await rt.store.run_row(run_id)
    if deeper is None:
        await write(state="running", approval_id=None)
        await rt.publish(run, "working", f"step {step_id} goes on: the approval was decided")
        return
    approval = str(deeper["approval"])
    chain = [link(run["flow_id"], run_id, step_id), *deeper["chain"]]
    await write(state="waiting", approval_id=approval)
    await rt.store.set_run(run_id, current_step=step_id)
    await rt.publish(
        run,
        "input_required",
        f"waiting for an admin's approval {approval}, raised by {chain[-1]}",
        metadata={"approval": approval, "chain": chain},
    )

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

**An agent that delegates onwards.** A step's agent that is not a flow may
hand part of the work to another agent through the gateway (RFC 8693 token
exchange, then the other agent's front door here). The step's token carries
its ``txn`` ("<run>:<step>", `txn`), and every token exchanged from it
carries it on (`gateway.delegation.permits.Caller.txn`; only this gateway's
own tokens are read for it), so a call the policy holds for approval down
there is stored as made under that step. While the step's exchange with its
agent goes on, the step looks for such an approval of the run's user
(`held_onwards`: woken as one is held here, `held_now`, else looking every
`LOOK_SECONDS`) and shows it exactly as a nested flow's, the chain naming the
agents that called on ("relay -> sales / quote"). Approving it resumes the
held call, the agent's own call goes on, and so does the step. The agent's
task itself is never taken at its word for an approval (an agent could name
any approval there): only the gateway's own record of the held call counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from a2a.types import Task, TaskState
from google.protobuf.json_format import MessageToDict

if TYPE_CHECKING:
    from gateway.delegation.approvals import Approval
    from gateway.delegation.permits import Caller
    from gateway.delegation.tasks import Owner
    from gateway.flows.runtime import FlowRuntime

LOOK_SECONDS = 30.0
# How far apart two replicas' clocks may be: an approval held onwards is the
# step's if held since its exchange began, give or take this.
CLOCKS_APART = timedelta(seconds=5)
# The steps waiting to hear of an approval held under their ``txn``.
_HEARING: dict[str, list[Callable[[], None]]] = {}
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


@dataclass(frozen=True)
class Onwards:
    """Calls a step's agent makes onwards through the gateway, under the
    step's ``txn`` (`gateway.flows.deep_approvals`): ``find`` the approval
    one waits at, ``show`` it on the run (None: it was decided)."""

    txn: str
    find: Callable[[], Awaitable[dict[str, Any] | None]]
    show: Callable[[dict[str, Any] | None], Awaitable[None]]


Show = Callable[[dict[str, Any] | None], Awaitable[None]]


def shown(
    rt: FlowRuntime, run_id: str, step_id: str, write: Callable[..., Awaitable[None]]
) -> Show:
    """How an approval inside the step's agent shows on the run (`announce`)."""

    async def show(deeper: dict[str, Any] | None) -> None:
        await announce(rt, run_id, step_id, write, deeper)

    return show


def onwards(
    rt: FlowRuntime, owner: Owner, caller: Caller, agent: str, show: Show, since: datetime
) -> Onwards | None:
    """The step's calls onwards through ``agent`` since its exchange began
    (``since``; None: the call carries no txn)."""
    of = caller.txn
    if of is None:
        return None

    async def find() -> dict[str, Any] | None:
        return await held_onwards(rt, owner, of, agent, since)

    return Onwards(of, find, show)


def txn(run_id: str, step_id: str) -> str:
    """What a step's call carries in its token, and every call its agent
    makes onwards with a token exchanged from it (`Caller.txn`)."""
    return f"{run_id}:{step_id}"


async def held_onwards(
    rt: FlowRuntime, owner: Owner, of: str, agent: str, since: datetime
) -> dict[str, Any] | None:
    """{approval, chain} when a call made onwards for the step ``of`` (its
    txn) since its exchange began -- by ``agent``, the step's, or further
    down -- waits: the chain names who called what (the agents in its token,
    after the step's own)."""
    held = await rt.approvals.pending_under(owner.subject, of, since - CLOCKS_APART)
    if held is None:
        return None
    actors = held.requested_by.actors
    below = actors[actors.index(agent) :] if agent in actors else actors[-1:]
    called = held.target + (f" / {held.action}" if held.action else "")
    chain = [f"{' -> '.join(below)} -> {called}"[:300]]
    return {"approval": held.id, "chain": chain}


def held_now(approval: Approval) -> None:
    """An approval was just held (stored): wake the step whose call it was
    made under, if it runs here; elsewhere it is seen at its next look."""
    under = approval.requested_by.txn or ""
    for told in list(_HEARING.get(under, ())):
        told()


def hear_held(of: str, told: Callable[[], None]) -> Callable[[], None]:
    """``told`` when an approval is held under ``of`` in this process; the
    function returned stops that."""
    _HEARING.setdefault(of, []).append(told)

    def unheard() -> None:
        hearing = _HEARING.get(of)
        if hearing is not None and told in hearing:
            hearing.remove(told)
            if not hearing:
                del _HEARING[of]

    return unheard


async def held_onwards_soon(of: str, seconds: float) -> None:
    """Until an approval is held under ``of`` in this process, or ``seconds`` pass."""
    woken = asyncio.Event()
    unheard = hear_held(of, woken.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), timeout=seconds)
    finally:
        unheard()


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

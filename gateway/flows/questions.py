"""An agent that asks: a step waits for the run's user to answer its agent.

A call step whose agent answers ``TASK_STATE_INPUT_REQUIRED`` (or
``TASK_STATE_AUTH_REQUIRED``: the agent wants its user to sign in with it
first) does not fail. The attempt ends `asking`, with the agent's question
and the agent's task id on the step's record, and the workflow waits here:

* opening the question (a DBOS step) marks the step ``input_required`` with
  the question and its round, and puts the run and its A2A task in
  ``TASK_STATE_INPUT_REQUIRED`` (or auth-required) with the agent's own words
  in the status message -- for the run's user only, who alone may answer
  (`deliver`): by a message to the run's A2A task, `POST
  /flows/{id}/runs/{run}/answer`, or the console's run page;
* the answer comes as a DBOS message (`DBOS.send`, stored, so one sent before
  the wait began or during a restart is not lost) on the step's topic,
  carrying the round it answers; an answer to an earlier round is dropped;
* answered, the step sends the answer to the same task of the same agent
  (`StepCall.answer`, decided and recorded as any message) and follows it
  again, which may ask again: at most `MAX_QUESTIONS` rounds;
* no answer within `QUESTION_TIMEOUT_SECONDS` (the deadline recorded in the
  opening step, so a restart waits only for what is left): the step fails
  saying so.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbos import DBOS

from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.tasks import Owner
from gateway.flows import mailbox
from gateway.flows.outcomes import ASKING, failed
from gateway.flows.run_access import RunAccess
from gateway.flows.runtime import FlowRuntime
from gateway.flows.store import RunNotFound

QUESTION_TIMEOUT_SECONDS = 86400.0
MAX_QUESTIONS = 10


@dataclass(frozen=True)
class Answer:
    """The run's user's answer (``{"text", "data"}``) to question ``round``."""

    round: int
    reply: dict[str, Any]
    # Which status of the agent's task asked (`agent_tasks.status_key`): the
    # answer is sent only while the task still shows it.
    asked: str


class NotAsking(Exception):
    """The run does not wait for an answer (any more)."""


def topic(step_id: str, key: str) -> str:
    """The question's own topic: ``key`` is drawn when it opens, so an answer
    to an earlier question -- even of the same step called again after a
    review -- never reaches a later one."""
    return f"answer:{step_id}:{key}"


def asked(outcome: dict[str, Any]) -> bool:
    return outcome.get("state") == ASKING


async def answer(
    rt: FlowRuntime,
    run_id: str,
    by: Owner,
    reply: dict[str, Any],
    round_: int | None = None,
    step_of: str | None = None,
) -> str:
    """``by``'s answer (``{"text", "data"}``) to the question ``run_id`` waits
    at: the step it answers. Only the run's own user answers: anyone else
    finds no such run (`RunNotFound`), an admin included -- what an agent asks
    is asked of the user the run acts for. `NotAsking` when the run waits for
    no answer, or ``round_`` (when the caller says which it answers) is not
    the question it waits at: a retried or doubled answer to a question
    already answered is refused, not taken for the next; so is one for
    another step (``step_of``, when the caller says which: a fan-out's
    branches and items ask in turn, each from round 1). The answer's
    content is not audited (it is the step's input)."""
    run = await rt.store.run_row(run_id)
    if (run["owner_subject"], run["owner_issuer"]) != (by.subject, by.issuer):
        raise RunNotFound(run_id)
    step_id = run.get("current_step")
    step = await rt.store.step_row(run_id, step_id) if step_id else None
    question = (step or {}).get("output")
    if (
        step_id is None
        or step is None
        or run["state"] not in ("input_required", "auth_required")
        or step["state"] != ASKING
        or not isinstance(question, dict)
        or not isinstance(question.get("round"), int)
        or not isinstance(question.get("key"), str)
    ):
        raise NotAsking(f"run {run_id} waits for no answer")
    asking = int(question["round"])
    if round_ is not None and round_ != asking:
        raise NotAsking(f"run {run_id} asks question {asking} now, not {round_}")
    if step_of is not None and step_of != step_id:
        raise NotAsking(f"run {run_id} asks at step {step_id} now, not {step_of}")
    await mailbox.send(run_id, {"round": asking, **reply}, topic(step_id, question["key"]))
    client_id = by.caller.client_id if by.caller else None
    said = f"run {run_id}: answer {asking} to {question.get('agent')}"
    await audit_answer(rt, run, step_id, by, client_id, said)
    return str(step_id)


async def audit_answer(
    rt: FlowRuntime,
    run: Mapping[str, Any],
    step_id: str,
    by: Owner,
    client_id: str | None,
    detail: str,
) -> None:
    """``flow.answer``: who answered which step of ``run`` (its row, or a
    workflow's ``info``) -- never the words, which are the step's input."""
    await rt.delegations.record_event(
        AuditEvent(
            event="flow.answer",
            trace_id=run["trace_id"],
            subject=by.subject,
            subject_issuer=by.issuer,
            client_id=client_id,
            target=run["flow_id"],
            action=step_id,
            decision="allow",
            outcome="ok",
            detail=detail,
        )
    )


async def reopen(rt: FlowRuntime, run: dict[str, Any], by: str) -> bool:
    """A run resumed while its step's agent asked: it waits at that question
    again (its opening is replayed, not run again, so it is said here). True
    when it does."""
    step_id = run.get("current_step")
    step = await rt.store.step_row(run["id"], step_id) if step_id else None
    question = (step or {}).get("output")
    if (
        step is None
        or step["state"] != ASKING
        or not isinstance(question, dict)
        # Opened for its user (`_open` draws the key): not one on its way to
        # a reviewer or answered by the flow (`gateway.flows.answerers`).
        or not isinstance(question.get("key"), str)
    ):
        return False
    await _tell(rt, run, str(step_id), question, f"resumed by {by}; ")
    return True


async def wait(
    run: RunAccess, step_id: str, outcome: dict[str, Any], round_: int
) -> dict[str, Any] | None:
    """Ask the run's user ``outcome``'s question: their reply, or None at the
    deadline."""
    opened = await DBOS.run_step_async(
        {"name": f"ask {step_id} {round_}"}, _open, run, step_id, outcome, round_
    )
    deadline, key = float(opened["deadline"]), str(opened["key"])
    while True:
        now = await DBOS.run_step_async({"name": f"question clock {step_id}"}, time.time)
        if now >= deadline:
            return None
        reply = await DBOS.recv_async(
            topic(step_id, key), timeout_seconds=max(0.01, deadline - now)
        )
        if isinstance(reply, dict) and reply.get("round") == round_:
            await DBOS.run_step_async(
                {"name": f"answered {step_id} {round_}"}, _answered, run, step_id, outcome
            )
            return reply


def unanswered(outcome: dict[str, Any]) -> dict[str, Any]:
    seconds = f"{QUESTION_TIMEOUT_SECONDS:g}"
    return {**failed(f"{outcome['error']} -- no answer within {seconds} s"), "fatal": True}


def too_many(outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        **failed(f"{outcome['error']} -- the agent asked more than {MAX_QUESTIONS} times"),
        "fatal": True,
    }


def question_of(outcome: dict[str, Any]) -> dict[str, Any]:
    """What the step's record and the run's user see of the question."""
    return {
        "question": outcome.get("text") or "",
        "data": outcome.get("data"),
        "agent": outcome.get("agent"),
        "state": outcome.get("asks", "input_required"),
        "round": outcome.get("round"),
    }


async def _open(
    run: RunAccess, step_id: str, outcome: dict[str, Any], round_: int
) -> dict[str, Any]:
    rt = run.rt
    # The key is this operation's own place in the run's workflow, not drawn
    # at random: a crash after the question was marked and told (the run
    # shows it) but before DBOS recorded this step re-runs it, and a random
    # key drawn again would leave an answer sent meanwhile, to the key shown,
    # on a topic nobody reads.
    place = f"{DBOS.workflow_id}:{DBOS.step_id}"
    if DBOS.step_id is None:  # not in a recorded step: unique, if not stable
        place += ":" + secrets.token_hex(8)
    key = hashlib.sha256(place.encode()).hexdigest()[:16]
    question = {**question_of(outcome), "round": round_, "key": key}
    await run.mark(step_id, "call", ASKING, output=question, error=None)
    await rt.store.set_run(run.run_id, current_step=step_id)
    await _tell(rt, run.info, step_id, question)
    return {"deadline": time.time() + QUESTION_TIMEOUT_SECONDS, "key": key}


async def _answered(run: RunAccess, step_id: str, outcome: dict[str, Any]) -> None:
    await run.rt.publish(
        run.info, "working", f"step {step_id}: answered; sent to {outcome.get('agent')}"
    )


async def _tell(
    rt: FlowRuntime, run: dict[str, Any], step_id: str, question: dict[str, Any], before: str = ""
) -> None:
    """The run and its A2A task wait at ``question``, in the agent's words."""
    state = "auth_required" if question.get("state") == "auth_required" else "input_required"
    said = question.get("question") or f"{question.get('agent')} needs your answer"
    asked = {"step": step_id, "round": question.get("round"), "agent": question.get("agent")}
    await rt.publish(
        run, state, f"{before}step {step_id} asks: {said}", metadata={"question": asked}
    )

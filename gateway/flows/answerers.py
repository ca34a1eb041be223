"""Who answers a step's agent when it asks: the flow says (``questions``).

A call step's agent that asks (its task ``input-required`` or
``auth-required``, `gateway.flows.questions`) is answered, in this order:

1. ``questions.answer``, an expression over ``input``, ``steps`` and
   ``question`` (``{question, data, agent, state, round}``): a string is sent
   as the answer's text, an object as its data. Evaluated in a recorded
   operation, so a replay sends what the first pass chose. Null, a blank
   string, ``{}`` or ``[]`` is no answer: the question goes on to ``to``.
   Anything else (a number, a bool, a list) fails the step: an answer is
   words or an object.
2. ``questions.to``:
   * ``user`` (the default): the run's own user (`gateway.flows.questions`);
   * ``reviewer``: the approvals desk. The question becomes a checkpoint of
     its own, ``<id>:question<n>.<key>`` (a ':' no step id has; its key
     recorded, so a step called again after a review asks afresh). A
     reviewer approves it *with the answer* (`POST /approvals/{id}` with
     ``answer``, refused without one) or rejects it, which ends the run
     ``rejected``; no decision within a day fails the run. The run's user
     cannot answer it: the run waits at the checkpoint, not at a question;
   * ``fail``: the step fails with the agent's question as its error (its
     ``on_error`` applies) -- for flows no human attends.

An agent that wants its user to sign in with it (``auth-required``) is
never answered by an expression or a reviewer: it goes to the run's user
(or, with ``to: fail``, fails the step).

Whoever answers, the answer goes to the same task of the same agent as a
user's would (`gateway.flows.reviews.called`), decided by the policy and
recorded. An expression's answer is audited as ``flow.answer`` by the flow;
a reviewer's by the desk's own ``approval.decided``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbos import DBOS

from gateway.delegation.tasks import Owner
from gateway.flows import checkpoints, questions
from gateway.flows.call_definition import Questions
from gateway.flows.definition import CallStep, Checkpoint, CheckpointStep
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import failed
from gateway.flows.run_access import RunAccess
from gateway.flows.step_records import shortened

ASKED_OF_USER = Questions()


@dataclass(frozen=True)
class Answered:
    """An answer (``reply``: ``{"text"?, "data"?}``), or the step's end
    instead (``ended``: a failure, a rejection)."""

    reply: dict[str, Any] | None = None
    ended: dict[str, Any] | None = None


async def answer(
    run: RunAccess,
    step: CallStep,
    outcome: dict[str, Any],
    round_: int,
    scope: dict[str, Any] | None = None,
) -> Answered:
    """The answer to question ``round_`` of ``step``'s agent (``outcome``);
    ``scope``: what its expression reads besides the run's (a map's item)."""
    asked = step.questions or ASKED_OF_USER
    if outcome.get("asks") == "auth_required":  # `outcomes.asking`, `agent_tasks.ASKS`
        # The agent wants its user to sign in with it (its words may carry a
        # link to its authorization server): only the user can, never a
        # reviewer or an expression on their behalf.
        asked = Questions(to="fail" if asked.to == "fail" else "user")
    if asked.answer is not None:
        chosen = await DBOS.run_step_async(
            {"name": f"expression answer {step.id} {round_}"},
            _by_expression,
            run,
            step.id,
            asked.answer,
            outcome,
            round_,
            scope,
        )
        if chosen.get("error"):
            return Answered(ended=failed(f"questions.answer: {chosen['error']}"))
        if chosen.get("reply"):
            return Answered(reply=chosen["reply"])
    if asked.to == "fail":
        return Answered(ended=failed(f"{outcome['error']} (questions.to: fail)"))
    if asked.to == "reviewer":
        return await _by_reviewer(run, step, outcome, round_)
    reply = await questions.wait(run, step.id, outcome, round_)
    if reply is None:
        return Answered(ended=questions.unanswered(outcome))
    return Answered(reply=parts_of(reply))


def parts_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What of an answer goes to the agent: its text and data, where given."""
    return {k: answer[k] for k in ("text", "data") if answer.get(k) is not None}


def as_reply(value: Any) -> dict[str, Any] | None:
    """An expression's value as an answer: None when it gives none (null, an
    empty or blank string, an empty object or list). Raises `ValueError` for
    a value that is neither words nor an object (a number, a bool, a list)."""
    if value is None or value == [] or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, dict):
        return {"data": value} if value else None
    raise ValueError(f"gave {json.dumps(value)[:200]}: an answer is a string or an object")


def question_step(step: CallStep, round_: int, outcome: dict[str, Any], key: str) -> CheckpointStep:
    """The checkpoint a question put to a reviewer becomes."""
    ident = f"{step.id}:question{round_}.{key}"
    if len(ident) > 64:
        ident = f"{shortened(step.id)}:question{round_}.{key}"
    said = outcome.get("text") or "(no words; see its data)"
    prompt = (
        f"Step {step.id}: {outcome.get('agent')} asks: {said}"[:1900]
        + " -- approve with your answer, or reject to end the run."
    )
    return CheckpointStep.model_construct(
        id=ident,
        checkpoint=Checkpoint(prompt=prompt, timeout_seconds=questions.QUESTION_TIMEOUT_SECONDS),
    )


async def _by_reviewer(
    run: RunAccess, step: CallStep, outcome: dict[str, Any], round_: int
) -> Answered:
    key = await DBOS.run_step_async(
        {"name": f"question key {step.id} {round_}"}, secrets.token_hex, 3
    )
    ask = question_step(step, round_, outcome, key)
    shown = {**questions.question_of(outcome), "round": round_}
    decided = await checkpoints.wait(run, ask, question=shown)
    if decided["state"] != "completed" or not (decided.get("output") or {}).get("approved"):
        return Answered(ended=decided)  # rejected, withdrawn, or no decision in time
    given = await DBOS.run_step_async(
        {"name": f"reviewer answer {step.id} {round_}"},
        _reviewers_answer,
        run,
        checkpoints.approval_id(run.run_id, ask.id),
    )
    if not given:
        return Answered(ended=failed(f"{ask.id}: approved without an answer"))
    return Answered(reply=given)


async def _reviewers_answer(run: RunAccess, approval_id: str) -> dict[str, Any] | None:
    stored = await run.rt.approvals.result(approval_id)
    given = (stored or {}).get("answer")
    return (parts_of(given) or None) if isinstance(given, dict) else None


async def _by_expression(
    run: RunAccess,
    step_id: str,
    expression: str,
    outcome: dict[str, Any],
    round_: int,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    question = {**questions.question_of(outcome), "round": round_}
    try:
        reply = as_reply(evaluate(expression, {**run.ctx, **(scope or {}), "question": question}))
    except Exception as exc:
        return {"error": str(exc)[:500]}
    if reply is not None:
        info = run.info
        said = f"run {run.run_id}: answer {round_} to {outcome.get('agent')}"
        owner = Owner(info["owner_subject"], info["owner_issuer"])
        await questions.audit_answer(
            run.rt, info, step_id, owner, None, f"{said} by the flow's questions.answer"
        )
    return {"reply": reply}

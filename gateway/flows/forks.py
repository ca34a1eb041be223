"""Forking a run (time travel): a new run from a chosen step of an ended one.

The fork is DBOS Transact's own (`DBOS.fork_workflow`): a new workflow whose
operations before a given position are copies of the origin's, so replaying
them returns what the origin recorded -- nothing before the chosen step is
sent again. What this module adds is the flow's view of that:

* **Which position.** DBOS counts operations (``function_id``); a flow has
  steps. Every operation a step records is named after it ("call quote",
  "open approve", "call quote, retry", "call lookup[3]" for a map's item,
  "call branch_a" for a parallel branch, "call draft#2" for a repeat's
  round): the fork starts at the first
  operation of the chosen step, or of any step after it, or at the run's
  "finish" -- whichever the origin recorded first (`start_position`). An
  operation named otherwise (``DBOS.recv``, ``DBOS.sleep``) belongs to the step
  before it.
* **Which run.** The copied operations include the origin's "begin", which
  read the origin's run. The fork's workflow tells the two apart
  (`gateway.flows.runner`): it walks the steps before the chosen one as the
  origin did -- the origin's flow version, input and run -- so it asks DBOS
  for exactly the operations it copied, then goes on from the chosen step
  with its own (edited) input and flow version.
* **What it may start from.** An ended run (a run still going would race its
  fork), a step of the flow's top level that the origin reached (a route that
  went past it, or an end before it, leaves nothing to go on from), and a flow
  version in which every step before the chosen one is one the origin had.
* **The record.** The fork's run says ``forked_from`` and ``fork_step``; the
  origin's records of the steps before it are copied to the fork, marked
  ``reused_from`` and without usage (the fork spent nothing on them).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapters.trace_context import new_trace_id
from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner
from gateway.flows.costs import BudgetSpent
from gateway.flows.definition import FlowDocument, ParallelStep, RepeatStep
from gateway.flows.models import StepView
from gateway.flows.store import TERMINAL_RUN_STATES

if TYPE_CHECKING:
    from gateway.flows.engine import FlowEngine
    from gateway.flows.runtime import FlowRuntime
    from gateway.flows.service import FlowService

logger = logging.getLogger(__name__)

# How each recorded operation of a step is named (`gateway.flows.checkpoints`,
# `consents`, `questions`, `reviews`, `fanout`, `waits`, `task_waits`): the
# words, then the step's id. Longest first: "approval key" before "approval".
_VERBS = (
    "question clock",
    "consent clock",
    "await consent",
    "approval key",
    "answered",
    "consented",
    "expire",
    "waited",
    "check",
    "close",
    "reset",
    "call",
    "look",
    "open",
    "wait",
    "ask",
)
# "lookup[3]" (a map's item), "pay:approval1.ab12cd" (a held call's review),
# "draft#2" (a repeat's round, `gateway.flows.loops`).
_ID_END = re.compile(r"[\[:#]")
_REVIEW = re.compile(r"_review\d+$")
FINISH = "finish"
BEGIN = "begin"


class ForkRefused(Exception):
    """The run cannot be forked from that step (409, with the reason)."""


@dataclass(frozen=True)
class Fork:
    origin: str
    step: str
    # DBOS's position of the first operation the fork runs itself.
    position: int
    # The origin's step records the fork takes over (the steps before ``step``).
    reused: tuple[str, ...]


def _shortened(step_id: str) -> str:
    """A long step id as a held call's review names it (`reviews.approval_step`)."""
    digest = hashlib.sha256(step_id.encode()).hexdigest()[:8]
    return f"{step_id[:30]}~{digest}"


def step_indexes(document: FlowDocument) -> dict[str, int]:
    """Each name an operation or a step record may carry -> the index of its
    top-level step: the step's id, a parallel branch's, a shortened id."""
    found: dict[str, int] = {}
    for index, step in enumerate(document.steps):
        inner = list(step.repeat.steps) if isinstance(step, RepeatStep) else []
        for each in [step, *inner]:
            names = [each.id]
            if isinstance(each, ParallelStep):
                names += [branch.id for branch in each.parallel.branches]
            for name in names:
                found[name] = index
                found[_shortened(name)] = index
    return found


def _index_of(name: str, indexes: Mapping[str, int]) -> int | None:
    base = _ID_END.split(name, maxsplit=1)[0]
    # "check_review2": a failed step's review (`reviews.review_step`).
    return indexes.get(base, indexes.get(_REVIEW.sub("", base)))


def owner_of(operation: str, indexes: Mapping[str, int]) -> int | None:
    """The index of the top-level step a recorded operation belongs to, or
    None (begin, finish, DBOS's own: recv, sleep)."""
    for verb in _VERBS:
        if operation.startswith(verb + " "):
            token = re.split(r"[ ,]", operation[len(verb) + 1 :], maxsplit=1)[0]
            return _index_of(token, indexes)
    return None


def start_position(
    operations: Iterable[Mapping[str, Any]], document: FlowDocument, step_id: str
) -> int | None:
    """DBOS's position (``function_id``) of the origin's first operation of
    ``step_id`` or a later step, or of its finish; None if it has neither."""
    indexes = step_indexes(document)
    chosen = indexes[step_id]
    for operation in sorted(operations, key=lambda o: int(o["function_id"])):
        name = str(operation["function_name"])
        owner = owner_of(name, indexes)
        if name == FINISH or (owner is not None and owner >= chosen):
            return int(operation["function_id"])
    return None


def reused_records(steps: Iterable[StepView], document: FlowDocument, step_id: str) -> list[str]:
    """The origin's step records of the steps before ``step_id`` (their
    branches', items' and reviews' too)."""
    indexes = step_indexes(document)
    chosen = indexes[step_id]
    kept = []
    for record in steps:
        index = _index_of(record.parent or record.id, indexes)
        if index is not None and index < chosen:
            kept.append(record.id)
    return kept


def plan(
    origin: Mapping[str, Any],
    steps: list[StepView],
    origin_document: FlowDocument,
    chosen: FlowDocument,
    chosen_version: int,
    step_id: str,
    operations: Sequence[Mapping[str, Any]],
) -> Fork:
    """The fork of ``origin`` (its row, step records, flow document and DBOS
    operations) from ``step_id`` under the ``chosen`` flow version, or
    `ForkRefused` saying why not."""
    run_id = str(origin["id"])
    top = [step.id for step in origin_document.steps]
    if step_id not in top:
        raise ForkRefused(
            f"step {step_id} is not a step of flow {origin['flow_id']} version "
            f"{origin['flow_version']} (a run is forked from a step of the flow's top level)"
        )
    if step_id not in [step.id for step in chosen.steps]:
        raise ForkRefused(f"version {chosen_version} of the flow has no step {step_id}")
    records = {record.id: record for record in steps}
    reached = records.get(step_id)
    if reached is None:
        raise ForkRefused(f"run {run_id} never reached step {step_id}")
    if reached.state == "skipped" and (reached.error or "").startswith("route "):
        raise ForkRefused(f"in run {run_id}, {reached.error} past step {step_id}")
    before = set(top[: top.index(step_id)])
    for step in chosen.steps:
        if step.id == step_id:
            break
        if step.id not in before:
            raise ForkRefused(
                f"step {step.id} comes before {step_id} in version {chosen_version} "
                f"but not in the version run {run_id} ran; fork from an earlier step"
            )
    begun = next((o for o in operations if str(o["function_name"]) == BEGIN), None)
    if begun is None:
        raise ForkRefused(f"the engine no longer keeps run {run_id}'s steps")
    _chained(origin, begun.get("output"), origin_document, top, step_id)
    position = start_position(operations, origin_document, step_id)
    if position is None:
        raise ForkRefused(f"run {run_id} has no recorded step at or after {step_id}")
    reused = reused_records(steps, origin_document, step_id)
    return Fork(origin=run_id, step=step_id, position=position, reused=tuple(reused))


def _chained(
    origin: Mapping[str, Any],
    begun: Any,
    document: FlowDocument,
    top: list[str],
    step_id: str,
) -> None:
    """A fork of a fork replays its steps as the first run of the chain walked
    them (its recorded "begin" is that run's): from the step the origin was
    forked at on, the origin walked its own input and version -- unless they
    are the first run's, a fork from there on could not replay them."""
    first = origin.get("fork_step")
    if not origin.get("forked_from") or first not in top:
        return
    if top.index(step_id) <= top.index(str(first)):
        return
    root = begun if isinstance(begun, Mapping) else {}
    same = (root.get("run") or {}).get("input") == origin["input"]
    try:
        same = same and FlowDocument.model_validate(root.get("document")) == document
    except ValueError:
        same = False
    if not same:
        raise ForkRefused(
            f"run {origin['id']} is a fork that went on from step {first} with its own "
            f"input or flow version: fork it from {first} or an earlier step, or fork "
            f"run {origin['forked_from']}"
        )


async def fork_as_user(
    service: FlowService,
    flow_id: str,
    run_id: str,
    caller: Caller,
    step_id: str,
    run_input: dict[str, Any] | None = None,
    version: int | None = None,
) -> str:
    """Fork the caller's own run ``run_id`` from ``step_id``: admitted as a
    start of the flow is (the policy decides, the budget counts), audited as
    ``flow.fork`` naming the origin. Only the run's user forks it -- anyone
    else, an admin too, finds no such run (`RunNotFound`): the fork acts with
    the caller's rights on outputs the origin's user's rights produced."""
    rt = service.rt
    origin = await service.owned(flow_id, run_id, Owner(caller.subject, caller.issuer))
    if origin["state"] not in TERMINAL_RUN_STATES:
        raise ForkRefused(f"run {run_id} is {origin['state']}: cancel it, or wait for its end")
    version = version if version is not None else int(origin["flow_version"])
    origin_document = FlowDocument.model_validate(
        await rt.store.version(flow_id, int(origin["flow_version"]))
    )
    chosen = FlowDocument.model_validate(await rt.store.version(flow_id, version))
    found = await service.view(run_id)
    operations = await service.engine.steps(run_id)
    fork = plan(origin, found.steps, origin_document, chosen, version, step_id, operations)
    trace_id = new_trace_id()
    grant = await rt.delegations.admit(
        caller, flow_id, event="flow.fork", trace_id=trace_id, action="run"
    )
    try:
        forked = await service.start(
            flow_id,
            run_input if run_input is not None else dict(origin["input"]),
            caller=caller,
            granted=grant.decision.granted,
            trace_id=trace_id,
            version=version,
            fields={"forked_from": fork.origin, "fork_step": fork.step},
            launch=lambda run: begin(rt, service.engine, run, fork),
        )
    except BudgetSpent as spent:
        await rt.delegations.record(grant, "flow.fork", "budget_spent", str(spent))
        raise
    said = f"run {forked} forked from run {run_id} at step {step_id} (version {version})"
    await rt.delegations.record(grant, "flow.fork", "ok", said)
    return forked


async def begin(rt: FlowRuntime, engine: FlowEngine, run: dict[str, Any], fork: Fork) -> None:
    """The fork's run row is written: take over the origin's records of the
    steps before the fork's, and have DBOS fork the origin's workflow."""
    run_id = str(run["id"])
    # Working before the workflow can start: an ended run is never set back.
    await rt.publish(run, "working", f"forked from run {fork.origin} at step {fork.step}")
    try:
        await rt.store.reuse_steps(fork.origin, run_id, fork.reused)
        await engine.fork(fork.origin, run_id, fork.position)
    except Exception as exc:
        logger.exception("forking run %s from %s failed", fork.origin, run_id)
        await rt.publish(run, "failed", f"the fork failed: {exc}"[:2000])
        raise

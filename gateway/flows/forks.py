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
  went past it, or an end before it, leaves nothing to go on from) and not
  inside a route's loop after its first step (the records before it would
  include later rounds of the steps before it), and a flow
  version in which every step before the chosen one is one the origin had.
* **The record.** The fork's run says ``forked_from`` and ``fork_step``; the
  origin's records of the steps before it are copied to the fork, marked
  ``reused_from`` and without usage (the fork spent nothing on them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner
from gateway.flows import back_routes
from gateway.flows.definition import FlowDocument
from gateway.flows.fork_positions import (
    BEGIN,
    reused_records,
    start_position,
    step_indexes,
    unowned,
)
from gateway.flows.models import StepView
from gateway.flows.store import TERMINAL_RUN_STATES

if TYPE_CHECKING:
    from gateway.flows.engine import FlowEngine
    from gateway.flows.runtime import FlowRuntime
    from gateway.flows.service import FlowService

logger = logging.getLogger(__name__)


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
    operations, "begin" with its output) from ``step_id`` under the
    ``chosen`` flow version, or `ForkRefused` saying why not."""
    run_id = str(origin["id"])
    begun = next((o for o in operations if str(o["function_name"]) == BEGIN), None)
    recorded = (begun or {}).get("output")
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("document"), Mapping):
        raise ForkRefused(f"the engine no longer keeps run {run_id}'s steps")
    # What the fork's replay walks: the document its copied "begin" holds --
    # the first run's of a chain of forks (`gateway.flows.runner`).
    replayed = FlowDocument.model_validate(recorded["document"])
    top = [step.id for step in replayed.steps]
    if step_id not in top or step_id not in [s.id for s in origin_document.steps]:
        raise ForkRefused(
            f"step {step_id} is not a step of flow {origin['flow_id']} version "
            f"{origin['flow_version']} (a run is forked from a step of the flow's top level)"
        )
    ahead = [step.id for step in chosen.steps]
    if step_id not in ahead:
        raise ForkRefused(f"version {chosen_version} of the flow has no step {step_id}")
    records = {record.id: record for record in steps}
    loop = back_routes.inside(replayed, step_id)
    if loop is not None:
        first = replayed.steps[loop.first].id
        raise ForkRefused(
            f"step {step_id} is inside the loop of route {loop.route.id} (from step {first}): "
            f"fork from {first}, or from a step after the route"
        )
    reached = records.get(step_id)
    if reached is None:
        raise ForkRefused(f"run {run_id} never reached step {step_id}")
    if reached.state == "skipped" and (reached.error or "").startswith("route "):
        raise ForkRefused(f"in run {run_id}, {reached.error} past step {step_id}")
    replayed_at = step_indexes(replayed)
    _same_steps_before(replayed, chosen, chosen_version, step_id, run_id)
    _redaction(origin, [origin_document, replayed], chosen, chosen_version)
    _chained(origin, recorded, origin_document, step_id)
    position = start_position(operations, replayed_at, step_id)
    if position is None:
        # Nothing recorded at or after the step (a run cancelled in it):
        # every operation recorded is the steps' before it.
        position = 1 + max(int(o["function_id"]) for o in operations)
    copied = [o for o in operations if int(o["function_id"]) < position]
    unknown = unowned(copied, replayed_at)
    if unknown:
        raise ForkRefused(
            f"run {run_id} recorded an operation this gateway cannot place ({unknown[0]!r}); "
            "it is not forked"
        )
    reused = reused_records(steps, replayed_at, step_id)
    return Fork(origin=run_id, step=step_id, position=position, reused=tuple(reused))


def _same_steps_before(
    replayed: FlowDocument,
    chosen: FlowDocument,
    chosen_version: int,
    step_id: str,
    run_id: str,
) -> None:
    """`ForkRefused` unless the steps before ``step_id`` in the ``chosen``
    version are steps before it in the version run, and no record reused
    carries a name a step from the fork's on carries too."""
    top = [step.id for step in replayed.steps]
    ahead = [step.id for step in chosen.steps]
    before = set(top[: top.index(step_id)])
    cut = ahead.index(step_id)
    for step in ahead[:cut]:
        if step not in before:
            raise ForkRefused(
                f"step {step} comes before {step_id} in version {chosen_version} "
                f"but not in the version run {run_id} ran; fork from an earlier step"
            )
    # Every name a reused record may carry (a branch's, a block step's) that a
    # step from the fork's on carries too: run again, it would find the copy.
    fork_at = top.index(step_id)
    replayed_at = step_indexes(replayed)
    reused_names = {n for n, at in replayed_at.items() if at < fork_at}
    going_on = {n for n, at in step_indexes(chosen).items() if at >= cut}
    moved = sorted(reused_names & going_on)
    if moved:
        raise ForkRefused(
            f"step {moved[0]} comes after {step_id} in version {chosen_version} but "
            f"before it in the version run {run_id} ran; fork from an earlier step"
        )


def _redaction(
    origin: Mapping[str, Any],
    documents: list[FlowDocument],
    chosen: FlowDocument,
    chosen_version: int,
) -> None:
    """No fork shows what its origin's records may not: not once they were
    redacted at rest (the input and outputs it would reuse are gone), nor
    under a version that redacts less."""
    redacted = {key.lower() for document in documents for key in document.redact}
    if redacted and origin.get("redacted_at") is not None:
        raise ForkRefused(
            f"run {origin['id']}'s record was redacted at rest: what a fork would reuse is gone"
        )
    missing = redacted - {key.lower() for key in chosen.redact}
    if missing:
        raise ForkRefused(
            f"version {chosen_version} does not redact {sorted(missing)[0]!r}, which run "
            f"{origin['id']}'s version does: its records would show in the fork's"
        )


def _chained(
    origin: Mapping[str, Any], recorded: Mapping[str, Any], document: FlowDocument, step_id: str
) -> None:
    """A fork of a fork replays its steps as the first run of the chain walked
    them (its recorded "begin" is that run's): from the step the origin was
    forked at on, the origin walked its own input and version -- unless they
    are the first run's, a fork from there on could not replay them."""
    first = origin.get("fork_step")
    top = [step.id for step in document.steps]
    if not origin.get("forked_from") or first not in top:
        return
    if top.index(step_id) <= top.index(str(first)):
        return
    same = (recorded.get("run") or {}).get("input") == origin["input"]
    try:
        same = same and FlowDocument.model_validate(recorded.get("document")) == document
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
    ran = int(origin["flow_version"])
    latest = (await rt.store.get(flow_id)).version
    version = version if version is not None else latest
    if version < ran:
        raise ForkRefused(f"run {run_id} ran version {ran}: a fork runs it or a newer one")
    if version != latest and run_input is not None and not _alike(run_input, origin["input"]):
        # Controls an admin added since (a checkpoint, say) hold for new input.
        raise ForkRefused(f"a fork with new input runs the flow's current version, {latest}")
    origin_document = FlowDocument.model_validate(await rt.store.version(flow_id, ran))
    chosen = FlowDocument.model_validate(await rt.store.version(flow_id, version))
    found = await service.view(run_id)
    operations = await service.engine.operations(run_id)
    fork = plan(origin, found.steps, origin_document, chosen, version, step_id, operations)
    fresh = run_input if run_input is not None else dict(origin["input"])
    return await service.start_admitted(
        flow_id,
        caller,
        lambda: fresh,
        event="flow.fork",
        said=lambda forked: (
            f"run {forked} forked from run {run_id} at step {step_id} (version {version})"
        ),
        version=version,
        fields={"forked_from": fork.origin, "fork_step": fork.step},
        launch=lambda run: begin(rt, service.engine, run, fork),
    )


def _alike(one: Any, other: Any) -> bool:
    """The same JSON (``true`` is not ``1``, as Python's ``==`` would say)."""
    return json.dumps(one, sort_keys=True) == json.dumps(other, sort_keys=True)


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

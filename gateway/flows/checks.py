"""What registration checks beyond the document's schema: every problem named
with its step and its field.

* step ids are unique (branches included);
* every expression compiles, reads only ``input``, ``steps`` and ``run``, and
  names only steps that have run before it (earlier steps; not a sibling
  branch, not itself, not a later step);
* a route goes to a later step or ``end`` (not into a repeat's block), or
  back to an earlier one with a ``max`` (`gateway.flows.back_routes`: what
  its loop may hold), and only its last case may omit ``when``; a quorum is
  at most the number of branches;
* a repeat's block steps read the steps before the repeat and those before
  them in the block; its ``until`` reads the whole block;
* a parallel step with ``on_error: checkpoint`` has an id of at most 52
  characters: its reviews are recorded as ``<id>_review<n>`` (a call's and a
  branch's id the schema limits so; a map's 56 leaves room already);
* a map's call expressions may also read ``item`` and ``index``;
* the agent a ``wait`` waits on a task of exists (its ``states`` are A2A task
  states: the schema says);
* each call's target -- a call's, its fallback's, a map's per item -- exists
  and takes what the mapping produces, retries go only to idempotent targets,
  and flows call in no cycle: `gateway.flows.target_checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.flows import back_routes, lane_checks, target_checks
from gateway.flows.definition import (
    END,
    REVIEWED_STEP_ID,
    CallStep,
    CheckpointStep,
    FlowDocument,
    Lane,
    MapStep,
    ParallelStep,
    Quorum,
    RepeatStep,
    RouteStep,
    WaitStep,
)
from gateway.flows.expressions import ROOTS, ExpressionInvalid, references
from gateway.flows.placement import Placed, a_round_before, before, lane_end, placed, until_of
from gateway.flows.target_checks import Catalog, Problem, problem

# What a map's per-item expressions read besides the usual roots.
MAP_ROOTS = frozenset({"item", "index"})
# What `questions.answer` reads besides them: the agent's question.
QUESTION_ROOTS = frozenset({"question"})


async def check(document: FlowDocument, catalog: Catalog) -> list[Problem]:
    steps = placed(document)
    position, problems = _positions(steps)
    known_shapes: dict[str, Any] = {"input": document.input}
    for where in steps:
        problems += _expressions(where, position)
        step = where.step
        if isinstance(step, RouteStep):
            problems += _route(step, where, position)
            if where.lane is not None:
                problems += lane_checks.route(step, where, position)
        elif isinstance(step, RepeatStep) and where.parent is None:
            field = f"{where.path}.repeat.until"
            problems += _refs(step.id, field, step.repeat.until, until_of(where), position)
        elif isinstance(step, ParallelStep):
            problems += _parallel(step, where)
        elif isinstance(step, CallStep):
            if where.lane is not None:
                problems += lane_checks.call(step, where)
            problems += await target_checks.call(step, where, catalog, known_shapes)
            if step.fallback is not None:
                problems += await target_checks.fallback(step, where, catalog, known_shapes)
        elif isinstance(step, MapStep) and step.map.call is not None:
            problems += await target_checks.call(
                target_checks.as_item_call(step, step.id), where, catalog, {}, ".map"
            )
        elif isinstance(step, MapStep):
            problems += lane_checks.item_ids(step, where)
        elif isinstance(step, WaitStep) and step.wait.task is not None:
            agent = step.wait.task.agent
            if await catalog.agent(agent) is None:
                problems.append(
                    problem(step.id, f"{where.path}.wait.task.agent", f"no agent {agent!r}")
                )
    problems += back_routes.check(document)
    if document.output is not None:
        problems += _refs(None, "output", document.output, None, position, final=True)
    problems += await target_checks.cycles(document, catalog)
    return problems


def _positions(steps: list[Placed]) -> tuple[dict[str, Placed], list[Problem]]:
    """Each step id's place, and a problem for each id used twice."""
    position: dict[str, Placed] = {}
    problems: list[Problem] = []
    for where in steps:
        if where.step.id in position:
            problems.append(problem(where.step.id, f"{where.path}.id", "a step id is used twice"))
        else:
            position[where.step.id] = where
    return position, problems


def _parallel(step: ParallelStep, where: Placed) -> list[Problem]:
    """A reviewed parallel step's id leaves room for its reviews' ids; a
    quorum is at most the number of branches."""
    problems: list[Problem] = []
    if step.on_error == "checkpoint" and len(step.id) > REVIEWED_STEP_ID:
        problems.append(
            problem(
                step.id,
                f"{where.path}.id",
                f"with on_error: checkpoint, a step id is at most {REVIEWED_STEP_ID} "
                "characters (its reviews are recorded as <id>_review<n>)",
            )
        )
    join = step.parallel.join
    if isinstance(join, Quorum) and join.quorum > len(step.parallel.branches):
        problems.append(
            problem(
                step.id,
                f"{where.path}.parallel.join.quorum",
                f"a quorum of {join.quorum} out of {len(step.parallel.branches)} branches",
            )
        )
    return problems


def _expressions(where: Placed, position: Mapping[str, Placed]) -> list[Problem]:
    step, path = where.step, where.path
    found: list[tuple[str, str | None]] = [("when", step.when)]
    if isinstance(step, CallStep):
        found += [("input", step.input), ("message", step.message)]
    elif isinstance(step, RouteStep):
        found += [(f"route[{i}].when", case.when) for i, case in enumerate(step.route)]
    elif isinstance(step, CheckpointStep):
        found.append(("checkpoint.show", step.checkpoint.show))
    elif isinstance(step, MapStep):
        found.append(("map.over", step.map.over))
    elif isinstance(step, WaitStep) and step.wait.task is not None:
        found.append(("wait.task.id", step.wait.task.id))
    elif isinstance(step, WaitStep):
        found.append(("wait.key", step.wait.key))
    # A map item's step reads the item and its index too.
    item = MAP_ROOTS if where.in_item else frozenset()
    problems: list[Problem] = []
    for field, expression in found:
        if expression is not None:
            problems += _refs(step.id, f"{path}.{field}", expression, where, position, extra=item)
    if isinstance(step, Lane | MapStep):  # a sequence's output: read after its steps
        output, field = (
            (step.output, "output") if isinstance(step, Lane) else (step.map.output, "map.output")
        )
        if output is not None:
            end = lane_end(where)
            roots = MAP_ROOTS if end.in_item else frozenset()
            problems += _refs(step.id, f"{path}.{field}", output, end, position, extra=roots)
    if isinstance(step, WaitStep) and step.wait.key is not None:
        problems += _key_not_chosen(step.id, f"{path}.wait.key", step.wait.key)
    if isinstance(step, CallStep) and step.questions and step.questions.answer:
        answer = step.questions.answer
        problems += _refs(
            step.id,
            f"{path}.questions.answer",
            answer,
            where,
            position,
            extra=QUESTION_ROOTS | item,
        )
    if isinstance(step, MapStep):
        asked = step.map.questions.answer if step.map.questions else None
        for field, expression, roots in (
            ("map.input", step.map.input, MAP_ROOTS),
            ("map.message", step.map.message, MAP_ROOTS),
            ("map.questions.answer", asked, MAP_ROOTS | QUESTION_ROOTS),
        ):
            if expression is not None:
                problems += _refs(
                    step.id, f"{path}.{field}", expression, where, position, extra=roots
                )
    return problems


def _key_not_chosen(step_id: str, field: str, key: str) -> list[Problem]:
    """A key a signed webhook finds the run by must not be one whoever starts
    the run chooses: read from its input, another user's order id would
    bring that user's event (their payment) to this run."""
    try:
        roots = {ref.root for ref in references(key)}
    except ExpressionInvalid:
        return []  # said by _refs
    if "input" not in roots:
        return []
    said = "a key read from the run's input is chosen by whoever starts the run: read it "
    said += "from an earlier step's output (an id the agent gave) or run.id"
    return [problem(step_id, field, said)]


def _refs(
    step_id: str | None,
    field: str,
    expression: str,
    where: Placed | None,
    position: Mapping[str, Placed],
    *,
    final: bool = False,
    extra: frozenset[str] = frozenset(),
) -> list[Problem]:
    try:
        refs = references(expression)
    except ExpressionInvalid as exc:
        return [problem(step_id, field, f"not a JMESPath expression: {exc}")]
    problems: list[Problem] = []
    for ref in refs:
        if ref.root in extra:
            continue
        if ref.root not in ROOTS:
            also = "".join(f", {root}" for root in sorted(extra))
            problems.append(
                problem(
                    step_id,
                    field,
                    f"{ref.root!r} is not known here: expressions read input, steps.<id>{also} "
                    "and run",
                )
            )
        elif ref.step is not None:
            earlier = position.get(ref.step)
            if earlier is None:
                problems.append(problem(step_id, field, f"no step {ref.step!r} in this flow"))
            elif (outside := lane_checks.read_outside_item(earlier, where)) is not None:
                problems.append(problem(step_id, field, outside))
            elif (
                not final
                and where is not None
                and not before(earlier, where)
                and not a_round_before(earlier, where)
            ):
                problems.append(
                    problem(step_id, field, f"step {ref.step!r} has not run yet when this one runs")
                )
    return problems


def _route(step: RouteStep, where: Placed, position: Mapping[str, Placed]) -> list[Problem]:
    problems: list[Problem] = []
    for i, case in enumerate(step.route):
        field = f"{where.path}.route[{i}]"
        if case.when is None and i != len(step.route) - 1:
            problems.append(problem(step.id, f"{field}.when", "only the last case may omit when"))
        if case.goto == END or where.lane is not None:  # a sequence's: `lane_checks`
            continue
        target = position.get(case.goto)
        if target is None or target.parent is not None:
            problems.append(problem(step.id, f"{field}.goto", f"no step {case.goto!r} to go to"))
    # Back (to an earlier step, bounded by max): `back_routes`.
    return problems

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
* a map's call expressions may also read ``item`` and ``index``; its target,
  and a call's ``fallback``, are checked as a call's target is;
* every target exists: the agent and its skill (a skill must be named when the
  agent has several), or the MCP tool; so does the agent a ``wait`` waits on
  a task of (its ``states`` are A2A task states: the schema says);
* retries only on idempotent targets (the policy's ``idempotent``, or an MCP
  tool's ``idempotentHint``);
* contracts: when the target declares an input schema (a skill contract, an
  MCP tool's ``inputSchema``) and the mapping's shape can be known from the
  flow's input schema and earlier tools' output schemas, the mapping must
  produce every required field, no field the schema forbids, and fields of
  the declared types;
* no cycle among flows (a flow that calls itself, directly or through others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.flows import back_routes, lane_checks
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
from gateway.flows.expressions import ROOTS, ExpressionInvalid, fits, references, shape
from gateway.flows.placement import Placed, a_round_before, before, lane_end, placed, until_of


@dataclass(frozen=True)
class AgentInfo:
    skills: tuple[str, ...]
    contracts: Mapping[str, Any]
    is_flow: bool


@dataclass(frozen=True)
class ToolInfo:
    input_schema: Mapping[str, Any] | None
    output_schema: Mapping[str, Any] | None


class Catalog(Protocol):
    """What the checks look up (`gateway.flows.service`)."""

    async def agent(self, agent_id: str) -> AgentInfo | None: ...

    async def tool(self, name: str) -> ToolInfo | None: ...

    def idempotent(self, step: CallStep, tool: ToolInfo | None) -> bool: ...

    async def flow_calls(self) -> dict[str, set[str]]:
        """Every stored flow's id -> the agents its steps call."""
        ...


Problem = dict[str, Any]


def _problem(step: str | None, field: str, message: str) -> Problem:
    return {"step": step, "field": field, "message": message}


# What a map's per-item expressions read besides the usual roots.
MAP_ROOTS = frozenset({"item", "index"})
# What `questions.answer` reads besides them: the agent's question.
QUESTION_ROOTS = frozenset({"question"})


async def check(document: FlowDocument, catalog: Catalog) -> list[Problem]:
    problems: list[Problem] = []
    steps = placed(document)
    position: dict[str, Placed] = {}
    for where in steps:
        if where.step.id in position:
            problems.append(_problem(where.step.id, f"{where.path}.id", "a step id is used twice"))
        else:
            position[where.step.id] = where
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
            if step.on_error == "checkpoint" and len(step.id) > REVIEWED_STEP_ID:
                problems.append(
                    _problem(
                        step.id,
                        f"{where.path}.id",
                        f"with on_error: checkpoint, a step id is at most {REVIEWED_STEP_ID} "
                        "characters (its reviews are recorded as <id>_review<n>)",
                    )
                )
            join = step.parallel.join
            if isinstance(join, Quorum) and join.quorum > len(step.parallel.branches):
                problems.append(
                    _problem(
                        step.id,
                        f"{where.path}.parallel.join.quorum",
                        f"a quorum of {join.quorum} out of {len(step.parallel.branches)} branches",
                    )
                )
        elif isinstance(step, CallStep):
            if where.lane is not None:
                problems += lane_checks.call(step, where)
            problems += await _call(step, where, catalog, known_shapes)
            if step.fallback is not None:
                problems += await _fallback(step, where, catalog, known_shapes)
        elif isinstance(step, MapStep) and step.map.call is not None:
            problems += await _call(as_item_call(step, step.id), where, catalog, {}, ".map")
        elif isinstance(step, MapStep):
            problems += lane_checks.item_ids(step, where)
        elif isinstance(step, WaitStep) and step.wait.task is not None:
            agent = step.wait.task.agent
            if await catalog.agent(agent) is None:
                problems.append(
                    _problem(step.id, f"{where.path}.wait.task.agent", f"no agent {agent!r}")
                )
    problems += back_routes.check(document)
    if document.output is not None:
        problems += _refs(None, "output", document.output, None, position, final=True)
    problems += await _cycles(document, catalog)
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
    return [_problem(step_id, field, said)]


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
        return [_problem(step_id, field, f"not a JMESPath expression: {exc}")]
    problems: list[Problem] = []
    for ref in refs:
        if ref.root in extra:
            continue
        if ref.root not in ROOTS:
            also = "".join(f", {root}" for root in sorted(extra))
            problems.append(
                _problem(
                    step_id,
                    field,
                    f"{ref.root!r} is not known here: expressions read input, steps.<id>{also} "
                    "and run",
                )
            )
        elif ref.step is not None:
            earlier = position.get(ref.step)
            if earlier is None:
                problems.append(_problem(step_id, field, f"no step {ref.step!r} in this flow"))
            elif (outside := lane_checks.read_outside_item(earlier, where)) is not None:
                problems.append(_problem(step_id, field, outside))
            elif (
                not final
                and where is not None
                and not before(earlier, where)
                and not a_round_before(earlier, where)
            ):
                problems.append(
                    _problem(
                        step_id, field, f"step {ref.step!r} has not run yet when this one runs"
                    )
                )
    return problems


def _route(step: RouteStep, where: Placed, position: Mapping[str, Placed]) -> list[Problem]:
    problems: list[Problem] = []
    for i, case in enumerate(step.route):
        field = f"{where.path}.route[{i}]"
        if case.when is None and i != len(step.route) - 1:
            problems.append(_problem(step.id, f"{field}.when", "only the last case may omit when"))
        if case.goto == END or where.lane is not None:  # a sequence's: `lane_checks`
            continue
        target = position.get(case.goto)
        if target is None or target.parent is not None:
            problems.append(_problem(step.id, f"{field}.goto", f"no step {case.goto!r} to go to"))
    # Back (to an earlier step, bounded by max): `back_routes`.
    return problems


def as_item_call(step: MapStep, item_id: str) -> CallStep:
    """The call a map makes for one item (``item_id``: its record's id)."""
    spec = step.map
    assert spec.call is not None  # a map of calls, not of steps
    return CallStep.model_construct(
        id=item_id,
        description=None,
        when=None,
        call=spec.call,
        input=spec.input,
        message=spec.message,
        retries=spec.retries,
        timeout_seconds=spec.timeout_seconds,
        fallback=None,
        on_error="fail",
        questions=spec.questions,
    )


def as_fallback(step: CallStep) -> CallStep:
    """The call a step makes when its own failed: its fallback target, the
    same input, once (a retry needs an idempotent target, checked for the
    step's own target only)."""
    assert step.fallback is not None
    return step.model_copy(update={"call": step.fallback, "fallback": None, "retries": 0})


async def _fallback(
    step: CallStep, where: Placed, catalog: Catalog, known_shapes: dict[str, Any]
) -> list[Problem]:
    fallback = as_fallback(step)
    if fallback.call.target == step.call.target and fallback.call.skill == step.call.skill:
        return [_problem(step.id, f"{where.path}.fallback", "the fallback is the call itself")]
    problems = await _call(fallback, where, catalog, dict(known_shapes), ".fallback")
    # Named as the document has them: the target under `fallback`, the
    # input and message the step's own.
    base = f"{where.path}.fallback"
    for problem in problems:
        field = str(problem["field"])
        if field.startswith(base + ".call."):
            problem["field"] = base + "." + field[len(base + ".call.") :]
        elif field.startswith(base + "."):
            problem["field"] = where.path + field[len(base) :]
    return problems


async def _call(
    step: CallStep,
    where: Placed,
    catalog: Catalog,
    known_shapes: dict[str, Any],
    under: str = "",
) -> list[Problem]:
    """``under``: where the call sits in the step (a map's or a fallback's)."""
    target = step.call
    path = where.path + under
    schema: Mapping[str, Any] | None = None
    tool: ToolInfo | None = None
    if target.agent is not None:
        agent = await catalog.agent(target.agent)
        if target.flow is not None and (agent is None or not agent.is_flow):
            return [_problem(step.id, f"{path}.call.flow", f"no flow {target.flow!r}")]
        if agent is None:
            return [_problem(step.id, f"{path}.call.agent", f"no agent {target.agent!r}")]
        skill = target.skill
        if skill is None and len(agent.skills) != 1:
            return [
                _problem(
                    step.id,
                    f"{path}.call.skill",
                    f"agent {target.agent!r} has {len(agent.skills)} skills: name one "
                    f"({', '.join(agent.skills)})",
                )
            ]
        skill = skill or agent.skills[0]
        if skill not in agent.skills:
            return [
                _problem(
                    step.id, f"{path}.call.skill", f"agent {target.agent!r} has no skill {skill!r}"
                )
            ]
        schema = agent.contracts.get(skill)
        if schema is not None and step.input is None:
            return [
                _problem(
                    step.id,
                    f"{path}.input",
                    f"skill {skill!r} of {target.agent!r} takes data matching its contract: "
                    "give an input",
                )
            ]
    else:
        tool = await catalog.tool(str(target.tool))
        if tool is None:
            return [_problem(step.id, f"{path}.call.tool", f"no MCP tool {target.tool!r}")]
        schema = tool.input_schema
        if tool.output_schema is not None:
            known_shapes[f"steps.{step.id}.output"] = tool.output_schema
        if step.message is not None:
            return [_problem(step.id, f"{path}.message", "an MCP tool takes input, not a message")]
    problems: list[Problem] = []
    if step.retries and not catalog.idempotent(step, tool):
        problems.append(
            _problem(
                step.id,
                f"{path}.retries",
                f"{target.target} is not idempotent: a call that may have reached it is "
                "never sent again (mark it idempotent in the policy to retry)",
            )
        )
    if schema is not None and step.input is not None:
        problems += _contract(step, f"{path}.input", schema, known_shapes)
    return problems


def _contract(
    step: CallStep, field: str, wanted: Mapping[str, Any], known_shapes: Mapping[str, Any]
) -> list[Problem]:
    assert step.input is not None
    try:
        produced = shape(step.input, known_shapes)
    except ExpressionInvalid:
        return []  # reported with the expressions
    if produced is None:
        return []  # the mapping's shape is not known before a run: checked then
    if not fits(produced, wanted):
        return [
            _problem(
                step.id,
                field,
                f"the mapping produces {produced.get('type')}, the target's contract wants "
                f"{wanted.get('type')}",
            )
        ]
    have = produced.get("properties")
    want = wanted.get("properties")
    if not isinstance(have, Mapping):
        return []
    problems: list[Problem] = []
    exact = produced.get("x-exact-keys") is True
    required = [r for r in wanted.get("required") or () if isinstance(r, str)]
    have_required = set(produced.get("required") or ())
    for name in required:
        if name not in have and (exact or name not in have_required):
            problems.append(
                _problem(
                    step.id,
                    f"{field}.{name}",
                    "required by the target's contract, not produced",
                )
            )
    if isinstance(want, Mapping):
        closed = wanted.get("additionalProperties") is False
        for name, inner in have.items():
            if name not in want:
                if closed and exact:
                    problems.append(
                        _problem(
                            step.id, f"{field}.{name}", "the target's contract has no such field"
                        )
                    )
                continue
            target = want[name]
            if (
                isinstance(inner, Mapping)
                and isinstance(target, Mapping)
                and not fits(inner, target)
            ):
                problems.append(
                    _problem(
                        step.id,
                        f"{field}.{name}",
                        f"produces {inner.get('type')}, the target's contract wants "
                        f"{target.get('type')}",
                    )
                )
    return problems


def called_agents(document: FlowDocument) -> list[tuple[str | None, str, str]]:
    """Every agent (a flow is one) the document's steps may call: (step id,
    field, agent) -- a call's target, its fallback's, and a map's per item."""
    found: list[tuple[str | None, str, str]] = []
    for where in placed(document):
        step = where.step
        targets: list[tuple[str, str | None]] = []
        if isinstance(step, CallStep):
            targets.append((f"{where.path}.call.agent", step.call.agent))
            if step.fallback is not None:
                targets.append((f"{where.path}.fallback.agent", step.fallback.agent))
        elif isinstance(step, MapStep) and step.map.call is not None:
            targets.append((f"{where.path}.map.call.agent", step.map.call.agent))
        found += [(step.id, field, agent) for field, agent in targets if agent is not None]
    return found


async def _cycles(document: FlowDocument, catalog: Catalog) -> list[Problem]:
    graph = await catalog.flow_calls()
    called = called_agents(document)
    graph[document.id] = {agent for _, _, agent in called}
    # A path from any flow this one calls back to this one is a cycle.
    for step_id, field, agent in called:
        path = _path(graph, agent, document.id)
        if path is not None:
            chain = " -> ".join([document.id, *path])
            return [_problem(step_id, field, f"flows would call in a cycle: {chain}")]
    return []


def _path(graph: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    """Flows from ``start`` to ``goal`` along calls, or None."""
    seen: set[str] = set()
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, trail = stack.pop()
        if node == goal:
            return trail
        if node in seen:
            continue
        seen.add(node)
        for nxt in sorted(graph.get(node, ())):
            stack.append((nxt, [*trail, nxt]))
    return None

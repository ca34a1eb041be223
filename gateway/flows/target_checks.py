"""Each call's target, as registration checks it (`gateway.flows.checks`):

* it exists: the agent and its skill (a skill must be named when the agent
  has several), or the MCP tool; a call's ``fallback`` and a map's per-item
  call are checked as a call's target is;
* retries only on idempotent targets (the policy's ``idempotent``, or an MCP
  tool's ``idempotentHint``);
* contracts: when the target declares an input schema (a skill contract, an
  MCP tool's ``inputSchema``) and the mapping's shape can be known from the
  flow's input schema and earlier tools' output schemas, the mapping must
  produce every required field, no field the schema forbids, and fields of
  the declared types;
* no cycle among flows (a flow that calls itself, directly or through others).

Also the calls a map and a fallback make (`as_item_call`, `as_fallback`),
which the runner makes as the checks saw them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.flows.definition import CallStep, FlowDocument, MapStep
from gateway.flows.expressions import ExpressionInvalid, fits, shape
from gateway.flows.placement import Placed, placed


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


def problem(step: str | None, field: str, message: str) -> Problem:
    return {"step": step, "field": field, "message": message}


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


async def fallback(
    step: CallStep, where: Placed, catalog: Catalog, known_shapes: dict[str, Any]
) -> list[Problem]:
    other = as_fallback(step)
    if other.call.target == step.call.target and other.call.skill == step.call.skill:
        return [problem(step.id, f"{where.path}.fallback", "the fallback is the call itself")]
    problems = await call(other, where, catalog, dict(known_shapes), ".fallback")
    # Named as the document has them: the target under `fallback`, the
    # input and message the step's own.
    base = f"{where.path}.fallback"
    for found in problems:
        field = str(found["field"])
        if field.startswith(base + ".call."):
            found["field"] = base + "." + field[len(base + ".call.") :]
        elif field.startswith(base + "."):
            found["field"] = where.path + field[len(base) :]
    return problems


async def call(
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
        schema, refused = await _agent_contract(step, path, catalog)
        if refused:
            return refused
    else:
        tool = await catalog.tool(str(target.tool))
        if tool is None:
            return [problem(step.id, f"{path}.call.tool", f"no MCP tool {target.tool!r}")]
        schema = tool.input_schema
        if tool.output_schema is not None:
            known_shapes[f"steps.{step.id}.output"] = tool.output_schema
        if step.message is not None:
            return [problem(step.id, f"{path}.message", "an MCP tool takes input, not a message")]
    problems: list[Problem] = []
    if step.retries and not catalog.idempotent(step, tool):
        problems.append(
            problem(
                step.id,
                f"{path}.retries",
                f"{target.target} is not idempotent: a call that may have reached it is "
                "never sent again (mark it idempotent in the policy to retry)",
            )
        )
    if schema is not None and step.input is not None:
        problems += _contract(step, f"{path}.input", schema, known_shapes)
    return problems


async def _agent_contract(
    step: CallStep, path: str, catalog: Catalog
) -> tuple[Mapping[str, Any] | None, list[Problem]]:
    """A call of an agent's skill: the skill's contract (None: it has none),
    or the problems that make the call impossible."""
    target = step.call
    assert target.agent is not None
    agent = await catalog.agent(target.agent)
    if target.flow is not None and (agent is None or not agent.is_flow):
        return None, [problem(step.id, f"{path}.call.flow", f"no flow {target.flow!r}")]
    if agent is None:
        return None, [problem(step.id, f"{path}.call.agent", f"no agent {target.agent!r}")]
    skill = target.skill
    if skill is None and len(agent.skills) != 1:
        return None, [
            problem(
                step.id,
                f"{path}.call.skill",
                f"agent {target.agent!r} has {len(agent.skills)} skills: name one "
                f"({', '.join(agent.skills)})",
            )
        ]
    skill = skill or agent.skills[0]
    if skill not in agent.skills:
        return None, [
            problem(step.id, f"{path}.call.skill", f"agent {target.agent!r} has no skill {skill!r}")
        ]
    schema = agent.contracts.get(skill)
    if schema is not None and step.input is None:
        return None, [
            problem(
                step.id,
                f"{path}.input",
                f"skill {skill!r} of {target.agent!r} takes data matching its contract: "
                "give an input",
            )
        ]
    return schema, []


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
            problem(
                step.id,
                field,
                f"the mapping produces {produced.get('type')}, the target's contract wants "
                f"{wanted.get('type')}",
            )
        ]
    have = produced.get("properties")
    if not isinstance(have, Mapping):
        return []
    return _required(step.id, field, produced, wanted, have) + _each_field(
        step.id, field, produced, wanted, have
    )


def _required(
    step_id: str,
    field: str,
    produced: Mapping[str, Any],
    wanted: Mapping[str, Any],
    have: Mapping[str, Any],
) -> list[Problem]:
    """A field the contract requires that the mapping does not produce."""
    problems: list[Problem] = []
    exact = produced.get("x-exact-keys") is True
    required = [r for r in wanted.get("required") or () if isinstance(r, str)]
    have_required = set(produced.get("required") or ())
    for name in required:
        if name not in have and (exact or name not in have_required):
            problems.append(
                problem(
                    step_id,
                    f"{field}.{name}",
                    "required by the target's contract, not produced",
                )
            )
    return problems


def _each_field(
    step_id: str,
    field: str,
    produced: Mapping[str, Any],
    wanted: Mapping[str, Any],
    have: Mapping[str, Any],
) -> list[Problem]:
    """A produced field the contract has not (when it is closed), or of a
    type the contract's field does not take."""
    want = wanted.get("properties")
    if not isinstance(want, Mapping):
        return []
    problems: list[Problem] = []
    exact = produced.get("x-exact-keys") is True
    closed = wanted.get("additionalProperties") is False
    for name, inner in have.items():
        if name not in want:
            if closed and exact:
                problems.append(
                    problem(step_id, f"{field}.{name}", "the target's contract has no such field")
                )
            continue
        target = want[name]
        if isinstance(inner, Mapping) and isinstance(target, Mapping) and not fits(inner, target):
            problems.append(
                problem(
                    step_id,
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


async def cycles(document: FlowDocument, catalog: Catalog) -> list[Problem]:
    graph = await catalog.flow_calls()
    called = called_agents(document)
    graph[document.id] = {agent for _, _, agent in called}
    # A path from any flow this one calls back to this one is a cycle.
    for step_id, field, agent in called:
        path = _path(graph, agent, document.id)
        if path is not None:
            chain = " -> ".join([document.id, *path])
            return [problem(step_id, field, f"flows would call in a cycle: {chain}")]
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

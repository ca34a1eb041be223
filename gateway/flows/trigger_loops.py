"""Triggers that would loop: a flow whose runs, through the agents and flows
they call and the triggers that fire when those tasks and runs end, start
the same flow again -- and again, since each run's end starts the next. The
actor chain cannot stop it at run time (a triggered run's chain is the
task's user's, not the task's: `gateway.flows.triggers`), so registration
refuses it.

The graph is over flows, an edge F -> G meaning "a run of F may start a run
of G":

* F calls G (a step, a branch, a map or a fallback naming the flow G): a call;
* G has a task trigger on F, a flow (any run of F that ends): a trigger;
* G has a task trigger on an agent X that is not a flow, for a skill F calls X
  for (or any): the task F's step makes there ends -- a trigger, through X.

A cycle of calls alone is `checks`' ("no cycle among flows"); a cycle with a
trigger in it through the flow being registered is refused here, on the
field of that flow which closes it: the trigger, or, when the loop goes
through other flows' triggers only, the call. States are not looked at: a
loop that only fires on failures loops all the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.flows.cards import SKILL
from gateway.flows.definition import FlowDocument
from gateway.flows.target_checks import Problem

# (kind, via): "call" or "trigger", and the agent the trigger fired on when it
# is not a flow (shown in the message: "follow-up -> sales -> follow-up").
Edge = tuple[str, str | None]
Graph = dict[str, dict[str, Edge]]


def trigger_loops(document: FlowDocument, stored: Mapping[str, Mapping[str, Any]]) -> list[Problem]:
    """The loops ``document`` would close among the ``stored`` flows (id ->
    the current version's document; ``document`` replaces its own)."""
    raw = document.model_dump(mode="json", exclude_none=True, by_alias=True)
    flows = {**stored, document.id: raw}
    calls = {
        flow: list(_calls(doc.get("steps") or [], "steps", None)) for flow, doc in flows.items()
    }
    graph = _graph(flows, calls)
    me = document.id
    problems: list[Problem] = []
    for i, agent, skill in _task_triggers(raw):
        if agent == me:
            continue  # refused as "started by its own runs" (`trigger_checks`)
        for source in _sources(agent, skill, flows, calls):
            path = _path(graph, me, source, need_trigger=False)
            if path is not None:
                via = None if agent in flows else agent
                said = _render([*path, *([via] if via else []), me])
                problems.append(_problem(None, f"triggers[{i}].task.agent", said))
                break
    if problems:
        return problems
    for agent, skill, field, step in calls[me]:
        for first, edge in _out_of_call(agent, skill, me, flows, graph):
            path = _path(graph, first, me, need_trigger=edge[0] != "trigger")
            if path is not None:
                hops = [me, *([edge[1]] if edge[1] else []), *path]
                problems.append(_problem(step, field, _render(hops)))
                break
    return problems


def _problem(step: str | None, field: str, loop: str) -> Problem:
    message = f"a loop: each run would start the next for ever ({loop})"
    return {"step": step, "field": field, "message": message}


def _render(hops: list[str]) -> str:
    return " -> ".join(hops)


def _calls(
    node: Any, path: str, step: str | None
) -> Iterator[tuple[str, str | None, str, str | None]]:
    """Every agent the steps call: (agent, skill, field, step id). Any step kind
    that holds a ``call`` or a ``fallback`` naming an agent counts."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _calls(item, f"{path}[{i}]", step)
        return
    if not isinstance(node, Mapping):
        return
    if isinstance(node.get("id"), str):
        step = node["id"]
    for key, value in node.items():
        where = f"{path}.{key}"
        if key in ("call", "fallback") and isinstance(value, Mapping):
            agent = value.get("agent")
            if isinstance(agent, str):
                skill = value.get("skill")
                yield agent, skill if isinstance(skill, str) else None, f"{where}.agent", step
        yield from _calls(value, where, step)


def _task_triggers(doc: Mapping[str, Any]) -> Iterator[tuple[int, str, str | None]]:
    for i, trigger in enumerate(doc.get("triggers") or []):
        task = trigger.get("task") if isinstance(trigger, Mapping) else None
        if isinstance(task, Mapping) and isinstance(task.get("agent"), str):
            skill = task.get("skill")
            yield i, task["agent"], skill if isinstance(skill, str) else None


def _meets(called: str | None, wanted: str | None) -> bool:
    """A call for skill ``called`` may end in a task a trigger for ``wanted``
    fires on (None: any skill; a call naming none may be for any)."""
    return wanted is None or called is None or called == wanted


def _sources(
    agent: str,
    skill: str | None,
    flows: Mapping[str, Any],
    calls: Mapping[str, list[tuple[str, str | None, str, str | None]]],
) -> list[str]:
    """The flows whose runs end in a task this trigger fires on."""
    if agent in flows:
        return [agent] if skill in (None, SKILL) else []
    return [
        f for f, made in calls.items() if any(a == agent and _meets(s, skill) for a, s, *_ in made)
    ]


def _graph(flows: Mapping[str, Mapping[str, Any]], calls: Mapping[str, list[Any]]) -> Graph:
    graph: Graph = {flow: {} for flow in flows}
    for flow, made in calls.items():
        for agent, *_ in made:
            if agent in flows:
                graph[flow].setdefault(agent, ("call", None))
    for target, doc in flows.items():
        for _, agent, skill in _task_triggers(doc):
            via = None if agent in flows else agent
            for source in _sources(agent, skill, flows, calls):
                graph[source][target] = ("trigger", via)  # a trigger outranks a call
    return graph


def _out_of_call(
    agent: str, skill: str | None, me: str, flows: Mapping[str, Mapping[str, Any]], graph: Graph
) -> Iterator[tuple[str, Edge]]:
    """Where a run of ``me`` goes on from one of its calls: the flow called, or
    the flows other than ``me`` triggered by the agent's task it makes."""
    if agent in flows:
        yield agent, ("call", None)
        return
    for target, doc in flows.items():
        if target != me and any(a == agent and _meets(skill, s) for _, a, s in _task_triggers(doc)):
            yield target, ("trigger", agent)


def _path(graph: Graph, start: str, goal: str, *, need_trigger: bool) -> list[str] | None:
    """The nodes of a shortest path from ``start`` to ``goal`` (``[start]`` if
    they are one), with a trigger edge on it when ``need_trigger``."""
    first = (start, not need_trigger)
    came: dict[tuple[str, bool], tuple[tuple[str, bool], str | None] | None] = {first: None}
    queue = deque([first])
    while queue:
        node, done = state = queue.popleft()
        if node == goal and done:
            return _unwind(came, state)
        for nxt, (kind, via) in graph.get(node, {}).items():
            step = (nxt, done or kind == "trigger")
            if step not in came:
                came[step] = (state, via)
                queue.append(step)
    return None


def _unwind(
    came: Mapping[tuple[str, bool], tuple[tuple[str, bool], str | None] | None],
    state: tuple[str, bool],
) -> list[str]:
    hops = [state[0]]
    link = came[state]
    while link is not None:
        previous, via = link
        if via:
            hops.append(via)
        hops.append(previous[0])
        link = came[previous]
    return hops[::-1]

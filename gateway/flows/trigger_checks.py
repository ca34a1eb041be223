"""What registration checks of a flow's triggers (`triggers:`): each names
an agent that exists -- not the flow itself -- and a skill it has; a webhook
names a secret the gateway has; `input` reads only `task` (a webhook's:
`event` and `webhook`); a webhook that delivers names an event a step waits
for by key, and its key reads only the delivery; and no trigger closes a loop of runs starting runs
(`gateway.flows.trigger_loops`). Problems name the trigger's field, as the
step checks name a step's (`gateway.flows.checks`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway.flows.definition import FlowDocument, WaitStep
from gateway.flows.expressions import ExpressionInvalid, references
from gateway.flows.target_checks import Catalog, Problem
from gateway.flows.trigger_definition import Deliver
from gateway.flows.trigger_loops import trigger_loops


def _problem(field: str, message: str) -> Problem:
    return {"step": None, "field": field, "message": message}


async def _task(
    document: FlowDocument, agent: str, skill: str | None, where: str, catalog: Catalog
) -> list[Problem]:
    if agent == document.id:
        return [_problem(f"{where}.task.agent", "a flow cannot be started by its own runs")]
    info = await catalog.agent(agent)
    if info is None:
        return [_problem(f"{where}.task.agent", f"no agent {agent!r}")]
    if skill is not None and info.skills and skill not in info.skills:
        return [
            _problem(
                f"{where}.task.skill",
                f"agent {agent!r} has no skill {skill!r} ({', '.join(info.skills)})",
            )
        ]
    return []


async def check_triggers(
    document: FlowDocument,
    catalog: Catalog,
    secrets: Collection[str] = (),
    flows: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Problem]:
    """``flows``: the stored flows' current documents, by id (for loops)."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, trigger in enumerate(document.triggers):
        where = f"triggers[{i}]"
        if trigger.id in seen:
            problems.append(_problem(f"{where}.id", "a trigger id is used twice"))
        seen.add(trigger.id)
        if trigger.task is not None:
            task = trigger.task
            problems += await _task(document, task.agent, task.skill, where, catalog)
        elif trigger.webhook is not None and trigger.webhook.secret not in secrets:
            problems.append(
                _problem(
                    f"{where}.webhook.secret",
                    f"no secret {trigger.webhook.secret!r} in the gateway's secrets setting",
                )
            )
        if trigger.input is not None:
            try:
                roots = {ref.root for ref in references(trigger.input)}
            except ExpressionInvalid as exc:
                problems.append(_problem(f"{where}.input", f"not a JMESPath expression: {exc}"))
                continue
            known = (
                {"task"}
                if trigger.task is not None
                else {"event", "webhook"}
                if trigger.webhook is not None
                else {"schedule"}
            )
            if roots - known:
                unknown = ", ".join(sorted(roots - known))
                reads = " and ".join(sorted(known))
                said = f"{unknown}: this trigger's input reads only {reads}"
                problems.append(_problem(f"{where}.input", said))
        if trigger.deliver is not None:
            problems += _deliver(document, trigger.deliver, where)
    return problems + trigger_loops(document, flows or {})


def _deliver(document: FlowDocument, deliver: Deliver, where: str) -> list[Problem]:
    """A delivering webhook's event is one a step waits for by key, and its
    key reads the delivery only."""
    problems: list[Problem] = []
    keyed = {
        str(step.wait.event)
        for step in document.steps
        if isinstance(step, WaitStep) and step.wait.key is not None
    }
    if deliver.event not in keyed:
        said = f"no wait step waits for event {deliver.event!r} with a key"
        problems.append(_problem(f"{where}.deliver.event", said))
    try:
        roots = {ref.root for ref in references(deliver.key)}
    except ExpressionInvalid as exc:
        return [*problems, _problem(f"{where}.deliver.key", f"not a JMESPath expression: {exc}")]
    if roots - {"event", "webhook"}:
        unknown = ", ".join(sorted(roots - {"event", "webhook"}))
        said = f"{unknown}: a delivery's key reads only event and webhook"
        problems.append(_problem(f"{where}.deliver.key", said))
    return problems

"""Where a fork starts (`gateway.flows.forks`): DBOS counts a workflow's
operations, a flow has steps. Every operation a step records is named after
it (the words below, then the step's id), so each operation is placed in its
top-level step, and the fork starts at the origin's first operation of the
chosen step or a later one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.flows import back_routes
from gateway.flows.definition import FlowDocument, ParallelStep, RepeatStep
from gateway.flows.models import StepView
from gateway.flows.step_records import shortened

# How each recorded operation of a step is named (`gateway.flows.checkpoints`,
# `consents`, `questions`, `answerers`, `reviews`, `fanout`, `waits`, `task_waits`): the
# words, then the step's id. Longest first: "approval key" before "approval".
_VERBS = (
    "expression answer",
    "reviewer answer",
    "question clock",
    "question key",
    "consent clock",
    "give up",
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


def step_indexes(document: FlowDocument) -> dict[str, int]:
    """Each name an operation or a step record may carry -> the index of its
    top-level step: the step's id, a parallel branch's, a shortened id."""
    found: dict[str, int] = {}
    looped = {
        i: loop.route.max or 1
        for loop in back_routes.loops(document)
        for i in range(loop.first, loop.last + 1)
    }
    for index, step in enumerate(document.steps):
        inner = list(step.repeat.steps) if isinstance(step, RepeatStep) else []
        rounds = range(1, step.repeat.max + 1) if isinstance(step, RepeatStep) else range(0)
        again = range(2, looped.get(index, 1) + 1)  # a route's loop's rounds
        for each in [step, *inner]:
            names = [each.id]
            if isinstance(each, ParallelStep):
                names += [branch for branch, _ in each.branch_ids()]
            for name in names:
                found[name] = index
                found[shortened(name)] = index
                # A round's id, "<id>#<round>", shortened whole when a
                # review or a question makes a record of it too long.
                if each is not step:
                    found.update((shortened(f"{name}#{r}"), index) for r in rounds)
                found.update((shortened(f"{name}#{r}"), index) for r in again)
    return found


def _index_of(name: str, indexes: Mapping[str, int]) -> int | None:
    base = _ID_END.split(name, maxsplit=1)[0]
    # "check_review2": a failed step's review (`reviews.review_step`).
    found = indexes.get(base, indexes.get(_REVIEW.sub("", base)))
    if found is None and "~" in base:
        # A shortened id not listed (a long map's item, "<id>[12]" cut to
        # its first 30 characters and a digest): the step whose names all
        # begin so, if they are one step's.
        prefix = base.split("~", 1)[0]
        owners = {at for known, at in indexes.items() if known.startswith(prefix)}
        found = owners.pop() if len(owners) == 1 else None
    return found


def owner_of(operation: str, indexes: Mapping[str, int]) -> int | None:
    """The index of the top-level step a recorded operation belongs to, or
    None (begin, finish, DBOS's own: recv, sleep)."""
    for verb in _VERBS:
        if operation.startswith(verb + " "):
            token = re.split(r"[ ,]", operation[len(verb) + 1 :], maxsplit=1)[0]
            return _index_of(token, indexes)
    return None


def start_position(
    operations: Iterable[Mapping[str, Any]], indexes: Mapping[str, int], step_id: str
) -> int | None:
    """DBOS's position (``function_id``) of the origin's first operation of
    ``step_id`` or a later step, or of its finish; None if it has neither.
    ``indexes``: the origin's document's `step_indexes`."""
    chosen = indexes[step_id]
    for operation in sorted(operations, key=lambda o: int(o["function_id"])):
        name = str(operation["function_name"])
        owner = owner_of(name, indexes)
        if name == FINISH or (owner is not None and owner >= chosen):
            return int(operation["function_id"])
    return None


def reused_records(
    steps: Iterable[StepView], indexes: Mapping[str, int], step_id: str
) -> list[str]:
    """The origin's step records of the steps before ``step_id`` (their
    branches', items' and reviews' too)."""
    chosen = indexes[step_id]
    kept = []
    for record in steps:
        index = _index_of(record.parent or record.id, indexes)
        if index is not None and index < chosen:
            kept.append(record.id)
    return kept


def unowned(operations: Iterable[Mapping[str, Any]], indexes: Mapping[str, int]) -> list[str]:
    """The names of recorded operations that belong to no step: not the run's
    own (begin, finish), nor DBOS's (recv, sleep: the step's before them)."""
    found = []
    for operation in operations:
        name = str(operation["function_name"])
        if name in (BEGIN, FINISH) or name.startswith("DBOS."):
            continue
        if owner_of(name, indexes) is None:
            found.append(name)
    return found

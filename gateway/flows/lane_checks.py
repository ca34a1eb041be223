"""Registration checks of a parallel branch's or a map item's own steps
(`gateway.flows.lanes`), beside `gateway.flows.checks`:

* a sequence's call asks no review (``on_error: checkpoint`` goes on the
  parallel step or the map);
* a route in a sequence goes on to a later step of the same sequence, or
  ``end`` (the sequence's end, not the run's); it never goes back (no
  ``max``);
* a step of a map item's sequence is read only inside that item (from
  outside, the map's output holds what each item gave);
* a map item's records are ``<map>[<index>].<id>`` (``<map>#<round>[...]``
  in a loop's later round) in a 64-character column: the map's id and the
  step's fit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.flows.definition import END, MAX_MAP_ITEMS, MAX_ROUNDS, CallStep, MapStep, RouteStep
from gateway.flows.placement import Placed

# "<map>#<round>[<index>].<id>" fits the 64-character step column.
ITEM_RECORD = 64 - len(f"#{MAX_ROUNDS}[{MAX_MAP_ITEMS - 1}].")


def _problem(step: str | None, field: str, message: str) -> dict[str, Any]:
    return {"step": step, "field": field, "message": message}


def route(step: RouteStep, where: Placed, position: Mapping[str, Placed]) -> list[dict[str, Any]]:
    """Where a route inside a sequence goes: on to a later step of it, or ``end``."""
    problems = []
    if step.max is not None:
        said = "a route in a branch's or a map item's steps goes forward only: no max"
        problems.append(_problem(step.id, f"{where.path}.max", said))
    for i, case in enumerate(step.route):
        target = position.get(case.goto)
        if case.goto != END and (
            target is None or target.lane != where.lane or target.lane_pos <= where.lane_pos
        ):
            said = f"no later step {case.goto!r} in this sequence to go to (or {END!r})"
            problems.append(_problem(step.id, f"{where.path}.route[{i}].goto", said))
    return problems


def call(step: CallStep, where: Placed) -> list[dict[str, Any]]:
    """A sequence's call asks no review: that is its parallel step's or map's."""
    if step.on_error != "checkpoint":
        return []
    said = (
        "a step in a branch's or a map item's steps asks no review (on_error: fail or skip); "
        "put on_error: checkpoint on the parallel step or the map"
    )
    return [_problem(step.id, f"{where.path}.on_error", said)]


def read_outside_item(earlier: Placed, where: Placed | None) -> str | None:
    """Why ``earlier`` (a step an expression reads) cannot be read at
    ``where``, when it is a step of a map item's sequence read elsewhere."""
    if not earlier.in_item or (where is not None and where.lane == earlier.lane):
        return None
    return (
        f"step {earlier.step.id!r} is one of map {earlier.lane!r}'s item steps: read "
        f"steps.{earlier.lane}.output (each item's output) instead"
    )


def item_ids(step: MapStep, where: Placed) -> list[dict[str, Any]]:
    """The map's id and each of its item steps' fit an item step's record."""
    problems = []
    for i, inner in enumerate(step.map.steps or []):
        if len(step.id) + len(inner.id) > ITEM_RECORD:
            said = (
                f"a map's id and its item steps' ids are at most {ITEM_RECORD} characters "
                f"together ({step.id!r}, {inner.id!r}): each is recorded as <map>[<index>].<id>"
            )
            problems.append(_problem(step.id, f"{where.path}.map.steps[{i}].id", said))
    return problems

"""A run's steps as a graph, beside its timeline: the flow version's steps top
to bottom, a parallel step's branches side by side, a repeat's block in a
box with its loop drawn back (a route's loop too), a route's jumps as
dashed edges -- each step
coloured by its record's state in the run (a repeat's step by its latest
round's). Laid out here; the page draws it as SVG (no script)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fastapi import Request

from gateway.api.state import state_of
from gateway.flows import back_routes
from gateway.flows.definition import (
    END,
    CallStep,
    CheckpointStep,
    FlowDocument,
    Lane,
    MapStep,
    ParallelStep,
    RepeatStep,
    RouteStep,
    WaitStep,
)
from gateway.flows.models import RunView, StepView

NODE_W = 150
NODE_H = 34
GAP_X = 14
ROW_H = 62
PAD = 18
BOX_PAD = 10


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    state: str
    x: int
    y: int
    w: int = NODE_W
    h: int = NODE_H


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    kind: str  # next, route, loop


@dataclass(frozen=True)
class Box:
    label: str
    x: int
    y: int
    w: int
    h: int


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    width: int = 0
    height: int = 0


def latest_states(run: RunView) -> dict[str, str]:
    """Each step's state in the run; a repeat's block step's, its latest round's."""
    found: dict[str, tuple[int, str]] = {}
    for record in run.steps:
        base, _, round_ = record.id.partition("#")
        rank = int(round_) if round_.isdigit() else 0
        if "[" in record.id or ":" in record.id:
            continue  # a map's item (or its steps), a held call's review: shown by their step
        if base not in found or rank >= found[base][0]:
            found[base] = (rank, record.state)
    return {step: state for step, (_, state) in found.items()}


def _label(step: object) -> str:
    if isinstance(step, CallStep):
        return f"{step.call.target}" + (f" / {step.call.skill}" if step.call.skill else "")
    if isinstance(step, MapStep):
        if step.map.call is None:
            return f"map: {_steps_label(step.map.steps or [])}"
        return f"map: {step.map.call.target}"
    if isinstance(step, Lane):
        return _steps_label(step.steps)
    if isinstance(step, CheckpointStep):
        return "checkpoint"
    if isinstance(step, WaitStep):
        return f"wait: {step.wait.event or 'task'}"
    if isinstance(step, RouteStep):
        return "route"
    return ""


def _steps_label(steps: Sequence[CallStep | RouteStep]) -> str:
    """A branch's or a map item's own steps, in one line."""
    return " → ".join(s.call.target if isinstance(s, CallStep) else "route" for s in steps)


def graph(document: FlowDocument, run: RunView) -> Graph:
    drawn = Graph()
    rows, top_row, loops, joins = _rows(document, run)
    widest = max(len(r) for r in rows)
    drawn.width = 2 * PAD + widest * NODE_W + (widest - 1) * GAP_X + 4 * BOX_PAD
    placed = _placed(drawn, rows, latest_states(run))
    for above, below in itertools.pairwise(placed):
        for a in above:
            for b in below:
                if len(above) == 1 or len(below) == 1:
                    drawn.edges.append(Edge(a.x + a.w // 2, a.y + a.h, b.x + b.w // 2, b.y, "next"))
    _boxes(drawn, placed, loops, joins)
    _routes(drawn, document, placed, top_row, len(rows))
    drawn.height = 2 * PAD + len(rows) * ROW_H
    return drawn


def _rows(
    document: FlowDocument, run: RunView
) -> tuple[
    list[list[tuple[str, str]]], dict[str, int], list[tuple[int, int, str]], list[tuple[int, str]]
]:
    """The rows (the step each node stands for, its box label), the row of
    each top-level step, the loops (first row, last row, label) and the
    parallel steps' joins (row, label)."""
    rows: list[list[tuple[str, str]]] = []
    top_row: dict[str, int] = {}
    loops: list[tuple[int, int, str]] = []  # first row, last row, label
    joins: list[tuple[int, str]] = []  # a parallel step's row, its label
    for step in document.steps:
        top_row[step.id] = len(rows)
        block = list(step.repeat.steps) if isinstance(step, RepeatStep) else [step]
        for each in block:
            if isinstance(each, ParallelStep):
                joins.append((len(rows), f"parallel {each.id}"))
            rows.append(_row(each))
        if isinstance(step, RepeatStep):
            record = next((s for s in run.steps if s.id == step.id), None)
            label = f"repeat {step.id}{_rounds(record)}"
            loops.append((top_row[step.id], len(rows) - 1, label))
    for loop in back_routes.loops(document):
        route = loop.route.id
        label = f"loop of route {route}{_route_rounds(run, route)}"
        loops.append((top_row[document.steps[loop.first].id], top_row[route], label))
    return rows, top_row, loops, joins


def _placed(
    drawn: Graph, rows: list[list[tuple[str, str]]], states: Mapping[str, str]
) -> list[list[Node]]:
    """Each row's nodes, centred, drawn with the state of their step."""
    centre = drawn.width // 2
    placed: list[list[Node]] = []
    for index, row in enumerate(rows):
        span = len(row) * NODE_W + (len(row) - 1) * GAP_X
        x = centre - span // 2
        y = PAD + index * ROW_H
        nodes = [
            Node(
                node_id,
                _short(f"{node_id} · {label}" if label else node_id),
                states.get(node_id, "pending"),
                x + i * (NODE_W + GAP_X),
                y,
            )
            for i, (node_id, label) in enumerate(row)
        ]
        placed.append(nodes)
        drawn.nodes += nodes
    return placed


def _boxes(
    drawn: Graph,
    placed: list[list[Node]],
    loops: list[tuple[int, int, str]],
    joins: list[tuple[int, str]],
) -> None:
    """A box around each loop (with its way back) and each parallel step."""
    for first, last, label in loops:
        top, bottom = placed[first], placed[last]
        left = min(n.x for row in placed[first : last + 1] for n in row) - BOX_PAD
        right = max(n.x + n.w for row in placed[first : last + 1] for n in row) + BOX_PAD
        y1 = top[0].y - BOX_PAD - 8
        y2 = bottom[0].y + NODE_H + BOX_PAD
        drawn.boxes.append(Box(label, left, y1, right - left, y2 - y1))
        drawn.edges.append(
            Edge(right, bottom[0].y + NODE_H // 2, right, top[0].y + NODE_H // 2, "loop")
        )
    for at, label in joins:
        branches = placed[at]
        left, right = branches[0].x - 4, branches[-1].x + NODE_W + 4
        drawn.boxes.append(Box(label, left, branches[0].y - 12, right - left, NODE_H + 16))


def _routes(
    drawn: Graph,
    document: FlowDocument,
    placed: list[list[Node]],
    top_row: dict[str, int],
    row_count: int,
) -> None:
    """An edge from each route step to each step (or the end) it may go to."""
    for step in document.steps:
        if isinstance(step, RouteStep):
            source = placed[top_row[step.id]][0]
            for case in step.route:
                target_y = (
                    PAD + row_count * ROW_H - GAP_X
                    if case.goto == END
                    else placed[top_row[case.goto]][0].y
                    if case.goto in top_row
                    else None
                )
                if target_y is not None:
                    x = source.x - BOX_PAD
                    drawn.edges.append(
                        Edge(x, source.y + NODE_H // 2, x, target_y + NODE_H // 2, "route")
                    )


def _row(step: object) -> list[tuple[str, str]]:
    if isinstance(step, ParallelStep):
        return [(b.id, _label(b)) for b in step.parallel.branches]
    assert isinstance(step, CallStep | MapStep | CheckpointStep | WaitStep | RouteStep)
    return [(step.id, _label(step))]


def _short(text: str, most: int = 24) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _rounds(record: StepView | None) -> str:
    if record is None or not isinstance(record.output, dict):
        return ""
    rounds = record.output.get("rounds")
    return f", {rounds} round(s)" if isinstance(rounds, int) else ""


def _route_rounds(run: RunView, route: str) -> str:
    """How many rounds a route's loop ran: its latest record's ``round``."""
    rounds = [
        s.output.get("round")
        for s in run.steps
        if (s.id == route or s.id.startswith(route + "#")) and isinstance(s.output, dict)
    ]
    ran = max((r for r in rounds if isinstance(r, int)), default=None)
    return f", {ran} round(s)" if ran is not None else ""


async def document_of(request: Request, run: RunView) -> FlowDocument | None:
    """The flow version the run runs (None: one that no longer validates)."""
    try:
        found = await state_of(request).flows.rt.store.version(run.flow_id, run.flow_version)
        return FlowDocument.model_validate(found)
    except Exception:
        return None


async def run_graph(request: Request, run: RunView) -> Graph | None:
    """The run's steps as a graph (none without a document: the timeline still shows)."""
    document = await document_of(request, run)
    return graph(document, run) if document is not None else None

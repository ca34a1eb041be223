"""Where each step of a flow document sits, for the registration checks
(`gateway.flows.checks`): its path in the document (for the problem's
``field``), its top-level position, the step it belongs to (a parallel
branch's parallel step, a repeat's block step's repeat), and so which steps
have always finished when another starts."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.flows import back_routes
from gateway.flows.definition import (
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

AnyStep = CallStep | ParallelStep | RouteStep | CheckpointStep | MapStep | WaitStep | RepeatStep
# Where a check sees it: any step, and a parallel branch of its own steps.
Checked = AnyStep | Lane


@dataclass(frozen=True)
class Placed:
    step: Checked
    path: str  # steps[2], steps[2].parallel.branches[0], steps[3].repeat.steps[1]
    index: int  # the top-level position
    parent: str | None  # a branch's parallel step; a block step's repeat
    block: str | None = None  # the repeat whose block it is in
    sub: int = 0  # its position in that block
    loop: str | None = None  # the route whose loop holds it (`back_routes`)
    # A branch's or a map item's own steps (`gateway.flows.lanes`): the
    # branch's or the map's id, and the position in the sequence (its
    # length: where the sequence's ``output`` is read).
    lane: str | None = None
    lane_pos: int = 0
    in_item: bool = False  # a map item's: reads item and index, read only inside the item


def placed(document: FlowDocument) -> list[Placed]:
    found: list[Placed] = []
    looped = {
        index: loop.route.id
        for loop in back_routes.loops(document)
        for index in range(loop.first, loop.last + 1)
    }
    for index, step in enumerate(document.steps):
        where = Placed(step, f"steps[{index}]", index, None, loop=looped.get(index))
        found += _with_branches(where)
        if isinstance(step, RepeatStep):
            for sub, inner in enumerate(step.repeat.steps):
                path = f"steps[{index}].repeat.steps[{sub}]"
                found += _with_branches(Placed(inner, path, index, step.id, step.id, sub))
    return found


def _with_branches(where: Placed) -> list[Placed]:
    found = [where]
    if isinstance(where.step, ParallelStep):
        for b, branch in enumerate(where.step.parallel.branches):
            path = f"{where.path}.parallel.branches[{b}]"
            at = Placed(
                branch, path, where.index, where.step.id, where.block, where.sub, where.loop
            )
            found.append(at)
            if isinstance(branch, Lane):
                found += _lane(at, branch.id, branch.steps, f"{path}.steps")
    elif isinstance(where.step, MapStep) and where.step.map.steps is not None:
        found += _lane(where, where.step.id, where.step.map.steps, f"{where.path}.map.steps")
    return found


def _lane(where: Placed, lane: str, steps: list[CallStep | RouteStep], path: str) -> list[Placed]:
    in_item = isinstance(where.step, MapStep)
    return [
        replace(
            where,
            step=step,
            path=f"{path}[{i}]",
            parent=lane,
            lane=lane,
            lane_pos=i,
            in_item=in_item,
        )
        for i, step in enumerate(steps)
    ]


def lane_end(where: Placed) -> Placed:
    """Where a branch's or a map's sequence ``output`` is read: after its steps."""
    step = where.step
    steps = (
        step.steps
        if isinstance(step, Lane)
        else step.map.steps
        if isinstance(step, MapStep)
        else None
    )
    assert steps is not None
    return replace(where, lane=step.id, lane_pos=len(steps), in_item=isinstance(step, MapStep))


def until_of(where: Placed) -> Placed:
    """Where a repeat's ``until`` is read: after every step of its block."""
    assert isinstance(where.step, RepeatStep)
    steps = len(where.step.repeat.steps)
    return Placed(where.step, where.path, where.index, None, where.step.id, steps)


def a_round_before(earlier: Placed, where: Placed) -> bool:
    """Whether ``earlier`` is in the same route's loop as ``where``, at or
    after it: read there, it is the round before's output (null in round 1).
    Not from inside a fan-out of a step of its own (a branch, a sequence's
    step): there a sibling may be running at that very time, and what is
    read would be whatever finished first."""
    if earlier.loop is None or earlier.loop != where.loop:
        return False
    inside = where.parent is not None and earlier.index == where.index
    return not inside or earlier.path == where.path


def before(earlier: Placed, where: Placed) -> bool:
    """Whether ``earlier`` has finished whenever ``where`` starts: an earlier
    top-level step, or an earlier step of the same repeat's block (in this
    round). A branch's own parallel step, a sibling branch, a later step of
    the block (it ran in the round before, if any) or the repeat itself is not."""
    if earlier.index != where.index:
        return earlier.index < where.index
    if earlier.block is not None and earlier.block == where.block and earlier.sub < where.sub:
        return True
    # An earlier step of the same branch's or map item's sequence.
    return (
        earlier.lane is not None
        and earlier.lane == where.lane
        and earlier.lane_pos < where.lane_pos
    )

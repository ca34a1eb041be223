"""The flow document: a versioned YAML or JSON file, validated by these models.

The published JSON Schema (`GET /flows/schema`, and the shipped file
``gateway/flows/flow.schema.json``) is generated from them, so the two never
disagree (a test compares the file with `json_schema()`).

A document names its format (``format: switchboard.flow/v1``); the registry
numbers each registration of the same flow id (``version`` 1, 2, ...), like
card versions, and a run keeps the version it started with.

Step kinds (one key each): ``call`` (an agent's skill -- an A2A agent, a
gateway-run agent or another flow -- or a federated MCP tool), ``parallel``
(branches of calls joined by all / any / a quorum), ``route`` (the first case
whose condition holds says which step runs next: a later one, or an earlier
one a bounded number of times), ``checkpoint`` (a
human approves on the approvals desk, with a timeout), ``map`` (one call per
item of a list, at most ``concurrency`` at a time; the call's expressions
also read ``item`` and ``index``), ``wait`` (for an event posted to the run,
or for another agent's task to reach a state). A call may name a ``fallback``: another
target called with the same input when the call fails. Every step may have a
``when`` condition (skipped unless it holds). Expressions are JMESPath
(`gateway.flows.expressions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from gateway.flows.call_definition import CallTarget, Questions
from gateway.flows.document_basics import STEP_ID, Expression, Strict, one_of
from gateway.flows.trigger_definition import Trigger
from gateway.flows.wait_definition import Wait

FORMAT = "switchboard.flow/v1"
SCHEMA_FILE = Path(__file__).with_name("flow.schema.json")
SCHEMA_ID = "urn:switchboard:schema:flow:v1"
FLOW_ID = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
END = "end"
MAX_STEPS = 100
MAX_BRANCHES = 20
MAX_MAP_ITEMS = 1000
MAX_MAP_CONCURRENCY = 32
# A map's items are recorded as "<step id>[<index>]", in a 64-character column.
MAP_STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,55}$"
MAX_DOCUMENT_BYTES = 256 * 1024
REVIEWED_STEP_ID = 52
MAX_REVIEWS = 3
# At most this many rounds of a loop: a repeat's block, a route that goes back.
MAX_ROUNDS = 50
# At most this many steps in a parallel branch's or a map item's own sequence.
MAX_LANE_STEPS = 20

RedactedKey = Annotated[str, Field(min_length=1, max_length=128, description="an object key")]


_STEP_KIND = one_of("call", "parallel", "route", "checkpoint", "map", "wait", "repeat")


class _Step(Strict):
    id: str = Field(pattern=STEP_ID, description="unique in the flow; steps.<id> in expressions")
    description: str | None = Field(None, max_length=2000)
    when: Expression | None = Field(None, description="run only if this holds, else skipped")


class CallStep(_Step):
    call: CallTarget
    questions: Questions | None = Field(
        None, description="who answers the agent's questions (default: the run's user)"
    )
    input: Expression | None = Field(
        None, description="an object: the agent's data part, or the tool's arguments"
    )
    message: Expression | None = Field(None, description="a string: the agent's text part")
    retries: int = Field(0, ge=0, le=10, description="more attempts; idempotent targets only")
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400)
    fallback: CallTarget | None = Field(
        None,
        description="called with the same input (once) when the call fails after its retries",
    )
    on_error: Literal["fail", "skip", "checkpoint"] = Field(
        "fail",
        description="when the call fails: fail the run, skip the step, or ask a human "
        "(checkpoint: approve to call again, reject to end the run)",
    )

    @model_validator(mode="after")
    def _review_fits(self) -> CallStep:
        # A review is recorded as the step "<id>_review<n>", in a 64-character column.
        if self.on_error == "checkpoint" and len(self.id) > REVIEWED_STEP_ID:
            raise ValueError(f"with on_error: checkpoint, a step id is at most {REVIEWED_STEP_ID}")
        return self


class MapSpec(Strict):
    over: Expression = Field(description="a list: one call per item")
    concurrency: int = Field(
        4, ge=1, le=MAX_MAP_CONCURRENCY, description="how many items are called at once"
    )
    call: CallTarget | None = Field(None, description="the call per item (or steps)")
    steps: list[LaneStep] | None = Field(
        None,
        min_length=1,
        max_length=MAX_LANE_STEPS,
        description="instead of call: steps run one after the other per item (calls and "
        "routes; each reads item and index, and the item's earlier steps as steps.<id>)",
    )
    output: Expression | None = Field(
        None, description="with steps: an item's output (default: its last completed step's)"
    )
    input: Expression | None = Field(
        None, description="an object per item; reads item and index as well"
    )
    message: Expression | None = Field(
        None, description="a string per item; reads item and index as well"
    )
    retries: int = Field(0, ge=0, le=10, description="more attempts; idempotent targets only")
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400, description="per item")
    questions: Questions | None = Field(
        None,
        description="who answers an item's agent when it asks (default: the run's user), "
        "once the other items have settled; the answer reads item and index as well",
    )

    @model_validator(mode="after")
    def _call_or_steps(self) -> MapSpec:
        if (self.call is None) == (self.steps is None):
            raise ValueError("a map has exactly one of call or steps")
        if self.steps is not None:
            # Given values, not keys: a stored document is dumped with its defaults.
            per_call = {
                "input": self.input,
                "message": self.message,
                "retries": self.retries,
                "timeout_seconds": self.timeout_seconds,
                "questions": self.questions,
            }
            given = [name for name, value in per_call.items() if value not in (None, 0)]
            if given:
                raise ValueError(
                    f"with steps, each step says its own {', '.join(given)} (not the map)"
                )
        elif self.output is not None:
            raise ValueError("output goes with steps: a call's output is the item's")
        return self


class MapStep(_Step):
    """The output is the list of the items' outputs, in the items' order; the
    step fails (or is skipped, with ``on_error: skip``, or a human decides,
    with ``checkpoint``: once for the step, approving calls the failed items
    again) if any item fails."""

    id: str = Field(pattern=MAP_STEP_ID, description="unique in the flow; at most 56 characters")
    map: MapSpec
    on_error: Literal["fail", "skip", "checkpoint"] = "fail"


class Quorum(Strict):
    quorum: int = Field(ge=1, le=MAX_BRANCHES)


class Lane(_Step):
    """A parallel branch of its own steps, run one after the other while the
    other branches run (`gateway.flows.lanes`): calls, and routes that go on
    to a later step of the branch or ``end`` it. Its output is ``output``, or
    its last completed step's."""

    steps: list[LaneStep] = Field(min_length=1, max_length=MAX_LANE_STEPS)
    output: Expression | None = Field(
        None, description="the branch's output (default: its last completed step's)"
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="when one of its steps fails: the branch fails, or is skipped"
    )


Branch = Annotated[
    Annotated[CallStep, Tag("call")] | Annotated[Lane, Tag("steps")],
    Discriminator(
        one_of("call", "steps"),
        custom_error_type="branch_kind",
        custom_error_message="a branch has exactly one of call or steps",
    ),
]


class Parallel(Strict):
    join: Literal["all", "any"] | Quorum = "all"
    branches: list[Branch] = Field(min_length=2, max_length=MAX_BRANCHES)


class ParallelStep(_Step):
    """With ``on_error: checkpoint`` (an id of at most 52 characters), a join
    not met asks a human: approving runs the branches not completed again."""

    parallel: Parallel
    on_error: Literal["fail", "skip", "checkpoint"] = "fail"

    def branch_ids(self) -> list[tuple[str, str]]:
        """The ids its branches are recorded under -- each branch's, and a
        branch's own steps' (`Lane`) -- with where each is in the step."""
        found = []
        for b, branch in enumerate(self.parallel.branches):
            found.append((branch.id, f"parallel.branches[{b}].id"))
            if isinstance(branch, Lane):
                found += [
                    (inner.id, f"parallel.branches[{b}].steps[{i}].id")
                    for i, inner in enumerate(branch.steps)
                ]
        return found


class RouteCase(Strict):
    when: Expression | None = Field(None, description="omitted in the last case: otherwise")
    goto: str = Field(
        description=f"a later step's id, {END!r}, or an earlier step's (with the route's max)"
    )


class RouteStep(_Step):
    """The first case whose ``when`` holds says where the run goes on. A case
    may go back to an earlier step, a loop: then ``max`` bounds the rounds of
    the steps from there through the route."""

    route: list[RouteCase] = Field(min_length=1, max_length=50)
    max: int | None = Field(
        None,
        ge=1,
        le=MAX_ROUNDS,
        description="required when a case goes back: at most this many rounds of the steps "
        "from the earliest step it goes back to through this route",
    )
    on_max: Literal["fail", "continue"] = Field(
        "fail",
        description="when a case would go back after max rounds: fail the run, or go on "
        "to the step after the route",
    )


# What a branch's or a map item's own steps may be: calls, and routes within them.
LaneStep = Annotated[
    Annotated[CallStep, Tag("call")] | Annotated[RouteStep, Tag("route")],
    Discriminator(
        one_of("call", "route"),
        custom_error_type="step_kind",
        custom_error_message="a branch's or a map item's step has exactly one of call or route",
    ),
]
MapSpec.model_rebuild()
Lane.model_rebuild()


class Checkpoint(Strict):
    prompt: str = Field(min_length=1, max_length=2000, description="what the approver is asked")
    show: Expression | None = Field(None, description="what the approver sees with it")
    timeout_seconds: float = Field(86400, gt=0, le=30 * 86400)
    on_timeout: Literal["fail", "continue"] = "fail"


class CheckpointStep(_Step):
    checkpoint: Checkpoint


class WaitStep(_Step):
    """The run waits for an event posted to it (the event's body is the
    output), or for another agent's task to reach a state (the task is)."""

    wait: Wait


# What a repeat's block may hold: the steps that do work (a route would leave
# the block, a wait's event names one step, a repeat in a repeat is a loop's loop).
InnerStep = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[CheckpointStep, Tag("checkpoint")]
    | Annotated[MapStep, Tag("map")],
    Discriminator(
        _STEP_KIND,
        custom_error_type="step_kind",
        custom_error_message="a step in a repeat has exactly one of call, parallel, "
        "checkpoint, map",
    ),
]
# A block's step is recorded once a round, as "<id>#<round>" (a map's items as
# "<id>#<round>[<index>]", a review as "<id>#<round>_review<n>"), in a
# 64-character column: its id, and a branch's, is at most this long.
REPEATED_STEP_ID = 48


class Repeat(Strict):
    steps: list[InnerStep] = Field(min_length=1, max_length=20)
    until: Expression = Field(
        description="checked after each round, over the round's outputs: once it holds, "
        "the repeat is done"
    )
    max: int = Field(ge=1, le=MAX_ROUNDS, description="at most this many rounds (required)")
    on_max: Literal["fail", "continue"] = Field(
        "fail", description="when until still does not hold after max rounds: fail, or go on"
    )

    @model_validator(mode="after")
    def _ids_fit(self) -> Repeat:
        for step in self.steps:
            ids = [step.id]
            if isinstance(step, ParallelStep):
                ids += [found for found, _ in step.branch_ids()]
            for found in ids:
                if len(found) > REPEATED_STEP_ID:
                    raise ValueError(
                        f"a step in a repeat has an id of at most {REPEATED_STEP_ID} "
                        f"characters ({found!r}): each round is recorded as <id>#<round>"
                    )
        return self


class RepeatStep(_Step):
    """A block of steps run again and again until ``until`` holds, at most
    ``max`` times (`gateway.flows.loops`). Expressions read the latest
    round's outputs as ``steps.<id>``; the output is ``{rounds, done}``."""

    repeat: Repeat
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="when a round fails (or max is reached with on_max: fail)"
    )


Step = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[RouteStep, Tag("route")]
    | Annotated[CheckpointStep, Tag("checkpoint")]
    | Annotated[MapStep, Tag("map")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[RepeatStep, Tag("repeat")],
    Discriminator(
        _STEP_KIND,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of call, parallel, route, checkpoint, "
        "map, wait, repeat",
    ),
]


class FlowDocument(Strict):
    """A flow, as registered."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "$id": SCHEMA_ID,
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        },
    )

    format: Literal["switchboard.flow/v1"] = Field(description="the document format")
    id: str = Field(pattern=FLOW_ID, description="the flow's id: an agent id, /a2a/{id}")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    input: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema of the run's input: the flow's skill contract",
    )
    output: Expression | None = Field(None, description="the run's result; default: last step's")
    max_run_seconds: float | None = Field(
        None, gt=0, description="the run's grant lives at most this long (capped by the gateway)"
    )
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    redact: list[RedactedKey] = Field(
        default_factory=list,
        max_length=50,
        description="object keys (any depth, any case) whose values the run's record never "
        "shows: the run's input and output, each step's input and output",
    )
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)
    retention_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="an ended run is deleted this many days after it ended "
        "(default: the gateway's flow_run_retention_days)",
    )

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
whose condition holds says which later step runs next), ``checkpoint`` (a
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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

FORMAT = "switchboard.flow/v1"
SCHEMA_FILE = Path(__file__).with_name("flow.schema.json")
SCHEMA_ID = "urn:switchboard:schema:flow:v1"
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
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
EVENT_NAME = r"^[A-Za-z0-9_-]{1,64}$"
MAX_REVIEWS = 3

Expression = Annotated[str, Field(min_length=1, max_length=4000, description="JMESPath")]
RedactedKey = Annotated[str, Field(min_length=1, max_length=128, description="an object key")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallTarget(_Strict):
    """What a call step calls: exactly one of ``agent`` (with ``skill`` when
    the agent has several), ``tool``, or ``flow`` (a flow is an agent: it is
    called as ``agent``, and must be a flow)."""

    agent: str | None = Field(None, description="agent id: an A2A agent, gateway-run agent or flow")
    skill: str | None = Field(None, description="the agent's skill")
    tool: str | None = Field(None, description="a federated MCP tool, as /mcp names it")
    flow: str | None = Field(None, description="another flow's id (called as its agent)")

    @model_validator(mode="before")
    @classmethod
    def _flow_is_an_agent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("flow") is not None:
            if data.get("agent") not in (None, data["flow"]) or data.get("tool") is not None:
                raise ValueError("name exactly one of agent, tool or flow")
            return {**data, "agent": data["flow"]}
        return data

    @model_validator(mode="after")
    def _one_target(self) -> CallTarget:
        if (self.agent is None) == (self.tool is None):
            raise ValueError("name exactly one of agent or tool")
        if self.tool is not None and self.skill is not None:
            raise ValueError("skill goes with agent, not with tool")
        return self

    @property
    def target(self) -> str:
        return self.agent if self.agent is not None else str(self.tool)


class _Step(_Strict):
    id: str = Field(pattern=STEP_ID, description="unique in the flow; steps.<id> in expressions")
    description: str | None = Field(None, max_length=2000)
    when: Expression | None = Field(None, description="run only if this holds, else skipped")


class CallStep(_Step):
    call: CallTarget
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


class MapSpec(_Strict):
    over: Expression = Field(description="a list: one call per item")
    concurrency: int = Field(
        4, ge=1, le=MAX_MAP_CONCURRENCY, description="how many items are called at once"
    )
    call: CallTarget
    input: Expression | None = Field(
        None, description="an object per item; reads item and index as well"
    )
    message: Expression | None = Field(
        None, description="a string per item; reads item and index as well"
    )
    retries: int = Field(0, ge=0, le=10, description="more attempts; idempotent targets only")
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86400, description="per item")


class MapStep(_Step):
    """The output is the list of the items' outputs, in the items' order; the
    step fails (or is skipped, with ``on_error: skip``, or a human decides,
    with ``checkpoint``: once for the step, approving calls the failed items
    again) if any item fails."""

    id: str = Field(pattern=MAP_STEP_ID, description="unique in the flow; at most 56 characters")
    map: MapSpec
    on_error: Literal["fail", "skip", "checkpoint"] = "fail"


class Quorum(_Strict):
    quorum: int = Field(ge=1, le=MAX_BRANCHES)


class Parallel(_Strict):
    join: Literal["all", "any"] | Quorum = "all"
    branches: list[CallStep] = Field(min_length=2, max_length=MAX_BRANCHES)


class ParallelStep(_Step):
    """With ``on_error: checkpoint`` (an id of at most 52 characters), a join
    not met asks a human: approving runs the branches not completed again."""

    parallel: Parallel
    on_error: Literal["fail", "skip", "checkpoint"] = "fail"


class RouteCase(_Strict):
    when: Expression | None = Field(None, description="omitted in the last case: otherwise")
    goto: str = Field(description=f"a later step's id, or {END!r}")


class RouteStep(_Step):
    route: list[RouteCase] = Field(min_length=1, max_length=50)


class Checkpoint(_Strict):
    prompt: str = Field(min_length=1, max_length=2000, description="what the approver is asked")
    show: Expression | None = Field(None, description="what the approver sees with it")
    timeout_seconds: float = Field(86400, gt=0, le=30 * 86400)
    on_timeout: Literal["fail", "continue"] = "fail"


class CheckpointStep(_Step):
    checkpoint: Checkpoint


# A2A 1.0 `TaskState` names (specification/a2a.proto), as `TASK_STATE_` + upper case.
TaskStateName = Literal[
    "submitted",
    "working",
    "input_required",
    "auth_required",
    "completed",
    "failed",
    "canceled",
    "rejected",
]
TASK_ENDS: tuple[TaskStateName, ...] = ("completed", "failed", "canceled", "rejected")


class WaitTask(_Strict):
    """A task of another agent, delegated through the gateway and owned by the
    run's user (`gateway.flows.task_waits`)."""

    agent: str = Field(min_length=1, max_length=128, description="the agent whose task it is")
    id: Expression = Field(description="an expression giving the task's id")


class Wait(_Strict):
    """Exactly one of ``event`` (posted to the run) or ``task`` (another
    agent's task reaching one of ``states``)."""

    event: str | None = Field(
        None,
        pattern=EVENT_NAME,
        description="its name: POST /flows/{id}/runs/{run}/events/{event} delivers it",
    )
    key: Expression | None = Field(
        None,
        description="with event: the run's key for it (e.g. input.order_id), by which a "
        "webhook trigger's deliver finds the runs waiting for the event",
    )
    task: WaitTask | None = Field(None, description="another agent's task, owned by the run's user")
    states: list[TaskStateName] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="with task: the states waited for (default: any end -- completed, "
        "failed, canceled, rejected)",
    )
    timeout_seconds: float = Field(86400, gt=0, le=30 * 86400)
    on_timeout: Literal["fail", "continue"] = Field(
        "fail", description="fail the run, or go on with a null output"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Wait:
        if (self.event is None) == (self.task is None):
            raise ValueError("a wait has exactly one of event or task")
        if self.states is not None and self.task is None:
            raise ValueError("states go with task, not with event")
        if self.key is not None and self.event is None:
            raise ValueError("key goes with event, not with task")
        return self

    @property
    def task_states(self) -> tuple[TaskStateName, ...]:
        return tuple(self.states) if self.states is not None else TASK_ENDS


class WaitStep(_Step):
    """The run waits for an event posted to it (the event's body is the
    output), or for another agent's task to reach a state (the task is)."""

    wait: Wait


def _kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        kinds = ("call", "parallel", "route", "checkpoint", "map", "wait", "repeat")
        found = [k for k in kinds if k in value]
        return found[0] if len(found) == 1 else None
    return None


# What a repeat's block may hold: the steps that do work (a route would leave
# the block, a wait's event names one step, a repeat in a repeat is a loop's loop).
InnerStep = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[CheckpointStep, Tag("checkpoint")]
    | Annotated[MapStep, Tag("map")],
    Discriminator(
        _kind,
        custom_error_type="step_kind",
        custom_error_message="a step in a repeat has exactly one of call, parallel, "
        "checkpoint, map",
    ),
]
# A block's step is recorded once a round, as "<id>#<round>" (a map's items as
# "<id>#<round>[<index>]", a review as "<id>#<round>_review<n>"), in a
# 64-character column: its id, and a branch's, is at most this long.
REPEATED_STEP_ID = 48
MAX_ROUNDS = 50


class Repeat(_Strict):
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
                ids += [branch.id for branch in step.parallel.branches]
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
        _kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of call, parallel, route, checkpoint, "
        "map, wait, repeat",
    ),
]


TaskEnd = Literal["completed", "failed", "canceled", "rejected"]


class TaskEvent(_Strict):
    """A delegated task of an agent (and skill) reaching one of ``states``."""

    agent: str = Field(description="the agent whose tasks start the flow (not the flow itself)")
    skill: str | None = Field(None, description="only tasks started for this skill")
    states: list[TaskEnd] = Field(
        default_factory=lambda: list[TaskEnd](["completed"]),
        min_length=1,
        description="which ends start it",
    )


class Webhook(_Strict):
    """Signed requests to `POST /flows/{id}/hooks/{trigger}` (Standard Webhooks:
    `webhook-id`, `webhook-timestamp`, `webhook-signature` headers)."""

    secret: str = Field(
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="the name of the HMAC-SHA256 secret in the gateway's `secrets` setting",
    )


class Schedule(_Strict):
    """A cron schedule (DBOS's scheduler: 5 fields, or 6 with seconds first)."""

    cron: str = Field(min_length=9, max_length=120, description="e.g. '0 2 * * *': 02:00 daily")
    timezone: str | None = Field(None, max_length=64, description="IANA name; default UTC")
    # None (not "none") when absent, so documents stored before these keys
    # existed dump alike and registering them again is no new version.
    catch_up: Literal["none", "latest", "all"] | None = Field(
        None,
        description="ticks missed while no gateway ran, at the next start: none (default, "
        "as cron), the latest one, or all (the newest catch_up_max)",
    )
    catch_up_max: int | None = Field(
        None, ge=1, le=100, description="with catch_up: all, at most this many runs (default 10)"
    )

    @model_validator(mode="after")
    def _valid(self) -> Schedule:
        if not croniter.is_valid(self.cron, second_at_beginning=True):
            raise ValueError(f"not a cron expression: {self.cron!r}")
        if self.catch_up_max is not None and self.catch_up != "all":
            raise ValueError("catch_up_max is for catch_up: all")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"no time zone {self.timezone!r}") from None
        return self


class Deliver(_Strict):
    """What a webhook brings to runs already going (`gateway.flows.webhooks`):
    its body as ``event``, to the runs of this flow waiting for that event
    whose ``wait.key`` equals ``key`` evaluated over the delivery."""

    event: str = Field(pattern=EVENT_NAME, description="the event a wait step waits for")
    key: Expression = Field(description="from event (the JSON body) and webhook.id: the run's key")


class RunAs(_Strict):
    """Who a webhook's run acts for: a service identity of the flow's own,
    decided by the policy like any caller (issuer `urn:switchboard:trigger`)."""

    subject: str = Field(pattern=r"^[A-Za-z0-9._@:-]{1,128}$")
    scopes: list[str] = Field(
        default_factory=list, max_length=50, description="what its calls may carry, at most"
    )


class Trigger(_Strict):
    """What starts a run without anyone asking: a delegated task's end (the run
    acts for that task's user, `gateway.flows.triggers`) or a signed webhook
    (it acts for `run_as`, `gateway.flows.webhooks`)."""

    id: str = Field(pattern=STEP_ID, description="unique among the flow's triggers")
    task: TaskEvent | None = None
    webhook: Webhook | None = None
    schedule: Schedule | None = None
    deliver: Deliver | None = Field(
        None, description="a webhook's: feed waiting runs instead of starting one (no run_as)"
    )
    run_as: RunAs | None = Field(
        None, description="a webhook's or a schedule's identity (not for task)"
    )
    input: Expression | None = Field(
        None,
        description="the run's input, from task.{id, agent, skill, state, output, text, user} "
        "(default: the task's output if an object, else {text}); for a webhook, from "
        "event (its JSON body) and webhook.id (default: the body); for a schedule, from "
        "schedule.time (default: {})",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [k for k in (self.task, self.webhook, self.schedule) if k is not None]
        if len(kinds) != 1:
            raise ValueError("a trigger has exactly one of task, webhook or schedule")
        if self.deliver is not None:
            if self.webhook is None:
                raise ValueError("deliver goes with webhook")
            if self.run_as is not None or self.input is not None:
                raise ValueError("a webhook that delivers starts no run: no run_as, no input")
            return self
        if self.task is None and self.run_as is None:
            raise ValueError(
                "a webhook or schedule trigger needs run_as: the identity its runs act for"
            )
        if self.task is not None and self.run_as is not None:
            raise ValueError("a task trigger's run acts for the task's user: no run_as")
        return self


class FlowDocument(_Strict):
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

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
human approves on the approvals desk, with a timeout). Every step may have a
``when`` condition (skipped unless it holds). Expressions are JMESPath
(`gateway.flows.expressions`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
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
MAX_DOCUMENT_BYTES = 256 * 1024

Expression = Annotated[str, Field(min_length=1, max_length=4000, description="JMESPath")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallTarget(_Strict):
    """What a call step calls: exactly one of ``agent`` (with ``skill`` when
    the agent has several) or ``tool``."""

    agent: str | None = Field(None, description="agent id: an A2A agent, gateway-run agent or flow")
    skill: str | None = Field(None, description="the agent's skill")
    tool: str | None = Field(None, description="a federated MCP tool, as /mcp names it")

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
    on_error: Literal["fail", "skip"] = "fail"


class Quorum(_Strict):
    quorum: int = Field(ge=1, le=MAX_BRANCHES)


class Parallel(_Strict):
    join: Literal["all", "any"] | Quorum = "all"
    branches: list[CallStep] = Field(min_length=2, max_length=MAX_BRANCHES)


class ParallelStep(_Step):
    parallel: Parallel
    on_error: Literal["fail", "skip"] = "fail"


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


def _kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        found = [k for k in ("call", "parallel", "route", "checkpoint") if k in value]
        return found[0] if len(found) == 1 else None
    return None


Step = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[RouteStep, Tag("route")]
    | Annotated[CheckpointStep, Tag("checkpoint")],
    Discriminator(
        _kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of call, parallel, route, checkpoint",
    ),
]


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


class DocumentInvalid(ValueError):
    """``errors``: ``{"step", "field", "message"}`` each."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def parse_text(text: str | bytes) -> Any:
    """A YAML or JSON document (JSON is YAML) as plain data."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentInvalid(
            [{"step": None, "field": "", "message": f"over {MAX_DOCUMENT_BYTES} bytes"}]
        )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentInvalid(
            [{"step": None, "field": "", "message": f"not YAML or JSON: {exc}"}]
        ) from None


def validate(data: Any) -> FlowDocument:
    """The document, or `DocumentInvalid` naming each bad field and its step."""
    try:
        return FlowDocument.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for error in exc.errors():
            entry = {
                "step": _step_at(data, error["loc"]),
                "field": field_path(error["loc"]),
                "message": error["msg"],
            }
            if entry not in errors:
                errors.append(entry)
        raise DocumentInvalid(errors) from None


_KINDS = frozenset({"call", "parallel", "route", "checkpoint"})


def _clean(loc: tuple[Any, ...] | list[Any]) -> list[Any]:
    """The document's own path in a pydantic error location: without the step
    kind a tagged union puts after a step's index, nor the union members'
    names (``Quorum``, ``literal[...]``)."""
    out: list[Any] = []
    previous: Any = None
    for part in loc:
        after_step = isinstance(previous, int) and len(out) >= 2 and out[-2] == "steps"
        previous = part
        if part in _KINDS and after_step:
            continue
        if part == "Quorum" or str(part).startswith("literal["):
            continue
        out.append(part)
    return out


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("steps", 2, "call", "retries")`` -> ``steps[2].retries``."""
    out = ""
    for part in _clean(loc):
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _step_at(data: Any, loc: tuple[Any, ...] | list[Any]) -> str | None:
    """The id of the innermost step ``loc`` points into, if it has one."""
    found: str | None = None
    node = data
    for part in _clean(loc):
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                found = node["id"]
        else:
            break
    return found


def json_schema() -> dict[str, Any]:
    schema = FlowDocument.model_json_schema()
    schema["title"] = "Switchboard flow (switchboard.flow/v1)"
    return schema


def shipped_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded

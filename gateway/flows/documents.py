"""A flow document as text and as data: parsed (YAML or JSON), validated
against `gateway.flows.definition`'s models with every error named by its
field and its step, and the JSON Schema those models make (published at
`GET /flows/schema`, shipped as ``flow.schema.json``)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.flows.definition import MAX_DOCUMENT_BYTES, SCHEMA_FILE, FlowDocument


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


_KINDS = frozenset({"call", "parallel", "route", "checkpoint", "map", "wait", "repeat"})
# A parallel branch's: a call, or steps of its own (`definition.Branch`).
_BRANCH_KINDS = frozenset({"call", "steps"})


def _clean(loc: tuple[Any, ...] | list[Any]) -> list[Any]:
    """The document's own path in a pydantic error location: without the step
    (or branch) kind a tagged union puts after a step's (a branch's) index,
    nor the union members' names (``Quorum``, ``literal[...]``)."""
    out: list[Any] = []
    previous: Any = None
    for part in loc:
        listed = out[-2] if isinstance(previous, int) and len(out) >= 2 else None
        previous = part
        if (listed == "steps" and part in _KINDS) or (
            listed == "branches" and part in _BRANCH_KINDS
        ):
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

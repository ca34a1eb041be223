"""JMESPath in flow documents: compiling, what an expression refers to, and
what shape its value has where that can be known before a run.

Every expression is evaluated against one context object::

    {"input": <the run's input>,
     "steps": {"<step id>": {"output": ..., "text": ..., "state": ...}, ...},
     "run": {"id": ..., "flow": ..., "user": ...}}

`references` lists the root fields an expression reads and, for ``steps``, the
step ids (``steps.quote.output`` reads step ``quote``), so registration can
refuse an expression that names an unknown step or one that has not run yet.
Only fields evaluated against the context itself count: inside a projection,
a filter or a pipe the names are relative to the elements and are not roots.

`shape` infers a JSON Schema for an expression's value from the flow's input
schema and the output schemas of earlier steps, for the few forms a mapping
is usually written in (a field path, an object of field paths, a literal);
anything else is None (unknown), and unknown is never an error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

ROOTS = frozenset({"input", "steps", "run"})


class ExpressionInvalid(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    root: str  # "input", "steps", "run", or an unknown name
    step: str | None = None  # for "steps": the step id, if named


@functools.lru_cache(maxsize=4096)
def compiled(expression: str) -> Any:
    """The compiled expression (cached: a run evaluates the same few often)."""
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionInvalid(str(exc).replace("\n", " ")) from None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    return compiled(expression).search(context)


def references(expression: str) -> list[Reference]:
    return list(_roots(compiled(expression).parsed))


def _roots(node: Mapping[str, Any]) -> Iterator[Reference]:
    """The references of ``node``, evaluated against the context itself."""
    kind = node.get("type")
    children: list[Mapping[str, Any]] = list(node.get("children") or ())
    if kind == "field":
        yield Reference(str(node["value"]))
    elif kind == "subexpression":
        head = children[0]
        if head.get("type") == "field":
            root = str(head["value"])
            step = None
            if root == "steps" and len(children) > 1 and children[1].get("type") == "field":
                step = str(children[1]["value"])
            yield Reference(root, step)
        else:
            yield from _roots(head)
    elif kind in ("projection", "filter_projection", "index_expression", "pipe", "flatten"):
        # The left side is read from the context; the rest from its elements.
        if children:
            yield from _roots(children[0])
    elif kind == "value_projection" or kind == "key_val_pair":
        for child in children[:1]:
            yield from _roots(child)
    elif kind == "expref":
        return  # evaluated against elements, by the function
    else:  # multi-selects, functions, comparators, and/or/not, literals, current
        for child in children:
            yield from _roots(child)


# Shapes ---------------------------------------------------------------------


def shape(expression: str, known: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON Schema for the value of ``expression``, or None if unknown.

    ``known`` maps root paths to schemas: ``{"input": <input schema>,
    "steps.quote.output": <its output schema>, ...}``."""
    return _shape(compiled(expression).parsed, known)


def _shape(node: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = node.get("type")
    children: list[Mapping[str, Any]] = list(node.get("children") or ())
    if kind == "literal":
        return _literal_schema(node.get("value"))
    if kind == "multi_select_dict":
        properties: dict[str, Any] = {}
        for pair in children:
            inner = _shape(pair["children"][0], known)
            properties[str(pair["value"])] = inner if inner is not None else {}
        return {
            "type": "object",
            "properties": properties,
            "required": sorted(properties),
            "x-exact-keys": True,
        }
    path = _field_path(node)
    if path is None:
        return None
    # The longest known prefix, then down its properties.
    for cut in range(len(path), 0, -1):
        schema = known.get(".".join(path[:cut]))
        if schema is not None:
            return _descend(schema, path[cut:])
    return None


def _field_path(node: Mapping[str, Any]) -> list[str] | None:
    if node.get("type") == "field":
        return [str(node["value"])]
    if node.get("type") == "subexpression":
        path = []
        for child in node.get("children") or ():
            if child.get("type") != "field":
                return None
            path.append(str(child["value"]))
        return path
    return None


def _descend(schema: Any, path: list[str]) -> dict[str, Any] | None:
    for name in path:
        if not isinstance(schema, Mapping):
            return None
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or name not in properties:
            return None
        schema = properties[name]
    return dict(schema) if isinstance(schema, Mapping) else None


def _literal_schema(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    return {"type": "object"}


def types_of(schema: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a schema allows, or None when it does not say."""
    declared = schema.get("type")
    if isinstance(declared, str):
        found = {declared}
    elif isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        found = set(declared)
    else:
        return None
    return found


def fits(produced: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether every value of type ``produced`` is of a type ``wanted`` allows
    (an integer is a number; unknown on either side fits)."""
    have, want = types_of(produced), types_of(wanted)
    if have is None or want is None:
        return True
    if "number" in want:
        want = want | {"integer"}
    return have <= want

"""Handoff contracts: the JSON Schema a skill's data input must match.

A2A 1.0 skills carry no input schema, so the schema comes with the agent's
registration (`skill_contracts: {skill_id: schema}`). It is checked when the
agent is registered (a schema that is not valid JSON Schema, or a contract for
a skill the card does not declare, is refused there) and applied by the front
door to every delegation that starts a task on that skill, before the agent
is called.

Schemas are JSON Schema 2020-12 unless they name another draft in `$schema`;
`$ref` to anything but the schema itself is refused, so checking never
fetches a document over the network.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable

MAX_CONTRACT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Violation:
    """Why data does not match a contract, with where (RFC 6901 pointer into the data)."""

    pointer: str
    message: str


class ContractInvalid(ValueError):
    """A contract that cannot be used; ``problems`` are (skill id, reason) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{skill}: {reason}" for skill, reason in problems))
        self.problems = list(problems)


def check_contracts(contracts: Mapping[str, Any], skill_ids: Iterable[str]) -> None:
    """Raise `ContractInvalid` unless every contract is a usable schema for a declared skill."""
    declared = set(skill_ids)
    problems: list[tuple[str, str]] = []
    for skill, schema in contracts.items():
        if skill not in declared:
            problems.append((skill, "the card declares no such skill"))
            continue
        problem = schema_problem(schema)
        if problem is not None:
            problems.append((skill, problem))
    if problems:
        raise ContractInvalid(problems)


def schema_problem(schema: Any) -> str | None:
    """What is wrong with ``schema`` as a contract, or None."""
    if not isinstance(schema, dict):
        return "a contract is a JSON Schema object"
    text = _canonical(schema)
    if len(text) > MAX_CONTRACT_BYTES:
        return f"larger than {MAX_CONTRACT_BYTES} bytes"
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path)
        return f"not a valid JSON Schema at {where or '/'}: {exc.message}"
    # A reference that needs fetching would fail (or worse, fetch) at call
    # time: only references inside the schema itself are allowed.
    for ref in _refs(schema):
        if not ref.startswith("#"):
            return f"$ref {ref!r}: only references inside the schema (#...) are allowed"
    return None


def violation(schema: Any, data: Any) -> Violation | None:
    """The most relevant way ``data`` breaks ``schema`` (None: it matches). Pure."""
    validator = _validator(_canonical(schema))
    try:
        error = best_match(validator.iter_errors(data))
    except Unresolvable as exc:  # refused at registration; kept safe anyway
        return Violation("", f"the contract cannot be checked: unresolvable $ref {exc.ref!r}")
    if error is None:
        return None
    return Violation(_where(error, data), error.message)


def _refs(schema: Any) -> Iterable[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _where(error: ValidationError, data: Any) -> str:
    """The pointer to the field at fault. For a missing required property,
    that is the property itself, not the object that lacks it."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [k for k in error.validator_value if k not in instance]
        if missing:
            path.append(missing[0])
    return _pointer(path)


def _pointer(path: Iterable[Any]) -> str:
    """RFC 6901: `/a/0/b~1c`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


# An empty registry: a `$ref` to a remote document is unresolvable, never fetched.
_NO_REMOTE: Registry[Any] = Registry()


@functools.lru_cache(maxsize=512)
def _validator(canonical: str) -> Validator:
    # Keyed by the schema's canonical text: the same contract, read again
    # from the registry, reuses its compiled validator.
    schema = json.loads(canonical)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator: Validator = cls(schema, registry=_NO_REMOTE)
    return validator

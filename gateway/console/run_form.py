"""The console's "Start a run" form, built from a flow's input schema.

Each top-level property of an object schema is a field: a string an input (a
select when it lists ``enum`` values), an integer or a number a number input,
a boolean a checkbox, anything else (an object, an array, a union) a JSON
text area. A schema that is not an object with properties is one JSON text
area for the whole input. What the form sends is turned back into JSON
values here, field by field, with the gateway's one JSON reader
(`gateway.http.json_body`), and the API's own start (`POST /flows/{id}/runs`)
checks the result against the body limits and the schema, so the form adds no
rule of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.http.json_body import MAX_DEPTH, JsonRefused, read_json

# Under the console's form-field bound (`web.MAX_FORM_FIELDS`, the CSRF token
# included); a schema with more properties is filled in as JSON instead.
MAX_FIELDS = 40
WHOLE = "__input__"
# Each field is sent as f_<property>, so a property named "csrf" (or like
# any other field of the page) is still the input's.
PREFIX = "f_"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text, number, integer, boolean, choice, json
    label: str
    required: bool
    choices: tuple[str, ...] = ()
    hint: str = ""


class FormInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def fields_of(schema: Mapping[str, Any] | None) -> list[Field]:
    properties = (schema or {}).get("properties")
    if (
        (schema or {}).get("type", "object") != "object"
        or not isinstance(properties, Mapping)
        or len(properties) > MAX_FIELDS
    ):
        return [Field(WHOLE, "json", "Input (JSON)", False, hint="an object")]
    required = set((schema or {}).get("required") or ())
    found = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = spec.get("type")
        hint = str(spec.get("description") or "")[:200]
        label = str(spec.get("title") or name)[:100]
        enum = spec.get("enum")
        if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            found.append(Field(name, "choice", label, name in required, tuple(enum), hint))
        elif kind in ("string", "integer", "number", "boolean"):
            found.append(
                Field(name, "text" if kind == "string" else kind, label, name in required, (), hint)
            )
        else:
            found.append(Field(name, "json", label, name in required, (), hint or "JSON"))
    return found


def input_from(
    fields: list[Field], form: Mapping[str, str], max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """The run's input from what the form sent; `FormInvalid` naming each
    field that does not read as its kind (JSON within ``max_depth``)."""
    if len(fields) == 1 and fields[0].name == WHOLE:
        value = _json(form.get(PREFIX + WHOLE) or "{}", "input", max_depth)
        if not isinstance(value, dict):
            raise FormInvalid(["input: an object"])
        return value
    built: dict[str, Any] = {}
    errors: list[str] = []
    for field in fields:
        raw = form.get(PREFIX + field.name, "")
        if field.kind == "boolean":
            built[field.name] = raw == "true"
            continue
        if raw == "":
            continue  # left out: the schema says whether it may be
        try:
            if field.kind == "integer":
                built[field.name] = int(raw)
            elif field.kind == "number":
                built[field.name] = float(raw)
            elif field.kind == "json":
                built[field.name] = _json(raw, field.name, max_depth)
            else:
                built[field.name] = raw
        except FormInvalid as exc:
            errors += exc.errors
        except ValueError:
            errors.append(
                f"{field.name}: not {'JSON' if field.kind == 'json' else 'a ' + field.kind}"
            )
    if errors:
        raise FormInvalid(errors)
    return built


def _json(raw: str, name: str, max_depth: int) -> Any:
    try:
        return read_json(raw, max_depth)
    except JsonRefused as exc:
        raise FormInvalid([f"{name}: not JSON ({exc})"]) from None

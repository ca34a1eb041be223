"""The REST webhook mapping language: templates out, selectors back. No code runs.

A mapping is JSON an operator writes at registration::

    {"request":  {"body": {"query": "{{text}}", "customer": "{{data.customer_id}}"},
                  "query": {"lang": "{{data.lang}}"},
                  "headers": {"X-Skill": "{{skill}}"}},
     "response": {"text": "$.answer", "data": "$.details"}}

**Templates** (request side). Any JSON value; strings in it are templates.

* a string that is exactly one placeholder, ``"{{data.n}}"``, becomes the
  value itself with its JSON type (a number stays a number, an object an object);
* placeholders inside a longer string are replaced by the value as text (a
  string as is, anything else as compact JSON): ``"Ticket {{data.id}}"``;
* a placeholder names ``text``, ``skill``, ``task_id``, ``context_id`` or
  ``data``, followed by ``.key`` or ``.0`` steps into the message's data part;
  a name the message does not have is an error -- unless it ends in ``?``
  (``{{data.note?}}``), which makes it ``null`` (or empty text inside a string).

**Selectors** (response side): ``$`` (the whole answer), then ``.key``,
``['key']`` or ``[0]`` steps -- no wildcards, filters, scripts or recursion.
``text`` picks the reply's text (a non-string is written as JSON) and
``data`` its structured part; a selector that finds nothing is an error.

Everything is bounded: the mapping's size and depth, the steps in a path and
the size of what a template renders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_MAPPING_BYTES = 16 * 1024
MAX_DEPTH = 16
MAX_STEPS = 32
MAX_RENDERED_BYTES = 1024 * 1024
ROOTS = ("text", "skill", "task_id", "context_id", "data")

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
_SELECTOR_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]+)\]|\['([^'\\]*)'\]")


class MappingInvalid(ValueError):
    """The mapping itself is wrong (found at registration)."""


class MappingFailed(ValueError):
    """A valid mapping could not be applied to this message or answer."""


@dataclass(frozen=True)
class Placeholder:
    root: str
    steps: tuple[str, ...]
    optional: bool

    @property
    def name(self) -> str:
        return ".".join((self.root, *self.steps)) + ("?" if self.optional else "")


def parse_placeholder(source: str) -> Placeholder:
    optional = source.endswith("?")
    path = source.removesuffix("?")
    parts = path.split(".")
    if not path or parts[0] not in ROOTS:
        raise MappingInvalid(
            f"{{{{{source}}}}}: a placeholder starts with one of {', '.join(ROOTS)}"
        )
    if len(parts) > MAX_STEPS or not all(_NAME.fullmatch(p) for p in parts[1:]):
        raise MappingInvalid(f"{{{{{source}}}}}: steps are names or indexes, at most {MAX_STEPS}")
    if parts[0] != "data" and len(parts) > 1:
        raise MappingInvalid(f"{{{{{source}}}}}: only data has fields")
    return Placeholder(parts[0], tuple(parts[1:]), optional)


def parse_selector(source: str) -> tuple[str | int, ...]:
    """``$.a[0]['b c']`` -> ("a", 0, "b c")."""
    if not source.startswith("$"):
        raise MappingInvalid(f"{source!r}: a selector starts with $")
    steps: list[str | int] = []
    at = 1
    while at < len(source):
        match = _SELECTOR_STEP.match(source, at)
        if match is None:
            raise MappingInvalid(
                f"{source!r}: expected .name, [index] or ['name'] at position {at}"
            )
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        at = match.end()
    if len(steps) > MAX_STEPS:
        raise MappingInvalid(f"{source!r}: more than {MAX_STEPS} steps")
    return tuple(steps)


@dataclass(frozen=True)
class WebhookMapping:
    """A checked mapping, ready to apply."""

    body: Any
    query: dict[str, str]
    headers: dict[str, str]
    text: tuple[str | int, ...] | None
    data: tuple[str | int, ...] | None


def compile_mapping(raw: Mapping[str, Any]) -> WebhookMapping:
    """Check a mapping whole; `MappingInvalid` names the first problem."""
    try:
        size = len(json.dumps(raw))
    except (TypeError, ValueError, RecursionError):
        raise MappingInvalid("the mapping must be JSON") from None
    if size > MAX_MAPPING_BYTES:
        raise MappingInvalid(f"the mapping is larger than {MAX_MAPPING_BYTES} bytes")
    unknown = set(raw) - {"request", "response"}
    if unknown:
        raise MappingInvalid(f"unknown keys {sorted(unknown)}: a mapping has request, response")
    request = _object(raw.get("request", {}), "request", {"body", "query", "headers"})
    response = _object(raw.get("response", {}), "response", {"text", "data"})
    body = request.get("body")
    _check_template(body, 0)
    query = _strings(request.get("query", {}), "request.query")
    headers = _strings(request.get("headers", {}), "request.headers")
    for name in headers:
        if name.lower() in ("authorization", "host", "content-length", "cookie"):
            raise MappingInvalid(f"request.headers: {name} is set by the gateway")
    for template in (*query.values(), *headers.values()):
        _check_template(template, 0)
    selected = {}
    for key in ("text", "data"):
        value = response.get(key)
        if value is not None and not isinstance(value, str):
            raise MappingInvalid(f"response.{key} must be a selector string like $.answer")
        selected[key] = parse_selector(value) if value is not None else None
    return WebhookMapping(body, query, headers, selected["text"], selected["data"])


def _object(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MappingInvalid(f"{where} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise MappingInvalid(f"{where}: unknown keys {sorted(unknown)}")
    return value


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MappingInvalid(f"{where} must map names to template strings")
    return value


def _check_template(template: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MappingInvalid(f"the request template is nested deeper than {MAX_DEPTH}")
    if isinstance(template, str):
        for source in _PLACEHOLDER.findall(template):
            parse_placeholder(source)
    elif isinstance(template, dict):
        for value in template.values():
            _check_template(value, depth + 1)
    elif isinstance(template, list):
        for value in template:
            _check_template(value, depth + 1)


# Applying ---------------------------------------------------------------------


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """The template with every placeholder filled from ``values`` (text, skill,
    task_id, context_id, data). `MappingFailed` names a missing value."""
    rendered = _render(template, values)
    if len(json.dumps(rendered)) > MAX_RENDERED_BYTES:
        raise MappingFailed(f"the request would be larger than {MAX_RENDERED_BYTES} bytes")
    return rendered


def _render(template: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(template, dict):
        return {key: _render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_render(value, values) for value in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole is not None:
        return _lookup(parse_placeholder(whole.group(1)), values)

    def text_of(match: re.Match[str]) -> str:
        value = _lookup(parse_placeholder(match.group(1)), values)
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return _PLACEHOLDER.sub(text_of, template)


def _lookup(placeholder: Placeholder, values: Mapping[str, Any]) -> Any:
    value = values.get(placeholder.root)
    for step in placeholder.steps:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            value = None
            break
    if value is None and not placeholder.optional:
        raise MappingFailed(f"{{{{{placeholder.name}}}}}: the message has no value for it")
    return value


def select(document: Any, steps: tuple[str | int, ...], source: str) -> Any:
    """The value at ``steps`` in ``document``; `MappingFailed` if there is none."""
    value = document
    for step in steps:
        found = _MISSING
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            found = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            found = value.get(step, _MISSING)
        if found is _MISSING:
            raise MappingFailed(f"the answer has nothing at {source}")
        value = found
    return value


_MISSING = object()


def selector_source(steps: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)


def placeholders(template: Any) -> Iterator[Placeholder]:
    """Every placeholder in a template (for docs and checks)."""
    if isinstance(template, str):
        for source in _PLACEHOLDER.findall(template):
            yield parse_placeholder(source)
    elif isinstance(template, dict | list):
        for value in template.values() if isinstance(template, dict) else template:
            yield from placeholders(value)

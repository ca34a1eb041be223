"""Validating agent cards with the official A2A SDK and normalising them to 1.0.

A2A 1.0 cards list `supportedInterfaces`; 0.3 (and 0.2) cards carry one `url`
with `preferredTransport`/`additionalInterfaces`, legacy security shapes and
`supportsAuthenticatedExtendedCard`. `a2a.client.card_resolver.parse_agent_card`
maps the old shapes onto the 1.0 protobuf `AgentCard`; we then enforce the
fields the 1.0 proto marks REQUIRED (spec §5.7) and a few rules of our own, and
keep the original document next to the normalised one.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import rfc8785
from a2a.client.card_resolver import parse_agent_card
from a2a.types import AgentCard
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import MessageToDict, ParseError

MAX_SKILLS = 512
# Cards are shallow; deep nesting only serves to exhaust recursive parsers.
MAX_DEPTH = 32
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class CardInvalid(ValueError):
    """The card cannot be accepted; ``errors`` name the offending fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class ParsedCard:
    card: AgentCard
    normalized: dict[str, Any]  # the 1.0 JSON form (camelCase), what we serve and search
    original: dict[str, Any]  # exactly as registered, signatures included
    protocol_version: str  # "1.0", "0.3" or "0.2": what the card itself speaks
    digest: str  # sha256 over the RFC 8785 canonical original

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def skill_ids(self) -> list[str]:
        return [s.id for s in self.card.skills]


def card_skills(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The skills of a stored card that have an id (the rest name nothing)."""
    return [
        skill
        for skill in card.get("skills") or []
        if isinstance(skill, dict) and isinstance(skill.get("id"), str)
    ]


def parse_card(raw: Any) -> ParsedCard:
    if not isinstance(raw, dict):
        raise CardInvalid([FieldError("card", "must be a JSON object")])
    if _depth(raw) > MAX_DEPTH:
        raise CardInvalid([FieldError("card", f"nested deeper than {MAX_DEPTH} levels")])
    # JSON null for a member is "not given": what pydantic-based 0.3 SDKs
    # write for every unset field (Agno's cards, docs/interop.md), and what
    # the SDK's own parser reads so. A required member that is null is then
    # missing, and refused as such.
    given = {key: value for key, value in raw.items() if value is not None}
    version = detect_protocol_version(given)
    try:
        digest = card_digest(raw)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise CardInvalid(
            [FieldError("card", f"cannot be canonicalised (RFC 8785): {exc}")]
        ) from None
    shape = _shape_errors(given)
    if shape:
        raise CardInvalid(shape)
    try:
        card = parse_agent_card(copy.deepcopy(given))
    except ParseError as exc:
        if str(exc).startswith("Invalid agent card structure"):
            # The SDK's text is Python's (e.g. "'str' object has no attribute
            # 'pop'"): it names no field and says nothing a registrant can use.
            raise CardInvalid([FieldError("card", _WRONG_TYPES)]) from None
        raise CardInvalid([FieldError(_parse_error_field(str(exc)), str(exc))]) from None
    except (TypeError, AttributeError, ValueError):
        raise CardInvalid([FieldError("card", _WRONG_TYPES)]) from None
    errors = _required_field_errors(card) + _own_rules(card)
    if errors:
        raise CardInvalid(errors)
    return ParsedCard(
        card=card,
        normalized=MessageToDict(card),
        original=raw,
        protocol_version=version,
        digest=digest,
    )


_WRONG_TYPES = "a field has the wrong type for an A2A agent card (see the A2A card schema)"
# The JSON type of each top-level card field that holds structure, for both
# versions (A2A 1.0 §4.4.1 AgentCard; 0.3 adds url, preferredTransport, ...).
_OBJECT_LISTS = ("skills", "supportedInterfaces", "additionalInterfaces", "signatures")
_OBJECTS = ("capabilities", "securitySchemes", "provider")
_STRING_LISTS = ("defaultInputModes", "defaultOutputModes")
_STRINGS = ("name", "description", "version", "url", "protocolVersion", "preferredTransport")


def _shape_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Fields whose JSON type is wrong, each named, before the SDK parses the card."""
    errors: list[FieldError] = []

    def wrong(field: str, expected: str, value: Any) -> None:
        errors.append(FieldError(field, f"must be {expected}, not {_json_type(value)}"))

    for field in _OBJECT_LISTS:
        if field in raw:
            value = raw[field]
            if not isinstance(value, list):
                wrong(field, "a list of objects", value)
                continue
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    wrong(f"{field}[{i}]", "an object", item)
    for field in _OBJECTS:
        if field in raw and not isinstance(raw[field], dict):
            wrong(field, "an object", raw[field])
    for field in _STRING_LISTS:
        value = raw.get(field)
        if field in raw and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            wrong(field, "a list of strings", value)
    for field in _STRINGS:
        if field in raw and not isinstance(raw[field], str):
            wrong(field, "a string", raw[field])
    return errors


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    kinds = {str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def detect_protocol_version(raw: dict[str, Any]) -> str:
    if "supportedInterfaces" in raw:
        return "1.0"
    if "url" in raw:
        declared = raw.get("protocolVersion")
        if isinstance(declared, str) and declared.startswith("0.3"):
            return "0.3"
        # protocolVersion arrived with 0.2.5/0.3; a card with a url and none is 0.2.
        return "0.3" if declared is not None else "0.2"
    raise CardInvalid(
        [
            FieldError(
                "supportedInterfaces",
                "missing: neither supportedInterfaces (A2A 1.0) nor url (A2A 0.2/0.3)",
            )
        ]
    )


def card_digest(raw: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(raw)).hexdigest()


def _required_field_errors(card: AgentCard) -> list[FieldError]:
    try:
        validate_proto_required_fields(card)
    except InvalidParamsError as exc:
        details = (exc.data or {}).get("errors", [])
        return [FieldError(_camel_path(d["field"]), d["message"]) for d in details]
    return []


_GRPC_TARGET = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")


def _own_rules(card: AgentCard) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, iface in enumerate(card.supported_interfaces):
        if iface.protocol_binding == "GRPC" and _GRPC_TARGET.fullmatch(iface.url):
            continue  # gRPC names a channel target, host:port (what grpc.*_channel takes)
        parts = urlsplit(iface.url)
        if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.netloc:
            errors.append(
                FieldError(f"supportedInterfaces[{i}].url", "must be an absolute http(s) URL")
            )
    if len(card.skills) > MAX_SKILLS:
        errors.append(FieldError("skills", f"at most {MAX_SKILLS} skills"))
    seen: set[str] = set()
    for i, skill in enumerate(card.skills):
        if skill.id in seen:
            errors.append(FieldError(f"skills[{i}].id", f"duplicate skill id {skill.id!r}"))
        seen.add(skill.id)
    return errors


def _depth(value: Any) -> int:
    """Nesting depth, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _parse_error_field(message: str) -> str:
    return ".".join(_PARSE_FIELD.findall(message)) or "card"


def _camel_path(path: str) -> str:
    return ".".join(
        re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in path.split(".")
    )

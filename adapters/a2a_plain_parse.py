"""Protobuf's reading of a plain A2A request, without its reflection each time.

The door reads every `SendMessage` the way the SDK does: `ParseDict` (with
``ignore_unknown_fields``), then `validate_proto_required_fields`. Both look
at each field of each message by reflection -- the second asks every field
for its options on every call -- and together they cost more than a tenth of
what the door spends on a call. Here a per-type plan, made once, does the
same for the documents callers send:

* `plain_parse` fills the message from a document (or its JSON text, read
  as `Parse` reads it) made only of the members
  its fields name (either spelling, as `ParseDict` reads them), with values
  of the type ProtoJSON requires: strings, flags, enum names, 32-bit
  integers, messages, lists of them, timestamps, and `Struct` user data
  (metadata).
  What it fills is what `ParseDict` fills. Anything else -- an unknown or
  repeated member, a ``null``, an enum by number, a number as a string,
  bytes, a `Value`, a map, nesting past `_DEPTH` -- returns
  False, and the caller parses the document protobuf's way, with its errors;
* `required_present` says True only when `validate_proto_required_fields`
  would find nothing missing; on False the caller asks the SDK's check,
  which raises with its own wording.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from google.api.field_behavior_pb2 import (  # type: ignore[import-untyped]
    FieldBehavior,
    field_behavior,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_DEPTH = 32  # far under ParseDict's own limit (100): deeper is left to it
_INT32 = (-(2**31), 2**31 - 1)


class _Unplain(Exception):
    """Not a plain document: `ParseDict` reads it."""


Fill = Callable[[Message, FieldDescriptor, Any, int], None]
# Per message type: member name (JSON name and field name) -> (field, how it is filled).
_PLANS: dict[str, dict[str, tuple[FieldDescriptor, Fill]]] = {}


def plain_parse(data: Any, message: Message) -> bool:
    """Fill the empty ``message`` from ``data`` as `ParseDict` would (or, for
    JSON text, as `Parse` would: UTF-8, a member given twice refused); False
    (``message`` left empty) when the document is not plain."""
    try:
        if isinstance(data, str | bytes):
            data = json.loads(
                data if isinstance(data, str) else data.decode("utf-8"),
                object_pairs_hook=unique_members,
            )
        _fill(data, message, 0)
    except Exception:  # _Unplain, or what protobuf refuses: its parser says why
        message.Clear()
        return False
    return True


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refused (`ValueError`) when a name is given
    twice, as protobuf's parser refuses it (`json.loads`' object_pairs_hook)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a member given twice")
    return document


def _fill(document: Any, message: Message, depth: int) -> None:
    if not isinstance(document, dict) or depth > _DEPTH:
        raise _Unplain
    plan = _PLANS.get(message.DESCRIPTOR.full_name)
    if plan is None:
        plan = _PLANS[message.DESCRIPTOR.full_name] = _plan(message.DESCRIPTOR)
    seen: set[int] = set()
    oneofs: set[str] = set()
    for name, value in document.items():
        planned = plan.get(name)
        if planned is None or value is None:
            raise _Unplain
        field, fill = planned
        if field.number in seen:  # both spellings of one field
            raise _Unplain
        seen.add(field.number)
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in oneofs:  # two members of one oneof
                raise _Unplain
            oneofs.add(oneof.name)
        fill(message, field, value, depth)


def _plan(descriptor: Descriptor) -> dict[str, tuple[FieldDescriptor, Fill]]:
    # ParseDict looks a member up by JSON name first, then by field name.
    plan = {field.json_name: (field, _filler(field)) for field in descriptor.fields}
    for field in descriptor.fields:
        plan.setdefault(field.name, plan[field.json_name])
    return plan


def _filler(field: FieldDescriptor) -> Fill:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        known = _KNOWN_TYPES.get(name)
        if field.message_type.GetOptions().map_entry or (
            name.startswith("google.protobuf.") and known is None
        ):
            return _unplain  # a map; Value, Any, Duration...: ProtoJSON's own forms
        if field.is_repeated:
            return _unplain if known is not None else _repeated_messages
        return known or _message
    scalar = _scalar(field)
    if field.is_repeated:

        def repeated(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
            if not isinstance(value, list):
                raise _Unplain
            getattr(message, field.name).extend([scalar(item) for item in value])

        return repeated

    def one(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
        setattr(message, field.name, scalar(value))

    return one


def _scalar(field: FieldDescriptor) -> Callable[[Any], Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _flag
    if field.type == FieldDescriptor.TYPE_INT32:
        return _int32
    if field.type == FieldDescriptor.TYPE_ENUM:
        numbers: dict[str, int] = {value.name: value.number for value in field.enum_type.values}

        def enum(value: Any) -> int:
            if not isinstance(value, str) or value not in numbers:
                raise _Unplain  # by number, or unknown: ParseDict decides
            return numbers[value]

        return enum
    return _never


def _string(value: Any) -> str:
    # ParseDict refuses an unpaired surrogate, which UTF-8 cannot encode.
    if not isinstance(value, str) or (not value.isascii() and not _encodes(value)):
        raise _Unplain
    return value


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Unplain
    return value


def _int32(value: Any) -> int:
    if type(value) is not int or not _INT32[0] <= value <= _INT32[1]:
        raise _Unplain  # a float, a string, a bool, out of range: ParseDict decides
    return value


def _never(value: Any) -> Any:
    raise _Unplain  # bytes, other numbers


def _unplain(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
    raise _Unplain


def _message(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
    child = getattr(message, field.name)
    child.SetInParent()  # present even when empty, as ParseDict leaves it
    _fill(value, child, depth + 1)


def _repeated_messages(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
    if not isinstance(value, list):
        raise _Unplain
    items = getattr(message, field.name)
    for item in value:
        _fill(item, items.add(), depth + 1)


def _struct(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
    if not isinstance(value, dict) or not _plain_json(value, depth + 1):
        raise _Unplain
    child = getattr(message, field.name)
    child.SetInParent()
    child.update(value)  # each value as ParseDict's `_ConvertValueMessage` sets it


def _timestamp(message: Message, field: FieldDescriptor, value: Any, depth: int) -> None:
    if not isinstance(value, str):
        raise _Unplain
    child = getattr(message, field.name)
    child.SetInParent()
    child.FromJsonString(value)  # as ParseDict reads one (a bad one raises: declined)


_KNOWN_TYPES: dict[str, Fill] = {
    "google.protobuf.Struct": _struct,
    "google.protobuf.Timestamp": _timestamp,
}


def _plain_json(value: Any, depth: int) -> bool:
    """JSON's own values (finite numbers), nested at most to `_DEPTH`."""
    if depth > _DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(item, depth + 1) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | bool | int)


# Per message type: its required fields, and the message fields to look
# into -- singular, repeated, maps -- sorted once (asking a field for its
# options on every call is what made the SDK's check slow).
_RequiredPlan = tuple[
    list[FieldDescriptor], list[FieldDescriptor], list[FieldDescriptor], list[FieldDescriptor]
]
_REQUIRED: dict[str, _RequiredPlan] = {}


def required_present(message: Message) -> bool:
    """True when every field marked REQUIRED (google.api.field_behavior) is
    set, here and in every message within, as the SDK's check reads them."""
    descriptor = message.DESCRIPTOR
    plan = _REQUIRED.get(descriptor.full_name)
    if plan is None:
        plan = _REQUIRED[descriptor.full_name] = _required_plan(descriptor)
    required, singular, repeated, maps = plan
    for field in required:
        value = getattr(message, field.name)
        if field.is_repeated:
            if not value:
                return False
        elif field.has_presence:
            if not message.HasField(field.name):
                return False
        elif value == field.default_value:
            return False
    for field in singular:
        if message.HasField(field.name) and not required_present(getattr(message, field.name)):
            return False
    for field in repeated:
        if not all(required_present(item) for item in getattr(message, field.name)):
            return False
    for field in maps:
        values = getattr(message, field.name).values()
        if not all(required_present(v) for v in values if isinstance(v, Message)):
            return False
    return True


def _required_plan(descriptor: Descriptor) -> _RequiredPlan:
    fields = descriptor.fields
    required = [
        f for f in fields if FieldBehavior.REQUIRED in f.GetOptions().Extensions[field_behavior]
    ]
    nested = [f for f in fields if f.type == FieldDescriptor.TYPE_MESSAGE]
    maps = [f for f in nested if f.is_repeated and f.message_type.GetOptions().map_entry]
    repeated = [f for f in nested if f.is_repeated and f not in maps]
    singular = [f for f in nested if not f.is_repeated]
    return required, singular, repeated, maps

"""`MessageToDict` for the fields A2A's events are mostly made of, faster.

`google.protobuf.json_format.MessageToDict` looks at each field of each
message by reflection and through many checks; an event relayed on a stream
went through it once to be written to the caller and once more to be
recorded, which cost more than the rest of its way. The fields most events
hold -- strings, flags, states, timestamps, messages and lists of them -- are
turned into ProtoJSON here directly, the same document in the same member
order (the set fields, by number), user data (`Struct`, `Value`) included. A
message with any other field set (a number, bytes, a map) or a number JSON
cannot hold is left to `MessageToDict` whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

Convert = Callable[[Any], Any]


class _Other(Exception):
    """A field this module does not write: `MessageToDict` writes the message."""


# Per message type: field number -> (JSON name, how its value is written).
_PLANS: dict[str, dict[int, tuple[str, Convert]]] = {}


def message_json(message: Message) -> dict[str, Any]:
    """``MessageToDict(message)``, without its reflection for common fields."""
    try:
        return _walk(message)
    except _Other:
        written: dict[str, Any] = MessageToDict(message)
        return written


def _walk(message: Message) -> dict[str, Any]:
    descriptor = message.DESCRIPTOR
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = _PLANS[descriptor.full_name] = _plan(descriptor)
    document = {}
    for field, value in message.ListFields():
        name, convert = plan[field.number]
        document[name] = convert(value)
    return document


def _plan(descriptor: Descriptor) -> dict[int, tuple[str, Convert]]:
    return {field.number: (field.json_name, _converter(field)) for field in descriptor.fields}


def _converter(field: FieldDescriptor) -> Convert:
    one = _one(field)
    if field.is_repeated:
        return lambda values: [one(value) for value in values]
    return one


def _same(value: Any) -> Any:
    return value


def _other(value: Any) -> Any:
    raise _Other


def _struct(struct: Any) -> dict[str, Any]:
    # User data, as `MessageToDict` writes it (`_StructMessageToJsonObject`).
    fields = struct.fields
    return {key: _value(fields[key]) for key in fields}


def _value(value: Any) -> Any:
    """A `Value` as `_ValueMessageToJsonObject` writes it: a number as the
    double it is; no kind set as null."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise _Other  # MessageToDict refuses it, with its own words
        return number
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return getattr(value, kind)  # string_value, bool_value


def _timestamp(value: Any) -> str:
    return str(value.ToJsonString())


def _one(field: FieldDescriptor) -> Convert:
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL):
        return _same
    if field.type == FieldDescriptor.TYPE_ENUM:
        names: dict[int, str] = {value.number: value.name for value in field.enum_type.values}

        def enum(number: int) -> str:
            if number not in names:
                raise _Other  # (written as its number)
            return names[number]

        return enum
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return _other
    kind = field.message_type
    if kind.full_name == "google.protobuf.Timestamp":
        return _timestamp
    if kind.full_name == "google.protobuf.Struct":
        return _struct
    if kind.full_name == "google.protobuf.Value":
        return _value
    if kind.GetOptions().map_entry or kind.full_name.startswith("google.protobuf."):
        return _other
    return _walk

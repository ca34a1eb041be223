"""Numbers a binary protobuf request carries that JSON cannot (issue 57).

The HTTP doors refuse NaN and the infinities in the text they read
(`gateway.http.json_body`); gRPC's doubles hold them in their bytes, and
`Value.number_value` holds them in a data part. An agent behind the gateway
is called with JSON at some hop -- protobuf's JSON encoder refuses them --
and the task records are JSON, so the gRPC door refuses them as the others
do, before anything is decided, stored or sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_FLOATING = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def non_finite(message: Message) -> str | None:
    """The path of the first NaN or infinite number in ``message`` (a data
    part's value, a metadata struct's, any double field), or None."""
    pending: list[tuple[str, Message]] = [("", message)]
    while pending:
        path, item = pending.pop()
        for field, value in item.ListFields():
            where = f"{path}{field.name}"
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                # A map (a Struct's fields): its entries' values, by key.
                inner = field.message_type.fields_by_name["value"]
                found = _look(where, inner, ((f"[{k!r}]", v) for k, v in value.items()))
            elif field.is_repeated:
                found = _look(where, field, ((f"[{i}]", v) for i, v in enumerate(value)))
            else:
                found = _look(where, field, [("", value)])
            if isinstance(found, str):
                return found
            pending.extend(found)
    return None


def _look(
    where: str, field: FieldDescriptor, values: Iterable[tuple[str, Any]]
) -> str | list[tuple[str, Message]]:
    """The path of a non-finite number among ``values`` of ``field``, or the
    messages among them to look into."""
    inner: list[tuple[str, Message]] = []
    for key, value in values:
        if field.type in _FLOATING and not math.isfinite(value):
            return where + key
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            inner.append((f"{where}{key}.", value))
    return inner

"""What a push notification config must be to be stored (`gateway.agents.push_configs`:
its credentials sendable as HTTP header values, an id the client may choose) and
what an agent's notification must be to be relayed (`parse_notification`)."""

from __future__ import annotations

import re
from typing import Any

from a2a.types import StreamResponse, Task, TaskPushNotificationConfig
from google.protobuf.json_format import ParseDict, ParseError

from gateway.delegation.push import MAX_CONFIG_ID, WATCH_PREFIX
from registry.models import HTTP_TCHAR

# RFC 9110 §11.1: an auth-scheme is a token; §5.5: a field value is visible
# ASCII and spaces (no CR, LF or other controls, which would end the header).
_TOKEN = re.compile(rf"{HTTP_TCHAR}+")
_FIELD_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")


def header_problem(config: TaskPushNotificationConfig) -> str | None:
    """Why the config's scheme, credentials or token cannot be sent as an HTTP
    header, or None: checked when it is set, not when a notification fails."""
    authentication = config.authentication
    if authentication.scheme and not _TOKEN.fullmatch(authentication.scheme):
        return "authentication.scheme must be an HTTP auth-scheme token (RFC 9110 §11.1)"
    for name, value in (
        ("authentication.credentials", authentication.credentials),
        ("token", config.token),
    ):
        if value and not _FIELD_VALUE.fullmatch(value):
            return f"{name} must be visible ASCII, as an HTTP header value (RFC 9110 §5.5)"
    return None


def id_problem(config_id: str) -> str | None:
    """Why a config id the client chose cannot be stored, or None."""
    if len(config_id) > MAX_CONFIG_ID:
        return f"id must be at most {MAX_CONFIG_ID} characters"
    if "\x00" in config_id:  # PostgreSQL refuses NUL in text
        return "id must not contain NUL"
    if config_id.startswith(WATCH_PREFIX):
        # The gateway's own watches' (`records_only`): a client's config of
        # that id would replace one, and go when the wait ends.
        return f"ids starting {WATCH_PREFIX!r} are the gateway's own"
    return None


def parse_notification(body: Any) -> StreamResponse:
    """An A2A 1.0 notification is a StreamResponse; 0.3 agents post the Task."""
    if not isinstance(body, dict):
        raise ValueError("a notification is a JSON object")
    event = StreamResponse()
    try:
        ParseDict(body, event)
    except ParseError:
        task = Task()
        try:
            ParseDict(body, task, ignore_unknown_fields=True)
        except ParseError as exc:
            raise ValueError(f"not an A2A notification: {exc}") from None
        event.task.CopyFrom(task)
    if event.WhichOneof("payload") is None:
        raise ValueError("the notification carries no event")
    return event

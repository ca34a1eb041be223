"""Logging: plain text for a person at a terminal (the default), or one JSON
object per line for a log pipeline (`log_format: json`, python-json-logger),
each with time, level, logger, message and the W3C trace id of the request
it belongs to, so a log line finds its audit records, and with tracing on
(`gateway.observability.tracing`) the id of the span it was written in.

Security-relevant events go to the `switchboard.security` logger:
authentication failures (the reason, never the token), every denial and
refused token exchange (from the audit log), quarantined tools, health
transitions and key rotations (policy reloads are logged by `policies.policy_file`).

What is logged never carries a secret the gateway did not mean to log: a URL's
query parameters that carry one (an OAuth callback's ``code`` and ``state``,
a token) are redacted in every line (`SecretQueries`: the access log's
`GET /ui/connections/{id}/callback?code=...`), and the database drivers'
loggers, which echo SQL parameters -- stored tokens among them -- are held
at WARNING even at ``--log-level debug``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from opentelemetry.trace import get_current_span
from pythonjsonlogger.json import JsonFormatter

from adapters import spans
from adapters.trace_context import current
from gateway.delegation.audit_records import AuditEvent

LogFormat = Literal["text", "json"]
SECURITY = logging.getLogger("switchboard.security")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON = "%(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s"
# uvicorn's records carry the message again with ANSI colours, for its own
# terminal formatter; a log pipeline wants neither the copy nor the escapes.
_DROPPED = ("color_message",)
# One line per outgoing request at INFO: noise at the gateway's default level,
# shown when the gateway logs at debug.
_CHATTY = ("httpx", "httpcore", "httpx2", "httpcore2")
# Loggers that echo SQL with its parameters (sqlalchemy.engine at INFO,
# aiosqlite at DEBUG): the values stored include connected accounts' tokens
# (sealed only when a secret key is set) and refresh tokens in flight.
_ECHOING_SQL = ("sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncpg")
# Query parameters whose values are secrets (OAuth 2.0: RFC 6749 §4.1.2
# `code`, `state`; RFC 6750 §2.3 `access_token`; RFC 8693, RFC 7523 ...).
SECRET_PARAMETERS = frozenset(
    {
        "code",
        "state",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "subject_token",
        "actor_token",
        "client_secret",
        "client_assertion",
        "assertion",
        "code_verifier",
        "password",
        "secret",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
    }
)
REDACTED = "REDACTED"
_QUERY = re.compile(r"\?([^\s#\"]*)")


def utc_time(created: float) -> str:
    """A record's time as ISO 8601 in UTC, to the millisecond (`...Z`)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class JsonLines(JsonFormatter):
    """python-json-logger, with `time` in ISO 8601 UTC first and uvicorn's
    coloured copy of the message dropped."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = utc_time(record.created)
        super().add_fields(log_data, record, message_dict)
        for name in _DROPPED:
            log_data.pop(name, None)


def banner(log_format: LogFormat, message: str) -> str:
    """A line the CLI prints before logging is set up, in the log's format."""
    if log_format != "json":
        return f"switchboard: {message}"
    record = {"time": utc_time(datetime.now(UTC).timestamp()), "level": "WARNING"}
    return json.dumps({**record, "logger": "switchboard", "message": message})


def redact_query(text: str) -> str:
    """``text`` with the values of `SECRET_PARAMETERS` in any query string in
    it replaced by `REDACTED`; every other byte as it was."""
    if "?" not in text:
        return text

    def query(match: re.Match[str]) -> str:
        pieces = match.group(1).split("&")
        for i, piece in enumerate(pieces):
            name, equals, _ = piece.partition("=")
            if equals and unquote_plus(name).lower() in SECRET_PARAMETERS:
                pieces[i] = f"{name}={REDACTED}"
        return "?" + "&".join(pieces)

    return _QUERY.sub(query, text)


class SecretQueries(logging.Filter):
    """Redacts secret query parameters (`redact_query`) in a record's
    arguments -- the access log's path, the HTTP client's URL -- and message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query(record.msg)
        return True


def _redacted(value: object) -> object:
    if isinstance(value, str) or type(value).__name__ == "URL":  # httpx's, httpx2's
        text = str(value)
        redacted = redact_query(text)
        return redacted if redacted != text else value
    return value


class TraceIds(logging.Filter):
    """Adds the trace id of the request being served (None outside one) and,
    with tracing on, the current span's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = current()
        trace_id = trace.trace_id if trace is not None else None
        span_id = None
        if spans.enabled():
            context = get_current_span().get_span_context()
            if context.is_valid and format(context.trace_id, "032x") == trace_id:
                span_id = format(context.span_id, "016x")
        record.trace_id = trace_id
        record.span_id = span_id
        return True


def log_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the gateway and uvicorn's own loggers."""
    formatter: dict[str, Any] = (
        {
            "()": "gateway.observability.logs.JsonLines",
            "fmt": _JSON,
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": False,
        }
        if log_format == "json"
        else {"format": _TEXT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "main",
        "filters": ["trace", "secrets"],
        "stream": "ext://sys.stderr",
    }
    named = level.upper() if level != "trace" else "DEBUG"
    chatty = named if named == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace": {"()": TraceIds}, "secrets": {"()": SecretQueries}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": named},
        "loggers": {
            # uvicorn configures its loggers with handlers of its own: route
            # them through ours instead.
            "uvicorn": {"handlers": ["main"], "level": named, "propagate": False},
            "uvicorn.error": {"level": named},
            "uvicorn.access": {"handlers": ["main"], "level": named, "propagate": False},
            **{name: {"level": chatty} for name in _CHATTY},
            **{name: {"level": "WARNING"} for name in _ECHOING_SQL},
        },
    }


def log_decision(event: AuditEvent) -> None:
    """An audit listener: every denial (a refused token exchange included)."""
    if event.decision != "deny":
        return
    SECURITY.warning(
        "denied: %s to %s%s for %s (%s): %s",
        event.event,
        event.target or "-",
        f" {event.action}" if event.action else "",
        event.subject,
        event.client_id or "-",
        "; ".join(event.reasons) or event.outcome,
    )

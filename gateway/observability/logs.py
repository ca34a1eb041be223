"""Logging: plain text for a person at a terminal (the default), or one JSON
object per line for a log pipeline (`log_format: json`, python-json-logger),
each with time, level, logger, message and the W3C trace id of the request
it belongs to, so a log line finds its audit records, and with tracing on
(`gateway.observability.tracing`) the id of the span it was written in.

Security-relevant events go to the `switchboard.security` logger:
authentication failures (the reason, never the token), every denial and
refused token exchange (from the audit log), quarantined tools, health
transitions and key rotations (policy reloads are logged by `policies.policy_file`).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from opentelemetry.trace import get_current_span

from adapters import spans
from adapters.trace_context import current
from gateway.delegation.audit import AuditEvent

LogFormat = Literal["text", "json"]
SECURITY = logging.getLogger("switchboard.security")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON = "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s"


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
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
        if log_format == "json"
        else {"format": _TEXT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "main",
        "filters": ["trace"],
        "stream": "ext://sys.stderr",
    }
    named = level.upper() if level != "trace" else "DEBUG"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace": {"()": TraceIds}},
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": named},
        "loggers": {
            # uvicorn configures its loggers with handlers of its own: route
            # them through ours instead.
            "uvicorn": {"handlers": ["main"], "level": named, "propagate": False},
            "uvicorn.error": {"level": named},
            "uvicorn.access": {"handlers": ["main"], "level": named, "propagate": False},
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

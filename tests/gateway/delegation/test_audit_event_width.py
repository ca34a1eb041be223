"""Every event name the gateway records fits `audit_events.event`, on SQLite
and PostgreSQL (migration 0013): the A2A push-notification operations,
`a2a.DeleteTaskPushNotificationConfig` and its siblings, were longer than the
column's first 32 characters, and PostgreSQL refused their audit records.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_reads import AuditQuery
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.change_events import CHANGE_EVENTS
from gateway.storage.audit_tables import audit_events

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"


# Calls that take an event's name as an argument: its position in each.
NAMING_CALLS = {"audited": 2, "action_event": 1}


def recorded_event_names() -> set[str]:
    """The event names the code records: literal `event="..."`, the names
    given to `audited` and `action_event` (each literal, both branches of a
    conditional), and the A2A door's `a2a.<operation>` for every operation
    name it handles."""
    names: set[str] = set()
    operations: set[str] = set()
    for source in GATEWAY.rglob("*.py"):
        text = source.read_text()
        names.update(re.findall(r'event="([^"]+)"', text))
        names.update(_named_by_calls(text))
        if source.parent.name == "a2a":
            operations.update(
                re.findall(r'"((?:Send|Get|List|Cancel|Subscribe|Create|Delete)[A-Za-z]+)"', text)
            )
    names.update(f"a2a.{operation}" for operation in operations)
    return names


def _named_by_calls(text: str) -> set[str]:
    found: set[str] = set()
    for call in ast.walk(ast.parse(text)):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        at = NAMING_CALLS.get(name)
        if at is None or len(call.args) <= at:
            continue
        found.update(
            c.value
            for c in ast.walk(call.args[at])
            if isinstance(c, ast.Constant) and isinstance(c.value, str)
        )
    return found


def test_what_callers_change_is_named_as_a_change() -> None:
    """Every name given to `audited` or `action_event` is one of
    `CHANGE_EVENTS` (the decision log leaves those out, `?kind=change` lists
    them): a new kind of change cannot land in the decision log unseen."""
    named: set[str] = set()
    for source in GATEWAY.rglob("*.py"):
        named.update(_named_by_calls(source.read_text()))
    assert "policy.changed" in named  # the scan sees them
    assert named - CHANGE_EVENTS == set()


def test_every_event_name_fits_the_column() -> None:
    names = recorded_event_names()
    assert "a2a.DeleteTaskPushNotificationConfig" in names  # the scan sees them
    assert {"agent.credential_revoked", "mcp_set.updated"} <= names  # and the API's
    column_type = audit_events.c.event.type
    assert isinstance(column_type, String) and column_type.length is not None
    width = column_type.length
    too_long = {name for name in names if len(name) > width}
    assert not too_long, too_long


async def test_the_longest_events_are_written_and_read_back(engine: AsyncEngine) -> None:
    audit = AuditLog(engine)
    names = sorted(recorded_event_names(), key=len, reverse=True)[:6]
    for name in names:
        await audit.record(
            AuditEvent(
                event=name,
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                subject="alice",
                subject_issuer="https://issuer.example",
                decision="allow",
                outcome="ok",
                target="worker",
            )
        )
    await audit.flush()
    page = await audit.query(AuditQuery(agent="worker", kind="all"))
    assert sorted(item.event for item in page.items) == sorted(names)


async def test_the_longest_target_an_admins_change_names_is_written(engine: AsyncEngine) -> None:
    """A change to a set whose name is 64 characters is recorded under
    `mcp-set:{name}`, 72 characters (migration 0032)."""
    audit = AuditLog(engine)
    target = "mcp-set:" + "s" * 64
    await audit.record(
        AuditEvent(
            event="mcp_set.updated",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            subject="ann",
            subject_issuer="https://issuer.example",
            decision="allow",
            outcome="ok",
            target=target,
        )
    )
    await audit.flush()
    page = await audit.query(AuditQuery(agent=target, kind="change"))
    assert [item.target for item in page.items] == [target]

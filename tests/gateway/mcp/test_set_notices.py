"""`ToolListNotifier` and `SetAwareBus` (one piece, its collaborators stood in):
a changed set's notice goes to that set's clients only, an upstream change to
everyone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mcp.server.subscriptions import ServerEvent, ToolsListChanged

from gateway.mcp.notify import SetAwareBus, ToolListNotifier
from gateway.mcp.sets import current_set
from registry.mcp_sets import McpSet, McpSetSelection


def a_set(name: str) -> McpSet:
    now = datetime.now(UTC)
    return McpSet(
        name=name,
        title=name,
        select=McpSetSelection(servers=["s"]),
        created_at=now,
        updated_at=now,
        updated_by="admin",
    )


class Outbound:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def notify(self, method: str, params: Any) -> None:
        self.sent.append(method)


class Connection:
    def __init__(self) -> None:
        self.outbound = Outbound()


class Session:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection


class Context:
    protocol_version = "2025-11-25"

    def __init__(self, connection: Connection) -> None:
        self.session = Session(connection)


def _seen_at(notifier: ToolListNotifier, where: McpSet | None) -> Connection:
    connection = Connection()
    token = current_set.set(where)
    try:
        notifier.remember(Context(connection))  # type: ignore[arg-type]
    finally:
        current_set.reset(token)
    return connection


async def test_a_sets_notice_reaches_its_sessions_only() -> None:
    notifier = ToolListNotifier()
    plain, ops, other = (_seen_at(notifier, s) for s in (None, a_set("ops"), a_set("other")))
    await notifier.send("tools", only="ops")
    assert (plain.outbound.sent, ops.outbound.sent, other.outbound.sent) == (
        [],
        ["notifications/tools/list_changed"],
        [],
    )
    await notifier.send("tools")  # an upstream changed: everyone
    assert [len(c.outbound.sent) for c in (plain, ops, other)] == [1, 2, 1]


def _hears(heard: list[str], label: str) -> Callable[[ServerEvent], None]:
    return lambda event: heard.append(label)


async def test_a_sets_notice_reaches_its_listeners_only() -> None:
    bus = SetAwareBus()
    heard: list[str] = []
    for where in (None, a_set("ops"), a_set("other")):
        token = current_set.set(where)
        try:
            bus.subscribe(_hears(heard, where.name if where else "/mcp"))
        finally:
            current_set.reset(token)
    await bus.publish(ToolsListChanged(), "ops")
    assert heard == ["ops"]
    await bus.publish(ToolsListChanged())
    assert sorted(heard) == ["/mcp", "ops", "ops", "other"]


async def test_settled_waits_for_every_coalesced_notice() -> None:
    notifier = ToolListNotifier(coalesce_seconds=0.05)
    ops = _seen_at(notifier, a_set("ops"))
    notifier.changed("tools", only="ops")
    notifier.changed("tools", only="ops")  # coalesced into the first
    notifier.changed("prompts")
    assert ops.outbound.sent == []
    await notifier.settled()
    assert sorted(ops.outbound.sent) == [
        "notifications/prompts/list_changed",
        "notifications/tools/list_changed",
    ]
    await notifier.settled()  # nothing pending: returns at once

"""Virtual MCP servers: named tool sets an admin curates, each served at
`/mcp/{name}` (`gateway.mcp.sets`).

A set selects from what `/mcp` offers a caller, never adds to it: the tools
of some MCP servers, the skills of some agents (or those with some tags),
and tools by name (exact, or a shell-style pattern such as ``crm__*``); a
tool is in the set when any selector takes it. The caller's policy still
decides inside the set, as on `/mcp`. Resources, resource templates and
prompts come with their servers (``servers``).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.models import AGENT_ID_PATTERN
from registry.tables import mcp_sets as table
from registry.urls import HttpUrlText

logger = logging.getLogger(__name__)
ToolSearchMode = Literal["off", "on", "only"]
SET_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_TargetId = Annotated[str, Field(pattern=AGENT_ID_PATTERN)]
_Tag = Annotated[str, Field(min_length=1, max_length=64)]
_ToolPattern = Annotated[str, Field(min_length=1, max_length=256)]


class McpSetSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: list[_TargetId] = Field(
        default_factory=list,
        max_length=256,
        description="every tool, resource and prompt of these MCP servers",
    )
    agents: list[_TargetId] = Field(
        default_factory=list, max_length=256, description="every skill of these agents"
    )
    tags: list[_Tag] = Field(
        default_factory=list, max_length=64, description="agents' skills with any of these tags"
    )
    tools: list[_ToolPattern] = Field(
        default_factory=list,
        max_length=512,
        description="tools by the name /mcp offers them under: exact, or a shell-style "
        "pattern (`crm__*`, `*__search`)",
    )

    @field_validator("tools", "tags")
    @classmethod
    def _printable(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if any(ord(c) < 0x21 or ord(c) == 0x7F for c in pattern):
                raise ValueError("no spaces or control characters")
        return value

    def empty(self) -> bool:
        return not (self.servers or self.agents or self.tags or self.tools)

    def takes_tool(
        self,
        name: str,
        *,
        server: str | None = None,
        agent: str | None = None,
        tags: Iterable[str] = (),
    ) -> bool:
        compiled = self._compiled
        if server is not None and server in compiled.servers:
            return True
        if agent is not None and agent in compiled.agents:
            return True
        if agent is not None and compiled.tags and not compiled.tags.isdisjoint(tags):
            return True
        if name in compiled.names:
            return True
        return compiled.patterns is not None and compiled.patterns.match(name) is not None

    @functools.cached_property
    def _compiled(self) -> _Compiled:
        """Worked out once per set: a listing asks for every tool, a call for one."""
        wild = [p for p in self.tools if any(c in p for c in "*?[")]
        return _Compiled(
            frozenset(self.servers),
            frozenset(self.agents),
            frozenset(self.tags),
            frozenset(p for p in self.tools if p not in wild),
            re.compile("|".join(fnmatch.translate(p) for p in wild)) if wild else None,
        )


@dataclass(frozen=True)
class _Compiled:
    servers: frozenset[str]
    agents: frozenset[str]
    tags: frozenset[str]
    names: frozenset[str]
    patterns: re.Pattern[str] | None


class McpSetSpec(BaseModel):
    """`PUT /mcp-sets/{name}` (and `POST /mcp-sets`, with ``name``)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, description="the server's name to clients")
    description: str = Field(default="", max_length=2000)
    instructions: str = Field(
        default="",
        max_length=16_000,
        description="told to clients at initialize (and server/discover)",
    )
    icon: HttpUrlText | None = Field(default=None, description="an https URL of the set's icon")

    @field_validator("icon")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("an icon is an https URL (clients fetch it)")
        return value

    select: McpSetSelection
    tool_search: ToolSearchMode = Field(
        default="off",
        description="off: no tool search; on: switchboard__search_tools beside the set's "
        "tools; only: just search_tools and switchboard__call_tool (progressive "
        "disclosure: a client finds a tool, then calls it by name)",
    )

    @field_validator("select")
    @classmethod
    def _selects_something(cls, value: McpSetSelection) -> McpSetSelection:
        if value.empty():
            raise ValueError("select at least one server, agent, tag or tool")
        return value


class NewMcpSet(McpSetSpec):
    name: str = Field(pattern=SET_NAME_PATTERN, description="served at /mcp/{name}")


class McpSet(NewMcpSet):
    """A set as stored and shown."""

    created_at: datetime
    updated_at: datetime
    updated_by: str

    @field_validator("select")
    @classmethod
    def _selects_something(cls, value: McpSetSelection) -> McpSetSelection:
        # Stored, a set may select nothing any more: everything it named was
        # removed (`SqlMcpSets.forget_target`). It offers nothing until an
        # admin selects again; defining a set so is refused (above).
        return value

    def path(self) -> str:
        return f"/mcp/{self.name}"


class McpSetView(BaseModel):
    """A set as a non-admin reads it: what a client is told, and where."""

    name: str
    title: str
    description: str
    instructions: str
    icon: str | None


class SetExists(Exception):
    pass


class SqlMcpSets:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, spec: NewMcpSet, by: str) -> McpSet:
        now = datetime.now(UTC)
        row = _row(spec, by, now)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(table).values(**row, created_at=now))
        except IntegrityError:
            raise SetExists(spec.name) from None
        return McpSet(**spec.model_dump(), created_at=now, updated_at=now, updated_by=by)

    async def replace(self, name: str, spec: McpSetSpec, by: str) -> tuple[McpSet, bool]:
        """Create or replace; (the set, whether it is new)."""
        now = datetime.now(UTC)
        named = NewMcpSet(name=name, **spec.model_dump())
        row = _row(named, by, now)
        async with self._engine.begin() as conn:
            done = await conn.execute(update(table).where(table.c.name == name).values(**row))
            if done.rowcount:
                created = await conn.scalar(select(table.c.created_at).where(table.c.name == name))
                return McpSet(
                    **named.model_dump(),
                    created_at=_utc(created),
                    updated_at=now,
                    updated_by=by,
                ), False
        try:
            return await self.create(named, by), True
        except SetExists:  # created meanwhile: replace that one
            return await self.replace(name, spec, by)

    async def get(self, name: str) -> McpSet | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.name == name))).first()
        return None if row is None else _parsed(row._mapping)

    async def all(self) -> list[McpSet]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(table).order_by(table.c.name))).all()
        return [_parsed(row._mapping) for row in rows]

    async def delete(self, name: str) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(delete(table).where(table.c.name == name))
        return bool(done.rowcount)

    async def forget_target(self, target: str, by: str) -> list[str]:
        """Take a removed MCP server's or agent's id out of every set that
        names it (the names of the sets changed): a server or agent
        registered later under the same id must be selected again, not
        join a curated set unseen. Each set is rewritten in one statement
        guarded by the version read (``updated_at``), so an admin's replace
        meanwhile is never undone (that set is read again)."""
        changed: list[str] = []
        for _ in range(8):  # a set replaced under us is read again; 8 is plenty
            pending = False
            async with self._engine.connect() as conn:
                query = select(table.c.name, table.c.selection, table.c.updated_at)
                rows = (await conn.execute(query)).all()
            for name, selection, read_at in rows:
                if not _names(selection, target):
                    continue
                kept = {
                    **selection,
                    "servers": [s for s in selection.get("servers", []) if s != target],
                    "agents": [a for a in selection.get("agents", []) if a != target],
                    "tools": [t for t in selection.get("tools", []) if not _of(t, target)],
                }
                async with self._engine.begin() as conn:
                    done = await conn.execute(
                        update(table)
                        .where(table.c.name == name, table.c.updated_at == read_at)
                        .values(selection=kept, updated_at=datetime.now(UTC), updated_by=by)
                    )
                if done.rowcount:
                    changed.append(name)
                else:
                    pending = True
            if not pending:
                break
        else:  # replaced under us eight times over: say so, the set still names it
            logger.warning("virtual MCP server sets still naming %s: replaced meanwhile", target)
        return changed


def _row(spec: NewMcpSet, by: str, now: datetime) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "instructions": spec.instructions,
        "icon": spec.icon,
        "selection": spec.select.model_dump(mode="json"),
        "tool_search": spec.tool_search,
        "updated_at": now,
        "updated_by": by,
    }


def _names(selection: Any, target: str) -> bool:
    return isinstance(selection, dict) and (
        target in selection.get("servers", [])
        or target in selection.get("agents", [])
        or any(_of(t, target) for t in selection.get("tools", []))
    )


def _of(tool: str, target: str) -> bool:
    """Whether a tool name or pattern is one of ``target``'s own by its
    prefix (`{id}__...`, as `/mcp` names a prefixed server's tools and an
    agent's skills): one registered later under the id must be chosen again."""
    return tool.startswith(f"{target}__")


def _utc(value: Any) -> datetime:
    moment: datetime = value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parsed(row: Any) -> McpSet:
    return McpSet(
        name=row["name"],
        title=row["title"],
        description=row["description"],
        instructions=row["instructions"],
        icon=row["icon"],
        select=McpSetSelection.model_validate(row["selection"]),
        tool_search=row["tool_search"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        updated_by=row["updated_by"],
    )

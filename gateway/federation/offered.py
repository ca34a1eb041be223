"""What the federation offers besides tools -- resources, resource templates
and prompts, each under the name it is offered by -- and what asking for one
that is not there raises."""

from __future__ import annotations

from dataclasses import dataclass

import mcp_types as types

from registry.mcp_tool_writes import NAME_FLAG
from registry.mcp_tools import ToolFlag


@dataclass(frozen=True)
class OfferedResource:
    uri: str  # as offered
    server_id: str
    upstream_uri: str
    resource: types.Resource  # the upstream's, under the offered URI


@dataclass(frozen=True)
class OfferedTemplate:
    uri_template: str
    server_id: str
    upstream_template: str
    template: types.ResourceTemplate


@dataclass(frozen=True)
class OfferedPrompt:
    name: str
    server_id: str
    upstream_name: str
    prompt: types.Prompt
    flags: tuple[ToolFlag, ...]


class ResourceNotFound(Exception):
    """No federated server offers the URI (MCP: -32602, with the URI in data)."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"Resource not found: {uri}")
        self.uri = uri


class PromptNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown prompt: {name}")
        self.name = name


class PromptWithheld(Exception):
    """The prompt's definition was flagged by the screen; it is not served."""

    def __init__(self, prompt: OfferedPrompt) -> None:
        kinds = ", ".join(sorted({flag.kind for flag in prompt.flags}))
        named = [flag.detail for flag in prompt.flags if flag.kind == NAME_FLAG]
        why = named[0] if named else f"its definition was flagged ({kinds})"
        super().__init__(f"{prompt.name} is withheld: {why}")
        self.prompt = prompt

"""`POST /mcp-servers`: what registering an MCP server takes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.mcp_models import CredentialSpec, McpTransport, NoCredential
from registry.models import AGENT_ID_PATTERN, is_absolute_uri
from registry.openapi_models import OpenApiSource
from registry.urls import HttpUrlText


class McpServerRegistration(BaseModel):
    """`POST /mcp-servers`: a URL (Streamable HTTP or HTTP+SSE), or a command
    to launch (stdio)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, pattern=AGENT_ID_PATTERN)
    url: HttpUrlText | None = None
    transport: McpTransport | None = Field(
        default=None,
        description="http (Streamable HTTP), sse (the legacy HTTP+SSE transport of MCP "
        "2024-11-05; url is its SSE endpoint, often ending in /sse) or stdio (command). "
        "Omitted: stdio for a command; for a url Streamable HTTP, or HTTP+SSE when the server "
        "answers the legacy way (MCP 'Backwards Compatibility'), which is then stored as sse",
    )
    command: str | None = Field(default=None, min_length=1, max_length=4096)
    args: list[Annotated[str, Field(max_length=4096)]] = Field(default_factory=list, max_length=64)
    resource: str | None = Field(
        default=None,
        max_length=2048,
        description="audience of tokens minted for this server (RFC 8707); defaults to its URL",
    )
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    credential: CredentialSpec = Field(default_factory=NoCredential)
    prefix_tools: bool = Field(
        default=True,
        description="offer the tools as {server}__{tool}; false: under their own names where "
        "those are free (a name another server's tool holds gets the prefixed form) and not "
        "reserved: a name with '__', starting switchboard__, or shaped like a hashed "
        "{id}__{name} is another target's (registration refused, 409 mcp-name-reserved)",
    )
    openapi: OpenApiSource | None = Field(
        default=None,
        description="a REST API by its OpenAPI 3.x document: each selected operation is a "
        "tool; url, if given, is the API's base URL (default: the document's first server)",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerRegistration:
        if self.openapi is not None:
            return self._openapi_alone()
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of url (Streamable HTTP) or command (stdio)")
        if self.transport is not None and (self.transport == "stdio") != (self.url is None):
            wanted = "command" if self.transport == "stdio" else "url"
            raise ValueError(f"transport {self.transport} goes with {wanted}")
        if self.command is not None and self.credential.type != "none":
            raise ValueError("a stdio server takes no credential")
        if self.args and self.command is None:
            raise ValueError("args go with command")
        if self.resource is not None and not is_absolute_uri(self.resource):
            raise ValueError("resource must be an absolute URI without a fragment (RFC 8707)")
        for text in (self.command or "", *self.args):
            if "\x00" in text:
                raise ValueError("command and args cannot contain NUL")
        return self

    def _openapi_alone(self) -> McpServerRegistration:
        if self.command is not None or self.args:
            raise ValueError("openapi takes no command: the API is reached over HTTP")
        if self.transport is not None:
            raise ValueError("openapi takes no transport: the API is reached by its document")
        if self.resource is not None and not is_absolute_uri(self.resource):
            raise ValueError("resource must be an absolute URI without a fragment (RFC 8707)")
        return self

    @property
    def reached_by(self) -> McpTransport:
        """The transport to try first: the one given, else by url or command."""
        return self.transport or ("http" if self.url is not None else "stdio")

    @property
    def detect_legacy(self) -> bool:
        """A url given without a transport: HTTP+SSE is tried when Streamable HTTP is
        answered the legacy way."""
        return self.transport is None and self.url is not None

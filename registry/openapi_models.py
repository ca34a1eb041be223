"""`POST /mcp-servers` with ``openapi``: a REST API registered by its OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.openapi_tools import MAX_OPERATIONS
from registry.urls import HttpUrlText


class OpenApiSource(BaseModel):
    """Where the document is (``url``, fetched by the gateway under its SSRF
    rules) or the document itself, and which of its operations become tools."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrlText | None = Field(default=None, description="where the gateway fetches it")
    document: dict[str, Any] | None = Field(default=None, description="the document itself")
    operations: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list,
        max_length=MAX_OPERATIONS,
        description="the operationIds to offer as tools (default: all, or those of tag)",
    )
    tag: str | None = Field(
        default=None, min_length=1, max_length=200, description="offer the operations so tagged"
    )

    @model_validator(mode="after")
    def _one_source(self) -> OpenApiSource:
        if (self.url is None) == (self.document is None):
            raise ValueError("openapi takes exactly one of url or document")
        return self

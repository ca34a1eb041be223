"""The settings of `/mcp`'s own offerings (`gateway.mcp.front`): a part of `Settings`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class McpFrontOptions(BaseModel):
    mcp_tools_page_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Tools per page of /mcp's tools/list (MCP cursor pagination): every "
        "agent's skills are tools, so a large registry lists in pages.",
    )
    mcp_tool_search: bool = Field(
        default=True,
        description="Offer switchboard__search_tools on /mcp: the tools a caller may call "
        "that best match a query, ranked by BM25F over their names, titles, descriptions "
        "and parameters (virtual servers choose for themselves: a set's tool_search).",
    )
    mcp_tool_search_semantic: bool = Field(
        default=True,
        description="Fuse tool search's lexical rank with a semantic one (all-MiniLM-L6-v2, "
        "run in numpy) when the extra switchboard[semantic] is installed: loaded on the "
        "first search, in a worker thread; each tool embedded once when indexed. False: "
        "lexical only, the model never loaded.",
    )
    mcp_tool_search_private_queries: bool = Field(
        default=False,
        description="Keep search queries out of the audit log: each switchboard__search_tools "
        "call is still recorded (who, where, how many tools found), without its query.",
    )
    mcp_change_watch_seconds: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="How often each replica reads whether sets or the catalog changed on "
        "another replica, to tell its own MCP clients (notifications/tools/list_changed); "
        "0: never (one replica).",
    )

"""The stamp on a 2026-07-28 `tools/call` the gateway sends itself, owned.

The SDK stamps each request inside `ClientSession.send_request` (its
`_make_modern_stamp`, mcp 2.x ``mcp/client/session.py``) and keeps the
stamp and the per-tool ``Mcp-Param-*`` maps private. The pass-through
(`adapters.mcp_passthrough`) sends its `tools/call` itself, so it stamps it
the same way from public names (MCP 2026-07-28 "Transports", Streamable
HTTP request headers; "Base protocol", request ``_meta``):

* ``_meta``: the session's protocol version (`ClientSession.
  protocol_version`), the client info the gateway gives `mcp.Client`
  (`adapters.mcp_client.CLIENT_INFO`), and the caller's capabilities, as
  the gateway's wrapper of the SDK's stamp puts them
  (`adapters.mcp_relay.upstream_capabilities`). No log level: the gateway
  gives `mcp.Client` none, so its session stamps none; a caller's own
  opt-in is in the call's ``_meta`` already (`adapters.mcp_calls.
  log_opt_in`);
* the ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` headers,
  and ``Mcp-Param-*`` from the tool's ``x-mcp-header`` annotations in the
  session's latest listing (`mcp.shared.inbound.x_mcp_header_map`,
  `mcp_param_headers`): a tool never listed gets none, as with the SDK.

The hot path: what does not change per call is built once per session
(the ``_meta`` entries, the fixed headers) or per listing (each tool's
encoded name and header map); a call walks no schema.
`tests/adapters/test_mcp_stamp.py` fails if this ever differs from the
SDK's own stamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    encode_header_value,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from adapters.mcp_client import CLIENT_INFO, ToolList
from adapters.mcp_relay import upstream_capabilities

METHOD: Final = "tools/call"
LISTING: Final = "tools/list"
# As `ClientSession.adopt` dumps the client info for its stamp.
_CLIENT_INFO: Final = CLIENT_INFO.model_dump(by_alias=True, mode="json", exclude_none=True)

HeaderMap = dict[tuple[str, ...], str]


class ToolCallStamp:
    """One 2026-07-28 session's stamp for `tools/call`; `tools_listed` on
    every listing through that session keeps its ``Mcp-Param-*`` maps."""

    def __init__(self, protocol_version: str) -> None:
        self._meta: Final = {
            PROTOCOL_VERSION_META_KEY: protocol_version,
            CLIENT_INFO_META_KEY: _CLIENT_INFO,
        }
        self._headers: Final = {
            MCP_PROTOCOL_VERSION_HEADER: protocol_version,
            MCP_METHOD_HEADER: METHOD,
        }
        # Per listed tool: its encoded Mcp-Name, and its header map (None
        # when it has no annotation, so a call skips the argument walk).
        self._tools: dict[str, tuple[str, HeaderMap | None]] = {}
        self._listing: ToolList | None = None  # the listing the maps are of

    def tools_listed(self, tools: ToolList) -> None:
        """The session's latest listing (every page). The SDK has already
        dropped a tool with an invalid annotation from it (2026-07-28: the
        client MUST). A listing replaces the maps: the SDK's prunes them to
        a single-page listing's tools, and only adds from a paged one."""
        if tools == self._listing:  # a probe's usual answer: the maps stand
            return
        self._listing = tools
        listed: dict[str, tuple[str, HeaderMap | None]] = {}
        for tool in tools:
            name = tool["name"]
            listed[name] = (
                encode_header_value(name),
                x_mcp_header_map(tool.get("inputSchema")) or None,
            )
        self._tools = listed

    def _stamp_session(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        """What every request of the session carries: its ``_meta`` (the
        protocol version, the client's info and capabilities) and headers."""
        meta = params.setdefault("_meta", {})
        meta.update(self._meta)
        meta[CLIENT_CAPABILITIES_META_KEY] = upstream_capabilities()
        headers.update(self._headers)

    def stamp_listing(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        """Stamp a `tools/list` (its first page) as the session stamps one:
        the same ``_meta``, the method's header, no name."""
        self._stamp_session(params, headers)
        headers[MCP_METHOD_HEADER] = LISTING

    def stamp(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        """Stamp a `tools/call`'s ``params`` (``name``, ``arguments``, any
        ``_meta`` of the call's own) and add its headers to ``headers``."""
        self._stamp_session(params, headers)
        name: str = params["name"]
        tool = self._tools.get(name)
        if tool is None:
            headers[MCP_NAME_HEADER] = encode_header_value(name)
            return
        encoded, header_map = tool
        headers[MCP_NAME_HEADER] = encoded
        if header_map is not None:
            arguments: Mapping[str, Any] = params.get("arguments") or {}
            headers.update(mcp_param_headers(header_map, arguments))

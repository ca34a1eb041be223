"""The mcp SDK client's private names the adapters need (mcp 2.x).

The gateway's SDK touches live in `gateway.compat`, one module per SDK; these
are the client session's, needed by `adapters/`, which may not import
`gateway/` (tests/test_layout.py), so they are fenced here instead. Each
function says what the SDK lacks publicly; tests/adapters/test_compat_mcp.py
fails if an upgrade moves or changes a name."""

from __future__ import annotations

from typing import Any

from mcp.client.session import ClientSession
from mcp.shared.dispatcher import CallOptions


def stamp(session: ClientSession, data: dict[str, Any], opts: CallOptions) -> None:
    """Stamp a request the gateway sends itself (the pass-through's
    `tools/call`, `adapters.mcp_passthrough`) as ``session`` stamps its own:
    ``_meta`` (protocol version, client info, capabilities) and the
    ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name`` and
    ``Mcp-Param-*`` headers, the last from the session's latest
    `tools/list`. The SDK applies its stamp only inside its own
    `send_request` and keeps the per-tool header maps private."""
    session._stamp(data, opts)

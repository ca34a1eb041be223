"""What the unit tests of the MCP client side (`adapters.mcp*`) share: the
HTTP client the adapters are handed, allowed to reach loopback servers, and
a caller of one upstream call (`StubRelay`)."""

from __future__ import annotations

from typing import Any

import httpx2
import mcp_types as types

from adapters.mcp_http import UpstreamAuth, checked_client
from registry.ssrf import AddressPolicy

LOOPBACK = AddressPolicy(allow_loopback=True)
FORM_ELICITATION: dict[str, Any] = {"elicitation": {"form": {}}}


def loopback_http(auth: UpstreamAuth, cap: int = 1 << 20) -> httpx2.AsyncClient:
    """The adapters' HTTP client (`checked_client`) for servers on 127.0.0.1."""
    return checked_client(
        LOOPBACK, auth, connect_timeout_seconds=2, read_timeout_seconds=10, max_response_bytes=cap
    )


class StubRelay:
    """A caller as the adapters see it (`adapters.mcp_relay.CallRelay`): what
    it declared, the log level it asked for, the log lines it was sent; a
    question of the upstream's, or a line sent to a caller who asked for
    none (``level`` None), fails the test."""

    def __init__(
        self,
        capabilities: dict[str, Any] | None = None,
        level: types.LoggingLevel | None = None,
    ) -> None:
        self.capabilities = FORM_ELICITATION if capabilities is None else capabilities
        self.level = level
        self.lines: list[types.LoggingMessageNotificationParams] = []

    def upstream_capabilities(self) -> dict[str, Any]:
        return self.capabilities

    def log_level(self) -> types.LoggingLevel | None:
        return self.level

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        if self.level is None:
            raise AssertionError(f"a caller who asked for no log lines was sent {params}")
        self.lines.append(params)

    async def elicit(self, params: Any) -> Any:
        raise AssertionError("no question is asked here")

    async def sample(self, params: Any) -> Any:
        raise AssertionError("no question is asked here")

    async def list_roots(self) -> Any:
        raise AssertionError("no question is asked here")

"""The mcp SDK client's private names the adapters need (mcp 2.x).

The gateway's SDK touches live in `gateway.compat`, one module per SDK; these
are the client session's, needed by `adapters/`, which may not import
`gateway/` (tests/test_layout.py), so they are fenced here instead. Each
function says what the SDK lacks publicly; tests/adapters/test_compat_mcp.py
fails if an upgrade moves or changes a name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.client.session import ClientSession
from mcp.shared.dispatcher import CallOptions

Stamp = Callable[[dict[str, Any], CallOptions], None]
RawResults = Callable[[str, Any], Any]


def amend_stamp(session: ClientSession, amend: Callable[[dict[str, Any]], None]) -> bool:
    """Make ``session`` call ``amend`` on each request (``{"method",
    "params"}``) after its own stamp; False (nothing changed) if this SDK's
    session has no stamp. The SDK stamps one fixed capability set into every
    request's ``_meta`` and a ``_meta`` passed to a call cannot override it,
    where the gateway forwards each caller's own (`adapters.mcp_relay`).
    Call it once connected: the SDK installs the stamp when it negotiates."""
    inner: Stamp | None = getattr(session, "_stamp", None)
    if inner is None:
        return False

    def stamped(data: dict[str, Any], opts: CallOptions) -> None:
        inner(data, opts)
        amend(data)

    session._stamp = stamped
    return True


def amend_raw_results(session: ClientSession, amend: RawResults) -> bool:
    """Make ``session`` pass each raw result through ``amend(method, raw)``
    before its `send_request` checks and parses it; False (nothing changed)
    if this SDK's session has no dispatcher to wrap. Once per session: a
    second call changes nothing. The SDK checks a result against the
    revision's schema with no hook between the wire and the check, where
    the gateway reads a 2026-07-28 result without ``resultType`` as
    complete (`adapters.mcp_results.lenient_results`)."""
    dispatcher = getattr(session, "_dispatcher", None)
    inner: Callable[..., Awaitable[Any]] | None = getattr(dispatcher, "send_raw_request", None)
    if inner is None:
        return False
    if getattr(inner, "amended_by_switchboard", False):
        return True

    async def send_raw_request(method: str, params: Any, opts: Any = None, **extra: Any) -> Any:
        return amend(method, await inner(method, params, opts, **extra))

    send_raw_request.amended_by_switchboard = True  # type: ignore[attr-defined]
    dispatcher.send_raw_request = send_raw_request  # type: ignore[union-attr]
    return True

"""The one tree of an upstream's failures, for every adapter.

A gateway-run agent's adapter (an OpenAI-compatible endpoint, a REST
webhook), an MCP server's client and an OpenAPI-described REST API all fail
as one of these, mapped at the boundary (as httpx maps httpcore's), so the
gateway answers each in the caller's protocol without knowing which library
or wire format was underneath:

    AdapterError
    ├── UpstreamUnavailable        not reachable now (it may be later)
    │   ├── UpstreamTimeout        no answer within the deadline
    │   └── UpstreamServerError    an HTTP 5xx or 429, no JSON-RPC error
    ├── UpstreamFailed             it answered with an error
    │   └── UpstreamError          an MCP server's JSON-RPC error
    ├── UpstreamInvalid            its answer breaks its wire format or mapping
    ├── InputInvalid               the call cannot be made of the request
    └── OwnFailure                 the gateway's own part failed, not the upstream
"""

from __future__ import annotations

from typing import Any


class AdapterError(Exception):
    """Anything that went wrong calling a gateway-run agent."""


class UpstreamUnavailable(AdapterError):
    """The upstream cannot be reached now (not connected, connection refused or
    lost), or may not be (an SSRF refusal)."""


class UpstreamTimeout(UpstreamUnavailable):
    """The upstream did not answer within the deadline."""


class UpstreamServerError(UpstreamUnavailable):
    """The server, or a proxy before it, answered the call with an HTTP server
    error (5xx) -- it may or may not have run the call -- or 429 Too Many
    Requests, and no JSON-RPC error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UpstreamFailed(AdapterError):
    """The upstream answered with an error (HTTP status >= 400, or an error object)."""

    def __init__(
        self, message: str, status: int | None = None, challenge: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        # A 401's or 403's WWW-Authenticate (RFC 6750 §3): what a user's own
        # token lacked, for connected accounts (`gateway.connections`).
        self.challenge = challenge


class UpstreamError(UpstreamFailed):
    """An MCP server answered the call with a JSON-RPC error (its code, message
    and data, as the caller is to see them)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class UpstreamInvalid(AdapterError):
    """The upstream's answer is not what its wire format or mapping says it must be."""


class InputInvalid(AdapterError):
    """The message cannot be turned into a request for this upstream."""


class OwnFailure(AdapterError):
    """The gateway's own part of keeping a connection failed -- getting its
    credential, recording the upstream's health or tools (its database down,
    say) -- not the upstream. Raised with that failure as its cause, so that
    whoever reads the cause chain finds what really failed."""

"""The interface every gateway-run upstream implements.

An agent that does not speak A2A (an OpenAI-compatible chat endpoint, a REST
webhook) is served as an A2A agent by the gateway; its adapter only turns one
`Turn` into one `Reply` -- or into a stream of `Delta`s ending in a `Reply`.
Adapters know nothing of A2A, FastAPI or the database: the gateway converts
A2A messages to turns and replies to A2A artifacts (`gateway.agents.vendor`), and
runs the call as a task (`gateway.delegation.task_runner`).

Failures leave an adapter as one of the `AdapterError` classes
(`adapters.errors`, the one tree of every adapter's failures), mapped at the
boundary (`http_failure`, as httpx maps httpcore's), so the gateway can
answer each with the right A2A error without knowing which HTTP library was
underneath.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.errors import (
    AdapterError,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from adapters.http import UpstreamBadAnswer, UpstreamRefused
from adapters.usage import Usage

# JSON as the standard library parses it; adapters hand it on, never eval it.
JSON = Any


@dataclass(frozen=True)
class Turn:
    """One request to a gateway-run agent."""

    text: str  # the message's text parts, joined by newlines
    data: JSON = None  # the message's first data part, if any
    skill: str | None = None
    task_id: str = ""
    context_id: str = ""


@dataclass(frozen=True)
class Reply:
    """The agent's whole answer: text, structured data, or both."""

    text: str | None = None
    data: JSON = None
    # What the upstream says the answer cost (`adapters.usage`), when it says.
    usage: Usage | None = None


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer's text."""

    text: str


@dataclass(frozen=True)
class Credentials:
    """The headers that authenticate the gateway upstream (the API key, and
    the minted token when the registration asks for it). Never the caller's."""

    headers: Mapping[str, str] = field(default_factory=dict)

    def scrub(self, text: str) -> str:
        """``text`` with every credential value blanked out, for error messages
        built from an upstream's answer (one that echoes its headers)."""
        for value in self.headers.values():
            for secret in {value, value.removeprefix("Bearer ")}:
                if len(secret) >= 4:
                    text = text.replace(secret, "***")
        return text


class Adapter(ABC):
    """One upstream: call, stream, cancel, close."""

    @abstractmethod
    async def call(self, turn: Turn, credentials: Credentials, *, timeout_seconds: float) -> Reply:
        """The whole answer to ``turn``."""

    async def stream(
        self, turn: Turn, credentials: Credentials, *, timeout_seconds: float
    ) -> AsyncIterator[Delta | Reply]:
        """Pieces of the answer as they come, the last item a `Reply` with the
        whole of it. Upstreams that do not stream answer in one piece."""
        yield await self.call(turn, credentials, timeout_seconds=timeout_seconds)

    def check(self, turn: Turn) -> None:  # noqa: B027 - optional hook
        """Raise `InputInvalid` if ``turn`` cannot be sent at all (before a task
        is created for it); the default accepts everything."""

    async def cancel(self, task_id: str) -> None:  # noqa: B027 - optional hook
        """Ask the upstream to stop work on ``task_id``, where it has a way to.
        The gateway cancels the running call itself (closing its connection);
        neither upstream here has anything more to be told."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the adapter holds (the shared HTTP pool is not its own)."""


def http_failure(exc: httpx.HTTPError, what: str, timeout_seconds: float) -> AdapterError:
    """Map the HTTP client's errors (see `adapters.http`) into the tree above."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, UpstreamRefused):
            return UpstreamUnavailable(f"{what} may not be called: {cause}")
        cause = cause.__cause__
    if isinstance(exc, UpstreamBadAnswer):
        return UpstreamInvalid(f"{what}: {exc}")
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout(f"{what} did not answer within {timeout_seconds:g} s")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return UpstreamUnavailable(f"{what} could not be reached (connection failed)")
    return UpstreamUnavailable(f"{what} could not be reached (connection lost)")

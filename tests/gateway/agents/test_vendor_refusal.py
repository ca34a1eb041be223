"""What a vendor's refusal of a `user_oauth` call means (`vendor_run._refusal`):
the user's own token refused only when the vendor says so the bearer way."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.errors import UpstreamFailed, UpstreamTimeout
from gateway.agents.vendor_run import _refusal
from gateway.connections.errors import ConnectionRequired


class Token:
    """A `CallToken` of a `user_oauth` agent (this unit's one collaborator)."""

    def __init__(self, upstream: Any = "vendor") -> None:
        self.upstream = upstream
        self.noted: list[tuple[int, str | None]] = []

    def answered(self, status: int, challenge: str | None = None) -> None:
        self.noted.append((status, challenge))

    async def refused(self) -> ConnectionRequired | None:
        if not self.noted:
            return None
        return ConnectionRequired("vendor", "https://gw.example/connect", "refused")


@pytest.mark.parametrize(
    ("failure", "refusal"),
    [
        (UpstreamFailed("x", 401, 'Bearer error="invalid_token"'), True),
        (UpstreamFailed("x", 401, "bearer"), True),
        (UpstreamFailed("x", 403, 'Bearer error="insufficient_scope"'), True),
        # Another credential refused (an API key sent alongside): not the user's token.
        (UpstreamFailed("x", 401, 'ApiKey realm="vendor"'), False),
        (UpstreamFailed("x", 401, None), False),
        (UpstreamFailed("x", 500, 'Bearer error="invalid_token"'), False),
        (UpstreamTimeout("slow"), False),
    ],
)
async def test_only_a_bearer_refusal_is_the_users_token_refused(
    failure: Exception, refusal: bool
) -> None:
    token = Token()
    needed = await _refusal(token, failure)  # type: ignore[arg-type]
    assert (needed is not None) is refusal
    assert bool(token.noted) is refusal


async def test_an_agent_taking_the_gateways_token_has_no_refusal_to_read() -> None:
    token = Token(upstream=None)
    failure = UpstreamFailed("x", 401, "Bearer")
    assert await _refusal(token, failure) is None  # type: ignore[arg-type]
    assert token.noted == []

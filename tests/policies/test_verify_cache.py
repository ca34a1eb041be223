"""The verified-token cache must never accept what a fresh verification would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from policies.keys import SigningKey
from policies.tokens import TokenInvalid, TokenVerifier, TrustedIssuer, mint_access_token
from tests.support.clock import Clock

ISSUER = "https://gateway.example"


class Keys:
    def __init__(self, key: SigningKey) -> None:
        self.published: dict[str, dict[str, Any]] = {key.kid: key.public_jwk}
        self.lookups = 0

    async def get(self, kid: str) -> dict[str, Any] | None:
        self.lookups += 1
        return self.published.get(kid)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def token(key: SigningKey, clock: Clock, ttl: int = 60, audience: str = ISSUER) -> str:
    return mint_access_token(
        key,
        issuer=ISSUER,
        subject="alice",
        audience=audience,
        scopes=["a"],
        ttl_seconds=ttl,
        client_id="app",
        now=clock.now,
    )


async def test_a_cached_token_expires_on_time(key: SigningKey) -> None:
    clock, keys = Clock(1_800_000_000.0), Keys(key)
    verifier = TokenVerifier([TrustedIssuer(ISSUER, keys, ISSUER)], clock=clock, leeway_seconds=0)
    value = token(key, clock, ttl=60)
    assert (await verifier.verify(value)).subject == "alice"
    assert (await verifier.verify(value)).subject == "alice"  # from the cache
    clock.now += 61
    with pytest.raises(TokenInvalid, match="expired"):
        await verifier.verify(value)


async def test_a_cached_token_stops_working_when_its_key_is_retired(key: SigningKey) -> None:
    clock, keys = Clock(1_800_000_000.0), Keys(key)
    verifier = TokenVerifier([TrustedIssuer(ISSUER, keys, ISSUER)], clock=clock)
    value = token(key, clock)
    await verifier.verify(value)
    keys.published.clear()  # rotated out with --retire-after 0
    with pytest.raises(TokenInvalid, match="kid"):
        await verifier.verify(value)


async def test_the_cache_is_per_expected_audience(key: SigningKey) -> None:
    clock, keys = Clock(1_800_000_000.0), Keys(key)
    verifier = TokenVerifier([TrustedIssuer(ISSUER, keys, ISSUER)], clock=clock)
    for_agent = token(key, clock, audience="https://agent.example/")
    principal = await verifier.verify(for_agent, audience="https://agent.example/")
    assert principal.subject == "alice"
    # Verified once for the agent's audience; that must not make it good for the gateway.
    with pytest.raises(TokenInvalid, match="audience"):
        await verifier.verify(for_agent)
    with pytest.raises(TokenInvalid, match="audience"):
        await verifier.verify(for_agent, audience="https://other.example/")


async def test_the_cache_is_bounded(key: SigningKey) -> None:
    clock, keys = Clock(1_800_000_000.0), Keys(key)
    verifier = TokenVerifier([TrustedIssuer(ISSUER, keys, ISSUER)], clock=clock, cache_size=2)
    values = [token(key, clock, ttl=60 + i) for i in range(3)]
    for value in values:
        await verifier.verify(value)
    assert len(verifier._verified) == 2

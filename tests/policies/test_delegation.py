"""policies.delegation: the `act` chain and the minter with its cache.

Minted tokens are checked with PyJWT (not python-jose, which signs them) so the
claims are verified independently of the code that produced them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import policies.delegation as delegation_module
from policies.delegation import (
    MAX_ACT_DEPTH,
    MAX_DELEGATED_TTL_SECONDS,
    DelegatedTokenMinter,
    MintedToken,
    MintRequest,
    act_claim,
    actors_of,
)
from policies.keys import SigningKey
from policies.tokens import (
    TokenInvalid,
    TokenVerifier,
    TrustedIssuer,
    mint_access_token,
    usable_until,
)

ISSUER = "https://switchboard.example"
AUDIENCE = "https://inventory.example/a2a"


class FakeKeys:
    """An ActiveKeySource; `calls` counts the signatures made with its key
    (the `keys` fixture wraps the minter's signing function to count them)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.calls = 0

    async def active_key(self) -> SigningKey:
        return self.key


class Clock:
    """An injectable clock the tests move by hand. It starts at the real time
    (whole seconds) so that PyJWT's own exp/iat/nbf checks pass."""

    def __init__(self) -> None:
        self.start = float(int(time.time()))
        self.now = self.start

    def __call__(self) -> float:
        return self.now


class MemoryKeys:
    def __init__(self, key: SigningKey) -> None:
        self._key = key

    async def get(self, kid: str) -> dict[str, Any] | None:
        return self._key.public_jwk if kid == self._key.kid else None


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def keys(signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> FakeKeys:
    fake = FakeKeys(signing_key)

    def counting(*args: Any, **kwargs: Any) -> str:
        fake.calls += 1
        return mint_access_token(*args, **kwargs)

    monkeypatch.setattr(delegation_module, "mint_access_token", counting)
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def minter(keys: FakeKeys, clock: Clock) -> DelegatedTokenMinter:
    return DelegatedTokenMinter(keys, ISSUER, clock=clock)


def request(**changes: Any) -> MintRequest:
    base = MintRequest(
        subject="alice",
        subject_issuer="https://idp.example",
        actors=("support-app", "support-agent"),
        audience=AUDIENCE,
        scopes=frozenset({"orders:read", "inventory:read"}),
        client_id="support-agent",
    )
    return dataclasses.replace(base, **changes)


def decode(token: str, key: SigningKey) -> dict[str, Any]:
    """Verify with PyJWT and the public JWK only: signature, iss, aud, exp, iat, nbf."""
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(key.public_jwk).key,
        algorithms=["ES256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]},
    )
    return claims


# --------------------------------------------------------------------------- act claim


actor_names = st.text(min_size=1, max_size=20)


@given(st.lists(actor_names, min_size=1, max_size=MAX_ACT_DEPTH).map(tuple))
def test_act_claim_round_trips(actors: tuple[str, ...]) -> None:
    # Through JSON too: that is how the claim travels inside a token.
    claim = json.loads(json.dumps(act_claim(actors)))
    assert actors_of({"act": claim}) == actors
    # RFC 8693 §4.1: the current actor (the last one) is the outermost.
    assert claim["sub"] == actors[-1]


def test_act_claim_nests_oldest_innermost() -> None:
    assert act_claim(("app", "a", "b")) == {"sub": "b", "act": {"sub": "a", "act": {"sub": "app"}}}


def test_act_claim_needs_an_actor() -> None:
    with pytest.raises(ValueError, match="at least one actor"):
        act_claim(())


def test_no_act_claim_means_no_actors() -> None:
    assert actors_of({"sub": "alice"}) == ()
    # A null act is read as absent; the token endpoint then refuses a delegated
    # token without actors, so this cannot smuggle an empty chain through.
    assert actors_of({"act": None}) == ()


def test_exactly_max_depth_is_accepted() -> None:
    actors = tuple(f"a{i}" for i in range(MAX_ACT_DEPTH))
    assert actors_of({"act": act_claim(actors)}) == actors


def test_deeper_than_max_depth_is_refused() -> None:
    actors = tuple(f"a{i}" for i in range(MAX_ACT_DEPTH + 1))
    with pytest.raises(TokenInvalid, match="too deeply"):
        actors_of({"act": act_claim(actors)})


@pytest.mark.parametrize(
    "act",
    [
        "support-agent",
        ["support-agent"],
        42,
        True,
        {},
        {"sub": ""},
        {"sub": None},
        {"sub": 7},
        {"sub": ["a"]},
        {"act": {"sub": "a"}},  # no sub at the top
        {"sub": "a", "act": "b"},  # malformed deeper down
        {"sub": "a", "act": {"sub": ""}},
        {"sub": "a", "act": {"sub": "b", "act": []}},
    ],
)
def test_malformed_act_is_refused(act: Any) -> None:
    with pytest.raises(TokenInvalid, match="malformed"):
        actors_of({"act": act})


# --------------------------------------------------------------------------- minted claims


async def test_minted_claims_verify_independently(
    minter: DelegatedTokenMinter, signing_key: SigningKey, clock: Clock
) -> None:
    minted = await minter.mint(request())
    claims = decode(minted.token, signing_key)

    assert claims["iss"] == ISSUER
    assert claims["sub"] == "alice"
    assert claims["aud"] == AUDIENCE
    assert claims["act"] == {"sub": "support-agent", "act": {"sub": "support-app"}}
    assert claims["scope"].split() == ["inventory:read", "orders:read"]
    assert claims["client_id"] == "support-agent"
    assert claims["iat"] == claims["nbf"] == int(clock.start)
    assert 0 < claims["exp"] - claims["iat"] <= MAX_DELEGATED_TTL_SECONDS
    assert claims["exp"] == minted.expires_at
    assert claims["jti"] == minted.token_id
    assert minted.scopes == request().scopes
    assert minted.cached is False


async def test_minted_header_is_an_access_token_naming_its_key(
    minter: DelegatedTokenMinter, signing_key: SigningKey
) -> None:
    header = jwt.get_unverified_header((await minter.mint(request())).token)
    assert header["typ"] == "at+jwt"
    assert header["kid"] == signing_key.kid
    assert header["alg"] == "ES256"


async def test_shorter_ttl_is_honoured(keys: FakeKeys, clock: Clock) -> None:
    minter = DelegatedTokenMinter(keys, ISSUER, ttl_seconds=60, clock=clock)
    claims = decode((await minter.mint(request())).token, keys.key)
    assert claims["exp"] - claims["iat"] == 60


async def test_jti_is_unique_per_minted_token(minter: DelegatedTokenMinter) -> None:
    # Different audiences so that every call really mints.
    minted = [await minter.mint(request(audience=f"https://a{i}.example")) for i in range(50)]
    assert len({m.token_id for m in minted}) == 50
    assert all(not m.cached for m in minted)


async def test_minted_token_passes_the_gateways_verifier(
    minter: DelegatedTokenMinter, signing_key: SigningKey
) -> None:
    verifier = TokenVerifier(
        [TrustedIssuer(ISSUER, MemoryKeys(signing_key), "https://switchboard.example/agents")],
        clock=time.time,
    )
    principal = await verifier.verify((await minter.mint(request())).token, audience=AUDIENCE)
    assert actors_of(principal.claims) == ("support-app", "support-agent")


# --------------------------------------------------------------------------- cache


async def test_identical_request_is_served_from_cache(
    minter: DelegatedTokenMinter, keys: FakeKeys
) -> None:
    first = await minter.mint(request())
    second = await minter.mint(request())

    assert second.cached is True
    assert (second.token, second.token_id, second.expires_at) == (
        first.token,
        first.token_id,
        first.expires_at,
    )
    assert keys.calls == 1  # no second signature


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "bob"},
        # "alice" at two IdPs are two users.
        {"subject_issuer": "https://other-idp.example"},
        {"actors": ("support-app",)},
        {"actors": ("support-app", "support-agent", "sales-agent")},
        {"actors": ("support-agent", "support-app")},  # same actors, other order
        {"audience": "https://sales.example/a2a"},
        {"scopes": frozenset({"orders:read"})},
        {"scopes": frozenset({"orders:read", "inventory:read", "inventory:write"})},
        {"client_id": "support-app"},
    ],
)
async def test_any_differing_key_component_misses_the_cache(
    minter: DelegatedTokenMinter, keys: FakeKeys, changes: dict[str, Any]
) -> None:
    first = await minter.mint(request())
    other = await minter.mint(request(**changes))

    assert other.cached is False
    assert other.token != first.token
    assert keys.calls == 2
    # And the original entry is still there for the original request.
    assert (await minter.mint(request())).cached is True


async def test_cache_not_used_within_refresh_margin(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    # ttl 300 -> margin max(5, 300 // 5) = 60 s of remaining life required.
    first = await minter.mint(request())
    clock.now = clock.start + 239  # 61 s left: still worth handing out
    assert (await minter.mint(request())).token == first.token

    clock.now = clock.start + 240  # exactly 60 s left: too close to expiry
    renewed = await minter.mint(request())
    assert renewed.cached is False
    assert renewed.token != first.token
    assert renewed.expires_at == int(clock.start) + 240 + 300


async def test_expired_cache_entry_is_replaced(minter: DelegatedTokenMinter, clock: Clock) -> None:
    first = await minter.mint(request())
    clock.now = clock.start + 1000
    renewed = await minter.mint(request())
    assert renewed.cached is False
    assert renewed.expires_at > first.expires_at


async def test_not_after_caps_exp(
    minter: DelegatedTokenMinter, signing_key: SigningKey, clock: Clock
) -> None:
    minted = await minter.mint(request(not_after=clock.start + 100.7))
    assert minted.expires_at == int(clock.start) + 100
    assert decode(minted.token, signing_key)["exp"] == int(clock.start) + 100


async def test_not_after_later_than_ttl_does_not_extend(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    minted = await minter.mint(request(not_after=clock.start + 3600))
    assert minted.expires_at == int(clock.start) + MAX_DELEGATED_TTL_SECONDS


async def test_cached_token_outliving_not_after_is_not_reused(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    long_lived = await minter.mint(request())
    # The same user/chain/target, but derived from a token that ends sooner:
    # the cached token would outlive its source.
    capped = await minter.mint(request(not_after=clock.start + 200))

    assert capped.cached is False
    assert capped.token != long_lived.token
    assert capped.expires_at == int(clock.start) + 200


async def test_cached_token_within_not_after_is_reused(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    first = await minter.mint(request(not_after=clock.start + 200))
    # A later source token is no reason to mint again.
    again = await minter.mint(request(not_after=clock.start + 250))
    assert again.cached is True
    assert again.token == first.token


@pytest.mark.parametrize("offset", [-100.0, -0.5, 0.0, 0.5])
async def test_not_after_not_in_the_future_is_refused(
    minter: DelegatedTokenMinter, keys: FakeKeys, clock: Clock, offset: float
) -> None:
    # 0.5 s left truncates to the issue second: a token with no life at all.
    with pytest.raises(TokenInvalid, match="expired"):
        await minter.mint(request(not_after=clock.start + offset))
    assert keys.calls == 0  # refused before any signature


async def test_a_source_the_door_accepts_in_its_leeway_is_delegated(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    """Issue 57: one rule for "expired". A user's token 10 s past its `exp`
    is accepted at the door (30 s leeway), and the door hands on when it stops
    accepting it (`usable_until`): the token minted from it ends then, and
    from then on it is refused as the door refuses it."""
    end = usable_until(clock.start - 10, 30)
    minted = await minter.mint(request(not_after=end))
    assert minted.expires_at == int(clock.start) + 20
    with pytest.raises(TokenInvalid, match="expired"):
        await minter.mint(request(not_after=usable_until(clock.start - 30, 30)))


async def test_expired_source_is_refused_even_with_a_cached_token(
    minter: DelegatedTokenMinter, clock: Clock
) -> None:
    await minter.mint(request())
    with pytest.raises(TokenInvalid):
        await minter.mint(request(not_after=clock.start - 1))


async def test_cache_is_lru_bounded(keys: FakeKeys, clock: Clock) -> None:
    minter = DelegatedTokenMinter(keys, ISSUER, max_entries=2, clock=clock)
    a, b, c = (request(audience=f"https://{n}.example") for n in "abc")

    await minter.mint(a)
    await minter.mint(b)
    assert (await minter.mint(a)).cached  # a is now the most recently used
    await minter.mint(c)  # evicts b, the least recently used

    assert (await minter.mint(a)).cached
    assert (await minter.mint(c)).cached
    assert not (await minter.mint(b)).cached  # re-minted: b was evicted
    assert keys.calls == 4


@pytest.mark.parametrize("ttl", [0, -1, MAX_DELEGATED_TTL_SECONDS + 1, 3600])
def test_ttl_outside_bounds_is_refused(keys: FakeKeys, ttl: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.300"):
        DelegatedTokenMinter(keys, ISSUER, ttl_seconds=ttl)


@pytest.mark.parametrize("ttl", [1, MAX_DELEGATED_TTL_SECONDS])
async def test_ttl_bounds_are_inclusive(keys: FakeKeys, clock: Clock, ttl: int) -> None:
    minted: MintedToken = await DelegatedTokenMinter(
        keys, ISSUER, ttl_seconds=ttl, clock=clock
    ).mint(request())
    assert minted.expires_at == int(clock.start) + ttl

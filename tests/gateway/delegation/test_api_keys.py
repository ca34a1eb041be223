"""`ApiKeys` on both databases: who may make which key, what is stored, and
how soon another replica sees a revocation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.api_keys import CACHE_SECONDS, ApiKeys, ApiKeySpec, Creator, KeyOwner
from gateway.storage.api_key_tables import api_keys
from policies.api_keys import ApiKeyError, ApiKeyRefused
from policies.tokens import Principal, TokenInvalid

IDP = "https://idp.example"
ALICE = Creator("alice", IDP, frozenset({"a:read", "b:write"}))
ADMIN = Creator("root", IDP, frozenset({"switchboard:admin"}))
OPERATOR = Creator("cli:ops", "urn:switchboard:operator", None)


async def rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(api_keys))]


async def test_a_user_makes_keys_for_themselves_within_their_scopes(engine: AsyncEngine) -> None:
    keys = ApiKeys(engine)
    made = await keys.create(ApiKeySpec(name="script", scopes=["a:read"], expires="1h"), ALICE)
    (row,) = await rows(engine)
    assert row["owner_subject"] == "alice" and row["owner_issuer"] == IDP
    assert row["scopes"] == "a:read" and row["owner_scopes"] == "a:read b:write"
    assert row["secret_hash"] != made.key and made.key not in str(row)
    principal = await keys.verify(made.key)
    assert principal.scopes == {"a:read"} and principal.client_id == f"apikey:{made.id}"
    refused = [
        ApiKeySpec(name="more", scopes=["a:read", "c:admin"]),
        ApiKeySpec(name="svc", scopes=["a:read"], service="ci"),
        ApiKeySpec(name="bob", scopes=["a:read"], user=KeyOwner(subject="bob", issuer=IDP)),
        # The same subject at another identity provider is another user.
        ApiKeySpec(
            name="alt", scopes=["a:read"], user=KeyOwner(subject="alice", issuer="https://x")
        ),
    ]
    for spec in refused:
        with pytest.raises(ApiKeyRefused):
            await keys.create(spec, ALICE)
    for spec in (
        ApiKeySpec(name="x", scopes=["a:read"], expires="forever"),
        ApiKeySpec(name="x", scopes=["a:read"], rate="fast"),
        ApiKeySpec(name="x y", scopes=["a:read"]),
    ):
        with pytest.raises(ApiKeyError):
            await keys.create(spec, ALICE)
    assert len(await rows(engine)) == 1, "a refused key was stored"


async def test_an_admin_grants_keys_to_services_never_as_another_user(
    engine: AsyncEngine,
) -> None:
    keys = ApiKeys(engine)
    bob = KeyOwner(subject="bob", issuer=IDP)
    # A key for bob would act with bob's connected accounts without bob: only
    # bob makes it, neither an admin nor the operator.
    for creator in (ADMIN, OPERATOR):
        with pytest.raises(ApiKeyRefused, match="only that user makes"):
            await keys.create(ApiKeySpec(name="b", scopes=["x:write"], user=bob), creator)
    assert await rows(engine) == [], "a refused key was stored"
    own = await keys.create(
        ApiKeySpec(name="own", scopes=["x:write"], user=KeyOwner(subject="root", issuer=IDP)),
        ADMIN,
    )
    assert (await keys.verify(own.key)).subject == "root"
    service = await keys.create(
        ApiKeySpec(name="ci", scopes=["x:read"], service="ci", rate="5/s", budget=20), OPERATOR
    )
    principal = await keys.verify(service.key)
    assert (principal.subject, principal.issuer) == ("ci", "urn:switchboard:service")
    assert keys.rate_of(service.id) == "5/second"
    assert [k.name for k in await keys.listing(("root", IDP))] == ["own"]
    assert {k.name for k in await keys.listing()} == {"own", "ci"}
    with pytest.raises(ApiKeyError):
        await keys.create(ApiKeySpec(name="both", scopes=["a"], service="s", user=bob), ADMIN)


async def test_a_key_made_as_another_user_before_the_rule_is_refused(
    engine: AsyncEngine,
) -> None:
    """A row an admin made for bob when that was allowed: unusable, both when
    presented (401) and for a call decided later (an approval)."""
    keys = ApiKeys(engine, cache_seconds=0)
    made = await keys.create(ApiKeySpec(name="b", scopes=["a:read"]), ALICE)
    async with engine.begin() as conn:
        await conn.execute(
            api_keys.update().values(created_by_subject="root", created_by_issuer=IDP)
        )
    with pytest.raises(TokenInvalid, match="not made by its user"):
        await keys.verify(made.key)
    assert await keys.unusable(made.id) == "the API key was not made by its user"


def test_a_key_manages_no_keys() -> None:
    through_key = Principal("alice", IDP, frozenset({"switchboard:admin"}), client_id="apikey:x")
    with pytest.raises(ApiKeyRefused):
        Creator.of(through_key)


async def test_another_replica_sees_a_revocation_once_its_cached_row_is_old(
    engine: AsyncEngine,
) -> None:
    assert CACHE_SECONDS < 1  # the bound: every replica within a second
    made = await ApiKeys(engine).create(ApiKeySpec(name="k", scopes=["a:read"]), ALICE)
    fresh, stale = ApiKeys(engine, cache_seconds=0), ApiKeys(engine, cache_seconds=3600)
    await fresh.verify(made.key)
    await stale.verify(made.key)
    assert await ApiKeys(engine).revoke(made.id)
    assert not await ApiKeys(engine).revoke(made.id)  # once
    with pytest.raises(TokenInvalid, match="revoked"):
        await fresh.verify(made.key)
    # Only its cache keeps the revocation from a replica: what CACHE_SECONDS bounds.
    await stale.verify(made.key)


async def test_last_use_is_written_at_most_once_a_minute(engine: AsyncEngine) -> None:
    now = [datetime(2026, 11, 27, 12, tzinfo=UTC)]
    keys = ApiKeys(engine, clock=lambda: now[0])
    made = await keys.create(ApiKeySpec(name="k", scopes=["a:read"]), ALICE)
    assert (await rows(engine))[0]["last_used_at"] is None
    await keys.verify(made.key)
    first = await keys.get(made.id)
    assert first is not None and first.last_used_at == now[0]
    now[0] += timedelta(seconds=30)
    await keys.verify(made.key)
    again = await keys.get(made.id)
    assert again is not None and again.last_used_at == first.last_used_at
    now[0] += timedelta(seconds=31)
    await keys.verify(made.key)
    later = await keys.get(made.id)
    assert later is not None and later.last_used_at == now[0]


async def test_an_expired_key_is_refused(engine: AsyncEngine) -> None:
    now = [datetime(2026, 11, 27, 12, tzinfo=UTC)]
    keys = ApiKeys(engine, clock=lambda: now[0], cache_seconds=0)
    made = await keys.create(ApiKeySpec(name="k", scopes=["a:read"], expires="1h"), ALICE)
    await keys.verify(made.key)
    now[0] += timedelta(hours=1)
    with pytest.raises(TokenInvalid, match="expired"):
        await keys.verify(made.key)


async def test_two_replicas_spending_at_once_never_overspend(engine: AsyncEngine) -> None:
    spec = ApiKeySpec(name="b", scopes=["a:read"], service="ci", budget=Decimal("1.0"))
    made = await ApiKeys(engine).create(spec, OPERATOR)
    one, two = ApiKeys(engine), ApiKeys(engine)
    for replica in (one, two):
        await replica.verify(made.key)  # the row read, as at the door
    assert await one.spend(made.id, Decimal("0")) is None
    outcomes = await asyncio.gather(
        *(replica.spend(made.id, Decimal("0.3")) for replica in (one, two) for _ in range(4))
    )
    assert sum(outcome is None for outcome in outcomes) == 3
    assert all("spent" in o or "busy" in o for o in outcomes if o is not None)
    info = await one.get(made.id)
    assert info is not None and Decimal(info.spent) == Decimal("0.9")
    # A key without a budget spends nothing and is never refused.
    free = await one.create(ApiKeySpec(name="f", scopes=["a:read"], service="ci"), OPERATOR)
    await one.verify(free.key)
    assert await one.spend(free.id, Decimal("1000")) is None


async def test_a_replica_that_never_saw_the_key_still_keeps_its_budget_and_revocation(
    engine: AsyncEngine,
) -> None:
    """A key's call can be decided where the key was not just verified (a call
    approved later, on another replica; an agent's call onwards with a token
    minted for the key): its budget and revocation hold there too."""
    spec = ApiKeySpec(name="b", scopes=["a:read"], service="ci", budget=Decimal("1"), rate="1/d")
    made = await ApiKeys(engine).create(spec, OPERATOR)
    elsewhere = ApiKeys(engine, cache_seconds=0)  # never verified the key
    assert await elsewhere.unusable(made.id) is None
    assert elsewhere.rate_of(made.id) == "1/day"  # loaded by the check above
    refused = await ApiKeys(engine).spend(made.id, Decimal("5"))
    assert refused is not None and "spent" in refused
    assert await ApiKeys(engine, cache_seconds=0).spend(made.id, Decimal("5")) == refused
    assert await ApiKeys(engine).revoke(made.id)
    assert await elsewhere.unusable(made.id) == "the API key has been revoked"
    assert await elsewhere.unusable("nosuchkey123") == "the API key is gone"

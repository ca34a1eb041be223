"""gateway.delegation.keystore: rotation, retirement, and replicas picking up a new key.

Time is faked per module attribute (`gateway.delegation.keystore.time` / `.datetime`), so
nothing here waits for ACTIVE_KEY_RECHECK_SECONDS or a key's retirement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation import keystore
from gateway.delegation.keystore import KeyStore
from gateway.storage.tables import signing_keys
from policies.keys import SigningKey
from policies.tokens import TokenInvalid, TokenVerifier, TrustedIssuer, mint_access_token

SECRET = "test-secret-key-for-sealing"
ISSUER = "https://switchboard.example"
AUDIENCE = "https://switchboard.example/agents"


class Monotonic:
    """A stand-in for time.monotonic that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    fake = Monotonic()
    # Only the key store's view of the clock: the event loop keeps the real one.
    monkeypatch.setattr(keystore, "time", SimpleNamespace(monotonic=fake))
    return fake


def shift_wall_clock(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """Make the key store (and the SQL it builds) believe it is later than it is."""

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + by  # a plain datetime, as the drivers expect

    monkeypatch.setattr(keystore, "datetime", Later)


@pytest.fixture
def store(engine: AsyncEngine) -> KeyStore:
    return KeyStore(engine, SECRET)


def token(key: SigningKey) -> str:
    return mint_access_token(
        key,
        issuer=ISSUER,
        subject="alice",
        audience=AUDIENCE,
        scopes=["agents:read"],
        ttl_seconds=300,
        client_id="cli-1",
    )


def verifier(keys: KeyStore) -> TokenVerifier:
    return TokenVerifier([TrustedIssuer(issuer=ISSUER, keys=keys, audience=AUDIENCE)])


async def kids(store: KeyStore) -> set[str]:
    return {jwk["kid"] for jwk in (await store.public_jwks())["keys"]}


# --------------------------------------------------------------------------- first key


async def test_first_key_is_created_sealed_and_published(
    store: KeyStore, engine: AsyncEngine
) -> None:
    key = await store.active_key()
    assert (await store.active_key()).kid == key.kid  # created once
    assert await kids(store) == {key.kid}
    [info] = await store.list_keys()
    assert (info.kid, info.alg, info.active, info.retires_at) == (key.kid, "ES256", True, None)
    assert info.created_at.tzinfo is not None
    async with engine.connect() as conn:
        stored = await conn.scalar(select(signing_keys.c.private_key))
    assert stored is not None
    # Sealed at rest with the secret; never the PEM itself.
    assert stored.startswith("fernet:")
    assert "PRIVATE KEY" not in stored


# --------------------------------------------------------------------------- rotation


async def test_rotate_switches_active_key_and_keeps_old_published(store: KeyStore) -> None:
    old = await store.active_key()
    before = datetime.now(UTC)

    new, retired = await store.rotate(retire_after_seconds=3600)

    assert new.kid != old.kid
    assert retired == [old.kid]
    assert (await store.active_key()).kid == new.kid
    assert await kids(store) == {old.kid, new.kid}
    infos = await store.list_keys()
    assert [(i.kid, i.active) for i in infos] == [(new.kid, True), (old.kid, False)]  # newest first
    assert infos[0].retires_at is None
    old_retires = infos[1].retires_at
    assert old_retires is not None
    assert old_retires.tzinfo is not None
    assert before + timedelta(seconds=3590) < old_retires < before + timedelta(seconds=3610)


async def test_old_key_tokens_verify_after_rotation(store: KeyStore) -> None:
    old = await store.active_key()
    old_token = token(old)
    new, _ = await store.rotate(retire_after_seconds=3600)

    check = verifier(store)
    assert (await check.verify(old_token)).subject == "alice"
    assert (await check.verify(token(new))).subject == "alice"


async def test_old_key_retires_at_retires_at(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await store.active_key()
    old_token = token(old)  # its own exp is checked against the real clock
    new, _ = await store.rotate(retire_after_seconds=3600)

    shift_wall_clock(monkeypatch, timedelta(seconds=3599))
    assert await kids(store) == {old.kid, new.kid}  # still within its grace period
    assert (await verifier(store).verify(old_token)).subject == "alice"

    shift_wall_clock(monkeypatch, timedelta(seconds=3601))
    assert await kids(store) == {new.kid}
    assert [i.kid for i in await store.list_keys()] == [new.kid]
    # public_jwks() above re-read the table, so this instance has dropped it too.
    assert await store.get(old.kid) is None
    with pytest.raises(TokenInvalid, match="unknown"):
        await verifier(store).verify(old_token)


async def test_retire_after_zero_unpublishes_at_once(store: KeyStore) -> None:
    old = await store.active_key()
    old_token = token(old)
    new, retired = await store.rotate(retire_after_seconds=0)

    assert retired == [old.kid]
    assert await kids(store) == {new.kid}
    assert [(i.kid, i.active) for i in await store.list_keys()] == [(new.kid, True)]
    assert await store.get(old.kid) is None
    with pytest.raises(TokenInvalid, match="unknown"):
        await verifier(store).verify(old_token)


async def test_second_rotation_does_not_extend_earlier_retirement(store: KeyStore) -> None:
    first = await store.active_key()
    second, _ = await store.rotate(retire_after_seconds=3600)
    third, retired = await store.rotate(retire_after_seconds=0)

    # Only the key that was active is retired now; the first keeps its own date.
    assert retired == [second.kid]
    assert await kids(store) == {first.kid, third.kid}
    assert (await store.active_key()).kid == third.kid


# --------------------------------------------------------------------------- replicas


async def test_other_replica_switches_after_recheck_interval(
    engine: AsyncEngine, monotonic: Monotonic
) -> None:
    replica = KeyStore(engine, SECRET)
    operator = KeyStore(engine, SECRET)  # e.g. `switchboard keys rotate`
    old = await replica.active_key()
    assert (await operator.active_key()).kid == old.kid  # both share the one key

    new, _ = await operator.rotate(retire_after_seconds=3600)

    # Until the recheck interval has passed, the replica keeps signing with the old key...
    monotonic.now += keystore.ACTIVE_KEY_RECHECK_SECONDS - 0.5
    assert (await replica.active_key()).kid == old.kid
    # ...then it re-reads the table and moves to the new one.
    monotonic.now += 0.5
    switched = await replica.active_key()
    assert switched.kid == new.kid
    assert switched.private_key_pem == new.private_key_pem  # unsealed with the shared secret
    # And the recheck is not repeated on every call.
    monotonic.now += 1
    assert await replica.active_key() is switched


async def test_unchanged_key_survives_recheck(engine: AsyncEngine, monotonic: Monotonic) -> None:
    replica = KeyStore(engine, SECRET)
    key = await replica.active_key()
    monotonic.now += keystore.ACTIVE_KEY_RECHECK_SECONDS * 3
    assert await replica.active_key() is key  # same object: no re-parse of the PEM


async def test_replica_verifies_tokens_of_a_key_rotated_elsewhere(
    engine: AsyncEngine, monotonic: Monotonic
) -> None:
    replica = KeyStore(engine, SECRET)
    operator = KeyStore(engine, SECRET)
    old = await replica.active_key()
    new, _ = await operator.rotate(retire_after_seconds=3600)

    # An unknown kid makes the replica re-read the table (at most every few seconds).
    monotonic.now += 6
    check = verifier(replica)
    assert (await check.verify(token(new))).subject == "alice"
    assert (await check.verify(token(old))).subject == "alice"


# --------------------------------------------------------------------------- known bug


async def test_retired_key_stops_verifying_on_other_replicas(
    engine: AsyncEngine, monotonic: Monotonic
) -> None:
    replica = KeyStore(engine, SECRET)
    operator = KeyStore(engine, SECRET)
    compromised = await replica.active_key()
    forged = token(compromised)
    assert (await verifier(replica).verify(forged)).subject == "alice"

    await operator.rotate(retire_after_seconds=0)
    assert compromised.kid not in await kids(operator)  # no longer published

    # An hour later the replica has still not looked at the table again.
    monotonic.now += 3600
    with pytest.raises(TokenInvalid):
        await verifier(replica).verify(forged)


async def test_a_replica_that_started_beside_another_verifies_its_key_at_once(
    engine: AsyncEngine, monotonic: Monotonic
) -> None:
    # Two replicas starting on an empty database: each creates a key, the
    # second one's is the newest -- what tokens are signed with from then on.
    first = KeyStore(engine, SECRET)
    await first.active_key()
    second = KeyStore(engine, SECRET)
    newest, _ = await second.rotate(retire_after_seconds=3600)
    # No time passes: the first replica re-reads on that first unknown kid.
    assert (await verifier(first).verify(token(newest))).subject == "alice"


async def test_unknown_kids_re_read_the_table_at_most_every_few_seconds(
    engine: AsyncEngine, monotonic: Monotonic
) -> None:
    replica = KeyStore(engine, SECRET)
    await replica.active_key()
    reads: list[None] = []
    reload = replica._reload

    async def counted() -> None:
        reads.append(None)
        await reload()

    replica._reload = counted  # type: ignore[method-assign]
    for garbage in ("kid-1", "kid-2", "kid-3"):
        assert await replica.get(garbage) is None
    assert len(reads) == 1, "one re-read for a burst of unknown kids"
    monotonic.now += 6
    assert await replica.get("kid-4") is None
    assert len(reads) == 2

"""gateway.delegation.push: the client's webhook credentials sealed at rest, and migration
0009, which seals the ones stored before, on SQLite and PostgreSQL.

The relays are driven directly here (a forward goes to an `httpx.MockTransport`);
tests/e2e/test_a2a_front.py covers the same through the A2A front door.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from a2a.types import AuthenticationInfo, StreamResponse, TaskPushNotificationConfig
from alembic import command
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.keystore import KeyStore
from gateway.delegation.push import CredentialsUnavailable, PushRelays, RelayRefused
from gateway.delegation.tasks import Owner
from gateway.storage import db
from gateway.storage.tables import a2a_push_configs

SECRET = "push-tests-sealing-secret-0123456789abcdef"
OWNER = Owner("alice", "https://issuer.example")
RELAY_TOKEN = "relay-token"


async def migrate(
    engine: AsyncEngine, revision: str, secret: str | None = None, *, down: bool = False
) -> None:
    """Up (or down) to one revision, as `gateway.storage.db.upgrade` goes to the head."""

    def run(connection: Connection) -> None:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        config.attributes["sealing_secret"] = secret
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


def relays(engine: AsyncEngine, secret: str | None) -> PushRelays:
    return PushRelays(engine, KeyStore(engine, secret), "https://gw.example", secret)


def config(credentials: str = "") -> TaskPushNotificationConfig:
    return TaskPushNotificationConfig(
        task_id="t1",
        id="c1",
        url="https://hook.example/in",
        token="client-token",
        authentication=AuthenticationInfo(scheme="Bearer", credentials=credentials),
    )


async def row(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        found = (await conn.execute(select(a2a_push_configs))).one()
    return dict(found._mapping)


async def authorization(push: PushRelays, relay_id: str, token: str = RELAY_TOKEN) -> str:
    """The `Authorization` a forward through the relay sends the webhook."""
    sent: list[httpx.Request] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    relay = await push.relay_for("worker", relay_id, token)
    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as http:
        event = StreamResponse()
        event.task.id = "t1"
        assert await push.forward(http, relay, event) == 204
    (request,) = sent
    return request.headers["authorization"]


async def test_credentials_are_stored_sealed_and_opened_only_to_forward(
    unmigrated_engine: AsyncEngine,
) -> None:
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    shown, upstream = await push.create("worker", OWNER, config("s3cret-value"))
    assert shown.authentication.scheme == "Bearer" and not shown.authentication.credentials
    assert "s3cret-value" not in repr(upstream)
    stored = await row(unmigrated_engine)
    assert "s3cret-value" not in repr(stored)
    assert stored["credentials_sealed"].startswith("fernet:")
    (listed,) = await push.configs("worker", OWNER, "t1")
    assert listed.authentication.scheme == "Bearer" and not listed.authentication.credentials
    relay_id = upstream.url.rsplit("/", 1)[1]
    assert await authorization(push, relay_id, upstream.token) == "Bearer s3cret-value"


@pytest.mark.parametrize("other", ["another-sealing-secret-0123456789abcdef", None])
async def test_credentials_that_cannot_be_opened_fail_the_forward_unshown(
    unmigrated_engine: AsyncEngine, other: str | None
) -> None:
    await db.upgrade(unmigrated_engine, SECRET)
    _, upstream = await relays(unmigrated_engine, SECRET).create(
        "worker", OWNER, config("s3cret-value")
    )
    relay_id = upstream.url.rsplit("/", 1)[1]
    with pytest.raises(CredentialsUnavailable) as refused:
        await authorization(relays(unmigrated_engine, other), relay_id, upstream.token)
    assert "s3cret-value" not in str(refused.value)
    assert "SWITCHBOARD_SECRET_KEY" in str(refused.value)


async def test_without_credentials_the_webhook_gets_the_gateways_token(
    unmigrated_engine: AsyncEngine,
) -> None:
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    _, upstream = await push.create("worker", OWNER, config())
    assert (await row(unmigrated_engine))["credentials_sealed"] is None
    relay_id = upstream.url.rsplit("/", 1)[1]
    assert (await authorization(push, relay_id, upstream.token)).startswith("Bearer ey")


async def test_an_inline_config_is_pending_until_bound_to_its_task(
    unmigrated_engine: AsyncEngine,
) -> None:
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    inline = config()
    inline.task_id = ""  # SendMessage's: the agent has not made the task yet
    _, upstream = await push.create("worker", OWNER, inline)
    assert not upstream.task_id
    relay = await push.relay_for("worker", upstream.url.rsplit("/", 1)[1], upstream.token)
    assert relay.pending
    assert await push.configs("worker", OWNER, "t9") == []
    # Another config of the same id on that task is replaced, as setting it again would.
    older = config()
    older.task_id, older.id = "t9", inline.id
    await push.create("worker", OWNER, older)
    assert await push.bind("worker", upstream.url, "t9")
    assert not await push.bind("worker", upstream.url, "t10"), "bound once only"
    (listed,) = await push.configs("worker", OWNER, "t9")
    assert (listed.task_id, listed.url) == ("t9", "https://hook.example/in")
    relay_id = upstream.url.rsplit("/", 1)[1]
    assert not (await push.relay_for("worker", relay_id, upstream.token)).pending
    # Nobody else's: another owner sees none, and a bound config is not forgotten.
    assert await push.configs("worker", Owner("bob", "https://issuer.example"), "t9") == []
    await push.forget_pending("worker", upstream.url)
    assert len(await push.configs("worker", OWNER, "t9")) == 1


async def test_an_inline_config_whose_call_made_no_task_is_forgotten(
    unmigrated_engine: AsyncEngine,
) -> None:
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    inline = config()
    inline.task_id = ""
    _, upstream = await push.create("worker", OWNER, inline)
    await push.forget_pending("worker", upstream.url)
    async with unmigrated_engine.connect() as conn:
        assert (await conn.execute(select(a2a_push_configs))).first() is None


async def test_inline_configs_left_pending_long_ago_are_swept(
    unmigrated_engine: AsyncEngine,
) -> None:
    """A crashed gateway neither binds nor forgets the inline config of a call it
    was running; the sweeper removes it once it is older than any call can be,
    and nothing else: not a young pending one, not an old bound one."""
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    made: dict[str, TaskPushNotificationConfig] = {}
    for name in ("orphan", "young", "bound"):
        inline = config()
        inline.task_id, inline.id = "", name
        _, made[name] = await push.create("worker", OWNER, inline)
    assert await push.bind("worker", made["bound"].url, "t9")
    # Bound to tasks an agent named like pending rows: real tasks, kept.
    for name, task_id in (("named", "pending:abc"), ("shouting", "PENDING:abc")):
        inline = config()
        inline.task_id, inline.id = "", name
        _, made[name] = await push.create("worker", OWNER, inline)
        assert await push.bind("worker", made[name].url, task_id)
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=3)
    relay_ids = [made[n].url.rsplit("/", 1)[1] for n in ("orphan", "bound", "named", "shouting")]
    async with unmigrated_engine.begin() as conn:
        await conn.execute(
            a2a_push_configs.update()
            .where(a2a_push_configs.c.relay_id.in_(relay_ids))
            .values(created_at=long_ago)
        )
    # A cutoff in another zone means the same instant.
    cutoff = (now - timedelta(days=1)).astimezone(timezone(timedelta(hours=-10)))
    assert await push.sweep_pending(cutoff) == 1
    async with unmigrated_engine.connect() as conn:
        left = (await conn.execute(select(a2a_push_configs.c.config_id))).scalars().all()
    assert sorted(left) == ["bound", "named", "shouting", "young"]
    orphan_relay = made["orphan"].url.rsplit("/", 1)[1]
    with pytest.raises(RelayRefused):  # its relay URL no longer takes anything
        await push.relay_for("worker", orphan_relay, made["orphan"].token)
    assert await push.sweep_pending(cutoff) == 0


# Migration 0009 ----------------------------------------------------------------------


async def insert_plain(engine: AsyncEngine, config_id: str, document: dict[str, Any]) -> None:
    """A row as the gateway wrote it before 0009: credentials inside `config`."""
    async with engine.begin() as conn:
        await conn.execute(
            a2a_push_configs.insert().values(
                agent_id="worker",
                task_id="t1",
                config_id=config_id,
                owner_subject=OWNER.subject,
                owner_issuer=OWNER.issuer,
                relay_id=f"relay-{config_id}",
                relay_token_hash=hashlib.sha256(RELAY_TOKEN.encode()).hexdigest(),
                config=document,
                created_at=datetime.now(UTC),
            )
        )


PLAIN = {
    "taskId": "t1",
    "id": "c1",
    "url": "https://hook.example/in",
    "authentication": {"scheme": "Basic", "credentials": "dXNlcjpwYXNz"},
}


async def test_0009_seals_what_was_stored_in_plain_text(unmigrated_engine: AsyncEngine) -> None:
    await migrate(unmigrated_engine, "0008")
    await insert_plain(unmigrated_engine, "c1", PLAIN)
    await insert_plain(
        unmigrated_engine, "c2", {"taskId": "t1", "id": "c2", "url": "https://h.example/"}
    )
    await db.upgrade(unmigrated_engine, SECRET)
    async with unmigrated_engine.connect() as conn:
        rows = {r.config_id: r for r in (await conn.execute(select(a2a_push_configs))).all()}
    assert "dXNlcjpwYXNz" not in repr(rows)
    assert rows["c1"].config["authentication"] == {"scheme": "Basic"}
    assert rows["c1"].credentials_sealed.startswith("fernet:")
    assert rows["c2"].credentials_sealed is None
    assert rows["c2"].config == {"taskId": "t1", "id": "c2", "url": "https://h.example/"}
    push = relays(unmigrated_engine, SECRET)
    assert await authorization(push, "relay-c1") == "Basic dXNlcjpwYXNz"
    (shown,) = await push.configs("worker", OWNER, "t1", "c1")
    assert shown.authentication.scheme == "Basic" and not shown.authentication.credentials


async def test_0009_without_a_secret_moves_the_value_for_a_dev_gateway(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0008")
    await insert_plain(unmigrated_engine, "c1", PLAIN)
    await db.upgrade(unmigrated_engine, None)
    stored = await row(unmigrated_engine)
    assert "credentials" not in stored["config"]["authentication"]
    assert await authorization(relays(unmigrated_engine, None), "relay-c1") == "Basic dXNlcjpwYXNz"
    # A gateway with a secret does not take it as sealed: that forward fails.
    with pytest.raises(CredentialsUnavailable):
        await authorization(relays(unmigrated_engine, SECRET), "relay-c1")


async def test_0009_downgrade_puts_the_credentials_back(unmigrated_engine: AsyncEngine) -> None:
    await migrate(unmigrated_engine, "0008")
    await insert_plain(unmigrated_engine, "c1", PLAIN)
    await db.upgrade(unmigrated_engine, SECRET)
    await migrate(unmigrated_engine, "0008", SECRET, down=True)
    async with unmigrated_engine.connect() as conn:
        document = (await conn.execute(select(a2a_push_configs.c.config))).scalar_one()
    assert document == PLAIN


@pytest.mark.parametrize("wrong", ["a-different-sealing-secret-0123456789abcdef", None])
async def test_0009_refuses_a_secret_that_does_not_open_the_signing_key(
    unmigrated_engine: AsyncEngine, wrong: str | None
) -> None:
    """A value sealed with the wrong secret could never be opened again, and
    `serve` checks the secret only after migrating: 0009 checks it first."""
    await migrate(unmigrated_engine, "0008")
    await KeyStore(unmigrated_engine, SECRET).active_key()  # the gateway's key, sealed with SECRET
    await insert_plain(unmigrated_engine, "c1", PLAIN)
    with pytest.raises(RuntimeError, match="nothing was changed"):
        await db.upgrade(unmigrated_engine, wrong)
    # Still at 0008, the credentials where they were: the right secret seals them.
    async with unmigrated_engine.connect() as conn:
        document = (await conn.execute(select(a2a_push_configs.c.config))).scalar_one()
    assert document == PLAIN
    await db.upgrade(unmigrated_engine, SECRET)
    assert (
        await authorization(relays(unmigrated_engine, SECRET), "relay-c1") == "Basic dXNlcjpwYXNz"
    )


async def test_0009_with_nothing_to_seal_needs_no_secret(unmigrated_engine: AsyncEngine) -> None:
    await migrate(unmigrated_engine, "0008")
    await KeyStore(unmigrated_engine, SECRET).active_key()
    await insert_plain(
        unmigrated_engine, "c2", {"taskId": "t1", "id": "c2", "url": "https://h.example/"}
    )
    await db.upgrade(unmigrated_engine, None)  # e.g. `switchboard keys list` on a host without it
    assert (await row(unmigrated_engine))["credentials_sealed"] is None


async def test_binds_racing_for_one_inline_config_keep_it(unmigrated_engine: AsyncEngine) -> None:
    # The agent's answer and its first notification often name the task at
    # once: both bind. Neither may delete the row the other just bound.
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    for i in range(40):
        inline = config()
        inline.task_id, inline.id = "", f"c{i}"
        _, upstream = await push.create("worker", OWNER, inline)

        async def late(url: str, task: str, delay: float) -> bool:
            await asyncio.sleep(delay)
            return await push.bind("worker", url, task)

        first, second = await asyncio.gather(
            push.bind("worker", upstream.url, f"t{i}"), late(upstream.url, f"t{i}", i % 8 * 5e-4)
        )
        assert sorted([first, second]) == [False, True], "exactly one of them binds"
        (kept,) = await push.configs("worker", OWNER, f"t{i}")
        assert kept.id == f"c{i}"


@pytest.mark.parametrize("config_id", ["\x00", "c1\x00", "c" * 257])
async def test_an_id_no_config_could_have_is_none_found_and_none_deleted(
    unmigrated_engine: AsyncEngine, config_id: str
) -> None:
    """Asked for by an id no stored config could have (NUL, which PostgreSQL
    refuses in a query; too long), the answer is that there is none; the
    task's real config stays."""
    await db.upgrade(unmigrated_engine, SECRET)
    push = relays(unmigrated_engine, SECRET)
    await push.create("worker", OWNER, config())
    assert await push.configs("worker", OWNER, "t1", config_id) == []
    assert await push.delete("worker", OWNER, "t1", config_id) is False
    (kept,) = await push.configs("worker", OWNER, "t1", "c1")
    assert kept.id == "c1"

"""Push notifications through the gateway (A2A 1.0 §4.3, "push notifications").

A client's webhook URL is never handed to the upstream agent. The gateway
stores the client's config (after the SSRF checks on its URL) and gives the
agent a relay URL of its own, `/a2a/{agent_id}/push/{relay_id}`, with a
random relay token the agent sends back in `X-A2A-Notification-Token`. A
notification that arrives with the right token is recorded against the task
and forwarded to the client's webhook -- connected under the SSRF rules again,
pinned, with a deadline -- carrying:

* `X-A2A-Notification-Token`: the token the client chose, if any;
* `Authorization`: the client's own `authentication` (scheme + credentials)
  if it gave one; otherwise a short-lived JWT signed by the gateway (`iss` =
  the gateway, `aud` = the webhook URL, `sub` = the task's owner), which the
  webhook can check against the gateway's JWKS.

The client's `authentication.credentials` are a secret of its webhook. They
are stored apart from the rest of its config (`credentials_sealed`), sealed
with the operator's SWITCHBOARD_SECRET_KEY like the vendor agents' API keys
(`policies.keys.seal_secret`, a key derived for this purpose alone), and
opened only to build the `Authorization` header of a forward. A value that
cannot be opened (another secret, or none) fails that forward alone
(`CredentialsUnavailable`). They are never given back: the configs that
Create, Get and List answer with carry the scheme but no credentials. A2A 1.0
lets a server leave them out -- `credentials` is the one optional field of
`AuthenticationInfo`, and Get must return "the webhook URL and notification
settings" (§3.1.8) -- and asks that they be treated as secrets (§13.2). The
a2a-sdk's own `DefaultRequestHandler` returns them as stored; the gateway does
not.

A config given inside `SendMessage` (`SendMessageConfiguration.task_push_notification_config`,
A2A 1.0 §3.2.2) is relayed the same way. Its task does not exist yet -- the
agent makes it -- so its row is stored under a pending id (`pending:` and the
relay id, which nothing else can take) and bound to the task by `bind` as
soon as the task's id is known: from the agent's answer, from the first
event of its stream, or from the first notification the agent sends through
the relay (which only that agent can, with the relay token), whichever comes
first. A call that ends without a task (a Message, an error) removes it.

Rows written before this kept the credentials in plain text inside `config`.
Rather than a format that tells plain values from sealed ones and reseals them
when the client next sets its config (which it may never do, leaving them in
plain text), `gateway.storage.db.upgrade` hands the operator's secret to the
migrations and 0009 seals them all at once; `switchboard serve` and
`switchboard db upgrade` pass it. So a stored value is only ever what
`seal_secret` wrote, and `open_secret` reads it with the same rules as every
other sealed secret here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from a2a.types import StreamResponse, TaskPushNotificationConfig
from google.protobuf.json_format import MessageToDict, ParseDict
from sqlalchemy import ColumnElement, String, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.core_check import outside_a_call
from gateway.delegation.keystore import KeyStore
from gateway.delegation.tasks import Owner
from gateway.storage.tables import a2a_push_configs
from policies.keys import KeySealError, open_secret, seal_secret
from policies.tokens import mint_access_token

WEBHOOK_TOKEN_TTL_SECONDS = 60
FORWARD_TIMEOUT_SECONDS = 10.0
# The task id of an inline config's row until its task is known: no task id
# an agent makes can start with it and end in a relay id of ours.
PENDING = "pending:"
# Names the key the credentials are sealed with: part of the stored format
# (migration 0009 uses it too), so it never changes.
SEAL_PURPOSE = "a2a-push-credentials"
# The config ids of the gateway's own watches (`watch_id`), which no client may take.
WATCH_PREFIX = "switchboard-watch-"


@dataclass(frozen=True)
class Relay:
    agent_id: str
    task_id: str
    config_id: str
    owner: Owner
    config: dict[str, Any]
    credentials_sealed: str | None

    @property
    def pending(self) -> bool:
        """An inline config whose task is not known yet (`PushRelays.bind`)."""
        return self.task_id.startswith(PENDING)


class RelayRefused(Exception):
    """Unknown relay or wrong relay token: the caller is not the agent we asked."""


class CredentialsUnavailable(Exception):
    """The client's webhook credentials cannot be opened (another sealing
    secret, or none); the message never contains them."""


class PushRelays:
    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyStore,
        public_url: str,
        sealing_secret: str | None,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._public_url = public_url
        self._sealing_secret = sealing_secret

    async def create(
        self, agent_id: str, owner: Owner, config: TaskPushNotificationConfig
    ) -> tuple[TaskPushNotificationConfig, TaskPushNotificationConfig]:
        """Store the client's config; returns (what the client gets back, what
        the upstream is given). A config without a task id is an inline one
        (SendMessage): stored pending until `bind` names its task."""
        stored = TaskPushNotificationConfig()
        stored.CopyFrom(config)
        stored.id = config.id or str(uuid.uuid4())
        credentials = stored.authentication.credentials
        sealed = (
            seal_secret(credentials, self._sealing_secret, SEAL_PURPOSE) if credentials else None
        )
        _without_credentials(stored)
        relay_id = secrets.token_urlsafe(16)
        relay_token = secrets.token_urlsafe(32)
        task_id = stored.task_id or PENDING + relay_id
        async with self._engine.begin() as conn:
            # Setting a config id again replaces it (and its relay).
            await conn.execute(
                delete(a2a_push_configs).where(*_owned(agent_id, owner, task_id, stored.id))
            )
            await conn.execute(
                a2a_push_configs.insert().values(
                    agent_id=agent_id,
                    task_id=task_id,
                    config_id=stored.id,
                    owner_subject=owner.subject,
                    owner_issuer=owner.issuer,
                    relay_id=relay_id,
                    relay_token_hash=_digest(relay_token),
                    config=MessageToDict(stored),
                    credentials_sealed=sealed,
                    created_at=datetime.now(UTC),
                )
            )
        upstream = TaskPushNotificationConfig(
            task_id=stored.task_id,
            id=stored.id,
            url=f"{self._public_url}/a2a/{agent_id}/push/{relay_id}",
            token=relay_token,
        )
        return stored, upstream

    async def bind(self, agent_id: str, relay_url: str, task_id: str) -> bool:
        """Give the pending inline config behind ``relay_url`` (the relay's URL
        as the agent was given it, or its last segment) its task. False
        if it has one already (or is gone); a config of the same id on that
        task is replaced, as setting it again would."""
        relay_id, pending = _pending(agent_id, relay_url)
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(a2a_push_configs).where(*pending))).first()
            if row is None:
                return False
            owner = Owner(row.owner_subject, row.owner_issuer)
            # Never this relay's own row: a bind racing this one (the agent's
            # answer and its first notification at once) may have bound it
            # meanwhile, and deleting it would lose the client's config.
            await conn.execute(
                delete(a2a_push_configs).where(
                    *_owned(agent_id, owner, task_id, row.config_id),
                    a2a_push_configs.c.relay_id != relay_id,
                )
            )
            bound = await conn.execute(
                a2a_push_configs.update()
                .where(*pending)
                .values(task_id=task_id, config={**row.config, "taskId": task_id})
            )
        return bool(bound.rowcount)

    async def forget_pending(self, agent_id: str, relay_url: str) -> None:
        """Remove the inline config behind ``relay_url`` if it never got a task
        (its call answered with a Message, or failed)."""
        _, pending = _pending(agent_id, relay_url)
        async with self._engine.begin() as conn:
            await conn.execute(delete(a2a_push_configs).where(*pending))

    async def sweep_pending(self, older_than: datetime) -> int:
        """Remove inline configs still pending since before ``older_than``: a
        call that ended binds or forgets its own, so these are a crashed or
        killed gateway's leftovers (their relay URLs would otherwise stay
        usable for ever). How many went."""
        # SQLite keeps the clock time without its zone: compare in UTC, as written.
        cutoff = older_than.astimezone(UTC)
        async with self._engine.begin() as conn:
            swept = await conn.execute(
                delete(a2a_push_configs).where(
                    _STILL_PENDING, a2a_push_configs.c.created_at < cutoff
                )
            )
        return int(swept.rowcount or 0)

    async def sweep_watches(self, older_than: datetime) -> int:
        """Remove the gateway's own watches made before ``older_than``: a
        wait ends within 30 days and removes its watch then, so these are
        left by a gateway killed while the run's wait ended elsewhere or
        never resumed. How many went."""
        cutoff = older_than.astimezone(UTC)
        async with self._engine.begin() as conn:
            swept = await conn.execute(
                delete(a2a_push_configs).where(
                    a2a_push_configs.c.config_id.startswith(WATCH_PREFIX, autoescape=True),
                    a2a_push_configs.c.created_at < cutoff,
                )
            )
        return int(swept.rowcount or 0)

    async def configs(
        self, agent_id: str, owner: Owner, task_id: str, config_id: str | None = None
    ) -> list[TaskPushNotificationConfig]:
        if config_id is not None and not _could_be_stored(config_id):
            return []
        c = a2a_push_configs.c
        where = _owned(agent_id, owner, task_id, config_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(c.config).where(*where).order_by(c.created_at))).all()
        found = []
        for row in rows:
            config = TaskPushNotificationConfig()
            ParseDict(row.config, config, ignore_unknown_fields=True)
            if records_only(row.config):
                continue  # the gateway's own watch, not a config of the client's
            found.append(_without_credentials(config))
        return found

    async def delete(self, agent_id: str, owner: Owner, task_id: str, config_id: str) -> bool:
        if not _could_be_stored(config_id):
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(a2a_push_configs).where(*_owned(agent_id, owner, task_id, config_id))
            )
        return bool(result.rowcount)

    async def relay_for(self, agent_id: str, relay_id: str, token: str | None) -> Relay:
        c = a2a_push_configs.c
        if "\x00" in relay_id or len(relay_id) > 64:
            raise RelayRefused
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(a2a_push_configs).where(c.agent_id == agent_id, c.relay_id == relay_id)
                )
            ).first()
        # Compare in constant time, and compare something even when the relay
        # is unknown, so timing tells nothing about which relay ids exist.
        expected = row.relay_token_hash if row is not None else _digest("")
        if not hmac.compare_digest(expected, _digest(token or "")) or row is None or not token:
            raise RelayRefused
        return Relay(
            agent_id=row.agent_id,
            task_id=row.task_id,
            config_id=row.config_id,
            owner=Owner(row.owner_subject, row.owner_issuer),
            config=dict(row.config),
            credentials_sealed=row.credentials_sealed,
        )

    async def forward(self, http: httpx.AsyncClient, relay: Relay, event: StreamResponse) -> int:
        """POST the event to the client's webhook; returns its HTTP status.
        Raises `CredentialsUnavailable` (before connecting) when the client's
        credentials cannot be opened."""
        config = TaskPushNotificationConfig()
        ParseDict(relay.config, config, ignore_unknown_fields=True)
        headers = {"Content-Type": "application/json"}
        if config.token:
            headers["X-A2A-Notification-Token"] = config.token
        scheme = config.authentication.scheme
        if scheme and relay.credentials_sealed:
            try:
                credentials = open_secret(
                    relay.credentials_sealed, self._sealing_secret, SEAL_PURPOSE
                )
            except KeySealError as exc:
                raise CredentialsUnavailable(str(exc)) from None
            headers["Authorization"] = f"{scheme} {credentials}"
        elif scheme and config.authentication.credentials:
            # Written by a replica older than migration 0009 during a rolling
            # upgrade: still the client's credentials (in plain text until the
            # client sets the config again; docs/a2a.md says to stop every
            # replica for this upgrade).
            headers["Authorization"] = f"{scheme} {config.authentication.credentials}"
        else:
            key = await self._keys.active_key()
            signed = mint_access_token(
                key,
                issuer=self._public_url,
                subject=relay.owner.subject,
                audience=config.url,
                scopes=[],
                ttl_seconds=WEBHOOK_TOKEN_TTL_SECONDS,
                client_id="switchboard",
            )
            headers["Authorization"] = f"Bearer {signed}"
        # A push is the gateway telling a caller's webhook of a task's event,
        # not a call to an agent: no delegation to be inside.
        with outside_a_call("push notification to a caller's webhook"):
            response = await http.post(
                config.url,
                json=MessageToDict(event),
                headers=headers,
                timeout=FORWARD_TIMEOUT_SECONDS,
            )
        return response.status_code


def watch_id(*parts: str) -> str:
    """The config id of a watch of the gateway's own (one per flow run and
    wait step: two steps waiting on one task each have theirs)."""
    return WATCH_PREFIX + hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def records_only(config: dict[str, Any]) -> bool:
    """A relay with no webhook to forward to: the gateway's own watch on a
    task (`gateway.agents.push_configs.PushConfigs.watch_task`). A client's
    config always has one (its URL is checked on create)."""
    return not config.get("url")


def _without_credentials(config: TaskPushNotificationConfig) -> TaskPushNotificationConfig:
    """The config as the client may see it again: the scheme, not the secret.
    Applied to what is read back too, so no row can hand one out."""
    if config.HasField("authentication"):
        config.authentication.ClearField("credentials")
    return config


# The longest id a config can be stored under (the column's length; the
# one bound `push_checks.id_problem` refuses at create too).
MAX_CONFIG_ID = cast(String, a2a_push_configs.c.config_id.type).length or 0


def _could_be_stored(config_id: str) -> bool:
    """Whether any stored config could have this id: a longer one, or one
    with NUL (`push_checks.id_problem` refuses both at create), names none;
    asked for, it is not there (PostgreSQL would refuse the NUL in the
    query itself)."""
    return len(config_id) <= MAX_CONFIG_ID and "\x00" not in config_id


def _owned(
    agent_id: str, owner: Owner, task_id: str, config_id: str | None = None
) -> list[ColumnElement[bool]]:
    c = a2a_push_configs.c
    where = [c.agent_id == agent_id, c.task_id == task_id, owner.owns(a2a_push_configs)]
    if config_id is not None:
        where.append(c.config_id == config_id)
    return where


# A row still pending: its task id is exactly `PENDING` and its own relay id (an
# agent may name a real task "pending:...", and SQLite's LIKE ignores case).
_STILL_PENDING = a2a_push_configs.c.task_id == (
    literal(PENDING, String) + a2a_push_configs.c.relay_id
)


def _pending(agent_id: str, relay_url: str) -> tuple[str, list[ColumnElement[bool]]]:
    """The relay id in ``relay_url`` (or the id itself), and what selects its
    config while it is pending (`_STILL_PENDING`)."""
    relay_id = relay_url.rsplit("/", 1)[-1]
    c = a2a_push_configs.c
    return relay_id, [c.agent_id == agent_id, c.relay_id == relay_id, _STILL_PENDING]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()

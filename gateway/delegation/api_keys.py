"""API keys in the gateway's database: made, listed, revoked, and turned
into the principal a request with one is (`policies.api_keys`).

Who may make which key (docs/security.md#api-keys):

* anyone authenticated may make keys for themselves, holding at most the
  scopes of the token they make it with -- those are recorded as the owner's
  rights, and the key never holds more, whatever the row says later;
* a user's key is made by that user only: it acts with their connected
  accounts and tasks, which nobody else -- not an admin, not the operator --
  may do without them (a row made otherwise is refused when used);
* an admin (``switchboard:admin``) may also make keys for a service, with
  the scopes the admin grants: those are what the service holds (an admin
  can change the policy itself: bounding the grant by the admin's own token
  would add nothing);
* the operator (`switchboard keys create`, on the database) likewise;
* a key never makes, lists or revokes keys.

A revoked key stops working on every replica within `CACHE_SECONDS`: each
process keeps a key's row that long at most, then reads it again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.api_key_tables import api_keys
from policies.api_keys import (
    ACTOR_PREFIX,
    SERVICE_ISSUER,
    ApiKeyError,
    ApiKeyRefused,
    KeyRecord,
    checked_name,
    checked_scopes,
    hash_key,
    key_id_of,
    new_key,
    parse_budget,
    parse_duration,
    parse_rate,
    principal_of,
    scopes_within,
    why_unusable,
)
from policies.prices import Prices
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal, TokenInvalid
from registry.tables import as_utc

# How long a process trusts a key's row it read: the bound on how late a
# revocation is seen by every replica (the issue asks for one second).
CACHE_SECONDS = 0.5
# `last_used_at` is written at most this often per key and process: a key
# used on every call does not cost a write per call.
LAST_USED_EVERY = timedelta(seconds=60)
CACHE_SIZE = 10_000
SPEND_ATTEMPTS = 20


class KeyOwner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1, max_length=256)
    issuer: str = Field(min_length=1, max_length=512)


class ApiKeySpec(BaseModel):
    """A key to make: ``user`` (default: the creator) or ``service``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=64)
    scopes: list[str] = Field(min_length=1, max_length=64)
    expires: str | None = Field(None, max_length=16, description="e.g. 30d, 12h")
    user: KeyOwner | None = None
    service: str | None = Field(None, max_length=64)
    rate: str | None = Field(None, max_length=32, description="e.g. 10/s")
    budget: Decimal | None = Field(None, ge=0, le=1_000_000)


class ApiKeyInfo(BaseModel):
    """A key as listed: never its secret."""

    id: str
    name: str
    prefix: str
    service: bool
    owner_subject: str
    owner_issuer: str
    scopes: list[str]
    rate: str | None
    budget: str | None
    spent: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedKey(ApiKeyInfo):
    key: str = Field(description="the key itself: shown this once, never stored")


@dataclass(frozen=True)
class Creator:
    """Who makes a key, and what they hold. ``scopes`` None: the operator."""

    subject: str
    issuer: str
    scopes: frozenset[str] | None

    @classmethod
    def of(cls, principal: Principal) -> Creator:
        if principal.client_id is not None and principal.client_id.startswith(ACTOR_PREFIX):
            raise ApiKeyRefused("an API key cannot manage API keys")
        return cls(principal.subject, principal.issuer, principal.scopes)

    @property
    def admin(self) -> bool:
        return self.scopes is None or ADMIN_SCOPE in self.scopes


def _owner(spec: ApiKeySpec, creator: Creator) -> tuple[bool, str, str]:
    if spec.service is not None and spec.user is not None:
        raise ApiKeyError("a key is for a user or for a service, not both")
    if spec.service is not None:
        if not creator.admin:
            raise ApiKeyRefused(f"only an admin ({ADMIN_SCOPE}) makes keys for services")
        return True, checked_name(spec.service), SERVICE_ISSUER
    owner = spec.user or KeyOwner(subject=creator.subject, issuer=creator.issuer)
    if (owner.subject, owner.issuer) != (creator.subject, creator.issuer):
        # Its calls would use the user's connected accounts without them.
        raise ApiKeyRefused(
            "a key acts as its user, with their connected accounts: only that user "
            "makes it (an admin makes keys for services)"
        )
    return False, owner.subject, owner.issuer


def _row(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        service=bool(row.service),
        owner_subject=row.owner_subject,
        owner_issuer=row.owner_issuer,
        scopes=frozenset(row.scopes.split()),
        owner_scopes=frozenset(row.owner_scopes.split()),
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        rate=row.rate,
        budget=Decimal(row.budget) if row.budget is not None else None,
        created_by=(row.created_by_subject, row.created_by_issuer),
    )


def _aware(at: datetime | None) -> datetime | None:
    return as_utc(at) if at is not None else None  # SQLite's come back naive


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        service=bool(row.service),
        owner_subject=row.owner_subject,
        owner_issuer=row.owner_issuer,
        scopes=sorted(row.scopes.split()),
        rate=row.rate,
        budget=row.budget,
        spent=row.spent,
        created_by=f"{row.created_by_subject} ({row.created_by_issuer})",
        created_at=as_utc(row.created_at),
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


class ApiKeys:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        # key id -> (its row or None when there is none, when it was read)
        self._rows: OrderedDict[str, tuple[KeyRecord | None, float]] = OrderedDict()
        self._touched: dict[str, datetime] = {}

    async def create(self, spec: ApiKeySpec, creator: Creator) -> CreatedKey:
        """Make a key; `ApiKeyError` for bad settings, `ApiKeyRefused` for a
        key the creator may not make. Nothing is stored unless it is made."""
        service, owner_subject, owner_issuer = _owner(spec, creator)
        scopes = checked_scopes(spec.scopes)
        if not creator.admin and creator.scopes is not None:
            scopes_within(scopes, creator.scopes)
        # A user's own key: within their token's scopes, recorded as theirs.
        # An admin's (or the operator's) grant is what the owner holds: the
        # admin scope already lets them change the policy itself.
        owner_scopes = scopes if creator.admin or creator.scopes is None else creator.scopes
        now = self._clock()
        made = new_key()
        row = {
            "id": made.key_id,
            "name": checked_name(spec.name),
            "prefix": made.prefix,
            "secret_hash": hash_key(made.secret),
            "service": service,
            "owner_subject": owner_subject,
            "owner_issuer": owner_issuer,
            "scopes": " ".join(sorted(scopes)),
            "owner_scopes": " ".join(sorted(owner_scopes)),
            "rate": parse_rate(spec.rate) if spec.rate else None,
            "budget": str(parse_budget(spec.budget)) if spec.budget is not None else None,
            "spent": "0",
            "created_by_subject": creator.subject,
            "created_by_issuer": creator.issuer,
            "created_at": now,
            "expires_at": now + parse_duration(spec.expires) if spec.expires else None,
            "revoked_at": None,
            "last_used_at": None,
        }
        async with self._engine.begin() as conn:
            await conn.execute(api_keys.insert().values(**row))
        return CreatedKey(**_info(_Row(row)).model_dump(), key=made.secret)

    async def listing(self, owner: tuple[str, str] | None = None) -> list[ApiKeyInfo]:
        """Every key (``owner`` None), or one owner's (subject, issuer)."""
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if owner is not None:
            query = query.where(
                api_keys.c.owner_subject == owner[0], api_keys.c.owner_issuer == owner[1]
            )
        async with self._engine.connect() as conn:
            return [_info(row) for row in await conn.execute(query)]

    async def get(self, key_id: str) -> ApiKeyInfo | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _info(row) if row is not None else None

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key for good; False when there is no such key (or it was
        already revoked: its first revocation time stays)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        self._rows.pop(key_id, None)
        return result.rowcount == 1

    async def verify(self, key: str) -> Principal:
        """The principal ``key`` is; `TokenInvalid` when it is unknown,
        malformed, revoked or expired (each door answers 401)."""
        key_id = key_id_of(key)
        record = await self._record(key_id)
        if record is None:
            raise TokenInvalid("API key is unknown")
        principal = principal_of(record, key, self._clock())
        await self._touch(key_id)
        return principal

    async def unusable(self, key_id: str) -> str | None:
        """Why a call made with the key may not go on (revoked, expired,
        gone), or None. Asked for every call decided for a key's actor --
        also one not authenticated here a moment ago: a call approved later
        or on another replica, an agent's call onwards with a token minted
        for the key -- and it loads the row `rate_of` and `spend` read (at
        most `CACHE_SECONDS` old), so a revoked key's calls stop everywhere."""
        record = await self._record(key_id)
        if record is None:
            return "the API key is gone"
        return why_unusable(record, self._clock())

    def rate_of(self, key_id: str) -> str | None:
        """The key's own rate limit, as last read (a call with it was just
        authenticated, so its row is at most `CACHE_SECONDS` old)."""
        cached = self._rows.get(key_id)
        return cached[0].rate if cached is not None and cached[0] is not None else None

    async def spend_on(
        self, key_id: str, prices: Prices, target: str, action: str | None
    ) -> str | None:
        """Pay for one call to ``target`` (``action``: its skill or tool) from
        the key's budget: its ``per_call`` price (`policies.prices`: the
        tool's, else the target's); None when paid (or free), else why not."""
        price = prices.price(f"{target}__{action}" if action else target, target)
        if price is None or not price.per_call:
            return None
        return await self.spend(key_id, price.per_call)

    async def spend(self, key_id: str, amount: Decimal) -> str | None:
        """Take ``amount`` from the key's budget: None when taken (or the key
        has none), else why not. A compare-and-set on the amount spent, so
        two replicas spending at once never both take the last of it."""
        record = await self._record(key_id)  # read if not cached: never "paid" unseen
        if record is None:
            return "the API key is gone"
        if record.budget is None:
            return None
        budget = record.budget
        for _ in range(SPEND_ATTEMPTS):
            async with self._engine.begin() as conn:
                spent = (
                    await conn.execute(select(api_keys.c.spent).where(api_keys.c.id == key_id))
                ).scalar_one_or_none()
                if spent is None:
                    return "the API key is gone"
                now = Decimal(spent) + amount
                if now > budget:
                    return f"the API key's budget of {budget} is spent ({spent} used)"
                taken = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.spent == spent)
                    .values(spent=str(now))
                )
            if taken.rowcount == 1:
                return None
        return "the API key's budget is busy: try again"

    async def _record(self, key_id: str) -> KeyRecord | None:
        cached = self._rows.get(key_id)
        if cached is not None and time.monotonic() - cached[1] < self._cache_seconds:
            return cached[0]
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        record = _row(row) if row is not None else None
        self._rows[key_id] = (record, time.monotonic())
        self._rows.move_to_end(key_id)
        while len(self._rows) > CACHE_SIZE:
            self._rows.popitem(last=False)
        return record

    async def _touch(self, key_id: str) -> None:
        now = self._clock()
        last = self._touched.get(key_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return
        if len(self._touched) >= CACHE_SIZE:
            self._touched.clear()
        self._touched[key_id] = now
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
            )


class _Row:
    """A row about to be inserted, read like one selected."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

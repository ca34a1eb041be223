"""API keys: what one looks like, how it is stored, and the principal it is.

A key is ``sk-sb-<id>_<secret>``: a fixed prefix that secret scanners can
match (``sk-sb-[a-z0-9]{12}_[A-Za-z0-9]{43}``), a public id of 12 random
characters (the row the key is looked up by, shown to people as its prefix
``sk-sb-<id>``), and 43 base62 characters of secret (256 bits). Because the
secret is that random, a slow password hash adds nothing: only its SHA-256
is stored (as `policies.client_auth` does for agents' client secrets), and
it is compared with `hmac.compare_digest`, in constant time.

A key is a principal like any other (`principal_of`): the user who made it
(or a service an admin made it for), holding the key's scopes within what its owner held when
it was made, with the key as the first actor of every chain it starts (so a
token minted for its call says ``act: {sub: "apikey:<id>"}``). Pure: the
gateway's `gateway.delegation.api_keys` stores and looks keys up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from limits import parse

from policies.durations import DurationError
from policies.durations import parse_duration as duration_of
from policies.limits import AppliedLimit, RateError
from policies.limits import parse_rate as rate_of
from policies.scopes import ScopeSyntaxError, parse_scopes
from policies.tokens import Principal, TokenInvalid

KEY_PREFIX = "sk-sb-"
ID_LENGTH = 12
SECRET_LENGTH = 43  # 62**43 > 2**256
_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(
    rf"^{KEY_PREFIX}([a-z0-9]{{{ID_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$"
)
# The actor a key's calls name first, and the issuer of a service's principal
# (no identity provider vouches for a service: the gateway's admin did).
ACTOR_PREFIX = "apikey:"
SERVICE_ISSUER = "urn:switchboard:service"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SCOPES = 64
MAX_BUDGET = Decimal(1_000_000)


class ApiKeyError(ValueError):
    """A key's settings are not acceptable; ``str()`` is safe to show."""


class ApiKeyRefused(Exception):
    """Whoever asks may not make (or manage) this key; ``str()`` is safe to show."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str  # the whole key, shown once

    @property
    def prefix(self) -> str:
        return prefix_of(self.key_id)


def new_key() -> NewKey:
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return NewKey(key_id, f"{KEY_PREFIX}{key_id}_{secret}")


def prefix_of(key_id: str) -> str:
    return KEY_PREFIX + key_id


def looks_like_key(token: str) -> bool:
    """Whether ``token`` is meant as an API key (it has the prefix): then it is
    judged as one and never tried as a JWT."""
    return token.startswith(KEY_PREFIX)


def key_id_of(key: str) -> str:
    """The id of a well-formed key; `TokenInvalid` for anything else (another
    spelling of a key -- other case, spaces inside -- is not that key)."""
    match = KEY_PATTERN.match(key)
    if match is None:
        raise TokenInvalid("API key is malformed")
    return match.group(1)


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Constant time in the secret: the digests are compared, not the keys."""
    return hmac.compare_digest(hash_key(key).encode(), stored_hash.encode())


def checked_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ApiKeyError("a key's name is 1-64 letters, digits, '_', '.' or '-'")
    return name


def checked_scopes(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    try:
        parsed = parse_scopes(" ".join(scopes))
    except ScopeSyntaxError as exc:
        raise ApiKeyError(str(exc)) from None
    if not parsed:
        raise ApiKeyError("a key needs at least one scope")
    if len(parsed) > MAX_SCOPES:
        raise ApiKeyError(f"a key holds at most {MAX_SCOPES} scopes")
    return parsed


def scopes_within(wanted: frozenset[str], held: frozenset[str]) -> None:
    """A key never carries more than whoever it is made from holds."""
    excess = wanted - held
    if excess:
        raise ApiKeyRefused(f"scopes not held by the key's owner: {' '.join(sorted(excess))}")


def parse_duration(value: str) -> timedelta:
    """A key's lifetime (`policies.durations`: ``30d``, ``12h``), not zero."""
    try:
        duration = duration_of(value)
    except DurationError as exc:
        raise ApiKeyError(str(exc)) from None
    if not duration:
        raise ApiKeyError(f"{value!r} is no lifetime: a key lives longer than 0")
    return duration


def parse_rate(value: str) -> str:
    """A key's own rate (`policies.limits.parse_rate`: ``10/s``), not zero."""
    try:
        rate = rate_of(value)
    except RateError as exc:
        raise ApiKeyError(str(exc)) from None
    if parse(rate).amount == 0:
        raise ApiKeyError(f"{value!r} lets no call through: a key's rate is more than 0")
    return rate


BUDGET_PLACES = 6


def parse_budget(value: str | int | float | Decimal) -> Decimal:
    """What the key's calls may cost in all, in the policy's currency (`prices`)."""
    try:
        budget = Decimal(str(value))
    except InvalidOperation:
        raise ApiKeyError(f"{value!r} is not an amount") from None
    if not budget.is_finite() or budget < 0 or budget > MAX_BUDGET:
        raise ApiKeyError(f"a budget is an amount from 0 to {MAX_BUDGET}")
    exponent = budget.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -BUDGET_PLACES:
        # Stored as text (40 characters): 1.23456789... would not fit.
        raise ApiKeyError(f"a budget has at most {BUDGET_PLACES} decimal places")
    return budget


@dataclass(frozen=True)
class KeyRecord:
    """A stored key, as the gateway looks it up (never its secret)."""

    key_id: str
    name: str
    secret_hash: str
    service: bool
    owner_subject: str
    owner_issuer: str
    scopes: frozenset[str]
    owner_scopes: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    rate: str | None = None
    budget: Decimal | None = None
    # Who made it (subject, issuer); None: its owner (a record built in code).
    created_by: tuple[str, str] | None = None


def why_unusable(record: KeyRecord, now: datetime) -> str | None:
    """Why a call with the key may not go on, or None.

    A user's key acts with the user's connected accounts and tasks, so only
    the user makes it: a row made as them by anyone else (an admin or the
    operator, when that was allowed) is refused, whatever it holds."""
    if record.revoked_at is not None:
        return "the API key has been revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return "the API key has expired"
    made_by = record.created_by
    if not record.service and made_by not in (None, (record.owner_subject, record.owner_issuer)):
        return "the API key was not made by its user"
    return None


def principal_of(record: KeyRecord, key: str, now: datetime) -> Principal:
    """The principal ``key`` is, when it is ``record``'s; `TokenInvalid`
    (answered 401) when it is not, or no longer."""
    if not key_matches(key, record.secret_hash):
        raise TokenInvalid("API key is unknown")
    unusable = why_unusable(record, now)
    if unusable is not None:
        raise TokenInvalid(unusable.replace("the API key", "API key", 1))
    usable_until = record.expires_at.timestamp() if record.expires_at is not None else 0
    return Principal(
        subject=record.owner_subject,
        issuer=record.owner_issuer,
        # Within the owner's rights as recorded when the key was made, even if
        # the row was edited since.
        scopes=record.scopes & record.owner_scopes,
        client_id=ACTOR_PREFIX + record.key_id,
        token_id=record.key_id,
        expires_at=int(usable_until),
        usable_until=usable_until,
        claims={"api_key": record.key_id, "api_key_name": record.name},
    )


def is_key_actor(client_id: str | None) -> bool:
    """Whether a call's first actor is an API key (`principal_of`)."""
    return client_id is not None and client_id.startswith(ACTOR_PREFIX)


def key_limits(actor: str | None, rate: str | None) -> tuple[AppliedLimit, ...]:
    """A key's own rate limit (``--rate``), counted like the policy's limits
    (`policies.limits`) in a counter of its own: every call with the key,
    whichever door and target, on every replica when they share Redis."""
    if actor is None or rate is None:
        return ()
    return (
        AppliedLimit(
            f"api-key {actor[len(ACTOR_PREFIX) :]}", rate, "moving-window", ("api-key", actor)
        ),
    )

"""Per-hop delegated tokens: the `act` chain and minting with a cache.

Every delegated call carries a token minted for exactly one target (RFC 9068
access token, RFC 8693 §4.1 `act` claim):

    iss  the gateway            sub  the triggering user, the same at every hop
    aud  the target's resource  act  the current actor; earlier actors nested
    scope  only ever shrinks    client_id  who asked for this token
    exp  <= 5 minutes, and never after the token it derives from

The actor chain is kept oldest first: ``actors[0]`` is the client the user's
request came through, ``actors[1:]`` are the agents that delegated onwards.
In the `act` claim the *current* actor is outermost (RFC 8693 §4.1).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policies.keys import SigningKey
from policies.tokens import TokenInvalid, mint_access_token

MAX_DELEGATED_TTL_SECONDS = 300  # DESIGN.md: exp <= 5 minutes
MAX_ACT_DEPTH = 32  # parsing bound, far above any policy's max_depth


class ActiveKeySource(Protocol):
    async def active_key(self) -> SigningKey: ...


def act_claim(actors: tuple[str, ...]) -> dict[str, Any]:
    """``("app", "a", "b")`` -> ``{"sub": "b", "act": {"sub": "a", "act": {"sub": "app"}}}``."""
    if not actors:
        raise ValueError("a delegated token needs at least one actor")
    claim: dict[str, Any] | None = None
    for actor in actors:
        claim = {"sub": actor} if claim is None else {"sub": actor, "act": claim}
    assert claim is not None
    return claim


def actors_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The actor chain of a verified token, oldest first; () when it has no `act`."""
    chain: list[str] = []
    act = claims.get("act")
    while act is not None:
        if not isinstance(act, Mapping) or not isinstance(act.get("sub"), str) or not act["sub"]:
            raise TokenInvalid("token act claim is malformed")
        if len(chain) >= MAX_ACT_DEPTH:
            raise TokenInvalid("token act claim is nested too deeply")
        chain.append(act["sub"])
        act = act.get("act")
    return tuple(reversed(chain))


@dataclass(frozen=True)
class MintRequest:
    subject: str
    subject_issuer: str  # part of the cache key: "alice" at two IdPs are two users
    actors: tuple[str, ...]
    audience: str
    scopes: frozenset[str]
    client_id: str
    not_after: float | None = None  # the exp of the token this one derives from
    # The work the token is for (`Caller.txn`), carried as its ``txn`` claim
    # (RFC 8417 §2.2, "transaction identifier") through every exchange.
    txn: str | None = None


@dataclass(frozen=True)
class MintedToken:
    token: str
    token_id: str
    expires_at: int
    scopes: frozenset[str]
    kid: str = ""
    cached: bool = False


_CacheKey = tuple[str, str, tuple[str, ...], str, frozenset[str], str, str | None]


class DelegatedTokenMinter:
    """Mints delegated tokens, reusing one until shortly before it expires.

    Minting costs an ECDSA signature (~50 µs) plus JSON; the cache makes a
    steady stream of calls for the same (user, chain, target, scopes) free.
    """

    def __init__(
        self,
        keys: ActiveKeySource,
        issuer: str,
        *,
        ttl_seconds: int = MAX_DELEGATED_TTL_SECONDS,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= ttl_seconds <= MAX_DELEGATED_TTL_SECONDS:
            raise ValueError(f"delegated tokens live 1..{MAX_DELEGATED_TTL_SECONDS} seconds")
        self._keys = keys
        self._issuer = issuer
        self._ttl = ttl_seconds
        # Hand out a cached token only while it has a useful life left.
        self._margin = max(5, ttl_seconds // 5)
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[_CacheKey, MintedToken] = OrderedDict()

    async def mint(self, request: MintRequest) -> MintedToken:
        now = self._clock()
        key: _CacheKey = (
            request.subject_issuer,
            request.subject,
            request.actors,
            request.audience,
            request.scopes,
            request.client_id,
            request.txn,
        )
        cached = self._cache.get(key)
        signing_key = await self._keys.active_key()  # cheap: cached by the key store
        if (
            cached is not None
            and cached.kid == signing_key.kid  # after a rotation, re-sign with the new key
            and cached.expires_at - now > self._margin
            and (request.not_after is None or cached.expires_at <= request.not_after)
        ):
            self._cache.move_to_end(key)
            return MintedToken(
                cached.token,
                cached.token_id,
                cached.expires_at,
                cached.scopes,
                kid=cached.kid,
                cached=True,
            )
        issued = int(now)
        expires = issued + self._ttl
        if request.not_after is not None:
            expires = min(expires, int(request.not_after))
        if expires <= issued:
            raise TokenInvalid("the token being delegated has expired")
        token_id = uuid.uuid4().hex
        token = mint_access_token(
            signing_key,
            issuer=self._issuer,
            subject=request.subject,
            audience=request.audience,
            scopes=request.scopes,
            ttl_seconds=expires - issued,
            client_id=request.client_id,
            extra_claims={
                "act": act_claim(request.actors),
                **({"txn": request.txn} if request.txn else {}),
            },
            now=issued,
            token_id=token_id,
        )
        minted = MintedToken(token, token_id, expires, request.scopes, kid=signing_key.kid)
        self._cache[key] = minted
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return minted

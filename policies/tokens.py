"""Verifying inbound access tokens and minting the gateway's own.

Verification is a fixed sequence; every step fails closed with `TokenInvalid`
(the gateway answers 401 with its description):

1. shape: a compact JWS of bounded size;
2. algorithm: asymmetric only, no `crit` (`policies.jws.check_algorithm`);
3. issuer: the *unverified* `iss` picks a trusted issuer by exact match -- it
   only routes to a key set; it is checked again after the signature;
4. `typ` must be one the issuer is trusted for (RFC 9068 §4: `at+jwt`), which
   is what keeps ID tokens (`typ: JWT`) from being used as access tokens;
5. `kid` is required and looked up in that issuer's keys only;
6. signature, with the key and algorithm pinned;
7. claims from the verified payload: `iss`, `sub`, `aud` (must contain our
   resource id), `exp`, `iat` all required and well-typed; `nbf` honoured;
   a small leeway for clock skew.

"Expired" has one rule, `usable_until`: the door refuses a token from that
moment, and a token derived from it (`policies.delegation`) ends by then.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from policies.claims import NotNumeric, OutOfRange, numeric_date
from policies.jws import JWSInvalid, check_algorithm, sign_compact, split_compact, verify_compact
from policies.keys import SigningKey
from policies.scopes import ScopeSyntaxError, parse_scopes

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
# Tokens from `switchboard token issue` carry this client id; only a gateway
# started with --dev accepts them.
DEV_CLIENT_ID = "switchboard-dev-issuer"


class TokenInvalid(Exception):
    """The token is not acceptable; ``str()`` is safe to return to the caller."""


class KeySource(Protocol):
    """Where an issuer's public keys come from (the gateway's store, a JWKS URL)."""

    async def get(self, kid: str) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    keys: KeySource
    audience: str
    accepted_types: frozenset[str] = frozenset({ACCESS_TOKEN_TYPE})
    accept_dev_tokens: bool = False


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a verified token."""

    subject: str
    issuer: str
    scopes: frozenset[str]
    client_id: str | None = None
    token_id: str | None = None
    expires_at: int = 0
    # When the verifier stops accepting the token (`usable_until`): its `exp`
    # plus the clock-skew leeway; 0 when no token says (a console session).
    usable_until: float = 0
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    keys: KeySource
    kid: str


class TokenVerifier:
    def __init__(
        self,
        issuers: Iterable[TrustedIssuer],
        *,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._leeway = leeway_seconds
        self._clock = clock
        # Verified tokens, so a client sending the same token on every call
        # pays the signature check once, then a lookup (bench/tokens.py).
        # Keyed by the exact token text (base64url is checked canonical, so one
        # token has one spelling) and the expected audience/issuer.
        self._verified: OrderedDict[tuple[str, str | None, str | None], _Verified] = OrderedDict()
        self._cache_size = cache_size

    async def verify(
        self, token: str, *, audience: str | None = None, issuer: str | None = None
    ) -> Principal:
        """Verify ``token``; ``issuer`` restricts which trusted issuer may have made
        it, ``audience`` replaces that issuer's expected audience (the token
        endpoint checks a delegated token against the agent presenting it)."""
        cache_key = (token, audience, issuer)
        hit = self._verified.get(cache_key)
        if hit is not None:
            # Time claims move on, and the key may have been retired since:
            # both are checked again on every use.
            self._check_times(hit.principal.claims)
            if await hit.keys.get(hit.kid) is not None:
                self._verified.move_to_end(cache_key)
                return hit.principal
            del self._verified[cache_key]
        try:
            header, unverified_payload = split_compact(token)
            check_algorithm(header)
        except JWSInvalid as exc:
            raise TokenInvalid(str(exc)) from None
        claimed_issuer = _unverified_issuer(unverified_payload)
        trusted = self._issuers.get(claimed_issuer)
        if trusted is None or (issuer is not None and claimed_issuer != issuer):
            raise TokenInvalid("token issuer is not trusted")
        _check_type(header, trusted)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("token header has no kid")
        key = await trusted.keys.get(kid)
        if key is None:
            raise TokenInvalid("token signing key (kid) is unknown")
        try:
            _, payload = verify_compact(token, key)
        except JWSInvalid as exc:
            raise TokenInvalid(str(exc)) from None
        principal = self._principal(_claims(payload), trusted, audience or trusted.audience)
        self._verified[cache_key] = _Verified(principal, trusted.keys, kid)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        now = self._clock()
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        if now >= usable_until(exp, self._leeway):
            raise TokenInvalid("token has expired")
        if iat > now + self._leeway:
            raise TokenInvalid("token was issued in the future (iat)")
        if "nbf" in claims and _numeric(claims, "nbf") > now + self._leeway:
            raise TokenInvalid("token is not valid yet (nbf)")
        return exp

    def _principal(self, claims: dict[str, Any], issuer: TrustedIssuer, audience: str) -> Principal:
        if claims.get("iss") != issuer.issuer:
            raise TokenInvalid("token issuer is not trusted")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenInvalid("token has no subject (sub)")
        if audience not in _audiences(claims):
            raise TokenInvalid(
                "token audience (aud) is not this gateway"
                if audience == issuer.audience
                else "token audience (aud) is not the party presenting it"
            )
        exp = self._check_times(claims)
        client_id = claims.get("client_id", claims.get("azp"))
        if client_id is not None and not isinstance(client_id, str):
            raise TokenInvalid("token client_id is not a string")
        if client_id == DEV_CLIENT_ID and not issuer.accept_dev_tokens:
            raise TokenInvalid("dev-issuer tokens are accepted only by a gateway in --dev mode")
        jti = claims.get("jti")
        return Principal(
            subject=sub,
            issuer=issuer.issuer,
            scopes=_scopes(claims),
            client_id=client_id,
            token_id=jti if isinstance(jti, str) else None,
            expires_at=int(exp),
            usable_until=usable_until(exp, self._leeway),
            claims=claims,
        )


def usable_until(exp: float, leeway_seconds: float) -> float:
    """The moment a token whose `exp` is ``exp`` stops being accepted: the
    one rule for "expired", at the door and for what is derived from it.
    RFC 7519 §4.1.4 allows "some small leeway, usually no more than a few
    minutes, to account for clock skew": the gateway's is
    `token_leeway_seconds`. A token accepted at the door can therefore be
    delegated: the token minted from it ends by this moment, not by `exp`
    (which may already be past), and is refused once it has come."""
    return exp + leeway_seconds


def mint_access_token(
    key: SigningKey,
    *,
    issuer: str,
    subject: str,
    audience: str,
    scopes: Iterable[str],
    ttl_seconds: int,
    client_id: str,
    extra_claims: Mapping[str, Any] | None = None,
    now: float | None = None,
    token_id: str | None = None,
) -> str:
    """An RFC 9068 JWT access token signed by the gateway."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        **(extra_claims or {}),
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "scope": " ".join(sorted(set(scopes))),
        "client_id": client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": token_id or uuid.uuid4().hex,
    }
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return sign_compact(
        payload, key.private_key_pem, key.alg, {"kid": key.kid, "typ": ACCESS_TOKEN_TYPE}
    )


def _unverified_issuer(payload: bytes) -> str:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits
        raise TokenInvalid("token payload is not JSON") from None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(iss, str):
        raise TokenInvalid("token has no issuer (iss)")
    return iss


def _check_type(header: Mapping[str, Any], issuer: TrustedIssuer) -> None:
    typ = header.get("typ")
    if not isinstance(typ, str):
        raise TokenInvalid("token header has no typ; access tokens must be typ at+jwt")
    # RFC 7515 §4.1.9: "application/" may be omitted; compare case-insensitively.
    normalised = typ.lower().removeprefix("application/")
    if normalised not in {t.lower() for t in issuer.accepted_types}:
        raise TokenInvalid(f"token typ {typ!r} is not an access token type this issuer may use")


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits
        raise TokenInvalid("token payload is not JSON") from None
    if not isinstance(claims, dict):
        raise TokenInvalid("token payload is not a JSON object")
    return claims


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return aud
    raise TokenInvalid("token has no audience (aud)")


def _numeric(claims: Mapping[str, Any], name: str) -> float:
    try:
        return numeric_date(claims.get(name))
    except NotNumeric:
        raise TokenInvalid(f"token has no numeric {name}") from None
    except OutOfRange:
        raise TokenInvalid(f"token {name} is out of range") from None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    # RFC 9068 §2.2.3 / RFC 8693 §4.2: `scope` is a space-delimited string.
    # Some IdPs (Azure AD, Okta) use `scp`, as a list or a string.
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = " ".join(value)
        if isinstance(value, str):
            try:
                return parse_scopes(value)
            except ScopeSyntaxError:
                raise TokenInvalid(f"token {name} claim is malformed") from None
        if value is not None:
            raise TokenInvalid(f"token {name} claim is malformed")
    return frozenset()


def first_actor(principal: Principal) -> str:
    """Who a user's own request came through, the first of its actor chain:
    the client app named by the token -- or, for a dev token (no app between
    the user and the gateway), the user: the dev issuer is not an actor."""
    client = principal.client_id
    return client if client and client != DEV_CLIENT_ID else principal.subject

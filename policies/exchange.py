"""RFC 8693 token exchange requests: parsing and the protocol's error codes.

Pure: the token endpoint (`gateway.delegation.token_exchange`) does the I/O. Parameters
arrive form-encoded (RFC 6749 §3.2, §4.1.3); a parameter sent twice is an
`invalid_request` (RFC 6749 §3.2: "MUST NOT be included more than once"),
except `resource`, which RFC 8707 allows to repeat -- and which we refuse to
repeat all the same, because a delegated token names exactly one target.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from policies.scopes import ScopeSyntaxError, parse_scopes

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})
MAX_FORM_BYTES = 64 * 1024


class OAuthError(Exception):
    """An RFC 6749 §5.2 / RFC 8693 §2.2.2 error response."""

    def __init__(
        self, error: str, description: str, status: int = 400, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class ExchangeRequest:
    subject_token: str
    subject_token_type: str
    actor_token: str | None
    actor_token_type: str | None
    resource: str | None
    audience: str | None
    scope: frozenset[str] | None
    client_id: str | None
    client_secret: str | None
    client_assertion: str | None


def parse_form(body: bytes) -> dict[str, str]:
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "request body is too large")
    try:
        text = body.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(
            "invalid_request", "body must be application/x-www-form-urlencoded"
        ) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name + value):
            # Percent-encoded control characters (NUL above all: PostgreSQL
            # text cannot hold it) name no client, agent or token.
            raise OAuthError("invalid_request", f"parameter {name!r} holds a control character")
        if name in params:
            raise OAuthError("invalid_request", f"parameter {name} is included more than once")
        params[name] = value
    return params


def parse_exchange(params: dict[str, str]) -> ExchangeRequest:
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != TOKEN_EXCHANGE_GRANT:
        raise OAuthError("unsupported_grant_type", f"only {TOKEN_EXCHANGE_GRANT} is supported here")
    subject_token = params.get("subject_token")
    subject_token_type = params.get("subject_token_type")
    if not subject_token or not subject_token_type:
        raise OAuthError("invalid_request", "subject_token and subject_token_type are required")
    if subject_token_type not in SUBJECT_TOKEN_TYPES:
        raise OAuthError(
            "invalid_request", f"subject_token_type {subject_token_type!r} is not supported"
        )
    actor_token = params.get("actor_token") or None
    actor_token_type = params.get("actor_token_type") or None
    # RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present
    # and MUST NOT be included otherwise.
    if (actor_token is None) != (actor_token_type is None):
        raise OAuthError(
            "invalid_request", "actor_token and actor_token_type go together or not at all"
        )
    if actor_token_type is not None and actor_token_type != JWT_TOKEN_TYPE:
        raise OAuthError(
            "invalid_request",
            f"actor_token_type must be {JWT_TOKEN_TYPE} (an assertion signed with the agent's key)",
        )
    resource = params.get("resource") or None
    audience = params.get("audience") or None
    if resource is None and audience is None:
        raise OAuthError("invalid_target", "name the next agent with resource or audience")
    scope: frozenset[str] | None = None
    if "scope" in params:
        try:
            scope = parse_scopes(params["scope"])
        except ScopeSyntaxError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
    assertion_type = params.get("client_assertion_type")
    client_assertion = params.get("client_assertion") or None
    if (assertion_type is None) != (client_assertion is None):
        raise OAuthError(
            "invalid_request", "client_assertion and client_assertion_type go together"
        )
    if assertion_type is not None and assertion_type != JWT_BEARER_ASSERTION:
        raise OAuthError("invalid_client", f"client_assertion_type must be {JWT_BEARER_ASSERTION}")
    return ExchangeRequest(
        subject_token=subject_token,
        subject_token_type=subject_token_type,
        actor_token=actor_token,
        actor_token_type=actor_token_type,
        resource=resource,
        audience=audience,
        scope=scope,
        client_id=params.get("client_id") or None,
        client_secret=params.get("client_secret") or None,
        client_assertion=client_assertion,
    )

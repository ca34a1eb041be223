"""An A2A agent whose card asks for each user's own OAuth token.

A card says how callers authenticate in `securitySchemes` and which of
those a call needs in `securityRequirements` (A2A 1.0 §4.5, "Security";
0.3's `security` is read into the same field by the SDK's parser, so the
registry stores both versions the 1.0 way). A requirement is one
alternative: all the schemes it names, together.

An agent is `user_oauth` when *every* alternative names an OAuth 2.0 scheme
with an authorization-code flow: there is then no way to call it except
with a token its own authorization server issued to a user, which the
gateway's minted tokens are not. An agent that also accepts a bearer token
(the gateway's) keeps getting the gateway's, as before.

The scopes asked for are the least the card names: those the chosen
alternative lists for the scheme, else every scope the flow declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CardAuthorization:
    """Where the card says its users get a token (its OAuth2 scheme)."""

    scheme: str
    authorization_url: str
    token_url: str
    metadata_url: str | None  # RFC 8414 metadata the card points at, if any
    scope: str | None  # space-separated (RFC 6749 §3.3)


def _authorization_code(scheme: Any) -> Mapping[str, Any] | None:
    if not isinstance(scheme, Mapping):
        return None
    oauth2 = scheme.get("oauth2SecurityScheme")
    if not isinstance(oauth2, Mapping):
        return None
    flows = oauth2.get("flows")
    flow = flows.get("authorizationCode") if isinstance(flows, Mapping) else None
    if not isinstance(flow, Mapping):
        return None
    if not isinstance(flow.get("authorizationUrl"), str) or not isinstance(
        flow.get("tokenUrl"), str
    ):
        return None
    return flow


def card_authorization(card: Mapping[str, Any]) -> CardAuthorization | None:
    """The card's authorization-code scheme if every way of calling the agent
    needs one; None otherwise (the gateway's own token is what it gets)."""
    schemes = card.get("securitySchemes")
    requirements = card.get("securityRequirements")
    if not isinstance(schemes, Mapping) or not isinstance(requirements, list) or not requirements:
        return None
    chosen: tuple[str, list[Any]] | None = None
    for requirement in requirements:
        named = requirement.get("schemes") if isinstance(requirement, Mapping) else None
        if not isinstance(named, Mapping):
            return None
        oauth = [(name, named[name]) for name in named if _authorization_code(schemes.get(name))]
        if not oauth:
            return None  # an alternative the gateway's own token may satisfy
        if chosen is None:
            scopes = oauth[0][1].get("list") if isinstance(oauth[0][1], Mapping) else None
            chosen = (oauth[0][0], scopes if isinstance(scopes, list) else [])
    assert chosen is not None
    name, listed = chosen
    scheme = schemes[name]
    flow = _authorization_code(scheme)
    assert flow is not None
    declared = flow.get("scopes")
    scopes = [s for s in listed if isinstance(s, str)] or (
        [s for s in declared if isinstance(s, str)] if isinstance(declared, Mapping) else []
    )
    metadata_url = scheme["oauth2SecurityScheme"].get("oauth2MetadataUrl")
    return CardAuthorization(
        scheme=name,
        authorization_url=flow["authorizationUrl"],
        token_url=flow["tokenUrl"],
        metadata_url=metadata_url if isinstance(metadata_url, str) and metadata_url else None,
        scope=" ".join(scopes) or None,
    )

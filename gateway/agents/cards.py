"""The cards the gateway publishes: one per registered agent, and its own.

A client reaches an agent through the gateway as if the gateway were the
agent, so the per-agent card (`/a2a/{id}/.well-known/agent-card.json`) keeps
what the agent does -- name, description, skills, capabilities, modes -- and
replaces how to reach it: `supportedInterfaces` point at the gateway (JSON-RPC
and HTTP+JSON in A2A 1.0, JSON-RPC in 0.3 on the same URL), and the security
scheme is the gateway's bearer token, because that is what the gateway checks;
the agent's own schemes are for the minted tokens the gateway sends it.

Every card is signed by the gateway's current key (A2A 1.0 §8.4: a JWS with a
detached payload, the RFC 8785 form of the card without `signatures`, as
`a2a.utils.signing` signs and verifies it), with a `jku` pointing at the
gateway's JWKS. The upstream's own signature status stays in the registry
record. The card is pure A2A 1.0 (the schema allows no other member); the
same card with the SDK's 0.3 compatibility fields (`url`, `protocolVersion`,
...) is served at the 0.2-era path `.well-known/agent.json` for 0.3 clients.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import AgentCard, AgentSkill
from a2a.utils.constants import TransportProtocol
from google.protobuf.json_format import MessageToDict, ParseDict

from policies.jws import sign_compact
from policies.keys import SigningKey
from registry.signatures import drop_empty

SCHEME_NAME = "switchboard"
GATEWAY_VERSION_1 = "1.0"
GATEWAY_VERSION_0_3 = "0.3.0"


def _interfaces(url: str, grpc_target: str | None = None, tenant: str = "") -> list[dict[str, str]]:
    """Where the gateway serves one agent: JSON-RPC and HTTP+JSON at its URL, in
    A2A 1.0 and 0.3, and -- when the gRPC binding is on -- gRPC at the
    gateway's one gRPC target, the agent named by `tenant`: gRPC has no paths,
    so the tenant is how a request names the agent (A2A 1.0 §4.4.6
    AgentInterface.tenant; clients set it on every request)."""
    interfaces = [
        {
            "url": url,
            "protocolBinding": TransportProtocol.JSONRPC,
            "protocolVersion": GATEWAY_VERSION_1,
        },
        {
            "url": url,
            "protocolBinding": TransportProtocol.HTTP_JSON,
            "protocolVersion": GATEWAY_VERSION_1,
        },
        {
            "url": url,
            "protocolBinding": TransportProtocol.JSONRPC,
            "protocolVersion": GATEWAY_VERSION_0_3,
        },
    ]
    if grpc_target is not None:
        grpc = {
            "url": grpc_target,
            "protocolBinding": TransportProtocol.GRPC,
            "protocolVersion": GATEWAY_VERSION_1,
        }
        if tenant:
            grpc["tenant"] = tenant
        interfaces.insert(2, grpc)
    return interfaces


def _security(token_endpoint: str) -> dict[str, Any]:
    return {
        "securitySchemes": {
            SCHEME_NAME: {
                "httpAuthSecurityScheme": {
                    "scheme": "Bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token for the Switchboard gateway, from one "
                    "of its trusted issuers; agents exchange theirs at " + token_endpoint,
                }
            }
        },
        "securityRequirements": [{"schemes": {SCHEME_NAME: {"list": []}}}],
    }


def proxied_card(
    upstream: Mapping[str, Any],
    url: str,
    token_endpoint: str,
    grpc_target: str | None = None,
    tenant: str = "",
) -> AgentCard:
    """The card of an agent as reached through the gateway at ``url`` (and at
    ``grpc_target`` as ``tenant``)."""
    kept = {
        k: upstream[k]
        for k in (
            "name",
            "description",
            "version",
            "provider",
            "iconUrl",
            "documentationUrl",
            "defaultInputModes",
            "defaultOutputModes",
        )
        if k in upstream
    }
    capabilities = upstream.get("capabilities") or {}
    kept["capabilities"] = {
        k: capabilities[k]
        for k in ("streaming", "pushNotifications", "extendedAgentCard", "extensions")
        if k in capabilities
    }
    # A skill's security requirements name the agent's schemes, which this
    # card does not carry: through the gateway, the gateway's scheme applies.
    kept["skills"] = [
        {k: v for k, v in skill.items() if k != "securityRequirements"}
        for skill in upstream.get("skills") or []
        if isinstance(skill, Mapping)
    ]
    card = AgentCard()
    ParseDict(
        {
            **kept,
            "supportedInterfaces": _interfaces(url, grpc_target, tenant),
            **_security(token_endpoint),
        },
        card,
        ignore_unknown_fields=True,
    )
    return card


def gateway_card(
    url: str,
    public_url: str,
    token_endpoint: str,
    version: str,
    skills: Iterable[AgentSkill] = (),
    *,
    extended: bool = False,
) -> AgentCard:
    """The gateway's own card; the extended one lists the skills a caller may use."""
    description = (
        "Switchboard: an A2A/MCP gateway. Each registered agent is reachable at "
        f"{public_url}/a2a/{{agent_id}}, with its own card at "
        f"{public_url}/a2a/{{agent_id}}/.well-known/agent-card.json."
    )
    card = AgentCard()
    ParseDict(
        {
            "name": "Switchboard",
            "description": description,
            "version": version,
            "provider": {"organization": "Switchboard", "url": public_url},
            "capabilities": {
                "streaming": False,
                "pushNotifications": False,
                "extendedAgentCard": True,
            },
            "defaultInputModes": ["text/plain", "application/json"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "supportedInterfaces": _interfaces(url),
            # A card needs at least one skill (A2A 1.0 §5.7); the gateway's own
            # is the directory its extended card is.
            "skills": [
                {
                    "id": "directory",
                    "name": "Agent directory",
                    "description": "The authenticated extended card lists every skill "
                    "you may use through this gateway, as <agent id>/<skill id>.",
                    "tags": ["directory"],
                }
            ],
            **_security(token_endpoint),
        },
        card,
    )
    if extended:
        card.skills.extend(skills)
    return card


def sign_card(card: AgentCard, key: SigningKey, jku: str) -> AgentCard:
    signed = AgentCard()
    signed.CopyFrom(card)
    del signed.signatures[:]
    payload = rfc8785.dumps(drop_empty(MessageToDict(signed)) or {})
    header = {"alg": key.alg, "kid": key.kid, "jku": jku, "typ": "JOSE"}
    protected, _, signature = sign_compact(payload, key.private_key_pem, key.alg, header).split(".")
    signed.signatures.add(protected=protected, signature=signature)
    return signed


def card_json(card: AgentCard, *, legacy: bool = False) -> dict[str, Any]:
    """The served form: the A2A 1.0 card, which the 1.0 schema allows nothing
    beyond; with ``legacy``, plus the SDK's 0.3 fields (`url`,
    `protocolVersion`, `preferredTransport`, `security`) for 0.3 clients."""
    served: dict[str, Any] = agent_card_to_dict(card) if legacy else MessageToDict(card)
    return served


def etag(document: dict[str, Any]) -> str:
    """A weak validator over the card without its signatures (A2A 1.0 §8.6.1):
    an ES256 signature differs at every signing while the card does not."""
    unsigned = {k: v for k, v in document.items() if k != "signatures"}
    body = json.dumps(unsigned, sort_keys=True, separators=(",", ":"))
    return 'W/"' + hashlib.sha256(body.encode()).hexdigest() + '"'

"""The A2A 1.0 card the gateway writes for an agent it runs itself.

The agent is reached only through the gateway, so the card's interfaces are
the gateway's `/a2a/{id}` (JSON-RPC and HTTP+JSON, A2A 1.0), its skills are
the registration's, and one extension entry marks it as gateway-run -- the
front door reads that mark to route its calls to the task runner rather than
to an A2A upstream (`GATEWAY_RUN_EXTENSION`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.cards import ParsedCard, parse_card
from registry.vendor_models import VendorRegistration

GATEWAY_RUN_EXTENSION = "urn:switchboard:ext:gateway-run:v1"
_KIND_NAMES = {"openai": "an OpenAI-compatible chat endpoint", "rest": "a REST webhook"}


def vendor_card(registration: VendorRegistration, agent_id: str, url: str) -> ParsedCard:
    """The card for ``registration``, served at ``url`` (the gateway's `/a2a/{id}`)."""
    kind = registration.upstream.type
    streaming = kind == "openai"
    modes = ["text/plain", "application/json"]
    document: dict[str, Any] = {
        "name": registration.name,
        "description": registration.description
        or f"{registration.name}: {_KIND_NAMES[kind]}, served as an A2A agent by Switchboard.",
        "version": registration.version,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        ],
        "capabilities": {
            "streaming": streaming,
            "pushNotifications": False,
            "extensions": [
                {
                    "uri": GATEWAY_RUN_EXTENSION,
                    "description": f"Run by the gateway: the agent is {_KIND_NAMES[kind]}; "
                    "its tasks are the gateway's.",
                    "required": False,
                    "params": {"kind": kind, **_connects(registration)},
                }
            ],
        },
        "defaultInputModes": modes,
        "defaultOutputModes": modes,
        "skills": [
            {
                "id": skill.id,
                "name": skill.name,
                "description": skill.description or skill.name,
                "tags": skill.tags or [kind],
                **({"examples": skill.examples} if skill.examples else {}),
            }
            for skill in registration.skills
        ],
    }
    return parse_card(document)


# The kinds `vendor_card` writes: agents the gateway calls through an adapter.
VENDOR_KINDS = frozenset({"openai", "rest"})


def _connects(registration: VendorRegistration) -> dict[str, Any]:
    """Its users connect their own accounts at the vendor (`user_oauth`): said
    in the card so a message's admission reads the registration only then."""
    return {"userOAuth": True} if registration.user_oauth is not None else {}


def takes_users_own_token(card: Mapping[str, Any]) -> bool:
    """A card `vendor_card` wrote for an agent registered with `user_oauth`."""
    if gateway_run_kind(card) not in VENDOR_KINDS:
        return False
    for extension in card.get("capabilities", {}).get("extensions") or ():
        if isinstance(extension, Mapping) and extension.get("uri") == GATEWAY_RUN_EXTENSION:
            params = extension.get("params")
            return isinstance(params, Mapping) and params.get("userOAuth") is True
    return False


def gateway_run_kind(card: Mapping[str, Any]) -> str | None:
    """ "openai" or "rest" for a card `vendor_card` wrote; None for any other."""
    capabilities = card.get("capabilities")
    if not isinstance(capabilities, Mapping):
        return None
    for extension in capabilities.get("extensions") or ():
        if isinstance(extension, Mapping) and extension.get("uri") == GATEWAY_RUN_EXTENSION:
            params = extension.get("params")
            kind = params.get("kind") if isinstance(params, Mapping) else None
            return kind if isinstance(kind, str) else None
    return None

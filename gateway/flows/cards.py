"""The card the gateway writes for a flow (`gateway.flows.agent` serves it)."""

from __future__ import annotations

from gateway.flows.definition import FlowDocument
from registry.cards import ParsedCard, parse_card
from registry.vendor_cards import GATEWAY_RUN_EXTENSION

KIND = "flow"
SKILL = "run"


def flow_card(document: FlowDocument, url: str, version: int) -> ParsedCard:
    """The card the gateway writes for a flow, served at ``url`` (`/a2a/{id}`)."""
    description = document.description or f"{document.name}: a flow run by Switchboard."
    modes = ["application/json", "text/plain"]
    return parse_card(
        {
            "name": document.name,
            "description": description,
            "version": str(version),
            "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            ],
            "capabilities": {
                "streaming": True,
                "pushNotifications": False,
                "extensions": [
                    {
                        "uri": GATEWAY_RUN_EXTENSION,
                        "description": "Run by the gateway: a flow; each task is one run.",
                        "required": False,
                        "params": {"kind": KIND, "version": version},
                    }
                ],
            },
            "defaultInputModes": modes,
            "defaultOutputModes": modes,
            "skills": [
                {
                    "id": SKILL,
                    "name": document.name,
                    "description": description,
                    "tags": ["flow"],
                }
            ],
        }
    )

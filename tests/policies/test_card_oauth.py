"""Which agent cards ask for each user's own token (`policies.card_oauth`),
and what the policy then asks of the user at the gateway (nothing the card's
own authorization server checks)."""

from __future__ import annotations

from typing import Any

import pytest

from policies.card_oauth import card_authorization
from policies.policy import Target

FLOW = {
    "authorizationUrl": "https://as.example/authorize",
    "tokenUrl": "https://as.example/token",
    "scopes": {"crm:read": "read", "crm:write": "write"},
}
OAUTH = {
    "oauth2SecurityScheme": {
        "flows": {"authorizationCode": FLOW},
        "oauth2MetadataUrl": "https://as.example/.well-known/oauth-authorization-server",
    }
}
BEARER = {"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}
MACHINE = {
    "oauth2SecurityScheme": {
        "flows": {"clientCredentials": {"tokenUrl": "https://as.example/token", "scopes": {}}}
    }
}


def card(*requirements: dict[str, list[str]], **schemes: Any) -> dict[str, Any]:
    return {
        "name": "crm",
        "skills": [{"id": "read", "securityRequirements": [{"schemes": {"gw": {"list": ["x"]}}}]}],
        "securitySchemes": schemes,
        "securityRequirements": [
            {"schemes": {name: {"list": scopes} for name, scopes in r.items()}}
            for r in requirements
        ],
    }


def test_every_way_in_needs_the_users_own_token() -> None:
    found = card_authorization(card({"vendor": ["crm:read"]}, vendor=OAUTH))
    assert found is not None
    assert (found.scheme, found.scope) == ("vendor", "crm:read")
    assert found.authorization_url == FLOW["authorizationUrl"]
    assert found.token_url == FLOW["tokenUrl"]
    assert found.metadata_url == "https://as.example/.well-known/oauth-authorization-server"


def test_no_listed_scope_asks_for_the_flows_declared_ones() -> None:
    found = card_authorization(card({"vendor": []}, vendor=OAUTH))
    assert found is not None and found.scope == "crm:read crm:write"


@pytest.mark.parametrize(
    "shown",
    [
        card(vendor=OAUTH),  # declared, never required
        card({"vendor": ["crm:read"]}, {"gw": []}, vendor=OAUTH, gw=BEARER),  # or a bearer
        card({"machine": []}, machine=MACHINE),  # client credentials: the gateway's own
        card({"missing": []}, vendor=OAUTH),  # names a scheme the card does not declare
        {"securitySchemes": [], "securityRequirements": [{"schemes": {}}]},
        {"securitySchemes": {"v": OAUTH}, "securityRequirements": ["v"]},
        {"securitySchemes": {"v": {"oauth2SecurityScheme": "x"}}, "securityRequirements": []},
        {
            "securitySchemes": {
                "v": {"oauth2SecurityScheme": {"flows": {"authorizationCode": {}}}}
            },
            "securityRequirements": [{"schemes": {"v": {"list": []}}}],
        },
    ],
)
def test_anything_else_gets_the_gateways_own_token(shown: dict[str, Any]) -> None:
    assert card_authorization(shown) is None


def test_the_policy_asks_no_gateway_scope_the_vendor_checks() -> None:
    vendor = Target.from_card("crm", card({"vendor": ["crm:read"]}, vendor=OAUTH))
    assert vendor.requirements == ()
    assert dict(vendor.skill_requirements) == {}
    assert vendor.skills == frozenset({"read"})
    # A card the gateway's token serves keeps its requirements.
    own = Target.from_card("crm", card({"gw": ["crm:read"]}, gw=BEARER))
    assert own.requirements == (frozenset({"crm:read"}),)

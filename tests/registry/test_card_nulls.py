"""A card member that is JSON null is one not given (Agno's cards write null
for every unset field): accepted for an optional member, refused as missing
for a required one -- the same rule for every member."""

from __future__ import annotations

from typing import Any

import pytest

from registry.cards import CardInvalid, parse_card

CARD: dict[str, Any] = {
    "name": "Agno",
    "description": "An agent",
    "version": "1",
    "url": "http://127.0.0.1:9/",
    "protocolVersion": "0.3.0",
    "capabilities": {},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [{"id": "s", "name": "s", "description": "s", "tags": ["t"]}],
}
OPTIONAL = [
    "additionalInterfaces",
    "signatures",
    "securitySchemes",
    "provider",
    "preferredTransport",
    "documentationUrl",
    "iconUrl",
    "security",
    "supportsAuthenticatedExtendedCard",
]


def test_null_optional_members_are_not_given() -> None:
    parsed = parse_card({**CARD, **dict.fromkeys(OPTIONAL)})
    assert parsed.protocol_version == "0.3"
    assert [s.id for s in parsed.card.skills] == ["s"]
    assert not parsed.card.HasField("provider")
    # What was registered is kept as it was sent.
    assert parsed.original["provider"] is None


@pytest.mark.parametrize("member", ["name", "skills", "capabilities"])
def test_a_null_required_member_is_missing(member: str) -> None:
    with pytest.raises(CardInvalid) as refused:
        parse_card({**CARD, member: None})
    assert any(error.field.startswith(member) for error in refused.value.errors), (
        refused.value.errors
    )


def test_a_wrong_type_is_still_refused() -> None:
    with pytest.raises(CardInvalid) as refused:
        parse_card({**CARD, "provider": "acme"})
    assert [e.field for e in refused.value.errors] == ["provider"]

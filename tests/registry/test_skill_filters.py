"""`skill_filters_match`: a search's exact filters, met by the skills a caller
may use (the facet index matched them on all the card's skills)."""

from __future__ import annotations

from typing import Any

from registry.models import AgentQuery
from registry.store import skill_filters_match

CARD: dict[str, Any] = {"defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"]}
OPEN = {"id": "open", "tags": ["Public"], "inputModes": ["image/png"]}
SECRET = {"id": "secret", "tags": ["confidential"], "outputModes": ["application/pdf"]}


def test_each_filter_must_be_met_by_a_shown_skill_or_the_cards_defaults() -> None:
    both, only_open = [OPEN, SECRET], [OPEN]
    for query, with_both, with_open in (
        (AgentQuery(), True, True),
        (AgentQuery(skill="secret"), True, False),
        (AgentQuery(skill="open"), True, True),
        (AgentQuery(tag="CONFIDENTIAL"), True, False),  # tags match case-insensitively
        (AgentQuery(tag="public"), True, True),
        (AgentQuery(input_mode="image/png"), True, True),
        (AgentQuery(input_mode="text/plain"), True, True),  # the card's default
        (AgentQuery(output_mode="application/pdf"), True, False),
        (AgentQuery(skill="open", output_mode="application/pdf"), True, False),
    ):
        assert skill_filters_match(query, CARD, both) is with_both, query
        assert skill_filters_match(query, CARD, only_open) is with_open, query
    assert not skill_filters_match(AgentQuery(tag="public"), CARD, [])
    assert skill_filters_match(AgentQuery(q="anything"), CARD, [])  # free text: not a facet here

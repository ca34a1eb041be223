"""`skill_filters_match` and `words_match`: a search's exact filters and free
text, met by what a caller is shown of a card -- its own name, description
and provider, and the skills they may use (the facet index matched them on
all the card's skills)."""

from __future__ import annotations

from typing import Any

from registry.models import AgentQuery
from registry.store import skill_filters_match, words_match

CARD: dict[str, Any] = {
    "name": "Front Desk",
    "description": "Answers visitors.",
    "provider": {"organization": "Acme Corp", "url": "https://acme.example"},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
}
OPEN = {
    "id": "open",
    "name": "Opening hours",
    "tags": ["Public"],
    "inputModes": ["image/png"],
    "examples": ["when do you close?"],
}
SECRET = {
    "id": "secret",
    "name": "Vault codes",
    "description": "Reads the quillwort ledger",
    "tags": ["confidential"],
    "outputModes": ["application/pdf"],
    "examples": ["which combination?"],
}


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


def test_free_text_matches_only_what_the_caller_is_shown() -> None:
    both, only_open = [OPEN, SECRET], [OPEN]
    for q, with_both, with_open in (
        (None, True, True),
        ("", True, True),
        ("front", True, True),  # the card's name, description and provider
        ("ANSWER acme", True, True),  # case-insensitive; each word begins one of the card's
        ("hours clos", True, True),  # a shown skill's name and example
        ("quillwort", True, False),  # the hidden skill's description
        ("vault", True, False),  # its name
        ("confidential", True, False),  # its tag
        ("combination", True, False),  # its example
        ("secret", True, False),  # its id
        ("desk quillwort", True, False),  # every word must match
        ("nowhere", False, False),
        ("sk", False, False),  # a prefix of no word's beginning ("desk" ends in it)
    ):
        assert words_match(q, CARD, both) is with_both, q
        assert words_match(q, CARD, only_open) is with_open, q

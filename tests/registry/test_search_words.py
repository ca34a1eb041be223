"""Tool search's words (`registry.search_words`) and stems
(`registry.stemming`): what a query and a tool's text are reduced to."""

from __future__ import annotations

import pytest

from registry.search_words import MAX_WORD, initials, split_words, terms, written_initials
from registry.stemming import stem


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("crm__find_contact", ["crm", "find", "contact"]),
        ("crm__findContact-v2", ["crm", "find", "Contact", "v2"]),
        ("github.createPullRequest", ["github", "create", "Pull", "Request"]),
        ("HTTPServer_status", ["HTTP", "Server", "status"]),
        ("s3__put_object", ["s3", "put", "object"]),
        ("", []),
    ],
)
def test_a_name_is_split_into_its_words(name: str, words: list[str]) -> None:
    assert split_words(name) == words


def test_stopwords_and_bare_numbers_are_not_terms() -> None:
    # The failing query of issue 54: only its telling words are left.
    assert terms("what time is 9am Pacific in Berlin") == ["time", "9am", "pacif", "berlin"]
    assert terms("what is inside") == ["insid"]
    assert terms("the and of is it") == []
    assert terms("ship 42 parcels") == ["ship", "parcel"]


def test_terms_keep_repeats_and_order() -> None:
    assert terms("Invoice the invoices") == ["invoic", "invoic"]


def test_a_query_and_a_tool_meet_on_the_same_stem() -> None:
    assert set(terms("approved")) == set(terms("approve")) == set(terms("approval"))
    assert set(terms("shipping")) == set(terms("ship"))
    assert set(terms("deploys")) == set(terms("deployment"))
    assert terms("createPullRequest") == terms("create pull requests")


def test_odd_text_is_words_or_nothing() -> None:
    assert terms("!!! ??? ---") == []
    assert terms('" OR NEAR(') == ["near"]
    assert terms("x" * 400) == ["x" * MAX_WORD]
    assert terms("ünïcödé café") == ["ünïcödé", "café"]  # not ASCII: not stemmed


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # Porter's own examples (Program 14(3), 1980).
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("cats", "cat"),
        ("feed", "feed"),
        ("agreed", "agre"),
        ("plastered", "plaster"),
        ("motoring", "motor"),
        ("sing", "sing"),
        ("conflated", "conflat"),
        ("hopping", "hop"),
        ("falling", "fall"),
        ("filing", "file"),
        ("relational", "relat"),
        ("conditional", "condit"),
        ("hopefulness", "hope"),
        ("generalizations", "gener"),
        ("oscillators", "oscil"),
        ("adjustment", "adjust"),
        ("controll", "control"),
        # Words of tools.
        ("orders", "order"),
        ("status", "statu"),
        ("deploys", "deploi"),
        ("deployment", "deploi"),
        # Left alone: short, digits, not ASCII letters.
        ("pr", "pr"),
        ("api", "api"),
        ("v2", "v2"),
        ("9am", "9am"),
        ("größe", "größe"),
    ],
)
def test_the_porter_stem(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_a_names_initials_meet_only_a_word_written_so() -> None:
    assert initials("merge_pull_request") == ["^mp", "^pr", "^mpr"]
    assert initials("createPurchaseOrder2") == ["^cp", "^po", "^cpo"]
    assert initials("x") == []
    assert written_initials("ship the approved PR") == ["^pr"]
    # "going" stems to "go", but was not written "go": get_order's ^go is not met.
    assert written_initials("is it going to rain") == []
    assert written_initials("to do it on AWS") == ["^aws"]

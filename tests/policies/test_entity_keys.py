"""Entity keys in one canonical form: every spelling of one customer is one
key, on every path that reads a key (issue 32: holds dodged by spelling)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.coordination import EntityKeyInvalid, entity_keys
from policies.entity_keys import canonical_key
from policies.policy_file import PolicyError, parse_policy

# Every spelling of one customer that reached a held agent before.
SPELLINGS = [
    "CU-ABC123",
    "cu-abc123",
    " CU-ABC123",
    "CU-ABC123\t\n",
    "\uff23\uff35-\uff21\uff22\uff23\uff11\uff12\uff13",  # fullwidth
    "CU\u200b-ABC123",  # zero-width space
    "\ufeffCU-ABC123",  # byte order mark
    "CU-\u2060ABC\u200d123",  # word joiner, zero-width joiner
    "Cu-AbC123\u00ad",  # soft hyphen
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_is_one_key(spelling: str) -> None:
    assert canonical_key(spelling) == "cu-abc123"


def test_case_sensitive_keeps_case_and_nothing_else() -> None:
    assert canonical_key("\uff23\uff35\u200b-abc ", "sensitive") == "CU-abc"
    assert canonical_key("CU-1", "sensitive") != canonical_key("cu-1", "sensitive")


def test_full_case_folding_and_compatibility_forms() -> None:
    assert canonical_key("STRASSE") == canonical_key("Straße") == "strasse"
    assert canonical_key("\ufb01le") == "file"  # the ligature fi
    assert canonical_key("x\u00b2") == "x2"
    assert canonical_key("A B") == "a b"  # inner whitespace is part of the key


def test_removing_a_format_character_lets_nfkc_compose() -> None:
    # e, ZWSP, combining acute: without the ZWSP, NFKC composes U+00E9.
    assert canonical_key("e\u200b\u0301") == "\u00e9"


@given(st.text(max_size=40))
def test_canonical_is_a_fixed_point(text: str) -> None:
    once = canonical_key(text)
    assert canonical_key(once) == once
    assert once == once.strip()
    assert not any(unicodedata.category(c) == "Cf" for c in once)
    assert unicodedata.normalize("NFKC", once) == once
    sensitive = canonical_key(text, "sensitive")
    assert canonical_key(sensitive, "sensitive") == sensitive


@given(st.text(max_size=20), st.sampled_from(["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060"]))
def test_a_format_character_never_makes_another_key(text: str, invisible: str) -> None:
    middle = len(text) // 2
    assert canonical_key(text[:middle] + invisible + text[middle:]) == canonical_key(text)


POLICY = """\
coordination:
  entities:
    - entity: customer
      agents: [sales]
      key: customer_id
    - entity: order
      agents: [sales]
      key: order_ref
      case: sensitive
  rules:
    - name: hold-customer
      kind: hold
      entity: customer
      opened_by: {agents: [sales], skills: [open]}
      closed_by: {agents: [sales], skills: [close]}
      blocks: {agents: [sales]}
      ttl: PT1H
    - name: one-writer
      kind: exclusive
      entity: order
      calls: {agents: [sales]}
      ttl: PT5M
"""


def test_keys_from_a_call_are_canonical_by_the_entity_s_declaration() -> None:
    policy = parse_policy(POLICY).coordination
    keys = entity_keys(
        policy, "sales", "quote", [{"customer_id": " \uff23U\u200b-1 ", "order_ref": "Ab-9\u200b"}]
    )
    assert keys == {"customer": "cu-1", "order": "Ab-9"}
    assert policy.canonical("customer", "CU-1") == "cu-1"
    assert policy.canonical("order", "AB-9") == "AB-9"
    assert policy.case("order") == "sensitive"
    assert policy.case("unknown") == "insensitive"


def test_a_key_made_only_of_invisible_characters_is_refused() -> None:
    policy = parse_policy(POLICY).coordination
    with pytest.raises(EntityKeyInvalid, match="1 to 256"):
        entity_keys(policy, "sales", "quote", [{"customer_id": "\u200b \u200b", "order_ref": "1"}])


def test_two_spellings_of_one_key_in_one_call_are_one_key() -> None:
    policy = parse_policy(POLICY).coordination
    keys = entity_keys(
        policy,
        "sales",
        "quote",
        [{"customer_id": "CU-1", "order_ref": "1"}, {"customer_id": "cu-1"}],
    )
    assert keys["customer"] == "cu-1"


def test_declarations_of_one_entity_must_agree_on_case() -> None:
    text = POLICY.replace(
        "  rules:\n",
        "    - entity: customer\n      agents: [support]\n      key: id\n"
        "      case: sensitive\n  rules:\n",
    )
    with pytest.raises(PolicyError, match="case"):
        parse_policy(text)
    with pytest.raises(PolicyError):
        parse_policy(POLICY.replace("case: sensitive", "case: upper"))

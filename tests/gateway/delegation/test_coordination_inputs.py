"""What the coordination rules read as an A2A message's input
(`json_inputs`): every spelling a parser accepts, so that the key the gateway
checks is the key the agent acts on -- or the call is refused."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.delegation.handoffs import json_inputs, proto_inputs
from policies.coordination import EntityKeyInvalid, entity_keys
from policies.policy_file import parse_policy

RULES = parse_policy(
    """\
coordination:
  entities:
    - {entity: customer, key: customer_id}
  rules:
    - {name: cap, kind: budget, entity: customer, calls: {}, limit: 1, per: P1D}
"""
).coordination


def _keys(params: dict[str, Any]) -> dict[str, str]:
    return entity_keys(RULES, "sales", "upsell", json_inputs(params))


@pytest.mark.parametrize(
    "params",
    [
        {"message": {"parts": [{"data": {"customer_id": "C"}}]}},  # 1.0
        {"message": {"parts": [{"kind": "data", "data": {"customer_id": "C"}}]}},  # 0.3 JSON-RPC
        {"request": {"content": [{"data": {"data": {"customer_id": "C"}}}]}},  # 0.3 HTTP+JSON
    ],
)
def test_every_spelling_names_the_customer(params: dict[str, Any]) -> None:
    # Keys come back in their canonical form (policies/entity_keys.py): "C" is "c".
    assert _keys(params) == {"customer": "c"}


def test_a_key_beside_the_one_a_0_3_parser_keeps_cannot_hide_it() -> None:
    # A 0.3 HTTP+JSON parser keeps the inner `data` and drops what is beside
    # it: the agent acts on C-1042; the gateway must not check C-9 alone.
    spoofed = {
        "request": {
            "content": [{"data": {"data": {"customer_id": "C-1042"}, "customer_id": "C-9"}}]
        }
    }
    with pytest.raises(EntityKeyInvalid, match="given twice"):
        _keys(spoofed)


def test_the_parsed_message_reads_the_same() -> None:
    from a2a.types import Message
    from google.protobuf.json_format import ParseDict

    message = ParseDict(
        {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {"customer_id": 7}}]},
        Message(),
    )
    assert entity_keys(RULES, "sales", "upsell", proto_inputs(message)) == {"customer": "7"}

"""A call's ``txn`` (the work it belongs to: a flow run's step) is read
from a token this gateway minted for a call onwards only, and only as this
gateway writes it: anything else in a token's ``txn`` claim is no txn."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.delegation.permits import MAX_TXN, Caller, txn_of
from policies.tokens import Principal


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"txn": "run_1:quote"}, "run_1:quote"),
        ({}, None),
        ({"txn": ""}, None),
        ({"txn": 7}, None),
        ({"txn": ["run_1:quote"]}, None),
        ({"txn": "x" * (MAX_TXN + 1)}, None),
    ],
)
def test_only_a_string_of_ours_is_a_txn(claims: dict[str, Any], expected: str | None) -> None:
    assert txn_of(claims) == expected


def _principal(**claims: Any) -> Principal:
    return Principal(
        subject="dana",
        issuer="https://idp.example",
        scopes=frozenset({"sales:quote"}),
        client_id="app",
        claims={"act": {"sub": "relay", "act": {"sub": "app"}}, **claims},
        expires_at=0,
    )


def test_a_users_own_token_carries_no_txn_a_token_for_a_call_onwards_does() -> None:
    principal = _principal(txn="run_1:quote")
    # A user's token (any identity provider's): its txn claim is not read.
    assert Caller.user(principal).txn is None
    # A token this gateway minted for a call onwards (the front door checks
    # issuer and audience before it is taken as one).
    assert Caller.delegated(principal).txn == "run_1:quote"
    # Kept with a held call, and read back with it.
    assert Caller.from_stored(Caller.delegated(principal).stored()).txn == "run_1:quote"


def test_a_stored_caller_holds_every_field_and_comes_back_whole() -> None:
    caller = Caller(
        subject="alice",
        issuer="https://idp.example",
        scopes=frozenset({"b", "a"}),
        actors=("app", "agent"),
        client_id="app",
        not_after=1_900_000_000.5,
        txn="run_1:quote",
    )
    stored = caller.stored()
    assert list(stored) == [f.name for f in dataclasses.fields(Caller)]
    assert stored["scopes"] == ["a", "b"] and stored["actors"] == ["app", "agent"]
    assert Caller.from_stored(stored) == caller

"""gateway.mcp.per_caller: a listing kept per caller while its inputs are the
very objects it was worked out from."""

from __future__ import annotations

from gateway.delegation.permits import Caller
from gateway.mcp.per_caller import PerCaller


def caller(subject: str, scopes: str = "") -> Caller:
    return Caller(subject, "https://issuer.example", frozenset(scopes.split()), ("app",), "app")


def test_a_value_is_reused_only_with_the_same_objects() -> None:
    memo: PerCaller[str] = PerCaller()
    policy, snapshot, skills = object(), object(), ("a",)
    memo.put(caller("alice"), (policy, snapshot), (skills,), "alice's")
    assert memo.get(caller("alice"), (policy, snapshot), (skills,)) == "alice's"
    # Equal is not enough: a replaced object is a miss.
    assert memo.get(caller("alice"), (policy, snapshot), (tuple(["a"]),)) is None
    assert memo.get(caller("alice"), (object(), snapshot), (skills,)) is None


def test_callers_are_told_apart_by_everything_a_decision_reads() -> None:
    memo: PerCaller[str] = PerCaller()
    shared = (object(),)
    memo.put(caller("alice", "read"), shared, (), "read")
    assert memo.get(caller("bob", "read"), shared) is None
    assert memo.get(caller("alice", "read write"), shared) is None
    other_issuer = Caller("alice", "https://other.example", frozenset({"read"}), ("app",), "app")
    assert memo.get(other_issuer, shared) is None
    assert memo.get(caller("alice", "read"), shared) == "read"


def test_new_shared_inputs_drop_every_callers_old_value() -> None:
    memo: PerCaller[str] = PerCaller()
    old, new = (object(),), (object(),)
    memo.put(caller("alice"), old, (), "alice old")
    memo.put(caller("bob"), old, (), "bob old")
    memo.put(caller("alice"), new, (), "alice new")
    # Bob's value came from a replaced snapshot: gone, not kept alive.
    assert memo.get(caller("bob"), old) is None
    assert memo.get(caller("bob"), new) is None
    assert memo.get(caller("alice"), new) == "alice new"


def test_the_least_recently_listed_caller_goes_first() -> None:
    memo: PerCaller[int] = PerCaller(kept=2)
    shared = (object(),)
    memo.put(caller("a"), shared, (), 1)
    memo.put(caller("b"), shared, (), 2)
    assert memo.get(caller("a"), shared) == 1  # a listed again: b is now the oldest
    memo.put(caller("c"), shared, (), 3)
    assert memo.get(caller("b"), shared) is None
    assert (memo.get(caller("a"), shared), memo.get(caller("c"), shared)) == (1, 3)

"""Which connection lets a run waiting for its user's consent go on
(`gateway.flows.consents.connection_counts`), when a look finds it or a
word brings a look forward."""

from __future__ import annotations

from typing import Any

from gateway.flows.consents import connection_counts
from gateway.flows.outcomes import auth_required

NOT_CONNECTED = auth_required("notes: not connected", "notes", "https://gw/connect")
STEP_UP = auth_required(
    "notes: needs write", "notes", "https://gw/connect", "read write", ("c1", 1)
)


def _connection(id_: str = "c1", version: int = 1, scope: str = "read") -> dict[str, Any]:
    return {"id": id_, "version": version, "scope": scope}


def test_the_outcome_says_which_connection_the_call_could_not_use() -> None:
    assert NOT_CONNECTED["seen"] is None
    assert STEP_UP["seen"] == {"id": "c1", "version": 1}
    assert STEP_UP["scope"] == "read write"


def test_no_connection_never_counts() -> None:
    for word in (False, True):
        assert not connection_counts(NOT_CONNECTED, None, None, word=word)
        assert not connection_counts(NOT_CONNECTED, _connection(), None, word=word)
        assert not connection_counts(STEP_UP, _connection(), None, word=word)


def test_a_connection_where_there_was_none_counts() -> None:
    assert connection_counts(NOT_CONNECTED, None, _connection())


def test_the_connection_that_failed_does_not_count_until_written_again() -> None:
    had = _connection(version=3)
    for word in (False, True):  # a word left over from an earlier wait: nothing new
        assert not connection_counts(NOT_CONNECTED, had, _connection(version=3), word=word)
    # Made again over the same row, or refreshed: its version moved.
    assert connection_counts(NOT_CONNECTED, had, _connection(version=4))
    # Removed and made anew: another id.
    assert connection_counts(NOT_CONNECTED, had, _connection(id_="c2", version=1))


def test_a_step_up_seen_by_looking_counts_once_every_scope_asked_for_is_granted() -> None:
    had = STEP_UP["seen"]
    # A refresh moves the version, not the scope: not yet.
    assert not connection_counts(STEP_UP, had, _connection(version=2, scope="read"))
    # Granted, in any order and with more besides.
    assert connection_counts(STEP_UP, had, _connection(version=3, scope="write admin read"))
    # Granted on a connection made anew.
    assert connection_counts(STEP_UP, had, _connection(id_="c2", scope="read write"))


def test_a_step_up_the_server_asked_nothing_more_for_waits_for_a_new_connection() -> None:
    """A 403 naming no scope, or one already held: what is asked is held, yet
    the connection that failed must not let the run go on at once."""
    nothing_missing = auth_required("notes", "notes", "https://gw/c", "read", ("c1", 1))
    had = nothing_missing["seen"]
    assert not connection_counts(nothing_missing, had, _connection(version=1, scope="read"))
    assert connection_counts(nothing_missing, had, _connection(version=2, scope="read"))


def test_a_word_for_a_step_up_counts_a_connection_written_since_whatever_its_scope() -> None:
    """The authorization server may name the granted scopes otherwise than
    they were asked for: told that the user connected, the server decides."""
    had = STEP_UP["seen"]
    renamed = _connection(version=2, scope="https://notes.example/read https://notes.example/write")
    assert not connection_counts(STEP_UP, had, renamed)
    assert connection_counts(STEP_UP, had, renamed, word=True)

"""Which connection lets a run waiting for its user's consent go on
(`gateway.flows.consents.connection_counts`), when a look finds it."""

from __future__ import annotations

from typing import Any

from gateway.flows.consents import connection_counts
from gateway.flows.outcomes import auth_required

NOT_CONNECTED = auth_required("notes: not connected", "notes", "https://gw/connect")
STEP_UP = auth_required("notes: needs write", "notes", "https://gw/connect", "read write")


def _connection(id_: str = "c1", version: int = 1, scope: str = "read") -> dict[str, Any]:
    return {"id": id_, "version": version, "scope": scope}


def test_no_connection_never_counts() -> None:
    assert not connection_counts(NOT_CONNECTED, None, None)
    assert not connection_counts(NOT_CONNECTED, _connection(), None)
    assert not connection_counts(STEP_UP, _connection(), None)


def test_a_connection_where_there_was_none_counts() -> None:
    assert connection_counts(NOT_CONNECTED, None, _connection())


def test_the_connection_that_failed_does_not_count_until_written_again() -> None:
    had = _connection(version=3)
    assert not connection_counts(NOT_CONNECTED, had, _connection(version=3))
    # Made again over the same row, or refreshed: its version moved.
    assert connection_counts(NOT_CONNECTED, had, _connection(version=4))
    # Removed and made anew: another id.
    assert connection_counts(NOT_CONNECTED, had, _connection(id_="c2", version=1))


def test_a_step_up_counts_only_once_every_scope_asked_for_is_granted() -> None:
    had = _connection(scope="read")
    # A refresh moves the version, not the scope: not yet.
    assert not connection_counts(STEP_UP, had, _connection(version=2, scope="read"))
    # Made again without the scope asked for (the user declined it): not yet.
    assert not connection_counts(STEP_UP, had, _connection(version=3, scope="read"))
    # Granted, in any order and with more besides.
    assert connection_counts(STEP_UP, had, _connection(version=3, scope="write admin read"))
    # Granted on a connection made anew where there was none.
    assert connection_counts(STEP_UP, None, _connection(scope="read write"))

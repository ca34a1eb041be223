"""`bench.a2a_gateway`'s own options, taken out of the harness's argv."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import a2a_forwarding as harness
from bench import a2a_gateway


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    tree, database, legs = dict(a2a_gateway.TREE), dict(a2a_gateway.DATABASE), dict(harness.LEGS)
    yield
    a2a_gateway.TREE.update(tree)
    a2a_gateway.DATABASE.update(database)
    harness.LEGS.clear()
    harness.LEGS.update(legs)


def test_a_database_url_is_taken_out_and_named_in_the_legs() -> None:
    argv = ["bench", "--conns", "1", "--database-url", "postgresql://pg@127.0.0.1/test", "-x"]
    a2a_gateway.take_options(argv)
    assert argv == ["bench", "--conns", "1", "-x"]
    assert a2a_gateway.DATABASE["server"] == "postgresql://pg@127.0.0.1/test"
    assert harness.LEGS[a2a_gateway.GATEWAY].about.endswith("; on PostgreSQL")


def test_the_joined_spelling_is_taken_and_the_legs_are_named_once() -> None:
    argv = ["bench", "--database-url=postgres://pg@127.0.0.1/test", "--legs", "gateway"]
    a2a_gateway.take_options(argv)
    a2a_gateway.use_database("postgresql://pg@127.0.0.1/other")
    assert argv == ["bench", "--legs", "gateway"]
    assert a2a_gateway.DATABASE["server"] == "postgresql://pg@127.0.0.1/other"
    assert harness.LEGS[a2a_gateway.GATEWAY].about.count("on PostgreSQL") == 1


def test_without_options_argv_and_the_database_stay() -> None:
    argv = ["bench", "--conns", "1"]
    a2a_gateway.take_options(argv)
    assert argv == ["bench", "--conns", "1"]
    assert a2a_gateway.DATABASE["server"] is None


@pytest.mark.parametrize(
    "argv",
    [["bench", "--database-url", "sqlite:///x.db"], ["bench", "--database-url"]],
)
def test_a_database_url_that_is_not_postgresql_or_missing_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        a2a_gateway.take_options(argv)
    assert a2a_gateway.DATABASE["server"] is None

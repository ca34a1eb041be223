"""`bench.sqlite_writers` runs both legs to the end: every transaction of
every process committed, on a file of its own each time."""

from __future__ import annotations

import pytest

from bench import sqlite_writers


@pytest.mark.parametrize("leg", ["sqlite", "gate"])
def test_a_leg_commits_every_transaction_of_every_process(leg: str) -> None:
    result = sqlite_writers.run_leg(leg, processes=2, transactions=20, rows=2)
    assert result["committed"] == 2 * 20 * 2
    assert 0 < result["p50"] <= result["p99"] <= result["max"]
    assert result["per_second"] > 0

"""A page of runs carries each run's usage (issue 57: `GET /runs` said
`"usage": null` of every run), read in one query for the whole page."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from gateway.flows.spending import runs_usage
from gateway.storage.db import create_engine, upgrade
from gateway.storage.flow_tables import flow_steps


def _step(run_id: str, step_id: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "kind": "call",
        "state": "completed",
        "attempts": 1,
        "trace_id": "0" * 32,
        "usage": usage,
    }


async def test_a_page_of_runs_has_its_usage_in_one_query(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await upgrade(engine)
        cent = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5, "cost": "0.01"}
        async with engine.begin() as conn:
            await conn.execute(
                insert(flow_steps),
                [
                    _step("r1", "a", {**cent, "currency": "EUR"}),
                    _step("r1", "b", {**cent, "currency": "EUR"}),
                    _step("r2", "a", None),  # reported nothing
                    _step("r3", "a", {**cent, "currency": "EUR"}),  # not on the page
                ],
            )
        statements: list[str] = []
        event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda *args: statements.append(args[2]),
        )
        async with engine.connect() as conn:
            used = await runs_usage(conn, ["r1", "r2"])
            assert await runs_usage(conn, []) == {}
        assert len(statements) == 1, statements  # one for the page, none per run
        assert set(used) == {"r1"}
        assert used["r1"].cost == Decimal("0.02") and used["r1"].currency == "EUR"
        assert used["r1"].total_tokens == 10
    finally:
        await engine.dispose()

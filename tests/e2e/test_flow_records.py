"""What is kept of a run, and for how long (SQLite and PostgreSQL): a flow's
`redact:` keys never show in its runs' records -- from the first step in what
is read, and at rest once the run has ended, the engine's own copy of the step
results included -- while the walk itself used the real values; ended runs
are deleted after their retention.

The gateway runs its retention pass every 0.2 s here; a run is aged by moving
its `finished_at` back in the database, as time would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from gateway.flows.engine import system_database_url
from tests.support.dbos_records import dbos_table
from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.waiting import wait_for

REDACTED = "[redacted]"


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    policy = POLICY + "  records:\n    grant: [sales:quote]\n"
    with flow_setup(tmp_path, database_url, policy, flow_retention_interval_seconds=0.2) as made:
        yield made


@pytest.fixture
def db(setup: FlowSetup) -> Iterator[Engine]:
    engine = create_engine(system_database_url(setup.gateway.settings.effective_database_url))
    yield engine
    engine.dispose()


def records_flow(**extra: Any) -> dict[str, Any]:
    return {
        "format": "switchboard.flow/v1",
        "id": "records",
        "name": "Quote, then reply while the discount is known",
        "input": {"type": "object"},
        "steps": [
            {
                "id": "quote",
                "call": {"agent": "sales", "skill": "quote"},
                "input": "{sku: input.sku, quantity: input.quantity}",
            },
            {
                # Runs only if the walk sees the real discount (a number), not
                # the redacted string.
                "id": "reply",
                "when": "steps.quote.output.discount > `0`",
                "call": {"agent": "sales", "skill": "reply"},
                "input": "{customer: input.customer, total: steps.quote.output.total}",
            },
        ],
        "output": "{total: steps.quote.output.total, discount: steps.quote.output.discount}",
        **extra,
    }


ORDER: dict[str, Any] = {
    "sku": "X-100",
    "quantity": 120,
    "customer": "ACME",
    "payment": {"Card_Number": "4111 1111 1111 1111", "holder": "Dana"},
}


def _run(setup: FlowSetup) -> dict[str, Any]:
    with setup.user() as dana:
        started = dana.post("/flows/records/runs", json={"input": ORDER})
        assert started.status_code == 202, started.text
        return setup.run(dana, started.json(), "completed", "failed")


def _until(check: Callable[[], Any], seconds: float = 20) -> Any:
    return wait_for(check, seconds, every=0.1, what=f"{check}")


def _row(db: Engine, sql: str, **params: Any) -> Any:
    with db.connect() as conn:
        return conn.execute(text(sql), params).mappings().first()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _count(db: Engine, table: str, column: str, run_id: str) -> int:
    sql = f"SELECT count(*) AS n FROM {table} WHERE {column} = :r"  # noqa: S608 -- names are ours
    return int(_row(db, sql, r=run_id)["n"])


def test_redacted_keys_never_show_and_are_gone_at_rest(setup: FlowSetup, db: Engine) -> None:
    registered = setup.register(records_flow(redact=["card_number", "discount"]))
    assert registered.status_code == 201, registered.text
    run = _run(setup)
    assert run["state"] == "completed", run
    steps = {s["id"]: s for s in run["steps"]}
    # The walk used the real discount: the step guarded by it ran.
    assert steps["reply"]["state"] == "completed"
    assert setup.desk.count("reply") == 1
    # What is read is redacted, at any depth and in any case.
    assert run["input"]["payment"] == {"Card_Number": REDACTED, "holder": "Dana"}
    assert steps["quote"]["output"]["discount"] == REDACTED
    assert steps["quote"]["output"]["total"] == run["output"]["total"] == 1200.0
    assert run["output"]["discount"] == REDACTED

    # At rest, once the run has ended: the records rewritten ...
    stored = _until(
        lambda: _row(
            db,
            "SELECT input, redacted_at FROM flow_runs WHERE id = :r AND redacted_at IS NOT NULL",
            r=run["id"],
        )
    )
    assert _json(stored["input"])["payment"]["Card_Number"] == REDACTED
    step = _row(
        db, "SELECT output FROM flow_steps WHERE run_id = :r AND step_id = 'quote'", r=run["id"]
    )
    assert _json(step["output"])["discount"] == REDACTED
    # ... and the engine's copy of the inputs and step results gone with its workflow.
    # (Its last writes can land after the pass that rewrote the run: then a
    # later pass removes it, `RunRetention._forget_leftovers`.)
    tables = ("workflow_status", "workflow_input", "operation_outputs")
    _until(
        lambda: (
            all(_count(db, dbos_table(db, t), "workflow_uuid", run["id"]) == 0 for t in tables)
            or None
        )
    )
    # Nothing of the card number is left anywhere in the database's flow tables.
    with db.connect() as conn:
        for table in ("flow_runs", "flow_steps"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 -- ours
            dump = " ".join(str(r) for r in rows)
            # The whole number, or its groups as stored (not a bare "4111":
            # a random task id may contain those four digits).
            assert "4111 1111" not in dump and "41111111" not in dump, table
    # Still readable afterwards, the same.
    with setup.user() as dana:
        again = dana.get(f"/flows/records/runs/{run['id']}").json()
        # What redaction removed is gone: nothing is left to fork from.
        refused = dana.post(f"/flows/records/runs/{run['id']}/fork", json={"step": "reply"})
    assert again["input"]["payment"]["Card_Number"] == REDACTED
    assert again["output"] == run["output"]
    assert refused.status_code == 409, refused.text
    assert "no longer keeps" in refused.json()["detail"]


def test_without_redact_an_ended_runs_engine_copy_is_kept_for_a_fork(
    setup: FlowSetup, db: Engine
) -> None:
    assert setup.register(records_flow()).status_code == 201
    run = _run(setup)
    assert run["state"] == "completed", run
    _until(
        lambda: _row(
            db, "SELECT id FROM flow_runs WHERE id = :r AND redacted_at IS NOT NULL", r=run["id"]
        )
    )
    # A second run, marked by a later pass: the pass that marked the first
    # one has ended by then, its clearing of engine copies included.
    later = _run(setup)
    _until(
        lambda: _row(
            db, "SELECT id FROM flow_runs WHERE id = :r AND redacted_at IS NOT NULL", r=later["id"]
        )
    )
    operations = _count(db, dbos_table(db, "operation_outputs"), "workflow_uuid", run["id"])
    assert operations >= 3  # begin, quote, reply, finish
    with setup.user() as dana:
        forked = dana.post(f"/flows/records/runs/{run['id']}/fork", json={"step": "reply"})
        assert forked.status_code == 201, forked.text
        done = setup.run(dana, forked.json(), "completed", "failed")
    assert done["state"] == "completed", done
    assert setup.desk.count("quote") == 2  # the two runs'; none by the fork
    assert setup.desk.count("reply") == 3


def test_ended_runs_are_deleted_after_their_retention(setup: FlowSetup, db: Engine) -> None:
    assert setup.register(records_flow()).status_code == 201
    old, recent = _run(setup), _run(setup)
    assert old["state"] == recent["state"] == "completed"
    # Without redaction rules the record stays as it was.
    assert old["input"]["payment"]["Card_Number"] == ORDER["payment"]["Card_Number"]
    aged = datetime.now(UTC) - timedelta(days=31)  # the default retention is 30 days
    with db.begin() as conn:
        conn.execute(
            text("UPDATE flow_runs SET finished_at = :t WHERE id = :r"), {"t": aged, "r": old["id"]}
        )
    _until(lambda: _row(db, "SELECT id FROM flow_runs WHERE id = :r", r=old["id"]) is None)
    with setup.user() as dana:
        assert dana.get(f"/flows/records/runs/{old['id']}").status_code == 404
        assert dana.get(f"/flows/records/runs/{recent['id']}").status_code == 200
    for table in ("flow_steps", "flow_grants"):
        assert _count(db, table, "run_id", old["id"]) == 0, table
    assert _count(db, dbos_table(db, "workflow_status"), "workflow_uuid", old["id"]) == 0


def test_a_flow_keeps_its_runs_as_long_as_it_says(setup: FlowSetup, db: Engine) -> None:
    assert setup.register(records_flow(retention_days=90)).status_code == 201
    run = _run(setup)
    aged = datetime.now(UTC) - timedelta(days=60)
    with db.begin() as conn:
        conn.execute(
            text("UPDATE flow_runs SET finished_at = :t WHERE id = :r"), {"t": aged, "r": run["id"]}
        )
    # Several passes later the run is still there.
    _until(lambda: _row(db, "SELECT redacted_at FROM flow_runs WHERE id = :r", r=run["id"]))
    setup.gateway.passes("flow-retention", 2)
    assert _row(db, "SELECT id FROM flow_runs WHERE id = :r", r=run["id"]) is not None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"redact": [""]}, "redact[0]"),
        ({"redact": "card_number"}, "redact"),
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "forever"}, "retention_days"),
    ],
)
def test_bad_record_rules_are_refused_naming_the_field(
    setup: FlowSetup, extra: dict[str, Any], field: str
) -> None:
    refused = setup.register(records_flow(**extra))
    assert refused.status_code == 422, refused.text
    assert field in [e["field"] for e in refused.json()["errors"]], refused.json()

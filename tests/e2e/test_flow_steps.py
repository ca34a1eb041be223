"""What each kind of step does, end to end (SQLite): joins (any, quorum), a
`when` guard, a checkpoint's timeout, on_error skip, retries on an idempotent
target, an output that breaks the next step's contract, and the flow as a
tool on the gateway's /mcp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import mcp_types as types
import pytest

from gateway.agents import exchange
from gateway.flows.store import FlowStore
from registry.tls import client_tls
from tests.support.flaky_agent import FlakyAgent, flaky_agent
from tests.support.flows import POLICY, QUOTE_FLOW, FlowSetup, flow_setup, messages_of
from tests.support.mcp_clients import mcp_client
from tests.support.waiting import wait_for

QUOTE = {"sku": "X-100", "quantity": 10}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSetup]:
    """One gateway and desk for the module's tests, quote-flow registered once.
    Each registers its own version of ``steps`` and starts its run right after
    (a run keeps the version it started with), and reads the desk's messages
    of its own runs (`messages_of`) or since it began. The clean restart restarts this
    gateway too: a gateway of its own would have no flow engine while this one
    runs (DBOS is one per process), and the others' runs are theirs after it."""
    policy = (
        POLICY
        + "  steps:\n    grant: [sales:quote, inventory:read]\n  flaky:\n    idempotent: true\n"
    )
    with flow_setup(tmp_path_factory.mktemp("steps"), None, policy) as made:
        assert made.register(QUOTE_FLOW).status_code == 201
        yield made


def flow(*steps: dict[str, Any], output: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "switchboard.flow/v1",
        "id": "steps",
        "name": "Steps",
        "input": {"type": "object"},
        "steps": list(steps),
    }
    if output is not None:
        document["output"] = output
    return document


def quote(step_id: str, quantity: str = "input.quantity", **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "call": {"agent": "sales", "skill": "quote"},
        "input": f"{{sku: input.sku, quantity: {quantity}}}",
        **extra,
    }


def work(step_id: str, seconds: int) -> dict[str, Any]:
    return {
        "id": step_id,
        "call": {"agent": "sales", "skill": "work"},
        "input": f"{{seconds: `{seconds}`}}",
    }


def run(
    setup: FlowSetup, document: dict[str, Any], run_input: dict[str, Any] = QUOTE
) -> dict[str, Any]:
    registered = setup.register(document)
    assert registered.status_code in (200, 201), registered.text
    with setup.user() as dana:
        started = dana.post("/flows/steps/runs", json={"input": run_input})
        assert started.status_code == 202, started.text
        return setup.run(dana, started.json(), "completed", "failed", "rejected", "input_required")


def steps_of(done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in done["steps"]}


def test_join_any_takes_the_first_branch_and_stops_the_others(setup: FlowSetup) -> None:
    document = flow(
        {"id": "race", "parallel": {"join": "any", "branches": [quote("fast"), work("slow", 20)]}}
    )
    done = run(setup, document)
    assert done["state"] == "completed", done
    seen = steps_of(done)
    assert seen["fast"]["state"] == "completed"
    assert seen["slow"]["state"] == "not_needed"
    assert list(seen["race"]["output"]) == ["fast"]


def test_a_quorum_holds_with_one_branch_broken_by_its_contract(setup: FlowSetup) -> None:
    branches = [
        quote("one"),
        quote("two"),
        quote("broken", quantity="`0`"),  # the contract wants quantity >= 1
    ]
    done = run(
        setup, flow({"id": "vote", "parallel": {"join": {"quorum": 2}, "branches": branches}})
    )
    assert done["state"] == "completed", done
    seen = steps_of(done)
    assert seen["broken"]["state"] in ("failed", "not_needed")
    assert sorted(seen["vote"]["output"]) == ["one", "two"]


def test_an_output_that_breaks_the_next_contract_stops_with_the_reason(setup: FlowSetup) -> None:
    done = run(setup, flow(quote("first"), quote("second", quantity="steps.first.output.sku")))
    assert done["state"] == "failed"
    second = steps_of(done)["second"]
    assert second["state"] == "failed"
    assert "does not match its contract at /quantity" in second["error"]
    assert len(messages_of(setup.desk.sent("quote"), done)) == 1


def test_on_error_skip_goes_on(setup: FlowSetup) -> None:
    done = run(
        setup,
        flow(
            quote("broken", quantity="`0`", on_error="skip"),
            quote("after"),
            output="steps.after.output.total",
        ),
    )
    assert done["state"] == "completed", done
    assert steps_of(done)["broken"]["state"] == "failed"
    assert done["output"] == 118.75


# JMESPath's sum of two large numbers: infinite, a number JSON has no spelling for.
INFINITE = "sum([`1e308`, `1e308`])"


def reply(step_id: str, total: str = "`10`", **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "call": {"agent": "sales", "skill": "reply"},
        "input": f"{{customer: 'Ada', total: {total}}}",
        **extra,
    }


def test_a_step_whose_request_cannot_be_sent_fails_and_on_error_applies(
    setup: FlowSetup,
) -> None:
    """Issue 57: an infinite number in a step's input was held by protobuf's
    `Value` and refused by its JSON encoder mid-send; the run stayed
    "working" for good. Now the step fails saying why, nothing is sent, and
    the step's on_error decides: skip goes on, fail ends the run."""
    stock = {
        "id": "stock",
        "call": {"tool": "inventory__check_stock"},
        "input": f"{{sku: input.sku, quantity: {INFINITE}}}",
        "on_error": "skip",
    }
    skipped = done = run(
        setup,
        flow(
            reply("agent", INFINITE, on_error="skip"),
            stock,
            reply("after"),
            output="steps.after.text",
        ),
    )
    assert done["state"] == "completed", done
    seen = steps_of(done)
    for failed in ("agent", "stock"):
        assert seen[failed]["state"] == "failed", seen[failed]
        assert "not a JSON number" in seen[failed]["error"], seen[failed]
    assert len(messages_of(setup.desk.sent("reply"), skipped)) == 1  # "after" only
    done = run(setup, flow(reply("agent", INFINITE), reply("after")))
    assert done["state"] == "failed", done
    assert "agent" in done["error"] and "not a JSON number" in done["error"], done
    assert steps_of(done).get("after", {}).get("state") != "completed"
    assert len(messages_of(setup.desk.sent("reply"), skipped, done)) == 1


def test_whatever_the_encoder_raises_fails_the_step_not_the_run(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure to build a step's message (here the encoder itself,
    forced to fail) fails that step, and the run takes its on_error path."""

    def broken(*_: Any) -> Any:
        raise TypeError("the encoder is out of order")

    received = len(setup.desk.received)  # the desk's messages before the test
    monkeypatch.setattr(exchange, "message_parts", broken)
    done = run(
        setup,
        flow(reply("first", on_error="skip"), {**quote("second"), "on_error": "skip"}),
    )
    assert done["state"] == "completed", done
    seen = steps_of(done)
    for step in ("first", "second"):
        assert seen[step]["state"] == "failed", seen[step]
        assert "the encoder is out of order" in seen[step]["error"], seen[step]
    assert setup.desk.received[received:] == []


def test_a_when_guard_asks_a_human_only_when_it_holds(setup: FlowSetup) -> None:
    guard = {
        "id": "ask",
        "when": "steps.q.output.discount > `0.1`",
        "checkpoint": {"prompt": "Big discount?"},
    }
    done = run(setup, flow(quote("q"), guard))
    assert done["state"] == "completed"
    assert steps_of(done)["ask"]["state"] == "skipped"
    waiting = run(setup, flow(quote("q"), guard), {"sku": "X-100", "quantity": 500})
    assert waiting["state"] == "input_required"


@pytest.mark.parametrize("on_timeout", ["continue", "fail"])
def test_a_checkpoint_nobody_decides_times_out(setup: FlowSetup, on_timeout: str) -> None:
    check = {
        "id": "ask",
        "checkpoint": {"prompt": "Anyone?", "timeout_seconds": 1, "on_timeout": on_timeout},
    }
    registered = setup.register(flow(check, quote("after")))
    assert registered.status_code in (200, 201), registered.text
    with setup.user() as dana:
        started = dana.post("/flows/steps/runs", json={"input": QUOTE}).json()
        done = setup.run(dana, started, "completed", "failed")
    ask = steps_of(done)["ask"]
    assert "no decision within 1 s" in ask["error"]
    with setup.admin() as admin:
        approval = admin.get(f"/approvals/{ask['approval_id']}").json()
    assert approval["state"] == "withdrawn" and approval["reason"] == "timed out"
    if on_timeout == "continue":
        assert done["state"] == "completed"
        assert ask["output"] == {"approved": False, "timed_out": True}
    else:
        assert done["state"] == "failed" and "no decision within 1 s" in done["error"]
        assert "after" not in steps_of(done)


def test_retries_on_an_idempotent_target(setup: FlowSetup) -> None:
    flaky: FlakyAgent = flaky_agent("flaky")
    try:
        with setup.admin() as admin:
            body = {"card_url": flaky.url + "/.well-known/agent-card.json", "id": "flaky"}
            assert admin.post("/agents", json=body).status_code == 201
        flaky.fail_next, flaky.status = 1, 400  # not transient: the front door does not retry it
        step = {"id": "try", "call": {"agent": "flaky"}, "message": "'hello'", "retries": 2}
        done = run(setup, flow(step))
    finally:
        flaky.stop()
    assert done["state"] == "completed", done
    tried = steps_of(done)["try"]
    assert tried["attempts"] == 2 and tried["retries"] == 1
    assert tried["output"] == "from flaky"
    assert flaky.calls == 2


async def test_a_flow_is_a_tool_on_the_gateways_mcp(setup: FlowSetup) -> None:
    import asyncio

    # quote-flow is the module's, registered once.
    token = await asyncio.to_thread(setup.gateway.token, "dana", "sales:quote inventory:read")
    async with mcp_client(f"{setup.gateway.url}/mcp", token, "2026-07-28") as client:
        tools = await client.list_tools()
        assert "quote-flow__run" in [t.name for t in tools.tools]
        result = await client.call_tool(
            "quote-flow__run", {"data": {"sku": "X-100", "quantity": 10, "customer": "ACME"}}
        )
    assert isinstance(result, types.CallToolResult)
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["state"] == "TASK_STATE_COMPLETED"
    assert result.structured_content["quote"]["total"] == 118.75
    assert "Dear ACME" in json.dumps(result.structured_content)


def test_cancelling_a_run_cancels_its_agents_task_in_flight(setup: FlowSetup) -> None:
    assert setup.register(flow(work("long", 20))).status_code == 201
    with setup.user() as dana:
        started = dana.post("/flows/steps/runs", json={"input": QUOTE}).json()

        def sent() -> dict[str, Any] | None:
            seen = dana.get(f"/flows/steps/runs/{started['id']}").json()
            long: dict[str, Any] | None = steps_of(seen).get("long")
            return long if long and long["upstream_task_id"] else None

        long = wait_for(sent, 20, every=0.1, what="the long step's upstream task")
        cancelled = dana.post(f"/flows/steps/runs/{started['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "canceled"
        wait_for(
            lambda: (
                steps_of(dana.get(f"/flows/steps/runs/{started['id']}").json())["long"]["state"]
                == "canceled"
            ),
            20,
            every=0.1,
            what="the long step canceled",
        )
    # The agent's own view of its task (it checks no token).
    answer = httpx.post(
        setup.sales.url + "/",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "GetTask",
            "params": {"id": long["upstream_task_id"]},
        },
        headers={"A2A-Version": "1.0"},
        timeout=10,
        verify=client_tls(),
    ).json()
    assert answer["result"]["status"]["state"] == "TASK_STATE_CANCELED", answer


def test_a_flow_calls_another_flow_as_an_agent(setup: FlowSetup) -> None:
    with setup.user() as dana:  # dana's runs of quote-flow before: other tests'
        before = {r["id"] for r in dana.get("/flows/quote-flow/runs").json()}
    outer = flow(
        {
            "id": "inner",
            "call": {"agent": "quote-flow"},
            "input": "{sku: input.sku, quantity: input.quantity, customer: 'ACME'}",
        },
        output="steps.inner.output.quote.total",
    )
    done = run(setup, outer)
    assert done["state"] == "completed", done
    assert done["output"] == 118.75
    inner = steps_of(done)["inner"]
    assert inner["token"]["actors"][-1] == "steps"
    with setup.user() as dana:
        runs = dana.get("/flows/quote-flow/runs").json()
    assert [r["id"] for r in runs if r["id"] not in before] == [inner["upstream_task_id"]]
    with setup.user() as dana:
        nested = dana.get(f"/flows/quote-flow/runs/{inner['upstream_task_id']}").json()
    assert nested["grant"]["actors"][-2:] == ["steps", "quote-flow"]
    assert nested["state"] == "completed"


def test_a_clean_restart_mid_step_goes_on_where_it_was(setup: FlowSetup) -> None:
    assert setup.register(flow(quote("q"), work("long", 2), quote("again"))).status_code == 201
    with setup.user() as dana:
        started = dana.post("/flows/steps/runs", json={"input": QUOTE}).json()
        wait_for(
            lambda: (
                steps_of(dana.get(f"/flows/steps/runs/{started['id']}").json()).get("long") or {}
            ).get("upstream_task_id"),
            20,
            what="the long step's upstream task",
        )
    setup.gateway = (
        setup.gateway.restart()
    )  # the lifespan's shutdown runs: runs stop where they are
    with setup.user() as dana:
        done = setup.run(dana, started, "completed", "failed")
    assert done["state"] == "completed", done
    assert [len(messages_of(setup.desk.sent(s), done)) for s in ("quote", "work")] == [2, 1]
    assert all(s["attempts"] == 1 for s in done["steps"])


def test_a_step_whose_sent_mark_cannot_be_written_ends_its_call_recorded(
    setup: FlowSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call admitted, then its "sent" mark not written (the step's record
    write failed): nothing is sent, and the admitted call is recorded
    `not_sent` at once, which also gives back the coordination lease and
    budget its admission took (`Delegations.record`), rather than leaving
    them held until they expire."""
    real = FlowStore.set_step

    async def failing(self: FlowStore, run_id: str, step_id: str, **values: Any) -> None:
        if step_id.startswith("unwritable") and values.get("sent_at") is not None:
            raise RuntimeError("the step's record is out of order")
        await real(self, run_id, step_id, **values)

    monkeypatch.setattr(FlowStore, "set_step", failing)
    received = len(setup.desk.received)
    stock = {
        "id": "unwritable_tool",
        "call": {"tool": "inventory__check_stock"},
        "input": "{sku: input.sku, quantity: input.quantity}",
        "on_error": "skip",
    }
    done = run(setup, flow(stock, {**quote("unwritable_agent"), "on_error": "skip"}))
    assert done["state"] == "completed", done
    seen = steps_of(done)
    for step in ("unwritable_tool", "unwritable_agent"):
        assert seen[step]["state"] == "failed", seen[step]
        assert seen[step].get("sent_at") is None, seen[step]
    assert setup.desk.received[received:] == []
    with setup.admin() as admin:
        records = admin.get("/audit", params={"trace": done["trace_id"], "limit": 200}).json()
    # One record per admitted call: its end, not sent; none says it was.
    calls = {r["target"]: r for r in records["items"] if r["event"] in ("mcp", "flow.step")}
    assert set(calls) == {"inventory", "sales"}, records
    for target, event in (("inventory", "mcp"), ("sales", "flow.step")):
        assert calls[target]["event"] == event, calls[target]
        assert calls[target]["outcome"] == "not_sent", calls[target]
        assert "out of order" in calls[target]["detail"], calls[target]

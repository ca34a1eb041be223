"""Usage, where the upstream reports it (SQLite and PostgreSQL): a flow whose
steps call an OpenAI-compatible agent (a real chat-completions server on
127.0.0.1 answering `usage` as OpenAI does) records each step's tokens, sums
them per run, and per flow and user at `GET /flows/{id}/usage`; the hop's
audit record says it too. A step to an agent that reports nothing has none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.flows import POLICY, FlowSetup, flow_setup
from tests.support.servers import ServerThread, stop_all
from tests.support.vendor_servers import API_KEY, MODEL, chat_server
from tests.support.waiting import wait_for

CHAT_STEP = {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
UNPRICED = {"cost": None, "currency": None}  # the policy names no prices

USAGE_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "usage-flow",
    "name": "Ask twice, then quote",
    "input": {"type": "object"},
    "steps": [
        {"id": "ask", "call": {"agent": "chat", "skill": "answer"}, "message": "'hello'"},
        {"id": "again", "call": {"agent": "chat", "skill": "answer"}, "message": "'again'"},
        {
            "id": "quote",
            "call": {"agent": "sales", "skill": "quote"},
            "input": "{sku: 'X-100', quantity: `2`}",
        },
    ],
}


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[FlowSetup]:
    chat, _seen, _does = chat_server()
    policy = POLICY + "  usage-flow:\n    grant: [sales:quote]\n"
    policy += "  outer-flow:\n    grant: [sales:quote]\n"
    try:
        with flow_setup(
            tmp_path, database_url, policy, secrets={"chat": SecretStr(API_KEY)}
        ) as made:
            _register_chat(made, chat)
            registered = made.register(USAGE_FLOW)
            assert registered.status_code == 201, registered.text
            yield made
    finally:
        stop_all(chat)


def _register_chat(setup: FlowSetup, chat: ServerThread) -> None:
    body = {
        "id": "chat",
        "name": "Chat",
        "upstream": {"type": "openai", "base_url": chat.url + "/v1", "model": MODEL},
        "skills": [{"id": "answer", "name": "Answer"}],
        "api_key_secret": "chat",
    }
    with setup.admin() as admin:
        answer = admin.post("/vendor-agents", json=body)
    assert answer.status_code == 201, answer.text


def _run(setup: FlowSetup, user: str) -> dict[str, Any]:
    with setup.user(user) as client:
        started = client.post("/flows/usage-flow/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        return setup.run(client, started.json(), "completed", "failed")


def test_each_step_records_its_usage_and_the_run_sums_them(setup: FlowSetup) -> None:
    run = _run(setup, "dana")
    assert run["state"] == "completed", run
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["ask"]["usage"] == steps["again"]["usage"] == {**CHAT_STEP, **UNPRICED}
    assert steps["quote"]["usage"] is None  # the sales agent reports none
    assert run["usage"] == {**{k: 2 * v for k, v in CHAT_STEP.items()}, **UNPRICED}


def test_usage_per_flow_and_per_user(setup: FlowSetup) -> None:
    for user in ("dana", "erin", "dana"):
        assert _run(setup, user)["state"] == "completed"
    with setup.admin() as admin:
        every = admin.get("/flows/usage-flow/usage")
        assert admin.get("/flows/no-such-flow/usage").status_code == 404
    assert every.status_code == 200, every.text
    body = every.json()
    assert body["runs"] == 3 and body["total_tokens"] == 3 * 24
    by_user = {u["subject"]: u for u in body["by_user"]}
    assert by_user["dana"]["runs"] == 2 and by_user["dana"]["total_tokens"] == 48
    assert by_user["erin"]["runs"] == 1 and by_user["erin"]["input_tokens"] == 18
    # A user sees their own only.
    with setup.user("erin") as erin:
        own = erin.get("/flows/usage-flow/usage").json()
    assert own["runs"] == 1 and [u["subject"] for u in own["by_user"]] == ["erin"]


def test_the_hop_audit_record_says_the_usage(setup: FlowSetup) -> None:
    run = _run(setup, "dana")

    def usage() -> list[dict[str, Any]] | None:
        with setup.admin() as admin:
            page = admin.get("/audit", params={"agent": "chat", "limit": 50}).json()
        said = [r for r in page["items"] if (r.get("detail") or "").startswith("usage:")]
        return said if len(said) >= 2 else None

    said = wait_for(usage, 10, every=0.1, what="two usage records of chat")
    assert said[0]["detail"] == "usage: 9 in, 3 out, 12 tokens"
    assert {r["trace_id"] for r in said} == {run["trace_id"]}


OUTER_FLOW: dict[str, Any] = {
    "format": "switchboard.flow/v1",
    "id": "outer-flow",
    "name": "The usage flow, as a step",
    "input": {"type": "object"},
    # `flow:` is `agent:` for a flow, checked to be one.
    "steps": [{"id": "inner", "call": {"flow": "usage-flow"}, "input": "`{}`"}],
}


def test_a_flow_called_as_a_step_reports_its_steps_usage_to_its_caller(
    setup: FlowSetup,
) -> None:
    """The inner run's task carries its steps' usage, summed, as any agent's
    task does: the outer step records it, and the outer run sums it."""
    assert setup.register(OUTER_FLOW).status_code == 201
    with setup.user("dana") as client:
        started = client.post("/flows/outer-flow/runs", json={"input": {}})
        assert started.status_code == 202, started.text
        run = setup.run(client, started.json(), "completed", "failed")
    assert run["state"] == "completed", run
    both = {**{k: 2 * v for k, v in CHAT_STEP.items()}, **UNPRICED}
    assert run["steps"][0]["usage"] == both
    assert run["usage"] == both

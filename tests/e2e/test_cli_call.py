"""`switchboard call AGENT "text"` (issue 32): the documented way to call an
agent, through the gateway's A2A front door with the official a2a-sdk
client, against an A2A agent, a flow and a vendor agent; it prints the answer
and the task id, and says why when the gateway refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.cli.test_cli import run
from tests.support.flows import QUOTE_FLOW, USER_SCOPES, FlowSetup, flow_setup
from tests.support.servers import stop_all
from tests.support.vendor_servers import API_KEY, webhook_server

HOOK = {
    "request": {"body": {"query": "{{text}}"}},
    "response": {"text": "$.answer"},
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FlowSetup]:
    hook, _recorder, _ = webhook_server()
    try:
        with flow_setup(tmp_path, None) as made:
            assert made.register(QUOTE_FLOW).status_code == 201
            tickets = {
                "id": "tickets",
                "name": "Tickets",
                "upstream": {"type": "rest", "url": hook.url + "/hooks/tickets", "mapping": HOOK},
                "skills": [{"id": "lookup", "name": "Look up a ticket"}],
                "api_key": API_KEY,
                "api_key_header": "X-Api-Key",
            }
            with made.admin() as admin:
                assert admin.post("/vendor-agents", json=tickets).status_code == 201
            yield made
    finally:
        stop_all(hook)


def _call(setup: FlowSetup, *args: str, user: str = "dana") -> tuple[int, str, str]:
    common = ["--data-dir", str(setup.gateway.settings.data_dir)]
    done = run("call", *args, *common, "--as", user, "--scope", USER_SCOPES)
    return done.returncode, done.stdout, done.stderr


def test_an_a2a_agent_answers_with_its_task(setup: FlowSetup) -> None:
    data = json.dumps({"sku": "X-100", "quantity": 200})
    code, out, err = _call(setup, "sales", "a quote, please", "--skill", "quote", "--data", data)
    assert code == 0, err
    assert json.loads(out)["total"] == 2000.0  # 200 x 12.5 less 20 %
    assert "task " in err and err.strip().endswith(": completed")
    assert setup.desk.received[-1]["data"] == {"sku": "X-100", "quantity": 200}


def test_streaming_prints_the_updates_as_they_arrive(setup: FlowSetup) -> None:
    data = json.dumps({"sku": "X-100", "quantity": 2})
    code, out, err = _call(setup, "sales", "quote", "--skill", "quote", "--data", data, "--stream")
    assert code == 0, err
    assert "[working]" in err and "[completed]" in err
    assert '"total": 23.75' in out


def test_a_flow_and_a_vendor_agent(setup: FlowSetup) -> None:
    data = json.dumps({"sku": "X-100", "quantity": 5, "customer": "ACME"})
    code, out, err = _call(setup, "quote-flow", "quote this order", "--data", data)
    assert code == 0, (out, err)
    assert "Dear ACME" in out
    code, out, err = _call(setup, "tickets", "ticket 42?", "--skill", "lookup")
    assert code == 0, err
    assert out.strip(), err


def test_a_refusal_says_why_and_exits_non_zero(setup: FlowSetup) -> None:
    data_dir = str(setup.gateway.settings.data_dir)
    denied = run("call", "sales", "x", "--skill", "quote", "--data-dir", data_dir, "--as", "eve")
    assert denied.returncode == 2, denied.stdout
    assert "sales:quote" in denied.stderr, denied.stderr  # the policy's reason
    unknown = run("call", "nobody", "hi", "--data-dir", data_dir, "--as", "eve")
    assert unknown.returncode == 2 and "switchboard:" in unknown.stderr
    bad = run("call", "sales", "hi", "--data", "[1]", "--data-dir", data_dir)
    assert bad.returncode == 2 and "--data must be a JSON object" in bad.stderr


def test_a_json_rpc_error_is_one_line_not_a_traceback(setup: FlowSetup) -> None:
    # Issue 57: the gateway answers an unknown skill with -32602, which the
    # SDK's client raises as an `InvalidParamsError`, not an `A2AClientError`.
    code, out, err = _call(setup, "sales", "hi", "--skill", "nosuch")
    assert code == 2, out
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("switchboard: ") and "nosuch" in err, err

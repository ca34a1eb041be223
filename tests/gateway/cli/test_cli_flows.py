"""`switchboard flows add|list|show|run|runs|cancel|resume`, run as real subprocesses
against a gateway with the sales desk and the inventory registered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.gateway.cli.test_cli import run
from tests.support.flows import QUOTE_FLOW, FlowSetup, flow_setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, None) as made:
        yield made


def test_flows_commands(setup: FlowSetup, tmp_path: Path) -> None:
    gateway = setup.gateway
    admin = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    dana = [*admin, "--token", gateway.token("dana", "sales:quote inventory:read")]
    document = tmp_path / "quote.yaml"
    document.write_text(yaml.safe_dump(QUOTE_FLOW))
    added = run("flows", "add", str(document), *admin)
    assert added.returncode == 0, added.stderr
    assert "registered quote-flow version 1" in added.stdout
    again = run("flows", "add", str(document), *admin)
    assert "unchanged: quote-flow version 1" in again.stdout
    listed = run("flows", "list", *dana)
    assert listed.returncode == 0 and "quote-flow" in listed.stdout and "4 steps" in listed.stdout
    shown = run("flows", "show", "quote-flow", *admin)
    assert json.loads(shown.stdout)["version"] == 1
    # Issue 57: `--version 1` was taken for `--versions` and `1` refused.
    first = run("flows", "show", "quote-flow", "--version", "1", *admin)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["version"] == 1
    none = run("flows", "show", "quote-flow", "--version", "7", *admin)
    assert none.returncode == 2 and "no version 7 (it has: 1)" in none.stderr, none.stderr

    small = json.dumps({"sku": "X-100", "quantity": 10, "customer": "ACME"})
    done = run("flows", "run", "quote-flow", "--input", small, "--wait", *dana)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": completed" in done.stdout and "Dear ACME" in done.stdout
    assert "acts as dana -> quote-flow" in done.stdout

    big = json.dumps({"sku": "X-100", "quantity": 500, "customer": "ACME"})
    waiting = run("flows", "run", "quote-flow", "--input", big, "--wait", *dana)
    assert waiting.returncode == 0 and ": input_required" in waiting.stdout
    run_id = waiting.stdout.split()[1]
    runs = run("flows", "runs", "quote-flow", *dana)
    assert runs.returncode == 0 and run_id in runs.stdout and "input_required" in runs.stdout
    one = run("flows", "runs", "quote-flow", run_id, *dana)
    assert "manager" in one.stdout and "approval apr_" in one.stdout
    cancelled = run("flows", "cancel", "quote-flow", run_id, *dana)
    assert cancelled.returncode == 0 and f"canceled {run_id}" in cancelled.stdout
    twice = run("flows", "cancel", "quote-flow", run_id, *dana)
    assert twice.returncode == 2 and "HTTP 409" in twice.stderr
    resumed = run("flows", "resume", "quote-flow", run_id, *dana)
    assert resumed.returncode == 0, resumed.stderr
    # Cancelled at its checkpoint, it waits there again (the request pending once more).
    assert f"input_required {run_id}" in resumed.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**QUOTE_FLOW, "id": "bad", "output": "steps.nobody"}))
    refused = run("flows", "add", str(bad), *admin)
    assert refused.returncode == 2
    assert f"{bad}:" in refused.stderr and ": output: no step 'nobody'" in refused.stderr


def test_a_bad_flow_file_is_named_with_its_line(setup: FlowSetup, tmp_path: Path) -> None:
    """Issue 32.9: YAML errors name the file and field, with the line."""
    gateway = setup.gateway
    admin = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(
        "format: switchboard.flow/v1\nid: x\nname: X\nsteps:\n"
        "  - id: a\n    call: {agent: sales, skil: quote}\n"
    )
    added = run("flows", "add", str(misspelt), *admin)
    assert added.returncode == 2
    assert f"{misspelt}:6: steps[0].call.skil: " in added.stderr, added.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: switchboard.flow/v1\nsteps:\n  - {id: a\n")
    added = run("flows", "add", str(broken), *admin)
    assert added.returncode == 2
    assert f"{broken}:4:1: not valid YAML: expected ',' or '}}'" in added.stderr, added.stderr
    assert added.stderr.count("not valid YAML") == 1
    listed = run("flows", "list", *admin)
    assert "no flows" in listed.stdout  # nothing stored


def test_flows_answer(setup: FlowSetup) -> None:
    """`switchboard flows answer`: the run's user answers its agent's question."""
    gateway = setup.gateway
    ship = {
        "format": "switchboard.flow/v1",
        "id": "ship-cli",
        "name": "Ship",
        "steps": [
            {
                "id": "ship",
                "call": {"agent": "sales", "skill": "ship"},
                "input": "{sku: 'X-1', quantity: `2`}",
            }
        ],
    }
    policy = setup.policy.read_text() + "  ship-cli:\n    grant: [sales:quote]\n"
    setup.policy.write_text(policy)
    with setup.admin() as admin:
        assert admin.post("/flows", json=ship).status_code == 201
    base = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    dana = [*base, "--token", gateway.token("dana", "sales:quote")]
    erin = [*base, "--token", gateway.token("erin", "sales:quote")]
    waiting = run("flows", "run", "ship-cli", "--wait", *dana)
    assert waiting.returncode == 0 and ": input_required" in waiting.stdout, waiting.stdout
    run_id = waiting.stdout.split()[1]
    # Issue 57: the question itself, not only `--json`, and how to answer it.
    question = "asks: Which warehouse ships 2 x X-1: north (2 days) or south (4 days)?"
    assert question in waiting.stdout, waiting.stdout
    assert f'answer: switchboard flows answer ship-cli {run_id} "ANSWER" --step ship' in (
        waiting.stdout
    )
    shown = run("flows", "runs", "ship-cli", run_id, *dana)
    assert shown.returncode == 0 and question in shown.stdout, shown.stdout
    nothing = run("flows", "answer", "ship-cli", run_id, *dana)
    assert nothing.returncode != 0 and "say the answer" in nothing.stderr
    bad = run("flows", "answer", "ship-cli", run_id, "--data", "{nope", *dana)
    assert bad.returncode != 0 and "--data is not JSON" in bad.stderr
    theirs = run("flows", "answer", "ship-cli", run_id, "north", *erin)
    assert theirs.returncode == 2 and "HTTP 404" in theirs.stderr
    elsewhere = run("flows", "answer", "ship-cli", run_id, "north", "--step", "reply", *dana)
    assert elsewhere.returncode != 0 and "asks at step ship now, not reply" in elsewhere.stderr
    answered = run(
        "flows",
        "answer",
        "ship-cli",
        run_id,
        "--data",
        '{"warehouse": "south"}',
        "--step",
        "ship",
        *dana,
    )
    assert answered.returncode == 0, answered.stderr
    assert f"answered step ship of {run_id}" in answered.stdout
    with setup.user() as client:
        done = setup.run(client, {"flow_id": "ship-cli", "id": run_id}, "completed", "failed")
    assert done["output"]["warehouse"] == "south"


def test_flows_fork(setup: FlowSetup) -> None:
    gateway = setup.gateway
    admin = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    dana = [*admin, "--token", gateway.token("dana", "sales:quote inventory:read")]
    assert setup.register(QUOTE_FLOW).status_code == 201
    small = json.dumps({"sku": "X-100", "quantity": 10, "customer": "ACME"})
    done = run("flows", "run", "quote-flow", "--input", small, "--wait", *dana)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[1]
    other = json.dumps({"sku": "X-100", "quantity": 10, "customer": "Initech"})
    forked = run(
        "flows", "fork", "quote-flow", run_id, "--step", "reply", "--input", other, "--wait", *dana
    )
    assert forked.returncode == 0, forked.stdout + forked.stderr
    assert f"from {run_id} at step reply" in forked.stdout
    assert f"forked from run {run_id} at step reply" in forked.stdout
    assert ": completed" in forked.stdout and "Dear Initech" in forked.stdout
    assert f"reused from {run_id}" in forked.stdout
    assert setup.desk.count("quote") == 1
    refused = run("flows", "fork", "quote-flow", run_id, "--step", "manager", *dana)
    assert refused.returncode == 2 and "HTTP 409" in refused.stderr
    assert "route big_discount went to reply" in refused.stderr
    bad = run("flows", "fork", "quote-flow", run_id, "--step", "reply", "--input", "{no", *dana)
    assert bad.returncode != 0 and "not JSON" in bad.stderr
    theirs = ["--token", gateway.token("erin", "sales:quote inventory:read")]
    erin = run("flows", "fork", "quote-flow", run_id, "--step", "reply", *admin, *theirs)
    assert erin.returncode == 2 and "HTTP 404" in erin.stderr

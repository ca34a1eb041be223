"""`switchboard approvals list|show|approve|reject`, and `switchboard tasks get`
following a held call to its answer, run as real subprocesses."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.tls import client_tls
from tests.gateway.cli.test_cli import CLI, run
from tests.support.a2a_agents import worker_agent
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import send_message_body


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Gateway, list[str]]]:
    worker = worker_agent()
    policy = tmp_path / "policy.yaml"
    policy.write_text("agents:\n  worker:\n    approval: true\n")
    gateway = start_gateway(tmp_path / "data", None, policy_file=policy)
    try:
        with gateway.client() as admin:
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        ids = []
        for text in ("task one", "task two"):
            sent = httpx.post(
                f"{gateway.url}/a2a/worker",
                json=send_message_body(text),
                headers={"Authorization": f"Bearer {gateway.token('alice')}", "A2A-Version": "1.0"},
                timeout=30,
                verify=client_tls(),
            )
            ids.append(sent.json()["result"]["task"]["metadata"]["approval"])
        yield gateway, ids
    finally:
        gateway.stop()
        worker.stop()


def test_approvals_commands(held: tuple[Gateway, list[str]]) -> None:
    gateway, (first, second) = held
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    listed = run("approvals", "list", *common)
    assert listed.returncode == 0, listed.stderr
    assert first in listed.stdout and second in listed.stdout and "alice -> worker" in listed.stdout
    shown = run("approvals", "show", first, *common)
    assert shown.returncode == 0 and '"task one"' in shown.stdout
    approved = run("approvals", "approve", first, "--reason", "fine", *common)
    assert approved.returncode == 0 and f"approved {first}" in approved.stdout
    # An answer is for an agent's question a flow puts to a reviewer: a held
    # call takes none, and stays pending.
    answered = run("approvals", "approve", second, "--answer", "north", *common)
    assert answered.returncode == 2 and "HTTP 422" in answered.stderr, answered.stderr
    assert "not an agent's question" in answered.stderr
    malformed = run("approvals", "approve", second, "--answer-data", "{north", *common)
    assert malformed.returncode == 2 and "--answer-data is not JSON" in malformed.stderr
    rejected = run("approvals", "reject", second, "--reason", "no", *common)
    assert rejected.returncode == 0 and f"rejected {second}" in rejected.stdout
    again = run("approvals", "reject", first, *common)
    assert again.returncode == 2 and "HTTP 409" in again.stderr
    pending = run("approvals", "list", "--state", "pending", *common)
    assert pending.returncode == 0 and "no approvals" in pending.stdout


def test_a_held_call_is_followed_to_its_answer(held: tuple[Gateway, list[str]]) -> None:
    """Issue 57: `call` exits 3 on a held call and names the command that
    follows it; `tasks get ID` says where it is, `--follow` waits through
    the admin's approval to the agent's answer."""
    gateway, _ = held
    common = ["--data-dir", str(gateway.settings.data_dir), "--gateway", gateway.url]
    alice = [*common, "--token", gateway.token("alice")]
    called = run("call", "worker", "task three", *alice)
    assert called.returncode == 3, called.stderr
    found = re.search(r"task (\S+): auth_required", called.stderr)
    assert found, called.stderr
    task_id = found.group(1)
    assert f"switchboard tasks get {task_id} --agent worker --follow" in called.stderr

    got = run("tasks", "get", task_id, "--agent", "worker", *alice)
    assert got.returncode == 3, got.stderr
    assert got.stderr.strip().endswith(f"task {task_id}: auth_required"), got.stderr
    approval = re.search(r"an admin must approve .* \(approval (apr_\S+)\)", got.stdout)
    assert approval, got.stdout
    assert run("tasks", "get", "nosuch", "--agent", "worker", *alice).returncode == 2
    theirs = run("tasks", "get", task_id, "--agent", "worker", *common)  # the CLI's admin
    assert theirs.returncode == 2 and "not found" in theirs.stderr, theirs.stderr

    command = [*CLI, "tasks", "get", task_id, "--agent", "worker", "--follow", *alice]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    pipe = subprocess.PIPE
    with subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=clean) as f:
        assert f.stderr is not None
        first = f.stderr.readline()  # following: it has read the task
        assert first.startswith("[auth_required] an admin must approve"), first
        approved = run("approvals", "approve", approval.group(1), *common)
        assert approved.returncode == 0, approved.stderr
        out, err = f.communicate(timeout=60)
    assert f.returncode == 0, first + err
    assert "[completed]" in err and err.strip().endswith(f"task {task_id}: completed"), err
    assert "done: three" in out, out

    asked = run("call", "worker", "ask me", *alice)
    asked_id = re.search(r"task (\S+): auth_required", asked.stderr)
    assert asked_id, asked.stderr
    approval = re.search(r"\(approval (apr_\S+)\)", asked.stdout)
    assert approval, asked.stdout
    assert run("approvals", "approve", approval.group(1), *common).returncode == 0
    follow = ["tasks", "get", asked_id.group(1), "--agent", "worker", "--follow", *alice]
    waiting = run(*follow, "--timeout", "60")
    assert waiting.returncode == 3, waiting.stderr  # stops where it asks for input
    assert "which warehouse?" in waiting.stdout
    assert waiting.stderr.strip().endswith(": input_required"), waiting.stderr

"""`switchboard approvals list|show|approve|reject`, run as real subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.cli.test_cli import run
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

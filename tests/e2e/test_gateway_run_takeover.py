"""Gateway-run tasks across replicas, a dying run, kill -9 and a database outage.

Short replica beats (a row renewed every `HEARTBEAT` s is stale after
`STALE` s; runs looked after every `POLL` s) and the OpenAI-compatible test
upstream (`tests.support.vendor_servers`), whose "hold" messages wait until
the test releases them. Bounds are derived from the settings, with slack for
a loaded machine; nothing is timed tighter than that.

* a run whose coroutine died is taken over by its own replica, alive, within
  a poll;
* a replica killed with SIGKILL has its runs taken over by another once its
  row is stale (``stale + heartbeat + poll``, plus slack);
* two replicas through a PostgreSQL outage longer than the stale window: a
  result that arrived meanwhile is written once the database is back, a run
  still at work goes on, and no replica takes over the other's live runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support import waiting
from tests.support.gateway import Gateway, start_gateway
from tests.support.outages import free_port, postgres_cluster
from tests.support.servers import stop_all
from tests.support.vendor_servers import API_KEY, Behaviour, chat_server

HEARTBEAT = 0.5
STALE = 3.0
POLL = 0.5
SLACK = 5.0  # a loaded 2-core machine: ticks and queries take their time
RUN_SETTINGS: dict[str, Any] = {
    "replica_heartbeat_seconds": HEARTBEAT,
    "replica_stale_seconds": STALE,
    "gateway_run_poll_seconds": POLL,
    "secrets": {"chat": SecretStr(API_KEY)},
}


def chat_agent(base: str) -> dict[str, Any]:
    return {
        "id": "chat",
        "name": "Chat",
        "upstream": {"type": "openai", "base_url": base + "/v1", "model": "test-model-1"},
        "skills": [{"id": "answer", "name": "Answer"}],
        "api_key_secret": "chat",
    }


def rpc(url: str, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        url + "/a2a/chat",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert "result" in body, body
    return body


def send_held(url: str, token: str, text: str) -> str:
    """A 'hold' message, answered at once (returnImmediately); the task id."""
    message = {
        "messageId": os.urandom(8).hex(),
        "role": "ROLE_USER",
        "parts": [{"text": text}],
        "metadata": {"skill": "answer"},
    }
    body = rpc(
        url,
        token,
        "SendMessage",
        {"message": message, "configuration": {"returnImmediately": True}},
    )
    task_id: str = body["result"]["task"]["id"]
    return task_id


def state_of(url: str, token: str, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = rpc(url, token, "GetTask", {"id": task_id})["result"]
    return task


def task_in(url: str, token: str, task_id: str, *states: str) -> Callable[[], Any]:
    """A check for `waiting.wait_for`: the task once it is in one of ``states``."""

    def reached() -> dict[str, Any] | None:
        task = state_of(url, token, task_id)
        return task if task["status"]["state"] in states else None

    reached.__qualname__ = f"task {task_id} in {states}"
    return reached


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for a in task.get("artifacts", []) for p in a["parts"])


def reason_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in task["status"].get("message", {}).get("parts", []))


@dataclass
class Upstream:
    url: str
    does: Behaviour


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server, _seen, does = chat_server()
    try:
        yield Upstream(server.url, does)
    finally:
        does.release.set()
        does.later.set()
        stop_all(server)


def audit_of(gateway: Gateway, user: str) -> list[dict[str, Any]]:
    with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
        page = admin.get("/audit", params={"user": user, "limit": 1000})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def audit_at(url: str, admin_token: str, user: str) -> list[dict[str, Any]]:
    """The audit as the replica at ``url`` reads it (a read writes its buffer first)."""
    page = httpx.get(
        url + "/audit",
        params={"user": user, "limit": 1000},
        headers={"Authorization": f"Bearer {admin_token}"},
        verify=client_tls(),
    )
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def register_chat(gateway: Gateway, base: str) -> None:
    with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
        answer = admin.post("/vendor-agents", json=chat_agent(base))
        assert answer.status_code == 201, answer.text


def test_a_dead_run_is_taken_over_while_its_replica_lives(
    tmp_path: Path, upstream: Upstream
) -> None:
    gateway = start_gateway(tmp_path / "data", None, **RUN_SETTINGS)
    try:
        register_chat(gateway, upstream.url)
        token = gateway.token("alice")
        task_id = send_held(gateway.url, token, "hold: then die")
        waiting.wait_for(task_in(gateway.url, token, task_id, "TASK_STATE_WORKING"), seconds=10)
        runner = gateway.server.app.state.switchboard.approvals.parts.runner

        async def kill_the_run() -> None:
            # The coroutine dies without ending its task (as when it is lost
            # to a bug); the replica itself lives on, its row renewed. Dead
            # once its unwinding is over (the call's stream closed, its record
            # written): until then the run is still here, and no look takes
            # it back. A look woken before that (on a loaded machine) was the
            # flake this wait ends.
            [run] = [run for (_, running), run in runner._runs.items() if running == task_id]
            run.task.cancel()
            await run.done.wait()
            assert not runner.here(("chat", task_id))

        gateway.server.run(kill_the_run())
        # One look of the takeover (its job, woken) takes the run back and
        # fails the task: nothing else has to happen first.
        gateway.passes("gateway-runs")
        failed = state_of(gateway.url, token, task_id)
        assert failed["status"]["state"] == "TASK_STATE_FAILED", failed
        assert "interrupted" in reason_of(failed)
    finally:
        stop_all(gateway.server)


def _replica_process(data_dir: Path, database_url: str, port: int, public_url: str) -> Any:
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": database_url,
        "SWITCHBOARD_DATA_DIR": str(data_dir),
        "SWITCHBOARD_PUBLIC_URL": public_url,
        "SWITCHBOARD_REPLICA_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "SWITCHBOARD_REPLICA_STALE_SECONDS": str(STALE),
        "SWITCHBOARD_GATEWAY_RUN_POLL_SECONDS": str(POLL),
        "SWITCHBOARD_SECRETS__CHAT": API_KEY,
        "SWITCHBOARD_HEALTH_CHECK_INTERVAL_SECONDS": "3600",
    }
    command = [sys.executable, "-m", "gateway.cli", "serve", "--dev"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)

    url = f"http://127.0.0.1:{port}/readyz"
    waiting.wait_answering(url, process, seconds=60, every=0.2, what="the replica ready")
    return process


@pytest.mark.postgres
def test_a_killed_replicas_runs_are_taken_over_once_its_row_is_stale(
    tmp_path: Path, postgres_url: str, upstream: Upstream
) -> None:
    # Replica B (in this process) and replica A (a process of its own, killed
    # with SIGKILL); one public URL, as behind a balancer, so a token is good
    # on both.
    port_a = free_port()
    public = f"http://127.0.0.1:{port_a}"
    b = start_gateway(tmp_path / "b", postgres_url, public_url=public, **RUN_SETTINGS)
    a = _replica_process(tmp_path / "a", postgres_url, port_a, public)
    try:
        register_chat(b, upstream.url)
        token = b.token("alice")
        task_id = send_held(public, token, "hold: on a")
        waiting.wait_for(task_in(b.url, token, task_id, "TASK_STATE_WORKING"), seconds=10)
        # The audit is written behind the answer (docs/operations.md: a SIGKILL
        # can lose the records of a replica's last moments): A is killed once
        # its record of the call is in the database.
        admin = b.token("admin", ADMIN_SCOPE)
        waiting.wait_for(
            lambda: any(r["event"] == "a2a.SendMessage" for r in audit_at(public, admin, "alice")),
            seconds=10,
        )
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        # Taken over once A's row is stale and B has looked: the wait's
        # bound is that guarantee's (docs/operations.md), with slack.
        bound = STALE + HEARTBEAT + POLL + SLACK
        failed = waiting.wait_for(
            task_in(b.url, token, task_id, "TASK_STATE_FAILED"), seconds=bound
        )
        assert "interrupted" in reason_of(failed)
        # The call in flight at the kill is in the audit (issue 32.3): the
        # record of its acceptance carries the token the run was made with,
        # and the taking-over replica recorded that the send was interrupted.
        records = audit_of(b, "alice")
        [accepted] = [r for r in records if r["event"] == "a2a.SendMessage"]
        [interrupted] = [r for r in records if r["outcome"] == "interrupted"]
        assert interrupted["event"] == "a2a.run" and interrupted["target"] == "chat"
        assert interrupted["token_id"] == accepted["token_id"] is not None
        assert interrupted["trace_id"] == accepted["trace_id"]
        assert interrupted["detail"] == "not sent again: its outcome is unknown; task failed"
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(10)
        stop_all(b.server)


@pytest.mark.postgres
def test_no_result_is_lost_to_a_database_outage_longer_than_the_stale_window(
    tmp_path: Path, upstream: Upstream
) -> None:
    with postgres_cluster() as pg:
        one = start_gateway(tmp_path / "one", pg.url, **RUN_SETTINGS)
        other = start_gateway(tmp_path / "other", pg.url, public_url=one.url, **RUN_SETTINGS)
        try:
            register_chat(one, upstream.url)
            token = one.token("alice")
            finished_meanwhile = send_held(one.url, token, "hold: finished during the outage")
            still_working = send_held(one.url, token, "later: still at work after it")
            for task_id in (finished_meanwhile, still_working):
                waiting.wait_for(task_in(one.url, token, task_id, "TASK_STATE_WORKING"), seconds=10)

            pg.stop()
            upstream.does.release.set()  # the first answers now, while the database is down
            time.sleep(STALE + 1)  # every replica's row looks stale after it
            pg.start()
            ended = task_in(
                one.url, token, finished_meanwhile, "TASK_STATE_COMPLETED", "TASK_STATE_FAILED"
            )
            done = waiting.wait_for(ended, seconds=STALE * 2 + SLACK)
            assert done["status"]["state"] == "TASK_STATE_COMPLETED", reason_of(done)
            assert text_of(done) == "echo: hold: finished during the outage"
            # The other replica sees the same record, and took over nothing
            # that was still alive: after a stale window and more, still at work.
            assert state_of(other.url, token, finished_meanwhile)["status"]["state"] == (
                "TASK_STATE_COMPLETED"
            )
            time.sleep(STALE + HEARTBEAT + POLL * 2)
            assert state_of(other.url, token, still_working)["status"]["state"] == (
                "TASK_STATE_WORKING"
            )
            upstream.does.later.set()
            ended = task_in(
                other.url, token, still_working, "TASK_STATE_COMPLETED", "TASK_STATE_FAILED"
            )
            done = waiting.wait_for(ended, seconds=SLACK)
            assert done["status"]["state"] == "TASK_STATE_COMPLETED", reason_of(done)
            assert text_of(done) == "echo: later: still at work after it"
        finally:
            stop_all(one.server, other.server)

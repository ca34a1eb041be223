"""A framework's script run in its own environment (`tests.interop.venvs`):
an agent served on a free port until the test ends, or a client run once for
its one line of JSON."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from registry.tls import client_tls
from tests.interop.venvs import python_for, script
from tests.support.servers import bound_socket
from tests.support.waiting import wait_answering, wait_for

ENV = {"NO_PROXY": "*", "PYTHONUNBUFFERED": "1", "OTEL_SDK_DISABLED": "true"}


@dataclass
class Seen:
    """One request the framework's agent received."""

    method: str
    path: str
    authorization: str | None
    body: str

    @property
    def bearer(self) -> str | None:
        scheme, _, token = (self.authorization or "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@dataclass
class RunningAgent:
    framework: str
    url: str
    seen_file: Path
    log: Path

    def seen(self) -> list[Seen]:
        if not self.seen_file.exists():
            return []
        return [Seen(**json.loads(line)) for line in self.seen_file.read_text().splitlines()]

    def calls(self) -> list[Seen]:
        """The POSTs (A2A calls), not card fetches."""
        return [s for s in self.seen() if s.method == "POST"]


@contextlib.contextmanager
def framework_agent(
    framework: str,
    scratch: Path,
    card_path: str,
    *,
    name: str = "server.py",
    env: dict[str, str] | None = None,
) -> Iterator[RunningAgent]:
    """``frameworks/<framework>/<name> PORT SEEN_FILE`` (with ``env``), up
    once its card at ``card_path`` answers."""
    python = python_for(framework)
    probe = bound_socket()  # a port free now; the agent binds it a moment later
    port = probe.getsockname()[1]
    probe.close()
    agent = RunningAgent(
        framework,
        f"http://127.0.0.1:{port}",
        scratch / f"{framework}-{Path(name).stem}-seen.jsonl",
        scratch / f"{framework}-{Path(name).stem}.log",
    )
    with agent.log.open("w") as log:
        process = subprocess.Popen(
            [str(python), str(script(framework, name)), str(port), str(agent.seen_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV, **(env or {})},
        )
        try:
            wait_answering(
                agent.url + card_path,
                process,
                seconds=120,
                every=0.2,
                what=lambda: agent.log.read_text()[-4000:],
            )
            yield agent
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def run_client(framework: str, name: str, *args: str) -> dict[str, Any]:
    """``frameworks/<framework>/<name> ARGS...``: its last line of output, as JSON."""
    python = python_for(framework)
    done = subprocess.run(
        [str(python), str(script(framework, name)), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ENV},
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{framework} {name} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-5000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


PENDING = ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")


def settled_task(
    url: str, headers: dict[str, str], task_id: str, seconds: float = 30
) -> dict[str, Any]:
    """The task once it is no longer pending, read with `GetTask` at ``url``."""
    get = {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": task_id}}

    def look() -> dict[str, Any]:
        answer = httpx.post(url, json=get, headers=headers, timeout=30, verify=client_tls())
        task: dict[str, Any] = answer.json()["result"]
        return task

    return wait_for(
        lambda: None if (task := look())["status"]["state"] in PENDING else task,
        seconds=seconds,
        every=0.2,
        what=look,
    )

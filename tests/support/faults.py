"""The fault-injection set-up (`tests/faults/`): its own PostgreSQL cluster
and `redis-server` on free ports, real upstreams, two gateway replicas as
processes of their own (so one can be killed with SIGKILL), a round-robin
balancer in front, and a load that records every answer.

What the suite then checks, for every fault (`Faults.check`): no HTTP 500
(a 503 only with `Retry-After`), every answer the gateway gave reflected in
the audit log (by the trace id each request sent), every task a 2xx answer
named recorded in the task table with the state the caller was told, and no
task left non-terminal once the fault is over and its bound has passed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.delegation.dev_tokens import issue_dev_token
from gateway.settings import Settings
from policies.scopes import ADMIN_SCOPE
from registry.tls import client_tls
from tests.support.a2a_agents import worker_agent
from tests.support.balancer import RoundRobin
from tests.support.outages import PostgresCluster, RedisServer, free_port, postgres_cluster
from tests.support.servers import ServerThread, stop_all
from tests.support.vendor_servers import API_KEY, Behaviour, chat_server
from tests.support.waiting import wait_answering, wait_for

POLL = 0.5  # gateway_run_poll_seconds
RECONCILE_POLL = 0.3
RECONCILE_MAX = 3.0
UPSTREAM_TIMEOUT = 3.0  # the "slowchat" agent's own timeout_seconds
SLACK = 8.0  # a loaded 2-core machine
# Short beats, so a replica gone is noticed in seconds rather than the default 45.
HEARTBEAT = 1.0  # replica_heartbeat_seconds
STALE = 6.0  # replica_stale_seconds
NON_TERMINAL = ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")


@dataclass(frozen=True)
class Answer:
    """One request of the load, as the caller saw it."""

    trace_id: str
    agent: str
    at: float  # monotonic, when the answer came
    status: int | None  # None: no HTTP answer (the connection dropped)
    body: dict[str, Any] | None
    retry_after: str | None = None
    error: str = ""


def _env(settings: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **{f"SWITCHBOARD_{name.upper()}": value for name, value in settings.items()},
    }


@dataclass
class Replica:
    name: str
    port: int
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "gateway.cli", "serve", "--dev", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_ready()

    def wait_ready(self, within: float = 60) -> None:
        assert self.process is not None, f"{self.name} was never started"
        wait_answering(self.url + "/readyz", self.process, within, 0.2, f"{self.name} not ready")

    def pause(self) -> None:
        """SIGSTOP: alive, but doing nothing until `resume` (a replica slow to
        get the database back)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Load:
    """Callers sending SendMessage through the balancer, one request per
    connection (so the balancer spreads them), until stopped."""

    def __init__(self, faults: Faults, agents: tuple[str, ...] = ("worker", "chat")) -> None:
        self.faults = faults
        self.agents = agents
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(2)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            agent = self.agents[(n + index) % len(self.agents)]
            self.answers.append(self.faults.send(agent, f"echo {n}"))
            n += 1
            time.sleep(0.02)  # the load's pace, not a wait: about 50 sends a second a thread


@dataclass
class Faults:
    pg: PostgresCluster
    redis: RedisServer
    balancer: RoundRobin
    replicas: list[Replica]
    worker: ServerThread
    chat: ServerThread
    chat_does: Behaviour
    settings: Settings
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url

    def token(self, sub: str = "alice", scopes: str = "") -> str:
        key = (sub, scopes)
        if key not in self.tokens:
            self.tokens[key] = issue_dev_token(self.settings, sub, frozenset(scopes.split()), 3600)
        return self.tokens[key]

    def send(
        self,
        agent: str,
        text: str,
        *,
        method: str = "SendMessage",
        configuration: dict[str, Any] | None = None,
        timeout: float = 30,
    ) -> Answer:
        trace_id = uuid.uuid4().hex
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
        params: dict[str, Any] = {"message": message}
        if configuration:
            params["configuration"] = configuration
        headers = {
            "Authorization": f"Bearer {self.token()}",
            "A2A-Version": "1.0",
            "traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            answer = httpx.post(
                f"{self.url}/a2a/{agent}",
                json=body,
                headers=headers,
                timeout=timeout,
                verify=client_tls(),
            )
        except httpx.HTTPError as exc:
            return Answer(trace_id, agent, time.monotonic(), None, None, error=repr(exc))
        try:
            parsed = answer.json()
        except ValueError:
            parsed = {"raw": answer.text[:500]}
        return Answer(
            trace_id,
            agent,
            time.monotonic(),
            answer.status_code,
            parsed,
            answer.headers.get("retry-after"),
        )

    def rpc(self, agent: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url}/a2a/{agent}",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"Authorization": f"Bearer {self.token()}", "A2A-Version": "1.0"},
            timeout=30,
            verify=client_tls(),
        )
        body: dict[str, Any] = answer.json()
        return body

    # What the database holds ---------------------------------------------------------

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.pg.port, user="postgres", database="postgres"
            )
            try:
                return [dict(row) for row in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def unfinished_tasks(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT agent_id, task_id, state FROM a2a_tasks WHERE state = ANY($1::text[])",
            list(NON_TERMINAL),
        )

    def wait_until_settled(self, within: float) -> None:
        """Until no task is left non-terminal (the fault's bound), or fail."""
        wait_for(
            lambda: not self.unfinished_tasks(),
            seconds=within,
            every=0.3,
            what=lambda: f"tasks left unfinished: {self.unfinished_tasks()}",
        )

    # The invariants ------------------------------------------------------------------

    def check(self, answers: list[Answer], *, unaudited_before: float | None = None) -> None:
        """What every fault must leave true (see the module's docstring).

        ``unaudited_before``: answers given in the last audit flush before a
        SIGKILL may have no record (docs/operations.md: a killed replica
        loses the records it held); answers up to one second before that
        moment are not held to it."""
        assert answers, "the load sent nothing"
        for answer in answers:
            if answer.status is None:
                continue  # no HTTP answer: the connection dropped with a killed replica
            assert answer.status != 500, answer
            assert answer.status < 500 or answer.status in (502, 503, 504), answer
            if answer.status == 503:
                assert answer.retry_after, answer
        answered = [a for a in answers if a.status is not None]
        if unaudited_before is not None:
            answered = [
                a for a in answered if not (unaudited_before - 1 < a.at < unaudited_before + 1)
            ]
        self._audited([a.trace_id for a in answered])
        self._tasks_recorded(answered)

    def _audited(self, trace_ids: list[str], within: float = 30) -> None:
        def missing() -> list[str]:
            seen = {
                row["trace_id"]
                for row in self.query(
                    "SELECT DISTINCT trace_id FROM audit_events WHERE trace_id = ANY($1::text[])",
                    trace_ids,
                )
            }
            return [t for t in trace_ids if t not in seen]

        def said() -> str:
            left = missing()
            return f"{len(left)} answers not audited: {left[:5]}"

        wait_for(lambda: not missing(), seconds=within, every=0.5, what=said)

    def _tasks_recorded(self, answers: list[Answer]) -> None:
        told: dict[str, str] = {}
        for answer in answers:
            result = (answer.body or {}).get("result") or {}
            task = result.get("task")
            if answer.status == 200 and isinstance(task, dict):
                told[task["id"]] = task["status"]["state"]
        if not told:
            return
        rows = self.query(
            "SELECT task_id, state FROM a2a_tasks WHERE task_id = ANY($1::text[])", list(told)
        )
        recorded = {row["task_id"]: row["state"] for row in rows}
        for task_id, state in told.items():
            assert task_id in recorded, f"task {task_id} answered {state} is not recorded"
            if state not in NON_TERMINAL:
                assert recorded[task_id] == state, (task_id, state, recorded[task_id])


def _register(faults: Faults) -> None:
    admin = faults.token("admin", ADMIN_SCOPE)
    with httpx.Client(
        base_url=faults.url, headers={"Authorization": f"Bearer {admin}"}, verify=client_tls()
    ) as client:
        added = client.post("/agents", json={"card_url": faults.worker.url, "id": "worker"})
        assert added.status_code == 201, added.text
        chat = {
            "id": "chat",
            "name": "Chat",
            "upstream": {"type": "openai", "base_url": faults.chat.url + "/v1", "model": "m"},
            "skills": [{"id": "answer", "name": "Answer"}],
            "api_key_secret": "chat",
        }
        added = client.post("/vendor-agents", json=chat)
        assert added.status_code == 201, added.text
        # The same upstream, given up on after UPSTREAM_TIMEOUT s: the hang test's.
        slow = {**chat, "id": "slowchat", "name": "Slow chat", "timeout_seconds": UPSTREAM_TIMEOUT}
        added = client.post("/vendor-agents", json=slow)
        assert added.status_code == 201, added.text


@contextmanager
def fault_cluster(tmp_path: Path) -> Iterator[Faults]:
    with postgres_cluster() as pg:
        redis = RedisServer()
        redis.start()
        worker = worker_agent()
        chat, _seen, chat_does = chat_server()
        ports = [free_port(), free_port()]
        balancer = RoundRobin(ports).start()
        common = {
            "database_url": pg.url,
            "redis_url": redis.url,
            "public_url": balancer.url,
            "gateway_run_poll_seconds": str(POLL),
            "a2a_reconcile_poll_seconds": str(RECONCILE_POLL),
            "a2a_reconcile_max_seconds": str(RECONCILE_MAX),
            "health_check_interval_seconds": "3600",
            "replica_heartbeat_seconds": str(HEARTBEAT),
            "replica_stale_seconds": str(STALE),
            "secrets__chat": API_KEY,
        }
        replicas = [
            Replica(name, port, tmp_path / name, _env({**common, "data_dir": str(tmp_path / name)}))
            for name, port in zip(("a", "b"), ports, strict=True)
        ]
        settings = Settings(
            dev=True, database_url=pg.url, public_url=balancer.url, data_dir=tmp_path / "tokens"
        )
        faults = Faults(pg, redis, balancer, replicas, worker, chat, chat_does, settings)
        try:
            for replica in replicas:
                replica.start()
            _register(faults)
            yield faults
        finally:
            chat_does.release.set()
            chat_does.later.set()
            for replica in replicas:
                replica.stop()
            balancer.stop()
            stop_all(worker, chat)
            redis.stop()

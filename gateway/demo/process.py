"""A gateway in a process of its own (`switchboard serve --dev`), to be killed
with SIGKILL and started again on the same data and port: what the crash
demo (`switchboard demo --scenario flow-crash`) and the crash tests do."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.delegation.dev_tokens import issue_dev_token
from gateway.demo.ports import PortReservation
from gateway.demo.servers import DemoError
from gateway.settings import Settings
from registry.tls import client_tls


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        policy_file: Path | None = None,
        log: Path | None = None,
        replica_id: str | None = None,
        settings: dict[str, Any] | None = None,
        workers: int = 1,
        port: int | None = None,
        tree: Path | None = None,
    ) -> None:
        """``tree``: another checkout's gateway, run by its own `.venv` from its
        directory (`bench.start_time`); by default this process's."""
        self.data_dir = data_dir
        self.tree = tree
        self.workers = workers
        data_dir.mkdir(parents=True, exist_ok=True)
        # Held as long as this object lives: the gateway binds it itself, and
        # binds it again after a kill (see gateway/demo/ports.py).
        self._port = PortReservation(port)
        weakref.finalize(self, self._port.release)
        self.port = self._port.port
        self.url = f"http://127.0.0.1:{self.port}"
        values: dict[str, Any] = {
            "public_url": self.url,
            "health_check_interval_seconds": 3600,
            "policy_reload_seconds": 0.2,
            # The same replica when started again, as a StatefulSet pod is:
            # it takes its own unfinished flow runs back at once.
            "replica_id": replica_id or f"gw{self.port}",
            **(settings or {}),
        }
        if database_url is not None:
            values["database_url"] = database_url
        if policy_file is not None:
            values["policy_file"] = str(policy_file)
        self.config = data_dir / "gateway.yaml"
        self.config.write_text(yaml.safe_dump(values))
        self.log = log or data_dir / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.settings = Settings.load(self.config, data_dir=data_dir, dev=True)

    def start(self, timeout: float = 60) -> GatewayProcess:
        python = sys.executable if self.tree is None else str(self.tree / ".venv/bin/python")
        command = [
            python,
            "-m",
            "gateway",
            "serve",
            "--dev",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--workers",
            str(self.workers),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ}, cwd=self.tree
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DemoError(
                    f"the gateway exited ({self.process.returncode}); see {self.log}, "
                    f"which ends:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(self.url + "/healthz", timeout=1, verify=client_tls())
                if health.status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the gateway did not start within {timeout:g} s; see {self.log}, "
                    f"which ends:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` of the gateway's log (what a failure is read with)."""
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return "(no log)"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> set[int]:
        """The worker processes of `serve --workers` (uvicorn's spawned
        children; not multiprocessing's resource tracker). Linux only."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        found = set()
        for child in map(int, children):
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(child)
        return found

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def token(self, subject: str, scopes: str, ttl: int = 600) -> str:
        return issue_dev_token(self.settings, subject, frozenset(scopes.split()), ttl)

    def client(self, subject: str, scopes: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(subject, scopes)}"},
            timeout=30,
            verify=client_tls(),
        )

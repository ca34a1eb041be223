"""A real Switchboard gateway for e2e tests: `create_app` under uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.delegation.dev_tokens import issue_dev_token
from gateway.delegation.keystore import load_active_key
from gateway.settings import Settings
from policies.scopes import ADMIN_SCOPE
from policies.tokens import mint_access_token
from registry.tls import client_tls
from tests.support.databases import seed_data_dir
from tests.support.servers import ServerThread, bound_socket, stop_all
from tests.support.waiting import wait_for


@dataclass
class Gateway:
    settings: Settings
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, sub: str = "alice", scopes: str = "", ttl: int = 600) -> str:
        return issue_dev_token(self.settings, sub, frozenset(scopes.split()), ttl)

    def mint(
        self,
        *,
        sub: str = "alice",
        scopes: str = "switchboard:admin",
        ttl: int = 600,
        now: float | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> str:
        """A token signed with the gateway's own key, with any claim bent for an attack test."""

        key = asyncio.run(
            load_active_key(self.settings.effective_database_url, self.settings.sealing_secret)
        )
        return mint_access_token(
            key,
            issuer=issuer or self.url,
            subject=sub,
            audience=audience or self.url,
            scopes=scopes.split(),
            ttl_seconds=ttl,
            client_id="tests",
            now=now,
        )

    def client(self, token: str | None = None, *, admin: bool = True) -> httpx.Client:
        if token is None:
            token = self.token("admin", ADMIN_SCOPE if admin else "crm:read")
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            verify=client_tls(),
        )

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, verify=client_tls())

    def passes(self, job: str, count: int = 1) -> None:
        """Until ``count`` whole passes of the periodic job named ``job``
        (`gateway.storage.periodic`) began and ended after now, each woken
        rather than awaited at its interval, the last ended well: whatever
        the job would do about what the test did, it has done. The evidence
        a check that "nothing happens" stands on."""
        [found] = [j for j in self.server.app.state.switchboard.metrics.jobs if j.name == job]
        loop = self.server.loop
        assert loop is not None
        begun = found.state.runs
        # A pass begins once the one before it ended (one loop): the pass
        # after the last counted one has begun only when that one ended.
        for target in range(begun + 1, begun + count + 2):
            loop.call_soon_threadsafe(found.wake)
            wait_for(lambda: found.state.runs >= target, what=f"{job}'s pass {target}")  # noqa: B023
        assert found.state.failing is None, f"{job}: {found.state.failing}"

    def told(self) -> None:
        """Until the gateway's listeners to task ends (flow triggers, runs
        waiting on a task) have heard every end recorded so far."""
        self.server.run(self.server.app.state.switchboard.flows.rt.tasks.told())

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> Gateway:
        """Stop, then start a new process-equivalent on the same data and port.

        In place, and returned: whoever else holds this object (a fixture's
        ``finally``) stops the new server, not the dead one. A new object left
        the restarted gateway running after its test, its jobs looping against
        a database dropped at teardown for the rest of the worker's run."""
        self.stop()
        new = start_gateway(
            self.settings.data_dir,
            self.settings.database_url,
            port=self.server.port,
            **_overrides(self.settings),
        )
        self.server, self.settings = new.server, new.settings
        return self


def _overrides(settings: Settings) -> dict[str, Any]:
    fields = (
        "dev",
        "health_check_interval_seconds",
        "health_failure_threshold",
        "health_success_threshold",
        "ssrf_allow_cidrs",
        "trusted_issuers",
        "secret_key",
        "policy_file",
        "policy_reload_seconds",
        "max_delegation_depth",
        "delegated_token_ttl_seconds",
        "redis_url",
        "upstream_timeout_seconds",
        "upstream_max_bytes",
        "stream_max_seconds",
        "stream_max_bytes",
        "stream_idle_seconds",
        "secrets",
        "replica_heartbeat_seconds",
        "replica_stale_seconds",
        "gateway_run_poll_seconds",
        "a2a_reconcile_poll_seconds",
        "a2a_reconcile_max_seconds",
        "key_recheck_seconds",
    )
    return {f: getattr(settings, f) for f in fields}


# The sealing secret of the tests that run a gateway as in production: with
# it, upstream secrets and connected accounts' tokens are sealed at rest
# (a --dev gateway without one keeps them unsealed, docs/connections.md).
SECRET_KEY = "a-sealing-secret-for-the-tests-of-switchboard"


# ``make_gateway(database_url, policy=..., **settings)``: the `make_gateway`
# fixture (tests/conftest.py).
GatewayFactory = Callable[..., Gateway]


def start_gateway(
    data_dir: Path,
    database_url: str | None,
    *,
    port: int | None = None,
    policy: str | None = None,
    **overrides: Any,
) -> Gateway:
    """A gateway on ``data_dir`` (its SQLite database, unless ``database_url``
    names another), started; ``policy`` is written beside the data dir and
    named in its settings; ``overrides`` are `Settings` fields."""
    if policy is not None:
        policy_file = data_dir.parent / "policy.yaml"
        policy_file.write_text(policy)
        overrides["policy_file"] = policy_file
    sock = bound_socket(port=port or 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    values: dict[str, Any] = {
        "dev": True,
        "data_dir": data_dir,
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": sock.getsockname()[1],
        "public_url": url,
        "health_check_interval_seconds": 3600,
        # The semantic leg costs a model load and each tool's embedding per
        # gateway that searches: on in its own tests only.
        "mcp_tool_search_semantic": False,
    }
    values.update(overrides)
    if database_url is None:
        seed_data_dir(data_dir)
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    server = ServerThread(lambda _url: create_app(settings), sock=sock).start()
    return Gateway(settings=settings, server=server)


@contextlib.contextmanager
def replicas(
    data_dir: Path, database_url: str | None, count: int = 2, **overrides: Any
) -> Iterator[list[Gateway]]:
    """``count`` gateways on one database (SQLite's file in ``data_dir``, or
    PostgreSQL) with one public address, as replicas behind a balancer have;
    ``overrides`` are every one's `Settings` fields. Stopped together."""
    shared: dict[str, Any] = {"public_url": "http://switchboard.test", **overrides}
    started: list[Gateway] = []
    try:
        for _ in range(count):
            started.append(start_gateway(data_dir, database_url, **shared))
        yield started
    finally:
        stop_all(*(gateway.server for gateway in reversed(started)))

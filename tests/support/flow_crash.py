"""A gateway process to SIGKILL under a flow, with the sales desk beside it:
what the flows' crash tests (`@pytest.mark.crash`) each set up the same way.

`crashable(...)` starts the desk and a gateway on the test's database,
registers the desk as agent ``sales`` and the given flows (``settings``: the
gateway's own, beside the defaults), and yields a
`CrashWorld`: start a run as dana, look at it, wait for it to reach a
condition (polling, with a deadline: never a fixed sleep), kill and start
the gateway again, and count what the desk received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

USER = ("dana", "sales:quote")


@dataclass
class CrashWorld:
    gateway: GatewayProcess
    desk: SalesDesk

    @property
    def database_url(self) -> str:
        """The gateway's database (its own SQLite file, or the test's)."""
        return self.gateway.settings.effective_database_url

    def admin(self) -> httpx.Client:
        return self.gateway.client("admin", ADMIN_SCOPE)

    def user(self) -> httpx.Client:
        return self.gateway.client(*USER)

    def register(self, flow: dict[str, Any]) -> None:
        """Register ``flow``, or register it again (a new version)."""
        with self.admin() as admin:
            registered = admin.post("/flows", json=flow)
        assert registered.status_code in (200, 201), registered.text

    def audit(self, trace_id: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            page = admin.get("/audit", params={"trace": trace_id, "limit": 1000})
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    def start(self, flow: str, run_input: dict[str, Any]) -> str:
        with self.gateway.client(*USER) as dana:
            started = dana.post(f"/flows/{flow}/runs", json={"input": run_input})
        assert started.status_code == 202, started.text
        return str(started.json()["id"])

    def seen(self, flow: str, run_id: str) -> dict[str, Any]:
        with self.gateway.client(*USER) as dana:
            found = dana.get(f"/flows/{flow}/runs/{run_id}")
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        return body

    def until(
        self,
        flow: str,
        run_id: str,
        holds: Callable[[dict[str, Any]], bool],
        seconds: float = 60,
    ) -> dict[str, Any]:
        """The run once ``holds`` says so; failing the test at the deadline."""
        return wait_for(
            lambda: body if holds(body := self.seen(flow, run_id)) else None,
            seconds=seconds,
            what=lambda: f"run never got there: {self.seen(flow, run_id)}",
        )

    def ended(self, flow: str, run_id: str) -> dict[str, Any]:
        return self.until(flow, run_id, lambda r: r["state"] in ("completed", "failed"))

    def restart(self) -> None:
        """SIGKILL, then start again on the same data."""
        self.gateway.kill()
        self.gateway.start()

    def sent(self, skill: str | None = None) -> list[str]:
        """The message ids the desk received (of ``skill``), in order."""
        return self.desk.sent(skill)

    def received(self, sku: str) -> list[dict[str, Any]]:
        """What the desk received for ``sku``, in order."""
        with self.desk.lock:
            return [r for r in self.desk.received if r["data"].get("sku") == sku]


@contextmanager
def crashable(
    tmp_path: Path,
    database_url: str | None,
    policy: str,
    *flows: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> Iterator[CrashWorld]:
    desk = SalesDesk()
    sales = ServerThread(lambda url: sales_desk_app(url, desk)).start()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    gateway = GatewayProcess(
        tmp_path / "data", database_url=database_url, policy_file=policy_file, settings=settings
    )
    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            card = sales.url + "/.well-known/agent-card.json"
            added = admin.post("/agents", json={"card_url": card, "id": "sales"})
            assert added.status_code == 201, added.text
            for flow in flows:
                registered = admin.post("/flows", json=flow)
                assert registered.status_code == 201, registered.text
        yield CrashWorld(gateway, desk)
    finally:
        gateway.stop()
        sales.stop()

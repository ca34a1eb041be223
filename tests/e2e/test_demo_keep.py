"""`switchboard demo --scenario consent --keep --port P`: the story, then the
gateway and the vendor left running on the port asked for, so connecting an
account can be tried in a browser (the vendor's login page); SIGTERM stops
everything and removes the demo's temp dirs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from gateway.demo.ports import PortReservation
from registry.tls import client_tls
from tests.support.stopping import DIAGNOSABLE, stopped
from tests.support.waiting import wait_for


def _free_port() -> int:
    reservation = PortReservation()
    reservation.release()  # the demo takes it by name
    return reservation.port


def test_the_consent_demo_stays_up_on_its_port_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **DIAGNOSABLE}
    env.pop("SWITCHBOARD_CONFIG", None)
    command = [sys.executable, "-m", "gateway", "demo", "--scenario", "consent", "--keep"]
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:

        def kept() -> str | None:
            text = log.read_text()
            return text if "Ctrl-C stops everything" in text else None

        said = wait_for(kept, seconds=120, what="the demo kept running")
        assert demo.poll() is None, said
        assert "consent story complete" in said
        gateway = f"http://127.0.0.1:{port}"
        assert f"export SWITCHBOARD_GATEWAY_URL={gateway}" in said
        assert httpx.get(gateway + "/healthz", timeout=10, verify=client_tls()).status_code == 200
        (temp,) = re.findall(r"SQLite in (\S+)\)", said)
        assert Path(temp).exists()
        # A browser at the vendor's authorization endpoint, not logged in:
        # a login form, which goes back to the same request.
        vendor = re.search(r"vendor +(http://127\.0\.0\.1:\d+) ", said)
        assert vendor is not None, said
        ask = "/authorize?response_type=code&client_id=nobody&state=s"
        page = httpx.get(vendor[1] + ask, timeout=10, verify=client_tls())
        assert page.status_code == 401 and '<form action="/login"' in page.text
        logged = httpx.get(
            vendor[1] + "/login",
            params={"user": "alice@vendor", "next": ask},
            timeout=10,
            verify=client_tls(),
        )
        assert logged.status_code == 303 and logged.headers["location"] == ask
        assert "vendor_session=" in logged.headers["set-cookie"]
        elsewhere = httpx.get(
            vendor[1] + "/login",
            params={"user": "a", "next": "https://evil.example/"},
            timeout=10,
            verify=client_tls(),
        )
        assert elsewhere.status_code == 400  # never an open redirect
        assert parse_qs(urlparse(ask).query)["state"] == ["s"]

        demo.send_signal(signal.SIGTERM)
        assert stopped(demo, log, 60) == 0  # stopped as Ctrl-C stops it
        assert not Path(temp).exists(), "the demo's temp dir outlived its SIGTERM"
        assert "Traceback" not in log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)

"""The README's `switchboard call` examples, as a newcomer runs them: `make demo
DEMO_ARGS=--keep` in one terminal, its export lines pasted, the calls in
another. Each answers the story (a quote across support, sales and the
inventory), and no example agent prints a traceback, also for a bad order."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stopping import DIAGNOSABLE, stopped
from tests.support.waiting import wait_for

ORDER = {"sku": "X-100", "quantity": 500, "customer": "ACME"}


# The demo as a shell starts a background job (`make demo ... &`): with SIGINT
# ignored, which an exec keeps and the demo must undo for its Ctrl-C.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


DEMO = ("-m", "gateway", "demo", "--keep", "--data-dir")


class KeptDemo:
    def __init__(self, folder: Path) -> None:
        self.log = folder / "demo.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **DIAGNOSABLE}
        env.pop("SWITCHBOARD_CONFIG", None)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", IGNORING_SIGINT, *DEMO, str(folder)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
            )
        exports = wait_for(self._exports, seconds=120, what="the demo's export lines")
        self.env = {**env, **exports}

    def _exports(self) -> dict[str, str] | None:
        assert self.process.poll() is None, self.log.read_text()
        found = dict(re.findall(r"export (\w+)=(\S+)", self.log.read_text()))
        keys = {"SWITCHBOARD_GATEWAY_URL", "SWITCHBOARD_TOKEN", "USER_TOKEN"}
        return found if keys <= found.keys() else None

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gateway", "call", *args]
        command += ["--token", self.env["USER_TOKEN"]]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=self.env)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        stopped(self.process, self.log, 30)
        return self.log.read_text()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[KeptDemo]:
    kept = KeptDemo(tmp_path)
    try:
        yield kept
    finally:
        if kept.process.poll() is None:
            kept.process.kill()
            kept.process.wait(10)


def test_the_readme_calls_tell_the_story_without_a_traceback(demo: KeptDemo) -> None:
    # Support reads the order in the customer's sentence and hands it to sales.
    support = demo.call("support", "I need 500 x X-100 for ACME")
    assert support.returncode == 0, support.stdout + support.stderr
    assert "Sales says: " in support.stdout and "quote for ACME" in support.stdout
    assert "500 x X-100" in support.stdout
    # Sales, streamed, with the order as data (its skill quotes data, not prose).
    sales = demo.call(
        "sales", "a quote", "--skill", "quote", "--stream", "--data", json.dumps(ORDER)
    )
    assert sales.returncode == 0, sales.stdout + sales.stderr
    assert "quote for ACME" in sales.stdout
    # Without the data, sales says what it needs rather than failing a stock check.
    prose = demo.call("sales", "500 x X-100 for ACME", "--skill", "quote")
    assert prose.returncode == 0, prose.stdout + prose.stderr
    assert "send the order as data" in prose.stdout
    # An unknown SKU: the inventory's refusal comes back as words.
    unknown = demo.call("support", "I need 5 x Z-999 for ACME")
    assert unknown.returncode == 0, unknown.stdout + unknown.stderr
    assert "unknown SKU 'Z-999'" in unknown.stdout
    log = demo.stop()
    for said in (support, sales, prose, unknown):
        assert "Traceback" not in said.stdout + said.stderr
    assert "Traceback" not in log, log[-3000:]

"""docs/quickstart.md, "A flow of your own", as a newcomer types it (issue 32.8):
`switchboard demo --scenario flow --keep`, then the commands it prints --
the worked example `examples/flows/quote-flow.yaml` added and run as dana --
reach a completed run; Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.gateway.cli.test_cli import CLI, run
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_quickstart_reaches_a_completed_run_of_the_example_flow(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [*CLI, "demo", "--scenario", "flow", "--keep", "--data-dir", str(tmp_path / "d")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=clean,
            # Ctrl-C reaches it even when this test runs under a shell that
            # ignores SIGINT (a background job): an ignored signal is inherited.
            preexec_fn=_interruptible,
        )
    try:

        def ready() -> bool:
            said = log.read_text()
            assert demo.poll() is None, said
            return "Ctrl-C stops everything" in said

        wait_for(ready, 120, every=0.2, what="the demo ready")
        said = log.read_text()
        assert re.search(r"console {5}http://127\.0\.0\.1:\d+/ui\n", said), said
        assert "log in with any user name and scopes" in said
        exports = dict(re.findall(r"^  export (\w+)=(\S+)", said, re.MULTILINE))
        env = {k: exports[k] for k in ("SWITCHBOARD_GATEWAY_URL", "SWITCHBOARD_TOKEN")}
        # The commands exactly as printed (and as docs/quickstart.md shows them).
        commands = re.findall(r"^  switchboard (flows .*)$", said, re.MULTILINE)
        assert commands[0] == "flows add examples/flows/quote-flow.yaml", commands
        added = subprocess.run(
            [*CLI, "flows", "add", "examples/flows/quote-flow.yaml"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**clean, **env},
        )
        assert added.returncode == 0, added.stderr
        assert "registered quote-flow version 2" in added.stdout
        order = '{"sku": "X-100", "quantity": 10, "customer": "ACME"}'
        assert commands[1] == (
            f"flows run quote-flow --input '{order}' --wait --token \"$USER_TOKEN\""
        ), commands
        done = run(
            "flows",
            "run",
            "quote-flow",
            "--input",
            order,
            "--wait",
            "--token",
            exports["USER_TOKEN"],
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "of quote-flow v2: completed" in done.stdout
        assert "Dear ACME, your quote is 118.75 EUR." in done.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0, log.read_text()
    assert "stopping" in log.read_text()

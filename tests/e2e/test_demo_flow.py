"""`switchboard demo --scenario flow` as a user runs it: the support desk's
escalation triggers the quote flow for the same user, quote and stock run in
parallel, the run stops for a manager, the sales desk asks dana which
warehouse ships the order and her answer reaches it, the reply goes back,
and the run's cost is told; exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_flow_demo_tells_the_story_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SWITCHBOARD_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--scenario",
            "flow",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "its end triggers quote-flow for dana" in out
    assert ": input_required" in out and "it waits for a manager (apr_" in out
    assert "grant: inventory:read sales:quote" in out
    assert "[FAILED]" not in out and out.count("[ok]") == 6
    assert "reply: Dear ACME, your quote is 1200.0 EUR." in out
    assert "5. the sales desk asks dana: Which warehouse ships 120 x X-100" in out
    assert "shipping: from north, 2 days" in out
    assert "the run cost 0.061 EUR at the policy's prices" in out

"""`switchboard demo --scenario flow-crash` as a user runs it: a subprocess that
kills its gateway with SIGKILL mid-flow, starts it again, and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_flow_crash_demo_resumes_the_run_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SWITCHBOARD_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--scenario",
            "flow-crash",
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
    assert "work: in flight at the agent" in out
    assert "kill -9" in out and "gateway started again" in out
    assert "the agent received: quote x1, work x1, reply x1" in out
    assert "[FAILED]" not in out and out.count("[ok]") == 4
    assert "reply: Dear ACME" in out

"""`switchboard demo --scenario conflict` as a user runs it: support's
escalation opens a hold on the customer, the sales agent's upsell is deferred
with the hold named, support resolves, the upsell is released; exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_conflict_demo_tells_the_story_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SWITCHBOARD_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--scenario", "conflict"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "2. sales is asked to upsell C-1042: task TASK_STATE_SUBMITTED" in out
    assert "explain: coordination rule support-first (hold) on customer c-1042" in out
    assert "4. the upsell is released and made for dana: task TASK_STATE_COMPLETED" in out
    assert "approved     sales    approval apr_" in out and "by coordination" in out
    assert "[FAILED]" not in out and out.count("[ok]") == 6

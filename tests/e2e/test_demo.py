"""`switchboard demo` as a user runs it: a subprocess, the whole story, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_demo_tells_the_story_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SWITCHBOARD_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,  # found from the package's checkout, not the working directory
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # The stock check went through, the reservation was refused for inventory:write.
    assert "stock: 1240 x X-100 on hand in Rotterdam" in out
    assert "reservation not made: delegation refused" in out
    assert "mcp reserve_stock: DENY" in out
    assert "requires inventory:write, which the user lacks" in out
    # The approval step: held, approved by the admin, then answered.
    assert "waiting for approval apr_" in out and "admin approves it" in out
    assert "13% off" in out  # the discount the approved call gave
    # The tree, with the actor chain at every hop.
    assert "chain:   dana -> support -> sales -> inventory" in out
    assert "└── inventory" in out
    assert "granted: inventory:read" in out
    assert "The story completed." in out
    # No warning in a story that went as told (issue 32.6): not the false
    # "authentication failed" of an onward call, not the refusal it makes
    # on purpose (told above from the audit log).
    said = out + done.stderr
    assert "WARNING" not in said and "authentication failed" not in said, said
    # The process exited by itself (its servers are threads of it, so nothing
    # it started is still running), and the data went where it was asked to.
    assert (tmp_path / "data" / "policy.yaml").is_file()

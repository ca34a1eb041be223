"""`switchboard demo --scenario consent` as a user runs it: a vendor's MCP server
that trusts only its own logins; alice is refused before connecting, then
alice and bob each reach it as themselves; alice disconnects and her token is
revoked at the vendor; exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_consent_demo_tells_the_story_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SWITCHBOARD_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--scenario", "consent"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "2. alice calls crm__whoami before connecting: refused, nothing sent" in out
    assert "the vendor saw: alice@vendor" in out
    assert "the vendor saw: bob@vendor" in out
    assert "revoked at the vendor: 1 token(s)" in out
    assert "mcp:connection_required" in out and "connection.revoked:ok" in out
    assert out.rstrip().endswith("consent story complete")

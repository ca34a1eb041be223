"""A peer's own virtual environment, made and kept by the bench itself.

Each peer (ContextForge, LiteLLM) pins libraries this project's venv does
not -- other `mcp` and `a2a-sdk` releases among them -- so each gets a venv
of its own under `.cache/peers/<name>/venv`, made once and reinstalled only
when a different version is asked for. pip reaches the index configured on
the machine like any other install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.a2a_forwarding import REPO

CACHE = REPO / ".cache" / "peers"


def installed_version(python: Path, package: str) -> str:
    """`package`'s version in the venv of `python` ("" if it has none)."""
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else ""


def peer_venv(name: str, package: str, version: str, *requirements: str) -> Path:
    """The bin directory of `name`'s venv, with `package`==`version` installed
    (from `requirements`, which name it with its extras and pins)."""
    venv = CACHE / name / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if installed_version(python, package) != version:
        print(f"installing {' '.join(requirements)} into {venv}", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return venv / "bin"

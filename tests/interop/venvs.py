"""Each framework of the interoperability matrix in a virtual environment of
its own (their pins conflict with each other's and with the gateway's), made
from PyPI once and kept: under ``$SWITCHBOARD_INTEROP_CACHE`` or
``~/.cache/switchboard/interop``, one directory per framework and hash of its
requirements, so a changed pin makes a new one and a fresh clone reuses what
the machine already built. Creating one is serialised by a file lock (pytest
workers, two checkouts), and marked complete only once pip succeeded.

The scripts each framework runs (its agent, its clients) live beside this
module in ``frameworks/<name>/`` and are run with that environment's Python,
never imported here. ``frameworks/<name>/requirements.txt`` pins the
framework.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

FRAMEWORKS = Path(__file__).resolve().parent / "frameworks"
STAMP = ".complete"


class FrameworkUnavailable(RuntimeError):
    """The framework's environment could not be made (pip's output says why)."""


def cache_root() -> Path:
    configured = os.environ.get("SWITCHBOARD_INTEROP_CACHE")
    return Path(configured) if configured else Path.home() / ".cache/switchboard/interop"


def requirements(framework: str) -> Path:
    return FRAMEWORKS / framework / "requirements.txt"


def script(framework: str, name: str) -> Path:
    return FRAMEWORKS / framework / name


def python_for(framework: str) -> Path:
    """The Python of ``framework``'s own environment, made if needed."""
    pins = requirements(framework).read_bytes()
    digest = hashlib.sha256(pins + sys.version.encode()).hexdigest()[:12]
    home = cache_root() / f"{framework}-{digest}"
    python = home / "bin" / "python"
    if (home / STAMP).exists():
        return python
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / f"{framework}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / STAMP).exists():  # made by whoever held the lock before
            return python
        _run([sys.executable, "-m", "venv", "--clear", str(home)], framework)
        _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], framework)
        _run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements(framework))],
            framework,
        )
        (home / STAMP).write_text(pins.decode())
    return python


def _run(command: list[str], framework: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise FrameworkUnavailable(
            f"{framework}: {' '.join(command[-3:])} failed:\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-4000:]}"
        )

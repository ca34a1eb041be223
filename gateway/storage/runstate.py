"""A small file in the data dir that tells the CLI where the running gateway is.

`switchboard token issue` and `switchboard agents ...` read it so they use the
same issuer URL and address as the server, whatever flags it was started with.
It holds no secret.

It names the process that wrote it, and only a live process's file counts: a
gateway that failed to bind, was killed, or is a second one started on the
same data dir must not send the CLI to the wrong place. A gateway writes it
unless another live gateway's file is there, and removes only its own.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from gateway.settings import Settings

logger = logging.getLogger(__name__)
FILENAME = "gateway.json"


def write(settings: Settings) -> bool:
    """Write this process's run state; False when another live gateway owns the file."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    current = read(settings.data_dir)
    if current and current.get("pid") == os.getppid():
        return False  # a worker of `serve --workers`: its supervisor's file names the gateway
    if current and current.get("pid") != os.getpid():
        logger.warning(
            "another gateway (pid %s, %s) runs on the data dir %s: the CLI keeps talking to it",
            current.get("pid"),
            current.get("public_url"),
            settings.data_dir,
        )
        return False
    data = {
        "public_url": settings.effective_public_url,
        "resource_id": settings.effective_resource_id,
        "dev": settings.dev,
        "pid": os.getpid(),
    }
    path = settings.data_dir / FILENAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return True


def remove(settings: Settings) -> None:
    """Remove the run state if this process wrote it (on shutdown)."""
    path = settings.data_dir / FILENAME
    if _load(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read(data_dir: Path) -> dict[str, Any]:
    """The run state of the live gateway on ``data_dir``; empty when there is none."""
    value = _load(data_dir / FILENAME)
    pid = value.get("pid")
    return value if isinstance(pid, int) and _alive(pid) else {}


def _load(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # no signal sent: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True

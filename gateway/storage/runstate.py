"""A small file in the data dir that tells the CLI where the running gateway is.

`switchboard token issue` and `switchboard agents ...` read it so they use the
same issuer URL and address as the server, whatever flags it was started with.
It holds no secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.settings import Settings

FILENAME = "gateway.json"


def write(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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


def read(data_dir: Path) -> dict[str, Any]:
    try:
        value = json.loads((data_dir / FILENAME).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

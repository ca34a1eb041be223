"""The console's tests' deployment: a gateway on the test's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, start_gateway


@pytest.fixture
def deployment(tmp_path: Path, database_url: str | None) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path / "data", database_url)
    yield gw
    gw.stop()

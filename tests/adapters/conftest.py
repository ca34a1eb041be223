"""The adapters' unit tests call each adapter as the core would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.core_check import inside_the_core


@pytest.fixture(autouse=True)
def _as_the_core() -> Iterator[None]:
    """A unit test of one adapter stands where `delegate()` stands: its sends
    are the core's (the tasks the test starts inherit the mark). Whether the
    gateway's own paths send only through the core is the e2e tests' to say,
    under the suite's strict check (tests/conftest.py)."""
    with inside_the_core():
        yield

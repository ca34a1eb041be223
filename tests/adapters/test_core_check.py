"""The run-time check that adapters send, and a call's record is written,
only inside `delegate()` (`adapters.core_check`); the suite runs it strict
(tests/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

import httpx
import pytest

from adapters import core_check
from adapters.base import Credentials, Turn
from adapters.core_check import OutsideTheCore, inside_the_core, outside_a_call, require_core
from adapters.openai_compat import ChatConfig, OpenAICompatAdapter


@pytest.fixture(autouse=True)
def _as_the_core() -> Iterator[None]:
    """Not here: this module tests what happens outside the core
    (tests/adapters/conftest.py marks every other adapter test as the core's)."""
    yield


@pytest.fixture
def strict() -> Iterator[None]:
    yield
    # This module's own misses are what it tests, not a path around the core.
    core_check.forget_missed()
    core_check.configure("strict")


def test_the_suite_runs_strict() -> None:
    assert os.environ[core_check.ENV] == "strict"
    assert core_check.mode() == "strict"


def test_outside_the_core_raises_and_is_kept(strict: None) -> None:
    with pytest.raises(OutsideTheCore, match="a send outside delegate"):
        require_core("a send")
    assert core_check.missed() == [
        "a send outside delegate(): every upstream call and its record go through the core"
    ]


def test_inside_the_core_passes(strict: None) -> None:
    with inside_the_core():
        require_core("a send")
        assert core_check.where() == core_check.CORE
    assert core_check.where() is None
    assert core_check.missed() == []


def test_an_exemption_passes_and_says_why(strict: None) -> None:
    with outside_a_call("health probe"):
        require_core("a probe's listing")
        assert core_check.where() == "exempt: health probe"
    assert core_check.missed() == []
    with pytest.raises(ValueError, match="says why"), outside_a_call(" "):
        pass


async def test_the_mark_follows_tasks_started_under_it(strict: None) -> None:
    async def send() -> None:
        require_core("a send from a task")

    with inside_the_core():
        task = asyncio.create_task(send())
    await task  # made inside: passes, though the mark is gone here
    with pytest.raises(OutsideTheCore):
        await asyncio.create_task(send())


def test_warn_logs_once_per_site(strict: None, caplog: pytest.LogCaptureFixture) -> None:
    core_check.configure("warn")
    with caplog.at_level(logging.WARNING, logger="adapters.core_check"):
        require_core("site one")
        require_core("site one")
        require_core("site two")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert said[0].startswith("site one outside delegate()")
    assert said[1].startswith("site two outside delegate()")
    assert core_check.missed() == []


def test_off_says_nothing(strict: None, caplog: pytest.LogCaptureFixture) -> None:
    core_check.configure("off")
    with caplog.at_level(logging.WARNING, logger="adapters.core_check"):
        require_core("a send")
    assert caplog.records == []


def test_the_mode_is_read_from_the_environment(
    strict: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(core_check.ENV, "WARN")
    core_check.configure(None)
    assert core_check.mode() == "warn"
    monkeypatch.setenv(core_check.ENV, "loud")
    core_check.configure(None)
    with pytest.raises(ValueError, match="off, warn, strict"):
        core_check.mode()


async def test_an_adapter_sending_outside_the_core_is_refused(strict: None) -> None:
    # Refused before anything is built or sent: the URL is never dialled.
    async with httpx.AsyncClient() as http:
        adapter = OpenAICompatAdapter(http, ChatConfig("http://127.0.0.1:9/v1", "m"), "x")
        with pytest.raises(OutsideTheCore, match="OpenAI-compatible adapter's call"):
            await adapter.call(Turn(text="hi"), Credentials(), timeout_seconds=1)
        stream = adapter.stream(Turn(text="hi"), Credentials(), timeout_seconds=1)
        with pytest.raises(OutsideTheCore, match="OpenAI-compatible adapter's stream"):
            await anext(aiter(stream))


def test_every_miss_is_counted_by_site_warned_of_or_raised(strict: None) -> None:
    before = core_check.misses().get("a counted site", 0)
    core_check.configure("warn")
    require_core("a counted site")
    require_core("a counted site")  # warned of once, counted twice
    core_check.configure("strict")
    with pytest.raises(OutsideTheCore):
        require_core("a counted site")
    core_check.configure("off")
    require_core("a counted site")  # not looked at
    with inside_the_core():
        require_core("a counted site")  # no miss
    assert core_check.misses()["a counted site"] - before == 3

"""Shared fixtures: databases (SQLite and the local PostgreSQL), gateways, agents."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import core_check
from gateway.demo.vendor import Vendor
from gateway.storage import db
from tests.support.agents import CardHost, CardSource, sdk_agent_app, sdk_card
from tests.support.databases import SQLITE_FILE, fresh_database, seed_data_dir
from tests.support.gateway import Gateway, GatewayFactory, start_gateway
from tests.support.servers import ServerThread

DATABASE_PARAMS = ("database_url", "module_database_url")

# The whole suite runs with the core check strict (`adapters.core_check`): an
# adapter that sends, or a call's record written, outside `delegate()` raises
# -- in this process and in every gateway process a test starts (the
# variable is inherited).
os.environ[core_check.ENV] = "strict"
core_check.configure("strict")


@pytest.fixture(autouse=True)
def _sends_only_through_the_core() -> Iterator[None]:
    """Fail the test in which something sent or recorded around the core,
    even when a caller caught the error (a probe that logs and goes on)."""
    core_check.forget_missed()
    yield
    missed = core_check.missed()
    core_check.forget_missed()
    assert missed == [], "sent or recorded outside delegate() (adapters.core_check)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that kills gateway processes (``crash``) runs on one database in
    `make test` -- SQLite for half of them, PostgreSQL for the other half,
    fixed per test by its name -- and on both with ``SWITCHBOARD_CRASH=all``
    (`make test-crash`). They are the suite's slowest (each starts and kills
    whole gateway processes): this keeps CI well under its bound with both
    databases crash-tested in every run."""
    if os.environ.get("SWITCHBOARD_CRASH") == "all":
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.get_closest_marker("crash") is None or callspec is None:
            continue
        database = next((callspec.params[p] for p in DATABASE_PARAMS if p in callspec.params), None)
        if database is None:
            continue
        name = getattr(item, "originalname", item.name)
        chosen = ("sqlite", "postgresql")[zlib.crc32(f"{item.path.name}::{name}".encode()) % 2]
        if database != chosen:
            item.add_marker(pytest.mark.skip(reason=f"on {chosen} in make test; make test-crash"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL at the schema's head (a copy
    of this process's template), dropped afterwards."""
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """`database_url` for a test of the migrations themselves: None (the test
    names its own SQLite file), or an empty database on the local PostgreSQL."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(migrated=False) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None means the embedded default: SQLite in the data dir."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """`database_url` for a deployment a module's tests share: None (SQLite), or
    a fresh database on the local PostgreSQL, dropped after the module."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
async def engine(database_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The gateway's database at the schema's head, for a test of a piece that
    stores: a copy of the schema built once (SQLite in the test's directory),
    or the run's PostgreSQL `database_url`."""
    if database_url is None:
        # The first copy builds the template, which runs its own event loop.
        await asyncio.to_thread(seed_data_dir, tmp_path / "db")
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'db' / SQLITE_FILE}"
    async with db.migrated(database_url, None) as made:
        yield made


@pytest.fixture
async def unmigrated_engine(
    unmigrated_database_url: str | None, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database, for the tests of the migrations."""
    made = db.create_engine(
        unmigrated_database_url or f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}"
    )
    yield made
    await made.dispose()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path / "data", None)
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways for this test, stopped after it: ``make_gateway(database_url,
    policy=POLICY, **settings)`` (see `tests.support.gateway.start_gateway`).
    Each gateway of a test gets a data dir of its own."""
    started: list[Gateway] = []

    def make(database_url: str | None = None, **options: Any) -> Gateway:
        folder = tmp_path / f"gateway-{len(started)}"
        folder.mkdir()
        started.append(start_gateway(folder / "data", database_url, **options))
        return started[-1]

    try:
        yield make
    finally:
        for running in reversed(started):
            running.stop()


@pytest.fixture
def vendor(request: pytest.FixtureRequest) -> Iterator[Vendor]:
    """A vendor with its own authorization server (`gateway.demo.vendor.Vendor`:
    MCP tools and an A2A agent behind OAuth) on 127.0.0.1. A test or module
    sets its options with ``@pytest.mark.vendor(access_seconds=30)``."""
    marker = request.node.get_closest_marker("vendor")
    with Vendor(**(marker.kwargs if marker else {})) as running:
        yield running


@pytest.fixture
def card_source() -> CardSource:
    return CardSource(sdk_card("http://placeholder"))


@pytest.fixture
def sdk_agent(card_source: CardSource) -> Iterator[ServerThread]:
    """An agent built with the official a2a-sdk, serving its card on 127.0.0.1."""

    def build(url: str) -> object:
        card_source.card = sdk_card(url)
        return sdk_agent_app(card_source)

    with ServerThread(build) as server:
        yield server


@pytest.fixture
def card_host() -> Iterator[tuple[CardHost, ServerThread]]:
    host = CardHost()
    with ServerThread(lambda _url: host.app()) as server:
        yield host, server

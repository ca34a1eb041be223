"""`GatewayMetrics` in one process, on both databases: the core check's
misses (`adapters.core_check`, which counts them and may not import the
gateway) shown by site, from the gateway's start on, at each scrape and each
refresh; warned of or raised alike. And the semantic leg's backlog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import core_check
from adapters.core_check import OutsideTheCore, require_core
from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.observability.metrics import GatewayMetrics

MISSES = "switchboard_core_check_misses_total"


@pytest.fixture
def warn() -> Iterator[None]:
    core_check.configure("warn")
    yield
    core_check.forget_missed()  # the strict miss below is what this tests
    core_check.configure("strict")


def _misses(metrics: GatewayMetrics) -> dict[str, float]:
    return {
        sample.labels["site"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name == MISSES
    }


async def test_each_miss_is_counted_by_site(engine: AsyncEngine, warn: None) -> None:
    require_core("a site missed before the gateway started")  # not this gateway's
    metrics = GatewayMetrics(engine, Breakers(BreakerSettings()))
    assert _misses(metrics) == {}
    for _ in range(3):
        require_core("site one")  # warned of once, counted three times
    require_core("site two")
    assert _misses(metrics) == {"site one": 3, "site two": 1}
    core_check.configure("strict")
    with pytest.raises(OutsideTheCore):
        require_core("site one")
    await metrics.refresh()  # the periodic job's look counts it too
    assert metrics.registry.get_sample_value(MISSES, {"site": "site one"}) == 4
    assert _misses(metrics) == {"site one": 4, "site two": 1}
    core_check.configure("off")
    require_core("site one")  # not looked at: not a miss
    assert _misses(metrics) == {"site one": 4, "site two": 1}


async def test_the_tools_still_to_embed_are_gauged_at_each_refresh(engine: AsyncEngine) -> None:
    metrics = GatewayMetrics(engine, Breakers(BreakerSettings()))
    pending = [3]
    metrics.semantic_pending = lambda: pending[0]

    def gauged() -> list[float]:
        return [
            sample.value
            for family in text_string_to_metric_families(metrics.render().decode())
            for sample in family.samples
            if sample.name == "switchboard_tool_search_embedding_pending"
        ]

    await metrics.refresh()
    assert gauged() == [3.0]
    pending[0] = 0
    await metrics.refresh()
    assert gauged() == [0.0]

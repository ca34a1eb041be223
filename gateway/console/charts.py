"""Small bar charts the console draws itself, as inline SVG: no script, no
style attribute (the console's CSP allows neither), only geometry and
presentation attributes; colours come from classes in console.css.

A chart is `SLOTS` bars on a ``viewBox`` of `WIDTH` x `HEIGHT` user units,
stretched to the width of its box (``preserveAspectRatio="none"``), so it
fits a phone as well as a wide screen. What it shows is said in text too:
its ``aria-label`` and a caption with the figures (the total, the last
value, the highest), and each bar's own ``<title>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.delegation.audit_traffic import Traffic

WIDTH = 120
HEIGHT = 40
GAP = 0.4  # between bars, in user units


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # the bar's minute and value, as a tooltip and for a screen reader


@dataclass(frozen=True)
class Chart:
    name: str  # its id and class suffix: "calls", "refusals", "latency"
    title: str
    label: str  # the whole chart in one sentence (aria-label)
    figures: tuple[tuple[str, str], ...]  # (what, value) shown under it
    bars: tuple[Bar, ...]
    width: int = WIDTH
    height: int = HEIGHT


def bars(values: Sequence[float | None], titles: Sequence[str]) -> tuple[Bar, ...]:
    """One bar per value, scaled to the highest; None or 0 draws no bar (a
    bar is at least a sliver high, so a small value is still seen)."""
    top = max((v for v in values if v is not None), default=0.0)
    if not values or top <= 0:
        return ()
    slot = WIDTH / len(values)
    drawn = []
    for i, (value, title) in enumerate(zip(values, titles, strict=True)):
        if not value:
            continue
        height = max(HEIGHT * value / top, 0.8)
        drawn.append(
            Bar(
                round(i * slot + GAP / 2, 2),
                round(HEIGHT - height, 2),
                slot - GAP,
                round(height, 2),
                title,
            )
        )
    return tuple(drawn)


def traffic_charts(traffic: Traffic) -> tuple[Chart, ...]:
    """Calls, refusals and p95 latency per minute over the hour."""
    minutes = traffic.minutes
    calls = [m.calls for m in minutes]
    refusals = [m.refusals for m in minutes]
    p95 = [m.p95_ms for m in minutes]
    span = f"per minute, the last {len(minutes)} minutes"
    latest = traffic.last_p95_ms
    highest = max((v for v in p95 if v is not None), default=None)
    sampled = f" (a sample: 1 call in {traffic.sampled_every})" if traffic.sampled_every > 1 else ""
    return (
        _count_chart("calls", "Calls", calls, minutes_of(traffic), span),
        _count_chart("refusals", "Refusals", refusals, minutes_of(traffic), span),
        Chart(
            "latency",
            "p95 latency",
            f"p95 latency of the calls made, {span}{sampled}: "
            + (
                f"latest {_ms(latest)}, highest {_ms(highest)}"
                if latest is not None
                else "no call made"
            ),
            (("latest", _ms(latest)), ("highest", _ms(highest))),
            bars(p95, _titled(minutes_of(traffic), p95, _ms)),
        ),
    )


def minutes_of(traffic: Traffic) -> list[datetime]:
    return [m.start for m in traffic.minutes]


def _count_chart(
    name: str, title: str, values: list[int], starts: list[datetime], span: str
) -> Chart:
    total, last, top = sum(values), values[-1] if values else 0, max(values, default=0)
    what = title.lower()
    return Chart(
        name,
        title,
        f"{title} {span}: {total} in all, {last} this minute, at most {top} in a minute",
        (("in the hour", str(total)), ("this minute", str(last)), ("most in a minute", str(top))),
        bars(values, _titled(starts, values, lambda v: f"{what} {v}")),
    )


def _titled(
    starts: list[datetime], values: Sequence[float | None], said: Callable[[float | None], str]
) -> list[str]:
    return [f"{s:%H:%M} UTC: {said(v)}" for s, v in zip(starts, values, strict=True)]


def _ms(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} ms"

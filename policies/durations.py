"""Durations as people write them -- ``30d``, ``12h``, ``90m``, ``3600s``,
``2w`` -- for every setting and command that takes one: an API key's
lifetime, a dev token's ``--ttl``, `policy whatif`'s ``--since``. One
syntax, so what one place takes every other place takes too. Pure.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d{1,12})([smhdw]?)$", re.ASCII)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DurationError(ValueError):
    """Not a duration; ``str()`` says what to write."""


def parse_duration(value: str, *, bare: str | None = None) -> timedelta:
    """``N`` followed by s, m, h, d or w. ``bare``: the unit a number
    written without one is in (``"s"`` for a dev token's ``--ttl 3600``);
    None: a unit is required. Zero is a duration: whether it makes sense
    is the caller's to say."""
    match = _DURATION.match(value.strip())
    unit = (match.group(2) or bare) if match is not None else None
    if match is None or unit is None:
        units = "s, m, h, d or w" + (f" (none: {_UNITS[bare]})" if bare else "")
        raise DurationError(f"{value!r} is not a duration: write N followed by {units}")
    try:
        return timedelta(**{_UNITS[unit]: int(match.group(1))})
    except OverflowError:
        raise DurationError(f"{value!r} is longer than any duration kept") from None

"""JWT claim value checks shared by access tokens and client assertions."""

from __future__ import annotations

import math
from typing import Any


class NotNumeric(ValueError):
    pass


class OutOfRange(ValueError):
    pass


def numeric_date(value: Any) -> float:
    """RFC 7519 §2 NumericDate: a finite JSON number. `true` is an int in
    Python but not a time; 1e400 or a 5000-digit integer is no time either."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotNumeric
    try:
        number = float(value)
    except OverflowError:
        raise OutOfRange from None
    if not math.isfinite(number):
        raise OutOfRange
    return number

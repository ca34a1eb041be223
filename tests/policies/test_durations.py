"""One duration syntax and one rate syntax (`policies.durations`,
`policies.limits.parse_rate`) for every place that takes one: each place
takes at least what it took when it had a parser of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.cli.common import CliError
from gateway.cli.policy_whatif import when
from gateway.cli.tokens import parse_ttl
from policies import api_keys
from policies.durations import DurationError, parse_duration
from policies.limits import LimitRule, RateError, parse_rate

NOW = datetime(2026, 11, 28, tzinfo=UTC)
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SAMPLES = [
    *(f"{n}{u}" for n in ("0", "1", "30", "90", "999999", "1000000") for u in SECONDS),
    " 7d ",
    "1y",
    "-1d",
    "1e3s",
    "",
    "d",
    "1.5h",
    "1 h",
    "30D",
]
# The three parsers this one replaced, as they were written.
OLD_KEY = re.compile(r"^(\d{1,6})([smhd])$")
OLD_TTL = re.compile(r"^(\d+)([smhd]?)$")
OLD_AGO = re.compile(r"^(\d{1,6})([smhdw])$")


def old_seconds(pattern: re.Pattern[str], value: str, *, strip: bool = True) -> int | None:
    found = pattern.match(value.strip() if strip else value)
    return int(found.group(1)) * SECONDS[found.group(2)] if found else None


@pytest.mark.parametrize("value", SAMPLES)
def test_every_place_takes_what_it_took(value: str) -> None:
    key = old_seconds(OLD_KEY, value)
    if key:  # the key's refused 0
        assert api_keys.parse_duration(value) == timedelta(seconds=key)
    ttl = old_seconds(OLD_TTL, value, strip=False)
    if ttl is not None and 0 < ttl <= 30 * 86400:
        assert parse_ttl(value) == ttl
    ago = old_seconds(OLD_AGO, value)
    if ago is not None and ago < (NOW - datetime(1, 1, 1, tzinfo=UTC)).total_seconds():
        assert when(value, NOW) == NOW - timedelta(seconds=ago)
    elif ago is not None:  # it crashed (OverflowError); now it is a clear refusal
        with pytest.raises(CliError, match="before the year 1"):
            when(value, NOW)


def test_one_syntax_everywhere() -> None:
    assert parse_duration("2w") == api_keys.parse_duration("2w") == timedelta(weeks=2)
    assert parse_ttl("1w") == 7 * 86400 and parse_ttl("3600") == 3600
    assert parse_duration("0s") == timedelta(0)
    for bad in ("30", "1y", "-1d", "1e3s", "", "1 h", "9" * 13 + "w"):
        with pytest.raises(DurationError):
            parse_duration(bad)
    with pytest.raises(DurationError, match="none: seconds"):
        parse_duration("x", bare="s")
    for bad in ("0d", "0"):
        with pytest.raises(api_keys.ApiKeyError):
            api_keys.parse_duration(bad)
    for bad in ("0", "forever", "31d"):
        with pytest.raises(CliError, match="--ttl"):
            parse_ttl(bad)


def test_one_rate_syntax_for_keys_and_the_policy() -> None:
    for written, meant in {
        "10/s": "10/second",
        "10/second": "10/second",
        " 5/m ": "5/minute",
        "2/h": "2/hour",
        "1/d": "1/day",
        "100/minute": "100/minute",
        "10 per 2 seconds": "10 per 2 seconds",
    }.items():
        assert parse_rate(written) == meant
        assert api_keys.parse_rate(written) == meant
        assert LimitRule(name="r", rate=written).rate == meant
    assert LimitRule(name="r", rate="0/minute").rate == "0/minute"  # as before
    for bad in ("10", "10/fortnight", "ten/s", "1/s; 2/m", "1/second;5/minute", ""):
        with pytest.raises(RateError, match="not a rate"):
            parse_rate(bad)
    with pytest.raises(api_keys.ApiKeyError, match="more than 0"):
        api_keys.parse_rate("0/s")


@pytest.mark.parametrize(
    "rate",
    [
        "10 per 0 seconds",
        "10/0 seconds",
        "10/month",
        "10/year",
        "10 per 400 days",
        "\u0661\u0662/s",
        "\uff15/m",
    ],
)
def test_a_rate_over_no_window_a_long_one_or_foreign_digits_is_refused(rate: str) -> None:
    with pytest.raises(RateError):
        parse_rate(rate)


@pytest.mark.parametrize(
    "duration", ["\u0661\u0662d", "\uff15d", "\uff11s"]
)  # Arabic-Indic, fullwidth
def test_a_duration_in_digits_other_than_ascii_is_refused(duration: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(duration, bare="s")

"""The looks of a waiting run grow apart (`gateway.flows.looks`)."""

from __future__ import annotations

from gateway.flows.looks import LOOKS_APART_MAX_SECONDS, next_look

WEEK = 7 * 86400.0


def test_the_looks_double_apart_up_to_a_quarter_of_an_hour() -> None:
    assert [next_look(60, n) for n in range(1, 7)] == [60, 120, 240, 480, 900, 900]
    assert next_look(60, 10_000) == LOOKS_APART_MAX_SECONDS  # no overflow however long


def test_a_poll_longer_than_the_cap_is_kept() -> None:
    assert [next_look(3600, n) for n in (1, 2, 50)] == [3600, 3600, 3600]


def test_a_week_at_a_checkpoint_is_hundreds_of_looks_not_tens_of_thousands() -> None:
    waited, looks = 0.0, 0
    while waited < WEEK:
        looks += 1
        waited += next_look(60, looks)
    assert looks < 700
    assert WEEK / 60 > 10_000  # what a look every minute came to

"""`gateway.http.json_body`: the depth read from a body's bytes is the depth
of the document it parses to (strings, escapes and all); a number JSON does
not have (NaN, an infinity, one past a double's range) is refused however it
is spelt, by the screen of every body and by the reader alike; and the
refusal is in the caller's protocol."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.json_body import (
    NotANumber,
    NotJson,
    TooDeep,
    check_value,
    read_json,
    refusal,
    screen,
    too_deep,
)

LIMIT = 8


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(levels: int, inner: Any = "x") -> Any:
    for i in range(levels):
        inner = {"a": inner} if i % 2 else [inner]
    return inner


# Strings full of what looks like structure, escaped quotes and backslashes.
_tricky = st.sampled_from(['{"[', '\\"[[[', "\\\\", "}]}]", '"{', "[\\u005b"])
_leaves = st.one_of(st.none(), st.booleans(), st.integers(), _tricky, st.text(max_size=5))
_documents = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(_tricky, st.text()), inner, max_size=3),
    ),
    max_leaves=40,
)


@given(_documents)
def test_the_depth_read_from_bytes_is_the_parsed_depth(document: Any) -> None:
    body = json.dumps(document).encode()
    padded = json.dumps({"pad": [{}] * LIMIT, "doc": document}).encode()  # past the shortcut
    assert too_deep(body, LIMIT) == (_depth(document) > LIMIT)
    assert too_deep(padded, LIMIT) == (_depth(document) + 1 > LIMIT)


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"text": "[" * 500 + '\\"{' * 100}).encode()
    assert not too_deep(body, LIMIT)
    assert too_deep(json.dumps(_nested(LIMIT + 1)).encode(), LIMIT)
    assert not too_deep(json.dumps(_nested(LIMIT)).encode(), LIMIT)


@pytest.mark.parametrize(
    ("path", "body", "status", "shape"),
    [
        ("/a2a/sales", b'{"jsonrpc": "2.0", "id": "r7", "method": "SendMessage"}', 200, "jsonrpc"),
        ("/mcp", b'{"id": 3, "jsonrpc":"2.0", "method": "tools/call"}', 200, "jsonrpc"),
        ("/a2a/sales/message:send", b'{"message": {}}', 400, "aip193"),
        ("/a2a/sales/", b"[[[", 200, "jsonrpc-null"),  # the TCK posts to <url>/
        ("/flows/f/runs", b'{"input": {}}', 400, "problem"),
        ("/a2a/sales/tasks/t1:cancel", b'{"id": "t1"}', 400, "aip193"),
        # A path no A2A route takes (the fuzzer's /a2a/a%2Fb, decoded): not
        # HTTP+JSON, so the gateway's own problem document.
        ("/a2a/a/b", b'{"id": 0, "method": "message/stream"}', 400, "problem"),
    ],
)
def test_the_refusal_speaks_the_caller_s_protocol(
    path: str, body: bytes, status: int, shape: str
) -> None:
    code, content_type, answer = refusal(path, body, TooDeep(LIMIT))
    said = json.loads(answer)
    assert code == status
    if shape == "jsonrpc-null":
        assert said["id"] is None and said["error"]["code"] == -32700
    elif shape == "jsonrpc":
        assert said["id"] == json.loads(body)["id"]
        assert said["error"]["code"] == -32600 and "deeper than 8" in said["error"]["message"]
    elif shape == "aip193":
        assert said["error"]["status"] == "INVALID_ARGUMENT"
    else:
        assert content_type == "application/problem+json"
        assert said["type"] == "urn:switchboard:problem:too-deep"


NON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400", "0.5e0310", "1" + "0" * 400]


@pytest.mark.parametrize("number", NON_NUMBERS)
def test_a_number_json_does_not_have_is_refused(number: str) -> None:
    document = {"jsonrpc": "2.0", "id": 7, "params": {"data": {"x": [1, "<n>"]}}}
    body = json.dumps(document).replace('"<n>"', number).encode()
    refused = screen(body, LIMIT)
    assert isinstance(refused, NotANumber), number
    with pytest.raises(NotANumber):
        read_json(body, LIMIT)
    # UTF-16, which `json` reads from bytes as well, is no way round it.
    assert isinstance(screen(body.decode().encode("utf-16"), LIMIT), NotANumber)
    code, _, answer = refusal("/a2a/sales", body, refused)
    said = json.loads(answer)
    assert code == 200 and said["id"] == 7 and said["error"]["code"] == -32602
    run = json.dumps({"input": {"x": "<n>"}}).replace('"<n>"', number).encode()
    code, _, answer = refusal("/flows/f/runs", run, refused)
    assert code == 400 and json.loads(answer)["type"] == "urn:switchboard:problem:not-a-number"


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), -float("inf"), 10**400, {"a": [float("nan")]}]
)
def test_a_value_built_otherwise_is_held_to_the_same_numbers(value: Any) -> None:
    with pytest.raises(NotANumber):
        check_value({"x": value}, LIMIT)


def test_a_value_built_otherwise_is_held_to_the_same_depth() -> None:
    check_value(_nested(LIMIT), LIMIT)
    with pytest.raises(TooDeep):
        check_value(_nested(LIMIT + 1), LIMIT)


@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**1000), max_value=2**1000),
    )
)
def test_what_a_double_carries_passes_both(number: float) -> None:
    body = json.dumps({"x": number, "s": "NaN? 1e999"}).encode()
    assert screen(body, LIMIT) is None
    assert read_json(body, LIMIT) == {"x": number, "s": "NaN? 1e999"}


@given(
    st.integers(min_value=0, max_value=320),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=-400, max_value=400),
    st.booleans(),
    st.booleans(),
)
def test_the_screen_misses_no_number_past_a_double(
    digits: int, fraction: int, exponent: int, plus: bool, pad: bool
) -> None:
    """However a number is spelt -- digits, a fraction, an exponent with
    or without its sign and leading zeros -- the screen refuses exactly
    those `float` makes infinite."""
    text = "9" * max(digits, 1) + ("." + "5" * fraction if fraction else "")
    spelt = f"{exponent:04d}" if pad else str(exponent)
    text += f"e{'+' if plus and exponent >= 0 else ''}{spelt}" if exponent else ""
    body = f'{{"x": {text}}}'.encode()
    refused = screen(body, LIMIT)
    assert isinstance(refused, NotANumber) == (not math.isfinite(float(text))), text


def test_text_that_is_not_json_is_left_to_its_parser() -> None:
    assert screen(b'{"x" NaN}', LIMIT) is None
    with pytest.raises(NotJson):
        read_json(b'{"x": 1', LIMIT)

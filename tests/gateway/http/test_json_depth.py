"""`gateway.http.json_depth`: the depth read from a body's bytes is the depth
of the document it parses to (strings, escapes and all), and the refusal is
in the caller's protocol."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.json_depth import refusal, too_deep

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
    code, content_type, answer = refusal(path, body, LIMIT)
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

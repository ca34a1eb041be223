"""`switchboard mcp add NAME --openapi ...`: the request it makes of a file or
a URL, and the mistakes it names in one line before anything is sent (the
registration itself, over HTTP: `tests/e2e/test_mcp_openapi.py`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.cli.common import CliError
from gateway.cli.mcp_openapi import add_rest_api


def args(openapi: str, **more: Any) -> argparse.Namespace:
    given = {"name": "Stock", "url": None, "stdio": None, "operations": None, "tag": None}
    return argparse.Namespace(**(given | more | {"openapi": openapi}))


def sent(namespace: argparse.Namespace) -> dict[str, Any]:
    bodies: list[dict[str, Any]] = []
    assert add_rest_api(namespace, lambda _, body: bodies.append(body)) == 0
    return bodies[0]


def test_a_url_is_sent_for_the_gateway_to_fetch() -> None:
    body = sent(
        args("https://api.example/openapi.json", operations="a, b,,", url="https://x.example")
    )
    assert body == {
        "name": "Stock",
        "url": "https://x.example",
        "openapi": {"url": "https://api.example/openapi.json", "operations": ["a", "b"]},
    }


def test_a_file_is_read_here_json_or_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"openapi": "3.1.0", "paths": {}}))
    (tmp_path / "a.yaml").write_text("openapi: 3.0.3\npaths: {}\n")
    assert sent(args(str(tmp_path / "a.json"), tag="items"))["openapi"] == {
        "document": {"openapi": "3.1.0", "paths": {}},
        "tag": "items",
    }
    assert sent(args(str(tmp_path / "a.yaml")))["openapi"]["document"]["openapi"] == "3.0.3"


@pytest.mark.parametrize(
    ("content", "more", "why"),
    [
        (None, {}, "no such file"),
        ("[1, 2]", {}, "not a JSON object"),
        ("{", {}, "not valid JSON"),
        ("{}", {"operations": "a", "tag": "t"}, "--operations or --tag, not both"),
        ("{}", {"stdio": "npx server"}, "do not go together"),
    ],
)
def test_mistakes_are_one_line(
    tmp_path: Path, content: str | None, more: dict[str, Any], why: str
) -> None:
    path = tmp_path / "doc.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CliError, match=why):
        add_rest_api(args(str(path), **more), lambda *_: None)


def test_the_parser_takes_the_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["mcp", "add", "Stock", "--openapi", str(tmp_path / "none.json"), "--tag", "t"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"switchboard: OpenAPI document {tmp_path / 'none.json'}: no such file"
    ]

"""`switchboard mcp add NAME [BASE_URL] --openapi URL-or-file [--operations ID,...|--tag T]`:
a REST API federated by its OpenAPI document (`POST /mcp-servers` with ``openapi``).

A URL is fetched by the gateway (under its SSRF rules); a file is read here,
JSON or YAML by its suffix, and sent as the document itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.common import CliError, read_document


def rest_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--openapi",
        metavar="URL_OR_FILE",
        help="a REST API by its OpenAPI 3.x document: each operation becomes a tool "
        "(URL: the API's base URL, default the document's first server)",
    )
    parser.add_argument(
        "--operations", metavar="ID,...", help="with --openapi: only these operationIds"
    )
    parser.add_argument("--tag", help="with --openapi: only the operations with this tag")


def source_of(args: argparse.Namespace) -> dict[str, Any]:
    given: str = args.openapi
    if given.startswith(("http://", "https://")):
        source: dict[str, Any] = {"url": given}
    else:
        source = {"document": read_document(Path(given), "OpenAPI document")}
        if not isinstance(source["document"], dict):
            raise CliError(f"OpenAPI document {given}: not a JSON object")
    if args.operations and args.tag:
        raise CliError("give --operations or --tag, not both")
    if args.operations:
        source["operations"] = [op.strip() for op in args.operations.split(",") if op.strip()]
    if args.tag:
        source["tag"] = args.tag
    return source


def add_rest_api(
    args: argparse.Namespace, finish: Callable[[argparse.Namespace, dict[str, Any]], None]
) -> int:
    if args.stdio:
        raise CliError("--openapi and --stdio do not go together")
    body: dict[str, Any] = {"name": args.name, "openapi": source_of(args)}
    if args.url:
        body["url"] = args.url
    finish(args, body)
    return 0

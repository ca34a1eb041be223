"""`switchboard mcp` (federated MCP servers, over the HTTP API) and `switchboard mcp-stdio`."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from gateway.cli import mcp_sets
from gateway.cli.common import (
    CliError,
    call,
    gateway_options,
    print_json,
)
from gateway.cli.mcp_openapi import add_rest_api, rest_api_options


def register(commands: Any) -> None:
    mcp = commands.add_parser("mcp", help="manage federated MCP servers").add_subparsers(
        title="mcp commands"
    )
    mcp_add = _add_command(mcp)
    mcp_list = mcp.add_parser("list", help="list MCP servers and their tools")
    mcp_list.set_defaults(run=_mcp_list)
    mcp_show = mcp.add_parser("show", help="show one MCP server")
    mcp_show.add_argument("id", help="the MCP server's id (as `mcp list` shows it)")
    mcp_show.set_defaults(run=_mcp_show)
    mcp_remove = mcp.add_parser("remove", help="remove an MCP server")
    mcp_remove.add_argument("id", help="the MCP server's id")
    mcp_remove.set_defaults(run=_mcp_remove)
    mcp_refresh = mcp.add_parser("refresh", help="list a server's tools now")
    mcp_refresh.add_argument("id", help="the MCP server's id")
    mcp_refresh.set_defaults(run=_mcp_refresh)
    mcp_approve = mcp.add_parser("approve", help="approve a tool's current definition")
    mcp_approve.add_argument("id", help="the MCP server's id")
    mcp_approve.add_argument("tool", help="the namespaced tool name")
    mcp_approve.add_argument("--digest", help="the digest you reviewed (refused if it changed)")
    mcp_approve.set_defaults(run=_mcp_approve)
    mcp_sets.register(mcp)

    stdio = commands.add_parser(
        "mcp-stdio",
        help="serve the gateway's MCP endpoint on stdin/stdout (for stdio-only MCP clients)",
    )
    stdio.add_argument("--url", required=True, help="the gateway's MCP endpoint, .../mcp")
    stdio.add_argument(
        "--token",
        help="the bearer token to send (default: $SWITCHBOARD_TOKEN, which keeps it out of "
        "the process list)",
    )
    stdio.set_defaults(run=_mcp_stdio)
    gateway_options(mcp_add)
    gateway_options(mcp_list)
    gateway_options(mcp_show)
    gateway_options(mcp_remove)
    gateway_options(mcp_refresh)
    gateway_options(mcp_approve)


def _add_command(mcp: Any) -> Any:
    """`switchboard mcp add`: a server by URL, by --stdio command, or a REST API."""
    mcp_add = mcp.add_parser(
        "add", help="register an MCP server by URL (Streamable HTTP or SSE), or --stdio command"
    )
    mcp_add.add_argument("name", help="a display name (the id is derived from it)")
    mcp_add.add_argument(
        "url", nargs="?", help="the server's Streamable HTTP endpoint (or its SSE one: --transport)"
    )
    mcp_add.add_argument(
        "--transport",
        choices=("http", "sse"),
        help="http: Streamable HTTP; sse: the legacy HTTP+SSE transport (MCP 2024-11-05), URL "
        "is its SSE endpoint (default: Streamable HTTP, or SSE if the server answers that way)",
    )
    mcp_add.add_argument("--id", help="id to register under (default: from the name)")
    mcp_add.add_argument("--resource", help="audience of tokens minted for it (default: its URL)")
    mcp_add.add_argument("--timeout", type=float, help="seconds to wait for its answers")
    mcp_add.add_argument(
        "--header",
        help="a static credential header, NAME:VALUE (value may be @file or $ENVVAR)",
    )
    mcp_add.add_argument(
        "--token-exchange",
        action="store_true",
        help="send a token the gateway mints per call (aud = this server)",
    )
    mcp_add.add_argument(
        "--stdio", help='a command line to launch (admin, allowlisted): "npx -y server"'
    )
    mcp_add.add_argument(
        "--no-prefix",
        action="store_true",
        help="offer its tools under their own names where free (default: {server}__{tool})",
    )
    rest_api_options(mcp_add)
    mcp_add.set_defaults(run=_mcp_add)
    return mcp_add


def _mcp_stdio(args: argparse.Namespace) -> int:
    import anyio

    from gateway.mcp.stdio import bridge

    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    if not token:
        raise CliError("give --token or set SWITCHBOARD_TOKEN")
    anyio.run(bridge, args.url, token)
    return 0


def _mcp_add(args: argparse.Namespace) -> int:
    if args.openapi is not None:  # a REST API, by its OpenAPI document
        return add_rest_api(args, _finish_add)
    command = shlex.split(args.stdio) if args.stdio else []
    if bool(args.url) == bool(command):
        raise CliError("give a URL or --stdio, not both")
    if args.transport and not args.url:
        raise CliError("--transport goes with a URL")
    body: dict[str, Any] = {"name": args.name}
    if args.url:
        body["url"] = args.url
        if args.transport:
            body["transport"] = args.transport
    else:
        body["command"], body["args"] = command[0], command[1:]
    _finish_add(args, body)
    return 0


def _finish_add(args: argparse.Namespace, body: dict[str, Any]) -> None:
    """The options every registration takes, then the registration itself."""
    optional = (("id", args.id), ("resource", args.resource), ("timeout_seconds", args.timeout))
    body.update({key: value for key, value in optional if value is not None})
    if args.header and args.token_exchange:
        raise CliError("give --header or --token-exchange, not both")
    if args.header:
        name, sep, value = args.header.partition(":")
        if not sep:
            raise CliError("--header takes NAME:VALUE")
        body["credential"] = {
            "type": "static_header",
            "header": name.strip(),
            "value": _secret_value(value.strip()),
        }
    elif args.token_exchange:
        body["credential"] = {"type": "token_exchange"}
    if args.no_prefix:
        body["prefix_tools"] = False
    _print_server(call(args, "POST", "/mcp-servers", json=body).json())


def _print_server(record: dict[str, Any]) -> None:
    # An admin reads the whole record; anyone else a view without the URL,
    # the command or tool states (it lists only the tools they may call).
    command = record.get("command")
    where = record.get("url") or (
        " ".join([command["command"], *command["args"]]) if command else ""
    )
    status = record["health"]["status"]
    print(f"{record['id']:<20} {status:<9} {record['transport']:<5} {where}".rstrip())
    for tool in record["tools"]:
        flags = ", ".join(sorted({f["kind"] for f in tool.get("flags", ())}))
        gone = "" if tool.get("available", True) else " (gone)"
        state = tool.get("state", "approved")
        print(f"  {tool['namespaced']:<40} {state:<11}{gone} {flags}".rstrip())


def _mcp_list(args: argparse.Namespace) -> int:
    items = call(args, "GET", "/mcp-servers").json()["items"]
    for record in items:
        _print_server(record)
    if not items:
        print("no MCP servers yet: switchboard mcp add NAME URL")
    return 0


def _mcp_show(args: argparse.Namespace) -> int:
    print_json(call(args, "GET", f"/mcp-servers/{args.id}").json())
    return 0


def _mcp_remove(args: argparse.Namespace) -> int:
    call(args, "DELETE", f"/mcp-servers/{args.id}")
    print(f"removed {args.id}")
    return 0


def _mcp_refresh(args: argparse.Namespace) -> int:
    result = call(args, "POST", f"/mcp-servers/{args.id}/refresh").json()
    for change in ("added", "changed", "removed"):
        if result[change]:
            print(f"{change}: {', '.join(result[change])}")
    _print_server(result["server"])
    return 0


def _mcp_approve(args: argparse.Namespace) -> int:
    body = {"digest": args.digest} if args.digest else {}
    path = f"/mcp-servers/{args.id}/tools/{args.tool}/approve"
    tool = call(args, "POST", path, json=body).json()
    print(f"approved {tool['namespaced']} at {tool['digest']}")
    return 0


def _secret_value(value: str) -> str:
    """A credential value given as is, as @file or as $ENVVAR (kept out of shell history)."""
    if value.startswith("@"):
        return Path(value[1:]).read_text().strip()
    if value.startswith("$"):
        found = os.environ.get(value[1:])
        if found is None:
            raise CliError(f"{value}: no such environment variable")
        return found
    return value

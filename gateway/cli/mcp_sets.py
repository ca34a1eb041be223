"""`switchboard mcp sets ...`: virtual MCP servers (`/mcp-sets`, served at
`/mcp/{name}`), over the HTTP API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from gateway.cli.common import CliError, call, gateway_options, print_json


def register(mcp: Any) -> None:
    sets = mcp.add_parser(
        "sets", help="virtual MCP servers: named tool sets served at /mcp/{name}"
    ).add_subparsers(title="mcp sets commands")
    listed = sets.add_parser("list", help="list the sets")
    listed.set_defaults(run=_list)
    shown = sets.add_parser("show", help="show one set")
    shown.add_argument("name", help="the set's name")
    shown.set_defaults(run=_show)
    put = sets.add_parser(
        "put",
        help="define or replace a set (admin): from --file, or from the options",
        description="A tool is in the set when any selector takes it; the caller's policy "
        "still decides inside it. Example: switchboard mcp sets put ops --title 'Ops' "
        "--server crm --tag inventory --tool 'tickets__*'",
    )
    put.add_argument("name", help="served at /mcp/NAME (lowercase letters, digits, -)")
    put.add_argument("--file", type=Path, help="a YAML or JSON set (as PUT /mcp-sets/NAME takes)")
    put.add_argument("--title", help="the server's name to clients")
    put.add_argument("--description", help="what the set is for, shown to clients")
    put.add_argument("--instructions", help="told to clients at initialize")
    put.add_argument("--icon", help="an https URL of the set's icon")
    put.add_argument("--server", action="append", default=[], help="every tool of this server")
    put.add_argument("--agent", action="append", default=[], help="every skill of this agent")
    put.add_argument("--tag", action="append", default=[], help="agents' skills with this tag")
    put.add_argument(
        "--tool", action="append", default=[], help="a tool name or pattern ('crm__*')"
    )
    put.add_argument(
        "--tool-search",
        choices=("off", "on", "only"),
        help="switchboard__search_tools beside the tools (on), or instead of them (only)",
    )
    put.set_defaults(run=_put)
    removed = sets.add_parser("remove", help="remove a set (admin)")
    removed.add_argument("name", help="the set's name")
    removed.set_defaults(run=_remove)
    for command in (listed, shown, put, removed):
        gateway_options(command)


def _print(record: dict[str, Any]) -> None:
    chosen = record.get("select") or {}  # a non-admin reads no selection
    picks = [
        *(f"server {s}" for s in chosen.get("servers", ())),
        *(f"agent {a}" for a in chosen.get("agents", ())),
        *(f"tag {t}" for t in chosen.get("tags", ())),
        *(f"tool {t}" for t in chosen.get("tools", ())),
    ]
    print(f"/mcp/{record['name']:<24} {record['title']}")
    if record.get("tool_search", "off") != "off":
        print(f"  tool search: {record['tool_search']}")
    for pick in picks:
        print(f"  {pick}")


def _list(args: argparse.Namespace) -> int:
    items = call(args, "GET", "/mcp-sets").json()["items"]
    if not items:
        print("no sets")
    for record in items:
        _print(record)
    return 0


def _show(args: argparse.Namespace) -> int:
    print_json(call(args, "GET", f"/mcp-sets/{args.name}").json())
    return 0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is not None:
        try:
            loaded = yaml.safe_load(args.file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"{args.file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise CliError(f"{args.file}: a set is a mapping (title, select, ...)")
        # The command line's NAME is the one; what `show` adds is not a spec.
        for shown in ("name", "created_at", "updated_at", "updated_by"):
            loaded.pop(shown, None)
        return loaded
    if not args.title:
        raise CliError("give --title (or --file)")
    spec: dict[str, Any] = {
        "title": args.title,
        "select": {
            "servers": args.server,
            "agents": args.agent,
            "tags": args.tag,
            "tools": args.tool,
        },
    }
    for key in ("description", "instructions", "icon", "tool_search"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    return spec


def _put(args: argparse.Namespace) -> int:
    answer = call(args, "PUT", f"/mcp-sets/{args.name}", json=_spec(args))
    print("created" if answer.status_code == 201 else "replaced", end=" ")
    _print(answer.json())
    return 0


def _remove(args: argparse.Namespace) -> int:
    call(args, "DELETE", f"/mcp-sets/{args.name}")
    print(f"removed /mcp/{args.name}")
    return 0

"""`switchboard holds`: what the coordination rules keep in force, over the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from gateway.cli.common import call, gateway_options


def register(commands: Any) -> None:
    holds = commands.add_parser(
        "holds", help="holds, cooldowns, leases and budgets of the coordination rules"
    ).add_subparsers(title="holds commands")
    holds_list = holds.add_parser("list", help="what is in force, per entity")
    holds_list.add_argument("--entity", help="an entity (customer) or one key (customer:C-1042)")
    holds_list.add_argument("--rule", help="one rule's only")
    holds_list.set_defaults(run=_holds_list)
    holds_release = holds.add_parser("release", help="end what a rule keeps for one key")
    holds_release.add_argument("rule", help="the rule's name (as `holds list` shows it)")
    holds_release.add_argument("key", help="the key it keeps something for")
    holds_release.set_defaults(run=_holds_release)
    for sub in (holds_list, holds_release):
        gateway_options(sub)


def _holds_list(args: argparse.Namespace) -> int:
    params = {k: v for k, v in {"entity": args.entity, "rule": args.rule}.items() if v}
    items = call(args, "GET", "/coordination/holds", params=params).json()["items"]
    for item in items:
        by = item["opened_by"]
        calls = "call" if item["count"] == 1 else "calls"
        count = f" {item['count']} {calls}" if item["kind"] == "budget" else ""
        print(
            f"{item['entity']}:{item['key']:<20} {item['rule']:<20} {item['kind']:<9}{count} "
            f"until {item['until'][:19]}  (by {by['agent']} {by['action'] or ''})"
        )
    if not items:
        print("nothing in force")
    return 0


def _holds_release(args: argparse.Namespace) -> int:
    path = f"/coordination/holds/{quote(args.rule, safe='')}/{quote(args.key, safe='')}"
    released = call(args, "DELETE", path).json()
    print(f"released {released['rule']} for {released['key']}")
    return 0

"""`switchboard connections`: connected accounts at upstreams (`user_oauth`), over
the HTTP API -- the caller's own, or everyone's for an admin (``--all``)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from gateway.cli.common import call, gateway_options


def register(commands: Any) -> None:
    connections = commands.add_parser(
        "connections", help="accounts users connected at upstreams (user_oauth)"
    ).add_subparsers(title="connections commands")
    listed = connections.add_parser("list", help="your connections (--all: everyone's, admins)")
    listed.add_argument("--all", action="store_true", help="every user's (admins only)")
    listed.add_argument("--upstream", help="one upstream's only")
    listed.set_defaults(run=_list)
    revoke = connections.add_parser(
        "revoke", help="remove a connection; its tokens are revoked at the upstream"
    )
    revoke.add_argument("id", help="the connection's id (as `connections list` shows it)")
    revoke.set_defaults(run=_revoke)
    for sub in (listed, revoke):
        gateway_options(sub)


def _list(args: argparse.Namespace) -> int:
    params: dict[str, str] = {"all": "true"} if args.all else {}
    if args.upstream:
        params["upstream"] = args.upstream
    items = call(args, "GET", "/connections", params=params).json()["items"]
    for item in items:
        expires = (item["expires_at"] or "no expiry")[:19]
        print(
            f"{item['id']:<18} {item['upstream']:<20} {item['subject']} ({item['issuer']})  "
            f"scope {item['scope'] or '-'}  until {expires}"
        )
    if not items:
        print("no connections")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    call(args, "DELETE", f"/connections/{quote(args.id, safe='')}")
    print(f"removed {args.id}; its tokens were revoked where the upstream allows it")
    return 0

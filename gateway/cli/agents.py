"""`switchboard agents`: the agent registry, over the gateway's HTTP API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    CliError,
    call,
    gateway_options,
    print_json,
    read_document,
)


def register(commands: Any) -> None:
    agents = commands.add_parser("agents", help="manage registered agents").add_subparsers(
        title="agents commands"
    )
    add = agents.add_parser(
        "add", help="register an agent by card URL (or --file for an inline card)"
    )
    add.add_argument("url", nargs="?", help="the agent's base URL or full card URL")
    add.add_argument("--file", type=Path, help="register this card JSON inline instead")
    add.add_argument("--id", help="slug to register under (default: from the card's name)")
    add.add_argument(
        "--resource", help="audience of tokens minted for it (default: its first interface URL)"
    )
    add.set_defaults(run=_agents_add)
    lister = agents.add_parser("list", help="list / search agents")
    lister.add_argument("--q", help="free text over names, descriptions and skills")
    lister.add_argument("--skill", help="only agents with this skill id")
    lister.add_argument("--tag", help="only agents with a skill of this tag")
    lister.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    lister.add_argument("--cursor", help="continue a previous listing")
    lister.set_defaults(run=_agents_list)
    show = agents.add_parser("show", help="show one agent")
    show.add_argument("id", help="the agent's id (as `agents list` shows it)")
    show.set_defaults(run=_agents_show)
    remove = agents.add_parser("remove", help="remove an agent")
    remove.add_argument("id", help="the agent's id")
    remove.set_defaults(run=_agents_remove)
    creds = agents.add_parser(
        "credentials", help="issue the credential an agent uses at /oauth/token"
    )
    creds.add_argument("id", help="the agent's id")
    creds.add_argument("--jwks", type=Path, help="the agent's public JWKS (private_key_jwt)")
    creds.add_argument(
        "--secret-file",
        type=Path,
        help="write the client secret to this file (mode 600) instead of printing it: "
        "an agent started with its *_CLIENT_SECRET_FILE reads it from there",
    )
    creds.set_defaults(run=_agents_credentials)
    gateway_options(add)
    gateway_options(lister)
    gateway_options(show)
    gateway_options(remove)
    gateway_options(creds)


def _agents_add(args: argparse.Namespace) -> int:
    if args.url and args.file:
        raise CliError("give a URL or --file, not both")
    if not args.url and not args.file:
        raise CliError("give the agent's URL, or --file with its card (JSON or YAML)")
    body: dict[str, Any] = {"card_url": args.url}
    if args.file:
        card = read_document(args.file, "--file")
        if not isinstance(card, dict):
            raise CliError(f"--file {args.file}: an agent card is a JSON object, not {_kind(card)}")
        body = {"card": card}
    if args.id:
        body["id"] = args.id
    if args.resource:
        body["resource"] = args.resource
    try:
        answer = call(args, "POST", "/agents", json=body)
    except CliError as exc:
        if args.url and "HTTP 502" in str(exc):
            # The agent is not there (yet): the usual first-time slip.
            raise CliError(
                f"{exc}\nis the agent running at {args.url}? Start it first; the examples "
                "run with e.g. `python examples/support_agent/agent.py --port 9101` "
                "(examples/README.md)"
            ) from None
        raise
    print_json(answer.json())
    return 0


def _agents_list(args: argparse.Namespace) -> int:
    wanted = {"q": args.q, "skill": args.skill, "tag": args.tag, "cursor": args.cursor}
    params = {k: v for k, v in wanted.items() if v}
    params["limit"] = str(args.limit)
    page = call(args, "GET", "/agents", params=params).json()
    if page["items"]:
        print(f"{'ID':<24} {'HEALTH':<9} {'SIGNED':<8} {'PROTOCOL':<8} NAME  [SKILLS]")
    for agent in page["items"]:
        skills = ", ".join(s["id"] for s in agent["skills"])
        print(
            f"{agent['id']:<24} {agent['health']['status']:<9} {agent['signature']['status']:<8} "
            f"A2A {agent['protocol_version']:<4} {agent['name']}  [{skills}]"
        )
    if page.get("next_cursor"):
        print(f"(more: --cursor {page['next_cursor']})")
    if not page["items"]:
        print("no agents" + (" match" if len(params) > 1 else " yet: switchboard agents add URL"))
    return 0


def _agents_show(args: argparse.Namespace) -> int:
    print_json(call(args, "GET", f"/agents/{args.id}").json())
    return 0


def _agents_remove(args: argparse.Namespace) -> int:
    call(args, "DELETE", f"/agents/{args.id}")
    print(f"removed {args.id}")
    return 0


def _agents_credentials(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"method": "client_secret"}
    if args.jwks:
        body = {"method": "private_key_jwt", "jwks": read_document(args.jwks, "--jwks")}
    if args.secret_file and args.jwks:
        raise CliError("--secret-file is for a client secret, not with --jwks")
    info = call(args, "POST", f"/agents/{args.id}/credentials", json=body).json()
    secret = info.get("client_secret")
    if secret and args.secret_file:
        _write_secret(args.secret_file, secret)
        print_json({**info, "client_secret": f"(written to {args.secret_file})"})
        return 0
    print_json(info)
    if secret:
        print("store the client_secret now: it is not shown again", file=sys.stderr)
    return 0


def _write_secret(path: Path, secret: str) -> None:
    """Only the owner may read it; an existing file is replaced (a new secret
    replaces the agent's old one at the gateway too)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(secret + "\n")
    except OSError as exc:
        raise CliError(
            f"cannot write {path}: {exc.strerror}; the new secret is not stored "
            "anywhere: issue another"
        ) from None


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "empty"}.get(
        type(value), type(value).__name__
    )

"""`switchboard` command line: serve, db, token, agents.

Admin commands talk to the running gateway over its HTTP API, like any other
client; only `serve`, `db upgrade` and `token issue` touch the data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from gateway import db, runstate
from gateway.keystore import load_active_key
from gateway.settings import ConfigError, Settings
from policies.keys import KeySealError
from policies.scopes import ADMIN_SCOPE, ScopeSyntaxError, parse_scopes
from policies.tokens import DEV_CLIENT_ID, mint_access_token

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DEV_TOKEN_TTL = 30 * 86400


class CliError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
        return result
    except (CliError, ConfigError, KeySealError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"switchboard: invalid settings:\n{exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="A2A/MCP interoperability gateway"
    )
    commands = parser.add_subparsers(title="commands")

    def settings_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="YAML settings file (also SWITCHBOARD_CONFIG)")
        p.add_argument(
            "--data-dir", type=Path, help="where SQLite and run state live (default ./data)"
        )

    serve = commands.add_parser("serve", help="run the gateway")
    settings_options(serve)
    serve.add_argument(
        "--dev", action="store_true", default=None, help="development mode (never in production)"
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    database = commands.add_parser("db", help="database maintenance").add_subparsers(
        title="db commands"
    )
    upgrade = database.add_parser("upgrade", help="apply pending schema migrations")
    settings_options(upgrade)
    upgrade.set_defaults(run=_db_upgrade)

    token = commands.add_parser("token", help="tokens").add_subparsers(title="token commands")
    issue = token.add_parser(
        "issue", help="print a token from the dev issuer (accepted only by a --dev gateway)"
    )
    settings_options(issue)
    issue.add_argument("--sub", required=True, help="the user the token speaks for")
    issue.add_argument(
        "--scope", default="", help='space-separated scopes, e.g. "crm:read orders:write"'
    )
    issue.add_argument("--ttl", default="1h", help="lifetime: 3600, 30m, 1h, 2d (default 1h)")
    issue.set_defaults(run=_token_issue)

    agents = commands.add_parser("agents", help="manage registered agents").add_subparsers(
        title="agents commands"
    )
    add = agents.add_parser(
        "add", help="register an agent by card URL (or --file for an inline card)"
    )
    add.add_argument("url", nargs="?", help="the agent's base URL or full card URL")
    add.add_argument("--file", type=Path, help="register this card JSON inline instead")
    add.add_argument("--id", help="slug to register under (default: from the card's name)")
    add.set_defaults(run=_agents_add)
    lister = agents.add_parser("list", help="list / search agents")
    lister.add_argument("--q", help="free text over names, descriptions and skills")
    lister.add_argument("--skill")
    lister.add_argument("--tag")
    lister.add_argument("--limit", type=int, default=50)
    lister.add_argument("--cursor", help="continue a previous listing")
    lister.set_defaults(run=_agents_list)
    show = agents.add_parser("show", help="show one agent")
    show.add_argument("id")
    show.set_defaults(run=_agents_show)
    remove = agents.add_parser("remove", help="remove an agent")
    remove.add_argument("id")
    remove.set_defaults(run=_agents_remove)
    for sub in (add, lister, show, remove):
        settings_options(sub)
        sub.add_argument("--gateway", help="gateway URL (default: the running one in --data-dir)")
        sub.add_argument(
            "--token", help="bearer token (default $SWITCHBOARD_TOKEN, else a dev token)"
        )
    return parser


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.load(args.config, data_dir=args.data_dir, **overrides)


# serve / db ------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    settings = _settings(args, dev=args.dev, host=args.host, port=args.port)
    problems = settings.insecurities()
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CliError(
            f"refusing to start with insecure settings:\n{lines}\n(use --dev for local development)"
        )
    if settings.dev:
        print(
            "switchboard: DEV MODE - dev tokens accepted, loopback agents allowed", file=sys.stderr
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        proxy_headers=False,
    )
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> None:
        engine = db.create_engine(settings.effective_database_url)
        try:
            await db.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("database is up to date")
    return 0


# tokens ---------------------------------------------------------------------


def parse_ttl(value: str) -> int:
    match = _TTL.match(value.strip())
    if not match:
        raise CliError(f"--ttl {value!r}: use seconds or a number with s, m, h or d")
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if not 0 < seconds <= MAX_DEV_TOKEN_TTL:
        raise CliError(f"--ttl must be between 1s and {MAX_DEV_TOKEN_TTL // 86400}d")
    return seconds


def _token_issue(args: argparse.Namespace) -> int:
    try:
        scopes = parse_scopes(args.scope)
    except ScopeSyntaxError as exc:
        raise CliError(str(exc)) from None
    print(issue_dev_token(_settings(args), args.sub, scopes, parse_ttl(args.ttl)))
    return 0


def issue_dev_token(
    settings: Settings, subject: str, scopes: frozenset[str], ttl_seconds: int
) -> str:
    """A token from the dev issuer, signed with the gateway key in the data dir / database.

    It names the issuer and audience the running gateway uses (from its run
    state), so it works while the server runs, whatever port it was given.
    """
    running = runstate.read(settings.data_dir)
    issuer = settings.public_url or running.get("public_url") or settings.effective_public_url
    audience = settings.resource_id or running.get("resource_id") or issuer

    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    key = asyncio.run(load_active_key(settings.effective_database_url, secret))
    return mint_access_token(
        key,
        issuer=issuer,
        subject=subject,
        audience=audience,
        scopes=scopes,
        ttl_seconds=ttl_seconds,
        client_id=DEV_CLIENT_ID,
    )


# agents (over HTTP) ------------------------------------------------------------


def _client(args: argparse.Namespace) -> httpx.Client:
    settings = _settings(args)
    running = runstate.read(settings.data_dir)
    base = args.gateway or os.environ.get("SWITCHBOARD_GATEWAY_URL") or running.get("public_url")
    base = base or settings.effective_public_url
    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    if not token:
        # Local convenience: a short-lived admin token from the dev issuer. Only
        # a --dev gateway accepts it; any other answers 401 and says so.
        token = issue_dev_token(settings, "switchboard-cli", frozenset({ADMIN_SCOPE}), 300)
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with _client(args) as client:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title")
            errors = problem.get("errors") or []
        except ValueError:
            detail, errors = response.text, []
        lines = [f"HTTP {response.status_code}: {detail}"] + [
            f"  {e['field']}: {e['message']}" for e in errors
        ]
        raise CliError("\n".join(lines))
    return response


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _agents_add(args: argparse.Namespace) -> int:
    if bool(args.url) == bool(args.file):
        raise CliError("give a URL or --file, not both")
    body: dict[str, Any] = (
        {"card_url": args.url} if args.url else {"card": json.loads(args.file.read_text())}
    )
    if args.id:
        body["id"] = args.id
    _print_json(_call(args, "POST", "/agents", json=body).json())
    return 0


def _agents_list(args: argparse.Namespace) -> int:
    wanted = {"q": args.q, "skill": args.skill, "tag": args.tag, "cursor": args.cursor}
    params = {k: v for k, v in wanted.items() if v}
    params["limit"] = str(args.limit)
    page = _call(args, "GET", "/agents", params=params).json()
    for agent in page["items"]:
        skills = ", ".join(s["id"] for s in agent["skills"])
        print(
            f"{agent['id']:<24} {agent['health']['status']:<9} {agent['signature']['status']:<8} "
            f"A2A {agent['protocol_version']:<4} {agent['name']}  [{skills}]"
        )
    if page.get("next_cursor"):
        print(f"(more: --cursor {page['next_cursor']})")
    return 0


def _agents_show(args: argparse.Namespace) -> int:
    _print_json(_call(args, "GET", f"/agents/{args.id}").json())
    return 0


def _agents_remove(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/agents/{args.id}")
    print(f"removed {args.id}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

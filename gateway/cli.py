"""`switchboard` command line: serve, db, keys, token, agents, mcp, policy, audit.

Admin commands talk to the running gateway over its HTTP API, like any other
client; only `serve`, `db upgrade`, `keys` and `token issue` touch the
database, and `policy check` only reads a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from gateway.delegation.keystore import KeyStore, load_active_key
from gateway.settings import ConfigError, Settings
from gateway.storage import db, runstate
from policies.keys import KeySealError
from policies.policy_file import PolicyError, load_policy
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

    demo = commands.add_parser(
        "demo",
        help="start the gateway and three sample agents, and play a cross-vendor delegation",
    )
    demo.add_argument(
        "--data-dir", type=Path, help="keep the gateway's data here (default: a temp dir)"
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave everything running afterwards, to explore"
    )
    demo.set_defaults(run=_demo)

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
    add.add_argument(
        "--resource", help="audience of tokens minted for it (default: its first interface URL)"
    )
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
    creds = agents.add_parser(
        "credentials", help="issue the credential an agent uses at /oauth/token"
    )
    creds.add_argument("id")
    creds.add_argument("--jwks", type=Path, help="the agent's public JWKS (private_key_jwt)")
    creds.set_defaults(run=_agents_credentials)

    mcp = commands.add_parser("mcp", help="manage federated MCP servers").add_subparsers(
        title="mcp commands"
    )
    mcp_add = mcp.add_parser(
        "add", help="register an MCP server by Streamable HTTP URL, or --stdio command line"
    )
    mcp_add.add_argument("name", help="a display name (the id is derived from it)")
    mcp_add.add_argument("url", nargs="?", help="the server's Streamable HTTP endpoint")
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
    mcp_add.set_defaults(run=_mcp_add)
    mcp_list = mcp.add_parser("list", help="list MCP servers and their tools")
    mcp_list.set_defaults(run=_mcp_list)
    mcp_show = mcp.add_parser("show", help="show one MCP server")
    mcp_show.add_argument("id")
    mcp_show.set_defaults(run=_mcp_show)
    mcp_remove = mcp.add_parser("remove", help="remove an MCP server")
    mcp_remove.add_argument("id")
    mcp_remove.set_defaults(run=_mcp_remove)
    mcp_refresh = mcp.add_parser("refresh", help="list a server's tools now")
    mcp_refresh.add_argument("id")
    mcp_refresh.set_defaults(run=_mcp_refresh)
    mcp_approve = mcp.add_parser("approve", help="approve a tool's current definition")
    mcp_approve.add_argument("id")
    mcp_approve.add_argument("tool", help="the namespaced tool name")
    mcp_approve.add_argument("--digest", help="the digest you reviewed (refused if it changed)")
    mcp_approve.set_defaults(run=_mcp_approve)

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
    keys = commands.add_parser("keys", help="the gateway's signing keys").add_subparsers(
        title="keys commands"
    )
    rotate = keys.add_parser("rotate", help="sign with a new key; keep the old one published")
    settings_options(rotate)
    rotate.add_argument(
        "--retire-after",
        type=int,
        help="seconds the old key stays published (default: the longest delegated "
        "token lifetime plus clock leeway and replica catch-up)",
    )
    rotate.set_defaults(run=_keys_rotate)
    keys_list = keys.add_parser("list", help="keys that are published")
    settings_options(keys_list)
    keys_list.set_defaults(run=_keys_list)

    policy = commands.add_parser("policy", help="delegation policy").add_subparsers(
        title="policy commands"
    )
    check = policy.add_parser("check", help="validate a policy file (errors name the line)")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_policy_check)
    explain = policy.add_parser(
        "explain", help="what the running gateway would decide for a delegation, and why"
    )
    explain.add_argument("--scopes", default="", help="the user's scopes, space-separated")
    explain.add_argument("--chain", default="", help="agents that already acted: a,b")
    explain.add_argument("--target", required=True, help="the agent delegated to")
    explain.add_argument("--skill", help="the skill asked for")
    explain.add_argument("--tool", help="the MCP tool asked for")
    explain.add_argument("--requested", help="scopes asked for (token exchange)")
    explain.set_defaults(run=_policy_explain)

    audit = commands.add_parser("audit", help="the decision log").add_subparsers(
        title="audit commands"
    )
    tail = audit.add_parser("tail", help="the latest decisions; --follow for new ones")
    tail.add_argument("-n", type=int, default=20, help="how many to show first (default 20)")
    tail.add_argument("--follow", "-f", action="store_true")
    tail.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tail.add_argument("--max-polls", type=int, default=0, help=argparse.SUPPRESS)
    tail.set_defaults(run=_audit_tail)
    export = audit.add_parser("export", help="every matching decision as JSON Lines")
    export.add_argument("--out", type=Path, help="write here instead of stdout")
    export.set_defaults(run=_audit_export)
    for sub in (tail, export):
        sub.add_argument("--user")
        sub.add_argument("--agent")
        sub.add_argument("--decision", choices=["allow", "deny"])
        sub.add_argument("--since", help="ISO 8601 time")
        sub.add_argument("--until", help="ISO 8601 time")

    approvals = commands.add_parser(
        "approvals", help="calls waiting for a human's approval"
    ).add_subparsers(title="approvals commands")
    approvals_list = approvals.add_parser("list", help="pending first, then decided")
    approvals_list.add_argument("--state", choices=["pending", "approved", "rejected", "withdrawn"])
    approvals_list.add_argument("--agent", help="the target agent or MCP server")
    approvals_list.add_argument("--user", help="who asked (subject)")
    approvals_list.add_argument("--limit", type=int, default=50)
    approvals_list.set_defaults(run=_approvals_list)
    approvals_show = approvals.add_parser("show", help="who asked, for what, and why")
    approvals_show.add_argument("id")
    approvals_show.set_defaults(run=_approvals_show)
    approvals_decide = []
    for verb in ("approve", "reject"):
        decide = approvals.add_parser(verb, help=f"{verb} a pending call")
        decide.add_argument("id")
        decide.add_argument("--reason", help="recorded, and shown to the requester")
        decide.set_defaults(run=_approvals_decide, decision=verb)
        approvals_decide.append(decide)

    mcp_commands = (mcp_add, mcp_list, mcp_show, mcp_remove, mcp_refresh, mcp_approve)
    approval_commands = (approvals_list, approvals_show, *approvals_decide)
    for sub in (
        add,
        lister,
        show,
        remove,
        creds,
        explain,
        tail,
        export,
        *mcp_commands,
        *approval_commands,
    ):
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
    if settings.policy_file is not None:
        # Fail here with the file and line, not in the lifespan with a traceback.
        try:
            load_policy(settings.policy_file)
        except PolicyError as exc:
            raise CliError(f"the policy file cannot be used:\n{exc}") from None
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


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo.servers import DemoError
    from gateway.demo.story import run

    try:
        return run(args.data_dir, args.keep, lambda line: print(line, flush=True))
    except DemoError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("switchboard demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> None:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret):
            pass

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

    key = asyncio.run(load_active_key(settings.effective_database_url, settings.sealing_secret))
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
    if args.resource:
        body["resource"] = args.resource
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


def _agents_credentials(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"method": "client_secret"}
    if args.jwks:
        body = {"method": "private_key_jwt", "jwks": json.loads(args.jwks.read_text())}
    info = _call(args, "POST", f"/agents/{args.id}/credentials", json=body).json()
    _print_json(info)
    if info.get("client_secret"):
        print("store the client_secret now: it is not shown again", file=sys.stderr)
    return 0


# mcp (over HTTP) -----------------------------------------------------------------


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


def _mcp_stdio(args: argparse.Namespace) -> int:
    import anyio

    from gateway.mcp.stdio import bridge

    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    if not token:
        raise CliError("give --token or set SWITCHBOARD_TOKEN")
    anyio.run(bridge, args.url, token)
    return 0


def _mcp_add(args: argparse.Namespace) -> int:
    command = shlex.split(args.stdio) if args.stdio else []
    if bool(args.url) == bool(command):
        raise CliError("give a URL or --stdio, not both")
    body: dict[str, Any] = {"name": args.name}
    if args.url:
        body["url"] = args.url
    else:
        body["command"], body["args"] = command[0], command[1:]
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
    _print_server(_call(args, "POST", "/mcp-servers", json=body).json())
    return 0


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
    for record in _call(args, "GET", "/mcp-servers").json()["items"]:
        _print_server(record)
    return 0


def _mcp_show(args: argparse.Namespace) -> int:
    _print_json(_call(args, "GET", f"/mcp-servers/{args.id}").json())
    return 0


def _mcp_remove(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/mcp-servers/{args.id}")
    print(f"removed {args.id}")
    return 0


def _mcp_refresh(args: argparse.Namespace) -> int:
    result = _call(args, "POST", f"/mcp-servers/{args.id}/refresh").json()
    for change in ("added", "changed", "removed"):
        if result[change]:
            print(f"{change}: {', '.join(result[change])}")
    _print_server(result["server"])
    return 0


def _mcp_approve(args: argparse.Namespace) -> int:
    body = {"digest": args.digest} if args.digest else {}
    path = f"/mcp-servers/{args.id}/tools/{args.tool}/approve"
    tool = _call(args, "POST", path, json=body).json()
    print(f"approved {tool['namespaced']} at {tool['digest']}")
    return 0


# keys ---------------------------------------------------------------------------


def _keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    retire_after = args.retire_after
    if retire_after is None:
        retire_after = (
            settings.delegated_token_ttl_seconds
            + settings.token_leeway_seconds
            + settings.key_recheck_seconds
            + 60
        )
    if retire_after < 0:
        raise CliError("--retire-after must not be negative")

    async def run() -> tuple[str, list[str]]:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
            store = KeyStore(engine, settings.sealing_secret)
            await store.active_key()  # opens the current key: a wrong secret fails here
            key, old = await store.rotate(retire_after)
            return key.kid, old

    kid, old = asyncio.run(run())
    print(f"signing with {kid}")
    for retired in old:
        print(f"{retired} stays published for {int(retire_after)} s, then retires")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> list[Any]:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
            return await KeyStore(engine, settings.sealing_secret).list_keys()

    for info in asyncio.run(run()):
        state = "active" if info.active else f"retires {info.retires_at:%Y-%m-%d %H:%M:%S}Z"
        print(f"{info.kid}  {info.alg}  created {info.created_at:%Y-%m-%d %H:%M:%S}Z  {state}")
    return 0


# policy ---------------------------------------------------------------------------


def _policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.file}: ok ({len(policy.agents)} agent rules)")
    return 0


def _policy_explain(args: argparse.Namespace) -> int:
    if args.skill and args.tool:
        raise CliError("give --skill or --tool, not both")
    body: dict[str, Any] = {
        "user_scopes": args.scopes,
        "chain": [a for a in args.chain.split(",") if a],
        "target": args.target,
        "action": args.skill or args.tool,
        "kind": "tool" if args.tool else "skill",
    }
    if args.requested is not None:
        body["requested_scopes"] = args.requested
    result = _call(args, "POST", "/policies/explain", json=body).json()
    verdict = "ALLOW" if result["decision"] == "allow" else "DENY"
    print(f"{verdict}  depth {result['depth']}  granted: {' '.join(result['granted_scopes'])}")
    if result["approval_required"]:
        print("  needs human approval")
    for reason in result["reasons"]:
        print(f"  - {reason}")
    print(f"  rules: {', '.join(result['rules'])}")
    return 0 if result["decision"] == "allow" else 1


# audit ------------------------------------------------------------------------------


def _audit_filters(args: argparse.Namespace) -> dict[str, str]:
    wanted = {
        "user": args.user,
        "agent": args.agent,
        "decision": args.decision,
        "since": args.since,
        "until": args.until,
    }
    return {k: v for k, v in wanted.items() if v}


def _audit_line(record: dict[str, Any]) -> str:
    chain = " > ".join(record["actors"])
    target = record["target"] or "-"
    if record["action"]:
        target += f"/{record['action']}"
    granted = " ".join(record["scopes_granted"]) or "-"
    return (
        f"{record['at']}  {record['decision']:<5} {record['event']:<15} {record['subject']}  "
        f"[{chain}] -> {target}  scopes: {granted}  {record['outcome']}  "
        f"{record['reasons'][0] if record['reasons'] else ''}"
    )


def _audit_tail(args: argparse.Namespace) -> int:
    filters = _audit_filters(args)
    page = _call(args, "GET", "/audit", params={**filters, "limit": str(max(1, args.n))}).json()
    newest_first = page["items"]
    for record in reversed(newest_first[: max(0, args.n)]):
        print(_audit_line(record), flush=True)
    last = newest_first[0]["id"] if newest_first else 0
    polls = 0
    while args.follow and (args.max_polls == 0 or polls < args.max_polls):
        polls += 1
        time.sleep(args.interval)
        newer = _call(
            args, "GET", "/audit", params={**filters, "after_id": str(last), "limit": "1000"}
        ).json()
        for record in newer["items"]:
            print(_audit_line(record), flush=True)
            last = record["id"]
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    params = {**_audit_filters(args), "format": "jsonl"}
    with _client(args) as client:
        try:
            with client.stream("GET", "/audit", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CliError(f"HTTP {response.status_code}: {response.text}")
                out = args.out.open("wb") if args.out else sys.stdout.buffer
                try:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                finally:
                    if args.out:
                        out.close()
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {client.base_url}: {exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _approvals_list(args: argparse.Namespace) -> int:
    wanted = {"state": args.state, "agent": args.agent, "user": args.user}
    params = {k: v for k, v in wanted.items() if v}
    params["limit"] = str(args.limit)
    page = _call(args, "GET", "/approvals", params=params).json()
    for item in page["items"]:
        action = item["tool"] or item["action"] or "-"
        print(
            f"{item['id']:<36} {item['state']:<9} {item['created_at'][:19]}  "
            f"{item['requested_by']['subject']} -> {item['target']} {action}"
        )
    if not page["items"]:
        print("no approvals")
    return 0


def _approvals_show(args: argparse.Namespace) -> int:
    _print_json(_call(args, "GET", f"/approvals/{args.id}").json())
    return 0


def _approvals_decide(args: argparse.Namespace) -> int:
    body = {"decision": args.decision, "reason": args.reason}
    decided = _call(args, "POST", f"/approvals/{args.id}", json=body).json()
    print(f"{decided['state']} {decided['id']}")
    return 0

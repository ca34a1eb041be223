"""`switchboard token issue`: a token from the dev issuer."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import (
    CliError,
    dev_token,
    settings_of,
    settings_options,
)
from policies.durations import DurationError, parse_duration
from policies.scopes import ScopeSyntaxError, parse_scopes

MAX_DEV_TOKEN_TTL = 30 * 86400


def register(commands: Any) -> None:
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


def parse_ttl(value: str) -> int:
    try:
        seconds = int(parse_duration(value, bare="s").total_seconds())
    except DurationError as exc:
        raise CliError(f"--ttl: {exc}") from None
    if not 0 < seconds <= MAX_DEV_TOKEN_TTL:
        raise CliError(f"--ttl must be between 1s and {MAX_DEV_TOKEN_TTL // 86400}d")
    return seconds


def _token_issue(args: argparse.Namespace) -> int:
    try:
        scopes = parse_scopes(args.scope)
    except ScopeSyntaxError as exc:
        raise CliError(str(exc)) from None
    print(dev_token(settings_of(args), args.sub, scopes, parse_ttl(args.ttl)))
    return 0

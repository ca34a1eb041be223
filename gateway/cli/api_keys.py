"""`switchboard keys create|list|revoke`: API keys, in the gateway's database.

The operator (whoever can open the database) grants what they like to a
service (``--service``, default: the key's ``--name``); never a key for a
user, which acts with the user's connected accounts and only the user makes
(`POST /api-keys`, the console). A key is printed once, on stdout; the
gateway keeps only its SHA-256 (`policies.api_keys`).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Coroutine
from typing import Any

from gateway.cli.common import CliError, on_database, settings_of, settings_options
from gateway.settings import Settings

OPERATOR_ISSUER = "urn:switchboard:operator"


def register(keys: Any) -> None:
    create = keys.add_parser("create", help="make an API key (printed once)")
    settings_options(create)
    create.add_argument("--name", required=True, help="what the key is for, e.g. ci-bot")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        help='scopes the key holds (repeat, or space-separated: "a:read b:write")',
    )
    create.add_argument("--expires", help="lifetime, e.g. 30d, 12h (default: never)")
    create.add_argument("--service", help="the service the key is (default: --name)")
    create.add_argument("--rate", help="the key's own rate limit, e.g. 10/s, 600/m")
    create.add_argument("--budget", help="what its calls may cost in all (the policy's prices)")
    create.set_defaults(run=_create)
    revoke = keys.add_parser("revoke", help="revoke an API key (by id or sk-sb-<id> prefix)")
    settings_options(revoke)
    revoke.add_argument("key", help="the key's id or prefix, as `keys list` shows it")
    revoke.set_defaults(run=_revoke)


def _on_keys(settings: Settings, work: Any) -> Any:
    # The core is imported by the commands that open it, not by every
    # `switchboard` invocation.
    from gateway.delegation.api_keys import ApiKeys
    from gateway.storage import db

    async def run() -> Any:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
            result: Coroutine[Any, Any, Any] = work(ApiKeys(engine))
            return await result

    return on_database(settings, run())


def _create(args: argparse.Namespace) -> int:
    from gateway.delegation.api_keys import ApiKeySpec, Creator
    from policies.api_keys import ApiKeyError, ApiKeyRefused

    settings = settings_of(args)
    try:
        spec = ApiKeySpec(
            name=args.name,
            scopes=" ".join(args.scope).split(),
            expires=args.expires,
            service=args.service or args.name,
            rate=args.rate,
            budget=args.budget,
        )
    except ValueError as exc:  # pydantic's, with every field it refused
        raise CliError(str(exc)) from None
    operator = Creator(f"cli:{getpass.getuser()}", OPERATOR_ISSUER, None)
    try:
        created = _on_keys(settings, lambda keys: keys.create(spec, operator))
    except (ApiKeyError, ApiKeyRefused) as exc:
        raise CliError(str(exc)) from None
    print(created.key)
    owner = "service " + created.owner_subject if created.service else created.owner_subject
    print(
        f"{created.prefix} ({created.name}) for {owner}, scopes {' '.join(created.scopes)}: "
        "store it now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from policies.api_keys import KEY_PREFIX

    key_id = args.key.strip().removeprefix(KEY_PREFIX).partition("_")[0]
    if not _on_keys(settings_of(args), lambda keys: keys.revoke(key_id)):
        raise CliError(f"no API key {args.key} that is not already revoked")
    print(f"revoked {KEY_PREFIX}{key_id}")
    return 0


def print_keys(args: argparse.Namespace) -> None:
    """The API keys, one a line (`keys list`)."""
    for info in _on_keys(settings_of(args), lambda keys: keys.listing()):
        owner = f"service {info.owner_subject}" if info.service else info.owner_subject
        state = "revoked" if info.revoked_at else "active"
        if info.expires_at and not info.revoked_at:
            state += f" until {info.expires_at:%Y-%m-%d %H:%M:%S}Z"
        used = f"{info.last_used_at:%Y-%m-%d %H:%M:%S}Z" if info.last_used_at else "never"
        extra = "".join(
            f"  {label} {value}"
            for label, value in (("rate", info.rate), ("budget", info.budget))
            if value
        )
        print(
            f"{info.prefix}  {info.name}  {owner}  {' '.join(info.scopes)}  {state}  "
            f"last used {used}{extra}"
        )

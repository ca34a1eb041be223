"""`switchboard keys`: the gateway's signing keys and its API keys, in its
database (the API keys' commands: `gateway.cli.api_keys`)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import api_keys
from gateway.cli.common import (
    CliError,
    on_database,
    settings_of,
    settings_options,
)


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys and signing keys").add_subparsers(
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
    keys_list = keys.add_parser("list", help="API keys, then the signing keys published")
    settings_options(keys_list)
    only = keys_list.add_mutually_exclusive_group()
    only.add_argument("--api", action="store_true", help="API keys only")
    only.add_argument("--signing", action="store_true", help="signing keys only")
    keys_list.set_defaults(run=_keys_list)
    api_keys.register(keys)


def _keys_rotate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
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

    # The key store is imported by the commands that open it, not by every
    # `switchboard` invocation.
    from gateway.delegation.keystore import KeyStore
    from gateway.storage import db

    async def run() -> tuple[str, list[str]]:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
            store = KeyStore(engine, settings.sealing_secret)
            await store.active_key()  # opens the current key: a wrong secret fails here
            key, old = await store.rotate(retire_after)
            return key.kid, old

    kid, old = on_database(settings, run())
    print(f"signing with {kid}")
    for retired in old:
        print(f"{retired} stays published for {int(retire_after)} s, then retires")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    if not args.signing:
        api_keys.print_keys(args)
    if args.api:
        return 0
    settings = settings_of(args)
    # The key store is imported by the commands that open it, not by every
    # `switchboard` invocation.
    from gateway.delegation.keystore import KeyStore
    from gateway.storage import db

    async def run() -> list[Any]:
        async with db.migrated(settings.effective_database_url, settings.sealing_secret) as engine:
            return await KeyStore(engine, settings.sealing_secret).list_keys()

    for info in on_database(settings, run()):
        state = "active" if info.active else f"retires {info.retires_at:%Y-%m-%d %H:%M:%S}Z"
        print(f"{info.kid}  {info.alg}  created {info.created_at:%Y-%m-%d %H:%M:%S}Z  {state}")
    return 0

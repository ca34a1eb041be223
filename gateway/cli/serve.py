"""`switchboard serve` and `switchboard db upgrade`: the gateway process and its schema."""

from __future__ import annotations

import argparse
import errno
import gc
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    CliError,
    on_database,
    settings_of,
    settings_options,
)
from gateway.settings import Settings
from gateway.settings.workers import rate_limits_problem
from policies.policy_file import PolicyError, load_policy


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    settings_options(serve)
    serve.add_argument(
        "--dev", action="store_true", default=None, help="development mode (never in production)"
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="gateway processes on the port (default 1; one per core; also SWITCHBOARD_WORKERS)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="how much the server logs (default info)",
    )
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default) or one JSON object per line, with the trace id",
    )
    serve.set_defaults(run=_serve, starts_server=True)

    database = commands.add_parser("db", help="database maintenance").add_subparsers(
        title="db commands"
    )
    upgrade = database.add_parser("upgrade", help="apply pending schema migrations")
    settings_options(upgrade)
    upgrade.set_defaults(run=_db_upgrade)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_of(
        args,
        dev=args.dev,
        host=args.host,
        port=args.port,
        log_format=args.log_format,
        workers=args.workers,
    )
    _check_settings(settings)
    _check_data_dir(settings.data_dir)
    _check_port(settings.host, settings.port)
    # The server's own modules are imported by the command that runs it, not
    # by every `switchboard` invocation (most only talk HTTP to a gateway),
    # and only once its settings are known to be good: a refusal is at once.
    import uvicorn

    from gateway.app import create_app
    from gateway.delegation.keystore import load_active_key
    from gateway.observability.logs import banner, log_config

    # Its modules are in, loaded with the collector off (`gateway.__main__`):
    # out of the collector's walks for good; it is on for the start and after.
    gc.freeze()
    gc.enable()
    # Reach the database (and bring its schema up to date) before the server
    # starts: an unreachable or missing database is one line, not a traceback
    # from inside the lifespan.
    on_database(settings, _upgrade(settings))
    if settings.dev:
        said = (
            "DEV MODE - dev tokens accepted, loopback agents allowed; console "
            f"{settings.effective_public_url}/ui (log in with any user name and scopes)"
        )
        print(banner(settings.log_format, said), file=sys.stderr)
    if settings.workers > 1:
        from gateway.cli import workers

        # The signing key too, before the workers start: two creating it at once would
        # both sign with their own until the next re-check.
        on_database(
            settings, load_active_key(settings.effective_database_url, settings.sealing_secret)
        )
        return workers.serve(
            settings,
            log_level=args.log_level,
            log_config=log_config(settings.log_format, args.log_level),
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        log_config=log_config(settings.log_format, args.log_level),
        proxy_headers=False,
        # A stream's client may never hang up: the drain is bounded (docs/operations.md).
        timeout_graceful_shutdown=settings.shutdown_drain_seconds,
    )
    return 0


def _check_settings(settings: Settings) -> None:
    """Refused before anything starts, in a line each: insecure settings, a
    policy file that cannot be used, tracing that cannot be set up."""
    from gateway.observability import tracing

    problems = settings.insecurities()
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CliError(
            f"refusing to start with insecure settings:\n{lines}\n(use --dev for local development)"
        )
    if settings.policy_file is not None:
        # Fail here with the file and line, not in the lifespan with a traceback.
        try:
            policy = load_policy(settings.policy_file)
        except PolicyError as exc:
            raise CliError(f"the policy file cannot be used:\n{exc}") from None
        problem = rate_limits_problem(settings.workers, settings.redis_url, policy)
        if problem:
            raise CliError(f"the policy file {settings.policy_file} cannot be used: {problem}")
    try:
        tracing.check()
    except tracing.TracingConfigError as exc:
        raise CliError(f"tracing cannot be set up: {exc}") from None


async def _upgrade(settings: Settings) -> None:
    from gateway.storage import db

    async with db.migrated(settings.effective_database_url, settings.sealing_secret):
        pass


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    on_database(settings, _upgrade(settings))
    print("database is up to date")
    return 0


def _check_data_dir(data_dir: Path) -> None:
    """The data directory (SQLite, run state) exists or can be made, and takes
    files: said as such, not as a database that is not running."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise CliError(
            f"the data directory {data_dir} cannot be written: {exc.strerror or exc} "
            "(choose another with --data-dir)"
        ) from None


def _check_port(host: str, port: int) -> None:
    """The address is free, found before any migration runs (uvicorn would
    find it only after the database work, with a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"{host}:{port} is already in use (another gateway?): pick another with --port"
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

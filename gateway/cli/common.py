"""What every command group shares: settings, and the HTTP client that talks to
the running gateway like any other client of its API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from gateway.settings import Settings
from gateway.storage import runstate
from policies.scopes import ADMIN_SCOPE

T = TypeVar("T")


class CliError(Exception):
    """One line for the user (what, where, what to do); `main` prints it, exit 2."""


def read_document(path: Path, what: str) -> Any:
    """A JSON (or, by its suffix, YAML) file the user named, or one line that
    says what is wrong with it and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{what} {path}: is a directory; give a file") from None
    except PermissionError:
        raise CliError(f"{what} {path}: permission denied") from None
    except UnicodeDecodeError:
        raise CliError(f"{what} {path}: not UTF-8 text") from None
    except OSError as exc:
        raise CliError(f"{what} {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise CliError(f"{what} {path}:{where} not valid YAML ({problem})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{what} {path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None


def output_file(path: Path, what: str) -> Path:
    """Refuse, before any work is done, a file that cannot be written."""
    if path.is_dir():
        raise CliError(f"{what} {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise CliError(f"{what} {path}: the directory {path.parent} does not exist")
    return path


def database_problem(exc: BaseException, url: str) -> str:
    """What went wrong reaching the database, without the password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except ArgumentError:
        return f"the database URL is not a URL: {url.split('://')[0]}://..."
    hint = "(set SWITCHBOARD_DATABASE_URL, e.g. postgresql://user@host:5432/db)"
    if isinstance(exc, NoSuchModuleError):
        return f"the database URL {shown} names an unsupported database {hint}"
    chain = _causes(exc)
    names = {type(c).__name__ for c in chain}
    cause = next((c for c in chain if isinstance(c, OSError)), None)
    if "InvalidCatalogNameError" in names:
        return (
            f"the database {parsed.database!r} does not exist on {parsed.host}:"
            f"{parsed.port or 5432}: create it (createdb {parsed.database}) or fix the URL {hint}"
        )
    if names & {"InvalidPasswordError", "InvalidAuthorizationSpecificationError"}:
        return f"the database at {shown} refused the credentials {hint}"
    if cause is not None or "CannotConnectNowError" in names:
        return f"cannot connect to the database at {shown}: is it running? {hint}"
    return f"the database at {shown} failed: {str(exc).splitlines()[0][:200]}"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what SQLAlchemy wrapped (``orig``) and their causes."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(chain) < 16:
        current = todo.pop()
        if current is None or current in chain:
            continue
        chain.append(current)
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return chain


def _is_database_failure(exc: BaseException) -> bool:
    # SQLAlchemy is imported by the commands that use the database, not by
    # every `switchboard` start: looked up only once something has failed.
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | OSError)


def on_database(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` (which uses the database); a database failure is one line."""
    try:
        return asyncio.run(work)
    except Exception as exc:
        if not _is_database_failure(exc):
            raise
        raise CliError(database_problem(exc, settings.effective_database_url)) from None


def dev_token(settings: Settings, subject: str, scopes: frozenset[str], ttl: int) -> str:
    """A token from the dev issuer whose key is in the gateway's database;
    refused where there is no gateway's database (the key would be made in a
    new one, and no gateway would accept the token)."""
    sqlite_file = settings.data_dir / "switchboard.db"
    if not settings.database_url and not sqlite_file.exists():
        raise CliError(
            f"no gateway's data in {settings.data_dir.resolve()} ({sqlite_file.name} is not "
            "there): give --data-dir of a gateway started with --dev, or --token"
        )
    # The core's modules only for the commands that mint a token themselves.
    from gateway.delegation.dev_tokens import issue_dev_token

    try:
        return issue_dev_token(settings, subject, scopes, ttl)
    except Exception as exc:
        if not _is_database_failure(exc):
            raise
        raise CliError(database_problem(exc, settings.effective_database_url)) from None


def settings_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML settings file (also SWITCHBOARD_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="where SQLite and run state live (default ./data)")


def gateway_options(p: argparse.ArgumentParser) -> None:
    """The options of a command that calls the running gateway's HTTP API."""
    settings_options(p)
    p.add_argument("--gateway", help="gateway URL (default: the running one in --data-dir)")
    p.add_argument("--token", help="bearer token (default $SWITCHBOARD_TOKEN, else a dev token)")


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.load(args.config, data_dir=args.data_dir, **overrides)


def gateway_client(args: argparse.Namespace) -> httpx.Client:
    settings = settings_of(args)
    running = runstate.read(settings.data_dir)
    base = args.gateway or os.environ.get("SWITCHBOARD_GATEWAY_URL") or running.get("public_url")
    base = base or settings.effective_public_url
    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    headers = {}
    if not token and (settings.database_url or (settings.data_dir / "switchboard.db").exists()):
        # Local convenience: a short-lived admin token from the dev issuer. Only
        # a --dev gateway accepts it; any other answers 401 and says so.
        token = dev_token(settings, "switchboard-cli", frozenset({ADMIN_SCOPE}), 300)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base, headers=headers, timeout=30.0)


def call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with gateway_client(args) as client:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the gateway at {client.base_url}: {exc}") from None
    return call_answer(response)


def call_answer(response: httpx.Response) -> httpx.Response:
    """``response`` if it succeeded; else its problem as a `CliError`."""
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title")
            errors = problem.get("errors") or []
        except ValueError:
            detail, errors = response.text, []
        lines = [f"HTTP {response.status_code}: {detail}"] + [
            f"  {_where(e)}{e.get('message', '')}" for e in errors if isinstance(e, dict)
        ]
        raise CliError("\n".join(lines))
    return response


def _where(error: dict[str, Any]) -> str:
    """Where a problem's error is: a request's field, or a document's line."""
    if error.get("field") is not None:
        return f"{error['field']}: "
    return f"line {error['line']}: " if error.get("line") is not None else ""


def json_argument(value: str | None, flag: str) -> Any:
    """A command-line option given as JSON (None when not given)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CliError(f"{flag} is not JSON: {exc}") from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))

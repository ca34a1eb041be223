"""What every command group shares: settings, and the HTTP client that talks to
the running gateway like any other client of its API.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import httpx

from gateway.delegation.dev_tokens import issue_dev_token
from gateway.settings import Settings
from gateway.storage import runstate
from policies.scopes import ADMIN_SCOPE


class CliError(Exception):
    """One line for the user (what, where, what to do); `main` prints it, exit 2."""


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
    if not token:
        # Local convenience: a short-lived admin token from the dev issuer. Only
        # a --dev gateway accepts it; any other answers 401 and says so.
        token = issue_dev_token(settings, "switchboard-cli", frozenset({ADMIN_SCOPE}), 300)
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with gateway_client(args) as client:
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


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))

"""`switchboard` command line: serve, demo, db, token, call, tasks, agents, mcp, keys,
policy, audit, approvals, holds, flows, connections -- one module per command group.

Admin commands talk to the running gateway over its HTTP API, like any other
client; only `serve`, `db upgrade`, `keys` and `token issue` touch the
database, and `policy check` only reads a file.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from importlib import metadata

from pydantic import ValidationError

from gateway.cli import (
    agents,
    approvals,
    audit,
    call,
    connections,
    demo,
    flows,
    holds,
    keys,
    mcp,
    policy,
    serve,
    tasks,
    tokens,
)
from gateway.cli.common import CliError
from gateway.settings import ConfigError
from policies.keys import KeySealError

# In the order `switchboard --help` lists them.
GROUPS = (
    serve,
    demo,
    tokens,
    call,
    tasks,
    agents,
    mcp,
    keys,
    policy,
    audit,
    approvals,
    holds,
    flows,
    connections,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Off while the modules loaded (`gateway.__main__`); `serve` keeps it off
    # until it has loaded its own, and freezes them.
    if not getattr(args, "starts_server", False):
        gc.enable()
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
    except Exception as exc:  # a bug, or a failure nobody foresaw: still one line
        said = " ".join(str(exc).split())
        print(f"switchboard: unexpected error: {type(exc).__name__}: {said}", file=sys.stderr)
        return 1


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="A2A/MCP interoperability gateway"
    )
    parser.add_argument("--version", action="version", version=f"switchboard {_version()}")
    commands = parser.add_subparsers(title="commands")
    for group in GROUPS:
        group.register(commands)
    return parser

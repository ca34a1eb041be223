"""`switchboard call AGENT "text"`: send a message to an agent through the
gateway's A2A front door (`/a2a/{AGENT}`), as any A2A client would -- the
official a2a-sdk client, the agent's card from the gateway -- and print the
answer and the task id. Works for every kind of agent the gateway fronts:
A2A agents, vendor agents, MCP servers' A2A faces and flows.

The caller is `--token` / `$SWITCHBOARD_TOKEN`, or a dev token for `--as`
(with `--scope`) from a `--dev` gateway's issuer; the gateway decides for
that user, as for any other call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from gateway.cli.common import CliError, dev_token, gateway_options, settings_of
from gateway.storage import runstate
from policies.scopes import ADMIN_SCOPE, ScopeSyntaxError, parse_scopes


def register(commands: Any) -> None:
    call = commands.add_parser(
        "call",
        help="send a message to an agent through the gateway and print the answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("agent", help="the agent's id (as `agents list` shows it)")
    call.add_argument("text", help="the message's text")
    call.add_argument("--skill", help="the skill to ask for (message metadata `skill`)")
    call.add_argument("--data", help="a JSON object sent as the message's data part")
    call.add_argument("--stream", action="store_true", help="print updates as they arrive")
    call.add_argument("--as", dest="user", help="with a dev gateway: call as this user")
    call.add_argument("--scope", default="", help="with --as: the user's scopes")
    gateway_options(call)
    call.set_defaults(run=_call)


def _call(args: argparse.Namespace) -> int:
    from gateway.cli.task_answers import message_of, send

    base, token = where(args)
    message = message_of(args.text, _data(args.data))
    return asyncio.run(send(base, args.agent, token, message, skill=args.skill, stream=args.stream))


def where(args: argparse.Namespace) -> tuple[str, str]:
    settings = settings_of(args)
    running = runstate.read(settings.data_dir)
    base = args.gateway or os.environ.get("SWITCHBOARD_GATEWAY_URL") or running.get("public_url")
    base = (base or settings.effective_public_url).rstrip("/")
    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    if args.user:
        try:
            scopes = parse_scopes(args.scope)
        except ScopeSyntaxError as exc:
            raise CliError(str(exc)) from None
        token = dev_token(settings, args.user, scopes, 300)
    if not token:
        token = dev_token(settings, "switchboard-cli", frozenset({ADMIN_SCOPE}), 300)
    return base, token


def _data(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CliError(f"--data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError("--data must be a JSON object")
    return data

"""`switchboard demo`: the gateway, three sample agents and one story across them."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    CliError,
)


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="start the gateway and three sample agents, and play a cross-vendor delegation",
    )
    demo.add_argument(
        "--data-dir", type=Path, help="keep the gateway's data here (default: a temp dir)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="leave everything running afterwards, to explore (delegation, flow and consent "
        "scenarios); Ctrl-C or SIGTERM stops it and removes its temp dirs",
    )
    demo.add_argument(
        "--port",
        type=int,
        help="the gateway's port on 127.0.0.1 (default: a free one)",
    )
    demo.add_argument(
        "--scenario",
        choices=["delegation", "flow", "flow-crash", "conflict", "consent"],
        default="delegation",
        help="delegation: the cross-vendor story (default); flow: the story as a flow, "
        "triggered by the support desk, parallel steps and a manager's checkpoint; "
        "flow-crash: a gateway killed with SIGKILL mid-flow and restarted, the run "
        "resuming with nothing sent twice; conflict: a sales agent's upsell deferred by "
        "a hold support opened on the customer, released when support resolves; consent: a "
        "vendor's MCP server that trusts only its own logins, each user connecting their own "
        "account and calling it as themselves",
    )
    demo.set_defaults(run=_demo)


def _interrupted(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo.servers import DemoError

    def out(line: str) -> None:
        print(line, flush=True)

    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a port (1-65535)")
    # SIGTERM stops the demo as Ctrl-C does: everything it started is
    # stopped and its temp dirs removed (an unhandled SIGTERM left them).
    signal.signal(signal.SIGTERM, _interrupted)
    # And Ctrl-C (SIGINT) always does, as the demo says: a process started in
    # the background by a shell (`make demo ... &`) inherits SIGINT ignored,
    # and Python then leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.scenario == "flow":
            from gateway.demo import flow_story

            return flow_story.run(args.data_dir, out, keep=args.keep, port=args.port)
        if args.scenario == "conflict":
            from gateway.demo import conflict_story

            return conflict_story.run(args.data_dir, out, port=args.port)
        if args.scenario == "consent":
            from gateway.demo import consent_story

            return consent_story.run(args.data_dir, out, keep=args.keep, port=args.port)
        if args.scenario == "flow-crash":
            from gateway.demo import flow_crash

            return flow_crash.run(args.data_dir, out, port=args.port)
        from gateway.demo.story import run

        return run(args.data_dir, args.keep, out, port=args.port)
    except DemoError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("switchboard demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130

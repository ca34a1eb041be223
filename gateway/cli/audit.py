"""`switchboard audit`: the decision log, over the HTTP API."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.cli.common import (
    CliError,
    call,
    gateway_client,
    gateway_options,
    output_file,
)


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the decision log").add_subparsers(
        title="audit commands"
    )
    tail = audit.add_parser("tail", help="the latest decisions; --follow for new ones")
    tail.add_argument("-n", type=int, default=20, help="how many to show first (default 20)")
    tail.add_argument(
        "--follow", "-f", action="store_true", help="then print new ones as they come"
    )
    tail.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tail.add_argument("--max-polls", type=int, default=0, help=argparse.SUPPRESS)
    tail.set_defaults(run=_audit_tail)
    export = audit.add_parser("export", help="every matching decision as JSON Lines")
    export.add_argument("--out", type=Path, help="write here instead of stdout")
    export.set_defaults(run=_audit_export)
    for sub in (tail, export):
        sub.add_argument("--user", help="only the calls on behalf of this user (subject)")
        sub.add_argument("--agent", help="only the calls to this agent or MCP server")
        sub.add_argument("--trace", help="one trace id: every hop of one delegation")
        sub.add_argument("--decision", choices=["allow", "deny"], help="only the allowed or denied")
        sub.add_argument(
            "--kind",
            choices=["call", "change", "all"],
            help="call: the decisions on delegated calls (the default); change: what "
            "callers changed through the API (registrations, policy saves...); all: both",
        )
        sub.add_argument("--since", help="ISO 8601 time")
        sub.add_argument("--until", help="ISO 8601 time")
    gateway_options(tail)
    gateway_options(export)


def _audit_filters(args: argparse.Namespace) -> dict[str, str]:
    wanted = {
        "user": args.user,
        "agent": args.agent,
        "trace": args.trace,
        "decision": args.decision,
        "kind": args.kind,
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
        f"{'; '.join(record['reasons'])}"
    )


def _audit_tail(args: argparse.Namespace) -> int:
    filters = _audit_filters(args)
    page = call(args, "GET", "/audit", params={**filters, "limit": str(max(1, args.n))}).json()
    newest_first = page["items"]
    for record in reversed(newest_first[: max(0, args.n)]):
        print(_audit_line(record), flush=True)
    if not newest_first and not args.follow:
        print("no audit records" + (" match" if filters else " yet"))
    last = newest_first[0]["id"] if newest_first else 0
    polls = 0
    while args.follow and (args.max_polls == 0 or polls < args.max_polls):
        polls += 1
        time.sleep(args.interval)
        newer = call(
            args, "GET", "/audit", params={**filters, "after_id": str(last), "limit": "1000"}
        ).json()
        for record in newer["items"]:
            print(_audit_line(record), flush=True)
            last = record["id"]
    return 0


def _audit_export(args: argparse.Namespace) -> int:
    params = {**_audit_filters(args), "format": "jsonl"}
    if args.out:
        output_file(args.out, "--out")
    with gateway_client(args) as client:
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

"""`switchboard approvals`: calls waiting for a human, over the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import (
    call,
    gateway_options,
    json_argument,
    print_json,
)


def register(commands: Any) -> None:
    approvals = commands.add_parser(
        "approvals", help="calls waiting for a human's approval"
    ).add_subparsers(title="approvals commands")
    approvals_list = approvals.add_parser("list", help="pending first, then decided")
    approvals_list.add_argument(
        "--state",
        choices=["pending", "approved", "rejected", "withdrawn"],
        help="only the approvals in this state",
    )
    approvals_list.add_argument("--agent", help="the target agent or MCP server")
    approvals_list.add_argument("--user", help="who asked (subject)")
    approvals_list.add_argument(
        "--limit", type=int, default=50, help="at most this many (default 50)"
    )
    approvals_list.set_defaults(run=_approvals_list)
    approvals_show = approvals.add_parser("show", help="who asked, for what, and why")
    approvals_show.add_argument("id", help="the approval's id (as `approvals list` shows it)")
    approvals_show.set_defaults(run=_approvals_show)
    approvals_decide = []
    for verb in ("approve", "reject"):
        decide = approvals.add_parser(verb, help=f"{verb} a pending call")
        decide.add_argument("id", help="the approval's id")
        decide.add_argument("--reason", help="recorded, and shown to the requester")
        if verb == "approve":
            decide.add_argument(
                "--answer", help="an agent's question put to a reviewer: the answer's text"
            )
            decide.add_argument(
                "--answer-data", help="an agent's question: the answer as a JSON object"
            )
        decide.set_defaults(run=_approvals_decide, decision=verb)
        approvals_decide.append(decide)
    for sub in (approvals_list, approvals_show, *approvals_decide):
        gateway_options(sub)


def _approvals_list(args: argparse.Namespace) -> int:
    wanted = {"state": args.state, "agent": args.agent, "user": args.user}
    params = {k: v for k, v in wanted.items() if v}
    params["limit"] = str(args.limit)
    page = call(args, "GET", "/approvals", params=params).json()
    for item in page["items"]:
        action = item["tool"] or item["action"] or "-"
        print(
            f"{item['id']:<36} {item['state']:<9} {item['created_at'][:19]}  "
            f"{item['requested_by']['subject']} -> {item['target']} {action}"
        )
    if not page["items"]:
        print("no approvals")
    return 0


def _approvals_show(args: argparse.Namespace) -> int:
    print_json(call(args, "GET", f"/approvals/{args.id}").json())
    return 0


def _approvals_decide(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"decision": args.decision, "reason": args.reason}
    answer = {
        "text": getattr(args, "answer", None),
        "data": json_argument(getattr(args, "answer_data", None), "--answer-data"),
    }
    if any(v is not None for v in answer.values()):
        body["answer"] = {k: v for k, v in answer.items() if v is not None}
    decided = call(args, "POST", f"/approvals/{args.id}", json=body).json()
    print(f"{decided['state']} {decided['id']}")
    return 0

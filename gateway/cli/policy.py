"""`switchboard policy`: check a policy file; ask the running gateway to explain,
or to replay recorded decisions under a candidate (`gateway.cli.policy_whatif`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.cli import policy_whatif
from gateway.cli.common import (
    CliError,
    call,
    gateway_options,
)
from policies.policy_file import PolicyError, load_policy


def register(commands: Any) -> None:
    policy = commands.add_parser("policy", help="delegation policy").add_subparsers(
        title="policy commands"
    )
    check = policy.add_parser("check", help="validate a policy file (errors name the line)")
    check.add_argument("file", type=Path, help="the policy file (YAML)")
    check.set_defaults(run=_policy_check)
    explain = policy.add_parser(
        "explain", help="what the running gateway would decide for a delegation, and why"
    )
    explain.add_argument("--scopes", default="", help="the user's scopes, space-separated")
    explain.add_argument("--chain", default="", help="agents that already acted: a,b")
    explain.add_argument("--target", required=True, help="the agent delegated to")
    explain.add_argument("--skill", help="the skill asked for")
    explain.add_argument("--tool", help="the MCP tool asked for")
    explain.add_argument("--requested", help="scopes asked for (token exchange)")
    explain.add_argument(
        "--input",
        help="the call's input as JSON (its data, a tool's arguments), for the coordination rules",
    )
    explain.set_defaults(run=_policy_explain)
    gateway_options(explain)
    policy_whatif.register(policy)


def _policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        raise CliError(str(exc)) from None
    rules = len(policy.coordination.rules)
    said = f", {rules} coordination rules" if rules else ""
    print(f"{args.file}: ok ({len(policy.agents)} agent rules{said})")
    return 0


def _policy_explain(args: argparse.Namespace) -> int:
    if args.skill and args.tool:
        raise CliError("give --skill or --tool, not both")
    body: dict[str, Any] = {
        "user_scopes": args.scopes,
        "chain": [a for a in args.chain.split(",") if a],
        "target": args.target,
        "action": args.skill or args.tool,
        "kind": "tool" if args.tool else "skill",
    }
    if args.requested is not None:
        body["requested_scopes"] = args.requested
    if args.input is not None:
        try:
            body["input"] = json.loads(args.input)
        except ValueError as exc:
            raise CliError(f"--input is not JSON: {exc}") from None
    result = call(args, "POST", "/policies/explain", json=body).json()
    verdict = "ALLOW" if result["decision"] == "allow" else "DENY"
    granted = " ".join(result["granted_scopes"]) or "(none)"
    print(f"{verdict}  depth {result['depth']}  granted: {granted}")
    if result["approval_required"]:
        print("  needs human approval")
    for reason in result["reasons"]:
        print(f"  - {reason}")
    print(f"  rules: {', '.join(result['rules']) or '(none)'}")
    coordination = result.get("coordination") or {}
    if coordination.get("error"):
        print(f"  coordination: refused: {coordination['error']}")
    for rule in coordination.get("rules", []):
        print(
            f"  coordination: {rule['rule']} ({rule['kind']}) {rule['role']} "
            f"{rule['entity']} {rule['key']}"
        )
    for blocked in coordination.get("blocked_by", []):
        print(f"  HELD BACK: {blocked['reason']}")
    held = bool(coordination.get("blocked_by") or coordination.get("error"))
    return 0 if result["decision"] == "allow" and not held else 1
